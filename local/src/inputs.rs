//! DIR as core's engine sees it (the same reader and engine as `meshbridge run --source dir`).

use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::build::build;
use meshbridge_core::engine::{Backends, Diagnostics, Engine, EngineConfig};
use meshbridge_core::ir::Ir;
use meshbridge_core::load::LoadOptions;
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
        Inputs::with_options(trust_domain, LoadOptions::default())
    }

    /// [`Inputs::new`], reading DIR's files with `opts` (`-n`: the namespace of objects that
    /// state none).
    pub fn with_options(trust_domain: Option<String>, opts: LoadOptions) -> Inputs {
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
            reader: DirReader::new(opts),
            engine,
            stamp: BTreeMap::new(),
        }
    }

    /// Re-reads DIR's changed files into the engine. Returns the objects in use, their IR
    /// and the diagnostics (the engine's rules: a file or document that cannot be read
    /// keeps its previous objects; an invalid object keeps its last accepted version; one
    /// severity rule and format, core's [`Diagnostics`]).
    pub fn reload(&mut self, dir: &Path) -> (Snapshot, Ir, Diagnostics) {
        let mut diags = Diagnostics::default();
        match scan(dir) {
            Ok(now) => {
                let (changes, _) = self.reader.refresh(&now);
                for c in changes {
                    self.engine.apply(c);
                }
                self.stamp = now;
            }
            Err(e) => diags.error(format!("{}: {e}", dir.display())),
        }
        self.engine.recompute();
        for p in self.reader.problems() {
            diags.problem(&p);
        }
        for p in self.reader.kept() {
            diags.warning(format!(
                "{}: keeping the last readable version of this file",
                p.display()
            ));
        }
        diags.engine(&self.engine);
        let snap = self.engine.snapshot_in_use();
        let ir = build(&snap);
        (snap, ir, diags)
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

#[cfg(test)]
mod tests {
    use super::*;
    use meshbridge_core::model::{Kind, ObjectKey};

    #[test]
    fn the_load_options_reach_the_directory_reader() {
        let d = std::env::temp_dir().join(format!("mb-local-inputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("svc.yaml"),
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",
        )
        .unwrap();
        let opts = LoadOptions {
            default_namespace: Some("shop".into()),
        };
        let mut inputs = Inputs::with_options(None, opts);
        inputs.reload(&d);
        let key = ObjectKey::new(Kind::Service, "shop", "web");
        assert!(inputs.engine().object(&key).is_some());
        let mut inputs = Inputs::new(None);
        inputs.reload(&d);
        let key = ObjectKey::new(Kind::Service, "default", "web");
        assert!(inputs.engine().object(&key).is_some());
        let _ = std::fs::remove_dir_all(&d);
    }
}
