//! The object store: every input object by [`Key`], the version of each that is in use, and
//! the indexes partitions read (objects per namespace, Namespaces, Meshes).
//!
//! One last-known-good rule for every runtime (docs/semantics.md, "Invalid input"):
//! - an SMI object whose newest version is not *accepted* (invalid itself: a bad field, or a
//!   version that cannot be read at all) is programmed from its last accepted version, and
//!   its status says so. Unresolved references and conflicts are not a version's fault: the
//!   newest version is used and its `ResolvedRefs`/conflict problems say why it is not
//!   programmed;
//! - any other kind (Service, Pod, Namespace, Mesh...) is not validated here: its newest
//!   readable version is used, and a version that cannot be read keeps the previous one;
//! - a deleted object is gone, with its outputs.

use super::change::Change;
use super::key::Key;
use crate::api::common::Condition;
use crate::model::{Kind, Object, ObjectKey};
use crate::report::Problem;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One input object as the store keeps it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Entry {
    /// The newest version that could be read (None when only an unreadable version exists).
    pub current: Option<Object>,
    /// Whether `current` is good: accepted the last time it was validated (SMI), or readable
    /// (kinds the engine does not validate).
    pub current_good: bool,
    /// The last good version, kept while `current` is not good.
    pub last_good: Option<Object>,
    /// Problems of a newer version that could not be read at all.
    pub load_problems: Vec<Problem>,
    pub load_generation: Option<i64>,
    /// The object's status conditions in the cluster.
    pub live_status: Option<Vec<Condition>>,
}

impl Entry {
    /// The version to read for kinds the engine does not validate (and for cluster facts:
    /// Namespaces, Meshes, ServiceAccounts): the newest readable one, else the last good.
    pub fn readable(&self) -> Option<&Object> {
        self.current.as_ref().or(self.last_good.as_ref())
    }

    fn upsert(&mut self, kind: Kind, object: Object) {
        if validated(kind) {
            if self.current_good
                && let Some(prev) = self.current.take()
            {
                self.last_good = Some(prev);
            }
        } else {
            self.last_good = None;
        }
        self.current = Some(object);
        self.current_good = !validated(kind);
        self.load_problems.clear();
        self.load_generation = None;
    }

    fn unreadable(&mut self, generation: Option<i64>, problems: Vec<Problem>) {
        if self.current_good
            && let Some(prev) = self.current.take()
        {
            self.last_good = Some(prev);
        }
        self.current = None;
        self.current_good = false;
        self.load_problems = problems;
        self.load_generation = generation;
    }

    /// Records the outcome of validating `current`.
    pub fn record_validation(&mut self, accepted: bool) {
        if accepted && self.current.is_some() {
            self.current_good = true;
            self.last_good = None;
        }
    }
}

/// Whether the engine validates objects of `kind` (and so keeps a last accepted version).
pub(crate) fn validated(kind: Kind) -> bool {
    kind.has_status()
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Store {
    pub entries: HashMap<Key, Entry>,
    /// Objects per namespace (every kind but Namespace).
    pub by_ns: BTreeMap<String, BTreeSet<Key>>,
    /// Names of the Namespace objects held.
    pub namespaces: BTreeSet<String>,
    pub meshes: BTreeSet<Key>,
}

impl Store {
    pub fn get(&self, key: &ObjectKey) -> Option<&Entry> {
        self.entries.get(&Key::local(key.clone()))
    }

    pub fn get_mut(&mut self, key: &ObjectKey) -> Option<&mut Entry> {
        self.entries.get_mut(&Key::local(key.clone()))
    }

    /// Applies one change to the entry of `key`.
    pub fn apply(&mut self, key: Key, change: Change) {
        match change {
            Change::Upsert {
                object,
                live_status,
            } => {
                let e = self.entries.entry(key.clone()).or_default();
                e.upsert(key.object.kind, *object);
                if live_status.is_some() {
                    e.live_status = live_status;
                }
                self.index(&key);
            }
            Change::Delete(_) => {
                self.entries.remove(&key);
                self.unindex(&key);
            }
            Change::Invalid {
                generation,
                problems,
                ..
            } => {
                self.entries
                    .entry(key.clone())
                    .or_default()
                    .unreadable(generation, problems);
                self.index(&key);
            }
        }
    }

    fn index(&mut self, key: &Key) {
        match key.object.kind {
            Kind::Namespace => {
                self.namespaces.insert(key.object.name.clone());
            }
            Kind::Mesh => {
                self.meshes.insert(key.clone());
            }
            _ => {}
        }
        if key.object.kind != Kind::Namespace {
            self.by_ns
                .entry(key.object.namespace.clone())
                .or_default()
                .insert(key.clone());
        }
    }

    fn unindex(&mut self, key: &Key) {
        match key.object.kind {
            Kind::Namespace => {
                self.namespaces.remove(&key.object.name);
            }
            Kind::Mesh => {
                self.meshes.remove(key);
            }
            _ => {}
        }
        if let Some(set) = self.by_ns.get_mut(&key.object.namespace) {
            set.remove(key);
            if set.is_empty() {
                self.by_ns.remove(&key.object.namespace);
            }
        }
    }

    /// The readable version of a cluster fact (a Namespace, a Mesh, a ServiceAccount).
    pub fn fact(&self, key: &ObjectKey) -> Option<&Object> {
        self.get(key)?.readable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(yaml: &str) -> Object {
        let l = crate::load::load_str("t.yaml", yaml);
        assert!(l.problems.is_empty(), "{:?}", l.problems);
        l.objects.into_iter().next().unwrap()
    }

    #[test]
    fn unreadable_service_keeps_its_previous_version_and_a_good_one_replaces_it() {
        let mut s = Store::default();
        let svc = obj(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  ports: [{port: 80}]\n",
        );
        let key = Key::local(svc.key());
        s.apply(key.clone(), Change::upsert(svc.clone()));
        s.apply(
            key.clone(),
            Change::Invalid {
                key: key.object.clone(),
                generation: None,
                problems: vec![],
            },
        );
        let e = &s.entries[&key];
        assert!(e.current.is_none());
        assert_eq!(e.readable().map(Object::key), Some(svc.key()));
        s.apply(key.clone(), Change::upsert(svc.clone()));
        let e = &s.entries[&key];
        assert!(e.last_good.is_none() && e.current.is_some() && e.current_good);
        s.apply(key.clone(), Change::Delete(key.object.clone()));
        assert!(s.entries.is_empty() && s.by_ns.is_empty());
    }
}
