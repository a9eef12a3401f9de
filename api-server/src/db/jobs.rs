//! Fax job rows and the queue statements.
//!
//! A job is claimed by setting a lease; a claimed job that was never submitted gets `dispatch_started`
//! incremented in the same statement, *before* the provider is called. After a crash, a job whose
//! `dispatch_started` exceeds `attempts` is known to have had a submission in flight whose outcome was
//! never recorded — the ambiguous case the worker resolves with the provider's idempotency, or reports.

use super::{Backend, Db, DbError};
use crate::domain::{FaxNumber, JobId, JobStatus, Timestamp};
use sqlx::{Any, Transaction};

/// A job as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    /// Job id.
    pub id: JobId,
    /// Destination (PHI).
    #[sqlx(rename = "to_number")]
    pub to: FaxNumber,
    /// Wire status.
    pub status: String,
    /// Error text, if any.
    pub error: Option<String>,
    /// Page count.
    pub pages: Option<i64>,
    /// Plugin id.
    pub backend: String,
    /// Provider's id.
    pub provider_sid: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Storage key of the PDF.
    pub document_key: String,
    /// Submissions started.
    pub dispatch_started: i64,
    /// Submissions with a recorded outcome.
    pub attempts: i64,
    /// Position of the job's provider in the outbound failover chain (0 = primary).
    pub provider_index: i64,
}

const COLUMNS: &str = "id, to_number, status, error, pages, backend, provider_sid, created_at, updated_at, \
                       document_key, dispatch_started, attempts, provider_index";

/// What a new job row holds.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Job id.
    pub id: JobId,
    /// Destination.
    pub to: FaxNumber,
    /// Page count.
    pub pages: Option<i64>,
    /// Plugin id.
    pub backend: String,
    /// Storage key.
    pub document_key: String,
    /// Document size.
    pub size_bytes: i64,
    /// Config revision.
    pub revision: String,
    /// Creation time.
    pub now: Timestamp,
    /// `false` when sending is disabled: the job is held (no `next_run_at`) until it is enabled.
    pub dispatch: bool,
    /// `<caller>:<Idempotency-Key>` when the client sent the header.
    pub idempotency_key: Option<String>,
    /// SHA-256 over the number and the document, to tell a replay from a reused key.
    pub request_hash: Option<String>,
}

impl NewJob {
    /// The row as it will read back, for the 202 body.
    pub fn to_row(&self) -> JobRow {
        JobRow {
            id: self.id.clone(),
            to: self.to.clone(),
            status: JobStatus::Queued.as_str().into(),
            error: None,
            pages: self.pages,
            backend: self.backend.clone(),
            provider_sid: None,
            created_at: self.now,
            updated_at: self.now,
            document_key: self.document_key.clone(),
            dispatch_started: 0,
            attempts: 0,
            provider_index: 0,
        }
    }
}

/// Inserts a job inside the writer's transaction.
pub async fn insert(tx: &mut Transaction<'_, Any>, job: &NewJob) -> Result<(), sqlx::Error> {
    insert_rows(tx, &[job]).await
}

/// Inserts many jobs with few round trips: multi-row statements of 32 and 8 rows, then single rows. The
/// row counts are fixed so that the driver's prepared-statement cache holds three statements, not one per
/// group size.
pub async fn insert_many(tx: &mut Transaction<'_, Any>, jobs: &[&NewJob]) -> Result<(), sqlx::Error> {
    let mut rest = jobs;
    for size in [32, 8] {
        while rest.len() >= size {
            insert_rows(tx, &rest[..size]).await?;
            rest = &rest[size..];
        }
    }
    for job in rest {
        insert(tx, job).await?;
    }
    Ok(())
}

async fn insert_rows(tx: &mut Transaction<'_, Any>, jobs: &[&NewJob]) -> Result<(), sqlx::Error> {
    let mut sql = String::from(
        "INSERT INTO fax_jobs (id, to_number, status, pages, backend, created_at, updated_at, document_key, \
         size_bytes, revision, next_run_at, idempotency_key, request_hash) VALUES ",
    );
    for i in 0..jobs.len() {
        let b = i * 12;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 6,
            b + 7,
            b + 8,
            b + 9,
            b + 10,
            b + 11,
            b + 12
        ));
    }
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for job in jobs {
        query = query
            .bind(job.id.as_str())
            .bind(job.to.expose())
            .bind(JobStatus::Queued.as_str())
            .bind(job.pages)
            .bind(&job.backend)
            .bind(job.now.micros())
            .bind(&job.document_key)
            .bind(job.size_bytes)
            .bind(&job.revision)
            .bind(job.dispatch.then_some(job.now.micros()))
            .bind(job.idempotency_key.as_deref())
            .bind(job.request_hash.as_deref());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// The newest `limit` jobs, optionally only those with `status`.
pub async fn recent(db: &Db, limit: i64, status: Option<&str>) -> Result<Vec<JobRow>, DbError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM fax_jobs WHERE ($1 IS NULL OR status = $1) ORDER BY created_at DESC, id DESC LIMIT $2"
    ));
    Ok(sqlx::query_as(sql).bind(status).bind(limit).fetch_all(&db.pool).await?)
}

/// Reads one job.
pub async fn get(db: &Db, id: &JobId) -> Result<Option<JobRow>, DbError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM fax_jobs WHERE id = $1"));
    Ok(sqlx::query_as(sql).bind(id.as_str()).fetch_optional(&db.pool).await?)
}

/// Finds the job created under an idempotency key, with the hash of the request that created it.
pub async fn find_by_idempotency_key(db: &Db, key: &str) -> Result<Option<(JobRow, Option<String>)>, DbError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS}, request_hash FROM fax_jobs WHERE idempotency_key = $1"));
    let found: Option<WithRequestHash> = sqlx::query_as(sql).bind(key).fetch_optional(&db.pool).await?;
    Ok(found.map(|f| (f.job, f.request_hash)))
}

/// A job and the hash of the request that created it.
#[derive(sqlx::FromRow)]
struct WithRequestHash {
    #[sqlx(flatten)]
    job: JobRow,
    request_hash: Option<String>,
}

/// Claims up to `limit` due jobs for `owner` until `lease_until`.
pub async fn claim_due(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
    limit: i64,
) -> Result<Vec<JobRow>, sqlx::Error> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE fax_jobs SET lease_owner = $1, lease_until = $2, \
           dispatch_started = dispatch_started + CASE WHEN provider_sid IS NULL THEN 1 ELSE 0 END \
         WHERE id IN (SELECT id FROM fax_jobs WHERE next_run_at IS NOT NULL AND next_run_at <= $3 \
                      AND (lease_until IS NULL OR lease_until < $3) ORDER BY next_run_at LIMIT $4{lock}) \
         RETURNING {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .bind(lease_until.micros())
        .bind(now.micros())
        .bind(limit)
        .fetch_all(&mut **tx)
        .await
}

/// The result of one worker step, written back under the lease.
#[derive(Debug, Clone)]
pub struct JobUpdate {
    /// Job id.
    pub id: JobId,
    /// Lease holder; the update only applies while this owner still holds the job.
    pub owner: String,
    /// New status.
    pub status: JobStatus,
    /// New error (replaces the old one; `None` clears it).
    pub error: Option<String>,
    /// Provider id, when known.
    pub provider_sid: Option<String>,
    /// Set the provider/plugin id (when a job moves to another provider).
    pub backend: Option<String>,
    /// Set the job's position in the failover chain (when it moves to the next provider).
    pub provider_index: Option<i64>,
    /// Whether this step recorded a submission outcome (increments `attempts`).
    pub recorded_attempt: bool,
    /// The claim marked a submission as started but none was made (sending was disabled meanwhile).
    pub unmark_dispatch: bool,
    /// When to act next; `None` for terminal or held.
    pub next_run_at: Option<Timestamp>,
    /// Time of the change.
    pub now: Timestamp,
}

/// Applies a worker step. Returns `false` when the lease was lost (another worker took the job over).
pub async fn apply_update(tx: &mut Transaction<'_, Any>, u: &JobUpdate) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE fax_jobs SET status = $1, error = $2, provider_sid = COALESCE($3, provider_sid), \
           backend = COALESCE($4, backend), attempts = attempts + $5, next_run_at = $6, updated_at = $7, \
           lease_owner = NULL, lease_until = NULL, dispatch_started = dispatch_started - $10, \
           provider_index = COALESCE($11, provider_index) \
         WHERE id = $8 AND lease_owner = $9",
    )
    .bind(u.status.as_str())
    .bind(u.error.as_deref())
    .bind(u.provider_sid.as_deref())
    .bind(u.backend.as_deref())
    .bind(i64::from(u.recorded_attempt))
    .bind(u.next_run_at.map(Timestamp::micros))
    .bind(u.now.micros())
    .bind(u.id.as_str())
    .bind(&u.owner)
    .bind(i64::from(u.unmark_dispatch))
    .bind(u.provider_index)
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Gives claimed jobs back at shutdown so another worker can take them without waiting for the lease.
pub async fn release_leases(db: &Db, owner: &str) -> Result<u64, DbError> {
    let r = sqlx::query("UPDATE fax_jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1")
        .bind(owner)
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected())
}

/// Finished jobs last changed before `cutoff` whose document is still stored: `(id, document key)`.
pub async fn expired_documents(db: &Db, cutoff: Timestamp, limit: i64) -> Result<Vec<(String, String)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, document_key FROM fax_jobs WHERE next_run_at IS NULL AND status IN ('SUCCESS', 'FAILED', 'failed') \
         AND updated_at < $1 AND document_key <> '' LIMIT $2",
    )
    .bind(cutoff.micros())
    .bind(limit)
    .fetch_all(&db.pool)
    .await?)
}

/// Whether the job exists (documents are named after their job, so this is a primary-key lookup).
pub async fn exists(db: &Db, id: &JobId) -> Result<bool, DbError> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM fax_jobs WHERE id = $1").bind(id.as_str()).fetch_one(&db.pool).await?;
    Ok(n > 0)
}

/// Records that a job's document was deleted (an empty key means "purged").
pub async fn mark_document_purged(db: &Db, id: &str) -> Result<(), DbError> {
    sqlx::query("UPDATE fax_jobs SET document_key = '' WHERE id = $1").bind(id).execute(&db.pool).await?;
    super::tokens::revoke(db, super::tokens::TokenKind::Outbound, &JobId::from_stored(id.to_string())).await
}

/// What a cancel request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job had not been submitted and no worker held it: it is now `FAILED` ("Cancelled"), never sent.
    CancelledUnsent,
    /// A worker is submitting it right now; the caller may try again in a moment.
    Busy,
    /// Submitted and not finished: the provider must be asked (`backend`, `provider_sid`).
    AtProvider {
        /// Plugin that holds it.
        backend: String,
        /// The provider's id.
        provider_sid: String,
    },
    /// Already in a terminal state.
    Finished,
}

/// The error text of a job cancelled before it was sent.
pub const CANCELLED_UNSENT: &str = "Cancelled by the caller before it was sent";

/// Cancels a job that was never submitted, atomically with respect to the worker's claim: the update only
/// applies while no submission started and no lease is held, so a fax is either cancelled or sent, never
/// both. Otherwise reports where the job is.
pub async fn cancel(db: &Db, id: &JobId, now: Timestamp) -> Result<Option<CancelOutcome>, DbError> {
    let done = sqlx::query(
        "UPDATE fax_jobs SET status = 'FAILED', error = $2, next_run_at = NULL, updated_at = $3 \
         WHERE id = $1 AND status = 'queued' AND provider_sid IS NULL AND dispatch_started = attempts \
           AND (lease_owner IS NULL OR lease_until < $3)",
    )
    .bind(id.as_str())
    .bind(CANCELLED_UNSENT)
    .bind(now.micros())
    .execute(&db.pool)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Some(CancelOutcome::CancelledUnsent));
    }
    let Some(row) = get(db, id).await? else { return Ok(None) };
    Ok(Some(match (JobStatus::parse(&row.status).map(JobStatus::is_terminal), row.provider_sid) {
        (Some(true), _) => CancelOutcome::Finished,
        (_, Some(provider_sid)) => CancelOutcome::AtProvider { backend: row.backend, provider_sid },
        (_, None) => CancelOutcome::Busy,
    }))
}

/// Releases jobs held while sending was disabled.
pub async fn release_held(db: &Db, now: Timestamp) -> Result<u64, DbError> {
    let r = sqlx::query(
        "UPDATE fax_jobs SET next_run_at = $1 WHERE next_run_at IS NULL AND status = 'queued' AND provider_sid IS NULL",
    )
    .bind(now.micros())
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected())
}

/// Makes the status check of the job that plugin `backend` knows as `provider_sid` due now, after an
/// authenticated webhook said its status changed. The worker then reads the status from the provider through
/// the normal path, so a webhook never writes a status itself: replays and races with polling are harmless.
/// Jobs with nothing scheduled (finished) are untouched. Returns how many jobs were woken.
pub async fn poll_now(db: &Db, backend: &str, provider_sid: &str, now: Timestamp) -> Result<u64, DbError> {
    let r = sqlx::query(
        "UPDATE fax_jobs SET next_run_at = $1 \
         WHERE backend = $2 AND provider_sid = $3 AND next_run_at IS NOT NULL AND next_run_at > $1",
    )
    .bind(now.micros())
    .bind(backend)
    .bind(provider_sid)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected())
}

/// Jobs with scheduled work (queued, retrying or awaiting a status), for the queue-depth gauge.
pub async fn scheduled_count(db: &Db) -> Result<i64, DbError> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM fax_jobs WHERE next_run_at IS NOT NULL").fetch_one(&db.pool).await?;
    Ok(n)
}

/// The earliest scheduled time, so an idle worker knows how long it may sleep.
pub async fn next_due(db: &Db) -> Result<Option<Timestamp>, DbError> {
    let v: Option<i64> = sqlx::query_scalar("SELECT MIN(next_run_at) FROM fax_jobs WHERE next_run_at IS NOT NULL")
        .fetch_one(&db.pool)
        .await?;
    Ok(v.map(Timestamp::from_micros))
}

/// How many jobs created since `since` are in each status (the console's dashboard).
pub async fn status_counts_since(db: &Db, since: Timestamp) -> Result<Vec<(String, i64)>, DbError> {
    Ok(sqlx::query_as("SELECT status, COUNT(*) FROM fax_jobs WHERE created_at >= $1 GROUP BY status ORDER BY status")
        .bind(since.micros())
        .fetch_all(&db.pool)
        .await?)
}

/// What the console's job list filters by.
#[derive(Debug, Default)]
pub struct JobFilter<'a> {
    /// Only this wire status.
    pub status: Option<&'a str>,
    /// Only jobs of this plugin.
    pub backend: Option<&'a str>,
    /// Only jobs created at or after this instant.
    pub since: Option<Timestamp>,
}

/// The newest `limit` jobs that pass `filter`.
pub async fn search(db: &Db, filter: &JobFilter<'_>, limit: i64) -> Result<Vec<JobRow>, DbError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM fax_jobs WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR backend = $2) \
         AND ($3 IS NULL OR created_at >= $3) ORDER BY created_at DESC, id DESC LIMIT $4"
    ));
    Ok(sqlx::query_as(sql)
        .bind(filter.status)
        .bind(filter.backend)
        .bind(filter.since.map(Timestamp::micros))
        .bind(limit)
        .fetch_all(&db.pool)
        .await?)
}
