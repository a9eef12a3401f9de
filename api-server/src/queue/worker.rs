//! The dispatch worker: claims due jobs under a lease, submits them or polls their status, and writes the
//! outcome back through the group-commit writer.
//!
//! Every branch ends in an explicit [`JobUpdate`]: a job is never left without either a next run time or a
//! terminal status, so nothing can be stuck. Several processes may run workers against one database;
//! leases (and `SKIP LOCKED` on PostgreSQL) keep them from taking the same job.

use super::decide::{self, Chain, Claimed, Plan, Polling, Verdict};
use super::retry::RetryPolicy;
use crate::db::jobs::{JobRow, JobUpdate};
use crate::db::writer::Writer;
use crate::db::{Db, jobs};
use crate::documents::DocumentStore;
use crate::domain::{JobId, JobStatus, Timestamp};
use crate::events::{EventBus, EventKind};
use crate::metrics::Metrics;
use crate::plugins::{OutboundProvider, ProviderError, SendRequest};
use crate::runtime::RuntimeState;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

/// Worker tuning, from [`crate::configuration::Settings`].
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Concurrent jobs per process.
    pub concurrency: usize,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Lease length.
    pub lease: Duration,
    /// Provider call timeout.
    pub provider_timeout: Duration,
    /// Stop polling for a final status after this long.
    pub status_deadline: Duration,
    /// How long shutdown waits for in-flight jobs.
    pub shutdown_grace: Duration,
    /// Lifetime of document tokens handed to providers that fetch the document.
    pub pdf_token_ttl: Duration,
    /// Base of the document URLs handed to providers (`PUBLIC_API_URL`).
    pub public_api_url: String,
}

/// Shared handles a worker needs.
#[derive(Clone)]
pub struct Worker {
    db: Db,
    documents: Arc<dyn DocumentStore>,
    writer: Writer,
    runtime: Arc<RuntimeState>,
    metrics: Arc<Metrics>,
    notify: Arc<Notify>,
    events: Arc<EventBus>,
    config: WorkerConfig,
    owner: String,
}

/// Most jobs claimed in one statement.
const MAX_CLAIM: usize = 128;
/// How long an idle worker waits before looking for due jobs again (new jobs wake it at once).
const IDLE_POLL: Duration = Duration::from_millis(100);

/// The shared handles a worker is built from (the same ones the HTTP side holds).
pub struct WorkerParts {
    /// Database.
    pub db: Db,
    /// Document store (plugins that upload read the document).
    pub documents: Arc<dyn DocumentStore>,
    /// Group-commit writer.
    pub writer: Writer,
    /// Live runtime config and providers.
    pub runtime: Arc<RuntimeState>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Wakes the worker when a job is enqueued.
    pub notify: Arc<Notify>,
    /// Event bus.
    pub events: Arc<EventBus>,
}

impl Worker {
    /// A worker with a fresh lease-owner id.
    pub fn new(parts: WorkerParts, config: WorkerConfig) -> Self {
        let WorkerParts { db, documents, writer, runtime, metrics, notify, events } = parts;
        let owner = format!("worker-{}", &JobId::generate().as_str()[..12]);
        Worker { db, documents, writer, runtime, metrics, notify, events, config, owner }
    }

    /// Runs until `shutdown` flips, then waits (bounded) for in-flight jobs and releases any leases left.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.config.concurrency));
        let mut tasks = JoinSet::new();
        tracing::info!(owner = %self.owner, concurrency = self.config.concurrency, "worker started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            // Wait for a free slot rather than polling: a finished job frees one at once.
            let first = tokio::select! {
                permit = permits.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
                _ = shutdown.changed() => continue,
            };
            let limit = (permits.available_permits() + 1).min(MAX_CLAIM);
            let now = Timestamp::now();
            let claimed = match self.writer.claim(&self.owner, now, now.plus(self.config.lease), limit as i64).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "claiming jobs failed");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                drop(first);
                tokio::select! {
                    _ = self.notify.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let mut first = Some(first);
            for job in claimed {
                let permit = match first.take() {
                    Some(p) => p,
                    None => match permits.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                let worker = self.clone();
                tasks.spawn(async move {
                    worker.step(job).await;
                    drop(permit);
                });
            }
        }
        let drained =
            tokio::time::timeout(self.config.shutdown_grace, async { while tasks.join_next().await.is_some() {} })
                .await;
        if drained.is_err() {
            tracing::warn!("shutdown grace elapsed with jobs still in flight; their leases are released");
            tasks.abort_all();
        }
        match jobs::release_leases(&self.db, &self.owner).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "released job leases"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "releasing leases failed; they expire on their own"),
        }
        tracing::info!("worker stopped");
    }

    /// One unit of work on a claimed job.
    #[tracing::instrument(skip_all, fields(job_id = %job.id, plugin = %job.backend))]
    async fn step(&self, job: JobRow) {
        let update = if job.provider_sid.is_none() { self.submit(&job).await } else { self.poll(&job).await };
        let terminal = update.status.is_terminal();
        let status = update.status;
        let plugin = update.backend.clone().unwrap_or_else(|| job.backend.clone());
        let submitted = job.provider_sid.is_none() && update.provider_sid.is_some();
        let error = update.error.clone();
        match self.writer.update(update).await {
            Ok(true) => {
                if submitted {
                    self.events.event(EventKind::FaxSent).subject(&job.id).plugin(&plugin).publish();
                }
                if terminal {
                    let revision = self.runtime.load_current().revision.clone();
                    self.metrics.job(&plugin, status.outcome_label(), &revision);
                    let kind =
                        if status == JobStatus::Success { EventKind::FaxDelivered } else { EventKind::FaxFailed };
                    let event = self.events.event(kind).subject(&job.id).plugin(&plugin);
                    match error.as_deref() {
                        Some(e) if kind == EventKind::FaxFailed => event.detail(e).publish(),
                        _ => event.publish(),
                    }
                }
            }
            Ok(false) => tracing::warn!("lease lost before the outcome was written; another worker owns the job"),
            Err(e) => {
                tracing::error!(error = %e, "writing the job outcome failed; the lease will expire and the job is retried")
            }
        }
    }

    fn base_update(&self, job: &JobRow, now: Timestamp) -> JobUpdate {
        JobUpdate {
            id: job.id.clone(),
            owner: self.owner.clone(),
            status: JobStatus::parse(&job.status).unwrap_or(JobStatus::Queued),
            error: job.error.clone(),
            provider_sid: None,
            backend: None,
            provider_index: None,
            recorded_attempt: false,
            unmark_dispatch: false,
            next_run_at: None,
            now,
        }
    }

    fn polling(&self, provider: &dyn OutboundProvider) -> Polling {
        Polling { interval: provider.poll_interval(), status_deadline: self.config.status_deadline }
    }

    async fn submit(&self, job: &JobRow) -> JobUpdate {
        let runtime = self.runtime.load_current();
        let index = usize::try_from(job.provider_index).unwrap_or(0);
        let (plugin, provider) = runtime.chain_at(index);
        let (plugin, provider) = (plugin.clone(), provider.clone());
        let mut update = self.base_update(job, Timestamp::now());
        update.backend = Some(plugin.clone());
        let claimed = claimed(job);
        let attempt = match decide::plan(update, &claimed, runtime.dispatch_enabled, provider.idempotent()) {
            Plan::Done(update, verdict) => {
                if verdict == Verdict::Ambiguous {
                    tracing::warn!("interrupted submission cannot be repeated safely; job marked failed");
                    crate::audit!("job_failed", job_id = %job.id, reason = "ambiguous_submission");
                }
                return update;
            }
            Plan::Send { attempt, repeat } => {
                if repeat {
                    tracing::info!("repeating an interrupted submission with its idempotency key");
                }
                attempt
            }
        };
        crate::audit!("job_dispatch", job_id = %job.id, plugin = %plugin, attempt = attempt);
        // A deliberate leak for the end-to-end test of the PHI guard and of the canary rollback it triggers:
        // compiled only into the test image (cargo feature `test-leak`), and then only when switched on.
        #[cfg(feature = "test-leak")]
        if std::env::var_os("FAXBOT_TEST_LEAK_NUMBERS").is_some() {
            tracing::info!(to = job.to.expose(), "test leak: the destination number in full");
        }
        let document =
            if provider.needs_document() { self.read_document(&job.document_key).await.map(Some) } else { Ok(None) };
        let content_url =
            if provider.wants_content_url() { self.content_url(&job.id).await.map(Some) } else { Ok(None) };
        let result = match (document, content_url) {
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(document), Ok(content_url)) => {
                let request = SendRequest {
                    job_id: &job.id,
                    to: &job.to,
                    document_key: &job.document_key,
                    pages: job.pages,
                    idempotency_key: job.id.as_str(),
                    document,
                    content_url,
                };
                let started = std::time::Instant::now();
                let result = match tokio::time::timeout(self.config.provider_timeout, provider.send(&request)).await {
                    Ok(r) => r,
                    Err(_) => Err(ProviderError::Transport("timed out".into())),
                };
                self.metrics.submission_latency(&plugin, &runtime.revision, started.elapsed());
                result
            }
        };
        self.metrics.submission(&plugin, result.as_ref().map_or_else(|e| e.kind(), |_| "accepted"), &runtime.revision);
        let plugins: Vec<String> = runtime.outbound_chain().map(|(id, _)| id.clone()).collect();
        let mut update = self.base_update(job, Timestamp::now());
        update.backend = Some(plugin.clone());
        let jitter: f64 = rand::rng().random();
        let (update, verdict) = decide::decide(
            update,
            &claimed,
            match &result {
                Ok(submission) => Ok(submission.clone()),
                Err(e) => Err(e),
            },
            Chain { plugins: &plugins, index, idempotent: provider.idempotent() },
            &self.config.retry,
            &self.polling(provider.as_ref()),
            jitter,
        );
        let kind = result.as_ref().err().map(ProviderError::kind).unwrap_or("accepted");
        match &verdict {
            Verdict::FailedOver { to, .. } => {
                tracing::warn!(from = %plugin, to = %to, kind, "provider failed; failing over");
                self.metrics
                    .failovers
                    .get_or_create(&crate::metrics::JobLabels {
                        plugin: plugin.clone(),
                        outcome: to.clone(),
                        revision: runtime.revision.clone(),
                    })
                    .inc();
                self.events
                    .event(EventKind::PluginError)
                    .subject(&job.id)
                    .plugin(&plugin)
                    .detail(&format!("failover to {to} after {kind}"))
                    .publish();
            }
            Verdict::Retrying { delay } => {
                tracing::info!(attempt, delay_ms = delay.as_millis() as u64, kind, "submission failed; retrying");
            }
            Verdict::Failed => {
                tracing::warn!(attempt, kind, "submission failed permanently");
                crate::audit!("job_failed", job_id = %job.id, reason = kind);
            }
            Verdict::Ambiguous => {
                tracing::warn!(
                    kind,
                    "submission outcome unknown and the provider cannot recognise a repeat; job marked failed"
                );
                crate::audit!("job_failed", job_id = %job.id, reason = "ambiguous_submission");
            }
            Verdict::Accepted | Verdict::Held => {}
        }
        update
    }

    /// A fresh tokenized URL of the job's document for a provider that fetches it. A token that cannot be
    /// stored is a database problem: the submission is retried like an outage.
    async fn content_url(&self, id: &JobId) -> Result<String, ProviderError> {
        let now = Timestamp::now();
        let token = crate::db::tokens::issue(
            &self.db,
            crate::db::tokens::TokenKind::Outbound,
            id,
            now,
            now.plus(self.config.pdf_token_ttl),
            None,
        )
        .await
        .map_err(|e| ProviderError::Unavailable {
            message: format!("issuing the document token failed: {e}"),
            retry_after: None,
        })?;
        Ok(format!("{}/fax/{id}/pdf?token={token}", self.config.public_api_url))
    }

    /// The stored document, for plugins that upload it. A missing document is a permanent failure of the
    /// job (retrying would not bring it back); a store that is down or refusing (S3 outage, an expired
    /// role) is retried like a provider outage, since the document is still there.
    async fn read_document(&self, key: &str) -> Result<bytes::Bytes, ProviderError> {
        use tokio::io::AsyncReadExt;
        let failed = |e: crate::documents::StorageError| {
            if e.is_transient() {
                ProviderError::Unavailable { message: format!("the document store failed: {e}"), retry_after: None }
            } else {
                ProviderError::Rejected(format!("the stored document is unavailable: {e}"))
            }
        };
        let mut reader = self.documents.open(key).await.map_err(failed)?;
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await.map_err(|e| ProviderError::Unavailable {
            message: format!("the stored document could not be read: {e}"),
            retry_after: None,
        })?;
        Ok(bytes.into())
    }

    async fn poll(&self, job: &JobRow) -> JobUpdate {
        let now = Timestamp::now();
        let mut update = self.base_update(job, now);
        let Some(provider) = self.runtime.provider(&job.backend) else {
            update.status = JobStatus::DispatchFailed;
            update.error =
                Some(format!("plugin `{}` is no longer configured; the final status is unknown", job.backend));
            return update;
        };
        let sid = job.provider_sid.as_deref().unwrap_or_default();
        let result = match tokio::time::timeout(self.config.provider_timeout, provider.status(sid)).await {
            Ok(r) => r,
            Err(_) => Err(ProviderError::Transport("timed out".into())),
        };
        update.now = Timestamp::now();
        let polling = self.polling(provider.as_ref());
        match result {
            Ok(remote) => decide::remote(update, remote, job.created_at, &polling, 1),
            Err(e) => {
                tracing::warn!(kind = e.kind(), "status poll failed");
                // A failed check waits twice as long.
                decide::next_check(update, job.created_at, &polling, 2)
            }
        }
    }
}

/// What the job rules need to know about a claimed row.
fn claimed(job: &JobRow) -> Claimed {
    Claimed { attempts: job.attempts, dispatch_started: job.dispatch_started, created_at: job.created_at }
}
