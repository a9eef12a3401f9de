//! A sidecar plugin in a real pod: the Python plugin that `faxbot plugin new pod-sim --kind python` generates,
//! with the Python plugin kit, built into an image by `scripts/images.sh` (`FAXBOT_TEST_PLUGIN_PYTHON_IMAGE`)
//! and named by a FaxProvider with `plugin: external`. The operator adds it to the API pod as the container
//! `plugin-<provider>`; the kubelet runs both containers under the "restricted" Pod Security Standard, and the
//! API server in the same pod sends faxes through the plugin over the pod's loopback, with the token from the
//! provider's Secret. The plugin delegates to the kit's simulated provider, so `+1…0100` is delivered and
//! `+1…0101` fails in transmission with the simulated reason.
//!
//! tests/e2e/sidecar.rs checks what the operator renders for a sidecar on the control plane alone; this one
//! runs it.

use std::time::{Duration, Instant};

use faxbot_crds::{FaxPluginConfig, FaxProvider};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::*;

const T: Duration = Duration::from_secs(120);
const TOKEN: &str = "pod-sidecar-plugin-token-do-not-leak-4c1d";
const DELIVERED: &str = "+15555550100";
const FAILS: &str = "+15555550101";

/// The Python plugin image loaded into the test node, or `None` (with a loud reason) when the test must skip;
/// under `CI=true` a missing image fails it.
fn plugin_image() -> Option<String> {
    match std::env::var("FAXBOT_TEST_PLUGIN_PYTHON_IMAGE").ok().filter(|v| !v.is_empty()) {
        Some(image) => Some(image),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but FAXBOT_TEST_PLUGIN_PYTHON_IMAGE is not set: scripts/images.sh builds it")
        }
        None => {
            eprintln!(
                "SKIPPING sidecar pod test: FAXBOT_TEST_PLUGIN_PYTHON_IMAGE is not set (scripts/kube-testenv.sh start \
                 --kubelet builds and loads it)"
            );
            None
        }
    }
}

/// Whether container `name` of `pod` is running.
fn running(pod: &Pod, name: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == name))
        .is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_sidecar_from_the_kit_sends_faxes_from_a_real_pod() {
    let _cluster = shared_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let Some(node) = Node::get() else { return };
    let Some(image) = plugin_image() else { return };
    let test_started = Instant::now();
    let client = client(&kc).await;
    install_crds(&client).await;
    let ns = namespace(&client, "pods-sidecar").await;
    let _cleanup = cleanup(&kc, &[&ns]);
    enforce_restricted(&client, &ns).await;
    put_secret(&client, &ns, "admin", &[("adminKey", ADMIN_KEY), ("pepper", PEPPER)]).await;
    put_secret(&client, &ns, "pysim", &[("pluginToken", TOKEN)]).await;
    apply_keys_provider(&client, &ns).await;
    let provider = json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxProvider", "metadata": {"name": "pysim"},
        "spec": {"plugin": "external", "settings": {"timeoutMs": 10000},
                 "credentialsSecretRef": {"name": "pysim"},
                 // Loaded into the node's containerd by kube-testenv: never pulled.
                 "sidecar": {"image": image, "imagePullPolicy": "Never"}}});
    apply_json::<FaxProvider>(&client, &ns, provider).await.unwrap();
    let config = json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxPluginConfig",
        "metadata": {"name": "faxbot"},
        "spec": {"apiServer": {"image": node.api_image, "replicas": 1},
                 "slots": {"outbound": ["pysim"], "auth": "keys"},
                 // `external` does not declare HIPAA capability by itself.
                 "compliance": {"hipaa": false},
                 "rollout": {"strategy": "Immediate"}}});
    let applied = Instant::now();
    apply_json::<FaxPluginConfig>(&client, &ns, config).await.unwrap();
    let operator = Operator::start(&kc, &ns, "op-sidecar-pod");

    // Both containers running in one pod, the pod Ready, the config Ready.
    let pod = wait_for(T, "the API pod Ready with the api and plugin-pysim containers running", || {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            let pods = api_pods(&client, &ns, "faxbot").await;
            pods.into_iter().find(|p| pod_ready(p) && running(p, "api") && running(p, "plugin-pysim"))
        }
    })
    .await;
    let pod_ready_after = applied.elapsed();
    let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), &ns);
    wait_for(T, "the FaxPluginConfig Ready", || {
        let configs = configs.clone();
        async move {
            let status = configs.get("faxbot").await.ok()?.status?;
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
            (ready.status == "True" && ready.reason == "Available").then_some(())
        }
    })
    .await;
    let spec = pod.spec.as_ref().unwrap();
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["api", "plugin-pysim"]);
    assert_eq!(spec.containers[1].image.as_deref(), Some(image.as_str()));

    // The plugin is the generated Python program, listening on the pod's loopback at the default port, as the
    // pod's non-root user without capabilities.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let plugin_log = wait_for(T, "the plugin's `listening on` line", || {
        let (pods, name) = (pods.clone(), pod.name_any());
        async move {
            let params = LogParams { container: Some("plugin-pysim".into()), ..Default::default() };
            pods.logs(&name, &params).await.ok().filter(|l| l.contains("listening on "))
        }
    })
    .await;
    assert!(plugin_log.lines().any(|l| l == "listening on http://127.0.0.1:8090"), "{plugin_log}");
    let statuses = pod.status.as_ref().unwrap().container_statuses.clone().unwrap();
    let plugin_status = statuses.iter().find(|c| c.name == "plugin-pysim").unwrap();
    let pid = node.container_pid(plugin_status.container_id.as_deref().unwrap().trim_start_matches("containerd://"));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<String> =
        cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into()).collect();
    assert_eq!(argv, ["/usr/bin/python3", "-m", "pod_sim"], "the plugin's process");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = faxbot_operator::build::RUN_AS.to_string();
    let field = |name: &str| status.lines().find(|l| l.starts_with(name)).map(|l| l[name.len()..].trim().to_string());
    assert_eq!(field("Uid:").unwrap().split_whitespace().collect::<Vec<_>>(), [uid.as_str(); 4]);
    assert_eq!(field("CapEff:").as_deref(), Some("0000000000000000"));
    eprintln!(
        "sidecar pod: apply → pod Ready with both containers running {:.1} s; plugin restarts {}, {}",
        pod_ready_after.as_secs_f64(),
        plugin_status.restart_count,
        field("VmRSS:").unwrap_or_default()
    );

    // Faxes through the API Service, sent by the API server through the sidecar.
    let api = FaxApi::of(&client, &ns, "faxbot", ADMIN_KEY).await;
    let sent = Instant::now();
    let delivered = api.send(DELIVERED).await.unwrap_or_else(|e| panic!("fax refused: {e:?}"));
    let fails = api.send(FAILS).await.unwrap_or_else(|e| panic!("fax refused: {e:?}"));
    let job = api.wait_final(&delivered, T).await;
    assert_eq!((&job["status"], &job["backend"]), (&json!("SUCCESS"), &json!("external")), "{job}");
    let success_after = sent.elapsed();
    let job = api.wait_final(&fails, T).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(error.contains("no answer from the receiving fax machine"), "the simulated reason: {job}");
    eprintln!("sidecar pod: first fax SUCCESS {:.1} s after it was sent", success_after.as_secs_f64());

    // Neither number in full, nor the token or the admin credentials, in any container's log (the API
    // server's and the plugin's) or the operator's output.
    let logs = namespace_logs(&client, &ns).await;
    assert!(logs.contains("/api (previous: false)") && logs.contains("/plugin-pysim (previous: false)"), "{logs}");
    // The server read the manifest of this plugin (the generated id), not of anything else on the port.
    assert!(logs.contains(r#""plugin":"pod-sim""#), "the API server read the sidecar's manifest: {logs}");
    assert_logs_clean(&logs, &[TOKEN, ADMIN_KEY, PEPPER], &[DELIVERED, FAILS]);
    operator.assert_no_leaks(&[TOKEN, ADMIN_KEY, PEPPER]);
    eprintln!("sidecar pod: the test ran {:.1} s", test_started.elapsed().as_secs_f64());
}
