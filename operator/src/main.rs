//! `faxbot-operator`: runs the FaxProvider and FaxPluginConfig controllers.
//!
//! Configuration (environment):
//! - `KUBECONFIG` or the in-cluster service account: how to reach the API server.
//! - `FAXBOT_WATCH_NAMESPACES`: comma-separated namespaces to watch, each with its own controllers (so the
//!   operator's rights can be Roles in exactly those namespaces); `FAXBOT_WATCH_NAMESPACE` names one. Neither:
//!   all namespaces.
//! - `FAXBOT_OPERATOR_LISTEN`: address of the `/metrics`, `/healthz` and `/readyz` server (default `0.0.0.0:8080`);
//!   it listens once the CRDs are served, on every replica, leader or standby.
//! - `FAXBOT_LEADER_ELECTION`: `true` (default) or `false`; `FAXBOT_LEASE_NAMESPACE` (default `POD_NAMESPACE`,
//!   then `default`), `FAXBOT_LEASE_NAME` (default `faxbot-operator`), `POD_NAME` (the replica's identity).
//! - `FAXBOT_RECONCILE_CONCURRENCY`: reconciles in flight per controller (default 8).
//! - `FAXBOT_ANALYSIS_METRICS_URLS`: comma-separated `/metrics` URLs canary analysis scrapes instead of the
//!   API pods (for tests, or clusters where the operator cannot reach pod IPs); unset: pods by IP.
//! - `FAXBOT_LOG_FORMAT`: `json` (default) or `pretty`; `RUST_LOG` filters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use faxbot_crds::FaxPluginConfig;
use faxbot_operator::apply::Context;
use faxbot_operator::leader::{Fence, LeaderElector, LeaseSettings, fence};
use faxbot_operator::metrics::Metrics;
use faxbot_operator::reconcile;
use faxbot_operator::telemetry;
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::signal::unix::{SignalKind, signal};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
}

async fn serve_http(listen: SocketAddr, state: HttpState) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/metrics", get(|State(s): State<HttpState>| async move { s.metrics.render() }))
        .route("/healthz", get(|| async { "ok" }))
        // Served only once the CRDs answered (see main), whether or not this replica leads.
        .route("/readyz", get(|| async { "ok" }))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    // The bound address, not the configured one: with port 0 this is where the server really is.
    let listen = listener.local_addr().unwrap_or(listen);
    tracing::info!(%listen, "metrics and health server listening");
    axum::serve(listener, app).await?;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn termination() {
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init(&var("FAXBOT_LOG_FORMAT").unwrap_or_else(|| "json".into()));
    let listen: SocketAddr = var("FAXBOT_OPERATOR_LISTEN")
        .unwrap_or_else(|| "0.0.0.0:8080".into())
        .parse()
        .context("FAXBOT_OPERATOR_LISTEN must be host:port")?;
    let namespaces = watched_namespaces(var("FAXBOT_WATCH_NAMESPACES"), var("FAXBOT_WATCH_NAMESPACE"))?;
    let leader_election = match var("FAXBOT_LEADER_ELECTION").as_deref() {
        None | Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        Some(other) => anyhow::bail!("FAXBOT_LEADER_ELECTION must be true or false, not {other:?}"),
    };
    let concurrency: u16 = match var("FAXBOT_RECONCILE_CONCURRENCY") {
        None => 8,
        Some(v) => {
            v.parse().ok().filter(|n| (1..=256).contains(n)).context("FAXBOT_RECONCILE_CONCURRENCY must be 1 to 256")?
        }
    };
    let identity = var("POD_NAME").unwrap_or_else(|| format!("faxbot-operator-{:08x}", rand::random::<u32>()));

    let client = Client::try_default().await.context("connecting to the Kubernetes API (KUBECONFIG or in-cluster)")?;
    // Fail fast with a hint when the CRDs are missing, instead of a watch error loop. Probed in the watched
    // namespace when there is one, so an operator whose RBAC is a Role in that namespace (the Helm chart's
    // `watchNamespace`) needs no cluster-wide right at all.
    let probes: Vec<Api<FaxPluginConfig>> = if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces.iter().map(|ns| Api::namespaced(client.clone(), ns)).collect()
    };
    for probe in probes {
        probe.list(&ListParams::default().limit(1)).await.context(
            "the FaxPluginConfig CRD is not served (or this namespace is not readable); install the CRDs first: \
             kubectl apply --server-side -f crds/yaml/crds.yaml",
        )?;
    }
    // Added after the first release: an upgrade that skipped the CRDs-first step is told so at once.
    let manifest_probes: Vec<Api<faxbot_crds::FaxPluginManifest>> = if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces.iter().map(|ns| Api::namespaced(client.clone(), ns)).collect()
    };
    for probe in manifest_probes {
        probe.list(&ListParams::default().limit(1)).await.context(
            "the FaxPluginManifest CRD is not served (or this namespace is not readable); apply this version's \
             CRDs before the operator (docs/operations.md, upgrades): kubectl apply --server-side -f crds/yaml/crds.yaml",
        )?;
    }

    let metrics = Arc::new(Metrics::new());
    // Ready means "up, and the API server serves our CRDs to this replica" (the server starts listening only
    // now), not "leading": a standby must be Ready too, or `helm install --wait` and `kubectl rollout status`
    // wait forever for the second replica, a rolling upgrade deadlocks (the new pod cannot lead while the old
    // one holds the Lease) and the PDB blocks every drain. Which replica leads is the `faxbot_operator_leader`
    // metric.
    let http = tokio::spawn(serve_http(listen, HttpState { metrics: metrics.clone() }));

    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let mut elector = None;
    if leader_election {
        let settings = LeaseSettings {
            namespace: var("FAXBOT_LEASE_NAMESPACE")
                .or_else(|| var("POD_NAMESPACE"))
                .unwrap_or_else(|| "default".into()),
            name: var("FAXBOT_LEASE_NAME").unwrap_or_else(|| "faxbot-operator".into()),
            identity: identity.clone(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(4),
            renew_deadline: Duration::from_secs(10),
        };
        let mut e = LeaderElector::new(client.clone(), settings);
        tracing::info!(identity = %identity, lease = %e.settings().name, "waiting for leadership");
        let mut term = std::pin::pin!(termination());
        loop {
            match e.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "leader election request failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(e.settings().renew_every) => {}
                _ = &mut term => return Ok(()),
            }
        }
        tracing::info!(identity = %identity, "acquired leadership");
        metrics.leader.set(1);
        let renew = Arc::new(tokio::sync::Mutex::new(e));
        elector = Some(renew.clone());
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let settings = renew.lock().await.settings().clone();
            let mut renewed = Instant::now();
            loop {
                let (wait, timeout) = match fence(&settings, renewed.elapsed()) {
                    Fence::Renew { wait, timeout } => (wait, timeout),
                    Fence::Stop => {
                        tracing::error!("could not renew the lease before its renew deadline; stopping");
                        break;
                    }
                };
                tokio::time::sleep(wait).await;
                let sent = Instant::now();
                let result =
                    tokio::time::timeout(timeout, async { renew.lock().await.try_acquire_or_renew().await }).await;
                match result {
                    Ok(Ok(true)) => renewed = sent,
                    Ok(Ok(false)) => {
                        tracing::error!("another replica took the lease; stopping");
                        break;
                    }
                    Ok(Err(err)) => tracing::warn!(error = %err, "lease renewal failed; retrying"),
                    Err(_) => tracing::warn!("lease renewal timed out; retrying"),
                }
            }
            metrics.leader.set(0);
            let _ = lost_tx.send(());
        });
    } else {
        drop(lost_tx);
    }

    let metrics_urls: Vec<String> = var("FAXBOT_ANALYSIS_METRICS_URLS")
        .map(|v| v.split(',').map(|u| u.trim().to_string()).filter(|u| !u.is_empty()).collect())
        .unwrap_or_default();
    let ctx = Arc::new(Context::new(client.clone(), metrics.clone(), Some(identity), metrics_urls));
    let lost = Arc::new(AtomicBool::new(false));
    let shutdown = {
        let lost = lost.clone();
        async move {
            tokio::select! {
                _ = termination() => {}
                Ok(()) = lost_rx => lost.store(true, Ordering::Relaxed),
            }
        }
    };
    let watched = if namespaces.is_empty() { "*".to_string() } else { namespaces.join(",") };
    tracing::info!(namespaces = %watched, "controllers starting");
    // Fencing: on SIGTERM in-flight reconciles finish (graceful); when the lease is lost they do not — the
    // controllers are dropped at once, so no write starts after this replica stopped being the leader.
    let (fence_tx, mut fence_rx) = tokio::sync::watch::channel(false);
    let fenced = {
        let lost = lost.clone();
        let shutdown = async move {
            shutdown.await;
            if lost.load(Ordering::Relaxed) {
                let _ = fence_tx.send(true);
                // Keep the controllers' graceful shutdown from completing before the select below sees it.
                std::future::pending::<()>().await;
            }
        };
        // One set of controllers per watched namespace (or one for all), stopped together.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let scopes: Vec<Option<String>> =
            if namespaces.is_empty() { vec![None] } else { namespaces.into_iter().map(Some).collect() };
        let controllers = futures_util::future::join_all(scopes.into_iter().map(|ns| {
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            reconcile::run(client.clone(), ctx.clone(), ns, concurrency, stopped)
        }));
        tokio::select! {
            _ = controllers => false,
            _ = fence_rx.wait_for(|f| *f) => true,
        }
    };
    if fenced {
        tracing::error!("leadership lost: controllers stopped without finishing in-flight reconciles");
    }
    tracing::info!("controllers stopped");
    if let Some(e) = elector
        && !lost.load(Ordering::Relaxed)
    {
        if let Err(err) = e.lock().await.step_down().await {
            tracing::warn!(error = %err, "could not release the lease");
        } else {
            tracing::info!("released the lease");
        }
    }
    http.abort();
    if lost.load(Ordering::Relaxed) {
        anyhow::bail!("leadership lost");
    }
    Ok(())
}

/// The namespaces to watch: `FAXBOT_WATCH_NAMESPACES` (comma-separated), else `FAXBOT_WATCH_NAMESPACE`, else
/// none (all namespaces). Each must be a DNS label; duplicates are dropped.
fn watched_namespaces(list: Option<String>, one: Option<String>) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for ns in list.or(one).unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let valid = ns.len() <= 63
            && ns.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        anyhow::ensure!(valid, "FAXBOT_WATCH_NAMESPACES: {ns:?} is not a namespace name");
        if !out.iter().any(|n| n == ns) {
            out.push(ns.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::watched_namespaces;

    #[test]
    fn watched_namespaces_come_from_the_list_or_the_single_variable() {
        let list = |v: &str| watched_namespaces(Some(v.into()), None).unwrap();
        assert_eq!(list("fax-a, fax-b,fax-a,"), vec!["fax-a", "fax-b"]);
        assert_eq!(watched_namespaces(None, Some("fax".into())).unwrap(), vec!["fax"]);
        assert_eq!(watched_namespaces(Some("a,b".into()), Some("c".into())).unwrap(), vec!["a", "b"], "the list wins");
        assert!(watched_namespaces(None, None).unwrap().is_empty(), "all namespaces");
        for bad in ["Fax", "fax_a", "-fax", "a,b c"] {
            assert!(watched_namespaces(Some(bad.into()), None).is_err(), "{bad}");
        }
    }
}
