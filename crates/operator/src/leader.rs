//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Two replicas are safe: only the holder of the Lease runs the controller.
//! The holder renews the Lease every retry period; a standby takes over once
//! the Lease record has not changed for a whole lease duration, measured on
//! the standby's own monotonic clock (as client-go does), so clock skew
//! between nodes cannot make a live leader look expired. Every write carries
//! the resourceVersion it read, so two standbys cannot both win. A leader
//! that cannot renew within the renew deadline stops (the process exits and
//! restarts as a standby) rather than risk two writers; on shutdown it
//! releases the Lease so a standby takes over at once.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{api::PostParams, Api, Client};

use crate::{error::StartError, metrics::Metrics};

/// Timing of the election.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long gives up.
    pub renew_deadline: Duration,
    /// How often to renew (leader) or retry (standby).
    pub retry_period: Duration,
}

impl Timing {
    /// client-go's proportions: renew deadline 2/3 and retry 1/7.5 of the lease.
    pub fn from_lease_duration(lease_duration: Duration) -> Self {
        Self {
            lease_duration,
            renew_deadline: lease_duration.mul_f64(2.0 / 3.0),
            retry_period: lease_duration.mul_f64(2.0 / 15.0),
        }
    }
}

/// A Lease call that failed (the election step is retried, or, for a
/// leader past its renew deadline, ends the leadership).
#[derive(Debug, thiserror::Error)]
#[error("{verb} lease: {source}")]
struct LeaseCallFailed {
    verb: &'static str,
    #[source]
    source: kube::Error,
}

/// One replica's side of the election.
pub struct LeaderElection {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    timing: Timing,
    metrics: Metrics,
    /// The last Lease record seen (resourceVersion) and when it was first seen.
    observed: Mutex<Option<(String, Instant)>>,
}

impl LeaderElection {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: String,
        timing: Timing,
        metrics: Metrics,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity,
            timing,
            metrics,
            observed: Mutex::new(None),
        }
    }

    /// This replica's identity in the Lease.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        let mut logged_waiting = false;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.identity, lease = %self.name, "acquired the leader lease");
                    self.metrics.leader.set(1);
                    return;
                }
                Ok(false) if !logged_waiting => {
                    tracing::info!(identity = %self.identity, lease = %self.name, "another replica leads; standing by");
                    logged_waiting = true;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "leader election attempt failed"),
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews the Lease until renewal fails for longer than the renew
    /// deadline; returns the error that ended the leadership.
    pub async fn hold(&self) -> StartError {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    self.metrics.leader.set(0);
                    return StartError::LeaseLost {
                        namespace: self.namespace.clone(),
                        name: self.name.clone(),
                    };
                }
                Err(error) => {
                    tracing::warn!(%error, "renewing the leader lease failed");
                    if last_renewed.elapsed() > self.timing.renew_deadline {
                        self.metrics.leader.set(0);
                        return StartError::LeaseNotRenewed {
                            namespace: self.namespace.clone(),
                            name: self.name.clone(),
                            deadline: self.timing.renew_deadline,
                            verb: error.verb,
                            source: Box::new(error.source),
                        };
                    }
                }
            }
        }
    }

    /// Gives the Lease up (if held) so a standby takes over without waiting
    /// for it to expire.
    pub async fn release(&self) {
        self.metrics.leader.set(0);
        let lease = match self.api.get_opt(&self.name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "reading the lease to release it failed");
                return;
            }
        };
        let mut lease = lease;
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.metrics.count_write("update", "Lease");
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "released the leader lease"),
            Err(error) => tracing::warn!(%error, "releasing the leader lease failed"),
        }
    }

    /// One election step: create, renew or take over the Lease. `Ok(true)`
    /// when this replica holds it afterwards.
    async fn try_acquire_or_renew(&self) -> Result<bool, LeaseCallFailed> {
        let now = MicroTime(Timestamp::now());
        let existing = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| LeaseCallFailed {
                verb: "get",
                source,
            })?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.lease_seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            self.metrics.count_write("create", "Lease");
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(source) => Err(LeaseCallFailed {
                    verb: "create",
                    source,
                }),
            };
        };

        let record = lease.metadata.resource_version.clone().unwrap_or_default();
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let held_by_me = holder.as_deref() == Some(self.identity.as_str());
        if !held_by_me {
            let duration =
                Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
            if holder.is_some() && !self.expired(&record, duration) {
                return Ok(false);
            }
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(self.lease_seconds());
        spec.renew_time = Some(now);
        self.metrics.count_write("update", "Lease");
        // `replace` sends the resourceVersion read above: a concurrent
        // writer makes this fail with 409 instead of both winning.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(source) => Err(LeaseCallFailed {
                verb: "update",
                source,
            }),
        }
    }

    /// Whether the record `record` has gone unchanged for `duration`.
    fn expired(&self, record: &str, duration: Duration) -> bool {
        let mut observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        match observed.as_ref() {
            Some((seen, since)) if seen == record => since.elapsed() >= duration,
            _ => {
                *observed = Some((record.to_owned(), Instant::now()));
                false
            }
        }
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.timing.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}

/// A replica identity: the pod name (or host name) plus a random suffix, so a
/// restarted process never mistakes its predecessor's Lease for its own.
pub fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "flightdeck-operator".to_owned());
    let suffix = getrandom::u32().unwrap_or_else(|_| std::process::id());
    format!("{host}_{suffix:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_keeps_client_go_proportions() {
        let timing = Timing::from_lease_duration(Duration::from_secs(15));
        assert_eq!(timing.renew_deadline, Duration::from_secs(10));
        assert_eq!(timing.retry_period, Duration::from_secs(2));
    }

    #[test]
    fn identities_differ_between_processes() {
        assert_ne!(identity(), identity());
    }
}
