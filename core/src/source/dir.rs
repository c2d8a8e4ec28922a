//! The one directory walker (`translate -f DIR`, `run --source dir:DIR`, `meshbridge local
//! up DIR`) and the directory reader that turns a directory's files into engine changes.
//! No I/O besides listing and reading the files.
//!
//! **Which files**: every `*.yaml`, `*.yml` and `*.json` under the directory, recursively,
//! sorted by path; entries whose name starts with `.` (hidden files and directories: `.git`,
//! editors' temporary files) are skipped. A file that vanishes while the directory is
//! listed is skipped; any other listing error is returned.
//!
//! **Reading** ([`DirReader`]): a file is re-read when its size or modification time
//! changed. Every document is read on its own. A document that cannot be read at all (bad
//! YAML), or a file that cannot be read (I/O error, not UTF-8), keeps the objects the file
//! held before (it may have held them; an invalid edit never removes outputs) — the
//! documents that can be read still apply. An object defined by several files is taken from
//! the last file (by path) that defines it, like `translate`; when that file stops defining
//! it, the next one's version applies. Objects no file defines any more are deleted.

use crate::engine::{Change, changes_of};
use crate::load::{LoadOptions, load_str_with};
use crate::model::{ObjectKey, Origin};
use crate::report::{Problem, Severity, reasons};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Whether `p` names an input file (by extension).
pub fn is_input(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// Every input file under `root`, recursively, sorted.
pub fn walk(root: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(scan(root)?.into_keys().collect())
}

/// What tells a changed file: size and modification time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub mtime: Option<SystemTime>,
    pub len: u64,
}

/// Every input file under `root` with its [`Stamp`], sorted by path.
pub fn scan(root: &Path) -> io::Result<BTreeMap<PathBuf, Stamp>> {
    fn visit(dir: &Path, out: &mut BTreeMap<PathBuf, Stamp>) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if hidden(&entry.file_name()) {
                continue;
            }
            let p = entry.path();
            let md = match std::fs::metadata(&p) {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if md.is_dir() {
                match visit(&p, out) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    r => r?,
                }
            } else if md.is_file() && is_input(&p) {
                out.insert(
                    p,
                    Stamp {
                        mtime: md.modified().ok(),
                        len: md.len(),
                    },
                );
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    visit(root, &mut out)?;
    Ok(out)
}

/// A problem with a whole file (it cannot be read), in the usual problem form.
pub fn file_problem(path: &str, reason: impl Into<String>) -> Problem {
    Problem {
        severity: Severity::Error,
        origin: Origin::File {
            path: path.to_string(),
            doc: 0,
            line: 0,
        },
        kind: "Document".into(),
        namespace: String::new(),
        name: String::new(),
        field: "(file)".into(),
        reason: reason.into(),
        condition_reason: reasons::INVALID_YAML,
    }
}

/// Reads a file as UTF-8 text; the failure's reason (for a [`file_problem`]).
pub fn read_text(path: &Path) -> Result<String, String> {
    match std::fs::read(path) {
        Ok(b) => String::from_utf8(b).map_err(|_| "file is not UTF-8 text".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// One file as last read.
#[derive(Clone, Debug, Default)]
struct File {
    stamp: Option<Stamp>,
    /// The change each object of the file stands for (its last readable version).
    objects: BTreeMap<ObjectKey, Change>,
    /// Problems not attributable to one object (unreadable documents or file) and warnings
    /// (unknown fields), as last read.
    problems: Vec<Problem>,
    /// The last read could not read everything: objects read before are kept.
    kept: bool,
}

/// A directory as a source: [`DirReader::refresh`] turns what changed on disk into changes.
#[derive(Clone, Debug, Default)]
pub struct DirReader {
    /// How every file is read (`-n`: the namespace of objects that state none).
    opts: LoadOptions,
    files: BTreeMap<PathBuf, File>,
    /// Which files define each object.
    defs: BTreeMap<ObjectKey, BTreeSet<PathBuf>>,
}

impl DirReader {
    /// A reader that reads every file with `opts`.
    pub fn new(opts: LoadOptions) -> DirReader {
        DirReader {
            opts,
            ..DirReader::default()
        }
    }

    /// The stamps of the files as last read (compare with [`scan`] to see a change).
    pub fn stamps(&self) -> BTreeMap<PathBuf, Stamp> {
        self.files
            .iter()
            .filter_map(|(p, f)| Some((p.clone(), f.stamp.clone()?)))
            .collect()
    }

    /// Problems not attributable to one object, and warnings, of every file as last read.
    pub fn problems(&self) -> Vec<Problem> {
        self.files
            .values()
            .flat_map(|f| f.problems.iter().cloned())
            .collect()
    }

    /// Files whose last read failed in part, so that objects read earlier are kept.
    pub fn kept(&self) -> Vec<&Path> {
        self.files
            .iter()
            .filter(|(_, f)| f.kept)
            .map(|(p, _)| p.as_path())
            .collect()
    }

    /// Re-reads the files of `now` ([`scan`]) whose stamp changed and forgets the files
    /// not in `now`. Returns the changes to apply, and the new unattributable problems.
    pub fn refresh(&mut self, now: &BTreeMap<PathBuf, Stamp>) -> (Vec<Change>, Vec<Problem>) {
        let mut touched: BTreeSet<ObjectKey> = BTreeSet::new();
        let mut new_problems = Vec::new();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !now.contains_key(*p))
            .cloned()
            .collect();
        for p in gone {
            if let Some(f) = self.files.remove(&p) {
                for k in f.objects.into_keys() {
                    self.undefine(&k, &p);
                    touched.insert(k);
                }
            }
        }
        for (p, stamp) in now {
            let prev = self.files.get(p);
            if prev.and_then(|f| f.stamp.as_ref()) == Some(stamp) {
                continue;
            }
            let old = prev.cloned().unwrap_or_default();
            let mut file = File {
                stamp: Some(stamp.clone()),
                ..File::default()
            };
            match read_text(p) {
                Err(reason) => {
                    file.objects = old.objects.clone();
                    file.problems = vec![file_problem(&p.to_string_lossy(), reason)];
                    file.kept = !file.objects.is_empty();
                }
                Ok(text) => {
                    let loaded = load_str_with(&p.to_string_lossy(), &text, &self.opts);
                    let (changes, other) = changes_of(loaded);
                    if other.iter().any(Problem::is_error) {
                        // A document could not be read: the objects it may have held stay.
                        file.objects = old.objects.clone();
                        file.kept = !file.objects.is_empty();
                    }
                    for c in changes {
                        file.objects.insert(c.key(), c);
                    }
                    file.problems = other;
                }
            }
            new_problems.extend(file.problems.iter().cloned());
            for k in old.objects.keys() {
                if !file.objects.contains_key(k) {
                    self.undefine(k, p);
                }
                touched.insert(k.clone());
            }
            for k in file.objects.keys() {
                self.defs.entry(k.clone()).or_default().insert(p.clone());
                touched.insert(k.clone());
            }
            self.files.insert(p.clone(), file);
        }
        let mut out = Vec::new();
        for k in touched {
            match self.defs.get(&k).and_then(|s| s.last()) {
                Some(owner) => {
                    if let Some(c) = self.files.get(owner).and_then(|f| f.objects.get(&k)) {
                        out.push(c.clone());
                    }
                }
                None => out.push(Change::Delete(k)),
            }
        }
        (out, new_problems)
    }

    fn undefine(&mut self, k: &ObjectKey, p: &Path) {
        if let Some(s) = self.defs.get_mut(k) {
            s.remove(p);
            if s.is_empty() {
                self.defs.remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mb-dir-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn svc(name: &str, port: u16) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec: {{ports: [{{port: {port}}}]}}\n"
        )
    }

    fn summary(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::Upsert { object, .. } => match object.as_ref() {
                    crate::model::Object::Service(s, _) => format!(
                        "upsert {} {}",
                        object.key().name,
                        s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port
                    ),
                    o => format!("upsert {}", o.key()),
                },
                Change::Delete(k) => format!("delete {}", k.name),
                Change::Invalid { key, .. } => format!("invalid {}", key.name),
            })
            .collect()
    }

    #[test]
    fn walks_inputs_recursively_sorted_skipping_hidden_entries() {
        let d = tmp("walk");
        for f in [
            "b.yaml",
            "a/c.yml",
            "a/d.json",
            "e.txt",
            ".hidden.yaml",
            ".git/x.yaml",
        ] {
            let p = d.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let got: Vec<String> = walk(&d)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(&d).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, ["a/c.yml", "a/d.json", "b.yaml"]);
        assert!(walk(&d.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn reader_keeps_objects_of_unreadable_documents_and_falls_back_to_other_files() {
        let d = tmp("reader");
        std::fs::write(d.join("1.yaml"), svc("web", 80)).unwrap();
        std::fs::write(
            d.join("2.yaml"),
            format!("{}---\n{}", svc("web", 81), svc("api", 90)),
        )
        .unwrap();
        let mut r = DirReader::default();
        let (c, p) = r.refresh(&scan(&d).unwrap());
        // The later file wins for `web`.
        assert_eq!(summary(&c), ["upsert api 90", "upsert web 81"]);
        assert!(p.is_empty());

        // One document of 2.yaml broken, the other edited: the edit applies, what the
        // broken document may have held stays.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(
            d.join("2.yaml"),
            format!("{}---\nkind: [x\n", svc("api", 91)),
        )
        .unwrap();
        let (c, p) = r.refresh(&scan(&d).unwrap());
        assert_eq!(summary(&c), ["upsert api 91", "upsert web 81"]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(r.problems().len(), 1);
        assert_eq!(r.kept(), [d.join("2.yaml").as_path()]);

        // 2.yaml gone: `web` comes back from 1.yaml, `api` is deleted.
        std::fs::remove_file(d.join("2.yaml")).unwrap();
        let (c, p) = r.refresh(&scan(&d).unwrap());
        assert_eq!(summary(&c), ["delete api", "upsert web 80"]);
        assert!(p.is_empty() && r.problems().is_empty() && r.kept().is_empty());

        // Not UTF-8: a file problem, the objects stay.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(d.join("1.yaml"), [0xff, 0xfe, 0x00]).unwrap();
        let (c, p) = r.refresh(&scan(&d).unwrap());
        assert_eq!(summary(&c), ["upsert web 80"]);
        assert!(p[0].to_string().contains("not UTF-8"), "{p:?}");

        // A field of the wrong type: the object's change says it cannot be read.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(
            d.join("1.yaml"),
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: 7}\n",
        )
        .unwrap();
        let (c, _) = r.refresh(&scan(&d).unwrap());
        assert_eq!(summary(&c), ["invalid web"]);
        assert_eq!(c[0].key(), ObjectKey::new(Kind::Service, "shop", "web"));
        // Nothing changed on disk: nothing to do.
        let (c, p) = r.refresh(&scan(&d).unwrap());
        assert!(c.is_empty() && p.is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }
}
