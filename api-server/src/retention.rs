//! Retention: documents of finished jobs are deleted once they are older than the configured TTL (the
//! reference's `ARTIFACT_TTL_DAYS`). Job rows stay, so status queries keep working; only the PHI-bearing
//! document goes. Queued and in-progress jobs are never touched.
//!
//! The orphan sweep removes documents that no job references: a crash between storing a document and
//! committing its job row leaves one behind (the client got no 202, so nothing is lost). Only documents
//! older than a safety margin are considered, far longer than the milliseconds between the two steps.

use crate::db::{Db, inbound, jobs};
use crate::documents::DocumentStore;
use crate::domain::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// Deletes expired documents; returns how many were deleted.
pub async fn sweep(db: &Db, documents: &Arc<dyn DocumentStore>, ttl: Duration) -> Result<u64, crate::db::DbError> {
    let cutoff = Timestamp::from_micros(Timestamp::now().micros() - i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX));
    let mut purged = 0;
    loop {
        let batch = jobs::expired_documents(db, cutoff, 500).await?;
        if batch.is_empty() {
            return Ok(purged);
        }
        for (id, key) in batch {
            if let Err(e) = documents.delete(&key).await {
                tracing::warn!(job_id = %id, error = %e, "deleting an expired document failed; retried next sweep");
                return Ok(purged);
            }
            jobs::mark_document_purged(db, &id).await?;
            crate::audit!("document_purged", job_id = %id);
            purged += 1;
        }
    }
}

/// Runs [`sweep`] at start and then every `every`, until `stop` flips.
pub async fn run(
    db: Db,
    documents: Arc<dyn DocumentStore>,
    ttl: Duration,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match sweep(&db, &documents, ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "retention sweep deleted expired documents"),
            Err(e) => tracing::error!(error = %e, "retention sweep failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Deletes documents older than `min_age` that no job references; returns how many.
pub async fn sweep_orphans(
    db: &Db,
    documents: &Arc<dyn DocumentStore>,
    min_age: Duration,
) -> Result<u64, crate::db::DbError> {
    let mut removed = 0;
    let candidates = match documents.list_older_than(min_age).await {
        Ok(keys) => keys,
        Err(e) => {
            tracing::warn!(error = %e, "listing documents for the orphan sweep failed");
            return Ok(0);
        }
    };
    for key in candidates {
        // Only documents named like ours (`<job id>.pdf`, `inbound-<id>.<ext>`) are considered; anything else
        // is left alone.
        if crate::inbound::id_from_key(&key).is_some() {
            if inbound::references_document(db, &key).await? {
                continue;
            }
        } else {
            let Some(id) = key.strip_suffix(".pdf").and_then(crate::domain::JobId::parse) else { continue };
            if jobs::exists(db, &id).await? {
                continue;
            }
        }
        if let Err(e) = documents.delete(&key).await {
            tracing::warn!(error = %e, "deleting an orphaned document failed");
            continue;
        }
        crate::audit!("document_orphan_removed", document = %key);
        removed += 1;
    }
    Ok(removed)
}

/// Runs [`sweep_orphans`] at start and then every `every`, until `stop` flips.
pub async fn run_orphans(
    db: Db,
    documents: Arc<dyn DocumentStore>,
    min_age: Duration,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match sweep_orphans(&db, &documents, min_age).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed documents that no job references"),
            Err(e) => tracing::error!(error = %e, "orphan sweep failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Deletes the documents of received faxes whose retention has passed (`INBOUND_RETENTION_DAYS`), keeping
/// the rows so listings keep their history, and drops expired download tokens and old console sessions. Returns documents deleted.
pub async fn sweep_inbound(db: &Db, documents: &Arc<dyn DocumentStore>) -> Result<u64, crate::db::DbError> {
    let now = Timestamp::now();
    let mut purged = 0;
    loop {
        let batch = inbound::expired_documents(db, now, 500).await?;
        if batch.is_empty() {
            break;
        }
        for (id, key) in batch {
            if let Err(e) = documents.delete(&key).await {
                tracing::warn!(inbound_id = %id, error = %e, "deleting an expired inbound document failed; retried next sweep");
                return Ok(purged);
            }
            inbound::mark_document_purged(db, &id, Timestamp::now()).await?;
            crate::audit!("inbound_deleted", inbound_id = %id);
            purged += 1;
        }
    }
    crate::db::tokens::purge_expired(db, now).await?;
    // Console sessions end after 8 hours at most; a day later their rows go too.
    crate::db::sessions::purge(db, now.minus(Duration::from_secs(24 * 60 * 60))).await?;
    Ok(purged)
}

/// Runs [`sweep_inbound`] at start and then every `every`, until `stop` flips. It always runs: rows carry
/// their own retention time, so a fax kept forever simply has none.
pub async fn run_inbound(
    db: Db,
    documents: Arc<dyn DocumentStore>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match sweep_inbound(&db, &documents).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "inbound retention deleted expired documents"),
            Err(e) => tracing::error!(error = %e, "inbound retention sweep failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
