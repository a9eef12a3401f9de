//! Short-lived download tokens: for a provider fetching an outbound document (`GET /fax/{id}/pdf?token=`)
//! and for handing out a received fax without an API key (`GET /inbound/{id}/pdf?token=`).
//!
//! Only the SHA-256 of a token is stored, and lookups go by that hash, so a database dump yields no usable
//! token and response timing says nothing about stored tokens. Tokens are 43 random URL-safe characters
//! (256 bits), which is why an unsalted hash is enough.

use super::{Db, DbError};
use crate::domain::{JobId, Timestamp};
use sha2::{Digest, Sha256};

/// What a token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// The document of an outbound job.
    Outbound,
    /// The document of a received fax.
    Inbound,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Outbound => "outbound",
            TokenKind::Inbound => "inbound",
        }
    }
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Issues a fresh token for object `id`, valid until `expires_at`; returns the token (shown once).
pub async fn issue(
    db: &Db,
    kind: TokenKind,
    id: &JobId,
    now: Timestamp,
    expires_at: Timestamp,
    issued_by: Option<&str>,
) -> Result<String, DbError> {
    let token = crate::domain::new_secret_token();
    sqlx::query(
        "INSERT INTO download_tokens (token_hash, object_kind, object_id, created_at, expires_at, issued_by) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(hash(&token))
    .bind(kind.as_str())
    .bind(id.as_str())
    .bind(now.micros())
    .bind(expires_at.micros())
    .bind(issued_by)
    .execute(&db.pool)
    .await
    .map_err(DbError::from_sqlx)?;
    Ok(token)
}

/// Ends every token that API key `key_id` issued (when the key is revoked); how many.
pub async fn revoke_issued_by(db: &Db, key_id: &str) -> Result<u64, DbError> {
    let done = sqlx::query("DELETE FROM download_tokens WHERE issued_by = $1")
        .bind(key_id)
        .execute(&db.pool)
        .await
        .map_err(DbError::from_sqlx)?;
    Ok(done.rows_affected())
}

/// The object and expiry a token grants, if it exists and is of `kind`.
pub async fn find(db: &Db, kind: TokenKind, token: &str) -> Result<Option<(JobId, Timestamp)>, DbError> {
    Ok(sqlx::query_as("SELECT object_id, expires_at FROM download_tokens WHERE token_hash = $1 AND object_kind = $2")
        .bind(hash(token))
        .bind(kind.as_str())
        .fetch_optional(&db.pool)
        .await?)
}

/// Whether any token was ever issued for object `id` (distinguishes "PDF not available" from a wrong token).
pub async fn any_for(db: &Db, kind: TokenKind, id: &JobId) -> Result<bool, DbError> {
    let row = sqlx::query("SELECT 1 FROM download_tokens WHERE object_kind = $1 AND object_id = $2 LIMIT 1")
        .bind(kind.as_str())
        .bind(id.as_str())
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.is_some())
}

/// Deletes every token of object `id` (its document is gone).
pub async fn revoke(db: &Db, kind: TokenKind, id: &JobId) -> Result<(), DbError> {
    sqlx::query("DELETE FROM download_tokens WHERE object_kind = $1 AND object_id = $2")
        .bind(kind.as_str())
        .bind(id.as_str())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Deletes tokens that expired before `cutoff`; returns how many.
pub async fn purge_expired(db: &Db, cutoff: Timestamp) -> Result<u64, DbError> {
    let done = sqlx::query("DELETE FROM download_tokens WHERE expires_at < $1")
        .bind(cutoff.micros())
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected())
}

/// Uses a token once: deletes it and returns the object and expiry it granted, if it existed and is of
/// `kind`. Two requests with the same token cannot both get it (the admin console's one-time downloads).
pub async fn consume(db: &Db, kind: TokenKind, token: &str) -> Result<Option<(JobId, Timestamp)>, DbError> {
    Ok(sqlx::query_as(
        "DELETE FROM download_tokens WHERE token_hash = $1 AND object_kind = $2 RETURNING object_id, expires_at",
    )
    .bind(hash(token))
    .bind(kind.as_str())
    .fetch_optional(&db.pool)
    .await?)
}
