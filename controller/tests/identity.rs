//! Workload identity of a sidecar (`meshbridge_controller::identity::verify`) against the
//! fake API server: a TokenReview of the proxy's projected ServiceAccount token, then a GET
//! of the pod it is bound to. The controller runs as its ServiceAccount with exactly
//! `identity::rbac_rules()`; every test asserts the requests made.

use meshbridge_controller::identity::{
    IdentityError, TOKEN_AUDIENCE, WorkloadIdentity, rbac_rules, verify,
};
use meshbridge_test_support::{CONTROLLER_USER, FakeApi, Req, Rule, TokenInfo};
use serde_json::{Value, json};

const NS: &str = "shop";
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.sidecar-web-0.sig";
const REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const POD_WEB_0: &str = "/api/v1/namespaces/shop/pods/web-0";

/// A strict fake serving the built-in kinds; the controller's user may do exactly `rules`.
fn fake_with(rules: &[Value]) -> (FakeApi, kube::Client) {
    let f = FakeApi::strict();
    f.serve_builtin();
    f.grant(CONTROLLER_USER, rules.iter().map(Rule::from_value));
    let client = f.client_as("controller", CONTROLLER_USER);
    (f, client)
}

fn fake() -> (FakeApi, kube::Client) {
    fake_with(&rbac_rules())
}

/// A running pod as the API server returns it.
fn pod(name: &str, uid: &str, sa: Option<&str>) -> Value {
    let mut spec = json!({"containers": [{"name": "app", "image": "registry.example/app:1"}]});
    if let Some(sa) = sa {
        spec["serviceAccountName"] = json!(sa);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": uid},
        "spec": spec,
        "status": {"phase": "Running"},
    })
}

/// `TOKEN`: a projected token of ServiceAccount `sa` for `audiences`, bound to `pod`.
fn add_token(f: &FakeApi, sa: &str, audiences: &[&str], pod: Option<(&str, &str)>) {
    f.add_token(
        TOKEN,
        TokenInfo::service_account(NS, sa, "sa-uid-1", audiences, pod),
    );
}

/// The standard case: SA `web`, pod `web-0` (uid `pod-uid-1`).
fn bound_token(f: &FakeApi) {
    add_token(f, "web", &[TOKEN_AUDIENCE], Some(("web-0", "pod-uid-1")));
}

/// The requests made, as `METHOD path`; checks the TokenReview's body and user.
fn requests(f: &FakeApi) -> Vec<String> {
    let log: Vec<Req> = f.take_log();
    for r in &log {
        assert_eq!(r.user, CONTROLLER_USER, "{}", r.line());
        if r.path == REVIEWS {
            assert_eq!(r.body["apiVersion"], "authentication.k8s.io/v1");
            assert_eq!(r.body["kind"], "TokenReview");
            assert_eq!(r.body["spec"]["token"], TOKEN);
            assert_eq!(r.body["spec"]["audiences"], json!([TOKEN_AUDIENCE]));
        }
    }
    log.iter().map(Req::line).collect()
}

fn review_only() -> Vec<String> {
    vec![format!("POST {REVIEWS}")]
}

fn review_and_pod() -> Vec<String> {
    vec![format!("POST {REVIEWS}"), format!("GET {POD_WEB_0}")]
}

/// The refusal, checked not to carry the token.
fn refused(r: Result<WorkloadIdentity, IdentityError>) -> IdentityError {
    let e = match r {
        Ok(id) => panic!("accepted: {id:?}"),
        Err(e) => e,
    };
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(TOKEN), "token in the message: {shown}");
    e
}

#[test]
fn rbac_rules_are_create_tokenreviews_and_read_pods() {
    assert_eq!(
        rbac_rules(),
        vec![
            json!({"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}),
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}),
        ]
    );
}

#[tokio::test]
async fn bound_token_of_a_running_pod_gives_its_identity() {
    let (f, client) = fake();
    bound_token(&f);
    f.insert(pod("web-0", "pod-uid-1", Some("web")));
    let id = verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0")))
        .await
        .expect("verified");
    assert_eq!(
        id,
        WorkloadIdentity {
            namespace: NS.into(),
            service_account: "web".into(),
            pod_name: "web-0".into(),
            pod_uid: "pod-uid-1".into(),
        }
    );
    assert_eq!(requests(&f), review_and_pod());

    // Without a claim, the token's pod is still checked.
    let id2 = verify(&client, TOKEN, TOKEN_AUDIENCE, None)
        .await
        .expect("verified");
    assert_eq!(id2, id);
    assert_eq!(requests(&f), review_and_pod());
}

#[tokio::test]
async fn token_for_another_audience_is_refused() {
    let (f, client) = fake();
    add_token(&f, "web", &["vault"], Some(("web-0", "pod-uid-1")));
    f.insert(pod("web-0", "pod-uid-1", Some("web")));
    let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0"))).await);
    assert!(
        matches!(&e, IdentityError::NotAuthenticated { reason } if reason.contains("audiences")),
        "{e}"
    );
    assert_eq!(requests(&f), review_only());
}

/// The pod's ordinary API token (audience: the API server) is not a meshbridge token: the
/// review must name the audience, or the server checks the token against its own.
#[tokio::test]
async fn api_server_token_is_refused() {
    let (f, client) = fake();
    add_token(
        &f,
        "web",
        &[meshbridge_test_support::auth::API_AUDIENCE],
        Some(("web-0", "pod-uid-1")),
    );
    f.insert(pod("web-0", "pod-uid-1", Some("web")));
    let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0"))).await);
    assert!(matches!(e, IdentityError::NotAuthenticated { .. }), "{e}");
    assert_eq!(requests(&f), review_only());
}

#[tokio::test]
async fn unknown_token_is_refused() {
    let (f, client) = fake();
    f.insert(pod("web-0", "pod-uid-1", Some("web")));
    let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0"))).await);
    assert!(
        matches!(&e, IdentityError::NotAuthenticated { reason } if reason.contains("invalid bearer token")),
        "{e}"
    );
    assert_eq!(requests(&f), review_only());
}

#[tokio::test]
async fn token_of_a_pod_that_no_longer_exists_is_refused() {
    let (f, client) = fake();
    bound_token(&f);
    let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0"))).await);
    assert_eq!(
        e,
        IdentityError::PodNotFound {
            namespace: NS.into(),
            pod_name: "web-0".into()
        }
    );
    assert!(e.to_string().contains("shop/web-0"), "{e}");
    assert_eq!(requests(&f), review_and_pod());
}

#[tokio::test]
async fn token_of_a_recreated_pod_is_refused() {
    let (f, client) = fake();
    bound_token(&f);
    // Same name, a new pod: the token was issued to the old one.
    f.insert(pod("web-0", "pod-uid-2", Some("web")));
    let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0"))).await);
    assert!(
        matches!(&e, IdentityError::PodUidMismatch { expected, actual, .. }
            if expected == "pod-uid-1" && actual == "pod-uid-2"),
        "{e}"
    );
    assert_eq!(requests(&f), review_and_pod());
}

#[tokio::test]
async fn token_of_another_service_account_than_the_pods_is_refused() {
    let (f, client) = fake();
    // A token of SA `a` bound to a pod that runs as SA `b`.
    add_token(&f, "a", &[TOKEN_AUDIENCE], Some(("web-0", "pod-uid-1")));
    f.insert(pod("web-0", "pod-uid-1", Some("b")));
    let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0"))).await);
    assert!(
        matches!(&e, IdentityError::ServiceAccountMismatch { expected, actual, .. }
            if expected == "a" && actual == "b"),
        "{e}"
    );
    assert_eq!(requests(&f), review_and_pod());
}

/// An empty `serviceAccountName` is `default`.
#[tokio::test]
async fn pod_without_service_account_name_runs_as_default() {
    let (f, client) = fake();
    add_token(&f, "a", &[TOKEN_AUDIENCE], Some(("web-0", "pod-uid-1")));
    f.insert(pod("web-0", "pod-uid-1", None));
    let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0"))).await);
    assert!(
        matches!(&e, IdentityError::ServiceAccountMismatch { expected, actual, .. }
            if expected == "a" && actual == "default"),
        "{e}"
    );
    assert_eq!(requests(&f), review_and_pod());

    add_token(
        &f,
        "default",
        &[TOKEN_AUDIENCE],
        Some(("web-0", "pod-uid-1")),
    );
    let id = verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0")))
        .await
        .expect("default SA");
    assert_eq!(id.service_account, "default");
    assert_eq!(requests(&f), review_and_pod());
}

#[tokio::test]
async fn claimed_pod_other_than_the_tokens_is_refused() {
    let (f, client) = fake();
    bound_token(&f);
    f.insert(pod("web-0", "pod-uid-1", Some("web")));
    f.insert(pod("web-1", "pod-uid-9", Some("web")));
    for (ns, name) in [(NS, "web-1"), ("other", "web-0")] {
        let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, Some((ns, name))).await);
        assert_eq!(
            e,
            IdentityError::PodMismatch {
                claimed_namespace: ns.into(),
                claimed_name: name.into(),
                namespace: NS.into(),
                pod_name: "web-0".into(),
            }
        );
        assert_eq!(requests(&f), review_only());
    }
}

/// A token bound to no pod (e.g. a legacy Secret token) proves no pod.
#[tokio::test]
async fn token_bound_to_no_pod_is_refused() {
    let (f, client) = fake();
    add_token(&f, "web", &[TOKEN_AUDIENCE], None);
    f.insert(pod("web-0", "pod-uid-1", Some("web")));
    for claim in [Some((NS, "web-0")), None] {
        let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, claim).await);
        assert!(
            matches!(&e, IdentityError::NotBoundToPod { namespace, service_account, .. }
                if namespace == NS && service_account == "web"),
            "{e}"
        );
        assert_eq!(requests(&f), review_only());
    }
}

#[tokio::test]
async fn terminating_pod_is_refused() {
    let (f, client) = fake();
    bound_token(&f);
    let mut p = pod("web-0", "pod-uid-1", Some("web"));
    p["metadata"]["deletionTimestamp"] = json!("2025-01-02T03:04:05Z");
    p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    f.insert(p);
    let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0"))).await);
    assert!(matches!(e, IdentityError::PodTerminating { .. }), "{e}");
    assert!(e.to_string().contains("terminating"), "{e}");
    assert_eq!(requests(&f), review_and_pod());
}

#[tokio::test]
async fn finished_pod_is_refused() {
    for phase in ["Succeeded", "Failed"] {
        let (f, client) = fake();
        bound_token(&f);
        let mut p = pod("web-0", "pod-uid-1", Some("web"));
        p["status"]["phase"] = json!(phase);
        f.insert(p);
        let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0"))).await);
        assert!(
            matches!(&e, IdentityError::PodFinished { phase: p, .. } if p == phase),
            "{e}"
        );
        assert_eq!(requests(&f), review_and_pod());
    }
}

/// A pod not yet running (Pending: the sidecar starts before the app) is accepted.
#[tokio::test]
async fn pending_pod_is_accepted() {
    let (f, client) = fake();
    bound_token(&f);
    let mut p = pod("web-0", "pod-uid-1", Some("web"));
    p["status"]["phase"] = json!("Pending");
    f.insert(p);
    let id = verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0")))
        .await
        .expect("pending pod");
    assert_eq!(id.pod_uid, "pod-uid-1");
    assert_eq!(requests(&f), review_and_pod());
}

#[tokio::test]
async fn controller_without_tokenreview_rbac_cannot_verify() {
    // Only the pods rule: the TokenReview is forbidden.
    let (f, client) = fake_with(&rbac_rules()[1..]);
    bound_token(&f);
    f.insert(pod("web-0", "pod-uid-1", Some("web")));
    let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0"))).await);
    assert!(
        matches!(&e, IdentityError::Unavailable { code: Some(403), message, .. }
            if message.contains("cannot create resource \"tokenreviews\"")),
        "{e}"
    );
    assert_eq!(requests(&f), review_only());
}

#[tokio::test]
async fn controller_without_pod_rbac_cannot_verify() {
    // Only the tokenreviews rule: the pod cannot be read.
    let (f, client) = fake_with(&rbac_rules()[..1]);
    bound_token(&f);
    f.insert(pod("web-0", "pod-uid-1", Some("web")));
    let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0"))).await);
    assert!(
        matches!(&e, IdentityError::Unavailable { code: Some(403), step, message }
            if step.contains("shop/web-0") && message.contains("cannot get resource \"pods\"")),
        "{e}"
    );
    assert_eq!(requests(&f), review_and_pod());
}

/// TokenReview not served (an API error that is not a refusal of the token): not a success.
#[tokio::test]
async fn tokenreview_api_error_is_not_a_success() {
    let (f, client) = fake();
    bound_token(&f);
    f.insert(pod("web-0", "pod-uid-1", Some("web")));
    f.not_served("/apis/authentication.k8s.io");
    let e = refused(verify(&client, TOKEN, TOKEN_AUDIENCE, Some((NS, "web-0"))).await);
    assert!(
        matches!(
            e,
            IdentityError::Unavailable {
                code: Some(404),
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("could not be verified"), "{e}");
    assert_eq!(requests(&f), review_only());
}

#[tokio::test]
async fn empty_token_makes_no_request() {
    let (f, client) = fake();
    bound_token(&f);
    f.insert(pod("web-0", "pod-uid-1", Some("web")));
    for token in ["", "  "] {
        let e = refused(verify(&client, token, TOKEN_AUDIENCE, Some((NS, "web-0"))).await);
        assert_eq!(e, IdentityError::EmptyToken);
    }
    let e = refused(verify(&client, TOKEN, "", Some((NS, "web-0"))).await);
    assert_eq!(e, IdentityError::EmptyAudience);
    assert!(f.take_log().is_empty());
}
