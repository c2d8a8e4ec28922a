//! `--source dir:PATH`: every `*.yaml|*.yml|*.json` under PATH (recursive), read with core's
//! loader exactly as `meshbridge translate -f PATH` reads it. With `watch`, the directory
//! is polled: a file whose modification time or size changed is re-read once the directory
//! has been quiet for the debounce period; objects that left a file are deleted.
//!
//! A file that cannot be read at all (invalid YAML, not UTF-8) keeps the objects it had:
//! an invalid edit never removes outputs. An object that fails validation keeps its last
//! good version (see the engine).

use super::{Source, SyncTracker, changes_of};
use crate::types::{Change, Msg};
use crate::{Error, Result};
use meshbridge_core::model::ObjectKey;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

pub struct DirSource {
    pub root: PathBuf,
    /// Problems not attributable to one object (unreadable documents), for `--once`.
    pub problems: std::sync::Arc<std::sync::Mutex<Vec<meshbridge_core::report::Problem>>>,
    pub poll: Duration,
    pub debounce: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    mtime: Option<SystemTime>,
    len: u64,
}

/// What the source remembers of the directory.
#[derive(Default)]
struct State {
    stamps: BTreeMap<PathBuf, Stamp>,
    /// Objects each file defined at its last good read.
    keys: BTreeMap<PathBuf, BTreeSet<ObjectKey>>,
    /// Which file currently defines each object (the later file wins, like `translate`).
    owner: BTreeMap<ObjectKey, PathBuf>,
    /// Unattributable problems seen.
    problems: Vec<meshbridge_core::report::Problem>,
}

fn is_input(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn scan(root: &Path) -> std::io::Result<BTreeMap<PathBuf, Stamp>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Stamp>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let p = entry.path();
            let ft = entry.file_type()?;
            if ft.is_dir() {
                walk(&p, out)?;
            } else if is_input(&p) {
                let md = entry.metadata()?;
                out.insert(
                    p,
                    Stamp {
                        mtime: md.modified().ok(),
                        len: md.len(),
                    },
                );
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, &mut out)?;
    Ok(out)
}

impl State {
    /// Re-reads changed files; returns the changes to send.
    fn refresh(&mut self, root: &Path, now: BTreeMap<PathBuf, Stamp>) -> Vec<Change> {
        let mut out = Vec::new();
        let removed: Vec<PathBuf> = self
            .stamps
            .keys()
            .filter(|p| !now.contains_key(*p))
            .cloned()
            .collect();
        for p in removed {
            self.stamps.remove(&p);
            for k in self.keys.remove(&p).unwrap_or_default() {
                if self.owner.get(&k) == Some(&p) {
                    self.owner.remove(&k);
                    out.push(Change::Delete(k));
                }
            }
        }
        for (p, stamp) in now {
            if self.stamps.get(&p) == Some(&stamp) {
                continue;
            }
            self.stamps.insert(p.clone(), stamp);
            let text = match std::fs::read(&p).map(String::from_utf8) {
                Ok(Ok(t)) => t,
                Ok(Err(_)) => {
                    tracing::error!(file = %p.display(), "not UTF-8 text; keeping its last good content");
                    continue;
                }
                Err(e) => {
                    tracing::error!(file = %p.display(), error = %e, "unreadable; keeping its last good content");
                    continue;
                }
            };
            let _ = root;
            let loaded = meshbridge_core::load::load_str(&p.to_string_lossy(), &text);
            let (changes, other) = changes_of(loaded);
            let mut new_keys: BTreeSet<ObjectKey> = changes.iter().map(Change::key).collect();
            let old_keys = self.keys.get(&p).cloned().unwrap_or_default();
            if !other.is_empty() {
                self.problems.extend(other.iter().cloned());
                // A document could not be read: the objects it may have held are kept.
                for problem in &other {
                    tracing::error!(%problem, "objects this document defined before are kept");
                }
                new_keys.extend(old_keys.iter().cloned());
            }
            self.keys.insert(p.clone(), new_keys.clone());
            for k in old_keys.difference(&new_keys) {
                if self.owner.get(k) == Some(&p) {
                    self.owner.remove(k);
                    out.push(Change::Delete(k.clone()));
                }
            }
            for c in changes {
                self.owner.insert(c.key(), p.clone());
                out.push(c);
            }
        }
        out
    }
}

async fn quiet_scan(root: &Path, debounce: Duration) -> std::io::Result<BTreeMap<PathBuf, Stamp>> {
    let mut prev = scan(root)?;
    loop {
        tokio::time::sleep(debounce).await;
        let now = scan(root)?;
        if now == prev {
            return Ok(now);
        }
        prev = now;
    }
}

#[async_trait::async_trait]
impl Source for DirSource {
    async fn start(
        self: Box<Self>,
        tx: mpsc::UnboundedSender<Msg>,
        sync: SyncTracker,
        watch: bool,
    ) -> Result<()> {
        let root = self.root.clone();
        let md =
            std::fs::metadata(&root).map_err(|e| Error::Io(format!("{}: {e}", root.display())))?;
        if !md.is_dir() {
            return Err(Error::Usage(format!(
                "{} is not a directory",
                root.display()
            )));
        }
        let id = sync.register();
        let mut state = State::default();
        let first = scan(&root).map_err(|e| Error::Io(format!("{}: {e}", root.display())))?;
        let changes = state.refresh(&root, first);
        self.problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(std::mem::take(&mut state.problems));
        let _ = tx.send(Msg::Replace {
            kinds: super::memory::ALL_KINDS.to_vec(),
            changes,
        });
        let _ = tx.send(Msg::Synced(id));
        if !watch {
            return Ok(());
        }
        let (poll, debounce) = (self.poll, self.debounce);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                let now = match scan(&root) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!(dir = %root.display(), error = %e, "cannot scan");
                        continue;
                    }
                };
                if now == state.stamps {
                    continue;
                }
                let now = match quiet_scan(&root, debounce).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!(dir = %root.display(), error = %e, "cannot scan");
                        continue;
                    }
                };
                for c in state.refresh(&root, now) {
                    if tx.send(Msg::Input(c)).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(())
    }
}
