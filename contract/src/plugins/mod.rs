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

mod auth;
mod external;
mod phaxio;
mod simulated;
mod sinch;
mod sip;
mod storage;
mod urls;

pub use auth::ApiKeyAuthSettings;
pub use external::ExternalSettings;
pub use phaxio::*;
pub use simulated::SimulatedLineSettings;
pub use sinch::*;
pub use sip::*;
pub use storage::*;
use urls::*;

/// Semantic checks that a JSON Schema cannot express well.
pub trait SettingsCheck {
    /// Returns `(field, message)` pairs for every problem.
    fn check(&self) -> Vec<(String, String)>;
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
/// Plugin id of a sidecar plugin (the sidecar protocol, [`crate::sidecar`]).
pub const EXTERNAL: &str = "external";

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
            id: EXTERNAL.into(),
            name: "Sidecar plugin".into(),
            version: version.clone(),
            description: "A provider plugin that runs as a separate process beside the server (a sidecar container \
                          in the API pod) and speaks the Faxbot sidecar protocol over loopback \
                          (docs/plugin-protocol.yaml); what it can do, and whether it is HIPAA-compliant, comes \
                          from its own manifest. Written with the Rust, Python or Node plugin kit."
                .into(),
            categories: vec![Category::Outbound],
            capabilities: vec![Capability::Send, Capability::Status, Capability::Cancel, Capability::Webhook],
            hipaa_compliant: false,
            settings_schema: schema_of::<ExternalSettings>(),
            credentials: vec![CredentialSpec {
                name: "pluginToken".into(),
                description: "Shared token the server presents to the sidecar (Authorization: Bearer); the operator \
                              hands the same value to the sidecar as FAXBOT_PLUGIN_TOKEN."
                    .into(),
                required: false,
            }],
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

/// Whether a callback URL may be used: https, or http to loopback; no `user:password@`.
pub fn http_url_allowed(value: &str) -> bool {
    http_url(value) && !has_userinfo(value)
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
        EXTERNAL => typed_check::<ExternalSettings>(settings),
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
                EXTERNAL => serde_json::json!({"url": "http://127.0.0.1:8090"}),
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
