//! The v3 plugin management API: `GET /plugins`, `GET`/`PUT /plugins/{id}/config`, `GET /plugin-registry`.
//!
//! Gated by feature flags of the runtime config: `/plugins*` answers 404 `v3 plugins feature disabled` while
//! `v3Plugins` is off, and `/plugin-registry` answers 404 while `pluginRegistry` is off. Admin authentication
//! comes first, as in the reference (401 before the flag's 404).
//!
//! `PUT /plugins/{id}/config` goes through the config document, the single source of truth: the new document
//! is validated against the plugin manifest (every problem with its JSON path), written atomically next to
//! the old one, and applied at once — no restart. Where the document is not ours to write (configured from
//! the environment, or a read-only ConfigMap mounted by the operator), the answer is 409 with what to change
//! instead.

use std::io::Write;
use std::path::Path;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use faxbot_contract::plugins::{self, Category, PluginManifest};
use faxbot_contract::{RuntimeConfig, SlotBinding};
use serde::{Deserialize, Serialize};

use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody, ValidationItem};
use crate::phi_guard::guard_text as redact_digits;
use crate::runtime::ConfigSource;

/// One plugin as listed by `GET /plugins`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginItem {
    /// Plugin id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Slots it can fill.
    #[schema(value_type = Vec<String>)]
    pub categories: Vec<Category>,
    /// What it can do.
    #[schema(value_type = Vec<String>)]
    pub capabilities: Vec<plugins::Capability>,
    /// Whether it is bound to a slot and enabled in the running config.
    pub enabled: bool,
    /// Whether it takes settings.
    pub configurable: bool,
}

/// `GET /plugins`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginList {
    /// Every built-in plugin.
    pub items: Vec<PluginItem>,
}

/// A plugin's configuration in the running document.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginConfig {
    /// Whether the plugin is bound and enabled.
    pub enabled: bool,
    /// Its settings (non-secret by construction: the document refuses credential-like keys).
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
}

/// `PUT /plugins/{id}/config` body; both fields optional.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginConfigUpdate {
    /// Enable or disable the plugin in its slot.
    pub enabled: Option<bool>,
    /// Replacement settings object.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

/// `PUT /plugins/{id}/config` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginConfigSaved {
    /// Always true.
    pub ok: bool,
    /// The document written.
    pub path: String,
    /// The revision now serving.
    pub revision: String,
}

/// `GET /plugin-registry` filters.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct RegistryQuery {
    /// Only plugins that can fill this slot (`outbound`, `inbound`, `storage`, `auth`).
    pub category: Option<String>,
    /// Only plugins usable for PHI.
    pub hipaa: Option<bool>,
}

/// `GET /plugin-registry`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Registry {
    /// Manifests, settings schemas included, each with whether its publisher is verified.
    pub items: Vec<RegistryItem>,
}

/// One registry entry.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RegistryItem {
    /// The plugin's manifest (id, name, version, categories, capabilities, hipaa_compliant, settings_schema,
    /// credentials).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub manifest: PluginManifest,
    /// Whether the plugin comes from a verified publisher: built into this server, or an HTTP plugin manifest
    /// whose Ed25519 signature verifies with a trusted publisher key.
    pub verified: bool,
    /// `builtin`, the id of the publisher key that signed the manifest, or null when unverified.
    pub publisher: Option<String>,
    /// Where the entry comes from: `builtin` (compiled in), `manifest` (an HTTP plugin manifest of this
    /// deployment), `index` (the registry index the deployment points at) or `shipped` (a manifest this release
    /// ships).
    pub source: RegistrySource,
    /// Whether a slot can be bound to it now: built-in plugins and the deployment's manifests. An `index` or
    /// `shipped` entry is installed by adding it to the deployment's manifests (a FaxPluginManifest in
    /// Kubernetes).
    pub installed: bool,
}

/// Where a registry entry comes from.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegistrySource {
    /// Compiled into this server.
    Builtin,
    /// An HTTP plugin manifest of the runtime document (`manifests`).
    Manifest,
    /// An entry of the registry index (the document's `catalog`).
    Index,
    /// A manifest shipped with this release, not installed.
    Shipped,
}

pub(crate) fn slots(config: &RuntimeConfig) -> [(Category, Option<&SlotBinding>); 4] {
    let p = &config.providers;
    [
        (Category::Outbound, p.outbound.as_ref()),
        (Category::Inbound, p.inbound.as_ref()),
        (Category::Storage, p.storage.as_ref()),
        (Category::Auth, p.auth.as_ref()),
    ]
}

fn v3_enabled(app: &AppState) -> Result<(), ApiError> {
    if app.runtime.load_current().config.features.v3_plugins {
        Ok(())
    } else {
        Err(ApiError::not_found("v3 plugins feature disabled"))
    }
}

fn unknown_plugin() -> ApiError {
    ApiError::not_found("Plugin not found")
}

/// Lists the plugins (built-in, then those the runtime config's manifests define) and whether each is in use.
#[utoipa::path(get, path = "/plugins", tag = "plugins",
    responses((status = 200, body = PluginList), (status = 401, description = "Admin authentication failed", body = ErrorBody),
        (status = 404, description = "v3 plugins feature disabled", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(State(app): State<AppState>, headers: HeaderMap) -> Result<Json<PluginList>, ApiError> {
    app.auth.admin(&headers, "/plugins").await?;
    v3_enabled(&app)?;
    let runtime = app.runtime.load_current();
    let items = faxbot_contract::validate::all_manifests(&runtime.config)
        .into_iter()
        .map(|m| {
            let enabled = slots(&runtime.config).iter().any(|(_, b)| b.is_some_and(|b| b.plugin == m.id && b.enabled));
            let configurable = m.settings_schema["properties"].as_object().is_some_and(|p| !p.is_empty());
            PluginItem {
                id: m.id,
                name: m.name,
                version: m.version,
                categories: m.categories,
                capabilities: m.capabilities,
                enabled,
                configurable,
            }
        })
        .collect();
    Ok(Json(PluginList { items }))
}

/// A plugin's settings in the running config.
#[utoipa::path(get, path = "/plugins/{id}/config", tag = "plugins", params(("id" = String, Path, description = "Plugin id")),
    responses((status = 200, body = PluginConfig), (status = 401, description = "Admin authentication failed", body = ErrorBody),
        (status = 404, description = "Feature disabled or unknown plugin", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_config(
    State(app): State<AppState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<PluginConfig>, ApiError> {
    app.auth.admin(&headers, "/plugins/{id}/config").await?;
    v3_enabled(&app)?;
    let runtime = app.runtime.load_current();
    faxbot_contract::validate::plugin_manifest(&runtime.config, &id).ok_or_else(unknown_plugin)?;
    let binding = slots(&runtime.config).into_iter().find_map(|(_, b)| b.filter(|b| b.plugin == id));
    Ok(Json(match binding {
        Some(b) => PluginConfig { enabled: b.enabled, settings: b.settings.clone() },
        None => PluginConfig { enabled: false, settings: serde_json::json!({}) },
    }))
}

/// Updates a plugin's settings (and enabled flag) through the config document and applies them at once. One
/// update at a time; the plugin is built before the document is written, so a refused update changes nothing.
#[utoipa::path(put, path = "/plugins/{id}/config", tag = "plugins", params(("id" = String, Path, description = "Plugin id")),
    request_body = PluginConfigUpdate,
    responses((status = 200, body = PluginConfigSaved), (status = 401, description = "Admin authentication failed", body = ErrorBody),
        (status = 404, description = "Feature disabled or unknown plugin", body = ErrorBody),
        (status = 409, description = "The config document is not writable here (environment or operator-managed), or the change needs a restart (storage)", body = ErrorBody),
        (status = 422, description = "Settings fail the plugin schema (every problem with its path), or the plugin cannot be built with them (a credential missing); nothing is written")),
    security(("api_key" = [])))]
pub async fn put_config(
    State(app): State<AppState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: Result<Json<PluginConfigUpdate>, JsonRejection>,
) -> Result<Json<PluginConfigSaved>, ApiError> {
    app.auth.admin(&headers, "/plugins/{id}/config").await?;
    v3_enabled(&app)?;
    faxbot_contract::validate::plugin_manifest(&app.runtime.load_current().config, &id).ok_or_else(unknown_plugin)?;
    let Json(update) = body.map_err(|rejection| {
        ApiError::Validation(vec![ValidationItem {
            kind: "json_invalid",
            loc: vec!["body".into()],
            msg: format!("JSON decode error: {}", redact_digits(&rejection.body_text())),
            input: None,
        }])
    })?;
    Ok(Json(update_config(&app, &id, None, update, &format!("PUT /plugins/{id}/config")).await?))
}

const FROM_ENVIRONMENT: &str =
    "the runtime config comes from environment variables; set FAXBOT_CONFIG_PATH to manage plugins over the API";
const READ_ONLY: &str = "the runtime config document is read-only here (managed by the Faxbot operator); change the \
                         FaxProvider resource instead";

/// Whether plugin settings can be changed here, and if not, why (the REST route's 409 message): the
/// document must come from a file this process may write. A ConfigMap the operator mounts is read-only.
pub(crate) fn config_writable(app: &AppState) -> Result<(), &'static str> {
    let ConfigSource::File(path) = app.runtime.source() else { return Err(FROM_ENVIRONMENT) };
    // Opening for writing without truncating changes nothing; a read-only mount refuses it (EROFS).
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => Err(READ_ONLY),
    }
}

/// Changes a plugin's settings and enabled flag through the config document (for `PUT /plugins/{id}/config`
/// and the admin console's form); `what` names the change in the `config.changed` event. `slot` picks the
/// slot when the plugin fills more than one (the console edits each slot's binding); without it, the first
/// slot the plugin fills, else the first it can fill.
pub(crate) async fn update_config(
    app: &AppState,
    id: &str,
    slot: Option<Category>,
    update: PluginConfigUpdate,
    what: &str,
) -> Result<PluginConfigSaved, ApiError> {
    let manifest = faxbot_contract::validate::plugin_manifest(&app.runtime.load_current().config, id)
        .ok_or_else(unknown_plugin)?;
    let ConfigSource::File(path) = app.runtime.source().clone() else {
        return Err(ApiError::new(StatusCode::CONFLICT, FROM_ENVIRONMENT));
    };

    // One change at a time: each reads the document the previous one wrote.
    let _writing = app.runtime.lock_writes().await;
    let current = app.runtime.load_current();
    let mut config = current.config.clone();
    // The slot the plugin already fills, else the first slot it can fill (replacing what filled it).
    let bound = slots(&config).into_iter().find(|(_, b)| b.is_some_and(|b| b.plugin == id)).map(|(c, _)| c);
    let category = match slot {
        Some(slot) if manifest.fills(slot) => slot,
        Some(_) => return Err(unknown_plugin()),
        None => bound.or_else(|| manifest.categories.first().copied()).ok_or_else(unknown_plugin)?,
    };
    let providers = &mut config.providers;
    let slot = match category {
        Category::Outbound => &mut providers.outbound,
        Category::Inbound => &mut providers.inbound,
        Category::Storage => &mut providers.storage,
        Category::Auth => &mut providers.auth,
    };
    let mut binding = slot.clone().filter(|b| b.plugin == id).unwrap_or_else(|| SlotBinding::new(id.to_string()));
    if let Some(enabled) = update.enabled {
        binding.enabled = enabled;
    }
    if let Some(settings) = update.settings {
        binding.settings = settings;
    }
    *slot = Some(binding);

    let bytes = serde_json::to_vec_pretty(&config).map_err(ApiError::internal)?;
    // Validate exactly what will be written, with the server's own rules (schema, semantic checks, PHI guard).
    if let Err(e) = faxbot_contract::validate::parse_and_validate(&bytes) {
        let items = match e {
            faxbot_contract::ConfigError::Invalid(issues) => issues
                .into_iter()
                .map(|i| ValidationItem {
                    kind: "value_error",
                    loc: std::iter::once("body".to_string()).chain(i.path.split('.').map(str::to_string)).collect(),
                    msg: redact_digits(&i.message),
                    input: None,
                })
                .collect(),
            faxbot_contract::ConfigError::Malformed { path, message } => vec![ValidationItem {
                kind: "value_error",
                loc: vec!["body".into(), path],
                msg: redact_digits(&message),
                input: None,
            }],
        };
        return Err(ApiError::Validation(items));
    }
    // Build the providers before writing: a document the server cannot run (a credential missing, a client
    // that cannot be made) is refused and never reaches the disk, where it would stop the next start.
    let prepared = match app.runtime.prepare(&bytes) {
        Ok(prepared) => prepared,
        Err(crate::runtime::ReloadError::NeedsRestart(message)) => {
            return Err(ApiError::new(StatusCode::CONFLICT, redact_digits(&message)));
        }
        Err(e) => {
            return Err(ApiError::Validation(vec![ValidationItem {
                kind: "value_error",
                loc: vec!["body".into()],
                msg: redact_digits(&e.to_string()),
                input: None,
            }]));
        }
    };
    write_atomically(&path, &bytes).map_err(|e| match e.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => {
            ApiError::new(StatusCode::CONFLICT, READ_ONLY)
        }
        _ => ApiError::internal(anyhow::Error::new(e).context("writing the runtime config document")),
    })?;
    let revision = match app.runtime.apply_prepared(Ok(prepared), &app.metrics) {
        Ok(Some((old, new))) => {
            crate::runtime::config_applied(&app.events, &app.db, &app.notify, &old, &new, what);
            new.revision.clone()
        }
        Ok(None) => app.runtime.load_current().revision.clone(),
        Err(e) => return Err(ApiError::internal(anyhow::anyhow!("validated document refused: {e}"))),
    };
    Ok(PluginConfigSaved { ok: true, path: path.display().to_string(), revision })
}

/// Temp file, fsync, rename, directory fsync: a crash leaves the old or the new document, never half of one.
/// The temp file's name is unique per write (process id and a counter) and created exclusively, so two
/// writers can never write into one temp file, even from two processes sharing the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("faxbot.json"),
        std::process::id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The plugin registry: every manifest with its settings schema, filterable by slot and HIPAA suitability.
/// Unauthenticated, as in the reference (it carries no configuration), and 404 while `pluginRegistry` is off.
#[utoipa::path(get, path = "/plugin-registry", tag = "plugins", params(RegistryQuery),
    responses((status = 200, body = Registry), (status = 404, description = "Registry disabled", body = ErrorBody),
        (status = 422, description = "Unknown category")))]
pub async fn registry(
    State(app): State<AppState>,
    query: Result<Query<RegistryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Registry>, ApiError> {
    if !app.runtime.load_current().config.features.plugin_registry {
        return Err(ApiError::not_found("plugin registry feature disabled"));
    }
    let Query(query) = query.map_err(|e| {
        ApiError::Validation(vec![ValidationItem {
            kind: "value_error",
            loc: vec!["query".into()],
            msg: redact_digits(&e.body_text()),
            input: None,
        }])
    })?;
    let category = match query.category.as_deref() {
        None => None,
        Some(c) => Some(
            [Category::Outbound, Category::Inbound, Category::Storage, Category::Auth]
                .into_iter()
                .find(|k| k.as_str() == c)
                .ok_or_else(|| {
                    ApiError::Validation(vec![ValidationItem {
                        kind: "enum",
                        loc: vec!["query".into(), "category".into()],
                        msg: "Input should be 'outbound', 'inbound', 'storage' or 'auth'".into(),
                        input: None,
                    }])
                })?,
        ),
    };
    let runtime = app.runtime.load_current();
    let items = registry_items(&runtime.config, &runtime.manifests_verified)
        .into_iter()
        .filter(|item| category.is_none_or(|c| item.manifest.fills(c)))
        .filter(|item| query.hipaa.is_none_or(|h| item.manifest.hipaa_compliant == h))
        .collect();
    Ok(Json(Registry { items }))
}

/// Every registry entry, each id once: what is installed (built-in plugins, then the document's manifests),
/// then the registry index's entries, then the shipped manifests not installed.
fn registry_items(config: &RuntimeConfig, admitted: &crate::plugins::http::Admitted) -> Vec<RegistryItem> {
    use faxbot_contract::manifest::signature::BUILTIN_PUBLISHER;
    let builtin = || Some(BUILTIN_PUBLISHER.to_string());
    let item = |manifest: PluginManifest, publisher: Option<String>, source, installed| RegistryItem {
        verified: publisher.is_some(),
        publisher,
        source,
        installed,
        manifest,
    };
    let mut items: Vec<RegistryItem> =
        plugins::builtin_manifests().into_iter().map(|m| item(m, builtin(), RegistrySource::Builtin, true)).collect();
    for m in &config.manifests {
        let publisher = admitted.manifests.get(&m.id).cloned().flatten();
        items.push(item(m.plugin_manifest(), publisher, RegistrySource::Manifest, true));
    }
    for m in &config.catalog {
        if !items.iter().any(|i| i.manifest.id == m.id) {
            let publisher = admitted.catalog.get(&m.id).cloned().flatten();
            items.push(item(m.plugin_manifest(), publisher, RegistrySource::Index, false));
        }
    }
    for m in faxbot_contract::manifest::registry::shipped() {
        if !items.iter().any(|i| i.manifest.id == m.id) {
            items.push(item(m.plugin_manifest(), builtin(), RegistrySource::Shipped, false));
        }
    }
    items
}

/// Health of one slot's plugin.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SlotHealth {
    /// `outbound`, `storage` or `auth` (and `inbound` once configured).
    pub slot: &'static str,
    /// Plugin id in the slot (the built-in default when the document leaves the slot empty).
    pub plugin: String,
    /// Whether the slot is enabled.
    pub enabled: bool,
    /// Whether the plugin's own check passed.
    pub healthy: bool,
    /// What was checked, or why it failed.
    pub detail: String,
}

/// `GET /plugins/health`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginsHealth {
    /// True when every slot's check passed.
    pub healthy: bool,
    /// One entry per filled slot.
    pub items: Vec<SlotHealth>,
}

/// Runs each slot's check: the outbound provider's configuration and dispatch state, the document store's
/// write/read probe, and the database behind API-key auth. 503 when any fails.
#[utoipa::path(get, path = "/plugins/health", tag = "plugins",
    responses((status = 200, body = PluginsHealth), (status = 503, description = "A plugin check failed", body = PluginsHealth),
        (status = 401, description = "Admin authentication failed", body = ErrorBody),
        (status = 404, description = "v3 plugins feature disabled", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn health(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<PluginsHealth>), ApiError> {
    app.auth.admin(&headers, "/plugins/health").await?;
    v3_enabled(&app)?;
    let report = slot_health(&app).await;
    let status = if report.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((status, Json(report)))
}

/// Each slot's plugin and its check (for `GET /plugins/health` and the MCP tool `list_providers`).
pub(crate) async fn slot_health(app: &AppState) -> PluginsHealth {
    let runtime = app.runtime.load_current();
    let providers = &runtime.config.providers;
    let mut items = vec![SlotHealth {
        slot: "outbound",
        plugin: runtime.outbound_id.clone(),
        enabled: providers.outbound.as_ref().is_none_or(|b| b.enabled),
        healthy: true,
        detail: if runtime.dispatch_enabled {
            "configured; sending enabled".into()
        } else {
            "configured; sending disabled, jobs are held".into()
        },
    }];
    let storage = app.documents.check().await;
    items.push(SlotHealth {
        slot: "storage",
        plugin: providers.storage.as_ref().map_or_else(|| app.documents.id().to_string(), |b| b.plugin.clone()),
        enabled: true,
        healthy: storage.is_ok(),
        detail: match &storage {
            Ok(()) => "write/read probe passed".into(),
            Err(e) => redact_digits(&e.to_string()),
        },
    });
    let db = app.db.ping().await;
    items.push(SlotHealth {
        slot: "auth",
        plugin: providers.auth.as_ref().map_or_else(|| plugins::API_KEY_AUTH.to_string(), |b| b.plugin.clone()),
        enabled: true,
        healthy: db,
        detail: if db { "key database reachable".into() } else { "key database unreachable".into() },
    });
    let healthy = items.iter().all(|i| i.healthy);
    PluginsHealth { healthy, items }
}
