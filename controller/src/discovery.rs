//! Resolving kinds to API resources through the discovery API (one request per
//! group/version, cached): plural name, scope, and whether a `/status` subresource exists.

use crate::{Error, Result};
use kube::Client;
use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One served kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub api: ApiResource,
    pub namespaced: bool,
    pub has_status: bool,
}

/// Per group/version: `None` when the group/version is not served.
type GvCache = BTreeMap<String, Option<BTreeMap<String, Resource>>>;

#[derive(Clone)]
pub struct Discovery {
    client: Client,
    cache: Arc<Mutex<GvCache>>,
}

impl Discovery {
    pub fn new(client: Client) -> Discovery {
        Discovery {
            client,
            cache: Arc::default(),
        }
    }

    /// The kinds served at `api_version` (`group/version`, or `v1` for core), or `None` when
    /// that group/version is not served.
    pub async fn group_version(
        &self,
        api_version: &str,
    ) -> Result<Option<BTreeMap<String, Resource>>> {
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(api_version)
        {
            return Ok(hit.clone());
        }
        let list = if api_version.contains('/') {
            self.client.list_api_group_resources(api_version).await
        } else {
            self.client.list_core_api_resources(api_version).await
        };
        let list = match list {
            Ok(l) => Some(l),
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(e) => return Err(Error::Kube(e.to_string())),
        };
        let parsed = list.map(|l| {
            let (group, version) = match api_version.rsplit_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), api_version.to_string()),
            };
            let subs: Vec<&str> = l
                .resources
                .iter()
                .filter(|r| r.name.contains('/'))
                .map(|r| r.name.as_str())
                .collect();
            l.resources
                .iter()
                .filter(|r| !r.name.contains('/'))
                .map(|r| {
                    let gvk = GroupVersionKind::gvk(&group, &version, &r.kind);
                    let status = format!("{}/status", r.name);
                    (
                        r.kind.clone(),
                        Resource {
                            api: ApiResource::from_gvk_with_plural(&gvk, &r.name),
                            namespaced: r.namespaced,
                            has_status: subs.contains(&status.as_str()),
                        },
                    )
                })
                .collect()
        });
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(api_version.to_string(), parsed.clone());
        Ok(parsed)
    }

    /// One kind at one api version.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<Resource>> {
        Ok(self
            .group_version(api_version)
            .await?
            .and_then(|m| m.get(kind).cloned()))
    }

    /// Forgets a group/version (e.g. after a CRD was installed).
    pub fn invalidate(&self, api_version: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(api_version);
    }
}

/// An object as JSON, with `apiVersion` and `kind` filled in from the resource it was read
/// through. A real API server leaves both off the items of a list response (only the list
/// carries them), and kube-rs watchers hand listed items on as they are; every list and
/// watch path of the controller reads objects through this.
pub fn typed_value(obj: &DynamicObject, api: &ApiResource) -> Option<serde_json::Value> {
    let mut v = serde_json::to_value(obj).ok()?;
    if obj.types.is_none()
        && let Some(m) = v.as_object_mut()
    {
        m.insert("apiVersion".into(), api.api_version.clone().into());
        m.insert("kind".into(), api.kind.clone().into());
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_items_get_their_type() {
        let gvk = GroupVersionKind::gvk("split.smi-spec.io", "v1alpha4", "TrafficSplit");
        let api = ApiResource::from_gvk_with_plural(&gvk, "trafficsplits");
        // As a list response item: no apiVersion, no kind.
        let item: DynamicObject = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "a", "namespace": "n"}}),
        )
        .unwrap();
        assert!(item.types.is_none());
        let v = typed_value(&item, &api).unwrap();
        assert_eq!(v["apiVersion"], "split.smi-spec.io/v1alpha4");
        assert_eq!(v["kind"], "TrafficSplit");
        // A watch event's object keeps what it says.
        let ev: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "split.smi-spec.io/v1alpha1", "kind": "TrafficSplit",
            "metadata": {"name": "a"}}))
        .unwrap();
        assert_eq!(
            typed_value(&ev, &api).unwrap()["apiVersion"],
            "split.smi-spec.io/v1alpha1"
        );
    }
}
