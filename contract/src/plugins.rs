//! Plugin manifests and the typed settings of the built-in plugins.
//!
//! A manifest tells operators, the plugin API and the config validator what a plugin is and which
//! settings it takes. The settings schema is generated from the Rust settings type with schemars, and
//! validation deserialises into that same type, so the published schema and the enforced rules cannot
//! drift apart.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Which slot a plugin can fill.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Sends faxes.
    Outbound,
    /// Receives faxes.
    Inbound,
    /// Stores documents.
    Storage,
    /// Authenticates API callers.
    Auth,
}

impl Category {
    /// The slot name used in the config document.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Outbound => "outbound",
            Category::Inbound => "inbound",
            Category::Storage => "storage",
            Category::Auth => "auth",
        }
    }
}

/// What a plugin can do; the job queue uses these to decide how to recover an interrupted submission.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Submit an outbound fax.
    Send,
    /// Poll the status of a submitted fax.
    Status,
    /// Cancel a submitted fax.
    Cancel,
    /// Receive status callbacks.
    Webhook,
    /// The provider deduplicates submissions by an idempotency key, so a submission interrupted by a
    /// crash can be repeated safely.
    Idempotency,
    /// Receive inbound faxes.
    Receive,
    /// Store and fetch documents.
    Store,
}

/// Static description of a plugin.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub struct PluginManifest {
    /// Stable id used in config documents and `FAX_BACKEND`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Plugin version (the server version for built-ins).
    pub version: String,
    /// One-line description.
    pub description: String,
    /// Slots this plugin can fill.
    pub categories: Vec<Category>,
    /// What it can do.
    pub capabilities: Vec<Capability>,
    /// Whether the plugin can be used for PHI (a BAA exists or it never leaves the cluster).
    pub hipaa_compliant: bool,
    /// JSON Schema of the plugin's settings object.
    pub settings_schema: serde_json::Value,
    /// Credentials the plugin reads from files (never from the config document). In Kubernetes the operator
    /// copies them from the FaxProvider's Secret into the API server's Secret as `<slot>.<name>`.
    #[serde(default)]
    pub credentials: Vec<CredentialSpec>,
}

/// One credential a plugin needs.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub struct CredentialSpec {
    /// Name used in Secret mappings and in the mounted file name, for example `adminKey`.
    pub name: String,
    /// What the value is and where to get it.
    pub description: String,
    /// Whether a deployment managed by the operator must provide it.
    pub required: bool,
}

impl PluginManifest {
    /// Whether the plugin can fill `category`.
    pub fn fills(&self, category: Category) -> bool {
        self.categories.contains(&category)
    }

    /// Whether the plugin has `capability`.
    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
}

/// Settings of the built-in simulated fax line (`test`).
///
/// The failure-injection suffixes make every branch of the job lifecycle reachable without an external
/// service: which branch a job takes depends only on its destination number, so tests are deterministic.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SimulatedLineSettings {
    /// Milliseconds from submission until the simulated transmission finishes.
    #[schemars(range(max = 600000))]
    pub delivery_latency_ms: u64,
    /// Milliseconds between status polls of a submitted fax.
    #[schemars(range(min = 10, max = 600000))]
    pub poll_interval_ms: u64,
    /// Destination numbers ending in these digits fail in transmission (terminal `FAILED`).
    pub fail_suffix: Option<String>,
    /// The error text recorded for a failed transmission.
    pub fail_error: String,
    /// Destination numbers ending in these digits are refused by the line at submission (a permanent,
    /// non-retryable error: the job ends `failed`).
    pub reject_suffix: Option<String>,
    /// Destination numbers ending in these digits get "busy, retry later" for the first
    /// `busyAttempts` submissions, with a Retry-After hint of `busyRetryAfterMs`.
    pub busy_suffix: Option<String>,
    /// How many submissions of a busy number are refused before it is accepted.
    #[schemars(range(max = 100))]
    pub busy_attempts: u32,
    /// Retry-After hint given with a busy answer, in milliseconds.
    #[schemars(range(max = 3600000))]
    pub busy_retry_after_ms: u64,
}

impl Default for SimulatedLineSettings {
    fn default() -> Self {
        SimulatedLineSettings {
            delivery_latency_ms: 1000,
            poll_interval_ms: 500,
            fail_suffix: Some("0000".into()),
            fail_error: "No answer (simulated)".into(),
            reject_suffix: Some("0001".into()),
            busy_suffix: Some("0002".into()),
            busy_attempts: 2,
            busy_retry_after_ms: 200,
        }
    }
}

/// Settings of the local-filesystem storage plugin (`local`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct LocalStorageSettings {
    /// Directory for documents; created with mode 0700 if missing. Defaults to `<FAX_DATA_DIR>/documents`.
    pub path: Option<String>,
}

/// Server-side encryption the S3 plugin asks for on every write.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum S3ServerSideEncryption {
    /// SSE-KMS: S3 encrypts with a KMS key (`sseKmsKeyId`, or the account's `aws/s3` key), so key use is
    /// audited in CloudTrail and access can be revoked by key policy — the usual choice for PHI.
    #[serde(rename = "aws:kms")]
    AwsKms,
    /// SSE-S3: S3-managed keys (AES-256).
    #[serde(rename = "AES256")]
    Aes256,
}

impl S3ServerSideEncryption {
    /// The wire value of `x-amz-server-side-encryption`.
    pub fn as_str(self) -> &'static str {
        match self {
            S3ServerSideEncryption::AwsKms => "aws:kms",
            S3ServerSideEncryption::Aes256 => "AES256",
        }
    }
}

/// Settings of the S3 storage plugin (`s3`): documents as objects in one bucket, shared by every replica.
/// The access key is a credential (files `storage.accessKeyId` / `storage.secretAccessKey`), never a setting.
///
/// Documents are PHI, so a binding must say how they are encrypted at rest: `serverSideEncryption` (or an
/// `sseKmsKeyId`, which implies `aws:kms`). Relying on the bucket's default encryption alone takes an
/// explicit `allowUnencrypted: true`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct S3StorageSettings {
    /// Bucket name (S3 naming rules: 3 to 63 lowercase letters, digits, '.' and '-').
    pub bucket: String,
    /// AWS region of the bucket; default `us-east-1` (or `AWS_REGION`).
    pub region: Option<String>,
    /// Endpoint of an S3-compatible server (MinIO, Ceph, a VPC endpoint); https:// required, http:// only
    /// for loopback. Omitted: AWS S3 of the region.
    pub endpoint: Option<String>,
    /// Key prefix inside the bucket (letters, digits, '-', '_', '.' and '/' between segments), so several
    /// deployments can share a bucket and an IAM policy can be scoped to `prefix/*`.
    pub prefix: Option<String>,
    /// Address the bucket as `endpoint/bucket/key` instead of `bucket.endpoint/key` (most S3-compatible
    /// servers need this).
    pub force_path_style: bool,
    /// `aws:kms` or `AES256`; defaults to `aws:kms` when `sseKmsKeyId` is set.
    pub server_side_encryption: Option<S3ServerSideEncryption>,
    /// KMS key id, ARN or alias (`alias/…`) for SSE-KMS; sent as
    /// `x-amz-server-side-encryption-aws-kms-key-id` on every write.
    pub sse_kms_key_id: Option<String>,
    /// Write without asking for server-side encryption (the bucket's default encryption then decides).
    /// Not HIPAA-compliant unless the bucket enforces encryption itself.
    pub allow_unencrypted: bool,
}

impl S3StorageSettings {
    /// The encryption in effect: the explicit choice, else `aws:kms` when a key id is given.
    pub fn effective_encryption(&self) -> Option<S3ServerSideEncryption> {
        self.server_side_encryption.or(self.sse_kms_key_id.as_ref().map(|_| S3ServerSideEncryption::AwsKms))
    }

    /// The prefix without a trailing `/`, if any.
    pub fn normalized_prefix(&self) -> Option<&str> {
        self.prefix.as_deref().map(|p| p.trim_end_matches('/')).filter(|p| !p.is_empty())
    }
}

/// S3 bucket naming rules (general purpose buckets), so a typo fails at validation, not at the first upload.
fn bucket_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is required");
    }
    if !(3..=63).contains(&name.len()) {
        return Some("must be 3 to 63 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return Some("may contain only lowercase letters, digits, '.' and '-'");
    }
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edge(name.as_bytes().first()) || !edge(name.as_bytes().last()) {
        return Some("must begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Some("must not contain '..', '.-' or '-.'");
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Some("must not be formatted as an IP address");
    }
    if name.starts_with("xn--")
        || name.starts_with("sthree-")
        || name.ends_with("-s3alias")
        || name.ends_with("--ol-s3")
    {
        return Some("uses a prefix or suffix S3 reserves (xn--, sthree-, -s3alias, --ol-s3)");
    }
    None
}

fn loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host =
        host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

impl SettingsCheck for S3StorageSettings {
    fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Some(problem) = bucket_name_problem(&self.bucket) {
            problems.push(("bucket".into(), problem.into()));
        }
        if let Some(region) = &self.region
            && (region.is_empty()
                || region.len() > 32
                || !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
        {
            problems
                .push(("region".into(), "must be 1 to 32 lowercase letters, digits or '-' (e.g. eu-west-1)".into()));
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("https://") || loopback_http(endpoint)) {
                problems.push(("endpoint".into(), "must be an https:// URL (http:// only for loopback)".into()));
            } else if has_userinfo(endpoint) {
                problems.push((
                    "endpoint".into(),
                    "must not embed credentials; use the accessKeyId and secretAccessKey credentials".into(),
                ));
            } else if endpoint.contains(['?', '#']) {
                problems.push(("endpoint".into(), "must not have a query or fragment".into()));
            } else if ip_literal_host(endpoint) && !self.force_path_style {
                // Virtual-hosted addressing puts the bucket in front of the host (`bucket.198.18.0.1`), which
                // is no host name at all: the S3 client panicked on every request (found on a real pod).
                problems.push((
                    "endpoint".into(),
                    "is an IP address: set forcePathStyle: true (the bucket cannot be put in front of an IP)".into(),
                ));
            }
        }
        if let Some(prefix) = &self.prefix {
            let trimmed = prefix.trim_end_matches('/');
            let safe = trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
            let segments_ok = trimmed.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
            if trimmed.is_empty() || trimmed.len() > 256 || !safe || !segments_ok {
                problems.push((
                    "prefix".into(),
                    "must be 1 to 256 letters, digits, '-', '_' or '.', with '/' only between non-empty segments \
                     (no '.' or '..' segments, no leading '/')"
                        .into(),
                ));
            }
        }
        if let Some(key) = &self.sse_kms_key_id {
            if key.is_empty() || key.len() > 2048 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                problems.push((
                    "sseKmsKeyId".into(),
                    "must be a KMS key id, key ARN, alias (alias/…) or alias ARN: 1 to 2048 printable characters \
                     without spaces"
                        .into(),
                ));
            }
            if self.server_side_encryption == Some(S3ServerSideEncryption::Aes256) {
                problems.push((
                    "sseKmsKeyId".into(),
                    "applies only to serverSideEncryption aws:kms (AES256 uses S3-managed keys)".into(),
                ));
            }
        }
        match (self.effective_encryption(), self.allow_unencrypted) {
            (None, false) => problems.push((
                "serverSideEncryption".into(),
                "is required: documents are PHI; set aws:kms (with sseKmsKeyId for your own key) or AES256, or \
                 allowUnencrypted: true to rely on the bucket's default encryption"
                    .into(),
            )),
            (Some(_), true) => problems.push((
                "allowUnencrypted".into(),
                "contradicts serverSideEncryption/sseKmsKeyId; remove one of them".into(),
            )),
            _ => {}
        }
        problems
    }
}

/// Settings of the API-key auth plugin (`api_keys`). It has none today; the object exists so that the
/// auth slot is validated like every other slot.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKeyAuthSettings {}

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

fn http_url(value: &str) -> bool {
    value.starts_with("https://") || value.starts_with("http://127.0.0.1") || value.starts_with("http://localhost")
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

/// Settings of the SIP/Asterisk plugin (`sip`): faxes go out over the hospital's own SIP trunk through
/// Asterisk, driven over the Asterisk Manager Interface (AMI), so PHI never passes through a cloud provider.
/// The AMI secret and the inbound callback secret are credentials (files), never settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SipSettings {
    /// Host name or IP of Asterisk's manager interface (required for sending).
    pub ami_host: String,
    /// AMI TCP port.
    pub ami_port: u16,
    /// AMI user (a `manager.conf` section with read `call,user` and write `originate,reporting`).
    pub ami_username: String,
    /// Dial string of the outbound leg; `{number}` becomes the E.164 destination (`+` and digits).
    pub channel_template: String,
    /// Dialplan context that runs `SendFAX` on the answered channel (see `config/asterisk/extensions.conf`).
    pub context: String,
    /// Directory where the API server writes the fax TIFFs; a volume Asterisk mounts too. The default lies
    /// on the data volume the operator mounts at `/var/lib/faxbot` (the root filesystem is read-only).
    pub spool_dir: String,
    /// The same directory as Asterisk sees it, when it is mounted at another path there.
    pub asterisk_spool_dir: Option<String>,
    /// Directory where Asterisk writes received faxes, as the API server sees it. The inbound callback names
    /// only a file in it; any other path is refused.
    pub inbound_dir: String,
    /// How long the far end may ring before the call counts as unanswered.
    #[schemars(range(min = 5, max = 300))]
    pub ring_timeout_seconds: u32,
    /// How long an answered call may take to transmit the whole fax before it is given up.
    #[schemars(range(min = 30, max = 7200))]
    pub fax_timeout_seconds: u32,
    /// Milliseconds between status checks of a call in progress (results arrive as AMI events; the check
    /// only reads what was recorded).
    #[schemars(range(min = 50, max = 60000))]
    pub poll_interval_ms: u64,
    /// Vertical resolution of the fax image.
    pub resolution: FaxResolution,
    /// Paper size every page is fitted to.
    pub paper_size: FaxPaperSize,
    /// TIFF compression: `g4` (T.6, smallest) or `g3` (T.4 1-D, most compatible).
    pub compression: FaxCompression,
    /// Transmitting station id (TSI), for example the sending fax number.
    pub station_id: Option<String>,
    /// Header line printed on each page by the fax stack.
    pub header_text: Option<String>,
}

/// Fax image resolution.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FaxResolution {
    /// 204×196 dpi.
    #[default]
    Fine,
    /// 204×98 dpi.
    Standard,
}

/// Paper size of fax pages.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FaxPaperSize {
    /// US letter.
    #[default]
    Letter,
    /// ISO A4.
    A4,
}

/// Fax TIFF compression.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FaxCompression {
    /// CCITT T.6 (Group 4).
    #[default]
    G4,
    /// CCITT T.4 one-dimensional (Group 3).
    G3,
}

impl Default for SipSettings {
    fn default() -> Self {
        SipSettings {
            ami_host: String::new(),
            ami_port: 5038,
            ami_username: String::new(),
            channel_template: "PJSIP/{number}@trunk-endpoint".into(),
            context: "fax-tx".into(),
            spool_dir: "/var/lib/faxbot/spool/outbound".into(),
            asterisk_spool_dir: None,
            inbound_dir: "/var/lib/faxbot/spool/inbound".into(),
            ring_timeout_seconds: 60,
            fax_timeout_seconds: 900,
            poll_interval_ms: 2000,
            resolution: FaxResolution::Fine,
            paper_size: FaxPaperSize::Letter,
            compression: FaxCompression::G4,
            station_id: None,
            header_text: None,
        }
    }
}

/// Characters that cannot break out of an AMI header or a dialplan argument list (AMI lines end at CR/LF,
/// `Variable:` values are split at commas, `UserEvent` bodies at commas and `|`).
fn ami_safe(value: &str) -> bool {
    value.chars().all(|c| !c.is_control() && c != ',' && c != '|' && c != ';')
}

impl SettingsCheck for SipSettings {
    fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let host_ok = !self.ami_host.is_empty()
            && self.ami_host.len() <= 253
            && self.ami_host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !host_ok {
            problems.push(("amiHost".into(), "must be a host name or IP address".into()));
        }
        if self.ami_port == 0 {
            problems.push(("amiPort".into(), "must be between 1 and 65535".into()));
        }
        if self.ami_username.is_empty() || self.ami_username.len() > 64 || !ami_safe(&self.ami_username) {
            problems
                .push(("amiUsername".into(), "must be 1 to 64 characters without commas or control characters".into()));
        }
        if self.channel_template.matches("{number}").count() != 1
            || !ami_safe(&self.channel_template)
            || self.channel_template.len() > 200
        {
            problems.push((
                "channelTemplate".into(),
                "must contain `{number}` exactly once, e.g. PJSIP/{number}@trunk-endpoint".into(),
            ));
        }
        let word = |v: &str| {
            !v.is_empty() && v.len() <= 80 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        };
        if !word(&self.context) {
            problems.push(("context".into(), "must be a dialplan context name (letters, digits, - and _)".into()));
        }
        let dir =
            |v: &str| v.starts_with('/') && !v.split('/').any(|part| part == "..") && ami_safe(v) && v.len() <= 200;
        for (field, value) in [
            ("spoolDir", Some(&self.spool_dir)),
            ("asteriskSpoolDir", self.asterisk_spool_dir.as_ref()),
            ("inboundDir", Some(&self.inbound_dir)),
        ] {
            if let Some(v) = value
                && !dir(v)
            {
                problems
                    .push((field.into(), "must be an absolute path without `..`, commas or control characters".into()));
            }
        }
        if !(5..=300).contains(&self.ring_timeout_seconds) {
            problems.push(("ringTimeoutSeconds".into(), "must be between 5 and 300".into()));
        }
        if !(30..=7200).contains(&self.fax_timeout_seconds) {
            problems.push(("faxTimeoutSeconds".into(), "must be between 30 and 7200".into()));
        }
        if !(50..=60_000).contains(&self.poll_interval_ms) {
            problems.push(("pollIntervalMs".into(), "must be between 50 and 60000".into()));
        }
        if let Some(id) = &self.station_id
            && (id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit() || b" +".contains(&b)))
        {
            problems.push(("stationId".into(), "must be 1 to 20 digits, spaces or +".into()));
        }
        // Asterisk removes `"` and `\` from an Originate `Variable:` value, so a header with them would be
        // printed on every page other than it was configured: refused instead of silently altered.
        if let Some(h) = &self.header_text
            && (h.chars().count() > 50 || !ami_safe(h) || !h.is_ascii() || h.contains(['"', '\\']))
        {
            problems.push((
                "headerText".into(),
                "must be at most 50 ASCII characters without , | ; \" or \\ (Asterisk drops quotes and backslashes)"
                    .into(),
            ));
        }
        problems
    }
}

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

/// Whether a URL carries `user:password@` (credentials belong in files, not in the config document).
/// Whether the URL's host is an IP address literal (`1.2.3.4` or `[::1]`).
fn ip_literal_host(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.starts_with('[') {
        return true;
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    host.parse::<std::net::Ipv4Addr>().is_ok()
}

fn has_userinfo(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
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

/// Semantic checks that a JSON Schema cannot express well.
pub trait SettingsCheck {
    /// Returns `(field, message)` pairs for every problem.
    fn check(&self) -> Vec<(String, String)>;
}

impl SettingsCheck for SimulatedLineSettings {
    fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (field, value) in [
            ("failSuffix", &self.fail_suffix),
            ("rejectSuffix", &self.reject_suffix),
            ("busySuffix", &self.busy_suffix),
        ] {
            if let Some(suffix) = value
                && (suffix.is_empty() || suffix.len() > 8 || !suffix.bytes().all(|b| b.is_ascii_digit()))
            {
                problems.push((field.to_string(), "must be 1 to 8 digits".to_string()));
            }
        }
        if self.delivery_latency_ms > 600_000 {
            problems.push(("deliveryLatencyMs".into(), "must be at most 600000".into()));
        }
        if !(10..=600_000).contains(&self.poll_interval_ms) {
            problems.push(("pollIntervalMs".into(), "must be between 10 and 600000".into()));
        }
        if self.busy_attempts > 100 {
            problems.push(("busyAttempts".into(), "must be at most 100".into()));
        }
        if self.busy_retry_after_ms > 3_600_000 {
            problems.push(("busyRetryAfterMs".into(), "must be at most 3600000".into()));
        }
        if self.fail_error.len() > 200 {
            problems.push(("failError".into(), "must be at most 200 characters".into()));
        }
        problems
    }
}

impl SettingsCheck for LocalStorageSettings {
    fn check(&self) -> Vec<(String, String)> {
        if self.path.as_deref().is_some_and(|p| p.trim().is_empty()) {
            vec![("path".into(), "must not be empty".into())]
        } else {
            Vec::new()
        }
    }
}

impl SettingsCheck for ApiKeyAuthSettings {
    fn check(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Plugin id of the simulated line.
pub const SIMULATED_LINE: &str = "test";
/// Plugin id of local-disk storage.
pub const LOCAL_STORAGE: &str = "local";
/// Plugin id of S3 (and S3-compatible) storage.
pub const S3_STORAGE: &str = "s3";
/// Plugin id of API-key authentication.
pub const API_KEY_AUTH: &str = "api_keys";
/// Plugin id of Phaxio.
pub const PHAXIO: &str = "phaxio";
/// Plugin id of Sinch.
pub const SINCH: &str = "sinch";
/// Plugin id of the SIP/Asterisk line.
pub const SIP: &str = "sip";

fn schema_of<T: JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}

/// Every plugin built into this version, in a stable order.
pub fn builtin_manifests() -> Vec<PluginManifest> {
    let version = env!("CARGO_PKG_VERSION").to_string();
    vec![
        PluginManifest {
            id: SIMULATED_LINE.into(),
            name: "Simulated fax line".into(),
            version: version.clone(),
            description: "A built-in line that simulates transmission with configurable latency and \
                          deterministic failure injection, and inbound faxes on request \
                          (POST /admin/inbound/simulate); no external service."
                .into(),
            categories: vec![Category::Outbound, Category::Inbound],
            capabilities: vec![Capability::Send, Capability::Status, Capability::Idempotency, Capability::Receive],
            hipaa_compliant: true,
            settings_schema: schema_of::<SimulatedLineSettings>(),
            credentials: vec![],
        },
        PluginManifest {
            id: PHAXIO.into(),
            name: "Phaxio".into(),
            version: version.clone(),
            description: "Phaxio API v2.1 cloud fax (a BAA is available). Submissions are tagged with the job id, \
                          so an interrupted submission is found again instead of being sent twice."
                .into(),
            categories: vec![Category::Outbound, Category::Inbound],
            capabilities: vec![
                Capability::Send,
                Capability::Status,
                Capability::Cancel,
                Capability::Idempotency,
                Capability::Webhook,
                Capability::Receive,
            ],
            hipaa_compliant: true,
            settings_schema: schema_of::<PhaxioSettings>(),
            credentials: vec![
                CredentialSpec {
                    name: "apiKey".into(),
                    description: "Phaxio API key (Basic auth user).".into(),
                    required: true,
                },
                CredentialSpec {
                    name: "apiSecret".into(),
                    description: "Phaxio API secret (Basic auth password).".into(),
                    required: true,
                },
                CredentialSpec {
                    name: "webhookToken".into(),
                    description:
                        "Phaxio callback (webhook) token that keys X-Phaxio-Signature; needed with callbackUrl.".into(),
                    required: false,
                },
            ],
        },
        PluginManifest {
            id: SINCH.into(),
            name: "Sinch".into(),
            version: version.clone(),
            description: "Sinch Fax API v3 cloud fax (a BAA is available), outbound and inbound. Submissions are \
                          labelled with the job id, so an interrupted submission is found again instead of being \
                          sent twice; callbacks are authenticated by Basic credentials embedded in the callback URL."
                .into(),
            categories: vec![Category::Outbound, Category::Inbound],
            capabilities: vec![
                Capability::Send,
                Capability::Status,
                Capability::Webhook,
                Capability::Receive,
                Capability::Idempotency,
            ],
            hipaa_compliant: true,
            settings_schema: schema_of::<SinchSettings>(),
            credentials: vec![
                CredentialSpec {
                    name: "keyId".into(),
                    description: "Sinch access key id (OAuth2 client id, or Basic user).".into(),
                    required: true,
                },
                CredentialSpec {
                    name: "keySecret".into(),
                    description: "Sinch access key secret (OAuth2 client secret, or Basic password).".into(),
                    required: true,
                },
                CredentialSpec {
                    name: "webhookPassword".into(),
                    description: "Password of the Basic credentials embedded in callbackUrl (user: webhookUser); \
                                  without it every Sinch callback is refused."
                        .into(),
                    required: false,
                },
            ],
        },
        PluginManifest {
            id: SIP.into(),
            name: "SIP trunk via Asterisk".into(),
            version: version.clone(),
            description: "Self-hosted fax over the organisation's own SIP trunk (T.38) through Asterisk, driven over \
                          the Asterisk Manager Interface; received faxes arrive through the internal callback \
                          (POST /_internal/asterisk/inbound). PHI stays inside the network. Each call is recorded \
                          before it is dialled, so a repeated submission adopts it instead of dialling twice."
                .into(),
            categories: vec![Category::Outbound, Category::Inbound],
            capabilities: vec![Capability::Send, Capability::Status, Capability::Receive, Capability::Idempotency],
            hipaa_compliant: true,
            settings_schema: schema_of::<SipSettings>(),
            credentials: vec![
                CredentialSpec {
                    name: "amiSecret".into(),
                    description: "Password of the AMI user (`secret` in manager.conf).".into(),
                    required: true,
                },
                CredentialSpec {
                    name: "inboundSecret".into(),
                    description: "Shared secret Asterisk sends as X-Internal-Secret with each received fax; without \
                                  it every inbound callback is refused."
                        .into(),
                    required: false,
                },
            ],
        },
        PluginManifest {
            id: LOCAL_STORAGE.into(),
            name: "Local filesystem storage".into(),
            version: version.clone(),
            description: "Documents on a local or mounted volume, written atomically with mode 0600.".into(),
            categories: vec![Category::Storage],
            capabilities: vec![Capability::Store],
            hipaa_compliant: true,
            settings_schema: schema_of::<LocalStorageSettings>(),
            credentials: vec![],
        },
        PluginManifest {
            id: S3_STORAGE.into(),
            name: "Amazon S3 storage".into(),
            version: version.clone(),
            description: "Documents as objects in an S3 (or S3-compatible) bucket that every replica shares, \
                          written with server-side encryption (SSE-KMS with a configurable key, or SSE-S3) and \
                          uploaded in parts, so memory stays bounded. Without the access key credentials the AWS \
                          credential chain is used (environment, IRSA web identity, ECS or EC2 instance role)."
                .into(),
            categories: vec![Category::Storage],
            capabilities: vec![Capability::Store],
            hipaa_compliant: true,
            settings_schema: schema_of::<S3StorageSettings>(),
            credentials: vec![
                CredentialSpec {
                    name: "accessKeyId".into(),
                    description: "AWS access key id; omit both keys to use the AWS credential chain (IRSA web \
                                  identity, instance role)."
                        .into(),
                    required: false,
                },
                CredentialSpec {
                    name: "secretAccessKey".into(),
                    description: "AWS secret access key, given together with accessKeyId.".into(),
                    required: false,
                },
            ],
        },
        PluginManifest {
            id: API_KEY_AUTH.into(),
            name: "API keys".into(),
            version,
            description: "X-API-Key authentication with scoped, revocable keys.".into(),
            categories: vec![Category::Auth],
            capabilities: vec![],
            hipaa_compliant: true,
            settings_schema: schema_of::<ApiKeyAuthSettings>(),
            credentials: vec![
                CredentialSpec {
                    name: "adminKey".into(),
                    description: "The bootstrap admin key (X-API-Key with every scope) used to create the first \
                                  scoped keys; mounted as API_KEY_FILE."
                        .into(),
                    required: true,
                },
                CredentialSpec {
                    name: "pepper".into(),
                    description: "Server secret that keys the stored hashes of API keys; every replica must share \
                                  it, so a managed deployment always takes it from a Secret (FAXBOT_PEPPER_FILE)."
                        .into(),
                    required: true,
                },
            ],
        },
    ]
}

/// Looks up a built-in manifest by id.
pub fn manifest(id: &str) -> Option<PluginManifest> {
    builtin_manifests().into_iter().find(|m| m.id == id)
}

/// Deserialises and checks the settings of plugin `id`. Returns `(path, message)` problems, with paths
/// relative to the settings object.
pub fn check_settings(id: &str, settings: &serde_json::Value) -> Result<(), Vec<(String, String)>> {
    match id {
        SIMULATED_LINE => typed_check::<SimulatedLineSettings>(settings),
        LOCAL_STORAGE => typed_check::<LocalStorageSettings>(settings),
        S3_STORAGE => typed_check::<S3StorageSettings>(settings),
        API_KEY_AUTH => typed_check::<ApiKeyAuthSettings>(settings),
        PHAXIO => typed_check::<PhaxioSettings>(settings),
        SINCH => typed_check::<SinchSettings>(settings),
        SIP => typed_check::<SipSettings>(settings),
        other => Err(vec![(String::new(), format!("unknown plugin `{other}`"))]),
    }
}

/// Parses settings of a known type, for the server side that needs the typed value.
pub fn parse_settings<T: DeserializeOwned + SettingsCheck>(
    settings: &serde_json::Value,
) -> Result<T, Vec<(String, String)>> {
    let value: T = serde_path_to_error::deserialize(settings).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        vec![(path, e.inner().to_string())]
    })?;
    let problems = value.check();
    if problems.is_empty() { Ok(value) } else { Err(problems) }
}

fn typed_check<T: DeserializeOwned + SettingsCheck>(settings: &serde_json::Value) -> Result<(), Vec<(String, String)>> {
    parse_settings::<T>(settings).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_has_an_object_schema_and_accepts_empty_settings() {
        for m in builtin_manifests() {
            assert_eq!(m.settings_schema["type"], "object", "{}", m.id);
            // Sinch cannot work without a project id, so its minimal settings name one.
            // Sinch needs a project, SIP an AMI host and user, S3 a bucket and an encryption choice (PHI).
            let minimal = match m.id.as_str() {
                SINCH => serde_json::json!({"projectId": "p"}),
                SIP => serde_json::json!({"amiHost": "asterisk", "amiUsername": "faxbot"}),
                S3_STORAGE => serde_json::json!({"bucket": "faxbot-docs", "serverSideEncryption": "AES256"}),
                _ => serde_json::json!({}),
            };
            check_settings(&m.id, &minimal).unwrap();
        }
    }

    #[test]
    fn sinch_settings_are_checked() {
        let problems = |v: serde_json::Value| {
            check_settings(SINCH, &v).err().unwrap_or_default().into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        assert_eq!(problems(serde_json::json!({})), vec!["projectId"]);
        assert_eq!(problems(serde_json::json!({"projectId": "../other"})), vec!["projectId"]);
        assert_eq!(problems(serde_json::json!({"projectId": "x".repeat(65)})), vec!["projectId"]);
        assert!(problems(serde_json::json!({"projectId": "3f1c-a_9"})).is_empty());
        assert_eq!(
            problems(serde_json::json!({"projectId": "p", "region": "eu1", "baseUrl": "https://x.test/v3/"})),
            vec!["baseUrl"]
        );
        for bad in ["http://example.test/v3/", "https://x.test/v3", "https://u:p@x.test/v3/"] {
            assert_eq!(problems(serde_json::json!({"projectId": "p", "baseUrl": bad})), vec!["baseUrl"], "{bad}");
        }
        assert!(problems(serde_json::json!({"projectId": "p", "baseUrl": "http://127.0.0.1:9/v3/"})).is_empty());
        assert_eq!(problems(serde_json::json!({"projectId": "p", "authUrl": "http://auth.test/t"})), vec!["authUrl"]);
        assert_eq!(
            problems(serde_json::json!({"projectId": "p", "webhookUser": "u",
                "callbackUrl": "https://u:pw@hooks.test/webhooks/sinch"})),
            vec!["callbackUrl"],
            "credentials go in files, never in the document"
        );
        assert!(
            problems(
                serde_json::json!({"projectId": "p", "callbackUrl": "https://a.test/x?y=a@b", "webhookUser": "u"})
            )
            .is_empty()
        );
        assert_eq!(
            problems(serde_json::json!({"projectId": "p", "callbackUrl": "https://a.test/webhooks/sinch"})),
            vec!["webhookUser"],
            "an unverifiable callback is not configurable"
        );
        assert_eq!(problems(serde_json::json!({"projectId": "p", "webhookUser": "a:b"})), vec!["webhookUser"]);
        assert_eq!(problems(serde_json::json!({"projectId": "p", "pollIntervalMs": 99})), vec!["pollIntervalMs"]);
        assert_eq!(problems(serde_json::json!({"projectId": "p", "pollIntervalMs": 600001})), vec!["pollIntervalMs"]);
        let err = check_settings(SINCH, &serde_json::json!({"projectId": "p", "region": "us"})).unwrap_err();
        assert_eq!(err[0].0, "region", "{err:?}");
        let err = check_settings(SINCH, &serde_json::json!({"projectId": "p", "authMethod": "hmac"})).unwrap_err();
        assert_eq!(err[0].0, "authMethod", "{err:?}");
        let err = check_settings(SINCH, &serde_json::json!({"projectId": "p", "callbackContentType": "text/xml"}))
            .unwrap_err();
        assert_eq!(err[0].0, "callbackContentType", "{err:?}");
        let err = check_settings(SINCH, &serde_json::json!({"projectId": "p", "keySecret": "s"})).unwrap_err();
        assert!(err[0].1.contains("unknown field `keySecret`"), "secrets are not settings: {err:?}");

        let s: SinchSettings = parse_settings(&serde_json::json!({"projectId": "p", "region": "eu1"})).unwrap();
        assert_eq!(s.effective_base_url(), "https://eu1.fax.api.sinch.com/v3/");
        assert_eq!(s.auth_method, SinchAuthMethod::Oauth2);
        assert_eq!(s.callback_content_type.as_str(), "multipart/form-data");
        let s: SinchSettings = parse_settings(&serde_json::json!({"projectId": "p"})).unwrap();
        assert_eq!(s.effective_base_url(), SINCH_GLOBAL_BASE_URL);
        let m = manifest(SINCH).unwrap();
        assert!(m.fills(Category::Outbound) && m.fills(Category::Inbound));
        assert!(m.settings_schema["properties"]["projectId"].is_object());
        assert!(m.credentials.iter().all(|c| c.name != "projectId"), "the project id is a setting");
    }

    #[test]
    fn sip_settings_are_checked() {
        let problems = |v: serde_json::Value| {
            check_settings(SIP, &v).err().unwrap_or_default().into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        let ok = serde_json::json!({"amiHost": "asterisk.pbx.svc", "amiUsername": "faxbot"});
        assert!(problems(ok.clone()).is_empty());
        assert_eq!(problems(serde_json::json!({})), vec!["amiHost", "amiUsername"]);
        let with = |k: &str, v: serde_json::Value| {
            let mut o = ok.clone();
            o[k] = v;
            problems(o)
        };
        assert_eq!(with("amiHost", "a b".into()), vec!["amiHost"]);
        assert_eq!(with("amiUsername", "x\r\nAction: Hangup".into()), vec!["amiUsername"], "no header injection");
        assert_eq!(with("channelTemplate", "PJSIP/trunk".into()), vec!["channelTemplate"]);
        assert_eq!(with("channelTemplate", "PJSIP/{number}@a,b".into()), vec!["channelTemplate"]);
        assert_eq!(with("context", "fax tx".into()), vec!["context"]);
        assert_eq!(with("spoolDir", "spool".into()), vec!["spoolDir"]);
        assert_eq!(with("inboundDir", "/var/../etc".into()), vec!["inboundDir"]);
        assert_eq!(with("asteriskSpoolDir", "/faxdata,x".into()), vec!["asteriskSpoolDir"]);
        assert_eq!(with("ringTimeoutSeconds", 4.into()), vec!["ringTimeoutSeconds"]);
        assert_eq!(with("faxTimeoutSeconds", 7201.into()), vec!["faxTimeoutSeconds"]);
        assert_eq!(with("stationId", "call me".into()), vec!["stationId"]);
        assert_eq!(with("headerText", "Clinic, Inc".into()), vec!["headerText"], "commas split dialplan args");
        assert_eq!(with("headerText", "x".repeat(51).into()), vec!["headerText"]);
        assert_eq!(with("headerText", "Dr. \"Who\" Clinic".into()), vec!["headerText"], "Asterisk drops quotes");
        assert_eq!(with("headerText", "C:\\fax".into()), vec!["headerText"], "and backslashes");
        assert!(with("headerText", "St. Mary's Clinic (Fax)".into()).is_empty());
        let err = check_settings(SIP, &serde_json::json!({"amiHost": "a", "amiUsername": "u", "resolution": "high"}))
            .unwrap_err();
        assert_eq!(err[0].0, "resolution", "{err:?}");
        let err = check_settings(SIP, &serde_json::json!({"amiHost": "a", "amiUsername": "u", "amiSecret": "s"}))
            .unwrap_err();
        assert!(err[0].1.contains("unknown field `amiSecret`"), "secrets are not settings: {err:?}");
        let s: SipSettings = parse_settings(&ok).unwrap();
        assert_eq!((s.ami_port, s.context.as_str(), s.compression), (5038, "fax-tx", FaxCompression::G4));
        let m = manifest(SIP).unwrap();
        assert!(m.fills(Category::Outbound) && m.fills(Category::Inbound));
        assert!(m.has(Capability::Idempotency), "calls are recorded before dialling and adopted on repeat");
    }

    #[test]
    fn s3_settings_are_checked() {
        let problems = |v: serde_json::Value| {
            check_settings(S3_STORAGE, &v).err().unwrap_or_default().into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        let ok = |extra: serde_json::Value| {
            let mut v = serde_json::json!({"bucket": "faxbot-docs", "sseKmsKeyId": "alias/faxbot"});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            v
        };
        assert!(problems(ok(serde_json::json!({}))).is_empty());
        assert_eq!(problems(serde_json::json!({"sseKmsKeyId": "k"})), vec!["bucket"]);
        for bad in ["ab", "Faxbot", "-faxbot", "faxbot-", "fax..bot", "192.168.1.2", "xn--fax", "a_b", &"a".repeat(64)]
        {
            assert_eq!(problems(ok(serde_json::json!({"bucket": bad}))), vec!["bucket"], "{bad}");
        }
        assert!(problems(ok(serde_json::json!({"bucket": "fax.bot-01"}))).is_empty());
        assert_eq!(problems(ok(serde_json::json!({"region": "EU_WEST"}))), vec!["region"]);
        for bad in ["http://s3.example.org", "https://ak:sk@s3.example.org", "ftp://x", "https://s3.test/?a=b"] {
            assert_eq!(problems(ok(serde_json::json!({"endpoint": bad}))), vec!["endpoint"], "{bad}");
        }
        for good in ["https://s3.eu-west-1.amazonaws.com", "http://localhost:9000/", "https://minio.storage.svc:9000"] {
            assert!(problems(ok(serde_json::json!({"endpoint": good}))).is_empty(), "{good}");
        }
        // An IP address takes path-style addressing: `bucket.<ip>` is no host name.
        for ip in ["http://127.0.0.1:9000", "https://198.18.0.1:9443", "https://[::1]:9000/"] {
            assert_eq!(problems(ok(serde_json::json!({"endpoint": ip}))), vec!["endpoint"], "{ip}");
            let path_style = serde_json::json!({"endpoint": ip, "forcePathStyle": true});
            assert!(problems(ok(path_style)).is_empty(), "{ip} with forcePathStyle");
        }
        assert_eq!(problems(ok(serde_json::json!({"endpoint": "http://127.0.0.1.evil.test"}))), vec!["endpoint"]);
        for bad in ["/abs", "a//b", "a/../b", "a b", "", "ü"] {
            assert_eq!(problems(ok(serde_json::json!({"prefix": bad}))), vec!["prefix"], "{bad:?}");
        }
        assert!(problems(ok(serde_json::json!({"prefix": "prod/faxbot/"}))).is_empty());
        assert_eq!(problems(ok(serde_json::json!({"sseKmsKeyId": "key with spaces"}))), vec!["sseKmsKeyId"]);
        assert_eq!(problems(ok(serde_json::json!({"serverSideEncryption": "AES256"}))), vec!["sseKmsKeyId"]);
        assert_eq!(
            problems(serde_json::json!({"bucket": "faxbot-docs"})),
            vec!["serverSideEncryption"],
            "PHI at rest needs an explicit encryption choice"
        );
        assert!(problems(serde_json::json!({"bucket": "faxbot-docs", "allowUnencrypted": true})).is_empty());
        assert_eq!(problems(ok(serde_json::json!({"allowUnencrypted": true}))), vec!["allowUnencrypted"]);
        let err =
            check_settings(S3_STORAGE, &ok(serde_json::json!({"serverSideEncryption": "aws:kms:dsse"}))).unwrap_err();
        assert_eq!(err[0].0, "serverSideEncryption", "{err:?}");
        let err = check_settings(S3_STORAGE, &ok(serde_json::json!({"secretAccessKey": "x"}))).unwrap_err();
        assert!(err[0].1.contains("unknown field `secretAccessKey`"), "credentials are not settings: {err:?}");

        let s: S3StorageSettings = parse_settings(&ok(serde_json::json!({"prefix": "a/b/"}))).unwrap();
        assert_eq!(s.effective_encryption(), Some(S3ServerSideEncryption::AwsKms));
        assert_eq!(s.normalized_prefix(), Some("a/b"));
        let m = manifest(S3_STORAGE).unwrap();
        assert!(m.fills(Category::Storage) && !m.fills(Category::Outbound));
        assert!(m.settings_schema["properties"]["sseKmsKeyId"].is_object());
        assert_eq!(
            m.credentials.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["accessKeyId", "secretAccessKey"]
        );
    }

    #[test]
    fn simulated_line_settings_are_checked() {
        let err = check_settings(SIMULATED_LINE, &serde_json::json!({"failSuffix": "12a"})).unwrap_err();
        assert_eq!(err, vec![("failSuffix".to_string(), "must be 1 to 8 digits".to_string())]);
        let err = check_settings(SIMULATED_LINE, &serde_json::json!({"deliveryLatencyMs": "slow"})).unwrap_err();
        assert_eq!(err[0].0, "deliveryLatencyMs");
        assert!(err[0].1.contains("invalid type"), "{:?}", err);
        let err = check_settings(SIMULATED_LINE, &serde_json::json!({"latency": 5})).unwrap_err();
        assert!(err[0].1.contains("unknown field `latency`"), "{:?}", err);
    }

    #[test]
    fn schema_describes_settings_fields() {
        let m = manifest(SIMULATED_LINE).unwrap();
        assert!(m.settings_schema["properties"]["deliveryLatencyMs"].is_object());
        assert!(m.has(Capability::Idempotency));
    }
}
