//! Reading `-f PATH` arguments: files, directories (core's one walker: recursive,
//! `*.yaml|*.yml|*.json`, sorted, hidden entries skipped) and `-` (stdin).

use meshbridge_core::load::{LoadOptions, Loaded, load_str_with};
use meshbridge_core::source::dir::{file_problem, read_text, walk};
use std::io::Read;
use std::path::Path;

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
            let files = walk(path).map_err(|e| format!("{p}: {e}"))?;
            out.extend(files.into_iter().map(|f| f.to_string_lossy().into_owned()));
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Reads and loads one file (`-` = stdin). Unreadable or non-UTF-8 files become problems.
pub fn load_file(path: &str, opts: &LoadOptions) -> Loaded {
    let text = if path == "-" {
        let mut buf = Vec::new();
        match std::io::stdin().read_to_end(&mut buf) {
            Ok(_) => String::from_utf8(buf).map_err(|_| "file is not UTF-8 text".to_string()),
            Err(e) => Err(e.to_string()),
        }
    } else {
        read_text(Path::new(path))
    };
    match text {
        Ok(t) => load_str_with(path, &t, opts),
        Err(reason) => {
            let mut l = Loaded::default();
            l.problems.push(file_problem(path, reason));
            l
        }
    }
}
