//! The simulated fax line (`test`): its settings and their checks.

use super::*;

/// Settings of the built-in simulated fax line (`test`).
///
/// The failure-injection suffixes make every branch of the job lifecycle reachable without an external
/// service: which branch a job takes depends only on its destination number, so tests are deterministic.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SimulatedLineSettings {
    /// Milliseconds from submission until the simulated transmission finishes.
    #[schemars(range(max = 600000))]
    pub delivery_latency_ms: u64,
    /// Milliseconds between status polls of a submitted fax.
    #[schemars(range(min = 10, max = 600000))]
    pub poll_interval_ms: u64,
    /// Destination numbers ending in these digits fail in transmission (terminal `FAILED`).
    pub fail_suffix: Option<String>,
    /// The error text recorded for a failed transmission.
    pub fail_error: String,
    /// Destination numbers ending in these digits are refused by the line at submission (a permanent,
    /// non-retryable error: the job ends `failed`).
    pub reject_suffix: Option<String>,
    /// Destination numbers ending in these digits get "busy, retry later" for the first
    /// `busyAttempts` submissions, with a Retry-After hint of `busyRetryAfterMs`.
    pub busy_suffix: Option<String>,
    /// How many submissions of a busy number are refused before it is accepted.
    #[schemars(range(max = 100))]
    pub busy_attempts: u32,
    /// Retry-After hint given with a busy answer, in milliseconds.
    #[schemars(range(max = 3600000))]
    pub busy_retry_after_ms: u64,
}

impl Default for SimulatedLineSettings {
    fn default() -> Self {
        SimulatedLineSettings {
            delivery_latency_ms: 1000,
            poll_interval_ms: 500,
            fail_suffix: Some("0000".into()),
            fail_error: "No answer (simulated)".into(),
            reject_suffix: Some("0001".into()),
            busy_suffix: Some("0002".into()),
            busy_attempts: 2,
            busy_retry_after_ms: 200,
        }
    }
}

impl SettingsCheck for SimulatedLineSettings {
    fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (field, value) in [
            ("failSuffix", &self.fail_suffix),
            ("rejectSuffix", &self.reject_suffix),
            ("busySuffix", &self.busy_suffix),
        ] {
            if let Some(suffix) = value
                && (suffix.is_empty() || suffix.len() > 8 || !suffix.bytes().all(|b| b.is_ascii_digit()))
            {
                problems.push((field.to_string(), "must be 1 to 8 digits".to_string()));
            }
        }
        if self.delivery_latency_ms > 600_000 {
            problems.push(("deliveryLatencyMs".into(), "must be at most 600000".into()));
        }
        if !(10..=600_000).contains(&self.poll_interval_ms) {
            problems.push(("pollIntervalMs".into(), "must be between 10 and 600000".into()));
        }
        if self.busy_attempts > 100 {
            problems.push(("busyAttempts".into(), "must be at most 100".into()));
        }
        if self.busy_retry_after_ms > 3_600_000 {
            problems.push(("busyRetryAfterMs".into(), "must be at most 3600000".into()));
        }
        if self.fail_error.len() > 200 {
            problems.push(("failError".into(), "must be at most 200 characters".into()));
        }
        problems
    }
}
