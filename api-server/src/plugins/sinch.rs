//! Sinch Fax API v3 plugin (`shared/reference/providers.md` §2): outbound faxes uploaded as multipart, status
//! by polling `GET faxes/{id}` and by FAX_COMPLETED callbacks, and inbound faxes from INCOMING_FAX callbacks.
//!
//! Authentication is OAuth2 client credentials by default, because Sinch rate-limits Basic heavily: the
//! access key buys a Bearer token that is cached until shortly before `expires_in`, shared by concurrent
//! callers (one fetch behind a mutex), and refreshed once when the fax API answers 401 (a token revoked
//! early). Basic (`authMethod: basic`) sends the key on every call.
//!
//! Sinch has no idempotency key. Every fax carries `labels[faxbot_job]=<job id>`, and each submission first
//! lists the recent outbound faxes to the same number (`direction`, `to`, the range key `createTime>` are documented
//! filters) and adopts the one with this job's label instead of sending again. That makes a resubmission
//! after a timeout or a crash safe, which is why the manifest declares the idempotency capability.
//!
//! Callbacks have no signature in Sinch Fax v3; their only protection is HTTP Basic credentials embedded in
//! the callback URL. The plugin embeds `webhookUser` and the `webhookPassword` credential into `callbackUrl`,
//! and verifies `Authorization` in constant time before it reads a byte of the body. Without both, no
//! callback URL is sent and every callback is refused.
//!
//! Credentials (`keyId`, `keySecret`, `webhookPassword`) are read once at construction like Phaxio's; they,
//! the tokens, the numbers and the documents never reach a log line or a Debug output, and provider error
//! texts are digit-redacted because nothing guarantees they are free of numbers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use faxbot_contract::plugins::{self as manifests, SinchAuthMethod, SinchSettings};
use faxbot_contract::{PluginManifest, SlotBinding};
use serde_json::Value;

use super::credential;
use super::{
    InboundProvider, OutboundProvider, PluginError, ProviderError, ReceivedFax, RemoteStatus, SendRequest, StatusEvent,
    Submission, WebhookInfo, WebhookRequest,
};
use crate::phi_guard::guard_text as redact_digits;

/// Label that carries the job id on every fax, for finding an interrupted submission again.
pub const JOB_LABEL: &str = "faxbot_job";

/// How far back the dedupe lookup searches. Sinch's own default window is a week, and a job that is still
/// being resubmitted after that has long passed its status deadline.
const DEDUPE_WINDOW_DAYS: i64 = 7;

/// Longest provider error text kept in a job's error.
const MAX_MESSAGE: usize = 300;

/// A cached OAuth2 access token.
struct Token {
    value: String,
    refresh_at: Instant,
}

/// The Sinch plugin; one instance serves the outbound slot, another (or the same) the inbound slot.
pub struct Sinch {
    manifest: PluginManifest,
    settings: SinchSettings,
    base_url: String,
    client: reqwest::Client,
    key_id: String,
    key_secret: String,
    webhook_password: Option<String>,
    /// `callbackUrl` with the webhook credentials embedded (a secret), when callbacks are configured.
    callback: Option<String>,
    token: tokio::sync::Mutex<Option<Token>>,
}

impl std::fmt::Debug for Sinch {
    // Keys, tokens and the credential-bearing callback URL stay out of Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sinch")
            .field("base_url", &self.base_url)
            .field("auth_method", &self.settings.auth_method)
            .field("callbacks", &self.callback.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a Sinch plugin for `slot` (`outbound` or `inbound`): the slot decides which mounted credential
/// files are read (`<slot>.keyId`, …), so each slot may use its own access key.
pub fn build_sinch(binding: &SlotBinding, slot: &str) -> Result<Arc<Sinch>, PluginError> {
    let settings: SinchSettings =
        manifests::parse_settings(&binding.settings).map_err(super::settings_error(binding))?;
    let manifest = manifests::manifest(manifests::SINCH).ok_or_else(|| PluginError::Unknown(binding.plugin.clone()))?;
    let missing = |name: &str, env: &str| PluginError::Settings {
        plugin: binding.plugin.clone(),
        problems: format!(
            "credential `{name}` missing: mount it as $FAXBOT_CREDENTIALS_DIR/{slot}.{name} or set {env}"
        ),
    };
    let key_id = credential(slot, "keyId", "SINCH_KEY_ID").ok_or_else(|| missing("keyId", "SINCH_KEY_ID"))?;
    let key_secret =
        credential(slot, "keySecret", "SINCH_KEY_SECRET").ok_or_else(|| missing("keySecret", "SINCH_KEY_SECRET"))?;
    let webhook_password = credential(slot, "webhookPassword", "SINCH_WEBHOOK_PASSWORD");
    Ok(Arc::new(Sinch::new(manifest, settings, key_id, key_secret, webhook_password)))
}

fn transport(e: &reqwest::Error) -> ProviderError {
    // reqwest's own message names the URL, which can carry a number (the dedupe lookup): never pass it on.
    ProviderError::Transport(if e.is_timeout() { "timed out".into() } else { "connection failed".into() })
}

/// Retry-After as seconds or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
}

impl Sinch {
    /// A plugin with `settings` and the given credentials. Callbacks are requested only when they can be
    /// verified (a callback URL, a webhook user and a webhook password).
    pub fn new(
        manifest: PluginManifest,
        settings: SinchSettings,
        key_id: String,
        key_secret: String,
        webhook_password: Option<String>,
    ) -> Self {
        let client = super::client::provider_client(settings.allow_private_network);
        let callback = match (&settings.callback_url, &settings.webhook_user, &webhook_password) {
            (Some(url), Some(user), Some(password)) => reqwest::Url::parse(url).ok().and_then(|mut url| {
                (url.set_username(user).is_ok() && url.set_password(Some(password)).is_ok()).then(|| url.to_string())
            }),
            (Some(_), _, _) => {
                tracing::warn!(
                    "Sinch callbackUrl is ignored: webhookUser and the webhookPassword credential are needed to \
                     verify callbacks; status comes from polling only"
                );
                None
            }
            _ => None,
        };
        Sinch {
            base_url: settings.effective_base_url(),
            manifest,
            settings,
            client,
            key_id,
            key_secret,
            webhook_password,
            callback,
            token: tokio::sync::Mutex::new(None),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}projects/{}/{path}", self.base_url, self.settings.project_id)
    }

    /// A valid Bearer token: the cached one, or a new one fetched while holding the lock, so concurrent
    /// callers share a single fetch.
    async fn bearer(&self) -> Result<String, ProviderError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let requested = Instant::now();
        let response = self
            .client
            .post(&self.settings.auth_url)
            .basic_auth(&self.key_id, Some(&self.key_secret))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let hint = retry_after(response.headers());
        let body: Value = super::response::bounded(response)
            .await
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        match status {
            200..=299 => {}
            400 | 401 | 403 => {
                return Err(ProviderError::Unauthorized(format!(
                    "Sinch refused the access key at the OAuth2 token endpoint (HTTP {status})"
                )));
            }
            429 => {
                return Err(ProviderError::RateLimited {
                    message: "Sinch OAuth2 token endpoint: HTTP 429".into(),
                    retry_after: hint,
                });
            }
            500..=599 => {
                return Err(ProviderError::Unavailable {
                    message: format!("Sinch OAuth2 token endpoint: HTTP {status}"),
                    retry_after: hint,
                });
            }
            _ => {
                return Err(ProviderError::Unauthorized(format!("Sinch OAuth2 token endpoint: HTTP {status}")));
            }
        }
        let value = body["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ProviderError::Unavailable {
                message: "Sinch OAuth2 token endpoint answered without an access token".into(),
                retry_after: None,
            })?
            .to_string();
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(3600));
        // Refresh a little early (a tenth of the lifetime, at most a minute), measured from the request, so a
        // token never expires between this check and Sinch's.
        let refresh_at = requested + lifetime - (lifetime / 10).min(Duration::from_secs(60));
        tracing::debug!(expires_in_secs = lifetime.as_secs(), "fetched a Sinch OAuth2 token");
        *cached = Some(Token { value: value.clone(), refresh_at });
        Ok(value)
    }

    /// Forgets `stale` if it is still the cached token (another caller may have refreshed it already).
    async fn invalidate(&self, stale: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == stale) {
            *cached = None;
        }
    }

    /// Sends the request `build` makes, authenticated; on a 401 with an OAuth2 token, refreshes the token
    /// once and repeats (a fresh request, since a multipart body cannot be replayed).
    async fn call(
        &self,
        build: impl Fn() -> Result<reqwest::RequestBuilder, ProviderError>,
    ) -> Result<Value, ProviderError> {
        let mut refreshed = false;
        loop {
            let (request, token) = match self.settings.auth_method {
                SinchAuthMethod::Basic => (build()?.basic_auth(&self.key_id, Some(&self.key_secret)), None),
                SinchAuthMethod::Oauth2 => {
                    let token = self.bearer().await?;
                    (build()?.bearer_auth(&token), Some(token))
                }
            };
            let response = request.send().await.map_err(|e| transport(&e))?;
            let status = response.status().as_u16();
            if status == 401
                && !refreshed
                && let Some(token) = token
            {
                tracing::info!("Sinch refused the OAuth2 token; fetching a new one and retrying once");
                self.invalidate(&token).await;
                refreshed = true;
                continue;
            }
            let hint = retry_after(response.headers());
            let body = super::response::bounded(response).await.ok_or_else(|| {
                ProviderError::Transport("Sinch's answer could not be read or was larger than 4 MiB".into())
            })?;
            return match status {
                // An accepted request whose answer cannot be read is ambiguous, like a timeout: retryable,
                // and the dedupe lookup finds the fax if it was created.
                200..=299 => serde_json::from_slice(&body)
                    .map_err(|_| ProviderError::Transport("Sinch answered with an unreadable body".into())),
                401 | 403 => Err(ProviderError::Unauthorized(format!(
                    "Sinch refused the access key or the project id (HTTP {status})"
                ))),
                429 => Err(ProviderError::RateLimited { message: describe_error(status, &body), retry_after: hint }),
                500..=599 => {
                    Err(ProviderError::Unavailable { message: describe_error(status, &body), retry_after: hint })
                }
                _ => Err(ProviderError::Rejected(describe_error(status, &body))),
            };
        }
    }

    /// The fax an earlier submission of this job already created, if it got that far.
    async fn existing(&self, job_id: &str, to: &str) -> Result<Option<Value>, ProviderError> {
        let since = (chrono::Utc::now() - chrono::Duration::days(DEDUPE_WINDOW_DAYS)).format("%Y-%m-%d").to_string();
        let mut url = reqwest::Url::parse(&self.url("faxes"))
            .map_err(|_| ProviderError::Rejected("invalid Sinch base URL".into()))?;
        url.query_pairs_mut()
            .append_pair("direction", "OUTBOUND")
            .append_pair("to", to)
            // The range filter is the query key `createTime>` (inclusive), as both official SDKs send it; the
            // docs' `createTime>=2021-10-01` is that key with `=2021-10-01` as its value.
            .append_pair("createTime>", &since)
            .append_pair("pageSize", "1000");
        let body = self.call(|| Ok(self.client.get(url.clone()))).await?;
        Ok(body["faxes"]
            .as_array()
            .and_then(|faxes| faxes.iter().find(|f| f["labels"][JOB_LABEL].as_str() == Some(job_id)).cloned()))
    }

    fn info(&self) -> WebhookInfo {
        WebhookInfo {
            verification: "HTTP Basic credentials embedded in the callback URL (webhookUser, webhookPassword)".into(),
            // The configured URL, never the one with the password embedded.
            callback_url: self.settings.callback_url.clone(),
            ready: self.settings.callback_url.is_some()
                && self.settings.webhook_user.is_some()
                && self.webhook_password.is_some(),
        }
    }

    /// Refuses a callback unless it carries exactly the configured Basic credentials. Nothing in the body is
    /// read before this passes.
    fn verify(&self, request: &WebhookRequest<'_>) -> Result<(), ProviderError> {
        let (Some(user), Some(password)) = (self.settings.webhook_user.as_deref(), self.webhook_password.as_deref())
        else {
            return Err(ProviderError::Unauthorized(
                "Sinch callbacks are not configured (webhookUser and the webhookPassword credential)".into(),
            ));
        };
        faxbot_webhooks::basic::verify(user, password, header(request, "authorization"))
            .map_err(|e| ProviderError::Unauthorized(e.to_string()))
    }
}

fn header<'a>(request: &'a WebhookRequest<'_>, name: &str) -> Option<&'a str> {
    request.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// A provider error body as one line for a job's error: Sinch's schema form (`code` number, `status`,
/// `details` array) and its prose form (`code` string, `error`, `details` object) both read, field
/// violations included, digit runs redacted.
pub fn describe_error(http_status: u16, body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut out = format!("Sinch HTTP {http_status}");
    let code = match &value["code"] {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    if let Some(code) = code.filter(|c| *c != http_status.to_string()) {
        out.push_str(&format!(" (code {code})"));
    }
    if let Some(name) = value["status"].as_str().or_else(|| value["error"].as_str()) {
        out.push_str(&format!(" {name}"));
    }
    if let Some(message) = value["message"].as_str().filter(|m| !m.is_empty()) {
        out.push_str(&format!(": {message}"));
    }
    let details: Vec<&Value> = match &value["details"] {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![&value["details"]],
        _ => Vec::new(),
    };
    let mut notes = Vec::new();
    for detail in details {
        for violation in detail["fieldViolations"].as_array().into_iter().flatten() {
            let field = violation["field"].as_str().unwrap_or("?");
            let description = violation["description"].as_str().unwrap_or("invalid");
            notes.push(format!("{field}: {description}"));
        }
        if let Some(reason) = detail["reason"].as_str() {
            notes.push(reason.to_string());
        }
    }
    if !notes.is_empty() {
        out.push_str(&format!(" ({})", notes.join("; ")));
    }
    redact_digits(&out).chars().take(MAX_MESSAGE).collect()
}

/// Maps a Sinch Fax object to the queue's view of it; a failure keeps Sinch's reason and error class.
pub fn remote_status(fax: &Value) -> RemoteStatus {
    match fax["status"].as_str().unwrap_or("") {
        "QUEUED" => RemoteStatus::Queued,
        "COMPLETED" => RemoteStatus::Delivered,
        "FAILURE" => {
            let message = fax["errorMessage"].as_str().filter(|m| !m.is_empty());
            let kind = fax["errorType"].as_str().filter(|t| !t.is_empty());
            let code = match &fax["errorCode"] {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                _ => None,
            };
            let class = match (kind, code) {
                (Some(k), Some(c)) => Some(format!("{k} {c}")),
                (Some(k), None) => Some(k.to_string()),
                (None, Some(c)) => Some(format!("error {c}")),
                (None, None) => None,
            };
            let reason = match (message, class) {
                (Some(m), Some(c)) => format!("{m} ({c})"),
                (Some(m), None) => m.to_string(),
                (None, Some(c)) => c,
                (None, None) => "transmission failed".into(),
            };
            RemoteStatus::Failed(redact_digits(&reason).chars().take(MAX_MESSAGE).collect())
        }
        // IN_PROGRESS, and anything Sinch adds later: keep polling.
        _ => RemoteStatus::InProgress,
    }
}

/// A Sinch fax id (a ULID); anything else is refused so that an id can never reshape a request path.
fn fax_id(value: &Value) -> Option<String> {
    value
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(String::from)
}

/// A callback after authentication: the event name, the Fax object, and the PDF when one came with it.
struct Event {
    name: String,
    fax: Value,
    document: Option<Bytes>,
}

fn pdf(bytes: Bytes) -> Option<Bytes> {
    if bytes.starts_with(b"%PDF-") {
        Some(bytes)
    } else {
        tracing::warn!(bytes = bytes.len(), "Sinch callback carried a document that is not a PDF; ignored");
        None
    }
}

/// Reads a verified callback: multipart (`event`, `fax` JSON part, `file` PDF part) or JSON (`event`, `fax`,
/// and `file` + `fileType` for INCOMING_FAX or `files[]` for FAX_COMPLETED).
async fn parse_event(request: &WebhookRequest<'_>) -> Result<Event, ProviderError> {
    let malformed = || ProviderError::Rejected("malformed Sinch callback".into());
    let content_type = header(request, "content-type").unwrap_or("");
    if content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        let parts = parse_multipart(content_type, request.body).map_err(|_| malformed())?;
        let part = |name: &str| parts.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let name = part("event").and_then(|b| String::from_utf8(b.to_vec()).ok()).ok_or_else(malformed)?;
        let fax = part("fax").and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(malformed)?;
        return Ok(Event { name: name.trim().to_string(), fax, document: part("file").and_then(pdf) });
    }
    let value: Value = serde_json::from_slice(request.body).map_err(|_| malformed())?;
    let name = value["event"].as_str().ok_or_else(malformed)?.to_string();
    let encoded = match (&value["file"], &value["files"]) {
        (Value::String(file), _) => Some((file.as_str(), value["fileType"].as_str())),
        (_, Value::Array(files)) => {
            files.first().and_then(|f| f["file"].as_str().map(|file| (file, f["fileType"].as_str())))
        }
        _ => None,
    };
    let document = match encoded {
        Some((file, file_type)) if file_type.is_none_or(|t| t.eq_ignore_ascii_case("PDF")) => {
            Some(pdf(Bytes::from(STANDARD.decode(file.trim()).map_err(|_| malformed())?)).ok_or_else(malformed)?)
        }
        Some(_) => {
            tracing::warn!("Sinch callback carried a non-PDF document; ignored");
            None
        }
        None => None,
    };
    Ok(Event { name, fax: value["fax"].clone(), document })
}

/// Splits a `multipart/form-data` body into named parts (text or file alike, as bytes): slices of the body
/// ([`faxbot_webhooks::form`]), not copies.
fn parse_multipart(content_type: &str, body: &Bytes) -> Result<Vec<(String, Bytes)>, faxbot_webhooks::form::FormError> {
    use faxbot_webhooks::form::{boundary, split};
    Ok(split(body, &boundary(content_type)?)?.into_iter().map(|part| (part.name, part.data)).collect())
}

#[async_trait]
impl OutboundProvider for Sinch {
    fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    fn needs_document(&self) -> bool {
        true
    }

    fn webhook_info(&self) -> Option<WebhookInfo> {
        Some(self.info())
    }

    /// The Basic credentials are headers: checked completely before the body is read.
    fn precheck(&self, headers: &[(String, String)]) -> Result<(), ProviderError> {
        self.verify(&WebhookRequest { url: "", headers, body: &Bytes::new() })
    }

    /// `FAX_COMPLETED` in multipart form carries the fax's PDF.
    fn status_body_limit(&self) -> usize {
        super::WEBHOOK_LIMIT
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<Submission, ProviderError> {
        let job_id = request.job_id.as_str();
        let to = request.to.expose();
        let check_after = Some(self.poll_interval());
        if let Some(fax) = self.existing(job_id, to).await? {
            let provider_sid = fax_id(&fax["id"])
                .ok_or_else(|| ProviderError::Transport("Sinch listed a fax without an id".into()))?;
            tracing::info!(provider_sid = %provider_sid, "adopted a fax an earlier submission already created");
            return Ok(Submission { provider_sid, status: remote_status(&fax), check_after });
        }
        let document =
            request.document.clone().ok_or_else(|| ProviderError::Rejected("document unavailable".into()))?;
        let build = || {
            let file = reqwest::multipart::Part::stream_with_length(
                reqwest::Body::from(document.clone()),
                document.len() as u64,
            )
            .file_name(format!("{job_id}.pdf"))
            .mime_str("application/pdf")
            .map_err(|_| ProviderError::Rejected("invalid document type".into()))?;
            let mut form = reqwest::multipart::Form::new()
                .text("to", to.to_string())
                .text(format!("labels[{JOB_LABEL}]"), job_id.to_string())
                .part("file", file);
            if let Some(callback) = &self.callback {
                form = form
                    .text("callbackUrl", callback.clone())
                    .text("callbackUrlContentType", self.settings.callback_content_type.as_str());
            }
            Ok(self.client.post(self.url("faxes")).multipart(form))
        };
        let fax = self.call(build).await?;
        let provider_sid =
            fax_id(&fax["id"]).ok_or_else(|| ProviderError::Transport("Sinch answered without a fax id".into()))?;
        Ok(Submission { provider_sid, status: remote_status(&fax), check_after })
    }

    async fn status(&self, provider_sid: &str) -> Result<RemoteStatus, ProviderError> {
        let sid = fax_id(&Value::String(provider_sid.to_string()))
            .ok_or_else(|| ProviderError::Rejected("not a Sinch fax id".into()))?;
        let fax = self.call(|| Ok(self.client.get(self.url(&format!("faxes/{sid}"))))).await?;
        Ok(remote_status(&fax))
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.settings.poll_interval_ms)
    }

    /// Verifies the Basic credentials before reading the body, then reports FAX_COMPLETED as a status event;
    /// other authentic events report nothing.
    async fn webhook(&self, request: &WebhookRequest<'_>) -> Result<Vec<StatusEvent>, ProviderError> {
        self.verify(request)?;
        let event = parse_event(request).await?;
        if event.name != "FAX_COMPLETED" {
            return Ok(Vec::new());
        }
        let provider_sid = fax_id(&event.fax["id"])
            .ok_or_else(|| ProviderError::Rejected("Sinch callback fax without an id".into()))?;
        Ok(vec![StatusEvent { provider_sid, status: remote_status(&event.fax) }])
    }
}

#[async_trait]
impl InboundProvider for Sinch {
    fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    fn webhook_info(&self) -> Option<WebhookInfo> {
        Some(self.info())
    }

    /// The Basic credentials are headers: checked completely before the body is read.
    fn precheck(&self, headers: &[(String, String)]) -> Result<(), ProviderError> {
        self.verify(&WebhookRequest { url: "", headers, body: &Bytes::new() })
    }

    /// Verifies the Basic credentials before reading the body, then turns INCOMING_FAX into a received fax;
    /// other authentic events report nothing.
    async fn receive(&self, request: &WebhookRequest<'_>) -> Result<Vec<ReceivedFax>, ProviderError> {
        self.verify(request)?;
        let event = parse_event(request).await?;
        if event.name != "INCOMING_FAX" {
            return Ok(Vec::new());
        }
        let fax = &event.fax;
        let provider_sid =
            fax_id(&fax["id"]).ok_or_else(|| ProviderError::Rejected("Sinch callback fax without an id".into()))?;
        let text = |key: &str| fax[key].as_str().filter(|s| !s.is_empty()).map(String::from);
        Ok(vec![ReceivedFax {
            provider_sid,
            from: text("from"),
            to: text("to"),
            pages: fax["numberOfPages"].as_i64(),
            document: event.document,
        }])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_map_like_sinch_defines_them() {
        assert_eq!(remote_status(&json!({"status": "QUEUED"})), RemoteStatus::Queued);
        assert_eq!(remote_status(&json!({"status": "IN_PROGRESS"})), RemoteStatus::InProgress);
        assert_eq!(remote_status(&json!({"status": "COMPLETED"})), RemoteStatus::Delivered);
        assert_eq!(remote_status(&json!({"status": "SOMETHING_NEW"})), RemoteStatus::InProgress);
        assert_eq!(
            remote_status(
                &json!({"status": "FAILURE", "errorType": "CALL_ERROR", "errorCode": 17, "errorMessage": "Busy"})
            ),
            RemoteStatus::Failed("Busy (CALL_ERROR 17)".into())
        );
        assert_eq!(
            remote_status(&json!({"status": "FAILURE", "errorType": "FAX_ERROR", "errorCode": "10"})),
            RemoteStatus::Failed("FAX_ERROR 10".into())
        );
        assert_eq!(
            remote_status(&json!({"status": "FAILURE", "errorMessage": "No answer from +15551234567"})),
            RemoteStatus::Failed("No answer from …4567".into()),
            "a number in Sinch's text never reaches the job's error"
        );
        assert_eq!(remote_status(&json!({"status": "FAILURE"})), RemoteStatus::Failed("transmission failed".into()));
        assert_eq!(fax_id(&json!("01HDF5S9P29WC29J578J8EKC1C")), Some("01HDF5S9P29WC29J578J8EKC1C".into()));
        assert_eq!(fax_id(&json!("../other")), None);
        assert_eq!(fax_id(&json!(12)), None);
    }

    #[test]
    fn error_bodies_are_read_in_both_documented_shapes() {
        let schema = json!({"code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid request",
            "details": [{"type": "BadRequest", "fieldViolations": [{"field": "to", "description": "must be E.164"}]}]});
        assert_eq!(
            describe_error(400, schema.to_string().as_bytes()),
            "Sinch HTTP 400 INVALID_ARGUMENT: Invalid request (to: must be E.164)"
        );
        let prose = json!({"code": "422", "error": "Invalid parameters", "message": "bad number +15551234567",
            "details": {"fieldViolations": [{"field": "to", "description": "invalid"}]}});
        assert_eq!(
            describe_error(422, prose.to_string().as_bytes()),
            "Sinch HTTP 422 Invalid parameters: bad number …4567 (to: invalid)"
        );
        let info = json!({"code": 402, "status": "FAILED_PRECONDITION", "message": "Zero balance",
            "details": [{"type": "ErrorInfo", "reason": "INSUFFICIENT_FUNDS", "domain": "fax"}]});
        assert_eq!(
            describe_error(402, info.to_string().as_bytes()),
            "Sinch HTTP 402 FAILED_PRECONDITION: Zero balance (INSUFFICIENT_FUNDS)"
        );
        assert_eq!(describe_error(500, b""), "Sinch HTTP 500");
        assert_eq!(describe_error(502, b"<html>bad gateway</html>"), "Sinch HTTP 502");
        assert_eq!(describe_error(404, br#"{"code": 5, "message": "gone"}"#), "Sinch HTTP 404 (code 5): gone");
        assert!(describe_error(400, json!({"message": "x".repeat(1000)}).to_string().as_bytes()).len() <= MAX_MESSAGE);
    }

    fn plugin(webhook_password: Option<&str>) -> Sinch {
        let settings: SinchSettings = manifests::parse_settings(&json!({"projectId": "p",
            "baseUrl": "http://127.0.0.1:9/v3/", "callbackUrl": "https://hooks.test/webhooks/sinch",
            "webhookUser": "sinch"}))
        .unwrap();
        Sinch::new(
            manifests::manifest(manifests::SINCH).unwrap(),
            settings,
            "key-id".into(),
            "key-secret-xyz".into(),
            webhook_password.map(String::from),
        )
    }

    const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n";

    fn multipart(event: &str, fax: &Value, file: Option<&[u8]>) -> (String, Vec<u8>) {
        let boundary = "XyZbOuNdArY";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\n{event}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"fax\"\r\nContent-Type: application/json\r\n\r\n{fax}\r\n"
        )
        .into_bytes();
        if let Some(file) = file {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.pdf\"\r\n\
                     Content-Type: application/pdf\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(file);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }

    async fn receive(
        p: &Sinch,
        auth: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Result<Vec<ReceivedFax>, ProviderError> {
        let mut headers = vec![("content-type".to_string(), content_type.to_string())];
        if let Some(a) = auth {
            headers.push(("authorization".into(), a.to_string()));
        }
        InboundProvider::receive(p, &WebhookRequest { url: "", headers: &headers, body: &Bytes::copy_from_slice(body) })
            .await
    }

    #[tokio::test]
    async fn incoming_faxes_are_read_from_multipart_and_json_after_verification() {
        let p = plugin(Some("hook-pass"));
        let good = faxbot_webhooks::basic::header_value("sinch", "hook-pass");
        let fax = json!({"id": "01HINBOUND0000000000000001", "direction": "INBOUND", "from": "+15557654321",
            "to": "+15551112222", "numberOfPages": 1, "status": "COMPLETED"});

        let (ct, body) = multipart("INCOMING_FAX", &fax, Some(PDF));
        let got = receive(&p, Some(&good), &ct, &body).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].provider_sid, "01HINBOUND0000000000000001");
        assert_eq!((got[0].from.as_deref(), got[0].to.as_deref()), (Some("+15557654321"), Some("+15551112222")));
        assert_eq!((got[0].pages, got[0].document.as_deref()), (Some(1), Some(PDF)));
        assert!(!format!("{:?}", got[0]).contains("555"), "Debug hides the numbers");

        let json_body = json!({"event": "INCOMING_FAX", "eventTime": "2024-01-01T00:00:00Z", "fax": fax,
            "file": STANDARD.encode(PDF), "fileType": "PDF"});
        let got = receive(&p, Some(&good), "application/json", json_body.to_string().as_bytes()).await.unwrap();
        assert_eq!(got[0].document.as_deref(), Some(PDF));

        // An authentic event of another kind: nothing received.
        let (ct, completed) = multipart("FAX_COMPLETED", &json!({"id": "01HOUT", "status": "COMPLETED"}), None);
        assert!(receive(&p, Some(&good), &ct, &completed).await.unwrap().is_empty());

        // Wrong password, missing header: refused before the body is read (a garbage body proves it).
        let wrong = faxbot_webhooks::basic::header_value("sinch", "guess");
        for auth in [Some(wrong.as_str()), None] {
            let err = receive(&p, auth, "application/json", b"not json").await.unwrap_err();
            assert!(matches!(err, ProviderError::Unauthorized(_)), "{err:?}");
        }
        // Authentic but malformed: a rejection, not an authentication failure.
        let err = receive(&p, Some(&good), "application/json", b"not json").await.unwrap_err();
        assert!(matches!(err, ProviderError::Rejected(_)), "{err:?}");
        // No webhook password configured: everything is refused, even the configured user with an empty password.
        let closed = plugin(None);
        let empty = faxbot_webhooks::basic::header_value("sinch", "");
        let err = receive(&closed, Some(&empty), &ct, &completed).await.unwrap_err();
        assert!(matches!(err, ProviderError::Unauthorized(_)), "{err:?}");
    }

    #[tokio::test]
    async fn completed_callbacks_become_status_events() {
        let p = plugin(Some("hook-pass"));
        let good = faxbot_webhooks::basic::header_value("sinch", "hook-pass");
        let headers =
            vec![("content-type".to_string(), "application/json".to_string()), ("Authorization".into(), good)];
        let body = json!({"event": "FAX_COMPLETED", "fax": {"id": "01HOUT", "status": "FAILURE",
            "errorType": "CALL_ERROR", "errorCode": 17, "errorMessage": "Busy"},
            "files": [{"file": STANDARD.encode(PDF), "fileType": "PDF"}]})
        .to_string();
        let events =
            p.webhook(&WebhookRequest { url: "", headers: &headers, body: &Bytes::from(body.clone()) }).await.unwrap();
        assert_eq!(
            events,
            vec![StatusEvent {
                provider_sid: "01HOUT".into(),
                status: RemoteStatus::Failed("Busy (CALL_ERROR 17)".into())
            }]
        );
        let incoming = json!({"event": "INCOMING_FAX", "fax": {"id": "01HIN"}}).to_string();
        let events = p
            .webhook(&WebhookRequest { url: "", headers: &headers, body: &Bytes::from(incoming.clone()) })
            .await
            .unwrap();
        assert!(events.is_empty());
        let debug = format!("{p:?}");
        assert!(!debug.contains("key-secret") && !debug.contains("hook-pass"), "{debug}");
        assert_eq!(p.callback.as_deref(), Some("https://sinch:hook-pass@hooks.test/webhooks/sinch"));
        assert_eq!(plugin(None).callback, None, "no callbacks that could not be verified");
    }
}
