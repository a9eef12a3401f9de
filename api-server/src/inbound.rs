//! Storing received faxes exactly once.
//!
//! Order matters for durability: the document is written to storage (durably) first, then the row is
//! committed, and only then is the provider's callback answered. A crash before the commit leaves at most an
//! unreferenced document (removed by the orphan sweep) and an unanswered callback, which the provider
//! retries; a replayed or retried callback finds the row by `(backend, provider_sid)` and stores nothing new.

use crate::db::{DbError, inbound};
use crate::domain::{JobId, Timestamp};
use crate::events::EventKind;
use crate::plugins::ReceivedFax;
use sha2::{Digest, Sha256};

/// What became of a received fax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored now, under this id.
    New(JobId),
    /// Already stored earlier under this id (a replayed or retried callback); nothing changed.
    Replay(JobId),
}

/// Why a received fax could not be stored. The callback is answered with an error, so the provider retries.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] DbError),
    /// The document store failed.
    #[error(transparent)]
    Storage(#[from] crate::documents::StorageError),
    /// The provider sent an unusable id.
    #[error("the provider's fax id is missing or too long")]
    InvalidId,
}

/// What storing a received fax needs: the database, the document store, the retention setting, and where
/// to count and announce it. The HTTP routes build one from their state ([`crate::http::AppState::intake`]).
pub struct Intake<'a> {
    /// Database.
    pub db: &'a crate::db::Db,
    /// Document store.
    pub documents: &'a dyn crate::documents::DocumentStore,
    /// How long received faxes are kept (`None`: until deleted).
    pub retention: Option<std::time::Duration>,
    /// Metrics.
    pub metrics: &'a crate::metrics::Metrics,
    /// Event bus.
    pub events: &'a crate::events::EventBus,
}

/// Largest provider id we keep (provider ids are short: integers, ULIDs, Asterisk unique ids).
const MAX_PROVIDER_SID: usize = 128;

/// The storage key of an inbound document: `inbound-<id>.<ext>`, with the extension from the content.
pub fn document_key(id: &JobId, document: &[u8]) -> String {
    let ext = if document.starts_with(b"%PDF-") {
        "pdf"
    } else if document.starts_with(b"II*\0") || document.starts_with(b"MM\0*") {
        "tif"
    } else {
        "bin"
    };
    format!("inbound-{id}.{ext}")
}

/// The id of the inbound fax a storage key belongs to, if it is an inbound key.
pub fn id_from_key(key: &str) -> Option<JobId> {
    let rest = key.strip_prefix("inbound-")?;
    JobId::parse(rest.split_once('.')?.0)
}

/// Stores `fax`, received by plugin `backend`, unless it is already stored.
pub async fn accept(app: &Intake<'_>, backend: &str, fax: ReceivedFax) -> Result<Accepted, InboundError> {
    if fax.provider_sid.is_empty() || fax.provider_sid.len() > MAX_PROVIDER_SID {
        return Err(InboundError::InvalidId);
    }
    if let Some(existing) = inbound::find_by_provider(app.db, backend, &fax.provider_sid).await? {
        return Ok(Accepted::Replay(existing.id));
    }
    let id = JobId::generate();
    let now = Timestamp::now();
    let (document_key, size_bytes, sha256, counted) = match &fax.document {
        Some(bytes) => {
            let key = document_key(&id, bytes);
            // Best effort, off the async threads: the provider's own page count wins, and a fax is stored
            // whether or not its pages could be counted.
            let counted = if fax.pages.is_none() && bytes.starts_with(b"%PDF-") {
                let copy = bytes.clone();
                crate::work::run(move || faxbot_documents::pdf::count_pages(std::io::Cursor::new(&copy[..])))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(i64::from)
            } else {
                None
            };
            let sha = hex::encode(Sha256::digest(bytes));
            app.documents.put_bytes(&key, bytes.to_vec()).await?;
            (Some(key), Some(bytes.len() as i64), Some(sha), counted)
        }
        None => (None, None, None, None),
    };
    let row = inbound::InboundRow {
        id: id.clone(),
        backend: backend.to_string(),
        provider_sid: fax.provider_sid.clone(),
        from_number: fax.from.clone(),
        to_number: fax.to.clone(),
        status: "received".into(),
        pages: fax.pages.or(counted),
        size_bytes,
        sha256,
        document_key: document_key.clone(),
        mailbox: None,
        created_at: now,
        received_at: now,
        updated_at: now,
        retention_until: app.retention.map(|ttl| now.plus(ttl)),
    };
    match inbound::insert(app.db, &row).await {
        Ok(()) => {}
        Err(DbError::Conflict) => {
            // A concurrent delivery of the same callback won the race; ours is a replay.
            if let Some(key) = &document_key
                && let Err(e) = app.documents.delete(key).await
            {
                tracing::warn!(error = %e, "removing the duplicate copy of a replayed inbound fax failed");
            }
            let existing = inbound::find_by_provider(app.db, backend, &fax.provider_sid).await?;
            return Ok(Accepted::Replay(existing.map(|r| r.id).unwrap_or(id)));
        }
        Err(e) => {
            if let Some(key) = &document_key {
                let _ = app.documents.delete(key).await;
            }
            return Err(e.into());
        }
    }
    crate::audit!("inbound_received", inbound_id = %id, backend = %backend, pages = row.pages.unwrap_or(0),
        size_bytes = size_bytes.unwrap_or(0), document = document_key.is_some());
    crate::metrics::Metrics::count(&app.metrics.inbound_received, backend);
    app.events.event(EventKind::FaxReceived).subject(&id).plugin(backend).publish();
    Ok(Accepted::New(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_content_and_map_back_to_their_fax() {
        let id = JobId::generate();
        assert_eq!(document_key(&id, b"%PDF-1.4 ..."), format!("inbound-{id}.pdf"));
        assert_eq!(document_key(&id, b"II*\0...."), format!("inbound-{id}.tif"));
        assert_eq!(document_key(&id, b"hello"), format!("inbound-{id}.bin"));
        assert_eq!(id_from_key(&format!("inbound-{id}.pdf")), Some(id));
        assert_eq!(id_from_key("inbound-nope.pdf"), None);
        assert_eq!(id_from_key("0123.pdf"), None);
    }
}
