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
//! - Every resource kind goes through the same rules (`apply`, `delete`); what differs
//!   per kind (the SDK's operations and builders) is the `Resource` implementation each kind
//!   gets from `write_kind!`.
//! - Every failure and conflict in the [`SyncReport`] names its resource ([`ResourceId`]) and
//!   carries the input objects behind it (the `parents` of the planned resource; a mesh-wide
//!   failure: every parent of the plan).
//! - Credentials, region and endpoint come from the standard AWS chain ([`client_from_env`];
//!   `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_APP_MESH` override the endpoint). Throttling
//!   and transient errors are retried with exponential backoff and jitter ([`retry_config`]).

use crate::model::*;
use crate::wire::*;
use aws_sdk_appmesh::Client;
use aws_sdk_appmesh::config::retry::RetryConfig;
use aws_sdk_appmesh::error::DisplayErrorContext;
use aws_sdk_appmesh::types as t;
use meshbridge_core::model::ObjectKey;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use crate::wire::{node_spec, route_spec, router_spec, service_spec};
pub use aws_sdk_appmesh;

/// An App Mesh resource, as sync names it in its report.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceId {
    /// The mesh itself (the user's: only described, never written).
    Mesh(String),
    VirtualNode(String),
    VirtualRouter(String),
    Route {
        router: String,
        name: String,
    },
    VirtualService(String),
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceId::Mesh(n) => write!(f, "Mesh/{n}"),
            ResourceId::VirtualNode(n) => write!(f, "VirtualNode/{n}"),
            ResourceId::VirtualRouter(n) => write!(f, "VirtualRouter/{n}"),
            ResourceId::Route { router, name } => write!(f, "Route/{router}/{name}"),
            ResourceId::VirtualService(n) => write!(f, "VirtualService/{n}"),
        }
    }
}

/// An API operation on one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Describe,
    Create,
    Update,
    Delete,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Describe => "describe",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        })
    }
}

/// Why a resource is not in place.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// An API call outside the per-resource operations failed (the mesh cannot be described,
    /// meshes cannot be listed).
    #[error("{0}")]
    Api(String),
    /// Listing the mesh's resources or reading their tags failed.
    #[error("listing resources: {0}")]
    Inventory(String),
    /// The desired resource does not form a valid API spec.
    #[error("{0}")]
    Spec(String),
    /// An operation on the resource failed (after the SDK's retries).
    #[error("{op}: {message}")]
    Call { op: Op, message: String },
    /// A route not written because virtual nodes it targets are not in place.
    #[error("not written: its target virtual nodes are not in place ({})", .0.join(", "))]
    TargetsNotInPlace(Vec<String>),
    /// A virtual service not written because its router is not in place.
    #[error("not written: its virtual router {0} is not in place")]
    RouterNotInPlace(String),
    #[error("internal error: sync task failed")]
    TaskFailed,
}

/// A resource sync could not put in place (or delete).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: {error}")]
pub struct Failure {
    pub resource: ResourceId,
    pub error: SyncError,
    /// The input objects (TrafficSplits, ...) behind the resource: empty for a stale
    /// resource that failed to delete, every parent of the plan for a mesh-wide failure.
    pub parents: BTreeSet<ObjectKey>,
}

/// A desired name held by a resource without meshbridge's tags (left alone).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: exists without meshbridge's tags ({arn}); left alone")]
pub struct Conflict {
    pub resource: ResourceId,
    pub arn: String,
    /// The input objects behind the desired resource.
    pub parents: BTreeSet<ObjectKey>,
}

/// What one sync did. `is_ok()` when every desired resource is in place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Resources created, updated, deleted (sorted).
    pub created: Vec<ResourceId>,
    pub updated: Vec<ResourceId>,
    pub deleted: Vec<ResourceId>,
    /// Desired resources already as wanted.
    pub unchanged: usize,
    /// Desired names held by resources without meshbridge's tags (left alone).
    pub conflicts: Vec<Conflict>,
    /// API errors (after retries) and resources that could not be written.
    pub errors: Vec<Failure>,
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

/// Whether AWS credentials are configured for this process without probing instance
/// metadata: access keys, a profile or shared credentials file, IRSA (web identity), or
/// ECS/EKS Pod Identity container credentials.
pub fn credentials_configured() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
    set("AWS_ACCESS_KEY_ID")
        || set("AWS_PROFILE")
        || set("AWS_SHARED_CREDENTIALS_FILE")
        || (set("AWS_ROLE_ARN") && set("AWS_WEB_IDENTITY_TOKEN_FILE"))
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
}

fn err<E>(e: E) -> String
where
    E: std::error::Error,
{
    DisplayErrorContext(e).to_string()
}

/// One API call on the sync's mesh: `send!(cx, operation, setter(value), ...)`.
macro_rules! send {
    ($cx:expr, $op:ident $(, $set:ident($v:expr))* $(,)?) => {
        $cx.client
            .$op()
            .mesh_name(&*$cx.mesh)
            $(.$set($v))*
            .send()
            .await
            .map_err(err)
    };
}

/// One page of a list output: (name, arn) of each item, and the next token.
macro_rules! page {
    ($out:expr, $items:ident, $name:ident) => {
        (
            $out.$items()
                .iter()
                .map(|r| (r.$name().to_string(), r.arn().to_string()))
                .collect::<Vec<_>>(),
            $out.next_token().map(str::to_string),
        )
    };
}

/// Every page of a paginated call (`page(token)` returns the items and the next token).
async fn paged<T, F, Fut>(mut page: F) -> Result<Vec<T>, String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), String>>,
{
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let (items, next) = page(token).await?;
        out.extend(items);
        token = next.filter(|s| !s.is_empty());
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Names of the meshes in the client's account and region (`ListMeshes`, every page),
/// sorted: what discovery reports as App Mesh meshes when credentials exist.
pub async fn list_meshes(client: &Client) -> Result<Vec<String>, SyncError> {
    let out = paged(|token| async move {
        let o = client
            .list_meshes()
            .set_next_token(token)
            .send()
            .await
            .map_err(err)?;
        Ok(page!(o, meshes, mesh_name))
    })
    .await
    .map_err(SyncError::Api)?;
    let mut names: Vec<String> = out.into_iter().map(|(name, _)| name).collect();
    names.sort();
    names.dedup();
    Ok(names)
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
    limit: usize,
    reads: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
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

    /// Whether the resource carries both of meshbridge's tags with this owner.
    async fn owned(&self, arn: String) -> Result<bool, String> {
        let found: BTreeMap<String, String> = paged(|token| {
            let arn = arn.clone();
            async move {
                self.read();
                let o = self
                    .client
                    .list_tags_for_resource()
                    .resource_arn(arn)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(err)?;
                let tags = o.tags().iter().map(|t| (t.key().into(), t.value().into()));
                Ok((tags.collect(), o.next_token().map(str::to_string)))
            }
        })
        .await?
        .into_iter()
        .collect();
        Ok(self.owner_tags.iter().all(|(k, v)| found.get(k) == Some(v)))
    }

    /// (name, arn) of every resource of one listing.
    async fn list(&self, what: Listing<'_>) -> Result<Vec<(String, String)>, String> {
        paged(|token| async move {
            self.read();
            Ok(match what {
                Listing::Nodes => {
                    let o = send!(self, list_virtual_nodes, set_next_token(token))?;
                    page!(o, virtual_nodes, virtual_node_name)
                }
                Listing::Routers => {
                    let o = send!(self, list_virtual_routers, set_next_token(token))?;
                    page!(o, virtual_routers, virtual_router_name)
                }
                Listing::Services => {
                    let o = send!(self, list_virtual_services, set_next_token(token))?;
                    page!(o, virtual_services, virtual_service_name)
                }
                Listing::Routes(router) => {
                    let o = send!(
                        self,
                        list_routes,
                        virtual_router_name(router),
                        set_next_token(token)
                    )?;
                    page!(o, routes, route_name)
                }
            })
        })
        .await
    }

    /// Runs one phase of calls concurrently (at most `limit` in flight) and records their
    /// outcomes; returns the resources not in place.
    async fn phase<F>(&self, report: &mut SyncReport, calls: Vec<(Key, F)>) -> BTreeSet<ResourceId>
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let (keys, futs): (Vec<Key>, Vec<F>) = calls.into_iter().unzip();
        let outs = run_all(self.limit, futs).await;
        let mut bad = BTreeSet::new();
        for ((resource, parents), out) in keys.into_iter().zip(outs) {
            match out.unwrap_or(Outcome::Failed(SyncError::TaskFailed)) {
                Outcome::Created => report.created.push(resource),
                Outcome::Updated => report.updated.push(resource),
                Outcome::Deleted => report.deleted.push(resource),
                Outcome::Unchanged => report.unchanged += 1,
                Outcome::Conflict(arn) => {
                    bad.insert(resource.clone());
                    report.conflicts.push(Conflict {
                        resource,
                        arn,
                        parents,
                    });
                }
                Outcome::Failed(error) => {
                    bad.insert(resource.clone());
                    report.errors.push(Failure {
                        resource,
                        error,
                        parents,
                    });
                }
            }
        }
        bad
    }

    /// Writes (creates or updates) the planned resources of one kind.
    async fn apply_all<T: Resource>(
        &self,
        report: &mut SyncReport,
        planned: Vec<Planned<T>>,
    ) -> BTreeSet<ResourceId> {
        let calls = planned
            .into_iter()
            .map(|p| {
                let cx = self.clone();
                let key = (p.id, p.parents);
                (key, async move { apply(cx, p.def, p.existing).await })
            })
            .collect();
        self.phase(report, calls).await
    }

    /// Deletes stale owned resources.
    async fn delete_all(&self, report: &mut SyncReport, stale: Vec<ResourceId>) {
        let calls = stale
            .into_iter()
            .map(|id| {
                let cx = self.clone();
                let key = (id.clone(), BTreeSet::new());
                (key, async move { delete(cx, id).await })
            })
            .collect();
        self.phase(report, calls).await;
    }
}

#[derive(Clone, Copy)]
enum Listing<'a> {
    Nodes,
    Routers,
    Services,
    Routes(&'a str),
}

#[derive(Clone, Debug)]
struct Existing {
    arn: String,
    owned: bool,
}

/// A resource and the input objects behind it.
type Key = (ResourceId, BTreeSet<ObjectKey>);

/// One desired resource and what holds its name now.
struct Planned<T> {
    id: ResourceId,
    def: T,
    parents: BTreeSet<ObjectKey>,
    existing: Option<Existing>,
}

/// Outcome of one create/update/delete step.
enum Outcome {
    Created,
    Updated,
    Deleted,
    Unchanged,
    /// Held by a resource (this ARN) without meshbridge's tags.
    Conflict(String),
    Failed(SyncError),
}

/// A route with the router it belongs to.
#[derive(Clone)]
struct RouteAt {
    router: String,
    route: RouteDef,
}

/// What differs per resource kind: the spec, its comparison form, and the SDK calls.
trait Resource: Send + Sync + 'static {
    type Spec: Send;
    fn spec(&self) -> Result<Self::Spec, String>;
    /// The comparison form of the desired spec (see [`crate::wire`]).
    fn wire(&self) -> Value;
    fn create(&self, cx: &Ctx, spec: Self::Spec)
    -> impl Future<Output = Result<(), String>> + Send;
    /// The comparison form of the spec App Mesh holds.
    fn describe(&self, cx: &Ctx) -> impl Future<Output = Result<Option<Value>, String>> + Send;
    fn update(&self, cx: &Ctx, spec: Self::Spec)
    -> impl Future<Output = Result<(), String>> + Send;
}

/// Implements [`Resource`] for one kind: `$s` names the definition in the expressions; the
/// name setters address the resource in every call.
macro_rules! write_kind {
    ($def:ty as $s:ident => $spec:ty {
        names: [$($set:ident($v:expr)),+],
        spec: $to_spec:expr,
        wire: $desired:expr,
        calls: $create:ident, $describe:ident, $update:ident,
        described: $get:ident => $described:path $(,)?
    }) => {
        impl Resource for $def {
            type Spec = $spec;
            fn spec(&self) -> Result<$spec, String> {
                let $s = self;
                $to_spec
            }
            fn wire(&self) -> Value {
                let $s = self;
                $desired
            }
            async fn create(&self, cx: &Ctx, spec: $spec) -> Result<(), String> {
                let $s = self;
                let tags = Some(cx.tags());
                send!(cx, $create, $($set($v),)+ spec(spec), set_tags(tags)).map(drop)
            }
            async fn describe(&self, cx: &Ctx) -> Result<Option<Value>, String> {
                let $s = self;
                let o = send!(cx, $describe, $($set($v)),+)?;
                Ok(o.$get().and_then(|d| d.spec()).map($described))
            }
            async fn update(&self, cx: &Ctx, spec: $spec) -> Result<(), String> {
                let $s = self;
                send!(cx, $update, $($set($v),)+ spec(spec)).map(drop)
            }
        }
    };
}

write_kind!(VirtualNodeDef as n => t::VirtualNodeSpec {
    names: [virtual_node_name(&n.names.aws_name)],
    spec: node_spec(n),
    wire: node_wire_desired(n),
    calls: create_virtual_node, describe_virtual_node, update_virtual_node,
    described: virtual_node => node_wire,
});

write_kind!(VirtualRouterDef as r => t::VirtualRouterSpec {
    names: [virtual_router_name(&r.names.aws_name)],
    spec: router_spec(r),
    wire: router_wire_desired(r),
    calls: create_virtual_router, describe_virtual_router, update_virtual_router,
    described: virtual_router => router_wire,
});

write_kind!(RouteAt as r => t::RouteSpec {
    names: [virtual_router_name(&r.router), route_name(&r.route.name)],
    spec: route_spec(&r.route),
    wire: route_wire_desired(&r.route),
    calls: create_route, describe_route, update_route,
    described: route => route_wire,
});

write_kind!(VirtualServiceDef as s => t::VirtualServiceSpec {
    names: [virtual_service_name(&s.names.aws_name)],
    spec: service_spec(s),
    wire: service_wire_desired(s),
    calls: create_virtual_service, describe_virtual_service, update_virtual_service,
    described: virtual_service => service_wire,
});

/// The one write rule: a name held by a resource that is not meshbridge's is a conflict
/// (left alone); a missing resource is created (tagged); an owned one is described and
/// updated only if it differs from the desired spec.
async fn apply<T: Resource>(cx: Ctx, def: T, existing: Option<Existing>) -> Outcome {
    let call = |op, r: Result<(), String>, ok| match r {
        Ok(()) => ok,
        Err(message) => Outcome::Failed(SyncError::Call { op, message }),
    };
    let spec = match def.spec() {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(SyncError::Spec(e)),
    };
    match existing {
        Some(ex) if !ex.owned => Outcome::Conflict(ex.arn),
        None => {
            cx.write();
            call(Op::Create, def.create(&cx, spec).await, Outcome::Created)
        }
        Some(_) => {
            cx.read();
            match def.describe(&cx).await {
                Ok(cur) if cur.as_ref() == Some(&def.wire()) => Outcome::Unchanged,
                Ok(_) => {
                    cx.write();
                    call(Op::Update, def.update(&cx, spec).await, Outcome::Updated)
                }
                Err(message) => Outcome::Failed(SyncError::Call {
                    op: Op::Describe,
                    message,
                }),
            }
        }
    }
}

/// Deletes one (stale, owned) resource.
async fn delete(cx: Ctx, id: ResourceId) -> Outcome {
    cx.write();
    let r = match &id {
        ResourceId::VirtualNode(n) => {
            send!(cx, delete_virtual_node, virtual_node_name(n)).map(drop)
        }
        ResourceId::VirtualRouter(n) => {
            send!(cx, delete_virtual_router, virtual_router_name(n)).map(drop)
        }
        ResourceId::Route { router, name } => send!(
            cx,
            delete_route,
            virtual_router_name(router),
            route_name(name)
        )
        .map(drop),
        ResourceId::VirtualService(n) => {
            send!(cx, delete_virtual_service, virtual_service_name(n)).map(drop)
        }
        ResourceId::Mesh(_) => Err("meshes are the user's: never deleted".to_string()),
    };
    match r {
        Ok(()) => Outcome::Deleted,
        Err(message) => Outcome::Failed(SyncError::Call {
            op: Op::Delete,
            message,
        }),
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
        limit: opts.concurrency.max(1),
        reads: Arc::new(AtomicUsize::new(0)),
        writes: Arc::new(AtomicUsize::new(0)),
    };
    let mut report = SyncReport::default();
    if let Err(error) = run(&cx, desired, &mut report).await {
        report.errors.push(Failure {
            resource: ResourceId::Mesh(mesh_name.to_string()),
            error,
            parents: desired.parents(),
        });
    }
    report.created.sort();
    report.updated.sort();
    report.deleted.sort();
    report
        .errors
        .sort_by_key(|f| (f.resource.clone(), f.to_string()));
    report.conflicts.sort_by_key(|c| c.resource.clone());
    report.read_calls = cx.reads.load(Ordering::Relaxed);
    report.mutating_calls = cx.writes.load(Ordering::Relaxed);
    report
}

/// What the mesh holds now, by name.
struct Inventory {
    nodes: BTreeMap<String, Existing>,
    routers: BTreeMap<String, Existing>,
    services: BTreeMap<String, Existing>,
    /// The routes of meshbridge's routers, per router.
    routes: BTreeMap<String, BTreeMap<String, Existing>>,
}

/// Reads the tags of every listed resource (concurrently).
async fn tagged<K: Ord + Send + 'static>(
    cx: &Ctx,
    listed: Vec<(K, String)>,
) -> Result<BTreeMap<K, Existing>, String> {
    let futs: Vec<_> = listed
        .iter()
        .map(|(_, arn)| {
            let (cx, arn) = (cx.clone(), arn.clone());
            async move { cx.owned(arn).await }
        })
        .collect();
    let outs = run_all(cx.limit, futs).await;
    let mut m = BTreeMap::new();
    for ((key, arn), owned) in listed.into_iter().zip(outs) {
        let owned = owned.unwrap_or_else(|| Err("internal error: tag read failed".into()))?;
        m.insert(key, Existing { arn, owned });
    }
    Ok(m)
}

async fn inventory(cx: &Ctx) -> Result<Inventory, String> {
    let nodes = tagged(cx, cx.list(Listing::Nodes).await?).await?;
    let routers = tagged(cx, cx.list(Listing::Routers).await?).await?;
    let services = tagged(cx, cx.list(Listing::Services).await?).await?;
    let owned_routers: Vec<String> = routers
        .iter()
        .filter(|(_, e)| e.owned)
        .map(|(n, _)| n.clone())
        .collect();
    let futs: Vec<_> = owned_routers
        .iter()
        .map(|r| {
            let (cx, r) = (cx.clone(), r.clone());
            async move { cx.list(Listing::Routes(&r)).await }
        })
        .collect();
    let lists = run_all(cx.limit, futs).await;
    let mut listed = Vec::new();
    for (router, l) in owned_routers.iter().zip(lists) {
        for (name, arn) in l.unwrap_or_else(|| Err("internal error: route list failed".into()))? {
            listed.push(((router.clone(), name), arn));
        }
    }
    let mut routes: BTreeMap<String, BTreeMap<String, Existing>> = owned_routers
        .into_iter()
        .map(|r| (r, BTreeMap::new()))
        .collect();
    for ((router, name), ex) in tagged(cx, listed).await? {
        routes.entry(router).or_default().insert(name, ex);
    }
    Ok(Inventory {
        nodes,
        routers,
        services,
        routes,
    })
}

/// The planned resources of one kind, with what holds each name now.
fn planned<'a, T: Clone + 'a>(
    defs: impl IntoIterator<Item = (&'a String, &'a T, &'a BTreeSet<ObjectKey>)>,
    id: fn(String) -> ResourceId,
    existing: &BTreeMap<String, Existing>,
) -> Vec<Planned<T>> {
    defs.into_iter()
        .map(|(name, def, parents)| Planned {
            id: id(name.clone()),
            def: def.clone(),
            parents: parents.clone(),
            existing: existing.get(name).cloned(),
        })
        .collect()
}

/// The sync proper; an `Err` is a mesh-wide failure (nothing was written).
async fn run(cx: &Ctx, desired: &DesiredState, report: &mut SyncReport) -> Result<(), SyncError> {
    cx.read();
    if let Err(e) = cx.client.describe_mesh().mesh_name(&*cx.mesh).send().await {
        return Err(SyncError::Api(err(e)));
    }
    let inv = inventory(cx).await.map_err(SyncError::Inventory)?;

    // 1. Virtual nodes.
    let nodes = desired
        .virtual_nodes
        .iter()
        .map(|(n, d)| (n, d, &d.parents));
    let nodes = planned(nodes, ResourceId::VirtualNode, &inv.nodes);
    let bad_nodes = cx.apply_all(report, nodes).await;

    // 2. Virtual routers.
    let routers = desired
        .virtual_routers
        .iter()
        .map(|(n, d)| (n, d, &d.parents));
    let routers = planned(routers, ResourceId::VirtualRouter, &inv.routers);
    let bad_routers = cx.apply_all(report, routers).await;

    // 3. Routes of the routers in place (skipping routes to nodes not in place), then the
    //    stale owned routes of those routers.
    let mut routes = Vec::new();
    let mut stale = Vec::new();
    for (router, vr) in &desired.virtual_routers {
        if bad_routers.contains(&ResourceId::VirtualRouter(router.clone())) {
            continue;
        }
        let existing = inv.routes.get(router);
        for r in &vr.routes {
            let id = ResourceId::Route {
                router: router.clone(),
                name: r.name.clone(),
            };
            let missing: Vec<String> = r
                .kind
                .targets()
                .iter()
                .map(|t| t.node.aws_name.clone())
                .filter(|n| bad_nodes.contains(&ResourceId::VirtualNode(n.clone())))
                .collect();
            if !missing.is_empty() {
                report.errors.push(Failure {
                    resource: id,
                    error: SyncError::TargetsNotInPlace(missing),
                    parents: vr.parents.clone(),
                });
                continue;
            }
            routes.push(Planned {
                id,
                def: RouteAt {
                    router: router.clone(),
                    route: r.clone(),
                },
                parents: vr.parents.clone(),
                existing: existing.and_then(|m| m.get(&r.name)).cloned(),
            });
        }
        for (name, ex) in existing.into_iter().flatten() {
            if ex.owned && !vr.routes.iter().any(|r| &r.name == name) {
                stale.push(ResourceId::Route {
                    router: router.clone(),
                    name: name.clone(),
                });
            }
        }
    }
    cx.apply_all(report, routes).await;
    cx.delete_all(report, stale).await;

    // 4. Virtual services whose router is in place.
    let mut services = Vec::new();
    for (n, vs) in &desired.virtual_services {
        let router = &vs.router.aws_name;
        if bad_routers.contains(&ResourceId::VirtualRouter(router.clone())) {
            report.errors.push(Failure {
                resource: ResourceId::VirtualService(n.clone()),
                error: SyncError::RouterNotInPlace(router.clone()),
                parents: vs.parents.clone(),
            });
            continue;
        }
        services.push((n, vs, &vs.parents));
    }
    let services = planned(services, ResourceId::VirtualService, &inv.services);
    cx.apply_all(report, services).await;

    // 5. Stale owned resources: services, then routers (their routes first), then nodes.
    let stale = |have: &BTreeMap<String, Existing>, want: &dyn Fn(&String) -> bool| {
        have.iter()
            .filter(|(n, e)| e.owned && !want(n))
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    let services = stale(&inv.services, &|n| desired.virtual_services.contains_key(n));
    let services = services.into_iter().map(ResourceId::VirtualService);
    cx.delete_all(report, services.collect()).await;
    let routers = stale(&inv.routers, &|n| desired.virtual_routers.contains_key(n));
    let routes = routers.iter().flat_map(|router| {
        let owned = inv.routes.get(router).into_iter().flatten();
        owned
            .filter(|(_, e)| e.owned)
            .map(|(name, _)| ResourceId::Route {
                router: router.clone(),
                name: name.clone(),
            })
    });
    cx.delete_all(report, routes.collect()).await;
    let routers = routers.into_iter().map(ResourceId::VirtualRouter);
    cx.delete_all(report, routers.collect()).await;
    let nodes = stale(&inv.nodes, &|n| desired.virtual_nodes.contains_key(n));
    let nodes = nodes.into_iter().map(ResourceId::VirtualNode);
    cx.delete_all(report, nodes.collect()).await;
    Ok(())
}
