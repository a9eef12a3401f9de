//! `FaxProvider`: one configured provider plugin.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// One configured plugin: which plugin, its non-secret settings and where its credentials live.
///
/// A FaxProvider does nothing on its own; a FaxPluginConfig puts it into a slot. Keeping the two apart
/// lets a team rotate a provider's credentials or settings in one place for every API server using it.
// The derive takes one `printcolumn(...)` per column; clippy mistakes the repeated keys for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fax.faxbot.io",
    version = "v1alpha1",
    kind = "FaxProvider",
    plural = "faxproviders",
    namespaced,
    status = "FaxProviderStatus",
    shortname = "faxprov",
    shortname = "fxp",
    category = "faxbot",
    doc = "A configured fax provider plugin: the plugin id, its non-secret settings and a reference to the \
           Secret holding its credentials. FaxPluginConfigs put providers into slots.",
    printcolumn(name = "Plugin", type_ = "string", json_path = ".spec.plugin", description = "Plugin id"),
    printcolumn(
        name = "Slots",
        type_ = "string",
        json_path = ".status.slots",
        description = "Slots this plugin can fill"
    ),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.plugin != 'external' || has(self.sidecar)").message("plugin external runs as a sidecar container beside the API server: set spec.sidecar (its image and port)").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.plugin == 'external' || !has(self.sidecar)").message("spec.sidecar is only for plugin external (a sidecar plugin); remove it").reason(Reason::FieldValueForbidden))]
pub struct FaxProviderSpec {
    /// Plugin id from the Faxbot plugin registry, for example `test` (the simulated line), `local`
    /// (local-disk storage) or `api_keys` (API-key authentication). Immutable: a different plugin takes
    /// different settings, so create a new FaxProvider instead.
    #[schemars(length(min = 1, max = 40), regex(pattern = r"^[a-z][a-z0-9_-]*$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("plugin is immutable; create a new FaxProvider for a different plugin"))]
    pub plugin: String,

    /// For a plugin defined by an HTTP plugin manifest: the FaxPluginManifest (same namespace) whose
    /// manifest id is `plugin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_ref: Option<ManifestRef>,

    /// Non-secret plugin settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::plugin_settings")]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,

    /// The Secret (in the same namespace) that holds this provider's credentials. The operator copies exactly
    /// the mapped keys into the API server's own Secret; values never appear in ConfigMaps, status or events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,

    /// For plugin `external` (and only for it, which requires it): the sidecar container the operator adds to
    /// the API pods of every FaxPluginConfig using this provider. The operator sets the plugin's `url` setting
    /// to `http://127.0.0.1:<port>` and its `hipaaCompliant` setting to `sidecar.hipaaCompliant` (either
    /// written in settings is overwritten), and hands the sidecar the `pluginToken` credential, when mapped,
    /// as `FAXBOT_PLUGIN_TOKEN` and every other mapped credential as `FAXBOT_CREDENTIAL_<NAME>`, all by
    /// reference to the API server's Secret. A change rolls the pods (as a canary when configured) like any
    /// other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar: Option<SidecarSpec>,
}

fn default_sidecar_port() -> i32 {
    8090
}

/// The sidecar container of an `external` provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSpec {
    /// Container image of the plugin, for example `ghcr.io/acme/faxbot-plugin-acme:1.2.0` (pin a digest in
    /// production). It runs as the API pods' non-root user (UID 10001) with a read-only root filesystem;
    /// `/tmp` is writable.
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^[^\s]+$"))]
    pub image: String,

    /// Image pull policy (see [`PullPolicy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// Port the plugin listens on, on the pod's loopback only (`FAXBOT_PLUGIN_LISTEN=127.0.0.1:<port>`). It
    /// must differ from the API server's port (8080) and from the other sidecars' ports in the same pods.
    #[serde(default = "default_sidecar_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,

    /// Environment of the plugin: literal values only. They are visible to anyone who can read the
    /// Deployment, so never put a credential here: map it in `credentialsSecretRef` instead (the plugin
    /// token, and its provider's keys as `FAXBOT_CREDENTIAL_<NAME>`). Names starting with `FAXBOT_PLUGIN_` or
    /// `FAXBOT_CREDENTIAL_` are the operator's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Vec<SidecarEnvVar>,

    /// CPU and memory requests and limits of the sidecar container. Omitted: requests 50m CPU / 64Mi, no
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Whether this plugin may handle patient data: the administrator vouches that the image's fax provider
    /// signs a Business Associate Agreement and the plugin is fit for PHI. A FaxPluginConfig with
    /// `compliance.hipaa` (the default) accepts an `external` provider only when this is true. The operator
    /// copies it into the plugin's `hipaaCompliant` setting, and the API server then also refuses to send
    /// through a sidecar whose own manifest does not declare `hipaaCompliant` (an image swapped for a
    /// non-compliant one sends nothing).
    #[serde(default)]
    pub hipaa_compliant: bool,
}

/// Image pull policy of a sidecar: Always, IfNotPresent or Never. Omitted: the Kubernetes default (Always for
/// a `:latest` tag, IfNotPresent otherwise).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull the image every time a container starts.
    Always,
    /// Pull only when the node does not have it.
    IfNotPresent,
    /// Never pull: the node must have it.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// One environment variable of a sidecar: a literal value.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SidecarEnvVar {
    /// Variable name. Names starting with `FAXBOT_PLUGIN_` or `FAXBOT_CREDENTIAL_` are set by the operator and
    /// refused here.
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[A-Za-z_][A-Za-z0-9_.-]*$"))]
    #[x_kube(validation = Rule::new("!self.startsWith('FAXBOT_PLUGIN_')").message("names starting with FAXBOT_PLUGIN_ are set by the operator (FAXBOT_PLUGIN_LISTEN, FAXBOT_PLUGIN_TOKEN)"))]
    #[x_kube(validation = Rule::new("!self.startsWith('FAXBOT_CREDENTIAL_')").message("names starting with FAXBOT_CREDENTIAL_ are set by the operator from spec.credentialsSecretRef (map the credential there, never as a literal value)"))]
    pub name: String,
    /// Its value (not a credential: it is visible in the Deployment).
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// A FaxPluginManifest in the FaxProvider's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestRef {
    /// Its name.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
}

/// Where a provider's credentials live.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of a Secret in the FaxProvider's namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,

    /// Which Secret key holds which credential. When omitted, every credential the plugin declares is read
    /// from the Secret key of the same name (for plugin `external`, which declares only `pluginToken`, the
    /// sidecar's own credentials must be listed here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["credential".into()]))]
    pub items: Option<Vec<CredentialItem>>,
}

/// One credential read from one Secret key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialItem {
    /// Credential name the plugin declares in its manifest, for example `adminKey`. For plugin `external`, any
    /// name: `pluginToken` is the token the server and the sidecar share, every other one is handed to the
    /// sidecar as `FAXBOT_CREDENTIAL_<NAME in upper snake case>` (`apiKey` → `FAXBOT_CREDENTIAL_API_KEY`).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-zA-Z][a-zA-Z0-9]*$"))]
    pub credential: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// What the operator observed about a FaxProvider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FaxProviderStatus {
    /// Ready is True when the plugin exists, the settings pass its schema and every required credential
    /// resolves to a non-empty Secret key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// The metadata.generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Version of the plugin the operator validated against (the operator's built-in plugin registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_version: Option<String>,

    /// Slots the plugin can fill (outbound, inbound, storage, auth), comma-separated for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<String>,
}
