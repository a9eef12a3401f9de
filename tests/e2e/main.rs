//! End-to-end: the real `faxbot-operator` binary against a real kube-apiserver, etcd and
//! kube-controller-manager (garbage collection, Deployment → ReplicaSet → Pod), kube-scheduler and a real node
//! (containerd, kubelet, kube-proxy) that runs the API pods from the project's own images
//! (`scripts/kube-testenv.sh start --kubelet`).

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

mod canary;
mod helm;
mod manifests;
mod pods;
mod prometheus;
mod rollout_edges;
mod sidecar;
mod sidecar_pod;
mod support;

use std::time::Duration;

use faxbot_crds::{FaxPluginConfig, FaxProvider};
use faxbot_operator::validate::{Referenced, validate_config};
use faxbot_operator::{build, names};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use support::*;

const T: Duration = Duration::from_secs(60);

fn provider(name: &str, plugin: &str, settings: serde_json::Value, secret: Option<&str>) -> serde_json::Value {
    let mut spec = json!({"plugin": plugin, "settings": settings});
    if let Some(s) = secret {
        spec["credentialsSecretRef"] = json!({"name": s});
    }
    json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxProvider", "metadata": {"name": name}, "spec": spec})
}

/// The `faxbot-api` image loaded into the test node; without a node, a made-up name (the tests that use this
/// only check the objects the operator renders, which never run).
fn api_image() -> String {
    std::env::var("FAXBOT_TEST_API_IMAGE").unwrap_or_else(|_| "registry.example/faxbot-api:e2e".into())
}

fn plugin_config(name: &str, auth: &str, replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxPluginConfig", "metadata": {"name": name},
        "spec": {
            "apiServer": {"image": api_image(), "replicas": replicas},
            "slots": {"outbound": ["line"], "auth": auth},
            "features": {"auditAll": true}
        }
    })
}

async fn ready_condition(api: &Api<FaxPluginConfig>, name: &str) -> Option<(String, String, String)> {
    let c = api.get(name).await.ok()?;
    let generation = c.metadata.generation;
    let status = c.status?;
    if status.observed_generation != generation {
        return None;
    }
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((ready.status.clone(), ready.reason.clone(), ready.message.clone()))
}

async fn wait_ready(api: &Api<FaxPluginConfig>, name: &str, want: (&str, &str)) -> String {
    let mut last = None;
    let result = tokio::time::timeout(T, async {
        loop {
            if let Some(c) = ready_condition(api, name).await {
                if c.0 == want.0 && c.1 == want.1 {
                    return c.2;
                }
                last = Some(c);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    result.unwrap_or_else(|_| panic!("{name}: Ready never became {want:?}; last seen {last:?}"))
}

/// Waits until `rev` is the serving revision and Ready: a Ready condition from before a change is stale, and
/// its observedGeneration cannot tell (a provider change does not bump the config's generation).
async fn wait_serving(api: &Api<FaxPluginConfig>, name: &str, rev: &str) {
    wait_for(T, "the new revision serving and Ready", || {
        let api = api.clone();
        async move {
            let status = api.get(name).await.ok()?.status?;
            let ready =
                status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True" && c.message.contains(rev));
            (ready && status.current_revision.as_deref() == Some(rev)).then_some(())
        }
    })
    .await;
}

async fn deployment_revision(api: &Api<Deployment>, name: &str) -> Option<String> {
    let d = api.get_opt(name).await.ok()??;
    faxbot_operator::status::deployment_revision(&d)
}

/// What the pure pipeline says the cluster should hold, computed from the objects as they are in the cluster.
async fn expected(client: &Client, ns: &str, config: &str) -> (FaxPluginConfig, faxbot_operator::validate::Desired) {
    let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), ns);
    let providers: Api<FaxProvider> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let c = configs.get(config).await.unwrap();
    let mut referenced = Referenced::default();
    for p in providers.list(&ListParams::default()).await.unwrap() {
        referenced.providers.insert(p.name_any(), p);
    }
    for s in secrets.list(&ListParams::default()).await.unwrap() {
        referenced.secrets.insert(s.name_any(), s);
    }
    let desired = validate_config(&c, &referenced).expect("the spec is valid");
    (c, desired)
}

async fn owned_names<K>(client: &Client, ns: &str, config: &str) -> Vec<String>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let selector = format!("{}={config}", names::CONFIG_LABEL);
    let mut names: Vec<String> =
        api.list(&ListParams::default().labels(&selector)).await.unwrap().items.iter().map(|o| o.name_any()).collect();
    names.sort();
    names
}

/// The exact objects for the current spec: compare what the cluster holds with what the pure builders produce.
async fn assert_exact_objects(client: &Client, ns: &str, config: &str) -> String {
    let (c, desired) = expected(client, ns, config).await;
    let cm: ConfigMap = Api::namespaced(client.clone(), ns)
        .get(&names::config_map_name(config, &desired.revision))
        .await
        .expect("runtime config ConfigMap");
    let want = build::config_map(&c, &desired);
    assert_eq!(cm.data, want.data, "ConfigMap data");
    assert_eq!(cm.immutable, Some(true));
    assert_eq!(cm.metadata.labels, want.metadata.labels);
    assert_eq!(cm.metadata.owner_references, want.metadata.owner_references);

    let secret: Secret = Api::namespaced(client.clone(), ns)
        .get(&names::credentials_secret_name(config, &desired.revision))
        .await
        .expect("credentials Secret");
    assert_eq!(
        secret.data,
        build::credentials_secret(&c, &desired).data,
        "Secret data: exactly the referenced credentials"
    );
    assert_eq!(secret.immutable, Some(true));

    let svc: Service = Api::namespaced(client.clone(), ns).get(&names::api_name(config)).await.expect("Service");
    let want_svc = build::service(&c).spec.unwrap();
    let got_svc = svc.spec.unwrap();
    assert_eq!(got_svc.selector, want_svc.selector);
    assert_eq!(got_svc.ports.as_ref().unwrap()[0].port, 80);
    assert_eq!(got_svc.ports.as_ref().unwrap()[0].target_port, want_svc.ports.as_ref().unwrap()[0].target_port);

    let dep: Deployment = Api::namespaced(client.clone(), ns).get(&names::api_name(config)).await.expect("Deployment");
    let want_dep = build::deployment(&c, &desired);
    let (got, want) = (dep.spec.unwrap(), want_dep.spec.unwrap());
    assert_eq!(got.replicas, want.replicas);
    assert_eq!(got.selector, want.selector);
    assert_eq!(
        got.template.metadata.as_ref().unwrap().annotations,
        want.template.metadata.as_ref().unwrap().annotations
    );
    assert_eq!(got.template.metadata.as_ref().unwrap().labels, want.template.metadata.as_ref().unwrap().labels);
    let (gp, wp) = (got.template.spec.unwrap(), want.template.spec.unwrap());
    let (gc, wc) = (&gp.containers[0], &wc_first(&wp));
    assert_eq!(gc.image, wc.image);
    assert_eq!(gc.env, wc.env);
    assert_eq!(gc.volume_mounts, wc.volume_mounts);
    assert_eq!(gc.security_context, wc.security_context);
    assert_eq!(gc.readiness_probe.as_ref().unwrap().http_get, wc.readiness_probe.as_ref().unwrap().http_get);
    assert_eq!(gc.liveness_probe.as_ref().unwrap().http_get, wc.liveness_probe.as_ref().unwrap().http_get);
    assert_eq!(
        gp.security_context.as_ref().unwrap().seccomp_profile,
        wp.security_context.as_ref().unwrap().seccomp_profile
    );
    assert_eq!(gp.automount_service_account_token, Some(false));
    desired.revision
}

fn wc_first(spec: &k8s_openapi::api::core::v1::PodSpec) -> k8s_openapi::api::core::v1::Container {
    spec.containers[0].clone()
}

async fn events_for(client: &Client, ns: &str, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}

fn assert_text_has_no_credentials(what: &str, text: &str) {
    for secret in [ADMIN_KEY, ROTATED_KEY, PEPPER] {
        assert!(!text.contains(secret), "{what} contains a credential");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_from_create_to_garbage_collection() {
    let _cluster = shared_cluster().await;
    let Some(kubeconfig) = kubeconfig() else { return };
    let Some(_node) = Node::get() else { return };
    let client = client(&kubeconfig).await;
    install_crds(&client).await;
    let ns = namespace(&client, "e2e-life").await;
    let _cleanup = cleanup(&kubeconfig, &[&ns]);
    let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);

    put_secret(&client, &ns, "admin", &[("adminKey", ADMIN_KEY), ("pepper", PEPPER)]).await;
    apply_json::<FaxProvider>(&client, &ns, provider("line", "test", json!({"deliveryLatencyMs": 50}), None))
        .await
        .unwrap();
    apply_json::<FaxProvider>(&client, &ns, provider("keys", "api_keys", json!({}), Some("admin"))).await.unwrap();
    apply_json::<FaxPluginConfig>(&client, &ns, plugin_config("main", "keys", 1)).await.unwrap();

    let mut operator = Operator::start(&kubeconfig, &ns, "op-a");

    // 1. Create: exact objects, then Ready once the pod is available.
    let msg = wait_ready(&configs, "main", ("True", "Available")).await;
    let rev1 = assert_exact_objects(&client, &ns, "main").await;
    assert!(msg.contains(&rev1), "{msg}");
    let providers: Api<FaxProvider> = Api::namespaced(client.clone(), &ns);
    for p in ["line", "keys"] {
        let status = wait_for(T, "provider status", || {
            let providers = providers.clone();
            async move { providers.get(p).await.ok()?.status.filter(|s| !s.conditions.is_empty()) }
        })
        .await;
        assert_eq!(status.conditions[0].status, "True", "{p}: {:?}", status.conditions);
    }
    let status = configs.get("main").await.unwrap().status.unwrap();
    assert_eq!(status.current_revision.as_deref(), Some(rev1.as_str()));
    assert_eq!((status.replicas, status.ready_replicas), (1, 1));
    // A real pod of that revision serves the API through the Service: the admin key from the Secret works, a
    // fax on the simulated line ends SUCCESS.
    let rev1_pods = pods_of_revision(&client, &ns, &rev1).await;
    assert_eq!(rev1_pods.len(), 1);
    let api = FaxApi::of(&client, &ns, "main", ADMIN_KEY).await;
    assert_eq!(api.status("/admin/api-keys", Some(ADMIN_KEY)).await, 200);
    assert_eq!(api.status("/admin/api-keys", None).await, 401);
    let job = api.send("+15557650101").await.expect("fax accepted");
    assert_eq!(api.wait_final(&job, T).await["status"], "SUCCESS");

    // 2. Change a setting: a new revision reaches the Deployment; the old ConfigMap is kept for rollback.
    apply_json::<FaxProvider>(&client, &ns, provider("line", "test", json!({"deliveryLatencyMs": 75}), None))
        .await
        .unwrap();
    let rev2 = wait_for(T, "new revision on the Deployment", || {
        let deployments = deployments.clone();
        let rev1 = rev1.clone();
        async move { deployment_revision(&deployments, "main-api").await.filter(|r| *r != rev1) }
    })
    .await;
    wait_serving(&configs, "main", &rev2).await;
    assert_eq!(assert_exact_objects(&client, &ns, "main").await, rev2);
    // The setting change replaced the pod: a new one runs the new revision, the old one is gone.
    let rev2_pods = wait_pods_replaced(&client, &ns, &rev2, &rev1_pods).await;
    let cms = owned_names::<ConfigMap>(&client, &ns, "main").await;
    assert!(
        cms.contains(&names::config_map_name("main", &rev1)) && cms.contains(&names::config_map_name("main", &rev2))
    );

    // 3. Rotate a Secret: the credentials checksum in the pod template changes.
    let checksum = |d: &Deployment| {
        d.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().annotations.as_ref().unwrap()
            [names::CREDENTIALS_CHECKSUM_ANNOTATION]
            .clone()
    };
    let before = checksum(&deployments.get("main-api").await.unwrap());
    put_secret(&client, &ns, "admin", &[("adminKey", ROTATED_KEY), ("pepper", PEPPER)]).await;
    let rev3 = wait_for(T, "rotation rolls the pods", || {
        let deployments = deployments.clone();
        let rev2 = rev2.clone();
        async move { deployment_revision(&deployments, "main-api").await.filter(|r| *r != rev2) }
    })
    .await;
    assert_ne!(checksum(&deployments.get("main-api").await.unwrap()), before);
    wait_serving(&configs, "main", &rev3).await;
    assert_eq!(assert_exact_objects(&client, &ns, "main").await, rev3);
    // The pod was replaced, and the one behind the Service takes the rotated key and refuses the old one.
    wait_pods_replaced(&client, &ns, &rev3, &rev2_pods).await;
    // The revoked key does not linger in the old revision's credentials Secret once no pod mounts it (the
    // ConfigMaps stay as history; credentials have none).
    let old_credentials = names::credentials_secret_name("main", &rev2);
    wait_for(T, "the old revision's credentials Secret removed", || {
        let (client, ns, old) = (client.clone(), ns.clone(), old_credentials.clone());
        async move { (!owned_names::<Secret>(&client, &ns, "main").await.contains(&old)).then_some(()) }
    })
    .await;
    let api = FaxApi::of(&client, &ns, "main", ROTATED_KEY).await;
    wait_for(T, "the rotated key accepted through the Service", || {
        let api = &api;
        async move { (api.status("/admin/api-keys", Some(ROTATED_KEY)).await == 200).then_some(()) }
    })
    .await;
    assert_eq!(api.status("/admin/api-keys", Some(ADMIN_KEY)).await, 401, "the old key no longer works");

    // 4. Break a reference: Ready=False with the reason, an Event, and the Deployment untouched.
    let untouched = deployments.get("main-api").await.unwrap();
    apply_json::<FaxPluginConfig>(&client, &ns, plugin_config("main", "no-such-provider", 1)).await.unwrap();
    let msg = wait_ready(&configs, "main", ("False", "ProviderNotFound")).await;
    assert!(msg.contains("no-such-provider") && msg.contains(&format!("revision {rev3} keeps serving")), "{msg}");
    let degraded = configs.get("main").await.unwrap().status.unwrap();
    assert!(degraded.conditions.iter().any(|c| c.type_ == "Degraded" && c.status == "True"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = deployments.get("main-api").await.unwrap();
    assert_eq!(
        after.metadata.generation, untouched.metadata.generation,
        "an invalid spec must not touch the Deployment"
    );
    assert_eq!(faxbot_operator::status::deployment_revision(&after), Some(rev3.clone()));
    wait_for(T, "a ProviderNotFound event", || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            events_for(&client, &ns, "main")
                .await
                .into_iter()
                .any(|e| e.reason.as_deref() == Some("ProviderNotFound"))
                .then_some(())
        }
    })
    .await;

    // 5. Fix it: back to the serving revision, Ready again.
    apply_json::<FaxPluginConfig>(&client, &ns, plugin_config("main", "keys", 1)).await.unwrap();
    wait_ready(&configs, "main", ("True", "Available")).await;
    assert_eq!(deployment_revision(&deployments, "main-api").await, Some(rev3.clone()));

    // 6. Crash the operator, change the spec while it is down, start a new one: it converges with no
    //    duplicate or lost objects.
    operator.kill();
    operator.assert_no_leaks(&[ADMIN_KEY, ROTATED_KEY, PEPPER]);
    apply_json::<FaxProvider>(&client, &ns, provider("line", "test", json!({"deliveryLatencyMs": 90}), None))
        .await
        .unwrap();
    let mut operator = Operator::start(&kubeconfig, &ns, "op-b");
    let rev4 = wait_for(Duration::from_secs(90), "the restarted operator applies the change", || {
        let deployments = deployments.clone();
        let rev3 = rev3.clone();
        async move { deployment_revision(&deployments, "main-api").await.filter(|r| *r != rev3) }
    })
    .await;
    wait_serving(&configs, "main", &rev4).await;
    assert_eq!(assert_exact_objects(&client, &ns, "main").await, rev4);
    assert_eq!(owned_names::<Deployment>(&client, &ns, "main").await, vec!["main-api"]);
    assert_eq!(owned_names::<Service>(&client, &ns, "main").await, vec!["main-api"]);
    let cms = owned_names::<ConfigMap>(&client, &ns, "main").await;
    let mut want: Vec<String> =
        [&rev1, &rev2, &rev3, &rev4].iter().map(|r| names::config_map_name("main", r)).collect();
    want.sort();
    assert_eq!(cms, want, "one ConfigMap per revision, none duplicated or lost");
    wait_for(T, "only the serving revision's credentials Secret", || {
        let (client, ns, want) = (client.clone(), ns.clone(), vec![names::credentials_secret_name("main", &rev4)]);
        async move { (owned_names::<Secret>(&client, &ns, "main").await == want).then_some(()) }
    })
    .await;

    // Nothing public carries a credential: status, events, ConfigMaps, Deployment, logs.
    let config = configs.get("main").await.unwrap();
    assert_text_has_no_credentials("status", &serde_json::to_string(&config.status).unwrap());
    for e in events_for(&client, &ns, "main").await {
        assert_text_has_no_credentials("event", &format!("{:?}", e.note));
    }
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for cm in cm_api.list(&ListParams::default()).await.unwrap() {
        assert_text_has_no_credentials("configmap", &serde_json::to_string(&cm).unwrap());
    }
    assert_text_has_no_credentials(
        "deployment",
        &serde_json::to_string(&deployments.get("main-api").await.unwrap()).unwrap(),
    );
    assert_logs_clean(&namespace_logs(&client, &ns).await, &[ADMIN_KEY, ROTATED_KEY, PEPPER], &["+15557650101"]);

    // Metrics are served and count reconciles.
    let metrics = http_get(&operator.metrics_addr(), "/metrics").await;
    assert!(metrics.contains("faxbot_operator_reconciliations_total{controller=\"faxpluginconfig\"}"), "{metrics}");
    assert!(
        metrics.contains("faxbot_operator_config_ready{namespace=\"") && metrics.contains("name=\"main\"} 1"),
        "{metrics}"
    );

    // 7. Delete the config: every owned object is garbage-collected by the controller manager.
    configs.delete("main", &DeleteParams::foreground()).await.unwrap();
    wait_for(Duration::from_secs(90), "owned objects garbage-collected", || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let left = owned_names::<Deployment>(&client, &ns, "main").await.len()
                + owned_names::<Service>(&client, &ns, "main").await.len()
                + owned_names::<ConfigMap>(&client, &ns, "main").await.len()
                + owned_names::<Secret>(&client, &ns, "main").await.len();
            (left == 0).then_some(())
        }
    })
    .await;
    assert!(operator.terminate(), "graceful shutdown exits 0");
    operator.assert_no_leaks(&[ADMIN_KEY, ROTATED_KEY, PEPPER]);
}

/// The pods of one revision.
async fn pods_of_revision(client: &Client, ns: &str, revision: &str) -> Vec<String> {
    let mut names: Vec<String> = api_pods(client, ns, "main")
        .await
        .into_iter()
        .filter(|p| p.labels().get(names::REVISION_LABEL).map(String::as_str) == Some(revision))
        .map(|p| p.name_any())
        .collect();
    names.sort();
    names
}

/// Waits until every API pod is Ready and of `revision` and none of `old` is left; returns the new pods.
async fn wait_pods_replaced(client: &Client, ns: &str, revision: &str, old: &[String]) -> Vec<String> {
    wait_for(Duration::from_secs(90), "the pods replaced by the new revision", || async move {
        let pods = api_pods(client, ns, "main").await;
        let all_new = pods.iter().all(|p| {
            p.labels().get(names::REVISION_LABEL).map(String::as_str) == Some(revision)
                && pod_ready(p)
                && p.metadata.deletion_timestamp.is_none()
        });
        let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
        (all_new && !pods.is_empty() && !names.iter().any(|n| old.contains(n))).then_some(names)
    })
    .await
}

async fn http_get(addr: &str, path: &str) -> String {
    // A tiny HTTP/1.0 GET: the operator's metrics endpoint is plain text on loopback.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect metrics");
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_status_follows_its_secret_and_settings() {
    let _cluster = shared_cluster().await;
    let Some(kubeconfig) = kubeconfig() else { return };
    let client = client(&kubeconfig).await;
    install_crds(&client).await;
    let ns = namespace(&client, "e2e-prov").await;
    let _cleanup = cleanup(&kubeconfig, &[&ns]);
    let providers: Api<FaxProvider> = Api::namespaced(client.clone(), &ns);
    let _operator = Operator::start(&kubeconfig, &ns, "op-p");

    let reason = |name: &'static str, want: &'static str| {
        let providers = providers.clone();
        async move {
            wait_for(T, want, || {
                let providers = providers.clone();
                async move {
                    let p = providers.get(name).await.ok()?;
                    let status = p.status?;
                    (status.observed_generation == p.metadata.generation).then_some(())?;
                    let c = status.conditions.iter().find(|c| c.type_ == "Ready")?;
                    (c.reason == want).then(|| c.message.clone())
                }
            })
            .await
        }
    };
    apply_json::<FaxProvider>(&client, &ns, provider("keys", "api_keys", json!({}), Some("later"))).await.unwrap();
    let msg = reason("keys", "SecretNotFound").await;
    assert!(msg.contains("Secret later does not exist"), "{msg}");
    put_secret(&client, &ns, "later", &[("adminKey", ADMIN_KEY)]).await;
    let msg = reason("keys", "SecretKeyMissing").await;
    assert!(msg.contains("`pepper`"), "{msg}");
    put_secret(&client, &ns, "later", &[("adminKey", ADMIN_KEY), ("pepper", PEPPER)]).await;
    reason("keys", "Valid").await;

    apply_json::<FaxProvider>(&client, &ns, provider("line", "test", json!({"failSuffix": "12a"}), None))
        .await
        .unwrap();
    let msg = reason("line", "InvalidSettings").await;
    assert!(msg.contains("settings.failSuffix: must be 1 to 8 digits"), "{msg}");
    apply_json::<FaxProvider>(&client, &ns, provider("fax9000", "fax9000", json!({}), None)).await.unwrap();
    reason("fax9000", "UnknownPlugin").await;
    let p = providers.get("keys").await.unwrap();
    assert_eq!(p.status.unwrap().slots.as_deref(), Some("auth"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_rejects_invalid_resources_with_readable_messages() {
    let _cluster = shared_cluster().await;
    let Some(kubeconfig) = kubeconfig() else { return };
    let client = client(&kubeconfig).await;
    install_crds(&client).await;
    let ns = namespace(&client, "e2e-adm").await;
    let _cleanup = cleanup(&kubeconfig, &[&ns]);

    let base = plugin_config("valid", "keys", 1);
    let with = |path: &[&str], value: serde_json::Value| {
        let mut m = base.clone();
        let mut cur = &mut m;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[*p];
        }
        cur[path[path.len() - 1]] = value;
        m
    };
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "replicas without a shared database (CEL)",
            with(&["spec", "apiServer", "replicas"], json!(3)),
            "more than one replica needs a shared database",
        ),
        (
            "canary without steps (CEL)",
            with(&["spec", "rollout"], json!({"strategy": "Canary"})),
            "a Canary rollout needs at least one step",
        ),
        (
            "missing auth slot (schema)",
            with(&["spec", "slots"], json!({"outbound": ["line"]})),
            "spec.slots.auth: Required value",
        ),
        ("empty outbound list (schema)", with(&["spec", "slots", "outbound"], json!([])), "spec.slots.outbound"),
        (
            "canary weight above 100 (schema)",
            with(&["spec", "rollout"], json!({"strategy": "Canary", "steps": [{"weight": 150}]})),
            "should be less than or equal to 100",
        ),
        (
            "unknown strategy (schema)",
            with(&["spec", "rollout", "strategy"], json!("YOLO")),
            "Unsupported value: \"YOLO\"",
        ),
        (
            "bad pause duration (schema)",
            with(&["spec", "rollout"], json!({"steps": [{"weight": 10, "pause": "soon"}]})),
            "spec.rollout.steps[0].pause",
        ),
        (
            "name too long (CEL)",
            with(&["metadata", "name"], json!("a-very-long-fax-plugin-config-name-over-forty")),
            "names are limited to 40 characters",
        ),
        (
            "duplicate outbound providers (list-type set)",
            with(&["spec", "slots", "outbound"], json!(["line", "line"])),
            "duplicate entries",
        ),
    ];
    for (what, manifest, fragment) in cases {
        let err = apply_json::<FaxPluginConfig>(&client, &ns, manifest).await.expect_err(what);
        let message = match &err {
            kube::Error::Api(s) => s.message.clone(),
            other => panic!("{what}: {other}"),
        };
        assert!(message.contains(fragment), "{what}: {message}");
    }

    let bad_plugin = provider("bad", "Bad Plugin!", json!({}), None);
    let err = apply_json::<FaxProvider>(&client, &ns, bad_plugin).await.expect_err("pattern");
    assert!(err.to_string().contains("spec.plugin"), "{err}");
    apply_json::<FaxProvider>(&client, &ns, provider("p", "test", json!({}), None)).await.unwrap();
    let err =
        apply_json::<FaxProvider>(&client, &ns, provider("p", "local", json!({}), None)).await.expect_err("immutable");
    assert!(err.to_string().contains("plugin is immutable"), "{err}");

    // The valid base is accepted, and defaults are applied by the server.
    let accepted = apply_json::<FaxPluginConfig>(&client, &ns, base.clone()).await.unwrap();
    assert_eq!(accepted.spec.revision_history_limit, 5);
    assert_eq!(accepted.spec.rollout.analysis.max_latency_increase_percent, 20);

    // `kubectl explain` prints the field descriptions.
    let text = kubectl(&kubeconfig, &["explain", "faxpluginconfig.spec"]).await;
    assert!(text.contains("Which FaxProvider (by name, same namespace) fills which slot"), "{text}");
    assert!(text.contains("revisionHistoryLimit"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_replica_takes_over_when_the_leader_stops() {
    let _cluster = shared_cluster().await;
    let Some(kubeconfig) = kubeconfig() else { return };
    let Some(_node) = Node::get() else { return };
    let client = client(&kubeconfig).await;
    install_crds(&client).await;
    let ns = namespace(&client, "e2e-lead").await;
    let _cleanup = cleanup(&kubeconfig, &[&ns]);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), &ns);
    put_secret(&client, &ns, "admin", &[("adminKey", ADMIN_KEY), ("pepper", PEPPER)]).await;
    apply_json::<FaxProvider>(&client, &ns, provider("line", "test", json!({}), None)).await.unwrap();
    apply_json::<FaxProvider>(&client, &ns, provider("keys", "api_keys", json!({}), Some("admin"))).await.unwrap();

    let mut a = Operator::start(&kubeconfig, &ns, "op-a");
    let holder = |leases: Api<Lease>| async move {
        leases.get_opt("faxbot-operator").await.ok()??.spec?.holder_identity.filter(|h| !h.is_empty())
    };
    assert_eq!(wait_for(T, "a leader", || holder(leases.clone())).await, "op-a");
    let mut b = Operator::start(&kubeconfig, &ns, "op-b");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(holder(leases.clone()).await.as_deref(), Some("op-a"), "the standby must not steal a live lease");
    assert!(b.output().contains("waiting for leadership"));
    // The standby is Ready (a probe that waited for leadership would keep `helm install --wait` and rolling
    // upgrades from ever finishing); the leader metric tells them apart.
    assert!(http_get(&b.metrics_addr(), "/readyz").await.starts_with("HTTP/1.0 200"), "the standby is Ready");
    assert!(http_get(&b.metrics_addr(), "/metrics").await.contains("faxbot_operator_leader 0"));
    assert!(http_get(&a.metrics_addr(), "/metrics").await.contains("faxbot_operator_leader 1"));

    assert!(a.terminate(), "graceful shutdown exits 0");
    assert!(a.output().contains("released the lease"), "{}", a.output());
    // The standby acquires within one renew interval (the lease was released, not left to expire).
    assert_eq!(wait_for(Duration::from_secs(15), "the standby leads", || holder(leases.clone())).await, "op-b");
    apply_json::<FaxPluginConfig>(&client, &ns, plugin_config("main", "keys", 1)).await.unwrap();
    wait_ready(&configs, "main", ("True", "Available")).await;
    assert!(b.terminate());
    b.assert_no_leaks(&[ADMIN_KEY, PEPPER]);
}

/// The sample in `config/samples/` (used by the README's "Run on Kubernetes") reaches Ready as documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_sample_becomes_ready() {
    let _cluster = shared_cluster().await;
    let Some(kubeconfig) = kubeconfig() else { return };
    let Some(node) = Node::get() else { return };
    let client = client(&kubeconfig).await;
    install_crds(&client).await;
    let ns = namespace(&client, "e2e-sample").await;
    let _cleanup = cleanup(&kubeconfig, &[&ns]);
    put_secret(&client, &ns, "faxbot-admin", &[("adminKey", ADMIN_KEY), ("pepper", PEPPER)]).await;
    let sample = include_str!("../../config/samples/simulated-line.yaml");
    for doc in sample.split("\n---\n") {
        let mut manifest: serde_json::Value = yaml_serde::from_str(doc).unwrap();
        // The one line a user edits: the image, here the one built and loaded into the node.
        if manifest["kind"] == "FaxPluginConfig" {
            manifest["spec"]["apiServer"]["image"] = node.api_image.clone().into();
        }
        match manifest["kind"].as_str().unwrap() {
            "FaxProvider" => drop(apply_json::<FaxProvider>(&client, &ns, manifest).await.unwrap()),
            "FaxPluginConfig" => drop(apply_json::<FaxPluginConfig>(&client, &ns, manifest).await.unwrap()),
            other => panic!("unexpected kind {other} in the sample"),
        }
    }
    let mut operator = Operator::start(&kubeconfig, &ns, "op-sample");
    let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), &ns);
    wait_ready(&configs, "faxbot", ("True", "Available")).await;

    // `kubectl wait --for=condition=Ready` and `kubectl get faxbot` work as the README says.
    kubectl(&kubeconfig, &["-n", &ns, "wait", "--for=condition=Ready", "faxpluginconfig/faxbot", "--timeout=30s"])
        .await;
    let listing = kubectl(&kubeconfig, &["-n", &ns, "get", "faxbot"]).await;
    assert!(
        listing.contains("faxpluginconfig.fax.faxbot.io/faxbot")
            && listing.contains("faxprovider.fax.faxbot.io/api-keys"),
        "{listing}"
    );
    assert!(listing.contains("Available") || listing.contains("Valid"), "{listing}");
    assert!(operator.terminate());
    operator.assert_no_leaks(&[ADMIN_KEY, PEPPER]);
}

/// The operator works with exactly the permissions of `config/rbac/`: it runs here with a TokenRequest token
/// of a real ServiceAccount `faxbot-operator`, bound by `config/rbac/bindings.yaml` (subjects moved to the
/// test namespace) to the ClusterRole and the leader-election Role of `config/rbac/operator.yaml`, and to
/// nothing else. (The chart's RBAC is proven the same way in `helm.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_needs_only_its_documented_rbac() {
    let _cluster = shared_cluster().await;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    let Some(kubeconfig) = kubeconfig() else { return };
    let Some(_node) = Node::get() else { return };
    let client = client(&kubeconfig).await;
    install_crds(&client).await;
    let ns = namespace(&client, "e2e-rbac").await;
    let _cleanup = cleanup(&kubeconfig, &[&ns]);
    let pp = kube::api::PatchParams::apply("faxbot-e2e").force();
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "faxbot-operator"}});
    apply_json::<ServiceAccount>(&client, &ns, sa).await.unwrap();

    let rbac = [include_str!("../../config/rbac/operator.yaml"), include_str!("../../config/rbac/bindings.yaml")];
    for doc in rbac.iter().flat_map(|file| file.split("\n---\n")) {
        let mut manifest: serde_json::Value = yaml_serde::from_str(doc).unwrap();
        let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
        // What the kustomization's `namespace:` does for config/default.
        if let Some(subjects) = manifest.get_mut("subjects").and_then(|s| s.as_array_mut()) {
            for subject in subjects {
                assert_eq!(subject["namespace"], "faxbot-system");
                subject["namespace"] = ns.clone().into();
            }
        }
        let patch = kube::api::Patch::Apply(&manifest);
        match manifest["kind"].as_str().unwrap() {
            "ClusterRole" => drop(Api::<ClusterRole>::all(client.clone()).patch(&name, &pp, &patch).await.unwrap()),
            "ClusterRoleBinding" => {
                drop(Api::<ClusterRoleBinding>::all(client.clone()).patch(&name, &pp, &patch).await.unwrap())
            }
            "Role" => drop(Api::<Role>::namespaced(client.clone(), &ns).patch(&name, &pp, &patch).await.unwrap()),
            "RoleBinding" => {
                drop(Api::<RoleBinding>::namespaced(client.clone(), &ns).patch(&name, &pp, &patch).await.unwrap())
            }
            other => panic!("unexpected kind {other}"),
        }
    }

    // The same kubeconfig with the ServiceAccount's token instead of the admin's.
    let token = service_account_token(&client, &ns, "faxbot-operator").await;
    let dir = tempfile::tempdir().unwrap();
    let restricted_path = kubeconfig_with_token(&kubeconfig, &token, dir.path(), "kubeconfig");
    // Prove the token really is the restricted one: the ClusterRole grants nothing on ServiceAccounts.
    let restricted_client = support::client(&restricted_path).await;
    let err = Api::<ServiceAccount>::namespaced(restricted_client, &ns)
        .list(&ListParams::default())
        .await
        .expect_err("the operator's ServiceAccount must not list service accounts");
    assert!(err.to_string().contains("forbidden"), "{err}");

    put_secret(&client, &ns, "admin", &[("adminKey", ADMIN_KEY), ("pepper", PEPPER)]).await;
    apply_json::<FaxProvider>(&client, &ns, provider("line", "test", json!({}), None)).await.unwrap();
    apply_json::<FaxProvider>(&client, &ns, provider("keys", "api_keys", json!({}), Some("admin"))).await.unwrap();
    apply_json::<FaxPluginConfig>(&client, &ns, plugin_config("main", "keys", 1)).await.unwrap();
    let mut operator = Operator::start(&restricted_path, &ns, "op-rbac");
    let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), &ns);
    wait_ready(&configs, "main", ("True", "Available")).await;
    // A change, an event and pruning all work under the same rights.
    apply_json::<FaxProvider>(&client, &ns, provider("line", "test", json!({"deliveryLatencyMs": 5}), None))
        .await
        .unwrap();
    apply_json::<FaxPluginConfig>(&client, &ns, plugin_config("main", "missing", 1)).await.unwrap();
    wait_ready(&configs, "main", ("False", "ProviderNotFound")).await;
    let output = operator.output();
    assert!(!output.to_lowercase().contains("forbidden"), "the operator hit a permission it lacks:\n{output}");
    assert!(operator.terminate());
    let _ = dir;
}

/// The shipped Phaxio manifest as a FaxPluginManifest named `name`, changed by `change`.
fn manifest_resource(name: &str, change: impl Fn(&mut serde_json::Value)) -> serde_json::Value {
    let mut manifest: serde_json::Value =
        serde_json::from_str(include_str!("../../manifests/phaxio-http.json")).unwrap();
    change(&mut manifest);
    json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxPluginManifest", "metadata": {"name": name},
        "spec": {"manifest": manifest}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_manifests_are_refused_at_admission_and_by_the_operator() {
    use faxbot_crds::FaxPluginManifest;
    let _cluster = shared_cluster().await;
    let Some(kubeconfig) = kubeconfig() else { return };
    let client = client(&kubeconfig).await;
    install_crds(&client).await;
    let ns = namespace(&client, "e2e-man").await;
    let _cleanup = cleanup(&kubeconfig, &[&ns]);

    // Admission (the CRD's schema and CEL rules): refused before anything stores them.
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "metadata address",
            manifest_resource("meta", |m| m["allowedDomains"] = json!(["169.254.169.254"])),
            "must not be a link-local or metadata address",
        ),
        (
            "metadata name",
            manifest_resource("meta-name", |m| m["allowedDomains"] = json!(["metadata.google.internal"])),
            "must not be a link-local or metadata address",
        ),
        (
            "loopback",
            manifest_resource("loop", |m| m["allowedDomains"] = json!(["127.0.0.1"])),
            "is a loopback address",
        ),
        (
            "private range",
            manifest_resource("private", |m| m["allowedDomains"] = json!(["api.phaxio.com", "172.20.0.9"])),
            "allowedDomains holds a private or shared address",
        ),
        (
            "no webhook verification",
            manifest_resource("open", |m| m["webhook"]["verification"] = json!({"scheme": "none"})),
            "declares no webhook verification",
        ),
        ("bad id", manifest_resource("bad-id", |m| m["id"] = json!("Not An Id")), "spec.manifest.id"),
        (
            "a host outside allowedDomains",
            manifest_resource("elsewhere", |m| {
                m["actions"]["status"]["url"] = json!("https://collector.example.net/{{ provider_id }}")
            }),
            "an action URL's host is not in allowedDomains",
        ),
        (
            "plain http",
            manifest_resource("plain", |m| m["actions"]["send"]["url"] = json!("http://api.phaxio.com/v2.1/faxes")),
            "must be an https URL whose host is written out",
        ),
        (
            "a templated host",
            manifest_resource("templated", |m| {
                m["actions"]["send"]["url"] = json!("https://{{ settings.host }}/v2.1/faxes")
            }),
            "must be an https URL whose host is written out",
        ),
        (
            "a setting as the first label, with no wildcard domain for it",
            manifest_resource("labelled", |m| {
                m["actions"]["send"]["url"] = json!("https://{{ settings.space }}.phaxio.com/v2.1/faxes")
            }),
            "an action URL's host is not in allowedDomains",
        ),
        (
            "a wildcard over a top-level domain",
            manifest_resource("wild", |m| m["allowedDomains"] = json!(["*.com"])),
            "a wildcard covers one label under a domain name of at least two labels",
        ),
        (
            "a template reading the environment",
            manifest_resource("env", |m| {
                m["actions"]["send"]["headers"] = json!({"X-Leak": "{{ env.AWS_SECRET_ACCESS_KEY }}"})
            }),
            "templates cannot read the environment or files",
        ),
        (
            "a template reading a file",
            manifest_resource("file", |m| {
                m["actions"]["status"]["url"] = json!("https://api.phaxio.com/{{ file('/etc/passwd') }}")
            }),
            "templates cannot read the environment or files",
        ),
    ];
    for (what, resource, fragment) in cases {
        let err = apply_json::<FaxPluginManifest>(&client, &ns, resource).await.expect_err(what);
        let message = match &err {
            kube::Error::Api(s) => s.message.clone(),
            other => panic!("{what}: {other}"),
        };
        assert!(message.contains(fragment), "{what}: {message}");
    }
    // A private gateway is accepted with allowPrivateNetwork, and the manifest as shipped is accepted.
    apply_json::<FaxPluginManifest>(
        &client,
        &ns,
        manifest_resource("gateway", |m| {
            m["id"] = json!("gateway-fax");
            m["allowedDomains"] = json!(["api.phaxio.com", "10.20.30.40"]);
            m["allowPrivateNetwork"] = json!(true);
        }),
    )
    .await
    .unwrap();
    apply_json::<FaxPluginManifest>(&client, &ns, manifest_resource("phaxio", |_| {})).await.unwrap();
    // The shipped SignalWire manifest: its host's first label is the `space` setting, under *.signalwire.com.
    let signalwire: serde_json::Value = serde_json::from_str(include_str!("../../manifests/signalwire.json")).unwrap();
    let signalwire = json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxPluginManifest",
        "metadata": {"name": "signalwire"}, "spec": {"manifest": signalwire}});
    apply_json::<FaxPluginManifest>(&client, &ns, signalwire).await.unwrap();

    // What CEL cannot see, the operator refuses with the API server's own check: a body template (the body is
    // not typed) that reads the environment by another spelling, a filter that does not exist.
    let _operator = Operator::start(&kubeconfig, &ns, "op-m");
    apply_json::<FaxPluginManifest>(
        &client,
        &ns,
        manifest_resource("leaky", |m| {
            m["actions"]["send"]["body"]["fields"]["to"] = json!("{{ environ['HOME'] }}");
            m["actions"]["status"]["url"] = json!("https://api.phaxio.com/v2.1/faxes/{{ provider_id | tojson }}");
        }),
    )
    .await
    .unwrap();
    let manifests: Api<FaxPluginManifest> = Api::namespaced(client.clone(), &ns);
    let ready = |name: &'static str| {
        let manifests = manifests.clone();
        async move {
            wait_for(Duration::from_secs(60), name, || {
                let manifests = manifests.clone();
                async move {
                    let m = manifests.get(name).await.ok()?;
                    let status = m.status?;
                    (status.observed_generation == m.metadata.generation).then_some(())?;
                    let c = status.conditions.iter().find(|c| c.type_ == "Ready")?;
                    Some((c.reason.clone(), c.message.clone()))
                }
            })
            .await
        }
    };
    let (reason, message) = ready("leaky").await;
    assert_eq!(reason, "InvalidManifest", "{message}");
    assert!(
        message.contains(
            "spec.manifest.actions.send.body.fields.to: reads `environ`: templates cannot read the environment"
        ),
        "{message}"
    );
    assert!(message.contains("spec.manifest.actions.status.url: uses a filter that is not available"), "{message}");
    let events = events_for(&client, &ns, "leaky").await;
    assert!(
        events.iter().any(|e| e.reason.as_deref() == Some("InvalidManifest") && e.type_.as_deref() == Some("Warning")),
        "a Warning Event: {events:?}"
    );
    assert_eq!(ready("phaxio").await.0, "Valid");
    assert_eq!(ready("signalwire").await.0, "Valid", "the operator's check takes the templated host too");

    // A FaxProvider of the manifest's plugin: valid through its manifestRef, and the config puts the manifest
    // into the runtime document the API server reads.
    put_secret(&client, &ns, "phaxio-creds", &[("apiKey", "k-value-1"), ("apiSecret", "s-value-1")]).await;
    put_secret(&client, &ns, "admin", &[("adminKey", ADMIN_KEY), ("pepper", PEPPER)]).await;
    let mut fax = provider("fax", "phaxio-http", json!({"pollIntervalMs": 5000}), Some("phaxio-creds"));
    fax["spec"]["manifestRef"] = json!({"name": "phaxio"});
    apply_json::<FaxProvider>(&client, &ns, fax).await.unwrap();
    let mut wrong = provider("wrong", "phaxio-http", json!({}), Some("phaxio-creds"));
    wrong["spec"]["manifestRef"] = json!({"name": "leaky"});
    apply_json::<FaxProvider>(&client, &ns, wrong).await.unwrap();
    apply_json::<FaxProvider>(&client, &ns, provider("keys", "api_keys", json!({}), Some("admin"))).await.unwrap();
    let providers: Api<FaxProvider> = Api::namespaced(client.clone(), &ns);
    let provider_reason = |name: &'static str| {
        let providers = providers.clone();
        async move {
            wait_for(Duration::from_secs(60), name, || {
                let providers = providers.clone();
                async move {
                    let p = providers.get(name).await.ok()?;
                    let c = p.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
                    Some((c.reason, c.message))
                }
            })
            .await
        }
    };
    assert_eq!(provider_reason("fax").await.0, "Valid");
    let (reason, message) = provider_reason("wrong").await;
    assert_eq!(reason, "InvalidManifest", "{message}");

    let mut config = plugin_config("main", "keys", 1);
    config["spec"]["slots"]["outbound"] = json!(["fax"]);
    config["spec"]["features"] = json!({"pluginInstall": true});
    apply_json::<FaxPluginConfig>(&client, &ns, config).await.unwrap();
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let document = wait_for(Duration::from_secs(60), "the runtime document", || {
        let cm_api = cm_api.clone();
        async move {
            let cms = cm_api.list(&ListParams::default()).await.ok()?;
            cms.items.into_iter().find_map(|cm| {
                let doc = cm.data.as_ref()?.get(names::CONFIG_KEY)?.clone();
                doc.contains("phaxio-http").then_some(doc)
            })
        }
    })
    .await;
    let document: serde_json::Value = serde_json::from_str(&document).unwrap();
    assert_eq!(document["manifests"][0]["id"], "phaxio-http");
    assert_eq!(document["providers"]["outbound"]["plugin"], "phaxio-http");
    faxbot_contract::validate::parse_and_validate(document.to_string().as_bytes()).unwrap();
}

/// The operator checks a manifest's signature with the config's publisher keys before anything rolls out, and
/// hands the keys to the API server as its credential file `registry.publisherKeys`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_signatures_are_checked_with_the_configs_publisher_keys() {
    use faxbot_contract::manifest::{HttpManifest, signature};
    use faxbot_crds::FaxPluginManifest;
    let _cluster = shared_cluster().await;
    let Some(kubeconfig) = kubeconfig() else { return };
    let client = client(&kubeconfig).await;
    install_crds(&client).await;
    let ns = namespace(&client, "e2e-keys").await;
    let _cleanup = cleanup(&kubeconfig, &[&ns]);

    // A local variant of the shipped manifest (the shipped one, unchanged, is trusted as built-in) signed by
    // publisher `acme`, and the same variant unsigned.
    let publisher = [21u8; 32];
    let sign = |m: &mut serde_json::Value| {
        let parsed: HttpManifest = serde_json::from_value(m.clone()).unwrap();
        m["signature"] = json!({"keyId": "acme", "value": signature::sign(&parsed.canonical(), &publisher)});
    };
    let local = |m: &mut serde_json::Value| m["version"] = json!("1.0.0-local");
    let signed = manifest_resource("signed", |m| {
        local(m);
        sign(m);
    });
    apply_json::<FaxPluginManifest>(&client, &ns, signed).await.unwrap();
    apply_json::<FaxPluginManifest>(&client, &ns, manifest_resource("unsigned", local)).await.unwrap();
    apply_json::<FaxPluginManifest>(&client, &ns, manifest_resource("shipped", |_| {})).await.unwrap();
    let keys = json!({"acme": signature::public_key(&publisher)}).to_string();
    put_secret(&client, &ns, "publishers", &[("publisherKeys", &keys)]).await;
    put_secret(&client, &ns, "phaxio-creds", &[("apiKey", "k-value-1"), ("apiSecret", "s-value-1")]).await;
    put_secret(&client, &ns, "admin", &[("adminKey", ADMIN_KEY), ("pepper", PEPPER)]).await;
    for (name, manifest) in [("fax", "signed"), ("raw", "unsigned"), ("stock", "shipped")] {
        let mut p = provider(name, "phaxio-http", json!({"pollIntervalMs": 5000}), Some("phaxio-creds"));
        p["spec"]["manifestRef"] = json!({"name": manifest});
        apply_json::<FaxProvider>(&client, &ns, p).await.unwrap();
    }
    apply_json::<FaxProvider>(&client, &ns, provider("keys", "api_keys", json!({}), Some("admin"))).await.unwrap();
    let _operator = Operator::start(&kubeconfig, &ns, "op-keys");
    let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), &ns);
    let keyed_config = |name: &str, outbound: &str, plugin_install: bool| {
        let mut config = plugin_config(name, "keys", 1);
        config["spec"]["slots"]["outbound"] = json!([outbound]);
        config["spec"]["features"] = json!({"pluginInstall": plugin_install});
        config["spec"]["publisherKeysSecretRef"] = json!({"name": "publishers"});
        config
    };
    // Accepted: rolling out, or (on a node) serving. Either way the operator rendered the revision.
    let accepted = |name: &'static str| {
        let configs = configs.clone();
        async move {
            wait_for(T, name, || {
                let configs = configs.clone();
                async move {
                    let (_, reason, _) = ready_condition(&configs, name).await?;
                    ["RolloutInProgress", "Available"].contains(&reason.as_str()).then_some(())?;
                    configs.get(name).await.ok()?.status?.desired_revision
                }
            })
            .await
        }
    };

    // Signed by a trusted key, pluginInstall off: accepted, and the keys reach the revision's credentials.
    apply_json::<FaxPluginConfig>(&client, &ns, keyed_config("main", "fax", false)).await.unwrap();
    let revision = accepted("main").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let credentials = secrets.get(&names::credentials_secret_name("main", &revision)).await.unwrap();
    let data = credentials.data.unwrap_or_default();
    assert_eq!(data.get(names::PUBLISHER_KEYS_KEY).map(|v| v.0.clone()), Some(keys.clone().into_bytes()));

    // Unsigned, pluginInstall off: refused before rollout, with a Warning Event naming the manifest.
    apply_json::<FaxPluginConfig>(&client, &ns, keyed_config("open", "raw", false)).await.unwrap();
    let message = wait_ready(&configs, "open", ("False", "UntrustedManifest")).await;
    assert!(message.contains("FaxPluginManifest unsigned: manifest `phaxio-http` is not signed"), "{message}");
    assert!(!message.contains(&signature::public_key(&publisher)), "{message}");
    let events = wait_for(T, "the UntrustedManifest event", || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let events = events_for(&client, &ns, "open").await;
            events
                .iter()
                .any(|e| e.reason.as_deref() == Some("UntrustedManifest") && e.type_.as_deref() == Some("Warning"))
                .then_some(events)
        }
    })
    .await;
    assert!(events.iter().all(|e| !e.note.as_deref().unwrap_or("").contains(&keys)), "{events:?}");
    assert!(
        Api::<Deployment>::namespaced(client.clone(), &ns).get_opt(&names::api_name("open")).await.unwrap().is_none(),
        "nothing rolled out"
    );

    // The same with pluginInstall on: unverified plugins are accepted.
    apply_json::<FaxPluginConfig>(&client, &ns, keyed_config("open", "raw", true)).await.unwrap();
    accepted("open").await;

    // The shipped manifest, unchanged and unsigned, with pluginInstall off: trusted as the release is.
    apply_json::<FaxPluginConfig>(&client, &ns, keyed_config("stock", "stock", false)).await.unwrap();
    accepted("stock").await;

    // A registry index in a ConfigMap: its signed entry reaches the revision's document as the catalog; an
    // unsigned entry refuses the config by name; fixing the ConfigMap (a watched object) is picked up.
    let entry = |id: &str, signed: bool| {
        let mut m = manifest_resource("x", |m| {
            m["id"] = json!(id);
            local(m);
            if signed {
                sign(m);
            }
        });
        m["spec"]["manifest"].take()
    };
    let put_index = |entries: Vec<serde_json::Value>| {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let index = json!({"version": 1, "entries": entries}).to_string();
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "registry"},
                "data": {"index.json": index}});
            apply_json::<ConfigMap>(&client, &ns, cm).await.unwrap();
        }
    };
    put_index(vec![entry("acme-fax", true), entry("open-fax", false)]).await;
    let mut indexed = keyed_config("indexed", "fax", false);
    indexed["spec"]["registryIndexRef"] = json!({"name": "registry"});
    apply_json::<FaxPluginConfig>(&client, &ns, indexed).await.unwrap();
    let message = wait_ready(&configs, "indexed", ("False", "UntrustedManifest")).await;
    assert!(message.contains("ConfigMap registry, entries[1]: manifest `open-fax` is not signed"), "{message}");
    put_index(vec![entry("acme-fax", true)]).await;
    let revision = accepted("indexed").await;
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get(&names::config_map_name("indexed", &revision))
        .await
        .unwrap();
    let document: serde_json::Value = serde_json::from_str(&cm.data.unwrap_or_default()[names::CONFIG_KEY]).unwrap();
    let ids: Vec<&str> = document["catalog"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme-fax"]);
    assert_eq!(document["catalog"][0]["signature"]["keyId"], "acme");
    faxbot_contract::validate::parse_and_validate(document.to_string().as_bytes()).unwrap();
}
