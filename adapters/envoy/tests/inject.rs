//! Sidecar injection: AdmissionReview goldens from real pod specs (the request as the API
//! server sends it, the response with its JSON patch decoded), the injected pod read back
//! through Kubernetes' own types (a misspelled field would be dropped), idempotence.

use meshbridge_envoy::inject::{self, InjectConfig, Outcome, Skip};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn cfg() -> InjectConfig {
    InjectConfig::new("ghcr.io/meshbridge/meshbridge:0.1.0", "meshbridge-system")
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inject")
}

fn enabled(ns: &str) -> bool {
    ns == "shop"
}

/// The response, with `patch` decoded (what a reviewer reads).
fn readable(resp: &Value) -> Value {
    let mut r = resp.clone();
    if let Some(p) = inject::decoded_patch(resp).unwrap() {
        r["response"]["patch"] = p;
    }
    r
}

fn golden(name: &str, have: &Value) {
    let path = dir().join(format!("{name}.golden.json"));
    let text = serde_json::to_string_pretty(have).unwrap() + "\n";
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        want == text,
        "{name}: response differs from {}:\n{text}",
        path.display()
    );
}

fn load(name: &str) -> Value {
    let p = dir().join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Every request fixture has a golden response, and the goldens hold what was asserted.
#[test]
fn admission_review_goldens() {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json") && !n.ends_with(".golden.json"))
        .map(|n| n.trim_end_matches(".json").to_string())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "fixtures: {names:?}");
    for name in &names {
        let req = load(name);
        let resp = inject::review(&req, &cfg(), enabled);
        assert_eq!(resp["response"]["uid"], req["request"]["uid"], "{name}");
        golden(name, &readable(&resp));
    }
}

fn response(name: &str) -> Value {
    inject::review(&load(name), &cfg(), enabled)["response"].clone()
}

/// The pod the API server stores after the patch.
fn patched(name: &str) -> Value {
    let req = load(name);
    let resp = inject::review(&req, &cfg(), enabled);
    inject::admitted(&req["request"]["object"], &resp).unwrap()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

#[test]
fn injected_pod_is_a_valid_pod_with_the_sidecar_after_the_apps_init_containers() {
    let pod = patched("init-containers");
    // Kubernetes' own types drop what they do not know: a round trip loses nothing.
    let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), pod);
    assert_eq!(
        names(&pod["spec"]["initContainers"]),
        ["migrate", "meshbridge-init", "meshbridge-proxy"]
    );
    assert_eq!(names(&pod["spec"]["containers"]), ["web"]);
    let proxy = &pod["spec"]["initContainers"][2];
    assert_eq!(proxy["restartPolicy"], "Always");
    assert_eq!(proxy["securityContext"]["runAsUser"], 1337);
    assert_eq!(proxy["startupProbe"]["httpGet"]["path"], "/ready");
    let token = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "meshbridge-token")
        .unwrap();
    assert_eq!(
        token["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "meshbridge"
    );
    // The pod's own volumes and containers are untouched.
    let before = load("init-containers")["request"]["object"].clone();
    assert_eq!(pod["spec"]["containers"], before["spec"]["containers"]);
    assert_eq!(pod["spec"]["volumes"][0], before["spec"]["volumes"][0]);
    assert_eq!(pod["metadata"]["generateName"], "web-7d9c6b8f5-");
}

#[test]
fn injection_is_idempotent() {
    let pod = patched("deployment-pod");
    let again = inject::inject(&pod["metadata"], &pod["spec"], &cfg()).unwrap();
    assert!(
        again == Outcome::Skipped(Skip::AlreadyInjected),
        "{again:?}"
    );
    let mut review = load("deployment-pod");
    review["request"]["object"] = pod;
    let resp = inject::review(&review, &cfg(), enabled);
    assert_eq!(resp["response"]["allowed"], true);
    assert!(resp["response"].get("patch").is_none(), "{resp:#}");
}

#[test]
fn exclusions_reach_the_init_containers_command() {
    let pod = patched("exclusions");
    let args = pod["spec"]["initContainers"][0]["args"].clone();
    let args: Vec<&str> = args
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let after = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
    assert_eq!(after("--exclude-inbound-ports"), "15000,15021,9090,9091");
    assert_eq!(after("--exclude-outbound-ports"), "5432");
    assert_eq!(
        after("--exclude-outbound-cidrs"),
        "169.254.169.254/32,10.96.0.0/12"
    );
    assert_eq!(after("--xds-port"), "15012");
}

#[test]
fn refusals_name_the_field_and_skips_change_nothing() {
    let r = response("reserved-port");
    assert_eq!(r["allowed"], false);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.containers[0] (web): port 15000 is reserved"),
        "{msg}"
    );
    let r = response("bad-annotation");
    assert_eq!(r["allowed"], false);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "annotation meshbridge.io/exclude-outbound-ip-ranges: invalid IPv4 CIDR \"10.0.0.0/33\""
        ),
        "{msg}"
    );
    for (name, warned) in [
        ("opt-out", false),
        ("host-network", true),
        ("not-enabled", false),
        ("update-op", false),
    ] {
        let r = response(name);
        assert_eq!(r["allowed"], true, "{name}");
        assert!(r.get("patch").is_none(), "{name}: {r:#}");
        assert_eq!(r.get("warnings").is_some(), warned, "{name}: {r:#}");
    }
    // A pod without annotations gains the map.
    let pod = patched("no-annotations");
    assert_eq!(
        pod["metadata"]["annotations"][inject::STATUS_ANNOTATION],
        "0.1.0"
    );
}

#[test]
fn unreadable_reviews_are_denied_not_crashed() {
    for body in [
        json!(null),
        json!({}),
        json!({"request": {"uid": ""}}),
        json!({"request": {"uid": "u1", "kind": {"kind": "Pod"}, "operation": "CREATE", "namespace": "shop", "object": "x"}}),
        json!({"request": {"uid": "u2", "kind": {"kind": "Pod"}, "operation": "CREATE", "namespace": "shop", "object": {"spec": {"containers": []}}}}),
        json!({"request": {"uid": "u3", "kind": {"kind": "Pod"}, "operation": "CREATE", "namespace": "shop", "object": {"metadata": {"annotations": 3}, "spec": {"containers": [{"name": "a"}]}}}}),
    ] {
        let r = inject::review(&body, &cfg(), enabled);
        assert_eq!(r["kind"], "AdmissionReview");
        assert_eq!(r["response"]["allowed"], false, "{body}: {r:#}");
        assert!(
            r["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .starts_with("meshbridge sidecar injection: "),
            "{r:#}"
        );
    }
}

/// For API servers before 1.29: the sidecar is the first app container, without the fields
/// only native sidecars may have (a v1.28 server refuses a probed init container).
#[test]
fn without_native_sidecars_the_proxy_is_the_first_container() {
    let mut c = cfg();
    c.native_sidecar = false;
    let req = load("init-containers");
    let pod = inject::admitted(
        &req["request"]["object"],
        &inject::review(&req, &c, enabled),
    )
    .unwrap();
    let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), pod);
    assert_eq!(
        names(&pod["spec"]["initContainers"]),
        ["migrate", "meshbridge-init"]
    );
    assert_eq!(
        names(&pod["spec"]["containers"]),
        ["meshbridge-proxy", "web"]
    );
    let proxy = &pod["spec"]["containers"][0];
    assert!(proxy.get("restartPolicy").is_none() && proxy.get("startupProbe").is_none());
    assert_eq!(proxy["readinessProbe"]["httpGet"]["path"], "/ready");
    // Still idempotent.
    let again = inject::inject(&pod["metadata"], &pod["spec"], &c).unwrap();
    assert_eq!(again, Outcome::Skipped(Skip::AlreadyInjected));
}
