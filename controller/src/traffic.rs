//! What `meshbridge run` serves of the traffic it programs: the TrafficMetrics API as a
//! Kubernetes aggregated API server (HTTPS on `--traffic-metrics-addr`, the APIService
//! `v1alpha1.metrics.smi-spec.io` points at it) and, when asked, the web dashboard over plain
//! HTTP on `--ui-addr` (meant for `kubectl port-forward`: the chart binds it to the pod's
//! loopback). Both read the same numbers (the binary chooses them: a mesh's Prometheus) and
//! the same configuration model, refreshed by the reconciler after each pass.
//!
//! Authentication of the aggregated API: only the kube-apiserver's front proxy may call it —
//! a client certificate signed by the request-header client CA, read from
//! `--traffic-metrics-client-ca` or else from the `kube-system/extension-apiserver-authentication`
//! ConfigMap (`requestheader-client-ca-file`), as every aggregated API server does. Without that
//! CA the server does not start (it would otherwise answer anyone on the network).

use crate::run::RunArgs;
use crate::{Error, Result};
use meshbridge_metrics::{Numbers, ServerTls, State, Unavailable};
use std::sync::Arc;

/// The ConfigMap the kube-apiserver publishes its front-proxy client CA in.
pub const AUTH_CONFIGMAP: (&str, &str) = ("kube-system", "extension-apiserver-authentication");
pub const CLIENT_CA_KEY: &str = "requestheader-client-ca-file";

fn read(path: &str, flag: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Usage(format!("{flag} {path}: {e}")))
}

async fn client_ca(args: &RunArgs, client: Option<&kube::Client>) -> Result<String> {
    if let Some(p) = &args.traffic_metrics_client_ca {
        return read(p, "--traffic-metrics-client-ca");
    }
    let Some(c) = client else {
        return Err(Error::Usage(
            "--traffic-metrics-addr needs the request-header client CA of the API server: give --traffic-metrics-client-ca FILE (no cluster to read it from)".into(),
        ));
    };
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(c.clone(), AUTH_CONFIGMAP.0);
    let cm = api.get(AUTH_CONFIGMAP.1).await.map_err(|e| {
        Error::Kube(format!(
            "--traffic-metrics-addr: cannot read ConfigMap {}/{} (the request-header client CA): {e}",
            AUTH_CONFIGMAP.0, AUTH_CONFIGMAP.1
        ))
    })?;
    cm.data
        .and_then(|mut d| d.remove(CLIENT_CA_KEY))
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            Error::Kube(format!(
                "--traffic-metrics-addr: ConfigMap {}/{} has no `{CLIENT_CA_KEY}`: the API server is not configured for aggregated APIs (--requestheader-client-ca-file)",
                AUTH_CONFIGMAP.0, AUTH_CONFIGMAP.1
            ))
        })
}

/// The address actually bound (port 0 picks one).
fn local(l: &tokio::net::TcpListener, asked: &str) -> String {
    l.local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| asked.to_string())
}

async fn bind(addr: &str, flag: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::Usage(format!(
            "{flag} {addr}: cannot listen: {e} (choose another address, or `off`)"
        ))
    })
}

/// Binds and starts what the flags ask for; `None` when both are `off`. `numbers` is the
/// binary's choice (`None`: nothing can produce numbers for these backends, and the reason).
pub async fn start(
    args: &RunArgs,
    client: Option<&kube::Client>,
    controller_ns: &str,
    numbers: std::result::Result<Arc<dyn Numbers>, String>,
) -> Result<Option<Arc<State>>> {
    let api_on = args.traffic_metrics_addr != "off";
    let ui_on = args.ui_addr != "off";
    if !api_on && !ui_on {
        return Ok(None);
    }
    let numbers = numbers.unwrap_or_else(|why| Arc::new(Unavailable(why)));
    let state = State::new(numbers);
    if api_on {
        let listener = bind(&args.traffic_metrics_addr, "--traffic-metrics-addr").await?;
        let ca = client_ca(args, client).await?;
        let tls = match (&args.traffic_metrics_cert, &args.traffic_metrics_key) {
            (Some(c), Some(k)) => ServerTls {
                cert_pem: read(c, "--traffic-metrics-cert")?,
                key_pem: read(k, "--traffic-metrics-key")?,
                client_ca_pem: Some(ca),
            },
            (None, None) => {
                let svc = &args.traffic_metrics_service;
                ServerTls::self_signed(
                    vec![
                        format!("{svc}.{controller_ns}.svc"),
                        format!("{svc}.{controller_ns}.svc.{}", args.cluster_domain),
                    ],
                    365,
                    Some(ca),
                )
                .map_err(|e| Error::Usage(format!("--traffic-metrics-addr: {e}")))?
            }
            _ => {
                return Err(Error::Usage(
                    "--traffic-metrics-cert and --traffic-metrics-key go together".into(),
                ));
            }
        };
        let s = state.clone();
        let addr = local(&listener, &args.traffic_metrics_addr);
        let a = addr.clone();
        tokio::spawn(async move {
            if let Err(e) = meshbridge_metrics::serve(listener, Some(tls), s).await {
                tracing::error!(addr = %a, "TrafficMetrics API server: {e}");
            }
        });
        tracing::info!(%addr, "serving the TrafficMetrics API (HTTPS, front-proxy client certificates)");
    }
    if ui_on {
        let listener = bind(&args.ui_addr, "--ui-addr").await?;
        let s = state.clone();
        let addr = local(&listener, &args.ui_addr);
        let a = addr.clone();
        tokio::spawn(async move {
            if let Err(e) = meshbridge_metrics::serve(listener, None, s).await {
                tracing::error!(addr = %a, "dashboard server: {e}");
            }
        });
        tracing::info!(%addr, "serving the dashboard (plain HTTP; reach it with kubectl port-forward)");
    }
    Ok(Some(state))
}
