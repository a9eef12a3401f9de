//! The job rules, as pure functions: whether a claimed job is sent at all, and what a provider's answer makes
//! of it (accepted, failed over to the next provider, retried, failed). The worker does the I/O around them
//! and turns the [`Verdict`] into metrics, events, audit entries and logs.
//!
//! Every branch ends in a [`JobUpdate`] with either a next run time or a terminal status, so no job is left
//! without one.

use std::time::Duration;

use super::retry::RetryPolicy;
use crate::db::jobs::JobUpdate;
use crate::domain::{JobStatus, Timestamp};
use crate::plugins::{ProviderError, RemoteStatus, Submission};

/// The message recorded when an interrupted submission cannot be repeated safely.
pub const AMBIGUOUS_SUBMISSION: &str = "submission interrupted by a server restart: the provider may or may not have \
received this fax, and it does not support idempotent resubmission, so it was not sent again to avoid a duplicate; \
check with the provider before resending";

/// The message recorded when a submission's outcome is unknown (a timeout) and the provider cannot be asked
/// whether it took the fax.
pub const AMBIGUOUS_TIMEOUT: &str = "the provider may or may not have received this fax (no answer in time), and \
it cannot recognise a repeated submission, so it was not sent again to avoid a duplicate; check with the provider \
before resending";

/// The longest a provider's completion hint may push the first status check.
pub const MAX_CHECK_AFTER: Duration = Duration::from_secs(3600);

/// Longest wait between status checks, however slowly a provider asks to be polled.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// What the rules need to know about a claimed job.
#[derive(Debug, Clone, Copy)]
pub struct Claimed {
    /// Submissions whose outcome was recorded.
    pub attempts: i64,
    /// Submissions started, counting the one this claim marked.
    pub dispatch_started: i64,
    /// When the job was created (the status deadline counts from here).
    pub created_at: Timestamp,
}

impl Claimed {
    /// The 1-based number of the submission this claim makes.
    pub fn attempt(&self) -> u32 {
        u32::try_from(self.attempts + 1).unwrap_or(u32::MAX)
    }
}

/// How a provider's status is followed.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// The provider's poll interval.
    pub interval: Duration,
    /// No final status after this long since creation: the job fails.
    pub status_deadline: Duration,
}

/// Whether and how a claimed job is submitted.
#[derive(Debug)]
pub enum Plan {
    /// Send it: the `attempt`-th submission (1-based); `repeat` when an earlier one was interrupted and is
    /// repeated under the same idempotency key.
    Send {
        /// 1-based number of this submission.
        attempt: u32,
        /// Repeats an interrupted submission.
        repeat: bool,
    },
    /// Not sent; the job is updated so.
    Done(JobUpdate, Verdict),
}

/// What a step decided, for the worker's metrics, events, audit entries and logs.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Sending is disabled: the job waits, its claim unmarked.
    Held,
    /// An interrupted or timed-out submission to a provider without idempotency: failed rather than risk a
    /// duplicate.
    Ambiguous,
    /// The provider took the fax.
    Accepted,
    /// The provider answered with an error of its own; the job moves to the chain's provider `to` (index
    /// `index`) at once.
    FailedOver {
        /// The next provider's plugin id.
        to: String,
        /// Its index in the chain.
        index: usize,
    },
    /// A retryable failure: the same provider again after `delay`.
    Retrying {
        /// The wait before the next attempt.
        delay: Duration,
    },
    /// Failed for good.
    Failed,
}

/// Whether an error moves a job to the next outbound provider: errors the provider itself answered with
/// (refused credentials, rate limit, outage). Not a rejected fax (another provider would reject it too) and
/// not a transport failure (the provider may have taken the fax; it is retried where it is, and a provider
/// with idempotency finds it again).
pub fn fails_over(e: &ProviderError) -> bool {
    matches!(e, ProviderError::Unauthorized(_) | ProviderError::RateLimited { .. } | ProviderError::Unavailable { .. })
}

/// Decides whether a claimed job is submitted. `update` is the job's update with nothing decided yet.
pub fn plan(mut update: JobUpdate, job: &Claimed, dispatch_enabled: bool, idempotent: bool) -> Plan {
    if !dispatch_enabled {
        // Sending was disabled after this job was scheduled: hold it until it is enabled again.
        update.status = JobStatus::Queued;
        update.unmark_dispatch = true;
        return Plan::Done(update, Verdict::Held);
    }
    // `dispatch_started` was incremented by this claim; anything beyond `attempts + 1` is a submission that
    // started earlier and whose outcome was never recorded.
    let interrupted = job.dispatch_started > job.attempts + 1;
    if interrupted && !idempotent {
        update.status = JobStatus::DispatchFailed;
        update.error = Some(AMBIGUOUS_SUBMISSION.into());
        return Plan::Done(update, Verdict::Ambiguous);
    }
    Plan::Send { attempt: job.attempt(), repeat: interrupted }
}

/// Where a submission went: the chain of outbound plugin ids (primary first, then the failover providers) and
/// the index of the one that was asked.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a> {
    /// Plugin ids in order.
    pub plugins: &'a [String],
    /// The one that was asked.
    pub index: usize,
    /// Whether the one that was asked recognises a repeated submission (the idempotency capability: an
    /// idempotency key, or a lookup that adopts what an earlier attempt created).
    pub idempotent: bool,
}

/// What a submission's outcome makes of the job. `update.now` is when the answer came; `jitter` is a uniform
/// sample from `[0, 1)` for the retry delay.
pub fn decide(
    mut update: JobUpdate,
    job: &Claimed,
    outcome: Result<Submission, &ProviderError>,
    chain: Chain<'_>,
    retry: &RetryPolicy,
    polling: &Polling,
    jitter: f64,
) -> (JobUpdate, Verdict) {
    update.recorded_attempt = true;
    let attempt = job.attempt();
    let e = match outcome {
        Ok(submission) => {
            update.provider_sid = Some(submission.provider_sid);
            update.error = None;
            let mut update = remote(update, submission.status, job.created_at, polling, 1);
            if let (Some(hint), Some(_)) = (submission.check_after, update.next_run_at) {
                update.next_run_at = Some(update.now.plus(hint.min(MAX_CHECK_AFTER)));
            }
            return (update, Verdict::Accepted);
        }
        Err(e) => e,
    };
    let current =
        chain.plugins.get(chain.index.min(chain.plugins.len().saturating_sub(1))).cloned().unwrap_or_default();
    let next = chain.index.min(chain.plugins.len().saturating_sub(1)) + 1;
    if fails_over(e)
        && let Some(to) = chain.plugins.get(next)
    {
        // The provider answered with an error of its own (it did not take the fax), so handing the job to the
        // next provider cannot send it twice. No wait: the next provider is not the one that is overloaded.
        update.status = JobStatus::Queued;
        update.error = Some(format!("{current} failed ({e}); moved to {to}"));
        update.backend = Some(to.clone());
        update.provider_index = Some(next as i64);
        update.next_run_at = Some(update.now);
        return (update, Verdict::FailedOver { to: to.clone(), index: next });
    }
    if matches!(e, ProviderError::Transport(_)) && !chain.idempotent {
        // A timeout leaves the submission's outcome unknown; only a provider that recognises a repeat may be
        // asked again. (A refused connection is not a Transport error: the plugins report it as Unavailable.)
        update.status = JobStatus::DispatchFailed;
        update.error = Some(format!("{AMBIGUOUS_TIMEOUT} ({e})"));
        update.next_run_at = None;
        return (update, Verdict::Ambiguous);
    }
    if e.is_retryable() && retry.may_retry(attempt) {
        let delay = retry.delay(attempt, e.retry_after(), jitter);
        update.status = JobStatus::Queued;
        update.error = Some(format!("attempt {attempt} failed: {e}; retrying"));
        update.next_run_at = Some(update.now.plus(delay));
        return (update, Verdict::Retrying { delay });
    }
    update.status = JobStatus::DispatchFailed;
    update.error =
        Some(if e.is_retryable() { format!("{e} (gave up after {attempt} attempts)") } else { e.to_string() });
    update.next_run_at = None;
    (update, Verdict::Failed)
}

/// The job after the provider reported `status`. Not final yet: the next check after the poll interval times
/// `factor` (a failed check waits longer), or failed once the status deadline has passed.
pub fn remote(
    mut update: JobUpdate,
    status: RemoteStatus,
    created_at: Timestamp,
    polling: &Polling,
    factor: u32,
) -> JobUpdate {
    match status {
        RemoteStatus::Delivered => {
            update.status = JobStatus::Success;
            update.error = None;
        }
        RemoteStatus::Failed(reason) => {
            update.status = JobStatus::Failed;
            update.error = Some(reason);
        }
        RemoteStatus::Queued | RemoteStatus::InProgress => {
            update.status = JobStatus::InProgress;
            update = next_check(update, created_at, polling, factor);
        }
    }
    update
}

/// The next status check, or failure once the status deadline has passed.
pub fn next_check(mut update: JobUpdate, created_at: Timestamp, polling: &Polling, factor: u32) -> JobUpdate {
    let deadline = created_at.plus(polling.status_deadline);
    if update.now >= deadline {
        update.status = JobStatus::DispatchFailed;
        update.error = Some("no final status from the provider before the status deadline".into());
        update.next_run_at = None;
        return update;
    }
    let interval = (polling.interval * factor).min(MAX_POLL_INTERVAL);
    update.next_run_at = Some(update.now.plus(interval));
    update
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::JobId;

    const NOW: i64 = 1_000_000;

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_micros(ms * 1_000)
    }

    fn update() -> JobUpdate {
        JobUpdate {
            id: JobId::generate(),
            owner: "worker-test".into(),
            status: JobStatus::Queued,
            error: Some("earlier error".into()),
            provider_sid: None,
            backend: Some("phaxio".into()),
            provider_index: None,
            recorded_attempt: false,
            unmark_dispatch: false,
            next_run_at: None,
            now: ts(NOW),
        }
    }

    fn job(attempts: i64, dispatch_started: i64) -> Claimed {
        Claimed { attempts, dispatch_started, created_at: ts(NOW - 1_000) }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy { base: Duration::from_secs(2), max: Duration::from_secs(60), max_attempts: 3 }
    }

    fn polling() -> Polling {
        Polling { interval: Duration::from_secs(5), status_deadline: Duration::from_secs(3600) }
    }

    fn chain() -> Vec<String> {
        vec!["phaxio".into(), "sinch".into()]
    }

    fn run(attempt: u32, index: usize, outcome: Result<Submission, &ProviderError>) -> (JobUpdate, Verdict) {
        let plugins = chain();
        decide(
            update(),
            &job(i64::from(attempt) - 1, i64::from(attempt)),
            outcome,
            Chain { plugins: &plugins, index, idempotent: true },
            &policy(),
            &polling(),
            0.5,
        )
    }

    #[test]
    fn a_timeout_is_retried_only_where_a_repeat_is_recognised() {
        let plugins = chain();
        let timeout = ProviderError::Transport("timed out".into());
        let outcome = |idempotent: bool, e: &ProviderError| {
            decide(
                update(),
                &job(0, 1),
                Err(e),
                Chain { plugins: &plugins, index: 0, idempotent },
                &policy(),
                &polling(),
                0.5,
            )
        };
        let (u, v) = outcome(true, &timeout);
        assert!(matches!(v, Verdict::Retrying { .. }), "{v:?}");
        assert_eq!(u.status, JobStatus::Queued);
        let (u, v) = outcome(false, &timeout);
        assert_eq!(v, Verdict::Ambiguous);
        assert_eq!(u.status, JobStatus::DispatchFailed);
        assert!(u.error.as_deref().is_some_and(|e| e.starts_with(AMBIGUOUS_TIMEOUT)), "{:?}", u.error);
        assert_eq!(u.next_run_at, None);
        // An outage the provider answered (or a refused connection) is retried, or moved, either way.
        let (_, v) = outcome(false, &unavailable(None));
        assert!(matches!(v, Verdict::FailedOver { .. }), "{v:?}");
    }

    fn unavailable(retry_after: Option<Duration>) -> ProviderError {
        ProviderError::Unavailable { message: "503".into(), retry_after }
    }

    #[test]
    fn plan_holds_fails_ambiguous_or_sends() {
        // (case, claimed, sending enabled, idempotent provider, verdict when not sent, (attempt, repeat) when sent)
        type Case = (&'static str, Claimed, bool, bool, Option<Verdict>, Option<(u32, bool)>);
        let cases: [Case; 5] = [
            ("first submission", job(0, 1), true, false, None, Some((1, false))),
            ("third submission", job(2, 3), true, false, None, Some((3, false))),
            ("sending disabled", job(0, 1), false, true, Some(Verdict::Held), None),
            ("interrupted, idempotent: repeated", job(0, 2), true, true, None, Some((1, true))),
            ("interrupted, not idempotent: ambiguous", job(1, 3), true, false, Some(Verdict::Ambiguous), None),
        ];
        for (name, claimed, enabled, idempotent, done, send) in cases {
            match plan(update(), &claimed, enabled, idempotent) {
                Plan::Send { attempt, repeat } => assert_eq!(Some((attempt, repeat)), send, "{name}"),
                Plan::Done(u, verdict) => {
                    assert_eq!(Some(verdict.clone()), done, "{name}");
                    match verdict {
                        Verdict::Held => {
                            assert_eq!(u.status, JobStatus::Queued, "{name}");
                            assert!(u.unmark_dispatch && !u.recorded_attempt, "{name}");
                        }
                        _ => {
                            assert_eq!(u.status, JobStatus::DispatchFailed, "{name}");
                            assert_eq!(u.error.as_deref(), Some(AMBIGUOUS_SUBMISSION), "{name}");
                            assert_eq!(u.next_run_at, None, "{name}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn accepted_submissions_follow_the_providers_status() {
        let submission = |status, check_after| Submission { provider_sid: "sid-1".into(), status, check_after };
        // Delivered at once: terminal, error cleared.
        let (u, v) = run(1, 0, Ok(submission(RemoteStatus::Delivered, None)));
        assert_eq!((v, u.status, u.error, u.next_run_at), (Verdict::Accepted, JobStatus::Success, None, None));
        assert_eq!(u.provider_sid.as_deref(), Some("sid-1"));
        assert!(u.recorded_attempt);
        // In progress: checked after the poll interval, or at the provider's hint (capped at an hour).
        let (u, _) = run(1, 0, Ok(submission(RemoteStatus::InProgress, None)));
        assert_eq!((u.status, u.next_run_at), (JobStatus::InProgress, Some(ts(NOW + 5_000))));
        let (u, _) = run(1, 0, Ok(submission(RemoteStatus::Queued, Some(Duration::from_secs(40)))));
        assert_eq!(u.next_run_at, Some(ts(NOW + 40_000)));
        let (u, _) = run(1, 0, Ok(submission(RemoteStatus::Queued, Some(Duration::from_secs(86_400)))));
        assert_eq!(u.next_run_at, Some(ts(NOW + 3_600_000)));
        // Failed at once: terminal with the provider's reason.
        let (u, _) = run(1, 0, Ok(submission(RemoteStatus::Failed("busy".into()), None)));
        assert_eq!((u.status, u.error.as_deref()), (JobStatus::Failed, Some("busy")));
    }

    #[test]
    fn errors_fail_over_retry_or_fail() {
        let rate_limited = ProviderError::RateLimited { message: "429".into(), retry_after: None };
        let cases: Vec<(&str, u32, usize, ProviderError, Verdict, JobStatus)> = vec![
            (
                "outage on the primary: next provider at once",
                1,
                0,
                unavailable(None),
                Verdict::FailedOver { to: "sinch".into(), index: 1 },
                JobStatus::Queued,
            ),
            (
                "refused credentials fail over too",
                1,
                0,
                ProviderError::Unauthorized("401".into()),
                Verdict::FailedOver { to: "sinch".into(), index: 1 },
                JobStatus::Queued,
            ),
            (
                "rate limit on the last provider: retried there",
                1,
                1,
                rate_limited.clone(),
                Verdict::Retrying { delay: Duration::from_millis(1_500) },
                JobStatus::Queued,
            ),
            (
                "transport failure: retried where it is, never failed over",
                1,
                0,
                ProviderError::Transport("reset".into()),
                Verdict::Retrying { delay: Duration::from_millis(1_500) },
                JobStatus::Queued,
            ),
            (
                "Retry-After is a floor",
                2,
                1,
                unavailable(Some(Duration::from_secs(30))),
                Verdict::Retrying { delay: Duration::from_secs(30) },
                JobStatus::Queued,
            ),
            (
                "retry delay doubles",
                2,
                1,
                unavailable(None),
                Verdict::Retrying { delay: Duration::from_secs(3) },
                JobStatus::Queued,
            ),
            ("attempts exhausted", 3, 1, unavailable(None), Verdict::Failed, JobStatus::DispatchFailed),
            (
                "rejected fax: permanent, no failover",
                1,
                0,
                ProviderError::Rejected("bad number".into()),
                Verdict::Failed,
                JobStatus::DispatchFailed,
            ),
            ("unsupported: permanent", 1, 0, ProviderError::Unsupported, Verdict::Failed, JobStatus::DispatchFailed),
        ];
        for (name, attempt, index, error, verdict, status) in cases {
            let (u, v) = run(attempt, index, Err(&error));
            assert_eq!(v, verdict, "{name}");
            assert_eq!(u.status, status, "{name}");
            assert!(u.recorded_attempt, "{name}: every answer counts as an attempt");
            assert_eq!(u.provider_sid, None, "{name}");
            let error_text = u.error.clone().unwrap_or_default();
            match v {
                Verdict::FailedOver { index, .. } => {
                    assert_eq!(u.next_run_at, Some(ts(NOW)), "{name}: no wait");
                    assert_eq!((u.backend.as_deref(), u.provider_index), (Some("sinch"), Some(index as i64)));
                    assert!(
                        error_text.starts_with("phaxio failed (") && error_text.ends_with("moved to sinch"),
                        "{error_text}"
                    );
                }
                Verdict::Retrying { delay } => {
                    assert_eq!(u.next_run_at, Some(ts(NOW).plus(delay)), "{name}");
                    assert!(error_text.starts_with(&format!("attempt {attempt} failed: ")), "{error_text}");
                    assert_eq!(u.provider_index, None, "{name}: stays on its provider");
                }
                _ => {
                    assert_eq!(u.next_run_at, None, "{name}: terminal");
                    assert_eq!(
                        error_text,
                        if error.is_retryable() {
                            format!("{error} (gave up after {attempt} attempts)")
                        } else {
                            error.to_string()
                        }
                    );
                }
            }
        }
    }

    #[test]
    fn a_chain_of_one_never_fails_over() {
        let plugins = vec!["phaxio".to_string()];
        let (_, v) = decide(
            update(),
            &job(0, 1),
            Err(&unavailable(None)),
            Chain { plugins: &plugins, index: 0, idempotent: true },
            &policy(),
            &polling(),
            0.0,
        );
        assert_eq!(v, Verdict::Retrying { delay: Duration::from_secs(1) });
    }

    #[test]
    fn status_checks_back_off_and_stop_at_the_deadline() {
        let p = polling();
        let u = remote(update(), RemoteStatus::InProgress, ts(NOW - 1_000), &p, 2);
        assert_eq!((u.status, u.next_run_at), (JobStatus::InProgress, Some(ts(NOW + 10_000))));
        let slow = Polling { interval: Duration::from_secs(50), ..p };
        assert_eq!(next_check(update(), ts(NOW), &slow, 2).next_run_at, Some(ts(NOW + 60_000)), "capped at a minute");
        let late = next_check(update(), ts(NOW - 3_600_000), &p, 1);
        assert_eq!((late.status, late.next_run_at), (JobStatus::DispatchFailed, None));
        assert_eq!(late.error.as_deref(), Some("no final status from the provider before the status deadline"));
    }
}
