//! State of the simulated line. It lives in the server's database because it stands in for a remote
//! provider's own records: it must survive a crash of the server so that a repeated submission is
//! recognised, and it must be shared by every replica.

use super::Db;
use crate::domain::Timestamp;
use sqlx::{Any, Transaction};

/// One accepted simulated transmission.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SimFax {
    /// The line's id for it.
    pub provider_sid: String,
    /// When the transmission finishes.
    pub complete_at: Timestamp,
    /// `SUCCESS` or `FAILED`.
    pub outcome: String,
    /// Failure text.
    pub error: Option<String>,
}

/// Records a transmission unless one exists for the key; returns the stored one either way.
pub async fn submit(
    tx: &mut Transaction<'_, Any>,
    idempotency_key: &str,
    job_id: &str,
    fax: &SimFax,
    now: Timestamp,
) -> Result<SimFax, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO simulated_line_faxes (idempotency_key, provider_sid, job_id, submitted_at, complete_at, outcome, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING RETURNING provider_sid",
    )
    .bind(idempotency_key)
    .bind(&fax.provider_sid)
    .bind(job_id)
    .bind(now.micros())
    .bind(fax.complete_at.micros())
    .bind(&fax.outcome)
    .bind(fax.error.as_deref())
    .fetch_optional(&mut **tx)
    .await?;
    if inserted.is_some() {
        return Ok(fax.clone());
    }
    // A repeated submission: answer with the transmission recorded the first time.
    sqlx::query_as(
        "SELECT provider_sid, complete_at, outcome, error FROM simulated_line_faxes WHERE idempotency_key = $1",
    )
    .bind(idempotency_key)
    .fetch_one(&mut **tx)
    .await
}

/// Counts one busy refusal for the key and returns the total so far (including this one).
pub async fn count_busy(tx: &mut Transaction<'_, Any>, idempotency_key: &str) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO simulated_line_busy (idempotency_key, refusals) VALUES ($1, 1) \
         ON CONFLICT (idempotency_key) DO UPDATE SET refusals = simulated_line_busy.refusals + 1",
    )
    .bind(idempotency_key)
    .execute(&mut **tx)
    .await?;
    sqlx::query_scalar("SELECT refusals FROM simulated_line_busy WHERE idempotency_key = $1")
        .bind(idempotency_key)
        .fetch_one(&mut **tx)
        .await
}

/// Busy refusals so far for a key.
pub async fn busy_count(db: &Db, idempotency_key: &str) -> Result<i64, sqlx::Error> {
    let v: Option<i64> = sqlx::query_scalar("SELECT refusals FROM simulated_line_busy WHERE idempotency_key = $1")
        .bind(idempotency_key)
        .fetch_optional(&db.pool)
        .await?;
    Ok(v.unwrap_or(0))
}

/// Looks a transmission up by the line's id.
pub async fn find(db: &Db, provider_sid: &str) -> Result<Option<SimFax>, sqlx::Error> {
    sqlx::query_as("SELECT provider_sid, complete_at, outcome, error FROM simulated_line_faxes WHERE provider_sid = $1")
        .bind(provider_sid)
        .fetch_optional(&db.pool)
        .await
}
