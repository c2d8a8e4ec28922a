//! Envoy bootstrap for one sidecar: node identity, admin address, and ADS over mTLS to the
//! control plane (client certificate = the proxy's identity, server name checked).
//!
//! With [`Bootstrap::sds`] set, the xDS client certificate comes from a file-based SDS
//! secret (Envoy's "certificate rotation for xDS gRPC connection"): Envoy watches the
//! secret's directory and reloads the certificate and key when a new pair is moved in, so
//! the control plane can rotate the certificate of a running sidecar.

use serde_json::{Value, json};
use std::path::Path;

pub struct Bootstrap<'a> {
    pub node_id: &'a str,
    pub cluster: &'a str,
    pub admin_ip: &'a str,
    pub admin_port: u16,
    pub xds_ip: &'a str,
    pub xds_port: u16,
    /// Client certificate, key and CA bundle files for the xDS connection.
    pub cert: &'a Path,
    pub key: &'a Path,
    pub ca: &'a Path,
    /// Delta (incremental) xDS instead of state of the world.
    pub delta: bool,
    /// File-based SDS secret (see [`Bootstrap::sds_secret`]) for the client certificate;
    /// `cert` and `key` must be in the same directory, which Envoy watches.
    pub sds: Option<&'a Path>,
}

/// SDS name of the xDS client certificate.
pub const XDS_CLIENT_SECRET: &str = "xds-client";

impl Bootstrap<'_> {
    fn watched_dir(&self) -> String {
        self.cert
            .parent()
            .unwrap_or(Path::new("."))
            .display()
            .to_string()
    }

    /// The content of the SDS file: one `Secret` naming the certificate and key files,
    /// reloaded when a file is moved into their directory.
    pub fn sds_secret(&self) -> Value {
        json!({"resources": [{
            "@type": crate::proto::SECRET,
            "name": XDS_CLIENT_SECRET,
            "tlsCertificate": {
                "certificateChain": {"filename": self.cert.display().to_string()},
                "privateKey": {"filename": self.key.display().to_string()},
                "watchedDirectory": {"path": self.watched_dir()},
            },
        }]})
    }

    pub fn to_json(&self) -> Value {
        let file = |p: &Path| json!({"filename": p.display().to_string()});
        let mut tls = json!({
            "alpnProtocols": ["h2"],
            "validationContext": {
                "trustedCa": file(self.ca),
                "matchTypedSubjectAltNames": [{"sanType": "DNS", "matcher": {"exact": crate::ca::XDS_SERVER_NAME}}],
            },
        });
        match self.sds {
            Some(sds) => {
                tls["tlsCertificateSdsSecretConfigs"] = json!([{
                    "name": XDS_CLIENT_SECRET,
                    "sdsConfig": {
                        "pathConfigSource": {
                            "path": sds.display().to_string(),
                            "watchedDirectory": {"path": self.watched_dir()},
                        },
                        "resourceApiVersion": "V3",
                    },
                }]);
            }
            None => {
                tls["tlsCertificates"] =
                    json!([{"certificateChain": file(self.cert), "privateKey": file(self.key)}]);
            }
        }
        json!({
            "node": {"id": self.node_id, "cluster": self.cluster},
            "admin": {"address": {"socketAddress": {"address": self.admin_ip, "portValue": self.admin_port}}},
            // Histograms reach the admin interface (what the metrics are read from) at
            // each flush: every second rather than Envoy's default five.
            "statsFlushInterval": "1s",
            "dynamicResources": {
                "adsConfig": {
                    "apiType": if self.delta { "DELTA_GRPC" } else { "GRPC" },
                    "transportApiVersion": "V3",
                    "setNodeOnFirstMessageOnly": true,
                    "grpcServices": [{"envoyGrpc": {
                        "clusterName": "xds",
                        "retryPolicy": {"retryBackOff": {"baseInterval": "0.05s", "maxInterval": "0.5s"}},
                    }}],
                },
                "cdsConfig": {"ads": {}, "resourceApiVersion": "V3"},
                "ldsConfig": {"ads": {}, "resourceApiVersion": "V3"},
            },
            "staticResources": {"clusters": [{
                "name": "xds",
                "type": "STATIC",
                "connectTimeout": "1s",
                "typedExtensionProtocolOptions": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicitHttpConfig": {"http2ProtocolOptions": {
                        "connectionKeepalive": {"interval": "5s", "timeout": "5s"}
                    }},
                }},
                "loadAssignment": {"clusterName": "xds", "endpoints": [{"lbEndpoints": [{"endpoint": {"address": {"socketAddress": {"address": self.xds_ip, "portValue": self.xds_port}}}}]}]},
                "transportSocket": {"name": "envoy.transport_sockets.tls", "typedConfig": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "sni": crate::ca::XDS_SERVER_NAME,
                    "commonTlsContext": tls,
                }},
            }]},
        })
    }
}
