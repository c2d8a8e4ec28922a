//! Prometheus metrics (text exposition format 0.0.4) and the `/metrics`, `/healthz`,
//! `/readyz` HTTP endpoints.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Upper bounds (seconds) of the reconcile-duration histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Object counts per state (set after each reconcile).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectCounts {
    pub accepted: u64,
    pub invalid: u64,
    pub unresolved: u64,
    pub last_good: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub reconciles: AtomicU64,
    pub reconcile_errors: AtomicU64,
    pub outputs_applied: AtomicU64,
    pub outputs_deleted: AtomicU64,
    pub output_conflicts: AtomicU64,
    /// Outputs whose last write failed, plus API-programmed meshes whose last sync failed.
    pub write_failures: AtomicU64,
    pub status_writes: AtomicU64,
    pub errors: AtomicU64,
    pub inputs: AtomicU64,
    pub outputs_desired: AtomicU64,
    pub leader: AtomicBool,
    pub synced: AtomicBool,
    objects: Mutex<ObjectCounts>,
    duration: Mutex<Histogram>,
}

impl Metrics {
    pub fn observe_reconcile(&self, seconds: f64) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        let mut h = self.duration.lock().unwrap_or_else(|e| e.into_inner());
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    pub fn set_objects(&self, c: ObjectCounts) {
        *self.objects.lock().unwrap_or_else(|e| e.into_inner()) = c;
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let counter = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let gauge = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut s,
            "meshbridge_reconciles_total",
            "Reconcile passes run.",
            l(&self.reconciles),
        );
        counter(
            &mut s,
            "meshbridge_reconcile_errors_total",
            "Reconcile passes that ended with an error.",
            l(&self.reconcile_errors),
        );
        let _ = writeln!(
            s,
            "# HELP meshbridge_outputs_written_total Output objects written to the sink, by operation.\n# TYPE meshbridge_outputs_written_total counter"
        );
        let _ = writeln!(
            s,
            "meshbridge_outputs_written_total{{op=\"apply\"}} {}",
            l(&self.outputs_applied)
        );
        let _ = writeln!(
            s,
            "meshbridge_outputs_written_total{{op=\"delete\"}} {}",
            l(&self.outputs_deleted)
        );
        gauge(
            &mut s,
            "meshbridge_output_conflicts",
            "Outputs not written because an object not managed by meshbridge has the name.",
            l(&self.output_conflicts),
        );
        gauge(
            &mut s,
            "meshbridge_output_write_failures",
            "Outputs whose last write failed (and API-programmed meshes whose last sync failed); /readyz fails while it is not 0.",
            l(&self.write_failures),
        );
        counter(
            &mut s,
            "meshbridge_status_writes_total",
            "Status patches and Events written on input objects.",
            l(&self.status_writes),
        );
        counter(
            &mut s,
            "meshbridge_errors_total",
            "API or I/O errors.",
            l(&self.errors),
        );
        gauge(
            &mut s,
            "meshbridge_inputs",
            "Input objects held.",
            l(&self.inputs),
        );
        gauge(
            &mut s,
            "meshbridge_outputs_desired",
            "Output objects desired.",
            l(&self.outputs_desired),
        );
        gauge(
            &mut s,
            "meshbridge_leader",
            "1 when this replica holds the leader Lease.",
            self.leader.load(Ordering::Relaxed) as u64,
        );
        let c = *self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            s,
            "# HELP meshbridge_objects SMI input objects by state.\n# TYPE meshbridge_objects gauge"
        );
        for (state, v) in [
            ("accepted", c.accepted),
            ("invalid", c.invalid),
            ("unresolved", c.unresolved),
            ("last_good", c.last_good),
        ] {
            let _ = writeln!(s, "meshbridge_objects{{state=\"{state}\"}} {v}");
        }
        let h = self.duration.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            s,
            "# HELP meshbridge_reconcile_duration_seconds Time of one reconcile pass.\n# TYPE meshbridge_reconcile_duration_seconds histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "meshbridge_reconcile_duration_seconds_bucket{{le=\"{b}\"}} {}",
                h.counts[i]
            );
        }
        let _ = writeln!(
            s,
            "meshbridge_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(s, "meshbridge_reconcile_duration_seconds_sum {}", h.sum);
        let _ = writeln!(s, "meshbridge_reconcile_duration_seconds_count {}", h.count);
        s
    }
}

/// Serves `/metrics`, `/healthz` (the process is running) and `/readyz` (the initial sync
/// is done and every output could be written) until the listener fails. A minimal HTTP/1.1 GET responder: no keep-alive.
pub async fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let mut n = 0;
            // Read until the end of the request head (or the buffer is full).
            while n < buf.len() {
                match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    sock.read(&mut buf[n..]),
                )
                .await
                {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(k)) => {
                        n += k;
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let mut parts = head.split_whitespace();
            let method = parts.next().unwrap_or("");
            let path = parts.next().unwrap_or("");
            let (code, ctype, body) = respond(method, path, &metrics);
            let resp = format!(
                "HTTP/1.1 {code}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

fn respond(method: &str, path: &str, m: &Metrics) -> (&'static str, &'static str, String) {
    let path = path.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".into(),
        );
    }
    match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", m.render()),
        "/healthz" | "/livez" => ("200 OK", "text/plain", "ok\n".into()),
        "/readyz" => {
            let failing = m.write_failures.load(Ordering::Relaxed);
            if !m.synced.load(Ordering::Relaxed) {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    "initial sync in progress\n".into(),
                )
            } else if failing > 0 {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    format!(
                        "{failing} output(s) cannot be written (retrying): see the `OutputsWritten` condition of the Mesh objects and the controller log\n"
                    ),
                )
            } else {
                ("200 OK", "text/plain", "ok\n".into())
            }
        }
        _ => ("404 Not Found", "text/plain", "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints() {
        let m = std::sync::Arc::new(Metrics::default());
        m.observe_reconcile(0.003);
        m.outputs_applied.fetch_add(2, Ordering::Relaxed);
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve(l, m.clone()));
        let get = |p: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {p} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let metrics = get("/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(
            metrics.contains("meshbridge_reconciles_total 1\n"),
            "{metrics}"
        );
        assert!(metrics.contains("meshbridge_outputs_written_total{op=\"apply\"} 2\n"));
        assert!(
            metrics.contains("meshbridge_reconcile_duration_seconds_bucket{le=\"0.0025\"} 0\n")
        );
        assert!(metrics.contains("meshbridge_reconcile_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        m.synced.store(true, Ordering::Relaxed);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        // A sink that cannot write makes the replica unready, saying why.
        m.write_failures.store(2, Ordering::Relaxed);
        let r = get("/readyz").await;
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.contains("2 output(s) cannot be written"), "{r}");
        assert!(
            get("/metrics")
                .await
                .contains("meshbridge_output_write_failures 2\n")
        );
        m.write_failures.store(0, Ordering::Relaxed);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    }
}
