//! The Faxbot operator: reconciles `FaxProvider` and `FaxPluginConfig` resources into running API servers.
//!
//! Each reconcile of a FaxPluginConfig is a pipeline, following Stackable's operators:
//! **dereference** (fetch the FaxProviders and Secrets it names, [`reconcile`]) → **validate** (pure,
//! [`validate`]) → **build** (pure functions returning Kubernetes objects, [`build`]) → **apply** (server-side
//! apply with one field manager, then pruning of old revisions) → **status** (pure computation in
//! [`status`], written with server-side apply on the status subresource).
//!
//! Pure steps hold almost all decisions and are unit-tested without a cluster; the I/O edges are thin and
//! are tested end to end against a real kube-apiserver (`tests/e2e/`).
//!
//! Telemetry ([`telemetry`]), metrics ([`metrics`]) and leader election ([`leader`]) are kept apart from the
//! reconciler, as in kube-rs' controller-rs.

pub mod analysis_source;
pub mod apply;
pub mod build;
pub mod canary;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod reconcile;
pub mod redact;
pub mod rollout;
pub mod status;
pub mod telemetry;
pub mod validate;

/// The field manager for every server-side apply. One manager means the operator owns exactly the fields it
/// sets, and a user's `kubectl edit` of a field it does not set survives.
pub const FIELD_MANAGER: &str = "faxbot-operator";

/// Errors at the reconcile boundary. Validation problems are not errors: they become status conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a request.
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be serialised (a bug; the message names the object kind).
    #[error("serialising {0}: {1}")]
    Serialize(&'static str, serde_json::Error),
    /// The object has no namespace (the CRDs are namespaced, so this only happens with a broken API server).
    #[error("object has no namespace")]
    MissingNamespace,
    /// The rollout policy did not parse although validation passed (a bug; names the config).
    #[error("rollout policy of {0} does not parse")]
    InvalidRollout(String),
}

impl Error {
    /// A short, bounded label for the error metric (never an object name or message).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 404 => "not_found",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "transport",
            Error::Serialize(..) => "serialize",
            Error::MissingNamespace => "missing_namespace",
            Error::InvalidRollout(_) => "invalid_rollout",
        }
    }
}
