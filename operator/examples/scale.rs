//! Scale benchmark of the operator against a real control plane (run by `scripts/bench/operator`).
//!
//! 1. Creates `NAMESPACES` namespaces, each with an admin Secret, `PROVIDERS_PER_NS` FaxProviders and
//!    `CONFIGS_PER_NS` FaxPluginConfigs (each config has its own outbound provider), before the operator runs.
//! 2. Starts the release operator and measures the time until every config is Ready (Deployment available,
//!    via kwok's fake node) and every provider is Ready, sampling the operator's RSS.
//! 3. Measures change latency: patches one config's outbound provider settings and times until the
//!    Deployment's pod template carries the new revision; `SAMPLES` times, sequentially.
//!
//! Prints one result line per measure; the numbers are recorded in docs/benchmarks.md.

// Benchmark code: a failed unwrap aborts the run with its message.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faxbot_crds::{FaxPluginConfig, FaxProvider};
use futures_util::{StreamExt, TryStreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) the process has used, from `/proc/<pid>/stat` (clock ticks of 1/100 s): a
/// measure of the operator's work that does not depend on how busy the shared cores were.
fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses and may hold spaces).
            let rest = &s[s.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// Config reconciles the operator has started and the seconds they took in all, and provider reconciles
/// started, from its own `/metrics`.
async fn reconciles(port: u16) -> (u64, f64, u64) {
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    let value = |metric: &str, controller: &str| -> f64 {
        let prefix = format!("faxbot_operator_{metric}{{controller=\"{controller}\"}} ");
        body.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
    };
    (
        value("reconciliations_total", "faxpluginconfig") as u64,
        value("reconcile_duration_seconds_sum", "faxpluginconfig"),
        value("reconciliations_total", "faxprovider") as u64,
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn apply(client: &Client, ns: &str, manifest: serde_json::Value) {
    let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
    let kind = manifest["kind"].as_str().unwrap().to_string();
    let pp = PatchParams::apply("faxbot-bench").force();
    match kind.as_str() {
        "FaxProvider" => {
            Api::<FaxProvider>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &Patch::Apply(manifest))
                .await
                .unwrap();
        }
        "FaxPluginConfig" => {
            Api::<FaxPluginConfig>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &Patch::Apply(manifest))
                .await
                .unwrap();
        }
        _ => unreachable!(),
    }
}

fn provider(name: &str, latency: u64) -> serde_json::Value {
    json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxProvider", "metadata": {"name": name},
           "spec": {"plugin": "test", "settings": {"deliveryLatencyMs": latency}}})
}

#[tokio::main]
async fn main() {
    let namespaces = env_usize("NAMESPACES", 10);
    let providers_per_ns = env_usize("PROVIDERS_PER_NS", 100);
    let configs_per_ns = env_usize("CONFIGS_PER_NS", 10);
    let samples = env_usize("SAMPLES", 100);
    let kubeconfig = std::env::var("FAXBOT_TEST_KUBECONFIG").expect("FAXBOT_TEST_KUBECONFIG");
    let operator_bin = std::env::var("FAXBOT_OPERATOR_BIN").expect("FAXBOT_OPERATOR_BIN");
    let kc = Kubeconfig::read_from(&kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
    // The load generator must not be the bottleneck: let it make many requests at once.
    config.read_timeout = Some(Duration::from_secs(60));
    let client = Client::try_from(config).unwrap();

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in faxbot_crds::crds() {
        let mut v = serde_json::to_value(&crd).unwrap();
        v["apiVersion"] = "apiextensions.k8s.io/v1".into();
        v["kind"] = "CustomResourceDefinition".into();
        crds.patch(&crd.name_any(), &PatchParams::apply("faxbot-bench").force(), &Patch::Apply(v)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let started = Instant::now();
    let ns_names: Vec<String> = (0..namespaces).map(|i| format!("bench-{i:02}")).collect();
    for ns in &ns_names {
        let api: Api<Namespace> = Api::all(client.clone());
        let n =
            Namespace { metadata: ObjectMeta { name: Some(ns.clone()), ..Default::default() }, ..Default::default() };
        api.create(&PostParams::default(), &n).await.unwrap();
        let secret = Secret {
            metadata: ObjectMeta { name: Some("admin".into()), ..Default::default() },
            data: Some(
                [("adminKey", "fbk_admin_bench-key"), ("pepper", "bench-pepper")]
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        // The ServiceAccount admission needs the namespace's default account; Secrets do not.
        Api::<Secret>::namespaced(client.clone(), ns).create(&PostParams::default(), &secret).await.unwrap();
    }
    let mut manifests = Vec::new();
    for ns in &ns_names {
        manifests.push((
            ns.clone(),
            json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxProvider",
            "metadata": {"name": "keys"},
            "spec": {"plugin": "api_keys", "credentialsSecretRef": {"name": "admin"}}}),
        ));
        for p in 1..providers_per_ns {
            manifests.push((ns.clone(), provider(&format!("line-{p:03}"), 100)));
        }
        for c in 0..configs_per_ns {
            manifests.push((
                ns.clone(),
                json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxPluginConfig",
                "metadata": {"name": format!("api-{c:02}")},
                "spec": {"apiServer": {"image": "registry.example/faxbot-api:bench"},
                         "slots": {"outbound": [format!("line-{:03}", c + 1)], "auth": "keys"}}}),
            ));
        }
    }
    let total_objects = manifests.len();
    stream::iter(manifests)
        .map(|(ns, m)| {
            let client = client.clone();
            async move { apply(&client, &ns, m).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    println!(
        "setup: {} namespaces, {} FaxProviders, {} FaxPluginConfigs created in {:.1} s",
        namespaces,
        namespaces * providers_per_ns,
        namespaces * configs_per_ns,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(total_objects, namespaces * (providers_per_ns + configs_per_ns));

    // A free port for the operator's /metrics (reconcile counts).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(&operator_bin)
        .env("KUBECONFIG", &kubeconfig)
        .env("FAXBOT_OPERATOR_LISTEN", format!("127.0.0.1:{port}"))
        .env("FAXBOT_LEASE_NAMESPACE", "default")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let t0 = Instant::now();
    let configs: Api<FaxPluginConfig> = Api::all(client.clone());
    let providers: Api<FaxProvider> = Api::all(client.clone());
    let want_configs = namespaces * configs_per_ns;
    let want_providers = namespaces * providers_per_ns;
    let mut peak_rss = 0;
    let (mut configs_ready_at, mut providers_ready_at, mut applied_at) = (None, None, None);
    let all_deployments: Api<Deployment> = Api::all(client.clone());
    while configs_ready_at.is_none() || providers_ready_at.is_none() {
        if applied_at.is_none() {
            let n = all_deployments
                .list(&ListParams::default().labels("app.kubernetes.io/managed-by=faxbot-operator"))
                .await
                .unwrap()
                .items
                .len();
            if n == want_configs {
                applied_at = Some(t0.elapsed());
            }
        }
        peak_rss = peak_rss.max(rss_kib(pid, "VmRSS:"));
        assert!(t0.elapsed() < Duration::from_secs(600), "not all Ready after 10 minutes");
        if configs_ready_at.is_none() {
            let ready = configs
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter(|c| {
                    c.status
                        .as_ref()
                        .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            if ready == want_configs {
                configs_ready_at = Some(t0.elapsed());
            }
        }
        if providers_ready_at.is_none() {
            let ready = providers
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter(|p| {
                    p.status
                        .as_ref()
                        .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            if ready == want_providers {
                providers_ready_at = Some(t0.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "cold start: all {want_configs} Deployments applied after {:.1} s; all {want_configs} FaxPluginConfigs Ready (Deployments available) after {:.1} s; all {want_providers} FaxProviders Ready after {:.1} s",
        applied_at.map(|d| d.as_secs_f64()).unwrap_or(f64::NAN),
        configs_ready_at.unwrap().as_secs_f64(),
        providers_ready_at.unwrap().as_secs_f64()
    );
    let (cold_configs, cold_seconds, cold_providers) = reconciles(port).await;
    let cold_cpu = cpu_seconds(pid);
    println!(
        "cold start work: {cold_configs} config reconciles ({:.1} per config), {cold_providers} provider reconciles, operator CPU {cold_cpu:.1} s",
        cold_configs as f64 / want_configs as f64
    );

    // Change latency: CR change -> Deployment pod template on the new revision.
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let ns = &ns_names[i % namespaces];
        let c = (i / namespaces) % configs_per_ns;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let dep_name = format!("api-{c:02}-api");
        let before = faxbot_operator::status::deployment_revision(&deployments.get(&dep_name).await.unwrap());
        let t = Instant::now();
        apply(&client, ns, provider(&format!("line-{:03}", c + 1), 200 + i as u64)).await;
        loop {
            let now = faxbot_operator::status::deployment_revision(&deployments.get(&dep_name).await.unwrap());
            if now != before {
                latencies.push(t.elapsed());
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "change {i} never reached the Deployment");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        peak_rss = peak_rss.max(rss_kib(pid, "VmRSS:"));
    }
    latencies.sort();
    let (configs_after, seconds_after, _) = reconciles(port).await;
    println!(
        "change work: {:.1} config reconciles of {:.0} ms on average, {:.0} ms operator CPU per change",
        (configs_after - cold_configs) as f64 / samples as f64,
        (seconds_after - cold_seconds) * 1000.0 / (configs_after - cold_configs).max(1) as f64,
        (cpu_seconds(pid) - cold_cpu) * 1000.0 / samples as f64
    );
    println!(
        "change latency (CR change -> Deployment updated), {} samples: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.9).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0
    );
    let hwm = rss_kib(pid, "VmHWM:");
    println!(
        "operator memory: peak RSS {:.1} MiB (VmHWM), highest sampled {:.1} MiB",
        hwm as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
    // Leave nothing behind for the next run on the same control plane.
    let ns_api: Api<Namespace> = Api::all(client.clone());
    stream::iter(ns_names)
        .map(|ns| {
            let ns_api = ns_api.clone();
            async move { ns_api.delete(&ns, &Default::default()).await.map(|_| ()) }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await
        .ok();
}
