//! API-key rows. Secrets are never stored: only `key_hash`, a keyed hash of the secret.

use super::{Db, DbError};
use crate::domain::Timestamp;

/// An API key as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    /// Public 12-hex id.
    pub key_id: String,
    /// Hex HMAC-SHA256 of the secret under the server pepper.
    pub key_hash: String,
    /// Label.
    pub name: Option<String>,
    /// Owner label.
    pub owner: Option<String>,
    /// Granted scopes (stored comma-separated).
    #[sqlx(try_from = "super::columns::CommaList")]
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last successful use (flushed in batches).
    pub last_used_at: Option<Timestamp>,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
    /// Free-text note.
    pub note: Option<String>,
}

const COLUMNS: &str = "key_id, key_hash, name, owner, scopes, created_at, last_used_at, expires_at, revoked_at, note";

/// Stores a new key.
pub async fn insert(db: &Db, row: &KeyRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO api_keys (id, key_id, key_hash, name, owner, scopes, created_at, expires_at, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(crate::domain::JobId::generate().as_str())
    .bind(&row.key_id)
    .bind(&row.key_hash)
    .bind(row.name.as_deref())
    .bind(row.owner.as_deref())
    .bind(row.scopes.join(","))
    .bind(row.created_at.micros())
    .bind(row.expires_at.map(Timestamp::micros))
    .bind(row.note.as_deref())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Looks a key up by its public id.
pub async fn find(db: &Db, key_id: &str) -> Result<Option<KeyRow>, DbError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM api_keys WHERE key_id = $1"));
    Ok(sqlx::query_as(sql).bind(key_id).fetch_optional(&db.pool).await?)
}

/// All keys in creation order.
pub async fn list(db: &Db) -> Result<Vec<KeyRow>, DbError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at, key_id"));
    Ok(sqlx::query_as(sql).fetch_all(&db.pool).await?)
}

/// Sets `revoked_at` the first time. Returns whether the key exists.
pub async fn revoke(db: &Db, key_id: &str, now: Timestamp) -> Result<bool, DbError> {
    let r = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE key_id = $2")
        .bind(now.micros())
        .bind(key_id)
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Replaces the secret hash of a live key and resets `last_used_at`. Returns whether a live key matched.
pub async fn rotate(db: &Db, key_id: &str, new_hash: &str) -> Result<bool, DbError> {
    let r =
        sqlx::query("UPDATE api_keys SET key_hash = $1, last_used_at = NULL WHERE key_id = $2 AND revoked_at IS NULL")
            .bind(new_hash)
            .bind(key_id)
            .execute(&db.pool)
            .await?;
    Ok(r.rows_affected() == 1)
}

/// Writes coalesced `last_used_at` values in one transaction.
pub async fn touch_many(db: &Db, uses: &[(String, Timestamp)]) -> Result<(), DbError> {
    if uses.is_empty() {
        return Ok(());
    }
    let mut tx = db.pool.begin().await?;
    for (key_id, at) in uses {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 WHERE key_id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
        )
        .bind(at.micros())
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
