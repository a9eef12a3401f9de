//! `POST /fax` and `GET /fax/{id}` (reference §3).
//!
//! The upload is streamed to a staging file with the size limit enforced while streaming, so a 10 MiB
//! document never sits in memory; type sniffing covers the whole stream, not just the first chunk. The
//! document is durable in the store and the job row committed before `202` is returned.

use crate::db::jobs::{self, JobRow, NewJob};
use crate::domain::{FaxNumber, JobId, Scope, Timestamp};
use crate::http::AppState;
use crate::http::auth::Identity;
use crate::http::error::{ApiError, ErrorBody, Unprocessable, ValidationBody, ValidationItem};
use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::HeaderValue;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use faxbot_documents::sniff::SniffError;
use serde::Serialize;
use sha2::{Digest, Sha256};
use upload::{Body, Staged, Stager, prepare_pdf, too_large, too_many_pages};

pub(crate) mod upload;

/// The job object of the reference API, fields in the reference's order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FaxJobOut {
    /// 32-hex job id.
    pub id: String,
    /// Destination exactly as submitted.
    pub to: String,
    /// `queued`, `in_progress`, `SUCCESS`, `FAILED` or `failed`.
    pub status: String,
    /// Error text, if any.
    pub error: Option<String>,
    /// Page count.
    pub pages: Option<i64>,
    /// Plugin that handles the job.
    pub backend: String,
    /// Provider's id for the fax.
    pub provider_sid: Option<String>,
    /// Naive UTC ISO-8601.
    pub created_at: String,
    /// Naive UTC ISO-8601.
    pub updated_at: String,
}

impl From<JobRow> for FaxJobOut {
    fn from(row: JobRow) -> Self {
        FaxJobOut {
            id: row.id.to_string(),
            to: row.to.expose().to_string(),
            status: row.status,
            error: row.error,
            pages: row.pages,
            backend: row.backend,
            provider_sid: row.provider_sid,
            created_at: row.created_at.to_wire(),
            updated_at: row.updated_at.to_wire(),
        }
    }
}

/// The multipart form of `POST /fax` (for the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SendFaxForm {
    /// Destination: optional `+`, then 6–20 digits.
    #[schema(pattern = r"^\+?[0-9]{6,20}$")]
    to: String,
    /// A PDF, or UTF-8 text (rendered to PDF: Courier 10 pt, US Letter).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Longest `to` value read; anything longer is invalid anyway.
const MAX_TO_BYTES: usize = 64;

fn bad_idempotency_key() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "Idempotency-Key must be 1 to 128 printable ASCII characters without spaces")
}

/// Validates an idempotency key: 1–128 printable ASCII characters, no spaces.
pub(crate) fn valid_idempotency_key(key: &str) -> Result<&str, ApiError> {
    if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(bad_idempotency_key());
    }
    Ok(key)
}

/// The `Idempotency-Key` header, validated.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let s = value.to_str().map_err(|_| bad_idempotency_key())?;
    Ok(Some(valid_idempotency_key(s)?.to_string()))
}

fn request_hash(to: &str, document_sha256: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(to.as_bytes());
    h.update([0u8]);
    h.update(document_sha256);
    hex::encode(h.finalize())
}

/// What an accepted submission created.
pub(crate) enum Accepted {
    /// A new job.
    New(JobRow),
    /// The job an earlier request with the same idempotency key created.
    Replayed(JobRow),
}

/// Answers a repeated request with the job its first attempt created, or 409 when the key was used for a
/// different request.
fn replay(existing: JobRow, stored_hash: Option<String>, hash: &str) -> Result<Accepted, ApiError> {
    if stored_hash.as_deref() != Some(hash) {
        return Err(ApiError::new(StatusCode::CONFLICT, "Idempotency-Key was already used for a different request"));
    }
    crate::audit!("job_replayed", job_id = %existing.id);
    Ok(Accepted::Replayed(existing))
}

fn missing(to: bool, file: bool) -> ApiError {
    let mut items = Vec::new();
    if to {
        items.push(ValidationItem::missing("to"));
    }
    if file {
        items.push(ValidationItem::missing("file"));
    }
    ApiError::Validation(items)
}

fn bad_number() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "'to' must be E.164 or digits only")
}

fn multipart_error(app: &AppState, e: axum::extract::multipart::MultipartError, to: &Option<String>) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        if to.as_deref().is_some_and(|t| FaxNumber::parse(t).is_err()) {
            return bad_number();
        }
        return too_large(app);
    }
    ApiError::new(StatusCode::BAD_REQUEST, "There was an error parsing the body")
}

/// Send a fax.
#[utoipa::path(
    post, path = "/fax", tag = "fax",
    request_body(content = SendFaxForm, content_type = "multipart/form-data"),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1–128 printable ASCII characters. Repeating a request with the same key returns the original job \
            instead of sending the fax again, so a client may retry safely after a timeout or a dropped connection.")),
    responses(
        (status = 202, description = "Accepted and durable; dispatched in the background. A repeated request with \
            the same Idempotency-Key answers 202 with the original job and `Idempotent-Replayed: true`", body = FaxJobOut),
        (status = 400, description = "Bad number, empty file or malformed body", body = ErrorBody),
        (status = 401, description = "Invalid or missing API key", body = ErrorBody),
        (status = 403, description = "Insufficient scope: fax:send required", body = ErrorBody),
        (status = 413, description = "File exceeds the size limit (`File exceeds 10 MB limit`), or the document has \
            more pages than the page limit (`Document exceeds 100 page limit (it has 101 pages)`); nothing is stored",
            body = ErrorBody),
        (status = 415, description = "Only PDF and TXT are allowed, or an unreadable PDF", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused for a different request", body = ErrorBody),
        (status = 422, description = "Missing form field (`{\"detail\": [...]}`), a PDF whose page tree is inconsistent \
            (a page listed twice, a /Count that is not the tree's), or a PDF too complex to count (its work, time or \
            memory limit ran out)", body = Unprocessable),
        (status = 429, description = "Rate limit exceeded (Retry-After header)", body = ErrorBody),
        (status = 503, description = "Too many documents are being processed at once; retry after `Retry-After` \
            seconds (nothing is stored)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn send(State(app): State<AppState>, headers: HeaderMap, request: Request) -> Result<Response, ApiError> {
    let identity = app.auth.user(&headers, Scope::FaxSend, "/fax", app.settings.rate_limit_rpm).await?;
    let idempotency_key = idempotency_key(&headers)?;
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(missing(true, true));
    }
    let multipart = Multipart::from_request(request, &app).await.map_err(|_| missing(true, true))?;
    let (to, staged) = read_fields(&app, multipart, None).await?;
    Ok(match accept(&app, &identity, &to, staged, idempotency_key.as_deref()).await? {
        Accepted::New(row) => (StatusCode::ACCEPTED, Json(FaxJobOut::from(row))).into_response(),
        Accepted::Replayed(row) => {
            let mut response = (StatusCode::ACCEPTED, Json(FaxJobOut::from(row))).into_response();
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
    })
}

/// A check of one form field's value.
type FieldCheck<'a> = &'a (dyn Fn(&str) -> Result<(), ApiError> + Sync);

/// The `to` and `file` fields of a send form, the file staged as it streams. With `first`, the form's first
/// field must be that one and pass its check before anything else is read (the console's CSRF token).
async fn read_fields(
    app: &AppState,
    mut multipart: Multipart,
    mut first: Option<(&str, FieldCheck<'_>)>,
) -> Result<(String, Staged), ApiError> {
    let mut to: Option<String> = None;
    let mut staged: Option<Staged> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(app, e, &to)),
        };
        if let Some((name, check)) = first.take() {
            if field.name() != Some(name) {
                // Not the field that must come first: the check refuses an empty value.
                return Err(check("").err().unwrap_or_else(|| missing(true, true)));
            }
            let value = read_to(field, app, &to).await.unwrap_or_default();
            check(&value)?;
            continue;
        }
        match field.name() {
            Some("to") if to.is_none() => to = Some(read_to(field, app, &to).await?),
            Some("file") if staged.is_none() => staged = Some(stream_file(field, app, &to).await?),
            _ => {
                let mut field = field;
                while let Some(_chunk) = field.chunk().await.map_err(|e| multipart_error(app, e, &to))? {}
            }
        }
    }
    if let Some((_, check)) = first {
        check("")?;
    }
    match (to, staged) {
        (Some(to), Some(staged)) => Ok((to, staged)),
        (to, staged) => Err(missing(to.is_none(), staged.is_none())),
    }
}

/// The admin console's send form: a `csrf` field first (checked by `csrf`), then `to` and `file` as for
/// `POST /fax`.
pub(crate) async fn read_form(
    app: &AppState,
    multipart: Multipart,
    csrf: impl Fn(&str) -> Result<(), ApiError> + Sync,
) -> Result<(String, Staged), ApiError> {
    read_fields(app, multipart, Some(("csrf", &csrf))).await
}

/// Accepts a staged upload for `to`: validates the number and the document, answers a repeated idempotency key
/// with its first job, turns the upload into the PDF to send, and makes the document and the job durable. The
/// same path for `POST /fax` and the MCP tool `send_fax`, so both answer alike.
pub(crate) async fn accept(
    app: &AppState,
    identity: &Identity,
    to: &str,
    staged: Staged,
    idempotency_key: Option<&str>,
) -> Result<Accepted, ApiError> {
    let idempotency_key = idempotency_key.map(|k| format!("{}:{k}", identity.key_id().unwrap_or("anonymous")));
    let number = FaxNumber::parse(to).map_err(|_| bad_number())?;
    let kind = staged.kind.map_err(|e| match e {
        SniffError::Empty => ApiError::new(StatusCode::BAD_REQUEST, "File is empty"),
        SniffError::Unsupported => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Only PDF and TXT are allowed"),
    })?;
    let hash = request_hash(to, &staged.sha256);
    if let Some(key) = &idempotency_key
        && let Some((existing, stored)) = jobs::find_by_idempotency_key(&app.db, key).await?
    {
        return replay(existing, stored, &hash);
    }
    let (document, pages) = prepare_pdf(app, staged.body, kind).await?;
    if pages > app.settings.max_pages {
        // Dropping `document` removes a staged or rendered file: nothing of a refused upload is kept.
        return Err(too_many_pages(app.settings.max_pages, &pages.to_string()));
    }
    let size = staged.size;

    let runtime = app.runtime.load_current();
    let id = JobId::generate();
    let key = format!("{id}.pdf");
    match document {
        Body::Memory(bytes) => app.documents.put_bytes(&key, bytes).await?,
        Body::File(path) => app.documents.put_file(&key, path).await?,
    }
    let job = NewJob {
        id: id.clone(),
        to: number,
        pages: Some(i64::from(pages)),
        backend: runtime.outbound_id.clone(),
        document_key: key.clone(),
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        revision: runtime.revision.clone(),
        now: Timestamp::now(),
        dispatch: runtime.dispatch_enabled,
        idempotency_key: idempotency_key.clone(),
        request_hash: Some(hash.clone()),
    };
    let row = job.to_row();
    if let Err(e) = app.writer.insert_job(job).await {
        if let Err(cleanup) = app.documents.delete(&key).await {
            tracing::warn!(error = %cleanup, "could not remove the document of a job that failed to save");
        }
        // A concurrent request with the same idempotency key won the race: answer as a replay.
        if matches!(e, crate::db::DbError::Conflict)
            && let Some(k) = &idempotency_key
            && let Some((existing, stored)) = jobs::find_by_idempotency_key(&app.db, k).await?
        {
            return replay(existing, stored, &hash);
        }
        return Err(e.into());
    }
    app.notify.notify_one();
    app.metrics.job(&runtime.outbound_id, "accepted", &runtime.revision);
    crate::audit!("job_created", job_id = %id, backend = %runtime.outbound_id, pages = pages, to = %row.to.masked());
    app.events.event(crate::events::EventKind::FaxQueued).subject(&id).plugin(&runtime.outbound_id).publish();
    Ok(Accepted::New(row))
}

async fn stream_file(
    mut field: axum::extract::multipart::Field<'_>,
    app: &AppState,
    to: &Option<String>,
) -> Result<Staged, ApiError> {
    let mut stager = Stager::new(app);
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(app, e, to))? {
        if stager.push(app, &chunk).await?.is_err() {
            if to.as_deref().is_some_and(|t| FaxNumber::parse(t).is_err()) {
                return Err(bad_number());
            }
            return Err(too_large(app));
        }
    }
    stager.finish().await
}

async fn read_to(
    mut field: axum::extract::multipart::Field<'_>,
    app: &AppState,
    to: &Option<String>,
) -> Result<String, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(app, e, to))? {
        if buf.len() + chunk.len() > MAX_TO_BYTES {
            return Err(bad_number());
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| bad_number())
}

/// Get a job.
#[utoipa::path(
    get, path = "/fax/{id}", tag = "fax",
    params(("id" = String, Path, description = "32-hex job id")),
    responses(
        (status = 200, body = FaxJobOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Job not found", body = ErrorBody), (status = 429, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn get(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<FaxJobOut>, ApiError> {
    app.auth.user(&headers, Scope::FaxRead, "/fax/{id}", app.settings.rate_limit_rpm).await?;
    Ok(Json(find_job(&app, &id).await?.into()))
}

/// The job `id`, or 404 `Job not found`.
pub(crate) async fn find_job(app: &AppState, id: &str) -> Result<JobRow, ApiError> {
    let not_found = || ApiError::not_found("Job not found");
    let id = JobId::parse(id).ok_or_else(not_found)?;
    jobs::get(&app.db, &id).await?.ok_or_else(not_found)
}

/// `?token=` of `GET /fax/{id}/pdf`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct PdfQuery {
    /// The token from the document URL the server gave the provider (required; without it, or empty, the
    /// answer is 422).
    #[param(required = true, min_length = 1)]
    token: Option<String>,
}

/// The job's document, for a provider that fetches it by the tokenized URL it was given (no API key; the
/// token is the credential, valid `PDF_TOKEN_TTL_MINUTES` from the submission).
#[utoipa::path(
    get, path = "/fax/{id}/pdf", tag = "fax",
    params(("id" = String, Path, description = "32-hex job id"), PdfQuery),
    responses(
        (status = 200, description = "The PDF", content_type = "application/pdf"),
        (status = 403, description = "Invalid token, or Token expired", body = ErrorBody),
        (status = 404, description = "Job not found, PDF not available (no token issued), or PDF file not found", body = ErrorBody),
        (status = 422, description = "token missing", body = ValidationBody),
    )
)]
pub async fn pdf(
    State(app): State<AppState>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<PdfQuery>,
) -> Result<Response, ApiError> {
    use crate::db::tokens::{self, TokenKind};
    let Some(token) = query.token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::Validation(vec![ValidationItem {
            kind: "missing",
            loc: vec!["query".into(), "token".into()],
            msg: "Field required".into(),
            input: None,
        }]));
    };
    let not_found = || ApiError::not_found("Job not found");
    let id = JobId::parse(&id).ok_or_else(not_found)?;
    let row = jobs::get(&app.db, &id).await?.ok_or_else(not_found)?;
    match tokens::find(&app.db, TokenKind::Outbound, &token).await? {
        Some((object, expires)) if object == id => {
            if expires <= Timestamp::now() {
                return Err(ApiError::new(StatusCode::FORBIDDEN, "Token expired"));
            }
        }
        _ => {
            if !tokens::any_for(&app.db, TokenKind::Outbound, &id).await? {
                return Err(ApiError::not_found("PDF not available"));
            }
            crate::audit!("pdf_token_refused", job_id = %id);
            return Err(ApiError::new(StatusCode::FORBIDDEN, "Invalid token"));
        }
    }
    let missing = || ApiError::not_found("PDF file not found");
    if row.document_key.is_empty() {
        return Err(missing());
    }
    let file = match app.documents.open(&row.document_key).await {
        Ok(f) => f,
        Err(crate::documents::StorageError::NotFound) => return Err(missing()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    crate::audit!("pdf_served", job_id = %id);
    let mut response = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"fax_{id}.pdf\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache, must-revalidate"));
    Ok(response)
}

/// Cancel a job. One that was never sent is cancelled here (`FAILED`, "Cancelled by the caller before it was
/// sent") and can no longer be sent; one in transmission is cancelled at the provider when it can (Phaxio),
/// and its final status then comes from the provider. Not in the reference API.
#[utoipa::path(
    post, path = "/fax/{id}/cancel", tag = "fax",
    params(("id" = String, Path, description = "32-hex job id")),
    responses(
        (status = 200, description = "Cancelled before sending", body = FaxJobOut),
        (status = 202, description = "Cancellation requested from the provider; poll the job for its final status", body = FaxJobOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Job not found", body = ErrorBody),
        (status = 409, description = "Job already finished, being submitted right now (retry in a moment), or its provider cannot cancel", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 502, description = "The provider refused or failed the cancellation", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn cancel(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let identity = app.auth.user(&headers, Scope::FaxSend, "/fax/{id}/cancel", app.settings.rate_limit_rpm).await?;
    let (status, row) = cancel_job(&app, &identity, &id).await?;
    Ok((status, Json(FaxJobOut::from(row))).into_response())
}

/// Cancels job `id` for `identity`: 200 with the job when it was cancelled before sending, 202 when the provider
/// was asked to cancel it.
pub(crate) async fn cancel_job(
    app: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<(StatusCode, JobRow), ApiError> {
    use crate::db::jobs::CancelOutcome;
    let not_found = || ApiError::not_found("Job not found");
    let id = JobId::parse(id).ok_or_else(not_found)?;
    let key_id = identity.key_id().unwrap_or("anonymous").to_string();
    let outcome = jobs::cancel(&app.db, &id, Timestamp::now()).await?.ok_or_else(not_found)?;
    let status = match outcome {
        CancelOutcome::CancelledUnsent => {
            crate::audit!("job_cancelled", job_id = %id, key_id = %key_id, stage = "unsent");
            app.events.event(crate::events::EventKind::FaxFailed).subject(&id).detail(jobs::CANCELLED_UNSENT).publish();
            StatusCode::OK
        }
        CancelOutcome::Finished => return Err(ApiError::new(StatusCode::CONFLICT, "Job already finished")),
        CancelOutcome::Busy => {
            return Err(ApiError::new(StatusCode::CONFLICT, "Job is being submitted right now; retry in a moment"));
        }
        CancelOutcome::AtProvider { backend, provider_sid } => {
            let provider = app.runtime.provider(&backend).ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "The job's provider is no longer configured; it cannot be cancelled",
                )
            })?;
            match provider.cancel(&provider_sid).await {
                Ok(()) => {}
                Err(crate::plugins::ProviderError::Unsupported) => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "The job's provider cannot cancel a fax in transmission",
                    ));
                }
                Err(e) => {
                    tracing::warn!(job_id = %id, kind = e.kind(), "provider cancellation failed");
                    return Err(ApiError::new(StatusCode::BAD_GATEWAY, "The provider did not cancel the fax"));
                }
            }
            crate::audit!("job_cancelled", job_id = %id, key_id = %key_id, stage = "provider", plugin = %backend);
            // The provider now reports the fax as failed: check at once instead of at the next poll.
            jobs::poll_now(&app.db, &backend, &provider_sid, Timestamp::now()).await?;
            app.notify.notify_one();
            StatusCode::ACCEPTED
        }
    };
    let row = jobs::get(&app.db, &id).await?.ok_or_else(not_found)?;
    Ok((status, row))
}
