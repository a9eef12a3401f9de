//! Inbound faxes (reference §6): the list/get/PDF API, download tokens, the provider callbacks that deliver
//! received faxes, and the admin helpers.
//!
//! Differences from the reference, all deliberate: a download token is issued on request
//! (`POST /inbound/{id}/pdf-token`, scope `inbound:read`) and shown once, because the reference issues one
//! per fax that no endpoint ever returns; a valid token works without an API key (the reference checks the
//! key first, so tokens only work in dev mode); tokens are stored as SHA-256 hashes; 429 answers carry
//! Retry-After; and inbound callbacks are verified by the inbound plugin with the provider's real scheme.

use crate::db::inbound::{self as records, InboundRow, ListFilter};
use crate::db::tokens::{self, TokenKind};
use crate::domain::{JobId, Scope, Timestamp};
use crate::events::EventKind;
use crate::http::auth::Identity;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::{AppState, webhook_body};
use crate::inbound::{self, Accepted};
use crate::plugins::{InboundProvider, ProviderError, ReceivedFax, WebhookRequest};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A received fax as the reference serves it (field order and the `fr` name included).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboundFaxOut {
    /// 32-hex id.
    pub id: String,
    /// Sender number (`fr`, as in the reference).
    pub fr: Option<String>,
    /// Receiving number.
    pub to: Option<String>,
    /// Usually `received`.
    pub status: String,
    /// Plugin that received it.
    pub backend: String,
    /// Page count.
    pub pages: Option<i64>,
    /// Document size in bytes.
    pub size_bytes: Option<i64>,
    /// Naive UTC ISO-8601.
    pub created_at: String,
    /// Naive UTC ISO-8601.
    pub received_at: String,
    /// Naive UTC ISO-8601.
    pub updated_at: String,
    /// Mailbox label (always null today).
    pub mailbox: Option<String>,
}

impl From<InboundRow> for InboundFaxOut {
    fn from(row: InboundRow) -> Self {
        InboundFaxOut {
            id: row.id.to_string(),
            fr: row.from_number,
            to: row.to_number,
            status: row.status,
            backend: row.backend,
            pages: row.pages,
            size_bytes: row.size_bytes,
            created_at: row.created_at.to_wire(),
            received_at: row.received_at.to_wire(),
            updated_at: row.updated_at.to_wire(),
            mailbox: row.mailbox,
        }
    }
}

/// Exact-match filters of `GET /inbound`; `limit`/`cursor` (sent by MCP clients) are accepted and ignored.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Receiving number.
    to_number: Option<String>,
    /// Status.
    status: Option<String>,
    /// Mailbox.
    mailbox: Option<String>,
}

/// `?token=` of the PDF route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct TokenQuery {
    /// A download token from `POST /inbound/{id}/pdf-token`.
    token: Option<String>,
}

/// The slot's plugin and provider, or the reference's 404.
pub(crate) fn enabled(app: &AppState) -> Result<(String, Arc<dyn InboundProvider>), ApiError> {
    app.runtime.load_current().inbound.clone().ok_or_else(|| ApiError::not_found("Inbound not enabled"))
}

/// List received faxes, newest first (at most 100; a bare array, as in the reference).
#[utoipa::path(get, path = "/inbound", tag = "inbound", params(ListQuery),
    responses((status = 200, body = [InboundFaxOut]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Inbound not enabled", body = ErrorBody),
        (status = 429, description = "Rate limit exceeded (Retry-After)", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<InboundFaxOut>>, ApiError> {
    app.auth.user(&headers, Scope::InboundList, "/inbound", app.settings.inbound_list_rpm).await?;
    enabled(&app)?;
    let filter = ListFilter { to_number: query.to_number, status: query.status, mailbox: query.mailbox };
    let rows = records::list(&app.db, &filter, 100).await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

/// One received fax.
#[utoipa::path(get, path = "/inbound/{id}", tag = "inbound", params(("id" = String, Path, description = "32-hex id")),
    responses((status = 200, body = InboundFaxOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Inbound fax not found, or inbound not enabled", body = ErrorBody),
        (status = 429, description = "Rate limit exceeded (Retry-After)", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<InboundFaxOut>, ApiError> {
    app.auth.user(&headers, Scope::InboundRead, "/inbound/{id}", app.settings.inbound_get_rpm).await?;
    enabled(&app)?;
    Ok(Json(find(&app, &id).await?.into()))
}

/// The received fax `id`, or 404 `Inbound fax not found`.
pub(crate) async fn find(app: &AppState, id: &str) -> Result<InboundRow, ApiError> {
    let not_found = || ApiError::not_found("Inbound fax not found");
    let id = JobId::parse(id).ok_or_else(not_found)?;
    records::get(&app.db, &id).await?.ok_or_else(not_found)
}

/// Why a token does not open a document.
enum TokenRefusal {
    Expired,
    Forbidden,
}

async fn check_token(app: &AppState, id: &str, token: &str) -> Result<Result<(), TokenRefusal>, ApiError> {
    // Tokens are 43 characters; anything else cannot match and is not worth a query.
    if token.len() != 43 {
        return Ok(Err(TokenRefusal::Forbidden));
    }
    // The lookup is by SHA-256 of the token, so timing reveals nothing about stored tokens.
    match tokens::find(&app.db, TokenKind::Inbound, token).await? {
        Some((object, _)) if object.as_str() != id => Ok(Err(TokenRefusal::Forbidden)),
        Some((_, expires)) if expires <= Timestamp::now() => Ok(Err(TokenRefusal::Expired)),
        Some(_) => Ok(Ok(())),
        None => Ok(Err(TokenRefusal::Forbidden)),
    }
}

/// Download the received document, with an API key (`inbound:read`) or a download token.
#[utoipa::path(get, path = "/inbound/{id}/pdf", tag = "inbound",
    params(("id" = String, Path, description = "32-hex id"), TokenQuery),
    responses((status = 200, description = "The document", content_type = "application/pdf"),
        (status = 401, body = ErrorBody), (status = 403, description = "Forbidden, or Token expired", body = ErrorBody),
        (status = 404, description = "Inbound fax not found, PDF file not found, or inbound not enabled", body = ErrorBody),
        (status = 429, description = "Rate limit exceeded (Retry-After)", body = ErrorBody)),
    security((), ("api_key" = [])))]
pub async fn pdf(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
) -> Result<Response, ApiError> {
    let mut method = "api_key";
    let mut token_ok = false;
    if let Some(token) = query.token.as_deref().filter(|t| !t.is_empty()) {
        match check_token(&app, &id, token).await? {
            Ok(()) => {
                token_ok = true;
                method = "token";
            }
            // A caller that also sent a key may still be allowed by it (reference: token OR scope).
            Err(_) if headers.contains_key("x-api-key") => {}
            Err(TokenRefusal::Expired) => return Err(ApiError::new(StatusCode::FORBIDDEN, "Token expired")),
            Err(TokenRefusal::Forbidden) => {
                crate::audit!("inbound_token_refused", path = "/inbound/{id}/pdf");
                return Err(ApiError::new(StatusCode::FORBIDDEN, "Forbidden"));
            }
        }
    }
    if !token_ok {
        app.auth.user(&headers, Scope::InboundRead, "/inbound/{id}/pdf", app.settings.inbound_get_rpm).await?;
    }
    enabled(&app)?;
    let row = find(&app, &id).await?;
    serve_document(&app, &row, method).await
}

/// The received document of `row` as an attachment (`no-store`), audited with how it was authorised.
pub(crate) async fn serve_document(
    app: &AppState,
    row: &InboundRow,
    method: &'static str,
) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found("PDF file not found");
    let key = row.document_key.clone().ok_or_else(missing)?;
    let file = match app.documents.open(&key).await {
        Ok(f) => f,
        Err(crate::documents::StorageError::NotFound) => return Err(missing()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    let (content_type, ext) = if key.ends_with(".pdf") {
        ("application/pdf", "pdf")
    } else if key.ends_with(".tif") {
        ("image/tiff", "tif")
    } else {
        ("application/octet-stream", "bin")
    };
    crate::audit!("inbound_pdf_served", inbound_id = %row.id, method = method);
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"inbound_{}.{ext}\"", row.id)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A freshly issued download token, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DownloadTokenOut {
    /// 43-character token; only its hash is stored.
    pub token: String,
    /// Ready-to-use link: `PUBLIC_API_URL/inbound/{id}/pdf?token=…`.
    pub url: String,
    /// Naive UTC ISO-8601 expiry (`INBOUND_TOKEN_TTL_MINUTES` after issue).
    pub expires_at: String,
}

/// Issue a short-lived download link for a received fax, for a client that cannot send the API key (a
/// browser, a mail link inside the hospital network).
#[utoipa::path(post, path = "/inbound/{id}/pdf-token", tag = "inbound", params(("id" = String, Path, description = "32-hex id")),
    responses((status = 201, body = DownloadTokenOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Inbound fax not found, PDF file not found, or inbound not enabled", body = ErrorBody),
        (status = 429, description = "Rate limit exceeded (Retry-After)", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn issue_token(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DownloadTokenOut>), ApiError> {
    let identity =
        app.auth.user(&headers, Scope::InboundRead, "/inbound/{id}/pdf", app.settings.inbound_get_rpm).await?;
    Ok((StatusCode::CREATED, Json(download_token(&app, &identity, &id).await?.0)))
}

/// Issues a download token for the received fax `id` (for `POST /inbound/{id}/pdf-token` and the MCP tool
/// `get_inbound_pdf`), with the fax's row.
pub(crate) async fn download_token(
    app: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<(DownloadTokenOut, InboundRow), ApiError> {
    enabled(app)?;
    let row = find(app, id).await?;
    if row.document_key.is_none() {
        return Err(ApiError::not_found("PDF file not found"));
    }
    let now = Timestamp::now();
    let expires = now.plus(app.settings.inbound_token_ttl);
    let token = tokens::issue(&app.db, TokenKind::Inbound, &row.id, now, expires, identity.key_id()).await?;
    crate::audit!("inbound_token_issued", inbound_id = %row.id, key_id = identity.key_id().unwrap_or("anonymous"),
        ttl_secs = app.settings.inbound_token_ttl.as_secs());
    let url = format!("{}/inbound/{}/pdf?token={token}", app.settings.public_api_url, row.id);
    Ok((DownloadTokenOut { token, url, expires_at: expires.to_wire() }, row))
}

/// `POST /webhooks/{plugin}/inbound`: a provider delivering a received fax.
#[utoipa::path(post, path = "/webhooks/{plugin}/inbound", tag = "webhooks",
    params(("plugin" = String, Path, description = "Plugin id of the inbound slot, for example phaxio")),
    request_body(content = String, content_type = "multipart/form-data", description = "The provider's receive callback as it sends it"),
    responses((status = 200, description = "Stored (or already stored: replays are idempotent)"),
        (status = 401, description = "Authentication failed; nothing stored", body = ErrorBody),
        (status = 400, description = "Authentic but malformed", body = ErrorBody),
        (status = 404, description = "Inbound not enabled for this plugin (body not read)", body = ErrorBody),
        (status = 408, description = "Body not received within 30 s", body = ErrorBody),
        (status = 413, description = "Body larger than 32 MiB", body = ErrorBody),
        (status = 500, description = "Not stored; the provider should retry", body = ErrorBody),
        (status = 503, description = "Too many callback bodies being read at once; Retry-After says when to retry", body = ErrorBody)))]
pub async fn webhook(
    State(app): State<AppState>,
    Path(plugin): Path<String>,
    request: axum::extract::Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    receive(&app, &plugin, request).await
}

/// `POST /phaxio-inbound` (the reference's path).
pub async fn phaxio_legacy(
    State(app): State<AppState>,
    request: axum::extract::Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    receive(&app, "phaxio", request).await
}

/// `POST /sinch-inbound` (the reference's path).
pub async fn sinch_legacy(
    State(app): State<AppState>,
    request: axum::extract::Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    receive(&app, "sinch", request).await
}

/// `POST /_internal/asterisk/inbound` (the reference's path): Asterisk hands over a received fax. Header
/// `X-Internal-Secret` must equal the `inboundSecret` credential; the body is JSON or form-encoded with
/// `tiff_path` (a file in the plugin's `inboundDir`), `to_number`, `from_number`, `faxstatus`, `faxpages`,
/// `uniqueid`.
#[utoipa::path(post, path = "/_internal/asterisk/inbound", tag = "webhooks",
    request_body(content = String, content_type = "application/json", description = "`{tiff_path, to_number?, from_number?, faxstatus?, faxpages?, uniqueid?}` (or the same keys form-encoded)"),
    responses((status = 200, description = "Stored (or already stored), or `ignored` for a failed reception that left no file"),
        (status = 400, description = "Invalid payload: unknown shape, or tiff_path not a TIFF in inboundDir", body = ErrorBody),
        (status = 401, description = "X-Internal-Secret missing or wrong; nothing stored (body not read)", body = ErrorBody),
        (status = 404, description = "Inbound is not served by the sip plugin (body not read)", body = ErrorBody),
        (status = 408, description = "Body not received within 30 s", body = ErrorBody),
        (status = 413, description = "Body larger than 32 MiB", body = ErrorBody),
        (status = 503, description = "Too many callback bodies being read at once", body = ErrorBody)))]
pub async fn asterisk_legacy(
    State(app): State<AppState>,
    request: axum::extract::Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    receive(&app, "sip", request).await
}

/// Slot, then headers, then the body ([`webhook_body`]): a callback for a plugin that does not serve the
/// inbound slot, or whose headers cannot be authentic, is answered without reading its body.
async fn receive(
    app: &AppState,
    plugin: &str,
    request: axum::extract::Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (slot_plugin, provider) = enabled(app)?;
    if slot_plugin != plugin {
        return Err(ApiError::not_found("Inbound not enabled"));
    }
    let (parts, body) = request.into_parts();
    let headers = webhook_body::header_pairs(&parts.headers);
    provider.precheck(&headers).map_err(|e| refused(app, plugin, e))?;
    let received = webhook_body::read(&app.webhook_reads, &parts.headers, body, webhook_body::WEBHOOK_LIMIT).await?;
    let request = WebhookRequest { url: "", headers: &headers, body: &received.body };
    let faxes = provider.receive(&request).await.map_err(|e| refused(app, plugin, e))?;
    if faxes.is_empty() {
        app.metrics.webhook(plugin, "inbound", "ignored");
        return Ok(Json(serde_json::json!({"status": "ignored"})));
    }
    let (mut stored, mut replays) = (0, 0);
    for fax in faxes {
        let sid = fax.provider_sid.clone();
        match inbound::accept(&app.intake(), &slot_plugin, fax).await {
            Ok(Accepted::New(_)) => {
                stored += 1;
                provider.stored(&sid).await;
            }
            Ok(Accepted::Replay(_)) => {
                replays += 1;
                provider.stored(&sid).await;
            }
            Err(inbound::InboundError::InvalidId) => {
                crate::audit!("webhook_rejected", plugin = %plugin, kind = "inbound", reason = "invalid_id");
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "Malformed webhook"));
            }
            Err(e) => return Err(ApiError::internal(e)),
        }
    }
    app.metrics.webhook(plugin, "inbound", if stored > 0 { "accepted" } else { "replayed" });
    crate::audit!("webhook_accepted", plugin = %plugin, kind = "inbound", stored = stored, replays = replays);
    Ok(Json(serde_json::json!({"status": "ok"})))
}

/// The answer to a refused inbound callback, with its metric, event and audit line.
fn refused(app: &AppState, plugin: &str, e: ProviderError) -> ApiError {
    match e {
        ProviderError::Unsupported => ApiError::not_found("Not Found"),
        ProviderError::Unauthorized(_) => {
            app.metrics.webhook(plugin, "inbound", "rejected");
            crate::audit!("webhook_rejected", plugin = %plugin, kind = "inbound", reason = "authentication");
            app.events
                .event(EventKind::PluginError)
                .plugin(plugin)
                .detail("inbound webhook authentication failed")
                .publish();
            ApiError::new(StatusCode::UNAUTHORIZED, "Invalid webhook signature")
        }
        e => {
            app.metrics.webhook(plugin, "inbound", "rejected");
            crate::audit!("webhook_rejected", plugin = %plugin, kind = "inbound", reason = e.kind());
            ApiError::new(StatusCode::BAD_REQUEST, "Malformed webhook")
        }
    }
}

/// Body of `POST /admin/inbound/simulate`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateIn {
    /// Sender number.
    #[serde(default)]
    pub fr: Option<String>,
    /// Receiving number.
    #[serde(default)]
    pub to: Option<String>,
    /// Pages of the generated document (1–50).
    #[serde(default = "one", deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 50, default = 1)]
    pub pages: u32,
}

fn one() -> u32 {
    1
}

/// A JSON number that is a whole number (`3` or `3.0`: JSON does not tell them apart, and neither does the
/// schema's `integer`) within `u32`.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = <f64 as serde::Deserialize>::deserialize(d)?;
    if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) {
        Ok(n as u32)
    } else {
        Err(serde::de::Error::custom("not a whole number"))
    }
}

/// The largest `POST /admin/inbound/simulate` body: three short fields.
const SIMULATE_BODY_LIMIT: usize = 4096;

/// Reads and parses the body of an authenticated simulate request (JSON, at most [`SIMULATE_BODY_LIMIT`]).
async fn simulate_input(headers: &HeaderMap, body: axum::body::Body) -> Result<SimulateIn, ApiError> {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Expected Content-Type: application/json"));
    }
    let bytes = axum::body::to_bytes(body, SIMULATE_BODY_LIMIT)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Body larger than 4096 bytes"))?;
    // A fixed message: the parser's own would quote the input back. Only an object: serde would also take
    // an array as the struct's fields in order.
    let object = serde_json::from_slice::<serde_json::Value>(&bytes).ok().filter(serde_json::Value::is_object);
    object.and_then(|v| serde_json::from_value(v).ok()).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid body: expected a JSON object with optional `fr`, `to` (strings) and `pages` (1-50)",
        )
    })
}

/// Store a generated inbound fax as if the inbound plugin had received it (for trying the inbound API and
/// for tests; the reference's helper).
#[utoipa::path(post, path = "/admin/inbound/simulate", tag = "admin", request_body = SimulateIn,
    responses((status = 200, description = "`{id, status: \"ok\"}`"),
        (status = 400, description = "Inbound not enabled, or invalid pages", body = ErrorBody),
        (status = 401, description = "Admin authentication failed (checked before the body is read)", body = ErrorBody),
        (status = 413, description = "Body larger than 4096 bytes", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Not a valid body", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn simulate(
    State(app): State<AppState>,
    request: axum::extract::Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Authenticate before reading the body: an unauthenticated caller gets a 401 and costs no parsing.
    let (parts, body) = request.into_parts();
    app.auth.admin(&parts.headers, "/admin/inbound/simulate").await?;
    let input = simulate_input(&parts.headers, body).await?;
    let Some((plugin, _)) = app.runtime.load_current().inbound.clone() else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "Inbound not enabled"));
    };
    if !(1..=50).contains(&input.pages) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "pages must be between 1 and 50"));
    }
    let layout = faxbot_documents::text::TextLayout::default();
    let text = (1..=input.pages)
        .map(|p| format!("Simulated inbound fax, page {p} of {}\n", input.pages))
        .collect::<Vec<_>>()
        .join("\x0c");
    let mut pdf = Vec::new();
    faxbot_documents::text::render_text_pdf(text.as_bytes(), &mut pdf, &layout).map_err(ApiError::internal)?;
    let fax = ReceivedFax {
        provider_sid: format!("sim_{}", JobId::generate()),
        from: input.fr,
        to: input.to,
        pages: Some(i64::from(input.pages)),
        document: Some(pdf.into()),
    };
    match inbound::accept(&app.intake(), &plugin, fax).await.map_err(ApiError::internal)? {
        Accepted::New(id) | Accepted::Replay(id) => Ok(Json(serde_json::json!({"id": id.as_str(), "status": "ok"}))),
    }
}
