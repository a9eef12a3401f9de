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

/// Values that must never appear in logs, events, status or non-Secret objects.
pub const ADMIN_KEY: &str = "fbk_admin_e2e-admin-key-do-not-leak-7f3a";
/// Rotated admin key.
pub const ROTATED_KEY: &str = "fbk_admin_e2e-rotated-key-do-not-leak-91c2";
/// Pepper.
pub const PEPPER: &str = "e2e-pepper-value-do-not-leak-5d10";

/// The control plane's kubeconfig, or `None` (with a loud reason) when the suite must skip. Under `CI=true`
/// a missing control plane fails the test instead.
pub fn kubeconfig() -> Option<PathBuf> {
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

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    (nanos ^ std::process::id().rotate_left(12)) & 0xff_ffff
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
    /// The address of its metrics server.
    pub metrics_addr: String,
}

impl Operator {
    /// Starts an operator for namespace `ns` with identity `name`.
    pub fn start(kubeconfig: &PathBuf, ns: &str, name: &str) -> Operator {
        Self::start_with_env(kubeconfig, ns, name, &[])
    }

    /// Starts an operator with extra environment variables.
    pub fn start_with_env(kubeconfig: &PathBuf, ns: &str, name: &str, env: &[(&str, &str)]) -> Operator {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_faxbot-operator"))
            .env("KUBECONFIG", kubeconfig)
            .env("FAXBOT_WATCH_NAMESPACE", ns)
            .env("FAXBOT_LEASE_NAMESPACE", ns)
            .env("POD_NAME", name)
            .env("FAXBOT_OPERATOR_LISTEN", &metrics_addr)
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
        Operator { child: Some(child), output, metrics_addr }
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
