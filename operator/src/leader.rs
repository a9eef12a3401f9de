//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas can run and only one writes.
//!
//! Written here (about a hundred lines) rather than taken from kube-leader-election, which pins kube 4 while
//! this workspace is on kube 5. The algorithm is client-go's: a replica holds the Lease while it renews it
//! within `leaseDurationSeconds`; another replica takes over only after it has watched the record stay
//! unchanged for a whole lease duration *by its own clock*, so clock skew between nodes cannot cause two
//! leaders. Updates use the record's resourceVersion, so two candidates racing for an expired lease cannot
//! both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

/// Lease timing and identity.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease (the operator's own namespace).
    pub namespace: String,
    /// Lease name, shared by every replica.
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
    /// How often the holder renews (and candidates retry).
    pub renew_every: Duration,
    /// The holder stops leading when it has not renewed for this long, well before `duration` runs out:
    /// another replica may take over after `duration`, and by then this one must have stopped writing
    /// (client-go's renewDeadline). Must be shorter than `duration`.
    pub renew_deadline: Duration,
}

/// What the holder does next, from the time since its last successful renewal was **sent** (the server
/// stamps the lease no earlier than that, so this errs on the safe side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// Sleep this long, then renew with at most the given time for the request.
    Renew {
        /// Time to wait before the request.
        wait: Duration,
        /// The request's timeout: it must not outlive the renew deadline.
        timeout: Duration,
    },
    /// The renew deadline has passed: stop every write now.
    Stop,
}

/// The fencing rule: renew every `renew_every`, but never wait or let a request run past the deadline.
pub fn fence(settings: &LeaseSettings, since_renewed: Duration) -> Fence {
    let left = settings.renew_deadline.saturating_sub(since_renewed);
    if left.is_zero() {
        return Fence::Stop;
    }
    let wait = settings.renew_every.min(left);
    let timeout = left - wait;
    if timeout.is_zero() {
        // Waiting would use up the deadline: renew now, with what is left.
        return Fence::Renew { wait: Duration::ZERO, timeout: left };
    }
    Fence::Renew { wait, timeout }
}

/// One replica's view of the Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The last record seen (resourceVersion) and when this replica first saw it.
    observed: Option<(String, Instant)>,
}

impl LeaderElector {
    /// An elector for `settings` using `client`.
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Self {
        LeaderElector { api: Api::namespaced(client, &settings.namespace), settings, observed: None }
    }

    /// The settings in use.
    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    fn spec(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: Some(self.settings.duration.as_secs().max(1) as i32),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Acquires or renews the lease. `Ok(true)` means this replica leads until at least the next call.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let Some(current) = self.api.get_opt(&self.settings.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.settings.name.clone()), ..Default::default() },
                spec: Some(self.spec(0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let version = current.metadata.resource_version.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let mine = holder == self.settings.identity;

        let now = Instant::now();
        let seen_since = match &self.observed {
            Some((v, at)) if *v == version => *at,
            _ => {
                self.observed = Some((version.clone(), now));
                now
            }
        };
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
        let expired = holder.is_empty() || now.duration_since(seen_since) > duration;
        if !mine && !expired {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine { spec.acquire_time.clone() } else { None };
        let mut next = current.clone();
        next.spec = Some(self.spec(transitions, acquired));
        match self.api.replace(&self.settings.name, &PostParams::default(), &next).await {
            Ok(written) => {
                self.observed = written.metadata.resource_version.map(|v| (v, Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up so a standby takes over at once instead of after a lease duration.
    pub async fn step_down(&mut self) -> Result<(), kube::Error> {
        let Some(mut current) = self.api.get_opt(&self.settings.name).await? else { return Ok(()) };
        let Some(spec) = current.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self.api.replace(&self.settings.name, &PostParams::default(), &current).await {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_stops_before_another_replica_may_take_over() {
        let settings = LeaseSettings {
            namespace: "ns".into(),
            name: "lease".into(),
            identity: "me".into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(4),
            renew_deadline: Duration::from_secs(10),
        };
        let s = Duration::from_secs;
        // (seconds since the last renewal was sent) → next step.
        let table = [
            (0, Fence::Renew { wait: s(4), timeout: s(6) }),
            (4, Fence::Renew { wait: s(4), timeout: s(2) }),
            (8, Fence::Renew { wait: s(0), timeout: s(2) }),
            (9, Fence::Renew { wait: s(0), timeout: s(1) }),
            (10, Fence::Stop),
            (30, Fence::Stop),
        ];
        for (since, want) in table {
            assert_eq!(fence(&settings, s(since)), want, "{since} s after the last renewal");
        }
        // Whatever happens, no request outlives the deadline, and the deadline is inside the lease.
        for ms in (0..12_000).step_by(250) {
            if let Fence::Renew { wait, timeout } = fence(&settings, Duration::from_millis(ms)) {
                assert!(Duration::from_millis(ms) + wait + timeout <= settings.renew_deadline, "{ms} ms");
            }
        }
        assert!(settings.renew_deadline < settings.duration);
    }
}
