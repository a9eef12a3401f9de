//! The replica split for a weight, and the step machine of a canary.
//!
//! Without a service mesh, traffic follows pods: the Service selects stable and canary pods alike, so a
//! weight is approximated by how many pods each side runs. [`split`] picks the closest achievable ratio with
//! at least one pod on each side for weights 1–99 (like Argo Rollouts' basic canary, it may run one pod more
//! than `replicas` when that is closer), and [`RolloutState::actual_weight`] reports what the pods really
//! give, which is what the status shows next to the requested weight.
//!
//! [`step`] is the whole decision of one tick: given the spec, the state kept in status, the time, whether
//! the canary pods are ready and the verdict of a check that just ran, it returns the next state and what
//! to do. Rules that keep it out of the known failure modes of canary controllers:
//! - an abort, a failed-check budget, a bounded run of no-data checks and the progress deadline roll back
//!   even while paused; time held on purpose (a pause, `paused`, waiting for `promote`) is not "no progress";
//! - a rolled-back revision is remembered and not retried unless `retry` changes, but any newer revision
//!   starts a fresh canary;
//! - `abort` and `promote` apply to the revision they were first seen with, not to a fix pushed after them;
//! - a check without enough samples holds the step (it neither passes nor fails it), and so does an error
//!   rate that stable shares (an outage is not the canary's fault);
//! - an invalid spec mid-canary holds the canary under supervision instead of abandoning it.
//!
//! [`targets`] turns a decision into replica counts that never cut the ready capacity below `replicas`.

use std::time::Duration;

use super::analysis::{Failure, Verdict};

/// Pods per side for `weight` percent of `replicas` total: `(stable, canary)`.
pub fn split(replicas: i32, weight: i32) -> (i32, i32) {
    let replicas = replicas.max(1);
    match weight {
        w if w <= 0 => (replicas, 0),
        w if w >= 100 => (0, replicas),
        w => {
            // Try `replicas` and `replicas + 1` pods in total; keep the one closer to the weight (ties: fewer).
            let best = [replicas.max(2), replicas + 1]
                .into_iter()
                .map(|total| {
                    let canary = ((f64::from(total) * f64::from(w) / 100.0).round() as i32).clamp(1, total - 1);
                    let error = (f64::from(canary) / f64::from(total) - f64::from(w) / 100.0).abs();
                    (error, total, canary)
                })
                .fold(None::<(f64, i32, i32)>, |best, c| match best {
                    Some(b) if b.0 <= c.0 + 1e-12 => Some(b),
                    _ => Some(c),
                });
            let (_, total, canary) = best.unwrap_or((0.0, replicas, 0));
            (total - canary, canary)
        }
    }
}

/// The weight pods actually give, in percent (ready pods when known).
pub fn actual_weight(stable_pods: i32, canary_pods: i32) -> f64 {
    let total = stable_pods + canary_pods;
    if total <= 0 { 0.0 } else { f64::from(canary_pods) * 100.0 / f64::from(total) }
}

/// Replica counts for both Deployments this tick, `(stable, canary)`: the side that grows gets its share at
/// once (a surge), the side that shrinks only as far as the other side's **ready** pods replace it. So the
/// ready pods of both never drop below `replicas` because of the rollout itself: a canary that never becomes
/// ready leaves stable untouched, a 100 % step empties stable only once the canary serves every replica, a
/// promotion keeps the canary until the new stable pods are ready, and a rollback keeps the canary's ready
/// pods until stable is back to full size.
///
/// `want` is the split the step asks for, `current` what the Deployments ask for now, `ready` the ready pods
/// of the stable revision and of the canary revision. Pods lost to a crash or an eviction are not replaced
/// by the other side (that is the Deployment's job); a shrink is never sped up by them either.
pub fn targets(replicas: i32, want: (i32, i32), current: (i32, i32), ready: (i32, i32)) -> (i32, i32) {
    let replicas = replicas.max(1);
    let side = |want: i32, current: i32, other_ready: i32| {
        if want >= current { want } else { want.max(current.min(replicas - other_ready)) }
    };
    (side(want.0, current.0, ready.1), side(want.1, current.1, ready.0).max(0))
}

/// The spec side of a rollout, with durations parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Steps: weight and how long to hold it (`None`: until promoted).
    pub steps: Vec<(i32, Option<Duration>)>,
    /// Failed checks tolerated before rolling back.
    pub max_failed_checks: u32,
    /// Consecutive no-data checks tolerated before rolling back.
    pub max_no_data_checks: u32,
    /// A canary that makes no progress for this long is rolled back. Time held on purpose does not count:
    /// a step's pause in progress, `paused`, or a step without a pause waiting for `promote`.
    pub progress_deadline: Duration,
    /// How long after a step's pods are ready its latency is not judged (the analysis window): the window
    /// then holds only traffic of warm pods. Error rates count from the start.
    pub warmup: Duration,
    /// Hold whatever revision is in flight at its current step (a standing gate: it also holds a new
    /// revision at its first step).
    pub paused: bool,
    /// Promote the revision this was first seen with (a one-shot gate, see [`RolloutState::promote_for`]).
    pub promote: bool,
    /// Roll back the revision this was first seen with (a one-shot gate, see [`RolloutState::abort_for`]).
    pub abort: bool,
    /// Any change of this token retries the desired revision once, even if it was rolled back before.
    pub retry: Option<String>,
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Only the stable revision runs.
    Stable,
    /// A canary is running.
    Progressing,
    /// A canary is held at its step (paused, or a step without a pause waiting for `promote`).
    Paused,
    /// The last canary was rolled back; the stable revision serves.
    RolledBack,
}

impl Phase {
    /// Status and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Stable => "Stable",
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::RolledBack => "RolledBack",
        }
    }
}

/// What is kept between ticks (in the config's status, so an operator restart resumes at the same step).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutState {
    /// Phase.
    pub phase: Phase,
    /// The revision every stable pod runs.
    pub stable_revision: String,
    /// The revision under test, if any.
    pub canary_revision: Option<String>,
    /// Index into the steps.
    pub step: usize,
    /// When the current step's weight was reached (its pods ready); its pause counts from here.
    pub step_started_at: Option<Duration>,
    /// When the canary started.
    pub started_at: Duration,
    /// When it last made progress (started, reached a step, or was held on purpose); the progress deadline
    /// counts from here.
    pub progress_at: Duration,
    /// Failed checks of this canary.
    pub failed_checks: u32,
    /// Consecutive no-data checks.
    pub no_data_checks: u32,
    /// Revisions rolled back, newest last (not retried unless `retry` changes).
    pub failed_revisions: Vec<String>,
    /// Why the last canary was rolled back.
    pub last_rollback: Option<String>,
    /// The revision `abort: true` was first seen with. A gate left set in Git applies to that revision only:
    /// a fix pushed while `abort` is still `true` gets its own canary instead of an instant rollback.
    pub abort_for: Option<String>,
    /// The revision `promote: true` was first seen with (the same rule as `abort_for`).
    pub promote_for: Option<String>,
    /// The `retry` token last acted on.
    pub retry_seen: Option<String>,
}

impl RolloutState {
    /// A rollout that has only ever run `revision`.
    pub fn stable(revision: &str) -> Self {
        RolloutState {
            phase: Phase::Stable,
            stable_revision: revision.to_string(),
            canary_revision: None,
            step: 0,
            step_started_at: None,
            started_at: Duration::ZERO,
            progress_at: Duration::ZERO,
            failed_checks: 0,
            no_data_checks: 0,
            failed_revisions: Vec::new(),
            last_rollback: None,
            abort_for: None,
            promote_for: None,
            retry_seen: None,
        }
    }
}

/// What one tick knows.
#[derive(Debug, Clone, Copy)]
pub struct Tick<'a> {
    /// The revision the spec renders now; `None` while the spec is invalid (a missing Secret, a broken
    /// commit): the canary in flight is then held, not abandoned.
    pub desired: Option<&'a str>,
    /// Time since an arbitrary epoch (the same clock as the state's times).
    pub now: Duration,
    /// Whether the canary pods of the current step are ready.
    pub canary_ready: bool,
    /// The check that ran this tick, if one was due.
    pub verdict: Option<&'a Verdict>,
    /// The desired revision only changes feature flags and `urgentFeatureFlags` is set: promote at once.
    pub urgent: bool,
}

/// What the reconciler must make true after a tick (replica counts then follow [`targets`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Only stable pods at full size; the canary goes once stable's pods are ready.
    StableOnly,
    /// Run the canary at this weight (percent).
    Canary {
        /// Requested weight.
        weight: i32,
    },
    /// The spec is invalid: stable back to full size, the canary kept as it is (not rebuilt, not advanced),
    /// still judged and still bound by the deadline.
    Hold,
    /// Roll back: stable back to full size, the canary goes once stable's pods are ready; tell the user why.
    RollBack {
        /// The measured reason.
        reason: String,
    },
    /// Promote: the stable Deployment takes the canary's revision; the canary goes once the new stable pods
    /// are ready.
    Promote,
}

/// Bounded history of failed revisions.
const FAILED_HISTORY: usize = 20;

fn roll_back(mut s: RolloutState, reason: String) -> (RolloutState, Action) {
    if let Some(rev) = s.canary_revision.take() {
        s.failed_revisions.retain(|r| r != &rev);
        s.failed_revisions.push(rev);
        if s.failed_revisions.len() > FAILED_HISTORY {
            s.failed_revisions.remove(0);
        }
    }
    s.phase = Phase::RolledBack;
    s.step = 0;
    s.step_started_at = None;
    s.last_rollback = Some(reason.clone());
    (s, Action::RollBack { reason })
}

fn describe(verdict: &Verdict) -> String {
    let m = verdict.measurement();
    match verdict {
        Verdict::Fail(_, Failure::ErrorRate) => format!(
            "canary error rate {:.2}% (at least {:.2}% with 95% confidence; stable {:.2}%) over {} events",
            m.canary_error_rate, m.canary_error_rate_bound, m.stable_error_rate, m.canary_samples
        ),
        Verdict::Fail(_, Failure::Latency) => format!(
            "canary latency {:.1} ms vs stable {:.1} ms ({:+.0}%)",
            m.canary_latency.unwrap_or(0.0) * 1000.0,
            m.stable_latency.unwrap_or(0.0) * 1000.0,
            (m.latency_ratio().unwrap_or(1.0) - 1.0) * 100.0
        ),
        Verdict::Fail(_, Failure::SubmitLatency) => format!(
            "canary provider submissions {:.1} ms vs stable {:.1} ms ({:+.0}%), error rate {:.2}%",
            m.canary_submit_latency.unwrap_or(0.0) * 1000.0,
            m.stable_submit_latency.unwrap_or(0.0) * 1000.0,
            (m.submit_latency_ratio().unwrap_or(1.0) - 1.0) * 100.0,
            m.canary_error_rate
        ),
        Verdict::Fail(_, Failure::PhiGuardHits) => format!(
            "PhiGuardHits: the canary's pods masked {} phone-number-like values in their log lines ({} on stable) over \
             {} events: the revision writes numbers where they must not go",
            m.leaks.canary_phi_hits, m.leaks.stable_phi_hits, m.canary_samples
        ),
        Verdict::Fail(_, Failure::AuditWriteFailures) => format!(
            "AuditWriteFailures: the canary's pods could not write {} audit events ({} on stable)",
            m.leaks.canary_audit_failures, m.leaks.stable_audit_failures
        ),
        Verdict::NoData(_) => format!("{} canary and {} stable events", m.canary_samples, m.stable_samples),
        Verdict::Unavailable(_) => "AnalysisUnavailable: the operator could not read the metrics of every pod of \
                                   one side (a NetworkPolicy or strict mTLS in the way of its scrapes?)"
            .into(),
        Verdict::Inconclusive(_) => format!(
            "canary error rate {:.2}% and stable {:.2}% alike (a shared dependency failing)",
            m.canary_error_rate, m.stable_error_rate
        ),
        Verdict::Pass(_) => "within thresholds".into(),
    }
}

/// Keeps the one-shot gates tied to the revision they were first seen with, and acts on a new retry token.
fn gates(policy: &Policy, s: &mut RolloutState, desired: Option<&str>) {
    let seen_with = desired.map(str::to_string).or_else(|| s.canary_revision.clone());
    if !policy.abort {
        s.abort_for = None;
    } else if s.abort_for.is_none() {
        s.abort_for = seen_with.clone();
    }
    if !policy.promote {
        s.promote_for = None;
    } else if s.promote_for.is_none() {
        s.promote_for = seen_with;
    }
    if policy.retry.is_some() && policy.retry != s.retry_seen {
        s.retry_seen = policy.retry.clone();
        if let Some(d) = desired
            && s.failed_revisions.iter().any(|r| r == d)
        {
            s.failed_revisions.retain(|r| r != d);
            // The retried revision starts a fresh canary; an `abort` still set for it would end that at once.
            if s.abort_for.as_deref() == Some(d) {
                s.abort_for = Some(String::new());
            }
        }
    }
}

/// One tick: the next state and what to do.
pub fn step(policy: &Policy, state: &RolloutState, tick: &Tick<'_>) -> (RolloutState, Action) {
    let now = tick.now;
    let mut s = state.clone();
    gates(policy, &mut s, tick.desired);
    let Some(desired) = tick.desired else {
        return hold_invalid(policy, s, tick);
    };
    if desired == s.stable_revision {
        // Back to what runs (a Git revert, or the end of a promotion): nothing to test, nothing degraded.
        s.canary_revision = None;
        s.phase = Phase::Stable;
        s.step = 0;
        s.step_started_at = None;
        return (s, Action::StableOnly);
    }
    if s.failed_revisions.iter().any(|r| r == desired) && s.canary_revision.as_deref() != Some(desired) {
        // Rolled back before: not retried until the spec renders a newer revision or `retry` changes.
        s.phase = Phase::RolledBack;
        s.canary_revision = None;
        return (s, Action::StableOnly);
    }
    let aborting = policy.abort && s.abort_for.as_deref() == Some(desired);
    let promoting = tick.urgent || (policy.promote && s.promote_for.as_deref() == Some(desired));
    if s.canary_revision.as_deref() != Some(desired) {
        // A new revision (or a newer one replacing a canary in flight): a fresh canary from step 0.
        s.canary_revision = Some(desired.to_string());
        s.phase = if policy.paused { Phase::Paused } else { Phase::Progressing };
        s.step = 0;
        s.step_started_at = None;
        s.started_at = now;
        s.progress_at = now;
        s.failed_checks = 0;
        s.no_data_checks = 0;
        if aborting {
            return roll_back(s, "aborted by spec.rollout.abort".into());
        }
        if promoting {
            return promote(s);
        }
        let weight = policy.steps.first().map(|(w, _)| *w).unwrap_or(100);
        return (s, Action::Canary { weight });
    }
    // Rollbacks first: they work while paused.
    if aborting {
        return roll_back(s, "aborted by spec.rollout.abort".into());
    }
    if let Some(rollback) = judge(policy, &mut s, tick) {
        return rollback;
    }
    if promoting {
        return promote(s);
    }
    let (weight, pause) = policy.steps.get(s.step).copied().unwrap_or((100, Some(Duration::ZERO)));
    // Held on purpose: paused, waiting for `promote`, or inside the step's own pause. None of that is a
    // lack of progress; a pause longer than the deadline must not roll a healthy canary back.
    let in_pause = match (pause, s.step_started_at) {
        (None, _) => tick.canary_ready,
        (Some(pause), Some(started)) => tick.canary_ready && now.saturating_sub(started) < pause,
        (Some(_), None) => false,
    };
    if policy.paused || in_pause {
        s.progress_at = now;
    } else if now.saturating_sub(s.progress_at) > policy.progress_deadline {
        return roll_back(s, format!("no progress within the deadline of {}s", policy.progress_deadline.as_secs()));
    }
    if !tick.canary_ready {
        s.phase = if policy.paused { Phase::Paused } else { Phase::Progressing };
        return (s, Action::Canary { weight });
    }
    let started = *s.step_started_at.get_or_insert(now);
    if policy.paused {
        s.phase = Phase::Paused;
        return (s, Action::Canary { weight });
    }
    let passed_now = matches!(tick.verdict, Some(Verdict::Pass(_)));
    match pause {
        None => {
            // Held until promoted.
            s.phase = Phase::Paused;
            (s, Action::Canary { weight })
        }
        Some(pause) if now.saturating_sub(started) >= pause && passed_now => {
            if s.step + 1 >= policy.steps.len() {
                return promote(s);
            }
            s.step += 1;
            s.step_started_at = None;
            s.progress_at = now;
            s.phase = Phase::Progressing;
            let weight = policy.steps[s.step].0;
            (s, Action::Canary { weight })
        }
        Some(_) => {
            s.phase = Phase::Progressing;
            (s, Action::Canary { weight })
        }
    }
}

/// Counts this tick's check; `Some` when it used up a budget.
fn judge(policy: &Policy, s: &mut RolloutState, tick: &Tick<'_>) -> Option<(RolloutState, Action)> {
    // The step's pods are ready from this tick on if they were not before.
    let step_started = s.step_started_at.or(tick.canary_ready.then_some(tick.now));
    let verdict = tick.verdict.filter(|v| counts_now(policy, step_started, tick.now, v))?;
    match verdict {
        Verdict::Fail(_, failure) => {
            s.failed_checks += 1;
            s.no_data_checks = 0;
            if s.failed_checks >= policy.max_failed_checks || failure.is_compliance() {
                let reason = format!("failed {} checks: {}", s.failed_checks, describe(verdict));
                return Some(roll_back(s.clone(), reason));
            }
        }
        Verdict::NoData(_) | Verdict::Unavailable(_) => {
            s.no_data_checks += 1;
            if s.no_data_checks >= policy.max_no_data_checks {
                let reason =
                    format!("no analysis data for {} checks in a row: {}", s.no_data_checks, describe(verdict));
                return Some(roll_back(s.clone(), reason));
            }
        }
        // Neither side's fault can be told apart: hold (the deadline bounds it).
        Verdict::Inconclusive(_) => {}
        Verdict::Pass(_) => s.no_data_checks = 0,
    }
    None
}

/// The spec turned invalid with a canary in flight: keep supervising it. Abort, failed checks and the
/// deadline still roll it back; otherwise stable returns to full size and the canary waits, unchanged, for
/// the spec to be valid again. If it comes back as the same revision the canary goes on where it was; a
/// Secret recreated by an external secrets tool has a new UID, which is part of the credentials checksum,
/// so it comes back as a new revision and starts a fresh canary (the held one is replaced, never promoted
/// unjudged).
fn hold_invalid(policy: &Policy, mut s: RolloutState, tick: &Tick<'_>) -> (RolloutState, Action) {
    if s.canary_revision.is_none() {
        return (s, Action::StableOnly);
    }
    if policy.abort && s.abort_for == s.canary_revision {
        return roll_back(s, "aborted by spec.rollout.abort".into());
    }
    if let Some(rollback) = judge(policy, &mut s, tick) {
        return rollback;
    }
    if tick.now.saturating_sub(s.progress_at) > policy.progress_deadline {
        let reason =
            format!("the spec stayed invalid past the progress deadline of {}s", policy.progress_deadline.as_secs());
        return roll_back(s, reason);
    }
    (s, Action::Hold)
}

/// Whether a check counts: always when it found errors above the ceiling (a broken revision is rolled back
/// as fast as the failure budget allows), otherwise only once the step's pods have been ready for the warm-up.
/// A new pod's first requests open its database and provider connections; on real pods that made a healthy
/// canary's p95 156 ms against stable's 12 ms, and it was rolled back.
fn counts_now(policy: &Policy, step_started: Option<Duration>, now: Duration, verdict: &Verdict) -> bool {
    // So do leaks and audit holes: there is nothing to warm up for.
    if matches!(verdict, Verdict::Fail(_, f) if *f == Failure::ErrorRate || f.is_compliance()) {
        return true;
    }
    step_started.is_some_and(|started| now.saturating_sub(started) >= policy.warmup)
}

fn promote(mut s: RolloutState) -> (RolloutState, Action) {
    if let Some(rev) = s.canary_revision.take() {
        s.stable_revision = rev;
    }
    s.phase = Phase::Stable;
    s.step = 0;
    s.step_started_at = None;
    s.failed_checks = 0;
    s.no_data_checks = 0;
    (s, Action::Promote)
}

#[cfg(test)]
mod tests {
    use super::super::analysis::{Leaks, Measurement};
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn policy() -> Policy {
        Policy {
            steps: vec![(10, Some(secs(60))), (50, Some(secs(60)))],
            max_failed_checks: 2,
            max_no_data_checks: 3,
            progress_deadline: secs(3600),
            warmup: Duration::ZERO,
            paused: false,
            promote: false,
            abort: false,
            retry: None,
        }
    }

    fn tick(
        p: &Policy,
        s: &RolloutState,
        desired: &str,
        now: Duration,
        canary_ready: bool,
        verdict: Option<&Verdict>,
    ) -> (RolloutState, Action) {
        step(p, s, &Tick { desired: Some(desired), now, canary_ready, verdict, urgent: false })
    }

    const PASS: Verdict = Verdict::Pass(Measurement {
        canary_error_rate: 0.0,
        canary_error_rate_bound: 0.0,
        stable_error_rate: 0.0,
        canary_latency: Some(0.1),
        stable_latency: Some(0.1),
        canary_submit_latency: None,
        stable_submit_latency: None,
        canary_samples: 100.0,
        stable_samples: 900.0,
        leaks: Leaks::NONE,
    });
    const FAIL: Verdict = Verdict::Fail(
        Measurement {
            canary_error_rate: 5.0,
            canary_error_rate_bound: 2.15,
            stable_error_rate: 0.0,
            canary_latency: Some(0.1),
            stable_latency: Some(0.1),
            canary_submit_latency: None,
            stable_submit_latency: None,
            canary_samples: 100.0,
            stable_samples: 900.0,
            leaks: Leaks::NONE,
        },
        Failure::ErrorRate,
    );
    const NO_DATA: Verdict = Verdict::NoData(Measurement {
        canary_error_rate: 0.0,
        canary_error_rate_bound: 0.0,
        stable_error_rate: 0.0,
        canary_latency: None,
        stable_latency: None,
        canary_submit_latency: None,
        stable_submit_latency: None,
        canary_samples: 3.0,
        stable_samples: 20.0,
        leaks: Leaks::NONE,
    });

    #[test]
    fn weights_split_with_a_pod_on_each_side_and_report_the_actual_weight() {
        // One replica: a second pod is added so both sides run.
        assert_eq!(split(1, 10), (1, 1));
        assert_eq!(split(1, 50), (1, 1));
        assert_eq!(split(2, 10), (2, 1), "3 pods (33 %) are closer to 10 % than 2 (50 %)");
        assert_eq!(split(3, 50), (2, 2), "4 pods give exactly 50 %, 3 cannot");
        assert_eq!(split(4, 25), (3, 1));
        assert_eq!(split(10, 10), (9, 1));
        assert_eq!(split(10, 1), (10, 1), "never zero canary pods for a weight above 0 (11 pods: 9 %)");
        assert_eq!(split(10, 99), (1, 10), "never zero stable pods below 100");
        assert_eq!(split(5, 100), (0, 5));
        assert_eq!(split(5, 0), (5, 0));
        for replicas in 1..=10 {
            for weight in 1..=99 {
                let (s, c) = split(replicas, weight);
                assert!(s >= 1 && c >= 1, "{replicas} replicas at {weight}%: {s}/{c}");
                assert!(s + c == replicas.max(2) || s + c == replicas + 1, "{replicas} at {weight}%: {s}+{c}");
            }
        }
        assert_eq!(actual_weight(9, 1), 10.0);
        assert_eq!(actual_weight(1, 1), 50.0);
        assert!((actual_weight(2, 1) - 33.333).abs() < 0.01);
        assert_eq!(actual_weight(0, 0), 0.0);
    }

    #[test]
    fn a_healthy_canary_walks_every_step_then_promotes() {
        let p = policy();
        let s0 = RolloutState::stable("old");
        let (s, a) = tick(&p, &s0, "new", secs(0), false, None);
        assert_eq!((a, s.phase, s.step), (Action::Canary { weight: 10 }, Phase::Progressing, 0));
        // Pods become ready at t=5: the step's pause counts from there.
        let (s, _) = tick(&p, &s, "new", secs(5), true, None);
        assert_eq!(s.step_started_at, Some(secs(5)));
        let (s, a) = tick(&p, &s, "new", secs(60), true, Some(&PASS));
        assert_eq!((a, s.step), (Action::Canary { weight: 10 }, 0), "pause not over yet");
        let (s, a) = tick(&p, &s, "new", secs(65), true, Some(&PASS));
        assert_eq!((a, s.step), (Action::Canary { weight: 50 }, 1));
        let (s, a) = tick(&p, &s, "new", secs(130), true, Some(&PASS));
        assert_eq!(a, Action::Canary { weight: 50 }, "the new step's pods were not ready before");
        let (s, a) = tick(&p, &s, "new", secs(190), true, Some(&PASS));
        assert_eq!(a, Action::Promote);
        assert_eq!((s.phase, s.stable_revision.as_str(), s.canary_revision.as_deref()), (Phase::Stable, "new", None));
        // Afterwards the desired revision is stable: nothing to do.
        assert_eq!(tick(&p, &s, "new", secs(200), true, None).1, Action::StableOnly);
    }

    #[test]
    fn a_step_advances_only_after_a_passing_check() {
        let p = policy();
        let (s, _) = tick(&p, &RolloutState::stable("old"), "new", secs(0), true, None);
        let (s, _) = tick(&p, &s, "new", secs(1), true, None);
        let (s, a) = tick(&p, &s, "new", secs(100), true, Some(&NO_DATA));
        assert_eq!((a, s.step), (Action::Canary { weight: 10 }, 0), "no data holds the step");
        let (s, a) = tick(&p, &s, "new", secs(130), true, Some(&PASS));
        assert_eq!((a, s.step), (Action::Canary { weight: 50 }, 1));
    }

    #[test]
    fn failed_checks_roll_back_at_the_budget_and_the_revision_is_not_retried() {
        let p = policy();
        let (s, _) = tick(&p, &RolloutState::stable("old"), "bad", secs(0), true, None);
        let (s, a) = tick(&p, &s, "bad", secs(30), true, Some(&FAIL));
        assert_eq!((a, s.failed_checks), (Action::Canary { weight: 10 }, 1), "one failure is within the budget");
        let (s, a) = tick(&p, &s, "bad", secs(60), true, Some(&FAIL));
        let Action::RollBack { reason } = a else { panic!("expected a rollback, got {a:?}") };
        assert!(reason.contains("error rate 5.00%"), "{reason}");
        assert_eq!((s.phase, s.stable_revision.as_str()), (Phase::RolledBack, "old"));
        // The same revision again (the spec did not change): not retried.
        let (s, a) = tick(&p, &s, "bad", secs(90), true, None);
        assert_eq!((a, s.phase), (Action::StableOnly, Phase::RolledBack));
        // Reverting the spec to what runs clears the rollback.
        let (reverted, a) = tick(&p, &s, "old", secs(95), true, None);
        assert_eq!((a, reverted.phase), (Action::StableOnly, Phase::Stable));
        // A newer revision starts a fresh canary, counters reset.
        let (s, a) = tick(&p, &s, "fixed", secs(120), false, None);
        assert_eq!((a, s.phase, s.failed_checks, s.step), (Action::Canary { weight: 10 }, Phase::Progressing, 0, 0));
        assert_eq!(s.failed_revisions, vec!["bad".to_string()]);
    }

    #[test]
    fn a_leak_or_an_audit_hole_rolls_back_at_the_first_check_even_while_warming_up() {
        let p = Policy { warmup: secs(60), max_failed_checks: 3, ..policy() };
        for failure in [Failure::PhiGuardHits, Failure::AuditWriteFailures] {
            let mut m = PASS.measurement().to_owned();
            m.leaks = Leaks { canary_phi_hits: 2.0, canary_audit_failures: 2.0, ..Leaks::NONE };
            let verdict = Verdict::Fail(m, failure);
            let (s, _) = tick(&p, &RolloutState::stable("old"), "leaky", secs(0), true, None);
            let (s, a) = tick(&p, &s, "leaky", secs(5), true, Some(&verdict));
            let Action::RollBack { reason } = a else { panic!("{failure:?}: expected a rollback, got {a:?}") };
            let name = format!("{failure:?}");
            assert!(reason.contains(&name), "the reason names the cause: {reason}");
            assert_eq!((s.phase, s.failed_revisions.clone()), (Phase::RolledBack, vec!["leaky".to_string()]));
        }
    }

    #[test]
    fn latency_and_no_data_do_not_count_while_a_steps_pods_warm_up_but_errors_do() {
        let p = Policy { warmup: secs(60), ..policy() };
        let latency = Verdict::Fail(PASS.measurement().to_owned(), Failure::Latency);
        let (s, _) = tick(&p, &RolloutState::stable("old"), "new", secs(0), false, None);
        // The pods become ready at 10 s: the step starts there.
        let (s, _) = tick(&p, &s, "new", secs(10), true, Some(&latency));
        assert_eq!((s.step_started_at, s.failed_checks), (Some(secs(10)), 0), "a latency failure while warming");
        // (tick, verdict) → failed checks, no-data checks after it.
        let table: [(u64, &Verdict, u32, u32); 4] = [
            (40, &latency, 0, 0), // 30 s into the 60 s warm-up: ignored
            (45, &NO_DATA, 0, 0), // ignored too
            (50, &FAIL, 1, 0),    // errors count at once
            (70, &latency, 2, 0), // 60 s: warm, counts (and is the second failure)
        ];
        let mut s = s;
        for (at, verdict, failed, no_data) in table {
            let (next, action) = tick(&p, &s, "new", secs(at), true, Some(verdict));
            if failed >= p.max_failed_checks {
                assert!(matches!(action, Action::RollBack { .. }), "{at}: {action:?}");
                return;
            }
            assert_eq!((next.failed_checks, next.no_data_checks), (failed, no_data), "at {at}");
            s = next;
        }
        panic!("the table ends with a rollback");
    }

    #[test]
    fn no_data_is_bounded() {
        let p = policy();
        let (mut s, _) = tick(&p, &RolloutState::stable("old"), "quiet", secs(0), true, None);
        for i in 1..3 {
            let (next, a) = tick(&p, &s, "quiet", secs(30 * i), true, Some(&NO_DATA));
            assert_eq!(a, Action::Canary { weight: 10 });
            s = next;
        }
        let (_, a) = tick(&p, &s, "quiet", secs(90), true, Some(&NO_DATA));
        assert!(
            matches!(a, Action::RollBack { ref reason } if reason.contains("no analysis data for 3 checks")),
            "{a:?}"
        );
        // A pass in between resets the run.
        let (s, _) = tick(&p, &RolloutState::stable("old"), "quiet", secs(0), true, None);
        let (s, _) = tick(&p, &s, "quiet", secs(10), true, Some(&NO_DATA));
        let (s, _) = tick(&p, &s, "quiet", secs(20), true, Some(&NO_DATA));
        let (s, _) = tick(&p, &s, "quiet", secs(30), true, Some(&PASS));
        assert_eq!(s.no_data_checks, 0);
    }

    #[test]
    fn pause_holds_but_abort_and_failures_still_roll_back() {
        let mut p = policy();
        p.paused = true;
        let (s, _) = tick(&p, &RolloutState::stable("old"), "new", secs(0), true, None);
        let (s, a) = tick(&p, &s, "new", secs(500), true, Some(&PASS));
        assert_eq!((a, s.phase, s.step), (Action::Canary { weight: 10 }, Phase::Paused, 0));
        let (s2, _) = tick(&p, &s, "new", secs(510), true, Some(&FAIL));
        let (_, a) = tick(&p, &s2, "new", secs(520), true, Some(&FAIL));
        assert!(matches!(a, Action::RollBack { .. }), "failures roll back while paused: {a:?}");
        p.abort = true;
        let (s, a) = tick(&p, &s, "new", secs(530), true, None);
        assert!(matches!(a, Action::RollBack { ref reason } if reason.contains("abort")), "{a:?}");
        assert_eq!(s.phase, Phase::RolledBack);
    }

    #[test]
    fn promote_skips_the_remaining_steps_and_the_deadline_rolls_back() {
        let mut p = policy();
        let (s, _) = tick(&p, &RolloutState::stable("old"), "new", secs(0), true, None);
        p.promote = true;
        let (s2, a) = tick(&p, &s, "new", secs(10), false, None);
        assert_eq!((a, s2.stable_revision.as_str()), (Action::Promote, "new"));
        p.promote = false;
        p.progress_deadline = secs(100);
        let (_, a) = tick(&p, &s, "new", secs(101), true, Some(&PASS));
        assert!(matches!(a, Action::RollBack { ref reason } if reason.contains("deadline")), "{a:?}");
        // Pods that never become ready count against the deadline too.
        let (s, _) = tick(&p, &RolloutState::stable("old"), "stuck", secs(0), false, None);
        let (s, a) = tick(&p, &s, "stuck", secs(50), false, None);
        assert_eq!(a, Action::Canary { weight: 10 });
        let (_, a) = tick(&p, &s, "stuck", secs(101), false, None);
        assert!(matches!(a, Action::RollBack { .. }), "{a:?}");
    }

    #[test]
    fn a_step_without_a_pause_waits_for_promote_and_a_newer_revision_restarts() {
        let mut p = policy();
        p.steps = vec![(20, None)];
        let (s, _) = tick(&p, &RolloutState::stable("old"), "v2", secs(0), true, None);
        let (s, a) = tick(&p, &s, "v2", secs(9999), true, Some(&PASS));
        assert_eq!((a, s.phase), (Action::Canary { weight: 20 }, Phase::Paused));
        // A newer revision while v2 is in flight replaces it with a fresh canary.
        let (s, a) = tick(&p, &s, "v3", secs(10_000), true, None);
        assert_eq!(
            (a, s.canary_revision.as_deref(), s.started_at),
            (Action::Canary { weight: 20 }, Some("v3"), secs(10_000))
        );
        // Reverting the spec to the stable revision removes the canary.
        let (s, a) = tick(&p, &s, "old", secs(10_001), true, None);
        assert_eq!((a, s.phase, s.canary_revision), (Action::StableOnly, Phase::Stable, None));
    }

    #[test]
    fn replica_targets_never_cut_ready_capacity() {
        // (replicas, want, current, ready) → targets. Ready = (stable revision ready, canary revision ready).
        type Pair = (i32, i32);
        let table: [(i32, Pair, Pair, Pair, Pair, &str); 11] = [
            (4, (3, 1), (4, 0), (4, 0), (4, 1), "step 1 starts: canary surges, stable waits for it"),
            (4, (3, 1), (4, 1), (4, 0), (4, 1), "canary not ready yet: stable untouched"),
            (4, (3, 1), (4, 1), (4, 1), (3, 1), "canary ready: stable shrinks by what it replaces"),
            (4, (2, 2), (3, 1), (3, 1), (3, 2), "next step: the second canary pod first"),
            (4, (2, 2), (3, 2), (3, 2), (2, 2), "then stable"),
            (4, (0, 4), (2, 2), (2, 2), (2, 4), "100 %: stable keeps what the canary cannot serve yet"),
            (4, (0, 4), (2, 4), (2, 3), (1, 4), "one pod per ready canary pod"),
            (4, (0, 4), (1, 4), (1, 4), (0, 4), "stable empties only when the canary serves every replica"),
            (4, (4, 0), (0, 4), (0, 4), (4, 4), "rollback or promotion: stable first, canary kept"),
            (4, (4, 0), (4, 4), (3, 4), (4, 1), "canary shrinks as stable becomes ready"),
            (4, (4, 0), (4, 1), (4, 1), (4, 0), "then goes"),
        ];
        for (replicas, want, current, ready, expect, why) in table {
            assert_eq!(targets(replicas, want, current, ready), expect, "{why}");
        }
        // The invariant, exhaustively for small sizes: whatever the state, after the targets are applied and
        // before any new pod is ready, the pods kept ready still cover `replicas`.
        for replicas in 1..=5 {
            for weight in [0, 1, 25, 50, 99, 100] {
                let want = split(replicas, weight);
                for cs in 0..=replicas + 1 {
                    for cc in 0..=replicas + 1 {
                        for rs in 0..=cs {
                            for rc in 0..=cc {
                                if rs + rc < replicas {
                                    continue; // capacity was already short: not the rollout's doing
                                }
                                let (ts, tc) = targets(replicas, want, (cs, cc), (rs, rc));
                                assert!(
                                    rs.min(ts) + rc.min(tc) >= replicas,
                                    "{replicas} at {weight}%: current {cs}/{cc}, ready {rs}/{rc} → {ts}/{tc}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_pause_longer_than_the_deadline_is_not_a_lack_of_progress() {
        let mut p = policy();
        p.steps = vec![(25, Some(secs(3600))), (50, Some(secs(60)))];
        p.progress_deadline = secs(600);
        let (s, _) = tick(&p, &RolloutState::stable("old"), "new", secs(0), false, None);
        let (s, _) = tick(&p, &s, "new", secs(10), true, None);
        let mut s = s;
        // An hour of pause, checked every five minutes: never rolled back.
        for t in (300..3600).step_by(300) {
            let (next, a) = tick(&p, &s, "new", secs(t), true, Some(&PASS));
            assert_eq!(a, Action::Canary { weight: 25 }, "at {t}s");
            s = next;
        }
        let (s, a) = tick(&p, &s, "new", secs(3610), true, Some(&PASS));
        assert_eq!((a, s.step), (Action::Canary { weight: 50 }, 1), "the pause is over: next step");
        // After its pause, a step that cannot pass a check is no longer held: the deadline applies again.
        let (s, _) = tick(&p, &s, "new", secs(3620), true, None);
        let (s, a) = tick(&p, &s, "new", secs(3700), true, Some(&INCONCLUSIVE));
        assert_eq!(a, Action::Canary { weight: 50 });
        let (_, a) = tick(&p, &s, "new", secs(3620 + 601), true, Some(&INCONCLUSIVE));
        assert!(matches!(a, Action::RollBack { ref reason } if reason.contains("deadline")), "{a:?}");
    }

    const INCONCLUSIVE: Verdict = Verdict::Inconclusive(Measurement {
        canary_error_rate: 50.0,
        canary_error_rate_bound: 40.0,
        stable_error_rate: 50.0,
        canary_latency: None,
        stable_latency: None,
        canary_submit_latency: None,
        stable_submit_latency: None,
        canary_samples: 100.0,
        stable_samples: 900.0,
        leaks: Leaks::NONE,
    });

    #[test]
    fn an_outage_shared_with_stable_holds_instead_of_failing() {
        let p = policy();
        let (mut s, _) = tick(&p, &RolloutState::stable("old"), "new", secs(0), true, None);
        for t in 1..=10 {
            let (next, a) = tick(&p, &s, "new", secs(t * 30), true, Some(&INCONCLUSIVE));
            assert_eq!(
                (a, next.failed_checks, next.no_data_checks, next.step),
                (Action::Canary { weight: 10 }, 0, 0, 0)
            );
            s = next;
        }
    }

    #[test]
    fn abort_and_promote_apply_to_the_revision_they_were_set_for() {
        let mut p = policy();
        let (s, _) = tick(&p, &RolloutState::stable("old"), "bad", secs(0), true, None);
        p.abort = true;
        let (s, a) = tick(&p, &s, "bad", secs(10), true, None);
        assert!(matches!(a, Action::RollBack { .. }), "{a:?}");
        assert_eq!(s.abort_for.as_deref(), Some("bad"));
        // The fix is pushed while `abort: true` is still in Git: it gets a canary, not an instant rollback.
        let (s, a) = tick(&p, &s, "fix", secs(20), false, None);
        assert_eq!((a, s.phase), (Action::Canary { weight: 10 }, Phase::Progressing));
        let (s, a) = tick(&p, &s, "fix", secs(30), true, Some(&PASS));
        assert_eq!(a, Action::Canary { weight: 10 }, "still not aborted on the next tick");
        assert_eq!(s.failed_revisions, vec!["bad".to_string()]);
        // Resetting and setting it again aborts what is in flight now.
        p.abort = false;
        let (s, _) = tick(&p, &s, "fix", secs(40), true, None);
        p.abort = true;
        let (s, a) = tick(&p, &s, "fix", secs(50), true, None);
        assert!(matches!(a, Action::RollBack { .. }), "{a:?}");
        assert_eq!(s.failed_revisions, vec!["bad".to_string(), "fix".to_string()]);

        // A commit that sets abort together with the change aborts that change.
        let p = Policy { abort: true, ..policy() };
        let (_, a) = tick(&p, &RolloutState::stable("old"), "doomed", secs(0), false, None);
        assert!(matches!(a, Action::RollBack { .. }), "{a:?}");

        // promote: true left in Git promotes the revision it was set for, not the next one.
        let mut p = policy();
        let (s, _) = tick(&p, &RolloutState::stable("old"), "v2", secs(0), true, None);
        p.promote = true;
        let (s, a) = tick(&p, &s, "v2", secs(10), true, None);
        assert_eq!((a, s.stable_revision.as_str()), (Action::Promote, "v2"));
        let (s, a) = tick(&p, &s, "v3", secs(20), true, None);
        assert_eq!((a, s.canary_revision.as_deref()), (Action::Canary { weight: 10 }, Some("v3")));
    }

    #[test]
    fn paused_holds_a_new_revision_at_its_first_step() {
        let p = Policy { paused: true, ..policy() };
        let (s, a) = tick(&p, &RolloutState::stable("old"), "new", secs(0), false, None);
        assert_eq!((a, s.phase), (Action::Canary { weight: 10 }, Phase::Paused));
        let (s, a) = tick(&p, &s, "new", secs(99_999), true, Some(&PASS));
        assert_eq!((a, s.phase, s.step), (Action::Canary { weight: 10 }, Phase::Paused, 0));
    }

    #[test]
    fn a_changed_retry_token_retries_a_rolled_back_revision_once() {
        let mut p = Policy { max_failed_checks: 1, ..policy() };
        let (s, _) = tick(&p, &RolloutState::stable("old"), "flaky", secs(0), true, None);
        let (s, a) = tick(&p, &s, "flaky", secs(30), true, Some(&FAIL));
        assert!(matches!(a, Action::RollBack { .. }));
        assert_eq!(tick(&p, &s, "flaky", secs(60), true, None).1, Action::StableOnly, "not retried by itself");
        p.retry = Some("after-the-outage".into());
        let (s, a) = tick(&p, &s, "flaky", secs(90), false, None);
        assert_eq!((a, s.phase, s.failed_revisions.len()), (Action::Canary { weight: 10 }, Phase::Progressing, 0));
        // It fails again: the same token does not retry it a second time.
        let (s, _) = tick(&p, &s, "flaky", secs(120), true, Some(&FAIL));
        let (s, a) = tick(&p, &s, "flaky", secs(150), true, None);
        assert_eq!((a, s.phase), (Action::StableOnly, Phase::RolledBack));
    }

    #[test]
    fn an_invalid_spec_holds_the_canary_under_supervision() {
        let p = policy();
        let invalid = |s: &RolloutState, at: u64, verdict: Option<&Verdict>| {
            step(&p, s, &Tick { desired: None, now: secs(at), canary_ready: true, verdict, urgent: false })
        };
        let (s, _) = tick(&p, &RolloutState::stable("old"), "new", secs(0), true, None);
        let (s, _) = tick(&p, &s, "new", secs(5), true, None);
        let (held, a) = invalid(&s, 30, Some(&PASS));
        assert_eq!((a, held.canary_revision.as_deref(), held.step), (Action::Hold, Some("new"), 0));
        // Valid again as the same revision (the Secret was recreated): the canary goes on where it was.
        let (s2, a) = tick(&p, &held, "new", secs(70), true, Some(&PASS));
        assert_eq!((a, s2.step), (Action::Canary { weight: 50 }, 1));
        // Failed checks still roll it back while invalid, and so does the deadline.
        let (h, _) = invalid(&held, 40, Some(&FAIL));
        let (_, a) = invalid(&h, 50, Some(&FAIL));
        assert!(matches!(a, Action::RollBack { .. }), "{a:?}");
        let (_, a) = invalid(&held, 3606, None);
        assert!(matches!(a, Action::RollBack { ref reason } if reason.contains("invalid")), "{a:?}");
        // Nothing in flight: nothing to hold.
        let (_, a) = invalid(&RolloutState::stable("old"), 10, None);
        assert_eq!(a, Action::StableOnly);
    }

    #[test]
    fn an_urgent_flag_change_is_promoted_at_once() {
        let p = policy();
        let t = Tick { desired: Some("flags"), now: secs(0), canary_ready: false, verdict: None, urgent: true };
        let (s, a) = step(&p, &RolloutState::stable("old"), &t);
        assert_eq!((a, s.stable_revision.as_str()), (Action::Promote, "flags"));
    }

    #[test]
    fn unreachable_metrics_are_bounded_like_no_data_but_say_so() {
        let p = policy();
        let unavailable = Verdict::Unavailable(*NO_DATA.measurement());
        let (mut s, _) = tick(&p, &RolloutState::stable("old"), "new", secs(0), true, None);
        for i in 1..3 {
            let (next, a) = tick(&p, &s, "new", secs(30 * i), true, Some(&unavailable));
            assert_eq!(a, Action::Canary { weight: 10 });
            s = next;
        }
        let (_, a) = tick(&p, &s, "new", secs(90), true, Some(&unavailable));
        assert!(matches!(a, Action::RollBack { ref reason } if reason.contains("AnalysisUnavailable")), "{a:?}");
    }
}
