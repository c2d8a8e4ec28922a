//! Direct App Mesh API sync (`aws-sdk-appmesh`): makes one mesh hold exactly the
//! [`DesiredState`], idempotently.
//!
//! - Inventory: list virtual nodes, routers, services (and the routes of meshbridge's
//!   routers) and read each one's tags. A resource is meshbridge's only when it carries
//!   both tags `app.kubernetes.io/managed-by=meshbridge` and `meshbridge.io/owner=<owner>`;
//!   anything else is never updated or deleted (a desired name held by such a resource is
//!   reported as a conflict, and routes that would target it are not written).
//! - Then: create what is missing (tagged), describe what exists and update only what
//!   differs (so a resource edited behind meshbridge's back is restored), delete stale owned
//!   resources. Phases keep references valid: nodes → routers → routes → services, then
//!   deletes in reverse order (services, routes, routers, nodes). Within a phase, calls run
//!   concurrently ([`SyncOptions::concurrency`]).
//! - Credentials, region and endpoint come from the standard AWS chain ([`client_from_env`];
//!   `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_APP_MESH` override the endpoint). Throttling
//!   and transient errors are retried with exponential backoff and jitter ([`retry_config`]).

use crate::crd::http_match_json;
use crate::model::*;
use aws_sdk_appmesh::Client;
use aws_sdk_appmesh::config::retry::RetryConfig;
use aws_sdk_appmesh::error::DisplayErrorContext;
use aws_sdk_appmesh::types as t;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use aws_sdk_appmesh;

/// What one sync did. `is_ok()` when every desired resource is in place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// `Kind/name` (routes: `Route/router/name`) of each resource created, updated, deleted.
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
    /// Desired resources already as wanted.
    pub unchanged: usize,
    /// Desired names held by resources without meshbridge's tags (left alone).
    pub conflicts: Vec<String>,
    /// API errors (after retries) and resources that could not be written.
    pub errors: Vec<String>,
    /// API calls made (each page of a list counts; SDK-internal retries do not).
    pub read_calls: usize,
    pub mutating_calls: usize,
}

impl SyncReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty() && self.conflicts.is_empty()
    }

    /// Number of create/update/delete calls that succeeded.
    pub fn changes(&self) -> usize {
        self.created.len() + self.updated.len() + self.deleted.len()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOptions {
    /// API calls in flight at once within a phase (at least 1).
    pub concurrency: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions { concurrency: 8 }
    }
}

/// Retries: the SDK's standard mode (throttling such as `TooManyRequestsException`,
/// transient and 5xx errors) with up to 8 attempts, exponential backoff with jitter from
/// 200 ms up to 20 s.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(20))
}

/// HTTPS (and plain HTTP, for local endpoints) client: hyper 1 + rustls with ring.
pub fn http_client() -> aws_sdk_appmesh::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// A client configured from the standard AWS chain (environment, shared config/credentials
/// files, web identity (IRSA), ECS/EKS Pod Identity container credentials, IMDS), with
/// `AWS_ENDPOINT_URL[_APP_MESH]` honoured, and meshbridge's retry policy.
pub async fn client_from_env() -> Client {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .retry_config(retry_config())
        .load()
        .await;
    Client::new(&cfg)
}

/// Names of the meshes in the client's account and region (`ListMeshes`, every page),
/// sorted: what discovery reports as App Mesh meshes when credentials exist.
pub async fn list_meshes(client: &Client) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_meshes()
            .set_next_token(next.take())
            .send()
            .await
            .map_err(err)?;
        out.extend(page.meshes().iter().map(|m| m.mesh_name().to_string()));
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => break,
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn err<E>(e: E) -> String
where
    E: std::error::Error,
{
    DisplayErrorContext(e).to_string()
}

/// Runs futures with at most `limit` in flight (on the current tokio runtime); results in
/// input order (`None` if a task panicked).
async fn run_all<F>(limit: usize, futs: Vec<F>) -> Vec<Option<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut results: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    let mut set = tokio::task::JoinSet::new();
    let mut it = futs.into_iter().enumerate();
    for (i, f) in it.by_ref().take(limit.max(1)) {
        set.spawn(async move { (i, f.await) });
    }
    while let Some(res) = set.join_next().await {
        if let Ok((i, out)) = res {
            results[i] = Some(out);
        }
        if let Some((j, f)) = it.next() {
            set.spawn(async move { (j, f.await) });
        }
    }
    results
}

/// Shared, cheap-to-clone state of one sync.
#[derive(Clone)]
struct Ctx {
    client: Client,
    mesh: Arc<str>,
    owner_tags: Arc<Vec<(String, String)>>,
    reads: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
}

#[derive(Clone, Debug)]
struct Existing {
    arn: String,
    owned: bool,
}

/// Outcome of one create/update/delete step.
enum Outcome {
    Created(String),
    Updated(String),
    Deleted(String),
    Unchanged,
    Conflict(String),
    Error(String),
}

impl Outcome {
    fn in_place(&self) -> bool {
        matches!(
            self,
            Outcome::Created(_) | Outcome::Updated(_) | Outcome::Unchanged
        )
    }
}

/// The kinds of resource sync manages (routes carry their router).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Node,
    Router,
    Route,
    Service,
}

impl Ctx {
    fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    fn tags(&self) -> Vec<t::TagRef> {
        self.owner_tags
            .iter()
            .filter_map(|(k, v)| t::TagRef::builder().key(k).value(v).build().ok())
            .collect()
    }

    async fn owned(&self, arn: &str) -> Result<bool, String> {
        let mut found: BTreeMap<String, String> = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            self.read();
            let out = self
                .client
                .list_tags_for_resource()
                .resource_arn(arn)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(err)?;
            for tag in out.tags() {
                found.insert(tag.key().to_string(), tag.value().to_string());
            }
            token = out
                .next_token()
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(self.owner_tags.iter().all(|(k, v)| found.get(k) == Some(v)))
    }

    /// Lists (name, arn) of one kind; `router` for routes.
    async fn list(
        &self,
        kind: Kind,
        router: Option<&str>,
    ) -> Result<Vec<(String, String)>, String> {
        let mut v = Vec::new();
        let mut token: Option<String> = None;
        let mesh = &*self.mesh;
        loop {
            self.read();
            let next = match kind {
                Kind::Node => {
                    let out = self
                        .client
                        .list_virtual_nodes()
                        .mesh_name(mesh)
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(err)?;
                    for r in out.virtual_nodes() {
                        v.push((r.virtual_node_name().to_string(), r.arn().to_string()));
                    }
                    out.next_token().map(str::to_string)
                }
                Kind::Router => {
                    let out = self
                        .client
                        .list_virtual_routers()
                        .mesh_name(mesh)
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(err)?;
                    for r in out.virtual_routers() {
                        v.push((r.virtual_router_name().to_string(), r.arn().to_string()));
                    }
                    out.next_token().map(str::to_string)
                }
                Kind::Service => {
                    let out = self
                        .client
                        .list_virtual_services()
                        .mesh_name(mesh)
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(err)?;
                    for r in out.virtual_services() {
                        v.push((r.virtual_service_name().to_string(), r.arn().to_string()));
                    }
                    out.next_token().map(str::to_string)
                }
                Kind::Route => {
                    let out = self
                        .client
                        .list_routes()
                        .mesh_name(mesh)
                        .virtual_router_name(router.unwrap_or_default())
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(err)?;
                    for r in out.routes() {
                        v.push((r.route_name().to_string(), r.arn().to_string()));
                    }
                    out.next_token().map(str::to_string)
                }
            };
            token = next.filter(|s| !s.is_empty());
            if token.is_none() {
                return Ok(v);
            }
        }
    }

    async fn delete(&self, kind: Kind, router: Option<String>, name: String) -> Outcome {
        let mesh = &*self.mesh;
        self.write();
        let (id, r) = match kind {
            Kind::Node => (
                format!("VirtualNode/{name}"),
                self.client
                    .delete_virtual_node()
                    .mesh_name(mesh)
                    .virtual_node_name(&name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(err),
            ),
            Kind::Router => (
                format!("VirtualRouter/{name}"),
                self.client
                    .delete_virtual_router()
                    .mesh_name(mesh)
                    .virtual_router_name(&name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(err),
            ),
            Kind::Service => (
                format!("VirtualService/{name}"),
                self.client
                    .delete_virtual_service()
                    .mesh_name(mesh)
                    .virtual_service_name(&name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(err),
            ),
            Kind::Route => {
                let router = router.unwrap_or_default();
                (
                    format!("Route/{router}/{name}"),
                    self.client
                        .delete_route()
                        .mesh_name(mesh)
                        .virtual_router_name(&router)
                        .route_name(&name)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(err),
                )
            }
        };
        match r {
            Ok(()) => Outcome::Deleted(id),
            Err(e) => Outcome::Error(format!("{id}: delete: {e}")),
        }
    }

    fn conflict(id: &str, ex: &Existing) -> Outcome {
        Outcome::Conflict(format!(
            "{id}: exists without meshbridge's tags ({}); left alone",
            ex.arn
        ))
    }

    fn done<E: std::error::Error>(id: String, created: bool, r: Result<(), E>) -> Outcome {
        match (r, created) {
            (Ok(()), true) => Outcome::Created(id),
            (Ok(()), false) => Outcome::Updated(id),
            (Err(e), c) => Outcome::Error(format!(
                "{id}: {}: {}",
                if c { "create" } else { "update" },
                err(e)
            )),
        }
    }

    async fn apply_node(&self, vn: VirtualNodeDef, ex: Option<Existing>) -> Outcome {
        let name = vn.names.aws_name.clone();
        let id = format!("VirtualNode/{name}");
        let spec = match node_spec(&vn) {
            Ok(s) => s,
            Err(e) => return Outcome::Error(format!("{id}: {e}")),
        };
        let mesh = &*self.mesh;
        match ex {
            Some(ex) if !ex.owned => Self::conflict(&id, &ex),
            None => {
                self.write();
                let r = self
                    .client
                    .create_virtual_node()
                    .mesh_name(mesh)
                    .virtual_node_name(&name)
                    .spec(spec)
                    .set_tags(Some(self.tags()))
                    .send()
                    .await;
                Self::done(id, true, r.map(|_| ()))
            }
            Some(_) => {
                self.read();
                let cur = match self
                    .client
                    .describe_virtual_node()
                    .mesh_name(mesh)
                    .virtual_node_name(&name)
                    .send()
                    .await
                {
                    Ok(o) => o.virtual_node().and_then(|d| d.spec()).map(node_wire),
                    Err(e) => return Outcome::Error(format!("{id}: describe: {}", err(e))),
                };
                if cur.as_ref() == Some(&node_wire_desired(&vn)) {
                    return Outcome::Unchanged;
                }
                self.write();
                let r = self
                    .client
                    .update_virtual_node()
                    .mesh_name(mesh)
                    .virtual_node_name(&name)
                    .spec(spec)
                    .send()
                    .await;
                Self::done(id, false, r.map(|_| ()))
            }
        }
    }

    async fn apply_router(&self, vr: VirtualRouterDef, ex: Option<Existing>) -> Outcome {
        let name = vr.names.aws_name.clone();
        let id = format!("VirtualRouter/{name}");
        let spec = match router_spec(&vr) {
            Ok(s) => s,
            Err(e) => return Outcome::Error(format!("{id}: {e}")),
        };
        let mesh = &*self.mesh;
        match ex {
            Some(ex) if !ex.owned => Self::conflict(&id, &ex),
            None => {
                self.write();
                let r = self
                    .client
                    .create_virtual_router()
                    .mesh_name(mesh)
                    .virtual_router_name(&name)
                    .spec(spec)
                    .set_tags(Some(self.tags()))
                    .send()
                    .await;
                Self::done(id, true, r.map(|_| ()))
            }
            Some(_) => {
                self.read();
                let cur = match self
                    .client
                    .describe_virtual_router()
                    .mesh_name(mesh)
                    .virtual_router_name(&name)
                    .send()
                    .await
                {
                    Ok(o) => o.virtual_router().and_then(|d| d.spec()).map(router_wire),
                    Err(e) => return Outcome::Error(format!("{id}: describe: {}", err(e))),
                };
                if cur.as_ref() == Some(&router_wire_desired(&vr)) {
                    return Outcome::Unchanged;
                }
                self.write();
                let r = self
                    .client
                    .update_virtual_router()
                    .mesh_name(mesh)
                    .virtual_router_name(&name)
                    .spec(spec)
                    .send()
                    .await;
                Self::done(id, false, r.map(|_| ()))
            }
        }
    }

    async fn apply_route(&self, router: String, r: RouteDef, ex: Option<Existing>) -> Outcome {
        let id = format!("Route/{router}/{}", r.name);
        let spec = match route_spec(&r) {
            Ok(s) => s,
            Err(e) => return Outcome::Error(format!("{id}: {e}")),
        };
        let mesh = &*self.mesh;
        match ex {
            Some(ex) if !ex.owned => Self::conflict(&id, &ex),
            None => {
                self.write();
                let res = self
                    .client
                    .create_route()
                    .mesh_name(mesh)
                    .virtual_router_name(&router)
                    .route_name(&r.name)
                    .spec(spec)
                    .set_tags(Some(self.tags()))
                    .send()
                    .await;
                Self::done(id, true, res.map(|_| ()))
            }
            Some(_) => {
                self.read();
                let cur = match self
                    .client
                    .describe_route()
                    .mesh_name(mesh)
                    .virtual_router_name(&router)
                    .route_name(&r.name)
                    .send()
                    .await
                {
                    Ok(o) => o.route().and_then(|d| d.spec()).map(route_wire),
                    Err(e) => return Outcome::Error(format!("{id}: describe: {}", err(e))),
                };
                if cur.as_ref() == Some(&route_wire_desired(&r)) {
                    return Outcome::Unchanged;
                }
                self.write();
                let res = self
                    .client
                    .update_route()
                    .mesh_name(mesh)
                    .virtual_router_name(&router)
                    .route_name(&r.name)
                    .spec(spec)
                    .send()
                    .await;
                Self::done(id, false, res.map(|_| ()))
            }
        }
    }

    async fn apply_service(&self, vs: VirtualServiceDef, ex: Option<Existing>) -> Outcome {
        let name = vs.names.aws_name.clone();
        let id = format!("VirtualService/{name}");
        let spec = match service_spec(&vs) {
            Ok(s) => s,
            Err(e) => return Outcome::Error(format!("{id}: {e}")),
        };
        let mesh = &*self.mesh;
        match ex {
            Some(ex) if !ex.owned => Self::conflict(&id, &ex),
            None => {
                self.write();
                let res = self
                    .client
                    .create_virtual_service()
                    .mesh_name(mesh)
                    .virtual_service_name(&name)
                    .spec(spec)
                    .set_tags(Some(self.tags()))
                    .send()
                    .await;
                Self::done(id, true, res.map(|_| ()))
            }
            Some(_) => {
                self.read();
                let cur = match self
                    .client
                    .describe_virtual_service()
                    .mesh_name(mesh)
                    .virtual_service_name(&name)
                    .send()
                    .await
                {
                    Ok(o) => o.virtual_service().and_then(|d| d.spec()).map(service_wire),
                    Err(e) => return Outcome::Error(format!("{id}: describe: {}", err(e))),
                };
                if cur.as_ref() == Some(&service_wire_desired(&vs)) {
                    return Outcome::Unchanged;
                }
                self.write();
                let res = self
                    .client
                    .update_virtual_service()
                    .mesh_name(mesh)
                    .virtual_service_name(&name)
                    .spec(spec)
                    .send()
                    .await;
                Self::done(id, false, res.map(|_| ()))
            }
        }
    }
}

/// Makes mesh `mesh_name` hold `desired` (see the module docs), with default options.
/// Never panics; every failure is in the report. Call it inside a tokio runtime.
pub async fn sync(client: &Client, mesh_name: &str, desired: &DesiredState) -> SyncReport {
    sync_with(client, mesh_name, desired, &SyncOptions::default()).await
}

/// [`sync`] with explicit options.
pub async fn sync_with(
    client: &Client,
    mesh_name: &str,
    desired: &DesiredState,
    opts: &SyncOptions,
) -> SyncReport {
    let cx = Ctx {
        client: client.clone(),
        mesh: Arc::from(mesh_name),
        owner_tags: Arc::new(desired.tags()),
        reads: Arc::new(AtomicUsize::new(0)),
        writes: Arc::new(AtomicUsize::new(0)),
    };
    let mut report = SyncReport::default();
    run(&cx, desired, opts.concurrency.max(1), &mut report).await;
    report.created.sort();
    report.updated.sort();
    report.deleted.sort();
    report.errors.sort();
    report.conflicts.sort();
    report.read_calls = cx.reads.load(Ordering::Relaxed);
    report.mutating_calls = cx.writes.load(Ordering::Relaxed);
    report
}

/// Records outcomes; returns, per input, whether the resource is in place.
fn record(report: &mut SyncReport, outs: Vec<Option<Outcome>>) -> Vec<bool> {
    outs.into_iter()
        .map(|o| {
            let o = o.unwrap_or_else(|| Outcome::Error("internal error: sync task failed".into()));
            let ok = o.in_place();
            match o {
                Outcome::Created(id) => report.created.push(id),
                Outcome::Updated(id) => report.updated.push(id),
                Outcome::Deleted(id) => report.deleted.push(id),
                Outcome::Unchanged => report.unchanged += 1,
                Outcome::Conflict(m) => report.conflicts.push(m),
                Outcome::Error(m) => report.errors.push(m),
            }
            ok
        })
        .collect()
}

/// Reads the tags of every listed resource (concurrently).
async fn tagged(
    cx: &Ctx,
    limit: usize,
    listed: Vec<(String, String)>,
) -> Result<BTreeMap<String, Existing>, String> {
    let futs: Vec<_> = listed
        .iter()
        .map(|(_, arn)| {
            let cx = cx.clone();
            let arn = arn.clone();
            async move { cx.owned(&arn).await }
        })
        .collect();
    let outs = run_all(limit, futs).await;
    let mut m = BTreeMap::new();
    for ((name, arn), owned) in listed.into_iter().zip(outs) {
        let owned = owned.unwrap_or_else(|| Err("internal error: tag read failed".into()))?;
        m.insert(name, Existing { arn, owned });
    }
    Ok(m)
}

type Inventory = (
    BTreeMap<String, Existing>,
    BTreeMap<String, Existing>,
    BTreeMap<String, Existing>,
    BTreeMap<String, BTreeMap<String, Existing>>,
);

async fn inventory(cx: &Ctx, limit: usize) -> Result<Inventory, String> {
    let nodes = tagged(cx, limit, cx.list(Kind::Node, None).await?).await?;
    let routers = tagged(cx, limit, cx.list(Kind::Router, None).await?).await?;
    let services = tagged(cx, limit, cx.list(Kind::Service, None).await?).await?;
    let owned_routers: Vec<String> = routers
        .iter()
        .filter(|(_, e)| e.owned)
        .map(|(n, _)| n.clone())
        .collect();
    let futs: Vec<_> = owned_routers
        .iter()
        .map(|r| {
            let cx = cx.clone();
            let r = r.clone();
            async move { cx.list(Kind::Route, Some(&r)).await }
        })
        .collect();
    let lists = run_all(limit, futs).await;
    let mut all: Vec<(String, String, String)> = Vec::new();
    for (router, l) in owned_routers.iter().zip(lists) {
        for (name, arn) in l.unwrap_or_else(|| Err("internal error: route list failed".into()))? {
            all.push((router.clone(), name, arn));
        }
    }
    let owned = tagged(
        cx,
        limit,
        all.iter()
            .enumerate()
            .map(|(i, (_, _, arn))| (i.to_string(), arn.clone()))
            .collect(),
    )
    .await?;
    let mut routes: BTreeMap<String, BTreeMap<String, Existing>> = owned_routers
        .iter()
        .map(|r| (r.clone(), BTreeMap::new()))
        .collect();
    for (i, (router, name, _)) in all.into_iter().enumerate() {
        if let Some(ex) = owned.get(&i.to_string()) {
            routes.entry(router).or_default().insert(name, ex.clone());
        }
    }
    Ok((nodes, routers, services, routes))
}

async fn run(cx: &Ctx, desired: &DesiredState, limit: usize, report: &mut SyncReport) {
    cx.read();
    if let Err(e) = cx.client.describe_mesh().mesh_name(&*cx.mesh).send().await {
        report.errors.push(format!("Mesh/{}: {}", cx.mesh, err(e)));
        return;
    }
    let (nodes, routers, services, routes) = match inventory(cx, limit).await {
        Ok(x) => x,
        Err(e) => {
            report
                .errors
                .push(format!("Mesh/{}: listing resources: {e}", cx.mesh));
            return;
        }
    };

    // 1. Virtual nodes.
    let names: Vec<&String> = desired.virtual_nodes.keys().collect();
    let futs: Vec<_> = desired
        .virtual_nodes
        .iter()
        .map(|(name, vn)| {
            let cx = cx.clone();
            let (vn, ex) = (vn.clone(), nodes.get(name).cloned());
            async move { cx.apply_node(vn, ex).await }
        })
        .collect();
    let ok = record(report, run_all(limit, futs).await);
    let bad_nodes: BTreeSet<&String> = names
        .into_iter()
        .zip(ok)
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n)
        .collect();

    // 2. Virtual routers.
    let names: Vec<&String> = desired.virtual_routers.keys().collect();
    let futs: Vec<_> = desired
        .virtual_routers
        .iter()
        .map(|(name, vr)| {
            let cx = cx.clone();
            let (vr, ex) = (vr.clone(), routers.get(name).cloned());
            async move { cx.apply_router(vr, ex).await }
        })
        .collect();
    let ok = record(report, run_all(limit, futs).await);
    let bad_routers: BTreeSet<&String> = names
        .into_iter()
        .zip(ok)
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n)
        .collect();

    // 3. Routes of the routers in place (skipping routes to nodes not in place), then the
    //    stale owned routes of those routers.
    let mut futs = Vec::new();
    let mut stale = Vec::new();
    for (name, vr) in &desired.virtual_routers {
        if bad_routers.contains(name) {
            continue;
        }
        let existing = routes.get(name);
        let wanted: BTreeSet<&String> = vr.routes.iter().map(|r| &r.name).collect();
        for r in &vr.routes {
            let missing: Vec<&str> = r
                .kind
                .targets()
                .iter()
                .filter(|t| bad_nodes.contains(&t.node.aws_name))
                .map(|t| t.node.aws_name.as_str())
                .collect();
            if !missing.is_empty() {
                report.errors.push(format!(
                    "Route/{name}/{}: not written: its target virtual nodes are not in place ({})",
                    r.name,
                    missing.join(", ")
                ));
                continue;
            }
            let cx = cx.clone();
            let (router, r) = (name.clone(), r.clone());
            let ex = existing.and_then(|m| m.get(&r.name)).cloned();
            futs.push(async move { cx.apply_route(router, r, ex).await });
        }
        for (rname, ex) in existing.into_iter().flatten() {
            if ex.owned && !wanted.contains(rname) {
                stale.push((name.clone(), rname.clone()));
            }
        }
    }
    record(report, run_all(limit, futs).await);
    delete_routes(cx, limit, stale, report).await;

    // 4. Virtual services whose router is in place.
    let mut futs = Vec::new();
    for (name, vs) in &desired.virtual_services {
        if bad_routers.contains(&vs.router.aws_name) {
            report.errors.push(format!(
                "VirtualService/{name}: not written: its virtual router {} is not in place",
                vs.router.aws_name
            ));
            continue;
        }
        let cx = cx.clone();
        let (vs, ex) = (vs.clone(), services.get(name).cloned());
        futs.push(async move { cx.apply_service(vs, ex).await });
    }
    record(report, run_all(limit, futs).await);

    // 5. Stale owned resources: services, then routers (their routes first), then nodes.
    let gone = |m: &BTreeMap<String, Existing>, keep: &dyn Fn(&String) -> bool| -> Vec<String> {
        m.iter()
            .filter(|(n, e)| e.owned && !keep(n))
            .map(|(n, _)| n.clone())
            .collect()
    };
    let stale_services = gone(&services, &|n| desired.virtual_services.contains_key(n));
    delete_all(cx, limit, Kind::Service, stale_services, report).await;
    let stale_routers = gone(&routers, &|n| desired.virtual_routers.contains_key(n));
    let stale_routes: Vec<(String, String)> = stale_routers
        .iter()
        .flat_map(|r| {
            routes
                .get(r)
                .into_iter()
                .flatten()
                .filter(|(_, e)| e.owned)
                .map(move |(n, _)| (r.clone(), n.clone()))
        })
        .collect();
    delete_routes(cx, limit, stale_routes, report).await;
    delete_all(cx, limit, Kind::Router, stale_routers, report).await;
    let stale_nodes = gone(&nodes, &|n| desired.virtual_nodes.contains_key(n));
    delete_all(cx, limit, Kind::Node, stale_nodes, report).await;
}

async fn delete_routes(
    cx: &Ctx,
    limit: usize,
    routes: Vec<(String, String)>,
    report: &mut SyncReport,
) {
    let futs: Vec<_> = routes
        .into_iter()
        .map(|(router, name)| {
            let cx = cx.clone();
            async move { cx.delete(Kind::Route, Some(router), name).await }
        })
        .collect();
    record(report, run_all(limit, futs).await);
}

async fn delete_all(
    cx: &Ctx,
    limit: usize,
    kind: Kind,
    names: Vec<String>,
    report: &mut SyncReport,
) {
    let futs: Vec<_> = names
        .into_iter()
        .map(|name| {
            let cx = cx.clone();
            async move { cx.delete(kind, None, name).await }
        })
        .collect();
    record(report, run_all(limit, futs).await);
}

// ---- desired model → SDK specs ----

fn port_mapping(l: &PortMapping) -> Result<t::PortMapping, String> {
    t::PortMapping::builder()
        .port(i32::from(l.port))
        .protocol(t::PortProtocol::from(l.protocol.as_str()))
        .build()
        .map_err(|e| e.to_string())
}

/// The API spec of a virtual node.
pub fn node_spec(vn: &VirtualNodeDef) -> Result<t::VirtualNodeSpec, String> {
    let mut b = t::VirtualNodeSpec::builder();
    for l in &vn.listeners {
        b = b.listeners(
            t::Listener::builder()
                .port_mapping(port_mapping(l)?)
                .build(),
        );
    }
    let dns = t::DnsServiceDiscovery::builder()
        .hostname(&vn.hostname)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(b.service_discovery(t::ServiceDiscovery::Dns(dns)).build())
}

/// The API spec of a virtual router (its routes are separate resources).
pub fn router_spec(vr: &VirtualRouterDef) -> Result<t::VirtualRouterSpec, String> {
    let mut b = t::VirtualRouterSpec::builder();
    for l in &vr.listeners {
        b = b.listeners(
            t::VirtualRouterListener::builder()
                .port_mapping(port_mapping(l)?)
                .build(),
        );
    }
    Ok(b.build())
}

fn weighted(ts: &[Target]) -> Result<Vec<t::WeightedTarget>, String> {
    ts.iter()
        .map(|tg| {
            t::WeightedTarget::builder()
                .virtual_node(&tg.node.aws_name)
                .weight(i32::from(tg.weight))
                .set_port(tg.port.map(i32::from))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The API spec of a route.
pub fn route_spec(r: &RouteDef) -> Result<t::RouteSpec, String> {
    let b = t::RouteSpec::builder().priority(i32::from(r.priority));
    Ok(match &r.kind {
        RouteKind::Http {
            http2,
            r#match,
            targets,
        } => {
            let mut m = t::HttpRouteMatch::builder().set_port(r#match.port.map(i32::from));
            m = match &r#match.path {
                PathMatch::Prefix(p) => m.prefix(p),
                PathMatch::Exact(p) => m.path(t::HttpPathMatch::builder().exact(p).build()),
                PathMatch::Regex(p) => m.path(t::HttpPathMatch::builder().regex(p).build()),
            };
            if let Some(meth) = &r#match.method {
                m = m.method(t::HttpMethod::from(meth.as_str()));
            }
            for h in &r#match.headers {
                let mm = match &h.value {
                    HeaderValue::Exact(v) => t::HeaderMatchMethod::Exact(v.clone()),
                    HeaderValue::Regex(v) => t::HeaderMatchMethod::Regex(v.clone()),
                };
                m = m.headers(
                    t::HttpRouteHeader::builder()
                        .name(&h.name)
                        .r#match(mm)
                        .build()
                        .map_err(|e| e.to_string())?,
                );
            }
            let action = t::HttpRouteAction::builder()
                .set_weighted_targets(Some(weighted(targets)?))
                .build()
                .map_err(|e| e.to_string())?;
            let hr = t::HttpRoute::builder()
                .r#match(m.build())
                .action(action)
                .build();
            if *http2 {
                b.http2_route(hr).build()
            } else {
                b.http_route(hr).build()
            }
        }
        RouteKind::Tcp { port, targets } => {
            let action = t::TcpRouteAction::builder()
                .set_weighted_targets(Some(weighted(targets)?))
                .build()
                .map_err(|e| e.to_string())?;
            let mut tr = t::TcpRoute::builder().action(action);
            if let Some(p) = port {
                tr = tr.r#match(t::TcpRouteMatch::builder().port(i32::from(*p)).build());
            }
            b.tcp_route(tr.build()).build()
        }
    })
}

/// The API spec of a virtual service.
pub fn service_spec(vs: &VirtualServiceDef) -> Result<t::VirtualServiceSpec, String> {
    let p = t::VirtualRouterServiceProvider::builder()
        .virtual_router_name(&vs.router.aws_name)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(t::VirtualServiceSpec::builder()
        .provider(t::VirtualServiceProvider::VirtualRouter(p))
        .build())
}

// ---- comparison: desired and described specs in one canonical JSON shape ----
// Fields meshbridge never sets make the described form differ (`"extra": true`), so an
// edit adding them is reverted too.

fn mapping_wire(port: i32, protocol: &str) -> Value {
    json!({"port": port, "protocol": protocol})
}

fn sorted(mut v: Vec<Value>) -> Value {
    v.sort_by_key(|x| x.to_string());
    Value::Array(v)
}

fn node_wire_desired(vn: &VirtualNodeDef) -> Value {
    json!({
        "listeners": sorted(vn.listeners.iter().map(|l| mapping_wire(i32::from(l.port), l.protocol.as_str())).collect()),
        "dns": vn.hostname,
        "extra": false,
    })
}

fn node_wire(s: &t::VirtualNodeSpec) -> Value {
    let mut extra =
        s.backend_defaults().is_some() || !s.backends().is_empty() || s.logging().is_some();
    let mut ls = Vec::new();
    for l in s.listeners() {
        extra |= l.tls().is_some()
            || l.health_check().is_some()
            || l.timeout().is_some()
            || l.outlier_detection().is_some()
            || l.connection_pool().is_some();
        match l.port_mapping() {
            Some(pm) => ls.push(mapping_wire(pm.port(), pm.protocol().as_str())),
            None => extra = true,
        }
    }
    let dns = match s.service_discovery() {
        Some(t::ServiceDiscovery::Dns(d)) => {
            extra |= d.ip_preference().is_some()
                || d.response_type()
                    .is_some_and(|r| *r != t::DnsResponseType::Loadbalancer);
            json!(d.hostname())
        }
        Some(_) => json!({"other": true}),
        None => Value::Null,
    };
    json!({"listeners": sorted(ls), "dns": dns, "extra": extra})
}

fn router_wire_desired(vr: &VirtualRouterDef) -> Value {
    sorted(
        vr.listeners
            .iter()
            .map(|l| mapping_wire(i32::from(l.port), l.protocol.as_str()))
            .collect(),
    )
}

fn router_wire(s: &t::VirtualRouterSpec) -> Value {
    sorted(
        s.listeners()
            .iter()
            .map(|l| match l.port_mapping() {
                Some(pm) => mapping_wire(pm.port(), pm.protocol().as_str()),
                None => Value::Null,
            })
            .collect(),
    )
}

fn targets_wire_desired(ts: &[Target]) -> Value {
    Value::Array(
        ts.iter()
            .map(
                |tg| json!({"virtualNode": tg.node.aws_name, "weight": tg.weight, "port": tg.port}),
            )
            .collect(),
    )
}

fn targets_wire(ts: &[t::WeightedTarget]) -> Value {
    Value::Array(
        ts.iter()
            .map(|tg| json!({"virtualNode": tg.virtual_node(), "weight": tg.weight(), "port": tg.port()}))
            .collect(),
    )
}

fn route_wire_desired(r: &RouteDef) -> Value {
    match &r.kind {
        RouteKind::Http {
            http2,
            r#match,
            targets,
        } => json!({
            "priority": r.priority,
            "type": if *http2 { "http2" } else { "http" },
            "match": http_match_json(r#match),
            "targets": targets_wire_desired(targets),
            "extra": false,
        }),
        RouteKind::Tcp { port, targets } => json!({
            "priority": r.priority,
            "type": "tcp",
            "match": {"port": port},
            "targets": targets_wire_desired(targets),
            "extra": false,
        }),
    }
}

fn http_route_wire(h: &t::HttpRoute, extra: &mut bool) -> (Value, Value) {
    *extra |= h.retry_policy().is_some() || h.timeout().is_some();
    let mut m = serde_json::Map::new();
    if let Some(hm) = h.r#match() {
        *extra |= !hm.query_parameters().is_empty() || hm.scheme().is_some();
        if let Some(p) = hm.prefix() {
            m.insert("prefix".into(), json!(p));
        }
        if let Some(p) = hm.path() {
            let mut pm = serde_json::Map::new();
            if let Some(e) = p.exact() {
                pm.insert("exact".into(), json!(e));
            }
            if let Some(r) = p.regex() {
                pm.insert("regex".into(), json!(r));
            }
            m.insert("path".into(), Value::Object(pm));
        }
        if let Some(meth) = hm.method() {
            m.insert("method".into(), json!(meth.as_str()));
        }
        if !hm.headers().is_empty() {
            let hs: Vec<Value> = hm
                .headers()
                .iter()
                .map(|hd| {
                    *extra |= hd.invert() == Some(true);
                    let mm = match hd.r#match() {
                        Some(t::HeaderMatchMethod::Exact(v)) => json!({"exact": v}),
                        Some(t::HeaderMatchMethod::Regex(v)) => json!({"regex": v}),
                        Some(_) => json!({"other": true}),
                        None => Value::Null,
                    };
                    json!({"name": hd.name(), "match": mm})
                })
                .collect();
            m.insert("headers".into(), Value::Array(hs));
        }
        if let Some(p) = hm.port() {
            m.insert("port".into(), json!(p));
        }
    }
    let targets = h
        .action()
        .map(|a| targets_wire(a.weighted_targets()))
        .unwrap_or(Value::Null);
    (Value::Object(m), targets)
}

fn route_wire(s: &t::RouteSpec) -> Value {
    let mut extra = s.grpc_route().is_some();
    let priority = s.priority();
    if let Some(h) = s.http_route() {
        extra |= s.http2_route().is_some() || s.tcp_route().is_some();
        let (m, targets) = http_route_wire(h, &mut extra);
        return json!({"priority": priority, "type": "http", "match": m, "targets": targets, "extra": extra});
    }
    if let Some(h) = s.http2_route() {
        extra |= s.tcp_route().is_some();
        let (m, targets) = http_route_wire(h, &mut extra);
        return json!({"priority": priority, "type": "http2", "match": m, "targets": targets, "extra": extra});
    }
    if let Some(tr) = s.tcp_route() {
        extra |= tr.timeout().is_some();
        let targets = tr
            .action()
            .map(|a| targets_wire(a.weighted_targets()))
            .unwrap_or(Value::Null);
        let port = tr.r#match().and_then(|m| m.port());
        return json!({"priority": priority, "type": "tcp", "match": {"port": port}, "targets": targets, "extra": extra});
    }
    json!({"priority": priority, "type": "other", "extra": true})
}

fn service_wire_desired(vs: &VirtualServiceDef) -> Value {
    json!({"router": vs.router.aws_name})
}

fn service_wire(s: &t::VirtualServiceSpec) -> Value {
    match s.provider() {
        Some(t::VirtualServiceProvider::VirtualRouter(r)) => {
            json!({"router": r.virtual_router_name()})
        }
        Some(t::VirtualServiceProvider::VirtualNode(n)) => json!({"node": n.virtual_node_name()}),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &str) -> Names {
        Names {
            namespace: "ns".into(),
            k8s_name: n.into(),
            aws_name: format!("{n}_ns"),
        }
    }

    /// A spec built for the API reads back (describe) as equal to the desired form.
    #[test]
    fn wire_forms_round_trip() {
        let r = RouteDef {
            name: "p80-m0-get".into(),
            priority: 1,
            kind: RouteKind::Http {
                http2: false,
                r#match: HttpMatch {
                    path: PathMatch::Regex("(?:/v[0-9]).*".into()),
                    method: Some("GET".into()),
                    headers: vec![HeaderDef {
                        name: "x-canary".into(),
                        value: HeaderValue::Exact("1".into()),
                    }],
                    port: None,
                },
                targets: vec![
                    Target {
                        node: names("a"),
                        weight: 67,
                        port: None,
                    },
                    Target {
                        node: names("b"),
                        weight: 33,
                        port: None,
                    },
                ],
            },
        };
        let spec = route_spec(&r).unwrap();
        assert_eq!(route_wire(&spec), route_wire_desired(&r));
        let mut r2 = r.clone();
        r2.priority = 2;
        assert_ne!(route_wire(&spec), route_wire_desired(&r2));
        let tcp = RouteDef {
            name: "p5432-tcp".into(),
            priority: 1000,
            kind: RouteKind::Tcp {
                port: Some(5432),
                targets: vec![Target {
                    node: names("db"),
                    weight: 100,
                    port: Some(5432),
                }],
            },
        };
        assert_eq!(
            route_wire(&route_spec(&tcp).unwrap()),
            route_wire_desired(&tcp)
        );
        let vn = VirtualNodeDef {
            names: names("a"),
            hostname: "a.ns.svc.cluster.local".into(),
            listeners: vec![PortMapping {
                port: 8080,
                protocol: PortProtocol::Http,
            }],
            pod_selector: None,
            parents: Default::default(),
        };
        assert_eq!(node_wire(&node_spec(&vn).unwrap()), node_wire_desired(&vn));
        let vr = VirtualRouterDef {
            names: names("r"),
            listeners: vn.listeners.clone(),
            routes: vec![],
            parents: Default::default(),
        };
        assert_eq!(
            router_wire(&router_spec(&vr).unwrap()),
            router_wire_desired(&vr)
        );
        let vs = VirtualServiceDef {
            names: names("r"),
            router: names("r"),
            parents: Default::default(),
        };
        assert_eq!(
            service_wire(&service_spec(&vs).unwrap()),
            service_wire_desired(&vs)
        );
    }
}
