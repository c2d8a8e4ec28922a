//! Black-box tests of the `meshbridge translate` contract (DESIGN.md): stdout YAML, the
//! stderr line format `PATH:LINE: Kind namespace/name: field.path: reason` (LINE: the file
//! line where the object's document starts; warnings prefixed `warning: `), exit codes
//! 0/1/2 (warnings never fail), `-n`, and no panic on any input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meshbridge"))
}

fn translate(mesh: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = bin();
    c.args(["translate", "--mesh", mesh]).args(args);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        let mut si = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            let _ = si.write_all(s.as_bytes());
        }
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meshbridge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

const SPLIT: &str = "apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web, namespace: shop}
spec:
  service: web
  backends: [{service: web-v1, weight: 90}, {service: web-v2, weight: 10}]
";

#[test]
fn valid_input_exits_zero_with_yaml_on_stdout() {
    let o = translate("istio", &["-f", "-"], Some(SPLIT));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("kind: VirtualService"), "{out}");
    assert!(out.contains("web.shop.svc.cluster.local"), "{out}");
    assert!(
        out.contains("app.kubernetes.io/managed-by: meshbridge"),
        "{out}"
    );
    assert!(out.contains("TrafficSplit/shop/web"), "{out}");
}

#[test]
fn invalid_objects_exit_one_and_valid_ones_still_translate() {
    let bad = "apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: bad, namespace: shop}
spec:
  service: api
  backends: [{service: api-v1, weight: -5}, {service: api-v2, weight: 2.5}]
";
    let p = tmp(
        "mixed.yaml",
        &format!("{SPLIT}---\n{bad}---\n: not yaml: [\n"),
    );
    let path = p.to_string_lossy().into_owned();
    let o = translate("istio", &["-f", &path], None);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.contains(
            &format!("{path}:8: TrafficSplit shop/bad: spec.backends[0].weight: -5 is negative")
                .as_str()
        ),
        "{err}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "{path}:8: TrafficSplit shop/bad: spec.backends[1].weight: 2.5 is not a whole number"
        ))),
        "{err}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "{path}:15: Document -/-: (document): not valid YAML"
        ))),
        "{err}"
    );
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("web.shop.svc.cluster.local"),
        "the valid split must still be translated: {out}"
    );
    assert!(
        !out.contains("api.shop"),
        "the invalid split must not be translated: {out}"
    );
}

#[test]
fn dash_n_is_the_namespace_of_objects_without_one_and_unknown_fields_only_warn() {
    let input = "apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
# web's split, with `matches` misplaced at the top level
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s}
matches: []
spec:
  service: web
  backends: [{service: web, weight: 90}, {service: web-v2, weight: 10}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: other}
spec: {ports: [{port: 80}]}
";
    let o = translate("istio", &["-n", "shop", "-f", "-"], Some(input));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "warnings never fail: {err}");
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("web.shop.svc.cluster.local"), "{out}");
    assert!(out.contains("TrafficSplit/shop/s"), "{out}");
    let lines: Vec<&str> = err.lines().collect();
    for want in [
        "warning: -:7: TrafficSplit shop/s: matches: unknown field \"matches\" in TrafficSplit split.smi-spec.io/v1alpha4; ignored (did you mean \"spec.matches\"?)",
        "warning: -:15: Service other/web-v2: metadata.namespace: `other` differs from -n shop; the object keeps its own namespace (`kubectl apply -n shop` would refuse it)",
    ] {
        assert!(lines.contains(&want), "{want} not in {err}");
    }
    // Without -n: `default`, as before.
    let o = translate("istio", &["-f", "-"], Some(input));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("TrafficSplit/default/s"), "{out}");
}

#[test]
fn header_regexes_that_look_like_substrings_warn_on_every_mesh() {
    let input = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: ua, namespace: shop}\nspec:\n  matches:\n  - {name: bare, headers: {user-agent: Firefox, x-tenant: acme}}\n  - {name: substring, headers: {user-agent: \".*Firefox.*\", cookie: \"^session=1$\"}}\n";
    let want = "warning: -:1: HTTPRouteGroup shop/ua: spec.matches[0].headers.user-agent: header regexes match the whole value: `Firefox` matches only a user-agent header that is exactly that, not one containing it; write `.*Firefox.*` for a substring, or `^Firefox$` to keep the exact match";
    for mesh in ["istio", "linkerd", "gateway-api", "appmesh", "envoy"] {
        let o = translate(mesh, &["-f", "-"], Some(input));
        let err = stderr(&o);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{mesh}: warnings never fail: {err}"
        );
        let hints: Vec<&str> = err.lines().filter(|l| l.contains("whole value")).collect();
        assert_eq!(
            hints,
            vec![want],
            "{mesh}: only matches[0]'s user-agent: {err}"
        );
    }
}

#[test]
fn usage_errors_exit_two() {
    for args in [
        vec!["translate", "--mesh", "nope", "-f", "-"],
        vec!["translate", "--mesh", "istio"],
        vec!["translate", "--mesh", "istio", "-f", "/does/not/exist.yaml"],
        vec!["no-such-command"],
    ] {
        let o = bin().args(&args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty(), "{args:?} must say why");
    }
}

#[test]
fn directories_are_read_recursively_and_sorted() {
    let dir = std::env::temp_dir().join(format!("meshbridge-cli-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(
        dir.join("sub/b.yml"),
        SPLIT
            .replace("name: web,", "name: web2,")
            .replace("service: web\n", "service: web2\n"),
    )
    .unwrap();
    std::fs::write(dir.join("a.yaml"), SPLIT).unwrap();
    std::fs::write(dir.join("notes.txt"), "not yaml: [").unwrap();
    let o = translate("istio", &["-f", &dir.to_string_lossy()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("web.shop.svc") && out.contains("web2.shop.svc"),
        "{out}"
    );
}

fn examples(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            examples(&p, out)
        } else {
            out.push(p)
        }
    }
}

/// Every SMI spec example, for every implemented mesh: exit 0 or a precise error, never a
/// panic.
#[test]
fn every_spec_example_gives_exit_zero_or_precise_errors() {
    let root = meshbridge_conformance::shared_dir().join("smi/examples");
    let mut files = Vec::new();
    examples(&root, &mut files);
    files.sort();
    assert!(files.len() > 60);
    let re = regex::Regex::new(r"^(warning: )?\S+:\d+: \S+ \S+/\S+: \S.*: .+$").unwrap();
    for mesh in ["istio", "linkerd", "gateway-api", "appmesh", "envoy"] {
        let probe = translate(mesh, &["-f", "-"], Some(""));
        if probe.status.code() == Some(2) {
            continue; // not implemented in this build
        }
        for f in &files {
            let o = translate(mesh, &["-f", &f.to_string_lossy()], None);
            let err = stderr(&o);
            assert!(!err.contains("panicked"), "{mesh} {}: {err}", f.display());
            match o.status.code() {
                Some(0) => {}
                Some(1) => {
                    let errors: Vec<&str> = err
                        .lines()
                        .filter(|l| !l.starts_with("warning: "))
                        .collect();
                    assert!(
                        !errors.is_empty(),
                        "{mesh} {}: exit 1 without an error line",
                        f.display()
                    );
                }
                other => panic!("{mesh} {}: exit {other:?}: {err}", f.display()),
            }
            for l in err.lines() {
                assert!(
                    re.is_match(l),
                    "{mesh} {}: malformed diagnostic line: {l}",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn garbage_never_panics() {
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let mut big = String::from(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: big}\nspec:\n  matches:\n",
    );
    let mut i = 0;
    while big.len() < 10 * 1024 * 1024 {
        big.push_str(&format!(
            "  - name: m{i}\n    pathRegex: \"/{}\"\n",
            "y".repeat(300)
        ));
        i += 1;
    }
    let inputs: Vec<String> = vec![
        SPLIT[..SPLIT.len() / 2].to_string(),
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: x}\nspec: 7\n".into(),
        "apiVersion: 5\nkind: [TrafficSplit]\nmetadata: hello\n".into(),
        deep,
        big,
        "\u{feff}\u{0}\u{7}---\n---\n...\n".into(),
    ];
    for (i, text) in inputs.iter().enumerate() {
        let o = translate("istio", &["-f", "-"], Some(text));
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "input {i}: {err}");
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "input {i}: {:?} {err}",
            o.status.code()
        );
    }
    // Non-UTF-8 bytes.
    let p = std::env::temp_dir().join(format!("meshbridge-bin-{}", std::process::id()));
    std::fs::write(&p, [0xffu8, 0xfe, 0x00, 0x41]).unwrap();
    let o = translate("istio", &["-f", &p.to_string_lossy()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not UTF-8"), "{}", stderr(&o));
}
