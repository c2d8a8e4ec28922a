//! Delta (`DeltaAggregatedResources`) over the [stream engine](super::stream): a request
//! subscribes and unsubscribes names (`*`: wildcard); the nonce it carries, if the last
//! one sent, acknowledges or rejects that response; a response carries only the resources
//! whose version the proxy does not have, plus the names it must drop.

use super::stream::{Next, Payload, Stream, TypeState, Wire};
use super::{Resource, SnapshotSource, wildcard_type};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as DeltaResource,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub(super) struct Delta;

impl Wire for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    /// Name → version the proxy has (or was sent).
    type Held = BTreeMap<String, String>;
    const DELTA: bool = true;

    fn node_id(req: &DeltaDiscoveryRequest) -> Option<&str> {
        req.node.as_ref().map(|n| n.id.as_str())
    }

    fn type_url(req: &DeltaDiscoveryRequest) -> &str {
        &req.type_url
    }

    fn read<S: SnapshotSource>(s: &mut Stream<S, Self>, req: DeltaDiscoveryRequest) -> Next {
        let t = req.type_url.clone();
        s.check_secrets(&t, &req.resource_names_subscribe);
        s.subscribe(&t, |st| {
            let was_wildcard = st.sub.wildcard;
            let mut changed = false;
            if !st.sub.subscribed {
                st.sub.wildcard = wildcard_type(&t) && req.resource_names_subscribe.is_empty();
                for (n, v) in &req.initial_resource_versions {
                    st.held.insert(n.clone(), v.clone());
                }
            }
            let names = Arc::make_mut(&mut st.sub.names);
            for n in &req.resource_names_subscribe {
                if n == "*" {
                    st.sub.wildcard = true;
                } else {
                    changed |= names.insert(n.clone());
                    // A (re-)subscription wants the resource even if it was sent before.
                    st.held.remove(n);
                }
            }
            for n in &req.resource_names_unsubscribe {
                if n == "*" {
                    st.sub.wildcard = false;
                } else {
                    changed |= names.remove(n);
                    st.held.remove(n);
                }
            }
            changed || was_wildcard != st.sub.wildcard
        });
        let st = s.state(&t);
        if !req.response_nonce.is_empty() && req.response_nonce == st.nonce {
            let version = st.sent.clone().unwrap_or_default();
            match &req.error_detail {
                Some(err) => s.rejected(&t, version, &err.message),
                None => s.acknowledged(&t, &version),
            }
        }
        Next::Push
    }

    fn diff(
        _t: &str,
        st: &TypeState<Self::Held>,
        selected: Vec<Arc<Resource>>,
        _version: &str,
        forced: bool,
    ) -> Option<Payload> {
        let full = forced || st.resend;
        let in_scope: BTreeSet<&str> = selected.iter().map(|r| r.name.as_str()).collect();
        let removed: Vec<String> = if full {
            vec![]
        } else {
            st.held
                .keys()
                .filter(|n| !in_scope.contains(n.as_str()))
                .cloned()
                .collect()
        };
        let resources: Vec<Arc<Resource>> = selected
            .into_iter()
            .filter(|r| full || st.held.get(&r.name) != Some(&r.version))
            .collect();
        // The first answer is sent even when empty.
        if resources.is_empty() && removed.is_empty() && !st.nonce.is_empty() {
            return None;
        }
        Some(Payload { resources, removed })
    }

    fn record(_t: &str, held: &mut Self::Held, p: &Payload, resend: bool) {
        if resend {
            held.clear();
        }
        for r in &p.resources {
            held.insert(r.name.clone(), r.version.clone());
        }
        for n in &p.removed {
            held.remove(n);
        }
    }

    fn encode(type_url: &str, version: &str, nonce: &str, p: Payload) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            // The version of what is in scope (what `Cache::in_sync` expects acknowledged).
            system_version_info: version.to_string(),
            resources: p
                .resources
                .iter()
                .map(|r| DeltaResource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.any.clone()),
                    ..Default::default()
                })
                .collect(),
            type_url: type_url.to_string(),
            removed_resources: p.removed,
            nonce: nonce.to_string(),
            ..Default::default()
        }
    }
}
