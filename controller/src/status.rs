//! Writing status on input objects. The reconciler computes conditions (core's
//! `status::conditions`), compares them with what the object carries (ignoring
//! `lastTransitionTime`) and hands only differing ones to a [`StatusSink`].

use crate::Result;
use meshbridge_core::api::common::Condition;
use meshbridge_core::model::ObjectKey;

/// The object a status is for.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusTarget {
    pub key: ObjectKey,
    /// apiVersion the object was read with, when known.
    pub api_version: Option<String>,
    pub uid: Option<String>,
    pub generation: Option<i64>,
    /// Status fields besides conditions and observedGeneration (e.g. a Mesh's capabilities).
    pub extra: Option<serde_json::Value>,
}

#[async_trait::async_trait]
pub trait StatusSink: Send {
    /// Writes the conditions (a status patch, or Events where there is no status).
    async fn write(&mut self, target: &StatusTarget, conditions: &[Condition]) -> Result<()>;
}

/// Conditions without timestamps, for comparison.
pub fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    let strip = |v: &[Condition]| {
        let mut v: Vec<Condition> = v
            .iter()
            .cloned()
            .map(|mut c| {
                c.last_transition_time = None;
                c
            })
            .collect();
        v.sort_by(|x, y| x.type_.cmp(&y.type_));
        v
    };
    strip(a) == strip(b)
}

/// Sets `lastTransitionTime`: kept from the live condition of the same type when its status
/// did not change, `now` otherwise.
pub fn with_transition_times(
    new: &[Condition],
    live: Option<&[Condition]>,
    now: &str,
) -> Vec<Condition> {
    new.iter()
        .cloned()
        .map(|mut c| {
            let prev = live.and_then(|l| l.iter().find(|p| p.type_ == c.type_));
            c.last_transition_time = match prev {
                Some(p) if p.status == c.status && p.last_transition_time.is_some() => {
                    p.last_transition_time.clone()
                }
                _ => Some(now.to_string()),
            };
            c
        })
        .collect()
}

/// Logs status changes (used with `--output dir:` and in tests): no cluster to write to.
#[derive(Default)]
pub struct LogStatusSink {
    /// Number of status writes logged.
    pub written: usize,
}

#[async_trait::async_trait]
impl StatusSink for LogStatusSink {
    async fn write(&mut self, target: &StatusTarget, conditions: &[Condition]) -> Result<()> {
        for c in conditions {
            if c.status == "False" {
                tracing::warn!(object = %target.key, condition = %c.type_, reason = %c.reason, message = %c.message, "status");
            } else {
                tracing::debug!(object = %target.key, condition = %c.type_, reason = %c.reason, "status");
            }
        }
        self.written += 1;
        Ok(())
    }
}

/// RFC 3339 "now" for condition timestamps.
pub fn now_rfc3339() -> String {
    let ts = k8s_openapi::jiff::Timestamp::now();
    // Kubernetes `Time` is second precision.
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
