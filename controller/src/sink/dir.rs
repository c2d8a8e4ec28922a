//! `--output dir:PATH`: one YAML file per object, at
//! `PATH/<namespace>/<kind>.<group>/<name>.yaml` (`_cluster` for cluster-scoped objects;
//! the group is omitted for the core group). Files are written only when their content
//! changes; files of objects no longer desired are removed only when they carry our owner
//! label; files without it are never touched (a desired object whose file is someone
//! else's is reported as a conflict).

use super::{PutOutcome, Sink, ensure_owned, is_owned};
use crate::types::OutKey;
use crate::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct DirSink {
    root: PathBuf,
    controller_namespace: String,
}

impl DirSink {
    pub fn new(root: impl Into<PathBuf>, controller_namespace: &str) -> DirSink {
        DirSink {
            root: root.into(),
            controller_namespace: controller_namespace.to_string(),
        }
    }

    /// Relative path of an object's file.
    pub fn rel_path(key: &OutKey) -> PathBuf {
        let ns = if key.namespace.is_empty() {
            "_cluster"
        } else {
            &key.namespace
        };
        let kind = if key.group.is_empty() {
            key.kind.to_lowercase()
        } else {
            format!("{}.{}", key.kind.to_lowercase(), key.group)
        };
        PathBuf::from(sanitize(ns))
            .join(sanitize(&kind))
            .join(format!("{}.yaml", sanitize(&key.name)))
    }

    fn path(&self, key: &OutKey) -> PathBuf {
        self.root.join(Self::rel_path(key))
    }
}

/// Object names are DNS subdomains; anything else (never produced by adapters) is made
/// safe for a file name rather than allowed to escape the directory.
fn sanitize(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        "_".into()
    } else {
        s
    }
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io(format!("{}: {e}", path.display()))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        let p = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&p, out)?;
        } else if p.extension().and_then(|e| e.to_str()) == Some("yaml") {
            out.push(p);
        }
    }
    Ok(())
}

fn read_value(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    meshbridge_core::load::parse_document(&text).ok().flatten()
}

#[async_trait::async_trait]
impl Sink for DirSink {
    fn name(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    async fn list_owned(&mut self) -> Result<BTreeMap<OutKey, Value>> {
        let mut files = Vec::new();
        walk(&self.root, &mut files).map_err(|e| io(&self.root, e))?;
        files.sort();
        let mut out = BTreeMap::new();
        for f in files {
            let Some(v) = read_value(&f) else { continue };
            if !is_owned(&v, &self.controller_namespace) {
                continue;
            }
            let Some(k) = OutKey::of_value(&v) else {
                continue;
            };
            // Only files at the place meshbridge writes them count as its objects.
            if self.path(&k) == f {
                out.insert(k, v);
            }
        }
        Ok(out)
    }

    async fn put(&mut self, k: &OutKey, want: &Value, live: Option<&Value>) -> Result<PutOutcome> {
        let path = self.path(k);
        if live.is_none() && path.exists() {
            let theirs = read_value(&path);
            if !theirs
                .as_ref()
                .is_some_and(|v| is_owned(v, &self.controller_namespace))
            {
                return Ok(PutOutcome::Conflict(format!(
                    "{} exists and is not managed by meshbridge (no meshbridge.io/owner label)",
                    path.display()
                )));
            }
        }
        let text = meshbridge_core::yaml::to_yaml(want);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            return Ok(PutOutcome::Written(want.clone()));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        // Write to a temporary file and rename: readers never see half a file.
        let tmp = path.with_extension("yaml.tmp");
        std::fs::write(&tmp, text.as_bytes()).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        Ok(PutOutcome::Written(want.clone()))
    }

    async fn delete(&mut self, key: &OutKey, live: &Value) -> Result<()> {
        ensure_owned(key, live, &self.controller_namespace)?;
        let path = self.path(key);
        // Re-check the file on disk: it may have been replaced by someone else's.
        if let Some(v) = read_value(&path)
            && !is_owned(&v, &self.controller_namespace)
        {
            return Err(Error::NotOwned(path.display().to_string()));
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path, e)),
        }
        // Remove directories left empty (up to the root).
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || !d.starts_with(&self.root) {
                break;
            }
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }
}
