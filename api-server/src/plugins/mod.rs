//! Provider plugins: the trait every outbound provider implements, its error type, and the registry that
//! builds provider instances from the runtime config.
//!
//! Layout: [`simulated`] (the built-in `test` line), [`phaxio`], [`sinch`], [`sip`] (Asterisk over AMI). Outbound providers implement
//! [`OutboundProvider`]; the inbound slot's plugin implements [`InboundProvider`].

pub mod client;
pub mod external;
pub mod http;
pub mod phaxio;
pub mod response;
pub mod simulated;
pub mod sinch;
pub mod sip;

use crate::db::{Db, writer::Writer};
use crate::domain::{FaxNumber, JobId};
use async_trait::async_trait;
use faxbot_contract::plugins::{self as manifests, PluginManifest, SIMULATED_LINE, SimulatedLineSettings};
use faxbot_contract::{Capability, SlotBinding};
use std::sync::Arc;
use std::time::Duration;

/// Largest callback body accepted (inbound faxes carry the document).
pub const WEBHOOK_LIMIT: usize = 32 * 1024 * 1024;

/// Largest status callback of a plugin whose status callbacks carry no document (Phaxio's `fax_completed`
/// for a sent fax is a few form fields and the fax object).
pub const STATUS_LIMIT: usize = 1024 * 1024;

/// What a provider is asked to send.
#[derive(Debug)]
pub struct SendRequest<'a> {
    /// The job.
    pub job_id: &'a JobId,
    /// Destination (PHI).
    pub to: &'a FaxNumber,
    /// Storage key of the PDF.
    pub document_key: &'a str,
    /// Page count, when known.
    pub pages: Option<i64>,
    /// Stable across every attempt of the same job, so a provider with idempotency can recognise a repeat.
    pub idempotency_key: &'a str,
    /// The document bytes, read by the worker for plugins that upload it ([`OutboundProvider::needs_document`]).
    pub document: Option<bytes::Bytes>,
    /// A tokenized URL of the document (`PUBLIC_API_URL/fax/{id}/pdf?token=…`, valid `PDF_TOKEN_TTL_MINUTES`),
    /// minted for plugins that let the provider fetch it ([`OutboundProvider::wants_content_url`]).
    pub content_url: Option<String>,
}

/// The provider's view of a fax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteStatus {
    /// Accepted, not started.
    Queued,
    /// Transmitting.
    InProgress,
    /// Delivered.
    Delivered,
    /// Transmission failed, with the provider's reason.
    Failed(String),
}

/// A successful submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// The provider's id for the fax.
    pub provider_sid: String,
    /// Its status right after submission.
    pub status: RemoteStatus,
    /// When the provider expects a final status, if it can say: the first status check is scheduled
    /// then instead of after the regular poll interval, which saves polls that can only say "in progress".
    pub check_after: Option<Duration>,
}

/// Why a provider call failed. The variants decide retry behaviour, so map provider errors carefully.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// Credentials refused: retrying cannot help.
    #[error("provider rejected the credentials: {0}")]
    Unauthorized(String),
    /// The request itself was refused (bad number, document, etc.): retrying cannot help.
    #[error("provider rejected the fax: {0}")]
    Rejected(String),
    /// Too many requests; retry after the hint.
    #[error("provider rate limit: {message}")]
    RateLimited {
        /// Provider's message.
        message: String,
        /// Retry-After, if the provider gave one.
        retry_after: Option<Duration>,
    },
    /// Temporarily unavailable (5xx, busy line); retry.
    #[error("provider unavailable: {message}")]
    Unavailable {
        /// Provider's message.
        message: String,
        /// Retry-After, if the provider gave one.
        retry_after: Option<Duration>,
    },
    /// The call timed out or the connection failed: the provider may or may not have acted.
    #[error("provider call failed: {0}")]
    Transport(String),
    /// The plugin does not support the operation.
    #[error("operation not supported by this plugin")]
    Unsupported,
}

impl ProviderError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. } | ProviderError::Unavailable { .. } | ProviderError::Transport(_)
        )
    }

    /// The provider's Retry-After hint.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after, .. } | ProviderError::Unavailable { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Unauthorized(_) => "unauthorized",
            ProviderError::Rejected(_) => "rejected",
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::Unavailable { .. } => "unavailable",
            ProviderError::Transport(_) => "transport",
            ProviderError::Unsupported => "unsupported",
        }
    }
}

/// A provider callback as received, before anything is parsed: the webhook manager hands it to the plugin
/// that owns the route, and the plugin verifies its signature before it trusts any field.
#[derive(Debug)]
pub struct WebhookRequest<'a> {
    /// The full URL the provider called (some signatures cover it).
    pub url: &'a str,
    /// Header names (lower-case) and values.
    pub headers: &'a [(String, String)],
    /// The raw body, exactly as received (shared, so parsers can hand out parts of it without copying).
    pub body: &'a bytes::Bytes,
}

/// A status change a provider reported through a callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    /// Which fax.
    pub provider_sid: String,
    /// Its new status.
    pub status: RemoteStatus,
}

/// A fax a provider received for us, from an authenticated inbound callback.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedFax {
    /// The provider's id of the received fax; replays of the same callback carry the same id, which makes
    /// storing it idempotent.
    pub provider_sid: String,
    /// Sender number as the provider reported it (PHI).
    pub from: Option<String>,
    /// The number that received it (PHI).
    pub to: Option<String>,
    /// Pages, as the provider counted them.
    pub pages: Option<i64>,
    /// The received document as a PDF, when the callback carried it.
    pub document: Option<bytes::Bytes>,
}

impl std::fmt::Debug for ReceivedFax {
    // Numbers and the document are PHI: Debug shows only what may be logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedFax")
            .field("provider_sid", &self.provider_sid)
            .field("pages", &self.pages)
            .field("document_bytes", &self.document.as_ref().map(|d| d.len()))
            .finish_non_exhaustive()
    }
}

/// How a plugin's callbacks are authenticated, for `GET /admin/webhooks`: what to configure at the provider
/// and whether this server is ready to verify.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct WebhookInfo {
    /// The scheme, e.g. `X-Phaxio-Signature (HMAC-SHA1 with the webhook token)`.
    pub verification: std::borrow::Cow<'static, str>,
    /// The callback URL the provider is told to use (and that signatures cover), when configured.
    pub callback_url: Option<String>,
    /// Whether both the URL and the verification secret are configured; if not, every callback is refused.
    pub ready: bool,
}

/// A provider that receives faxes through authenticated callbacks.
#[async_trait]
pub trait InboundProvider: Send + Sync + std::fmt::Debug {
    /// The plugin's manifest.
    fn manifest(&self) -> &PluginManifest;

    /// How its callbacks are verified; `None` when it takes no callbacks.
    fn webhook_info(&self) -> Option<WebhookInfo> {
        None
    }

    /// Checks what the headers alone can tell about an inbound callback, before its body is read: credentials
    /// sent as headers completely, a body signature's header for presence and shape, and whether callbacks
    /// are configured at all. A refusal here ([`ProviderError::Unauthorized`]) is answered without reading
    /// the body; [`InboundProvider::receive`] still checks everything. The default refuses
    /// ([`ProviderError::Unsupported`]): a plugin that takes no callbacks never has a body read.
    fn precheck(&self, _headers: &[(String, String)]) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported)
    }

    /// Verifies an inbound callback before reading anything from it, then returns the faxes it delivers.
    /// An unverifiable request is [`ProviderError::Unauthorized`]; an authentic callback that is not about a
    /// received fax returns an empty list.
    async fn receive(&self, request: &WebhookRequest<'_>) -> Result<Vec<ReceivedFax>, ProviderError>;

    /// Called once a fax returned by [`InboundProvider::receive`] is stored (or found stored already), so a
    /// plugin can remove its own copy (the SIP plugin's TIFF on the shared volume).
    async fn stored(&self, _provider_sid: &str) {}
}

/// An outbound fax provider.
#[async_trait]
pub trait OutboundProvider: Send + Sync + std::fmt::Debug {
    /// The plugin's manifest.
    fn manifest(&self) -> &PluginManifest;

    /// Submits a fax. Must be safe to call again with the same idempotency key when the manifest lists
    /// [`Capability::Idempotency`].
    async fn send(&self, request: &SendRequest<'_>) -> Result<Submission, ProviderError>;

    /// Polls a submitted fax.
    async fn status(&self, provider_sid: &str) -> Result<RemoteStatus, ProviderError>;

    /// Asks the provider to stop a fax it has not finished. The job's final status still comes from
    /// [`OutboundProvider::status`] (the provider reports the cancelled fax as failed). Plugins whose
    /// provider cannot cancel keep the default.
    async fn cancel(&self, _provider_sid: &str) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported)
    }

    /// How long to wait between status polls.
    fn poll_interval(&self) -> Duration;

    /// Whether `send` needs the document bytes (cloud providers upload them; the simulated line does not).
    fn needs_document(&self) -> bool {
        false
    }

    /// Whether `send` wants a tokenized URL the provider fetches the document from, instead of the bytes.
    fn wants_content_url(&self) -> bool {
        false
    }

    /// Verifies and interprets a status callback. Plugins without callbacks keep the default, which
    /// refuses every request, so an unverified callback can never change a job.
    async fn webhook(&self, _request: &WebhookRequest<'_>) -> Result<Vec<StatusEvent>, ProviderError> {
        Err(ProviderError::Unsupported)
    }

    /// How its status callbacks are verified; `None` when it takes none.
    fn webhook_info(&self) -> Option<WebhookInfo> {
        None
    }

    /// Checks what the headers alone can tell about a status callback, before its body is read (see
    /// [`InboundProvider::precheck`]). The default refuses, like [`OutboundProvider::webhook`]'s: a plugin
    /// without callbacks never has a body read.
    fn precheck(&self, _headers: &[(String, String)]) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported)
    }

    /// Largest status callback body this plugin's provider sends: small unless its status callbacks can
    /// carry the document.
    fn status_body_limit(&self) -> usize {
        STATUS_LIMIT
    }

    /// Tools the plugin offers AI assistants over MCP (manifest plugins may declare some); none by default.
    fn tools(&self) -> &[faxbot_contract::manifest::ToolSpec] {
        &[]
    }

    /// Runs tool `name` of [`OutboundProvider::tools`] with its string arguments; the answer (or the part
    /// the tool names) as JSON.
    async fn call_tool(
        &self,
        _name: &str,
        _arguments: &std::collections::BTreeMap<String, String>,
    ) -> Result<serde_json::Value, ProviderError> {
        Err(ProviderError::Unsupported)
    }

    /// Whether a submission interrupted by a crash may be repeated.
    fn idempotent(&self) -> bool {
        self.manifest().has(Capability::Idempotency)
    }
}

/// Reads credential `name` of slot `slot` (every plugin's secrets: provider keys, webhook secrets, storage
/// access keys): the operator's mounted file `$FAXBOT_CREDENTIALS_DIR/<slot>.<name>`, else the environment
/// variable `env` for deployments outside Kubernetes.
pub fn credential(slot: &str, name: &str, env: &str) -> Option<String> {
    if let Some(dir) = std::env::var_os("FAXBOT_CREDENTIALS_DIR") {
        let path = std::path::Path::new(&dir).join(format!("{slot}.{name}"));
        if let Ok(value) = std::fs::read_to_string(path) {
            let value = value.trim().to_string();
            if !value.is_empty() {
                return Some(value);
            }
        }
    }
    std::env::var(env).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Why a slot binding could not become a provider.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Not a known outbound plugin in this build.
    #[error("plugin `{0}` is not available as an outbound provider in this build")]
    Unknown(String),
    /// Not a known inbound plugin in this build.
    #[error("plugin `{0}` is not available as an inbound provider in this build")]
    UnknownInbound(String),
    /// A manifest that is not signed by a trusted publisher, in a document that does not allow that.
    #[error("{0}")]
    Untrusted(String),
    /// Settings did not validate.
    #[error("invalid settings for plugin `{plugin}`: {problems}")]
    Settings {
        /// Plugin id.
        plugin: String,
        /// What is wrong.
        problems: String,
    },
}

/// Builds the outbound provider for a slot binding. `slot` names its credential files (`<slot>.<name>`):
/// `outbound` for the primary, `failover<N>` for the N-th failover provider.
/// `http_manifests` are the runtime config's HTTP plugin manifests, each a plugin of its own id.
pub fn build_outbound(
    binding: &SlotBinding,
    slot: &str,
    http_manifests: &[faxbot_contract::manifest::HttpManifest],
    db: &Db,
    writer: &Writer,
) -> Result<Arc<dyn OutboundProvider>, PluginError> {
    match binding.plugin.as_str() {
        SIMULATED_LINE => {
            let settings: SimulatedLineSettings =
                manifests::parse_settings(&binding.settings).map_err(settings_error(binding))?;
            Ok(Arc::new(simulated::SimulatedLine::new(settings, db.clone(), writer.clone())))
        }
        manifests::PHAXIO => {
            let settings: manifests::PhaxioSettings =
                manifests::parse_settings(&binding.settings).map_err(settings_error(binding))?;
            let manifest =
                manifests::manifest(manifests::PHAXIO).ok_or_else(|| PluginError::Unknown(binding.plugin.clone()))?;
            let missing = |name: &str, env: &str| PluginError::Settings {
                plugin: binding.plugin.clone(),
                problems: format!(
                    "credential `{name}` missing: mount it as $FAXBOT_CREDENTIALS_DIR/{slot}.{name} or set {env}"
                ),
            };
            let key =
                credential(slot, "apiKey", "PHAXIO_API_KEY").ok_or_else(|| missing("apiKey", "PHAXIO_API_KEY"))?;
            let secret = credential(slot, "apiSecret", "PHAXIO_API_SECRET")
                .ok_or_else(|| missing("apiSecret", "PHAXIO_API_SECRET"))?;
            let token = credential(slot, "webhookToken", "PHAXIO_WEBHOOK_TOKEN");
            Ok(Arc::new(phaxio::Phaxio::new(manifest, settings, key, secret, token)))
        }
        manifests::SINCH => Ok(sinch::build_sinch(binding, slot)?),
        manifests::SIP => Ok(sip::build_outbound(binding, slot, db, writer)?),
        manifests::EXTERNAL => Ok(external::build(binding, slot)?),
        other => match http_manifests.iter().find(|m| m.id == other) {
            Some(manifest) => Ok(http::build(manifest, binding, slot)?),
            None => Err(PluginError::Unknown(other.to_string())),
        },
    }
}

/// Turns settings problems into the plugin error that names the plugin and every problem.
pub(crate) fn settings_error(binding: &SlotBinding) -> impl Fn(Vec<(String, String)>) -> PluginError + '_ {
    move |p| PluginError::Settings {
        plugin: binding.plugin.clone(),
        problems: p.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; "),
    }
}

/// Builds the provider of the inbound slot. Its credentials are the slot's own (`inbound.<name>` files):
/// the receive side of an account may be keyed differently from the send side.
pub fn build_inbound(binding: &SlotBinding) -> Result<Arc<dyn InboundProvider>, PluginError> {
    match binding.plugin.as_str() {
        SIMULATED_LINE => {
            let settings: SimulatedLineSettings =
                manifests::parse_settings(&binding.settings).map_err(settings_error(binding))?;
            Ok(Arc::new(simulated::SimulatedInbound::new(settings)))
        }
        manifests::PHAXIO => {
            let settings: manifests::PhaxioSettings =
                manifests::parse_settings(&binding.settings).map_err(settings_error(binding))?;
            let manifest =
                manifests::manifest(manifests::PHAXIO).ok_or_else(|| PluginError::Unknown(binding.plugin.clone()))?;
            let token = credential("inbound", "webhookToken", "PHAXIO_INBOUND_WEBHOOK_TOKEN");
            if token.is_none() || settings.callback_url.is_none() {
                tracing::warn!(
                    "phaxio inbound has no callbackUrl or no webhookToken credential: every inbound callback will be \
                     refused until both are configured"
                );
            }
            Ok(Arc::new(phaxio::PhaxioInbound::new(manifest, settings, token)))
        }
        manifests::SINCH => Ok(sinch::build_sinch(binding, "inbound")?),
        manifests::SIP => Ok(sip::build_inbound(binding)?),
        other => Err(PluginError::UnknownInbound(other.to_string())),
    }
}
