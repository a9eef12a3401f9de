//! The audit trail: structured events on the `audit` tracing target, one JSON object per line in the
//! server's log stream, where the cluster's log pipeline collects them.
//!
//! Events carry ids, kinds and counts only. Destination numbers appear masked to their last four digits,
//! and never document bytes, API-key secrets or download tokens: the call sites pass only such fields, and
//! the log-scanning tests fail if anything else gets through.

/// Emits an audit event: `audit!("job_created", job_id = %id, backend = %plugin)`.
#[macro_export]
macro_rules! audit {
    ($event:literal $(, $($fields:tt)+)?) => {
        ::tracing::info!(target: "audit", event = $event $(, $($fields)+)?, "audit")
    };
}
