//! The ADS server: state of the world (`StreamAggregatedResources`) and delta
//! (`DeltaAggregatedResources`), over TLS with client certificates. It knows nothing of SMI:
//! it serves per-node snapshots of encoded resources from a [`SnapshotSource`].
//!
//! Rules (see `shared/reference/xds.md`): versions are content hashes (stable across
//! restarts, so the first request on a new stream is always answered by content); per stream
//! and per type it tracks the last nonce and version sent and acknowledged; a stale nonce is
//! ignored; a NACK is reported (log, counter, status) and the same config is not resent — the
//! proxy keeps its last good config; pushes go secrets → clusters → endpoints, and listeners
//! and routes only once clusters and endpoints are acknowledged and the endpoints of every
//! cluster requested (make before break); endpoints are resent after every cluster push and
//! routes after every listener push; nothing is sent for a named type when nothing the proxy
//! subscribed to is in its snapshot (Envoy unsubscribing acknowledges no answer).
//! A node must present a client certificate whose SPIFFE URI is the node's identity, so a
//! proxy can never obtain another identity's secret.
//!
//! Layout: [`stream`] holds those rules once, for both encodings; [`sotw`] and [`delta`] only
//! read requests into its state and write responses; [`auth`] binds a stream to its node;
//! [`cache`] is the in-memory source and its per-node status; [`encode`] turns JSON into
//! snapshots.

mod auth;
mod cache;
mod delta;
mod encode;
mod sotw;
mod stream;

pub use cache::{Cache, Metrics, NodeStatus};
pub use encode::{EncodeCache, snapshot_from_json};

use crate::proto::{CLUSTER, LISTENER, SCOPED_ROUTE};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use meshbridge_core::hash::{OFFSET_BASIS, fnv1a64, fnv1a64_extend};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// One encoded resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub name: String,
    /// Content hash (hex).
    pub version: String,
    pub any: Any,
}

impl Resource {
    pub fn new(name: impl Into<String>, any: Any) -> Self {
        let version = format!("{:016x}", fnv1a64(&any.value));
        Resource {
            name: name.into(),
            version,
            any,
        }
    }
}

/// Everything one node is served, per type URL then resource name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeSnapshot {
    pub types: BTreeMap<String, BTreeMap<String, Arc<Resource>>>,
}

/// Version of a set of resources (hash of names and versions).
fn version_of<'a>(items: impl Iterator<Item = &'a Arc<Resource>>) -> String {
    let h = items.fold(OFFSET_BASIS, |h, r| {
        let h = fnv1a64_extend(h, r.name.as_bytes());
        fnv1a64_extend(fnv1a64_extend(h, &[0]), r.version.as_bytes())
    });
    format!("{h:016x}")
}

impl NodeSnapshot {
    pub fn get(&self, type_url: &str) -> Option<&BTreeMap<String, Arc<Resource>>> {
        self.types.get(type_url)
    }

    /// Version of every resource of a type (what a proxy subscribed to all of them ACKs).
    pub fn version(&self, type_url: &str) -> String {
        version_of(self.get(type_url).into_iter().flat_map(|m| m.values()))
    }
}

/// What happened on a stream (for logs, metrics and status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Connected {
        node: String,
        identity: Option<String>,
        delta: bool,
    },
    Rejected {
        node: String,
        reason: String,
    },
    Sent {
        node: String,
        type_url: String,
        version: String,
        count: usize,
    },
    Ack {
        node: String,
        type_url: String,
        version: String,
    },
    Nack {
        node: String,
        type_url: String,
        version: String,
        message: String,
    },
    /// A node's subscription to a type changed (`None`: every resource of the type). Shared
    /// with the stream's own state (a proxy subscribes to as many endpoints as it has
    /// clusters).
    Subscribed {
        node: String,
        type_url: String,
        names: Option<Arc<BTreeSet<String>>>,
    },
    /// A node asked for a resource it may not have (another identity's secret).
    Denied {
        node: String,
        type_url: String,
        name: String,
    },
    Disconnected {
        node: String,
    },
}

/// Where the server gets snapshots from.
pub trait SnapshotSource: Send + Sync + 'static {
    /// The node's current snapshot (`None`: unknown node).
    fn snapshot(&self, node: &str) -> Option<Arc<NodeSnapshot>>;
    /// The SPIFFE identity a node must prove with its client certificate.
    fn identity(&self, node: &str) -> Option<String>;
    /// Bumped on every snapshot change.
    fn changes(&self) -> watch::Receiver<u64>;
    /// Reports a stream event.
    fn event(&self, ev: Event);
}

/// The ADS service.
pub struct Ads<S: SnapshotSource> {
    source: Arc<S>,
    /// Require a client certificate naming the node's identity (off only in tests of the
    /// protocol itself).
    require_identity: bool,
}

impl<S: SnapshotSource> Ads<S> {
    pub fn new(source: Arc<S>) -> Self {
        Ads {
            source,
            require_identity: true,
        }
    }

    /// Without TLS identity binding (plaintext tests and benchmarks only).
    pub fn insecure(source: Arc<S>) -> Self {
        Ads {
            source,
            require_identity: false,
        }
    }

    /// The tonic service, with message limits raised (NACKs carry whole resources).
    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(usize::MAX)
    }
}

/// Types a proxy subscribes to as a whole (an empty subscription means every resource).
fn wildcard_type(t: &str) -> bool {
    t == LISTENER || t == CLUSTER || t == SCOPED_ROUTE
}

/// The responses of one stream of encoding `W`.
type Responses<W> = ReceiverStream<Result<<W as stream::Wire>::Response, Status>>;

impl<S: SnapshotSource> Ads<S> {
    /// Checks the peer's certificate and spawns the stream engine with encoding `W`.
    fn open<W: stream::Wire>(
        &self,
        request: Request<Streaming<W::Request>>,
    ) -> Result<Response<Responses<W>>, Status> {
        let peer = auth::peer_identity(&request);
        if self.require_identity && peer.is_none() {
            return Err(Status::unauthenticated(
                "a client certificate with a SPIFFE URI is required",
            ));
        }
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(stream::run::<S, W>(
            self.source.clone(),
            peer,
            self.require_identity,
            request.into_inner(),
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[tonic::async_trait]
impl<S: SnapshotSource> AggregatedDiscoveryService for Ads<S> {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        self.open::<sotw::Sotw>(request)
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        self.open::<delta::Delta>(request)
    }
}

/// TLS material of the xDS endpoint.
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    /// Client certificates must chain to this CA.
    pub client_ca_pem: String,
}

/// Accepted connections of a running server, so that they can be cut all at once (a
/// control-plane crash, as the proxies see it).
#[derive(Clone, Default)]
pub struct Connections(Arc<Mutex<Vec<std::net::TcpStream>>>);

impl Connections {
    /// Shuts down every accepted connection (both directions).
    pub fn kill_all(&self) {
        if let Ok(mut v) = self.0.lock() {
            for c in v.drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    fn add(&self, s: &tokio::net::TcpStream) {
        use std::os::fd::AsFd;
        if let Ok(fd) = s.as_fd().try_clone_to_owned()
            && let Ok(mut v) = self.0.lock()
        {
            v.push(std::net::TcpStream::from(fd));
        }
    }
}

/// Serves ADS on `listener` until `shutdown` resolves. With `tls`, clients must present a
/// certificate from the CA and the node/identity binding is enforced. Accepted connections
/// are recorded in `conns`.
pub async fn serve<S: SnapshotSource>(
    source: Arc<S>,
    listener: tokio::net::TcpListener,
    tls: Option<ServerTls>,
    conns: Connections,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), String> {
    use tokio_stream::StreamExt;
    use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
    let mut b = Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .initial_connection_window_size(Some(16 << 20))
        .initial_stream_window_size(Some(4 << 20))
        .tcp_nodelay(true);
    let ads = match tls {
        Some(t) => {
            b = b
                .tls_config(
                    ServerTlsConfig::new()
                        .identity(Identity::from_pem(t.cert_pem, t.key_pem))
                        .client_ca_root(Certificate::from_pem(t.client_ca_pem)),
                )
                .map_err(|e| e.to_string())?;
            Ads::new(source)
        }
        None => Ads::insecure(source),
    };
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |r| {
        if let Ok(s) = &r {
            let _ = s.set_nodelay(true);
            conns.add(s);
        }
        r
    });
    b.add_service(ads.into_service())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| e.to_string())
}
