//! What the suite can check, each made reachable over the sidecar protocol.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use faxbot_api::plugins::external::host;
use faxbot_api::plugins::{self, OutboundProvider};
use faxbot_contract::manifest::HttpManifest;
use faxbot_contract::manifest::check::{Policy, check};
use faxbot_contract::plugins::{Capability, SimulatedLineSettings};
use faxbot_contract::sidecar::{SidecarCapability, SidecarManifest, WebhookSpec};
use faxbot_contract::{SlotBinding, phi};

use crate::checks::Target;
use crate::simprovider::SimProvider;

/// A target and whatever must live as long as it is checked.
pub struct Prepared {
    /// What the checks call.
    pub target: Target,
    /// Kept alive while the checks run.
    pub _keep: Vec<Box<dyn std::any::Any + Send>>,
}

/// The protocol manifest of a provider hosted for the checks.
fn describe(provider: &dyn OutboundProvider, id: &str, name: &str, hipaa: bool) -> SidecarManifest {
    let plugin = provider.manifest();
    let mut capabilities = vec![SidecarCapability::Send, SidecarCapability::Status];
    if plugin.has(Capability::Cancel) {
        capabilities.push(SidecarCapability::Cancel);
    }
    let webhook = provider.webhook_info().map(|info| WebhookSpec {
        verification: info.verification.into_owned(),
        max_bytes: provider.status_body_limit(),
    });
    if webhook.is_some() {
        capabilities.push(SidecarCapability::Webhook);
    }
    SidecarManifest {
        protocol: faxbot_contract::sidecar::PROTOCOL_VERSION,
        id: id.to_string(),
        name: name.to_string(),
        version: plugin.version.clone(),
        hipaa_compliant: hipaa,
        capabilities,
        idempotent: provider.idempotent(),
        needs_document: provider.needs_document(),
        poll_interval_ms: u64::try_from(provider.poll_interval().as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1000, 3_600_000),
        webhook,
    }
}

/// Serves `provider` over the protocol on a free loopback port.
async fn host(provider: Arc<dyn OutboundProvider>, manifest: SidecarManifest) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = host::router(provider, manifest, None);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// A sidecar at `url`.
pub fn sidecar(url: &str, token: Option<String>, sim_webhook_secret: Option<String>) -> anyhow::Result<Prepared> {
    let parsed = url::Url::parse(url).context("not a URL")?;
    if parsed.scheme() != "http" || !matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) {
        bail!("a sidecar is checked over loopback: http://127.0.0.1:<port>");
    }
    Ok(Prepared { target: Target { url: url.to_string(), token, sim_webhook_secret, builtin: false }, _keep: vec![] })
}

/// An HTTP plugin manifest, run by the server's `http` plugin. Without `provider` it runs against the
/// simulated provider (its action URLs' hosts are pointed there, its credentials `apiKey` and
/// `webhookSecret` are the simulated provider's); with `provider`, against that origin with the credentials
/// from the environment (`FAXBOT_<ID>_<NAME>`), for a provider's own fake that honours the conformance numbers.
pub async fn manifest(path: &str, provider: Option<&str>) -> anyhow::Result<Prepared> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let mut manifest: HttpManifest =
        serde_json::from_str(&text).with_context(|| format!("{path} is not a manifest"))?;
    let problems = check(&manifest, Policy::from_env());
    if !problems.is_empty() {
        let list = problems.iter().map(|p| format!("  {}: {}", p.0, p.1)).collect::<Vec<_>>().join("\n");
        bail!("the manifest does not pass the server's checks:\n{}", phi::mask_numbers(&list, phi::LOG_MIN_DIGITS));
    }
    let sim = match provider {
        None => Some(SimProvider::start().await?),
        Some(_) => None,
    };
    let origin = provider.map(str::to_string).or_else(|| sim.as_ref().map(|s| s.origin.clone())).unwrap_or_default();
    retarget(&mut manifest, &origin)?;
    let problems = check(&manifest, Policy { allow_loopback: true });
    if !problems.is_empty() {
        bail!("the manifest pointed at {origin} does not pass the checks: {:?}", problems.first().map(|p| &p.1));
    }
    let binding = SlotBinding::new(manifest.id.clone());
    let keys = sim.as_ref().map(|s| (s.api_key.clone(), s.webhook_secret.clone()));
    let plugin = plugins::http::build_with(&manifest, &binding, "outbound", |name, env| match (&keys, name) {
        (Some((key, _)), "apiKey") => Some(key.clone()),
        (Some((_, secret)), "webhookSecret") => Some(secret.clone()),
        (Some(_), _) => None,
        (None, _) => std::env::var(env).ok(),
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let described = describe(plugin.as_ref(), &manifest.id, &manifest.name, manifest.hipaa_compliant);
    let url = host(plugin, described).await?;
    let secret = sim.as_ref().map(|s| s.webhook_secret.clone());
    let keep: Vec<Box<dyn std::any::Any + Send>> =
        sim.into_iter().map(|s| Box::new(s) as Box<dyn std::any::Any + Send>).collect();
    Ok(Prepared { target: Target { url, token: None, sim_webhook_secret: secret, builtin: false }, _keep: keep })
}

/// Points every action at `origin` (`http://127.0.0.1:<port>`): the manifest's allowed hosts become that one.
fn retarget(manifest: &mut HttpManifest, origin: &str) -> anyhow::Result<()> {
    let parsed = url::Url::parse(origin).context("the provider origin is not a URL")?;
    let host = parsed.host_str().context("the provider origin has no host")?.to_string();
    let domains = std::mem::replace(&mut manifest.allowed_domains, vec![host]);
    for action in manifest.actions.all_mut() {
        for domain in &domains {
            let prefix = format!("https://{domain}");
            if let Some(rest) = action.url.strip_prefix(&prefix)
                && (rest.is_empty() || rest.starts_with(['/', '?', ':']))
            {
                action.url = format!("{}{rest}", origin.trim_end_matches('/'));
                break;
            }
        }
    }
    Ok(())
}

/// A built-in plugin. `test` (the simulated line) runs with the conformance numbers as its failure
/// suffixes, on a throwaway SQLite database.
pub async fn builtin(id: &str) -> anyhow::Result<Prepared> {
    if id != faxbot_contract::plugins::SIMULATED_LINE {
        bail!(
            "built-in `{id}` is checked by its own black-box suite against its provider's fake (api-server/tests); \
             only `test` runs here"
        );
    }
    let dir = tempfile::tempdir()?;
    let db = faxbot_api::db::Db::connect(&format!("sqlite://{}/conformance.db", dir.path().display()), 2)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (writer, _task) = faxbot_api::db::writer::Writer::spawn(db.clone());
    let settings = SimulatedLineSettings {
        delivery_latency_ms: 0,
        poll_interval_ms: 1000,
        fail_suffix: Some("0101".into()),
        fail_error: "no answer from the receiving fax machine".into(),
        reject_suffix: Some("0102".into()),
        busy_suffix: Some("0103".into()),
        busy_attempts: 100,
        busy_retry_after_ms: 1000,
    };
    let line: Arc<dyn OutboundProvider> = Arc::new(plugins::simulated::SimulatedLine::new(settings, db, writer));
    let described = describe(line.as_ref(), id, "Simulated fax line", true);
    let url = host(line, described).await?;
    Ok(Prepared {
        target: Target { url, token: None, sim_webhook_secret: None, builtin: true },
        _keep: vec![Box::new(dir)],
    })
}
