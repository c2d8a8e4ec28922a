//! Version-neutral input objects: every SMI version read into one shape per kind, keeping
//! where each object came from (for error messages) and the field-path prefix of its
//! version (`spec.` or top level), so validation names the field as the user wrote it.

use crate::api::common::{Headers, IntOrString, Quantity};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::BTreeMap;
use std::fmt;

/// Input kinds meshbridge reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    TrafficSplit,
    TrafficTarget,
    HTTPRouteGroup,
    TCPRoute,
    UDPRoute,
    /// Gateway API HTTPRoute (GAMMA: parentRef a Service).
    HTTPRoute,
    /// Gateway API GRPCRoute.
    GRPCRoute,
    /// Gateway API TCPRoute (not SMI's `TCPRoute`; printed `TCPRoute.gateway.networking.k8s.io`).
    GatewayTCPRoute,
    /// Gateway API ReferenceGrant.
    ReferenceGrant,
    Mesh,
    Install,
    Namespace,
    Service,
    ServiceAccount,
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    EndpointSlice,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::TrafficSplit => "TrafficSplit",
            Kind::TrafficTarget => "TrafficTarget",
            Kind::HTTPRouteGroup => "HTTPRouteGroup",
            Kind::TCPRoute => "TCPRoute",
            Kind::UDPRoute => "UDPRoute",
            Kind::HTTPRoute => "HTTPRoute",
            Kind::GRPCRoute => "GRPCRoute",
            Kind::GatewayTCPRoute => "TCPRoute.gateway.networking.k8s.io",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::Mesh => "Mesh",
            Kind::Install => "Install",
            Kind::Namespace => "Namespace",
            Kind::Service => "Service",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Job => "Job",
            Kind::EndpointSlice => "EndpointSlice",
        }
    }

    pub fn is_smi(self) -> bool {
        matches!(
            self,
            Kind::TrafficSplit
                | Kind::TrafficTarget
                | Kind::HTTPRouteGroup
                | Kind::TCPRoute
                | Kind::UDPRoute
        )
    }

    /// A Gateway API route read in the GAMMA profile.
    pub fn is_gamma_route(self) -> bool {
        matches!(
            self,
            Kind::HTTPRoute | Kind::GRPCRoute | Kind::GatewayTCPRoute
        )
    }

    /// An input whose outcome the engine reports (conditions on the object): SMI kinds and
    /// Gateway API routes.
    pub fn has_status(self) -> bool {
        self.is_smi() || self.is_gamma_route()
    }

    /// The kind's name as Kubernetes spells it (`TCPRoute` for both TCPRoutes).
    pub fn k8s_kind(self) -> &'static str {
        match self {
            Kind::GatewayTCPRoute => "TCPRoute",
            k => k.as_str(),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Kind/namespace/name` — the form used in the `meshbridge.io/parents` annotation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// Where an object was read from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Origin {
    /// A file: the 1-based index of the document in it and the 1-based line in the file
    /// where the object starts (its document's first line of content; for a syntax error,
    /// the error's line). Printed `PATH:LINE`; `line` 0 is the whole file.
    File {
        path: String,
        doc: usize,
        line: usize,
    },
    /// The Kubernetes API (or memory).
    #[default]
    Api,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line, .. } => write!(f, "{path}:{line}"),
            Origin::Api => f.write_str("api"),
        }
    }
}

/// Metadata kept from every input object.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Meta {
    pub namespace: String,
    pub name: String,
    pub api_version: String,
    pub generation: Option<i64>,
    /// RFC 3339 text as given (compared as time when parseable).
    pub creation_timestamp: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub origin: Origin,
    /// `spec.` for versions whose fields live under `spec`, empty for top-level versions.
    pub prefix: &'static str,
}

/// A TrafficSplit weight as written: a quantity (v1alpha1) or a JSON number (v1alpha2+).
#[derive(Clone, Debug, PartialEq)]
pub enum RawWeight {
    Quantity(Quantity),
    Number(serde_json::Number),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SplitBackend {
    pub service: String,
    pub weight: RawWeight,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TypedRef {
    pub kind: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrafficSplit {
    pub meta: Meta,
    pub service: String,
    pub backends: Vec<SplitBackend>,
    pub matches: Vec<TypedRef>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Subject {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TargetRule {
    pub kind: String,
    pub name: String,
    pub matches: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrafficTarget {
    pub meta: Meta,
    pub destination: Subject,
    /// v1alpha1/v1alpha2 `destination.port`.
    pub port: Option<IntOrString>,
    /// `specs` (v1alpha1) or `rules`.
    pub rules_field: &'static str,
    pub rules: Vec<TargetRule>,
    pub sources: Vec<Subject>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpMatch {
    pub name: String,
    pub path_regex: Option<String>,
    pub methods: Vec<String>,
    pub headers: Headers,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpRouteGroup {
    pub meta: Meta,
    pub matches: Vec<HttpMatch>,
}

/// TCPRoute or UDPRoute.
#[derive(Clone, Debug, PartialEq)]
pub struct PortRoute {
    pub meta: Meta,
    pub match_name: Option<String>,
    /// `None` or empty: all ports.
    pub ports: Option<Vec<IntOrString>>,
}

/// A Gateway API route (HTTPRoute, GRPCRoute, TCPRoute) read as input.
#[derive(Clone, Debug, PartialEq)]
pub struct GammaRoute {
    pub meta: Meta,
    pub spec: crate::api::gateway::RouteSpec,
}

impl GammaRoute {
    pub fn kind(&self) -> Kind {
        match self.spec {
            crate::api::gateway::RouteSpec::Http(_) => Kind::HTTPRoute,
            crate::api::gateway::RouteSpec::Grpc(_) => Kind::GRPCRoute,
            crate::api::gateway::RouteSpec::Tcp(_) => Kind::GatewayTCPRoute,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceGrant {
    pub meta: Meta,
    pub spec: crate::api::gateway::ReferenceGrantSpec,
}

/// One input object of any kind.
#[derive(Clone, Debug)]
pub enum Object {
    TrafficSplit(TrafficSplit),
    TrafficTarget(TrafficTarget),
    HttpRouteGroup(HttpRouteGroup),
    TcpRoute(PortRoute),
    UdpRoute(PortRoute),
    GammaRoute(Box<GammaRoute>),
    ReferenceGrant(Box<ReferenceGrant>),
    Mesh(Box<crate::api::meshbridge::Mesh>, Meta),
    Install(Box<crate::api::meshbridge::Install>, Meta),
    Namespace(Box<Namespace>, Meta),
    Service(Box<Service>, Meta),
    ServiceAccount(Box<ServiceAccount>, Meta),
    Pod(Box<Pod>, Meta),
    Deployment(Box<Deployment>, Meta),
    StatefulSet(Box<StatefulSet>, Meta),
    DaemonSet(Box<DaemonSet>, Meta),
    ReplicaSet(Box<ReplicaSet>, Meta),
    Job(Box<Job>, Meta),
    EndpointSlice(Box<EndpointSlice>, Meta),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::TrafficSplit(_) => Kind::TrafficSplit,
            Object::TrafficTarget(_) => Kind::TrafficTarget,
            Object::HttpRouteGroup(_) => Kind::HTTPRouteGroup,
            Object::TcpRoute(_) => Kind::TCPRoute,
            Object::UdpRoute(_) => Kind::UDPRoute,
            Object::GammaRoute(r) => r.kind(),
            Object::ReferenceGrant(_) => Kind::ReferenceGrant,
            Object::Mesh(..) => Kind::Mesh,
            Object::Install(..) => Kind::Install,
            Object::Namespace(..) => Kind::Namespace,
            Object::Service(..) => Kind::Service,
            Object::ServiceAccount(..) => Kind::ServiceAccount,
            Object::Pod(..) => Kind::Pod,
            Object::Deployment(..) => Kind::Deployment,
            Object::StatefulSet(..) => Kind::StatefulSet,
            Object::DaemonSet(..) => Kind::DaemonSet,
            Object::ReplicaSet(..) => Kind::ReplicaSet,
            Object::Job(..) => Kind::Job,
            Object::EndpointSlice(..) => Kind::EndpointSlice,
        }
    }

    pub fn meta(&self) -> &Meta {
        match self {
            Object::TrafficSplit(o) => &o.meta,
            Object::TrafficTarget(o) => &o.meta,
            Object::HttpRouteGroup(o) => &o.meta,
            Object::TcpRoute(o) | Object::UdpRoute(o) => &o.meta,
            Object::GammaRoute(o) => &o.meta,
            Object::ReferenceGrant(o) => &o.meta,
            Object::Mesh(_, m)
            | Object::Install(_, m)
            | Object::Namespace(_, m)
            | Object::Service(_, m)
            | Object::ServiceAccount(_, m)
            | Object::Pod(_, m)
            | Object::Deployment(_, m)
            | Object::StatefulSet(_, m)
            | Object::DaemonSet(_, m)
            | Object::ReplicaSet(_, m)
            | Object::Job(_, m)
            | Object::EndpointSlice(_, m) => m,
        }
    }

    pub fn key(&self) -> ObjectKey {
        let m = self.meta();
        ObjectKey::new(self.kind(), m.namespace.clone(), m.name.clone())
    }
}
