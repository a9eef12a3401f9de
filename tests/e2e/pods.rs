//! Real pods: the overlays in `config/overlays/` as a platform team applies them, with the `faxbot-api`
//! images built from the Dockerfile running on the test node under the operator's pod security settings, in
//! namespaces that enforce the "restricted" Pod Security Standard.
//!
//! The providers are the project's fakes on this host's bridge address, serving HTTPS with a certificate from
//! the test CA, which the pods trust through `apiServer.trustBundle` (they refuse plain `http://` to anything
//! but loopback, as in production). PostgreSQL and S3 (moto) listen there too. Every fax goes through the API
//! Service's ClusterIP (kube-proxy), and every pod's logs are scanned for credentials and full numbers.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faxbot_crds::{FaxPluginConfig, FaxProvider};
use faxbot_fakes::ami::{AmiFake, AmiFakeConfig, Outcome};
use faxbot_fakes::phaxio::{PhaxioFake, PhaxioFakeConfig};
use faxbot_fakes::sinch::{SinchFake, SinchFakeConfig};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::support::*;

const T: Duration = Duration::from_secs(120);
const ADMIN: &str = "fbk_admin_pods-e2e-admin-key-2b7d";
const PEPPER_VALUE: &str = "pods-e2e-pepper-6e01";
const PHAXIO_SECRET: &str = "pods-e2e-phaxio-secret-c44a";
const SINCH_SECRET: &str = "pods-e2e-sinch-key-secret-9d3f";
const AMI_SECRET: &str = "pods-e2e-ami-secret-5e20";
const INBOUND_SECRET: &str = "pods-e2e-inbound-secret-71b8";

/// One overlay deployed into a fresh restricted namespace, with the operator running for it.
struct Deployed {
    client: Client,
    ns: String,
    operator: Operator,
    /// The host directory behind the shared volume (when the overlay has one).
    volume: Option<PathBuf>,
    /// The pods' database URL (when the overlay has one).
    db_url: Option<String>,
    _cleanup: Cleanup,
}

impl Deployed {
    async fn api(&self) -> FaxApi {
        FaxApi::of(&self.client, &self.ns, "faxbot", ADMIN).await
    }

    /// Scans every pod's logs and the operator's output for the credentials and the numbers.
    async fn finish(self, secrets: &[&str], numbers: &[&str]) {
        let mut all: Vec<&str> = vec![ADMIN, PEPPER_VALUE];
        all.extend_from_slice(secrets);
        let db_password_free_url = self.db_url.clone().unwrap_or_default();
        if !db_password_free_url.is_empty() {
            all.push(&db_password_free_url);
        }
        assert_logs_clean(&namespace_logs(&self.client, &self.ns).await, &all, numbers);
        self.operator.assert_no_leaks(&all);
    }
}

/// `kubectl kustomize <overlay>`: the documents a GitOps tool would apply.
async fn kustomize(kubeconfig: &PathBuf, overlay: &str) -> Vec<Value> {
    let dir = format!("{}/../config/overlays/{overlay}", env!("CARGO_MANIFEST_DIR"));
    let yaml = kubectl(kubeconfig, &["kustomize", &dir]).await;
    yaml.split("\n---\n").filter_map(|d| yaml_serde::from_str::<Value>(d).ok()).filter(|v| v.is_object()).collect()
}

/// A ReadWriteMany claim `claim` in `ns`, bound to a hostPath PersistentVolume on a fresh directory that the
/// API user (10001) owns: what a platform team's NFS or CephFS class gives, on one node.
pub async fn shared_volume(client: &Client, ns: &str, claim: &str) -> PathBuf {
    // Inside the test environment's directory, which `kube-testenv.sh stop` removes.
    let env_dir =
        std::env::var_os("FAXBOT_TEST_KUBECONFIG").map(PathBuf::from).and_then(|k| Some(k.parent()?.join("volumes")));
    let parent = env_dir.unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent).unwrap();
    let dir = tempfile::Builder::new().prefix("faxbot-pv-").tempdir_in(&parent).unwrap().keep();
    let uid = faxbot_operator::build::RUN_AS as u32;
    std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    let pv_name = format!("{ns}-{claim}");
    let pv = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": dir, "type": "Directory"},
                 "claimRef": {"namespace": ns, "name": claim}}});
    Api::<PersistentVolume>::all(client.clone())
        .patch(&pv_name, &PatchParams::apply("faxbot-e2e").force(), &Patch::Apply(pv))
        .await
        .unwrap();
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv_name,
                 "resources": {"requests": {"storage": "1Gi"}}}});
    apply_json::<PersistentVolumeClaim>(client, ns, pvc).await.unwrap();
    dir
}

/// A fresh database on the test PostgreSQL; returns the URL the pods use (on the node's bridge address).
pub async fn pod_database() -> String {
    use sqlx::Connection;
    let admin = std::env::var("FAXBOT_TEST_POSTGRES_URL").expect("scripts/test starts PostgreSQL");
    let pod_url = std::env::var("FAXBOT_TEST_POD_POSTGRES_URL").expect("PostgreSQL on the node's bridge address");
    let name = format!(
        "faxbot_pods_{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    let mut conn = sqlx::postgres::PgConnection::connect(&admin).await.expect("connect to test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let base = pod_url.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    format!("{base}/{name}")
}

/// Applies an overlay's documents after `patch` (the edits a platform team makes: image, URLs), with the
/// Secrets, the trust bundle, the shared volume and the database it needs; starts the operator and waits for
/// the config to be Ready with every pod Ready.
async fn deploy(
    kubeconfig: &PathBuf,
    node: &Node,
    overlay: &str,
    secrets: &[(&str, &[(&str, &str)])],
    image: &str,
    mut patch: impl FnMut(&mut Value),
) -> Deployed {
    let client = client(kubeconfig).await;
    install_crds(&client).await;
    let ns = namespace(&client, &format!("pods-{overlay}")).await;
    let cleanup = cleanup(kubeconfig, &[&ns]);
    enforce_restricted(&client, &ns).await;
    put_trust_bundle(&client, &ns, node).await;
    put_secret(&client, &ns, "faxbot-admin", &[("adminKey", ADMIN), ("pepper", PEPPER_VALUE)]).await;
    for (name, data) in secrets {
        put_secret(&client, &ns, name, data).await;
    }
    let mut docs = kustomize(kubeconfig, overlay).await;
    let mut volume = None;
    let mut db_url = None;
    for doc in &mut docs {
        if doc["kind"] == "FaxPluginConfig" {
            let api = &mut doc["spec"]["apiServer"];
            api["image"] = image.into();
            api["trustBundle"] = json!({"name": "test-ca", "key": "ca.crt"});
            if let Some(claim) = api["dataVolume"]["persistentVolumeClaimName"].as_str() {
                volume = Some(shared_volume(&client, &ns, claim).await);
            }
            if let Some(secret) = api["database"]["urlSecretRef"]["name"].as_str() {
                let url = pod_database().await;
                put_secret(&client, &ns, secret, &[("url", &url)]).await;
                db_url = Some(url);
            }
        }
        patch(doc);
    }
    for doc in docs {
        match doc["kind"].as_str().unwrap() {
            "FaxProvider" => drop(apply_json::<FaxProvider>(&client, &ns, doc).await.unwrap()),
            "FaxPluginConfig" => drop(apply_json::<FaxPluginConfig>(&client, &ns, doc).await.unwrap()),
            other => panic!("unexpected kind {other} in overlay {overlay}"),
        }
    }
    let operator = Operator::start(kubeconfig, &ns, &format!("op-{overlay}"));
    let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    let ready = wait_for(T, "the overlay's FaxPluginConfig Ready", || {
        let configs = configs.clone();
        async move {
            let c = configs.get("faxbot").await.ok()?;
            let status = c.status?;
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
            (ready.status == "True" && ready.reason == "Available").then_some(status.replicas)
        }
    })
    .await;
    let pods = api_pods(&client, &ns, "faxbot").await;
    assert_eq!(pods.iter().filter(|p| pod_ready(p)).count() as i32, ready, "every pod Ready");
    eprintln!("overlay {overlay}: {ready} pod(s) Ready {:.1} s after the apply", started.elapsed().as_secs_f64());
    Deployed { client, ns, operator, volume, db_url, _cleanup: cleanup }
}

/// Points an overlay's Phaxio providers at the fake. The outbound one polls for the status: no public callback
/// URL reaches this test (and the fake must not post to the overlay's example domain).
fn use_phaxio_fake(doc: &mut Value, base: &str) {
    if doc["kind"] != "FaxProvider" || doc["spec"]["plugin"] != "phaxio" {
        return;
    }
    let outbound = doc["metadata"]["name"] == "phaxio";
    let settings = doc["spec"]["settings"].as_object_mut().unwrap();
    settings.insert("baseUrl".into(), base.into());
    settings.insert("pollIntervalMs".into(), 200.into());
    if outbound {
        settings.remove("callbackUrl");
    }
}

/// Sends `n` faxes to `to` through the Service and waits for each to end SUCCESS.
async fn send_and_succeed(api: &FaxApi, to: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(api.send(to).await.unwrap_or_else(|e| panic!("fax refused: {e:?}")));
    }
    for id in &ids {
        let job = api.wait_final(id, T).await;
        assert_eq!(job["status"], "SUCCESS", "{job}");
    }
    ids
}

/// A Phaxio fake on the node's host address, serving HTTPS with the test CA's certificate (the pods trust it
/// through the FaxPluginConfig's trust bundle), with the credentials the overlays' Secrets carry.
async fn phaxio_fake(node: &Node, step: Duration) -> PhaxioFake {
    let tls = faxbot_fakes::tls::from_test_env().expect("FAXBOT_TEST_TLS_CERT").unwrap();
    let config = PhaxioFakeConfig {
        api_key: "pods-phaxio-key".into(),
        api_secret: PHAXIO_SECRET.into(),
        webhook_token: "pods-webhook-token".into(),
        step,
    };
    PhaxioFake::start_with(config, node.host_socket(), Some(tls)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_line_overlay_runs_under_the_restricted_standard() {
    let _cluster = shared_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let Some(node) = Node::get() else { return };
    let to = "+15557650102";
    let d = deploy(&kc, &node, "simulated-line", &[], &node.api_image, |_| {}).await;
    let api = d.api().await;
    send_and_succeed(&api, to, 2).await;

    // The pod security settings hold in the kernel, not only in the spec: read from /proc of the running
    // container's process.
    let pod = &api_pods(&d.client, &d.ns, "faxbot").await[0];
    let id = pod.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0].container_id.clone().unwrap();
    let pid = node.container_pid(id.trim_start_matches("containerd://"));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).map(|l| l[name.len()..].split_whitespace().collect::<Vec<_>>())
    };
    let uid = faxbot_operator::build::RUN_AS.to_string();
    assert_eq!(field("Uid:").unwrap(), [uid.as_str(); 4], "runs as {uid} (real, effective, saved, fs)");
    assert_eq!(field("Gid:").unwrap(), [uid.as_str(); 4]);
    for caps in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(caps).unwrap(), ["0000000000000000"], "{caps} no capabilities");
    }
    assert_eq!(field("NoNewPrivs:").unwrap(), ["1"], "allowPrivilegeEscalation: false");
    assert_eq!(field("Seccomp:").unwrap(), ["2"], "seccomp filter mode (RuntimeDefault)");
    // Writable mounts: only the pod's volumes and the files the kubelet manages; the root is read-only.
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let mut writable = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (mount_point, options) = (fields[4], fields[5]);
        if mount_point == "/" {
            assert!(options.split(',').any(|o| o == "ro"), "the root filesystem is read-only: {line}");
        }
        let pseudo =
            ["/proc", "/dev", "/sys"].iter().any(|p| mount_point == *p || mount_point.starts_with(&format!("{p}/")));
        if options.split(',').any(|o| o == "rw") && !pseudo {
            writable.push(mount_point.to_string());
        }
    }
    writable.sort();
    // (/etc/hostname and /etc/resolv.conf come read-only with a read-only root; /etc/hosts is the kubelet's.)
    let mut want = vec![faxbot_operator::build::DATA_DIR.to_string(), "/tmp".to_string(), "/etc/hosts".to_string()];
    want.sort();
    assert_eq!(writable, want, "writable mounts: the data volume, /tmp and the kubelet's /etc/hosts");
    // And the server did write there: the SQLite database and the documents are on the data volume.
    let root = format!("/proc/{pid}/root{}", faxbot_operator::build::DATA_DIR);
    let files: Vec<String> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(files.iter().any(|f| f.starts_with("faxbot.db")), "{files:?}");

    d.finish(&[], &[to]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phaxio_overlay_sends_through_the_fake_over_https() {
    let _cluster = shared_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let Some(node) = Node::get() else { return };
    let fake = phaxio_fake(&node, Duration::from_millis(100)).await;
    let base = fake.base_url.clone();
    let to = "+15557650103";
    let secrets: &[(&str, &[(&str, &str)])] = &[(
        "phaxio-credentials",
        &[("apiKey", "pods-phaxio-key"), ("apiSecret", PHAXIO_SECRET), ("webhookToken", "pods-webhook-token")],
    )];
    let d = deploy(&kc, &node, "phaxio", secrets, &node.api_image, |doc| {
        use_phaxio_fake(doc, &base);
    })
    .await;
    let api = d.api().await;
    let ids = send_and_succeed(&api, to, 3).await;
    assert_eq!(fake.submissions(), ids.len(), "one Phaxio fax per job");
    d.finish(&[PHAXIO_SECRET, "pods-webhook-token"], &[to]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sinch_overlay_sends_through_the_fake_over_https() {
    let _cluster = shared_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let Some(node) = Node::get() else { return };
    let tls = faxbot_fakes::tls::from_test_env().expect("FAXBOT_TEST_TLS_CERT").unwrap();
    let config = SinchFakeConfig {
        key_id: "pods-sinch-key".into(),
        key_secret: SINCH_SECRET.into(),
        project_id: "pods-project".into(),
        ..SinchFakeConfig::default()
    };
    let fake = SinchFake::start_with(config, node.host_socket(), Some(tls)).await.unwrap();
    let (base, token) = (format!("{}/v3/", fake.base_url), fake.token_url.clone());
    let to = "+15557650104";
    let secrets: &[(&str, &[(&str, &str)])] = &[(
        "sinch-credentials",
        &[("keyId", "pods-sinch-key"), ("keySecret", SINCH_SECRET), ("webhookPassword", "pods-sinch-hook")],
    )];
    let d = deploy(&kc, &node, "sinch", secrets, &node.api_image, |doc| {
        if doc["kind"] == "FaxProvider" && doc["spec"]["plugin"] == "sinch" {
            let settings = doc["spec"]["settings"].as_object_mut().unwrap();
            settings.remove("region");
            settings.remove("callbackUrl");
            settings.insert("baseUrl".into(), base.clone().into());
            settings.insert("authUrl".into(), token.clone().into());
            settings.insert("projectId".into(), "pods-project".into());
            settings.insert("pollIntervalMs".into(), 200.into());
        }
    })
    .await;
    let api = d.api().await;
    let ids = send_and_succeed(&api, to, 2).await;
    assert_eq!(fake.submissions(), ids.len(), "one Sinch fax per job");
    d.finish(&[SINCH_SECRET, "pods-sinch-hook"], &[to]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phaxio_s3_overlay_keeps_documents_in_s3_over_https() {
    let _cluster = shared_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let Some(node) = Node::get() else { return };
    let var = |n: &str| std::env::var(n).unwrap_or_else(|_| panic!("{n}: scripts/test starts S3 for pods"));
    let (s3_url, bucket, key_id, key) = (
        var("FAXBOT_TEST_POD_S3_URL"),
        var("FAXBOT_TEST_POD_S3_BUCKET"),
        var("FAXBOT_TEST_POD_S3_ACCESS_KEY_ID"),
        var("FAXBOT_TEST_POD_S3_SECRET_ACCESS_KEY"),
    );
    let fake = phaxio_fake(&node, Duration::from_millis(100)).await;
    let base = fake.base_url.clone();
    let to = "+15557650105";
    let prefix = format!("pods-{:x}/", std::process::id());
    let secrets: &[(&str, &[(&str, &str)])] = &[
        ("phaxio-credentials", &[("apiKey", "pods-phaxio-key"), ("apiSecret", PHAXIO_SECRET)]),
        ("s3-credentials", &[("accessKeyId", &key_id), ("secretAccessKey", &key)]),
    ];
    let d = deploy(&kc, &node, "phaxio-s3", secrets, &node.api_image, |doc| {
        use_phaxio_fake(doc, &base);
        if doc["kind"] == "FaxProvider" && doc["spec"]["plugin"] == "s3" {
            let settings = &mut doc["spec"]["settings"];
            settings["bucket"] = bucket.clone().into();
            settings["endpoint"] = s3_url.clone().into();
            // An S3-compatible server by IP address: path-style, as the overlay's comment says.
            settings["forcePathStyle"] = true.into();
            settings["prefix"] = prefix.clone().into();
        }
    })
    .await;
    assert!(d.volume.is_none(), "phaxio-s3 has no shared volume: the documents live in S3");
    let api = d.api().await;
    let ids = send_and_succeed(&api, to, 2).await;
    assert_eq!(fake.submissions(), ids.len());
    d.finish(&[PHAXIO_SECRET, &key], &[to]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sip_overlay_converts_with_ghostscript_inside_the_api_sip_image() {
    let _cluster = shared_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let Some(node) = Node::get() else { return };
    let config = AmiFakeConfig {
        users: vec![("faxbot".into(), AMI_SECRET.into())],
        default_outcome: Outcome::Hold,
        ..AmiFakeConfig::default()
    };
    let fake = AmiFake::start_on(config, node.host_socket()).await.unwrap();
    let (host, port) = (node.host_addr.to_string(), fake.addr().port());
    let to = "+15557650106";
    let secrets: &[(&str, &[(&str, &str)])] =
        &[("sip-credentials", &[("amiSecret", AMI_SECRET), ("inboundSecret", INBOUND_SECRET)])];
    let d = deploy(&kc, &node, "sip", secrets, &node.api_sip_image, |doc| {
        if doc["kind"] == "FaxProvider" && doc["spec"]["plugin"] == "sip" {
            let settings = &mut doc["spec"]["settings"];
            settings["amiHost"] = host.clone().into();
            settings["amiPort"] = port.into();
            settings["pollIntervalMs"] = 200.into();
        }
    })
    .await;
    let api = d.api().await;
    let id = api.send(to).await.expect("fax accepted");
    let call = wait_for(T, "the Originate", || {
        let fake = &fake;
        async move { fake.originates().pop() }
    })
    .await;
    assert_eq!(call.variable("JOBID"), Some(id.as_str()));
    // The image Asterisk is told to send was made by Ghostscript in the pod (read-only root, its temporary
    // files on the pod's volumes) and lies on the volume shared with Asterisk: here, the host directory.
    let in_pod = PathBuf::from(call.variable("FAXFILE").expect("FAXFILE"));
    let relative = in_pod.strip_prefix(faxbot_operator::build::DATA_DIR).expect("on the data volume");
    let on_host = d.volume.as_ref().unwrap().join(relative);
    let info = tiffinfo(&on_host);
    assert!(info.contains("CCITT Group 4") && info.contains("Image Width: 1728"), "{info}");
    assert!(fake.finish(&call.channel_id, Outcome::Success { pages: 1 }));
    assert_eq!(api.wait_final(&id, T).await["status"], "SUCCESS");
    d.finish(&[AMI_SECRET, INBOUND_SECRET], &[to]).await;
}

fn tiffinfo(path: &Path) -> String {
    let out = std::process::Command::new("tiffinfo").arg(path).output().expect("tiffinfo (libtiff-tools)");
    assert!(out.status.success(), "tiffinfo {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two replicas on PostgreSQL under a steady stream of faxes through the Service; one pod is deleted the
/// normal way (SIGTERM: readiness fails, in-flight work finishes) and then one is killed outright
/// (`--grace-period=0 --force`: SIGKILL). The client retries a failed request with the same Idempotency-Key,
/// as the API documents. Every accepted job ends SUCCESS and Phaxio gets exactly one fax per job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_pods_under_load_loses_no_job_and_sends_none_twice() {
    let _cluster = shared_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let Some(node) = Node::get() else { return };
    let fake = phaxio_fake(&node, Duration::from_millis(300)).await;
    let base = fake.base_url.clone();
    let secrets: &[(&str, &[(&str, &str)])] =
        &[("phaxio-credentials", &[("apiKey", "pods-phaxio-key"), ("apiSecret", PHAXIO_SECRET)])];
    let d = deploy(&kc, &node, "phaxio", secrets, &node.api_image, |doc| use_phaxio_fake(doc, &base)).await;
    let api = std::sync::Arc::new(d.api().await);
    let pods: Api<Pod> = Api::namespaced(d.client.clone(), &d.ns);

    // 60 faxes, one every 200 ms, each retried (same key) until accepted.
    let sender = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut accepted = BTreeMap::new();
            let mut retries = 0;
            for i in 0..60 {
                let key = format!("pods-load-{i}");
                let deadline = Instant::now() + Duration::from_secs(60);
                let id = loop {
                    match api.send_with_key("+15557650107", &key).await {
                        Ok(id) => break id,
                        Err(e) => {
                            assert!(Instant::now() < deadline, "fax {i} never accepted: {e:?}");
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                    }
                };
                accepted.insert(key, id);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (accepted, retries)
        })
    };
    let victims = api_pods(&d.client, &d.ns, "faxbot").await;
    assert_eq!(victims.len(), 2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    pods.delete(&victims[0].name_any(), &DeleteParams::default()).await.unwrap();
    // Once the Deployment has replaced it (two Ready pods again), kill the other one outright.
    wait_for(T, "two Ready pods again", || {
        let (client, ns, old) = (d.client.clone(), d.ns.clone(), victims[0].name_any());
        async move {
            let pods = api_pods(&client, &ns, "faxbot").await;
            let ready = pods.iter().filter(|p| pod_ready(p) && p.name_any() != old).count();
            (ready == 2).then_some(())
        }
    })
    .await;
    pods.delete(&victims[1].name_any(), &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
        .await
        .unwrap();
    let (accepted, retries) = sender.await.unwrap();
    eprintln!("load: {} faxes accepted, {retries} retried requests", accepted.len());
    let ids: std::collections::BTreeSet<&String> = accepted.values().collect();
    assert_eq!(ids.len(), 60, "each Idempotency-Key made exactly one job");
    for id in &ids {
        let job = api.wait_final(id, Duration::from_secs(180)).await;
        assert_eq!(job["status"], "SUCCESS", "{job}");
    }
    let per_job = fake.faxes_per_tag("faxbot_job");
    assert_eq!(per_job.len(), 60, "every job reached Phaxio");
    assert!(per_job.values().all(|n| *n == 1), "no job was sent twice: {per_job:?}");
    d.finish(&[PHAXIO_SECRET], &["+15557650107"]).await;
}

/// One MCP message to `url` with the admin key: its status and JSON body (Null when not JSON).
async fn mcp_post(url: &str, message: Value) -> (u16, Value) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let r = http
        .post(url)
        .header("Authorization", format!("Bearer {ADMIN}"))
        .header("Accept", "application/json, text/event-stream")
        .json(&message)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn mcp_initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "0"}}})
}

/// `features.mcp` turned on in a FaxPluginConfig rolls out like any change (issue 16): a new revision starts
/// as a canary whose pods serve `/mcp` while the stable pods still answer 404; an assistant's fax sent through
/// a canary pod's `/mcp` reaches SUCCESS through the Phaxio fake; once promoted, every pod serves MCP through
/// the Service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_mcp_on_rolls_out_through_a_canary() {
    use faxbot_operator::names;
    let _cluster = shared_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let Some(node) = Node::get() else { return };
    let to = "+15557650109";
    let fake = phaxio_fake(&node, Duration::from_millis(300)).await;
    let base = fake.base_url.clone();
    let secrets: &[(&str, &[(&str, &str)])] =
        &[("phaxio-credentials", &[("apiKey", "pods-phaxio-key"), ("apiSecret", PHAXIO_SECRET)])];
    let d = deploy(&kc, &node, "phaxio", secrets, &node.api_image, |doc| {
        use_phaxio_fake(doc, &base);
        if doc["kind"] == "FaxPluginConfig" {
            // No steady traffic for the analysis here: the canary waits at its first step until promoted.
            doc["spec"]["rollout"]["analysis"] = json!({"maxNoDataChecks": 1000, "progressDeadline": "2h"});
        }
    })
    .await;
    let api = d.api().await;
    let configs: Api<FaxPluginConfig> = Api::namespaced(d.client.clone(), &d.ns);
    let (status, _) = mcp_post(&format!("{}/mcp", api.base), mcp_initialize()).await;
    assert_eq!(status, 404, "MCP is off by default");

    let on = json!({"spec": {"features": {"mcp": true}}});
    configs.patch("faxbot", &PatchParams::default(), &Patch::Merge(&on)).await.unwrap();
    let canary = wait_for(T, "the MCP revision as a canary", || {
        let configs = configs.clone();
        async move { configs.get("faxbot").await.ok()?.status?.rollout?.canary_revision }
    })
    .await;
    let ip_of = |pod: &Pod| pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap();
    let is_canary = |pod: &Pod| pod.labels().get(names::TRACK_LABEL).is_some_and(|t| t == "canary");
    let (canary_ips, stable_ips) = wait_for(T, "a Ready canary pod beside the stable ones", || {
        let (client, ns) = (d.client.clone(), d.ns.clone());
        async move {
            let pods: Vec<Pod> = api_pods(&client, &ns, "faxbot").await.into_iter().filter(pod_ready).collect();
            let canary: Vec<String> = pods.iter().filter(|p| is_canary(p)).map(ip_of).collect();
            let stable: Vec<String> = pods.iter().filter(|p| !is_canary(p)).map(ip_of).collect();
            (!canary.is_empty() && !stable.is_empty()).then_some((canary, stable))
        }
    })
    .await;
    for ip in &stable_ips {
        let (status, _) = mcp_post(&format!("http://{ip}:{}/mcp", names::API_PORT), mcp_initialize()).await;
        assert_eq!(status, 404, "the stable revision has MCP off ({ip})");
    }
    let canary_mcp = format!("http://{}:{}/mcp", canary_ips[0], names::API_PORT);
    let (status, init) = mcp_post(&canary_mcp, mcp_initialize()).await;
    assert_eq!(status, 200, "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "faxbot", "{init}");
    // An assistant's fax through the canary pod, followed to the end through the Service.
    let pdf = include_bytes!("../../api-server/tests/fixtures/one-page.pdf");
    let document = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pdf);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "send_fax",
        "arguments": {"to": to, "document_base64": document}}});
    let (status, sent) = mcp_post(&canary_mcp, call).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["result"]["structuredContent"]["to"], "********0109", "{sent}");
    let id = sent["result"]["structuredContent"]["id"].as_str().unwrap().to_string();
    let job = api.wait_final(&id, T).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");

    // Promoted (the GitOps gate): the MCP revision becomes stable and every pod serves MCP.
    let promote = json!({"spec": {"rollout": {"promote": true}}});
    configs.patch("faxbot", &PatchParams::default(), &Patch::Merge(&promote)).await.unwrap();
    wait_for(T, "the MCP revision promoted", || {
        let (configs, canary) = (configs.clone(), canary.clone());
        async move {
            let rollout = configs.get("faxbot").await.ok()?.status?.rollout?;
            (rollout.stable_revision == canary && rollout.canary_revision.is_none()).then_some(())
        }
    })
    .await;
    wait_for(T, "every API pod Ready on the MCP revision, serving /mcp", || {
        let (client, ns) = (d.client.clone(), d.ns.clone());
        async move {
            let pods = api_pods(&client, &ns, "faxbot").await;
            if pods.is_empty() || !pods.iter().all(|p| pod_ready(p) && !is_canary(p)) {
                return None;
            }
            for pod in &pods {
                let url = format!("http://{}:{}/mcp", ip_of(pod), names::API_PORT);
                if mcp_post(&url, mcp_initialize()).await.0 != 200 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    let (status, _) = mcp_post(&format!("{}/mcp", api.base), mcp_initialize()).await;
    assert_eq!(status, 200, "through the Service");
    d.finish(&[PHAXIO_SECRET], &[to]).await;
}
