//! The contract between the Faxbot API server and the operator.
//!
//! The operator renders a [`RuntimeConfig`] document into a ConfigMap and the API server reads the same
//! document from a mounted file. Both sides compile this crate, so the operator cannot write a field the
//! server does not understand, and both validate settings against the same [`PluginManifest`]s.
//!
//! This crate deliberately has no Kubernetes, HTTP or database dependencies: the API server runs
//! unchanged outside a cluster.
//!
//! Layout:
//! - [`runtime_config`]: the versioned config document (provider slots, feature flags) and its revision hash.
//! - [`plugins`]: plugin manifests, built-in plugins and their typed settings (JSON Schema via schemars).
//! - [`validate`]: validation of a document against the manifests, including the PHI and credential guard.

pub mod endpoint;
pub mod manifest;
pub mod phi;
pub mod plugins;
pub mod runtime_config;
pub mod sidecar;
pub mod validate;

pub use plugins::{Capability, Category, CredentialSpec, PluginManifest, builtin_manifests, check_settings, manifest};
pub use runtime_config::{CONFIG_VERSION, FeatureFlags, ProviderSlots, RuntimeConfig, SlotBinding};
pub use validate::{ConfigError, ConfigIssue};
