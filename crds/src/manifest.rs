//! `FaxPluginManifest`: an HTTP plugin manifest as a resource in the cluster (docs/plugins.md).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A REST fax provider defined by data: a FaxProvider whose `spec.plugin` is the manifest's id names it in
/// `spec.manifestRef`, and the operator copies it into the API server's runtime config, so a change of the
/// manifest is a new revision and rolls out as a canary like any other.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fax.faxbot.io",
    version = "v1alpha1",
    kind = "FaxPluginManifest",
    plural = "faxpluginmanifests",
    namespaced,
    status = "FaxPluginManifestStatus",
    shortname = "fxm",
    category = "faxbot",
    doc = "An HTTP plugin manifest: a REST fax provider described by data (actions, response and status maps, \
           auth, webhook verification, allowed domains). FaxProviders use it through spec.manifestRef.",
    printcolumn(name = "Plugin", type_ = "string", json_path = ".spec.manifest.id", description = "Plugin id"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct FaxPluginManifestSpec {
    /// The manifest (docs/plugins.md). Admission refuses what CEL can see (metadata, loopback and private
    /// domains, unverified webhooks); the operator checks everything else and reports problems in the Ready
    /// condition of the FaxProviders that use it.
    #[schemars(schema_with = "crate::schema::http_manifest")]
    pub manifest: serde_json::Value,
}

/// What the operator observed about a FaxPluginManifest.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FaxPluginManifestStatus {
    /// Ready is True when the manifest passes every check the API server runs (the same code); False with
    /// reason InvalidManifest and the field and reason of each problem otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// The metadata.generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
