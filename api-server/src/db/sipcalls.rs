//! Records of calls placed by the SIP/Asterisk plugin (table `sip_calls`).
//!
//! They live in the shared database because the facts about a call arrive as AMI events on whichever
//! replica's connection sees them, while the status check runs on whichever replica holds the job's lease.
//! Every update is guarded so that the first fact wins and replays change nothing.

use super::Db;
use sqlx::{Any, Transaction};

/// A call as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct CallRecord {
    /// The forced channel id (= the job's provider id).
    pub channel_id: String,
    /// When it was recorded, just before the Originate.
    pub created_at: i64,
    /// After this, a call without a result is given up.
    pub deadline_at: i64,
    /// Whether the Originate's answer was lost (Asterisk may or may not have dialled).
    #[sqlx(try_from = "super::columns::Flag")]
    pub uncertain: bool,
    /// When Asterisk reported it answered.
    pub answered_at: Option<i64>,
    /// When it was seen to end (Hangup event, or found gone).
    pub ended_at: Option<i64>,
    /// Hangup cause text.
    pub hangup_cause: Option<String>,
    /// `success` or `failed`, once known.
    pub outcome: Option<String>,
    /// Failure text.
    pub error: Option<String>,
    /// Pages transferred.
    pub pages: Option<i64>,
}

/// What an AMI event says about one of our calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// The far end answered (`OriginateResponse` success).
    Answered,
    /// The fax finished (`UserEvent: FaxResult` from the hangup handler), or the call was never answered
    /// (`OriginateResponse` failure).
    Result {
        /// Whether the fax went through.
        success: bool,
        /// Why not.
        error: Option<String>,
        /// Pages transferred.
        pages: Option<i64>,
    },
    /// The channel hung up.
    Ended {
        /// `Cause-txt` (or the numeric cause).
        cause: Option<String>,
    },
}

/// Inserts a call record (before its Originate is sent).
pub async fn insert(
    tx: &mut Transaction<'_, Any>,
    job_id: &str,
    call: &CallRecord,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sip_calls (channel_id, job_id, created_at, deadline_at, uncertain, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&call.channel_id)
    .bind(job_id)
    .bind(call.created_at)
    .bind(call.deadline_at)
    .bind(i64::from(call.uncertain))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Applies one fact about a call; facts already known are kept. Returns whether anything changed.
pub async fn record(
    tx: &mut Transaction<'_, Any>,
    channel_id: &str,
    event: &CallEvent,
    at: i64,
) -> Result<bool, sqlx::Error> {
    let done =
        match event {
            CallEvent::Answered => sqlx::query(
                "UPDATE sip_calls SET answered_at = $1, updated_at = $1 WHERE channel_id = $2 AND answered_at IS NULL",
            )
            .bind(at)
            .bind(channel_id)
            .execute(&mut **tx)
            .await?,
            CallEvent::Result { success, error, pages } => {
                sqlx::query(
                    "UPDATE sip_calls SET outcome = $1, error = $2, pages = $3, updated_at = $4 \
                 WHERE channel_id = $5 AND outcome IS NULL",
                )
                .bind(if *success { "success" } else { "failed" })
                .bind(error.as_deref())
                .bind(*pages)
                .bind(at)
                .bind(channel_id)
                .execute(&mut **tx)
                .await?
            }
            CallEvent::Ended { cause } => {
                sqlx::query(
                    "UPDATE sip_calls SET ended_at = $1, hangup_cause = $2, updated_at = $1 \
                 WHERE channel_id = $3 AND ended_at IS NULL",
                )
                .bind(at)
                .bind(cause.as_deref())
                .bind(channel_id)
                .execute(&mut **tx)
                .await?
            }
        };
    Ok(done.rows_affected() > 0)
}

/// Marks an Originate whose answer was lost: its events decide, or a channel check does.
pub async fn mark_uncertain(tx: &mut Transaction<'_, Any>, channel_id: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sip_calls SET uncertain = 1, updated_at = $1 WHERE channel_id = $2")
        .bind(at)
        .bind(channel_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The job's call that has no outcome yet, if any: a repeated submission adopts it instead of dialling again.
pub async fn open_call_for_job(db: &Db, job_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT channel_id FROM sip_calls WHERE job_id = $1 AND outcome IS NULL ORDER BY created_at DESC LIMIT 1",
    )
    .bind(job_id)
    .fetch_optional(&db.pool)
    .await
}

/// Reads a call.
pub async fn find(db: &Db, channel_id: &str) -> Result<Option<CallRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT channel_id, created_at, deadline_at, uncertain, answered_at, ended_at, hangup_cause, outcome, error, pages \
         FROM sip_calls WHERE channel_id = $1",
    )
    .bind(channel_id)
    .fetch_optional(&db.pool)
    .await
}
