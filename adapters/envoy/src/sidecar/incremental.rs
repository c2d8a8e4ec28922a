//! Translating again after a change without redoing what did not change.
//!
//! A proxy's outbound side is, per service, a [`Fragment`]: what one view (a namespace and
//! an identity) keeps of the service, its route configuration and its route scopes. A
//! fragment reads exactly: the IR service, the split (or consumer route) that applies to it
//! in the view's namespace, the facts of the clusters it may send or route to (identities,
//! endpoints, refusal), what the view's identity is allowed to reach, and the context. A
//! [`Translator`] keeps last generation's fragments (and each identity's outbound clusters)
//! and reuses one exactly when none of those changed: the index from what changed to what
//! it feeds is the comparison of the two generations' IR (services, splits, consumer
//! routes), cluster facts and allowed sets, each compared once per generation. Everything
//! else of a proxy (listeners, inbound side, TCP ports) is small and built again.
//!
//! Reused resources are the same shared values as before (`Arc`), so the encoder
//! ([`crate::server::EncodeCache`]) knows them by address and does not encode or even read
//! them again. A cold run ([`super::translate_all`]) is the same code with nothing to reuse,
//! and `tests/incremental.rs` checks that every generation equals a cold translation.

use super::{Fragment, Mesh, Proxy, ProxyConfig, Refusal};
use meshbridge_core::ir::{Identity, Ir, SvcKey};
use meshbridge_core::model::ObjectKey;
use meshbridge_core::{Context, Finding};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Translates proxies again and again, reusing what the last generation built when what it
/// read is unchanged (see the module documentation).
#[derive(Default)]
pub struct Translator {
    /// The last generation's IR and what was built from it.
    prev: Option<(Arc<Ir>, Generation)>,
    last: Stats,
}

/// What the last [`Translator::translate`] reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Service fragments (one per service per view) built / reused.
    pub fragments_built: usize,
    pub fragments_reused: usize,
    /// Outbound clusters (one per cluster per identity) built / reused.
    pub clusters_built: usize,
    pub clusters_reused: usize,
}

/// What one identity is allowed to reach: destination identity → the TrafficTargets.
type Allowed = BTreeMap<Identity, BTreeSet<ObjectKey>>;

/// The facts of one outbound cluster a fragment or cluster resource reads.
#[derive(PartialEq)]
struct ClusterFacts {
    ids: Vec<Identity>,
    endpoints: Arc<Value>,
    refusal: Option<Refusal>,
}

/// What one generation built, kept for the next (with its IR, see [`Translator`]).
pub(super) struct Generation {
    cx: Context,
    allowed: BTreeMap<Identity, Allowed>,
    clusters: HashMap<String, ClusterFacts>,
    memo: Memo,
}

/// Built values by view: fragments by (namespace, identity) then service, outbound
/// clusters by the proxy's SPIFFE URI then cluster name.
#[derive(Default)]
pub(super) struct Memo {
    fragments: HashMap<(String, Identity), HashMap<SvcKey, Arc<Fragment>>>,
    clusters: HashMap<String, HashMap<String, Arc<Value>>>,
}

/// What changed since the last generation.
#[derive(Default)]
pub(super) struct Dirty {
    /// Services whose IR, split or consumer route changed (or that came or went).
    services: HashSet<SvcKey>,
    /// Clusters whose facts changed (or that came or went).
    clusters: HashSet<String>,
}

/// One proxy's access to the memo: last generation's values of its view (only those still
/// valid for it), and where this generation's go.
pub(super) struct ViewMemo<'m> {
    prev_fragments: Option<&'m HashMap<SvcKey, Arc<Fragment>>>,
    next_fragments: &'m mut HashMap<SvcKey, Arc<Fragment>>,
    prev_clusters: Option<&'m HashMap<String, Arc<Value>>>,
    next_clusters: &'m mut HashMap<String, Arc<Value>>,
    dirty: &'m Dirty,
    stats: &'m mut Stats,
}

impl ViewMemo<'_> {
    /// The fragment of service `s`: already built for this view in this generation, else
    /// last generation's when nothing it read changed, else `build()`.
    pub(super) fn fragment(
        &mut self,
        s: &SvcKey,
        build: impl FnOnce() -> Fragment,
    ) -> Arc<Fragment> {
        let dirty = self.dirty;
        let counts = (
            &mut self.stats.fragments_built,
            &mut self.stats.fragments_reused,
        );
        let valid = |f: &Fragment| {
            !dirty.services.contains(s) && f.reads.iter().all(|c| !dirty.clusters.contains(c))
        };
        reuse(
            self.next_fragments,
            self.prev_fragments,
            s,
            counts,
            valid,
            build,
        )
    }

    /// The outbound cluster `name` as this proxy's identity sees it (its certificate and
    /// the peer identities it checks): reused while the cluster's facts are unchanged.
    pub(super) fn cluster(&mut self, name: &str, build: impl FnOnce() -> Value) -> Arc<Value> {
        let dirty = self.dirty;
        let counts = (
            &mut self.stats.clusters_built,
            &mut self.stats.clusters_reused,
        );
        let valid = |_: &Value| !dirty.clusters.contains(name);
        reuse(
            self.next_clusters,
            self.prev_clusters,
            name,
            counts,
            valid,
            build,
        )
    }
}

/// One memo lookup: this generation's value of `key`, else last generation's when `valid`
/// (counted as reused), else `build()` (counted as built); what it returns is this
/// generation's value.
fn reuse<K, Q, V>(
    next: &mut HashMap<K, Arc<V>>,
    prev: Option<&HashMap<K, Arc<V>>>,
    key: &Q,
    (built, reused): (&mut usize, &mut usize),
    valid: impl FnOnce(&V) -> bool,
    build: impl FnOnce() -> V,
) -> Arc<V>
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: ?Sized + std::hash::Hash + Eq + ToOwned<Owned = K>,
{
    if let Some(v) = next.get(key) {
        return v.clone();
    }
    let v = match prev.and_then(|m| m.get(key)).filter(|v| valid(v)) {
        Some(v) => {
            *reused += 1;
            v.clone()
        }
        None => {
            *built += 1;
            Arc::new(build())
        }
    };
    next.insert(key.to_owned(), v.clone());
    v
}

impl Translator {
    /// Translates every proxy (configs sorted by node id, plus findings), reusing what the
    /// last call built where nothing it read changed. The result is always exactly what
    /// [`super::translate_all`] returns for the same input.
    pub fn translate(
        &mut self,
        ir: Arc<Ir>,
        cx: &Context,
        proxies: &[Proxy],
    ) -> (Vec<ProxyConfig>, Vec<Finding>) {
        let prev = self.prev.as_ref().map(|(ir, g)| (&**ir, g));
        let (out, next, stats) = run(&ir, cx, proxies, prev);
        self.last = stats;
        self.prev = Some((ir, next));
        out
    }

    /// What the last [`Translator::translate`] built and reused.
    pub fn stats(&self) -> Stats {
        self.last
    }
}

/// One generation: translates every proxy, reusing `prev` (the last generation's IR and
/// what was built from it) where it can. Returns the result, what to keep for the next
/// generation and the stats.
pub(super) fn run(
    ir: &Ir,
    cx: &Context,
    proxies: &[Proxy],
    prev: Option<(&Ir, &Generation)>,
) -> ((Vec<ProxyConfig>, Vec<Finding>), Generation, Stats) {
    let mut mesh = Mesh::new(ir, cx, proxies);
    let prev = prev.filter(|(_, g)| g.cx == *cx);
    let prev_ir = prev.map(|(ir, _)| ir);
    let prev = prev.map(|(_, g)| g);
    let mut dirty = Dirty::default();
    // Cluster facts: compared with the last generation's; an unchanged cluster keeps last
    // generation's endpoints value (shared, so its encoding is reused as well).
    let mut facts = HashMap::with_capacity(mesh.clusters.len());
    for (name, info) in mesh.clusters.iter_mut() {
        let mut f = ClusterFacts {
            ids: info.ids.iter().map(|i| (*i).clone()).collect(),
            endpoints: info.endpoints.clone(),
            refusal: info.refusal,
        };
        match prev.and_then(|p| p.clusters.get(name)) {
            Some(old)
                if old.ids == f.ids
                    && old.refusal == f.refusal
                    && *old.endpoints == *f.endpoints =>
            {
                f.endpoints = old.endpoints.clone();
                info.endpoints = old.endpoints.clone();
            }
            _ => {
                dirty.clusters.insert(name.clone());
            }
        }
        facts.insert(name.clone(), f);
    }
    if let Some(p) = prev {
        dirty.clusters.extend(
            p.clusters
                .keys()
                .filter(|n| !facts.contains_key(*n))
                .cloned(),
        );
        if let Some(old) = prev_ir {
            dirty.services = changed_services(old, ir);
        }
    }
    let allowed: BTreeMap<Identity, Allowed> = mesh
        .allowed
        .iter()
        .map(|(src, dests)| {
            let d = dests
                .iter()
                .map(|(d, tts)| ((*d).clone(), tts.iter().map(|k| (*k).clone()).collect()))
                .collect();
            ((*src).clone(), d)
        })
        .collect();
    let mut next = Memo::default();
    let mut stats = Stats::default();
    let mut findings = mesh.findings().to_vec();
    let mut out = Vec::with_capacity(proxies.len());
    for p in proxies {
        let view = (p.namespace.clone(), p.identity.clone());
        let own = p.identity.spiffe(&cx.trust_domain);
        // Last generation's values of this view, when what its identity may reach is
        // unchanged (every fragment of the view read it).
        let same_access =
            prev.is_some_and(|g| g.allowed.get(&p.identity) == allowed.get(&p.identity));
        let prev_fragments = prev
            .filter(|_| same_access)
            .and_then(|g| g.memo.fragments.get(&view));
        let prev_clusters = prev.and_then(|g| g.memo.clusters.get(&own));
        let next_fragments = next.fragments.entry(view).or_default();
        let next_clusters = next.clusters.entry(own).or_default();
        let mut memo = ViewMemo {
            prev_fragments,
            next_fragments,
            prev_clusters,
            next_clusters,
            dirty: &dirty,
            stats: &mut stats,
        };
        out.push(mesh.proxy(p, &mut memo, &mut findings));
    }
    out.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    findings.sort();
    findings.dedup();
    let generation = Generation {
        cx: cx.clone(),
        allowed,
        clusters: facts,
        memo: next,
    };
    ((out, findings), generation, stats)
}

/// Services whose IR, split or consumer route differs between two generations (or that are
/// in only one of them).
fn changed_services(old: &Ir, new: &Ir) -> HashSet<SvcKey> {
    let mut out = HashSet::new();
    let keys: BTreeSet<&SvcKey> = [&old.services, &new.services]
        .into_iter()
        .flat_map(|m| m.keys())
        .chain(
            [&old.splits, &new.splits]
                .into_iter()
                .flat_map(|m| m.keys()),
        )
        .collect();
    for k in keys {
        if old.services.get(k) != new.services.get(k) || old.splits.get(k) != new.splits.get(k) {
            out.insert(k.clone());
        }
    }
    let namespaces: BTreeSet<&String> = old
        .consumer_splits
        .keys()
        .chain(new.consumer_splits.keys())
        .collect();
    for ns in namespaces {
        let (a, b) = (old.consumer_splits.get(ns), new.consumer_splits.get(ns));
        if a == b {
            continue;
        }
        let keys: BTreeSet<&SvcKey> = a.into_iter().chain(b).flat_map(|m| m.keys()).collect();
        for k in keys {
            if a.and_then(|m| m.get(k)) != b.and_then(|m| m.get(k)) {
                out.insert(k.clone());
            }
        }
    }
    out
}
