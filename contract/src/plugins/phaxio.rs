//! The Phaxio plugin (`phaxio`): its settings and their checks.

use super::*;

/// Settings of the Phaxio plugin (`phaxio`, API v2.1). Credentials (`apiKey`, `apiSecret`, `webhookToken`) are
/// files, never settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct PhaxioSettings {
    /// API base URL including the version, ending in `/`.
    pub base_url: String,
    /// Public URL Phaxio posts webhooks to, exactly as configured at Phaxio (the signature covers it). In the
    /// outbound slot: this server's `/webhooks/phaxio`, sent with every fax; omitted, status by polling only.
    /// In the inbound slot: the receive URL set on the Phaxio number (`/webhooks/phaxio/inbound`); omitted,
    /// every inbound callback is refused.
    pub callback_url: Option<String>,
    /// Milliseconds between status polls of a submitted fax.
    #[schemars(range(min = 100, max = 600000))]
    pub poll_interval_ms: u64,
    /// How Phaxio gets the document: `upload` (sent with the request) or `contentUrl` (Phaxio fetches it from
    /// `PUBLIC_API_URL/fax/{id}/pdf?token=…`, a token valid `PDF_TOKEN_TTL_MINUTES`; the server must be
    /// reachable from Phaxio over HTTPS).
    pub send_mode: PhaxioSendMode,
    /// Let `baseUrl` (and, for Sinch, `authUrl`) be a private or shared address (`10/8`, `172.16/12`,
    /// `192.168/16`, `100.64/10`, `fc00::/7`), as an IP or a name resolving to one: for a provider gateway on
    /// the internal network. Link-local and metadata addresses stay refused.
    pub allow_private_network: bool,
}

/// How the Phaxio plugin hands over the document.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum PhaxioSendMode {
    /// Upload the PDF with the request (works behind any firewall).
    #[default]
    Upload,
    /// Give Phaxio a tokenized URL to fetch it from (the reference's way).
    ContentUrl,
}

impl Default for PhaxioSettings {
    fn default() -> Self {
        PhaxioSettings {
            base_url: "https://api.phaxio.com/v2.1/".into(),
            callback_url: None,
            poll_interval_ms: 5000,
            send_mode: PhaxioSendMode::Upload,
            allow_private_network: false,
        }
    }
}

impl SettingsCheck for PhaxioSettings {
    fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Some(problem) = crate::endpoint::problem_allowing(&self.base_url, self.allow_private_network) {
            problems.push(("baseUrl".into(), problem.into()));
        } else if !self.base_url.ends_with('/') {
            problems.push(("baseUrl".into(), "must end in /".into()));
        }
        if let Some(url) = &self.callback_url
            && !http_url(url)
        {
            problems.push(("callbackUrl".into(), "must be an https:// URL (http:// only for loopback)".into()));
        }
        if !(100..=600_000).contains(&self.poll_interval_ms) {
            problems.push(("pollIntervalMs".into(), "must be between 100 and 600000".into()));
        }
        problems
    }
}
