//! Plugin manifests and the typed settings of the built-in plugins.
//!
//! A manifest tells operators, the plugin API and the config validator what a plugin is and which
//! settings it takes. The settings schema is generated from the Rust settings type with schemars, and
//! validation deserialises into that same type, so the published schema and the enforced rules cannot
//! drift apart.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Which slot a plugin can fill.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Sends faxes.
    Outbound,
    /// Receives faxes.
    Inbound,
    /// Stores documents.
    Storage,
    /// Authenticates API callers.
    Auth,
}

impl Category {
    /// The slot name used in the config document.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Outbound => "outbound",
            Category::Inbound => "inbound",
            Category::Storage => "storage",
            Category::Auth => "auth",
        }
    }
}

/// What a plugin can do; the job queue uses these to decide how to recover an interrupted submission.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Submit an outbound fax.
    Send,
    /// Poll the status of a submitted fax.
    Status,
    /// Cancel a submitted fax.
    Cancel,
    /// Receive status callbacks.
    Webhook,
    /// The provider deduplicates submissions by an idempotency key, so a submission interrupted by a
    /// crash can be repeated safely.
    Idempotency,
    /// Receive inbound faxes.
    Receive,
    /// Store and fetch documents.
    Store,
}

/// Static description of a plugin.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub struct PluginManifest {
    /// Stable id used in config documents and `FAX_BACKEND`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Plugin version (the server version for built-ins).
    pub version: String,
    /// One-line description.
    pub description: String,
    /// Slots this plugin can fill.
    pub categories: Vec<Category>,
    /// What it can do.
    pub capabilities: Vec<Capability>,
    /// Whether the plugin can be used for PHI (a BAA exists or it never leaves the cluster).
    pub hipaa_compliant: bool,
    /// JSON Schema of the plugin's settings object.
    pub settings_schema: serde_json::Value,
    /// Credentials the plugin reads from files (never from the config document). In Kubernetes the operator
    /// copies them from the FaxProvider's Secret into the API server's Secret as `<slot>.<name>`.
    #[serde(default)]
    pub credentials: Vec<CredentialSpec>,
}

/// One credential a plugin needs.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub struct CredentialSpec {
    /// Name used in Secret mappings and in the mounted file name, for example `adminKey`.
    pub name: String,
    /// What the value is and where to get it.
    pub description: String,
    /// Whether a deployment managed by the operator must provide it.
    pub required: bool,
}

impl PluginManifest {
    /// Whether the plugin can fill `category`.
    pub fn fills(&self, category: Category) -> bool {
        self.categories.contains(&category)
    }

    /// Whether the plugin has `capability`.
    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
}

/// Settings of the built-in simulated fax line (`test`).
///
/// The failure-injection suffixes make every branch of the job lifecycle reachable without an external
/// service: which branch a job takes depends only on its destination number, so tests are deterministic.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SimulatedLineSettings {
    /// Milliseconds from submission until the simulated transmission finishes.
    #[schemars(range(max = 600000))]
    pub delivery_latency_ms: u64,
    /// Milliseconds between status polls of a submitted fax.
    #[schemars(range(min = 10, max = 600000))]
    pub poll_interval_ms: u64,
    /// Destination numbers ending in these digits fail in transmission (terminal `FAILED`).
    pub fail_suffix: Option<String>,
    /// The error text recorded for a failed transmission.
    pub fail_error: String,
    /// Destination numbers ending in these digits are refused by the line at submission (a permanent,
    /// non-retryable error: the job ends `failed`).
    pub reject_suffix: Option<String>,
    /// Destination numbers ending in these digits get "busy, retry later" for the first
    /// `busyAttempts` submissions, with a Retry-After hint of `busyRetryAfterMs`.
    pub busy_suffix: Option<String>,
    /// How many submissions of a busy number are refused before it is accepted.
    #[schemars(range(max = 100))]
    pub busy_attempts: u32,
    /// Retry-After hint given with a busy answer, in milliseconds.
    #[schemars(range(max = 3600000))]
    pub busy_retry_after_ms: u64,
}

impl Default for SimulatedLineSettings {
    fn default() -> Self {
        SimulatedLineSettings {
            delivery_latency_ms: 1000,
            poll_interval_ms: 500,
            fail_suffix: Some("0000".into()),
            fail_error: "No answer (simulated)".into(),
            reject_suffix: Some("0001".into()),
            busy_suffix: Some("0002".into()),
            busy_attempts: 2,
            busy_retry_after_ms: 200,
        }
    }
}

/// Settings of the local-filesystem storage plugin (`local`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct LocalStorageSettings {
    /// Directory for documents; created with mode 0700 if missing. Defaults to `<FAX_DATA_DIR>/documents`.
    pub path: Option<String>,
}

/// Settings of the API-key auth plugin (`api_keys`). It has none today; the object exists so that the
/// auth slot is validated like every other slot.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKeyAuthSettings {}

/// Settings of the Phaxio plugin (`phaxio`, API v2.1). Credentials (`apiKey`, `apiSecret`, `webhookToken`) are
/// files, never settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct PhaxioSettings {
    /// API base URL including the version, ending in `/`.
    pub base_url: String,
    /// Public URL Phaxio posts webhooks to, exactly as configured at Phaxio (the signature covers it). In the
    /// outbound slot: this server's `/webhooks/phaxio`, sent with every fax; omitted, status by polling only.
    /// In the inbound slot: the receive URL set on the Phaxio number (`/webhooks/phaxio/inbound`); omitted,
    /// every inbound callback is refused.
    pub callback_url: Option<String>,
    /// Milliseconds between status polls of a submitted fax.
    #[schemars(range(min = 100, max = 600000))]
    pub poll_interval_ms: u64,
}

impl Default for PhaxioSettings {
    fn default() -> Self {
        PhaxioSettings { base_url: "https://api.phaxio.com/v2.1/".into(), callback_url: None, poll_interval_ms: 5000 }
    }
}

fn http_url(value: &str) -> bool {
    value.starts_with("https://") || value.starts_with("http://127.0.0.1") || value.starts_with("http://localhost")
}

impl SettingsCheck for PhaxioSettings {
    fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !http_url(&self.base_url) || !self.base_url.ends_with('/') {
            problems.push(("baseUrl".into(), "must be an https:// URL ending in / (http:// only for loopback)".into()));
        }
        if let Some(url) = &self.callback_url
            && !http_url(url)
        {
            problems.push(("callbackUrl".into(), "must be an https:// URL (http:// only for loopback)".into()));
        }
        if !(100..=600_000).contains(&self.poll_interval_ms) {
            problems.push(("pollIntervalMs".into(), "must be between 100 and 600000".into()));
        }
        problems
    }
}

/// Semantic checks that a JSON Schema cannot express well.
pub trait SettingsCheck {
    /// Returns `(field, message)` pairs for every problem.
    fn check(&self) -> Vec<(String, String)>;
}

impl SettingsCheck for SimulatedLineSettings {
    fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (field, value) in [
            ("failSuffix", &self.fail_suffix),
            ("rejectSuffix", &self.reject_suffix),
            ("busySuffix", &self.busy_suffix),
        ] {
            if let Some(suffix) = value
                && (suffix.is_empty() || suffix.len() > 8 || !suffix.bytes().all(|b| b.is_ascii_digit()))
            {
                problems.push((field.to_string(), "must be 1 to 8 digits".to_string()));
            }
        }
        if self.delivery_latency_ms > 600_000 {
            problems.push(("deliveryLatencyMs".into(), "must be at most 600000".into()));
        }
        if !(10..=600_000).contains(&self.poll_interval_ms) {
            problems.push(("pollIntervalMs".into(), "must be between 10 and 600000".into()));
        }
        if self.busy_attempts > 100 {
            problems.push(("busyAttempts".into(), "must be at most 100".into()));
        }
        if self.busy_retry_after_ms > 3_600_000 {
            problems.push(("busyRetryAfterMs".into(), "must be at most 3600000".into()));
        }
        if self.fail_error.len() > 200 {
            problems.push(("failError".into(), "must be at most 200 characters".into()));
        }
        problems
    }
}

impl SettingsCheck for LocalStorageSettings {
    fn check(&self) -> Vec<(String, String)> {
        if self.path.as_deref().is_some_and(|p| p.trim().is_empty()) {
            vec![("path".into(), "must not be empty".into())]
        } else {
            Vec::new()
        }
    }
}

impl SettingsCheck for ApiKeyAuthSettings {
    fn check(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Plugin id of the simulated line.
pub const SIMULATED_LINE: &str = "test";
/// Plugin id of local-disk storage.
pub const LOCAL_STORAGE: &str = "local";
/// Plugin id of API-key authentication.
pub const API_KEY_AUTH: &str = "api_keys";
/// Plugin id of Phaxio.
pub const PHAXIO: &str = "phaxio";

fn schema_of<T: JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}

/// Every plugin built into this version, in a stable order.
pub fn builtin_manifests() -> Vec<PluginManifest> {
    let version = env!("CARGO_PKG_VERSION").to_string();
    vec![
        PluginManifest {
            id: SIMULATED_LINE.into(),
            name: "Simulated fax line".into(),
            version: version.clone(),
            description: "A built-in line that simulates transmission with configurable latency and \
                          deterministic failure injection, and inbound faxes on request \
                          (POST /admin/inbound/simulate); no external service."
                .into(),
            categories: vec![Category::Outbound, Category::Inbound],
            capabilities: vec![Capability::Send, Capability::Status, Capability::Idempotency, Capability::Receive],
            hipaa_compliant: true,
            settings_schema: schema_of::<SimulatedLineSettings>(),
            credentials: vec![],
        },
        PluginManifest {
            id: PHAXIO.into(),
            name: "Phaxio".into(),
            version: version.clone(),
            description: "Phaxio API v2.1 cloud fax (a BAA is available). Submissions are tagged with the job id, \
                          so an interrupted submission is found again instead of being sent twice."
                .into(),
            categories: vec![Category::Outbound, Category::Inbound],
            capabilities: vec![
                Capability::Send,
                Capability::Status,
                Capability::Idempotency,
                Capability::Webhook,
                Capability::Receive,
            ],
            hipaa_compliant: true,
            settings_schema: schema_of::<PhaxioSettings>(),
            credentials: vec![
                CredentialSpec {
                    name: "apiKey".into(),
                    description: "Phaxio API key (Basic auth user).".into(),
                    required: true,
                },
                CredentialSpec {
                    name: "apiSecret".into(),
                    description: "Phaxio API secret (Basic auth password).".into(),
                    required: true,
                },
                CredentialSpec {
                    name: "webhookToken".into(),
                    description:
                        "Phaxio callback (webhook) token that keys X-Phaxio-Signature; needed with callbackUrl.".into(),
                    required: false,
                },
            ],
        },
        PluginManifest {
            id: LOCAL_STORAGE.into(),
            name: "Local filesystem storage".into(),
            version: version.clone(),
            description: "Documents on a local or mounted volume, written atomically with mode 0600.".into(),
            categories: vec![Category::Storage],
            capabilities: vec![Capability::Store],
            hipaa_compliant: true,
            settings_schema: schema_of::<LocalStorageSettings>(),
            credentials: vec![],
        },
        PluginManifest {
            id: API_KEY_AUTH.into(),
            name: "API keys".into(),
            version,
            description: "X-API-Key authentication with scoped, revocable keys.".into(),
            categories: vec![Category::Auth],
            capabilities: vec![],
            hipaa_compliant: true,
            settings_schema: schema_of::<ApiKeyAuthSettings>(),
            credentials: vec![
                CredentialSpec {
                    name: "adminKey".into(),
                    description: "The bootstrap admin key (X-API-Key with every scope) used to create the first \
                                  scoped keys; mounted as API_KEY_FILE."
                        .into(),
                    required: true,
                },
                CredentialSpec {
                    name: "pepper".into(),
                    description: "Server secret that keys the stored hashes of API keys; every replica must share \
                                  it, so a managed deployment always takes it from a Secret (FAXBOT_PEPPER_FILE)."
                        .into(),
                    required: true,
                },
            ],
        },
    ]
}

/// Looks up a built-in manifest by id.
pub fn manifest(id: &str) -> Option<PluginManifest> {
    builtin_manifests().into_iter().find(|m| m.id == id)
}

/// Deserialises and checks the settings of plugin `id`. Returns `(path, message)` problems, with paths
/// relative to the settings object.
pub fn check_settings(id: &str, settings: &serde_json::Value) -> Result<(), Vec<(String, String)>> {
    match id {
        SIMULATED_LINE => typed_check::<SimulatedLineSettings>(settings),
        LOCAL_STORAGE => typed_check::<LocalStorageSettings>(settings),
        API_KEY_AUTH => typed_check::<ApiKeyAuthSettings>(settings),
        PHAXIO => typed_check::<PhaxioSettings>(settings),
        other => Err(vec![(String::new(), format!("unknown plugin `{other}`"))]),
    }
}

/// Parses settings of a known type, for the server side that needs the typed value.
pub fn parse_settings<T: DeserializeOwned + SettingsCheck>(
    settings: &serde_json::Value,
) -> Result<T, Vec<(String, String)>> {
    let value: T = serde_path_to_error::deserialize(settings).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        vec![(path, e.inner().to_string())]
    })?;
    let problems = value.check();
    if problems.is_empty() { Ok(value) } else { Err(problems) }
}

fn typed_check<T: DeserializeOwned + SettingsCheck>(settings: &serde_json::Value) -> Result<(), Vec<(String, String)>> {
    parse_settings::<T>(settings).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_has_an_object_schema_and_accepts_empty_settings() {
        for m in builtin_manifests() {
            assert_eq!(m.settings_schema["type"], "object", "{}", m.id);
            check_settings(&m.id, &serde_json::json!({})).unwrap();
        }
    }

    #[test]
    fn simulated_line_settings_are_checked() {
        let err = check_settings(SIMULATED_LINE, &serde_json::json!({"failSuffix": "12a"})).unwrap_err();
        assert_eq!(err, vec![("failSuffix".to_string(), "must be 1 to 8 digits".to_string())]);
        let err = check_settings(SIMULATED_LINE, &serde_json::json!({"deliveryLatencyMs": "slow"})).unwrap_err();
        assert_eq!(err[0].0, "deliveryLatencyMs");
        assert!(err[0].1.contains("invalid type"), "{:?}", err);
        let err = check_settings(SIMULATED_LINE, &serde_json::json!({"latency": 5})).unwrap_err();
        assert!(err[0].1.contains("unknown field `latency`"), "{:?}", err);
    }

    #[test]
    fn schema_describes_settings_fields() {
        let m = manifest(SIMULATED_LINE).unwrap();
        assert!(m.settings_schema["properties"]["deliveryLatencyMs"].is_object());
        assert!(m.has(Capability::Idempotency));
    }
}
