//! Validation of a runtime-config document against the plugin manifests.
//!
//! Every problem is reported with a JSON path and a precise message, all at once, so a platform team fixes a
//! bad document in one round trip. The guard also refuses settings keys that look like PHI or credentials:
//! the document ends up in a ConfigMap, which is neither encrypted nor access-controlled like a Secret.

use crate::manifest::check::{self, Policy};
use crate::plugins::{self, Category, PluginManifest};
use crate::runtime_config::{CONFIG_VERSION, RuntimeConfig, SlotBinding};

/// One problem in a config document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// JSON path of the offending value, for example `providers.outbound.settings.failSuffix`.
    pub path: String,
    /// What is wrong and, where useful, what to do instead.
    pub message: String,
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Why a config document was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Not valid JSON, or not the document's shape.
    #[error("config document is malformed at `{path}`: {message}")]
    Malformed {
        /// Where parsing stopped.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// Well-formed but invalid.
    #[error("config document is invalid: {}", join(.0))]
    Invalid(Vec<ConfigIssue>),
}

fn join(issues: &[ConfigIssue]) -> String {
    issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Key fragments that mark PHI. Compared against keys lower-cased with non-alphanumerics removed.
const PHI_KEYS: &[&str] = &[
    "phone",
    "phonenumber",
    "to",
    "tonumber",
    "from",
    "fromnumber",
    "fr",
    "recipient",
    "sender",
    "patient",
    "patientname",
    "ssn",
    "dob",
    "dateofbirth",
    "mrn",
    "medicalrecordnumber",
    "diagnosis",
    "email",
];
/// Key fragments that mark credentials; matched as substrings.
const CREDENTIAL_FRAGMENTS: &[&str] =
    &["password", "passwd", "secret", "token", "apikey", "privatekey", "credential", "pepper"];

/// Parses and validates a document from its bytes.
pub fn parse_and_validate(bytes: &[u8]) -> Result<RuntimeConfig, ConfigError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let config: RuntimeConfig = serde_path_to_error::deserialize(de)
        .map_err(|e| ConfigError::Malformed { path: e.path().to_string(), message: e.inner().to_string() })?;
    validate(&config).map_err(ConfigError::Invalid)?;
    Ok(config)
}

/// Validates a parsed document; returns every problem found.
pub fn validate(config: &RuntimeConfig) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    if config.version != CONFIG_VERSION {
        issues.push(ConfigIssue {
            path: "version".into(),
            message: format!(
                "unsupported version {}; this server understands version {CONFIG_VERSION}",
                config.version
            ),
        });
    }
    let slots = [
        (Category::Outbound, &config.providers.outbound),
        (Category::Inbound, &config.providers.inbound),
        (Category::Storage, &config.providers.storage),
        (Category::Auth, &config.providers.auth),
    ];
    for (category, binding) in slots {
        if let Some(binding) = binding {
            check_slot(config, category, binding, &format!("providers.{}", category.as_str()), &mut issues);
        }
    }
    if !config.providers.outbound_failover.is_empty() && config.providers.outbound.is_none() {
        issues.push(ConfigIssue {
            path: "providers.outboundFailover".into(),
            message: "failover providers need a primary: set providers.outbound".into(),
        });
    }
    let mut seen: Vec<&str> = config.providers.outbound.iter().map(|b| b.plugin.as_str()).collect();
    for (i, binding) in config.providers.outbound_failover.iter().enumerate() {
        let base = format!("providers.outboundFailover[{i}]");
        check_slot(config, Category::Outbound, binding, &base, &mut issues);
        if seen.contains(&binding.plugin.as_str()) {
            issues.push(ConfigIssue {
                path: format!("{base}.plugin"),
                message: format!(
                    "plugin `{}` appears twice in the outbound chain; jobs record the plugin that sent them, so \
                     each plugin may appear once",
                    binding.plugin
                ),
            });
        }
        seen.push(&binding.plugin);
    }
    if config.providers.outbound_failover.len() > 4 {
        issues.push(ConfigIssue {
            path: "providers.outboundFailover".into(),
            message: "at most 4 failover providers".into(),
        });
    }
    let policy = Policy::from_env();
    check_manifests(&config.manifests, "manifests", "defined", policy, &mut issues);
    if config.catalog.len() > crate::manifest::registry::MAX_INDEX_ENTRIES {
        issues.push(ConfigIssue {
            path: "catalog".into(),
            message: format!("at most {} entries", crate::manifest::registry::MAX_INDEX_ENTRIES),
        });
    }
    check_manifests(&config.catalog, "catalog", "listed", policy, &mut issues);
    if issues.is_empty() { Ok(()) } else { Err(issues) }
}

/// The manifest rules for every manifest of `list` (the document's field `field`), and no id twice.
fn check_manifests(
    list: &[crate::manifest::HttpManifest],
    field: &str,
    twice: &str,
    policy: Policy,
    issues: &mut Vec<ConfigIssue>,
) {
    for (i, manifest) in list.iter().enumerate() {
        for (path, message) in check::check(manifest, policy) {
            issues.push(ConfigIssue { path: format!("{field}[{i}].{path}"), message });
        }
        if list[..i].iter().any(|m| m.id == manifest.id) {
            issues.push(ConfigIssue {
                path: format!("{field}[{i}].id"),
                message: format!("manifest `{}` is {twice} twice", manifest.id),
            });
        }
    }
}

/// Every plugin a document can bind: the built-in ones, then the ones its manifests define.
pub fn all_manifests(config: &RuntimeConfig) -> Vec<PluginManifest> {
    plugins::builtin_manifests().into_iter().chain(config.manifests.iter().map(|m| m.plugin_manifest())).collect()
}

/// The manifest of plugin `id`: a built-in one, or one the document defines.
pub fn plugin_manifest(config: &RuntimeConfig, id: &str) -> Option<PluginManifest> {
    plugins::manifest(id).or_else(|| config.manifests.iter().find(|m| m.id == id).map(|m| m.plugin_manifest()))
}

fn check_slot(
    config: &RuntimeConfig,
    category: Category,
    binding: &SlotBinding,
    base: &str,
    issues: &mut Vec<ConfigIssue>,
) {
    let Some(manifest) = plugin_manifest(config, &binding.plugin) else {
        let known: Vec<String> = plugins::builtin_manifests()
            .into_iter()
            .chain(config.manifests.iter().map(|m| m.plugin_manifest()))
            .filter(|m| m.fills(category))
            .map(|m| m.id)
            .collect();
        issues.push(ConfigIssue {
            path: format!("{base}.plugin"),
            message: format!(
                "unknown plugin `{}`; plugins available for the {} slot: {}",
                binding.plugin,
                category.as_str(),
                known.join(", ")
            ),
        });
        return;
    };
    if !manifest.fills(category) {
        issues.push(ConfigIssue {
            path: format!("{base}.plugin"),
            message: format!("plugin `{}` cannot fill the {} slot", manifest.id, category.as_str()),
        });
        return;
    }
    let settings_path = format!("{base}.settings");
    if !binding.settings.is_object() {
        issues.push(ConfigIssue { path: settings_path, message: "must be a JSON object".into() });
        return;
    }
    let before = issues.len();
    guard_keys(&binding.settings, &settings_path, issues);
    if issues.len() > before {
        return;
    }
    let checked = match config.manifests.iter().find(|m| m.id == manifest.id) {
        Some(http) => http.check_settings(&binding.settings),
        None => plugins::check_settings(&manifest.id, &binding.settings),
    };
    if let Err(problems) = checked {
        for (path, message) in problems {
            let path = if path.is_empty() { settings_path.clone() } else { format!("{settings_path}.{path}") };
            issues.push(ConfigIssue { path, message });
        }
    }
}

fn guard_keys(value: &serde_json::Value, path: &str, issues: &mut Vec<ConfigIssue>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                let norm: String =
                    key.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase();
                if PHI_KEYS.contains(&norm.as_str()) {
                    issues.push(ConfigIssue {
                        path: child_path,
                        message: "looks like PHI (a phone number, name or patient identifier); the config document \
                                  is stored in plain ConfigMaps and must not hold PHI"
                            .into(),
                    });
                } else if CREDENTIAL_FRAGMENTS.iter().any(|f| norm.contains(f)) {
                    issues.push(ConfigIssue {
                        path: child_path,
                        message: "looks like a credential; credentials belong in a Kubernetes Secret or a mounted \
                                  file, never in the config document"
                            .into(),
                    });
                } else {
                    guard_keys(child, &child_path, issues);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                guard_keys(child, &format!("{path}[{i}]"), issues);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(doc: &str) -> Vec<ConfigIssue> {
        match parse_and_validate(doc.as_bytes()) {
            Err(ConfigError::Invalid(issues)) => issues,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_minimal_document_is_valid() {
        let cfg = parse_and_validate(br#"{"version":1}"#).unwrap();
        assert_eq!(cfg, RuntimeConfig::default());
    }

    #[test]
    fn unknown_plugin_names_the_alternatives() {
        let i = issues(r#"{"version":1,"providers":{"outbound":{"plugin":"fax4u"}}}"#);
        assert_eq!(i[0].path, "providers.outbound.plugin");
        assert_eq!(
            i[0].message,
            "unknown plugin `fax4u`; plugins available for the outbound slot: test, phaxio, sinch, sip, external"
        );
    }

    #[test]
    fn plugin_in_the_wrong_slot_is_refused() {
        let i = issues(r#"{"version":1,"providers":{"outbound":{"plugin":"local"}}}"#);
        assert_eq!(i[0].message, "plugin `local` cannot fill the outbound slot");
    }

    #[test]
    fn phi_and_credential_keys_are_refused_with_paths() {
        let i = issues(
            r#"{"version":1,"providers":{"outbound":{"plugin":"test","settings":{"to_number":"+15551234567",
                "nested":{"apiSecret":"x"}}}}}"#,
        );
        assert_eq!(i.len(), 2, "{i:?}");
        assert!(i.iter().any(|x| x.path == "providers.outbound.settings.to_number" && x.message.contains("PHI")));
        assert!(
            i.iter()
                .any(|x| x.path == "providers.outbound.settings.nested.apiSecret" && x.message.contains("credential"))
        );
    }

    #[test]
    fn invalid_settings_carry_their_full_path() {
        let i = issues(r#"{"version":1,"providers":{"outbound":{"plugin":"test","settings":{"busySuffix":"x"}}}}"#);
        assert_eq!(
            i,
            vec![ConfigIssue {
                path: "providers.outbound.settings.busySuffix".into(),
                message: "must be 1 to 8 digits".into()
            }]
        );
    }

    #[test]
    fn wrong_version_and_malformed_documents() {
        let i = issues(r#"{"version":2}"#);
        assert_eq!(i[0].path, "version");
        let err = parse_and_validate(br#"{"version":1,"providers":{"outbound":{"plugin":7}}}"#).unwrap_err();
        match err {
            ConfigError::Malformed { path, .. } => assert_eq!(path, "providers.outbound.plugin"),
            other => panic!("{other:?}"),
        }
    }
}
