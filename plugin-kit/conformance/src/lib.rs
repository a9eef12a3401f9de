//! `faxbot-plugin-conformance`: the checks every provider plugin passes, whatever it is made of (docs/plugins.md,
//! "The conformance suite").
//!
//! - [`checks`]: the checks, written against the sidecar protocol.
//! - [`targets`]: what can be checked — a sidecar's URL, an HTTP plugin manifest (run by the server's own `http`
//!   plugin against [`simprovider`], or against a provider the author names), or a built-in plugin — each
//!   reached over the protocol.
//! - [`simprovider`]: the simulated REST fax provider manifests are checked against.

pub mod checks;
pub mod simprovider;
pub mod targets;
