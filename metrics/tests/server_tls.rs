//! The HTTPS server as a Kubernetes aggregated API server sees it: the API paths answer only
//! a client certificate from the request-header CA (the kube-apiserver's front proxy);
//! probes answer anyone; a certificate from another CA does not get through the handshake.

use meshbridge_core::metrics::Window;
use meshbridge_metrics::{BoxFuture, Numbers, ServerTls, State, serve};
use meshbridge_test_support::pki::{ca, client_cert};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Empty;
impl Numbers for Empty {
    fn window(&self) -> BoxFuture<'_, Result<Window, String>> {
        Box::pin(async { Ok(Window::default()) })
    }
}

async fn get(
    port: u16,
    server_ca: &str,
    client: Option<&(String, String)>,
    path: &str,
) -> Result<u16, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(server_ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match client {
        Some((c, k)) => b
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(c.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("meshbridge.test").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: meshbridge.test\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))
}

#[tokio::test]
async fn only_the_front_proxy_reaches_the_api() {
    let front_proxy_ca = ca("front-proxy-ca");
    let other_ca = ca("someone-else");
    let tls = ServerTls::self_signed(
        vec!["meshbridge.test".into()],
        1,
        Some(front_proxy_ca.pem.clone()),
    )
    .unwrap();
    let server_cert = tls.cert_pem.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(serve(listener, Some(tls), State::new(Arc::new(Empty))));

    let proxy = client_cert(&front_proxy_ca);
    let api = "/apis/metrics.smi-spec.io/v1alpha1/namespaces";
    assert_eq!(get(port, &server_cert, Some(&proxy), api).await, Ok(200));
    assert_eq!(
        get(
            port,
            &server_cert,
            Some(&proxy),
            "/apis/metrics.smi-spec.io/v1alpha1"
        )
        .await,
        Ok(200)
    );
    // No client certificate: probes only.
    assert_eq!(get(port, &server_cert, None, api).await, Ok(401));
    assert_eq!(get(port, &server_cert, None, "/healthz").await, Ok(200));
    // A certificate of another CA: refused in the handshake (or its first read).
    let stranger = client_cert(&other_ca);
    assert!(
        get(port, &server_cert, Some(&stranger), api).await.is_err(),
        "a client certificate of another CA must not get an answer"
    );
    server.abort();
}
