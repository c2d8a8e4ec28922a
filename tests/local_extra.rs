//! Beyond the SMI suite, with real Envoy: A/B split on a header (unmatched requests reach the
//! root), v1alpha1 quantity weights, the caller identity from mTLS (and a forged
//! `x-forwarded-client-cert` ignored), an invalid edit keeping the last good config, an Envoy
//! NACK reported while traffic keeps flowing, and the control plane restarted (plus
//! certificate rotation) under traffic with no failed request.

mod local_common;

use local_common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const SVC: &str = "app-svc.demo:9091";
const B: &str = "app-b-deployment-0";
const C: &str = "app-c-deployment-0";

fn n(t: &BTreeMap<String, usize>, k: &str) -> usize {
    t.get(k).copied().unwrap_or(0)
}

fn split(weights: &[(&str, &str)], matches: Option<&str>, version: &str) -> String {
    let mut s = format!(
        "apiVersion: split.smi-spec.io/{version}\nkind: TrafficSplit\nmetadata: {{name: s, namespace: demo}}\nspec:\n  service: app-svc\n  backends:\n"
    );
    for (svc, w) in weights {
        s.push_str(&format!("  - service: {svc}\n    weight: {w}\n"));
    }
    if let Some(m) = matches {
        s.push_str(&format!(
            "  matches:\n  - kind: HTTPRouteGroup\n    name: {m}\n"
        ));
    }
    s
}

const CANARY_GROUP: &str = include_str!("fixtures/canary_group.yaml");

/// Runs under delta xDS, so the delta server is exercised by real Envoy too.
#[test]
fn ab_split_on_header_and_v1alpha1_quantities_delta() {
    if envoy_or_skip().is_none() {
        return;
    }
    let mut m = split_app("ab", 31, &["--delta"]);
    m.write("03-group.yaml", CANARY_GROUP);
    m.write(
        "04-split.yaml",
        &split(
            &[("app-b", "1"), ("app-c", "0")],
            Some("canary"),
            "v1alpha4",
        ),
    );
    // Matched requests: split (all to app-b).
    let t = m.tally("app-a", SVC, "/", &[("x-canary", "yes")], 40);
    assert_eq!((n(&t, B), n(&t, C)), (40, 0), "matched: {t:?}");
    // Not matching the header regex (whole-value match): the root service, both versions.
    let t = m.tally("app-a", SVC, "/", &[("x-canary", "yes-please")], 40);
    assert!(
        n(&t, B) > 0 && n(&t, C) > 0 && n(&t, B) + n(&t, C) == 40,
        "unmatched: {t:?}"
    );
    let t = m.tally("app-a", SVC, "/", &[], 40);
    assert!(
        n(&t, B) > 0 && n(&t, C) > 0 && n(&t, B) + n(&t, C) == 40,
        "no header: {t:?}"
    );

    // v1alpha1: weights are quantities (`1` = `1000m`): 1 vs 500m is 2:1.
    m.remove("04-split.yaml");
    m.write(
        "04-split.yaml",
        &split(&[("app-b", "\"1\""), ("app-c", "500m")], None, "v1alpha1"),
    );
    let total = 150;
    let t = m.tally("app-a", SVC, "/", &[], total);
    assert_eq!(n(&t, B) + n(&t, C), total, "{t:?}");
    assert!(
        within_binomial(n(&t, B), total, 2.0 / 3.0, 4.5),
        "1 vs 500m: {t:?}"
    );
    m.write(
        "04-split.yaml",
        &split(&[("app-b", "0"), ("app-c", "250m")], None, "v1alpha1"),
    );
    let t = m.tally("app-a", SVC, "/", &[], 30);
    assert_eq!((n(&t, B), n(&t, C)), (0, 30), "0 vs 250m: {t:?}");
}

#[test]
fn identity_from_mtls_reaches_the_server_and_cannot_be_forged() {
    if envoy_or_skip().is_none() {
        return;
    }
    let files = [
        ("00-ns.yaml", namespace_yaml()),
        (
            "02-install.yaml",
            suite_file("traffic-access", "02-install.yaml"),
        ),
        (
            "04-install.yaml",
            suite_file("traffic-access", "04-install.yaml"),
        ),
    ];
    let m = Local::start("idn", 32, &files, &[]);
    let (st, body) = m.call(
        "app-a",
        "GET",
        "app-b.demo:9091",
        "/who",
        &[(
            "x-forwarded-client-cert",
            "By=x;URI=spiffe://cluster.local/ns/demo/sa/service-c",
        )],
    );
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["caller"], "spiffe://cluster.local/ns/demo/sa/service-a");
    assert_eq!(v["serviceAccount"], "service-b");
    assert_eq!(v["path"], "/who");
    let xfcc = v["headers"]["x-forwarded-client-cert"].as_str().unwrap();
    assert!(!xfcc.contains("service-c"), "forged XFCC kept: {xfcc}");
    // Calling the server pod's sidecar directly without the mesh's client certificate fails.
    let server = m.pod("app-b")["ip"].as_str().unwrap().to_string();
    let (st, _) = http(&format!("{server}:9091"), "GET", "x", "/", &[]);
    assert_ne!(st, 200, "plaintext reached an mTLS-only listener");
}

/// The trust domain follows the one context rule (flag > Mesh object > default) in `local`
/// as in `translate` and `run`: a Mesh of type envoy with `trustDomain` names every identity,
/// in the certificates and in the RBAC principals alike, so access still works.
#[test]
fn mesh_trust_domain_names_the_identities() {
    if envoy_or_skip().is_none() {
        return;
    }
    let mesh = "apiVersion: meshbridge.io/v1alpha1\nkind: Mesh\nmetadata: {name: builtin}\nspec: {type: envoy, trustDomain: shop.example}\n";
    let files = [
        ("00-ns.yaml", namespace_yaml()),
        ("01-mesh.yaml", mesh.to_string()),
        (
            "02-install.yaml",
            suite_file("traffic-access", "02-install.yaml"),
        ),
        (
            "04-install.yaml",
            suite_file("traffic-access", "04-install.yaml"),
        ),
    ];
    let m = Local::start("trustdomain", 39, &files, &[]);
    let (st, body) = m.call("app-a", "GET", "app-b.demo:9091", "/who", &[]);
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["caller"], "spiffe://shop.example/ns/demo/sa/service-a");
    assert_eq!(
        m.pod("app-a")["identity"],
        "spiffe://shop.example/ns/demo/sa/service-a"
    );
}

#[test]
fn invalid_edit_keeps_last_good_config_and_nack_keeps_traffic() {
    if envoy_or_skip().is_none() {
        return;
    }
    let mut m = split_app("bad", 33, &[]);
    m.write(
        "04-split.yaml",
        &split(&[("app-b", "1"), ("app-c", "0")], None, "v1alpha4"),
    );
    let t = m.tally("app-a", SVC, "/", &[], 20);
    assert_eq!((n(&t, B), n(&t, C)), (20, 0), "{t:?}");
    // A negative weight makes the split invalid: reported, and the last valid one stays.
    let ev = m.write_expect(
        "04-split.yaml",
        &split(&[("app-b", "-1"), ("app-c", "1")], None, "v1alpha4"),
        |v| v["event"] == "invalid",
    );
    assert!(ev["problems"].to_string().contains("negative"), "{ev}");
    let g = m.generation + 1;
    m.wait_synced(g);
    let t = m.tally("app-a", SVC, "/", &[], 20);
    assert_eq!((n(&t, B), n(&t, C)), (20, 0), "after invalid edit: {t:?}");
    // Unparsable YAML: the file's previous content stays.
    m.write_expect("04-split.yaml", "spec: [unclosed", |v| {
        v["event"] == "invalid"
    });
    let t = m.tally("app-a", SVC, "/", &[], 10);
    assert_eq!((n(&t, B), n(&t, C)), (10, 0), "after broken YAML: {t:?}");

    // A header regex Envoy refuses (RE2 program larger than Envoy's limit) is valid SMI:
    // Envoy NACKs the routes, the NACK is reported, and the proxy keeps serving its last
    // good routes.
    let group = CANARY_GROUP.replace(
        "\"^(yes|true)$\"",
        "\"[a-z]{40}[0-9]{40}[a-z]{40}[0-9]{40}\"",
    );
    m.write("03-group.yaml", &group);
    let ev = m.write_expect(
        "04-split.yaml",
        &split(
            &[("app-b", "0"), ("app-c", "1")],
            Some("canary"),
            "v1alpha4",
        ),
        |v| v["event"] == "nack",
    );
    assert!(
        ev["messages"].to_string().contains("RouteConfiguration"),
        "{ev}"
    );
    let t = m.tally("app-a", SVC, "/", &[], 20);
    assert_eq!((n(&t, B), n(&t, C)), (20, 0), "after NACK: {t:?}");
    // Fixing it converges again.
    m.write("03-group.yaml", CANARY_GROUP);
    let t = m.tally("app-a", SVC, "/", &[("x-canary", "true")], 20);
    assert_eq!((n(&t, B), n(&t, C)), (0, 20), "after fix: {t:?}");
}

/// Requests from app-a to the service every 5 ms on a thread, counted by the pod that
/// answered (or `status:<code>`).
struct Traffic {
    stop: Arc<AtomicBool>,
    load: std::thread::JoinHandle<BTreeMap<String, usize>>,
}

impl Traffic {
    fn start(m: &Local) -> Traffic {
        let out = m.pod("app-a")["outbound"].as_str().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let load = std::thread::spawn(move || {
            let mut res: BTreeMap<String, usize> = BTreeMap::new();
            for _ in 0..20_000 {
                if s2.load(Ordering::Relaxed) {
                    break;
                }
                let (st, body) = http(&out, "GET", SVC, "/", &[]);
                let k = if st == 200 {
                    serde_json::from_str::<Value>(&body)
                        .ok()
                        .and_then(|v| v["pod"].as_str().map(str::to_string))
                        .unwrap_or_default()
                } else {
                    format!("status:{st}")
                };
                *res.entry(k).or_default() += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            res
        });
        Traffic { stop, load }
    }

    /// Stops the traffic: no request failed and both versions answered.
    fn stop_and_check(self) {
        let Traffic { stop, load } = self;
        stop.store(true, Ordering::Relaxed);
        let res = load.join().unwrap();
        let failed: usize = res
            .iter()
            .filter(|(k, _)| !k.ends_with("-0"))
            .map(|(_, v)| *v)
            .sum();
        assert_eq!(failed, 0, "failed requests: {res:?}");
        assert!(n(&res, B) > 0 && n(&res, C) > 0, "{res:?}");
    }
}

#[test]
fn control_plane_restart_and_cert_rotation_under_traffic() {
    if envoy_or_skip().is_none() {
        return;
    }
    let mut m = split_app("restart", 34, &["--cert-ttl", "12"]);
    m.write(
        "04-split.yaml",
        &split(&[("app-b", "1"), ("app-c", "0")], None, "v1alpha4"),
    );
    let traffic = Traffic::start(&m);
    std::thread::sleep(Duration::from_millis(500));
    m.signal("USR1");
    m.wait_line(Duration::from_secs(30), |l| {
        l.contains("control-plane-restarted")
    });
    m.wait_line(Duration::from_secs(60), |l| l.contains("\"synced\""));
    // The new control plane programs changes.
    m.write(
        "04-split.yaml",
        &split(&[("app-b", "0"), ("app-c", "1")], None, "v1alpha4"),
    );
    // Keep traffic flowing across at least one certificate rotation (ttl 12 s → every ~8 s).
    m.wait_line(Duration::from_secs(30), |l| {
        l.contains("certificates-rotated")
    });
    std::thread::sleep(Duration::from_millis(1500));
    traffic.stop_and_check();
    let t = m.tally("app-a", SVC, "/", &[], 10);
    assert_eq!(n(&t, C), 10, "{t:?}");
}

#[test]
fn control_plane_process_killed_and_restarted_under_traffic() {
    if envoy_or_skip().is_none() {
        return;
    }
    let mut m = split_app("kill", 37, &[]);
    m.write(
        "04-split.yaml",
        &split(&[("app-b", "1"), ("app-c", "0")], None, "v1alpha4"),
    );
    let pods_before = m.pods.len();
    let traffic = Traffic::start(&m);
    std::thread::sleep(Duration::from_millis(500));
    // SIGKILL: no cleanup runs. The sidecars keep serving with their last configuration
    // while no control plane exists (1 s), then the successor adopts them.
    let down = m.kill_and_restart(Duration::from_secs(1));
    assert!(down >= Duration::from_secs(1));
    let adopted = m.events.iter().filter(|e| e["event"] == "adopted").count();
    assert_eq!(
        adopted, pods_before,
        "every pod is adopted, none restarted: {:?}",
        m.events
    );
    // The successor programs the adopted sidecars.
    m.write(
        "04-split.yaml",
        &split(&[("app-b", "0"), ("app-c", "1")], None, "v1alpha4"),
    );
    std::thread::sleep(Duration::from_millis(1000));
    traffic.stop_and_check();
    let t = m.tally("app-a", SVC, "/", &[], 10);
    assert_eq!(n(&t, C), 10, "{t:?}");
}

#[test]
fn xds_client_certificate_rotates_so_sidecars_reconnect_after_its_expiry() {
    if envoy_or_skip().is_none() {
        return;
    }
    let started = std::time::Instant::now();
    let mut m = split_app("xdscert", 38, &["--xds-cert-ttl", "12"]);
    // Rotated at two thirds of its life (~8 s), through the sidecars' file-based SDS secret.
    m.wait_line(Duration::from_secs(30), |l| {
        l.contains("xds-certificates-rotated")
    });
    // Past the first certificate's expiry, cut every xDS connection: the sidecars can only
    // reconnect (the server checks client certificates) with the rotated certificate.
    let first_expiry = Duration::from_secs(13);
    if let Some(left) = first_expiry.checked_sub(started.elapsed()) {
        std::thread::sleep(left);
    }
    m.signal("USR1");
    m.wait_line(Duration::from_secs(10), |l| {
        l.contains("control-plane-restarted")
    });
    m.wait_line(Duration::from_secs(20), |l| l.contains("\"synced\""));
    m.write(
        "04-split.yaml",
        &split(&[("app-b", "0"), ("app-c", "1")], None, "v1alpha4"),
    );
    let t = m.tally("app-a", SVC, "/", &[], 10);
    assert_eq!(n(&t, C), 10, "{t:?}");
}
