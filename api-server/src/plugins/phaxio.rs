//! Phaxio API v2.1 outbound plugin (`shared/reference/providers.md` §1): direct upload of the stored PDF,
//! status by polling `GET faxes/{id}`.
//!
//! Phaxio has no idempotency key, so a submission that timed out or was interrupted by a crash could be sent
//! twice by a naive retry. Every fax is tagged `tag[faxbot_job]=<job id>`, and each submission first asks
//! `GET faxes?tag[faxbot_job]=<job id>`: a fax that already exists is adopted instead of sent again. That
//! makes resubmission safe, which is why the manifest declares the idempotency capability.
//!
//! Credentials (`apiKey`, `apiSecret`) are read once at construction from `FAXBOT_CREDENTIALS_DIR`
//! (`outbound.apiKey`, `outbound.apiSecret`, as the operator mounts them) or from `PHAXIO_API_KEY` /
//! `PHAXIO_API_SECRET`; they are never logged, and no provider message is trusted to be free of numbers
//! (error texts are digit-redacted before they reach logs).

use std::time::Duration;

use async_trait::async_trait;
use faxbot_contract::PluginManifest;
use faxbot_contract::plugins::{PhaxioSendMode, PhaxioSettings};
use serde_json::Value;

use super::{
    InboundProvider, OutboundProvider, ProviderError, ReceivedFax, RemoteStatus, SendRequest, StatusEvent, Submission,
    WebhookInfo, WebhookRequest,
};

/// How Phaxio callbacks are authenticated.
const VERIFICATION: &str = "X-Phaxio-Signature: HMAC-SHA1 over the callback URL, sorted fields and file SHA-1s, keyed \
                            with the webhook token";

/// Tag that carries the job id on every fax, for finding an interrupted submission again.
pub const JOB_TAG: &str = "faxbot_job";

/// The Phaxio plugin.
pub struct Phaxio {
    manifest: PluginManifest,
    settings: PhaxioSettings,
    client: reqwest::Client,
    api_key: String,
    api_secret: String,
    webhook_token: Option<String>,
}

impl std::fmt::Debug for Phaxio {
    // Credentials stay out of Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phaxio").field("base_url", &self.settings.base_url).finish_non_exhaustive()
    }
}

impl Phaxio {
    /// A plugin with `settings` and the given credentials.
    pub fn new(
        manifest: PluginManifest,
        settings: PhaxioSettings,
        api_key: String,
        api_secret: String,
        webhook_token: Option<String>,
    ) -> Self {
        let client = super::client::provider_client(settings.allow_private_network);
        Phaxio { manifest, settings, client, api_key, api_secret, webhook_token }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base_url)
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, ProviderError> {
        let response = request.basic_auth(&self.api_key, Some(&self.api_secret)).send().await.map_err(|e| {
            ProviderError::Transport(if e.is_timeout() { "timed out".into() } else { "connection failed".into() })
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: Value = super::response::bounded(response)
            .await
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let message = body["message"].as_str().unwrap_or("no message").chars().take(200).collect::<String>();
        match status.as_u16() {
            200..=299 if body["success"] == true => Ok(body),
            // An accepted request whose answer cannot be read is ambiguous, like a timeout: retryable, and the
            // tag lookup before the next attempt finds the fax if it was created.
            200..=299 if body.is_null() => {
                Err(ProviderError::Transport("Phaxio's answer could not be read or was larger than 4 MiB".into()))
            }
            200..=299 => Err(ProviderError::Rejected(format!("Phaxio: {message}"))),
            401 | 403 => Err(ProviderError::Unauthorized(format!("Phaxio: {message}"))),
            429 => Err(ProviderError::RateLimited { message: format!("Phaxio: {message}"), retry_after }),
            500..=599 => Err(ProviderError::Unavailable { message: format!("Phaxio: HTTP {status}"), retry_after }),
            _ => Err(ProviderError::Rejected(format!("Phaxio: {message}"))),
        }
    }

    /// The fax already created for this job, if an earlier submission got that far.
    async fn existing(&self, job_id: &str) -> Result<Option<Value>, ProviderError> {
        // The job id is 32 hex digits, so only the brackets need encoding.
        let url = self.url(&format!("faxes?tag%5B{JOB_TAG}%5D={job_id}&direction=sent"));
        let body = self.call(self.client.get(url)).await?;
        Ok(body["data"].as_array().and_then(|faxes| faxes.first().cloned()))
    }
}

/// Maps a Phaxio fax object to the queue's view of it.
pub fn remote_status(fax: &Value) -> RemoteStatus {
    match fax["status"].as_str().unwrap_or("") {
        "queued" | "pendingbatch" => RemoteStatus::Queued,
        "success" => RemoteStatus::Delivered,
        "failure" | "partialsuccess" => {
            let reason =
                fax["error_message"].as_str().or_else(|| fax["error_type"].as_str()).unwrap_or("transmission failed");
            let kind = fax["error_type"].as_str().map(|t| format!(" ({t})")).unwrap_or_default();
            RemoteStatus::Failed(format!("{reason}{kind}"))
        }
        _ => RemoteStatus::InProgress,
    }
}

fn fax_id(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

#[async_trait]
impl OutboundProvider for Phaxio {
    fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    fn needs_document(&self) -> bool {
        self.settings.send_mode == PhaxioSendMode::Upload
    }

    fn wants_content_url(&self) -> bool {
        self.settings.send_mode == PhaxioSendMode::ContentUrl
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<Submission, ProviderError> {
        let job_id = request.job_id.as_str();
        let check_after = Some(Duration::from_millis(self.settings.poll_interval_ms));
        if let Some(fax) = self.existing(job_id).await? {
            let provider_sid = fax_id(&fax["id"])
                .ok_or_else(|| ProviderError::Transport("Phaxio listed a fax without an id".into()))?;
            tracing::info!(provider_sid = %provider_sid, "adopted a fax an earlier submission already created");
            return Ok(Submission { provider_sid, status: remote_status(&fax), check_after });
        }
        let mut form = reqwest::multipart::Form::new()
            .text("to", request.to.expose().to_string())
            .text(format!("tag[{JOB_TAG}]"), job_id.to_string());
        form = match (&request.content_url, &request.document) {
            (Some(url), _) if self.wants_content_url() => form.text("content_url", url.clone()),
            (_, Some(document)) => form.part(
                "file",
                reqwest::multipart::Part::bytes(document.to_vec())
                    .file_name(format!("{job_id}.pdf"))
                    .mime_str("application/pdf")
                    .map_err(|_| ProviderError::Rejected("invalid document type".into()))?,
            ),
            _ => return Err(ProviderError::Rejected("document unavailable".into())),
        };
        if let Some(callback) = &self.settings.callback_url {
            form = form.text("callback_url", callback.clone());
        }
        let body = self.call(self.client.post(self.url("faxes")).multipart(form)).await?;
        let provider_sid = fax_id(&body["data"]["id"])
            .ok_or_else(|| ProviderError::Transport("Phaxio answered without an id".into()))?;
        Ok(Submission { provider_sid, status: RemoteStatus::Queued, check_after })
    }

    async fn status(&self, provider_sid: &str) -> Result<RemoteStatus, ProviderError> {
        let body = self.call(self.client.get(self.url(&format!("faxes/{provider_sid}")))).await?;
        Ok(remote_status(&body["data"]))
    }

    /// `POST faxes/{id}/cancel`; Phaxio then reports the fax as failed ("manually canceled").
    async fn cancel(&self, provider_sid: &str) -> Result<(), ProviderError> {
        if !provider_sid.bytes().all(|b| b.is_ascii_digit()) || provider_sid.is_empty() {
            return Err(ProviderError::Rejected("not a Phaxio fax id".into()));
        }
        self.call(self.client.post(self.url(&format!("faxes/{provider_sid}/cancel")))).await.map(|_| ())
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.settings.poll_interval_ms)
    }

    fn webhook_info(&self) -> Option<WebhookInfo> {
        Some(WebhookInfo {
            verification: VERIFICATION.into(),
            callback_url: self.settings.callback_url.clone(),
            ready: self.settings.callback_url.is_some() && self.webhook_token.is_some(),
        })
    }

    fn precheck(&self, headers: &[(String, String)]) -> Result<(), ProviderError> {
        precheck_callback(self.settings.callback_url.as_deref(), self.webhook_token.as_deref(), headers)
    }

    /// Verifies `X-Phaxio-Signature` over the callback URL as submitted (the configured `callbackUrl`), every
    /// field and every file, before anything is read from the payload; then reports the fax's status.
    /// Without a configured callback URL and webhook token every webhook is refused: an endpoint that
    /// cannot verify must not accept.
    async fn webhook(&self, request: &WebhookRequest<'_>) -> Result<Vec<StatusEvent>, ProviderError> {
        let (fields, _files) =
            verified_form(self.settings.callback_url.as_deref(), self.webhook_token.as_deref(), request).await?;
        // Authentic from here on.
        let fax = fax_field(&fields)?;
        let provider_sid =
            fax_id(&fax["id"]).ok_or_else(|| ProviderError::Rejected("webhook fax without an id".into()))?;
        Ok(vec![StatusEvent { provider_sid, status: remote_status(&fax) }])
    }
}

/// Checks the signature of a Phaxio callback and returns its fields and files; refuses everything when the
/// URL or the token is not configured.
/// The checks of a Phaxio callback that need no body: callbacks configured, and a signature header of the
/// right shape.
fn precheck_callback(
    url: Option<&str>,
    token: Option<&str>,
    headers: &[(String, String)],
) -> Result<(), ProviderError> {
    if url.is_none() || token.is_none() {
        return Err(ProviderError::Unauthorized("webhooks are not configured (callbackUrl and webhookToken)".into()));
    }
    let header = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(faxbot_webhooks::phaxio::SIGNATURE_HEADER))
        .map(|(_, v)| v.as_str());
    faxbot_webhooks::phaxio::precheck(header).map_err(|e| ProviderError::Unauthorized(e.to_string()))
}

async fn verified_form(
    url: Option<&str>,
    token: Option<&str>,
    request: &WebhookRequest<'_>,
) -> Result<(Vec<(String, String)>, Vec<(String, bytes::Bytes)>), ProviderError> {
    let (Some(url), Some(token)) = (url, token) else {
        return Err(ProviderError::Unauthorized("webhooks are not configured (callbackUrl and webhookToken)".into()));
    };
    let header = request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(faxbot_webhooks::phaxio::SIGNATURE_HEADER))
        .map(|(_, v)| v.as_str());
    if header.is_none() {
        return Err(ProviderError::Unauthorized("missing signature".into()));
    }
    let content_type = request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    // Parsing only splits the body into parts; nothing is interpreted or stored before the check below.
    let (fields, files) = parse_multipart(content_type, request.body)
        .map_err(|_| ProviderError::Unauthorized("malformed webhook body".into()))?;
    let field_refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let file_refs: Vec<(&str, &[u8])> = files.iter().map(|(k, v)| (k.as_str(), v.as_ref())).collect();
    faxbot_webhooks::phaxio::verify(token.as_bytes(), url, &field_refs, &file_refs, header)
        .map_err(|e| ProviderError::Unauthorized(e.to_string()))?;
    Ok((fields, files))
}

/// The `fax` field: the fax object as a JSON string inside one form field (providers.md §1.8).
fn fax_field(fields: &[(String, String)]) -> Result<Value, ProviderError> {
    fields
        .iter()
        .find(|(k, _)| k == "fax")
        .and_then(|(_, v)| serde_json::from_str(v).ok())
        .ok_or_else(|| ProviderError::Rejected("webhook without a fax object".into()))
}

/// Phaxio in the inbound slot: verifies receive callbacks (signed like every Phaxio webhook, over the receive
/// URL configured on the number) and hands over the fax with its PDF, which Phaxio sends as the file part
/// `file` (`filename` in webhook v1).
pub struct PhaxioInbound {
    manifest: PluginManifest,
    callback_url: Option<String>,
    webhook_token: Option<String>,
}

impl std::fmt::Debug for PhaxioInbound {
    // The token stays out of Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhaxioInbound").field("callback_url", &self.callback_url).finish_non_exhaustive()
    }
}

impl PhaxioInbound {
    /// Receives on `settings.callback_url`, verified with `webhook_token`.
    pub fn new(manifest: PluginManifest, settings: PhaxioSettings, webhook_token: Option<String>) -> Self {
        PhaxioInbound { manifest, callback_url: settings.callback_url, webhook_token }
    }
}

#[async_trait]
impl InboundProvider for PhaxioInbound {
    fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    fn webhook_info(&self) -> Option<WebhookInfo> {
        Some(WebhookInfo {
            verification: VERIFICATION.into(),
            callback_url: self.callback_url.clone(),
            ready: self.callback_url.is_some() && self.webhook_token.is_some(),
        })
    }

    fn precheck(&self, headers: &[(String, String)]) -> Result<(), ProviderError> {
        precheck_callback(self.callback_url.as_deref(), self.webhook_token.as_deref(), headers)
    }

    async fn receive(&self, request: &WebhookRequest<'_>) -> Result<Vec<ReceivedFax>, ProviderError> {
        let (fields, files) =
            verified_form(self.callback_url.as_deref(), self.webhook_token.as_deref(), request).await?;
        let fax = fax_field(&fields)?;
        let direction = fax["direction"]
            .as_str()
            .or_else(|| fields.iter().find(|(k, _)| k == "direction").map(|(_, v)| v.as_str()))
            .unwrap_or("received");
        if direction != "received" {
            return Ok(Vec::new());
        }
        let provider_sid =
            fax_id(&fax["id"]).ok_or_else(|| ProviderError::Rejected("webhook fax without an id".into()))?;
        let text = |key: &str| fax[key].as_str().filter(|v| !v.is_empty()).map(str::to_string);
        let document = files.into_iter().find(|(name, _)| name == "file" || name == "filename").map(|(_, bytes)| bytes);
        Ok(vec![ReceivedFax {
            provider_sid,
            from: text("from_number"),
            to: text("to_number"),
            pages: fax["num_pages"].as_i64(),
            document,
        }])
    }
}

/// A callback's text fields and file parts, by name.
type Form = (Vec<(String, String)>, Vec<(String, bytes::Bytes)>);

/// Splits a `multipart/form-data` body into text fields and file parts (parts with a file name). The file
/// parts are slices of the body ([`faxbot_webhooks::form`]): a forged 31 MiB callback is held once.
fn parse_multipart(content_type: &str, body: &bytes::Bytes) -> Result<Form, faxbot_webhooks::form::FormError> {
    use faxbot_webhooks::form::{FormError, boundary, split};
    let (mut fields, mut files) = (Vec::new(), Vec::new());
    for part in split(body, &boundary(content_type)?)? {
        match part.file_name {
            Some(_) => files.push((part.name, part.data)),
            None => fields.push((
                part.name,
                String::from_utf8(part.data.to_vec()).map_err(|_| FormError::Malformed("a field is not UTF-8"))?,
            )),
        }
    }
    Ok((fields, files))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_map_like_phaxio_defines_them() {
        assert_eq!(remote_status(&json!({"status": "queued"})), RemoteStatus::Queued);
        assert_eq!(remote_status(&json!({"status": "pendingbatch"})), RemoteStatus::Queued);
        assert_eq!(remote_status(&json!({"status": "inprogress"})), RemoteStatus::InProgress);
        assert_eq!(remote_status(&json!({"status": "success"})), RemoteStatus::Delivered);
        assert_eq!(
            remote_status(&json!({"status": "failure", "error_type": "lineError", "error_message": "Busy"})),
            RemoteStatus::Failed("Busy (lineError)".into())
        );
        assert_eq!(fax_id(&json!(1234)), Some("1234".into()));
        assert_eq!(fax_id(&json!(null)), None);
    }
}
