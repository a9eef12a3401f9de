//! Names, labels and annotations of the objects the operator owns, in one place so builders, pruning and
//! tests agree.

use std::collections::BTreeMap;

/// Label every owned object carries; owned-object watches select on it so the operator caches only its own.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "faxbot-operator");
/// Label naming the FaxPluginConfig an object belongs to.
pub const CONFIG_LABEL: &str = "fax.faxbot.io/config";
/// Label naming the config revision an object (ConfigMap, Secret, pod) belongs to.
pub const REVISION_LABEL: &str = "fax.faxbot.io/revision";
/// Pod template annotation with the revision; a change rolls the pods.
pub const REVISION_ANNOTATION: &str = "fax.faxbot.io/revision";
/// On the API Deployment (not its pods): a hash of everything that reaches a pod except the runtime config
/// document, so that `urgentFeatureFlags` can tell a flags-only change from one that also changes the pods.
pub const POD_INPUTS_ANNOTATION: &str = "fax.faxbot.io/pod-inputs";
/// Pod template annotation with a checksum of the rendered runtime config.
pub const CONFIG_CHECKSUM_ANNOTATION: &str = "fax.faxbot.io/config-checksum";
/// Pod template annotation with a keyed checksum of the credentials; a rotated Secret changes it.
pub const CREDENTIALS_CHECKSUM_ANNOTATION: &str = "fax.faxbot.io/credentials-checksum";
/// Kind label value for the runtime-config ConfigMaps.
pub const KIND_LABEL: &str = "fax.faxbot.io/kind";
/// Marks the canary Deployment and its pods (`canary`); stable pods do not carry it.
pub const TRACK_LABEL: &str = "fax.faxbot.io/track";

/// Key of the runtime config document in the ConfigMap, and the file name the server reads.
pub const CONFIG_KEY: &str = "faxbot.json";
/// Key of the trust bundle (apiServer.trustBundle) in the runtime-config ConfigMap: the file `SSL_CERT_FILE`
/// names.
pub const TRUST_BUNDLE_KEY: &str = "ca-bundle.crt";
/// Key of the database URL in the managed Secret.
pub const DATABASE_URL_KEY: &str = "database.url";

/// Longest FaxPluginConfig name: `<name>-credentials-<10 hex>` must stay a valid name and `<name>-api` a
/// valid Service (DNS label, 63 characters).
pub const MAX_CONFIG_NAME: usize = 40;

/// Name of the API Deployment and Service.
pub fn api_name(config: &str) -> String {
    format!("{config}-api")
}

/// Name of the canary Deployment of a config.
pub fn canary_name(config: &str) -> String {
    format!("{}-canary", api_name(config))
}

/// Name of the ConfigMap holding a copy of the stable Deployment (see `build::stable_snapshot`).
pub fn stable_snapshot_name(config: &str) -> String {
    format!("{}-stable", api_name(config))
}

/// Name of the immutable runtime-config ConfigMap of one revision.
pub fn config_map_name(config: &str, revision: &str) -> String {
    format!("{config}-config-{revision}")
}

/// Name of the immutable credentials Secret of one revision.
pub fn credentials_secret_name(config: &str, revision: &str) -> String {
    format!("{config}-credentials-{revision}")
}

/// Key of one credential in the managed Secret and file name under the credentials mount.
pub fn credential_key(slot: &str, credential: &str) -> String {
    format!("{slot}.{credential}")
}

/// Key of the trusted publisher keys in the managed Secret: the credential file the API server reads them from
/// (`$FAXBOT_CREDENTIALS_DIR/registry.publisherKeys`).
pub const PUBLISHER_KEYS_KEY: &str = "registry.publisherKeys";

/// Prefix of the environment variables that hand an `external` provider's credentials (all but `pluginToken`)
/// to its sidecar; a FaxProvider's `sidecar.env` may not use it.
pub const CREDENTIAL_ENV_PREFIX: &str = "FAXBOT_CREDENTIAL_";

/// The environment variable a sidecar reads credential `credential` from: [`CREDENTIAL_ENV_PREFIX`] and the
/// name in upper snake case. A word starts at an upper-case letter after a lower-case letter or a digit, and
/// at the last capital of a run followed by a lower-case letter: `apiKey` → `FAXBOT_CREDENTIAL_API_KEY`,
/// `oauth2ClientSecret` → `FAXBOT_CREDENTIAL_OAUTH2_CLIENT_SECRET`, `sftpPEMKey` →
/// `FAXBOT_CREDENTIAL_SFTP_PEM_KEY`. Two names may meet (`apiKey`, `ApiKey`): validation refuses that.
pub fn credential_env_name(credential: &str) -> String {
    let chars: Vec<char> = credential.chars().collect();
    let mut name = String::from(CREDENTIAL_ENV_PREFIX);
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower) {
                name.push('_');
            }
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// Name of the sidecar container (and of its `/tmp` volume) that runs FaxProvider `provider`'s plugin:
/// `plugin-<provider>`. A container name is a DNS label (63 characters, no dots) while a FaxProvider's name may
/// be a longer DNS subdomain: a name that does not fit as it is gets its dots replaced, is cut short and ends
/// in 8 hex of a hash of the full provider name, so two providers never share a container name.
pub fn sidecar_container_name(provider: &str) -> String {
    const MAX: usize = 63;
    let plain = format!("plugin-{provider}");
    if plain.len() <= MAX && !provider.contains('.') {
        return plain;
    }
    let hash = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(provider.as_bytes())[..4]);
    let mut stem = plain.replace('.', "-");
    stem.truncate(MAX - 1 - hash.len());
    format!("{}-{hash}", stem.trim_end_matches('-'))
}

/// The labels the pods are selected by. They never change for the life of a config (a Deployment's
/// selector is immutable), so they hold no revision.
pub fn selector_labels(config: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "faxbot-api".to_string()),
        ("app.kubernetes.io/instance".to_string(), config.to_string()),
    ])
}

/// [`selector_labels`] as a label selector string (`key=value,...`), as a scale subresource reports it.
pub fn selector(config: &str) -> String {
    selector_labels(config).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Labels of every owned object.
pub fn common_labels(config: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(config);
    labels.insert("app.kubernetes.io/component".into(), "api-server".into());
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    labels.insert(CONFIG_LABEL.into(), config.into());
    labels
}

/// The label selector owned-object watches use.
pub fn managed_selector() -> String {
    format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)
}

/// Port the API container listens on.
pub const API_PORT: i32 = 8080;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_env_names_are_upper_snake_case() {
        for (credential, want) in [
            ("apiKey", "FAXBOT_CREDENTIAL_API_KEY"),
            ("apiSecret", "FAXBOT_CREDENTIAL_API_SECRET"),
            ("key", "FAXBOT_CREDENTIAL_KEY"),
            ("webhookToken", "FAXBOT_CREDENTIAL_WEBHOOK_TOKEN"),
            ("awsSecretAccessKey", "FAXBOT_CREDENTIAL_AWS_SECRET_ACCESS_KEY"),
            ("oauth2ClientSecret", "FAXBOT_CREDENTIAL_OAUTH2_CLIENT_SECRET"),
            ("key2", "FAXBOT_CREDENTIAL_KEY2"),
            ("sftpPEMKey", "FAXBOT_CREDENTIAL_SFTP_PEM_KEY"),
            ("sipPIN", "FAXBOT_CREDENTIAL_SIP_PIN"),
            ("APIKey", "FAXBOT_CREDENTIAL_API_KEY"),
            ("ApiKey", "FAXBOT_CREDENTIAL_API_KEY"),
            ("apikey", "FAXBOT_CREDENTIAL_APIKEY"),
        ] {
            assert_eq!(credential_env_name(credential), want, "{credential}");
        }
    }

    #[test]
    fn sidecar_container_names_are_dns_labels_and_distinct() {
        let long = "a".repeat(253);
        let dotted_long = format!("{}.{}", "b".repeat(60), "c".repeat(60));
        let fits = "x".repeat(56);
        let fits_name = format!("plugin-{fits}");
        let one_over = "y".repeat(57);
        let table: [(&str, Option<&str>); 7] = [
            ("acme", Some("plugin-acme")),
            ("acme-fax", Some("plugin-acme-fax")),
            (&fits, Some(&fits_name)),
            (&one_over, None),
            ("acme.fax", None),
            (&long, None),
            (&dotted_long, None),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (provider, want) in table {
            let name = sidecar_container_name(provider);
            if let Some(want) = want {
                assert_eq!(name, want);
            }
            assert!(name.len() <= 63, "{name}");
            assert!(name.starts_with("plugin-"), "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') && !name.ends_with('-'),
                "{name} is not a DNS label"
            );
            assert!(seen.insert(name), "{provider}: a name given twice");
        }
        // Dots are not simply dashes: `acme.fax` and `acme-fax` stay apart.
        assert_ne!(sidecar_container_name("acme.fax"), sidecar_container_name("acme-fax"));
        // Two long names sharing their first 60 characters differ in the hash.
        let (a, b) = (format!("{}-one", "p".repeat(60)), format!("{}-two", "p".repeat(60)));
        assert_ne!(sidecar_container_name(&a), sidecar_container_name(&b));
    }
}
