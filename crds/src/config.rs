//! `FaxPluginConfig`: one managed API server deployment and which providers fill its slots.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// One managed Faxbot API server: its workload, slot assignments, feature flags and rollout policy.
// The derive takes one `printcolumn(...)` per column; clippy mistakes the repeated keys for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fax.faxbot.io",
    version = "v1alpha1",
    kind = "FaxPluginConfig",
    plural = "faxpluginconfigs",
    namespaced,
    status = "FaxPluginConfigStatus",
    shortname = "faxcfg",
    shortname = "fxc",
    category = "faxbot",
    validation = Rule::new("size(self.metadata.name) <= 40").message("FaxPluginConfig names are limited to 40 characters (owned object names append a suffix)"),
    doc = "A managed Faxbot API server: image and replicas, which FaxProvider fills which slot (outbound, \
           inbound, storage, auth), feature flags and the rollout policy for config changes.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Display summary; read the conditions for automation"
    ),
    printcolumn(
        name = "Revision",
        type_ = "string",
        json_path = ".status.currentRevision",
        description = "Config revision serving traffic"
    ),
    printcolumn(
        name = "Canary",
        type_ = "integer",
        json_path = ".status.canaryWeight",
        description = "Actual share of pods on the canary revision, in percent"
    ),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    // The scale subresource lets a HorizontalPodAutoscaler (or `kubectl scale`) set the number of API pods
    // on the config itself. Pointed at the Deployment instead, it would fight the operator, which applies
    // `replicas` there on every reconcile and splits them between stable and canary.
    scale(
        spec_replicas_path = ".spec.apiServer.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FaxPluginConfigSpec {
    /// The API server workload the operator runs for this config.
    pub api_server: ApiServerSpec,

    /// Which FaxProvider (by name, same namespace) fills which slot.
    pub slots: SlotsSpec,

    /// Feature flags of the v3 plugin plan. All default to off.
    #[serde(default)]
    pub features: FeatureFlagsSpec,

    /// How a change (new config revision) reaches the running pods.
    #[serde(default)]
    pub rollout: RolloutSpec,

    /// Compliance rules the operator enforces before a revision rolls out.
    #[serde(default)]
    pub compliance: ComplianceSpec,

    /// The trusted publisher keys of HTTP plugin manifests: a Secret key (same namespace) holding a JSON
    /// object of key id → base64 Ed25519 public key. The operator copies it into each revision's credentials
    /// (`registry.publisherKeys`, so a key change rolls out as a new revision) and refuses a manifest that
    /// none of them verifies (reason `UntrustedManifest`) unless `features.pluginInstall` is on. Omitted: no
    /// key is trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher_keys_secret_ref: Option<PublisherKeysSecretRef>,

    /// A plugin registry index: a ConfigMap key (same namespace) holding a publisher's index document
    /// (`{"version": 1, "entries": [manifest, …]}`, at most 256 KiB and 64 entries). The operator checks every
    /// entry as it checks a FaxPluginManifest, and its signature with the publisher keys (unsigned or wrongly
    /// signed entries only with `features.pluginInstall`), and copies the entries into the runtime config's
    /// `catalog`: `GET /plugin-registry` lists them with their publisher, not installed. An index change is a
    /// new revision. A bad index or entry refuses the config (reasons `RegistryIndexMissing`,
    /// `InvalidRegistryIndex`, `UntrustedManifest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_index_ref: Option<RegistryIndexRef>,

    /// How many old config revisions (their runtime-config ConfigMaps) to keep for rollback, besides the one
    /// serving. Credentials Secrets are not kept: each goes once no pod runs its revision.
    #[serde(default = "default_history")]
    #[schemars(range(min = 1, max = 20))]
    pub revision_history_limit: i32,
}

fn default_history() -> i32 {
    5
}

/// Compliance rules.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceSpec {
    /// The config handles PHI: every plugin in a slot must declare HIPAA capability (a BAA exists, or
    /// nothing leaves the cluster). A plugin that does not is refused before it rolls out (reason
    /// `NotHipaaCapable`). Set to `false` only for a config that never sees patient data.
    #[serde(default = "default_true")]
    pub hipaa: bool,
}

impl Default for ComplianceSpec {
    fn default() -> Self {
        ComplianceSpec { hipaa: true }
    }
}

fn default_true() -> bool {
    true
}

/// The API server workload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.replicas <= 1 || has(self.database)").message("more than one replica needs a shared database: set apiServer.database.urlSecretRef (SQLite lives on one pod's volume)").reason(Reason::FieldValueForbidden))]
pub struct ApiServerSpec {
    /// Container image of the faxbot-api server, for example `ghcr.io/faxbot/faxbot-api:0.1.0` (pin a digest in
    /// production).
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^[^\s]+$"))]
    pub image: String,

    /// Image pull policy: Always, IfNotPresent or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(Always|IfNotPresent|Never)$"))]
    pub image_pull_policy: Option<String>,

    /// Number of API server pods. More than one needs a shared database. This is the config's scale
    /// subresource: a HorizontalPodAutoscaler targeting the FaxPluginConfig sets it (leave it out of Git
    /// then, or tell your GitOps tool to ignore it). Changing it is not a new revision: no canary.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    /// CPU and memory requests and limits of the API container. Defaults: requests 100m CPU / 128Mi,
    /// limit 512Mi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Shared database. Omitted: SQLite on the data volume (one replica only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,

    /// Volume for the SQLite database and locally stored documents. Omitted: an emptyDir, which loses data
    /// when the pod goes; use a PersistentVolumeClaim in production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_volume: Option<StorageVolumeSpec>,

    /// ServiceAccount the API pods run as, so cloud workload identity (EKS IRSA or Pod Identity, GKE
    /// Workload Identity) can grant them the S3 bucket and KMS key without an access key in a Secret.
    /// Omitted: the namespace's `default`. The Kubernetes API token is still not mounted (the pods never
    /// call the Kubernetes API; identity webhooks project their own token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub service_account_name: Option<String>,

    /// CA certificates (PEM) the API server trusts for its outbound HTTPS calls (providers, S3, document URLs)
    /// instead of the image's bundle: a key of a ConfigMap in the same namespace, for example the one a
    /// trust-manager Bundle writes with the public roots and your private CA. Its content is copied into each
    /// revision, so a change rolls out (as a canary) like any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_bundle: Option<ConfigMapKeyRef>,

    /// Proxies in front of the API server (your ingress controller's pods or load balancer), as CIDRs such as
    /// `198.18.0.0/24`: their `X-Forwarded-For` names the client whose failed API key attempts are limited
    /// (`FAXBOT_TRUSTED_PROXIES`). Omitted: the peer address is the client, so behind a proxy every client
    /// shares the proxy's limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub trusted_proxies: Vec<String>,

    /// The audit trail also goes to this file in the pod (`AUDIT_LOG_FILE`), one JSON line per event, besides
    /// the log stream: for a log pipeline that cannot be trusted with the audit trail, or a sidecar that
    /// ships it elsewhere. An absolute path on a writable volume: under `/var/lib/faxbot` (the data volume)
    /// or on a volume mounted below it. Events that cannot be written are counted
    /// (`faxbot_audit_write_failures_total`), and a canary that loses any is rolled back
    /// (`AuditWriteFailures`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1024), regex(pattern = r"^(/[A-Za-z0-9_][-A-Za-z0-9._]*)+$"))]
    pub audit_log_file: Option<String>,

    /// Node labels the API pods must run on (pod `nodeSelector`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Pod affinity and anti-affinity of the API pods (for example spreading them over zones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Taints the API pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub tolerations: Vec<Toleration>,

    /// How the API pods spread over topology domains (zones, nodes). Canary pods carry the same selector
    /// labels, so constraints on those labels spread stable and canary pods together.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,

    /// Extra annotations on the API pods (service mesh, log shipping). The operator's own `fax.faxbot.io/*`
    /// annotations win over a key of the same name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,

    /// Secrets (type `kubernetes.io/dockerconfigjson`, same namespace) to pull the image with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// PriorityClass of the API pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,

    /// A PodDisruptionBudget over the API pods (stable and canary), so a node drain cannot take more of them
    /// at once than this allows. Omitted: none (a single replica could never be drained with one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<DisruptionBudgetSpec>,
}

/// How many API pods a voluntary disruption (a drain) may take at once.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudgetSpec {
    /// At most this many API pods unavailable at once (default 1).
    #[serde(default = "default_max_unavailable")]
    #[schemars(range(min = 1, max = 100))]
    pub max_unavailable: i32,
}

fn default_max_unavailable() -> i32 {
    1
}

/// One key of a ConfigMap in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// ConfigMap name.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Key in the ConfigMap's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_replicas() -> i32 {
    1
}

/// A shared database for the API server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// The Secret key holding the `postgres://` URL (it carries a password, so it is never a plain field).
    pub url_secret_ref: SecretKeyRef,
}

/// One key of a Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// The Secret key holding the trusted publisher keys.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PublisherKeysSecretRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Key in the Secret's data (default `publisherKeys`).
    #[serde(default = "default_publisher_keys_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_publisher_keys_key() -> String {
    "publisherKeys".into()
}

/// The ConfigMap key holding a plugin registry index.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegistryIndexRef {
    /// ConfigMap name.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Key in the ConfigMap's data (default `index.json`).
    #[serde(default = "default_registry_index_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_registry_index_key() -> String {
    "index.json".into()
}

/// Where the API server keeps its data directory.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageVolumeSpec {
    /// Name of an existing PersistentVolumeClaim in the same namespace, mounted at the data directory.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub persistent_volume_claim_name: String,
}

/// Slot assignments by FaxProvider name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SlotsSpec {
    /// Providers that send faxes, in priority order: the first sends, and a job moves to the next when its
    /// provider fails with an error of its own (refused credentials, rate limit, outage).
    #[schemars(length(min = 1, max = 5), inner(length(min = 1, max = 253)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub outbound: Vec<String>,

    /// Provider that receives faxes. Omitted: no inbound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub inbound: Option<String>,

    /// Provider that stores documents. Omitted: local storage on the data volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage: Option<String>,

    /// Provider that authenticates API callers (required: a cluster never runs the API unauthenticated).
    #[schemars(length(min = 1, max = 253))]
    pub auth: String,
}

/// Feature flags of the original v3 plan: the runtime config's own type, so a new flag is one field in
/// `faxbot_contract::FeatureFlags` (its doc comment becomes the CRD's description) and nothing here.
pub type FeatureFlagsSpec = faxbot_contract::FeatureFlags;

/// How a change reaches the pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.strategy != 'Canary' || size(self.steps) > 0").message("a Canary rollout needs at least one step"))]
pub struct RolloutSpec {
    /// Immediate replaces every pod with the new revision (a normal Deployment rolling update); Canary moves a
    /// share of pods to it step by step under analysis.
    #[serde(default)]
    pub strategy: RolloutStrategy,

    /// Canary steps in order; weights are the share of pods on the new revision, in percent.
    #[serde(default)]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub steps: Vec<RolloutStep>,

    /// How each canary step is judged.
    #[serde(default)]
    pub analysis: AnalysisSpec,

    /// Hold the rollout at its current step (settable from Git). A standing gate: a new revision arriving
    /// while it is set is held at its first step.
    #[serde(default)]
    pub paused: bool,

    /// Skip the remaining steps and promote the canary. Applies to the revision in flight when it is first
    /// seen (or to the change committed with it), not to later revisions; set it back to `false` afterwards.
    #[serde(default)]
    pub promote: bool,

    /// Abort the canary and put every pod back on the stable revision. Applies to the revision in flight
    /// when it is first seen (or to the change committed with it); a fix pushed while it is still `true`
    /// gets its own canary. Set it back to `false` afterwards.
    #[serde(default)]
    pub abort: bool,

    /// Retry a rolled-back revision: any new value (a date, a ticket number) runs the revision the spec
    /// renders now through a fresh canary once, even though it is in `status.rollout.failedRevisions` (for
    /// example after the provider outage that failed it is over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub retry: Option<String>,

    /// A change that only flips feature flags (same image, pod settings, providers and credentials) skips
    /// the canary and applies at once: the v3 plan's "instant disable" of a misbehaving feature.
    #[serde(default)]
    pub urgent_feature_flags: bool,

    /// Where promotions and rollbacks are announced besides Kubernetes Events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationsSpec>,
}

/// Announcements of rollout outcomes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsSpec {
    /// A JSON POST to this receiver on every promotion and rollback (see docs/rollout.md for the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSinkSpec>,
}

/// A webhook receiver.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSinkSpec {
    /// The receiver's URL: `https` (plain `http` only to a loopback host), no credentials in it, never a
    /// link-local or metadata address.
    #[schemars(length(min = 8, max = 2048))]
    pub url: String,
    /// A Secret key (same namespace) whose value signs each body: header `X-Faxbot-Signature:
    /// sha256=<hex HMAC-SHA256 of the body>`. Omitted: unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_ref: Option<SecretKeyRef>,
}

/// Rollout strategy.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RolloutStrategy {
    /// Replace all pods at once with a rolling update.
    #[default]
    Immediate,
    /// Staged canary with automatic rollback.
    Canary,
}

/// One canary step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStep {
    /// Share of pods on the new revision, 1 to 100 percent.
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
    /// How long to hold this step before the next, as a duration such as `30s`, `5m` or `1h`. Omitted: wait
    /// for `promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub pause: Option<String>,
}

/// Canary analysis thresholds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// Time between checks, as a duration such as `30s`.
    #[serde(default = "default_interval")]
    #[schemars(length(max = 32), regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub interval: String,
    /// Metric window each check looks back over.
    #[serde(default = "default_window")]
    #[schemars(length(max = 32), regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub window: String,
    /// Highest tolerated canary error rate, in percent (5xx responses plus failed provider submissions). A
    /// check fails when the canary's rate is above it with 95 % confidence (the Wilson interval's lower
    /// bound), so one transient failure among a few dozen faxes does not roll a revision back; 0 fails on
    /// any error.
    #[serde(default = "default_error_rate")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub max_error_rate_percent: f64,
    /// Highest tolerated canary latency increase over stable at `latencyPercentile`, in percent.
    #[serde(default = "default_latency_increase")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_latency_increase_percent: i32,
    /// Smallest latency increase over stable, in milliseconds at `latencyPercentile`, that can fail a check:
    /// below it no percentage counts. Fast paths are a few milliseconds, where the histogram's buckets and a
    /// new pod's first TLS handshakes to the provider alone make a healthy canary several times "slower".
    #[serde(default = "default_min_latency_increase")]
    #[schemars(range(min = 0, max = 600000))]
    pub min_latency_increase_ms: i32,
    /// Percentile compared between canary and stable.
    #[serde(default)]
    pub latency_percentile: LatencyPercentile,
    /// Requests a side needs in the window before a check counts.
    #[serde(default = "default_min_samples")]
    #[schemars(range(min = 1, max = 1000000))]
    pub min_samples: i32,
    /// Failed checks tolerated before the canary is rolled back.
    #[serde(default = "default_failed_checks")]
    #[schemars(range(min = 1, max = 100))]
    pub max_failed_checks: i32,
    /// Consecutive checks without enough samples before the canary is rolled back.
    #[serde(default = "default_no_data")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_no_data_checks: i32,
    /// A canary that has not finished by then is rolled back.
    #[serde(default = "default_deadline")]
    #[schemars(length(max = 32), regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub progress_deadline: String,
    /// Read the numbers from a Prometheus that scrapes the API pods, instead of scraping the pods directly
    /// (for clusters where the operator cannot reach the pods: a NetworkPolicy, strict mTLS). The same
    /// thresholds judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusAnalysisSpec>,
}

/// Canary analysis through Prometheus' HTTP API: one instant query per metric, each returning a vector with
/// a `revision` label (and `le` for histogram buckets). Placeholders: `{{selector}}` (the label matchers of
/// this config's API pods), `{{window}}` (the analysis window as a PromQL duration), and in `selector`
/// `{{namespace}}` and `{{config}}`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusAnalysisSpec {
    /// Base URL of the Prometheus HTTP API, such as `http://prometheus-operated.monitoring:9090`.
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s@]+$"))]
    pub address: String,
    /// Label matchers of this config's API pods' series. Default:
    /// `namespace="{{namespace}}",app_kubernetes_io_name="faxbot-api",app_kubernetes_io_instance="{{config}}"`
    /// (the labels of the usual `kubernetes_sd_configs` pod discovery with `labelmap` of the pod labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub selector: Option<String>,
    /// Replacements for the default query of any metric.
    #[serde(default)]
    pub queries: PrometheusQueriesSpec,
}

/// PromQL templates, one per metric the analysis reads; omitted ones keep their defaults (see
/// docs/rollout.md).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusQueriesSpec {
    /// HTTP requests except probes and scrapes, by `revision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub requests: Option<String>,
    /// Of those, 5xx answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub server_errors: Option<String>,
    /// Provider submissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub submissions: Option<String>,
    /// Of those, failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub failed_submissions: Option<String>,
    /// HTTP latency histogram buckets, by `revision` and `le`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub latency_buckets: Option<String>,
    /// Provider submission latency buckets, by `revision` and `le`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub submit_latency_buckets: Option<String>,
    /// PHI-guard catches in log lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub phi_guard_hits: Option<String>,
    /// Audit events not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub audit_write_failures: Option<String>,
}

fn default_interval() -> String {
    "30s".into()
}
fn default_window() -> String {
    "1m".into()
}
fn default_error_rate() -> f64 {
    1.0
}
fn default_latency_increase() -> i32 {
    20
}
fn default_min_latency_increase() -> i32 {
    50
}
fn default_min_samples() -> i32 {
    50
}
fn default_failed_checks() -> i32 {
    2
}
fn default_no_data() -> i32 {
    5
}
fn default_deadline() -> String {
    "30m".into()
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        AnalysisSpec {
            interval: default_interval(),
            window: default_window(),
            max_error_rate_percent: default_error_rate(),
            max_latency_increase_percent: default_latency_increase(),
            min_latency_increase_ms: default_min_latency_increase(),
            latency_percentile: LatencyPercentile::default(),
            min_samples: default_min_samples(),
            max_failed_checks: default_failed_checks(),
            max_no_data_checks: default_no_data(),
            progress_deadline: default_deadline(),
            prometheus: None,
        }
    }
}

/// Latency percentile for the canary comparison.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LatencyPercentile {
    /// Median.
    #[serde(rename = "p50")]
    P50,
    /// 90th percentile.
    #[serde(rename = "p90")]
    P90,
    /// 95th percentile.
    #[default]
    #[serde(rename = "p95")]
    P95,
    /// 99th percentile.
    #[serde(rename = "p99")]
    P99,
}

/// What the operator observed and did.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FaxPluginConfigStatus {
    /// Ready (the current spec is serving), Progressing (a rollout is under way) and Degraded (the spec
    /// cannot be applied or a rollout failed; the previous revision keeps serving), plus the pair that
    /// kstatus (Flux, `kubectl wait` scripts, cli-utils) reads: Reconciling (the operator is still moving
    /// toward the spec) and Stalled (it cannot get there without a change: rolled back, or invalid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// The metadata.generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Display summary of the conditions: Ready, Progressing, Degraded or Invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,

    /// The revision (content hash of image, runtime config and credentials) the Deployment runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,

    /// The revision every API pod runs and serves, set only when no other revision runs beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_revision: Option<String>,

    /// The revision the spec renders now (absent while the spec is invalid). Once it equals
    /// `observedRevision` and `Ready` is `True`, the change is live everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_revision: Option<String>,

    /// The resourceVersion of each referenced Secret (by name) this status was computed from. The generation
    /// does not move when a Secret changes, so `kubectl wait --for=condition=Ready` right after a rotation
    /// could return on the Ready of the old revision; wait for the new Secret's resourceVersion here first.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub secret_versions: std::collections::BTreeMap<String, String>,

    /// Name of the immutable ConfigMap holding the current revision's runtime config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_name: Option<String>,

    /// Actual share of pods on a canary revision, in percent (0 when no canary runs).
    #[serde(default)]
    pub canary_weight: i32,

    /// API pods that are ready, stable and canary together.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Pods the API Deployments want, stable and canary together (the scale subresource's status).
    #[serde(default)]
    pub replicas: i32,

    /// Label selector of every API pod of this config, stable and canary (the scale subresource's
    /// selector: an autoscaler averages its metrics over these pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// The canary rollout (strategy Canary): where it is, what it measured, and which revisions failed.
    /// Kept here, not in the operator's memory, so a restarted operator resumes at the same step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
}

/// State and measurements of a canary rollout.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Stable, Progressing, Paused or RolledBack.
    pub phase: String,
    /// Revision the stable pods run.
    pub stable_revision: String,
    /// Revision under test, if a canary runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// Index of the current step in spec.rollout.steps.
    #[serde(default)]
    pub current_step: i32,
    /// Weight the current step asks for, in percent.
    #[serde(default)]
    pub requested_weight: i32,
    /// Weight the ready pods actually give (canary ready ÷ all ready), in percent.
    #[serde(default)]
    pub actual_weight: f64,
    /// Stable pods wanted for the step.
    #[serde(default)]
    pub stable_replicas: i32,
    /// Canary pods wanted for the step.
    #[serde(default)]
    pub canary_replicas: i32,
    /// When the canary started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the current step's pods became ready; the step's pause counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<String>,
    /// Last progress (start, step reached, or held on purpose); the progress deadline counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_at: Option<String>,
    /// Failed checks of the current canary.
    #[serde(default)]
    pub failed_checks: i32,
    /// Consecutive checks without enough samples.
    #[serde(default)]
    pub no_data_checks: i32,
    /// The last analysis check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<AnalysisResult>,
    /// Revisions that were rolled back and are not retried (newest last); a newer revision starts afresh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_revisions: Vec<String>,
    /// Why the last canary was rolled back, with the measured values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rollback: Option<String>,
    /// The revision `spec.rollout.abort: true` was first seen with (the only one it aborts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_for: Option<String>,
    /// The revision `spec.rollout.promote: true` was first seen with (the only one it promotes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_for: Option<String>,
    /// The `spec.rollout.retry` value last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_observed: Option<String>,
}

/// One analysis check: canary against stable over the same window.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisResult {
    /// When it ran (RFC 3339).
    pub time: String,
    /// Pass, Fail or NoData.
    pub verdict: String,
    /// Canary error rate in percent (5xx answers and failed provider submissions).
    pub canary_error_rate_percent: f64,
    /// Stable error rate in percent.
    pub stable_error_rate_percent: f64,
    /// Canary HTTP latency at the percentile, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_latency_ms: Option<f64>,
    /// Stable HTTP latency at the percentile, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_latency_ms: Option<f64>,
    /// Canary provider-submission latency at the percentile, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_submit_latency_ms: Option<f64>,
    /// Stable provider-submission latency at the percentile, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_submit_latency_ms: Option<f64>,
    /// The worse of the canary ÷ stable latency ratios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ratio: Option<f64>,
    /// Canary requests and submissions in the window.
    pub canary_samples: i64,
    /// Stable requests and submissions in the window.
    pub stable_samples: i64,
}
