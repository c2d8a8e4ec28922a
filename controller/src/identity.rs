//! Proof of a sidecar's workload identity: the proxy presents a projected ServiceAccount
//! token (audience [`TOKEN_AUDIENCE`], short expiry, bound to its pod); [`verify`] has the
//! API server review it (`authentication.k8s.io/v1` TokenReview) and then checks the pod
//! the token is bound to (it exists, has the token's pod uid, runs as the token's
//! ServiceAccount, is neither terminating nor finished). Nothing is served to a proxy
//! before this succeeds; an API error is a refusal, never a success.
//!
//! The token never appears in an error message (messages from the API server are scrubbed
//! of it too). The RBAC the controller needs for this is [`rbac_rules`].

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// The audience a sidecar's projected ServiceAccount token is issued for.
pub use meshbridge_core::adapter::WORKLOAD_TOKEN_AUDIENCE as TOKEN_AUDIENCE;

/// The user-info extra key naming the pod a bound token belongs to.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
/// The user-info extra key carrying the uid of the pod a bound token belongs to.
pub const POD_UID_EXTRA: &str = "authentication.kubernetes.io/pod-uid";

const SA_PREFIX: &str = "system:serviceaccount:";

/// Who a verified token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadIdentity {
    pub namespace: String,
    pub service_account: String,
    pub pod_name: String,
    pub pod_uid: String,
}

/// Why a token was refused. No variant holds the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No token was presented (no request was made).
    #[error("no ServiceAccount token presented")]
    EmptyToken,
    /// No audience to review the token for (a configuration error; no request was made).
    #[error("no audience given to review the ServiceAccount token for")]
    EmptyAudience,
    /// The API server did not authenticate the token (unknown, forged, expired, revoked,
    /// wrong audience...): `reason` is its `status.error`.
    #[error("ServiceAccount token not authenticated by the API server: {reason}")]
    NotAuthenticated { reason: String },
    /// The review authenticated the token but did not confirm the audience.
    #[error(
        "ServiceAccount token not confirmed for audience {expected:?} (the review returned audiences {returned:?})"
    )]
    WrongAudience {
        expected: String,
        returned: Vec<String>,
    },
    /// The token authenticates a user that is not a ServiceAccount.
    #[error(
        "token authenticates {username:?}, not a ServiceAccount (system:serviceaccount:<namespace>:<name>)"
    )]
    NotServiceAccount { username: String },
    /// The token is not bound to a pod (e.g. a legacy Secret token): it proves no pod.
    #[error(
        "token of ServiceAccount {namespace}/{service_account} is not bound to a pod (user extra {missing:?} missing or not a single value)"
    )]
    NotBoundToPod {
        namespace: String,
        service_account: String,
        missing: String,
    },
    /// The proxy says it is another pod than the one its token is bound to.
    #[error(
        "proxy claims to be pod {claimed_namespace}/{claimed_name}, but its token is bound to pod {namespace}/{pod_name}"
    )]
    PodMismatch {
        claimed_namespace: String,
        claimed_name: String,
        namespace: String,
        pod_name: String,
    },
    /// The pod the token is bound to does not exist (any more).
    #[error("pod {namespace}/{pod_name} the token is bound to does not exist")]
    PodNotFound { namespace: String, pod_name: String },
    /// A pod of that name exists but is not the one the token was issued to (re-created).
    #[error(
        "pod {namespace}/{pod_name} has uid {actual:?}, but the token is bound to uid {expected:?} (the pod was re-created)"
    )]
    PodUidMismatch {
        namespace: String,
        pod_name: String,
        expected: String,
        actual: String,
    },
    /// The pod runs as another ServiceAccount than the token's.
    #[error(
        "pod {namespace}/{pod_name} runs as ServiceAccount {actual:?}, but the token belongs to ServiceAccount {expected:?}"
    )]
    ServiceAccountMismatch {
        namespace: String,
        pod_name: String,
        expected: String,
        actual: String,
    },
    /// The pod is being deleted (`metadata.deletionTimestamp` is set).
    #[error("pod {namespace}/{pod_name} is terminating (deletionTimestamp {since})")]
    PodTerminating {
        namespace: String,
        pod_name: String,
        since: String,
    },
    /// The pod has finished (`status.phase` Succeeded or Failed).
    #[error("pod {namespace}/{pod_name} has finished (phase {phase})")]
    PodFinished {
        namespace: String,
        pod_name: String,
        phase: String,
    },
    /// The check could not be made (403, 5xx, transport, an answer that does not decode):
    /// the token is refused. `code` is the HTTP status when the server answered one.
    #[error("workload identity could not be verified: {step} failed: {message}")]
    Unavailable {
        step: String,
        code: Option<u16>,
        message: String,
    },
}

/// The RBAC rules (ClusterRole `rules`) the controller needs for [`verify`]: `create` on
/// `authentication.k8s.io` `tokenreviews`, and `get, list, watch` on core `pods`.
pub fn rbac_rules() -> Vec<Value> {
    vec![
        json!({"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}),
        json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}),
    ]
}

/// Verifies `token` as a bound ServiceAccount token for `audience` (a TokenReview), then
/// checks that the pod it is bound to exists, has the uid in the token, runs as that
/// ServiceAccount, and is neither terminating nor finished. `claimed_pod` (namespace, name)
/// is what the proxy says it is (its node id); it must be the token's pod.
///
/// Requests: one POST of a TokenReview, then (when the review is accepted) one GET of the
/// pod. An empty token or audience makes no request.
pub async fn verify(
    client: &kube::Client,
    token: &str,
    audience: &str,
    claimed_pod: Option<(&str, &str)>,
) -> Result<WorkloadIdentity, IdentityError> {
    if token.trim().is_empty() {
        return Err(IdentityError::EmptyToken);
    }
    if audience.is_empty() {
        return Err(IdentityError::EmptyAudience);
    }
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_string(),
            audiences: Some(vec![audience.to_string()]),
        },
        ..TokenReview::default()
    };
    // The answer echoes the token in `spec`: only its status is kept.
    let status = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| unavailable("TokenReview", e, token))?
        .status;
    let id = reviewed_identity(status, audience, token)?;
    if let Some((ns, name)) = claimed_pod
        && (ns != id.namespace || name != id.pod_name)
    {
        return Err(IdentityError::PodMismatch {
            claimed_namespace: ns.to_string(),
            claimed_name: name.to_string(),
            namespace: id.namespace,
            pod_name: id.pod_name,
        });
    }
    let pod = Api::<Pod>::namespaced(client.clone(), &id.namespace)
        .get_opt(&id.pod_name)
        .await
        .map_err(|e| {
            unavailable(
                &format!("get pod {}/{}", id.namespace, id.pod_name),
                e,
                token,
            )
        })?;
    check_pod(&id, pod)?;
    Ok(id)
}

/// The identity a TokenReview status states, or why it states none.
fn reviewed_identity(
    status: Option<TokenReviewStatus>,
    audience: &str,
    token: &str,
) -> Result<WorkloadIdentity, IdentityError> {
    let Some(status) = status else {
        return Err(IdentityError::NotAuthenticated {
            reason: "the TokenReview answer has no status".into(),
        });
    };
    if status.authenticated != Some(true) {
        let reason = status
            .error
            .filter(|e| !e.is_empty())
            .map(|e| redact(&e, token))
            .unwrap_or_else(|| "the API server gave no reason".into());
        return Err(IdentityError::NotAuthenticated { reason });
    }
    let returned = status.audiences.unwrap_or_default();
    if !returned.iter().any(|a| a == audience) {
        return Err(IdentityError::WrongAudience {
            expected: audience.to_string(),
            returned,
        });
    }
    let user = status.user.unwrap_or_default();
    let username = user.username.unwrap_or_default();
    let Some((namespace, service_account)) = split_service_account(&username) else {
        return Err(IdentityError::NotServiceAccount { username });
    };
    let extra = user.extra.unwrap_or_default();
    let single = |key: &str| match extra.get(key).map(Vec::as_slice) {
        Some([v]) if !v.is_empty() => Ok(v.clone()),
        _ => Err(IdentityError::NotBoundToPod {
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
            missing: key.to_string(),
        }),
    };
    let pod_name = single(POD_NAME_EXTRA)?;
    let pod_uid = single(POD_UID_EXTRA)?;
    Ok(WorkloadIdentity {
        namespace: namespace.to_string(),
        service_account: service_account.to_string(),
        pod_name,
        pod_uid,
    })
}

/// `system:serviceaccount:<ns>:<name>` → (ns, name); anything else → None.
fn split_service_account(username: &str) -> Option<(&str, &str)> {
    let (ns, name) = username.strip_prefix(SA_PREFIX)?.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// The pod the token is bound to must be that pod, run as that ServiceAccount, and be live.
fn check_pod(id: &WorkloadIdentity, pod: Option<Pod>) -> Result<(), IdentityError> {
    let (namespace, pod_name) = (id.namespace.clone(), id.pod_name.clone());
    let Some(pod) = pod else {
        return Err(IdentityError::PodNotFound {
            namespace,
            pod_name,
        });
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if uid != id.pod_uid {
        return Err(IdentityError::PodUidMismatch {
            namespace,
            pod_name,
            expected: id.pod_uid.clone(),
            actual: uid,
        });
    }
    // An empty serviceAccountName means `default` (admission fills it in).
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    if sa != id.service_account {
        return Err(IdentityError::ServiceAccountMismatch {
            namespace,
            pod_name,
            expected: id.service_account.clone(),
            actual: sa.to_string(),
        });
    }
    if let Some(t) = &pod.metadata.deletion_timestamp {
        return Err(IdentityError::PodTerminating {
            namespace,
            pod_name,
            since: t.0.to_string(),
        });
    }
    if let Some(phase) = pod.status.as_ref().and_then(|s| s.phase.as_deref())
        && matches!(phase, "Succeeded" | "Failed")
    {
        return Err(IdentityError::PodFinished {
            namespace,
            pod_name,
            phase: phase.to_string(),
        });
    }
    Ok(())
}

/// A failed request as [`IdentityError::Unavailable`] (the token scrubbed from the message).
fn unavailable(step: &str, e: kube::Error, token: &str) -> IdentityError {
    let (code, message) = match e {
        kube::Error::Api(s) => (
            Some(s.code),
            format!("{} ({}): {}", s.reason, s.code, s.message),
        ),
        e => (None, e.to_string()),
    };
    IdentityError::Unavailable {
        step: step.to_string(),
        code,
        message: redact(&message, token),
    }
}

fn redact(message: &str, token: &str) -> String {
    if token.is_empty() {
        message.to_string()
    } else {
        message.replace(token, "<token>")
    }
}

#[cfg(test)]
mod tests {
    //! The review rules a fake API server cannot exercise (it always returns the
    //! intersection of the asked and the token's audiences).
    use super::*;
    use k8s_openapi::api::authentication::v1::UserInfo;
    use std::collections::BTreeMap;

    fn status(audiences: Option<Vec<&str>>) -> TokenReviewStatus {
        let extra = BTreeMap::from([
            (POD_NAME_EXTRA.to_string(), vec!["web-0".to_string()]),
            (POD_UID_EXTRA.to_string(), vec!["u-1".to_string()]),
        ]);
        TokenReviewStatus {
            authenticated: Some(true),
            audiences: audiences.map(|a| a.into_iter().map(str::to_string).collect()),
            error: None,
            user: Some(UserInfo {
                username: Some("system:serviceaccount:shop:web".into()),
                extra: Some(extra),
                ..UserInfo::default()
            }),
        }
    }

    #[test]
    fn accepted_review_gives_the_identity() {
        let id = reviewed_identity(Some(status(Some(vec!["meshbridge"]))), "meshbridge", "t")
            .expect("accepted");
        assert_eq!(
            id,
            WorkloadIdentity {
                namespace: "shop".into(),
                service_account: "web".into(),
                pod_name: "web-0".into(),
                pod_uid: "u-1".into(),
            }
        );
    }

    /// An authenticator that is not audience-aware answers authenticated with no (or
    /// other) audiences: the token is valid for the API server, not for meshbridge.
    #[test]
    fn authenticated_without_our_audience_is_refused() {
        for auds in [
            None,
            Some(vec![]),
            Some(vec!["https://kubernetes.default.svc"]),
        ] {
            let e = reviewed_identity(Some(status(auds)), "meshbridge", "t").unwrap_err();
            assert!(
                matches!(&e, IdentityError::WrongAudience { expected, .. } if expected == "meshbridge"),
                "{e}"
            );
        }
    }

    #[test]
    fn not_authenticated_reason_is_scrubbed_of_the_token() {
        let mut s = status(Some(vec!["meshbridge"]));
        s.authenticated = None;
        s.error = Some("bad token s3cr3t-token".into());
        let e = reviewed_identity(Some(s), "meshbridge", "s3cr3t-token").unwrap_err();
        assert_eq!(
            e,
            IdentityError::NotAuthenticated {
                reason: "bad token <token>".into()
            }
        );
        let e = reviewed_identity(None, "meshbridge", "t").unwrap_err();
        assert!(matches!(e, IdentityError::NotAuthenticated { .. }));
    }

    #[test]
    fn service_account_usernames() {
        assert_eq!(
            split_service_account("system:serviceaccount:shop:web"),
            Some(("shop", "web"))
        );
        for bad in [
            "system:serviceaccount:shop",
            "system:serviceaccount::web",
            "system:serviceaccount:shop:",
            "system:serviceaccount:shop:web:x",
            "system:node:n1",
            "alice",
            "",
        ] {
            assert_eq!(split_service_account(bad), None, "{bad}");
        }
    }

    #[test]
    fn pod_extra_must_be_one_value() {
        let mut s = status(Some(vec!["meshbridge"]));
        s.user
            .as_mut()
            .unwrap()
            .extra
            .as_mut()
            .unwrap()
            .insert(POD_NAME_EXTRA.into(), vec!["web-0".into(), "web-1".into()]);
        let e = reviewed_identity(Some(s), "meshbridge", "t").unwrap_err();
        assert!(
            matches!(&e, IdentityError::NotBoundToPod { missing, .. } if missing == POD_NAME_EXTRA),
            "{e}"
        );
    }
}
