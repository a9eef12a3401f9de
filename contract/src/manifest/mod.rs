//! HTTP plugin manifests: a REST fax provider described by data instead of code.
//!
//! A manifest names the provider, the credentials and settings it needs, how requests authenticate, the
//! `send`, `status`, optional `cancel` and `list` actions (method, URL, headers and body as [`template`]s, and
//! a map of where the answer keeps the fax id, status and error), how the provider's statuses map onto the
//! queue's, how its webhooks are verified, and the only domains requests may go to. The API server's `http`
//! plugin turns it into a provider with everything a built-in one has (queue, retries, failover, webhooks);
//! the operator and the CRD validate it with the same [`check`] before it gets there.
//!
//! Layout: this module holds the document's types; [`template`] the expression language; [`check`] every
//! rule a manifest must satisfy, as one pure function; [`signature`] the Ed25519 signature over its
//! canonical form; [`registry`] the catalogue of manifests on offer (the shipped ones, registry indexes).

pub mod check;
pub mod registry;
pub mod signature;
pub mod template;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::plugins::{Capability, Category, CredentialSpec, PluginManifest};

/// Largest manifest document accepted (the shipped ones are 3–5 KiB).
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// A provider defined by a manifest.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpManifest {
    /// Plugin id, used in slot bindings, job records and the webhook path `/webhooks/<id>`: lower-case
    /// letters, digits and `-`, 2 to 40 characters, not the id of a built-in plugin.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Manifest version.
    pub version: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// Whether the provider may carry PHI (it signs a BAA). The operator refuses a provider that is not
    /// where a FaxPluginConfig requires HIPAA-capable plugins.
    pub hipaa_compliant: bool,
    /// Credentials the templates may read as `credentials.<name>`; mounted as files like a built-in
    /// plugin's (`<slot>.<name>`), never in the document.
    #[serde(default)]
    pub credentials: Vec<CredentialSpec>,
    /// Non-secret settings the templates may read as `settings.<name>` (a sender number, an account id),
    /// set in the slot binding's `settings`.
    #[serde(default)]
    pub settings: Vec<SettingSpec>,
    /// The only hosts requests may go to (exact names, or IP addresses). Every action URL must name one.
    pub allowed_domains: Vec<String>,
    /// Let `allowedDomains` hold private or shared addresses (an in-house gateway), as an IP or a name
    /// resolving to one. Link-local and metadata addresses stay refused.
    #[serde(default)]
    pub allow_private_network: bool,
    /// How every API request authenticates.
    pub auth: Auth,
    /// The requests.
    pub actions: Actions,
    /// How the provider's status values map onto the queue's.
    pub statuses: StatusMap,
    /// HTTP statuses whose meaning differs from the defaults (401/403 refused credentials, 429 rate limit,
    /// 408 and 5xx unavailable, other 4xx a refused fax).
    #[serde(default)]
    pub errors: Vec<ErrorRule>,
    /// Status callbacks; without them status comes from polling only.
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// Timing.
    #[serde(default)]
    pub limits: Limits,
    /// Tools the plugin offers AI assistants over MCP (an account balance, a number lookup), listed as
    /// `<id>_<name>` to keys with the tool's scope.
    // Left out while empty, so that adding the field did not change what existing signatures cover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// The publisher's Ed25519 signature over the manifest's canonical form ([`HttpManifest::canonical`]:
    /// everything but this field). A manifest that is not signed by a trusted publisher key is accepted only
    /// when the document's `features.pluginInstall` allows unverified plugins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ManifestSignature>,
}

/// A tool for AI assistants: one request, its string arguments readable as `arguments.<name>`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolSpec {
    /// Name: lower-case letters, digits and `_`, 2 to 32 characters; listed as `<plugin id>_<name>`.
    pub name: String,
    /// What it does, for the assistant's model: no numbers (the PHI guard refuses digit runs).
    pub description: String,
    /// The API-key scope a caller needs (default `keys:manage`).
    #[serde(default = "default_tool_scope")]
    pub scope: String,
    /// Its arguments (strings).
    #[serde(default)]
    pub arguments: Vec<SettingSpec>,
    /// The request.
    pub action: Action,
    /// JSON pointer to the part of the answer returned (default the whole answer).
    #[serde(default)]
    pub result: Option<String>,
}

fn default_tool_scope() -> String {
    "keys:manage".into()
}

/// The scopes a tool may require.
pub const TOOL_SCOPES: &[&str] = &["fax:send", "fax:read", "inbound:list", "inbound:read", "keys:manage"];

/// A publisher's signature.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ManifestSignature {
    /// Which trusted key signed it (a name in the publisher keys).
    pub key_id: String,
    /// The base64 Ed25519 signature.
    pub value: String,
}

/// One non-secret setting.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SettingSpec {
    /// Name (`settings.<name>` in templates, a key of the binding's settings).
    pub name: String,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// Whether a binding must set it.
    #[serde(default)]
    pub required: bool,
}

/// How API requests authenticate. Values are templates over `credentials.<name>` and `settings.<name>`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(tag = "scheme", rename_all = "camelCase", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum Auth {
    /// HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// A key in a request header.
    Header {
        /// Header name.
        name: String,
        /// Its value.
        value: String,
    },
    /// A key in the query string.
    Query {
        /// Parameter name.
        name: String,
        /// Its value.
        value: String,
    },
    /// An HMAC of parts of the request in a header.
    Hmac {
        /// Header that carries the signature.
        header: String,
        /// Hash function.
        algorithm: HmacAlgorithm,
        /// Encoding of the signature.
        encoding: Encoding,
        /// The key.
        key: String,
        /// What is signed, concatenated in order (see [`Part`]); `timestamp` is also sent as
        /// `timestampHeader`.
        signed: Vec<String>,
        /// Header carrying the Unix time that `timestamp` signed, when signed.
        #[serde(default)]
        timestamp_header: Option<String>,
        /// Text before the signature in the header (`sha256=`).
        #[serde(default)]
        prefix: String,
    },
}

/// Hash of an HMAC.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    /// HMAC-SHA1 (Phaxio, Twilio-style providers).
    Sha1,
    /// HMAC-SHA256.
    Sha256,
}

/// Encoding of a signature.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Lower-case hex (upper case accepted when verifying).
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// A piece of what a signature covers, written as a string in `signed`:
/// `url` (the full URL), `method`, `body` (raw bytes), `formSorted` (form fields sorted by name, each name
/// followed by its value), `filesSha1Sorted` (file parts sorted by name, each name followed by the hex
/// SHA-1 of its content), `timestamp` (Unix seconds; requests only), `header:<name>` (a request header's
/// value; webhooks only) and `literal:<text>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// The full URL.
    Url,
    /// The method (requests only).
    Method,
    /// The raw body.
    Body,
    /// Form fields sorted by name, name then value.
    FormSorted,
    /// File parts sorted by name, name then hex SHA-1.
    FilesSha1Sorted,
    /// Unix seconds.
    Timestamp,
    /// A header of the webhook request.
    Header(String),
    /// Fixed text.
    Literal(String),
}

impl Part {
    /// Parses one entry of `signed`.
    pub fn parse(value: &str) -> Option<Part> {
        Some(match value {
            "url" => Part::Url,
            "method" => Part::Method,
            "body" => Part::Body,
            "formSorted" => Part::FormSorted,
            "filesSha1Sorted" => Part::FilesSha1Sorted,
            "timestamp" => Part::Timestamp,
            other => match other.split_once(':') {
                Some(("header", name)) if !name.is_empty() => Part::Header(name.to_ascii_lowercase()),
                Some(("literal", text)) => Part::Literal(text.to_string()),
                _ => return None,
            },
        })
    }
}

/// The requests of a provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Actions {
    /// Submits a fax. Its templates may read `to`, `job_id`, `idempotency_key`, `document_url`, `pages`,
    /// `callback_url`; the document goes as a multipart file part or as `document_url`.
    pub send: Action,
    /// Reads a fax's status (`provider_id`).
    pub status: Action,
    /// Cancels a fax (`provider_id`).
    #[serde(default)]
    pub cancel: Option<Action>,
    /// Lists the faxes of a job (`job_id`), to find a submission that timed out instead of sending it
    /// again: with it the provider counts as idempotent. Its response map needs `items`.
    #[serde(default)]
    pub list: Option<Action>,
}

impl Actions {
    /// Every action the manifest declares, for edits that apply to all (the conformance suite points them
    /// at its simulated provider).
    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut Action> {
        [Some(&mut self.send), Some(&mut self.status), self.cancel.as_mut(), self.list.as_mut()].into_iter().flatten()
    }
}

/// One request.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Action {
    /// HTTP method.
    pub method: Method,
    /// URL template; its scheme and host are literal text (a template may only fill the path and query).
    pub url: String,
    /// Extra headers (templates).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body.
    #[serde(default)]
    pub body: Option<Body>,
    /// Where the answer keeps what the queue needs.
    #[serde(default)]
    pub response: ResponseMap,
}

/// HTTP method of an action.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// A request body.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum Body {
    /// A JSON document; every string in it is a template (rendered as a string).
    Json {
        /// The document.
        template: serde_json::Value,
    },
    /// `application/x-www-form-urlencoded`.
    Form {
        /// Field templates.
        fields: BTreeMap<String, String>,
    },
    /// `multipart/form-data`, with the document as a file part when `document` names one.
    Multipart {
        /// Text field templates.
        #[serde(default)]
        fields: BTreeMap<String, String>,
        /// The file part that carries the PDF.
        #[serde(default)]
        document: Option<DocumentPart>,
    },
}

/// The document as a multipart file part.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DocumentPart {
    /// Part name.
    pub field: String,
    /// File name template (`{{ job_id }}.pdf`).
    #[serde(default = "default_file_name")]
    pub file_name: String,
}

fn default_file_name() -> String {
    "{{ job_id }}.pdf".into()
}

/// Where an answer keeps its values: JSON pointers (RFC 6901) into the response body.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResponseMap {
    /// The list of faxes (the `list` action only); the other pointers are then relative to each item.
    #[serde(default)]
    pub items: Option<String>,
    /// The provider's fax id (needed by `send` and `list`).
    #[serde(default)]
    pub provider_id: Option<String>,
    /// The provider's status value (needed by `status`).
    #[serde(default)]
    pub status: Option<String>,
    /// The provider's failure reason.
    #[serde(default)]
    pub error: Option<String>,
    /// A second part of the reason, shown in brackets (Phaxio's `error_type`).
    #[serde(default)]
    pub error_kind: Option<String>,
    /// Pages, as the provider counted them.
    #[serde(default)]
    pub pages: Option<String>,
    /// A 2xx answer counts only when this pointer holds `equals` (Phaxio's `"success": true`); otherwise the
    /// fax was refused, with the answer's `message` as the reason.
    #[serde(default)]
    pub success: Option<SuccessCheck>,
    /// Where the answer's error message is, for refusals (default `/message`).
    #[serde(default)]
    pub message: Option<String>,
}

/// A value that marks a successful answer.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SuccessCheck {
    /// JSON pointer.
    pub pointer: String,
    /// The value it must hold.
    pub equals: serde_json::Value,
}

/// How the provider's status values map onto the queue's; a value in no list counts as in progress.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StatusMap {
    /// Accepted, not started.
    #[serde(default)]
    pub queued: Vec<String>,
    /// Transmitting.
    #[serde(default)]
    pub in_progress: Vec<String>,
    /// Delivered.
    pub delivered: Vec<String>,
    /// Failed (final).
    pub failed: Vec<String>,
}

/// A non-default meaning of an HTTP status.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ErrorRule {
    /// The HTTP status (400–599).
    pub status: u16,
    /// What it means.
    pub outcome: Outcome,
}

/// What a refused request means to the queue.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Credentials refused: not retried, failover may move the job.
    Unauthorized,
    /// The fax was refused: not retried.
    Rejected,
    /// Too many requests: retried after Retry-After.
    RateLimited,
    /// Temporarily unavailable: retried after Retry-After.
    Unavailable,
}

/// Status callbacks. An accepted callback only makes the job's status check due: the status action reads
/// the status, so a replayed or reordered callback cannot move a job backwards.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Webhook {
    /// How a callback proves it comes from the provider.
    pub verification: Verification,
    /// The body's format.
    pub body: WebhookBody,
    /// Where the callback names the fax: a JSON pointer for `json`; a field name for `form` and
    /// `multipart`, optionally followed by `#` and a pointer into that field's JSON (`fax#/id`).
    pub provider_id: String,
    /// Largest callback body, in bytes (default 1 MiB, at most 32 MiB).
    #[serde(default = "default_webhook_bytes")]
    pub max_bytes: usize,
    /// A time the provider signs into each callback, and how far from now it may be: an authentic callback
    /// replayed later is refused once outside the window (Telnyx: `telnyx-timestamp`, 300 s, as its SDKs check).
    // Left out while unset, so that adding the field did not change what existing signatures cover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Freshness>,
}

/// A signed callback time.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Freshness {
    /// Header carrying the time, in Unix seconds. The verification must sign it (`header:<name>` in
    /// `verification.signed`), or whoever replays a callback could set it.
    pub header: String,
    /// How many seconds from now, either way, the time may be (30–3600).
    pub max_age_seconds: u64,
}

fn default_webhook_bytes() -> usize {
    1024 * 1024
}

/// The format of a callback's body.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum WebhookBody {
    /// JSON.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `multipart/form-data`.
    Multipart,
}

/// How a callback is verified. Values are templates over `credentials.<name>` and `settings.<name>`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(tag = "scheme", rename_all = "camelCase", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum Verification {
    /// An HMAC in a header.
    Hmac {
        /// Header carrying the signature.
        header: String,
        /// Hash.
        algorithm: HmacAlgorithm,
        /// Encoding.
        encoding: Encoding,
        /// Key.
        key: String,
        /// What is signed, in order (see [`Part`]; `url` is the binding's `callbackUrl`).
        signed: Vec<String>,
        /// Text before the signature in the header.
        #[serde(default)]
        prefix: String,
    },
    /// An Ed25519 signature in a header, made with the provider's private key and checked with its public
    /// key (Telnyx: `telnyx-signature-ed25519` over `telnyx-timestamp`, `|`, body).
    Ed25519 {
        /// Header carrying the base64 signature.
        header: String,
        /// The provider's base64 public key (a template: usually a setting, since it is not secret).
        public_key: String,
        /// What is signed, in order (see [`Part`]).
        signed: Vec<String>,
    },
    /// Basic credentials the provider was given inside the callback URL (`https://user:pass@host/…`).
    Basic {
        /// Expected user.
        username: String,
        /// Expected password.
        password: String,
    },
    /// A shared token in a header (compared whole, in constant time).
    Token {
        /// Header carrying it.
        header: String,
        /// Its value.
        value: String,
    },
    /// No verification: refused unless `allowUnverified` is true, and then every callback only makes a
    /// status check due (which is all any callback does).
    None {
        /// Accept unverified callbacks.
        #[serde(default)]
        allow_unverified: bool,
    },
}

/// Timing of the provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Limits {
    /// Whole-request timeout, ms (1,000–60,000).
    pub timeout_ms: u64,
    /// Default milliseconds between status polls (100–600,000); a binding may set `pollIntervalMs`.
    pub poll_interval_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout_ms: 15_000, poll_interval_ms: 5_000 }
    }
}

/// The settings of a slot bound to a manifest plugin: the manifest's declared settings plus these.
pub const BINDING_SETTINGS: &[&str] = &["callbackUrl", "pollIntervalMs"];

impl HttpManifest {
    /// Parses a manifest document (JSON), with a path to the first field that is wrong.
    pub fn parse(bytes: &[u8]) -> Result<HttpManifest, String> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(format!("manifest larger than {MAX_MANIFEST_BYTES} bytes"));
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(&mut de).map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }

    /// What a signature covers: the manifest as this version parses it (defaults filled in), without its
    /// signature, as JSON with sorted keys. Signing the parsed form means a signature survives reformatting
    /// and key order; a field added later must be left out of the JSON while at its default
    /// (`skip_serializing_if`) so old signatures stay valid.
    pub fn canonical(&self) -> serde_json::Value {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        serde_json::to_value(&unsigned).unwrap_or_default()
    }

    /// What the queue needs to know: the capabilities its actions give.
    pub fn capabilities(&self) -> Vec<Capability> {
        let mut caps = vec![Capability::Send, Capability::Status];
        if self.actions.cancel.is_some() {
            caps.push(Capability::Cancel);
        }
        if self.webhook.is_some() {
            caps.push(Capability::Webhook);
        }
        if self.actions.list.is_some() {
            caps.push(Capability::Idempotency);
        }
        caps
    }

    /// The registry's view of it, as for a built-in plugin.
    pub fn plugin_manifest(&self) -> PluginManifest {
        PluginManifest {
            id: self.id.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            description: if self.description.is_empty() {
                format!("{} (HTTP plugin defined by a manifest)", self.name)
            } else {
                self.description.clone()
            },
            categories: vec![Category::Outbound],
            capabilities: self.capabilities(),
            hipaa_compliant: self.hipaa_compliant,
            settings_schema: self.settings_schema(),
            credentials: self.credentials.clone(),
        }
    }

    /// Checks a binding's settings: the declared settings (strings), `callbackUrl` and `pollIntervalMs`;
    /// `(path, message)` problems as for a built-in plugin.
    pub fn check_settings(&self, settings: &serde_json::Value) -> Result<(), Vec<(String, String)>> {
        let mut problems = Vec::new();
        let Some(map) = settings.as_object() else {
            return Err(vec![(String::new(), "must be a JSON object".into())]);
        };
        for (key, value) in map {
            match key.as_str() {
                "callbackUrl" => match value {
                    serde_json::Value::Null => {}
                    serde_json::Value::String(url) if crate::plugins::http_url_allowed(url) => {}
                    _ => problems.push((key.clone(), "must be an https:// URL (http:// only for loopback)".into())),
                },
                "pollIntervalMs" => {
                    if !value.as_u64().is_some_and(|v| (100..=600_000).contains(&v)) {
                        problems.push((key.clone(), "must be between 100 and 600000".into()));
                    }
                }
                name if self.settings.iter().any(|s| s.name == name) => {
                    if !value.is_string() {
                        problems.push((key.clone(), "must be a string".into()));
                    }
                }
                _ => problems.push((
                    key.clone(),
                    format!("unknown setting; `{}` declares: {}", self.id, {
                        let mut names: Vec<&str> = self.settings.iter().map(|s| s.name.as_str()).collect();
                        names.extend(BINDING_SETTINGS);
                        names.join(", ")
                    }),
                )),
            }
        }
        for s in self.settings.iter().filter(|s| s.required) {
            if !map.contains_key(&s.name) {
                problems.push((s.name.clone(), "required by the manifest".into()));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// JSON Schema of a binding's settings.
    pub fn settings_schema(&self) -> serde_json::Value {
        let mut properties = serde_json::Map::new();
        let mut required = Vec::new();
        for s in &self.settings {
            properties.insert(s.name.clone(), serde_json::json!({"type": "string", "description": s.description}));
            if s.required {
                required.push(serde_json::Value::from(s.name.clone()));
            }
        }
        properties.insert(
            "callbackUrl".into(),
            serde_json::json!({"type": ["string", "null"], "description":
                "This server's /webhooks/<id> as the provider is told to call it (signatures cover it); omitted, status by polling only."}),
        );
        properties.insert(
            "pollIntervalMs".into(),
            serde_json::json!({"type": "integer", "minimum": 100, "maximum": 600000,
                "description": "Milliseconds between status polls."}),
        );
        serde_json::json!({"type": "object", "additionalProperties": false, "properties": properties,
            "required": required})
    }
}
