//! The ADS server against synthetic clients (envoy-types' generated client): identity binding
//! over mTLS (a proxy cannot get another identity's secret, nor speak for another node),
//! and the SotW / delta protocol rules (ACK, NACK kept out of resends, stale nonces, EDS
//! resent after a cluster change, listeners held back until clusters are acknowledged).

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use meshbridge_envoy::ca::{Ca, XDS_SERVER_NAME};
use meshbridge_envoy::proto::{CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET};
use meshbridge_envoy::server::{
    Cache, Connections, EncodeCache, NodeSnapshot, ServerTls, serve, snapshot_from_json,
};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const A: &str = "spiffe://cluster.local/ns/demo/sa/a";
const B: &str = "spiffe://cluster.local/ns/demo/sa/b";

fn secret(name: &str) -> serde_json::Value {
    json!({"@type": SECRET, "name": name, "tlsCertificate": {"certificateChain": {"inlineString": format!("cert of {name}")}}})
}

fn cluster(name: &str, timeout: &str) -> serde_json::Value {
    json!({"@type": CLUSTER, "name": name, "type": "EDS", "connectTimeout": timeout, "edsClusterConfig": {"edsConfig": {"ads": {}, "resourceApiVersion": "V3"}}})
}

fn snap(own: &str, timeout: &str, enc: &mut EncodeCache) -> Arc<NodeSnapshot> {
    let mut res: BTreeMap<&'static str, BTreeMap<String, Arc<serde_json::Value>>> = BTreeMap::new();
    res.entry(CLUSTER)
        .or_default()
        .insert("c1".into(), cluster("c1", timeout).into());
    res.entry(ENDPOINT).or_default().insert(
        "c1".into(),
        json!({"@type": ENDPOINT, "clusterName": "c1"}).into(),
    );
    res.entry(LISTENER)
        .or_default()
        .insert("l1".into(), json!({"@type": LISTENER, "name": "l1"}).into());
    res.entry(ROUTE)
        .or_default()
        .insert("r1".into(), json!({"@type": ROUTE, "name": "r1"}).into());
    let mut secrets = BTreeMap::new();
    secrets.insert(own.to_string(), secret(own));
    Arc::new(snapshot_from_json(&res, &secrets, enc).unwrap())
}

async fn start(tls: Option<ServerTls>) -> (Arc<Cache>, u16, Connections) {
    let cache = Cache::new();
    let mut enc = EncodeCache::default();
    cache.set("demo/a", A, snap(A, "1s", &mut enc));
    cache.set("demo/b", B, snap(B, "1s", &mut enc));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let conns = Connections::default();
    tokio::spawn(serve(
        cache.clone(),
        l,
        tls,
        conns.clone(),
        std::future::pending(),
    ));
    (cache, port, conns)
}

fn node_of(id: Option<&str>) -> Option<Node> {
    id.map(|n| Node {
        id: n.into(),
        ..Default::default()
    })
}

/// What a NACK carries.
fn bad_config() -> RpcStatus {
    RpcStatus {
        code: 3,
        message: "bad config".into(),
        details: vec![],
    }
}

fn req(
    node: Option<&str>,
    t: &str,
    names: &[&str],
    version: &str,
    nonce: &str,
    nack: bool,
) -> DiscoveryRequest {
    DiscoveryRequest {
        node: node_of(node),
        type_url: t.into(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        error_detail: nack.then(bad_config),
        ..Default::default()
    }
}

struct Stream {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: tonic::Streaming<DiscoveryResponse>,
}

impl Stream {
    async fn open(ch: Channel) -> Result<Stream, tonic::Status> {
        let (tx, rx) = mpsc::channel(16);
        let mut c = AggregatedDiscoveryServiceClient::new(ch);
        let resp = c
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await?;
        Ok(Stream {
            tx,
            rx: resp.into_inner(),
        })
    }

    async fn send(&self, r: DiscoveryRequest) {
        self.tx.send(r).await.unwrap();
    }

    /// A request with no nonce (a new subscription) for `names` of type `t`.
    async fn ask(&self, node: Option<&str>, t: &str, names: &[&str]) {
        self.send(req(node, t, names, "", "", false)).await;
    }

    /// Acknowledges `r` (its version and nonce), still subscribed to `names`.
    async fn ack(&self, r: &DiscoveryResponse, names: &[&str]) {
        self.send(req(
            None,
            &r.type_url,
            names,
            &r.version_info,
            &r.nonce,
            false,
        ))
        .await;
    }

    async fn recv(&mut self) -> Result<DiscoveryResponse, tonic::Status> {
        match tokio::time::timeout(Duration::from_secs(5), self.rx.message()).await {
            Ok(Ok(Some(r))) => Ok(r),
            Ok(Ok(None)) => Err(tonic::Status::cancelled("closed")),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(tonic::Status::deadline_exceeded("no response")),
        }
    }

    async fn silent(&mut self, ms: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(ms), self.rx.message())
            .await
            .is_err()
    }
}

async fn tls_channel(
    port: u16,
    ca: &Ca,
    client: Option<(&str, &str)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut cfg = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.cert_pem))
        .domain_name(XDS_SERVER_NAME);
    if let Some((c, k)) = client {
        cfg = cfg.identity(Identity::from_pem(c, k));
    }
    Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(cfg)?
        .connect()
        .await
}

/// Whether a client with this certificate (or none) fails to connect, to open a stream, or
/// to get an answer for demo/a's secret.
async fn gets_nothing(port: u16, ca: &Ca, client: Option<(&str, &str)>) -> bool {
    let Ok(ch) = tls_channel(port, ca, client).await else {
        return true;
    };
    let Ok(mut s) = Stream::open(ch).await else {
        return true;
    };
    s.ask(Some("demo/a"), SECRET, &[A]).await;
    s.recv().await.is_err()
}

fn names(r: &DiscoveryResponse) -> Vec<String> {
    r.resources
        .iter()
        .map(|a| {
            meshbridge_envoy::proto::to_json(a).unwrap()["name"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_proxy_cannot_obtain_another_identitys_secret() {
    let ca = Ca::generate().unwrap();
    let server = ca.issue_server(Duration::from_secs(600)).unwrap();
    let (cache, port, _) = start(Some(ServerTls {
        cert_pem: server.cert_pem,
        key_pem: server.key_pem,
        client_ca_pem: ca.cert_pem.clone(),
    }))
    .await;
    let a = ca.issue_workload(A, Duration::from_secs(600)).unwrap();

    // A's certificate, B's node: refused.
    let ch = tls_channel(port, &ca, Some((&a.cert_pem, &a.key_pem)))
        .await
        .unwrap();
    let mut s = Stream::open(ch.clone()).await.unwrap();
    s.ask(Some("demo/b"), SECRET, &[B]).await;
    let e = s.recv().await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");

    // A's certificate, A's node, asking for both secrets: only A's comes back.
    let mut s = Stream::open(ch.clone()).await.unwrap();
    s.ask(Some("demo/a"), SECRET, &[A, B]).await;
    let r = s.recv().await.unwrap();
    assert_eq!(names(&r), vec![A.to_string()]);
    assert!(cache.status()["demo/a"].denied >= 1);

    // Delta: the same.
    let (tx, rx) = mpsc::channel(4);
    let mut c = AggregatedDiscoveryServiceClient::new(ch);
    let mut d = c
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(DeltaDiscoveryRequest {
        node: Some(Node {
            id: "demo/a".into(),
            ..Default::default()
        }),
        type_url: SECRET.into(),
        resource_names_subscribe: vec![B.into(), A.into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), d.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let got: Vec<&str> = r.resources.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(got, vec![A]);

    // No client certificate: no stream.
    assert!(
        gets_nothing(port, &ca, None).await,
        "a client without certificate got an answer"
    );

    // A certificate from another CA: refused at the handshake.
    let other = Ca::generate().unwrap();
    let forged = other.issue_workload(A, Duration::from_secs(600)).unwrap();
    assert!(
        gets_nothing(port, &ca, Some((&forged.cert_pem, &forged.key_pem))).await,
        "a certificate from another CA was accepted"
    );
}

async fn plain(port: u16) -> Channel {
    Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

impl Stream {
    /// Acknowledges endpoints `c1`: the listeners come and are acknowledged, then routes
    /// `r1` are asked for; returns their answer.
    async fn listeners_then_routes(&mut self, eds: &DiscoveryResponse) -> DiscoveryResponse {
        self.ack(eds, &["c1"]).await;
        let lds = self.recv().await.unwrap();
        assert_eq!(lds.type_url, LISTENER);
        self.ack(&lds, &[]).await;
        self.ask(None, ROUTE, &["r1"]).await;
        let rds = self.recv().await.unwrap();
        assert_eq!(rds.type_url, ROUTE);
        rds
    }
}

/// A fresh server and a plain SotW stream on which node `demo/a` asked for clusters and got
/// them.
async fn clusters_sent_to_a() -> (Arc<Cache>, Stream, DiscoveryResponse) {
    let (cache, port, _) = start(None).await;
    let mut s = Stream::open(plain(port).await).await.unwrap();
    s.ask(Some("demo/a"), CLUSTER, &[]).await;
    let cds = s.recv().await.unwrap();
    assert_eq!(cds.type_url, CLUSTER);
    (cache, s, cds)
}

#[tokio::test]
async fn sotw_ack_nack_stale_and_eds_after_cds() {
    // Listeners wait until clusters and endpoints are acknowledged.
    let (cache, mut s, cds) = clusters_sent_to_a().await;
    s.ask(None, LISTENER, &[]).await;
    s.ask(None, ENDPOINT, &["c1"]).await;
    let eds = s.recv().await.unwrap();
    assert_eq!(
        eds.type_url, ENDPOINT,
        "listeners must wait for clusters and endpoints"
    );
    s.ack(&cds, &[]).await;
    assert!(
        s.silent(200).await,
        "listeners sent before endpoints were acknowledged"
    );
    let rds = s.listeners_then_routes(&eds).await;
    s.ack(&rds, &["r1"]).await;
    assert!(s.silent(200).await);
    assert_eq!(
        cache.status()["demo/a"].acked.get(CLUSTER),
        Some(&cds.version_info)
    );

    // A cluster-only change: CDS is pushed; the next EDS request (which looks like an ACK)
    // gets the endpoints again, so the re-created cluster does not sit in warming.
    let mut enc = EncodeCache::default();
    cache.set("demo/a", A, snap(A, "2s", &mut enc));
    let cds2 = s.recv().await.unwrap();
    assert_eq!(cds2.type_url, CLUSTER);
    assert_ne!(cds2.version_info, cds.version_info);
    s.ack(&eds, &["c1"]).await;
    let eds2 = s.recv().await.unwrap();
    assert_eq!(eds2.type_url, ENDPOINT);
    assert_eq!(
        eds2.version_info, eds.version_info,
        "same endpoints, resent"
    );

    // A stale nonce is ignored.
    s.ack(&cds, &[]).await;
    assert!(s.silent(200).await);
    // A NACK is recorded and the rejected config is not resent.
    s.send(req(
        None,
        CLUSTER,
        &[],
        &cds.version_info,
        &cds2.nonce,
        true,
    ))
    .await;
    assert!(s.silent(300).await, "a NACKed config was resent");
    let st = &cache.status()["demo/a"];
    assert_eq!(st.nacks, 1);
    assert_eq!(
        st.last_nack.get(CLUSTER).map(String::as_str),
        Some("bad config")
    );
    assert_eq!(
        st.acked.get(CLUSTER),
        Some(&cds.version_info),
        "last good version stays acknowledged"
    );
    // A new snapshot is pushed again.
    cache.set("demo/a", A, snap(A, "3s", &mut enc));
    let cds3 = s.recv().await.unwrap();
    assert_eq!(cds3.type_url, CLUSTER);
}

#[tokio::test]
async fn unknown_node_is_refused() {
    let (_, port, _) = start(None).await;
    let mut s = Stream::open(plain(port).await).await.unwrap();
    s.ask(Some("demo/nobody"), CLUSTER, &[]).await;
    assert_eq!(s.recv().await.unwrap_err().code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn listeners_wait_until_the_endpoints_of_every_cluster_are_requested() {
    let (cache, mut s, cds) = clusters_sent_to_a().await;
    s.ask(None, LISTENER, &[]).await;
    // CDS acknowledged, but c1's endpoints not asked for yet: listeners (and routes behind
    // them) would point at a warming cluster.
    s.ack(&cds, &[]).await;
    assert!(
        s.silent(300).await,
        "listeners sent before the endpoints were requested"
    );
    assert!(!cache.in_sync("demo/a"));
    s.ask(None, ENDPOINT, &["c1"]).await;
    let eds = s.recv().await.unwrap();
    assert_eq!(eds.type_url, ENDPOINT);
    let rds = s.listeners_then_routes(&eds).await;
    assert!(!cache.in_sync("demo/a"), "routes not acknowledged yet");
    s.ack(&rds, &["r1"]).await;
    // The proxy never asked for a secret (nothing of its references one): nothing to wait
    // for, it is in sync.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cache.in_sync("demo/a") {
        assert!(std::time::Instant::now() < deadline, "{:?}", cache.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        cache.status()["demo/a"].subscribed.get(ENDPOINT),
        Some(&Some(Arc::new(["c1".to_string()].into())))
    );
}

#[tokio::test]
async fn removing_the_last_clusters_sends_no_endpoints_and_converges() {
    let (cache, mut s, cds) = clusters_sent_to_a().await;
    s.ask(None, ENDPOINT, &["c1"]).await;
    let eds = s.recv().await.unwrap();
    for r in [&cds, &eds] {
        let names: &[&str] = if r.type_url == ENDPOINT { &["c1"] } else { &[] };
        s.ack(r, names).await;
    }
    assert!(s.silent(200).await);
    // The snapshot loses its only cluster (and its endpoints).
    let mut res: BTreeMap<&'static str, BTreeMap<String, Arc<serde_json::Value>>> = BTreeMap::new();
    res.entry(LISTENER)
        .or_default()
        .insert("l1".into(), json!({"@type": LISTENER, "name": "l1"}).into());
    let mut enc = EncodeCache::default();
    let snap = snapshot_from_json(&res, &BTreeMap::new(), &mut enc).unwrap();
    cache.set("demo/a", A, Arc::new(snap));
    let cds2 = s.recv().await.unwrap();
    assert_eq!(cds2.type_url, CLUSTER);
    assert!(cds2.resources.is_empty());
    // Nothing for the endpoints Envoy still watches until it processes that update: it would
    // drop such an answer unacknowledged.
    assert!(s.silent(200).await, "endpoints sent for removed clusters");
    // Envoy unsubscribes (same nonce: not stale) and acknowledges the clusters: done.
    s.ack(&eds, &[]).await;
    s.ack(&cds2, &[]).await;
    assert!(s.silent(200).await, "an answer to an empty subscription");
    let st = cache.status();
    assert_eq!(st["demo/a"].acked.get(CLUSTER), Some(&cds2.version_info));
    assert_eq!(
        st["demo/a"].subscribed.get(ENDPOINT),
        Some(&Some(Arc::new(BTreeSet::new())))
    );
}

fn delta_req(
    node: Option<&str>,
    t: &str,
    subscribe: &[&str],
    nonce: &str,
    nack: bool,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: node_of(node),
        type_url: t.into(),
        resource_names_subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.into(),
        error_detail: nack.then(bad_config),
        ..Default::default()
    }
}

#[tokio::test]
async fn delta_ack_nack_and_endpoints_resent_after_clusters() {
    let (cache, port, _) = start(None).await;
    let (tx, rx) = mpsc::channel(16);
    let mut c = AggregatedDiscoveryServiceClient::new(plain(port).await);
    let mut d = c
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut recv = async || {
        tokio::time::timeout(Duration::from_secs(5), d.message())
            .await
            .expect("no response")
            .unwrap()
            .unwrap()
    };
    let send = async |r| tx.send(r).await.unwrap();
    send(delta_req(Some("demo/a"), CLUSTER, &[], "", false)).await;
    let cds = recv().await;
    assert_eq!(cds.type_url, CLUSTER);
    send(delta_req(None, LISTENER, &[], "", false)).await;
    send(delta_req(None, ENDPOINT, &["c1"], "", false)).await;
    let eds = recv().await;
    assert_eq!(
        eds.type_url, ENDPOINT,
        "listeners wait for clusters and endpoints"
    );
    send(delta_req(None, CLUSTER, &[], &cds.nonce, false)).await;
    send(delta_req(None, ENDPOINT, &[], &eds.nonce, false)).await;
    let lds = recv().await;
    assert_eq!(lds.type_url, LISTENER);
    assert_eq!(
        cache.status()["demo/a"].acked.get(CLUSTER),
        Some(&cds.system_version_info)
    );
    send(delta_req(None, LISTENER, &[], &lds.nonce, false)).await;

    // A cluster change: the changed cluster, then every endpoint again (same content).
    let mut enc = EncodeCache::default();
    cache.set("demo/a", A, snap(A, "2s", &mut enc));
    let cds2 = recv().await;
    assert_eq!(cds2.type_url, CLUSTER);
    let eds2 = recv().await;
    assert_eq!(eds2.type_url, ENDPOINT);
    assert_eq!(eds2.resources.len(), 1);
    assert_eq!(eds2.system_version_info, eds.system_version_info);
    // A NACK of the clusters: reported, the last good version stays acknowledged, and the
    // rejected clusters are not sent again.
    send(delta_req(None, ENDPOINT, &[], &eds2.nonce, false)).await;
    send(delta_req(None, CLUSTER, &[], &cds2.nonce, true)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), d.message())
            .await
            .is_err(),
        "a NACKed config was resent"
    );
    let st = &cache.status()["demo/a"];
    assert_eq!(st.nacks, 1);
    assert_eq!(st.acked.get(CLUSTER), Some(&cds.system_version_info));
}

/// `snap` with two route configurations, `r1` and `r2`, whose content varies with `v1`, `v2`.
fn snap_two_routes(v1: bool, v2: bool, enc: &mut EncodeCache) -> Arc<NodeSnapshot> {
    let mut s = (*snap(A, "1s", enc)).clone();
    let mut res: BTreeMap<&'static str, BTreeMap<String, Arc<serde_json::Value>>> = BTreeMap::new();
    let routes = res.entry(ROUTE).or_default();
    routes.insert(
        "r1".into(),
        json!({"@type": ROUTE, "name": "r1", "validateClusters": v1}).into(),
    );
    routes.insert(
        "r2".into(),
        json!({"@type": ROUTE, "name": "r2", "validateClusters": v2}).into(),
    );
    let two = snapshot_from_json(&res, &BTreeMap::new(), enc).unwrap();
    s.types.insert(ROUTE.into(), two.types[ROUTE].clone());
    Arc::new(s)
}

/// Route configurations (like endpoints and secrets) are incremental in state of the world
/// too: a response updates only what it carries, so a change to one of them sends that one.
/// After a NACK (the proxy applied none of the response) the next response carries all.
#[tokio::test]
async fn sotw_sends_only_the_route_configurations_that_changed() {
    let (cache, port, _) = start(None).await;
    let mut enc = EncodeCache::default();
    cache.set("demo/a", A, snap_two_routes(false, false, &mut enc));
    let mut s = Stream::open(plain(port).await).await.unwrap();
    s.ask(Some("demo/a"), CLUSTER, &[]).await;
    let cds = s.recv().await.unwrap();
    s.ask(None, LISTENER, &[]).await;
    s.ask(None, ENDPOINT, &["c1"]).await;
    let eds = s.recv().await.unwrap();
    s.ack(&cds, &[]).await;
    s.ack(&eds, &["c1"]).await;
    let lds = s.recv().await.unwrap();
    assert_eq!(lds.type_url, LISTENER);
    s.ack(&lds, &[]).await;
    s.ask(None, ROUTE, &["r1", "r2"]).await;
    let rds = s.recv().await.unwrap();
    assert_eq!(
        names(&rds),
        vec!["r1", "r2"],
        "the first answer carries all"
    );
    s.ack(&rds, &["r1", "r2"]).await;
    assert!(s.silent(200).await);

    // r2 changes: only r2 is sent, at the version of the whole set.
    cache.set("demo/a", A, snap_two_routes(false, true, &mut enc));
    let rds2 = s.recv().await.unwrap();
    assert_eq!(rds2.type_url, ROUTE);
    assert_eq!(names(&rds2), vec!["r2"]);
    assert_ne!(rds2.version_info, rds.version_info);
    s.ack(&rds2, &["r1", "r2"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cache.in_sync("demo/a") {
        assert!(std::time::Instant::now() < deadline, "{:?}", cache.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // r1 changes and the proxy rejects it: the next change carries both again.
    cache.set("demo/a", A, snap_two_routes(true, true, &mut enc));
    let rds3 = s.recv().await.unwrap();
    assert_eq!(names(&rds3), vec!["r1"]);
    s.send(req(
        None,
        ROUTE,
        &["r1", "r2"],
        &rds2.version_info,
        &rds3.nonce,
        true,
    ))
    .await;
    assert!(s.silent(200).await, "the rejected configuration was resent");
    cache.set("demo/a", A, snap_two_routes(true, false, &mut enc));
    let rds4 = s.recv().await.unwrap();
    assert_eq!(names(&rds4), vec!["r1", "r2"]);

    // A name no longer watched is dropped by the proxy: watched again, it is sent again.
    s.ack(&rds4, &["r1", "r2"]).await;
    s.send(req(
        None,
        ROUTE,
        &["r1"],
        &rds4.version_info,
        &rds4.nonce,
        false,
    ))
    .await;
    let only = s.recv().await.unwrap();
    assert!(names(&only).is_empty(), "{:?}", names(&only));
    s.ack(&only, &["r1"]).await;
    s.send(req(
        None,
        ROUTE,
        &["r1", "r2"],
        &only.version_info,
        &only.nonce,
        false,
    ))
    .await;
    let again = s.recv().await.unwrap();
    assert_eq!(names(&again), vec!["r2"]);
}

/// A stale request (its nonce is not the last one sent) is not answered, but it names what
/// the proxy watches now: Envoy sends no other request when it stops watching a type whose
/// answer crossed that request, so the server must not keep waiting for it.
#[tokio::test]
async fn a_stale_request_still_updates_the_subscription() {
    let (cache, port, _) = start(None).await;
    let mut s = Stream::open(plain(port).await).await.unwrap();
    s.ask(Some("demo/a"), SECRET, &[A]).await;
    let first = s.recv().await.unwrap();
    assert_eq!(names(&first), vec![A.to_string()]);
    s.ack(&first, &[A]).await;
    // The next snapshot's push crosses the proxy's request that drops every secret.
    let mut enc = EncodeCache::default();
    let mut other = (*snap(A, "1s", &mut enc)).clone();
    let mut sec = BTreeMap::new();
    sec.insert(A.to_string(), json!({"@type": SECRET, "name": A, "validationContext": {"trustedCa": {"inlineString": "changed"}}}));
    let changed = snapshot_from_json(&BTreeMap::new(), &sec, &mut enc).unwrap();
    other
        .types
        .insert(SECRET.into(), changed.types[SECRET].clone());
    cache.set("demo/a", A, Arc::new(other));
    let pushed = s.recv().await.unwrap();
    assert_ne!(pushed.nonce, first.nonce);
    s.send(req(
        None,
        SECRET,
        &[],
        &first.version_info,
        &first.nonce,
        false,
    ))
    .await;
    assert!(s.silent(200).await, "a stale request was answered");
    assert_eq!(
        cache.status()["demo/a"].subscribed.get(SECRET),
        Some(&Some(Arc::new(BTreeSet::new()))),
        "the stale request's subscription was ignored"
    );
}
