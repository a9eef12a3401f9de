//! The event bus: typed domain events (`fax.queued`, `fax.sent`, `fax.delivered`, `fax.failed`,
//! `fax.received`, `plugin.started`, `plugin.stopped`, `plugin.error`, `config.changed`) published once
//! where they happen and delivered to every sink.
//!
//! PHI guard: an event can only carry an object id ([`JobId`]: random, no PHI), a plugin id, a revision and
//! a short detail text, and the detail passes [`guard`] (digit runs redacted, length
//! capped) before any sink sees it, so a provider's error message that quotes a phone number cannot leak.
//! Sinks run synchronously inside [`EventBus::publish`] (the audit trail and metrics must not lose an
//! event to a lagging channel); asynchronous consumers subscribe to a broadcast channel, and the last
//! events are kept for `GET /admin/events`.

use crate::domain::{JobId, Timestamp};
use crate::metrics::Metrics;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    /// A job was accepted.
    #[serde(rename = "fax.queued")]
    FaxQueued,
    /// A provider accepted the job's fax.
    #[serde(rename = "fax.sent")]
    FaxSent,
    /// The fax was delivered.
    #[serde(rename = "fax.delivered")]
    FaxDelivered,
    /// The job ended without delivery.
    #[serde(rename = "fax.failed")]
    FaxFailed,
    /// A fax was received and stored.
    #[serde(rename = "fax.received")]
    FaxReceived,
    /// A plugin instance took over a slot.
    #[serde(rename = "plugin.started")]
    PluginStarted,
    /// A plugin instance left a slot.
    #[serde(rename = "plugin.stopped")]
    PluginStopped,
    /// A plugin failed in a way an operator should see (credentials refused, a webhook rejected, a failover).
    #[serde(rename = "plugin.error")]
    PluginError,
    /// A new runtime config revision was applied.
    #[serde(rename = "config.changed")]
    ConfigChanged,
}

impl EventKind {
    /// The wire name, also the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::FaxQueued => "fax.queued",
            EventKind::FaxSent => "fax.sent",
            EventKind::FaxDelivered => "fax.delivered",
            EventKind::FaxFailed => "fax.failed",
            EventKind::FaxReceived => "fax.received",
            EventKind::PluginStarted => "plugin.started",
            EventKind::PluginStopped => "plugin.stopped",
            EventKind::PluginError => "plugin.error",
            EventKind::ConfigChanged => "config.changed",
        }
    }
}

/// One event, PHI-free by construction.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Wire timestamp.
    pub at: String,
    /// The job or inbound fax it is about.
    pub subject: Option<String>,
    /// The plugin involved.
    pub plugin: Option<String>,
    /// Config revision, for config and plugin events.
    pub revision: Option<String>,
    /// Short, guarded explanation.
    pub detail: Option<String>,
}

/// The rule for any free text that might quote a phone number: the server's one digit redaction
/// ([`crate::phi_guard::guard_text`]: number-like runs of five or more digits keep their last four) and a cap
/// of 200 characters.
pub fn guard(text: &str) -> String {
    let out = crate::phi_guard::guard_text(text);
    if out.chars().count() > 200 { out.chars().take(199).collect::<String>() + "…" } else { out }
}

/// Plugin ids and revisions are configuration, not caller input, but the guard still refuses anything that
/// is not a plain identifier.
fn identifier(value: &str) -> String {
    if !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        value.to_string()
    } else {
        "invalid".to_string()
    }
}

type Sink = Box<dyn Fn(&Event) + Send + Sync>;

/// Publishes events to the sinks, the broadcast channel and the recent-events buffer.
pub struct EventBus {
    sinks: Vec<Sink>,
    tx: broadcast::Sender<Event>,
    recent: Mutex<VecDeque<Event>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").field("sinks", &self.sinks.len()).finish_non_exhaustive()
    }
}

/// How many events `GET /admin/events` can show.
const RECENT: usize = 256;

/// A builder for an event; `publish` it when complete.
#[must_use = "an event does nothing until it is published"]
pub struct EventBuilder<'a> {
    bus: &'a EventBus,
    event: Event,
}

impl EventBuilder<'_> {
    /// The job or inbound fax the event is about.
    pub fn subject(mut self, id: &JobId) -> Self {
        self.event.subject = Some(id.as_str().to_string());
        self
    }

    /// The plugin involved.
    pub fn plugin(mut self, plugin: &str) -> Self {
        self.event.plugin = Some(identifier(plugin));
        self
    }

    /// The config revision.
    pub fn revision(mut self, revision: &str) -> Self {
        self.event.revision = Some(identifier(revision));
        self
    }

    /// A short explanation; guarded.
    pub fn detail(mut self, detail: &str) -> Self {
        self.event.detail = Some(guard(detail));
        self
    }

    /// Delivers the event.
    pub fn publish(self) {
        self.bus.deliver(self.event);
    }
}

impl EventBus {
    /// A bus whose sinks are the audit trail and the `faxbot_events` metric.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let audit: Sink = Box::new(|e: &Event| {
            crate::audit!(
                "event",
                r#type = e.kind.as_str(),
                subject = e.subject.as_deref().unwrap_or(""),
                plugin = e.plugin.as_deref().unwrap_or(""),
                revision = e.revision.as_deref().unwrap_or(""),
                detail = e.detail.as_deref().unwrap_or("")
            );
        });
        let count: Sink = Box::new(move |e: &Event| Metrics::count(&metrics.events, e.kind.as_str()));
        Self::with_sinks(vec![audit, count])
    }

    /// A bus with the given sinks (tests).
    pub fn with_sinks(sinks: Vec<Sink>) -> Self {
        let (tx, _) = broadcast::channel(1024);
        EventBus { sinks, tx, recent: Mutex::new(VecDeque::with_capacity(RECENT)) }
    }

    /// Starts an event of `kind`.
    pub fn event(&self, kind: EventKind) -> EventBuilder<'_> {
        EventBuilder {
            bus: self,
            event: Event {
                kind,
                at: Timestamp::now().to_wire(),
                subject: None,
                plugin: None,
                revision: None,
                detail: None,
            },
        }
    }

    fn deliver(&self, event: Event) {
        for sink in &self.sinks {
            sink(&event);
        }
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        // No receiver is fine: the sinks above already recorded the event.
        let _ = self.tx.send(event);
    }

    /// A live stream of events for asynchronous consumers; a consumer that lags loses the oldest events
    /// (the audit trail does not: it is a synchronous sink).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// The most recent events, oldest first.
    pub fn recent(&self) -> Vec<Event> {
        self.recent.lock().map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_masks_numbers_to_their_last_four_and_caps_length() {
        assert_eq!(guard("call +15551234567 failed"), "call …4567 failed");
        assert_eq!(guard("error 1234"), "error 1234");
        assert_eq!(guard("12345"), "…2345");
        assert_eq!(guard(&"x".repeat(500)).chars().count(), 200);
    }

    #[test]
    fn every_sink_sees_every_event_and_identifiers_are_checked() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink_seen = seen.clone();
        let bus = EventBus::with_sinks(vec![Box::new(move |e: &Event| {
            sink_seen.lock().unwrap().push((e.kind, e.plugin.clone(), e.detail.clone()))
        })]);
        let mut rx = bus.subscribe();
        let id = JobId::generate();
        bus.event(EventKind::FaxFailed).subject(&id).plugin("phaxio").detail("busy at +15551234567").publish();
        bus.event(EventKind::PluginError).plugin("+15551234567 or ../x").publish();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], (EventKind::FaxFailed, Some("phaxio".into()), Some("busy at …4567".into())));
        assert_eq!(seen[1].1.as_deref(), Some("invalid"));
        assert_eq!(rx.try_recv().unwrap().subject.as_deref(), Some(id.as_str()));
        assert_eq!(bus.recent().len(), 2);
        let json = serde_json::to_value(&bus.recent()[0]).unwrap();
        assert_eq!(json["type"], "fax.failed");
    }
}
