//! `FaxProvider`: one configured provider plugin.

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
    /// from the Secret key of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["credential".into()]))]
    pub items: Option<Vec<CredentialItem>>,
}

/// One credential read from one Secret key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialItem {
    /// Credential name the plugin declares in its manifest, for example `adminKey`.
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
