//! The `external` plugin: a provider that runs as a separate process beside the server (a sidecar container
//! in the API pod) and speaks the sidecar protocol ([`faxbot_contract::sidecar`], `docs/plugin-protocol.yaml`)
//! over loopback.
//!
//! The server keeps everything that makes a job safe — the durable queue, retries, failover, the PHI guard,
//! audit — and the sidecar only talks to its provider. [`wire`] says what a sidecar's answers mean (pure,
//! table-tested); this module does the I/O around it. [`host`] is the other direction: it serves any
//! provider of this server over the same protocol, which is how the conformance suite runs one set of checks
//! against built-in, manifest and sidecar plugins alike.
//!
//! The sidecar's manifest is read once, when the plugin is built (in the background: the sidecar container
//! may start after the server) and again on first use if that failed. Until it is known the plugin assumes
//! the safe answers: not idempotent (a timed-out submission is failed as ambiguous, never repeated) and no
//! callbacks (refused before their bodies are read).

pub mod host;
pub mod wire;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use faxbot_contract::plugins::{self as manifests, ExternalSettings, PluginManifest};
use faxbot_contract::sidecar::{self, SidecarCapability, SidecarManifest};
use faxbot_contract::{SlotBinding, phi};

use super::{
    OutboundProvider, PluginError, ProviderError, RemoteStatus, SendRequest, StatusEvent, Submission, WebhookInfo,
    WebhookRequest,
};

/// A sidecar plugin.
pub struct ExternalPlugin {
    plugin: PluginManifest,
    settings: ExternalSettings,
    base: String,
    token: Option<String>,
    client: reqwest::Client,
    remote: OnceLock<SidecarManifest>,
}

impl std::fmt::Debug for ExternalPlugin {
    // The token stays out of Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalPlugin").field("url", &self.base).finish_non_exhaustive()
    }
}

/// Builds the provider of a slot bound to `external`; starts reading the sidecar's manifest.
pub fn build(binding: &SlotBinding, slot: &str) -> Result<Arc<ExternalPlugin>, PluginError> {
    let settings: ExternalSettings =
        manifests::parse_settings(&binding.settings).map_err(super::settings_error(binding))?;
    let plugin =
        manifests::manifest(manifests::EXTERNAL).ok_or_else(|| PluginError::Unknown(binding.plugin.clone()))?;
    let token = super::credential(slot, "pluginToken", "FAXBOT_PLUGIN_TOKEN");
    let client = reqwest::Client::builder()
        // Only loopback is ever called (the settings allow nothing else); no proxy may take the request
        // elsewhere, and a redirect would.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| PluginError::Settings { plugin: binding.plugin.clone(), problems: e.to_string() })?;
    let plugin = Arc::new(ExternalPlugin {
        plugin,
        base: settings.url.trim_end_matches('/').to_string(),
        settings,
        token,
        client,
        remote: OnceLock::new(),
    });
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let early = plugin.clone();
        runtime.spawn(async move {
            if let Err(e) = early.manifest_now().await {
                tracing::warn!(error = %e, "the sidecar plugin's manifest could not be read yet; retried on first use");
            }
        });
    }
    Ok(plugin)
}

impl ExternalPlugin {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut builder = self
            .client
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_millis(self.settings.timeout_ms))
            .header(sidecar::PROTOCOL_HEADER, sidecar::PROTOCOL_VERSION.to_string());
        if let Some(token) = &self.token {
            builder = builder.bearer_auth(token);
        }
        builder
    }

    /// Sends a request and reads the answer (bounded), or maps the failure.
    async fn call(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<(u16, Option<String>, bytes::Bytes), ProviderError> {
        let response = builder.send().await.map_err(|e| {
            if e.is_connect() {
                // Nothing reached the sidecar, so nothing was sent: retried or failed over.
                ProviderError::Unavailable { message: "the sidecar plugin is not reachable".into(), retry_after: None }
            } else if e.is_timeout() {
                ProviderError::Transport("the sidecar plugin did not answer in time".into())
            } else {
                ProviderError::Transport("the connection to the sidecar plugin was lost".into())
            }
        })?;
        let status = response.status().as_u16();
        let retry_after =
            response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = super::response::bounded_to(response, sidecar::ANSWER_LIMIT).await.ok_or_else(|| {
            ProviderError::Unavailable {
                message: "the sidecar plugin's answer was too large or cut off".into(),
                retry_after: None,
            }
        })?;
        Ok((status, retry_after, body))
    }

    /// The sidecar's manifest, read now if it is not known yet, and checked.
    async fn manifest_now(&self) -> Result<&SidecarManifest, ProviderError> {
        if let Some(m) = self.remote.get() {
            return Ok(m);
        }
        let (status, retry_after, body) = self.call(self.request(reqwest::Method::GET, "/v1/manifest")).await?;
        let manifest: SidecarManifest = wire::answer(status, retry_after.as_deref(), &body)?;
        let problems = sidecar::check_manifest(&manifest);
        if !problems.is_empty() {
            let text = problems.iter().map(|(f, p)| format!("{f}: {p}")).collect::<Vec<_>>().join("; ");
            return Err(ProviderError::Unavailable {
                message: format!(
                    "the sidecar plugin's manifest is invalid: {}",
                    phi::mask_numbers(&text, phi::LOG_MIN_DIGITS)
                ),
                retry_after: None,
            });
        }
        if self.settings.hipaa_compliant && !manifest.hipaa_compliant {
            return Err(ProviderError::Unavailable {
                message: "the provider was admitted as HIPAA-compliant, but the sidecar plugin's manifest does not \
                          declare hipaaCompliant: nothing is sent through it"
                    .into(),
                retry_after: None,
            });
        }
        tracing::info!(plugin = %manifest.id, version = %manifest.version, idempotent = manifest.idempotent,
            "sidecar plugin manifest read");
        Ok(self.remote.get_or_init(|| manifest))
    }

    fn known(&self) -> Option<&SidecarManifest> {
        self.remote.get()
    }
}

#[async_trait]
impl OutboundProvider for ExternalPlugin {
    fn manifest(&self) -> &PluginManifest {
        &self.plugin
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<Submission, ProviderError> {
        let manifest = self.manifest_now().await?;
        let document = match (&request.document, manifest.needs_document) {
            (Some(bytes), true) => Some(sidecar::Document {
                content_type: "application/pdf".into(),
                base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            }),
            (None, true) => return Err(ProviderError::Rejected("document unavailable".into())),
            (_, false) => None,
        };
        let body = sidecar::SendRequest {
            job_id: request.job_id.to_string(),
            to: request.to.expose().to_string(),
            idempotency_key: request.idempotency_key.to_string(),
            pages: request.pages,
            document,
        };
        let builder = self.request(reqwest::Method::POST, "/v1/send").json(&body);
        let (status, retry_after, answer) = self.call(builder).await?;
        let answer: sidecar::FaxAnswer = wire::answer(status, retry_after.as_deref(), &answer)?;
        wire::submission(answer)
    }

    async fn status(&self, provider_sid: &str) -> Result<RemoteStatus, ProviderError> {
        let path = format!("/v1/faxes/{}", wire::path_segment(provider_sid));
        let (status, retry_after, answer) = self.call(self.request(reqwest::Method::GET, &path)).await?;
        let answer: sidecar::FaxAnswer = wire::answer(status, retry_after.as_deref(), &answer)?;
        Ok(wire::remote_status(&answer))
    }

    async fn cancel(&self, provider_sid: &str) -> Result<(), ProviderError> {
        if !self.manifest_now().await?.capabilities.contains(&SidecarCapability::Cancel) {
            return Err(ProviderError::Unsupported);
        }
        let path = format!("/v1/faxes/{}/cancel", wire::path_segment(provider_sid));
        let (status, retry_after, answer) = self.call(self.request(reqwest::Method::POST, &path)).await?;
        wire::no_content(status, retry_after.as_deref(), &answer)
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.known().map_or(5000, |m| m.poll_interval_ms))
    }

    fn needs_document(&self) -> bool {
        // Until the manifest is known, read it: `send` reads the manifest first and drops what is not needed.
        self.known().is_none_or(|m| m.needs_document)
    }

    async fn webhook(&self, request: &WebhookRequest<'_>) -> Result<Vec<StatusEvent>, ProviderError> {
        let takes = self.manifest_now().await?.capabilities.contains(&SidecarCapability::Webhook);
        if !takes {
            return Err(ProviderError::Unsupported);
        }
        let body = sidecar::WebhookRequest {
            url: self.settings.callback_url.clone().unwrap_or_else(|| request.url.to_string()),
            headers: request.headers.to_vec(),
            body_base64: base64::engine::general_purpose::STANDARD.encode(request.body),
        };
        let builder = self.request(reqwest::Method::POST, "/v1/webhook").json(&body);
        let (status, retry_after, answer) = self.call(builder).await?;
        let answer: sidecar::WebhookAnswer = wire::webhook_answer(status, retry_after.as_deref(), &answer)?;
        Ok(answer
            .events
            .into_iter()
            .map(|e| StatusEvent { status: wire::remote_status(&e), provider_sid: e.provider_id })
            .collect())
    }

    fn webhook_info(&self) -> Option<WebhookInfo> {
        let webhook = self.known().and_then(|m| m.webhook.as_ref());
        Some(WebhookInfo {
            verification: match webhook {
                Some(w) => std::borrow::Cow::Owned(format!("{} (checked by the sidecar plugin)", w.verification)),
                None => {
                    std::borrow::Cow::Borrowed("the sidecar plugin's own (its manifest not read yet, or no webhooks)")
                }
            },
            callback_url: self.settings.callback_url.clone(),
            ready: webhook.is_some() && self.settings.callback_url.is_some(),
        })
    }

    fn precheck(&self, _headers: &[(String, String)]) -> Result<(), ProviderError> {
        // Only the sidecar can verify its provider's signatures; without a manifest that declares callbacks,
        // none is read at all.
        match self.known() {
            Some(m) if m.capabilities.contains(&SidecarCapability::Webhook) && m.webhook.is_some() => Ok(()),
            _ => Err(ProviderError::Unsupported),
        }
    }

    fn status_body_limit(&self) -> usize {
        self.known().and_then(|m| m.webhook.as_ref()).map_or(super::STATUS_LIMIT, |w| w.max_bytes)
    }

    fn idempotent(&self) -> bool {
        self.known().is_some_and(|m| m.idempotent)
    }
}
