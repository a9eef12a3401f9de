//! Rollout notifications to a webhook (`spec.rollout.notifications.webhook`): a JSON POST on every promotion
//! and rollback, besides the Kubernetes Event, for teams whose alerting does not watch Events.
//!
//! The body names objects and revisions only; the free-text message passes the same number mask as status
//! and Events ([`crate::redact::mask_numbers`]), so a provider's error quoted in a rollback reason cannot
//! carry a fax number out. With `signingSecretRef` each body is signed, `X-Faxbot-Signature:
//! sha256=<hex HMAC-SHA256(key, body)>`, so the receiver can tell it from a forgery.
//!
//! Delivery is at least once: a repeated reconcile (a status write that failed, a new leader) can announce the
//! same outcome again, with the same `id`, for the receiver to drop. Sending runs in its own task, bounded
//! (5 s per attempt, three attempts, no redirects), so a slow receiver never holds a reconcile.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// One announcement.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// `Promoted` or `RolledBack`.
    pub kind: &'static str,
    /// Namespace of the FaxPluginConfig.
    pub namespace: String,
    /// Its name.
    pub config: String,
    /// Its UID (part of the id, so a recreated config's outcomes are new).
    pub uid: String,
    /// The revision promoted or rolled back.
    pub revision: String,
    /// The revision serving afterwards.
    pub stable_revision: String,
    /// What happened, as in the Event.
    pub message: String,
    /// RFC 3339.
    pub time: String,
}

impl Notification {
    /// The same outcome of the same revision of the same config always has the same id.
    pub fn id(&self) -> String {
        let digest = Sha256::digest(format!("{}/{}/{}", self.uid, self.kind, self.revision).as_bytes());
        hex::encode(&digest[..12])
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": self.id(),
            "kind": self.kind,
            "namespace": self.namespace,
            "config": self.config,
            "revision": self.revision,
            "stableRevision": self.stable_revision,
            "message": crate::redact::mask_numbers(&self.message),
            "time": self.time,
        }))
        .unwrap_or_default()
    }
}

/// `sha256=<hex HMAC-SHA256(key, body)>`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length: this `else` is never taken.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else { return String::new() };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Attempts per notification.
const ATTEMPTS: u32 = 3;

/// The client every notification is sent with, built on first use: its connection pool and TLS set-up are
/// shared instead of built per notification.
fn client() -> Option<&'static reqwest::Client> {
    static CLIENT: std::sync::OnceLock<Option<reqwest::Client>> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .connect_timeout(Duration::from_secs(2))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .inspect_err(|e| tracing::warn!(error = %e, "no HTTP client for notifications"))
                .ok()
        })
        .as_ref()
}

/// Posts `notification` to `url` in a task of its own, signed with `key` when given.
pub fn send(
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    url: String,
    key: Option<Vec<u8>>,
    notification: Notification,
) {
    tokio::spawn(async move {
        let Some(client) = client() else { return };
        let body = notification.body();
        for attempt in 1..=ATTEMPTS {
            let mut request = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("X-Faxbot-Event", notification.kind)
                .body(body.clone());
            if let Some(key) = &key {
                request = request.header("X-Faxbot-Signature", signature(key, &body));
            }
            match request.send().await {
                Ok(r) if r.status().is_success() => {
                    metrics
                        .notifications
                        .get_or_create(&crate::metrics::NotificationLabels { result: "delivered" })
                        .inc();
                    return;
                }
                Ok(r) => tracing::warn!(status = %r.status(), attempt, kind = notification.kind,
                    config = %notification.config, "the notification webhook refused"),
                Err(e) => tracing::warn!(error = %e.without_url(), attempt, kind = notification.kind,
                    config = %notification.config, "the notification webhook did not answer"),
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
        }
        metrics.notifications.get_or_create(&crate::metrics::NotificationLabels { result: "failed" }).inc();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolled_back() -> Notification {
        Notification {
            kind: "RolledBack",
            namespace: "fax".into(),
            config: "main".into(),
            uid: "0a1b".into(),
            revision: "r2".into(),
            stable_revision: "r1".into(),
            message: "failed 2 checks: provider said 15551234567 is busy".into(),
            time: "2026-12-05T17:00:00Z".into(),
        }
    }

    #[test]
    fn bodies_name_objects_and_mask_numbers() {
        let body: serde_json::Value = serde_json::from_slice(&rolled_back().body()).unwrap();
        assert_eq!(body["kind"], "RolledBack");
        assert_eq!((body["revision"].as_str(), body["stableRevision"].as_str()), (Some("r2"), Some("r1")));
        assert_eq!(body["message"], "failed 2 checks: provider said …4567 is busy");
        assert_eq!(body["id"].as_str().unwrap().len(), 24);
    }

    #[test]
    fn the_id_is_stable_per_outcome_and_revision() {
        let a = rolled_back();
        let mut later = rolled_back();
        later.time = "2026-12-05T17:05:00Z".into();
        later.message = "another wording".into();
        assert_eq!(a.id(), later.id(), "a repeat of the same outcome keeps its id");
        let mut promoted = rolled_back();
        promoted.kind = "Promoted";
        assert_ne!(a.id(), promoted.id());
        let mut other = rolled_back();
        other.revision = "r3".into();
        assert_ne!(a.id(), other.id());
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
