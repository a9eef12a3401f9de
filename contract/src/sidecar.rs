//! The sidecar plugin protocol, version 1: what the API server's `external` plugin sends to a plugin that runs
//! as a separate process (a sidecar container in the API pod, reached over the pod's loopback), and what it
//! expects back. The protocol is documented for plugin authors in `docs/plugin-protocol.yaml` (OpenAPI 3.1);
//! this module is its Rust form, shared by the server, the Rust plugin kit and the conformance suite, and a
//! test reads the examples of that document into these types so the two cannot drift apart.
//!
//! The shape is deliberately small: six routes under `/v1` (`health`, `manifest`, `send`, fax `status`,
//! `cancel`, `webhook`), JSON bodies in camelCase, and one error body whose `kind` decides what the server
//! does next (retry, fail the job, refuse the callback). A plugin never sees the server's database or queue:
//! the server keeps a job durable and decides retries; the plugin talks to its provider.

use crate::phi;
use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks; a plugin's manifest must name it.
pub const PROTOCOL_VERSION: u32 = 1;

/// Request header that carries the protocol version on every call from the server.
pub const PROTOCOL_HEADER: &str = "faxbot-plugin-protocol";

/// Largest answer the server reads from a plugin (a manifest, a status, a send result): these are small
/// JSON documents, never documents.
pub const ANSWER_LIMIT: usize = 256 * 1024;

/// `GET /v1/manifest`: who the plugin is and what it can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarManifest {
    /// Must be [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Plugin id: lower-case letters, digits and `-`, starting with a letter, 2–63 characters.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The plugin's own version (free text, e.g. semver).
    pub version: String,
    /// Whether the plugin's provider signs a BAA and the plugin keeps PHI out of its own logs.
    pub hipaa_compliant: bool,
    /// What it supports: `send` and `status` always; `cancel` and `webhook` optionally.
    pub capabilities: Vec<SidecarCapability>,
    /// Whether a repeated `send` with the same idempotency key returns the first fax instead of sending
    /// again. Only then does the server repeat a submission whose answer it never saw.
    pub idempotent: bool,
    /// Whether `send` needs the document bytes (otherwise it receives none).
    pub needs_document: bool,
    /// How often the server polls `status` for a fax in progress, in milliseconds (at least 1000).
    pub poll_interval_ms: u64,
    /// How provider callbacks are authenticated, when the plugin takes any (`webhook` capability).
    #[serde(default)]
    pub webhook: Option<WebhookSpec>,
}

/// What a plugin can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum SidecarCapability {
    /// `POST /v1/send`.
    Send,
    /// `GET /v1/faxes/{providerId}`.
    Status,
    /// `POST /v1/faxes/{providerId}/cancel`.
    Cancel,
    /// `POST /v1/webhook`.
    Webhook,
}

/// How the plugin authenticates its provider's callbacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSpec {
    /// The scheme in words, shown by `GET /admin/webhooks` (e.g. "HMAC-SHA256 of the body in X-Sim-Signature").
    /// `none` is refused by the manifest check.
    pub verification: String,
    /// Largest callback body the plugin expects, in bytes (the server refuses larger ones before reading them).
    #[serde(default = "default_webhook_bytes")]
    pub max_bytes: usize,
}

fn default_webhook_bytes() -> usize {
    1024 * 1024
}

/// Largest callback body a plugin may ask for.
pub const WEBHOOK_MAX_BYTES: usize = 32 * 1024 * 1024;

/// `POST /v1/send`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendRequest {
    /// The server's job id (safe to log).
    pub job_id: String,
    /// Destination in E.164 (PHI: a plugin must not log it).
    pub to: String,
    /// The same for every attempt of one job.
    pub idempotency_key: String,
    /// Pages, when known.
    #[serde(default)]
    pub pages: Option<i64>,
    /// The document, when the manifest asks for it.
    #[serde(default)]
    pub document: Option<Document>,
}

impl std::fmt::Debug for SendRequest {
    // The number and the document are PHI.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendRequest")
            .field("job_id", &self.job_id)
            .field("to", &phi::mask_numbers(&self.to, phi::LOG_MIN_DIGITS))
            .field("document_bytes", &self.document.as_ref().map(|d| d.base64.len() / 4 * 3))
            .finish_non_exhaustive()
    }
}

/// A document in a request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Document {
    /// Always `application/pdf` in version 1.
    pub content_type: String,
    /// The bytes, base64 (standard alphabet, padded).
    pub base64: String,
}

/// A fax's state as a plugin reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaxState {
    /// Accepted, not started.
    Queued,
    /// Transmitting.
    InProgress,
    /// Delivered (final).
    Delivered,
    /// Transmission failed (final); `error` says why.
    Failed,
}

/// The answer to `send`, and to `status` (without `checkAfterMs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaxAnswer {
    /// The provider's id of the fax (not PHI; used in URLs).
    pub provider_id: String,
    /// Its state.
    pub status: FaxState,
    /// Why it failed, for `failed` (no numbers: the server masks digit runs anyway).
    #[serde(default)]
    pub error: Option<String>,
    /// When the provider expects a final state, in milliseconds from now (first poll then).
    #[serde(default)]
    pub check_after_ms: Option<u64>,
}

/// `POST /v1/webhook`: a provider callback exactly as the server received it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookRequest {
    /// The full URL the provider called.
    pub url: String,
    /// Header names (lower-case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The raw body, base64.
    pub body_base64: String,
}

impl std::fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRequest").field("body_base64_len", &self.body_base64.len()).finish_non_exhaustive()
    }
}

/// The answer to an authentic callback: the status changes it reports (none for a callback about something
/// else).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookAnswer {
    /// Status changes.
    pub events: Vec<FaxAnswer>,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Health {
    /// `ok` or `failing`.
    pub status: String,
    /// Why it is failing (no PHI).
    #[serde(default)]
    pub message: Option<String>,
}

/// Every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorDetail {
    /// Decides what the server does.
    pub kind: ErrorKind,
    /// For people (no PHI: no numbers, no document content).
    pub message: String,
    /// When to try again, for `rate_limited` and `unavailable`.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

/// Why a call failed, and so what the server does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 400: the server's request was malformed (a bug; not retried).
    BadRequest,
    /// 401: the caller did not present the plugin token, or (on `webhook`) the callback is not authentic.
    Unauthenticated,
    /// 502: the provider refused the plugin's credentials (not retried; an operator must fix them).
    Credentials,
    /// 422: the provider refused this fax (bad number, bad document; not retried).
    Rejected,
    /// 404: no such fax.
    NotFound,
    /// 429: the provider's rate limit; retried after `retryAfterMs`.
    RateLimited,
    /// 503: the provider is unavailable; retried (after `retryAfterMs` when given). Also for "nothing was sent".
    Unavailable,
    /// 501: the plugin does not support this operation.
    Unsupported,
}

impl ErrorKind {
    /// The HTTP status a plugin answers with for this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Credentials => 502,
            ErrorKind::Rejected => 422,
            ErrorKind::NotFound => 404,
            ErrorKind::RateLimited => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Unsupported => 501,
        }
    }

    /// The kind a bare status means, when a plugin answered without the error body.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            400 => ErrorKind::BadRequest,
            401 | 403 => ErrorKind::Unauthenticated,
            404 => ErrorKind::NotFound,
            409 | 410 | 413 | 415 | 422 => ErrorKind::Rejected,
            429 => ErrorKind::RateLimited,
            501 => ErrorKind::Unsupported,
            502 => ErrorKind::Credentials,
            _ => ErrorKind::Unavailable,
        }
    }

    /// Whether the server tries again.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::RateLimited | ErrorKind::Unavailable)
    }
}

/// Numbers the conformance suite sends to, and what a plugin on its simulated provider must do with each:
/// the last four digits choose the branch, as with the built-in `test` line.
pub mod scenario {
    /// Delivered.
    pub const DELIVERED: &str = "+15555550100";
    /// Accepted, then the transmission fails (status `failed` with a reason).
    pub const TRANSMISSION_FAILS: &str = "+15555550101";
    /// Refused at send (`rejected`).
    pub const REJECTED: &str = "+15555550102";
    /// The provider is busy at send (`unavailable` or `rate_limited`, with a retry hint).
    pub const BUSY: &str = "+15555550103";

    /// What the simulated provider does with `to`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Outcome {
        /// Delivered.
        Delivered,
        /// Fails in transmission.
        Fails,
        /// Refused at send.
        Rejected,
        /// Busy at send.
        Busy,
    }

    /// The branch for a destination: by its last four digits, anything else is delivered.
    pub fn outcome(to: &str) -> Outcome {
        if to.ends_with("0101") {
            Outcome::Fails
        } else if to.ends_with("0102") {
            Outcome::Rejected
        } else if to.ends_with("0103") {
            Outcome::Busy
        } else {
            Outcome::Delivered
        }
    }
}

/// Everything wrong with a plugin's manifest (field, problem), empty when it may be used. These are the
/// kits' manifest checks too, including the HIPAA ones: a plugin that says it is HIPAA-compliant must
/// authenticate its callbacks.
pub fn check_manifest(m: &SidecarManifest) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut bad = |field: &str, problem: String| problems.push((field.to_string(), problem));
    if m.protocol != PROTOCOL_VERSION {
        bad("protocol", format!("this server speaks protocol {PROTOCOL_VERSION}, the plugin {}", m.protocol));
    }
    let id_ok = (2..=63).contains(&m.id.len())
        && m.id.starts_with(|c: char| c.is_ascii_lowercase())
        && m.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !id_ok {
        bad("id", "must be 2–63 lower-case letters, digits or '-', starting with a letter".into());
    }
    if crate::plugins::manifest(&m.id).is_some() {
        bad("id", format!("`{}` is a built-in plugin's id", m.id));
    }
    if m.name.trim().is_empty() || m.name.len() > 200 {
        bad("name", "must be 1–200 characters".into());
    } else if phi::may_hold_number(&m.name, phi::LOG_MIN_DIGITS) {
        bad("name", "must not contain numbers that could be phone numbers".into());
    }
    // A version is digits by nature (`2024.01.15`), so it is held to a version's characters instead.
    let version_ok = (1..=64).contains(&m.version.len())
        && m.version.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-' | b'_'));
    if !version_ok {
        bad("version", "must be 1–64 letters, digits, '.', '+', '-' or '_'".into());
    }
    for needed in [SidecarCapability::Send, SidecarCapability::Status] {
        if !m.capabilities.contains(&needed) {
            bad("capabilities", format!("must include `{}`", capability_name(needed)));
        }
    }
    if m.poll_interval_ms < 1000 || m.poll_interval_ms > 3_600_000 {
        bad("pollIntervalMs", "must be between 1000 and 3600000".into());
    }
    let takes_webhooks = m.capabilities.contains(&SidecarCapability::Webhook);
    match (&m.webhook, takes_webhooks) {
        (None, true) => bad("webhook", "the `webhook` capability needs a webhook section".into()),
        (Some(_), false) => bad("webhook", "a webhook section needs the `webhook` capability".into()),
        (Some(w), true) => {
            let scheme = w.verification.trim().to_ascii_lowercase();
            if scheme.is_empty() || scheme == "none" {
                bad("webhook.verification", "callbacks must be authenticated; `none` is refused".into());
            }
            if w.max_bytes == 0 || w.max_bytes > WEBHOOK_MAX_BYTES {
                bad("webhook.maxBytes", format!("must be between 1 and {WEBHOOK_MAX_BYTES}"));
            }
        }
        (None, false) => {}
    }
    problems
}

fn capability_name(c: SidecarCapability) -> &'static str {
    match c {
        SidecarCapability::Send => "send",
        SidecarCapability::Status => "status",
        SidecarCapability::Cancel => "cancel",
        SidecarCapability::Webhook => "webhook",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> SidecarManifest {
        SidecarManifest {
            protocol: 1,
            id: "acme-fax".into(),
            name: "Acme Fax".into(),
            version: "0.1.0".into(),
            hipaa_compliant: true,
            capabilities: vec![SidecarCapability::Send, SidecarCapability::Status, SidecarCapability::Webhook],
            idempotent: true,
            needs_document: true,
            poll_interval_ms: 5000,
            webhook: Some(WebhookSpec { verification: "HMAC-SHA256 in X-Acme-Signature".into(), max_bytes: 1 << 20 }),
        }
    }

    #[test]
    fn manifest_checks() {
        type Edit = fn(&mut SidecarManifest);
        let table: &[(&str, Edit, Option<&str>)] = &[
            ("good", |_| {}, None),
            ("protocol", |m| m.protocol = 2, Some("protocol")),
            ("id upper", |m| m.id = "Acme".into(), Some("id")),
            ("id builtin", |m| m.id = "phaxio".into(), Some("id")),
            ("name number", |m| m.name = "Fax +15551234567".into(), Some("name")),
            ("dated version", |m| m.version = "2024.01.15".into(), None),
            ("version with spaces", |m| m.version = "1 2".into(), Some("version")),
            ("no status", |m| m.capabilities.retain(|c| *c != SidecarCapability::Status), Some("capabilities")),
            ("poll fast", |m| m.poll_interval_ms = 10, Some("pollIntervalMs")),
            (
                "unverified",
                |m| m.webhook = Some(WebhookSpec { verification: "none".into(), max_bytes: 1 }),
                Some("webhook.verification"),
            ),
            ("webhook without section", |m| m.webhook = None, Some("webhook")),
            (
                "section without capability",
                |m| m.capabilities.retain(|c| *c != SidecarCapability::Webhook),
                Some("webhook"),
            ),
            (
                "huge callbacks",
                |m| m.webhook.as_mut().into_iter().for_each(|w| w.max_bytes = usize::MAX),
                Some("webhook.maxBytes"),
            ),
        ];
        for (name, edit, expected) in table {
            let mut m = good();
            edit(&mut m);
            let problems = check_manifest(&m);
            match expected {
                None => assert!(problems.is_empty(), "{name}: {problems:?}"),
                Some(field) => assert!(problems.iter().any(|(f, _)| f == field), "{name}: {problems:?}"),
            }
        }
    }

    #[test]
    fn kinds_and_statuses_agree() {
        use ErrorKind::*;
        for kind in
            [BadRequest, Unauthenticated, Credentials, Rejected, NotFound, RateLimited, Unavailable, Unsupported]
        {
            assert_eq!(ErrorKind::from_status(kind.status()), kind);
        }
        assert_eq!(ErrorKind::from_status(500), Unavailable);
        assert!(RateLimited.is_retryable() && Unavailable.is_retryable() && !Rejected.is_retryable());
    }

    #[test]
    fn scenario_numbers_choose_their_branch() {
        use scenario::*;
        assert_eq!(outcome(DELIVERED), Outcome::Delivered);
        assert_eq!(outcome(TRANSMISSION_FAILS), Outcome::Fails);
        assert_eq!(outcome(REJECTED), Outcome::Rejected);
        assert_eq!(outcome(BUSY), Outcome::Busy);
    }

    #[test]
    fn debug_shows_no_number() {
        let r = SendRequest {
            job_id: "j".into(),
            to: "+15555550100".into(),
            idempotency_key: "k".into(),
            pages: None,
            document: None,
        };
        assert!(!format!("{r:?}").contains("5555550100"));
    }
}
