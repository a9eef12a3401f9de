//! The live runtime configuration: the validated config document, the provider built from it, and the
//! watcher that swaps in a new document atomically when its file changes.
//!
//! A reload either applies completely or not at all: a document that fails validation, or whose provider
//! cannot be built, is refused and the previous one keeps serving. Requests and workers read the current
//! [`Runtime`] through an `ArcSwap`, so a swap never blocks them.

use crate::configuration::Settings;
use crate::db::{Db, writer::Writer};
use crate::events::{EventBus, EventKind};
use crate::metrics::{Metrics, ResultLabels};
use crate::plugins::{self, InboundProvider, OutboundProvider};
use arc_swap::ArcSwap;
use faxbot_contract::plugins::SIMULATED_LINE;
use faxbot_contract::validate::{self, ConfigError};
use faxbot_contract::{FeatureFlags, RuntimeConfig, SlotBinding};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where the document came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// Built from environment variables.
    Environment,
    /// Read from this file.
    File(PathBuf),
}

/// One consistent view of the runtime configuration.
#[derive(Debug)]
pub struct Runtime {
    /// The document.
    pub config: RuntimeConfig,
    /// Revision label for metrics and logs.
    pub revision: String,
    /// The outbound plugin id in effect (the simulated line in sandbox mode).
    pub outbound_id: String,
    /// The outbound provider.
    pub outbound: Arc<dyn OutboundProvider>,
    /// Failover providers after the primary, in order, with their plugin ids (empty in sandbox mode).
    pub failover: Vec<(String, Arc<dyn OutboundProvider>)>,
    /// Whether new jobs are dispatched.
    pub dispatch_enabled: bool,
    /// The inbound slot's plugin id and provider; `None` when inbound is off (every inbound route answers
    /// 404 "Inbound not enabled").
    pub inbound: Option<(String, Arc<dyn InboundProvider>)>,
    /// Each manifest's id, in use and in the catalogue, and the publisher key that verified it (`None`:
    /// unverified, allowed by `features.pluginInstall`).
    pub manifests_verified: plugins::http::Admitted,
}

/// The outcome of the last reload attempt, for `/admin/features`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// `applied`, `unchanged` or `rejected`.
    pub result: &'static str,
    /// Why a document was rejected (paths and messages, never values).
    pub error: Option<String>,
    /// When, as a wire timestamp.
    pub at: String,
}

/// Why a document could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read.
    #[error("cannot read the config document: {0}")]
    Read(String),
    /// Invalid document.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// A provider could not be built.
    #[error(transparent)]
    Plugin(#[from] plugins::PluginError),
    /// A change that needs a restart.
    #[error("{0}")]
    NeedsRestart(String),
}

/// The previous and the new runtime after a successful reload.
pub type Swap = (Arc<Runtime>, Arc<Runtime>);

/// Shared, swappable runtime state.
#[derive(Debug)]
pub struct RuntimeState {
    current: ArcSwap<Runtime>,
    /// Providers that jobs may still reference after the slot changed (status polls of submitted faxes).
    known: Mutex<HashMap<String, Arc<dyn OutboundProvider>>>,
    source: ConfigSource,
    last_reload: Mutex<Option<ReloadReport>>,
    revision_override: Option<String>,
    fax_disabled_env: bool,
    db: Db,
    writer: Writer,
    /// Serialises read-modify-write changes of the document (`PUT /plugins/{id}/config`).
    writes: tokio::sync::Mutex<()>,
}

/// The document implied by the environment when no file is given.
pub fn config_from_env(settings: &Settings) -> RuntimeConfig {
    let mut config = RuntimeConfig::default();
    config.providers.outbound = Some(SlotBinding::new(settings.fax_backend.clone()));
    if settings.inbound_enabled {
        config.providers.inbound = Some(SlotBinding::new(settings.inbound_backend.clone()));
    }
    config.features = FeatureFlags {
        v3_plugins: settings.feature_v3_plugins,
        plugin_install: settings.feature_plugin_install,
        mcp: settings.feature_mcp,
        admin_console: settings.feature_admin_console,
        ..FeatureFlags::default()
    };
    config
}

impl Runtime {
    /// The outbound providers in failover order, primary first, with their plugin ids.
    pub fn outbound_chain(&self) -> impl Iterator<Item = (&String, &Arc<dyn OutboundProvider>)> {
        std::iter::once((&self.outbound_id, &self.outbound)).chain(self.failover.iter().map(|(id, p)| (id, p)))
    }

    /// The provider at `index` of the chain, clamped to the last one (a config change may shorten the chain
    /// while a job sits at a later position).
    pub fn chain_at(&self, index: usize) -> (&String, &Arc<dyn OutboundProvider>) {
        let last = self.failover.len();
        match index.min(last) {
            0 => (&self.outbound_id, &self.outbound),
            i => (&self.failover[i - 1].0, &self.failover[i - 1].1),
        }
    }
}

impl RuntimeState {
    /// Loads the initial document (file or environment) and builds the provider. Fails on any problem: a
    /// server must not start on a configuration it cannot honour.
    pub fn load(settings: &Settings, db: Db, writer: Writer) -> Result<RuntimeState, ReloadError> {
        let (config, source) = match &settings.config_path {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| ReloadError::Read(format!("{}: {e}", path.display())))?;
                (validate::parse_and_validate(&bytes)?, ConfigSource::File(path.clone()))
            }
            None => {
                let config = config_from_env(settings);
                validate::validate(&config).map_err(ConfigError::Invalid)?;
                (config, ConfigSource::Environment)
            }
        };
        let runtime = build_runtime(config, &settings.revision_override, settings.fax_disabled, &db, &writer)?;
        Ok(RuntimeState {
            current: ArcSwap::from_pointee(runtime),
            known: Mutex::new(HashMap::new()),
            source,
            last_reload: Mutex::new(None),
            revision_override: settings.revision_override.clone(),
            fax_disabled_env: settings.fax_disabled,
            db,
            writer,
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// Held while a change is read, checked, written and applied, so that concurrent changes do not lose each
    /// other's edits.
    pub async fn lock_writes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    fn build(&self, config: RuntimeConfig) -> Result<Runtime, ReloadError> {
        build_runtime(config, &self.revision_override, self.fax_disabled_env, &self.db, &self.writer)
    }

    /// The current view.
    pub fn load_current(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// The provider that owns jobs of plugin `id`: the current chain's instance if the plugin is in it, else
    /// the last instance of that plugin this process used.
    pub fn provider(&self, id: &str) -> Option<Arc<dyn OutboundProvider>> {
        let current = self.current.load();
        if let Some((_, provider)) = current.outbound_chain().find(|(plugin, _)| plugin.as_str() == id) {
            return Some(provider.clone());
        }
        self.known.lock().ok()?.get(id).cloned()
    }

    /// Where the document comes from.
    pub fn source(&self) -> &ConfigSource {
        &self.source
    }

    /// The last reload attempt.
    pub fn last_reload(&self) -> Option<ReloadReport> {
        self.last_reload.lock().ok()?.clone()
    }

    /// Applies new document bytes. Returns `Ok(Some((old, new)))` when the revision changed.
    pub fn apply(&self, bytes: &[u8], metrics: &Metrics) -> Result<Option<Swap>, ReloadError> {
        self.apply_prepared(self.prepare(bytes), metrics)
    }

    /// Applies what [`RuntimeState::prepare`] built (or reports why it could not), with the reload's metric,
    /// report and revision gauge.
    pub fn apply_prepared(
        &self,
        prepared: Result<Option<Runtime>, ReloadError>,
        metrics: &Metrics,
    ) -> Result<Option<Swap>, ReloadError> {
        let result = prepared.map(|p| p.and_then(|new| self.commit(new)));
        let (label, report) = match &result {
            Ok(Some(_)) => ("applied", ReloadReport { result: "applied", error: None, at: now_wire() }),
            Ok(None) => ("unchanged", ReloadReport { result: "unchanged", error: None, at: now_wire() }),
            Err(e) => (
                "rejected",
                ReloadReport {
                    result: "rejected",
                    error: Some(crate::phi_guard::guard_text(&e.to_string())),
                    at: now_wire(),
                },
            ),
        };
        Metrics::count(&metrics.config_reloads, label);
        if label != "unchanged"
            && let Ok(mut last) = self.last_reload.lock()
        {
            *last = Some(report);
        }
        if let Ok(Some((_, new))) = &result {
            self.publish_revision(metrics, &new.revision);
        }
        result
    }

    /// Sets the `config_revision` info metric.
    pub fn publish_revision(&self, metrics: &Metrics, revision: &str) {
        crate::phi_guard::set_revision(revision);
        metrics.config_info.clear();
        metrics.config_info.get_or_create(&ResultLabels { result: revision.to_string() }).set(1);
    }

    /// Everything a change needs short of making it live: the document parsed and validated, and its
    /// providers built (credentials read, clients made). `None` when it equals the current document. A
    /// caller that writes the document writes it only after this succeeded, so a document the server
    /// cannot run is never left on disk for the next start.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Option<Runtime>, ReloadError> {
        let config = validate::parse_and_validate(bytes)?;
        let old = self.current.load_full();
        if config == old.config {
            return Ok(None);
        }
        if config.providers.storage != old.config.providers.storage {
            return Err(ReloadError::NeedsRestart(
                "providers.storage changed: moving documents to another store needs a restart, so the new \
                 document was not applied"
                    .into(),
            ));
        }
        self.build(config).map(Some)
    }

    /// Makes a prepared runtime current; `None` if the current one already has its document (another path,
    /// such as the file watcher, applied it meanwhile).
    fn commit(&self, new: Runtime) -> Option<Swap> {
        let old = self.current.load_full();
        if new.config == old.config {
            return None;
        }
        let new = Arc::new(new);
        if let Ok(mut known) = self.known.lock() {
            for (plugin, provider) in old.outbound_chain() {
                known.insert(plugin.clone(), provider.clone());
            }
        }
        self.current.store(new.clone());
        Some((old, new))
    }
}

fn now_wire() -> String {
    crate::domain::Timestamp::now().to_wire()
}

/// Builds a [`Runtime`] from a validated document.
fn build_runtime(
    config: RuntimeConfig,
    revision_override: &Option<String>,
    fax_disabled_env: bool,
    db: &Db,
    writer: &Writer,
) -> Result<Runtime, ReloadError> {
    let binding = if config.features.sandbox_mode {
        SlotBinding::new(SIMULATED_LINE)
    } else {
        config.providers.outbound.clone().unwrap_or_else(|| SlotBinding::new(SIMULATED_LINE))
    };
    let manifests_verified = plugins::http::admit_all(&config)?;
    let outbound = plugins::build_outbound(&binding, "outbound", &config.manifests, db, writer)?;
    let failover = if config.features.sandbox_mode {
        Vec::new()
    } else {
        config
            .providers
            .outbound_failover
            .iter()
            .enumerate()
            .map(|(i, b)| {
                Ok((
                    b.plugin.clone(),
                    plugins::build_outbound(b, &format!("failover{}", i + 1), &config.manifests, db, writer)?,
                ))
            })
            .collect::<Result<Vec<_>, plugins::PluginError>>()?
    };
    let inbound = match &config.providers.inbound {
        Some(binding) if binding.enabled => Some((binding.plugin.clone(), plugins::build_inbound(binding)?)),
        _ => None,
    };
    let revision = revision_override.clone().unwrap_or_else(|| config.revision());
    Ok(Runtime {
        inbound,
        failover,
        dispatch_enabled: binding.enabled && !fax_disabled_env,
        outbound_id: binding.plugin,
        outbound,
        revision,
        config,
        manifests_verified,
    })
}

/// Watches the config file and applies changes; also reloads on SIGHUP.
pub async fn watch(
    state: Arc<RuntimeState>,
    metrics: Arc<Metrics>,
    poll: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    on_applied: impl Fn(&Runtime, &Runtime) + Send + 'static,
) {
    let ConfigSource::File(path) = state.source().clone() else { return };
    // Start from "nothing seen": the document may have changed between startup's load and this task's
    // first run (a rename landing right after start), and re-reading an unchanged document is a no-op.
    let mut last: Option<Vec<u8>> = None;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let hup_recv = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = hup_recv => { last = None; }
            _ = shutdown.changed() => return,
        }
        // Read and applied under the writers' lock: read outside it, a document could be applied after a
        // newer one that `PUT /plugins/{id}/config` wrote and applied meanwhile, and the server would run the
        // older document until the next poll (seen under load: 100 concurrent updates, the server on one
        // document and the disk on another).
        let _writes = state.lock_writes().await;
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "config document unreadable; keeping the current configuration");
                continue;
            }
        };
        if last.as_deref() == Some(&bytes[..]) {
            continue;
        }
        last = Some(bytes.clone());
        match state.apply(&bytes, &metrics) {
            Ok(Some((old, new))) => {
                tracing::info!(revision = %new.revision, outbound = %new.outbound_id, "runtime config applied");
                on_applied(&old, &new);
            }
            Ok(None) => {}
            Err(e) => {
                let reason = crate::phi_guard::guard_text(&e.to_string());
                crate::audit!("config_rejected", reason = %reason);
                tracing::error!(reason = %reason, "new config document refused; the previous configuration keeps serving");
            }
        }
    }
}

/// The plugin instances of a runtime with the slot each fills.
pub fn slot_plugins(runtime: &Runtime) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = runtime
        .outbound_chain()
        .enumerate()
        .map(|(i, (id, _))| (if i == 0 { "outbound".to_string() } else { format!("failover{i}") }, id.clone()))
        .collect();
    if let Some((id, _)) = &runtime.inbound {
        out.push(("inbound".into(), id.clone()));
    }
    out
}

/// What follows a config change, whoever applied it (`source`: the file watcher or `PUT /plugins/{id}/config`):
/// `config.changed` and `plugin.started`/`plugin.stopped` events, and when sending was just enabled, jobs
/// held while it was off are released and the worker woken.
pub fn config_applied(
    events: &EventBus,
    db: &Db,
    notify: &Arc<tokio::sync::Notify>,
    old: &Runtime,
    new: &Runtime,
    source: &str,
) {
    events.event(EventKind::ConfigChanged).revision(&new.revision).detail(&format!("applied by {source}")).publish();
    let (before, after) = (slot_plugins(old), slot_plugins(new));
    for (slot, id) in &before {
        if !after.contains(&(slot.clone(), id.clone())) {
            events.event(EventKind::PluginStopped).plugin(id).revision(&new.revision).detail(slot).publish();
        }
    }
    for (slot, id) in &after {
        events.event(EventKind::PluginStarted).plugin(id).revision(&new.revision).detail(slot).publish();
    }
    if new.dispatch_enabled && !old.dispatch_enabled {
        let (db, notify) = (db.clone(), notify.clone());
        tokio::spawn(async move {
            match crate::db::jobs::release_held(&db, crate::domain::Timestamp::now()).await {
                Ok(n) => tracing::info!(released = n, "sending enabled; held jobs released"),
                Err(e) => tracing::error!(error = %e, "releasing held jobs failed"),
            }
            notify.notify_one();
        });
    }
}
