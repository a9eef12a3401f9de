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
//!    no document, [`WEBHOOK_LIMIT`] otherwise), within a shared budget of bytes ([`BYTES_AT_ONCE`]: a
//!    signature over the body cannot be checked before it is read, so this caps what forged signatures can
//!    make the server hold), each within [`READ_TIMEOUT`] so a slow sender cannot keep its share. The share
//!    is held until the callback has been handled (parsed, verified, stored), since that is when the body is
//!    let go. Small status callbacks take a small share and keep flowing while a large inbound fax is read;
//!    two large ones are read one after the other.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::error::ApiError;

pub use crate::plugins::{STATUS_LIMIT, WEBHOOK_LIMIT};

/// Callback body bytes held at the same time, across all callbacks: one body at the largest limit plus
/// room for status callbacks. Forty forged 31 MiB inbound callbacks measured a 146 MiB peak when two were
/// read at once (each body plus the multipart parser's copy); see docs/benchmarks.md.
pub const BYTES_AT_ONCE: usize = 48 * 1024 * 1024;

/// The budget is counted in KiB (a semaphore's permits are `u32`s and `usize`s).
const UNIT: usize = 1024;

/// How long a callback may take to send its body once its turn has come.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a callback waits for a turn before it is told to come back (providers retry callbacks).
pub const WAIT_FOR_TURN: Duration = Duration::from_secs(10);

/// The shared budget of callback body bytes.
pub fn reads() -> Semaphore {
    Semaphore::new(BYTES_AT_ONCE / UNIT)
}

/// A callback body and its share of [`BYTES_AT_ONCE`], given back when this is dropped.
pub struct Received<'a> {
    /// The body as received.
    pub body: Bytes,
    _share: SemaphorePermit<'a>,
}

/// Header names (lower-case) and values that are valid strings, as plugins read them.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers.iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))).collect()
}

/// Reads a callback body whose plugin and headers passed their checks: at most `limit` bytes, within the
/// shared budget ([`BYTES_AT_ONCE`]; a body without `Content-Length` takes `limit`), within [`READ_TIMEOUT`].
/// The body is collected into one buffer sized from `Content-Length` (capped at `limit`), so the server
/// holds it once, not once per chunk and again whole.
pub async fn read<'a>(
    reads: &'a Semaphore,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Received<'a>, ApiError> {
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("Webhook body larger than {limit} bytes"));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let capacity = declared.map_or(limit, |n| usize::try_from(n).unwrap_or(limit)).min(limit);
    let units = u32::try_from(capacity.div_ceil(UNIT).clamp(1, BYTES_AT_ONCE / UNIT)).unwrap_or(u32::MAX);
    let Ok(Ok(share)) = tokio::time::timeout(WAIT_FOR_TURN, reads.acquire_many(units)).await else {
        return Err(ApiError::Busy {
            retry_after: Duration::from_secs(5),
            detail: "Too many webhooks at once; retry later",
        });
    };
    // Without a length the buffer grows as the body arrives; its share is already the whole limit.
    let initial = if declared.is_some() { capacity } else { 64 * 1024 };
    match tokio::time::timeout(READ_TIMEOUT, collect(body, initial, limit)).await {
        Ok(Ok(Some(body))) => Ok(Received { body, _share: share }),
        Ok(Ok(None)) => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::new(StatusCode::BAD_REQUEST, "Webhook body cut short")),
        Err(_) => Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "Webhook body not received in time")),
    }
}

/// Bodies at least this large are read into their own anonymous memory map rather than the heap.
///
/// glibc raises its mmap threshold to the size of the last large block freed, so after one 31 MiB body the
/// next ones came from the heap arenas and stayed there when freed: forty forged 31 MiB callbacks left the
/// server at 83 MiB for good. A mapping of its own is returned to the system when the body is dropped.
const MAPPED_FROM: usize = 1024 * 1024;

/// The body's bytes in one buffer, or `None` past `limit`.
async fn collect(mut body: Body, capacity: usize, limit: usize) -> Result<Option<Bytes>, axum::Error> {
    use http_body_util::BodyExt;
    let mut buffer = Buffer::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if buffer.len() + data.len() > limit {
                return Ok(None);
            }
            buffer.extend(&data);
        }
    }
    Ok(Some(buffer.freeze()))
}

/// A growable buffer on the heap, or in an anonymous map when it is known to be large.
enum Buffer {
    Heap(Vec<u8>),
    Mapped { map: memmap2::MmapMut, len: usize },
}

impl Buffer {
    fn with_capacity(capacity: usize) -> Self {
        if capacity >= MAPPED_FROM
            && let Ok(map) = memmap2::MmapMut::map_anon(capacity)
        {
            return Buffer::Mapped { map, len: 0 };
        }
        Buffer::Heap(Vec::with_capacity(capacity))
    }

    fn len(&self) -> usize {
        match self {
            Buffer::Heap(v) => v.len(),
            Buffer::Mapped { len, .. } => *len,
        }
    }

    fn extend(&mut self, data: &[u8]) {
        match self {
            Buffer::Heap(v) => v.extend_from_slice(data),
            Buffer::Mapped { map, len } => {
                if let Some(room) = map.get_mut(*len..*len + data.len()) {
                    room.copy_from_slice(data);
                    *len += data.len();
                } else {
                    // More than the declared length (the caller checks the limit): continue on the heap.
                    let mut v = Vec::with_capacity(*len + data.len());
                    v.extend_from_slice(&map[..*len]);
                    v.extend_from_slice(data);
                    *self = Buffer::Heap(v);
                }
            }
        }
    }

    fn freeze(self) -> Bytes {
        match self {
            Buffer::Heap(v) => Bytes::from(v),
            Buffer::Mapped { map, len } => Bytes::from_owner(map).slice(..len),
        }
    }
}
