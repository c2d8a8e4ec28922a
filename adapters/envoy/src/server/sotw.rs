//! State of the world (`StreamAggregatedResources`) over the [stream engine](super::stream):
//! a request names the whole subscription; an ACK or NACK repeats the last nonce; a request
//! with an older nonce is stale and ignored. A response of listeners or clusters carries
//! every resource in scope (what it omits is removed); a response of the other types (routes,
//! route configurations' endpoints, secrets) updates only what it carries, so it carries only
//! the resources the proxy was not sent at their current version: one service's route
//! change is one route configuration on the wire, not all of them.

use super::stream::{Next, Payload, Stream, TypeState, Wire};
use super::{Resource, SnapshotSource, wildcard_type};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub(super) struct Sotw;

impl Wire for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    /// Name → version sent, of the types whose responses are incremental (routes,
    /// endpoints, secrets).
    type Held = BTreeMap<String, String>;
    const DELTA: bool = false;

    fn node_id(req: &DiscoveryRequest) -> Option<&str> {
        req.node.as_ref().map(|n| n.id.as_str())
    }

    fn type_url(req: &DiscoveryRequest) -> &str {
        &req.type_url
    }

    fn read<S: SnapshotSource>(s: &mut Stream<S, Self>, req: DiscoveryRequest) -> Next {
        let t = req.type_url;
        // No names for a wildcard type: every resource.
        let names: Option<BTreeSet<String>> = if wildcard_type(&t) && req.resource_names.is_empty()
        {
            None
        } else {
            Some(req.resource_names.into_iter().collect())
        };
        if let Some(ns) = &names {
            s.check_secrets(&t, ns);
        }
        let nonce = req.response_nonce;
        let rescope = |st: &mut TypeState<Self::Held>| {
            let (wildcard, names) = (names.is_none(), names.unwrap_or_default());
            let differ = st.sub.wildcard != wildcard || *st.sub.names != names;
            if differ {
                // What the proxy no longer watches it dropped: sent again if watched again.
                st.held.retain(|n, _| wildcard || names.contains(n));
                st.sub.wildcard = wildcard;
                st.sub.names = Arc::new(names);
            }
            differ
        };
        if !nonce.is_empty() && nonce != s.state(&t).nonce {
            // Stale: not answered, but it names what the proxy watches now. Envoy sends
            // nothing more when it stops watching a type whose answer crosses this request
            // (an empty answer for a type it no longer watches is accepted silently).
            if s.state(&t).sub.subscribed {
                s.subscribe(&t, rescope);
            }
            return Next::Nothing;
        }
        if let Some(err) = &req.error_detail {
            s.rejected(&t, req.version_info, &err.message);
            // The proxy applied none of that response: the next one carries everything.
            s.state(&t).held.clear();
            return Next::Push;
        }
        let (first, changed) = s.subscribe(&t, rescope);
        if !nonce.is_empty() && (first || !changed) {
            s.acknowledged(&t, &req.version_info);
            // Envoy re-requests endpoints after clusters (routes after listeners) with the
            // nonce and version of an ACK: they are resent all the same.
            if s.state(&t).resend && !s.wants_nothing(&t) {
                return Next::Resend(t);
            }
            return Next::Push;
        }
        // A new subscription (or changed names): always answer (in make-before-break order),
        // unless what we would send is exactly what was rejected.
        let st = s.state(&t);
        st.pending = false;
        st.sent = None;
        Next::Push
    }

    fn diff(
        t: &str,
        st: &TypeState<Self::Held>,
        selected: Vec<Arc<Resource>>,
        version: &str,
        forced: bool,
    ) -> Option<Payload> {
        let current = Some(version);
        if !forced && (st.sent.as_deref() == current || st.nacked.as_deref() == current) {
            return None;
        }
        let whole = forced || st.resend || wildcard_type(t);
        let resources = if whole {
            selected
        } else {
            selected
                .into_iter()
                .filter(|r| st.held.get(&r.name) != Some(&r.version))
                .collect()
        };
        Some(Payload {
            resources,
            removed: vec![],
        })
    }

    fn record(t: &str, held: &mut Self::Held, p: &Payload, resend: bool) {
        // Listeners, clusters and route scopes are always sent whole: nothing to track.
        if wildcard_type(t) {
            return;
        }
        if resend {
            held.clear();
        }
        for r in &p.resources {
            held.insert(r.name.clone(), r.version.clone());
        }
    }

    fn encode(type_url: &str, version: &str, nonce: &str, p: Payload) -> DiscoveryResponse {
        DiscoveryResponse {
            version_info: version.to_string(),
            resources: p.resources.iter().map(|r| r.any.clone()).collect(),
            type_url: type_url.to_string(),
            nonce: nonce.to_string(),
            ..Default::default()
        }
    }
}
