//! Pure validation: from a FaxPluginConfig and the objects it references to a [`Desired`] state, or a precise
//! [`Invalid`] reason.
//!
//! Nothing here talks to the API server. The reconciler fetches the referenced FaxProviders and Secrets and
//! hands them in; whatever is missing is reported with a reason a program can match on
//! (`ProviderNotFound`, `SecretKeyMissing`, …) and a message a human can act on. Messages name objects,
//! keys and fields, never values: a credential value or a number pasted into a setting must not reach a
//! status condition or an event.

use std::collections::BTreeMap;

use faxbot_contract::manifest::HttpManifest;
use faxbot_contract::manifest::check::{Policy, check};
use faxbot_contract::plugins::{self, Category, PluginManifest};
use faxbot_contract::{ProviderSlots, RuntimeConfig, SlotBinding};
use faxbot_crds::{FaxPluginConfig, FaxPluginManifest, FaxProvider, RolloutStrategy, SecretKeyRef, SidecarSpec};
use hmac::{Hmac, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use sha2::{Digest, Sha256};

use crate::names;
use crate::redact::mask_numbers;

/// Why a spec cannot be applied. `reason` is one CamelCase word for conditions and events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Machine-readable reason.
    pub reason: &'static str,
    /// Human-readable explanation, already masked.
    pub message: String,
}

impl Invalid {
    fn new(reason: &'static str, message: impl AsRef<str>) -> Self {
        Invalid { reason, message: mask_numbers(message.as_ref()) }
    }
}

/// One provider that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedProvider {
    /// The plugin's manifest from the shared registry.
    pub manifest: PluginManifest,
    /// Its settings (an object).
    pub settings: serde_json::Value,
    /// Credential name → value, exactly the ones the plugin declares and the mapping provides.
    pub credentials: BTreeMap<String, ByteString>,
    /// UIDs of the Secrets the credentials came from (they key the credentials checksum).
    pub secret_uids: Vec<String>,
    /// The HTTP plugin manifest, for a plugin defined by one (it goes into the runtime config).
    pub http: Option<HttpManifest>,
}

/// Which Secret keys a provider's credentials come from, as `(credential, secret key)` pairs.
pub fn credential_mapping(provider: &FaxProvider, manifest: &PluginManifest) -> Vec<(String, String)> {
    match provider.spec.credentials_secret_ref.as_ref().and_then(|r| r.items.as_ref()) {
        Some(items) => items.iter().map(|i| (i.credential.clone(), i.key.clone())).collect(),
        None => manifest.credentials.iter().map(|c| (c.name.clone(), c.name.clone())).collect(),
    }
}

/// Prefix of the environment variables the operator sets in a sidecar; a FaxProvider's `sidecar.env` may not
/// use it (nor [`names::CREDENTIAL_ENV_PREFIX`], the sidecar's credentials).
pub const SIDECAR_ENV_PREFIX: &str = "FAXBOT_PLUGIN_";

/// The address the API server calls a sidecar at: the pod's loopback, on the sidecar's port.
pub fn sidecar_url(port: i32) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The `sidecar` rules of one FaxProvider, the operator-side copy of the CRD's admission rules (which a
/// FaxProvider stored under an older CRD, or written with validation off, never went through): plugin
/// `external` needs a sidecar and no other plugin may have one; its port is unprivileged and not the API
/// server's own; its environment leaves the operator's `FAXBOT_PLUGIN_*` and `FAXBOT_CREDENTIAL_*` names alone
/// and names each variable once. Returns the sidecar of an `external` provider.
pub fn validate_sidecar(provider: &FaxProvider) -> Result<Option<&SidecarSpec>, Invalid> {
    let name = provider.metadata.name.as_deref().unwrap_or("");
    let plugin = &provider.spec.plugin;
    let sidecar = match (plugin == plugins::EXTERNAL, provider.spec.sidecar.as_ref()) {
        (true, Some(sidecar)) => sidecar,
        (false, None) => return Ok(None),
        (true, None) => {
            return Err(Invalid::new(
                "SidecarRequired",
                format!(
                    "FaxProvider {name}: plugin `external` runs as a sidecar container beside the API server; set \
                     spec.sidecar (its image and port)"
                ),
            ));
        }
        (false, Some(_)) => {
            return Err(Invalid::new(
                "SidecarNotAllowed",
                format!("FaxProvider {name}: spec.sidecar is only for plugin `external`, not `{plugin}`; remove it"),
            ));
        }
    };
    let invalid = |detail: String| Invalid::new("InvalidSidecar", format!("FaxProvider {name}: spec.sidecar.{detail}"));
    if sidecar.image.trim().is_empty() || sidecar.image.chars().any(char::is_whitespace) {
        return Err(invalid("image must be an image reference without spaces".into()));
    }
    if !(1024..=65535).contains(&sidecar.port) {
        return Err(invalid("port must be between 1024 and 65535".into()));
    }
    if sidecar.port == crate::names::API_PORT {
        return Err(Invalid::new(
            "SidecarPortConflict",
            format!(
                "FaxProvider {name}: spec.sidecar.port {} is the API server's own port; choose another",
                crate::names::API_PORT
            ),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for var in &sidecar.env {
        if var.name.starts_with(SIDECAR_ENV_PREFIX) {
            return Err(invalid(format!(
                "env: `{}`: names starting with {SIDECAR_ENV_PREFIX} are set by the operator",
                var.name
            )));
        }
        if var.name.starts_with(names::CREDENTIAL_ENV_PREFIX) {
            return Err(invalid(format!(
                "env: `{}`: names starting with {} are set by the operator from spec.credentialsSecretRef (map \
                 the credential there, never as a literal value)",
                var.name,
                names::CREDENTIAL_ENV_PREFIX
            )));
        }
        if !seen.insert(var.name.as_str()) {
            return Err(invalid(format!("env: `{}` appears twice", var.name)));
        }
    }
    Ok(Some(sidecar))
}

/// The HIPAA rule: with `spec.compliance.hipaa` (the default), a plugin that does not declare HIPAA
/// capability cannot fill any slot. Decided here, before anything rolls out, rather than found in an audit.
///
/// The built-in manifest speaks for every plugin but `external`, whose capability is its sidecar's: the
/// administrator vouches for it with the FaxProvider's `spec.sidecar.hipaaCompliant` (`sidecar`), and the API
/// server checks the sidecar's own manifest against it at run time.
pub fn hipaa_capable(
    hipaa: bool,
    slot: Category,
    provider: &str,
    manifest: &PluginManifest,
    sidecar: Option<&SidecarSpec>,
) -> Result<(), Invalid> {
    let external = manifest.id == plugins::EXTERNAL;
    let capable = if external { sidecar.is_some_and(|s| s.hipaa_compliant) } else { manifest.hipaa_compliant };
    if !hipaa || capable {
        return Ok(());
    }
    let why = if external {
        "whose spec.sidecar.hipaaCompliant is not true (set it only when the plugin's fax provider signs a \
         Business Associate Agreement)"
    } else {
        "which does not declare HIPAA capability"
    };
    Err(Invalid::new(
        "NotHipaaCapable",
        format!(
            "slots.{}: FaxProvider {provider} uses plugin `{}`, {why}; spec.compliance.hipaa is true (set it to \
             false only for a config that never handles patient data)",
            slot.as_str(),
            manifest.id
        ),
    ))
}

/// Validates one FaxProvider on its own: the plugin exists, the settings pass its schema, and every
/// credential it needs resolves to a non-empty key of `secret` (the Secret its `credentialsSecretRef` names,
/// if that exists).
///
/// A plugin that is not built in must be defined by the FaxPluginManifest that `spec.manifestRef` names
/// (`manifest`, when it exists): its manifest is checked with the API server's own rules
/// ([`faxbot_contract::manifest::check`]) and its id must be the plugin id.
pub fn validate_provider(
    provider: &FaxProvider,
    secret: Option<&Secret>,
    manifest_resource: Option<&FaxPluginManifest>,
) -> Result<ResolvedProvider, Invalid> {
    let name = provider.metadata.name.as_deref().unwrap_or("");
    let plugin = &provider.spec.plugin;
    let (manifest, http) = match plugins::manifest(plugin) {
        Some(manifest) => (manifest, None),
        None => {
            let http = http_manifest(provider, manifest_resource)?;
            (http.plugin_manifest(), Some(http))
        }
    };
    let mut settings = provider.spec.settings.clone().unwrap_or_default();
    if let Some(sidecar) = validate_sidecar(provider)? {
        // The operator runs the plugin, so it knows where it listens: a `url` the user wrote is overwritten. So is
        // a `hipaaCompliant`: the FaxProvider's sidecar says whether the plugin was admitted to patient data.
        settings.insert("url".into(), serde_json::Value::String(sidecar_url(sidecar.port)));
        settings.insert("hipaaCompliant".into(), serde_json::Value::Bool(sidecar.hipaa_compliant));
    }
    let settings = serde_json::Value::Object(settings);
    let checked = match &http {
        Some(http) => http.check_settings(&settings),
        None => plugins::check_settings(plugin, &settings),
    };
    if let Err(problems) = checked {
        let detail: Vec<String> = problems
            .iter()
            .map(|(path, msg)| if path.is_empty() { msg.clone() } else { format!("settings.{path}: {msg}") })
            .collect();
        return Err(Invalid::new(
            "InvalidSettings",
            format!("FaxProvider {name}: settings do not match the `{plugin}` plugin schema: {}", detail.join("; ")),
        ));
    }

    let mapping = credential_mapping(provider, &manifest);
    if plugin == plugins::EXTERNAL {
        // A sidecar's provider takes whatever credentials it takes: only the names are checked.
        sidecar_credentials(name, &mapping)?;
    }
    for (credential, _) in &mapping {
        if plugin != plugins::EXTERNAL && !manifest.credentials.iter().any(|c| &c.name == credential) {
            let known: Vec<&str> = manifest.credentials.iter().map(|c| c.name.as_str()).collect();
            return Err(Invalid::new(
                "UnknownCredential",
                format!(
                    "FaxProvider {name}: plugin `{plugin}` takes no credential `{credential}`; it takes: {}",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            ));
        }
    }
    for required in manifest.credentials.iter().filter(|c| c.required) {
        if !mapping.iter().any(|(c, _)| c == &required.name) || provider.spec.credentials_secret_ref.is_none() {
            return Err(Invalid::new(
                "CredentialMissing",
                format!(
                    "FaxProvider {name}: plugin `{plugin}` needs credential `{}`; set spec.credentialsSecretRef",
                    required.name
                ),
            ));
        }
    }

    let mut credentials = BTreeMap::new();
    let mut secret_uids = Vec::new();
    if let Some(reference) = &provider.spec.credentials_secret_ref {
        let Some(secret) = secret else {
            return Err(Invalid::new(
                "SecretNotFound",
                format!("FaxProvider {name}: Secret {} does not exist", reference.name),
            ));
        };
        secret_uids.push(secret.metadata.uid.clone().unwrap_or_default());
        let data = secret_data(secret);
        let explicit = reference.items.is_some();
        for (credential, key) in &mapping {
            let optional = manifest.credentials.iter().any(|c| &c.name == credential && !c.required);
            match data.get(key) {
                Some(value) if !value.0.is_empty() => {
                    credentials.insert(credential.clone(), value.clone());
                }
                // Without an explicit mapping an optional credential may simply be absent (a Phaxio account
                // without webhooks has no webhook token); a key the user mapped must exist.
                _ if optional && !explicit => {}
                _ => {
                    return Err(Invalid::new(
                        "SecretKeyMissing",
                        format!(
                            "FaxProvider {name}: Secret {} has no non-empty key `{key}` (credential `{credential}`)",
                            reference.name
                        ),
                    ));
                }
            }
        }
    }
    Ok(ResolvedProvider { manifest, settings, credentials, secret_uids, http })
}

/// The credential names of an `external` provider (`mapping`, as [`credential_mapping`] returns it): any
/// name the CRD allows (`^[a-zA-Z][a-zA-Z0-9]{0,62}$`), each once, and no two handed to the sidecar as the
/// same environment variable ([`names::credential_env_name`]; `pluginToken` goes as `FAXBOT_PLUGIN_TOKEN`).
pub fn sidecar_credentials(provider: &str, mapping: &[(String, String)]) -> Result<(), Invalid> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (i, (credential, _)) in mapping.iter().enumerate() {
        let valid = credential.len() <= 63
            && credential.starts_with(|c: char| c.is_ascii_alphabetic())
            && credential.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(Invalid::new(
                "InvalidCredentialName",
                format!(
                    "FaxProvider {provider}: spec.credentialsSecretRef.items: credential `{credential}` must be a \
                     letter followed by up to 62 letters and digits"
                ),
            ));
        }
        if mapping[..i].iter().any(|(c, _)| c == credential) {
            return Err(Invalid::new(
                "CredentialNameConflict",
                format!(
                    "FaxProvider {provider}: spec.credentialsSecretRef.items: credential `{credential}` appears twice"
                ),
            ));
        }
        if credential == PLUGIN_TOKEN {
            continue;
        }
        let env = names::credential_env_name(credential);
        if let Some(other) = seen.insert(env.clone(), credential) {
            return Err(Invalid::new(
                "CredentialNameConflict",
                format!(
                    "FaxProvider {provider}: spec.credentialsSecretRef.items: credentials `{other}` and \
                     `{credential}` would both reach the sidecar as {env}; rename one"
                ),
            ));
        }
    }
    Ok(())
}

/// The HTTP plugin manifest a FaxProvider's `spec.manifestRef` names, parsed and checked.
fn http_manifest(provider: &FaxProvider, resource: Option<&FaxPluginManifest>) -> Result<HttpManifest, Invalid> {
    let name = provider.metadata.name.as_deref().unwrap_or("");
    let plugin = &provider.spec.plugin;
    let Some(reference) = &provider.spec.manifest_ref else {
        let known: Vec<String> = plugins::builtin_manifests().into_iter().map(|m| m.id).collect();
        return Err(Invalid::new(
            "UnknownPlugin",
            format!(
                "FaxProvider {name}: unknown plugin `{plugin}`; this operator knows: {}, or a plugin defined by \
                 a FaxPluginManifest named in spec.manifestRef",
                known.join(", ")
            ),
        ));
    };
    let Some(resource) = resource else {
        return Err(Invalid::new(
            "ManifestNotFound",
            format!("FaxProvider {name}: FaxPluginManifest {} does not exist", reference.name),
        ));
    };
    let manifest = validate_manifest(resource).map_err(|invalid| Invalid {
        reason: invalid.reason,
        message: format!("FaxProvider {name}: {}", invalid.message),
    })?;
    if &manifest.id != plugin {
        return Err(Invalid::new(
            "InvalidManifest",
            format!(
                "FaxProvider {name}: FaxPluginManifest {}: its id `{}` is not the plugin `{plugin}`",
                reference.name, manifest.id
            ),
        ));
    }
    Ok(manifest)
}

/// Parses and checks a FaxPluginManifest with the API server's own rules
/// ([`faxbot_contract::manifest::check`], loopback refused): every problem with its field.
pub fn validate_manifest(resource: &FaxPluginManifest) -> Result<HttpManifest, Invalid> {
    let name = resource.metadata.name.as_deref().unwrap_or("");
    let refused = |detail: String| Invalid::new("InvalidManifest", format!("FaxPluginManifest {name}: {detail}"));
    let manifest: HttpManifest = serde_path_to_error::deserialize(&resource.spec.manifest)
        .map_err(|e| refused(format!("spec.manifest.{}: {}", e.path(), e.inner())))?;
    let problems = check(&manifest, Policy::default());
    if !problems.is_empty() {
        let detail: Vec<String> = problems.iter().map(|(path, m)| format!("spec.manifest.{path}: {m}")).collect();
        return Err(refused(detail.join("; ")));
    }
    Ok(manifest)
}

/// A Secret's data with `stringData` folded in (the API server folds it on write, but a Secret built in a
/// test or read from a cache may still carry it).
fn secret_data(secret: &Secret) -> BTreeMap<String, ByteString> {
    let mut data = secret.data.clone().unwrap_or_default();
    for (k, v) in secret.string_data.clone().unwrap_or_default() {
        data.insert(k, ByteString(v.into_bytes()));
    }
    data
}

/// Everything the builders need, decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// The runtime config document the API server reads.
    pub runtime: RuntimeConfig,
    /// Its canonical JSON (what goes into the ConfigMap).
    pub config_json: String,
    /// Managed Secret data: `<slot>.<credential>` → value, plus the database URL if any.
    pub credentials: BTreeMap<String, ByteString>,
    /// Keyed checksum of the credentials (HMAC over the values, keyed by the source Secrets' UIDs) so the
    /// pod template changes when a Secret is rotated without publishing an unsalted hash of a password.
    pub credentials_checksum: String,
    /// SHA-256 prefix of the config JSON.
    pub config_checksum: String,
    /// The revision: a hash of everything that reaches a pod (image, pod settings, config, credentials).
    pub revision: String,
    /// Whether a shared database is configured (decides the Deployment strategy).
    pub shared_database: bool,
    /// Whether every pod sees the same documents, and why (reported as the `DocumentStoreShared` condition).
    pub document_store: DocumentStore,
    /// The CA bundle (PEM) of `apiServer.trustBundle`, copied into the revision's ConfigMap.
    pub trust_bundle: Option<String>,
    /// `apiServer.trustedProxies`, checked and normalised (`FAXBOT_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<String>,
    /// `apiServer.auditLogFile` (`AUDIT_LOG_FILE`).
    pub audit_log_file: Option<String>,
    /// A hash of everything in the revision except the runtime config document (image, resources, volumes,
    /// service account, credentials, trust bundle, proxies): equal for two revisions that differ only in
    /// their config, which is what the urgent path for feature flags requires.
    pub pod_inputs: String,
    /// The sidecar containers of the `external` providers in use, in slot order.
    pub sidecars: Vec<Sidecar>,
}

/// One sidecar container the API pods run: an `external` provider's plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct Sidecar {
    /// The FaxProvider's name.
    pub provider: String,
    /// The container's name ([`names::sidecar_container_name`]).
    pub container: String,
    /// What the FaxProvider asks for.
    pub spec: SidecarSpec,
    /// Key of the plugin token in the revision's credentials Secret (`<slot>.pluginToken`), when the
    /// provider maps one.
    pub token_key: Option<String>,
    /// The provider's other credentials, handed to the sidecar by reference: `(environment variable, key in
    /// the revision's credentials Secret)`, for example `("FAXBOT_CREDENTIAL_API_KEY", "outbound.apiKey")`,
    /// in the order of the credential names.
    pub credentials: Vec<(String, String)>,
}

/// Whether the pods of a config share one document store. Several pods (replicas or a canary beside the
/// stable pods) on per-pod volumes cannot upload or serve each other's documents, which fails jobs only once
/// traffic spreads — so the operator says so up front instead of letting the first cross-pod job find out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentStore {
    /// One pod at a time: nothing to share.
    SinglePod,
    /// S3: every pod reads and writes the same bucket.
    ObjectStorage,
    /// Local storage on a PersistentVolumeClaim, which must be ReadWriteMany for several pods.
    PersistentVolume,
    /// Local storage on each pod's own emptyDir while several pods run: documents are not shared.
    PerPodVolume,
    /// The sip plugin writes fax images that Asterisk must read (and reads the faxes Asterisk receives), but
    /// the pods have no shared volume: every SIP fax would fail, whatever the replica count.
    SipSpoolPerPod,
}

impl DocumentStore {
    /// Decides from the spec and the runtime config built from it.
    pub fn of(config: &FaxPluginConfig, runtime: &RuntimeConfig) -> DocumentStore {
        let spec = &config.spec;
        let several_pods = spec.api_server.replicas > 1 || spec.rollout.strategy == RolloutStrategy::Canary;
        let object_storage = runtime.providers.storage.as_ref().is_some_and(|b| b.plugin == plugins::S3_STORAGE);
        let p = &runtime.providers;
        let uses_sip =
            p.outbound.iter().chain(&p.outbound_failover).chain(&p.inbound).any(|b| b.plugin == plugins::SIP);
        if uses_sip && spec.api_server.data_volume.is_none() {
            return DocumentStore::SipSpoolPerPod;
        }
        match (several_pods, object_storage, spec.api_server.data_volume.is_some()) {
            (_, true, _) => DocumentStore::ObjectStorage,
            (false, false, _) => DocumentStore::SinglePod,
            (true, false, true) => DocumentStore::PersistentVolume,
            (true, false, false) => DocumentStore::PerPodVolume,
        }
    }

    /// `(status, reason, message)` of the `DocumentStoreShared` condition.
    pub fn condition(self) -> (bool, &'static str, &'static str) {
        match self {
            DocumentStore::SinglePod => (true, "SinglePod", "one pod serves at a time"),
            DocumentStore::ObjectStorage => (true, "ObjectStorage", "every pod uses the same S3 bucket"),
            DocumentStore::PersistentVolume => (
                true,
                "PersistentVolume",
                "every pod mounts apiServer.dataVolume, which must be ReadWriteMany for several pods",
            ),
            DocumentStore::PerPodVolume => (
                false,
                "PerPodVolume",
                "several pods (replicas > 1 or a canary) store documents on their own emptyDir: a document \
                 accepted by one pod cannot be uploaded or served by another; use S3 storage (slots.storage with \
                 plugin s3) or a ReadWriteMany apiServer.dataVolume",
            ),
            DocumentStore::SipSpoolPerPod => (
                false,
                "SipSpoolNotShared",
                "the sip plugin hands fax images to Asterisk through spoolDir and receives them through inboundDir, \
                 but the pods have no apiServer.dataVolume: give them a ReadWriteMany claim that Asterisk mounts \
                 too (docs/sip.md)",
            ),
        }
    }
}

/// The objects a config references, fetched by the reconciler.
#[derive(Debug, Default, Clone)]
pub struct Referenced {
    /// FaxProviders by name, in the config's namespace.
    pub providers: BTreeMap<String, FaxProvider>,
    /// Secrets by name (the ones providers and the database reference, as far as they exist).
    pub secrets: BTreeMap<String, Secret>,
    /// ConfigMaps by name (the trust bundle's, if it exists).
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// FaxPluginManifests by name (the ones providers reference, as far as they exist).
    pub manifests: BTreeMap<String, FaxPluginManifest>,
}

impl Referenced {
    /// Names of the FaxProviders a config references, in slot order.
    pub fn provider_names(config: &FaxPluginConfig) -> Vec<String> {
        let slots = &config.spec.slots;
        let mut names: Vec<String> = slots.outbound.clone();
        names.extend(slots.inbound.clone());
        names.extend(slots.storage.clone());
        names.push(slots.auth.clone());
        names.dedup();
        names
    }
}

/// Validates a FaxPluginConfig against what it references and decides the desired state.
pub fn validate_config(config: &FaxPluginConfig, referenced: &Referenced) -> Result<Desired, Invalid> {
    let name = config.metadata.name.as_deref().unwrap_or("");
    let spec = &config.spec;
    if name.len() > names::MAX_CONFIG_NAME {
        return Err(Invalid::new(
            "NameTooLong",
            format!("FaxPluginConfig names are limited to {} characters", names::MAX_CONFIG_NAME),
        ));
    }
    if spec.rollout.strategy == RolloutStrategy::Canary {
        if spec.api_server.database.is_none() {
            return Err(Invalid::new(
                "CanaryNeedsDatabase",
                "rollout.strategy Canary runs stable and canary pods side by side, which needs a shared job queue: \
                 set apiServer.database.urlSecretRef (PostgreSQL), or use strategy Immediate",
            ));
        }
        if crate::canary::Rollout::from_spec(&spec.rollout).is_none() {
            return Err(Invalid::new(
                "InvalidRollout",
                "rollout: interval, window and progressDeadline must be positive durations such as 30s, 5m or 1h",
            ));
        }
    }
    if spec.slots.outbound.len() > 5 {
        return Err(Invalid::new(
            "TooManyOutboundProviders",
            "slots.outbound lists at most 5 providers (a primary and 4 failovers)",
        ));
    }

    let mut credentials = BTreeMap::new();
    let mut secret_uids = Vec::new();
    let mut http_manifests: Vec<HttpManifest> = Vec::new();
    // The FaxPluginManifest each of `http_manifests` came from, in the same order.
    let mut manifest_sources: Vec<String> = Vec::new();
    let mut sidecars: Vec<Sidecar> = Vec::new();
    // `credential_slot` prefixes the provider's credential files: the slot name, or `failover<N>` for the
    // N-th failover provider.
    let mut bind = |slot: Category, credential_slot: &str, provider_name: &str| -> Result<SlotBinding, Invalid> {
        let Some(provider) = referenced.providers.get(provider_name) else {
            return Err(Invalid::new(
                "ProviderNotFound",
                format!("slots.{}: FaxProvider {provider_name} does not exist", slot.as_str()),
            ));
        };
        let secret = provider.spec.credentials_secret_ref.as_ref().and_then(|r| referenced.secrets.get(&r.name));
        let manifest = provider.spec.manifest_ref.as_ref().and_then(|r| referenced.manifests.get(&r.name));
        let resolved = validate_provider(provider, secret, manifest)?;
        if let Some(http) = &resolved.http
            && !http_manifests.iter().any(|m| m.id == http.id)
        {
            http_manifests.push(http.clone());
            manifest_sources.push(provider.spec.manifest_ref.as_ref().map(|r| r.name.clone()).unwrap_or_default());
        }
        if !resolved.manifest.fills(slot) {
            let slots: Vec<&str> = resolved.manifest.categories.iter().map(|c| c.as_str()).collect();
            return Err(Invalid::new(
                "PluginSlotMismatch",
                format!(
                    "slots.{}: FaxProvider {provider_name} uses plugin `{}`, which fills {} but not {}",
                    slot.as_str(),
                    resolved.manifest.id,
                    slots.join(", "),
                    slot.as_str()
                ),
            ));
        }
        hipaa_capable(spec.compliance.hipaa, slot, provider_name, &resolved.manifest, provider.spec.sidecar.as_ref())?;
        for (credential, value) in &resolved.credentials {
            credentials.insert(names::credential_key(credential_slot, credential), value.clone());
        }
        if let Some(spec) = &provider.spec.sidecar {
            sidecars.push(Sidecar {
                provider: provider_name.to_string(),
                container: names::sidecar_container_name(provider_name),
                spec: spec.clone(),
                token_key: resolved
                    .credentials
                    .contains_key(PLUGIN_TOKEN)
                    .then(|| names::credential_key(credential_slot, PLUGIN_TOKEN)),
                credentials: resolved
                    .credentials
                    .keys()
                    .filter(|c| c.as_str() != PLUGIN_TOKEN)
                    .map(|c| (names::credential_env_name(c), names::credential_key(credential_slot, c)))
                    .collect(),
            });
        }
        secret_uids.extend(resolved.secret_uids.iter().cloned());
        Ok(SlotBinding { plugin: resolved.manifest.id.clone(), enabled: true, settings: resolved.settings })
    };

    let outbound = bind(Category::Outbound, "outbound", &spec.slots.outbound[0])?;
    let outbound_failover = spec.slots.outbound[1..]
        .iter()
        .enumerate()
        .map(|(i, p)| bind(Category::Outbound, &format!("failover{}", i + 1), p))
        .collect::<Result<Vec<_>, _>>()?;
    let inbound = spec.slots.inbound.as_deref().map(|p| bind(Category::Inbound, "inbound", p)).transpose()?;
    let storage = spec.slots.storage.as_deref().map(|p| bind(Category::Storage, "storage", p)).transpose()?;
    let auth = bind(Category::Auth, "auth", &spec.slots.auth)?;

    let mut shared_database = false;
    if let Some(database) = &spec.api_server.database {
        let SecretKeyRef { name: secret_name, key } = &database.url_secret_ref;
        let Some(secret) = referenced.secrets.get(secret_name) else {
            return Err(Invalid::new(
                "SecretNotFound",
                format!("apiServer.database.urlSecretRef: Secret {secret_name} does not exist"),
            ));
        };
        let value = secret_data(secret).get(key).cloned().filter(|v| !v.0.is_empty());
        let Some(value) = value else {
            return Err(Invalid::new(
                "SecretKeyMissing",
                format!("apiServer.database.urlSecretRef: Secret {secret_name} has no non-empty key `{key}`"),
            ));
        };
        if !value.0.starts_with(b"postgres://") && !value.0.starts_with(b"postgresql://") {
            return Err(Invalid::new(
                "InvalidDatabaseUrl",
                format!(
                    "apiServer.database.urlSecretRef: the value of key `{key}` in Secret {secret_name} must be a \
                     postgres:// URL"
                ),
            ));
        }
        credentials.insert(names::DATABASE_URL_KEY.to_string(), value);
        secret_uids.push(secret.metadata.uid.clone().unwrap_or_default());
        shared_database = true;
    }

    let mut trusted_keys = BTreeMap::new();
    if let Some(reference) = &spec.publisher_keys_secret_ref {
        let keys = publisher_keys(reference, referenced)?;
        credentials.insert(names::PUBLISHER_KEYS_KEY.to_string(), keys.raw);
        secret_uids.push(keys.secret_uid);
        trusted_keys = keys.keys;
    }
    let used: Vec<(&str, &HttpManifest)> =
        manifest_sources.iter().map(String::as_str).zip(http_manifests.iter()).collect();
    trusted_manifests(&used, &trusted_keys, spec.features.plugin_install)?;
    let catalog = match &spec.registry_index_ref {
        Some(reference) => registry_index(reference, referenced, &trusted_keys, spec.features.plugin_install)?,
        None => Vec::new(),
    };

    let trust_bundle = match &spec.api_server.trust_bundle {
        Some(reference) => Some(trust_bundle(reference, referenced)?),
        None => None,
    };

    let trusted_proxies = trusted_proxies(&spec.api_server.trusted_proxies)?;

    // The notification receiver gets revision names and rollback reasons: the same rules as a provider's
    // endpoint, except that an in-cluster receiver on a private address is fine.
    if let Some(webhook) = spec.rollout.notifications.as_ref().and_then(|n| n.webhook.as_ref())
        && let Some(problem) = faxbot_contract::endpoint::problem_allowing(&webhook.url, true)
    {
        return Err(Invalid::new("InvalidNotification", format!("rollout.notifications.webhook.url {problem}")));
    }

    let features = &spec.features;
    let runtime = RuntimeConfig {
        version: faxbot_contract::CONFIG_VERSION,
        providers: ProviderSlots { outbound: Some(outbound), outbound_failover, inbound, storage, auth: Some(auth) },
        features: features.clone(),
        // The manifests of the plugins in use, so a manifest change is a new revision that rolls out.
        manifests: http_manifests,
        // The registry index's entries, listed by the registry and installed by nobody until a
        // FaxPluginManifest carries one.
        catalog,
    };
    // The same validation the server runs at startup, including the PHI and credential key guard.
    if let Err(issues) = faxbot_contract::validate::validate(&runtime) {
        let detail: Vec<String> = issues.iter().map(ToString::to_string).collect();
        return Err(Invalid::new("InvalidConfig", format!("runtime config rejected: {}", detail.join("; "))));
    }
    sidecar_ports(&sidecars)?;
    let config_json = serde_json::to_string_pretty(&runtime).unwrap_or_default();
    let config_checksum = hex::encode(&Sha256::digest(config_json.as_bytes())[..8]);
    secret_uids.sort();
    secret_uids.dedup();
    let credentials_checksum = keyed_checksum(&credentials, &secret_uids);

    let pod_inputs = serde_json::json!({
        "image": spec.api_server.image,
        "imagePullPolicy": spec.api_server.image_pull_policy,
        "resources": spec.api_server.resources,
        "dataVolume": spec.api_server.data_volume,
        "config": config_checksum,
        "credentials": credentials_checksum,
    });
    let mut pod_inputs = pod_inputs;
    // Only when set, so that revisions of configs without one stay what they were.
    if let Some(account) = &spec.api_server.service_account_name {
        pod_inputs["serviceAccountName"] = serde_json::json!(account);
    }
    if let Some(bundle) = &trust_bundle {
        pod_inputs["trustBundle"] = serde_json::json!(hex::encode(&Sha256::digest(bundle.as_bytes())[..8]));
    }
    if !trusted_proxies.is_empty() {
        pod_inputs["trustedProxies"] = serde_json::json!(trusted_proxies);
    }
    if let Some(file) = &spec.api_server.audit_log_file {
        pod_inputs["auditLogFile"] = serde_json::json!(file);
    }
    // Pod scheduling and metadata reach the pod template: a change rolls the pods (as a canary). Only when
    // set, so that revisions of configs without them stay what they were.
    let api = &spec.api_server;
    let scheduling = serde_json::json!({
        "nodeSelector": api.node_selector,
        "affinity": api.affinity,
        "tolerations": api.tolerations,
        "topologySpreadConstraints": api.topology_spread_constraints,
        "podAnnotations": api.pod_annotations,
        "imagePullSecrets": api.image_pull_secrets,
        "priorityClassName": api.priority_class_name,
    });
    if scheduling.as_object().is_some_and(|o| {
        o.values().any(|v| {
            !(v.is_null() || v.as_object().is_some_and(|m| m.is_empty()) || v.as_array().is_some_and(|a| a.is_empty()))
        })
    }) {
        pod_inputs["scheduling"] = scheduling;
    }
    // The sidecars reach the pod template: a new image, port, environment or credential mapping rolls the pods
    // (as a canary when configured; a rotated credential value does so through the credentials checksum). Only
    // when there are any, so that revisions of configs without them stay what they were.
    if !sidecars.is_empty() {
        pod_inputs["sidecars"] = serde_json::json!(
            sidecars
                .iter()
                .map(|s| {
                    let mut inputs =
                        serde_json::json!({"provider": s.provider, "spec": s.spec, "tokenKey": s.token_key});
                    if !s.credentials.is_empty() {
                        inputs["credentials"] = serde_json::json!(s.credentials);
                    }
                    inputs
                })
                .collect::<Vec<_>>()
        );
    }
    let revision = hex::encode(&Sha256::digest(pod_inputs.to_string().as_bytes())[..5]);
    let mut without_config = pod_inputs.clone();
    if let Some(map) = without_config.as_object_mut() {
        map.remove("config");
    }
    let pod_inputs = hex::encode(&Sha256::digest(without_config.to_string().as_bytes())[..8]);
    let document_store = DocumentStore::of(config, &runtime);
    Ok(Desired {
        runtime,
        config_json,
        credentials,
        credentials_checksum,
        config_checksum,
        revision,
        shared_database,
        document_store,
        trust_bundle,
        trusted_proxies,
        audit_log_file: spec.api_server.audit_log_file.clone(),
        pod_inputs,
        sidecars,
    })
}

/// Credential of the `external` plugin that the operator also hands its sidecar (`FAXBOT_PLUGIN_TOKEN`).
pub const PLUGIN_TOKEN: &str = "pluginToken";

/// The sidecars of one pod share its network namespace: two cannot listen on one port. (Each provider's own
/// checks already refused the API server's port.) Today the runtime config takes each plugin once in the
/// outbound chain, so one config runs at most one `external` provider; this holds when that changes.
fn sidecar_ports(sidecars: &[Sidecar]) -> Result<(), Invalid> {
    for (i, a) in sidecars.iter().enumerate() {
        if let Some(b) = sidecars[..i].iter().find(|b| b.spec.port == a.spec.port) {
            return Err(Invalid::new(
                "SidecarPortConflict",
                format!(
                    "FaxProviders {} and {} both run a sidecar on port {} in the same pods; give each its own \
                     spec.sidecar.port",
                    b.provider, a.provider, a.spec.port
                ),
            ));
        }
    }
    Ok(())
}

/// `apiServer.trustedProxies` as the server will read them: CIDRs (a bare address is one host), normalised.
fn trusted_proxies(values: &[String]) -> Result<Vec<String>, Invalid> {
    values
        .iter()
        .map(|v| {
            let v = v.trim();
            v.parse::<ipnet::IpNet>()
                .or_else(|_| v.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc().to_string())
                .map_err(|_| {
                    Invalid::new(
                        "InvalidTrustedProxies",
                        format!("apiServer.trustedProxies: `{v}` is not a CIDR such as 198.18.0.0/24"),
                    )
                })
        })
        .collect()
}

/// `spec.publisherKeysSecretRef`, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PublisherKeys {
    /// The Secret's value as it is, copied into the revision's credentials for the API server.
    pub raw: ByteString,
    /// UID of the Secret (it keys the credentials checksum).
    pub secret_uid: String,
    /// Key id → base64 Ed25519 public key.
    pub keys: BTreeMap<String, String>,
}

/// Reads the trusted publisher keys: the Secret key must exist and hold a JSON object of key id → base64
/// Ed25519 public key (the API server would trust nobody for anything else). Messages name the Secret, its
/// key and key ids, never a key.
pub fn publisher_keys(
    reference: &faxbot_crds::PublisherKeysSecretRef,
    referenced: &Referenced,
) -> Result<PublisherKeys, Invalid> {
    let faxbot_crds::PublisherKeysSecretRef { name, key } = reference;
    let Some(secret) = referenced.secrets.get(name) else {
        return Err(Invalid::new(
            "PublisherKeysMissing",
            format!("publisherKeysSecretRef: Secret {name} does not exist"),
        ));
    };
    let Some(raw) = secret_data(secret).get(key).cloned().filter(|v| !v.0.is_empty()) else {
        return Err(Invalid::new(
            "PublisherKeysMissing",
            format!("publisherKeysSecretRef: Secret {name} has no non-empty key `{key}`"),
        ));
    };
    let invalid = |why: String| {
        Invalid::new("InvalidPublisherKeys", format!("publisherKeysSecretRef: key `{key}` of Secret {name} {why}"))
    };
    let keys: BTreeMap<String, String> = serde_json::from_slice(&raw.0)
        .map_err(|_| invalid("is not a JSON object of key id to base64 Ed25519 public key".into()))?;
    if keys.is_empty() {
        return Err(invalid("holds no key".into()));
    }
    for (id, public_key) in &keys {
        if id.trim().is_empty() {
            return Err(invalid("has an empty key id".into()));
        }
        if faxbot_contract::manifest::signature::check_public_key(public_key).is_err() {
            return Err(invalid(format!("has key `{id}`, which is not a base64 Ed25519 public key")));
        }
    }
    Ok(PublisherKeys { raw, secret_uid: secret.metadata.uid.clone().unwrap_or_default(), keys })
}

/// The rule the API server applies at startup, applied before anything rolls out: every HTTP manifest a config
/// uses (`(FaxPluginManifest name, manifest)`) must be verified by one of the trusted publisher keys, unless
/// `allow_unverified` (`features.pluginInstall`). The refusal names the manifest and why: not signed, signed
/// with a key id that is not trusted, or a signature that does not verify.
pub fn trusted_manifests(
    used: &[(&str, &HttpManifest)],
    keys: &BTreeMap<String, String>,
    allow_unverified: bool,
) -> Result<(), Invalid> {
    use faxbot_contract::manifest::signature::{admit, trust};
    for (resource, manifest) in used {
        admit(&manifest.id, &trust(manifest, keys), allow_unverified)
            .map_err(|why| Invalid::new("UntrustedManifest", format!("FaxPluginManifest {resource}: {why}")))?;
    }
    Ok(())
}

/// The entries of `registryIndexRef`'s index: the ConfigMap key must exist and parse as an index within its
/// budget, every entry must pass the checks a FaxPluginManifest passes, and each must be signed by a trusted
/// publisher key unless `allow_unverified` (`features.pluginInstall`). Messages name the ConfigMap, the key,
/// the entry and the field.
pub fn registry_index(
    reference: &faxbot_crds::RegistryIndexRef,
    referenced: &Referenced,
    keys: &BTreeMap<String, String>,
    allow_unverified: bool,
) -> Result<Vec<HttpManifest>, Invalid> {
    use faxbot_contract::manifest::{check, registry, signature};
    let faxbot_crds::RegistryIndexRef { name, key } = reference;
    let Some(config_map) = referenced.config_maps.get(name) else {
        return Err(Invalid::new("RegistryIndexMissing", format!("registryIndexRef: ConfigMap {name} does not exist")));
    };
    let Some(text) = config_map.data.as_ref().and_then(|d| d.get(key)).filter(|v| !v.trim().is_empty()) else {
        return Err(Invalid::new(
            "RegistryIndexMissing",
            format!("registryIndexRef: ConfigMap {name} has no non-empty key `{key}`"),
        ));
    };
    let invalid = |why: String| {
        Invalid::new("InvalidRegistryIndex", format!("registryIndexRef: key `{key}` of ConfigMap {name}: {why}"))
    };
    let index = registry::parse_index(text.as_bytes()).map_err(|e| invalid(mask_numbers(&e)))?;
    let policy = check::Policy::from_env();
    for (i, entry) in index.entries.iter().enumerate() {
        if let Some((path, message)) = check::check(entry, policy).into_iter().next() {
            return Err(invalid(mask_numbers(&format!("entries[{i}] (`{}`).{path}: {message}", entry.id))));
        }
        signature::admit(&entry.id, &signature::trust(entry, keys), allow_unverified).map_err(|why| {
            Invalid::new("UntrustedManifest", format!("registryIndexRef: ConfigMap {name}, entries[{i}]: {why}"))
        })?;
    }
    Ok(index.entries)
}

/// Largest trust bundle accepted: every public root CA in PEM is about 220 KB; a ConfigMap holds at most 1 MiB.
pub const MAX_TRUST_BUNDLE: usize = 512 * 1024;

/// The PEM text of `apiServer.trustBundle`: the key must exist and hold at least one certificate and nothing
/// but certificates (a private key pasted by mistake must not be copied into every revision).
fn trust_bundle(reference: &faxbot_crds::ConfigMapKeyRef, referenced: &Referenced) -> Result<String, Invalid> {
    let faxbot_crds::ConfigMapKeyRef { name, key } = reference;
    let Some(config_map) = referenced.config_maps.get(name) else {
        return Err(Invalid::new(
            "ConfigMapNotFound",
            format!("apiServer.trustBundle: ConfigMap {name} does not exist"),
        ));
    };
    let Some(pem) = config_map.data.as_ref().and_then(|d| d.get(key)).filter(|v| !v.trim().is_empty()) else {
        return Err(Invalid::new(
            "ConfigMapKeyMissing",
            format!("apiServer.trustBundle: ConfigMap {name} has no non-empty key `{key}`"),
        ));
    };
    if pem.len() > MAX_TRUST_BUNDLE {
        return Err(Invalid::new(
            "InvalidTrustBundle",
            format!("apiServer.trustBundle: key `{key}` of ConfigMap {name} is larger than {MAX_TRUST_BUNDLE} bytes"),
        ));
    }
    let labels: Vec<&str> = pem
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")))
        .collect();
    if labels.is_empty() || labels.iter().any(|l| *l != "CERTIFICATE") {
        return Err(Invalid::new(
            "InvalidTrustBundle",
            format!(
                "apiServer.trustBundle: key `{key}` of ConfigMap {name} must hold PEM certificates \
                 (-----BEGIN CERTIFICATE-----) and nothing else"
            ),
        ));
    }
    Ok(pem.clone())
}

/// HMAC-SHA256 over the sorted `(key, value)` pairs, keyed by the source Secrets' UIDs. Someone who can read
/// the Deployment but not the Secrets learns nothing they could brute-force offline.
fn keyed_checksum(credentials: &BTreeMap<String, ByteString>, key_material: &[String]) -> String {
    let key = key_material.join("/");
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(format!("faxbot-credentials-v1/{key}").as_bytes()) else {
        return String::new();
    };
    for (k, v) in credentials {
        mac.update(&(k.len() as u64).to_be_bytes());
        mac.update(k.as_bytes());
        mac.update(&(v.0.len() as u64).to_be_bytes());
        mac.update(&v.0);
    }
    hex::encode(&mac.finalize().into_bytes()[..8])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use faxbot_crds::{CredentialItem, CredentialsSecretRef, FaxPluginConfigSpec, FaxProviderSpec};
    use kube::api::ObjectMeta;

    pub const ADMIN_KEY: &str = "fbk_admin_very-secret-admin-key-value";
    pub const PEPPER: &str = "pepper-value-that-must-never-leak";
    pub const DB_URL: &str = "postgres://faxbot:db-password-never-leak@db:5432/faxbot";

    pub fn provider(name: &str, plugin: &str, settings: serde_json::Value, secret: Option<&str>) -> FaxProvider {
        let mut p = FaxProvider::new(
            name,
            FaxProviderSpec {
                plugin: plugin.into(),
                settings: settings.as_object().cloned(),
                credentials_secret_ref: secret.map(|s| CredentialsSecretRef { name: s.into(), items: None }),
                manifest_ref: None,
                sidecar: None,
            },
        );
        p.metadata.namespace = Some("fax".into());
        p
    }

    pub fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("fax".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            data: Some(data.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()),
            ..Default::default()
        }
    }

    pub fn config(spec: serde_json::Value) -> FaxPluginConfig {
        let spec: FaxPluginConfigSpec = serde_json::from_value(spec).unwrap();
        let mut c = FaxPluginConfig::new("main", spec);
        c.metadata.namespace = Some("fax".into());
        c.metadata.uid = Some("uid-config".into());
        c.metadata.generation = Some(3);
        c
    }

    pub fn base_config() -> FaxPluginConfig {
        config(serde_json::json!({
            "apiServer": {"image": "faxbot-api:1"},
            "slots": {"outbound": ["line"], "auth": "keys"}
        }))
    }

    pub fn base_referenced() -> Referenced {
        let mut r = Referenced::default();
        for p in [
            provider("line", "test", serde_json::json!({"deliveryLatencyMs": 50}), None),
            provider("keys", "api_keys", serde_json::json!({}), Some("admin")),
            provider("disk", "local", serde_json::json!({}), None),
        ] {
            r.providers.insert(p.metadata.name.clone().unwrap(), p);
        }
        r.secrets.insert("admin".into(), secret("admin", &[("adminKey", ADMIN_KEY), ("pepper", PEPPER)]));
        r
    }

    pub const PLUGIN_TOKEN_VALUE: &str = "plugin-token-value-that-must-never-leak";

    /// An `external` FaxProvider whose sidecar listens on `port`, with the plugin token in Secret `secret`.
    pub fn external_provider(name: &str, port: i32, secret: Option<&str>) -> FaxProvider {
        let mut p = provider(name, plugins::EXTERNAL, serde_json::json!({"timeoutMs": 5000}), secret);
        p.spec.sidecar =
            Some(serde_json::from_value(serde_json::json!({"image": "acme/fax-plugin:1", "port": port})).unwrap());
        p
    }

    /// A config (HIPAA off: the sidecars do not set `hipaaCompliant`) whose outbound chain is `outbound`, with
    /// the providers of [`base_referenced`] and the external providers `acme` (port 9000, token in Secret
    /// `acme`) and `other` (port 9001, no token).
    pub fn external_config(outbound: &[&str]) -> (FaxPluginConfig, Referenced) {
        let c = config(serde_json::json!({
            "apiServer": {"image": "faxbot-api:1"},
            "slots": {"outbound": outbound, "auth": "keys"},
            "compliance": {"hipaa": false}
        }));
        let mut r = base_referenced();
        r.providers.insert("acme".into(), external_provider("acme", 9000, Some("acme")));
        r.providers.insert("other".into(), external_provider("other", 9001, None));
        r.secrets.insert("acme".into(), secret("acme", &[("pluginToken", PLUGIN_TOKEN_VALUE)]));
        (c, r)
    }

    #[test]
    fn sidecar_rules_of_a_provider() {
        type Change = fn(&mut FaxProvider);
        /// `Err((reason, message fragment))` when refused.
        type Want = Result<(), (&'static str, &'static str)>;
        let table: Vec<(&str, Change, Want)> = vec![
            ("external with a sidecar", |_| {}, Ok(())),
            ("another plugin without one", |p| *p = provider("acme", "test", serde_json::json!({}), None), Ok(())),
            (
                "external without a sidecar",
                |p| p.spec.sidecar = None,
                Err(("SidecarRequired", "FaxProvider acme: plugin `external` runs as a sidecar container")),
            ),
            (
                "a sidecar on another plugin",
                |p| {
                    let sidecar = p.spec.sidecar.clone();
                    *p = provider("acme", "phaxio", serde_json::json!({}), None);
                    p.spec.sidecar = sidecar;
                },
                Err(("SidecarNotAllowed", "spec.sidecar is only for plugin `external`, not `phaxio`")),
            ),
            (
                "a privileged port",
                |p| p.spec.sidecar.as_mut().unwrap().port = 80,
                Err(("InvalidSidecar", "spec.sidecar.port must be between 1024 and 65535")),
            ),
            (
                "a port beyond 65535",
                |p| p.spec.sidecar.as_mut().unwrap().port = 70000,
                Err(("InvalidSidecar", "spec.sidecar.port must be between 1024 and 65535")),
            ),
            (
                "the API server's port",
                |p| p.spec.sidecar.as_mut().unwrap().port = 8080,
                Err(("SidecarPortConflict", "spec.sidecar.port 8080 is the API server's own port")),
            ),
            (
                "an operator variable",
                |p| {
                    p.spec.sidecar.as_mut().unwrap().env =
                        vec![faxbot_crds::SidecarEnvVar { name: "FAXBOT_PLUGIN_TOKEN".into(), value: "x".into() }]
                },
                Err(("InvalidSidecar", "`FAXBOT_PLUGIN_TOKEN`: names starting with FAXBOT_PLUGIN_ are set by")),
            ),
            (
                "a credential variable",
                |p| {
                    p.spec.sidecar.as_mut().unwrap().env = vec![faxbot_crds::SidecarEnvVar {
                        name: "FAXBOT_CREDENTIAL_API_KEY".into(),
                        value: "literal-key".into(),
                    }]
                },
                Err((
                    "InvalidSidecar",
                    "`FAXBOT_CREDENTIAL_API_KEY`: names starting with FAXBOT_CREDENTIAL_ are set by the operator from \
                     spec.credentialsSecretRef",
                )),
            ),
            (
                "a variable merely like the operator's",
                |p| {
                    p.spec.sidecar.as_mut().unwrap().env = vec![
                        faxbot_crds::SidecarEnvVar { name: "FAXBOT_CREDENTIALS".into(), value: "x".into() },
                        faxbot_crds::SidecarEnvVar { name: "ACME_FAXBOT_PLUGIN_X".into(), value: "x".into() },
                    ]
                },
                Ok(()),
            ),
            (
                "a variable twice",
                |p| {
                    let var = faxbot_crds::SidecarEnvVar { name: "ACME_REGION".into(), value: "eu".into() };
                    p.spec.sidecar.as_mut().unwrap().env = vec![var.clone(), var];
                },
                Err(("InvalidSidecar", "spec.sidecar.env: `ACME_REGION` appears twice")),
            ),
            (
                "an empty image",
                |p| p.spec.sidecar.as_mut().unwrap().image = String::new(),
                Err(("InvalidSidecar", "spec.sidecar.image must be an image reference")),
            ),
            (
                "an image with a space",
                |p| p.spec.sidecar.as_mut().unwrap().image = "acme/fax plugin".into(),
                Err(("InvalidSidecar", "spec.sidecar.image must be an image reference")),
            ),
        ];
        for (what, change, want) in table {
            let mut p = external_provider("acme", 9000, None);
            change(&mut p);
            let got = validate_sidecar(&p).map(|_| ()).map_err(|e| (e.reason, e.message));
            match (&got, want) {
                (Ok(()), Ok(())) => {}
                (Err((reason, message)), Err((want_reason, fragment))) => {
                    assert_eq!(*reason, want_reason, "{what}: {message}");
                    assert!(message.contains(fragment), "{what}: {message}");
                    // The provider's own validation (its status and the configs using it) refuses the same.
                    let err = validate_provider(&p, None, None).unwrap_err();
                    assert_eq!((err.reason, &err.message), (*reason, message), "{what}");
                }
                _ => panic!("{what}: {got:?}"),
            }
        }
    }

    #[test]
    fn an_external_provider_runs_as_a_sidecar_called_on_loopback() {
        // A url the user wrote is overwritten with the sidecar's address.
        let (c, mut r) = external_config(&["acme"]);
        r.providers.get_mut("acme").unwrap().spec.settings =
            serde_json::json!({"url": "http://127.0.0.1:1", "timeoutMs": 5000}).as_object().cloned();
        let desired = validate_config(&c, &r).unwrap();
        let outbound = desired.runtime.providers.outbound.as_ref().unwrap();
        assert_eq!(outbound.plugin, "external");
        assert_eq!(outbound.settings["url"], "http://127.0.0.1:9000");
        assert_eq!(outbound.settings["timeoutMs"], 5000);
        faxbot_contract::validate::parse_and_validate(desired.config_json.as_bytes()).unwrap();
        assert_eq!(desired.sidecars.len(), 1);
        let sidecar = &desired.sidecars[0];
        assert_eq!((sidecar.provider.as_str(), sidecar.container.as_str()), ("acme", "plugin-acme"));
        assert_eq!(sidecar.token_key.as_deref(), Some("outbound.pluginToken"));
        assert_eq!(desired.credentials["outbound.pluginToken"].0, PLUGIN_TOKEN_VALUE.as_bytes());
        assert!(!desired.config_json.contains(PLUGIN_TOKEN_VALUE));

        // As a failover: the token under the failover's slot; a provider without a token gets none.
        let (c, r) = external_config(&["line", "acme"]);
        let desired = validate_config(&c, &r).unwrap();
        assert_eq!(desired.runtime.providers.outbound_failover[0].settings["url"], "http://127.0.0.1:9000");
        assert_eq!(desired.sidecars[0].token_key.as_deref(), Some("failover1.pluginToken"));
        let (c, r) = external_config(&["line", "other"]);
        let desired = validate_config(&c, &r).unwrap();
        assert_eq!(desired.runtime.providers.outbound_failover[0].settings["url"], "http://127.0.0.1:9001");
        assert_eq!(desired.sidecars[0].token_key, None);
        assert!(!desired.credentials.keys().any(|k| k.ends_with(".pluginToken")));

        // Without a sidecar in use, nothing changes.
        assert!(validate_config(&base_config(), &base_referenced()).unwrap().sidecars.is_empty());
        // HIPAA on (the default): refused unless the sidecar is vouched for; then the binding says so, whatever
        // the settings say.
        let (mut c, mut r) = external_config(&["acme"]);
        c.spec.compliance.hipaa = true;
        let err = validate_config(&c, &r).unwrap_err();
        assert_eq!(err.reason, "NotHipaaCapable");
        assert!(err.message.contains("whose spec.sidecar.hipaaCompliant is not true"), "{}", err.message);
        let acme = r.providers.get_mut("acme").unwrap();
        acme.spec.sidecar.as_mut().unwrap().hipaa_compliant = true;
        acme.spec.settings = serde_json::json!({"hipaaCompliant": false}).as_object().cloned();
        let desired = validate_config(&c, &r).unwrap();
        assert_eq!(desired.runtime.providers.outbound.as_ref().unwrap().settings["hipaaCompliant"], true);
        faxbot_contract::validate::parse_and_validate(desired.config_json.as_bytes()).unwrap();
        // HIPAA off: the binding still says what the sidecar says, so a user's `true` cannot claim compliance
        // the FaxProvider does not.
        let (c, mut r) = external_config(&["acme"]);
        r.providers.get_mut("acme").unwrap().spec.settings =
            serde_json::json!({"hipaaCompliant": true}).as_object().cloned();
        let desired = validate_config(&c, &r).unwrap();
        assert_eq!(desired.runtime.providers.outbound.as_ref().unwrap().settings["hipaaCompliant"], false);
        // A token the provider maps explicitly must exist.
        let (c, mut r) = external_config(&["other"]);
        r.providers.get_mut("other").unwrap().spec.credentials_secret_ref = Some(CredentialsSecretRef {
            name: "acme".into(),
            items: Some(vec![CredentialItem { credential: "pluginToken".into(), key: "token".into() }]),
        });
        assert_eq!(validate_config(&c, &r).unwrap_err().reason, "SecretKeyMissing");
    }

    #[test]
    fn sidecars_of_one_pod_need_their_own_ports() {
        let sidecar = |provider: &str, port: i32| {
            let p = external_provider(provider, port, None);
            Sidecar {
                provider: provider.into(),
                container: names::sidecar_container_name(provider),
                spec: p.spec.sidecar.unwrap(),
                token_key: None,
                credentials: vec![],
            }
        };
        assert!(sidecar_ports(&[sidecar("acme", 9000), sidecar("other", 9001)]).is_ok());
        let err = sidecar_ports(&[sidecar("acme", 9000), sidecar("other", 9001), sidecar("third", 9000)]).unwrap_err();
        assert_eq!(err.reason, "SidecarPortConflict");
        assert!(
            err.message.contains("FaxProviders acme and third both run a sidecar on port 9000 in the same pods"),
            "{}",
            err.message
        );
        // Today the runtime config takes the plugin `external` once per outbound chain: one sidecar per config.
        let (c, r) = external_config(&["acme", "other"]);
        let err = validate_config(&c, &r).unwrap_err();
        assert_eq!(err.reason, "InvalidConfig");
        assert!(err.message.contains("plugin `external` appears twice in the outbound chain"), "{}", err.message);
        // A sidecar on the API server's port is refused by the provider's own check, wherever it is used.
        let (c, mut r) = external_config(&["acme"]);
        r.providers.get_mut("acme").unwrap().spec.sidecar.as_mut().unwrap().port = 8080;
        assert_eq!(validate_config(&c, &r).unwrap_err().reason, "SidecarPortConflict");
    }

    #[test]
    fn a_sidecar_change_is_a_pod_change() {
        let (c, r) = external_config(&["acme"]);
        let base = validate_config(&c, &r).unwrap();
        type Change = fn(&mut faxbot_crds::SidecarSpec);
        let changes: [(&str, Change); 6] = [
            ("image", |s| s.image = "acme/fax-plugin:2".into()),
            ("hipaaCompliant", |s| s.hipaa_compliant = true),
            ("pull policy", |s| s.image_pull_policy = Some(faxbot_crds::PullPolicy::Always)),
            ("port", |s| s.port = 9100),
            ("env", |s| s.env = vec![faxbot_crds::SidecarEnvVar { name: "ACME_REGION".into(), value: "eu".into() }]),
            ("resources", |s| s.resources = Some(Default::default())),
        ];
        for (what, change) in changes {
            let mut r = r.clone();
            change(r.providers.get_mut("acme").unwrap().spec.sidecar.as_mut().unwrap());
            let changed = validate_config(&c, &r).unwrap();
            assert_ne!(changed.revision, base.revision, "{what}: a new revision");
            // Not a flags-only change: `urgentFeatureFlags` never skips the canary for it.
            assert_ne!(changed.pod_inputs, base.pod_inputs, "{what}: a pod change");
        }
        // A rotated token rolls the pods through the credentials checksum.
        let mut rotated = r.clone();
        rotated.secrets.insert("acme".into(), secret("acme", &[("pluginToken", "rotated-plugin-token")]));
        let rotated = validate_config(&c, &rotated).unwrap();
        assert_ne!(rotated.credentials_checksum, base.credentials_checksum);
        assert_ne!(rotated.revision, base.revision);

        // So does the sidecar's own credential: mapping one, and rotating it, are new revisions and pod changes.
        let (c, r) = with_sidecar_credentials(&[("pluginToken", "pluginToken"), ("apiKey", "api-key")]);
        let mapped = validate_config(&c, &r).unwrap();
        assert_ne!(mapped.revision, base.revision);
        assert_ne!(mapped.pod_inputs, base.pod_inputs);
        let mut rotated = r.clone();
        rotated.secrets.insert(
            "acme".into(),
            secret("acme", &[("pluginToken", PLUGIN_TOKEN_VALUE), ("api-key", "rotated-provider-key")]),
        );
        let rotated = validate_config(&c, &rotated).unwrap();
        assert_ne!(rotated.credentials_checksum, mapped.credentials_checksum);
        assert_ne!(rotated.revision, mapped.revision);
        assert_ne!(rotated.pod_inputs, mapped.pod_inputs, "never a flags-only change");
        assert_eq!(rotated.config_checksum, mapped.config_checksum);
    }

    pub const PROVIDER_KEY_VALUE: &str = "provider-api-key-that-must-never-leak";

    /// [`external_config`] with `acme` mapping `items` (credential, Secret key) from Secret `acme`, which holds
    /// the plugin token, the provider key (`api-key`) and a secret (`api-secret`).
    pub fn with_sidecar_credentials(items: &[(&str, &str)]) -> (FaxPluginConfig, Referenced) {
        let (c, mut r) = external_config(&["acme"]);
        r.providers.get_mut("acme").unwrap().spec.credentials_secret_ref = Some(CredentialsSecretRef {
            name: "acme".into(),
            items: Some(
                items.iter().map(|(c, k)| CredentialItem { credential: (*c).into(), key: (*k).into() }).collect(),
            ),
        });
        let data = [("pluginToken", PLUGIN_TOKEN_VALUE), ("api-key", PROVIDER_KEY_VALUE), ("api-secret", "s3cr3t")];
        r.secrets.insert("acme".into(), secret("acme", &data));
        (c, r)
    }

    #[test]
    fn an_external_provider_takes_any_credential_for_its_sidecar() {
        /// `(credential, Secret key)` items; `(variable, key)` sidecar credentials.
        type Pairs = Vec<(&'static str, &'static str)>;
        /// `Ok(sidecar credentials)` or `Err((reason, message fragment))`.
        type Want = Result<Pairs, (&'static str, &'static str)>;
        let table: Vec<(&str, Pairs, Want)> = vec![
            ("the token only", vec![("pluginToken", "pluginToken")], Ok(vec![])),
            ("no mapping at all", vec![], Ok(vec![])),
            (
                "the token and the provider's keys",
                vec![("pluginToken", "pluginToken"), ("apiKey", "api-key"), ("apiSecret", "api-secret")],
                Ok(vec![
                    ("FAXBOT_CREDENTIAL_API_KEY", "outbound.apiKey"),
                    ("FAXBOT_CREDENTIAL_API_SECRET", "outbound.apiSecret"),
                ]),
            ),
            (
                "a key without the token",
                vec![("oauth2ClientSecret", "api-secret")],
                Ok(vec![("FAXBOT_CREDENTIAL_OAUTH2_CLIENT_SECRET", "outbound.oauth2ClientSecret")]),
            ),
            (
                "a mapped key that is not in the Secret",
                vec![("apiKey", "missing")],
                Err(("SecretKeyMissing", "Secret acme has no non-empty key `missing` (credential `apiKey`)")),
            ),
            (
                "a name with an underscore",
                vec![("api_key", "api-key")],
                Err(("InvalidCredentialName", "credential `api_key` must be a letter followed by up to 62")),
            ),
            (
                "a name starting with a digit",
                vec![("2fa", "api-key")],
                Err(("InvalidCredentialName", "credential `2fa` must be a letter")),
            ),
            (
                "a name of 64 characters",
                vec![("k23456789012345678901234567890123456789012345678901234567890123x", "api-key")],
                Err(("InvalidCredentialName", "must be a letter followed by up to 62 letters and digits")),
            ),
            (
                "two names, one variable",
                vec![("apiKey", "api-key"), ("ApiKey", "api-secret")],
                Err((
                    "CredentialNameConflict",
                    "credentials `apiKey` and `ApiKey` would both reach the sidecar as FAXBOT_CREDENTIAL_API_KEY",
                )),
            ),
            (
                "one name twice",
                vec![("apiKey", "api-key"), ("apiKey", "api-secret")],
                Err(("CredentialNameConflict", "credential `apiKey` appears twice")),
            ),
        ];
        for (what, items, want) in table {
            let (c, r) = with_sidecar_credentials(&items);
            let got = validate_config(&c, &r);
            match (got, want) {
                (Ok(desired), Ok(want)) => {
                    let sidecar = &desired.sidecars[0];
                    let got: Vec<(&str, &str)> =
                        sidecar.credentials.iter().map(|(e, k)| (e.as_str(), k.as_str())).collect();
                    assert_eq!(got, want, "{what}");
                    let has_token = items.iter().any(|(c, _)| *c == PLUGIN_TOKEN);
                    assert_eq!(sidecar.token_key.is_some(), has_token, "{what}: the token stays FAXBOT_PLUGIN_TOKEN");
                    // Every one copied into the API server's Secret under the slot, none into the config.
                    for (_, key) in &want {
                        assert!(desired.credentials.contains_key(*key), "{what}: {key}");
                    }
                    assert!(!desired.config_json.contains(PROVIDER_KEY_VALUE), "{what}");
                }
                (Err(err), Err((reason, fragment))) => {
                    assert_eq!(err.reason, reason, "{what}: {}", err.message);
                    assert!(err.message.contains(fragment), "{what}: {}", err.message);
                    assert!(!err.message.contains(PROVIDER_KEY_VALUE), "{what}");
                }
                (got, want) => panic!("{what}: {got:?}, wanted {want:?}"),
            }
        }
        // As a failover, under the failover's slot.
        let (mut c, r) = with_sidecar_credentials(&[("apiKey", "api-key")]);
        c.spec.slots.outbound = vec!["line".into(), "acme".into()];
        let desired = validate_config(&c, &r).unwrap();
        assert_eq!(
            desired.sidecars[0].credentials,
            vec![("FAXBOT_CREDENTIAL_API_KEY".to_string(), "failover1.apiKey".to_string())]
        );
        assert_eq!(desired.credentials["failover1.apiKey"].0, PROVIDER_KEY_VALUE.as_bytes());
        // Every other plugin still takes only what its manifest declares.
        let mut phaxio = provider("fax", "phaxio", serde_json::json!({}), Some("px"));
        phaxio.spec.credentials_secret_ref.as_mut().unwrap().items = Some(vec![
            CredentialItem { credential: "apiKey".into(), key: "apiKey".into() },
            CredentialItem { credential: "apiSecret".into(), key: "apiSecret".into() },
            CredentialItem { credential: "region".into(), key: "region".into() },
        ]);
        let px = secret("px", &[("apiKey", "k"), ("apiSecret", "s"), ("region", "eu")]);
        assert_eq!(validate_provider(&phaxio, Some(&px), None).unwrap_err().reason, "UnknownCredential");
    }

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

    fn with_trust_bundle(data: Option<&str>) -> (FaxPluginConfig, Referenced) {
        let mut c = base_config();
        c.spec.api_server.trust_bundle =
            Some(faxbot_crds::ConfigMapKeyRef { name: "trust".into(), key: "ca.crt".into() });
        let mut r = base_referenced();
        if let Some(data) = data {
            let cm = ConfigMap {
                metadata: ObjectMeta { name: Some("trust".into()), ..Default::default() },
                data: Some(BTreeMap::from([("ca.crt".to_string(), data.to_string())])),
                ..Default::default()
            };
            r.config_maps.insert("trust".into(), cm);
        }
        (c, r)
    }

    #[test]
    fn pod_inputs_ignore_the_config_document_and_nothing_else() {
        let base = validate_config(&base_config(), &base_referenced()).unwrap();
        let mut c = base_config();
        c.spec.features.audit_all = !c.spec.features.audit_all;
        let flags = validate_config(&c, &base_referenced()).unwrap();
        assert_ne!(flags.revision, base.revision);
        assert_eq!(flags.pod_inputs, base.pod_inputs, "a flag changes only the config document");
        let mut c = base_config();
        c.spec.api_server.service_account_name = Some("fax-irsa".into());
        assert_ne!(validate_config(&c, &base_referenced()).unwrap().pod_inputs, base.pod_inputs);
        let mut c = base_config();
        c.spec.api_server.trusted_proxies = vec!["198.18.0.0/24".into()];
        assert_ne!(validate_config(&c, &base_referenced()).unwrap().pod_inputs, base.pod_inputs);
        let mut c = base_config();
        c.spec.api_server.audit_log_file = Some("/var/lib/faxbot/audit.log".into());
        let audited = validate_config(&c, &base_referenced()).unwrap();
        assert_ne!(audited.pod_inputs, base.pod_inputs, "the audit file is a pod setting: it goes through the canary");
        assert_eq!(audited.audit_log_file.as_deref(), Some("/var/lib/faxbot/audit.log"));
        let mut c = base_config();
        c.spec.api_server.image = "registry.example/faxbot-api:other".into();
        assert_ne!(validate_config(&c, &base_referenced()).unwrap().pod_inputs, base.pod_inputs);
    }

    #[test]
    fn notification_receivers_are_checked_like_endpoints() {
        let webhook = |url: &str| {
            let mut c = base_config();
            c.spec.rollout.notifications = Some(faxbot_crds::NotificationsSpec {
                webhook: Some(faxbot_crds::WebhookSinkSpec { url: url.into(), signing_secret_ref: None }),
            });
            validate_config(&c, &base_referenced())
        };
        for ok in ["https://hooks.example/fax", "http://127.0.0.1:9000/hook", "https://198.18.0.5/hook"] {
            assert!(webhook(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://hooks.example/fax", "https"),
            ("https://user:pw@hooks.example/", "credentials"),
            ("https://169.254.169.254/latest", "link-local"),
            ("hooks.example", "absolute URL"),
        ] {
            let err = webhook(bad).unwrap_err();
            assert_eq!(err.reason, "InvalidNotification", "{bad}");
            assert!(err.message.contains(why), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn trusted_proxies_are_normalised_roll_the_pods_and_must_be_cidrs() {
        let plain = validate_config(&base_config(), &base_referenced()).unwrap();
        assert!(plain.trusted_proxies.is_empty());
        let mut c = base_config();
        c.spec.api_server.trusted_proxies = vec!["198.18.0.77/24".into(), " 2001:db8::1 ".into()];
        let with = validate_config(&c, &base_referenced()).unwrap();
        assert_eq!(with.trusted_proxies, vec!["198.18.0.0/24".to_string(), "2001:db8::1/128".to_string()]);
        assert_ne!(with.revision, plain.revision, "a changed proxy list rolls out like any pod change");
        c.spec.api_server.trusted_proxies = vec!["ingress.example".into()];
        let err = validate_config(&c, &base_referenced()).unwrap_err();
        assert_eq!(err.reason, "InvalidTrustedProxies");
        assert!(err.message.contains("`ingress.example` is not a CIDR"), "{}", err.message);
    }

    #[test]
    fn a_trust_bundle_is_copied_into_the_revision_and_changes_it() {
        let plain = validate_config(&base_config(), &base_referenced()).unwrap();
        assert_eq!(plain.trust_bundle, None);
        let (c, r) = with_trust_bundle(Some(CERT));
        let one = validate_config(&c, &r).unwrap();
        assert_eq!(one.trust_bundle.as_deref(), Some(CERT));
        assert_ne!(one.revision, plain.revision, "adding a bundle rolls the pods");
        let two_certs = format!("{CERT}{CERT}");
        let (c, r) = with_trust_bundle(Some(&two_certs));
        let two = validate_config(&c, &r).unwrap();
        assert_ne!(two.revision, one.revision, "a changed bundle is a new revision");
        let (c, r) = with_trust_bundle(Some(CERT));
        assert_eq!(validate_config(&c, &r).unwrap().revision, one.revision, "the same bundle, the same revision");
    }

    #[test]
    fn a_trust_bundle_must_exist_and_hold_only_certificates() {
        let table: [(Option<&str>, &str); 5] = [
            (None, "ConfigMapNotFound"),
            (Some("  \n"), "ConfigMapKeyMissing"),
            (Some("not pem at all"), "InvalidTrustBundle"),
            (Some("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"), "InvalidTrustBundle"),
            (
                Some("-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n-----BEGIN RSA PRIVATE KEY-----\n"),
                "InvalidTrustBundle",
            ),
        ];
        for (data, reason) in table {
            let (c, r) = with_trust_bundle(data);
            let err = validate_config(&c, &r).unwrap_err();
            assert_eq!(err.reason, reason, "{data:?}: {err:?}");
            assert!(!err.message.contains("MIIE"), "the content is never echoed: {}", err.message);
        }
        let big = format!("{CERT}{}", "x".repeat(MAX_TRUST_BUNDLE));
        let (c, r) = with_trust_bundle(Some(&big));
        assert_eq!(validate_config(&c, &r).unwrap_err().reason, "InvalidTrustBundle");
    }

    #[test]
    fn a_valid_config_renders_the_runtime_document_and_credentials() {
        let desired = validate_config(&base_config(), &base_referenced()).unwrap();
        let outbound = desired.runtime.providers.outbound.as_ref().unwrap();
        assert_eq!(outbound.plugin, "test");
        assert_eq!(outbound.settings["deliveryLatencyMs"], 50);
        assert_eq!(desired.runtime.providers.auth.as_ref().unwrap().plugin, "api_keys");
        assert_eq!(
            desired.credentials.keys().collect::<Vec<_>>(),
            vec!["auth.adminKey", "auth.pepper"],
            "exactly the credentials the providers reference"
        );
        assert_eq!(desired.revision.len(), 10);
        assert!(!desired.config_json.contains(ADMIN_KEY) && !desired.config_json.contains(PEPPER));
        // The server accepts what the operator renders.
        faxbot_contract::validate::parse_and_validate(desired.config_json.as_bytes()).unwrap();
    }

    /// The shipped Phaxio manifest as a FaxPluginManifest named `phaxio-manifest`, changed by `change`.
    fn manifest_resource(change: impl Fn(&mut serde_json::Value)) -> FaxPluginManifest {
        let mut manifest: serde_json::Value =
            serde_json::from_str(include_str!("../../manifests/phaxio-http.json")).unwrap();
        change(&mut manifest);
        let mut m = FaxPluginManifest::new("phaxio-manifest", faxbot_crds::FaxPluginManifestSpec { manifest });
        m.metadata.namespace = Some("fax".into());
        m
    }

    /// A config whose outbound provider `fax` is the manifest plugin `phaxio-http`.
    fn with_manifest(resource: Option<FaxPluginManifest>) -> (FaxPluginConfig, Referenced) {
        let c = config(serde_json::json!({
            "apiServer": {"image": "faxbot-api:1"},
            "slots": {"outbound": ["fax"], "auth": "keys"},
            "features": {"pluginInstall": true}
        }));
        let mut r = base_referenced();
        let mut p = provider("fax", "phaxio-http", serde_json::json!({"pollIntervalMs": 1000}), Some("phaxio"));
        p.spec.manifest_ref = Some(faxbot_crds::ManifestRef { name: "phaxio-manifest".into() });
        r.providers.insert("fax".into(), p);
        r.secrets.insert("phaxio".into(), secret("phaxio", &[("apiKey", "k-value"), ("apiSecret", "s-value")]));
        if let Some(m) = resource {
            r.manifests.insert("phaxio-manifest".into(), m);
        }
        (c, r)
    }

    #[test]
    fn a_manifest_provider_puts_its_manifest_into_the_runtime_document() {
        let (c, r) = with_manifest(Some(manifest_resource(|_| {})));
        let desired = validate_config(&c, &r).unwrap();
        assert_eq!(desired.runtime.providers.outbound.as_ref().unwrap().plugin, "phaxio-http");
        assert_eq!(desired.runtime.manifests.len(), 1);
        assert_eq!(desired.runtime.manifests[0].id, "phaxio-http");
        assert_eq!(
            desired.credentials.keys().collect::<Vec<_>>(),
            vec!["auth.adminKey", "auth.pepper", "outbound.apiKey", "outbound.apiSecret"],
            "the manifest's declared credentials are copied like a built-in plugin's"
        );
        // The server accepts what the operator renders, and a change of the manifest is a new revision.
        faxbot_contract::validate::parse_and_validate(desired.config_json.as_bytes()).unwrap();
        let (c, r) = with_manifest(Some(manifest_resource(|m| m["limits"]["timeoutMs"] = 20000.into())));
        assert_ne!(validate_config(&c, &r).unwrap().revision, desired.revision);
    }

    #[test]
    fn manifest_providers_are_refused_with_the_manifest_field_and_reason() {
        let table: Vec<(Option<FaxPluginManifest>, &str, &str)> = vec![
            (None, "ManifestNotFound", "FaxPluginManifest phaxio-manifest does not exist"),
            (
                Some(manifest_resource(|m| m["allowedDomains"] = serde_json::json!(["169.254.169.254"]))),
                "InvalidManifest",
                "spec.manifest.allowedDomains[0]: must not be a link-local, metadata",
            ),
            (
                Some(manifest_resource(|m| {
                    m["actions"]["send"]["headers"] = serde_json::json!({"X-Leak": "{{ env.AWS_SECRET_ACCESS_KEY }}"})
                })),
                "InvalidManifest",
                "templates cannot read the environment",
            ),
            (
                Some(manifest_resource(|m| m["webhook"]["verification"] = serde_json::json!({"scheme": "none"}))),
                "InvalidManifest",
                "spec.manifest.webhook.verification: declares no webhook verification",
            ),
            (
                Some(manifest_resource(|m| m["id"] = "other-fax".into())),
                "InvalidManifest",
                "its id `other-fax` is not the plugin `phaxio-http`",
            ),
            (
                Some(manifest_resource(|m| m["statuses"] = serde_json::json!("all good"))),
                "InvalidManifest",
                "spec.manifest.statuses: invalid type",
            ),
        ];
        for (resource, reason, message) in table {
            let (c, r) = with_manifest(resource);
            let invalid = validate_config(&c, &r).unwrap_err();
            assert_eq!(invalid.reason, reason, "{}", invalid.message);
            assert!(invalid.message.contains(message), "{message}: {}", invalid.message);
        }
        // Without manifestRef a plugin that is not built in stays unknown.
        let (c, mut r) = with_manifest(Some(manifest_resource(|_| {})));
        r.providers.get_mut("fax").unwrap().spec.manifest_ref = None;
        let invalid = validate_config(&c, &r).unwrap_err();
        assert_eq!(invalid.reason, "UnknownPlugin");
        assert!(invalid.message.contains("or a plugin defined by a FaxPluginManifest named in spec.manifestRef"));
    }

    /// The test publisher's secret key and its public key list `{"acme": …}`.
    const PUBLISHER_SECRET: [u8; 32] = [11; 32];
    fn acme_keys() -> String {
        use faxbot_contract::manifest::signature::public_key;
        serde_json::json!({"acme": public_key(&PUBLISHER_SECRET)}).to_string()
    }

    /// `manifest` signed as `key_id` with `secret`.
    fn signed(mut manifest: HttpManifest, key_id: &str, secret: &[u8; 32]) -> HttpManifest {
        use faxbot_contract::manifest::{ManifestSignature, signature::sign};
        manifest.signature =
            Some(ManifestSignature { key_id: key_id.into(), value: sign(&manifest.canonical(), secret) });
        manifest
    }

    fn shipped_manifest() -> HttpManifest {
        serde_json::from_str(include_str!("../../manifests/phaxio-http.json")).unwrap()
    }

    #[test]
    fn only_manifests_a_trusted_publisher_signed_roll_out_unless_plugin_install_is_on() {
        let keys: BTreeMap<String, String> = serde_json::from_str(&acme_keys()).unwrap();
        let shipped = shipped_manifest();
        let unsigned = HttpManifest { version: "1.0.0-local".into(), ..shipped.clone() };
        let verified = signed(unsigned.clone(), "acme", &PUBLISHER_SECRET);
        let unknown = signed(unsigned.clone(), "other", &PUBLISHER_SECRET);
        let forged = signed(unsigned.clone(), "acme", &[12; 32]);
        let mut changed = verified.clone();
        changed.allowed_domains.push("collector.example.net".into());
        let none = BTreeMap::new();
        // (manifest, trusted keys, features.pluginInstall, why it is refused)
        type Row<'a> = (&'a HttpManifest, &'a BTreeMap<String, String>, bool, Option<&'a str>);
        let table: Vec<Row> = vec![
            // What this release ships, unchanged, is trusted as the built-in plugins are.
            (&shipped, &none, false, None),
            (&verified, &keys, false, None),
            (&verified, &keys, true, None),
            (&verified, &none, false, Some("no trusted publisher key `acme`")),
            (&unsigned, &keys, false, Some("manifest `phaxio-http` is not signed")),
            (&unsigned, &none, false, Some("is not signed")),
            (&unsigned, &none, true, None),
            (&unknown, &keys, false, Some("no trusted publisher key `other`")),
            (&unknown, &keys, true, None),
            (&forged, &keys, false, Some("the signature does not match the manifest")),
            (&changed, &keys, false, Some("the signature does not match the manifest")),
            (&changed, &keys, true, None),
        ];
        for (i, (manifest, keys, allow, refused)) in table.into_iter().enumerate() {
            let got = trusted_manifests(&[("phaxio", manifest)], keys, allow);
            match (got, refused) {
                (Ok(()), None) => {}
                (Err(invalid), Some(why)) => {
                    assert_eq!(invalid.reason, "UntrustedManifest", "row {i}");
                    assert!(invalid.message.starts_with("FaxPluginManifest phaxio: "), "row {i}: {}", invalid.message);
                    assert!(invalid.message.contains(why), "row {i}: {}", invalid.message);
                    assert!(invalid.message.contains("features.pluginInstall"), "row {i}: says what to do");
                }
                (got, want) => panic!("row {i}: {got:?}, expected a refusal {want:?}"),
            }
        }
        // Every manifest is checked, not only the first.
        let refused = trusted_manifests(&[("a", &verified), ("b", &unsigned)], &keys, false).unwrap_err();
        assert!(refused.message.starts_with("FaxPluginManifest b: "), "{}", refused.message);
    }

    #[test]
    fn publisher_keys_must_be_a_json_object_of_ed25519_keys() {
        let reference = |key: &str| faxbot_crds::PublisherKeysSecretRef { name: "publishers".into(), key: key.into() };
        let with = |value: &str| {
            let mut r = Referenced::default();
            r.secrets.insert("publishers".into(), secret("publishers", &[("publisherKeys", value)]));
            r
        };
        // (what exists, the key named, how many keys or (reason, message))
        type Row<'a> = (Referenced, &'a str, Result<usize, (&'a str, &'a str)>);
        let table: Vec<Row> = vec![
            (with(&acme_keys()), "publisherKeys", Ok(1)),
            (Referenced::default(), "publisherKeys", Err(("PublisherKeysMissing", "Secret publishers does not exist"))),
            (with(&acme_keys()), "keys", Err(("PublisherKeysMissing", "has no non-empty key `keys`"))),
            (with(""), "publisherKeys", Err(("PublisherKeysMissing", "has no non-empty key `publisherKeys`"))),
            (with("acme: AAAA"), "publisherKeys", Err(("InvalidPublisherKeys", "is not a JSON object"))),
            (with(r#"{"acme": 7}"#), "publisherKeys", Err(("InvalidPublisherKeys", "is not a JSON object"))),
            (with("{}"), "publisherKeys", Err(("InvalidPublisherKeys", "holds no key"))),
            (
                with(r#"{"acme": "bm90IGEga2V5"}"#),
                "publisherKeys",
                Err(("InvalidPublisherKeys", "has key `acme`, which is not a base64 Ed25519 public key")),
            ),
        ];
        for (i, (referenced, key, want)) in table.into_iter().enumerate() {
            match (publisher_keys(&reference(key), &referenced), want) {
                (Ok(keys), Ok(n)) => {
                    assert_eq!(keys.keys.len(), n, "row {i}");
                    assert_eq!(keys.raw.0, acme_keys().into_bytes(), "row {i}: copied as it is");
                    assert_eq!(keys.secret_uid, "uid-publishers");
                }
                (Err(invalid), Err((reason, message))) => {
                    assert_eq!(invalid.reason, reason, "row {i}: {}", invalid.message);
                    assert!(invalid.message.contains(message), "row {i}: {}", invalid.message);
                    assert!(!invalid.message.contains("bm90IGEga2V5"), "no key material in the message");
                }
                (got, want) => panic!("row {i}: {got:?}, expected {want:?}"),
            }
        }
        // The CRD's default key.
        let parsed: faxbot_crds::PublisherKeysSecretRef =
            serde_json::from_value(serde_json::json!({"name": "publishers"})).unwrap();
        assert_eq!(parsed.key, "publisherKeys");
    }

    #[test]
    fn a_registry_index_is_checked_entry_by_entry_and_lands_in_the_catalog() {
        use faxbot_contract::manifest::registry::MAX_INDEX_BYTES;
        let offer = |id: &str| HttpManifest { id: id.into(), version: "2.0.0".into(), ..shipped_manifest() };
        let good = signed(offer("acme-fax"), "acme", &PUBLISHER_SECRET);
        let index = |entries: Vec<serde_json::Value>| serde_json::json!({"version": 1, "entries": entries}).to_string();
        let value = |m: &HttpManifest| serde_json::to_value(m).unwrap();
        let with_index = |data: Option<&str>, plugin_install: bool| {
            let mut c = base_config();
            c.spec.features.plugin_install = plugin_install;
            c.spec.publisher_keys_secret_ref =
                Some(faxbot_crds::PublisherKeysSecretRef { name: "publishers".into(), key: "publisherKeys".into() });
            c.spec.registry_index_ref =
                Some(faxbot_crds::RegistryIndexRef { name: "registry".into(), key: "index.json".into() });
            let mut r = base_referenced();
            r.secrets.insert("publishers".into(), secret("publishers", &[("publisherKeys", &acme_keys())]));
            if let Some(data) = data {
                let cm = ConfigMap {
                    metadata: ObjectMeta { name: Some("registry".into()), ..Default::default() },
                    data: Some(BTreeMap::from([("index.json".to_string(), data.to_string())])),
                    ..Default::default()
                };
                r.config_maps.insert("registry".into(), cm);
            }
            validate_config(&c, &r)
        };

        // Accepted: the entries reach the document's catalog (checked again as the server will), and a
        // change of the index is a new revision.
        let desired = with_index(Some(&index(vec![value(&good)])), false).unwrap();
        assert_eq!(desired.runtime.catalog, vec![good.clone()]);
        faxbot_contract::validate::parse_and_validate(desired.config_json.as_bytes()).unwrap();
        let two = with_index(
            Some(&index(vec![value(&good), value(&signed(offer("beta-fax"), "acme", &PUBLISHER_SECRET))])),
            false,
        )
        .unwrap();
        assert_ne!(two.revision, desired.revision);
        let plain = validate_config(&base_config(), &base_referenced()).unwrap();
        assert!(!plain.config_json.contains("catalog"), "configs without an index are unchanged");

        let mut metadata_host = offer("meta-fax");
        metadata_host.allowed_domains = vec!["169.254.169.254".into()];
        let unsigned = offer("open-fax");
        let forged = signed(offer("forged-fax"), "acme", &[12; 32]);
        let mut phi = value(&good);
        phi["name"] = serde_json::json!(5_551_234_567_u64);
        // (index text, features.pluginInstall, reason, message part)
        let table: Vec<(Option<String>, bool, &str, &str)> = vec![
            (None, false, "RegistryIndexMissing", "registryIndexRef: ConfigMap registry does not exist"),
            (Some(" ".into()), false, "RegistryIndexMissing", "has no non-empty key `index.json`"),
            (Some("{".into()), false, "InvalidRegistryIndex", "key `index.json` of ConfigMap registry: EOF"),
            (Some("x".repeat(MAX_INDEX_BYTES + 1)), false, "InvalidRegistryIndex", "larger than 262144 bytes"),
            (Some(index(vec![phi])), false, "InvalidRegistryIndex", "entries[0].name: invalid type: integer `…4567`"),
            (
                Some(index(vec![value(&good), value(&metadata_host)])),
                false,
                "InvalidRegistryIndex",
                "entries[1] (`meta-fax`).allowedDomains[0]: must not be a link-local",
            ),
            (
                Some(index(vec![value(&good), value(&unsigned)])),
                false,
                "UntrustedManifest",
                "ConfigMap registry, entries[1]: manifest `open-fax` is not signed",
            ),
            (
                Some(index(vec![value(&forged)])),
                false,
                "UntrustedManifest",
                "the signature does not match the manifest",
            ),
        ];
        for (i, (data, plugin_install, reason, part)) in table.into_iter().enumerate() {
            let invalid = with_index(data.as_deref(), plugin_install).unwrap_err();
            assert_eq!(invalid.reason, reason, "row {i}: {}", invalid.message);
            assert!(invalid.message.contains(part), "row {i}: {}", invalid.message);
            assert!(!invalid.message.contains("5551234567"), "row {i}: {}", invalid.message);
        }
        // pluginInstall lists unverified entries too.
        let open = with_index(Some(&index(vec![value(&unsigned), value(&forged)])), true).unwrap();
        assert_eq!(open.runtime.catalog.len(), 2);
    }

    #[test]
    fn publisher_keys_are_copied_into_the_credentials_and_checked_before_rollout() {
        assert_eq!(names::PUBLISHER_KEYS_KEY, names::credential_key("registry", "publisherKeys"));
        let signed_resource = || {
            let local = HttpManifest { version: "1.0.0-local".into(), ..shipped_manifest() };
            let m = signed(local, "acme", &PUBLISHER_SECRET);
            let mut r = manifest_resource(|_| {});
            r.spec.manifest = serde_json::to_value(&m).unwrap();
            r
        };
        let keyed = |resource: FaxPluginManifest, keys: &str, plugin_install: bool| {
            let (mut c, mut r) = with_manifest(Some(resource));
            c.spec.features.plugin_install = plugin_install;
            c.spec.publisher_keys_secret_ref =
                Some(faxbot_crds::PublisherKeysSecretRef { name: "publishers".into(), key: "publisherKeys".into() });
            r.secrets.insert("publishers".into(), secret("publishers", &[("publisherKeys", keys)]));
            (c, r)
        };

        // Signed by a trusted key, without pluginInstall: the keys reach the server as its credential file.
        let (c, r) = keyed(signed_resource(), &acme_keys(), false);
        let desired = validate_config(&c, &r).unwrap();
        assert_eq!(desired.credentials.get(names::PUBLISHER_KEYS_KEY).map(|v| v.0.clone()), Some(acme_keys().into()));
        assert!(!desired.config_json.contains(&acme_keys()), "keys are credentials, not part of the document");
        faxbot_contract::validate::parse_and_validate(desired.config_json.as_bytes()).unwrap();
        // Another key list (a rotation) is a new revision, so it rolls out as a canary.
        let more = serde_json::json!({
            "acme": faxbot_contract::manifest::signature::public_key(&PUBLISHER_SECRET),
            "beta": faxbot_contract::manifest::signature::public_key(&[13; 32]),
        })
        .to_string();
        let (c2, r2) = keyed(signed_resource(), &more, false);
        let rotated = validate_config(&c2, &r2).unwrap();
        assert_ne!(rotated.revision, desired.revision);
        assert_ne!(rotated.credentials_checksum, desired.credentials_checksum);

        // Unsigned without pluginInstall: refused before rollout; with it: accepted, keys still copied.
        let local = || manifest_resource(|m| m["version"] = "1.0.0-local".into());
        let (c, r) = keyed(local(), &acme_keys(), false);
        let invalid = validate_config(&c, &r).unwrap_err();
        assert_eq!(invalid.reason, "UntrustedManifest");
        assert!(invalid.message.contains("FaxPluginManifest phaxio-manifest: manifest `phaxio-http` is not signed"));
        let (c, r) = keyed(local(), &acme_keys(), true);
        assert!(validate_config(&c, &r).unwrap().credentials.contains_key(names::PUBLISHER_KEYS_KEY));
        // Signed by a key the config does not trust.
        let (c, r) = keyed(signed_resource(), &more.replace("\"acme\"", "\"gamma\""), false);
        let invalid = validate_config(&c, &r).unwrap_err();
        assert_eq!(invalid.reason, "UntrustedManifest");
        assert!(invalid.message.contains("no trusted publisher key `acme`"), "{}", invalid.message);
        // No keys configured and no pluginInstall: an unsigned manifest is refused, as the server would.
        let (mut c, r) = with_manifest(Some(local()));
        c.spec.features.plugin_install = false;
        assert_eq!(validate_config(&c, &r).unwrap_err().reason, "UntrustedManifest");
        // The shipped manifest, unchanged, needs neither.
        let (mut c, r) = with_manifest(Some(manifest_resource(|_| {})));
        c.spec.features.plugin_install = false;
        validate_config(&c, &r).unwrap();
        // A missing or broken key list is its own reason.
        let (c, mut r) = keyed(signed_resource(), &acme_keys(), false);
        r.secrets.remove("publishers");
        assert_eq!(validate_config(&c, &r).unwrap_err().reason, "PublisherKeysMissing");
        let (c, r) = keyed(signed_resource(), "[]", false);
        assert_eq!(validate_config(&c, &r).unwrap_err().reason, "InvalidPublisherKeys");
        // Configs without manifests and without keys are unchanged.
        assert!(
            !validate_config(&base_config(), &base_referenced())
                .unwrap()
                .credentials
                .contains_key(names::PUBLISHER_KEYS_KEY)
        );
    }

    #[test]
    fn document_store_sharing_follows_pods_storage_plugin_and_volume() {
        let store = |c: &FaxPluginConfig, r: &Referenced| validate_config(c, r).unwrap().document_store;
        assert_eq!(store(&base_config(), &base_referenced()), DocumentStore::SinglePod);
        let mut c = base_config();
        c.spec.api_server.replicas = 3;
        assert_eq!(store(&c, &base_referenced()), DocumentStore::PerPodVolume);
        c.spec.api_server.data_volume =
            Some(faxbot_crds::StorageVolumeSpec { persistent_volume_claim_name: "docs".into() });
        assert_eq!(store(&c, &base_referenced()), DocumentStore::PersistentVolume);

        // S3, with its access key from the provider's Secret under the storage slot.
        let mut r = base_referenced();
        let settings = serde_json::json!({"bucket": "acme-faxbot-docs", "sseKmsKeyId": "alias/faxbot"});
        r.providers.insert("docs".into(), provider("docs", "s3", settings, Some("aws")));
        r.secrets.insert("aws".into(), secret("aws", &[("accessKeyId", "AKIAEXAMPLE"), ("secretAccessKey", "s3cr3t")]));
        let mut c = base_config();
        c.spec.api_server.replicas = 3;
        c.spec.slots.storage = Some("docs".into());
        let desired = validate_config(&c, &r).unwrap();
        assert_eq!(desired.document_store, DocumentStore::ObjectStorage);
        assert_eq!(desired.credentials["storage.secretAccessKey"].0, b"s3cr3t");
        assert!(!desired.config_json.contains("s3cr3t"));

        // A canary runs beside the stable pods even with one replica.
        let mut c = base_config();
        c.spec.rollout.strategy = RolloutStrategy::Canary;
        c.spec.api_server.database =
            Some(faxbot_crds::DatabaseSpec { url_secret_ref: SecretKeyRef { name: "db".into(), key: "url".into() } });
        let mut r = base_referenced();
        r.secrets.insert("db".into(), secret("db", &[("url", "postgres://u:p@db/fax")]));
        assert_eq!(store(&c, &r), DocumentStore::PerPodVolume);
        assert!(!DocumentStore::PerPodVolume.condition().0);

        // The sip plugin shares its spool with Asterisk: without a volume it cannot work, even on one pod,
        // and S3 document storage does not change that.
        let mut r = base_referenced();
        let sip = serde_json::json!({"amiHost": "asterisk.pbx.svc", "amiUsername": "faxbot"});
        r.providers.insert("pbx".into(), provider("pbx", "sip", sip, Some("pbx")));
        r.secrets.insert("pbx".into(), secret("pbx", &[("amiSecret", "ami-pass"), ("inboundSecret", "in-pass")]));
        let mut c = base_config();
        c.spec.slots.inbound = Some("pbx".into());
        assert_eq!(store(&c, &r), DocumentStore::SipSpoolPerPod);
        assert_eq!(DocumentStore::SipSpoolPerPod.condition().1, "SipSpoolNotShared");
        assert!(!DocumentStore::SipSpoolPerPod.condition().0);
        c.spec.api_server.data_volume =
            Some(faxbot_crds::StorageVolumeSpec { persistent_volume_claim_name: "spool".into() });
        assert_eq!(store(&c, &r), DocumentStore::SinglePod);
    }

    #[test]
    fn a_plugin_without_hipaa_capability_is_refused_while_compliance_hipaa_is_on() {
        let mut manifest = faxbot_contract::manifest("phaxio").unwrap();
        // (hipaa required, plugin capable) → refused?
        for (required, capable, refused) in [(true, true, false), (true, false, true), (false, false, false)] {
            manifest.hipaa_compliant = capable;
            let result = hipaa_capable(required, Category::Outbound, "fax", &manifest, None);
            assert_eq!(result.is_err(), refused, "required {required}, capable {capable}");
            if let Err(e) = result {
                assert_eq!(e.reason, "NotHipaaCapable");
                assert!(e.message.contains("slots.outbound: FaxProvider fax uses plugin `phaxio`"), "{}", e.message);
            }
        }
        // Every built-in plugin declares it but `external`, whose capability is its sidecar's: the FaxProvider's
        // `sidecar.hipaaCompliant` decides (the API server checks the sidecar's own manifest at run time).
        let builtins = faxbot_contract::builtin_manifests();
        assert!(builtins.iter().all(|m| m.hipaa_compliant || m.id == plugins::EXTERNAL));
        assert!(validate_config(&base_config(), &base_referenced()).is_ok());
        let mut external = builtins.iter().find(|m| m.id == plugins::EXTERNAL).unwrap().clone();
        let sidecar = |vouched: bool| {
            let mut s = external_provider("acme", 9000, None).spec.sidecar.unwrap();
            s.hipaa_compliant = vouched;
            s
        };
        let (yes, no) = (sidecar(true), sidecar(false));
        // (hipaa required, the built-in manifest's flag, the sidecar) → refused?
        let table: [(bool, bool, Option<&SidecarSpec>, bool); 8] = [
            (true, false, Some(&yes), false),
            (true, false, Some(&no), true),
            (true, false, None, true),
            (false, false, Some(&no), false),
            (false, false, None, false),
            // The manifest's flag never speaks for a sidecar, even were it set.
            (true, true, Some(&no), true),
            (true, true, None, true),
            (true, true, Some(&yes), false),
        ];
        for (required, manifest_flag, sidecar, refused) in table {
            external.hipaa_compliant = manifest_flag;
            let result = hipaa_capable(required, Category::Outbound, "acme", &external, sidecar);
            let vouched = sidecar.map(|s| s.hipaa_compliant);
            assert_eq!(result.is_err(), refused, "required {required}, manifest {manifest_flag}, sidecar {vouched:?}");
            if let Err(e) = result {
                assert_eq!(e.reason, "NotHipaaCapable");
                assert!(
                    e.message.contains(
                        "slots.outbound: FaxProvider acme uses plugin `external`, whose spec.sidecar.hipaaCompliant \
                         is not true"
                    ),
                    "{}",
                    e.message
                );
            }
        }
        // A sidecar's flag does not speak for another plugin either.
        manifest.hipaa_compliant = false;
        assert!(hipaa_capable(true, Category::Outbound, "fax", &manifest, Some(&yes)).is_err());
    }

    #[test]
    fn revision_changes_with_settings_credentials_and_image_but_not_replicas() {
        let base = validate_config(&base_config(), &base_referenced()).unwrap();
        let mut r = base_referenced();
        r.providers.get_mut("line").unwrap().spec.settings =
            serde_json::json!({"deliveryLatencyMs": 60}).as_object().cloned();
        assert_ne!(validate_config(&base_config(), &r).unwrap().revision, base.revision);

        let mut r = base_referenced();
        r.secrets.insert("admin".into(), secret("admin", &[("adminKey", "rotated-key"), ("pepper", PEPPER)]));
        let rotated = validate_config(&base_config(), &r).unwrap();
        assert_ne!(rotated.revision, base.revision);
        assert_ne!(rotated.credentials_checksum, base.credentials_checksum);
        assert_eq!(rotated.config_checksum, base.config_checksum);

        let mut c = base_config();
        c.spec.api_server.image = "faxbot-api:2".into();
        assert_ne!(validate_config(&c, &base_referenced()).unwrap().revision, base.revision);
        let mut c = base_config();
        c.spec.api_server.replicas = 0;
        assert_eq!(validate_config(&c, &base_referenced()).unwrap().revision, base.revision);
        let mut c = base_config();
        c.spec.api_server.service_account_name = Some("faxbot-s3".into());
        let with_account = validate_config(&c, &base_referenced()).unwrap();
        assert_ne!(with_account.revision, base.revision);
        let dep = crate::build::deployment(&c, &with_account);
        assert_eq!(dep.spec.unwrap().template.spec.unwrap().service_account_name.as_deref(), Some("faxbot-s3"));
    }

    #[test]
    fn missing_and_wrong_references_have_specific_reasons() {
        type Mutation = Box<dyn Fn(&mut FaxPluginConfig, &mut Referenced)>;
        let cases: Vec<(Mutation, &str, &str)> = vec![
            (Box::new(|c, _| c.spec.slots.outbound = vec!["nope".into()]), "ProviderNotFound", "FaxProvider nope"),
            (Box::new(|_, r| drop(r.secrets.remove("admin"))), "SecretNotFound", "Secret admin does not exist"),
            (
                Box::new(|_, r| drop(r.secrets.insert("admin".into(), secret("admin", &[("adminKey", ADMIN_KEY)])))),
                "SecretKeyMissing",
                "key `pepper`",
            ),
            (
                Box::new(|_, r| {
                    drop(r.providers.insert("line".into(), provider("line", "fax9000", serde_json::json!({}), None)))
                }),
                "UnknownPlugin",
                "unknown plugin `fax9000`",
            ),
            (
                Box::new(|_, r| {
                    drop(r.providers.insert(
                        "line".into(),
                        provider("line", "test", serde_json::json!({"failSuffix": "12a"}), None),
                    ))
                }),
                "InvalidSettings",
                "settings.failSuffix: must be 1 to 8 digits",
            ),
            (
                Box::new(|c, _| c.spec.slots.outbound = vec!["disk".into()]),
                "PluginSlotMismatch",
                "fills storage but not outbound",
            ),
            (
                Box::new(|c, _| c.spec.slots.outbound = vec!["line".into(), "line".into()]),
                "InvalidConfig",
                "appears twice in the outbound chain",
            ),
            (
                Box::new(|_, r| {
                    r.providers.get_mut("keys").unwrap().spec.credentials_secret_ref = None;
                }),
                "CredentialMissing",
                "needs credential `adminKey`",
            ),
            (
                Box::new(|_, r| {
                    r.providers.get_mut("keys").unwrap().spec.credentials_secret_ref = Some(CredentialsSecretRef {
                        name: "admin".into(),
                        items: Some(vec![
                            CredentialItem { credential: "adminKey".into(), key: "adminKey".into() },
                            CredentialItem { credential: "pepper".into(), key: "pepper".into() },
                            CredentialItem { credential: "apiSecret".into(), key: "x".into() },
                        ]),
                    });
                }),
                "UnknownCredential",
                "no credential `apiSecret`",
            ),
            (
                Box::new(|c, _| {
                    c.spec.api_server.database = Some(faxbot_crds::DatabaseSpec {
                        url_secret_ref: SecretKeyRef { name: "db".into(), key: "url".into() },
                    })
                }),
                "SecretNotFound",
                "Secret db does not exist",
            ),
        ];
        for (mutate, reason, fragment) in cases {
            let mut c = base_config();
            let mut r = base_referenced();
            mutate(&mut c, &mut r);
            let err = validate_config(&c, &r).unwrap_err();
            assert_eq!(err.reason, reason, "{err:?}");
            assert!(err.message.contains(fragment), "{reason}: {}", err.message);
            assert!(!err.message.contains(ADMIN_KEY) && !err.message.contains(PEPPER));
        }
    }

    #[test]
    fn credential_mapping_reads_renamed_keys_and_the_database_url() {
        let mut r = base_referenced();
        r.providers.get_mut("keys").unwrap().spec.credentials_secret_ref = Some(CredentialsSecretRef {
            name: "admin".into(),
            items: Some(vec![
                CredentialItem { credential: "adminKey".into(), key: "admin-key".into() },
                CredentialItem { credential: "pepper".into(), key: "hash-pepper".into() },
            ]),
        });
        r.secrets.insert("admin".into(), secret("admin", &[("admin-key", ADMIN_KEY), ("hash-pepper", PEPPER)]));
        r.secrets.insert("db".into(), secret("db", &[("url", DB_URL)]));
        let mut c = base_config();
        c.spec.api_server.database =
            Some(faxbot_crds::DatabaseSpec { url_secret_ref: SecretKeyRef { name: "db".into(), key: "url".into() } });
        c.spec.api_server.replicas = 3;
        let desired = validate_config(&c, &r).unwrap();
        assert_eq!(desired.credentials["auth.adminKey"].0, ADMIN_KEY.as_bytes());
        assert_eq!(desired.credentials["database.url"].0, DB_URL.as_bytes());
        assert!(desired.shared_database);

        r.secrets.insert("db".into(), secret("db", &[("url", "mysql://x")]));
        assert_eq!(validate_config(&c, &r).unwrap_err().reason, "InvalidDatabaseUrl");
    }

    #[test]
    fn numbers_in_settings_errors_are_masked() {
        let mut r = base_referenced();
        r.providers.insert(
            "line".into(),
            provider("line", "test", serde_json::json!({"deliveryLatencyMs": "+15551234567"}), None),
        );
        let err = validate_config(&base_config(), &r).unwrap_err();
        assert_eq!(err.reason, "InvalidSettings");
        assert!(!err.message.contains("5551234567"), "{}", err.message);
    }

    #[test]
    fn optional_credentials_may_be_absent_unless_mapped_explicitly() {
        let phaxio = provider("fax", "phaxio", serde_json::json!({}), Some("px"));
        let secret = secret("px", &[("apiKey", "k"), ("apiSecret", "s")]);
        let resolved = validate_provider(&phaxio, Some(&secret), None).expect("webhookToken is optional");
        assert!(resolved.credentials.contains_key("apiSecret") && !resolved.credentials.contains_key("webhookToken"));
        let mut mapped = phaxio.clone();
        mapped.spec.credentials_secret_ref.as_mut().unwrap().items = Some(vec![
            faxbot_crds::CredentialItem { credential: "apiKey".into(), key: "apiKey".into() },
            faxbot_crds::CredentialItem { credential: "apiSecret".into(), key: "apiSecret".into() },
            faxbot_crds::CredentialItem { credential: "webhookToken".into(), key: "token".into() },
        ]);
        assert_eq!(validate_provider(&mapped, Some(&secret), None).unwrap_err().reason, "SecretKeyMissing");
    }

    #[test]
    fn canary_needs_a_shared_database_and_positive_durations() {
        let mut c = base_config();
        c.spec.rollout.strategy = RolloutStrategy::Canary;
        c.spec.rollout.steps = vec![faxbot_crds::RolloutStep { weight: 10, pause: Some("1m".into()) }];
        assert_eq!(validate_config(&c, &base_referenced()).unwrap_err().reason, "CanaryNeedsDatabase");
        c.spec.api_server.database = Some(faxbot_crds::DatabaseSpec {
            url_secret_ref: faxbot_crds::SecretKeyRef { name: "db".into(), key: "url".into() },
        });
        c.spec.rollout.analysis.interval = "0s".into();
        assert_eq!(validate_config(&c, &base_referenced()).unwrap_err().reason, "InvalidRollout");
    }
}
