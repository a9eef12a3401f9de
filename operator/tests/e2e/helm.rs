//! The Helm chart (`charts/faxbot-operator`) with a real Helm (built from Go modules by `scripts/helm-bin.sh`,
//! `HELM` in the test environment) against the real control plane: `helm lint --strict` is clean, what
//! `helm template` renders is accepted by the API server, `helm install` works, the real operator binary
//! running with a token of the chart's own ServiceAccount (so with exactly the chart's RBAC) turns the
//! `helm test` resources Ready, `helm test` passes (and fails when they do not become Ready), and
//! `helm uninstall` removes the release. With `watchNamespace` the chart's rights are a Role in that
//! namespace only: the token cannot read Secrets anywhere else.
//!
//! kwok plays the kubelet and runs no container, so the `helm test` Pod's command is run by this suite (see
//! [`run_test_pod`]), with the Pod's own ServiceAccount token; its exit code becomes the Pod's phase.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use faxbot_crds::{FaxPluginConfig, FaxProvider};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::support::*;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/faxbot-operator");

/// Helm with its own cache/config/data directories (nothing is written to `$HOME`) and the test kubeconfig.
struct Helm {
    bin: String,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    /// `HELM` from the test environment, else `helm` on the PATH; `None` (skip, loudly) when there is none,
    /// and a failed test under `CI=true`.
    fn find(kubeconfig: &Path) -> Option<Helm> {
        let bin = std::env::var("HELM").ok().filter(|h| !h.is_empty()).or_else(|| {
            let found = Command::new("helm").arg("version").output().is_ok_and(|o| o.status.success());
            found.then(|| "helm".to_string())
        });
        match bin {
            Some(bin) => Some(Helm { bin, kubeconfig: kubeconfig.to_path_buf(), home: tempfile::tempdir().unwrap() }),
            None if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!(
                    "CI=true but there is no Helm: scripts/kube-testenv.sh exports HELM (scripts/helm-bin.sh builds it)"
                )
            }
            None => {
                eprintln!(
                    "SKIPPING Helm chart test: HELM is not set and no helm is on the PATH. Start the control plane \
                     with scripts/kube-testenv.sh (it builds Helm with scripts/helm-bin.sh and exports HELM)."
                );
                None
            }
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        let home = self.home.path();
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs helm; returns (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.command(args).output().expect("run helm");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args);
        assert!(ok, "helm {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }

    /// `helm test` in the background (it waits for the test Pod while [`run_test_pod`] plays its kubelet).
    fn spawn_test(&self, release: &str, ns: &str) -> tokio::task::JoinHandle<(bool, String)> {
        let child = self.command(&["test", release, "-n", ns, "--timeout", "4m"]).spawn().expect("spawn helm test");
        tokio::task::spawn_blocking(move || {
            let out = child.wait_with_output().unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            (out.status.success(), text)
        })
    }
}

fn kubectl_bin() -> String {
    std::env::var("KUBE_BINS").map(|d| format!("{d}/kubectl")).unwrap_or_else(|_| "kubectl".into())
}

/// `kubectl apply --server-side --dry-run=server` of `manifests`; panics with the API server's answer when it
/// refuses anything.
fn server_dry_run(kubeconfig: &Path, manifests: &str, what: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(kubectl_bin())
        .env("KUBECONFIG", kubeconfig)
        .args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "--field-manager=helm-test",
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(manifests.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the API server refused {what}:\n{text}");
    text
}

/// The documents of a multi-document YAML stream, parsed (empty documents dropped).
fn documents(yaml: &str) -> Vec<serde_json::Value> {
    yaml.split("\n---")
        .map(|d| d.trim_start_matches('\n'))
        .filter_map(|d| yaml_serde::from_str::<serde_json::Value>(d).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn find<'a>(docs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

#[tokio::test]
async fn the_chart_lints_clean_renders_and_the_api_server_accepts_it() {
    let Some(kc) = kubeconfig() else { return };
    let Some(helm) = Helm::find(&kc) else { return };
    let client = client(&kc).await;
    install_crds(&client).await;
    let ns = namespace(&client, "e2e-helm-render").await;
    let all_enabled = format!("{CHART}/ci/all-enabled-values.yaml");

    // Lint: the defaults and every optional part on (the ServiceMonitor included); no warning or error, and
    // no message at all but the one about the chart icon (the project has no published icon to point at).
    for extra in [vec![], vec!["-f", all_enabled.as_str()]] {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend(extra.iter().copied());
        let out = helm.ok(&args);
        assert!(out.contains("1 chart(s) linted, 0 chart(s) failed"), "{out}");
        for level in ["[WARNING]", "[ERROR]"] {
            assert!(!out.contains(level), "helm lint {extra:?} reported {level}:\n{out}");
        }
        let infos: Vec<&str> = out.lines().filter(|l| l.starts_with("[INFO]")).collect();
        assert_eq!(infos, ["[INFO] Chart.yaml: icon is recommended"], "helm lint {extra:?}:\n{out}");
    }
    // The CRD upgrade step of docs/operations.md: `helm show crds` gives exactly the generated CRDs.
    assert_eq!(helm.ok(&["show", "crds", CHART]).trim_end(), faxbot_crds::crds_yaml().trim_end());
    // The schema refuses what it does not know, and the chart refuses two replicas without a Lease.
    let (ok, _, err) = helm.run(&["template", "x", CHART, "--set", "metrics.servicemonitor.enabled=true"]);
    assert!(!ok && err.contains("additional properties 'servicemonitor' not allowed"), "{err}");
    let (ok, _, err) = helm.run(&["template", "x", CHART, "--set", "leaderElection.enabled=false"]);
    assert!(!ok && err.contains("replicaCount > 1 needs leaderElection.enabled"), "{err}");

    // Defaults: everything the issue lists, with the same rules as config/rbac/operator.yaml.
    let rendered = helm.ok(&["template", "r", CHART, "-n", &ns, "--skip-tests"]);
    let docs = documents(&rendered);
    for kind in ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment"] {
        assert_eq!(find(&docs, kind).len(), 1, "{kind} in the default rendering:\n{rendered}");
    }
    for kind in ["PodDisruptionBudget", "Service"] {
        assert_eq!(find(&docs, kind).len(), 1, "{kind} in the default rendering");
    }
    assert!(find(&docs, "ServiceMonitor").is_empty() && find(&docs, "FaxPluginConfig").is_empty());
    let kustomize_rbac: Vec<serde_json::Value> = documents(include_str!("../../../config/rbac/operator.yaml"));
    assert_eq!(
        find(&docs, "ClusterRole")[0]["rules"],
        find(&kustomize_rbac, "ClusterRole")[0]["rules"],
        "the chart's ClusterRole and config/rbac/operator.yaml grant the same rights"
    );
    assert_eq!(find(&docs, "Role")[0]["rules"], find(&kustomize_rbac, "Role")[0]["rules"]);
    let deployment = find(&docs, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], faxbot_operator::build::RUN_AS);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert!(container["livenessProbe"].is_object() && container["readinessProbe"].is_object());
    assert!(container["resources"]["requests"].is_object());
    let accepted = server_dry_run(&kc, &rendered, "the default rendering");
    assert!(accepted.contains("deployment.apps/r-faxbot-operator serverside-applied (server dry run)"), "{accepted}");

    // Everything on (the ServiceMonitor's CRD is not installed here, so it is linted above and checked for
    // shape, not applied), watching this namespace: Roles only, the sample config, all accepted.
    let (ok, with_monitor, err) = helm.run(&["template", "r", CHART, "-n", &ns, "-f", &all_enabled, "--skip-tests"]);
    assert!(ok, "{err}");
    let monitor = documents(&with_monitor).into_iter().find(|d| d["kind"] == "ServiceMonitor").expect("ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    let watch = format!("watchNamespace={ns}");
    let rendered = helm.ok(&[
        "template",
        "r",
        CHART,
        "-n",
        &ns,
        "-f",
        &all_enabled,
        "--set",
        &watch,
        "--set",
        "metrics.serviceMonitor.enabled=false",
        "--skip-tests",
    ]);
    let docs = documents(&rendered);
    assert!(find(&docs, "ClusterRole").is_empty() && find(&docs, "ClusterRoleBinding").is_empty(), "{rendered}");
    assert_eq!(find(&docs, "Role").len(), 2, "the operator's Role and the leader-election Role");
    assert_eq!(find(&docs, "FaxPluginConfig").len(), 1, "the sample config");
    let env = &find(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(env.as_array().unwrap().iter().any(|e| e["name"] == "FAXBOT_WATCH_NAMESPACE" && e["value"] == ns.as_str()));
    server_dry_run(&kc, &rendered, "the all-enabled rendering");
}

/// Labels `ns` to enforce the "restricted" Pod Security Standard, so the API server refuses any pod of the
/// chart (the operator's, through its ReplicaSet, and the `helm test` Pod) that does not meet it.
async fn enforce_restricted(client: &Client, ns: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    let label = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    Api::<Namespace>::all(client.clone()).patch(ns, &PatchParams::default(), &Patch::Merge(label)).await.unwrap();
}

/// What a test release leaves to check: names derived from the release.
struct Release {
    name: String,
    fullname: String,
}

impl Release {
    fn new(name: &str) -> Release {
        Release { name: name.into(), fullname: format!("{name}-faxbot-operator") }
    }
    fn test_name(&self) -> String {
        let mut n = format!("{}-test", self.fullname);
        n.truncate(40);
        n.trim_end_matches('-').to_string()
    }
}

/// Plays the kubelet for the chart's `helm test` Pod `work_ns/<release>-…-test`: waits until kwok reports it
/// Running, runs its container's command (`kubectl wait --for=condition=Ready …` on the test FaxProviders and
/// FaxPluginConfig) with the control plane's kubectl and a TokenRequest token of the Pod's own ServiceAccount
/// — what the container would get mounted — and sets the Pod's phase from the exit code (Succeeded or
/// Failed), which is what `helm test` waits for. When the command succeeds, the test resources are checked
/// Ready here too, through the API, and the random admin key is returned for the leak check.
/// `helm test` is the running `helm test` ([`Helm::spawn_test`]); its result is returned as the last two fields.
async fn run_test_pod(
    client: &Client,
    admin: &Path,
    release: &Release,
    work_ns: &str,
    helm_test: tokio::task::JoinHandle<(bool, String)>,
) -> (bool, Option<String>, bool, String) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), work_ns);
    let name = release.test_name();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let pod = loop {
        if let Ok(Some(pod)) = pods.get_opt(&name).await
            && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        {
            break pod;
        }
        // A hook refused by the API server (or any other early failure) ends `helm test` before the Pod runs.
        if helm_test.is_finished() {
            let (ok, out) = helm_test.await.unwrap();
            panic!("helm test ended (success: {ok}) before its Pod ran:\n{out}");
        }
        assert!(std::time::Instant::now() < deadline, "the helm test Pod was not Running within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let spec = pod.spec.unwrap();
    let container = &spec.containers[0];
    assert_eq!(container.command.as_deref(), Some(&["kubectl".to_string()][..]), "the test Pod runs kubectl");
    let args = container.args.clone().unwrap_or_default();
    let sa = spec.service_account_name.clone().expect("the test Pod has its own ServiceAccount");
    let token = service_account_token(client, work_ns, &sa).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig_with_token(admin, &token, dir.path(), "kubeconfig");
    let bin = kubectl_bin();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin).env("KUBECONFIG", &kubeconfig).args(&args).stdin(Stdio::null()).output().unwrap()
    })
    .await
    .unwrap();
    let passed = out.status.success();
    eprintln!(
        "helm test Pod command exited {:?}:\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let mut admin_key = None;
    if passed {
        let providers: Api<FaxProvider> = Api::namespaced(client.clone(), work_ns);
        for p in [format!("{name}-line"), format!("{name}-keys")] {
            let status = providers.get(&p).await.unwrap().status.expect("provider status");
            assert!(status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"), "{p}: {status:?}");
        }
        let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), work_ns);
        let status = configs.get(&name).await.unwrap().status.expect("config status");
        assert!(
            status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "Available"),
            "{status:?}"
        );
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), work_ns);
        assert!(deployments.get_opt(&faxbot_operator::names::api_name(&name)).await.unwrap().is_some());
        let secret = Api::<Secret>::namespaced(client.clone(), work_ns).get(&format!("{name}-admin")).await.unwrap();
        let key = secret.data.unwrap().remove("adminKey").expect("a generated adminKey");
        admin_key = Some(String::from_utf8(key.0).unwrap());
    }

    let (phase, reason, code) = if passed { ("Succeeded", "Completed", 0) } else { ("Failed", "Error", 1) };
    let status = json!({"status": {"phase": phase, "containerStatuses": [{
        "name": container.name, "image": container.image, "imageID": "", "ready": false, "restartCount": 0,
        "started": false, "state": {"terminated": {"exitCode": code, "reason": reason}}
    }]}});
    pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(status)).await.expect("set the test Pod's phase");
    let (helm_ok, helm_out) = helm_test.await.unwrap();
    (passed, admin_key, helm_ok, helm_out)
}

/// `helm install` with the defaults (cluster-wide RBAC), the operator on the chart's ServiceAccount token,
/// `helm test`, `helm uninstall`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_test_and_uninstall_with_the_charts_service_account() {
    let Some(kc) = kubeconfig() else { return };
    let Some(helm) = Helm::find(&kc) else { return };
    let client = client(&kc).await;
    install_crds(&client).await;
    let ns = namespace(&client, "e2e-helm").await;
    enforce_restricted(&client, &ns).await;
    let release = Release::new(&ns);

    let out = helm.ok(&["install", &release.name, CHART, "-n", &ns, "--wait", "--timeout", "2m"]);
    assert!(out.contains("STATUS: deployed") && out.contains("It watches every namespace"), "{out}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let operator_deployment = deployments.get(&release.fullname).await.unwrap();
    assert_eq!(operator_deployment.status.unwrap().available_replicas, Some(2), "two replicas Available");
    assert!(Api::<ClusterRole>::all(client.clone()).get_opt(&release.fullname).await.unwrap().is_some());

    // The real operator binary with the chart's ServiceAccount token: exactly the chart's RBAC.
    let token = service_account_token(&client, &ns, &release.fullname).await;
    let dir = tempfile::tempdir().unwrap();
    let restricted = kubeconfig_with_token(&kc, &token, dir.path(), "kubeconfig");
    let restricted_client = crate::support::client(&restricted).await;
    let err = Api::<ServiceAccount>::namespaced(restricted_client, &ns)
        .list(&ListParams::default())
        .await
        .expect_err("the chart's ServiceAccount must not list service accounts");
    assert!(err.to_string().contains("forbidden"), "{err}");
    let mut operator =
        Operator::start_with_env(&restricted, &ns, "op-helm", &[("FAXBOT_LEASE_NAME", release.fullname.as_str())]);

    let test = helm.spawn_test(&release.name, &ns);
    let (passed, admin_key, ok, out) = run_test_pod(&client, &kc, &release, &ns, test).await;
    assert!(passed, "the test resources did not become Ready; operator output:\n{}", operator.output());
    assert!(ok && out.contains("Phase:          Succeeded"), "helm test failed:\n{out}");
    // Passed tests clean up after themselves (hook-succeeded), and the operator's objects go with the config.
    let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), &ns);
    assert!(configs.get_opt(&release.test_name()).await.unwrap().is_none(), "the test FaxPluginConfig was deleted");

    let output = operator.output();
    assert!(!output.to_lowercase().contains("forbidden"), "the operator hit a permission it lacks:\n{output}");
    assert!(operator.terminate());
    operator.assert_no_leaks(&[admin_key.as_deref().unwrap()]);

    let out = helm.ok(&["uninstall", &release.name, "-n", &ns, "--wait", "--timeout", "2m"]);
    assert!(out.contains("uninstalled"), "{out}");
    assert!(deployments.get_opt(&release.fullname).await.unwrap().is_none());
    assert!(Api::<ClusterRole>::all(client.clone()).get_opt(&release.fullname).await.unwrap().is_none());
    assert!(Api::<ClusterRoleBinding>::all(client.clone()).get_opt(&release.fullname).await.unwrap().is_none());
    // The CRDs stay (Helm never deletes crds/ content): custom resources elsewhere survive an uninstall.
    assert!(Api::<FaxPluginConfig>::all(client.clone()).list(&ListParams::default()).await.is_ok());
}

/// Acceptance 3 with namespace scoping: a release in one namespace watching another has no cluster-wide
/// right; its ServiceAccount token is refused Secrets in every namespace but the watched one (including its
/// own), while the operator on that token serves the watched one and `helm test` passes there. It also shows
/// `helm test` fails when the resources do not become Ready (no operator running yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_release_reads_secrets_only_where_it_works() {
    let Some(kc) = kubeconfig() else { return };
    let Some(helm) = Helm::find(&kc) else { return };
    let client = client(&kc).await;
    install_crds(&client).await;
    let op_ns = namespace(&client, "e2e-helm-op").await;
    let fax_ns = namespace(&client, "e2e-helm-fax").await;
    let other_ns = namespace(&client, "e2e-helm-other").await;
    for ns in [&op_ns, &fax_ns, &other_ns] {
        enforce_restricted(&client, ns).await;
        put_secret(&client, ns, "someone-elses", &[("password", "not-for-the-operator")]).await;
    }
    let release = Release::new(&op_ns);
    let watch = format!("watchNamespace={fax_ns}");
    helm.ok(&[
        "install",
        &release.name,
        CHART,
        "-n",
        &op_ns,
        "--set",
        &watch,
        "--set",
        "replicaCount=1",
        "--set",
        "tests.timeoutSeconds=15",
        "--wait",
        "--timeout",
        "2m",
    ]);
    assert!(Api::<ClusterRole>::all(client.clone()).get_opt(&release.fullname).await.unwrap().is_none());
    assert!(Api::<Role>::namespaced(client.clone(), &fax_ns).get_opt(&release.fullname).await.unwrap().is_some());

    let token = service_account_token(&client, &op_ns, &release.fullname).await;
    let dir = tempfile::tempdir().unwrap();
    let restricted = kubeconfig_with_token(&kc, &token, dir.path(), "kubeconfig");
    let as_operator = crate::support::client(&restricted).await;
    for ns in [&op_ns, &other_ns] {
        let secrets: Api<Secret> = Api::namespaced(as_operator.clone(), ns);
        for result in
            [secrets.list(&ListParams::default()).await.map(|_| ()), secrets.get("someone-elses").await.map(|_| ())]
        {
            match result {
                Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{ns}: {status:?}"),
                other => panic!("reading Secrets in {ns} must be forbidden, got {other:?}"),
            }
        }
    }
    match Api::<Secret>::all(as_operator.clone()).list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403),
        other => panic!("listing Secrets cluster-wide must be forbidden, got {other:?}"),
    }
    let in_fax = Api::<Secret>::namespaced(as_operator.clone(), &fax_ns);
    assert!(in_fax.get("someone-elses").await.is_ok(), "the watched namespace's Secrets are readable");

    // No operator yet: the test resources never become Ready, the Pod fails, and so does `helm test`.
    let test = helm.spawn_test(&release.name, &op_ns);
    let (passed, _, ok, out) = run_test_pod(&client, &kc, &release, &fax_ns, test).await;
    assert!(!passed && !ok, "helm test must fail without an operator:\n{out}");

    // `helm upgrade` (values reused) with a realistic timeout, then the operator on the token: it passes.
    helm.ok(&["upgrade", &release.name, CHART, "-n", &op_ns, "--reuse-values", "--set", "tests.timeoutSeconds=180"]);
    let mut operator = Operator::start_with_env(
        &restricted,
        &fax_ns,
        "op-helm-ns",
        &[("FAXBOT_LEASE_NAMESPACE", op_ns.as_str()), ("FAXBOT_LEASE_NAME", release.fullname.as_str())],
    );
    let test = helm.spawn_test(&release.name, &op_ns);
    let (passed, admin_key, ok, out) = run_test_pod(&client, &kc, &release, &fax_ns, test).await;
    assert!(passed, "the test resources did not become Ready; operator output:\n{}", operator.output());
    assert!(ok && out.contains("Phase:          Succeeded"), "helm test failed:\n{out}");
    let output = operator.output();
    assert!(!output.to_lowercase().contains("forbidden"), "the operator hit a permission it lacks:\n{output}");
    assert!(operator.terminate());
    operator.assert_no_leaks(&[admin_key.as_deref().unwrap(), "not-for-the-operator"]);
    helm.ok(&["uninstall", &release.name, "-n", &op_ns, "--wait", "--timeout", "2m"]);
    assert!(Api::<Role>::namespaced(client.clone(), &fax_ns).get_opt(&release.fullname).await.unwrap().is_none());
}
