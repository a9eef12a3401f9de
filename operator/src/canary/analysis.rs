//! Judging a canary window against the stable window of the same period.
//!
//! - Error rate = (5xx answers + failed provider submissions) ÷ (requests + submissions), in percent. The
//!   canary fails when its rate is above the ceiling **with 95 % confidence**: when the lower bound of the
//!   Wilson score interval (z = 1.96) is above it. Fax traffic is small: on real pods a healthy canary saw one
//!   failed submission among 55 events (1.8 %), and because every check looks back over the whole window,
//!   that single event failed every check until it left the window and rolled a good revision back. With the
//!   bound, 1 error in 55 events passes (bound 0.3 %), 3 in 100 fail at the default 1 % (2 pass), and a
//!   canary whose every submission fails is caught at `min_samples` (4 in 8: bound 21 %). A ceiling of 0
//!   fails on any error.
//! - Latency at the chosen percentile, estimated from the request histogram like Prometheus'
//!   `histogram_quantile` (linear within a bucket). The canary fails when its latency is **more than** the
//!   allowed increase over stable's (exactly +20 % passes at the default 20 %): relative, because a fax API's
//!   absolute latency depends on the provider and the hour, and both sides see the same ones. And only when
//!   it is also **more than** `min_latency_increase` slower in absolute terms: on real pods a healthy canary's
//!   provider submissions measured 37 ms at p95 against stable's 4.7 ms (its first TLS handshakes, and
//!   buckets a few milliseconds wide), eight times "slower", and were rolled back.
//! - Fewer than `min_samples` events on either side is [`Verdict::NoData`]: neither a pass nor a failure.
//!   The step machine holds on it and rolls back after a bounded number in a row.
//! - At a 100 % step no stable pod runs: there is no baseline, so only the error-rate ceiling judges (latency
//!   is relative to stable and cannot be), and only the canary needs `min_samples`.
//! - PHI-guard catches and audit-trail write failures: a canary whose pods' log lines needed the PHI guard
//!   (`faxbot_phi_guard_hits_total{sink="log"}`: a phone-number-like value masked on its way into a log
//!   line) or whose audit events could not be written (`faxbot_audit_write_failures_total`) more often per
//!   event than stable's fails at once, before any sample minimum: one leak is one too many, and an audit
//!   trail with holes is a compliance failure however little traffic there was. Stable counting as many
//!   per event is not the canary's doing (a provider that echoes numbers in its errors, a full shared
//!   disk) and judges nothing. Masking of the callers' own input in error answers (`sink="text"`) is the
//!   guard's routine work and is not counted.
//! - A canary whose error rate is above the ceiling while stable's is too, and not significantly worse than
//!   stable's, is [`Verdict::Inconclusive`]: a provider or database outage fails both sides alike, and
//!   blaming the canary for it would blacklist a good revision. The step holds; the progress deadline still
//!   bounds the wait.

use super::sample::Counters;

/// The thresholds of one analysis (from `spec.rollout.analysis`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Highest tolerated canary error rate, percent.
    pub max_error_rate_percent: f64,
    /// Highest tolerated latency increase over stable, percent.
    pub max_latency_increase_percent: f64,
    /// Smallest latency increase over stable, seconds, that can fail a check.
    pub min_latency_increase: f64,
    /// The percentile compared, as a fraction (0.95 for p95).
    pub quantile: f64,
    /// Events a side needs in the window.
    pub min_samples: f64,
}

/// What a check measured (written to status and metrics whatever the verdict).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Measurement {
    /// Canary error rate, percent.
    pub canary_error_rate: f64,
    /// Lower bound of the canary error rate's 95 % Wilson interval, percent: what is compared with the
    /// ceiling.
    pub canary_error_rate_bound: f64,
    /// Stable error rate, percent.
    pub stable_error_rate: f64,
    /// Canary latency at the percentile, seconds (`None` without requests).
    pub canary_latency: Option<f64>,
    /// Stable latency at the percentile, seconds.
    pub stable_latency: Option<f64>,
    /// Canary provider-submission latency at the percentile, seconds.
    pub canary_submit_latency: Option<f64>,
    /// Stable provider-submission latency at the percentile, seconds.
    pub stable_submit_latency: Option<f64>,
    /// Canary events (requests + submissions).
    pub canary_samples: f64,
    /// Stable events.
    pub stable_samples: f64,
    /// PHI-guard catches and audit write failures on both sides.
    pub leaks: Leaks,
}

/// What the PHI guard caught in log lines and how many audit events were lost, per side, in the window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Leaks {
    /// Canary: numbers the guard masked in log lines.
    pub canary_phi_hits: f64,
    /// Stable: the same.
    pub stable_phi_hits: f64,
    /// Canary: audit events not written.
    pub canary_audit_failures: f64,
    /// Stable: the same.
    pub stable_audit_failures: f64,
}

impl Leaks {
    /// Nothing caught, nothing lost.
    pub const NONE: Leaks =
        Leaks { canary_phi_hits: 0.0, stable_phi_hits: 0.0, canary_audit_failures: 0.0, stable_audit_failures: 0.0 };
}

impl Measurement {
    /// Canary latency ÷ stable latency (HTTP), when both exist and stable's is positive.
    pub fn latency_ratio(&self) -> Option<f64> {
        ratio(self.canary_latency, self.stable_latency)
    }

    /// Canary ÷ stable provider-submission latency.
    pub fn submit_latency_ratio(&self) -> Option<f64> {
        ratio(self.canary_submit_latency, self.stable_submit_latency)
    }

    /// The worse of the two ratios (what status and metrics show as "latency ratio").
    pub fn worst_latency_ratio(&self) -> Option<f64> {
        match (self.latency_ratio(), self.submit_latency_ratio()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

fn ratio(c: Option<f64>, s: Option<f64>) -> Option<f64> {
    match (c, s) {
        (Some(c), Some(s)) if s > 0.0 => Some(c / s),
        _ => None,
    }
}

/// Why a check failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure {
    /// The canary's error rate is above the ceiling.
    ErrorRate,
    /// The canary's HTTP latency grew more than allowed.
    Latency,
    /// The canary's provider submissions got slower than allowed.
    SubmitLatency,
    /// The canary's log lines needed the PHI guard (more often per event than stable's).
    PhiGuardHits,
    /// The canary could not write its audit trail (more often per event than stable).
    AuditWriteFailures,
}

impl Failure {
    /// Whether one such check rolls the canary back at once, whatever the failure budget: a leak or a
    /// hole in the audit trail is not retried.
    pub fn is_compliance(self) -> bool {
        matches!(self, Failure::PhiGuardHits | Failure::AuditWriteFailures)
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Within both thresholds.
    Pass(Measurement),
    /// A threshold was crossed.
    Fail(Measurement, Failure),
    /// Not enough events on one side to judge.
    NoData(Measurement),
    /// Both sides fail the error ceiling alike: a shared dependency is down, the canary is not to blame.
    Inconclusive(Measurement),
    /// The operator could not read the metrics of one side's pods at all (a NetworkPolicy, strict mTLS):
    /// not "no traffic". Counted like no data, but reported as `AnalysisUnavailable`.
    Unavailable(Measurement),
}

impl Verdict {
    /// The numbers behind the verdict.
    pub fn measurement(&self) -> &Measurement {
        match self {
            Verdict::Pass(m)
            | Verdict::Fail(m, _)
            | Verdict::NoData(m)
            | Verdict::Inconclusive(m)
            | Verdict::Unavailable(m) => m,
        }
    }

    /// Status and log label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Pass(_) => "Pass",
            Verdict::Fail(..) => "Fail",
            Verdict::NoData(_) => "NoData",
            Verdict::Inconclusive(_) => "Inconclusive",
            Verdict::Unavailable(_) => "AnalysisUnavailable",
        }
    }
}

/// (error rate, Wilson lower bound, Wilson upper bound, events); rates in percent.
fn error_rate(c: &Counters) -> (f64, f64, f64, f64) {
    let total = c.requests + c.submissions;
    let errors = (c.server_errors + c.failed_submissions).min(total);
    if total <= 0.0 {
        return (0.0, 0.0, 100.0, total);
    }
    let (lower, upper) = wilson_bounds(errors, total);
    (errors * 100.0 / total, lower * 100.0, upper * 100.0, total)
}

/// z for a two-sided 95 % interval.
const Z: f64 = 1.96;

/// The Wilson score interval for `successes` of `n` (`n > 0`), as fractions. The lower bound is positive
/// whenever `successes` is, so a ceiling of 0 still fails on any error.
fn wilson_bounds(successes: f64, n: f64) -> (f64, f64) {
    let p = successes / n;
    let z2 = Z * Z;
    let centre = p + z2 / (2.0 * n);
    let margin = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    (((centre - margin) / (1.0 + z2 / n)).max(0.0), ((centre + margin) / (1.0 + z2 / n)).min(1.0))
}

#[cfg(test)]
fn wilson_lower_bound(successes: f64, n: f64) -> f64 {
    wilson_bounds(successes, n).0
}

/// The `q` quantile of a cumulative histogram, interpolated linearly within the bucket it falls in (the
/// lower edge of the first bucket is 0). Falling into `+Inf` yields the highest finite bound.
pub fn quantile(buckets: &std::collections::BTreeMap<super::sample::Bound, f64>, q: f64) -> Option<f64> {
    let total = buckets.iter().next_back().map(|(_, n)| *n).unwrap_or(0.0);
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for (bound, &count) in buckets {
        if count >= rank {
            if bound.0.is_infinite() {
                return Some(lower_bound);
            }
            let in_bucket = count - lower_count;
            if in_bucket <= 0.0 {
                return Some(bound.0);
            }
            return Some(lower_bound + (bound.0 - lower_bound) * (rank - lower_count) / in_bucket);
        }
        lower_bound = bound.0;
        lower_count = count;
    }
    Some(lower_bound)
}

/// Tolerance for comparing rates and ratios computed in floating point: a value exactly at a threshold
/// must pass even when the arithmetic lands a hair above it.
const EPSILON: f64 = 1e-9;

/// Judges the canary's window against stable's; `stable` is `None` when no stable pod runs (a 100 % step).
pub fn judge(canary: &Counters, stable: Option<&Counters>, t: &Thresholds) -> Verdict {
    let empty = Counters::default();
    let baseline = stable.is_some();
    let stable = stable.unwrap_or(&empty);
    let (canary_error_rate, canary_error_rate_bound, _, canary_samples) = error_rate(canary);
    let (stable_error_rate, stable_error_rate_bound, stable_upper, stable_samples) = error_rate(stable);
    let m = Measurement {
        canary_error_rate,
        canary_error_rate_bound,
        stable_error_rate,
        canary_latency: quantile(&canary.buckets, t.quantile),
        stable_latency: quantile(&stable.buckets, t.quantile),
        canary_submit_latency: quantile(&canary.submit_buckets, t.quantile),
        stable_submit_latency: quantile(&stable.submit_buckets, t.quantile),
        canary_samples,
        stable_samples,
        leaks: Leaks {
            canary_phi_hits: canary.phi_log_hits,
            stable_phi_hits: stable.phi_log_hits,
            canary_audit_failures: canary.audit_write_failures,
            stable_audit_failures: stable.audit_write_failures,
        },
    };
    // Per event, with at least one event on each side, so a canary that leaked before it served anything
    // still has a rate.
    let worse = |c: f64, s: f64| c > 0.0 && c / canary_samples.max(1.0) > s / stable_samples.max(1.0) + EPSILON;
    if worse(canary.phi_log_hits, stable.phi_log_hits) {
        return Verdict::Fail(m, Failure::PhiGuardHits);
    }
    if worse(canary.audit_write_failures, stable.audit_write_failures) {
        return Verdict::Fail(m, Failure::AuditWriteFailures);
    }
    if canary_samples < t.min_samples || (baseline && stable_samples < t.min_samples) {
        return Verdict::NoData(m);
    }
    let above = |rate: f64, bound: f64| {
        bound > t.max_error_rate_percent + EPSILON || (t.max_error_rate_percent <= 0.0 && rate > 0.0)
    };
    if above(canary_error_rate, canary_error_rate_bound) {
        if baseline && above(stable_error_rate, stable_error_rate_bound) && canary_error_rate_bound <= stable_upper {
            return Verdict::Inconclusive(m);
        }
        return Verdict::Fail(m, Failure::ErrorRate);
    }
    if !baseline {
        return Verdict::Pass(m);
    }
    let too_slow = |c: Option<f64>, s: Option<f64>| match (c, s) {
        (Some(c), Some(s)) => {
            c > s * (1.0 + t.max_latency_increase_percent / 100.0) * (1.0 + EPSILON) + EPSILON
                && c - s > t.min_latency_increase + EPSILON
        }
        _ => false,
    };
    if too_slow(m.canary_latency, m.stable_latency) {
        return Verdict::Fail(m, Failure::Latency);
    }
    if too_slow(m.canary_submit_latency, m.stable_submit_latency) {
        return Verdict::Fail(m, Failure::SubmitLatency);
    }
    Verdict::Pass(m)
}

#[cfg(test)]
mod tests {
    use super::super::sample::Bound;
    use super::*;

    const T: Thresholds = Thresholds {
        max_error_rate_percent: 1.0,
        max_latency_increase_percent: 20.0,
        min_latency_increase: 0.0,
        quantile: 0.95,
        min_samples: 50.0,
    };

    /// A window of `n` requests, `errors` of them 5xx, all in the bucket `(0, latency]`: any percentile is
    /// then proportional to `latency`, so ratios between two windows are exactly the ratios of `latency`.
    fn window(n: f64, errors: f64, latency: f64) -> Counters {
        let mut c = Counters { requests: n, server_errors: errors, ..Default::default() };
        c.buckets.insert(Bound(0.0), 0.0);
        c.buckets.insert(Bound(latency), n);
        c.buckets.insert(Bound(f64::INFINITY), n);
        c
    }

    #[test]
    fn leaks_and_audit_holes_fail_at_once_unless_stable_has_as_many() {
        let with = |n: f64, phi: f64, audit: f64| Counters {
            phi_log_hits: phi,
            audit_write_failures: audit,
            ..window(n, 0.0, 0.1)
        };
        // (canary events, canary hits, stable events, stable hits, expected failure) for either counter.
        let table: [(f64, f64, f64, f64, bool); 7] = [
            (1.0, 1.0, 1000.0, 0.0, true),       // one leak, far below min_samples: fails
            (0.0, 3.0, 1000.0, 0.0, true),       // leaked before serving anything
            (100.0, 0.0, 1000.0, 0.0, false),    // clean
            (100.0, 0.0, 1000.0, 50.0, false),   // only stable leaks: not the canary's doing
            (100.0, 10.0, 1000.0, 100.0, false), // the same rate on both sides: a shared cause
            (100.0, 20.0, 1000.0, 100.0, true),  // twice stable's rate
            (50.0, 1.0, 0.0, 0.0, true),         // a 100 % step: no stable, any leak fails
        ];
        for (cn, ch, sn, sh, fails) in table {
            let v = judge(&with(cn, ch, 0.0), Some(&with(sn, sh, 0.0)), &T);
            assert_eq!(matches!(v, Verdict::Fail(_, Failure::PhiGuardHits)), fails, "phi {cn} {ch} {sn} {sh}: {v:?}");
            let v = judge(&with(cn, 0.0, ch), Some(&with(sn, 0.0, sh)), &T);
            assert_eq!(
                matches!(v, Verdict::Fail(_, Failure::AuditWriteFailures)),
                fails,
                "audit {cn} {ch} {sn} {sh}: {v:?}"
            );
        }
        let v = judge(&with(10.0, 1.0, 0.0), None, &T);
        assert!(matches!(v, Verdict::Fail(_, Failure::PhiGuardHits)), "without a baseline too: {v:?}");
        assert!(Failure::PhiGuardHits.is_compliance() && Failure::AuditWriteFailures.is_compliance());
        assert!(!Failure::ErrorRate.is_compliance() && !Failure::Latency.is_compliance());
    }

    #[test]
    fn the_error_rate_fails_only_when_it_is_above_the_ceiling_with_confidence() {
        // (events, errors, ceiling %) → fails? Wilson lower bounds in the comments.
        let table: [(f64, f64, f64, bool); 11] = [
            (55.0, 1.0, 1.0, false),     // the healthy canary seen on real pods: 1.8 %, bound 0.3 %
            (55.0, 2.0, 1.0, true),      // 3.6 %, bound 1.003 %
            (8.0, 1.0, 1.0, true),       // 12.5 % of a tiny window: bound 2.2 %
            (100.0, 2.0, 1.0, false),    // bound 0.55 %
            (100.0, 3.0, 1.0, true),     // bound 1.02 %
            (8.0, 4.0, 1.0, true),       // every submission refused, at the smallest window: bound 21 %
            (8.0, 0.0, 1.0, false),      // no error
            (1000.0, 10.0, 1.0, false),  // exactly at the ceiling
            (10000.0, 150.0, 1.0, true), // 1.5 % over many events: bound 1.28 %
            (1000.0, 1.0, 0.0, true),    // a ceiling of 0 tolerates nothing
            (1000.0, 0.0, 0.0, false),
        ];
        let stable = window(1000.0, 0.0, 0.1);
        for (n, errors, ceiling, fails) in table {
            let t = Thresholds { max_error_rate_percent: ceiling, min_samples: 8.0, ..T };
            let v = judge(&window(n, errors, 0.1), Some(&stable), &t);
            assert_eq!(
                matches!(v, Verdict::Fail(_, Failure::ErrorRate)),
                fails,
                "{errors} of {n}, ceiling {ceiling}: {v:?}"
            );
            assert!((v.measurement().canary_error_rate - errors * 100.0 / n).abs() < 1e-9);
        }
    }

    #[test]
    fn wilson_bounds_match_the_published_formula() {
        // Reference values (Newcombe 1998, table I: 81 of 263 → 0.2553; 15 of 148 → 0.0624).
        assert!((wilson_lower_bound(81.0, 263.0) - 0.2553).abs() < 5e-4);
        assert!((wilson_lower_bound(15.0, 148.0) - 0.0624).abs() < 5e-4);
        assert_eq!(wilson_lower_bound(0.0, 10.0), 0.0);
        assert!(wilson_lower_bound(1.0, 1e6) > 0.0);
    }

    #[test]
    fn an_outage_both_sides_share_is_inconclusive_not_the_canarys_fault() {
        // (canary events, errors; stable events, errors) → verdict. Newcombe 1998 (table I): 81 of 263 → 0.2553 to 0.3662.
        assert!((wilson_bounds(81.0, 263.0).1 - 0.3662).abs() < 5e-4);
        let table: [(f64, f64, f64, f64, &str); 5] = [
            (100.0, 50.0, 900.0, 450.0, "Inconclusive"), // provider down for everyone: 50 % on both sides
            (100.0, 60.0, 900.0, 450.0, "Inconclusive"), // 60 % (bound 50.2 %) is within stable's noise (53.3 %)
            (100.0, 90.0, 900.0, 100.0, "Fail"),         // stable fails too, but the canary far worse: its fault
            (100.0, 50.0, 900.0, 0.0, "Fail"),           // only the canary fails
            (100.0, 50.0, 10.0, 10.0, "NoData"),         // stable has too few events to say anything
        ];
        for (cn, ce, sn, se, want) in table {
            let v = judge(&window(cn, ce, 0.1), Some(&window(sn, se, 0.1)), &T);
            assert_eq!(v.as_str(), want, "canary {ce}/{cn}, stable {se}/{sn}: {v:?}");
        }
    }

    #[test]
    fn without_stable_pods_only_the_error_ceiling_judges() {
        // A 100 % step: no stable pod, so no baseline; a slow canary cannot be compared with anything.
        let slow = window(100.0, 0.0, 9.0);
        assert_eq!(judge(&slow, None, &T).as_str(), "Pass");
        assert_eq!(judge(&window(100.0, 10.0, 0.1), None, &T).as_str(), "Fail");
        assert_eq!(judge(&window(10.0, 0.0, 0.1), None, &T).as_str(), "NoData", "the canary still needs samples");
    }

    #[test]
    fn failed_submissions_count_as_errors() {
        let mut canary = window(60.0, 0.0, 0.1);
        canary.submissions = 40.0;
        canary.failed_submissions = 20.0; // 20 of 100 events
        let v = judge(&canary, Some(&window(1000.0, 0.0, 0.1)), &T);
        assert!(matches!(v, Verdict::Fail(_, Failure::ErrorRate)), "{v:?}");
        assert!((v.measurement().canary_error_rate - 20.0).abs() < 1e-9);
    }

    #[test]
    fn latency_exactly_twenty_percent_worse_passes_and_more_fails() {
        let stable = window(1000.0, 0.0, 0.100);
        assert!(matches!(judge(&window(1000.0, 0.0, 0.120), Some(&stable), &T), Verdict::Pass(_)));
        let v = judge(&window(1000.0, 0.0, 0.1201), Some(&stable), &T);
        assert!(matches!(v, Verdict::Fail(_, Failure::Latency)), "{v:?}");
        assert!((v.measurement().latency_ratio().unwrap() - 1.201).abs() < 1e-6);
        // Faster than stable is always fine.
        assert!(matches!(judge(&window(1000.0, 0.0, 0.05), Some(&stable), &T), Verdict::Pass(_)));
    }

    #[test]
    fn latency_increases_below_the_absolute_floor_never_fail() {
        // (canary bucket bound s, stable bucket bound s, floor s) → fails? All requests sit in one bucket
        // (0, bound], so p95 is 0.95 × bound and the difference at p95 is 0.95 × the difference of bounds.
        let table: [(f64, f64, f64, bool); 7] = [
            (0.037, 0.0047, 0.050, false), // a fresh canary's TLS handshakes: 8x, but 31 ms at p95
            (0.037, 0.0047, 0.0, true),    // the same without a floor
            (0.150, 0.100, 0.0475, false), // +50 %, 47.5 ms at p95: exactly the floor passes
            (0.1501, 0.100, 0.0475, true), // a hair above both
            (1.600, 0.100, 0.050, true),   // a provider 1.5 s slower
            (0.110, 0.100, 0.0, false),    // +10 %: under the percentage, whatever the floor
            (0.121, 0.100, 0.010, true),   // +21 % and 20 ms at p95
        ];
        for (canary, stable, floor, fails) in table {
            let t = Thresholds { min_latency_increase: floor, ..T };
            let v = judge(&window(1000.0, 0.0, canary), Some(&window(1000.0, 0.0, stable)), &t);
            assert_eq!(matches!(v, Verdict::Fail(_, Failure::Latency)), fails, "{canary} vs {stable}, floor {floor}");
        }
    }

    #[test]
    fn slower_provider_submissions_fail_on_their_own_histogram() {
        let with_submits = |latency: f64| {
            let mut c = window(1000.0, 0.0, 0.1);
            c.submissions = 100.0;
            c.submit_buckets.insert(Bound(0.0), 0.0);
            c.submit_buckets.insert(Bound(latency), 100.0);
            c.submit_buckets.insert(Bound(f64::INFINITY), 100.0);
            c
        };
        let stable = with_submits(0.5);
        assert!(matches!(judge(&with_submits(0.6), Some(&stable), &T), Verdict::Pass(_)), "exactly +20 %");
        let v = judge(&with_submits(1.5), Some(&stable), &T);
        assert!(matches!(v, Verdict::Fail(_, Failure::SubmitLatency)), "{v:?}");
        assert_eq!(v.measurement().canary_error_rate, 0.0, "slow, not failing");
        assert!((v.measurement().worst_latency_ratio().unwrap() - 3.0).abs() < 1e-9);
    }

    #[test]
    fn too_few_samples_on_either_side_is_no_data() {
        let ok = window(1000.0, 0.0, 0.1);
        assert!(
            matches!(judge(&window(49.0, 49.0, 9.0), Some(&ok), &T), Verdict::NoData(_)),
            "even a terrible tiny window"
        );
        assert!(matches!(judge(&ok, Some(&window(10.0, 0.0, 0.1)), &T), Verdict::NoData(_)));
        assert!(matches!(judge(&window(50.0, 0.0, 0.1), Some(&window(50.0, 0.0, 0.1)), &T), Verdict::Pass(_)));
        assert!(matches!(judge(&Counters::default(), Some(&Counters::default()), &T), Verdict::NoData(_)));
    }

    #[test]
    fn quantiles_interpolate_like_histogram_quantile() {
        let mut c = Counters::default();
        for (le, n) in [(0.1, 50.0), (0.2, 100.0), (f64::INFINITY, 100.0)] {
            c.buckets.insert(Bound(le), n);
        }
        assert!((quantile(&c.buckets, 0.5).unwrap() - 0.1).abs() < 1e-12);
        assert!((quantile(&c.buckets, 0.75).unwrap() - 0.15).abs() < 1e-12);
        assert!((quantile(&c.buckets, 0.25).unwrap() - 0.05).abs() < 1e-12);
        // Everything beyond the last finite bound: that bound.
        let mut slow = Counters::default();
        slow.buckets.insert(Bound(10.0), 0.0);
        slow.buckets.insert(Bound(f64::INFINITY), 5.0);
        assert_eq!(quantile(&slow.buckets, 0.95), Some(10.0));
        assert_eq!(quantile(&Counters::default().buckets, 0.95), None);
    }
}
