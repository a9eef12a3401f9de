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

use std::collections::VecDeque;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// Audit events this process keeps in memory for the admin console's audit view (the full trail is the log
/// stream and `AUDIT_LOG_FILE`).
pub const RECENT: usize = 1000;

/// One audit event as the console shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// When, as RFC 3339 UTC.
    pub at: String,
    /// The event name (`job_created` …).
    pub event: String,
    /// Its other fields, in order, each passed through the PHI guard.
    pub fields: Vec<(String, String)>,
}

static ENTRIES: Mutex<VecDeque<Entry>> = Mutex::new(VecDeque::new());

/// The last [`RECENT`] audit events of this process, newest first.
pub fn recent() -> Vec<Entry> {
    ENTRIES.lock().map(|e| e.iter().rev().cloned().collect()).unwrap_or_default()
}

/// The tracing layer that keeps [`recent`]: events of target `audit` only.
pub struct Recent;

#[derive(Default)]
struct Collect {
    event: String,
    fields: Vec<(String, String)>,
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field.name(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field.name(), format!("{value:?}"));
    }
}

impl Collect {
    fn record(&mut self, name: &str, value: String) {
        match name {
            "event" => self.event = value,
            "message" => {}
            _ => self.fields.push((name.to_string(), crate::phi_guard::guard_text(&value))),
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recent {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "audit" {
            return;
        }
        let mut collect = Collect::default();
        event.record(&mut collect);
        let entry = Entry {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            event: collect.event,
            fields: collect.fields,
        };
        if let Ok(mut entries) = ENTRIES.lock() {
            if entries.len() == RECENT {
                entries.pop_front();
            }
            entries.push_back(entry);
        }
    }
}
