//! Conditions on input objects, computed as data (compared without timestamps).

use crate::adapter::Finding;
use crate::api::common::Condition;
use crate::api::meshbridge::MeshType;
use crate::capability::Level;
use crate::ir::ObjectStatus;

pub const ACCEPTED: &str = "Accepted";
pub const RESOLVED_REFS: &str = "ResolvedRefs";
/// Condition types mesh discovery writes on a Mesh (the controller writes the others:
/// each writer compares and writes only its own, so the two never rewrite each other's).
pub const DISCOVERY_CONDITIONS: [&str; 2] = ["Ready", "VersionResolved"];

/// The `controllerName` meshbridge writes in a Gateway API route's `status.parents[]`.
pub const GATEWAY_CONTROLLER_NAME: &str = "meshbridge.io/mesh-controller";

/// A condition type as written in a Gateway API route's status: condition types there must
/// be Kubernetes names, so `Programmed/<mesh>` is written `meshbridge.io/programmed-<mesh>`.
pub fn gateway_condition_type(t: &str) -> String {
    match t.strip_prefix("Programmed/") {
        Some(mesh) => format!("meshbridge.io/programmed-{mesh}"),
        None => t.to_string(),
    }
}

/// The inverse of [`gateway_condition_type`].
pub fn condition_type_from_gateway(t: &str) -> String {
    match t.strip_prefix("meshbridge.io/programmed-") {
        Some(mesh) => format!("Programmed/{mesh}"),
        None => t.to_string(),
    }
}

fn cond(t: &str, ok: bool, reason: &str, message: String, generation: Option<i64>) -> Condition {
    Condition {
        type_: t.to_string(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: None,
    }
}

/// `Accepted`, `ResolvedRefs` and, per mesh programmed, `Programmed/<mesh>`.
pub fn conditions(st: &ObjectStatus, meshes: &[(MeshType, Vec<&Finding>)]) -> Vec<Condition> {
    let errors: Vec<_> = st.problems.iter().filter(|p| p.is_error()).collect();
    let first_reason = |pred: &dyn Fn(&&crate::report::Problem) -> bool, default: &'static str| {
        st.problems
            .iter()
            .find(|p| pred(p))
            .map(|p| p.condition_reason)
            .unwrap_or(default)
    };
    let msg = |pred: &dyn Fn(&&crate::report::Problem) -> bool| {
        st.problems
            .iter()
            .filter(|p| pred(p))
            .map(|p| format!("{}: {}", p.field, p.reason))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let is_ref = |p: &&crate::report::Problem| p.is_ref();
    let is_accept = |p: &&crate::report::Problem| p.is_error() && !is_ref(p);
    let accepted = !errors.iter().any(|p| !is_ref(p));
    let mut out = vec![
        if accepted {
            // Warnings about the object itself (not its references) stay visible on it.
            let is_warning = |p: &&crate::report::Problem| !p.is_error() && !is_ref(p);
            cond(ACCEPTED, true, "Accepted", msg(&is_warning), st.generation)
        } else {
            cond(
                ACCEPTED,
                false,
                first_reason(&is_accept, "Invalid"),
                msg(&is_accept),
                st.generation,
            )
        },
        if st.problems.iter().any(|p| is_ref(&p)) {
            cond(
                RESOLVED_REFS,
                false,
                first_reason(&is_ref, "RefNotFound"),
                msg(&is_ref),
                st.generation,
            )
        } else {
            cond(
                RESOLVED_REFS,
                true,
                "ResolvedRefs",
                String::new(),
                st.generation,
            )
        },
    ];
    for (mesh, findings) in meshes {
        let t = format!("Programmed/{mesh}");
        if !st.usable() {
            out.push(cond(
                &t,
                false,
                "Invalid",
                "not programmed; the last good configuration stays in place".into(),
                st.generation,
            ));
            continue;
        }
        let none: Vec<_> = findings.iter().filter(|f| f.level == Level::None).collect();
        let partial: Vec<_> = findings
            .iter()
            .filter(|f| f.level == Level::Partial)
            .collect();
        let describe = |fs: &[&&Finding]| {
            fs.iter()
                .map(|f| format!("{} ({}): {}", f.field, f.feature, f.reason))
                .collect::<Vec<_>>()
                .join("; ")
        };
        out.push(if !none.is_empty() {
            cond(&t, false, "NotExpressible", describe(&none), st.generation)
        } else if !partial.is_empty() {
            cond(
                &t,
                true,
                "PartiallyExpressed",
                describe(&partial),
                st.generation,
            )
        } else {
            cond(&t, true, "Programmed", String::new(), st.generation)
        });
    }
    out
}
