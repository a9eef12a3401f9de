//! The one HTTP error type. Every failure becomes `{"detail": …}` with the reference's status codes and
//! messages; request-validation failures use FastAPI's 422 list shape. Internal errors are logged by kind
//! and answered with a generic 500, so no internals (or PHI inside them) reach a client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::borrow::Cow;
use std::time::Duration;

/// A 422 validation answer: `{"detail": [ValidationItem, ...]}` (FastAPI's shape).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ValidationBody {
    /// One entry per problem.
    pub detail: Vec<ValidationItem>,
}

/// A 422 that is either a validation answer (a missing or malformed field) or a handled refusal with a
/// message (a document the server will not send): the OpenAPI document's `oneOf` for such routes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Unprocessable {
    /// `{"detail": [ValidationItem, ...]}`
    Validation(ValidationBody),
    /// `{"detail": "..."}`
    Refused(ErrorBody),
}

/// One entry of a 422 body, in FastAPI/Pydantic v2 shape.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ValidationItem {
    /// Error type, e.g. `missing`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Location, e.g. `["body", "file"]`.
    pub loc: Vec<String>,
    /// Message, e.g. `Field required`.
    pub msg: String,
    /// The offending input (always null here: echoing input could echo PHI).
    pub input: Option<()>,
}

impl ValidationItem {
    /// A missing body field.
    pub fn missing(field: &str) -> Self {
        ValidationItem {
            kind: "missing",
            loc: vec!["body".into(), field.into()],
            msg: "Field required".into(),
            input: None,
        }
    }
}

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A handled error with the reference's status and detail.
    #[error("{status}: {detail}")]
    Detail {
        /// Status code.
        status: StatusCode,
        /// Message for the client.
        detail: Cow<'static, str>,
    },
    /// 401 for failed API key authentication; counted per client address ([`super::auth_failures`]).
    #[error("authentication failed: {detail}")]
    AuthFailed {
        /// Message for the client.
        detail: &'static str,
    },
    /// 429 with a Retry-After header (the reference computes one but drops it; we send it).
    #[error("rate limited")]
    RateLimited {
        /// Seconds until the window resets.
        retry_after: Duration,
    },
    /// 503 with a Retry-After header: too much of a bounded kind of work at once.
    #[error("busy: {detail}")]
    Busy {
        /// Seconds to wait before retrying.
        retry_after: Duration,
        /// Message for the client.
        detail: &'static str,
    },
    /// 422 request validation.
    #[error("validation failed")]
    Validation(Vec<ValidationItem>),
    /// Anything unexpected: logged, answered with a generic 500.
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

/// The body of every handled error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Human-readable reason.
    pub detail: String,
}

impl ApiError {
    /// A handled error.
    pub fn new(status: StatusCode, detail: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Detail { status, detail: detail.into() }
    }

    /// 404 with a detail.
    pub fn not_found(detail: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// Wraps an unexpected failure.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Detail { status, .. } => *status,
            ApiError::AuthFailed { .. } => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

const INTERNAL: &str = "Internal Server Error";

/// Logs an unexpected failure. The chain can contain database or I/O messages but never request bodies; digit
/// runs are redacted as a second line of defence.
fn log_internal(e: &anyhow::Error) {
    let chain = crate::phi_guard::guard_text(&format!("{e:#}"));
    tracing::error!(error = %chain, "internal error");
}

impl ApiError {
    /// The status and the message a client gets, as one line of text, for a transport that answers without
    /// REST's JSON bodies (an MCP tool error). Internal errors are logged, as for a REST answer.
    pub fn into_message(self) -> (StatusCode, String) {
        let status = self.status();
        let message = match self {
            ApiError::Detail { detail, .. } => detail.into_owned(),
            ApiError::AuthFailed { detail } => detail.to_string(),
            ApiError::RateLimited { retry_after } => {
                format!("Rate limit exceeded; retry after {} seconds", retry_after.as_secs().max(1))
            }
            ApiError::Busy { retry_after, detail } => {
                format!("{detail} (retry after {} seconds)", retry_after.as_secs().max(1))
            }
            ApiError::Validation(items) => {
                items.iter().map(|i| format!("{}: {}", i.loc.join("."), i.msg)).collect::<Vec<_>>().join("; ")
            }
            ApiError::Internal(e) => {
                log_internal(&e);
                INTERNAL.to_string()
            }
        };
        (status, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Detail { status, detail } => {
                (status, Json(ErrorBody { detail: detail.into_owned() })).into_response()
            }
            ApiError::AuthFailed { detail } => {
                let mut response =
                    (StatusCode::UNAUTHORIZED, Json(ErrorBody { detail: detail.into() })).into_response();
                response.extensions_mut().insert(super::auth_failures::AuthFailure);
                response
            }
            ApiError::RateLimited { retry_after } => {
                let mut response =
                    (StatusCode::TOO_MANY_REQUESTS, Json(ErrorBody { detail: "Rate limit exceeded".into() }))
                        .into_response();
                let secs = retry_after.as_secs().max(1);
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
                response
            }
            ApiError::Busy { retry_after, detail } => {
                let mut response =
                    (StatusCode::SERVICE_UNAVAILABLE, Json(ErrorBody { detail: detail.into() })).into_response();
                if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
                response
            }
            ApiError::Validation(items) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Json(ValidationBody { detail: items })).into_response()
            }
            ApiError::Internal(e) => {
                log_internal(&e);
                (StatusCode::INTERNAL_SERVER_ERROR, Json(ErrorBody { detail: INTERNAL.into() })).into_response()
            }
        }
    }
}

impl From<crate::work::WorkError> for ApiError {
    fn from(e: crate::work::WorkError) -> Self {
        match e {
            crate::work::WorkError::Busy => ApiError::Busy {
                retry_after: Duration::from_secs(5),
                detail: "Too many documents are being processed; retry shortly",
            },
            e @ crate::work::WorkError::Failed => ApiError::internal(e),
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        ApiError::internal(e)
    }
}

impl From<crate::documents::StorageError> for ApiError {
    fn from(e: crate::documents::StorageError) -> Self {
        ApiError::internal(e)
    }
}
