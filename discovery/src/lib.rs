//! meshbridge discovery and Install.
//!
//! - [`detect`]: cluster objects (JSON values of any kind) → the control planes running
//!   (Istio incl. revisions, Linkerd, App Mesh, meshbridge's built-in mesh) → `Mesh`
//!   objects with the adapter's capability matrix for the discovered version. Pure.
//! - [`merge`]: rediscovery against existing Meshes (user fields survive; a vanished mesh
//!   gets `Ready=False NotFound`, never a delete). Pure.
//! - [`table`]: the `meshbridge meshes` table and the capability matrix side by side.
//! - [`install`]: `Install` → installer Job, ServiceAccount and RBAC; phase from the Job;
//!   one active Install per mesh type. Pure.
//! - [`kube`]: the Install reconciler against the Kubernetes API (finalizer, Jobs, status)
//!   and a discovery pass that writes Mesh objects.
//! - [`runner`]: the loop `meshbridge run` runs (leader only): discovery and Installs,
//!   periodically and on Install/Job changes.
//! - [`rbac`]: the permissions that needs (checked against deploy/).
//! - [`resources`]: the API resources it addresses, with their plurals (one table; a kind
//!   outside it is an error, never a guess).
//!
//! This crate does not depend on any adapter: capabilities come in through a callback.

pub mod cli;
pub mod detect;
pub mod install;
pub mod kube;
pub mod merge;
pub mod rbac;
pub mod resources;
pub mod runner;
pub mod table;
pub mod version;

pub use detect::{CapsFn, Config, ControlPlane, discover, find_control_planes, with_api_meshes};
pub use merge::merge;

/// Reads every YAML/JSON document of files and directories (recursive, `*.yaml|*.yml|*.json`)
/// (`-`: standard input) as JSON values. Documents that do not parse are reported as `path:doc: reason`; the rest
/// are kept. Paths are read in sorted order.
pub fn read_objects(paths: &[std::path::PathBuf]) -> (Vec<serde_json::Value>, Vec<String>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for p in paths {
        collect(p, &mut files, &mut problems);
    }
    files.sort();
    files.dedup();
    let mut out = Vec::new();
    for f in files {
        let read = if f.as_os_str() == "-" {
            let mut t = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut t).map(|_| t)
        } else {
            std::fs::read_to_string(&f)
        };
        let text = match read {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{}: {e}", f.display()));
                continue;
            }
        };
        for (doc, body) in meshbridge_core::load::split_documents(&text) {
            match meshbridge_core::load::parse_document(&body) {
                Ok(Some(serde_json::Value::Object(m))) => {
                    // `kind: List` (kubectl get -o yaml) holds its objects in `items`.
                    if m.get("kind").and_then(|k| k.as_str()) == Some("List") {
                        if let Some(serde_json::Value::Array(items)) = m.get("items") {
                            out.extend(items.iter().cloned());
                        }
                    } else {
                        out.push(serde_json::Value::Object(m));
                    }
                }
                Ok(Some(_)) => problems.push(format!("{}:{doc}: not a mapping", f.display())),
                Ok(None) => {}
                Err(e) => problems.push(format!("{}:{doc}: {e}", f.display())),
            }
        }
    }
    (out, problems)
}

fn collect(p: &std::path::Path, files: &mut Vec<std::path::PathBuf>, problems: &mut Vec<String>) {
    if p.as_os_str() == "-" {
        files.push(p.to_path_buf());
        return;
    }
    match std::fs::metadata(p) {
        // The one directory walker (recursive, *.yaml|*.yml|*.json, hidden entries skipped).
        Ok(md) if md.is_dir() => match meshbridge_core::source::dir::walk(p) {
            Ok(found) => files.extend(found),
            Err(e) => problems.push(format!("{}: {e}", p.display())),
        },
        Ok(_) => files.push(p.to_path_buf()),
        Err(e) => problems.push(format!("{}: {e}", p.display())),
    }
}
