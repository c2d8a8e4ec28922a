//! `--source dir:PATH`: core's directory reader ([`meshbridge_core::source::dir`]: the one
//! walker, `*.yaml|*.yml|*.json` recursive, read exactly as `meshbridge translate -f PATH`
//! reads it) on a poll loop. With `watch`, a changed file is re-read once the directory has
//! been quiet for the debounce period; objects that left a file are deleted.
//!
//! A file or document that cannot be read at all keeps the objects it had: an invalid edit
//! never removes outputs. An object that fails validation keeps its last good version (see
//! the engine).

use super::{Sender, Source, SyncTracker};
use crate::types::Msg;
use crate::{Error, Result};
use meshbridge_core::source::dir::{DirReader, Stamp, scan};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct DirSource {
    pub root: PathBuf,
    /// How files are read (`-n`: the namespace of objects that state none).
    pub opts: meshbridge_core::load::LoadOptions,
    /// Problems not attributable to one object (unreadable documents), for `--once`.
    pub problems: std::sync::Arc<std::sync::Mutex<Vec<meshbridge_core::report::Problem>>>,
    pub poll: Duration,
    pub debounce: Duration,
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
    async fn start(self: Box<Self>, tx: Sender, sync: SyncTracker, watch: bool) -> Result<()> {
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
        let mut reader = DirReader::new(self.opts.clone());
        let first = scan(&root).map_err(|e| Error::Io(format!("{}: {e}", root.display())))?;
        let (changes, problems) = reader.refresh(&first);
        self.problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(problems);
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
                if now == reader.stamps() {
                    continue;
                }
                let now = match quiet_scan(&root, debounce).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!(dir = %root.display(), error = %e, "cannot scan");
                        continue;
                    }
                };
                let (changes, problems) = reader.refresh(&now);
                for problem in problems {
                    if problem.is_error() {
                        tracing::error!(%problem, "objects this file defined before are kept");
                    } else {
                        tracing::warn!(%problem, "input warning");
                    }
                }
                for c in changes {
                    if tx.send(Msg::Input(c)).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(())
    }
}
