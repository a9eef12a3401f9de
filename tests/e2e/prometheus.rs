//! Canary analysis through a real Prometheus (`spec.rollout.analysis.prometheus`), on real pods.
//!
//! Prometheus (built from its Go module by scripts/prometheus-bin.sh) runs on this host and finds the API
//! pods the way a cluster's Prometheus usually does: Kubernetes pod discovery through the test cluster's API
//! server, the pod labels mapped onto the series. The operator is started with pod scraping pointed at a
//! closed port (`FAXBOT_ANALYSIS_METRICS_URLS`), so every number its checks see came from Prometheus' query
//! API. Scenarios, in order on one config (two replicas on PostgreSQL, the simulated line, faxes through
//! the Service): (a) a healthy change passes its checks and is promoted; (b) a line that refuses every
//! submission is rolled back by the error-rate rule; (c) with Prometheus stopped, checks say
//! `AnalysisUnavailable`, not "no data". The promotion and the rollback are also announced, signed, to a
//! webhook receiver on this host (`rollout.notifications.webhook`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faxbot_crds::{FaxPluginConfig, FaxProvider, RolloutStatus};
use kube::Api;
use serde_json::{Value, json};

use crate::canary::{Seen, load};
use crate::pods::pod_database;
use crate::support::*;

const ADMIN: &str = "fbk_admin_prom-e2e-admin-key-5e17";
const PEPPER_VALUE: &str = "prom-e2e-pepper-c3a0";
const LONG: Duration = Duration::from_secs(180);
const HOOK_KEY: &str = "prom-e2e-webhook-signing-key-7b21";

/// The Prometheus binary: `FAXBOT_TEST_PROMETHEUS` (scripts/test builds it first), else built or found by
/// scripts/prometheus-bin.sh. `None` (skip) only outside CI.
fn prometheus_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FAXBOT_TEST_PROMETHEUS").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/prometheus-bin.sh");
    let out = Command::new(script).stdin(Stdio::null()).output().expect("run scripts/prometheus-bin.sh");
    let path = String::from_utf8_lossy(&out.stdout).lines().last().map(PathBuf::from);
    match path {
        Some(p) if out.status.success() && p.is_file() => Some(p),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but Prometheus could not be built:\n{}", String::from_utf8_lossy(&out.stderr))
        }
        _ => {
            eprintln!("SKIPPING the Prometheus analysis test: no Prometheus (Go needed to build it)");
            None
        }
    }
}

/// A Prometheus server on loopback, stopped when dropped.
struct Prometheus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus discovering the pods of `namespace` through `kubeconfig`, scraping every second.
    async fn start(binary: &PathBuf, kubeconfig: &std::path::Path, namespace: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        // The usual pod discovery: keep the API pods' `http` port, map the pod labels onto the series and
        // name the namespace, as the kube-prometheus and Helm-chart Prometheus set-ups do.
        let config = json!({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "faxbot-api",
                "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": kubeconfig,
                                           "namespaces": {"names": [namespace]}}],
                "relabel_configs": [
                    {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                     "regex": "faxbot-api", "action": "keep"},
                    {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "http",
                     "action": "keep"},
                    {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"}
                ]
            }]
        });
        let config_path = dir.path().join("prometheus.yml");
        // JSON is YAML.
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("http://127.0.0.1:{port}");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus { child, address, _dir: dir };
        let ready = format!("{}/-/ready", prometheus.address);
        wait_for(Duration::from_secs(60), "Prometheus ready", || {
            let ready = ready.clone();
            async move { reqwest::get(&ready).await.ok()?.status().is_success().then_some(()) }
        })
        .await;
        prometheus
    }

    /// Instant query, the vector's samples.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.address), &[("query", promql)]).unwrap();
        let answer: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        answer["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the webhook receiver got: (headers lower-cased, body).
type Received = Arc<Mutex<Vec<(std::collections::BTreeMap<String, String>, Vec<u8>)>>>;

/// A minimal HTTP/1.1 receiver on loopback: reads one request per connection (headers, then
/// `Content-Length` bytes), answers 204, keeps what it read.
async fn webhook_receiver() -> (String, Received) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received: Received = Arc::default();
    let keep = received.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = socket.read(&mut chunk).await else { return };
                    if n == 0 || buf.len() > 65_536 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let headers: std::collections::BTreeMap<String, String> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let length: usize =
                    headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0).min(1 << 20);
                while buf.len() < head_end + length {
                    let Ok(n) = socket.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                keep.lock().unwrap().push((headers, buf[head_end..head_end + length].to_vec()));
                let _ = socket.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    (url, received)
}

/// Waits for a notification of `kind` for `revision`, checks its signature with `key`, returns its body.
async fn notified(received: &Received, kind: &str, revision: &str, key: &[u8]) -> Value {
    let (headers, body) = wait_for(LONG, &format!("a {kind} notification for {revision}"), || async {
        received.lock().unwrap().iter().find_map(|(h, b)| {
            let v: Value = serde_json::from_slice(b).ok()?;
            (v["kind"] == kind && v["revision"] == revision).then(|| (h.clone(), b.clone()))
        })
    })
    .await;
    assert_eq!(
        headers.get("x-faxbot-signature").map(String::as_str),
        Some(faxbot_operator::notify::signature(key, &body).as_str()),
        "signed with the key of signingSecretRef"
    );
    assert_eq!(headers.get("content-type").map(String::as_str), Some("application/json"));
    serde_json::from_slice(&body).unwrap()
}

fn config(address: &str) -> Value {
    json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxPluginConfig", "metadata": {"name": "prom"},
        "spec": {
            "apiServer": {"image": "", "replicas": 2, "database": {"urlSecretRef": {"name": "db", "key": "url"}}},
            "slots": {"outbound": ["line"], "auth": "keys"},
            "rollout": {"strategy": "Canary", "steps": [{"weight": 50, "pause": "8s"}],
                "analysis": {"interval": "2s", "window": "10s", "minSamples": 4, "maxFailedChecks": 2,
                             "maxNoDataChecks": 120, "progressDeadline": "3m", "maxErrorRatePercent": 5,
                             "maxLatencyIncreasePercent": 1000, "minLatencyIncreaseMs": 2000,
                             "prometheus": {"address": address}}}}})
}

fn line(settings: Value) -> Value {
    json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxProvider", "metadata": {"name": "line"},
        "spec": {"plugin": "test", "settings": settings}})
}

async fn rollout(configs: &Api<FaxPluginConfig>) -> Option<RolloutStatus> {
    configs.get("prom").await.ok()?.status?.rollout
}

async fn wait_rollout<F: Fn(&RolloutStatus) -> bool>(
    configs: &Api<FaxPluginConfig>,
    what: &str,
    check: F,
) -> RolloutStatus {
    let check = &check;
    wait_for(LONG, what, || async move { rollout(configs).await.filter(check) }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canary_analysis_reads_a_real_prometheus() {
    let _cluster = shared_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let Some(node) = Node::get() else { return };
    let Some(binary) = prometheus_binary() else { return };
    let client = client(&kc).await;
    install_crds(&client).await;
    let ns = namespace(&client, "prom").await;
    let _cleanup = cleanup(&kc, &[&ns]);
    enforce_restricted(&client, &ns).await;
    let mut prometheus = Prometheus::start(&binary, &kc, &ns).await;
    let db_url = pod_database().await;
    put_secret(&client, &ns, "admin", &[("adminKey", ADMIN), ("pepper", PEPPER_VALUE)]).await;
    put_secret(&client, &ns, "db", &[("url", &db_url)]).await;
    apply_json::<FaxProvider>(&client, &ns, line(json!({"deliveryLatencyMs": 100}))).await.unwrap();
    apply_keys_provider(&client, &ns).await;
    let (hook_url, received) = webhook_receiver().await;
    put_secret(&client, &ns, "hook", &[("key", HOOK_KEY)]).await;
    let mut manifest = config(&prometheus.address);
    manifest["spec"]["apiServer"]["image"] = node.api_image.clone().into();
    manifest["spec"]["rollout"]["notifications"] =
        json!({"webhook": {"url": hook_url, "signingSecretRef": {"name": "hook", "key": "key"}}});
    apply_json::<FaxPluginConfig>(&client, &ns, manifest).await.unwrap();
    // A second watched namespace (FAXBOT_WATCH_NAMESPACES): its provider is reconciled by the same operator.
    let other = namespace(&client, "prom-b").await;
    let _cleanup_other = cleanup(&kc, &[&other]);
    apply_json::<FaxProvider>(&client, &other, line(json!({}))).await.unwrap();
    let watched = format!("{ns},{other}");
    // Pod scraping goes nowhere: whatever the checks see comes from Prometheus.
    let operator = Operator::start_with_env(
        &kc,
        &ns,
        "op-prom",
        &[("FAXBOT_ANALYSIS_METRICS_URLS", "http://127.0.0.1:9/metrics"), ("FAXBOT_WATCH_NAMESPACES", &watched)],
    );
    let other_providers: Api<FaxProvider> = Api::namespaced(client.clone(), &other);
    wait_for(LONG, "the provider in the second watched namespace reconciled", || async {
        let status = other_providers.get("line").await.ok()?.status?;
        status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())
    })
    .await;
    let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), &ns);
    wait_for(LONG, "the first revision Ready", || async {
        let status = configs.get("prom").await.ok()?.status?;
        status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())
    })
    .await;
    let api = Arc::new(FaxApi::of(&client, &ns, "prom", ADMIN).await.one_connection_per_request());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let traffic = load(api.clone(), stop.clone(), sent.clone(), seen.clone());
    // Prometheus has found and scraped the pods, with the labels the default selector expects.
    let scraped = wait_for(LONG, "Prometheus scraping the API pods", || {
        let prometheus = &prometheus;
        let ns = ns.clone();
        async move {
            let q = format!(
                r#"sum by (revision) (faxbot_http_requests_total{{namespace="{ns}",app_kubernetes_io_name="faxbot-api",app_kubernetes_io_instance="prom"}})"#
            );
            let result = prometheus.query(&q).await;
            (!result.is_empty()).then_some(result)
        }
    })
    .await;
    eprintln!("prometheus: series found: {scraped:?}");

    // (a) A healthy change: checks pass on Prometheus' numbers, promoted.
    apply_json::<FaxProvider>(&client, &ns, line(json!({"deliveryLatencyMs": 150}))).await.unwrap();
    let r1 = wait_rollout(&configs, "a canary", |r| r.canary_revision.is_some()).await.canary_revision.unwrap();
    let passed = wait_rollout(&configs, "a passing check or the end of the canary", |r| {
        r.last_check.as_ref().is_some_and(|c| c.verdict == "Pass") || r.canary_revision.is_none()
    })
    .await;
    let check = passed.last_check.clone().expect("a check ran");
    assert_eq!(check.verdict, "Pass", "{passed:?}");
    assert!(check.canary_samples >= 4 && check.stable_samples >= 4, "numbers from Prometheus: {check:?}");
    let promoted = wait_rollout(&configs, "r1 promoted or rolled back", |r| {
        (r.phase == "Stable" && r.stable_revision == r1) || r.failed_revisions.contains(&r1)
    })
    .await;
    assert!(!promoted.failed_revisions.contains(&r1), "the healthy revision was rolled back: {promoted:?}");
    let note = notified(&received, "Promoted", &r1, HOOK_KEY.as_bytes()).await;
    assert_eq!((note["namespace"].as_str(), note["config"].as_str()), (Some(ns.as_str()), Some("prom")));

    // (b) A line that refuses every submission: the error rate, as Prometheus counts it, rolls it back.
    apply_json::<FaxProvider>(&client, &ns, line(json!({"deliveryLatencyMs": 150, "rejectSuffix": "0108"})))
        .await
        .unwrap();
    let r2 = wait_rollout(&configs, "the bad canary", |r| r.canary_revision.as_ref().is_some_and(|c| *c != r1))
        .await
        .canary_revision
        .unwrap();
    let rolled = wait_rollout(&configs, "the bad canary rolled back", |r| r.failed_revisions.contains(&r2)).await;
    let reason = rolled.last_rollback.clone().unwrap_or_default();
    assert!(reason.contains("error rate"), "rolled back by the error-rate rule: {reason}");
    let note = notified(&received, "RolledBack", &r2, HOOK_KEY.as_bytes()).await;
    assert_eq!(note["stableRevision"].as_str(), Some(r1.as_str()));
    assert!(note["message"].as_str().unwrap().contains("error rate"), "{note}");

    // (c) Prometheus gone: the checks say AnalysisUnavailable, not "no data".
    prometheus.stop();
    apply_json::<FaxProvider>(&client, &ns, line(json!({"deliveryLatencyMs": 200}))).await.unwrap();
    let unavailable = wait_rollout(&configs, "an AnalysisUnavailable check", |r| {
        r.canary_revision.as_ref().is_some_and(|c| *c != r1 && *c != r2)
            && r.last_check.as_ref().is_some_and(|c| c.verdict == "AnalysisUnavailable")
    })
    .await;
    eprintln!("prometheus: without Prometheus: {:?}", unavailable.last_check);

    stop.store(true, Ordering::Relaxed);
    for t in traffic {
        let _ = t.await;
    }
    eprintln!("prometheus: {} faxes accepted", sent.load(Ordering::Relaxed));
    let everything: Vec<u8> = received.lock().unwrap().iter().flat_map(|(_, b)| b.clone()).collect();
    let everything = String::from_utf8_lossy(&everything);
    assert!(!everything.contains("5557650108") && !everything.contains(HOOK_KEY), "{everything}");
    assert_logs_clean(
        &namespace_logs(&client, &ns).await,
        &[ADMIN, PEPPER_VALUE, &db_url, HOOK_KEY],
        &["+15557650108"],
    );
    operator.assert_no_leaks(&[ADMIN, PEPPER_VALUE, &db_url, HOOK_KEY]);
}
