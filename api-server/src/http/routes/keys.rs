//! Admin API-key endpoints (reference §7.2).

use crate::db::keys::{self, KeyRow};
use crate::domain::scope::KNOWN_SCOPES;
use crate::domain::{Timestamp, new_secret_token};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody, ValidationItem};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Body of `POST /admin/api-keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateKey {
    /// Label.
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// Owner label.
    #[schema(max_length = 200)]
    pub owner: Option<String>,
    /// Scopes: `fax:send`, `fax:read`, `inbound:list`, `inbound:read`, `keys:manage`, `*`.
    #[serde(default)]
    #[schema(inline, value_type = Vec<KnownScope>)]
    pub scopes: Vec<String>,
    /// ISO-8601 expiry (an RFC 3339 date-time; one without an offset is read as UTC). Empty or null: none.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Free-text note. Do not put PHI here.
    #[schema(max_length = 1000)]
    pub note: Option<String>,
}

/// A scope a key may hold (for the OpenAPI document; the server checks the same list, `KNOWN_SCOPES`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
enum KnownScope {
    #[schema(rename = "fax:send")]
    FaxSend,
    #[schema(rename = "fax:read")]
    FaxRead,
    #[schema(rename = "inbound:list")]
    InboundList,
    #[schema(rename = "inbound:read")]
    InboundRead,
    #[schema(rename = "keys:manage")]
    KeysManage,
    #[schema(rename = "*")]
    All,
}

/// Answer to a create: the only time the token is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    /// Public key id.
    pub key_id: String,
    /// `fbk_live_<key_id>_<secret>`; store it now, it cannot be shown again.
    pub token: String,
    /// Label.
    pub name: Option<String>,
    /// Owner.
    pub owner: Option<String>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Expiry.
    pub expires_at: Option<String>,
}

/// A key in the listing (never its secret or hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// Public key id.
    pub key_id: String,
    /// Label.
    pub name: Option<String>,
    /// Owner.
    pub owner: Option<String>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: String,
    /// Last use (updated within a few seconds).
    pub last_used_at: Option<String>,
    /// Expiry.
    pub expires_at: Option<String>,
    /// Revocation time.
    pub revoked_at: Option<String>,
    /// Note.
    pub note: Option<String>,
}

/// Answer to a rotate.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedKey {
    /// Public key id (unchanged).
    pub key_id: String,
    /// The new token; the old one stops working at once.
    pub token: String,
}

/// `{"status":"ok"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusOk {
    /// Always `ok`.
    pub status: &'static str,
}

fn json_error(rejection: JsonRejection) -> ApiError {
    let (kind, msg) = match &rejection {
        JsonRejection::MissingJsonContentType(_) => ("missing", "Field required".to_string()),
        other => ("json_invalid", format!("JSON decode error: {}", crate::phi_guard::guard_text(&other.body_text()))),
    };
    ApiError::Validation(vec![ValidationItem { kind, loc: vec!["body".into()], msg, input: None }])
}

pub(crate) fn view(row: KeyRow) -> KeyView {
    KeyView {
        key_id: row.key_id,
        name: row.name,
        owner: row.owner,
        scopes: row.scopes,
        created_at: row.created_at.to_wire(),
        last_used_at: row.last_used_at.map(Timestamp::to_wire),
        expires_at: row.expires_at.map(Timestamp::to_wire),
        revoked_at: row.revoked_at.map(Timestamp::to_wire),
        note: row.note,
    }
}

fn new_key_id() -> String {
    let mut bytes = [0u8; 6];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn bounded(field: &str, value: &Option<String>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, format!("'{field}' must be at most {max} characters")))
        }
        _ => Ok(()),
    }
}

/// Create an API key.
#[utoipa::path(post, path = "/admin/api-keys", tag = "admin", request_body = CreateKey,
    responses((status = 200, body = CreatedKey), (status = 400, description = "Unknown scope or bad field", body = ErrorBody),
        (status = 401, description = "Admin authentication failed", body = ErrorBody), (status = 422, description = "Missing or invalid JSON body")),
    security(("api_key" = [])))]
pub async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreateKey>, JsonRejection>,
) -> Result<Json<CreatedKey>, ApiError> {
    app.auth.admin(&headers, "/admin/api-keys").await?;
    let Json(req) = body.map_err(json_error)?;
    Ok(Json(create_key(&app, req).await?))
}

/// Creates a key (for `POST /admin/api-keys` and the console's form): checks the scopes and fields, stores
/// the secret's hash, and returns the token, shown this once.
pub(crate) async fn create_key(app: &AppState, req: CreateKey) -> Result<CreatedKey, ApiError> {
    for scope in &req.scopes {
        if !KNOWN_SCOPES.contains(&scope.as_str()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "Unknown scope '{}'; known scopes: {}",
                    scope.chars().take(40).collect::<String>(),
                    KNOWN_SCOPES.join(", ")
                ),
            ));
        }
    }
    bounded("name", &req.name, 200)?;
    bounded("owner", &req.owner, 200)?;
    bounded("note", &req.note, 1000)?;
    // An empty expiry (a form's blank field) means none.
    let expires_at = match req.expires_at.as_deref().filter(|raw| !raw.is_empty()) {
        None => None,
        Some(raw) => Some(Timestamp::parse_iso(raw).ok_or_else(|| {
            ApiError::Validation(vec![ValidationItem {
                kind: "datetime_from_date_parsing",
                loc: vec!["body".into(), "expires_at".into()],
                msg: "Input should be a valid datetime".into(),
                input: None,
            }])
        })?),
    };
    let mut scopes = req.scopes.clone();
    scopes.dedup();
    let key_id = new_key_id();
    let secret = new_secret_token();
    let row = KeyRow {
        key_id: key_id.clone(),
        key_hash: app.auth.hash_secret(&secret),
        name: req.name.clone(),
        owner: req.owner.clone(),
        scopes: scopes.clone(),
        created_at: Timestamp::now(),
        last_used_at: None,
        expires_at,
        revoked_at: None,
        note: req.note.clone(),
    };
    keys::insert(&app.db, &row).await?;
    crate::audit!("api_key_created", key_id = %key_id, scopes = %scopes.join(","));
    Ok(CreatedKey {
        token: format!("fbk_live_{key_id}_{secret}"),
        key_id,
        name: req.name,
        owner: req.owner,
        scopes,
        expires_at: expires_at.map(Timestamp::to_wire),
    })
}

/// List API keys (no secrets).
#[utoipa::path(get, path = "/admin/api-keys", tag = "admin",
    responses((status = 200, body = [KeyView]), (status = 401, description = "Admin authentication failed", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(State(app): State<AppState>, headers: HeaderMap) -> Result<Json<Vec<KeyView>>, ApiError> {
    app.auth.admin(&headers, "/admin/api-keys").await?;
    Ok(Json(keys::list(&app.db).await?.into_iter().map(view).collect()))
}

/// Revoke an API key (idempotent); the download links it issued (`POST /inbound/{id}/pdf-token`) end with it.
#[utoipa::path(delete, path = "/admin/api-keys/{key_id}", tag = "admin",
    params(("key_id" = String, Path)),
    responses((status = 200, body = StatusOk), (status = 401, body = ErrorBody), (status = 404, description = "Key not found", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn revoke(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(key_id): Path<String>,
) -> Result<Json<StatusOk>, ApiError> {
    app.auth.admin(&headers, "/admin/api-keys/{key_id}").await?;
    revoke_key(&app, &key_id).await?;
    Ok(Json(StatusOk { status: "ok" }))
}

/// Revokes a key (idempotent) and the download links it issued.
pub(crate) async fn revoke_key(app: &AppState, key_id: &str) -> Result<(), ApiError> {
    if !keys::revoke(&app.db, key_id, Timestamp::now()).await? {
        return Err(ApiError::not_found("Key not found"));
    }
    // The download links the key handed out end with it.
    let tokens = crate::db::tokens::revoke_issued_by(&app.db, key_id).await?;
    crate::audit!("api_key_revoked", key_id = %key_id, tokens_revoked = tokens);
    Ok(())
}

/// Rotate an API key's secret.
#[utoipa::path(post, path = "/admin/api-keys/{key_id}/rotate", tag = "admin",
    params(("key_id" = String, Path)),
    responses((status = 200, body = RotatedKey), (status = 401, body = ErrorBody), (status = 404, description = "Key not found", body = ErrorBody),
        (status = 409, description = "Key is revoked", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn rotate(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(key_id): Path<String>,
) -> Result<Json<RotatedKey>, ApiError> {
    app.auth.admin(&headers, "/admin/api-keys/{key_id}/rotate").await?;
    Ok(Json(rotate_key(&app, &key_id).await?))
}

/// Gives a key a new secret; the token is returned this once.
pub(crate) async fn rotate_key(app: &AppState, key_id: &str) -> Result<RotatedKey, ApiError> {
    let Some(existing) = keys::find(&app.db, key_id).await? else { return Err(ApiError::not_found("Key not found")) };
    if existing.revoked_at.is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, "Key is revoked; create a new key instead"));
    }
    let secret = new_secret_token();
    if !keys::rotate(&app.db, key_id, &app.auth.hash_secret(&secret)).await? {
        return Err(ApiError::new(StatusCode::CONFLICT, "Key is revoked; create a new key instead"));
    }
    crate::audit!("api_key_rotated", key_id = %key_id);
    Ok(RotatedKey { token: format!("fbk_live_{key_id}_{secret}"), key_id: key_id.to_string() })
}
