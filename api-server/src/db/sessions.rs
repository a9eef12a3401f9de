//! Admin console sessions: a random cookie, stored only as its SHA-256 (as download tokens are), tied to the
//! API key that opened it. Whether a session is still good is decided by
//! [`crate::http::console::session::verdict`]; this module only reads and writes rows.

use super::{Db, DbError};
use crate::domain::Timestamp;

/// One session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    /// SHA-256 of the cookie value (hex).
    pub id_hash: String,
    /// The API key that opened it (`env` for the bootstrap key).
    pub key_id: String,
    /// The key's scopes when the session was opened.
    #[sqlx(try_from = "super::columns::CommaList")]
    pub scopes: Vec<String>,
    /// The token every form that changes something carries.
    pub csrf: String,
    /// When it was opened.
    pub created_at: Timestamp,
    /// The last request it made (updated at most once a minute).
    pub last_seen_at: Timestamp,
    /// When it was signed out.
    pub revoked_at: Option<Timestamp>,
}

const COLUMNS: &str = "id_hash, key_id, scopes, csrf, created_at, last_seen_at, revoked_at";

/// Stores a new session.
pub async fn insert(db: &Db, row: &SessionRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, key_id, scopes, csrf, created_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&row.id_hash)
    .bind(&row.key_id)
    .bind(row.scopes.join(","))
    .bind(&row.csrf)
    .bind(row.created_at.micros())
    .bind(row.last_seen_at.micros())
    .execute(&db.pool)
    .await
    .map_err(DbError::from_sqlx)?;
    Ok(())
}

/// The session whose cookie hashes to `id_hash`.
pub async fn find(db: &Db, id_hash: &str) -> Result<Option<SessionRow>, DbError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM console_sessions WHERE id_hash = $1"));
    Ok(sqlx::query_as(sql).bind(id_hash).fetch_optional(&db.pool).await?)
}

/// Records a request of the session.
pub async fn touch(db: &Db, id_hash: &str, now: Timestamp) -> Result<(), DbError> {
    sqlx::query("UPDATE console_sessions SET last_seen_at = $1 WHERE id_hash = $2")
        .bind(now.micros())
        .bind(id_hash)
        .execute(&db.pool)
        .await
        .map_err(DbError::from_sqlx)?;
    Ok(())
}

/// Signs a session out (the first time only).
pub async fn revoke(db: &Db, id_hash: &str, now: Timestamp) -> Result<(), DbError> {
    sqlx::query("UPDATE console_sessions SET revoked_at = $1 WHERE id_hash = $2 AND revoked_at IS NULL")
        .bind(now.micros())
        .bind(id_hash)
        .execute(&db.pool)
        .await
        .map_err(DbError::from_sqlx)?;
    Ok(())
}

/// Deletes sessions last seen before `cutoff` (long expired either way).
pub async fn purge(db: &Db, cutoff: Timestamp) -> Result<u64, DbError> {
    let done = sqlx::query("DELETE FROM console_sessions WHERE last_seen_at < $1")
        .bind(cutoff.micros())
        .execute(&db.pool)
        .await
        .map_err(DbError::from_sqlx)?;
    Ok(done.rows_affected())
}
