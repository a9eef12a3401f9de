//! @@NAME@@: a Faxbot provider plugin (sidecar protocol v1). It starts on the kit's simulated provider, so it
//! passes `faxbot-plugin-conformance` as generated; replace each `self.sim` call with a call to your provider,
//! and map the provider's errors to the kinds the server understands (`ErrorKind`).

use async_trait::async_trait;
use faxbot_plugin_kit::{
    FaxAnswer, Plugin, PluginError, SendRequest, SidecarCapability, SidecarManifest, SimulatedProvider, WebhookRequest,
    WebhookSpec,
};

/// The plugin.
pub struct @@TYPE@@ {
    sim: SimulatedProvider,
}

impl @@TYPE@@ {
    /// The plugin, verifying callbacks with `webhook_secret` (`FAXBOT_PLUGIN_WEBHOOK_SECRET`).
    pub fn new(webhook_secret: Option<String>) -> Self {
        @@TYPE@@ { sim: SimulatedProvider::new(webhook_secret) }
    }
}

#[async_trait]
impl Plugin for @@TYPE@@ {
    fn manifest(&self) -> SidecarManifest {
        SidecarManifest {
            protocol: 1,
            id: "@@ID@@".into(),
            name: "@@NAME@@".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            // Only with a BAA from the provider that covers fax, and no PHI in this plugin's logs.
            hipaa_compliant: false,
            capabilities: vec![
                SidecarCapability::Send,
                SidecarCapability::Status,
                SidecarCapability::Cancel,
                SidecarCapability::Webhook,
            ],
            // True only while a repeated idempotency key returns the first fax (the simulated provider's
            // does; make sure your provider's does too, for example by listing faxes by a reference).
            idempotent: true,
            needs_document: true,
            poll_interval_ms: 1000,
            webhook: Some(WebhookSpec {
                verification: "HMAC-SHA256 of the body in X-Sim-Signature".into(),
                max_bytes: 1024 * 1024,
            }),
        }
    }

    async fn send(&self, request: SendRequest) -> Result<FaxAnswer, PluginError> {
        // Call the provider here: request.to (never log it), request.document (base64 PDF),
        // request.idempotency_key (send it as the provider's reference, if it has one).
        self.sim.send(&request)
    }

    async fn status(&self, provider_id: &str) -> Result<FaxAnswer, PluginError> {
        self.sim.status(provider_id)
    }

    async fn cancel(&self, provider_id: &str) -> Result<(), PluginError> {
        self.sim.cancel(provider_id)
    }

    async fn webhook(&self, request: &WebhookRequest, body: &[u8]) -> Result<Vec<FaxAnswer>, PluginError> {
        // Verify the provider's signature before reading anything: ErrorKind::Unauthenticated otherwise.
        self.sim.webhook(request, body)
    }
}
