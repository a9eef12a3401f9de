//! Group commit: hot-path writes from many concurrent requests and workers are queued to one task that
//! applies whatever has accumulated in a single transaction — one fsync for the whole group.
//!
//! This is what lets a durable `POST /fax` scale: every caller still waits until its own write is
//! committed before it answers, but the commit cost is shared. SQLite allows one writer at a time anyway,
//! so a single writer task also removes lock contention.

use super::jobs::{self, JobRow, JobUpdate, NewJob};
use super::simline::{self, SimFax};
use super::sipcalls;
use super::sipcalls::{CallEvent, CallRecord};
use super::{Db, DbError};
use crate::domain::Timestamp;
use sqlx::{Any, Transaction};
use tokio::sync::{mpsc, oneshot};

/// The largest group applied in one transaction.
const MAX_GROUP: usize = 256;

/// A write the group-commit task can apply.
#[derive(Debug)]
pub enum WriteOp {
    /// Insert a new job.
    InsertJob(Box<NewJob>),
    /// Claim due jobs.
    Claim {
        /// Worker id.
        owner: String,
        /// Now.
        now: Timestamp,
        /// Lease expiry.
        lease_until: Timestamp,
        /// Maximum number of jobs.
        limit: i64,
    },
    /// Apply a worker step.
    Update(Box<JobUpdate>),
    /// The simulated line accepts a transmission.
    SimSubmit {
        /// Idempotency key.
        key: String,
        /// Job id (for the line's records).
        job_id: String,
        /// The transmission to record if none exists.
        fax: SimFax,
        /// Now.
        now: Timestamp,
    },
    /// The simulated line counts a busy refusal.
    SimBusy {
        /// Idempotency key.
        key: String,
    },
    /// The SIP plugin records a call before originating it.
    SipInsert {
        /// The job.
        job_id: String,
        /// The call.
        call: Box<CallRecord>,
    },
    /// The SIP plugin records a fact about a call from an AMI event.
    SipRecord {
        /// The call's channel id.
        channel_id: String,
        /// What happened.
        event: CallEvent,
        /// When (micros).
        at: i64,
    },
    /// The SIP plugin lost the answer to an Originate.
    SipUncertain {
        /// The call's channel id.
        channel_id: String,
        /// When (micros).
        at: i64,
    },
}

/// The result of a [`WriteOp`].
#[derive(Debug)]
pub enum WriteReply {
    /// Applied.
    Done,
    /// Claimed jobs.
    Claimed(Vec<JobRow>),
    /// Whether the update still held the lease.
    Updated(bool),
    /// The stored transmission.
    Sim(SimFax),
    /// Busy refusals so far.
    Busy(i64),
}

struct Request {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteReply, DbError>>,
}

/// Handle to the group-commit task. Cloning is cheap; the task stops when every handle is dropped, after
/// applying what is queued.
#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
}

impl Writer {
    /// Starts the task.
    pub fn spawn(db: Db) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4096);
        let handle = tokio::spawn(run(db, rx));
        (Writer { tx }, handle)
    }

    /// Queues `op` and waits until it is committed.
    pub async fn submit(&self, op: WriteOp) -> Result<WriteReply, DbError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request { op, reply }).await.map_err(|_| DbError::WriterStopped)?;
        rx.await.map_err(|_| DbError::WriterStopped)?
    }

    /// Inserts a job durably.
    pub async fn insert_job(&self, job: NewJob) -> Result<(), DbError> {
        self.submit(WriteOp::InsertJob(Box::new(job))).await.map(|_| ())
    }

    /// Claims due jobs.
    pub async fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<JobRow>, DbError> {
        match self.submit(WriteOp::Claim { owner: owner.into(), now, lease_until, limit }).await? {
            WriteReply::Claimed(rows) => Ok(rows),
            other => Err(DbError::Corrupt(format!("unexpected writer reply {other:?}"))),
        }
    }

    /// Applies a worker step; `false` if the lease was lost.
    pub async fn update(&self, update: JobUpdate) -> Result<bool, DbError> {
        match self.submit(WriteOp::Update(Box::new(update))).await? {
            WriteReply::Updated(b) => Ok(b),
            other => Err(DbError::Corrupt(format!("unexpected writer reply {other:?}"))),
        }
    }
}

async fn run(db: Db, mut rx: mpsc::Receiver<Request>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        apply_group(&db, &mut group).await;
        group.clear();
    }
}

async fn apply_group(db: &Db, group: &mut Vec<Request>) {
    match apply_all(db, group).await {
        Ok(replies) => {
            for (req, reply) in group.drain(..).zip(replies) {
                let _ = req.reply.send(Ok(reply));
            }
        }
        Err(GroupError::Statement(e)) => {
            tracing::debug!(error = %e, size = group.len(), "a statement in the group failed; applying one by one");
            // One bad statement must not fail its neighbours: apply each on its own.
            for req in group.drain(..) {
                let result = apply_one(db, &req.op).await;
                let _ = req.reply.send(result);
            }
        }
        Err(GroupError::Commit(e)) => {
            tracing::error!(error = %e, size = group.len(), "group commit failed");
            let msg = e.to_string();
            for req in group.drain(..) {
                let _ = req.reply.send(Err(DbError::Corrupt(format!("commit failed: {msg}"))));
            }
        }
    }
}

enum GroupError {
    Statement(sqlx::Error),
    Commit(sqlx::Error),
}

async fn apply_all(db: &Db, group: &[Request]) -> Result<Vec<WriteReply>, GroupError> {
    let mut tx = db.pool.begin().await.map_err(GroupError::Commit)?;
    // New jobs (the bulk of a busy group) go in with one multi-row statement; everything else in order.
    let inserts: Vec<&NewJob> = group
        .iter()
        .filter_map(|r| match &r.op {
            WriteOp::InsertJob(job) => Some(job.as_ref()),
            _ => None,
        })
        .collect();
    if inserts.len() > 1 {
        jobs::insert_many(&mut tx, &inserts).await.map_err(GroupError::Statement)?;
    }
    let mut replies = Vec::with_capacity(group.len());
    for req in group {
        let reply = match &req.op {
            WriteOp::InsertJob(_) if inserts.len() > 1 => WriteReply::Done,
            op => execute(db, &mut tx, op).await.map_err(GroupError::Statement)?,
        };
        replies.push(reply);
    }
    tx.commit().await.map_err(GroupError::Commit)?;
    Ok(replies)
}

async fn apply_one(db: &Db, op: &WriteOp) -> Result<WriteReply, DbError> {
    let mut tx = db.pool.begin().await?;
    let reply = execute(db, &mut tx, op).await.map_err(DbError::from_sqlx)?;
    tx.commit().await.map_err(DbError::from_sqlx)?;
    Ok(reply)
}

async fn execute(db: &Db, tx: &mut Transaction<'_, Any>, op: &WriteOp) -> Result<WriteReply, sqlx::Error> {
    Ok(match op {
        WriteOp::InsertJob(job) => {
            jobs::insert(tx, job).await?;
            WriteReply::Done
        }
        WriteOp::Claim { owner, now, lease_until, limit } => {
            WriteReply::Claimed(jobs::claim_due(tx, db.backend, owner, *now, *lease_until, *limit).await?)
        }
        WriteOp::Update(u) => WriteReply::Updated(jobs::apply_update(tx, u).await?),
        WriteOp::SimSubmit { key, job_id, fax, now } => {
            WriteReply::Sim(simline::submit(tx, key, job_id, fax, *now).await?)
        }
        WriteOp::SimBusy { key } => WriteReply::Busy(simline::count_busy(tx, key).await?),
        WriteOp::SipInsert { job_id, call } => {
            sipcalls::insert(tx, job_id, call, call.created_at).await?;
            WriteReply::Done
        }
        WriteOp::SipRecord { channel_id, event, at } => {
            WriteReply::Updated(sipcalls::record(tx, channel_id, event, *at).await?)
        }
        WriteOp::SipUncertain { channel_id, at } => {
            sipcalls::mark_uncertain(tx, channel_id, *at).await?;
            WriteReply::Done
        }
    })
}
