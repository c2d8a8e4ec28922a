//! `meshbridge convert --to gamma` (SMI routing → Gateway API GAMMA routes, with a report of
//! what changes meaning) and `meshbridge swap plan` (what a namespace's objects lose on
//! another mesh). Both run the one engine over the files, like `translate`.

use clap::{Args, Subcommand};
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::capability::Level;
use meshbridge_core::ir::PathKind;
use meshbridge_core::model::Kind;
use meshbridge_core::{Context, Finding};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Target language: `gamma` (Gateway API HTTPRoute/GRPCRoute/TCPRoute with a Service
    /// parent).
    #[arg(long)]
    pub to: String,
    /// Input file, directory (recursive) or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Namespace of namespaced input objects that state none.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

#[derive(Args, Debug)]
pub struct SwapArgs {
    #[command(subcommand)]
    pub command: SwapCommand,
}

#[derive(Subcommand, Debug)]
pub enum SwapCommand {
    /// Before moving a namespace to another mesh: every object of the namespace whose
    /// meaning the new mesh cannot keep (per object, the feature, level and reason). Exit 0:
    /// the mesh keeps every object's meaning; 1: some object loses meaning (listed); 2: usage.
    Plan(SwapPlanArgs),
}

#[derive(Args, Debug)]
pub struct SwapPlanArgs {
    /// The namespace to move.
    #[arg(long)]
    pub namespace: String,
    /// The mesh to move it to: istio, linkerd, appmesh, envoy or gateway-api.
    #[arg(long)]
    pub to: String,
    /// The namespace's objects (and those they refer to): file, directory or `-`.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

fn load(
    files: &[String],
    ns: Option<String>,
    cmd: &str,
) -> Result<Vec<meshbridge_core::load::Loaded>, ExitCode> {
    let files = crate::inputs::expand(files).map_err(|e| {
        eprintln!("meshbridge {cmd}: {e}");
        ExitCode::from(2)
    })?;
    let opts = meshbridge_core::load::LoadOptions {
        default_namespace: ns,
    };
    Ok(files
        .iter()
        .map(|f| crate::inputs::load_file(f, &opts))
        .collect())
}

/// The labels and annotation that make an object meshbridge's output. A converted route is
/// the user's input from now on, so it must not carry them (the controller would otherwise
/// treat it as its own and delete it).
const OWNERSHIP_LABELS: [&str; 2] = ["app.kubernetes.io/managed-by", "meshbridge.io/owner"];
const PARENTS: &str = "meshbridge.io/parents";
/// Annotation on converted routes: the SMI objects they replace.
pub const CONVERTED_FROM: &str = "meshbridge.io/converted-from";

pub fn convert(args: ConvertArgs) -> ExitCode {
    if args.to != "gamma" {
        eprintln!(
            "meshbridge convert: --to {}: the only target language is `gamma`",
            args.to
        );
        return ExitCode::from(2);
    }
    let loaded = match load(&args.files, args.namespace.clone(), "convert") {
        Ok(l) => l,
        Err(c) => return c,
    };
    let Some(adapter) = crate::registry::adapter_for(MeshType::GatewayApi) else {
        eprintln!("meshbridge convert: the gateway-api adapter is not in this build");
        return ExitCode::from(2);
    };
    let base = Context::default();
    // The IR for the report (which SMI matches change meaning) and the routes.
    let snap = meshbridge_core::snapshot::Snapshot::from_objects(
        loaded.iter().flat_map(|l| l.objects.iter().cloned()),
    );
    let ir = meshbridge_core::build::build(&snap);
    let out = meshbridge_core::pipeline::translate(loaded, adapter, &base, None);
    let mut docs: Vec<Value> = Vec::new();
    let mut converted: BTreeSet<String> = BTreeSet::new();
    for o in &out.translation.objects {
        if !o.parents.iter().any(|p| p.kind == Kind::TrafficSplit) {
            // Generated from GAMMA input (already in the target language): not converted.
            continue;
        }
        let mut body = o.body.clone();
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
                for l in OWNERSHIP_LABELS {
                    labels.remove(l);
                }
                if labels.is_empty() {
                    meta.remove("labels");
                }
            }
            if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                ann.remove(PARENTS);
                let from: Vec<String> = o.parents.iter().map(|p| p.to_string()).collect();
                ann.insert(CONVERTED_FROM.into(), Value::String(from.join(",")));
            }
        }
        for p in &o.parents {
            converted.insert(p.to_string());
        }
        docs.push(body);
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(meshbridge_core::yaml::to_yaml_stream(docs.iter()).as_bytes());
    let _ = stdout.flush();
    let mut err = std::io::stderr().lock();
    for l in &out.diagnostics {
        let _ = writeln!(err, "{l}");
    }
    let _ = writeln!(err, "# convert report: what changes meaning");
    let mut notes = 0;
    for split in ir.splits.values() {
        if split.parent.kind != Kind::TrafficSplit {
            continue;
        }
        if !split.matches.is_empty() {
            notes += 1;
            let _ = writeln!(
                err,
                "note: {}: requests that match none of the HTTPRouteGroup matches go to the root service in SMI; the routes end with an explicit catch-all rule to {} (meaning kept)",
                split.parent, split.root
            );
        }
        for m in &split.matches {
            if let Some(p) = &m.path
                && let PathKind::Prefix(lit) = p.kind()
            {
                notes += 1;
                let _ = writeln!(
                    err,
                    "note: {} match `{}`: pathRegex `{}` is a string prefix in SMI (it also matches `{lit}x`); Gateway API's PathPrefix matches whole segments only, so the route keeps a RegularExpression (an Extended feature: check your mesh supports it) — use PathPrefix `{}` if segment matching is what you meant",
                    m.group,
                    m.name,
                    p.0,
                    lit.trim_end_matches('/')
                );
            }
            if !m.headers.is_empty() {
                notes += 1;
                let _ = writeln!(
                    err,
                    "note: {} match `{}`: header regexes become RegularExpression header matches (Implementation-specific in Gateway API: RE2 on Envoy-based meshes, whole-value in both)",
                    m.group, m.name
                );
            }
        }
    }
    for f in &out.translation.findings {
        if f.object.kind == Kind::TrafficSplit || f.object.kind == Kind::HTTPRouteGroup {
            notes += 1;
            let _ = writeln!(err, "{}", finding_line(f));
        }
    }
    let _ = writeln!(
        err,
        "# {} SMI object(s) converted; {notes} note(s). TrafficTargets stay SMI (Gateway API has no authorization resource; a TrafficTarget may name the new HTTPRoute: see docs/gamma.md). Apply the routes, then delete the converted TrafficSplits.",
        converted.len()
    );
    if out.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn finding_line(f: &Finding) -> String {
    format!(
        "{}: {}: {}: {} ({})",
        match f.level {
            Level::None => "lost",
            Level::Partial => "partial",
            Level::Full => "kept",
        },
        f.object,
        f.field,
        f.reason,
        f.feature
    )
}

pub fn swap(args: SwapArgs) -> ExitCode {
    let SwapCommand::Plan(args) = args.command;
    let Some(mesh) = MeshType::parse(&args.to) else {
        eprintln!(
            "meshbridge swap plan: unknown mesh `{}` (expected one of: istio, linkerd, appmesh, envoy, gateway-api)",
            args.to
        );
        return ExitCode::from(2);
    };
    let Some(adapter) = crate::registry::adapter_for(mesh) else {
        eprintln!("meshbridge swap plan: --to {mesh} is not in this build");
        return ExitCode::from(2);
    };
    let loaded = match load(&args.files, Some(args.namespace.clone()), "swap plan") {
        Ok(l) => l,
        Err(c) => return c,
    };
    let out = meshbridge_core::pipeline::translate(loaded, adapter, &Context::default(), None);
    let mut stdout = std::io::stdout().lock();
    let mut lost = 0;
    let mut objects: BTreeSet<String> = BTreeSet::new();
    let _ = writeln!(stdout, "swap plan: namespace {} to {mesh}", args.namespace);
    let mut rows: Vec<&Finding> = out
        .translation
        .findings
        .iter()
        .filter(|f| f.object.namespace == args.namespace && f.level != Level::Full)
        .collect();
    rows.sort_by(|a, b| (&a.object, &a.field).cmp(&(&b.object, &b.field)));
    rows.dedup();
    for f in &rows {
        if f.level == Level::None {
            lost += 1;
        }
        objects.insert(f.object.to_string());
        let _ = writeln!(stdout, "  {}", finding_line(f));
    }
    let invalid: Vec<&String> = out
        .diagnostics
        .iter()
        .filter(|l| !l.starts_with("warning:") && l.contains(&format!(" {}/", args.namespace)))
        .collect();
    for l in &invalid {
        let _ = writeln!(stdout, "  invalid (not programmed on any mesh): {l}");
    }
    if rows.is_empty() && invalid.is_empty() {
        let _ = writeln!(
            stdout,
            "  every object keeps its meaning on {mesh}: label the namespace for a Mesh of type {mesh} (kubectl label namespace {} meshbridge.io/mesh=<mesh name> --overwrite)",
            args.namespace
        );
        return ExitCode::SUCCESS;
    }
    let _ = writeln!(
        stdout,
        "  {} object(s) change meaning on {mesh} ({lost} finding(s) not expressible at all); fix or accept them before labelling the namespace",
        objects.len() + invalid.len()
    );
    ExitCode::from(1)
}
