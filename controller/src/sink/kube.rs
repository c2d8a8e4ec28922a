//! `--output kube`: server-side apply (field manager `meshbridge`, force) of desired
//! objects, deletion of stale owned ones (with a uid precondition), a refusal to touch
//! objects without the owner label, and watches on the owned output kinds (label selector
//! `meshbridge.io/owner=<controller namespace>`) so drift is seen and reverted.
//! Also the status writer: status patches (server-side apply on `/status`) where the
//! input's CRD has a status subresource, Events otherwise.

use super::{PutOutcome, Sink, ensure_owned, is_owned};
use crate::discovery::{Discovery, Resource, typed_value};
use crate::reconciler::{HASH_ANNOTATION, contained_in};
use crate::source::SyncTracker;
use crate::source::kube::SharedInputResources;
use crate::status::{StatusSink, StatusTarget};
use crate::types::{Msg, OutKey, group_of};
use crate::watch::WatchMessages;
use crate::{Error, Result};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use meshbridge_core::adapter::OWNER_LABEL;
use meshbridge_core::api::common::Condition;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::mpsc;

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "meshbridge";

/// Output kinds the compiled adapters may produce (apiVersion, kind). Owned objects of
/// these kinds are listed and watched even when nothing currently renders them, so that
/// outputs of a backend no namespace uses any more are still garbage-collected. Kinds seen
/// in desired outputs are added at run time.
pub const KNOWN_OUTPUT_KINDS: &[(&str, &str)] = &[
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1", "ServiceEntry"),
    ("networking.istio.io/v1", "Sidecar"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("security.istio.io/v1", "PeerAuthentication"),
    ("linkerd.io/v1alpha2", "ServiceProfile"),
    ("policy.linkerd.io/v1beta3", "Server"),
    ("policy.linkerd.io/v1beta3", "HTTPRoute"),
    ("policy.linkerd.io/v1alpha1", "AuthorizationPolicy"),
    ("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication"),
    ("policy.linkerd.io/v1alpha1", "NetworkAuthentication"),
    ("policy.linkerd.io/v1beta1", "ServerAuthorization"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("gateway.networking.k8s.io/v1", "GRPCRoute"),
    ("gateway.networking.k8s.io/v1alpha2", "TCPRoute"),
    ("gateway.networking.k8s.io/v1alpha2", "UDPRoute"),
    // The gateway-api backend's grants for consumer routes' cross-namespace backendRefs.
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
];

fn kube_err(e: kube::Error) -> Error {
    Error::from(e)
}

pub struct KubeSink {
    client: Client,
    discovery: Discovery,
    controller_namespace: String,
    /// (group, kind) → apiVersion used, for kinds known or seen.
    kinds: BTreeMap<(String, String), String>,
    /// Kinds already being watched.
    watched: BTreeSet<(String, String)>,
    /// Where drift events go (None: no watches, e.g. `--once`).
    tx: Option<mpsc::UnboundedSender<Msg>>,
    sync: SyncTracker,
}

impl KubeSink {
    pub fn new(
        client: Client,
        discovery: Discovery,
        controller_namespace: &str,
        tx: Option<mpsc::UnboundedSender<Msg>>,
        sync: SyncTracker,
    ) -> KubeSink {
        let kinds = KNOWN_OUTPUT_KINDS
            .iter()
            .map(|(av, k)| ((group_of(av).to_string(), k.to_string()), av.to_string()))
            .collect();
        KubeSink {
            client,
            discovery,
            controller_namespace: controller_namespace.to_string(),
            kinds,
            watched: BTreeSet::new(),
            tx,
            sync,
        }
    }

    /// Also lists and watches owned objects of this kind (beyond [`KNOWN_OUTPUT_KINDS`]).
    pub fn add_output_kind(&mut self, api_version: &str, kind: &str) {
        self.kinds.insert(
            (group_of(api_version).to_string(), kind.to_string()),
            api_version.to_string(),
        );
    }

    fn selector(&self) -> String {
        format!("{OWNER_LABEL}={}", self.controller_namespace)
    }

    async fn api_for(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Api<DynamicObject>> {
        let res = self
            .discovery
            .resolve(api_version, kind)
            .await?
            .ok_or_else(|| {
                Error::Kube(format!(
                    "{kind}.{api_version} is not served by the cluster (CRD not installed?)"
                ))
            })?;
        Ok(api_of(&self.client, &res, namespace))
    }

    fn start_watch(&mut self, group: &str, kind: &str, res: &Resource) {
        let Some(tx) = self.tx.clone() else { return };
        if !self.watched.insert((group.to_string(), kind.to_string())) {
            return;
        }
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &res.api);
        let cfg = watcher::Config::default().labels(&self.selector());
        let outputs = OutputEvents {
            group: group.to_string(),
            kind: kind.to_string(),
            api: res.api.clone(),
        };
        let id = self.sync.register();
        tokio::spawn(crate::watch::forward(
            api,
            cfg,
            "output watch",
            outputs,
            tx,
            id,
        ));
    }
}

/// An owned output kind's watch events: live objects, replacing the kind after each listing.
struct OutputEvents {
    group: String,
    kind: String,
    api: kube::core::ApiResource,
}

impl OutputEvents {
    fn to_value(&self, o: &DynamicObject) -> Option<(OutKey, Value)> {
        let v = typed_value(o, &self.api)?;
        Some((OutKey::of_value(&v)?, v))
    }
}

impl WatchMessages for OutputEvents {
    type Listed = (OutKey, Value);
    fn kind(&self) -> &dyn std::fmt::Display {
        &self.kind
    }
    fn listed(&self, o: &DynamicObject) -> Vec<(OutKey, Value)> {
        self.to_value(o).into_iter().collect()
    }
    fn replace(&self, objects: Vec<(OutKey, Value)>) -> Msg {
        Msg::LiveReplace {
            group: self.group.clone(),
            kind: self.kind.clone(),
            objects,
        }
    }
    fn applied(&self, o: &DynamicObject) -> Vec<Msg> {
        self.to_value(o)
            .map(|(k, v)| Msg::LiveUpsert(k, Box::new(v)))
            .into_iter()
            .collect()
    }
    fn deleted(&self, o: &DynamicObject) -> Option<Msg> {
        self.to_value(o).map(|(k, _)| Msg::LiveDelete(k))
    }
}

fn api_of(client: &Client, res: &Resource, namespace: &str) -> Api<DynamicObject> {
    if res.namespaced && !namespace.is_empty() {
        Api::namespaced_with(client.clone(), namespace, &res.api)
    } else {
        Api::all_with(client.clone(), &res.api)
    }
}

#[async_trait::async_trait]
impl Sink for KubeSink {
    fn name(&self) -> String {
        "kube".into()
    }

    fn owner_references(&self) -> bool {
        true
    }

    async fn list_owned(&mut self) -> Result<BTreeMap<OutKey, Value>> {
        let mut out = BTreeMap::new();
        let kinds: Vec<((String, String), String)> = self
            .kinds
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((group, kind), av) in kinds {
            let Some(res) = self.discovery.resolve(&av, &kind).await? else {
                tracing::debug!(%kind, api_version = %av, "output kind not served; skipped");
                continue;
            };
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &res.api);
            let list = api
                .list(&ListParams::default().labels(&self.selector()))
                .await
                .map_err(kube_err)?;
            for o in list.items {
                let Some(v) = typed_value(&o, &res.api) else {
                    continue;
                };
                if let Some(k) = OutKey::of_value(&v)
                    && is_owned(&v, &self.controller_namespace)
                {
                    out.insert(k, v);
                }
            }
            self.start_watch(&group, &kind, &res);
        }
        Ok(out)
    }

    fn up_to_date(&self, desired: &Value, live: &Value) -> bool {
        let hash = |v: &Value| {
            v.pointer("/metadata/annotations")
                .and_then(|a| a.get(HASH_ANNOTATION))
                .cloned()
        };
        hash(desired) == hash(live) && contained_in(desired, live)
    }

    async fn put(&mut self, k: &OutKey, want: &Value, live: Option<&Value>) -> Result<PutOutcome> {
        let av = want
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let gk = (k.group.clone(), k.kind.clone());
        if !self.kinds.contains_key(&gk) {
            self.kinds.insert(gk.clone(), av.clone());
            if let Some(res) = self.discovery.resolve(&av, &k.kind).await? {
                self.start_watch(&k.group, &k.kind, &res);
            }
        }
        let api = self.api_for(&av, &k.kind, &k.namespace).await?;
        if live.is_none()
            && let Some(existing) = api.get_opt(&k.name).await.map_err(kube_err)?
        {
            let v = serde_json::to_value(&existing).unwrap_or_default();
            if !is_owned(&v, &self.controller_namespace) {
                let owner = v
                    .pointer("/metadata/labels")
                    .and_then(|l| l.get(OWNER_LABEL))
                    .and_then(Value::as_str)
                    .map(|o| format!(" (owned by the meshbridge in namespace `{o}`)"))
                    .unwrap_or_else(|| {
                        " and is not managed by meshbridge (no meshbridge.io/owner label)".into()
                    });
                return Ok(PutOutcome::Conflict(format!("{k} exists{owner}")));
            }
        }
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let obj = api
            .patch(&k.name, &pp, &Patch::Apply(want))
            .await
            .map_err(kube_err)?;
        Ok(PutOutcome::Written(
            serde_json::to_value(&obj).unwrap_or_default(),
        ))
    }

    async fn delete(&mut self, key: &OutKey, live: &Value) -> Result<()> {
        ensure_owned(key, live, &self.controller_namespace)?;
        let av = live
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let api = self.api_for(&av, &key.kind, &key.namespace).await?;
        let uid = live
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&key.name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            // The uid precondition failed: someone recreated it; it is not the one we own.
            Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::NotOwned(key.to_string())),
            Err(e) => Err(kube_err(e)),
        }
    }
}

/// Writes conditions on input objects.
pub struct KubeStatusSink {
    client: Client,
    resources: SharedInputResources,
    recorder: Recorder,
}

impl KubeStatusSink {
    pub fn new(
        client: Client,
        resources: SharedInputResources,
        instance: Option<String>,
    ) -> KubeStatusSink {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "meshbridge".into(),
                instance,
            },
        );
        KubeStatusSink {
            client,
            resources,
            recorder,
        }
    }
}

#[async_trait::async_trait]
impl StatusSink for KubeStatusSink {
    async fn write(&mut self, target: &StatusTarget, conditions: &[Condition]) -> Result<()> {
        let res = self
            .resources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .status_resource(target.key.kind, target.api_version.as_deref())
            .cloned();
        let Some(res) = res else {
            return Err(Error::Kube(format!("{} is not served", target.key.kind)));
        };
        if target.key.kind.is_gamma_route() && res.has_status {
            let api = api_of(&self.client, &res, &target.key.namespace);
            return write_route_status(&api, target, conditions).await;
        }
        if res.has_status {
            let api = api_of(&self.client, &res, &target.key.namespace);
            let mut body = json!({
                "apiVersion": res.api.api_version,
                "kind": res.api.kind,
                "status": {
                    "observedGeneration": target.generation,
                    "conditions": conditions,
                },
            });
            if let Some(Value::Object(extra)) = &target.extra {
                for (k, v) in extra {
                    body["status"][k] = v.clone();
                }
            }
            match api
                .patch_status(
                    &target.key.name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(body),
                )
                .await
            {
                Ok(_) => Ok(()),
                // The object went away meanwhile: nothing to report on.
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(kube_err(e)),
            }
        } else {
            let reference = ObjectReference {
                api_version: Some(
                    target
                        .api_version
                        .clone()
                        .unwrap_or_else(|| res.api.api_version.clone()),
                ),
                kind: Some(target.key.kind.k8s_kind().to_string()),
                name: Some(target.key.name.clone()),
                namespace: Some(target.key.namespace.clone()),
                uid: target.uid.clone(),
                ..ObjectReference::default()
            };
            for c in conditions {
                let ev = Event {
                    type_: if c.status == "False" {
                        EventType::Warning
                    } else {
                        EventType::Normal
                    },
                    reason: c.reason.clone(),
                    note: Some(truncate(
                        &format!("{}={}: {}", c.type_, c.status, c.message),
                        1000,
                    )),
                    action: "Reconcile".into(),
                    secondary: None,
                };
                self.recorder
                    .publish(&ev, &reference)
                    .await
                    .map_err(kube_err)?;
            }
            Ok(())
        }
    }
}

/// A Gateway API route's status, the Gateway API way: one `status.parents[]` entry per
/// Service parent with meshbridge's `controllerName` and the conditions. `parents` is an
/// atomic list shared with other controllers (a Gateway's), so the status is read, the
/// entries of other controllers kept, ours replaced, and written back with the
/// resourceVersion read (a concurrent write gives 409: the next reconcile retries).
async fn write_route_status(
    api: &Api<DynamicObject>,
    target: &StatusTarget,
    conditions: &[Condition],
) -> Result<()> {
    use meshbridge_core::status::{GATEWAY_CONTROLLER_NAME, gateway_condition_type};
    let live = match api.get_status(&target.key.name).await {
        Ok(o) => o,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(kube_err(e)),
    };
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.type_ = gateway_condition_type(&c.type_);
            serde_json::to_value(c).unwrap_or(Value::Null)
        })
        .collect();
    let mut parents: Vec<Value> = live
        .data
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p.get("controllerName").and_then(Value::as_str) != Some(GATEWAY_CONTROLLER_NAME)
        })
        .collect();
    let refs = live
        .data
        .pointer("/spec/parentRefs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for r in refs {
        let is_service = r.get("group").and_then(Value::as_str) == Some("")
            && r.get("kind").and_then(Value::as_str) == Some("Service");
        if is_service && parents.len() < 32 {
            parents.push(json!({
                "parentRef": r,
                "controllerName": GATEWAY_CONTROLLER_NAME,
                "conditions": conditions,
            }));
        }
    }
    let body = json!({
        "metadata": {"resourceVersion": live.metadata.resource_version},
        "status": {"parents": parents},
    });
    match api
        .patch_status(
            &target.key.name,
            &PatchParams::default(),
            &Patch::Merge(body),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(kube_err(e)),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
