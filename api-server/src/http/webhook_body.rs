//! Reading the body of a provider callback, after everything that can be checked without it.
//!
//! Callbacks arrive unauthenticated as far as the transport goes, and inbound faxes carry their document, so
//! the routes accept large bodies (up to [`WEBHOOK_LIMIT`]). Reading one before knowing whether the plugin
//! exists or the request could be authentic let 40 concurrent 31 MiB posts to `/webhooks/nonexistent` take
//! the server from 15 MiB to a 940 MiB peak. So a callback is handled in this order:
//! 1. the plugin is resolved from the route (none, or one that takes no callbacks: 404, body unread);
//! 2. the plugin checks what the headers alone can tell ([`crate::plugins::OutboundProvider::precheck`]: Basic
//!    credentials or a shared secret completely, a signature header's presence and shape; 401, body unread);
//! 3. only then is the body read, up to the route's limit ([`STATUS_LIMIT`] for status callbacks that carry
//!    no document, [`WEBHOOK_LIMIT`] otherwise), by at most [`READS_AT_ONCE`] requests at a time (a signature
//!    over the body cannot be checked before it is read, so this caps what forged signatures can make the
//!    server hold), each within [`READ_TIMEOUT`] so a slow sender cannot keep a turn.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// Largest callback body accepted (inbound faxes carry the document).
pub const WEBHOOK_LIMIT: usize = 32 * 1024 * 1024;

/// Largest status callback of a plugin whose status callbacks carry no document (Phaxio's `fax_completed`
/// for a sent fax is a few form fields and the fax object).
pub const STATUS_LIMIT: usize = 1024 * 1024;

/// Callback bodies read at the same time.
pub const READS_AT_ONCE: usize = 2;

/// How long a callback may take to send its body once its turn has come.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a callback waits for a turn before it is told to come back (providers retry callbacks).
pub const WAIT_FOR_TURN: Duration = Duration::from_secs(10);

/// The shared limit on concurrent callback body reads.
pub fn reads() -> Semaphore {
    Semaphore::new(READS_AT_ONCE)
}

/// Header names (lower-case) and values that are valid strings, as plugins read them.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers.iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))).collect()
}

/// Reads a callback body whose plugin and headers passed their checks: at most `limit` bytes, one of
/// [`READS_AT_ONCE`] at a time, within [`READ_TIMEOUT`]. The body is collected into one buffer sized from
/// `Content-Length` (capped at `limit`), so the server holds it once, not once per chunk and again whole.
pub async fn read(reads: &Semaphore, headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("Webhook body larger than {limit} bytes"));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let Ok(Ok(_permit)) = tokio::time::timeout(WAIT_FOR_TURN, reads.acquire()).await else {
        return Err(ApiError::Busy {
            retry_after: Duration::from_secs(5),
            detail: "Too many webhooks at once; retry later",
        });
    };
    let capacity = declared.map_or(64 * 1024, |n| usize::try_from(n).unwrap_or(limit)).min(limit);
    match tokio::time::timeout(READ_TIMEOUT, collect(body, capacity, limit)).await {
        Ok(Ok(Some(bytes))) => Ok(bytes),
        Ok(Ok(None)) => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::new(StatusCode::BAD_REQUEST, "Webhook body cut short")),
        Err(_) => Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "Webhook body not received in time")),
    }
}

/// The body's bytes in one buffer, or `None` past `limit`.
async fn collect(mut body: Body, capacity: usize, limit: usize) -> Result<Option<Bytes>, axum::Error> {
    use http_body_util::BodyExt;
    let mut buffer = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if buffer.len() + data.len() > limit {
                return Ok(None);
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(Some(Bytes::from(buffer)))
}
