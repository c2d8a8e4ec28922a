//! SMI demos as people wrote them, on the built-in mesh with real Envoy (one local mesh for
//! every case, Envoy's startup being the expensive part):
//! - an OSM-style Service port named `bookstore-port` (no `appProtocol`): HTTP is detected,
//!   so the HTTPRouteGroup's `GET /books` is allowed and anything else gets 403 — through
//!   the outbound HTTP listener and through the port's own (sniffing) outbound listener;
//! - a container declaring no `containerPort`, reached through its Service's numeric
//!   `targetPort`;
//! - a StatefulSet (`replicas: 1`, pod `db-0`) reached over TCP;
//! - a route matched on the `user-agent` header (`.*bookbuyer.*`, a regex matched against the
//!   whole value): `curl bookbuyer/1.0` allowed, `bookthief` denied;
//! - OSM's v1alpha2 TrafficSplit of `bookstore` across `bookstore-v1` / `bookstore-v2` (every
//!   port `bookstore-port`, no `appProtocol`): 50/50, then edited live to 100/0;
//! - a document of a kind meshbridge does not read is named on stderr.

mod local_common;

use local_common::*;
use serde_json::Value;
use std::collections::BTreeMap;

const BOOKSTORE: &str = "bookstore.demo:14001";
const V1: &str = "bookstore-v1-0";
const V2: &str = "bookstore-v2-0";

/// The workloads of the demo: bookstore-v1 and bookstore-v2 ([`bookstore_version`]) come
/// between the Services and the other Deployments.
fn apps() -> String {
    APPS.replace(
        "# bookstore versions\n",
        &(bookstore_version("v1", "bookstore") + &bookstore_version("v2", "bookstore-v2")),
    )
}

/// `bookstore-<v>`: its Service (port `bookstore-port`, no appProtocol) and Deployment
/// running as `sa` (ServiceAccount `bookstore-v2` is declared with it).
fn bookstore_version(v: &str, sa: &str) -> String {
    let account = if sa == "bookstore" {
        String::new()
    } else {
        format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {sa}, namespace: demo}}\n---\n"
        )
    };
    format!(
        r#"{account}apiVersion: v1
kind: Service
metadata: {{name: bookstore-{v}, namespace: demo}}
spec:
  selector: {{app: bookstore, version: {v}}}
  ports: [{{name: bookstore-port, port: 14001, targetPort: 14001}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: bookstore-{v}, namespace: demo}}
spec:
  selector: {{matchLabels: {{app: bookstore, version: {v}}}}}
  template:
    metadata: {{labels: {{app: bookstore, version: {v}}}}}
    spec:
      serviceAccountName: {sa}
      containers:
      - name: bookstore
        command: ["meshbridge", "echo-server"]
        ports: [{{containerPort: 14001, name: web}}]
---
"#
    )
}

const APPS: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: bookbuyer, namespace: demo}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: bookstore, namespace: demo}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: greeter, namespace: demo}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: db, namespace: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: bookbuyer, namespace: demo}
spec:
  selector: {matchLabels: {app: bookbuyer}}
  template:
    metadata: {labels: {app: bookbuyer}}
    spec:
      serviceAccountName: bookbuyer
      containers: [{name: bookbuyer, image: openservicemesh/bookbuyer}]
---
apiVersion: v1
kind: Service
metadata: {name: bookstore, namespace: demo}
spec:
  selector: {app: bookstore}
  ports: [{name: bookstore-port, port: 14001, targetPort: 14001}]
---
# bookstore versions
apiVersion: v1
kind: Service
metadata: {name: greeter, namespace: demo}
spec:
  selector: {app: greeter}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: greeter, namespace: demo}
spec:
  selector: {matchLabels: {app: greeter}}
  template:
    metadata: {labels: {app: greeter}}
    spec:
      serviceAccountName: greeter
      containers: [{name: greeter, command: ["meshbridge", "echo-server"]}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: tcp-db, port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: demo}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      serviceAccountName: db
      containers: [{name: db, command: ["meshbridge", "echo-server"]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: bookstore-settings, namespace: demo}
data: {color: blue}
"#;

const POLICY: &str = r#"
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: bookstore-service-routes, namespace: demo}
spec:
  matches:
  - {name: books-bought, pathRegex: /books, methods: [GET]}
  - name: buy-a-book
    pathRegex: ".*a-book.*new"
    methods: [GET]
    headers: {user-agent: ".*bookbuyer.*"}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: bookstore, namespace: demo}
spec:
  destination: {kind: ServiceAccount, name: bookstore, namespace: demo}
  sources: [{kind: ServiceAccount, name: bookbuyer, namespace: demo}]
  rules:
  - {kind: HTTPRouteGroup, name: bookstore-service-routes, matches: [books-bought, buy-a-book]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: bookstore-v2, namespace: demo}
spec:
  destination: {kind: ServiceAccount, name: bookstore-v2, namespace: demo}
  sources: [{kind: ServiceAccount, name: bookbuyer, namespace: demo}]
  rules:
  - {kind: HTTPRouteGroup, name: bookstore-service-routes, matches: [books-bought, buy-a-book]}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: all, namespace: demo}
spec: {matches: {ports: []}}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: greeter, namespace: demo}
spec:
  destination: {kind: ServiceAccount, name: greeter, namespace: demo}
  sources: [{kind: ServiceAccount, name: bookbuyer, namespace: demo}]
  rules: [{kind: TCPRoute, name: all}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: db, namespace: demo}
spec:
  destination: {kind: ServiceAccount, name: db, namespace: demo}
  sources: [{kind: ServiceAccount, name: bookbuyer, namespace: demo}]
  rules: [{kind: TCPRoute, name: all}]
"#;

/// The OSM demo's split of `bookstore` (v1alpha2: integer weights).
fn split(v1: u32, v2: u32) -> String {
    format!(
        "apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {{name: bookstore-split, namespace: demo}}
spec:
  service: bookstore
  backends:
  - {{service: bookstore-v1, weight: {v1}}}
  - {{service: bookstore-v2, weight: {v2}}}
"
    )
}

fn pod_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["pod"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn osm_style_ports_undeclared_container_ports_and_stateful_sets() {
    if envoy_or_skip().is_none() {
        return;
    }
    let mut m = Local::start(
        "demos",
        41,
        &[
            ("00-ns.yaml", namespace_yaml()),
            ("01-apps.yaml", apps()),
            ("02-policy.yaml", POLICY.to_string()),
            ("03-split.yaml", split(50, 50)),
        ],
        &[],
    );
    let buyer_ip = m.pod("bookbuyer")["ip"].as_str().unwrap().to_string();

    // 1. `bookstore-port`: HTTP detected, the route rule enforced (GET /books only) —
    // through the outbound HTTP listener and through the port's own outbound listener.
    let (st, body) = m.call("bookbuyer", "GET", "bookstore.demo:14001", "/books", &[]);
    assert_eq!(st, 200, "GET /books: {body}");
    assert!(pod_of(&body).starts_with("bookstore-"), "{body}");
    let (st, body) = m.call("bookbuyer", "GET", "bookstore.demo:14001", "/other", &[]);
    assert_eq!(st, 403, "GET /other: {body}");
    let (st, _) = m.call("bookbuyer", "POST", "bookstore.demo:14001", "/books", &[]);
    assert_eq!(st, 403, "POST /books");
    let direct = format!("{buyer_ip}:14001");
    let (st, body) = http(&direct, "GET", "bookstore", "/books", &[]);
    assert_eq!(st, 200, "GET /books on the port's listener: {body}");
    let (st, body) = http(&direct, "GET", "bookstore", "/other", &[]);
    assert_eq!(st, 403, "GET /other on the port's listener: {body}");

    // 2. No containerPort: the Service's numeric targetPort is served.
    let (st, body) = m.call("bookbuyer", "GET", "greeter.demo", "/hello", &[]);
    assert_eq!(st, 200, "greeter: {body}");
    assert!(pod_of(&body).starts_with("greeter-"), "{body}");

    // 3. The StatefulSet's pod `db-0`, over TCP (a raw connection to the TCP port's
    // outbound listener; the echo server answers what comes through).
    assert_eq!(m.pod("db-0")["pod"], format!("{NS}/db-0"));
    let (st, body) = http(&format!("{buyer_ip}:5432"), "GET", "db", "/", &[]);
    assert_eq!(st, 200, "db over TCP: {body}");
    assert_eq!(pod_of(&body), "db-0", "{body}");

    // 4. A route matched on a header (the value a regex matched against the whole value).
    let buy = "/buy-a-book/new";
    let (st, body) = m.call(
        "bookbuyer",
        "GET",
        BOOKSTORE,
        buy,
        &[("User-Agent", "curl bookbuyer/1.0")],
    );
    assert_eq!(st, 200, "bookbuyer's user agent: {body}");
    assert!(pod_of(&body).starts_with("bookstore-v"), "{body}");
    let (st, body) = m.call(
        "bookbuyer",
        "GET",
        BOOKSTORE,
        buy,
        &[("User-Agent", "bookthief")],
    );
    assert_eq!(st, 403, "bookthief's user agent: {body}");
    let (st, body) = m.call("bookbuyer", "GET", BOOKSTORE, buy, &[]);
    assert_eq!(st, 403, "no user agent: {body}");

    // 5. The 50/50 split of `bookstore`, then edited live to 100/0.
    let n = |t: &BTreeMap<String, usize>, k: &str| t.get(k).copied().unwrap_or(0);
    let t = m.tally("bookbuyer", BOOKSTORE, "/books", &[], 100);
    let (v1, v2) = (n(&t, V1), n(&t, V2));
    assert_eq!(v1 + v2, 100, "50/50: {t:?}");
    assert!((25..=75).contains(&v1), "50/50: {t:?}");
    m.write("03-split.yaml", &split(100, 0));
    let t = m.tally("bookbuyer", BOOKSTORE, "/books", &[], 40);
    assert_eq!(n(&t, V1), 40, "100/0: {t:?}");

    // 6. The ConfigMap is not read, and said so.
    let err = std::fs::read_to_string(m.state.join("runtime.err")).unwrap_or_default();
    assert!(
        err.lines().any(
            |l| l.contains("ConfigMap demo/bookstore-settings: (document):")
                && l.contains("ignored")
        ),
        "stderr:\n{err}"
    );
}
