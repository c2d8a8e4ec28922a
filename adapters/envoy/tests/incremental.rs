//! The incremental translator ([`Translator`]) against cold translations: after every edit of
//! a sequence (splits, access, pods, services, consumer routes, conflicting host names), the
//! translator that kept last generation's values returns exactly what a cold
//! [`translate_all`] returns, and it rebuilt only what depends on the edited object.

use meshbridge_core::build::build;
use meshbridge_core::load::load_str;
use meshbridge_core::pipeline::snapshot_of;
use meshbridge_core::{Context, Ir};
use meshbridge_envoy::sidecar::{Proxy, Translator, proxies_of, translate_all};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The documents that never change.
const FIXED: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: demo}
spec: {selector: {app: web, v: "1"}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo}
spec: {selector: {app: db}, ports: [{name: tcp-pg, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: other}
spec: {selector: {app: api}, ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: demo, labels: {app: web, v: "1"}}
spec: {serviceAccountName: web, containers: [{name: c, ports: [{containerPort: 8080}]}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo, labels: {app: client}}
spec: {serviceAccountName: client, containers: [{name: c}]}
status: {podIP: 10.0.0.3}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: demo, labels: {app: db}}
spec: {serviceAccountName: db, containers: [{name: c, ports: [{containerPort: 5432}]}]}
status: {podIP: 10.0.0.4}
---
apiVersion: v1
kind: Pod
metadata: {name: api-0, namespace: other, labels: {app: api}}
spec: {serviceAccountName: api, containers: [{name: c, ports: [{containerPort: 8080}]}]}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: caller, namespace: other, labels: {app: caller}}
spec: {serviceAccountName: caller, containers: [{name: c}]}
status: {podIP: 10.0.1.2}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: rg, namespace: demo}
spec:
  matches:
  - {name: api, pathRegex: "/api", methods: [GET, POST]}
  - name: canary
    headers: [{x-canary: "yes"}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: tcp, namespace: demo}
spec: {matches: {ports: [5432]}}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-other, namespace: demo}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: other}]
  to: [{group: "", kind: Service}]
"#;

/// Each slot holds one of its variants ("" = absent).
fn slots() -> Vec<Vec<&'static str>> {
    vec![
        // The split of web.
        vec![
            "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: web, namespace: demo}\nspec:\n  service: web\n  backends: [{service: web-v1, weight: 75}, {service: web-v2, weight: 25}]\n  matches: [{kind: HTTPRouteGroup, name: rg}]\n",
            "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: web, namespace: demo}\nspec:\n  service: web\n  backends: [{service: web-v1, weight: 0}, {service: web-v2, weight: 100}]\n",
            "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: web, namespace: demo}\nspec:\n  service: web\n  backends: [{service: web-v1, weight: 100}, {service: web-v2, weight: 0}]\n",
            "",
        ],
        // Who may call web.
        vec![
            "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: to-web, namespace: demo}\nspec:\n  destination: {kind: ServiceAccount, name: web, namespace: demo}\n  sources: [{kind: ServiceAccount, name: client, namespace: demo}]\n  rules: [{kind: HTTPRouteGroup, name: rg, matches: [api]}]\n",
            "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: to-web, namespace: demo}\nspec:\n  destination: {kind: ServiceAccount, name: web, namespace: demo}\n  sources: [{kind: ServiceAccount, name: client, namespace: demo}, {kind: ServiceAccount, name: caller, namespace: other}]\n  rules: [{kind: HTTPRouteGroup, name: rg}]\n",
            "",
        ],
        // Who may call db.
        vec![
            "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: to-db, namespace: demo}\nspec:\n  destination: {kind: ServiceAccount, name: db, namespace: demo}\n  sources: [{kind: ServiceAccount, name: web, namespace: demo}]\n  rules: [{kind: TCPRoute, name: tcp}]\n",
            "",
        ],
        // Who may call api.
        vec![
            "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: to-api, namespace: other}\nspec:\n  destination: {kind: ServiceAccount, name: api, namespace: other}\n  sources: [{kind: ServiceAccount, name: client, namespace: demo}]\n  rules: [{kind: HTTPRouteGroup, name: api-all}]\n---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: api-all, namespace: other}\nspec:\n  matches: [{name: all, pathRegex: \".*\"}]\n",
            "",
        ],
        // The second web pod: its version, its address, or gone.
        vec![
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web-2, namespace: demo, labels: {app: web, v: \"2\"}}\nspec: {serviceAccountName: web, containers: [{name: c, ports: [{containerPort: 8081, name: web}]}]}\nstatus: {podIP: 10.0.0.2}\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web-2, namespace: demo, labels: {app: web, v: \"1\"}}\nspec: {serviceAccountName: web, containers: [{name: c, ports: [{containerPort: 8080}]}]}\nstatus: {podIP: 10.0.0.2}\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web-2, namespace: demo, labels: {app: web, v: \"2\"}}\nspec: {serviceAccountName: web, containers: [{name: c, ports: [{containerPort: 8081, name: web}]}]}\nstatus: {podIP: 10.0.0.9}\n",
            "",
        ],
        // The v2 service: its target port, or gone.
        vec![
            "apiVersion: v1\nkind: Service\nmetadata: {name: web-v2, namespace: demo}\nspec: {selector: {app: web, v: \"2\"}, ports: [{name: http, port: 80, targetPort: web}]}\n",
            "apiVersion: v1\nkind: Service\nmetadata: {name: web-v2, namespace: demo}\nspec: {selector: {app: web, v: \"2\"}, ports: [{name: http, port: 80, targetPort: 8080}]}\n",
            "",
        ],
        // A consumer route of namespace other for web.
        vec![
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: pin, namespace: other}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: web, namespace: demo, port: 80}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /pinned}}]\n    backendRefs: [{name: web-v1, namespace: demo, port: 80}]\n",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: pin, namespace: other}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: web, namespace: demo, port: 80}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /other}}]\n    backendRefs: [{name: web-v2, namespace: demo, port: 80}]\n",
            "",
        ],
        // A service whose port's protocol is detected.
        vec![
            "apiVersion: v1\nkind: Service\nmetadata: {name: cache, namespace: demo}\nspec: {selector: {app: db}, ports: [{port: 6379, targetPort: 5432}]}\n",
            "",
        ],
        // Two services claiming one ClusterIP (the first keeps the host).
        vec![
            "apiVersion: v1\nkind: Service\nmetadata: {name: alias, namespace: demo}\nspec: {clusterIP: 10.96.0.10, selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}\n",
            "apiVersion: v1\nkind: Service\nmetadata: {name: alias, namespace: demo}\nspec: {clusterIP: 10.96.0.11, selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}\n",
            "",
        ],
        vec![
            "apiVersion: v1\nkind: Service\nmetadata: {name: zz-alias, namespace: demo}\nspec: {clusterIP: 10.96.0.10, selector: {app: api}, ports: [{name: http, port: 80, targetPort: 8080}]}\n",
            "",
        ],
    ]
}

fn ir_of(slots: &[Vec<&str>], state: &[usize]) -> (Ir, Vec<Proxy>) {
    let mut text = FIXED.to_string();
    for (slot, &v) in slots.iter().zip(state) {
        if !slot[v].is_empty() {
            text.push_str("---\n");
            text.push_str(slot[v]);
        }
    }
    let (snap, _, _) = snapshot_of(vec![load_str("in.yaml", &text)]);
    let ir = build(&snap);
    let proxies = proxies_of(&ir);
    (ir, proxies)
}

/// A small deterministic generator (the sequence is the same on every run).
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

#[test]
fn every_generation_equals_a_cold_translation() {
    let slots = slots();
    let cx = Context::default();
    let mut state = vec![0; slots.len()];
    let mut tr = Translator::default();
    let mut rng = Lcg(7);
    let mut reused = 0;
    for step in 0..120 {
        if step > 0 {
            let s = rng.below(slots.len());
            state[s] = (state[s] + 1 + rng.below(slots[s].len() - 1)) % slots[s].len();
        }
        let (ir, proxies) = ir_of(&slots, &state);
        let cold = translate_all(&ir, &cx, &proxies);
        let warm = tr.translate(Arc::new(ir), &cx, &proxies);
        assert_eq!(warm.0.len(), cold.0.len(), "step {step} {state:?}");
        for (w, c) in warm.0.iter().zip(&cold.0) {
            assert_eq!(w, c, "step {step}, state {state:?}: {} differs", c.node_id);
        }
        assert_eq!(warm.1, cold.1, "step {step}: findings");
        reused += tr.stats().fragments_reused;
    }
    assert!(reused > 0, "the sequence never reused a fragment");
    // A trust domain change: nothing of the last generation is reused.
    let (ir, proxies) = ir_of(&slots, &state);
    let other = Context {
        trust_domain: "example.org".into(),
        ..Context::default()
    };
    let warm = tr.translate(Arc::new(ir.clone()), &other, &proxies);
    assert_eq!(warm, translate_all(&ir, &other, &proxies));
    assert_eq!(tr.stats().fragments_reused, 0);
    assert_eq!(tr.stats().clusters_reused, 0);
}

#[test]
fn a_weight_edit_rebuilds_only_the_split_root_in_each_view() {
    let slots = slots();
    let cx = Context::default();
    let mut tr = Translator::default();
    let mut state = vec![0; slots.len()];
    state[0] = 1;
    let (ir, proxies) = ir_of(&slots, &state);
    let services = ir.services.len();
    let views: BTreeSet<(String, String)> = proxies
        .iter()
        .map(|p| (p.namespace.clone(), p.identity.to_string()))
        .collect();
    assert!(views.len() < proxies.len(), "two proxies share a view");
    tr.translate(Arc::new(ir), &cx, &proxies);
    let first = tr.stats();
    assert_eq!(first.fragments_reused, 0);
    // Proxies of one view share its fragments in the first generation too.
    assert_eq!(first.fragments_built, views.len() * services);
    // Weights 0/100 → 100/0: only web's fragment of each view is rebuilt, no cluster.
    state[0] = 2;
    let (ir, proxies) = ir_of(&slots, &state);
    let (warm, _) = tr.translate(Arc::new(ir.clone()), &cx, &proxies);
    let st = tr.stats();
    assert_eq!(st.fragments_built, views.len(), "{st:?}");
    assert_eq!(st.fragments_reused, views.len() * (services - 1), "{st:?}");
    assert_eq!(st.clusters_built, 0, "{st:?}");
    assert!(st.clusters_reused > 0, "{st:?}");
    assert_eq!(warm, translate_all(&ir, &cx, &proxies).0);
}
