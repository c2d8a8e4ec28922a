//! Served traffic metrics: the TrafficMetrics API (`metrics.smi-spec.io/v1alpha1`) and the
//! web dashboard over HTTP or HTTPS ([`server`]), from whichever [`Numbers`] the runtime
//! has — the built-in mesh's sidecars ([`Recorded`]), or a mesh's Prometheus
//! ([`prometheus`]). The documents themselves are core's ([`meshbridge_core::metrics`]);
//! this crate only moves them.
//!
//! Library code: no runtime of its own, the caller's tokio runtime runs every future.

pub mod http;
pub mod prometheus;
pub mod server;

use meshbridge_core::metrics::dashboard::Model;
use meshbridge_core::metrics::{Recorder, Window};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

pub use server::{ServeError, ServerTls, serve};

/// A boxed future (the trait below is object safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the numbers come from.
pub trait Numbers: Send + Sync {
    /// What was observed over the last window.
    fn window(&self) -> BoxFuture<'_, Result<Window, String>>;
}

/// Numbers a runtime records itself (the built-in mesh: each sidecar's cumulative counters,
/// read by the runtime), with the pods known to exist.
pub struct Recorded {
    pub recorder: Mutex<Recorder>,
    pub inventory: RwLock<Vec<meshbridge_core::metrics::Peer>>,
    /// Window length in ms.
    pub window_ms: u64,
}

impl Recorded {
    pub fn new(window_ms: u64) -> Recorded {
        Recorded {
            recorder: Mutex::new(Recorder::new(window_ms)),
            inventory: RwLock::new(vec![]),
            window_ms,
        }
    }
}

/// Unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Numbers for Recorded {
    fn window(&self) -> BoxFuture<'_, Result<Window, String>> {
        let now = now_ms();
        let edges = self
            .recorder
            .lock()
            .map(|r| r.window(now))
            .unwrap_or_default();
        let inventory = self.inventory.read().map(|i| i.clone()).unwrap_or_default();
        Box::pin(async move {
            Ok(Window {
                timestamp: meshbridge_core::metrics::rfc3339(now),
                seconds: self.window_ms / 1000,
                edges,
                inventory,
            })
        })
    }
}

/// No numbers, and why (a backend that has no source of them, a missing flag): every
/// request is answered 503 with the reason.
pub struct Unavailable(pub String);

impl Numbers for Unavailable {
    fn window(&self) -> BoxFuture<'_, Result<Window, String>> {
        Box::pin(async move { Err(self.0.clone()) })
    }
}

/// Several sources in one (a runtime programming several meshes): their edges and
/// inventories together. A source that fails fails the whole answer (a partial answer
/// would under-count without saying so).
pub struct Merged(pub Vec<Arc<dyn Numbers>>);

impl Numbers for Merged {
    fn window(&self) -> BoxFuture<'_, Result<Window, String>> {
        Box::pin(async move {
            let mut out = Window::default();
            for n in &self.0 {
                let w = n.window().await?;
                if out.timestamp.is_empty() || w.timestamp > out.timestamp {
                    out.timestamp = w.timestamp;
                }
                out.seconds = out.seconds.max(w.seconds);
                out.edges.extend(w.edges);
                out.inventory.extend(w.inventory);
            }
            out.inventory.sort();
            out.inventory.dedup();
            Ok(out)
        })
    }
}

/// What the server serves: the dashboard's configuration side (replaced by the runtime when
/// its inputs change) and the numbers.
pub struct State {
    pub model: RwLock<Model>,
    pub numbers: Arc<dyn Numbers>,
}

impl State {
    pub fn new(numbers: Arc<dyn Numbers>) -> Arc<State> {
        Arc::new(State {
            model: RwLock::new(Model::default()),
            numbers,
        })
    }

    /// Replaces the dashboard's configuration side.
    pub fn set_model(&self, m: Model) {
        if let Ok(mut g) = self.model.write() {
            *g = m;
        }
    }
}
