//! Golden cases: `cases/<area>/<case>/input.yaml`, an optional `README.md` stating the rule
//! tested, and `expected/<mesh>.yaml` (stdout of `meshbridge translate --mesh <mesh> -f
//! input.yaml`) plus `expected/<mesh>.stderr` (its diagnostics and exit code).
//! `UPDATE_GOLDEN=1` rewrites the goldens and deletes orphaned ones.

use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Case {
    pub dir: PathBuf,
    /// `area/case`.
    pub name: String,
}

/// What one run produced.
#[derive(Clone, Debug)]
pub struct Actual {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

pub fn updating() -> bool {
    std::env::var("UPDATE_GOLDEN").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Every case under `conformance/cases`, sorted.
pub fn discover() -> Vec<Case> {
    let base = crate::root().join("cases");
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<Case>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    if dir.join("input.yaml").is_file() {
        out.push(Case {
            dir: dir.to_path_buf(),
            name: dir
                .strip_prefix(base)
                .unwrap_or(dir)
                .to_string_lossy()
                .into_owned(),
        });
        return;
    }
    for e in entries {
        if e.is_dir() {
            walk(base, &e, out);
        }
    }
}

impl Case {
    pub fn expected_yaml(&self, mesh: &str) -> PathBuf {
        self.dir.join("expected").join(format!("{mesh}.yaml"))
    }

    pub fn expected_stderr(&self, mesh: &str) -> PathBuf {
        self.dir.join("expected").join(format!("{mesh}.stderr"))
    }

    /// Meshes that have goldens in this case.
    pub fn meshes_with_goldens(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.dir.join("expected")) else {
            return vec![];
        };
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                (p.extension()?.to_str()? == "yaml")
                    .then(|| p.file_stem()?.to_str().map(str::to_string))?
            })
            .collect();
        v.sort();
        v
    }

    /// Compares `actual` with the goldens (or writes them when updating). The error shows
    /// both sides in full.
    pub fn check(&self, mesh: &str, actual: &Actual) -> Result<(), String> {
        let stderr = format!("{}exit: {}\n", actual.stderr, actual.code);
        let (y, e) = (self.expected_yaml(mesh), self.expected_stderr(mesh));
        if updating() {
            std::fs::create_dir_all(self.dir.join("expected")).map_err(|e| e.to_string())?;
            std::fs::write(&y, &actual.stdout).map_err(|e| e.to_string())?;
            std::fs::write(&e, &stderr).map_err(|e| e.to_string())?;
            return Ok(());
        }
        let want_y = std::fs::read_to_string(&y).map_err(|err| {
            format!(
                "{}: missing golden {} ({err}); run with UPDATE_GOLDEN=1 and review the diff",
                self.name,
                y.display()
            )
        })?;
        let want_e = std::fs::read_to_string(&e).unwrap_or_default();
        let mut msg = String::new();
        if want_y != actual.stdout {
            msg.push_str(&format!(
                "--- {}: expected {mesh}.yaml ---\n{want_y}\n--- actual ---\n{}\n",
                self.name, actual.stdout
            ));
        }
        if want_e != stderr {
            msg.push_str(&format!(
                "--- {}: expected {mesh}.stderr ---\n{want_e}\n--- actual ---\n{stderr}\n",
                self.name
            ));
        }
        if msg.is_empty() { Ok(()) } else { Err(msg) }
    }

    /// When updating: removes goldens of meshes not in `written`.
    pub fn remove_orphans(&self, written: &[String]) {
        if !updating() {
            return;
        }
        for m in self.meshes_with_goldens() {
            if !written.contains(&m) {
                let _ = std::fs::remove_file(self.expected_yaml(&m));
                let _ = std::fs::remove_file(self.expected_stderr(&m));
            }
        }
    }
}

/// Parses a YAML stream into JSON values (for schema validation of outputs).
pub fn documents(yaml: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut out = Vec::new();
    for (i, doc) in meshbridge_core::load::split_documents(yaml) {
        if let Some(v) =
            meshbridge_core::load::parse_document(&doc).map_err(|e| format!("document {i}: {e}"))?
        {
            out.push(v);
        }
    }
    Ok(out)
}
