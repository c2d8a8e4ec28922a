//! `meshbridge inject`: the same documents out, pod templates injected exactly as the
//! webhook injects a Pod, other documents untouched, opt-outs kept, errors named.

use meshbridge_envoy::inject::{self, InjectConfig};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

const INPUT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      serviceAccountName: web
      containers:
        - name: web
          image: ghcr.io/example/web:1.4.2
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
  namespace: shop
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: report, image: ghcr.io/example/report:1}]
---
apiVersion: v1
kind: Pod
metadata:
  name: debug
  namespace: shop
  annotations: {meshbridge.io/inject: "false"}
spec:
  containers: [{name: sh, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata:
  name: single
  namespace: shop
spec:
  serviceAccountName: web
  containers: [{name: app, image: ghcr.io/example/app:3}]
"#;

fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshbridge"))
        .arg("inject")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn docs(yaml: &str) -> Vec<Value> {
    meshbridge_core::load::documents(yaml)
        .into_iter()
        .filter_map(|d| meshbridge_core::load::parse_document(&d.text).unwrap())
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn injects_pod_templates_like_the_webhook_and_passes_the_rest_through() {
    let (code, out, err) = run(&["-f", "-"], INPUT);
    assert_eq!(code, 0, "{err}");
    let input = docs(INPUT);
    let output = docs(&out);
    assert_eq!(output.len(), input.len(), "{out}");
    // Deployment: template injected, everything else of it unchanged.
    let tpl = &output[0]["spec"]["template"];
    assert_eq!(
        names(&tpl["spec"]["initContainers"]),
        ["meshbridge-init", "meshbridge-proxy"]
    );
    assert_eq!(output[0]["spec"]["replicas"], 2);
    // Service: untouched.
    assert_eq!(output[1], input[1]);
    // CronJob: the job template's pod template.
    assert_eq!(
        names(&output[2]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"]),
        ["meshbridge-init", "meshbridge-proxy"]
    );
    // Opted out: untouched, with a note.
    assert_eq!(output[3], input[3]);
    assert!(
        err.contains("Pod debug: not injected: annotated meshbridge.io/inject"),
        "{err}"
    );
    // A Pod: exactly what the webhook's patch makes of it.
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
        "namespace": "shop", "object": input[4],
    }});
    let cfg = InjectConfig::new(
        concat!("ghcr.io/meshbridge/meshbridge:", env!("CARGO_PKG_VERSION")),
        "meshbridge-system",
    );
    let resp = inject::review(&review, &cfg, |_| true);
    assert_eq!(
        output[4],
        inject::admitted(&input[4], &resp).unwrap(),
        "{out}"
    );
    // Injecting the output again changes nothing.
    let (code, again, _) = run(&["-f", "-"], &out);
    assert_eq!(code, 0);
    assert_eq!(docs(&again), output);
}

#[test]
fn flags_reach_the_containers_and_errors_name_the_document() {
    let dir = std::env::temp_dir().join(format!("mb-inject-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("in.yaml");
    std::fs::write(&file, INPUT).unwrap();
    let (code, out, err) = run(
        &[
            "-f",
            file.to_str().unwrap(),
            "--image",
            "registry.example/mb:dev",
            "--xds-address",
            "cp.mesh.svc:15012",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let d = docs(&out);
    let proxy = &d[0]["spec"]["template"]["spec"]["initContainers"][1];
    assert_eq!(proxy["image"], "registry.example/mb:dev");
    assert!(
        proxy["args"]
            .as_array()
            .unwrap()
            .contains(&json!("cp.mesh.svc:15012")),
        "{proxy:#}"
    );
    let (code, out, err) = run(&["-f", "-", "--native-sidecar=false"], INPUT);
    assert_eq!(code, 0, "{err}");
    let spec = &docs(&out)[0]["spec"]["template"]["spec"];
    assert_eq!(names(&spec["initContainers"]), ["meshbridge-init"]);
    assert_eq!(names(&spec["containers"]), ["meshbridge-proxy", "web"]);
    let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, ports: [{containerPort: 15001}]}]\n";
    let (code, out, err) = run(&["-f", "-"], &format!("{INPUT}---\n{bad}"));
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("-: document 6: Pod p: meshbridge sidecar injection: spec.containers[0] (a): port 15001 is reserved"),
        "{err}"
    );
    let (code, _, err) = run(&["-f", dir.join("missing.yaml").to_str().unwrap()], "");
    assert_eq!(code, 2);
    assert!(err.contains("missing.yaml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
