//! Store keys. Every object the engine holds is keyed by the cluster it came from plus its
//! [`ObjectKey`] (kind, namespace, name).
//!
//! Today every source feeds the local cluster ([`ClusterId::LOCAL`], what [`Key::local`]
//! and `From<ObjectKey>` give), so the public API of [`super::Engine`] still speaks
//! [`ObjectKey`]. Federation (several clusters feeding one store) adds named clusters as an
//! addition: a source tags its changes with [`ClusterId::named`], two clusters' objects of
//! the same kind/namespace/name are then two entries, and nothing keyed today changes shape.

use crate::model::ObjectKey;
use std::fmt;

/// Which cluster an object came from: `None` is the local cluster (the one `meshbridge run`
/// watches, or the directory `meshbridge local`/`run --source dir` reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterId(Option<String>);

impl ClusterId {
    /// The local cluster.
    pub const LOCAL: ClusterId = ClusterId(None);

    /// A named (remote) cluster.
    pub fn named(name: impl Into<String>) -> ClusterId {
        ClusterId(Some(name.into()))
    }

    pub fn is_local(&self) -> bool {
        self.0.is_none()
    }

    /// The cluster's name; `None` for the local cluster.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_deref().unwrap_or("(local)"))
    }
}

/// The key of one stored object: its cluster and its kind/namespace/name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub cluster: ClusterId,
    pub object: ObjectKey,
}

impl Key {
    /// `object` in the local cluster.
    pub fn local(object: ObjectKey) -> Key {
        Key {
            cluster: ClusterId::LOCAL,
            object,
        }
    }
}

impl From<ObjectKey> for Key {
    fn from(object: ObjectKey) -> Key {
        Key::local(object)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cluster.name() {
            None => write!(f, "{}", self.object),
            Some(c) => write!(f, "{c}:{}", self.object),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    #[test]
    fn clusters_keep_same_named_objects_apart() {
        let o = ObjectKey::new(Kind::TrafficSplit, "shop", "web");
        let local = Key::from(o.clone());
        assert!(local.cluster.is_local());
        assert_eq!(local, Key::local(o.clone()));
        let remote = Key {
            cluster: ClusterId::named("east"),
            object: o.clone(),
        };
        assert_ne!(local, remote);
        assert_eq!(remote.to_string(), format!("east:{o}"));
        assert_eq!(local.to_string(), o.to_string());
    }
}
