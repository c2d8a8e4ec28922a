//! `--source kube`: watches (kube-rs watchers, relist-aware) on the SMI kinds, meshbridge.io
//! kinds, Gateway API routes (GAMMA) and ReferenceGrants, Namespaces, Services,
//! ServiceAccounts, Pods, Deployments and EndpointSlices.
//!
//! SMI versions: every released version of each SMI group is probed through discovery;
//! each kind is watched once, at the newest served version. SMI's own CRDs serve several
//! versions without conversion (the stored object is returned unchanged under the requested
//! apiVersion), so the version an object was written in is recovered from its
//! `managedFields` (the apiVersion of its latest non-status write) before loading it —
//! otherwise a v1alpha1 TrafficSplit read as v1alpha4 would lose its quantities. Objects
//! are then loaded by core's loader (`load_value`), exactly like files.

use super::{Sender, Source, SyncTracker, changes_of};
use crate::Result;
use crate::discovery::{Discovery, Resource, typed_value};
use crate::types::{Change, Msg};
use crate::watch::WatchMessages;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use meshbridge_core::api::common::Condition;
use meshbridge_core::load::Loaded;
use meshbridge_core::model::{Kind, ObjectKey, Origin};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// SMI and meshbridge.io groups with their released versions, newest first, and kinds.
pub const CUSTOM_GROUPS: &[(&str, &[&str], &[Kind])] = &[
    (
        "split.smi-spec.io",
        &["v1alpha4", "v1alpha3", "v1alpha2", "v1alpha1"],
        &[Kind::TrafficSplit],
    ),
    (
        "access.smi-spec.io",
        &["v1alpha3", "v1alpha2", "v1alpha1"],
        &[Kind::TrafficTarget],
    ),
    (
        "specs.smi-spec.io",
        &["v1alpha4", "v1alpha3", "v1alpha2", "v1alpha1"],
        &[Kind::HTTPRouteGroup, Kind::TCPRoute, Kind::UDPRoute],
    ),
    ("meshbridge.io", &["v1alpha1"], &[Kind::Mesh, Kind::Install]),
    // Gateway API (GAMMA routes as input); Gateway API CRDs convert between versions, so
    // the newest served version is read.
    (
        "gateway.networking.k8s.io",
        &["v1", "v1beta1", "v1alpha2"],
        &[
            Kind::HTTPRoute,
            Kind::GRPCRoute,
            Kind::GatewayTCPRoute,
            Kind::ReferenceGrant,
        ],
    ),
];

/// Built-in kinds read: (apiVersion, kind).
pub const CORE_KINDS: &[(&str, Kind)] = &[
    ("v1", Kind::Namespace),
    ("v1", Kind::Service),
    ("v1", Kind::ServiceAccount),
    ("v1", Kind::Pod),
    ("apps/v1", Kind::Deployment),
    ("discovery.k8s.io/v1", Kind::EndpointSlice),
];

/// What was found for each input kind: the resource watched and every served version.
#[derive(Clone, Debug, Default)]
pub struct InputResources {
    pub watched: BTreeMap<Kind, Resource>,
    pub served_versions: BTreeMap<Kind, Vec<String>>,
    /// Every served version of each custom kind (`Resource` per version: whether that
    /// version has a status subresource differs between CRDs).
    pub by_version: BTreeMap<(Kind, String), Resource>,
    /// Kinds whose CRD is not installed.
    pub missing: Vec<Kind>,
}

pub type SharedInputResources = Arc<Mutex<InputResources>>;

pub struct KubeSource {
    pub client: Client,
    pub discovery: Discovery,
    /// Filled at start; the status writer reads it (status subresource or Events).
    pub resources: SharedInputResources,
}

impl InputResources {
    /// The resource to write `kind`'s status through for an object written as
    /// `api_version`: that version when it is served (its schema is the one the stored
    /// object satisfies: SMI CRDs serve every version without conversion, so status written
    /// through another version is validated against a schema the object may not match —
    /// a v1alpha1 split's quantity weights fail v1alpha4's integers), else the watched one.
    pub fn status_resource(&self, kind: Kind, api_version: Option<&str>) -> Option<&Resource> {
        api_version
            .and_then(|av| av.rsplit_once('/'))
            .and_then(|(_, v)| self.by_version.get(&(kind, v.to_string())))
            .or_else(|| self.watched.get(&kind))
    }
}

/// Probes which versions of each custom kind are served.
pub async fn probe(discovery: &Discovery) -> Result<InputResources> {
    let mut out = InputResources::default();
    for (group, versions, kinds) in CUSTOM_GROUPS {
        for v in *versions {
            let gv = format!("{group}/{v}");
            let Some(served) = discovery.group_version(&gv).await? else {
                continue;
            };
            for k in *kinds {
                if let Some(r) = served.get(k.k8s_kind()) {
                    out.by_version.insert((*k, v.to_string()), r.clone());
                    out.served_versions
                        .entry(*k)
                        .or_default()
                        .push(v.to_string());
                    out.watched.entry(*k).or_insert_with(|| r.clone());
                }
            }
        }
        for k in *kinds {
            if !out.watched.contains_key(k) {
                out.missing.push(*k);
            }
        }
    }
    for (av, k) in CORE_KINDS {
        match discovery.resolve(av, k.as_str()).await? {
            Some(r) => {
                out.watched.insert(*k, r);
            }
            None => out.missing.push(*k),
        }
    }
    Ok(out)
}

/// The apiVersion of the latest write to the object's main resource, from managedFields.
pub fn written_version(v: &Value) -> Option<String> {
    let mf = v.pointer("/metadata/managedFields")?.as_array()?;
    mf.iter()
        .filter(|e| {
            e.get("subresource")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
        })
        .filter_map(|e| {
            Some((
                e.get("time").and_then(Value::as_str).unwrap_or(""),
                e.get("apiVersion")?.as_str()?,
            ))
        })
        .max_by(|a, b| a.0.cmp(b.0))
        .map(|(_, av)| av.to_string())
}

/// Converts one API object, read through `res`, into changes (an upsert, or an invalid
/// version).
pub fn convert(kind: Kind, res: &Resource, served: &[String], obj: &DynamicObject) -> Vec<Change> {
    let Some(mut v) = typed_value(obj, &res.api) else {
        return vec![];
    };
    let live_status: Option<Vec<Condition>> = if kind.is_gamma_route() {
        Some(gateway_live_conditions(&v))
    } else if kind.is_smi() || kind == Kind::Mesh {
        v.pointer("/status/conditions")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .or(Some(vec![]))
    } else {
        None
    };
    if kind.is_gamma_route()
        && let Some(o) = v.as_object_mut()
    {
        o.remove("status");
    }
    if kind.is_smi() || matches!(kind, Kind::Mesh | Kind::Install) {
        if let Some(av) = written_version(&v)
            && let Some((g, ver)) = av.rsplit_once('/')
            && v.get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|cur| cur.starts_with(&format!("{g}/")))
            && served.iter().any(|s| s == ver)
        {
            v["apiVersion"] = Value::String(av);
        }
        if let Some(o) = v.as_object_mut() {
            o.remove("status");
        }
    }
    let generation = v.pointer("/metadata/generation").and_then(Value::as_i64);
    if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        md.remove("managedFields");
    }
    let mut loaded = Loaded::default();
    meshbridge_core::load::load_value(v, &Origin::Api, &mut loaded);
    let (mut changes, other) = changes_of(loaded);
    for p in other {
        tracing::warn!(problem = %p, "cannot read object");
    }
    for c in &mut changes {
        match c {
            Change::Upsert {
                live_status: ls, ..
            } => *ls = live_status.clone(),
            Change::Invalid { generation: g, .. } => *g = generation,
            Change::Delete(_) => {}
        }
    }
    changes
}

/// The conditions meshbridge last wrote on a Gateway API route: those of its first
/// `status.parents[]` entry with meshbridge's `controllerName`, with condition types read
/// back ([`meshbridge_core::status::condition_type_from_gateway`]). Empty when there is none.
pub fn gateway_live_conditions(v: &Value) -> Vec<Condition> {
    let Some(parents) = v.pointer("/status/parents").and_then(Value::as_array) else {
        return vec![];
    };
    parents
        .iter()
        .find(|p| {
            p.get("controllerName").and_then(Value::as_str)
                == Some(meshbridge_core::status::GATEWAY_CONTROLLER_NAME)
        })
        .and_then(|p| p.get("conditions"))
        .and_then(|c| serde_json::from_value::<Vec<Condition>>(c.clone()).ok())
        .map(|cs| {
            cs.into_iter()
                .map(|mut c| {
                    c.type_ = meshbridge_core::status::condition_type_from_gateway(&c.type_);
                    c
                })
                .collect()
        })
        .unwrap_or_default()
}

fn key_of(kind: Kind, obj: &DynamicObject) -> ObjectKey {
    let ns = if kind == Kind::Namespace {
        String::new()
    } else {
        obj.metadata.namespace.clone().unwrap_or_default()
    };
    ObjectKey::new(kind, ns, obj.metadata.name.clone().unwrap_or_default())
}

/// Watches one kind, forever, sending changes; sends `Synced(id)` after the first listing.
pub async fn watch_kind(
    client: Client,
    kind: Kind,
    res: Resource,
    served: Vec<String>,
    tx: mpsc::UnboundedSender<Msg>,
    sync_id: usize,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &res.api);
    let inputs = InputEvents { kind, res, served };
    crate::watch::forward(
        api,
        watcher::Config::default(),
        "watch",
        inputs,
        tx,
        sync_id,
    )
    .await;
}

/// An input kind's watch events: loaded objects, replacing the kind after each listing.
struct InputEvents {
    kind: Kind,
    res: Resource,
    served: Vec<String>,
}

impl WatchMessages for InputEvents {
    type Listed = Change;
    fn kind(&self) -> &dyn std::fmt::Display {
        &self.kind
    }
    fn listed(&self, o: &DynamicObject) -> Vec<Change> {
        convert(self.kind, &self.res, &self.served, o)
    }
    fn replace(&self, changes: Vec<Change>) -> Msg {
        Msg::Replace {
            kinds: vec![self.kind],
            changes,
        }
    }
    fn applied(&self, o: &DynamicObject) -> Vec<Msg> {
        self.listed(o).into_iter().map(Msg::Input).collect()
    }
    fn deleted(&self, o: &DynamicObject) -> Option<Msg> {
        Some(Msg::Input(Change::Delete(key_of(self.kind, o))))
    }
}

/// Lists one kind once (for `--once`).
pub async fn list_kind(
    client: Client,
    kind: Kind,
    res: &Resource,
    served: &[String],
) -> Result<Vec<Change>> {
    let api: Api<DynamicObject> = Api::all_with(client, &res.api);
    let list = api
        .list(&Default::default())
        .await
        .map_err(crate::Error::from)?;
    Ok(list
        .items
        .iter()
        .flat_map(|o| convert(kind, res, served, o))
        .collect())
}

#[async_trait::async_trait]
impl Source for KubeSource {
    async fn start(self: Box<Self>, tx: Sender, sync: SyncTracker, watch: bool) -> Result<()> {
        let found = probe(&self.discovery).await?;
        for k in &found.missing {
            tracing::warn!(kind = %k, "kind not served by the cluster (CRD not installed?); not watched");
        }
        *self.resources.lock().unwrap_or_else(|e| e.into_inner()) = found.clone();
        for (kind, res) in &found.watched {
            let served = found.served_versions.get(kind).cloned().unwrap_or_default();
            let id = sync.register();
            if watch {
                tokio::spawn(watch_kind(
                    self.client.clone(),
                    *kind,
                    res.clone(),
                    served,
                    tx.clone(),
                    id,
                ));
            } else {
                let changes = list_kind(self.client.clone(), *kind, res, &served).await?;
                let _ = tx.send(Msg::Replace {
                    kinds: vec![*kind],
                    changes,
                });
                let _ = tx.send(Msg::Synced(id));
            }
        }
        Ok(())
    }
}
