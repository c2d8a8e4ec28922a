//! `meshbridge inject -f FILE`: manual sidecar injection, like `istioctl kube-inject` /
//! `linkerd inject`. Pods and the pod templates of Deployments, StatefulSets, DaemonSets,
//! ReplicaSets, Jobs and CronJobs (and `List`s of them) get exactly what the webhook would
//! add (one function, `meshbridge_envoy::inject::inject`); every other document passes
//! through unchanged, in order. Unlike the webhook it does not look at namespace labels
//! (asking for injection is the point), but it honours `meshbridge.io/inject: "false"`.

use clap::Args;
use meshbridge_core::load::{documents, parse_document};
use meshbridge_envoy::inject::{InjectConfig, Outcome, inject};
use serde_json::Value;
use std::io::Read;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct InjectArgs {
    /// Input file (multi-document YAML or JSON), or `-` for stdin.
    #[arg(short = 'f', long = "filename")]
    pub file: String,
    /// Image of the init container and the sidecar (holds `meshbridge` and Envoy).
    #[arg(long, default_value = concat!("ghcr.io/meshbridge/meshbridge:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// Namespace of the control plane (its Service `meshbridge` serves xDS on 15012).
    #[arg(long, default_value = "meshbridge-system")]
    pub controller_namespace: String,
    /// xDS address of the control plane (default: meshbridge.<controller-namespace>.svc:15012).
    #[arg(long)]
    pub xds_address: Option<String>,
    /// The sidecar as a native sidecar (init container with `restartPolicy: Always`,
    /// Kubernetes ≥ 1.29); `false` for older clusters: the first app container instead.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub native_sidecar: bool,
}

impl InjectArgs {
    pub fn config(&self) -> InjectConfig {
        let mut c = InjectConfig::new(&self.image, &self.controller_namespace);
        if let Some(a) = &self.xds_address {
            c.xds_address = a.clone();
        }
        c.native_sidecar = self.native_sidecar;
        c
    }
}

/// Where a kind keeps its pod template (JSON pointer), `""` for a Pod itself.
fn template_of(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

fn describe(doc: &Value) -> String {
    format!(
        "{} {}",
        doc["kind"].as_str().unwrap_or("object"),
        doc.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)")
    )
}

/// Injects one document in place. `Ok(note)`: a note for stderr when it was left alone.
fn inject_doc(doc: &mut Value, cfg: &InjectConfig) -> Result<Vec<String>, String> {
    let kind = doc["kind"].as_str().unwrap_or("").to_string();
    if kind.ends_with("List") && doc["items"].is_array() {
        let mut notes = vec![];
        for item in doc["items"].as_array_mut().into_iter().flatten() {
            notes.extend(inject_doc(item, cfg)?);
        }
        return Ok(notes);
    }
    let Some(ptr) = template_of(&kind) else {
        return Ok(vec![]);
    };
    let what = describe(doc);
    let Some(tpl) = doc.pointer_mut(ptr) else {
        return Err(format!("{what}: {} is missing", &ptr[1..]));
    };
    let meta = tpl.get("metadata").cloned().unwrap_or(Value::Null);
    let spec = tpl.get("spec").cloned().unwrap_or(Value::Null);
    match inject(&meta, &spec, cfg).map_err(|e| format!("{what}: {e}"))? {
        Outcome::Skipped(why) => Ok(vec![format!("{what}: not injected: {why}")]),
        Outcome::Injected { metadata, spec } => {
            tpl["metadata"] = metadata;
            tpl["spec"] = spec;
            Ok(vec![])
        }
    }
}

/// Injects every document of a YAML stream; the output stream has the same documents.
pub fn inject_stream(
    name: &str,
    text: &str,
    cfg: &InjectConfig,
) -> Result<(String, Vec<String>), String> {
    let mut out = vec![];
    let mut notes = vec![];
    for d in documents(text) {
        let doc = parse_document(&d.text)
            .map_err(|e| format!("{name}: document {} (line {}): {e}", d.index, d.line))?;
        let Some(mut doc) = doc else { continue };
        notes.extend(
            inject_doc(&mut doc, cfg).map_err(|e| format!("{name}: document {}: {e}", d.index))?,
        );
        out.push(doc);
    }
    Ok((meshbridge_core::yaml::to_yaml_stream(&out), notes))
}

pub fn run(args: InjectArgs) -> ExitCode {
    let text = if args.file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(&args.file)
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", args.file);
            return ExitCode::from(2);
        }
    };
    match inject_stream(&args.file, &text, &args.config()) {
        Ok((yaml, notes)) => {
            for n in notes {
                eprintln!("note: {n}");
            }
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
