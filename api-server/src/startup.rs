//! Wiring: settings → database → writer → runtime config → storage → auth → router, and the run loop with
//! graceful shutdown (stop taking traffic, drain in-flight requests, let the worker finish or release
//! its jobs).

use crate::configuration::Settings;
use crate::db::{Db, jobs, writer::Writer};
use crate::documents::DocumentStore;
use crate::documents::local::LocalStore;
use crate::documents::s3::{S3Credentials, S3Store};
use crate::events::{EventBus, EventKind};
use crate::http::auth::Auth;
use crate::http::{AppState, router};
use crate::metrics::Metrics;
use crate::queue::retry::RetryPolicy;
use crate::queue::worker::{Worker, WorkerConfig, WorkerParts};
use crate::runtime::{self, RuntimeState};
use anyhow::Context;
use faxbot_contract::plugins::{LOCAL_STORAGE, LocalStorageSettings, S3_STORAGE, S3StorageSettings, parse_settings};
use faxbot_contract::runtime_config::SlotBinding;
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// A built, not yet running server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    worker: Worker,
}

/// Reads a secret file, or creates it with a fresh random value (mode 0600) when missing.
/// Restricts the data directory to this user (mode 0700) when this user owns it. A volume's mount point is
/// another matter: in Kubernetes an emptyDir or a claim belongs to root and is shared with the pod's group
/// (fsGroup, mode 2777 or 2770), its mode is the platform's to set, and a chmod fails with EPERM, which made
/// every pod the operator renders crash at start on a real kubelet. There the directory is left as it is,
/// provided this process can create files in it; everything the server writes inside gets its own
/// restrictive mode.
fn secure_data_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            tempfile::Builder::new()
                .prefix(".faxbot-write-check")
                .tempfile_in(dir)
                .with_context(|| format!("{} belongs to another user and is not writable", dir.display()))?;
            let mode = std::fs::metadata(dir).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0);
            tracing::info!(
                path = %dir.display(),
                mode = %format!("{mode:o}"),
                "the data directory belongs to another user (a volume's mount point): its permissions are the volume's"
            );
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("securing {}", dir.display())),
    }
}

fn read_or_create_secret(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok((s.trim().to_string(), false)),
        Ok(_) => anyhow::bail!("{} is empty", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            let value = make();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            f.write_all(value.as_bytes())?;
            f.sync_all()?;
            Ok((value, true))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn ghostscript_on_path() -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join("gs").is_file()))
        .unwrap_or(false)
}

/// What follows a config change, whoever applied it: see [`runtime::config_applied`].
pub fn config_applied(app: &AppState, old: &runtime::Runtime, new: &runtime::Runtime, source: &str) {
    runtime::config_applied(&app.events, &app.db, &app.notify, old, new, source);
}

/// The document store the config's `storage` slot names (local when it names none). Storage is fixed for
/// the life of the process: moving documents between stores needs a restart.
fn build_store(binding: Option<&SlotBinding>, data_dir: &Path) -> anyhow::Result<Arc<dyn DocumentStore>> {
    let problems =
        |id: &'static str| move |p: Vec<(String, String)>| anyhow::anyhow!("invalid {id} storage settings: {p:?}");
    match binding {
        None => Ok(Arc::new(LocalStore::open(&data_dir.join("documents")).context("opening document storage")?)),
        Some(b) if b.plugin == LOCAL_STORAGE => {
            let s: LocalStorageSettings = parse_settings(&b.settings).map_err(problems(LOCAL_STORAGE))?;
            let root = s.path.map(Into::into).unwrap_or_else(|| data_dir.join("documents"));
            Ok(Arc::new(LocalStore::open(&root).context("opening document storage")?))
        }
        Some(b) if b.plugin == S3_STORAGE => {
            let s: S3StorageSettings = parse_settings(&b.settings).map_err(problems(S3_STORAGE))?;
            let credential = |name: &str, env: &str| crate::plugins::credential("storage", name, env);
            let credentials = match (
                credential("accessKeyId", "AWS_ACCESS_KEY_ID"),
                credential("secretAccessKey", "AWS_SECRET_ACCESS_KEY"),
            ) {
                (Some(access_key_id), Some(secret_access_key)) => {
                    Some(S3Credentials { access_key_id, secret_access_key })
                }
                (None, None) => {
                    tracing::info!("S3 storage: no access key credentials; using the AWS credential chain");
                    None
                }
                (Some(_), None) | (None, Some(_)) => anyhow::bail!(
                    "S3 storage needs both credentials or neither: mount $FAXBOT_CREDENTIALS_DIR/storage.accessKeyId \
                     and storage.secretAccessKey (or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                ),
            };
            let documents = S3Store::new(&s, credentials, &data_dir.join("staging")).context("opening S3 storage")?;
            Ok(Arc::new(documents))
        }
        Some(b) => anyhow::bail!("storage plugin `{}` is not available in this build", b.plugin),
    }
}

impl Application {
    /// Builds everything and binds the listener; fails with a precise message on any misconfiguration.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Application> {
        crate::work::init(settings.document_workers, settings.document_wait);
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
        secure_data_dir(&settings.data_dir)?;

        if settings.api_key.is_none()
            && let Some(path) = settings.api_key_file.clone()
        {
            let (key, created) =
                read_or_create_secret(&path, || format!("fbk_admin_{}", crate::domain::new_secret_token()))?;
            if created {
                tracing::info!(path = %path.display(), "generated a bootstrap admin key; read it from this file (it is never logged)");
            }
            settings.api_key = Some(key);
        }
        let pepper = match &settings.pepper {
            Some(p) => p.clone(),
            None => read_or_create_secret(&settings.pepper_file, crate::domain::new_secret_token)?.0,
        };

        let db = Db::connect(&settings.database_url, settings.db_max_connections)
            .await
            .context("connecting to the database")?;
        tracing::info!(database = db.backend.as_str(), "database ready");
        let (writer, _writer_task) = Writer::spawn(db.clone());
        let metrics = Arc::new(Metrics::new());
        let runtime =
            Arc::new(RuntimeState::load(&settings, db.clone(), writer.clone()).context("loading the runtime config")?);
        let current = runtime.load_current();
        runtime.publish_revision(&metrics, &current.revision);

        let documents = build_store(current.config.providers.storage.as_ref(), &settings.data_dir)?;
        tracing::info!(storage = documents.id(), "document storage ready");

        if !settings.auth_enforced() {
            tracing::warn!(
                "AUTHENTICATION IS DISABLED: no API_KEY is set and REQUIRE_API_KEY is false, so anyone who can reach \
                 this port can send faxes. Dev mode only: set API_KEY or API_KEY_FILE."
            );
        }
        let auth = Arc::new(Auth::new(
            db.clone(),
            settings.api_key.as_deref(),
            pepper.into_bytes(),
            settings.auth_enforced(),
            metrics.clone(),
        ));
        if current.dispatch_enabled {
            let released = jobs::release_held(&db, crate::domain::Timestamp::now()).await?;
            if released > 0 {
                tracing::info!(released, "released jobs held while sending was disabled");
            }
        }

        let notify = Arc::new(Notify::new());
        let events = Arc::new(EventBus::new(metrics.clone()));
        for (slot, id) in runtime::slot_plugins(&current) {
            events.event(EventKind::PluginStarted).plugin(&id).revision(&current.revision).detail(&slot).publish();
        }
        let worker = Worker::new(
            WorkerParts {
                db: db.clone(),
                documents: documents.clone(),
                writer: writer.clone(),
                runtime: runtime.clone(),
                metrics: metrics.clone(),
                notify: notify.clone(),
                events: events.clone(),
            },
            WorkerConfig {
                concurrency: settings.worker_concurrency,
                retry: RetryPolicy {
                    base: settings.retry_base,
                    max: settings.retry_max,
                    max_attempts: settings.max_attempts,
                },
                lease: settings.job_lease,
                provider_timeout: settings.provider_timeout,
                status_deadline: settings.status_deadline,
                shutdown_grace: settings.shutdown_grace,
                pdf_token_ttl: settings.pdf_token_ttl,
                public_api_url: settings.public_api_url.clone(),
            },
        );
        let listener =
            TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
        let failed_auth = Arc::new(crate::http::auth_failures::FailedAuth::new(
            settings.auth_failures_per_minute,
            settings.trusted_proxies.clone(),
        ));
        let state = AppState {
            settings: Arc::new(settings),
            db,
            writer,
            documents,
            auth,
            runtime,
            metrics,
            notify,
            accepting: Arc::new(AtomicBool::new(true)),
            responses: Arc::default(),
            ghostscript: ghostscript_on_path(),
            events,
            webhook_reads: Arc::new(crate::http::webhook_body::reads()),
            failed_auth,
        };
        Ok(Application { listener, state, worker })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until_stopped(self, signal: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application { listener, state, worker } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker_task = tokio::spawn(worker.run(stop_rx.clone()));

        let watch_state = state.clone();
        let watcher = tokio::spawn(runtime::watch(
            state.runtime.clone(),
            state.metrics.clone(),
            state.settings.config_poll,
            stop_rx.clone(),
            move |old, new| config_applied(&watch_state, old, new, "the config file watcher"),
        ));

        let retention = state.settings.artifact_ttl.map(|ttl| {
            tokio::spawn(crate::retention::run(
                state.db.clone(),
                state.documents.clone(),
                ttl,
                state.settings.cleanup_interval,
                stop_rx.clone(),
            ))
        });
        let inbound_retention = tokio::spawn(crate::retention::run_inbound(
            state.db.clone(),
            state.documents.clone(),
            state.settings.cleanup_interval,
            stop_rx.clone(),
        ));
        let orphans = tokio::spawn(crate::retention::run_orphans(
            state.db.clone(),
            state.documents.clone(),
            state.settings.orphan_min_age,
            state.settings.cleanup_interval,
            stop_rx.clone(),
        ));
        let checkpoints = tokio::spawn(state.db.clone().checkpoint_loop(Duration::from_millis(500), stop_rx.clone()));
        let flush_auth = state.auth.clone();
        let mut flush_stop = stop_rx.clone();
        let flusher = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => flush_auth.flush_last_used().await,
                    _ = flush_stop.changed() => break,
                }
            }
        });

        let addr = listener.local_addr()?;
        tracing::info!(addr = %addr, revision = %state.runtime.load_current().revision, "listening");
        let accepting = state.accepting.clone();
        let drain_delay = state.settings.drain_delay;
        let shutdown = async move {
            signal.await;
            accepting.store(false, Ordering::SeqCst);
            if !drain_delay.is_zero() {
                tracing::info!(
                    seconds = drain_delay.as_secs(),
                    "shutdown requested: readiness now fails; still serving"
                );
                tokio::time::sleep(drain_delay).await;
            }
            tracing::info!("shutdown requested: draining in-flight requests");
        };
        let app = router(state.clone());
        // The peer address feeds the failed-authentication limit (http::auth_failures).
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await?;

        let _ = stop_tx.send(true);
        if worker_task.await.is_err() {
            tracing::error!("worker task panicked");
        }
        let _ = watcher.await;
        let _ = flusher.await;
        let _ = checkpoints.await;
        let _ = orphans.await;
        let _ = inbound_retention.await;
        if let Some(task) = retention {
            let _ = task.await;
        }
        state.auth.flush_last_used().await;
        state.db.pool.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on SIGTERM or SIGINT. The handlers are installed when this is called (not when the future is
/// first polled), so call it before the server announces itself: a SIGTERM that arrives right after start
/// then still shuts down gracefully instead of killing the process.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! { _ = wait(term) => {}, _ = wait(int) => {} }
    }
}
