//! The built-in mesh's numbers under `meshbridge local`: every sidecar's admin statistics
//! are read once per scrape interval (Envoy's own counters and latency histograms, turned
//! into edges by [`meshbridge_envoy::stats`]) into a recorder, and served — the
//! TrafficMetrics API and the dashboard — on the UI address.

use crate::Error;
use crate::pods::PodSpec;
use meshbridge_core::metrics::dashboard::Model;
use meshbridge_core::metrics::{Owner, Peer};
use meshbridge_envoy::stats::{CLUSTERS_PATH, Resolve, STATS_PATH, edges_of};
use meshbridge_metrics::{Recorded, State, http::get, now_ms};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A sidecar to read: its node id, admin base URL and the pod it is.
#[derive(Clone, Debug)]
struct Target {
    node: String,
    admin: String,
    peer: Peer,
}

#[derive(Default)]
struct Targets {
    list: Vec<Target>,
    by_ip: HashMap<String, Peer>,
    /// The pods each Service (namespace, name) selects.
    by_service: HashMap<(String, String), Vec<Peer>>,
}

/// The served metrics and dashboard of one `meshbridge local up`.
pub(crate) struct Ui {
    pub(crate) addr: SocketAddr,
    state: Arc<State>,
    recorded: Arc<Recorded>,
    targets: Arc<RwLock<Targets>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The pod as a traffic peer.
pub(crate) fn peer_of(spec: &PodSpec) -> Peer {
    Peer::pod(
        &spec.namespace,
        &spec.name,
        spec.owner.as_ref().map(|(kind, name)| Owner {
            kind: kind.clone(),
            name: name.clone(),
        }),
    )
}

impl Ui {
    /// Binds `addr` and serves; scrapes every sidecar each `interval`, keeping `window`.
    pub(crate) async fn start(
        addr: &str,
        interval: Duration,
        window: Duration,
    ) -> Result<Ui, Error> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(crate::error::os("the UI address"))?;
        let recorded = Arc::new(Recorded::new(window.as_millis() as u64));
        let state = State::new(recorded.clone());
        let targets = Arc::new(RwLock::new(Targets::default()));
        let serve = {
            let state = state.clone();
            tokio::spawn(async move {
                if let Err(e) = meshbridge_metrics::serve(listener, None, state).await {
                    eprintln!("meshbridge local: UI server: {e}");
                }
            })
        };
        let scrape = tokio::spawn(scrape_loop(targets.clone(), recorded.clone(), interval));
        Ok(Ui {
            addr,
            state,
            recorded,
            targets,
            tasks: vec![serve, scrape],
        })
    }

    /// The pods now running (`(node, pod address, spec)`), the Services of the IR and the
    /// configuration's model.
    pub(crate) fn update<'a>(
        &self,
        pods: impl Iterator<Item = (&'a String, &'a str, &'a PodSpec)>,
        ir: &meshbridge_core::Ir,
        model: Model,
    ) {
        let mut t = Targets::default();
        for (node, ip, spec) in pods {
            let peer = peer_of(spec);
            for s in ir.services_in(&spec.namespace) {
                if !s.selector.is_empty() && meshbridge_core::ir::selects(&s.selector, &spec.labels)
                {
                    t.by_service
                        .entry((s.key.namespace.clone(), s.key.name.clone()))
                        .or_default()
                        .push(peer.clone());
                }
            }
            t.by_ip.insert(ip.to_string(), peer.clone());
            t.list.push(Target {
                node: node.clone(),
                admin: format!("http://{ip}:{}", meshbridge_envoy::sidecar::ADMIN_PORT),
                peer,
            });
        }
        if let Ok(mut inv) = self.recorded.inventory.write() {
            *inv = t.list.iter().map(|x| x.peer.clone()).collect();
        }
        if let Ok(mut r) = self.recorded.recorder.lock() {
            r.retain(|n| t.list.iter().any(|x| x.node == n));
        }
        if let Ok(mut g) = self.targets.write() {
            *g = t;
        }
        self.state.set_model(model);
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn scrape_loop(targets: Arc<RwLock<Targets>>, recorded: Arc<Recorded>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (list, by_ip, by_service) = match targets.read() {
            Ok(t) => (
                t.list.clone(),
                Arc::new(t.by_ip.clone()),
                Arc::new(t.by_service.clone()),
            ),
            Err(_) => return,
        };
        let mut set = tokio::task::JoinSet::new();
        for t in list {
            let by_ip = by_ip.clone();
            let by_service = by_service.clone();
            set.spawn(async move {
                let timeout = Duration::from_millis(800);
                let stats = get(&format!("{}{STATS_PATH}", t.admin), timeout)
                    .await
                    .ok()?;
                let clusters = get(&format!("{}{CLUSTERS_PATH}", t.admin), timeout)
                    .await
                    .ok()?;
                // A sidecar not answering (starting, stopping) is read next time; an answer
                // that does not parse is said.
                let parse = |what: &str, b: &[u8]| {
                    serde_json::from_slice::<serde_json::Value>(b)
                        .map_err(|e| {
                            eprintln!("meshbridge local: statistics of {}: {what}: {e}", t.node)
                        })
                        .ok()
                };
                let stats = parse("/stats", &stats)?;
                let clusters = parse("/clusters", &clusters)?;
                let pod_at = |ip: &str| by_ip.get(ip).cloned();
                let service_pods = |ns: &str, svc: &str| {
                    by_service
                        .get(&(ns.to_string(), svc.to_string()))
                        .cloned()
                        .unwrap_or_default()
                };
                let resolve = Resolve {
                    pod_at: &pod_at,
                    service_pods: &service_pods,
                };
                match edges_of(&t.peer, &stats, &clusters, &resolve) {
                    Ok(e) => Some((t.node, now_ms(), e)),
                    Err(e) => {
                        eprintln!("meshbridge local: statistics of {}: {e}", t.node);
                        None
                    }
                }
            });
        }
        while let Some(r) = set.join_next().await {
            if let Ok(Some((node, at, edges))) = r
                && let Ok(mut rec) = recorded.recorder.lock()
            {
                rec.record(&node, at, edges);
            }
        }
    }
}
