//! `meshbridge echo-server`: answers every request on every port it is given with a JSON
//! object naming the pod and the caller.
//!
//! A request may ask for a slower or failed answer (for tests and demos of the metrics):
//! `?delay_ms=N` waits N ms (at most 10 s) before answering, `?status=NNN` answers with that
//! status code (the same JSON body).
//!
//! Environment (set by `meshbridge local`): `MESHBRIDGE_LISTEN` (address, default
//! `127.0.0.1`), `MESHBRIDGE_PORTS` (comma-separated, default `8080`), `MESHBRIDGE_POD`,
//! `MESHBRIDGE_NAMESPACE`, `MESHBRIDGE_SERVICE_ACCOUNT`.

use crate::Error;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};
use std::sync::Arc;

pub struct EchoConfig {
    pub listen: String,
    pub ports: Vec<u16>,
    pub pod: String,
    pub namespace: String,
    pub service_account: String,
}

impl EchoConfig {
    pub fn from_env() -> Result<EchoConfig, Error> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let ports = match var("MESHBRIDGE_PORTS") {
            None => vec![8080],
            Some(s) => s
                .split(',')
                .map(|p| {
                    p.trim().parse::<u16>().map_err(|_| {
                        Error::EchoConfig(format!("MESHBRIDGE_PORTS: `{p}` is not a port"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(EchoConfig {
            listen: var("MESHBRIDGE_LISTEN").unwrap_or_else(|| "127.0.0.1".into()),
            ports,
            pod: var("MESHBRIDGE_POD").unwrap_or_default(),
            namespace: var("MESHBRIDGE_NAMESPACE").unwrap_or_default(),
            service_account: var("MESHBRIDGE_SERVICE_ACCOUNT").unwrap_or_default(),
        })
    }
}

/// The caller's identity: the `URI=` element of the last `x-forwarded-client-cert` entry.
pub fn caller_of(xfcc: Option<&str>) -> Option<String> {
    let last = xfcc?.rsplit(',').next()?;
    last.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("URI")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

async fn handle(
    cfg: Arc<EchoConfig>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut headers = serde_json::Map::new();
    // A header sent several times is one value, joined with ", " (RFC 9110 5.3).
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        let joined = match headers.get(k.as_str()).and_then(Value::as_str) {
            Some(prev) => format!("{prev}, {v}"),
            None => v,
        };
        headers.insert(k.as_str().to_string(), Value::String(joined));
    }
    let caller = caller_of(
        req.headers()
            .get("x-forwarded-client-cert")
            .and_then(|v| v.to_str().ok()),
    );
    let query = req.uri().query().unwrap_or("").to_string();
    let param = |k: &str| {
        query.split('&').find_map(|kv| {
            let (key, v) = kv.split_once('=')?;
            (key == k).then(|| v.parse::<u64>().ok()).flatten()
        })
    };
    let status = param("status")
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| hyper::StatusCode::from_u16(s).ok())
        .unwrap_or(hyper::StatusCode::OK);
    let delay = param("delay_ms").unwrap_or(0).min(10_000);
    // Drain the body (keep-alive needs it consumed).
    let _ = req.into_body().collect().await;
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let body = json!({
        "pod": cfg.pod,
        "namespace": cfg.namespace,
        "serviceAccount": cfg.service_account,
        "method": method,
        "path": path,
        "headers": headers,
        "caller": caller,
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Serves until the process is stopped.
pub async fn serve(cfg: EchoConfig) -> Result<(), Error> {
    let cfg = Arc::new(cfg);
    let mut tasks = Vec::new();
    for port in cfg.ports.clone() {
        let addr = format!("{}:{port}", cfg.listen);
        let l = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| Error::Bind {
                addr: addr.clone(),
                source,
            })?;
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = l.accept().await else {
                    continue;
                };
                let cfg = cfg.clone();
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let svc = hyper::service::service_fn(move |r| handle(cfg.clone(), r));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                });
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xfcc_uri() {
        assert_eq!(
            caller_of(Some(
                "By=spiffe://cluster.local/ns/a/sa/b;Hash=abc;URI=spiffe://cluster.local/ns/a/sa/c"
            )),
            Some("spiffe://cluster.local/ns/a/sa/c".into())
        );
        assert_eq!(caller_of(Some("Hash=abc")), None);
        assert_eq!(caller_of(None), None);
    }
}
