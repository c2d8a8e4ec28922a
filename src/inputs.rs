//! Reading `-f PATH` arguments: files, directories (recursive, `*.yaml|*.yml|*.json`,
//! sorted) and `-` (stdin).

use meshbridge_core::load::{Loaded, load_str};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Expands paths to the files to read. Errors are usage errors (exit 2).
pub fn expand(paths: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p == "-" {
            out.push("-".to_string());
            continue;
        }
        let path = Path::new(p);
        let md = std::fs::metadata(path).map_err(|e| format!("{p}: {e}"))?;
        if md.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files).map_err(|e| format!("{p}: {e}"))?;
            files.sort();
            out.extend(files.into_iter().map(|f| f.to_string_lossy().into_owned()));
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads and loads one file (`-` = stdin). Unreadable or non-UTF-8 files become problems.
pub fn load_file(path: &str) -> Loaded {
    let mut buf = Vec::new();
    let res = if path == "-" {
        std::io::stdin().read_to_end(&mut buf).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut buf).map(|_| ()))
    };
    let text = match res {
        Ok(()) => String::from_utf8(buf).map_err(|_| "file is not UTF-8 text".to_string()),
        Err(e) => Err(e.to_string()),
    };
    match text {
        Ok(t) => load_str(path, &t),
        Err(reason) => {
            let mut l = Loaded::default();
            l.problems.push(meshbridge_core::report::Problem {
                severity: meshbridge_core::report::Severity::Error,
                origin: meshbridge_core::model::Origin::File {
                    path: path.to_string(),
                    doc: 0,
                },
                kind: "Document".into(),
                namespace: String::new(),
                name: String::new(),
                field: "(file)".into(),
                reason,
                condition_reason: meshbridge_core::report::reasons::INVALID_YAML,
            });
            l
        }
    }
}
