//! Received faxes.
//!
//! A row is inserted only after its document is durable, and `(backend, provider_sid)` is unique, so a
//! provider that repeats a callback (because our answer was lost, or by replay) finds the fax already there
//! instead of creating a second one.

use super::{Db, DbError};
use crate::domain::{JobId, Timestamp};

/// A received fax as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboundRow {
    /// Our id (32 hex).
    pub id: JobId,
    /// Plugin that received it.
    pub backend: String,
    /// The provider's id.
    pub provider_sid: String,
    /// Sender (PHI).
    pub from_number: Option<String>,
    /// Receiving number (PHI).
    pub to_number: Option<String>,
    /// Status text, normally `received`.
    pub status: String,
    /// Page count.
    pub pages: Option<i64>,
    /// Document size.
    pub size_bytes: Option<i64>,
    /// Hex SHA-256 of the document.
    pub sha256: Option<String>,
    /// Storage key; `None` once retention deleted the document.
    pub document_key: Option<String>,
    /// Mailbox label (reserved, always `None` today, as in the reference).
    pub mailbox: Option<String>,
    /// Row creation.
    pub created_at: Timestamp,
    /// When the fax arrived.
    pub received_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When retention deletes the document; `None` = keep.
    pub retention_until: Option<Timestamp>,
}

const COLUMNS: &str = "id, backend, provider_sid, from_number, to_number, status, pages, size_bytes, sha256, \
                       document_key, mailbox, created_at, received_at, updated_at, retention_until";

/// Inserts a received fax. [`DbError::Conflict`] when `(backend, provider_sid)` already exists.
pub async fn insert(db: &Db, row: &InboundRow) -> Result<(), DbError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO inbound_faxes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    )))
    .bind(row.id.as_str())
    .bind(&row.backend)
    .bind(&row.provider_sid)
    .bind(row.from_number.as_deref())
    .bind(row.to_number.as_deref())
    .bind(&row.status)
    .bind(row.pages)
    .bind(row.size_bytes)
    .bind(row.sha256.as_deref())
    .bind(row.document_key.as_deref())
    .bind(row.mailbox.as_deref())
    .bind(row.created_at.micros())
    .bind(row.received_at.micros())
    .bind(row.updated_at.micros())
    .bind(row.retention_until.map(Timestamp::micros))
    .execute(&db.pool)
    .await
    .map_err(DbError::from_sqlx)?;
    Ok(())
}

/// The fax a provider already delivered under `provider_sid`, if any.
pub async fn find_by_provider(db: &Db, backend: &str, provider_sid: &str) -> Result<Option<InboundRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM inbound_faxes WHERE backend = $1 AND provider_sid = $2"
    )))
    .bind(backend)
    .bind(provider_sid)
    .fetch_optional(&db.pool)
    .await?)
}

/// One fax by id.
pub async fn get(db: &Db, id: &JobId) -> Result<Option<InboundRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM inbound_faxes WHERE id = $1")))
        .bind(id.as_str())
        .fetch_optional(&db.pool)
        .await?)
}

/// Exact-match filters of `GET /inbound`.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    /// Receiving number.
    pub to_number: Option<String>,
    /// Status text.
    pub status: Option<String>,
    /// Mailbox label.
    pub mailbox: Option<String>,
}

/// Up to `limit` faxes, newest first.
pub async fn list(db: &Db, filter: &ListFilter, limit: i64) -> Result<Vec<InboundRow>, DbError> {
    // Unset filters compare the column with itself through COALESCE-free `$n IS NULL OR` clauses.
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM inbound_faxes \
         WHERE ($1 IS NULL OR to_number = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR mailbox = $3) \
         ORDER BY received_at DESC, id DESC LIMIT $4"
    )))
    .bind(filter.to_number.as_deref())
    .bind(filter.status.as_deref())
    .bind(filter.mailbox.as_deref())
    .bind(limit)
    .fetch_all(&db.pool)
    .await?)
}

/// Faxes whose retention has passed and that still hold a document: `(id, document key)`.
pub async fn expired_documents(db: &Db, now: Timestamp, limit: i64) -> Result<Vec<(JobId, String)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, document_key FROM inbound_faxes \
         WHERE retention_until IS NOT NULL AND retention_until <= $1 AND document_key IS NOT NULL \
         ORDER BY retention_until LIMIT $2",
    )
    .bind(now.micros())
    .bind(limit)
    .fetch_all(&db.pool)
    .await?)
}

/// Records that the document of `id` was deleted, and revokes its download tokens.
pub async fn mark_document_purged(db: &Db, id: &JobId, now: Timestamp) -> Result<(), DbError> {
    sqlx::query("UPDATE inbound_faxes SET document_key = NULL, updated_at = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(now.micros())
        .execute(&db.pool)
        .await?;
    super::tokens::revoke(db, super::tokens::TokenKind::Inbound, id).await
}

/// Whether any fax references document `key` (orphan sweep).
pub async fn references_document(db: &Db, key: &str) -> Result<bool, DbError> {
    let row =
        sqlx::query("SELECT 1 FROM inbound_faxes WHERE document_key = $1").bind(key).fetch_optional(&db.pool).await?;
    Ok(row.is_some())
}

/// Counts received faxes (for `/admin` status bodies and tests).
pub async fn count(db: &Db) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM inbound_faxes").fetch_one(&db.pool).await?)
}
