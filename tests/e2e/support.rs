//! Harness for the end-to-end suite: a client for the throwaway control plane started by
//! `scripts/kube-testenv.sh`, a namespace per test, and the real operator binary as a child process whose
//! output is captured and scanned for leaked credentials.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faxbot_crds::{FaxPluginConfig, FaxProvider};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// Values that must never appear in logs, events, status or non-Secret objects.
pub const ADMIN_KEY: &str = "fbk_admin_e2e-admin-key-do-not-leak-7f3a";
/// Rotated admin key.
pub const ROTATED_KEY: &str = "fbk_admin_e2e-rotated-key-do-not-leak-91c2";
/// Pepper.
pub const PEPPER: &str = "e2e-pepper-value-do-not-leak-5d10";

/// The control plane's kubeconfig, or `None` (with a loud reason) when the suite must skip. Under `CI=true`
/// a missing control plane fails the test instead.
pub fn kubeconfig() -> Option<PathBuf> {
    // Warnings of in-process fakes reach the test output (stderr, not captured per test).
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("warn").try_init();
    match std::env::var_os("FAXBOT_TEST_KUBECONFIG") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but FAXBOT_TEST_KUBECONFIG is not set: scripts/test starts the control plane (scripts/kube-testenv.sh)"
            )
        }
        None => {
            eprintln!(
                "SKIPPING operator end-to-end test: FAXBOT_TEST_KUBECONFIG is not set. Run scripts/test, or start a \
                 control plane with `scripts/kube-testenv.sh start /tmp/kt && source /tmp/kt/env`."
            );
            None
        }
    }
}

/// A client for the test control plane.
pub async fn client(path: &PathBuf) -> Client {
    let kc = Kubeconfig::read_from(path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

/// Installs the generated CRDs (server-side apply, idempotent) and waits until they are served.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in faxbot_crds::crds() {
        let name = crd.name_any();
        let mut value = serde_json::to_value(&crd).unwrap();
        value["apiVersion"] = "apiextensions.k8s.io/v1".into();
        value["kind"] = "CustomResourceDefinition".into();
        api.patch(&name, &PatchParams::apply("faxbot-e2e").force(), &Patch::Apply(value)).await.expect("apply CRD");
        wait_for(Duration::from_secs(30), "CRD established", || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await.ok()?;
                let established =
                    crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            }
        })
        .await;
    }
    // Discovery catches up a moment after Established.
    wait_for(Duration::from_secs(30), "FaxPluginConfig served", || {
        let api: Api<FaxPluginConfig> = Api::all(client.clone());
        async move { api.list(&Default::default()).await.ok().map(|_| ()) }
    })
    .await;
    wait_for(Duration::from_secs(30), "FaxProvider served", || {
        let api: Api<FaxProvider> = Api::all(client.clone());
        async move { api.list(&Default::default()).await.ok().map(|_| ()) }
    })
    .await;
}

/// Creates a fresh namespace for one test.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!("{prefix}-{:06x}", rand_suffix());
    let api: Api<Namespace> = Api::all(client.clone());
    let ns =
        Namespace { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
    api.create(&PostParams::default(), &ns).await.expect("create namespace");
    name
}

/// Deletes a test's namespace when the test ends, passed or failed: the node has two CPUs and every API pod
/// requests 100m, so the pods of finished tests would soon leave the next ones unschedulable, and one failure
/// would fail every test after it. A failed test first prints what the namespace held (pods, their status and
/// logs, events) into its output; `FAXBOT_TEST_KEEP_NAMESPACES=1` keeps the namespaces for inspection.
pub struct Cleanup {
    kubeconfig: PathBuf,
    namespaces: Vec<String>,
}

/// A [`Cleanup`] of `namespaces`; keep it alive for the whole test (`let _cleanup = cleanup(…);`).
pub fn cleanup(kubeconfig: &std::path::Path, namespaces: &[&str]) -> Cleanup {
    Cleanup { kubeconfig: kubeconfig.to_path_buf(), namespaces: namespaces.iter().map(|n| n.to_string()).collect() }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let bin = std::env::var("KUBE_BINS").map(|d| format!("{d}/kubectl")).unwrap_or_else(|_| "kubectl".into());
        let kubectl = |args: &[&str]| {
            Command::new(&bin).env("KUBECONFIG", &self.kubeconfig).args(args).stdin(Stdio::null()).output().ok()
        };
        for ns in &self.namespaces {
            if std::thread::panicking() {
                for what in [
                    vec!["get", "pods,deployments,faxpluginconfigs", "-o", "wide"],
                    vec!["get", "faxpluginconfigs", "-o", "jsonpath={.items[*].status}"],
                    vec!["get", "events"],
                ] {
                    let mut args = vec!["-n", ns.as_str()];
                    args.extend(what);
                    if let Some(out) = kubectl(&args) {
                        eprintln!(
                            "==> kubectl {args:?}\n{}{}",
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                }
                if let Some(out) = kubectl(&[
                    "-n",
                    ns,
                    "logs",
                    "--all-containers",
                    "--prefix",
                    "--tail=40",
                    "-l",
                    "app.kubernetes.io/managed-by",
                ]) {
                    eprintln!("==> logs\n{}", String::from_utf8_lossy(&out.stdout));
                }
            }
            if std::env::var("FAXBOT_TEST_KEEP_NAMESPACES").is_ok_and(|v| v == "1") {
                continue;
            }
            kubectl(&["delete", "namespace", ns, "--wait=false"]);
        }
    }
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    (nanos ^ std::process::id().rotate_left(12)) & 0xff_ffff
}

/// The `api_keys` FaxProvider `keys`, its admin key and pepper in the Secret `admin` (the canary suites' auth).
pub async fn apply_keys_provider(client: &Client, ns: &str) {
    apply_json::<faxbot_crds::FaxProvider>(
        client,
        ns,
        serde_json::json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxProvider", "metadata": {"name": "keys"},
            "spec": {"plugin": "api_keys", "credentialsSecretRef": {"name": "admin"}}}),
    )
    .await
    .unwrap();
}

/// One operator installed with the chart's defaults (helm.rs) watches every namespace: while it runs it
/// reconciles the other tests' configs too, and two operators analysing and writing one config fight (CI
/// saw a rolled-back canary restarted by the other one). That test holds the cluster exclusively; every
/// other end-to-end test holds it shared, for its whole run.
static CLUSTER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Shares the test cluster with the other namespaced tests ([`CLUSTER`]).
pub async fn shared_cluster() -> tokio::sync::RwLockReadGuard<'static, ()> {
    CLUSTER.read().await
}

/// Has the test cluster to itself ([`CLUSTER`]): for an operator that watches every namespace.
pub async fn exclusive_cluster() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    CLUSTER.write().await
}

/// Polls `check` until it returns `Some`, failing the test with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Server-side applies a JSON manifest (with apiVersion and kind) as the test user.
pub async fn apply_json<K>(client: &Client, ns: &str, manifest: serde_json::Value) -> Result<K, kube::Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
    api.patch(&name, &PatchParams::apply("faxbot-e2e").force(), &Patch::Apply(manifest)).await
}

/// Creates or replaces an Opaque Secret.
pub async fn put_secret(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) -> Secret {
    let secret = Secret {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(data.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&secret).unwrap();
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    apply_json::<Secret>(client, ns, value).await.expect("apply secret")
}

/// The real operator binary, watching one namespace, with its output captured.
pub struct Operator {
    child: Option<Child>,
    output: Arc<Mutex<String>>,
}

impl Operator {
    /// Starts an operator for namespace `ns` with identity `name`.
    pub fn start(kubeconfig: &PathBuf, ns: &str, name: &str) -> Operator {
        Self::start_with_env(kubeconfig, ns, name, &[])
    }

    /// Starts an operator with extra environment variables.
    pub fn start_with_env(kubeconfig: &PathBuf, ns: &str, name: &str, env: &[(&str, &str)]) -> Operator {
        let mut child = Command::new(faxbot_tests::binary("faxbot-operator"))
            .env("KUBECONFIG", kubeconfig)
            .env("FAXBOT_WATCH_NAMESPACE", ns)
            .env("FAXBOT_LEASE_NAMESPACE", ns)
            .env("POD_NAME", name)
            // Port 0: the operator binds a free port and logs it (a port picked here could be taken by
            // another test's process before the operator binds it).
            .env("FAXBOT_OPERATOR_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "debug,kube_client=info,hyper_util=info,tower=info,rustls=info,h2=info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn faxbot-operator");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Operator { child: Some(child), output }
    }

    /// The address of its metrics server, from its log line (waits up to 60 s for it).
    pub fn metrics_addr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let output = self.output();
            let found = output.lines().find(|l| l.contains("metrics and health server listening")).and_then(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                v["listen"].as_str().map(String::from)
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(Instant::now() < deadline, "the operator never logged its metrics address:\n{output}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// SIGKILL: the crash case.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: the graceful case. Returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fails the test if any credential appears in the captured output.
    pub fn assert_no_leaks(&self, secrets: &[&str]) {
        let output = self.output();
        for s in secrets {
            assert!(!output.contains(s), "operator output leaked a credential");
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the control plane's kubectl and returns its stdout. Discovery and the published OpenAPI of a new CRD
/// lag a moment behind `Established`, so "unknown resource" answers are retried for up to 30 s, each time
/// with an empty cache directory (kubectl caches discovery on disk).
pub async fn kubectl(kubeconfig: &PathBuf, args: &[&str]) -> String {
    let bin = std::env::var("KUBE_BINS").map(|d| format!("{d}/kubectl")).unwrap_or_else(|_| "kubectl".into());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cache = tempfile::tempdir().unwrap();
        let out = Command::new(&bin)
            .env("KUBECONFIG", kubeconfig)
            .arg(format!("--cache-dir={}", cache.path().display()))
            .args(args)
            .output()
            .expect("run kubectl");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let discovery_lag = stderr.contains("couldn't find resource")
            || stderr.contains("doesn't have a resource type")
            || stderr.contains("no matches for kind");
        assert!(discovery_lag && Instant::now() < deadline, "kubectl {args:?} failed: {stderr}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A token of ServiceAccount `ns/sa` from the TokenRequest API (valid one hour): what a pod running as that
/// ServiceAccount gets mounted, so a process using it has exactly the ServiceAccount's RBAC.
pub async fn service_account_token(client: &Client, ns: &str, sa: &str) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() }),
        ..Default::default()
    };
    let response = api.create_token_request(sa, &PostParams::default(), &request).await.expect("TokenRequest");
    response.status.and_then(|s| s.token).expect("TokenRequest returned a token")
}

/// Writes `dir/name`: the admin kubeconfig with its token replaced by `token` (same server and CA).
pub fn kubeconfig_with_token(admin: &std::path::Path, token: &str, dir: &std::path::Path, name: &str) -> PathBuf {
    let admin_config = std::fs::read_to_string(admin).unwrap();
    let restricted: String = admin_config
        .lines()
        .map(|l| if l.trim_start().starts_with("token:") { format!("    token: {token}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join(name);
    std::fs::write(&path, restricted).unwrap();
    path
}

/// The real node of `scripts/kube-testenv.sh start --kubelet`: the project's images loaded into its
/// containerd, the address pods reach this host on, and the test CA that the test servers' certificates
/// come from.
#[derive(Clone, Debug)]
pub struct Node {
    /// `faxbot-api` (distroless-like).
    pub api_image: String,
    /// `faxbot-api` with Ghostscript and libtiff (the sip plugin's converters).
    pub api_sip_image: String,
    /// Test-only: `faxbot-api` built with the `test-leak` feature and switched on (it logs each destination
    /// number in full, for the PHI guard to catch).
    pub api_leak_image: String,
    /// `faxbot-operator`.
    pub operator_image: String,
    /// kubectl, for the chart's `helm test` Pod.
    pub kubectl_image: String,
    /// This host on the pod bridge: services the pods use listen there.
    pub host_addr: std::net::IpAddr,
    /// containerd's socket (for `ctr`: container PIDs).
    pub containerd: String,
    /// The test CA (PEM): API pods trust it through `apiServer.trustBundle`.
    pub ca_pem: String,
}

impl Node {
    /// The node from the environment, or `None` (with a loud reason) when the suite must skip. Under `CI=true`
    /// a missing node fails the test.
    pub fn get() -> Option<Node> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let node = (|| {
            Some(Node {
                api_image: var("FAXBOT_TEST_API_IMAGE")?,
                api_sip_image: var("FAXBOT_TEST_API_SIP_IMAGE")?,
                api_leak_image: var("FAXBOT_TEST_API_LEAK_IMAGE")?,
                operator_image: var("FAXBOT_TEST_OPERATOR_IMAGE")?,
                kubectl_image: var("FAXBOT_TEST_KUBECTL_IMAGE")?,
                host_addr: var("FAXBOT_TEST_HOST_ADDR")?.parse().ok()?,
                containerd: var("FAXBOT_TEST_CONTAINERD_ADDRESS")?,
                ca_pem: std::fs::read_to_string(var("FAXBOT_TEST_TLS_CA")?).ok()?,
            })
        })();
        if node.is_none() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "CI=true but there is no real test node: scripts/test starts one (kube-testenv.sh start --kubelet)"
                );
            }
            eprintln!(
                "SKIPPING real-pod test: no real node (FAXBOT_TEST_API_IMAGE, FAXBOT_TEST_HOST_ADDR, …). Start one with \
                 `sudo scripts/kube-testenv.sh start --kubelet /tmp/kt && source /tmp/kt/env`."
            );
        }
        node
    }

    /// A socket address on the host that pods reach, with a free port.
    pub fn host_socket(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host_addr, 0)
    }

    /// The process ID (in this host's PID namespace) of container `container_id` (without `containerd://`).
    pub fn container_pid(&self, container_id: &str) -> u32 {
        let out = Command::new("ctr")
            .args(["--address", &self.containerd, "-n", "k8s.io", "tasks", "ls"])
            .output()
            .expect("run ctr");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find(|l| l.starts_with(container_id))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no running task for container {container_id}:\n{text}"))
    }
}

/// Labels `ns` to enforce the "restricted" Pod Security Standard: the API server then refuses any pod that
/// does not meet it, so pods in it are admitted only because they are rendered that way.
pub async fn enforce_restricted(client: &Client, ns: &str) {
    let label = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    Api::<Namespace>::all(client.clone()).patch(ns, &PatchParams::default(), &Patch::Merge(label)).await.unwrap();
}

/// The ConfigMap `test-ca` (key `ca.crt`) with the test CA, for `apiServer.trustBundle`.
pub async fn put_trust_bundle(client: &Client, ns: &str, node: &Node) {
    use k8s_openapi::api::core::v1::ConfigMap;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "test-ca"},
        "data": {"ca.crt": node.ca_pem}});
    apply_json::<ConfigMap>(client, ns, cm).await.expect("apply the trust bundle ConfigMap");
}

/// `http://<ClusterIP>` of Service `name`: requests from this host go through kube-proxy's rules like a
/// client pod's would.
pub async fn service_url(client: &Client, ns: &str, name: &str) -> String {
    use k8s_openapi::api::core::v1::Service;
    let svc: Service = Api::namespaced(client.clone(), ns).get(name).await.expect("Service");
    let ip = svc.spec.and_then(|s| s.cluster_ip).expect("a ClusterIP");
    format!("http://{ip}")
}

/// The pods of FaxPluginConfig `config` (stable and canary), with their phase and readiness.
pub async fn api_pods(client: &Client, ns: &str, config: &str) -> Vec<k8s_openapi::api::core::v1::Pod> {
    use k8s_openapi::api::core::v1::Pod;
    let selector = format!("{}={config}", faxbot_operator::names::CONFIG_LABEL);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.list(&kube::api::ListParams::default().labels(&selector)).await.expect("list pods").items
}

/// Whether the pod's Ready condition is True.
pub fn pod_ready(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The logs of every container of every pod in `ns` (current and, where a container restarted, previous),
/// each prefixed with the pod and container name.
pub async fn namespace_logs(client: &Client, ns: &str) -> String {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut all = String::new();
    for pod in pods.list(&kube::api::ListParams::default()).await.expect("list pods").items {
        let name = pod.name_any();
        let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
        for status in statuses {
            for previous in [false, true] {
                if previous && status.restart_count == 0 {
                    continue;
                }
                let params =
                    kube::api::LogParams { container: Some(status.name.clone()), previous, ..Default::default() };
                if let Ok(text) = pods.logs(&name, &params).await {
                    all.push_str(&format!("==> {name}/{} (previous: {previous}) <==\n{text}\n", status.name));
                }
            }
        }
    }
    all
}

/// Fails the test when `logs` holds any of `secrets` or any of `numbers` in full (numbers appear masked to
/// their last four digits at most).
pub fn assert_logs_clean(logs: &str, secrets: &[&str], numbers: &[&str]) {
    for s in secrets {
        assert!(!s.is_empty() && !logs.contains(s), "a pod's logs hold a credential");
    }
    for n in numbers {
        let digits: String = n.chars().filter(char::is_ascii_digit).collect();
        assert!(
            !logs.contains(n) && !logs.contains(&digits),
            "a pod's logs hold the full number ending {}",
            &digits[digits.len() - 4..]
        );
    }
}

/// The API of one FaxPluginConfig as its clients use it: through its Service.
pub struct FaxApi {
    /// `http://<ClusterIP>`.
    pub base: String,
    /// An admin key.
    pub key: String,
    http: reqwest::Client,
}

impl FaxApi {
    /// The API behind Service `<config>-api`, once the Service answers: kube-proxy programs a new Service or
    /// endpoint a moment after the pods are Ready, as clients in a cluster see too.
    pub async fn of(client: &Client, ns: &str, config: &str, key: &str) -> FaxApi {
        let base = service_url(client, ns, &faxbot_operator::names::api_name(config)).await;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        let api = FaxApi { base, key: key.into(), http };
        wait_for(Duration::from_secs(60), "the Service to answer", || async {
            (api.status("/health", None).await == 200).then_some(())
        })
        .await;
        api
    }

    /// The same API through a client that opens a new connection for every request, as many independent
    /// clients do: kube-proxy picks a pod per connection, so these requests spread over the pods by their share.
    pub fn one_connection_per_request(mut self) -> FaxApi {
        self.http =
            reqwest::Client::builder().timeout(Duration::from_secs(20)).pool_max_idle_per_host(0).build().unwrap();
        self
    }

    /// `POST /fax` with a one-page PDF; the job id, or the status and body of a refusal (0: no answer).
    pub async fn send(&self, to: &str) -> Result<String, (u16, String)> {
        self.send_inner(to, None).await
    }

    /// [`FaxApi::send`] with an `Idempotency-Key`: a retry after a lost answer returns the same job.
    pub async fn send_with_key(&self, to: &str, key: &str) -> Result<String, (u16, String)> {
        self.send_inner(to, Some(key)).await
    }

    async fn send_inner(&self, to: &str, idempotency_key: Option<&str>) -> Result<String, (u16, String)> {
        let pdf = include_bytes!("../../api-server/tests/fixtures/one-page.pdf").to_vec();
        let form = reqwest::multipart::Form::new()
            .text("to", to.to_string())
            .part("file", reqwest::multipart::Part::bytes(pdf).file_name("a.pdf").mime_str("application/pdf").unwrap());
        let mut request = self.http.post(format!("{}/fax", self.base)).header("X-API-Key", &self.key).multipart(form);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.map_err(|e| (0, e.to_string()))?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if status != 202 {
            return Err((status, body));
        }
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| (status, e.to_string()))?;
        Ok(v["id"].as_str().expect("a job id").to_string())
    }

    /// `GET /fax/{id}`.
    pub async fn job(&self, id: &str) -> Option<serde_json::Value> {
        let r = self.http.get(format!("{}/fax/{id}", self.base)).header("X-API-Key", &self.key).send().await.ok()?;
        if r.status() != 200 {
            return None;
        }
        r.json().await.ok()
    }

    /// Waits until job `id` reaches a final status and returns it.
    pub async fn wait_final(&self, id: &str, timeout: Duration) -> serde_json::Value {
        wait_for(timeout, "the job's final status", || async move {
            let job = self.job(id).await?;
            let status = job["status"].as_str()?.to_string();
            ["SUCCESS", "FAILED", "failed", "cancelled"].contains(&status.as_str()).then_some(job)
        })
        .await
    }

    /// The status code of `GET path` with `key` (or none).
    pub async fn status(&self, path: &str, key: Option<&str>) -> u16 {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(k) = key {
            request = request.header("X-API-Key", k);
        }
        request.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    }
}
