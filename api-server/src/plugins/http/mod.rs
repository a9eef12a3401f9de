//! The `http` plugin: an outbound provider defined by an HTTP plugin manifest
//! ([`faxbot_contract::manifest`]) instead of code.
//!
//! Each manifest in the runtime config is a plugin of its own id. This module does the I/O around pure
//! parts: [`request`] builds an action's request from its templates, [`answer`] says what an answer means,
//! [`webhook`] verifies callbacks. Requests go through the provider client ([`super::client`]: redirects
//! off, names resolved through the address guard), only to the manifest's `allowedDomains`, with the
//! manifest's timeout and the 4 MiB answer limit of every plugin.
//!
//! When the manifest has a `list` action the plugin asks it before every submission and adopts a fax an
//! earlier, interrupted submission created, as the built-in Phaxio plugin does with its job tag: that is what
//! makes resubmission safe, so such a manifest counts as idempotent.

pub mod answer;
pub mod request;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use faxbot_contract::manifest::signature;
use faxbot_contract::manifest::template::Values;
use faxbot_contract::manifest::{Action, Body, HttpManifest, Verification};
use faxbot_contract::{PluginManifest, SlotBinding};
use serde_json::Value;

use super::{
    OutboundProvider, PluginError, ProviderError, RemoteStatus, SendRequest, StatusEvent, Submission, WebhookInfo,
    WebhookRequest,
};
use request::{Prepared, PreparedBody};

/// A provider defined by a manifest.
pub struct HttpPlugin {
    manifest: HttpManifest,
    plugin: PluginManifest,
    values: Values,
    callback_url: Option<String>,
    poll_interval: Duration,
    timeout: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpPlugin {
    // Credentials and settings stay out of Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPlugin").field("id", &self.manifest.id).finish_non_exhaustive()
    }
}

/// The environment variable a credential is read from outside Kubernetes: `FAXBOT_<ID>_<NAME>`, upper
/// case, `-` as `_` (`FAXBOT_PHAXIO_HTTP_APIKEY`).
pub fn credential_env(id: &str, name: &str) -> String {
    format!("FAXBOT_{}_{}", id.replace('-', "_"), name).to_ascii_uppercase()
}

/// The trusted publisher keys (key id → base64 Ed25519 public key): the JSON object in the credential file
/// `$FAXBOT_CREDENTIALS_DIR/registry.publisherKeys` (the operator mounts it from a Secret), else in
/// `FAXBOT_PUBLISHER_KEYS`. Unreadable keys trust nobody, which only makes signed manifests count as
/// unverified.
pub fn publisher_keys() -> BTreeMap<String, String> {
    match super::credential("registry", "publisherKeys", "FAXBOT_PUBLISHER_KEYS") {
        None => BTreeMap::new(),
        Some(text) => serde_json::from_str(&text).unwrap_or_else(|_| {
            tracing::warn!("the publisher keys are not a JSON object of key id to base64 public key: none trusted");
            BTreeMap::new()
        }),
    }
}

/// The publisher that vouches for each manifest of a document, by id: the key id of a verified one
/// (`builtin` for a manifest this release ships), `None` for an unverified one the document allows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Admitted {
    /// The manifests in use (`manifests`).
    pub manifests: BTreeMap<String, Option<String>>,
    /// The registry's catalogue (`catalog`).
    pub catalog: BTreeMap<String, Option<String>>,
}

/// Checks every manifest of the document, those in use and those on offer, against the trusted keys; an
/// error naming the first that may not be used or listed.
pub fn admit_all(config: &faxbot_contract::RuntimeConfig) -> Result<Admitted, PluginError> {
    let keys =
        if config.manifests.is_empty() && config.catalog.is_empty() { BTreeMap::new() } else { publisher_keys() };
    let admit = |list: &[HttpManifest], place: &str| {
        let mut verified = BTreeMap::new();
        for manifest in list {
            let trust = signature::trust(manifest, &keys);
            signature::admit(&manifest.id, &trust, config.features.plugin_install)
                .map_err(|why| PluginError::Untrusted(format!("{place}{why}")))?;
            let publisher = match trust {
                signature::Trust::Verified(key) => Some(key),
                _ => None,
            };
            verified.insert(manifest.id.clone(), publisher);
        }
        Ok::<_, PluginError>(verified)
    };
    Ok(Admitted { manifests: admit(&config.manifests, "")?, catalog: admit(&config.catalog, "catalog: ")? })
}

/// The wall clock in Unix seconds, for a callback's signed time.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Builds the provider of a slot bound to `manifest` (already checked with the runtime config).
pub fn build(manifest: &HttpManifest, binding: &SlotBinding, slot: &str) -> Result<Arc<HttpPlugin>, PluginError> {
    build_with(manifest, binding, slot, |name, env| super::credential(slot, name, env))
}

/// [`build`] with the credentials from `credential(name, env)` instead of the mounted files and the
/// environment (the conformance suite hands a manifest the simulated provider's keys this way).
pub fn build_with(
    manifest: &HttpManifest,
    binding: &SlotBinding,
    slot: &str,
    credential: impl Fn(&str, &str) -> Option<String>,
) -> Result<Arc<HttpPlugin>, PluginError> {
    manifest.check_settings(&binding.settings).map_err(super::settings_error(binding))?;
    let mut values = Values::default();
    for spec in &manifest.credentials {
        let env = credential_env(&manifest.id, &spec.name);
        match credential(&spec.name, &env) {
            Some(value) => {
                values.credentials.insert(spec.name.clone(), value);
            }
            None if spec.required => {
                return Err(PluginError::Settings {
                    plugin: binding.plugin.clone(),
                    problems: format!(
                        "credential `{}` missing: mount it as $FAXBOT_CREDENTIALS_DIR/{slot}.{} or set {env}",
                        spec.name, spec.name
                    ),
                });
            }
            None => {}
        }
    }
    let settings = binding.settings.as_object().cloned().unwrap_or_default();
    for spec in &manifest.settings {
        if let Some(value) = settings.get(&spec.name).and_then(Value::as_str) {
            values.settings.insert(spec.name.clone(), value.to_string());
        }
    }
    let callback_url = settings.get("callbackUrl").and_then(Value::as_str).map(str::to_string);
    if let Some(url) = &callback_url {
        values.set("callback_url", url.clone());
    }
    let poll_ms = settings.get("pollIntervalMs").and_then(Value::as_u64).unwrap_or(manifest.limits.poll_interval_ms);
    Ok(Arc::new(HttpPlugin {
        plugin: manifest.plugin_manifest(),
        values,
        callback_url,
        poll_interval: Duration::from_millis(poll_ms),
        timeout: Duration::from_millis(manifest.limits.timeout_ms),
        client: super::client::provider_client(manifest.allow_private_network),
        manifest: manifest.clone(),
    }))
}

impl HttpPlugin {
    fn prepare(&self, action: &Action, name: &'static str, values: &Values) -> Result<Prepared, ProviderError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        request::prepare(&self.manifest, action, name, values, now)
            .map_err(|e| ProviderError::Rejected(format!("{} manifest: {e}", self.manifest.id)))
    }

    /// Sends a prepared request and interprets the answer by `action`'s response map.
    async fn call(
        &self,
        action: &Action,
        prepared: Prepared,
        document: Option<&bytes::Bytes>,
    ) -> Result<Value, ProviderError> {
        let method = reqwest::Method::from_bytes(prepared.method.as_str().as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut builder = self.client.request(method, &prepared.url).timeout(self.timeout);
        for (name, value) in &prepared.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = match prepared.body {
            PreparedBody::None => builder,
            PreparedBody::Json(bytes) => builder.header("content-type", "application/json").body(bytes),
            PreparedBody::Form(bytes) => {
                builder.header("content-type", "application/x-www-form-urlencoded").body(bytes)
            }
            PreparedBody::Multipart { fields, document: part } => {
                let mut form = reqwest::multipart::Form::new();
                for (name, value) in fields {
                    form = form.text(name, value);
                }
                if let Some((field, file_name)) = part {
                    let document = document.ok_or_else(|| ProviderError::Rejected("document unavailable".into()))?;
                    let part = reqwest::multipart::Part::bytes(document.to_vec())
                        .file_name(file_name)
                        .mime_str("application/pdf")
                        .map_err(|_| ProviderError::Rejected("invalid document type".into()))?;
                    form = form.part(field, part);
                }
                builder.multipart(form)
            }
        };
        // A connection that could not be made reached no provider: an outage, retried or failed over. Anything
        // later (a timeout, a connection lost mid-request) leaves the outcome unknown: Transport, which the
        // queue retries only for a manifest that can find an earlier submission (`list`).
        let response = builder.send().await.map_err(|e| {
            if e.is_connect() {
                ProviderError::Unavailable {
                    message: format!("{}: connection failed", self.manifest.name),
                    retry_after: None,
                }
            } else {
                ProviderError::Transport(if e.is_timeout() { "timed out".into() } else { "connection lost".into() })
            }
        })?;
        let status = response.status().as_u16();
        let retry_after =
            answer::retry_after(response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()));
        let body = super::response::bounded(response).await.and_then(|b| {
            if b.iter().all(u8::is_ascii_whitespace) { Some(Value::Null) } else { serde_json::from_slice(&b).ok() }
        });
        answer::interpret(&self.manifest, &action.response, status, retry_after, body)
    }

    /// The fax an earlier submission of this job created, if the manifest can list and one exists.
    async fn existing(&self, values: &Values) -> Result<Option<Value>, ProviderError> {
        let Some(list) = &self.manifest.actions.list else { return Ok(None) };
        let prepared = self.prepare(list, "list", values)?;
        let body = self.call(list, prepared, None).await?;
        let items = list.response.items.as_deref().and_then(|p| answer::at(&body, p)).and_then(Value::as_array);
        Ok(items.and_then(|items| items.first().cloned()))
    }

    fn fax_values(&self, provider_sid: &str) -> Values {
        let mut values = self.values.clone();
        values.set("provider_id", provider_sid);
        values
    }
}

#[async_trait]
impl OutboundProvider for HttpPlugin {
    fn manifest(&self) -> &PluginManifest {
        &self.plugin
    }

    fn needs_document(&self) -> bool {
        matches!(&self.manifest.actions.send.body, Some(Body::Multipart { document: Some(_), .. }))
    }

    fn wants_content_url(&self) -> bool {
        !self.needs_document()
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<Submission, ProviderError> {
        let mut values = self.values.clone();
        values
            .set("to", request.to.expose())
            .set("job_id", request.job_id.as_str())
            .set("idempotency_key", request.idempotency_key);
        if let Some(pages) = request.pages {
            values.set("pages", pages.to_string());
        }
        if let Some(url) = &request.content_url {
            values.set("document_url", url.clone());
        }
        let check_after = Some(self.poll_interval);
        if let Some(fax) = self.existing(&values).await? {
            let list = self.manifest.actions.list.as_ref().map(|l| &l.response);
            let provider_sid = list
                .and_then(|r| r.provider_id.as_deref())
                .and_then(|p| answer::text(answer::at(&fax, p)))
                .ok_or_else(|| {
                    ProviderError::Transport(format!("{} listed a fax without an id", self.manifest.name))
                })?;
            let status = list.map_or(RemoteStatus::Queued, |r| answer::remote_status(&fax, r, &self.manifest.statuses));
            tracing::info!(plugin = %self.manifest.id, provider_sid = %provider_sid,
                "adopted a fax an earlier submission already created");
            return Ok(Submission { provider_sid, status, check_after });
        }
        let send = &self.manifest.actions.send;
        let prepared = self.prepare(send, "send", &values)?;
        let body = self.call(send, prepared, request.document.as_ref()).await?;
        let provider_sid = send
            .response
            .provider_id
            .as_deref()
            .and_then(|p| answer::text(answer::at(&body, p)))
            .ok_or_else(|| ProviderError::Transport(format!("{} answered without an id", self.manifest.name)))?;
        let status = match send.response.status {
            Some(_) => answer::remote_status(&body, &send.response, &self.manifest.statuses),
            None => RemoteStatus::Queued,
        };
        Ok(Submission { provider_sid, status, check_after })
    }

    async fn status(&self, provider_sid: &str) -> Result<RemoteStatus, ProviderError> {
        let action = &self.manifest.actions.status;
        let prepared = self.prepare(action, "status", &self.fax_values(provider_sid))?;
        let body = self.call(action, prepared, None).await?;
        Ok(answer::remote_status(&body, &action.response, &self.manifest.statuses))
    }

    async fn cancel(&self, provider_sid: &str) -> Result<(), ProviderError> {
        let Some(action) = &self.manifest.actions.cancel else { return Err(ProviderError::Unsupported) };
        let prepared = self.prepare(action, "cancel", &self.fax_values(provider_sid))?;
        self.call(action, prepared, None).await.map(|_| ())
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    fn webhook_info(&self) -> Option<WebhookInfo> {
        let w = self.manifest.webhook.as_ref()?;
        let verification = match &w.verification {
            Verification::Hmac { header, algorithm, .. } => {
                format!("{header}: HMAC-{} as the manifest declares", format!("{algorithm:?}").to_uppercase())
            }
            Verification::Ed25519 { header, .. } => format!("{header}: Ed25519 with the provider's public key"),
            Verification::Basic { .. } => "HTTP Basic credentials in the callback URL".into(),
            Verification::Token { header, .. } => format!("shared token in {header}"),
            Verification::None { .. } => "none (allowUnverified)".into(),
        };
        // Without headers a configured plugin's precheck can only miss the proof's header.
        let ready = matches!(
            webhook::precheck(w, &self.values, self.callback_url.as_deref(), &[], unix_now()),
            Ok(()) | Err(webhook::Refusal::Missing(_))
        );
        Some(WebhookInfo { verification: verification.into(), callback_url: self.callback_url.clone(), ready })
    }

    fn precheck(&self, headers: &[(String, String)]) -> Result<(), ProviderError> {
        let Some(w) = &self.manifest.webhook else { return Err(ProviderError::Unsupported) };
        webhook::precheck(w, &self.values, self.callback_url.as_deref(), headers, unix_now())
            .map_err(|e| ProviderError::Unauthorized(e.to_string()))
    }

    async fn webhook(&self, request: &WebhookRequest<'_>) -> Result<Vec<StatusEvent>, ProviderError> {
        let Some(w) = &self.manifest.webhook else { return Err(ProviderError::Unsupported) };
        let now = unix_now();
        match webhook::verify(w, &self.values, self.callback_url.as_deref(), request.headers, request.body, now) {
            Ok(provider_sid) => Ok(vec![StatusEvent { provider_sid, status: RemoteStatus::InProgress }]),
            Err(webhook::Refusal::NoFax) => Err(ProviderError::Rejected("webhook without a fax id".into())),
            Err(webhook::Refusal::Malformed) => Err(ProviderError::Rejected("malformed webhook body".into())),
            Err(e) => Err(ProviderError::Unauthorized(e.to_string())),
        }
    }

    fn tools(&self) -> &[faxbot_contract::manifest::ToolSpec] {
        &self.manifest.tools
    }

    async fn call_tool(&self, name: &str, arguments: &BTreeMap<String, String>) -> Result<Value, ProviderError> {
        let Some(tool) = self.manifest.tools.iter().find(|t| t.name == name) else {
            return Err(ProviderError::Unsupported);
        };
        let mut values = self.values.clone();
        values.arguments = arguments.clone();
        let prepared = self.prepare(&tool.action, "tool", &values)?;
        let body = self.call(&tool.action, prepared, None).await?;
        Ok(match &tool.result {
            Some(pointer) => answer::at(&body, pointer).cloned().unwrap_or(Value::Null),
            None => body,
        })
    }

    fn status_body_limit(&self) -> usize {
        self.manifest.webhook.as_ref().map_or(super::STATUS_LIMIT, |w| w.max_bytes)
    }
}
