//! The runtime configuration document (`version`, provider slots, feature flags).
//!
//! It is the successor of the v3 design's JSON config store: in Kubernetes the operator renders it into an
//! immutable ConfigMap per revision; outside Kubernetes it is a file the server watches. Secrets never appear
//! here (see [`crate::validate`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The only document version this build understands. A newer operator writing version 2 must be refused
/// loudly by an older server instead of being half-understood.
pub const CONFIG_VERSION: u32 = 1;

/// The whole runtime configuration of one API server.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// Document format version; must equal [`CONFIG_VERSION`].
    pub version: u32,
    /// Which plugin fills which slot.
    #[serde(default)]
    pub providers: ProviderSlots,
    /// Feature flags of the v3 plan.
    #[serde(default)]
    pub features: FeatureFlags,
    /// Providers defined by HTTP plugin manifests ([`crate::manifest`]), usable in the outbound slots by
    /// their id. In Kubernetes the operator copies the FaxPluginManifests the FaxProviders reference into
    /// the document, so a manifest change is a new revision and rolls out as a canary like any other.
    // Left out of the document while empty, so that adding the field did not change the revision of every
    // existing configuration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<crate::manifest::HttpManifest>,
    /// Manifests on offer but not in use: the entries of a registry index ([`crate::manifest::registry`]),
    /// listed by `GET /plugin-registry` with their publisher and never bound to a slot (installing one means
    /// adding it to `manifests`). Checked like `manifests`, and admitted by the same signature rule. In
    /// Kubernetes the operator copies them from the ConfigMap named by `registryIndexRef`.
    // Left out while empty, as `manifests` is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalog: Vec<crate::manifest::HttpManifest>,
}

/// The four plugin slots. A missing slot means "use the built-in default" (the simulated line for
/// outbound, local disk for storage, API keys for auth, no inbound).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderSlots {
    /// The provider that sends faxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<SlotBinding>,
    /// Further outbound providers, in order: a job whose provider fails with a provider-side error (refused
    /// credentials, rate limit or outage after its retries) moves to the next one. Each plugin may appear
    /// once in the whole outbound chain; its credentials are the files `failover<N>.<name>` (N from 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound_failover: Vec<SlotBinding>,
    /// The provider that receives faxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<SlotBinding>,
    /// Where documents are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<SlotBinding>,
    /// How API callers authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SlotBinding>,
}

/// One slot assignment: a plugin id, whether it is on, and its non-secret settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SlotBinding {
    /// Plugin id from the registry, for example `test` or `local`.
    pub plugin: String,
    /// A disabled outbound slot accepts jobs but never dispatches them (the reference's `FAX_DISABLED`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Plugin settings, validated against the plugin manifest's schema.
    #[serde(default = "empty_object")]
    pub settings: serde_json::Value,
}

impl SlotBinding {
    /// A binding with default settings, used when the environment names a plugin.
    pub fn new(plugin: impl Into<String>) -> Self {
        SlotBinding { plugin: plugin.into(), enabled: true, settings: empty_object() }
    }
}

fn default_true() -> bool {
    true
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// Feature flags of the original v3 plan. All default to off so that an upgrade changes nothing until a
/// platform team opts in.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FeatureFlags {
    /// Serve the v3 plugin management API (`/plugins`).
    #[serde(default)]
    pub v3_plugins: bool,
    /// Allow installing plugins at runtime.
    #[serde(default)]
    pub plugin_install: bool,
    /// Serve the plugin registry listing (`/plugin-registry`).
    #[serde(default)]
    pub plugin_registry: bool,
    /// Force every outbound job onto the simulated line, whatever the outbound slot says.
    #[serde(default)]
    pub sandbox_mode: bool,
    /// Audit every authenticated request, not only state changes and rejections.
    #[serde(default)]
    pub audit_all: bool,
    /// Serve MCP for AI assistants at `/mcp` (tools for sending and reading faxes, with the API keys' scopes).
    // Left out of the document while off, so that adding the flag did not change the revision (and so roll
    // out) every existing configuration.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mcp: bool,
    /// Serve the admin console, a web page for the people who run the service, at `/admin/ui/`.
    // Left out of the document while off, as `mcp` is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin_console: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            version: CONFIG_VERSION,
            providers: ProviderSlots::default(),
            features: FeatureFlags::default(),
            manifests: Vec::new(),
            catalog: Vec::new(),
        }
    }
}

impl RuntimeConfig {
    /// A short content hash of the document. It labels metrics and logs so that a canary can compare
    /// two revisions, and it is stable: JSON object keys are serialised in sorted order.
    pub fn revision(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&canonical);
        hex::encode(&digest[..6])
    }

    /// The JSON Schema of the document, for tools that validate it before it reaches a server.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(RuntimeConfig)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_ignores_key_order_but_not_content() {
        let a: RuntimeConfig = serde_json::from_str(
            r#"{"version":1,"providers":{"outbound":{"plugin":"test","settings":{"a":1,"b":2}}}}"#,
        )
        .unwrap();
        let b: RuntimeConfig = serde_json::from_str(
            r#"{"providers":{"outbound":{"settings":{"b":2,"a":1},"plugin":"test"}},"version":1}"#,
        )
        .unwrap();
        assert_eq!(a.revision(), b.revision());
        let mut c = a.clone();
        c.features.audit_all = true;
        assert_ne!(a.revision(), c.revision());
        assert_eq!(a.revision().len(), 12);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<RuntimeConfig>(r#"{"version":1,"feature":{}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `feature`"), "{err}");
    }
}
