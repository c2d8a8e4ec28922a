//! Envoy bootstrap for one sidecar: node identity, admin address, and ADS over mTLS to the
//! control plane (client certificate = the proxy's identity, server name checked).

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
}

impl Bootstrap<'_> {
    pub fn to_json(&self) -> Value {
        let file = |p: &Path| json!({"filename": p.display().to_string()});
        json!({
            "node": {"id": self.node_id, "cluster": self.cluster},
            "admin": {"address": {"socketAddress": {"address": self.admin_ip, "portValue": self.admin_port}}},
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
                    "commonTlsContext": {
                        "alpnProtocols": ["h2"],
                        "tlsCertificates": [{"certificateChain": file(self.cert), "privateKey": file(self.key)}],
                        "validationContext": {
                            "trustedCa": file(self.ca),
                            "matchTypedSubjectAltNames": [{"sanType": "DNS", "matcher": {"exact": crate::ca::XDS_SERVER_NAME}}],
                        },
                    },
                }},
            }]},
        })
    }
}
