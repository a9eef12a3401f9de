//! The Rust plugin kit: everything a Faxbot provider plugin that runs as a sidecar needs besides the calls to
//! its provider (docs/plugins.md, "Writing a sidecar plugin").
//!
//! - Implement [`Plugin`] (its [`SidecarManifest`], `send`, `status`, optionally `cancel` and `webhook`).
//! - Serve it with [`serve_from_env`] (or [`router`] inside your own server): the kit speaks the sidecar
//!   protocol (docs/plugin-protocol.yaml) — the plugin token, body limits, the error body, `Retry-After`,
//!   the number mask on every error message — so the plugin cannot get those wrong.
//! - Start from [`SimulatedProvider`], which follows the conformance numbers, and test with
//!   [`testing::MockFaxbot`], which calls the plugin the way the server does. Then run
//!   `faxbot-plugin-conformance http://127.0.0.1:8090`.

mod server;
mod simulated;
pub mod testing;

pub use faxbot_contract::sidecar::{
    Document, ErrorKind, FaxAnswer, FaxState, Health, PROTOCOL_VERSION, SendRequest, SidecarCapability,
    SidecarManifest, WebhookAnswer, WebhookRequest, WebhookSpec, check_manifest, scenario,
};
pub use server::{Listen, router, serve, serve_from_env};
pub use simulated::{SIGNATURE_HEADER, SimulatedProvider, sign};

/// The attribute `impl Plugin for …` needs, re-exported so a plugin depends on the kit alone.
pub use async_trait::async_trait;

/// The protocol header's name (for the mock server).
fn server_header() -> &'static str {
    faxbot_contract::sidecar::PROTOCOL_HEADER
}

/// A failure the plugin reports; its kind decides what the server does (retry or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// What went wrong, in the protocol's terms.
    pub kind: ErrorKind,
    /// For people; the kit masks digit runs before it is sent, but do not put numbers in it.
    pub message: String,
    /// When to try again (`RateLimited`, `Unavailable`).
    pub retry_after_ms: Option<u64>,
}

impl PluginError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError { kind, message: message.into(), retry_after_ms: None }
    }

    /// With a retry hint.
    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for PluginError {}

/// A provider plugin. The server keeps jobs durable and decides retries; a plugin only talks to its provider.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// Who the plugin is and what it can do (checked by [`check_manifest`] before the kit serves it).
    fn manifest(&self) -> SidecarManifest;

    /// Whether the plugin can work now (credentials present, provider reachable); the message has no PHI.
    async fn health(&self) -> Result<(), String> {
        Ok(())
    }

    /// Submits a fax. With `idempotent: true` in the manifest, a repeated idempotency key returns the first fax.
    async fn send(&self, request: SendRequest) -> Result<FaxAnswer, PluginError>;

    /// The provider's view of a fax.
    async fn status(&self, provider_id: &str) -> Result<FaxAnswer, PluginError>;

    /// Asks the provider to stop a fax (capability `cancel`).
    async fn cancel(&self, _provider_id: &str) -> Result<(), PluginError> {
        Err(PluginError::new(ErrorKind::Unsupported, "cancel is not supported"))
    }

    /// Verifies a provider callback (the raw body decoded) and returns the status changes it reports;
    /// `Unauthenticated` for anything that cannot be verified (capability `webhook`).
    async fn webhook(&self, _request: &WebhookRequest, _body: &[u8]) -> Result<Vec<FaxAnswer>, PluginError> {
        Err(PluginError::new(ErrorKind::Unsupported, "callbacks are not supported"))
    }
}
