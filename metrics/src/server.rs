//! The HTTP(S) server: the TrafficMetrics API below [`PREFIX`], its discovery documents, and
//! the dashboard (page, script, style, and its JSON at `/api/dashboard`).
//!
//! Over HTTPS as a Kubernetes aggregated API server, the API paths answer only clients that
//! present a certificate signed by the request-header client CA (the kube-apiserver's
//! front proxy: its `requestheader-client-ca-file`, published in the
//! `kube-system/extension-apiserver-authentication` ConfigMap); `/healthz` and `/readyz`
//! answer anyone (probes). The kube-apiserver has authorized the user for the resource
//! (RBAC on `metrics.smi-spec.io`) before it proxies the request.

use crate::State;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use meshbridge_core::metrics::api::{GROUP, GROUP_VERSION, PREFIX, VERSION, answer};
use meshbridge_core::metrics::dashboard::dashboard;
use serde_json::{Value, json};
use std::sync::Arc;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const DASHBOARD_JS: &str = include_str!("../assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../assets/dashboard.css");

/// TLS of the server: its certificate and key (PEM), and the CA whose client certificates
/// may call the API paths (`None`: any client may).
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: Option<String>,
}

impl ServerTls {
    /// A self-signed serving certificate for `names` (DNS names), valid for `days`, and
    /// `client_ca_pem`. A Kubernetes APIService then sets `insecureSkipTLSVerify` (as
    /// metrics-server's does) or carries the certificate as its `caBundle`.
    pub fn self_signed(
        names: Vec<String>,
        days: u32,
        client_ca_pem: Option<String>,
    ) -> Result<ServerTls, ServeError> {
        let mut params =
            rcgen::CertificateParams::new(names).map_err(|e| ServeError::Tls(e.to_string()))?;
        let now = std::time::SystemTime::now();
        params.not_before = now.into();
        params.not_after = (now + std::time::Duration::from_secs(u64::from(days) * 86400)).into();
        let key = rcgen::KeyPair::generate().map_err(|e| ServeError::Tls(e.to_string()))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| ServeError::Tls(e.to_string()))?;
        Ok(ServerTls {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            client_ca_pem,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS: {0}")]
    Tls(String),
    #[error("accept: {0}")]
    Accept(std::io::Error),
}

fn tls_config(t: &ServerTls) -> Result<rustls::ServerConfig, ServeError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: &dyn std::fmt::Display| ServeError::Tls(e.to_string());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(t.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_slice(t.key_pem.as_bytes()).map_err(|e| bad(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?;
    let builder = match &t.client_ca_pem {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| bad(&e))?;
            builder.with_client_cert_verifier(v)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| bad(&e))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Serves `state` on `listener` (plain HTTP when `tls` is `None`) until the future is
/// dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<ServerTls>,
    state: Arc<State>,
) -> Result<(), ServeError> {
    let require_client = tls.as_ref().is_some_and(|t| t.client_ca_pem.is_some());
    let acceptor = match &tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(t)?))),
        None => None,
    };
    loop {
        let (stream, _) = listener.accept().await.map_err(ServeError::Accept)?;
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => connection(stream, state, true).await,
                Some(a) => {
                    let Ok(s) = a.accept(stream).await else {
                        return;
                    };
                    let verified = !require_client
                        || s.get_ref()
                            .1
                            .peer_certificates()
                            .is_some_and(|c| !c.is_empty());
                    connection(s, state, verified).await;
                }
            }
        });
    }
}

async fn connection<S>(io: S, state: Arc<State>, client_verified: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&state, req, client_verified).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
        .await;
}

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(Full::new(body.into()))
        .unwrap_or_default()
}

fn json_reply(status: u16, v: &Value) -> Response<Full<Bytes>> {
    reply(status, "application/json", v.to_string())
}

/// The `APIGroup` discovery document.
fn api_group() -> Value {
    let gv = json!({"groupVersion": GROUP_VERSION, "version": VERSION});
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": [gv], "preferredVersion": gv})
}

async fn handle(
    state: &State,
    req: Request<Incoming>,
    client_verified: bool,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return json_reply(
            405,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "MethodNotAllowed",
                "code": 405, "message": "TrafficMetrics are read-only: get and list only"}),
        );
    }
    match path.as_str() {
        "/healthz" | "/readyz" | "/livez" => return reply(200, "text/plain", "ok"),
        _ => {}
    }
    let is_api = path == "/apis" || path.starts_with("/apis/");
    if is_api && !client_verified {
        return json_reply(
            401,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Unauthorized", "code": 401,
                "message": "a client certificate from the request-header CA is required (call this API through the Kubernetes API server)"}),
        );
    }
    match path.as_str() {
        "/" | "/index.html" => reply(200, "text/html; charset=utf-8", INDEX_HTML),
        "/dashboard.js" => reply(200, "text/javascript; charset=utf-8", DASHBOARD_JS),
        "/dashboard.css" => reply(200, "text/css; charset=utf-8", DASHBOARD_CSS),
        "/api/dashboard" => match state.numbers.window().await {
            Ok(w) => {
                let m = state.model.read().map(|m| m.clone()).unwrap_or_default();
                json_reply(200, &dashboard(&m, &w))
            }
            Err(e) => json_reply(503, &json!({"error": e})),
        },
        "/apis" => json_reply(
            200,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group()]}),
        ),
        p if p == format!("/apis/{GROUP}") || p == format!("/apis/{GROUP}/") => {
            json_reply(200, &api_group())
        }
        p if p.starts_with(PREFIX)
            && (p.len() == PREFIX.len() || p.as_bytes()[PREFIX.len()] == b'/') =>
        {
            match state.numbers.window().await {
                Ok(w) => match answer(&p[PREFIX.len()..], &w) {
                    Ok(v) => json_reply(200, &v),
                    Err(e) => json_reply(e.code, &e.to_status()),
                },
                Err(e) => json_reply(
                    503,
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "ServiceUnavailable",
                        "code": 503, "message": format!("metrics are not available: {e}")}),
                ),
            }
        }
        _ => json_reply(
            404,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                "message": format!("the server could not find the requested resource ({path})")}),
        ),
    }
}
