//! DIR as core's engine sees it (the same reader and engine as `meshbridge run --source dir`).

use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::build::build;
use meshbridge_core::engine::{Backends, Engine, EngineConfig, last_good_line};
use meshbridge_core::ir::Ir;
use meshbridge_core::source::dir::{DirReader, Stamp, scan};
use meshbridge_core::{Context, Snapshot};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// DIR as core's engine sees it: core's directory reader feeds its files' objects into the
/// engine as changes (the same reader and engine as `meshbridge run --source dir`), and the
/// objects in use — each at its current version, or its last accepted one while the current
/// is invalid — are translated per proxy with the envoy adapter.
pub struct Inputs {
    reader: DirReader,
    engine: Engine,
    /// The stamps of DIR's files as last read.
    pub(crate) stamp: BTreeMap<PathBuf, Stamp>,
}

impl Inputs {
    pub fn new(trust_domain: Option<String>) -> Inputs {
        let mut engine = Engine::new(
            EngineConfig {
                base: Context::default(),
                trust_domain,
                backends: Backends::List(vec![MeshType::Envoy]),
            },
            vec![],
        );
        // The built-in mesh is translated here, per proxy, from the objects in use.
        engine.set_api_meshes([MeshType::Envoy]);
        Inputs {
            reader: DirReader::default(),
            engine,
            stamp: BTreeMap::new(),
        }
    }

    /// Re-reads DIR's changed files into the engine. Returns the objects in use, their IR
    /// and the problem lines (the engine's rules: a file or document that cannot be read
    /// keeps its previous objects; an invalid object keeps its last accepted version).
    pub fn reload(&mut self, dir: &Path) -> (Snapshot, Ir, Vec<String>) {
        let mut problems = Vec::new();
        match scan(dir) {
            Ok(now) => {
                let (changes, _) = self.reader.refresh(&now);
                for c in changes {
                    self.engine.apply(c);
                }
                self.stamp = now;
            }
            Err(e) => problems.push(format!("{}: {e}", dir.display())),
        }
        self.engine.recompute();
        problems.extend(self.reader.problems().iter().map(|p| p.to_string()));
        for p in self.reader.kept() {
            problems.push(format!(
                "{}: keeping the last readable version of this file",
                p.display()
            ));
        }
        problems.extend(self.engine.problems().iter().map(|p| p.to_string()));
        problems.extend(
            self.engine
                .using_last_good()
                .into_iter()
                .map(last_good_line),
        );
        let snap = self.engine.snapshot_in_use();
        let ir = build(&snap);
        (snap, ir, problems)
    }

    /// The engine (statuses, problems, the objects in use).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// DIR's files now (unchanged when DIR cannot be listed).
    pub(crate) fn scan(&self, dir: &Path) -> BTreeMap<PathBuf, Stamp> {
        scan(dir).unwrap_or_else(|_| self.stamp.clone())
    }
}
