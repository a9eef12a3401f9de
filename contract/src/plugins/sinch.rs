//! The Sinch plugin (`sinch`): its settings and their checks.

use super::*;

/// Sinch Fax API v3 regions. The global host routes to a region by itself; pinning one keeps PHI in a
/// known jurisdiction, which is why the choice is a setting and not left to Sinch.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SinchRegion {
    /// US East (`use1.fax.api.sinch.com`).
    Use1,
    /// Europe (`eu1.fax.api.sinch.com`).
    Eu1,
    /// South America (`sae1.fax.api.sinch.com`).
    Sae1,
    /// South-East Asia 1 (`apse1.fax.api.sinch.com`).
    Apse1,
    /// South-East Asia 2 (`apse2.fax.api.sinch.com`).
    Apse2,
}

impl SinchRegion {
    /// The documented regional base URL, so operators name a region instead of copying host names (the old
    /// Faxbot's `us.`/`eu.` hosts do not exist).
    pub fn base_url(self) -> &'static str {
        match self {
            SinchRegion::Use1 => "https://use1.fax.api.sinch.com/v3/",
            SinchRegion::Eu1 => "https://eu1.fax.api.sinch.com/v3/",
            SinchRegion::Sae1 => "https://sae1.fax.api.sinch.com/v3/",
            SinchRegion::Apse1 => "https://apse1.fax.api.sinch.com/v3/",
            SinchRegion::Apse2 => "https://apse2.fax.api.sinch.com/v3/",
        }
    }
}

/// How the Sinch plugin authenticates API calls. OAuth2 is the default because Sinch rate-limits Basic
/// heavily and documents it as meant for testing.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SinchAuthMethod {
    /// OAuth2 client credentials: the access key buys a short-lived Bearer token.
    #[default]
    Oauth2,
    /// HTTP Basic with the access key on every call.
    Basic,
}

/// The encoding Sinch uses for callbacks; both are accepted on receipt, this only says which one to ask for.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SinchCallbackContentType {
    /// Sinch's default: JSON `fax` part plus the PDF as a file part.
    #[default]
    #[serde(rename = "multipart/form-data")]
    Multipart,
    /// One JSON object (documents base64-encoded).
    #[serde(rename = "application/json")]
    Json,
}

impl SinchCallbackContentType {
    /// The wire value of `callbackUrlContentType`.
    pub fn as_str(self) -> &'static str {
        match self {
            SinchCallbackContentType::Multipart => "multipart/form-data",
            SinchCallbackContentType::Json => "application/json",
        }
    }
}

/// Default OAuth2 token endpoint of Sinch.
pub const SINCH_AUTH_URL: &str = "https://auth.sinch.com/oauth2/token";
/// Global Sinch Fax API v3 base URL (Sinch routes to a region).
pub const SINCH_GLOBAL_BASE_URL: &str = "https://fax.api.sinch.com/v3/";

/// Settings of the Sinch plugin (`sinch`, Fax API v3). The access key (`keyId`, `keySecret`) and the webhook
/// password are credentials (files), never settings; the project id is not secret, so it is a setting.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SinchSettings {
    /// Region whose documented host to use. Omitted (and no `baseUrl`): the global host.
    pub region: Option<SinchRegion>,
    /// API base URL including `/v3/`, ending in `/`; overrides `region` (tests and proxies).
    pub base_url: Option<String>,
    /// OAuth2 token endpoint.
    pub auth_url: String,
    /// `oauth2` (default) or `basic`.
    pub auth_method: SinchAuthMethod,
    /// Sinch project id (from the dashboard); required, it is part of every path.
    pub project_id: String,
    /// Public URL Sinch posts FAX_COMPLETED to (this server's `/webhooks/sinch`), without credentials: the
    /// plugin embeds `webhookUser` and the `webhookPassword` credential. Omitted: status by polling only.
    pub callback_url: Option<String>,
    /// Encoding Sinch uses for the callbacks.
    pub callback_content_type: SinchCallbackContentType,
    /// User of the Basic credentials embedded in the callback URL (the password is the `webhookPassword`
    /// credential).
    pub webhook_user: Option<String>,
    /// Milliseconds between status polls of a submitted fax.
    #[schemars(range(min = 100, max = 600000))]
    pub poll_interval_ms: u64,
    /// Let `baseUrl` (and, for Sinch, `authUrl`) be a private or shared address (`10/8`, `172.16/12`,
    /// `192.168/16`, `100.64/10`, `fc00::/7`), as an IP or a name resolving to one: for a provider gateway on
    /// the internal network. Link-local and metadata addresses stay refused.
    pub allow_private_network: bool,
}

impl Default for SinchSettings {
    fn default() -> Self {
        SinchSettings {
            region: None,
            base_url: None,
            auth_url: SINCH_AUTH_URL.into(),
            auth_method: SinchAuthMethod::Oauth2,
            project_id: String::new(),
            callback_url: None,
            callback_content_type: SinchCallbackContentType::Multipart,
            webhook_user: None,
            poll_interval_ms: 5000,
            allow_private_network: false,
        }
    }
}

impl SinchSettings {
    /// The API base URL in effect: `baseUrl`, else the region's, else the global host.
    pub fn effective_base_url(&self) -> String {
        match (&self.base_url, self.region) {
            (Some(url), _) => url.clone(),
            (None, Some(region)) => region.base_url().to_string(),
            (None, None) => SINCH_GLOBAL_BASE_URL.to_string(),
        }
    }
}

impl SettingsCheck for SinchSettings {
    fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.region.is_some() && self.base_url.is_some() {
            problems.push(("baseUrl".into(), "set either region or baseUrl, not both".into()));
        }
        if let Some(url) = &self.base_url {
            if let Some(problem) = crate::endpoint::problem_allowing(url, self.allow_private_network) {
                problems.push(("baseUrl".into(), problem.into()));
            } else if !url.ends_with('/') {
                problems.push(("baseUrl".into(), "must end in /".into()));
            }
        }
        if let Some(problem) = crate::endpoint::problem_allowing(&self.auth_url, self.allow_private_network) {
            problems.push(("authUrl".into(), problem.into()));
        }
        let id = &self.project_id;
        if id.is_empty() {
            problems.push(("projectId".into(), "is required (the Sinch project id from the dashboard)".into()));
        } else if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            problems.push(("projectId".into(), "must be 1 to 64 letters, digits, '-' or '_'".into()));
        }
        if let Some(url) = &self.callback_url {
            if !http_url(url) {
                problems.push(("callbackUrl".into(), "must be an https:// URL (http:// only for loopback)".into()));
            } else if has_userinfo(url) {
                problems.push((
                    "callbackUrl".into(),
                    "must not embed credentials; set webhookUser and the webhookPassword credential".into(),
                ));
            }
        }
        if self.callback_url.is_some() && self.webhook_user.is_none() {
            // Sinch callbacks carry no signature: without embedded credentials they could not be verified.
            problems.push((
                "webhookUser".into(),
                "is required with callbackUrl (Sinch callbacks are authenticated \
                only by the Basic credentials embedded in the URL)"
                    .into(),
            ));
        }
        if let Some(user) = &self.webhook_user
            && (user.is_empty()
                || user.len() > 64
                || !user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'))
        {
            problems.push(("webhookUser".into(), "must be 1 to 64 letters, digits, '-', '_' or '.'".into()));
        }
        if !(100..=600_000).contains(&self.poll_interval_ms) {
            problems.push(("pollIntervalMs".into(), "must be between 100 and 600000".into()));
        }
        problems
    }
}
