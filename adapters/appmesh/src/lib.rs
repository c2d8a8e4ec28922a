//! meshbridge adapter for AWS App Mesh (end of support: 2026-09-30).
//!
//! One IR translation ([`desired_state`]) yields the App Mesh resources meshbridge wants;
//! it is rendered two ways:
//! - [`AppMeshAdapter`] (the pure [`Adapter`]): the App Mesh controller CRDs
//!   (`appmesh.k8s.aws/v1beta2` VirtualNode, VirtualRouter with inline routes,
//!   VirtualService) — what `meshbridge translate --mesh appmesh` prints;
//! - [`sync`] (cargo feature `aws`, on by default): the same resources driven straight
//!   through the App Mesh API with `aws-sdk-appmesh`, one mesh at a time;
//! - [`backend`] (feature `aws`): the API backend `meshbridge run --backend appmesh` uses —
//!   every App Mesh namespace's IR in, each App Mesh mesh synced, a typed report out (per
//!   remote resource what changed, per input object what failed or conflicted).
//!
//! Mapping, per TrafficSplit root (`svc` in `ns`):
//! - VirtualService `svc.ns.svc.<cluster domain>` provided by VirtualRouter `svc_ns`, one
//!   listener per root Service port (protocol from appProtocol / port name: http, http2
//!   (also gRPC) or tcp);
//! - a VirtualNode `<backend>_<ns>` per backend Service (DNS service discovery
//!   `<backend>.<ns>.svc.<cluster domain>`, listener = the backend's targetPort);
//! - routes: weights as whole percents (largest remainder) over at most 10 targets; A/B
//!   matches become one route per (match, method) with explicit priorities in SMI order,
//!   then a catch-all (priority 1000) to the root's own node.
//! - GAMMA route tables: one route per rule match (and method), priority = rule index, no
//!   catch-all (Envoy answers unmatched requests 404); query matches, timeouts and retry
//!   policies as route extras the CRDs render; rules App Mesh cannot express (filters, regex
//!   query matches, 500 rules) are left out whole and reported; consumer routes reported.
//!
//! App Mesh has no request-level authorization: TrafficTargets are reported, never faked.

#[cfg(feature = "aws")]
pub mod backend;
pub mod crd;
pub mod model;
pub mod plan;
#[cfg(feature = "aws")]
pub mod sync;
#[cfg(feature = "aws")]
mod wire;

pub use model::DesiredState;
pub use plan::desired_state;

use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::{Adapter, CapabilityMatrix, Context, Feature, Ir, Level, Translation};

#[derive(Clone, Debug, Default)]
pub struct AppMeshAdapter;

/// The App Mesh mesh to program: the `Mesh` object's `appMeshName`, if set (else the
/// backend's default mesh, `--appmesh-mesh`).
pub fn mesh_name(cx: &Context) -> Option<&str> {
    cx.mesh.as_ref().and_then(|m| m.app_mesh_name.as_deref())
}

/// The capability matrix (App Mesh has one API version; it does not depend on `cx`).
pub fn capabilities() -> CapabilityMatrix {
    CapabilityMatrix::new([
        (
            Feature::TrafficSplit,
            Level::Partial,
            "weights become whole percents (largest remainder; a share under 0.5% can round to 0), at most 10 weighted targets per route; DNS service discovery dials the targetPort, so Services should use port == targetPort; client VirtualNodes must list the VirtualService in their backends",
        ),
        (
            Feature::TrafficSplitMatches,
            Level::Partial,
            "HTTP ports only (one route per match and method, explicit priorities, catch-all to the root); on TCP ports the matches cannot apply and traffic goes to the root",
        ),
        (
            Feature::PathRouting,
            Level::Partial,
            "prefix, path.exact or path.regex (whole-path form of the start-anchored regex), at most 255 characters",
        ),
        (
            Feature::MethodRouting,
            Level::Partial,
            "one route per method (a route takes one method); only GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH",
        ),
        (
            Feature::HeaderRouting,
            Level::Partial,
            "at most 10 headers per match, names up to 50 characters, values up to 255",
        ),
        (
            Feature::HttpAccess,
            Level::None,
            "App Mesh has no request-level authorization (paths, methods, headers, sources); only client backends and listener TLS SAN validation exist",
        ),
        (
            Feature::TcpAccess,
            Level::None,
            "App Mesh has no per-source authorization without mTLS certificates (SPIRE or ACM PCA), which meshbridge does not manage",
        ),
        (
            Feature::UdpAccess,
            Level::None,
            "App Mesh does not carry UDP",
        ),
        (Feature::TcpRoutes, Level::Full, ""),
        (
            Feature::UdpRoutes,
            Level::None,
            "App Mesh does not carry UDP",
        ),
        (
            Feature::Metrics,
            Level::None,
            "App Mesh exposes Envoy stats / CloudWatch only; no TrafficMetrics API",
        ),
        (
            Feature::Mtls,
            Level::None,
            "listener TLS needs ACM PCA or SPIRE (SDS) certificates, which meshbridge does not manage",
        ),
        (
            Feature::RouteTables,
            Level::Partial,
            "one route per rule match (and method), priorities in rule order, no catch-all (Envoy answers unmatched requests 404); a rule App Mesh cannot express (filters, regex query matches, no positive-weight backend = 500) is left out whole, so its requests match a later rule or none; the API backend also leaves out routes with query matches",
        ),
        (
            Feature::QueryRouting,
            Level::Partial,
            "queryParameters match exact values only (at most 10): a rule with a regex query match is left out; CRD output only (the API backend leaves such routes out)",
        ),
        (
            Feature::HeaderModifiers,
            Level::None,
            "App Mesh virtual routes cannot modify request or response headers: the rule is left out",
        ),
        (
            Feature::UrlRewrite,
            Level::None,
            "App Mesh virtual routes cannot rewrite URLs (only gateway routes can): the rule is left out",
        ),
        (
            Feature::Redirects,
            Level::None,
            "App Mesh virtual routes cannot answer redirects: the rule is left out",
        ),
        (
            Feature::Timeouts,
            Level::Partial,
            "timeout.perRequest (the request timeout, or the per-try timeout when there are no retries); CRD output only (the API backend keeps App Mesh's defaults)",
        ),
        (
            Feature::Retries,
            Level::Partial,
            "retryPolicy by event, not status code (server-error 5xx, gateway-error 502-504, client-error 409; connection errors always), no backoff setting, a per-retry timeout is required (15s when the rule gives none); CRD output only",
        ),
        (
            Feature::ConsumerRoutes,
            Level::None,
            "App Mesh routes are per VirtualRouter, the same for every client: no per-client-namespace routing",
        ),
    ])
}

impl Adapter for AppMeshAdapter {
    fn mesh_type(&self) -> MeshType {
        MeshType::AppMesh
    }

    fn capabilities(&self, _cx: &Context) -> CapabilityMatrix {
        capabilities()
    }

    fn translate(&self, ir: &Ir, cx: &Context) -> Translation {
        crd::render(&desired_state(ir, cx), cx)
    }
}
