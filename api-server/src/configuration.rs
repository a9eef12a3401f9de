//! Process settings from the environment, with the reference server's variable names where they exist.
//!
//! Everything here is fixed for the life of the process. What may change while the server runs (provider
//! slots, plugin settings, feature flags) lives in the runtime-config document instead (see
//! [`crate::runtime`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A setting could not be parsed; the message names the variable and what it expects.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct SettingsError {
    name: &'static str,
    message: String,
}

/// All process settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address (`FAXBOT_LISTEN`, or `0.0.0.0:$PORT`, default `0.0.0.0:8080`).
    pub listen: SocketAddr,
    /// Data directory (`FAX_DATA_DIR`, default `./data`): SQLite file, documents, pepper.
    pub data_dir: PathBuf,
    /// Database URL (`DATABASE_URL`, default `sqlite://<data dir>/faxbot.db`).
    pub database_url: String,
    /// Pool size (`FAXBOT_DB_MAX_CONNECTIONS`, default 8).
    pub db_max_connections: u32,
    /// Upload limit in bytes (`MAX_FILE_SIZE_MB` × 1 MiB, default 10 MiB).
    pub max_file_bytes: u64,
    /// The limit as configured in MB, for the 413 message.
    pub max_file_mb: u64,
    /// Most pages one fax may have (`MAX_PAGES`, default 100, at most the page counter's cap of 10,000):
    /// a fax line sends about a page a minute, so a larger document is almost always a mistake that would
    /// tie up a line (and a rasteriser) for hours.
    pub max_pages: u32,
    /// Bootstrap admin key (`API_KEY`, or the contents of `API_KEY_FILE`).
    pub api_key: Option<String>,
    /// Where the bootstrap admin key lives (`API_KEY_FILE`); generated there when missing.
    pub api_key_file: Option<PathBuf>,
    /// Enforce auth even without an env key (`REQUIRE_API_KEY`).
    pub require_api_key: bool,
    /// Explicit pepper (`API_KEY_PEPPER`); otherwise read or generated at `FAXBOT_PEPPER_FILE`.
    pub pepper: Option<String>,
    /// Pepper file (`FAXBOT_PEPPER_FILE`, default `<data dir>/pepper`).
    pub pepper_file: PathBuf,
    /// Outbound plugin when no config document is given (`FAX_BACKEND`, default `test`).
    pub fax_backend: String,
    /// Accept and store jobs but never dispatch (`FAX_DISABLED`).
    pub fax_disabled: bool,
    /// Runtime-config document (`FAXBOT_CONFIG_PATH`); without it the document is built from the environment.
    pub config_path: Option<PathBuf>,
    /// How often the document is checked for changes (`FAXBOT_CONFIG_POLL_MS`, default 2000).
    pub config_poll: Duration,
    /// `FEATURE_V3_PLUGINS` when no document is given.
    pub feature_v3_plugins: bool,
    /// `FEATURE_PLUGIN_INSTALL` when no document is given.
    pub feature_plugin_install: bool,
    /// `FEATURE_MCP` when no document is given: MCP for AI assistants at `/mcp`.
    pub feature_mcp: bool,
    /// `FEATURE_ADMIN_CONSOLE` when no document is given: the admin console at `/admin/ui/`.
    pub feature_admin_console: bool,
    /// Per-key requests per minute on `/fax` routes (`MAX_REQUESTS_PER_MINUTE`, 0 = off).
    pub rate_limit_rpm: u32,
    /// Failed API key authentications allowed per client address and minute before `429`
    /// (`FAXBOT_AUTH_FAILURES_PER_MINUTE`, default 30, 0 = off).
    pub auth_failures_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` names the client (`FAXBOT_TRUSTED_PROXIES`, comma-separated CIDRs such
    /// as the ingress controller's pod range; default none).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Concurrent provider calls per process (`FAXBOT_WORKER_CONCURRENCY`, default 32).
    pub worker_concurrency: usize,
    /// Document work (page counting, text rendering, conversions) run at once (`FAXBOT_DOCUMENT_WORKERS`,
    /// default: the number of CPUs); more waits for a turn ([`crate::work`]).
    pub document_workers: usize,
    /// How long document work waits for a turn before the request is answered `503`
    /// (`FAXBOT_DOCUMENT_WAIT_SECS`, default 30).
    pub document_wait: Duration,
    /// Wall-clock limit of one PDF page count (`FAXBOT_PDF_TIME_LIMIT_SECS`, default 10): a backstop behind
    /// the deterministic work budget, for costs the budget does not see. On a slow or crowded node an honest
    /// but heavy PDF can reach it; raise it there.
    pub pdf_time_limit: Duration,
    /// Submissions per job (`FAXBOT_MAX_ATTEMPTS`, default 5).
    pub max_attempts: u32,
    /// First retry delay (`FAXBOT_RETRY_BASE_MS`, default 2000).
    pub retry_base: Duration,
    /// Retry delay cap (`FAXBOT_RETRY_MAX_MS`, default 300000).
    pub retry_max: Duration,
    /// Job lease (`FAXBOT_JOB_LEASE_SECS`, default 120). Must exceed the provider timeout.
    pub job_lease: Duration,
    /// Provider call timeout (`FAXBOT_PROVIDER_TIMEOUT_SECS`, default 30).
    pub provider_timeout: Duration,
    /// Give up polling for a final status after this long (`FAXBOT_STATUS_DEADLINE_SECS`, default 86400).
    pub status_deadline: Duration,
    /// How long shutdown waits for in-flight work (`FAXBOT_SHUTDOWN_GRACE_SECS`, default 20).
    pub shutdown_grace: Duration,
    /// After SIGTERM, how long the server keeps serving with readiness failing before it stops accepting
    /// connections (`FAXBOT_DRAIN_DELAY_SECS`, default 0), so load balancers take it out first.
    pub drain_delay: Duration,
    /// Every this many HTTP/1.1 responses, one carries `Connection: close` (`FAXBOT_CONNECTION_CLOSE_EVERY`,
    /// default 100, 0 = never), so keep-alive clients reconnect now and then and kube-proxy, which balances
    /// connections rather than requests, spreads them over new pods (a canary, a scale-up) too.
    pub connection_close_every: u64,
    /// Documents of finished jobs are deleted this long after the job's last change (`ARTIFACT_TTL_DAYS`, or
    /// `FAXBOT_ARTIFACT_TTL_SECS` for finer control); `None` keeps them.
    pub artifact_ttl: Option<Duration>,
    /// How often the retention sweep runs (`CLEANUP_INTERVAL_MINUTES`, default 1440, or `FAXBOT_CLEANUP_INTERVAL_SECS`).
    pub cleanup_interval: Duration,
    /// Documents no job references are removed once older than this (`FAXBOT_ORPHAN_MIN_AGE_SECS`, default 600).
    pub orphan_min_age: Duration,
    /// Overrides the revision label (`FAXBOT_REVISION`; the operator sets it to its revision hash).
    pub revision_override: Option<String>,
    /// `json` (default) or `pretty` (`FAXBOT_LOG_FORMAT`).
    pub log_format: String,
    /// Audit events are also appended to this file (`AUDIT_LOG_FILE`), one JSON line each. Events that
    /// cannot be written are counted (`faxbot_audit_write_failures_total`) and still reach stdout.
    pub audit_log_file: Option<PathBuf>,
    /// Receive faxes when no config document is given (`INBOUND_ENABLED`); with a document, its inbound slot
    /// decides.
    pub inbound_enabled: bool,
    /// Plugin of the inbound slot in the environment-built document (`INBOUND_BACKEND`, default `FAX_BACKEND`).
    pub inbound_backend: String,
    /// Received documents are deleted this long after arrival (`INBOUND_RETENTION_DAYS`, default 30, 0 = keep;
    /// `FAXBOT_INBOUND_RETENTION_SECS` for finer control). The row stays, so listings keep their history.
    pub inbound_retention: Option<Duration>,
    /// Lifetime of inbound download tokens (`INBOUND_TOKEN_TTL_MINUTES`, default 60, or
    /// `FAXBOT_INBOUND_TOKEN_TTL_SECS`).
    pub inbound_token_ttl: Duration,
    /// Lifetime of the token in an outbound document URL handed to a provider that fetches the document
    /// (`PDF_TOKEN_TTL_MINUTES`, default 60, or `FAXBOT_PDF_TOKEN_TTL_SECS`). Each submission gets a fresh one.
    pub pdf_token_ttl: Duration,
    /// Per-key requests per minute on `GET /inbound` (`INBOUND_LIST_RPM`, default 30, 0 = off).
    pub inbound_list_rpm: u32,
    /// Per-key requests per minute on `GET /inbound/{id}` and its PDF (`INBOUND_GET_RPM`, default 60, 0 = off).
    pub inbound_get_rpm: u32,
    /// Public base URL of this server (`PUBLIC_API_URL`, default `http://localhost:8080`), used to build the
    /// download links handed out with tokens.
    pub public_api_url: String,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn flag(name: &'static str) -> Result<bool, SettingsError> {
    match var(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(_) => Err(SettingsError { name, message: "expected true/false, 1/0, yes/no or on/off".into() }),
    }
}

/// A comma-separated list of CIDRs (a bare address is a /32 or /128).
fn cidrs(name: &'static str) -> Result<Vec<ipnet::IpNet>, SettingsError> {
    let Some(raw) = var(name) else { return Ok(Vec::new()) };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>().or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from)).map_err(|_| {
                SettingsError { name, message: "expected comma-separated CIDRs such as 10.0.0.0/8".into() }
            })
        })
        .collect()
}

fn number<T>(name: &'static str, default: T, min: T, max: T) -> Result<T, SettingsError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = var(name) else { return Ok(default) };
    let v: T = raw
        .parse()
        .map_err(|_| SettingsError { name, message: format!("expected a whole number between {min} and {max}") })?;
    if v < min || v > max {
        return Err(SettingsError { name, message: format!("must be between {min} and {max}") });
    }
    Ok(v)
}

impl Settings {
    /// Reads the environment. Every error names the variable.
    pub fn from_env() -> Result<Settings, SettingsError> {
        let listen = match (var("FAXBOT_LISTEN"), var("PORT")) {
            (Some(addr), _) => addr.parse().map_err(|_| SettingsError {
                name: "FAXBOT_LISTEN",
                message: "expected host:port such as 0.0.0.0:8080".into(),
            })?,
            (None, Some(_)) => SocketAddr::from(([0, 0, 0, 0], number::<u16>("PORT", 8080, 0, 65535)?)),
            (None, None) => SocketAddr::from(([0, 0, 0, 0], 8080)),
        };
        let data_dir = PathBuf::from(var("FAX_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url = var("DATABASE_URL").unwrap_or_else(|| format!("sqlite://{}/faxbot.db", data_dir.display()));
        let max_file_mb = number::<u64>("MAX_FILE_SIZE_MB", 10, 1, 1024)?;
        let api_key_file = var("API_KEY_FILE").map(PathBuf::from);
        let pepper_file = var("FAXBOT_PEPPER_FILE").map(PathBuf::from).unwrap_or_else(|| data_dir.join("pepper"));
        let fax_backend = var("FAX_BACKEND").unwrap_or_else(|| "test".into()).to_ascii_lowercase();
        let log_format = var("FAXBOT_LOG_FORMAT").unwrap_or_else(|| "json".into());
        if !["json", "pretty"].contains(&log_format.as_str()) {
            return Err(SettingsError { name: "FAXBOT_LOG_FORMAT", message: "expected json or pretty".into() });
        }
        let settings = Settings {
            listen,
            database_url,
            db_max_connections: number("FAXBOT_DB_MAX_CONNECTIONS", 8, 1, 256)?,
            max_file_bytes: max_file_mb * 1024 * 1024,
            max_file_mb,
            max_pages: number("MAX_PAGES", 100, 1, faxbot_documents::pdf::MAX_PAGES)?,
            api_key: var("API_KEY"),
            api_key_file,
            require_api_key: flag("REQUIRE_API_KEY")?,
            pepper: var("API_KEY_PEPPER"),
            pepper_file,
            fax_backend: fax_backend.clone(),
            fax_disabled: flag("FAX_DISABLED")?,
            config_path: var("FAXBOT_CONFIG_PATH").map(PathBuf::from),
            config_poll: Duration::from_millis(number("FAXBOT_CONFIG_POLL_MS", 2000, 50, 3_600_000)?),
            feature_v3_plugins: flag("FEATURE_V3_PLUGINS")?,
            feature_plugin_install: flag("FEATURE_PLUGIN_INSTALL")?,
            feature_mcp: flag("FEATURE_MCP")?,
            feature_admin_console: flag("FEATURE_ADMIN_CONSOLE")?,
            rate_limit_rpm: number("MAX_REQUESTS_PER_MINUTE", 0, 0, 1_000_000)?,
            auth_failures_per_minute: number("FAXBOT_AUTH_FAILURES_PER_MINUTE", 30, 0, 1_000_000)?,
            trusted_proxies: cidrs("FAXBOT_TRUSTED_PROXIES")?,
            worker_concurrency: number("FAXBOT_WORKER_CONCURRENCY", 32, 1, 1024)?,
            document_workers: number("FAXBOT_DOCUMENT_WORKERS", crate::work::default_turns(), 1, 256)?,
            document_wait: Duration::from_secs(number("FAXBOT_DOCUMENT_WAIT_SECS", 30, 1, 3600)?),
            pdf_time_limit: Duration::from_secs(number("FAXBOT_PDF_TIME_LIMIT_SECS", 10, 1, 3600)?),
            max_attempts: number("FAXBOT_MAX_ATTEMPTS", 5, 1, 100)?,
            retry_base: Duration::from_millis(number("FAXBOT_RETRY_BASE_MS", 2000, 1, 3_600_000)?),
            retry_max: Duration::from_millis(number("FAXBOT_RETRY_MAX_MS", 300_000, 1, 86_400_000)?),
            job_lease: Duration::from_secs(number("FAXBOT_JOB_LEASE_SECS", 120, 1, 86_400)?),
            provider_timeout: Duration::from_secs(number("FAXBOT_PROVIDER_TIMEOUT_SECS", 30, 1, 3600)?),
            status_deadline: Duration::from_secs(number("FAXBOT_STATUS_DEADLINE_SECS", 86_400, 1, 30 * 86_400)?),
            shutdown_grace: Duration::from_secs(number("FAXBOT_SHUTDOWN_GRACE_SECS", 20, 0, 3600)?),
            drain_delay: Duration::from_secs(number("FAXBOT_DRAIN_DELAY_SECS", 0, 0, 300)?),
            connection_close_every: number("FAXBOT_CONNECTION_CLOSE_EVERY", 100, 0, 1_000_000)?,
            artifact_ttl: match (var("FAXBOT_ARTIFACT_TTL_SECS"), number::<u64>("ARTIFACT_TTL_DAYS", 0, 0, 36_500)?) {
                (Some(_), _) => Some(Duration::from_secs(number("FAXBOT_ARTIFACT_TTL_SECS", 0, 1, 3_153_600_000)?)),
                (None, 0) => None,
                (None, days) => Some(Duration::from_secs(days * 86_400)),
            },
            cleanup_interval: match var("FAXBOT_CLEANUP_INTERVAL_SECS") {
                Some(_) => Duration::from_secs(number("FAXBOT_CLEANUP_INTERVAL_SECS", 60, 1, 604_800)?),
                None => Duration::from_secs(60 * number::<u64>("CLEANUP_INTERVAL_MINUTES", 1440, 1, 10_080)?),
            },
            orphan_min_age: Duration::from_secs(number("FAXBOT_ORPHAN_MIN_AGE_SECS", 600, 60, 30 * 86_400)?),
            revision_override: var("FAXBOT_REVISION"),
            log_format,
            audit_log_file: var("AUDIT_LOG_FILE").map(PathBuf::from),
            inbound_enabled: flag("INBOUND_ENABLED")?,
            inbound_backend: var("INBOUND_BACKEND")
                .map(|b| b.to_ascii_lowercase())
                .unwrap_or_else(|| fax_backend.clone()),
            inbound_retention: match (
                var("FAXBOT_INBOUND_RETENTION_SECS"),
                number::<u64>("INBOUND_RETENTION_DAYS", 30, 0, 36_500)?,
            ) {
                (Some(_), _) => {
                    Some(Duration::from_secs(number("FAXBOT_INBOUND_RETENTION_SECS", 0, 1, 3_153_600_000)?))
                }
                (None, 0) => None,
                (None, days) => Some(Duration::from_secs(days * 86_400)),
            },
            inbound_token_ttl: match var("FAXBOT_INBOUND_TOKEN_TTL_SECS") {
                Some(_) => Duration::from_secs(number("FAXBOT_INBOUND_TOKEN_TTL_SECS", 3600, 1, 604_800)?),
                None => Duration::from_secs(60 * number::<u64>("INBOUND_TOKEN_TTL_MINUTES", 60, 1, 10_080)?),
            },
            pdf_token_ttl: match var("FAXBOT_PDF_TOKEN_TTL_SECS") {
                Some(_) => Duration::from_secs(number("FAXBOT_PDF_TOKEN_TTL_SECS", 3600, 1, 604_800)?),
                None => Duration::from_secs(60 * number::<u64>("PDF_TOKEN_TTL_MINUTES", 60, 1, 10_080)?),
            },
            inbound_list_rpm: number("INBOUND_LIST_RPM", 30, 0, 1_000_000)?,
            inbound_get_rpm: number("INBOUND_GET_RPM", 60, 0, 1_000_000)?,
            public_api_url: {
                let url = var("PUBLIC_API_URL").unwrap_or_else(|| "http://localhost:8080".into());
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(SettingsError { name: "PUBLIC_API_URL", message: "expected an http(s):// URL".into() });
                }
                url.trim_end_matches('/').to_string()
            },
            data_dir,
        };
        if settings.job_lease <= settings.provider_timeout {
            return Err(SettingsError {
                name: "FAXBOT_JOB_LEASE_SECS",
                message:
                    "must be longer than FAXBOT_PROVIDER_TIMEOUT_SECS, or a slow provider call would lose its lease"
                        .into(),
            });
        }
        Ok(settings)
    }

    /// Whether callers must authenticate (reference §1.4: an env key or `REQUIRE_API_KEY`).
    pub fn auth_enforced(&self) -> bool {
        self.api_key.is_some() || self.require_api_key
    }
}
