//! Golden cases: `cases/<area>/<case>/input.yaml`, an optional `README.md` stating the rule
//! tested, and a golden per stage in `expected/`: `ir.yaml` (the mesh-neutral IR the input
//! builds, [`Case::ir`]), `<mesh>.yaml` (stdout of `meshbridge translate --mesh <mesh> -f
//! input.yaml`) and `<mesh>.stderr` (its diagnostics and exit code). `UPDATE_GOLDEN=1`
//! rewrites the goldens and deletes orphaned ones. See `docs/conformance.md`.

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

/// The IR golden's file name in `expected/` (never a mesh name).
pub const IR_GOLDEN: &str = "ir.yaml";

impl Case {
    pub fn expected_yaml(&self, mesh: &str) -> PathBuf {
        self.dir.join("expected").join(format!("{mesh}.yaml"))
    }

    pub fn expected_stderr(&self, mesh: &str) -> PathBuf {
        self.dir.join("expected").join(format!("{mesh}.stderr"))
    }

    pub fn expected_ir(&self) -> PathBuf {
        self.dir.join("expected").join(IR_GOLDEN)
    }

    /// Meshes that have goldens in this case.
    pub fn meshes_with_goldens(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.dir.join("expected")) else {
            return vec![];
        };
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name() != IR_GOLDEN)
            .filter_map(|e| {
                let p = e.path();
                (p.extension()?.to_str()? == "yaml")
                    .then(|| p.file_stem()?.to_str().map(str::to_string))?
            })
            .collect();
        v.sort();
        v
    }

    /// The IR stage: `input.yaml` loaded (named `input.yaml`, as the CLI run in the case's
    /// folder names it) and built with the same functions `meshbridge translate` calls,
    /// rendered by [`meshbridge_core::Ir::to_yaml`].
    pub fn ir(&self) -> Result<String, String> {
        let text = std::fs::read_to_string(self.dir.join("input.yaml"))
            .map_err(|e| format!("{}: input.yaml: {e}", self.name))?;
        let loaded = meshbridge_core::load::load_str("input.yaml", &text);
        let (snapshot, _, _) = meshbridge_core::pipeline::snapshot_of(vec![loaded]);
        Ok(meshbridge_core::build::build(&snapshot).to_yaml())
    }

    /// Compares the IR with `expected/ir.yaml` (or writes it when updating).
    pub fn check_ir(&self, actual: &str) -> Result<(), String> {
        self.check_golden(&self.expected_ir(), "IR", actual)
    }

    /// Compares `actual` with the goldens (or writes them when updating). The error names
    /// the case and shows a line diff.
    pub fn check(&self, mesh: &str, actual: &Actual) -> Result<(), String> {
        let stderr = format!("{}exit: {}\n", actual.stderr, actual.code);
        let errs: Vec<String> = [
            self.check_golden(&self.expected_yaml(mesh), mesh, &actual.stdout),
            self.check_golden(&self.expected_stderr(mesh), mesh, &stderr),
        ]
        .into_iter()
        .filter_map(Result::err)
        .collect();
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("\n"))
        }
    }

    /// One golden file of one stage: written when updating, else compared byte for byte.
    fn check_golden(&self, path: &Path, stage: &str, actual: &str) -> Result<(), String> {
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        if updating() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            return std::fs::write(path, actual).map_err(|e| format!("{}: {e}", path.display()));
        }
        let want = std::fs::read_to_string(path).map_err(|err| {
            format!(
                "{}: missing golden expected/{file} ({err}); run with UPDATE_GOLDEN=1 and review the diff",
                self.name
            )
        })?;
        if want == actual {
            return Ok(());
        }
        Err(format!(
            "--- {case}/expected/{file} ({stage} stage)\n+++ {case}: actual\n{diff}",
            case = self.name,
            diff = diff(&want, actual)
        ))
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

/// A line diff of `want` → `got` (`-` only in the golden, `+` only in the actual output,
/// three lines of context, `@@ line N` before each hunk), from a longest common subsequence.
pub fn diff(want: &str, got: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    // Common head and tail are context; the LCS runs on the middle only.
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    // lcs[i][j]: length of the LCS of am[i..] and bm[j..].
    let mut lcs = vec![vec![0usize; bm.len() + 1]; am.len() + 1];
    for i in (0..am.len()).rev() {
        for j in (0..bm.len()).rev() {
            lcs[i][j] = if am[i] == bm[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // (tag, golden line number, text)
    let mut ops: Vec<(char, usize, &str)> = (0..head).map(|k| (' ', k + 1, a[k])).collect();
    let (mut i, mut j) = (0, 0);
    while i < am.len() || j < bm.len() {
        if i < am.len() && j < bm.len() && am[i] == bm[j] {
            ops.push((' ', head + i + 1, am[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < am.len() && (j == bm.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', head + i + 1, am[i]));
            i += 1;
        } else {
            ops.push(('+', head + i + 1, bm[j]));
            j += 1;
        }
    }
    let start = a.len() - tail;
    ops.extend((start..a.len()).map(|k| (' ', k + 1, a[k])));
    const CONTEXT: usize = 3;
    let mut shown = vec![false; ops.len()];
    for (k, op) in ops.iter().enumerate() {
        if op.0 != ' ' {
            let end = (k + CONTEXT + 1).min(ops.len());
            shown[k.saturating_sub(CONTEXT)..end].fill(true);
        }
    }
    let mut out = String::new();
    for (k, (tag, line, text)) in ops.iter().enumerate() {
        if !shown[k] {
            continue;
        }
        if k == 0 || !shown[k - 1] {
            out.push_str(&format!("@@ line {line}\n"));
        }
        out.push_str(&format!("{tag}{text}\n"));
    }
    if out.is_empty() {
        // Same lines, different bytes: line endings or the final newline.
        out.push_str("(the files differ only in line endings or the final newline)\n");
    }
    out
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

#[cfg(test)]
mod tests {
    use super::diff;

    #[test]
    fn diff_shows_changed_lines_with_context() {
        let want = "a\nb\nc\nd\ne\nf\ng\nh\ni\n";
        let got = "a\nb\nc\nd\nE\nf\ng\nh\ni\nj\n";
        assert_eq!(
            diff(want, got),
            "@@ line 2\n b\n c\n d\n-e\n+E\n f\n g\n h\n i\n+j\n"
        );
    }

    #[test]
    fn diff_of_line_ending_changes_says_so() {
        assert_eq!(
            diff("a\n", "a"),
            "(the files differ only in line endings or the final newline)\n"
        );
    }
}
