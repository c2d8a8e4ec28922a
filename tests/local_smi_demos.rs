//! SMI demos as people wrote them, on the built-in mesh with real Envoy (one local mesh for
//! every case, Envoy's startup being the expensive part):
//! - an OSM-style Service port named `bookstore-port` (no `appProtocol`): HTTP is detected,
//!   so the HTTPRouteGroup's `GET /books` is allowed and anything else gets 403 — through
//!   the outbound HTTP listener and through the port's own (sniffing) outbound listener;
//! - a container declaring no `containerPort`, reached through its Service's numeric
//!   `targetPort`;
//! - a StatefulSet (`replicas: 1`, pod `db-0`) reached over TCP;
//! - a document of a kind meshbridge does not read is named on stderr.

mod local_common;

use local_common::*;
use serde_json::Value;

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
apiVersion: apps/v1
kind: Deployment
metadata: {name: bookstore, namespace: demo}
spec:
  selector: {matchLabels: {app: bookstore}}
  template:
    metadata: {labels: {app: bookstore}}
    spec:
      serviceAccountName: bookstore
      containers:
      - name: bookstore
        command: ["meshbridge", "echo-server"]
        ports: [{containerPort: 14001, name: web}]
---
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
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: bookstore, namespace: demo}
spec:
  destination: {kind: ServiceAccount, name: bookstore, namespace: demo}
  sources: [{kind: ServiceAccount, name: bookbuyer, namespace: demo}]
  rules: [{kind: HTTPRouteGroup, name: bookstore-service-routes, matches: [books-bought]}]
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
    let m = Local::start(
        "demos",
        41,
        &[
            ("00-ns.yaml", namespace_yaml()),
            ("01-apps.yaml", APPS.to_string()),
            ("02-policy.yaml", POLICY.to_string()),
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

    // 4. The ConfigMap is not read, and said so.
    let err = std::fs::read_to_string(m.state.join("runtime.err")).unwrap_or_default();
    assert!(
        err.lines().any(
            |l| l.contains("ConfigMap demo/bookstore-settings: (document):")
                && l.contains("ignored")
        ),
        "stderr:\n{err}"
    );
}
