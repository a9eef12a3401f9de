//! The sidecar plugin (`external`): a provider that runs as a separate process and speaks the sidecar
//! protocol ([`crate::sidecar`]) over the pod's loopback. Its settings say where it listens.

use super::*;

/// Settings of the `external` plugin. In Kubernetes the operator fills `url` from the FaxProvider's
/// `sidecar.port`; outside Kubernetes it names the plugin's local address.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ExternalSettings {
    /// The plugin's address: plain HTTP to this machine only (`http://127.0.0.1:<port>`, `http://[::1]:<port>`
    /// or `http://localhost:<port>`). A sidecar shares the pod's network namespace, so nothing leaves the pod.
    pub url: String,
    /// How long one call to the plugin may take before it counts as timed out (ambiguous for `send`).
    #[schemars(range(min = 100, max = 300000))]
    pub timeout_ms: u64,
    /// The callback URL the provider is told to use (`https://<public host>/webhooks/external`), for
    /// `GET /admin/webhooks`; the plugin itself knows its provider's callback settings.
    pub callback_url: Option<String>,
    /// Whether this provider was admitted to handle patient data. The operator sets it from the FaxProvider's
    /// `sidecar.hipaaCompliant` (which a HIPAA FaxPluginConfig requires); the server then refuses to use a
    /// sidecar whose own manifest does not declare `hipaaCompliant`, so an image swapped for a non-compliant
    /// one sends nothing.
    pub hipaa_compliant: bool,
}

impl Default for ExternalSettings {
    fn default() -> Self {
        ExternalSettings { url: String::new(), timeout_ms: 30_000, callback_url: None, hipaa_compliant: false }
    }
}

impl SettingsCheck for ExternalSettings {
    fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let path = self.url.strip_prefix("http://").and_then(|r| r.split_once('/').map(|(_, p)| p)).unwrap_or("");
        if !loopback_http(&self.url) || !path.is_empty() || has_userinfo(&self.url) {
            problems.push((
                "url".into(),
                "must be http://127.0.0.1:<port>, http://[::1]:<port> or http://localhost:<port> (the plugin runs \
                 beside the server; nothing else is called)"
                    .into(),
            ));
        }
        if !(100..=300_000).contains(&self.timeout_ms) {
            problems.push(("timeoutMs".into(), "must be between 100 and 300000".into()));
        }
        if let Some(url) = &self.callback_url
            && !http_url_allowed(url)
        {
            problems.push(("callbackUrl".into(), "must be an https URL (http only to loopback)".into()));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_local_address_is_accepted() {
        let problems = |url: &str| {
            let s = ExternalSettings { url: url.into(), ..Default::default() };
            s.check().into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        for good in ["http://127.0.0.1:8090", "http://localhost:9000", "http://[::1]:8090", "http://127.0.0.1:8090/"] {
            assert!(problems(good).is_empty(), "{good}");
        }
        for bad in [
            "",
            "https://plugin.example.com",
            "http://10.0.0.5:8090",
            "http://169.254.169.254",
            "http://127.0.0.1.evil.test:80",
            "http://u:p@127.0.0.1:8090",
            "http://127.0.0.1:8090/v1",
        ] {
            assert_eq!(problems(bad), vec!["url"], "{bad}");
        }
    }
}
