//! Canary rollouts of config revisions, as pure logic the reconciler drives.
//!
//! - [`sample`]: reading the API server's `/metrics` into per-revision counters, and the increase between
//!   two readings of the same pod (counter resets handled like Prometheus' `increase`).
//! - [`analysis`]: judging a canary window against the stable one (error rate against a fixed ceiling,
//!   latency at a percentile relative to stable), with "not enough samples" as its own outcome.
//! - [`prometheus`]: the same counters from Prometheus (`analysis.prometheus`): query templates rendered,
//!   answers read.
//! - [`plan`]: the replica split that approximates a weight without a service mesh, and the step machine
//!   (advance, hold, promote, roll back) with its bounded waits.
//!
//! Nothing here talks to the cluster or the network, so every threshold and transition is unit-tested over
//! synthetic series.

pub mod analysis;
pub mod plan;
pub mod prometheus;
pub mod sample;

use std::time::Duration;

use faxbot_crds::{LatencyPercentile, RolloutSpec};

/// A rollout spec with its durations parsed and thresholds typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Steps and gates.
    pub policy: plan::Policy,
    /// Analysis thresholds.
    pub thresholds: analysis::Thresholds,
    /// Time between checks.
    pub interval: Duration,
    /// How far back each check looks.
    pub window: Duration,
    /// Prometheus instead of pod scrapes, when configured.
    pub prometheus: Option<prometheus::Source>,
}

impl Rollout {
    /// `None` when a duration does not parse or is zero (the CRD's pattern already rejects most of that).
    pub fn from_spec(spec: &RolloutSpec) -> Option<Rollout> {
        let a = &spec.analysis;
        let positive = |text: &str| parse_duration(text).filter(|d| !d.is_zero());
        let steps = spec
            .steps
            .iter()
            .map(|s| {
                Some((
                    s.weight,
                    match &s.pause {
                        Some(p) => Some(parse_duration(p)?),
                        None => None,
                    },
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Rollout {
            policy: plan::Policy {
                steps,
                max_failed_checks: u32::try_from(a.max_failed_checks.max(1)).unwrap_or(1),
                max_no_data_checks: u32::try_from(a.max_no_data_checks.max(1)).unwrap_or(1),
                progress_deadline: positive(&a.progress_deadline)?,
                warmup: positive(&a.window)?,
                paused: spec.paused,
                promote: spec.promote,
                abort: spec.abort,
                retry: spec.retry.clone(),
            },
            thresholds: analysis::Thresholds {
                max_error_rate_percent: a.max_error_rate_percent,
                max_latency_increase_percent: f64::from(a.max_latency_increase_percent),
                min_latency_increase: f64::from(a.min_latency_increase_ms.max(0)) / 1000.0,
                quantile: match a.latency_percentile {
                    LatencyPercentile::P50 => 0.50,
                    LatencyPercentile::P90 => 0.90,
                    LatencyPercentile::P95 => 0.95,
                    LatencyPercentile::P99 => 0.99,
                },
                min_samples: f64::from(a.min_samples.max(1)),
            },
            interval: positive(&a.interval)?,
            window: positive(&a.window)?,
            prometheus: a.prometheus.as_ref().map(prometheus::Source::from_spec),
        })
    }
}

/// Parses the CRD's duration strings (`500ms`, `30s`, `5m`, `1h30m`): one or more number-unit pairs.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else {
            return None;
        };
        total = total.checked_add(unit.checked_mul(u32::try_from(value).ok()?)?)?;
        rest = &rest[len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_the_crd_pattern_allows() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2m10s"), Some(Duration::from_secs(130)));
        for bad in ["", "s", "10", "10x", "1.5s", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
