//! Leader election with a `coordination.k8s.io/v1` Lease: only the holder writes. Every
//! replica watches and renders (so a new leader is ready at once); the reconciler checks
//! the flag before each write pass and resyncs everything when it becomes leader.
//!
//! Algorithm (client-go's, simplified): read the Lease; if absent, create it naming us; if
//! we hold it, renew `renewTime`; if another holder's `renewTime + leaseDurationSeconds` is
//! in the past, take it over (incrementing `leaseTransitions`). Every update carries the
//! read `resourceVersion`, so of two replicas racing for an expired Lease only one wins
//! (the other gets 409 Conflict). A replica that fails to renew before its lease expires
//! stops writing.

use crate::reconciler::LeaderFlag;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
}

/// The outcome of one election step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Leader,
    Follower { holder: Option<String> },
}

pub struct Elector {
    client: Client,
    api: Api<Lease>,
    cfg: LeaseConfig,
    /// When our current term ends unless renewed.
    valid_until: Option<Timestamp>,
}

impl Elector {
    pub fn new(client: Client, cfg: LeaseConfig) -> Elector {
        Elector {
            api: Api::namespaced(client.clone(), &cfg.namespace),
            client,
            cfg,
            valid_until: None,
        }
    }

    fn spec(&self, now: Timestamp, acquire: Option<Timestamp>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(self.cfg.lease_duration.as_secs().max(1) as i32),
            acquire_time: Some(MicroTime(acquire.unwrap_or(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One attempt to acquire or renew. Errors count as "not leader".
    pub async fn step(&mut self) -> Step {
        let now = Timestamp::now();
        let res = self.try_step(now).await;
        self.settle(now, res)
    }

    /// The outcome of one attempt started at `now`: the term is extended on success; on an
    /// error we keep leading only until our lease would have expired anyway.
    fn settle(&mut self, now: Timestamp, res: Result<Step, kube::Error>) -> Step {
        match res {
            Ok(Step::Leader) => {
                self.valid_until = Some(
                    now + SignedDuration::try_from(self.cfg.lease_duration)
                        .unwrap_or(SignedDuration::from_secs(15)),
                );
                Step::Leader
            }
            Ok(s) => {
                self.valid_until = None;
                s
            }
            Err(e) => {
                tracing::warn!(error = %e, "leader election: lease update failed");
                match self.valid_until {
                    Some(t) if Timestamp::now() < t => Step::Leader,
                    _ => Step::Follower { holder: None },
                }
            }
        }
    }

    /// The first attempt, at start: like [`Elector::step`], except that a Lease this
    /// replica may never hold is an error rather than a silent follower: a controller
    /// namespace that does not exist (a real server answers 403 when the Role granting
    /// Leases is missing with it, 404 otherwise), or no right to manage the Lease.
    pub async fn first_step(&mut self) -> Result<Step, crate::Error> {
        let now = Timestamp::now();
        match self.try_step(now).await {
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => {
                let (ns, name) = (&self.cfg.namespace, &self.cfg.name);
                if !self.namespace_exists().await {
                    return Err(crate::Error::Usage(format!(
                        "the controller namespace `{ns}` does not exist, so the leader Lease `{name}` cannot be kept there: create it (`kubectl create namespace {ns}`, then the Role and RoleBinding of deploy/) or pass --controller-namespace (default: $POD_NAMESPACE, else meshbridge-system)"
                    )));
                }
                Err(crate::Error::Usage(format!(
                    "cannot manage the leader Lease `{ns}/{name}`: {} (the Role `meshbridge-leader-election` of deploy/ grants get, create and update on leases in the controller namespace; or pass --leader-elect=false for a single replica)",
                    s.message
                )))
            }
            res => Ok(self.settle(now, res)),
        }
    }

    /// Whether the controller namespace exists (through the namespace list the controller
    /// may read; an unanswerable question counts as "exists").
    async fn namespace_exists(&self) -> bool {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!("metadata.name={}", self.cfg.namespace));
        match api.list(&lp).await {
            Ok(l) => !l.items.is_empty(),
            Err(_) => true,
        }
    }

    async fn try_step(&mut self, now: Timestamp) -> Result<Step, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Step::Leader),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Step::Follower { holder: None }),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.cfg.identity.as_str());
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(MicroTime(t)), Some(d)) => *t + SignedDuration::from_secs(i64::from(d)) < now,
            _ => true,
        };
        if !ours && !expired && holder.is_some() {
            return Ok(Step::Follower { holder });
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + if ours { 0 } else { 1 };
        let acquire = if ours {
            spec.acquire_time.map(|t| t.0)
        } else {
            None
        };
        lease.spec = Some(self.spec(now, acquire, transitions));
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Step::Leader),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Step::Follower { holder }),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (graceful shutdown), so another replica takes over at once.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await else {
            return;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return;
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            renew_time: None,
            acquire_time: None,
            ..spec
        });
        let _ = self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await;
    }

    /// Runs forever: updates `flag` and wakes `changed` when leadership changes.
    pub async fn run(
        mut self,
        flag: LeaderFlag,
        changed: std::sync::Arc<Notify>,
        stop: std::sync::Arc<Notify>,
    ) {
        loop {
            let leader = self.step().await == Step::Leader;
            if flag.swap(leader, Ordering::SeqCst) != leader {
                tracing::info!(identity = %self.cfg.identity, leader, "leadership changed");
                changed.notify_one();
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.renew_every) => {}
                _ = stop.notified() => {
                    flag.store(false, Ordering::SeqCst);
                    self.release().await;
                    return;
                }
            }
        }
    }
}
