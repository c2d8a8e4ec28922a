//! Per-object status the engine computes: SMI objects' conditions (with the last-known-good
//! note) and each Mesh's (accepted, whether this build programs its type, its capability
//! matrix).

use crate::Adapter;
use crate::Finding;
use crate::api::common::Condition;
use crate::api::meshbridge::MeshType;
use crate::ir::ObjectStatus;
use crate::model::ObjectKey;
use crate::report::Problem;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The note appended to the `Accepted` condition of an object programmed from its last
/// accepted version.
pub const LAST_GOOD_NOTE: &str = "the last accepted version stays programmed";

/// Status computed for one input object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectState {
    pub conditions: Vec<Condition>,
    pub generation: Option<i64>,
    pub accepted: bool,
    pub resolved: bool,
    /// Problems in the `PATH:LINE: Kind ns/name: field: reason` form.
    pub problems: Vec<Problem>,
    /// An older, accepted version is programmed instead of the current one.
    pub using_last_good: bool,
    /// Status fields besides `conditions` and `observedGeneration` (a Mesh's capabilities).
    pub extra: Option<Value>,
}

pub(crate) fn state_of(
    st: &ObjectStatus,
    meshes: &[(MeshType, Vec<&Finding>)],
    using_last_good: bool,
    backend_problem: Option<&str>,
) -> ObjectState {
    let mut conditions = crate::status::conditions(st, meshes);
    if using_last_good
        && let Some(c) = conditions
            .iter_mut()
            .find(|c| c.type_ == crate::status::ACCEPTED)
    {
        c.message = format!("{}; {LAST_GOOD_NOTE}", c.message);
    }
    if let Some(why) = backend_problem {
        conditions.push(Condition {
            type_: "Programmed".into(),
            status: "False".into(),
            reason: "NoBackend".into(),
            message: why.to_string(),
            observed_generation: st.generation,
            last_transition_time: None,
        });
    }
    let mut problems = st.problems.clone();
    problems.sort();
    ObjectState {
        conditions,
        generation: st.generation,
        accepted: st.accepted && !st.problems.iter().any(|p| p.is_error() && !p.is_ref()),
        resolved: st.resolved_refs,
        problems,
        using_last_good,
        extra: None,
    }
}

/// Status of one Mesh: accepted, whether this build programs its type, and the backend's
/// capability matrix (with the Mesh's settings).
pub(crate) fn mesh_state(
    spec: &crate::api::meshbridge::MeshSpec,
    generation: Option<i64>,
    adapters: &BTreeMap<MeshType, Arc<dyn Adapter>>,
    cx: &crate::Context,
) -> ObjectState {
    let t = spec.mesh_type;
    let cond = |ty: &str, ok: bool, reason: &str, message: String| Condition {
        type_: ty.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: None,
    };
    let mut conditions = vec![cond(
        crate::status::ACCEPTED,
        true,
        "Accepted",
        String::new(),
    )];
    let extra = match adapters.get(&t) {
        Some(a) => {
            let caps = a.capabilities(cx);
            let v = serde_json::to_value(caps.rows()).unwrap_or_default();
            // The matrix's hash in the message: a changed matrix changes the condition, so
            // comparing conditions is enough to know when to write.
            conditions.push(cond(
                "Supported",
                true,
                "AdapterAvailable",
                format!(
                    "meshbridge run programs {t}; capability matrix {}",
                    hash_value(&v)
                ),
            ));
            Some(serde_json::json!({ "capabilities": v }))
        }
        None => {
            conditions.push(cond(
                "Supported",
                false,
                "AdapterUnavailable",
                format!("meshbridge run does not program {t} in this build"),
            ));
            None
        }
    };
    ObjectState {
        conditions,
        generation,
        accepted: true,
        resolved: true,
        problems: vec![],
        using_last_good: false,
        extra,
    }
}

/// A problem line for an object programmed from its last accepted version.
pub fn last_good_line(key: &ObjectKey) -> String {
    format!("{key}: invalid; {LAST_GOOD_NOTE}")
}

pub use crate::hash::hash_value;
