//! The Helm chart (`charts/faxbot-operator`) with a real Helm (built from Go modules by `scripts/helm-bin.sh`,
//! `HELM` in the test environment) on the real-node cluster: `helm lint --strict` is clean, what
//! `helm template` renders is accepted by the API server, and `helm install --wait` brings up the operator
//! image built from the Dockerfile as two real pods (leader election between them, the standby Ready too),
//! running on the chart's own ServiceAccount and so with exactly the chart's RBAC. `helm test` runs its Pod
//! (kubectl, with the Pod's ServiceAccount token) and passes once the operator has turned the test resources
//! into a Ready API pod, and fails when the API pod cannot start. `helm uninstall` removes the release. With
//! `watchNamespace` the chart's rights are a Role in that namespace only: the token cannot read Secrets
//! anywhere else.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use faxbot_crds::FaxPluginConfig;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::support::*;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/faxbot-operator");

/// Helm with its own cache/config/data directories (nothing is written to `$HOME`) and the test kubeconfig.
pub(crate) struct Helm {
    bin: String,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    /// `HELM` from the test environment, else `helm` on the PATH; `None` (skip, loudly) when there is none,
    /// and a failed test under `CI=true`.
    pub(crate) fn find(kubeconfig: &Path) -> Option<Helm> {
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
    pub(crate) fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.command(args).output().expect("run helm");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args);
        assert!(ok, "helm {args:?} failed:\n{stdout}\n{stderr}");
        stdout
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
    let _cluster = shared_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let Some(helm) = Helm::find(&kc) else { return };
    let client = client(&kc).await;
    install_crds(&client).await;
    let ns = namespace(&client, "e2e-helm-render").await;
    let _cleanup = cleanup(&kc, &[&ns]);
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
    let kustomize_rbac: Vec<serde_json::Value> = documents(include_str!("../../config/rbac/operator.yaml"));
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
    assert!(
        env.as_array().unwrap().iter().any(|e| e["name"] == "FAXBOT_WATCH_NAMESPACES" && e["value"] == ns.as_str())
    );
    server_dry_run(&kc, &rendered, "the all-enabled rendering");

    // A list of watched namespaces: a Role and RoleBinding in each, still nothing cluster-wide.
    let second = namespace(&client, "e2e-helm-b").await;
    let _cleanup_second = cleanup(&kc, &[&second]);
    let watch_both = format!("watchNamespaces={{{ns},{second}}}");
    let rendered = helm.ok(&["template", "r", CHART, "-n", &ns, "--set", &watch_both, "--skip-tests"]);
    let docs = documents(&rendered);
    assert!(find(&docs, "ClusterRole").is_empty() && find(&docs, "ClusterRoleBinding").is_empty(), "{rendered}");
    for watched in [&ns, &second] {
        let in_ns =
            |kind: &str| find(&docs, kind).iter().filter(|d| d["metadata"]["namespace"] == watched.as_str()).count();
        assert!(in_ns("Role") >= 1 && in_ns("RoleBinding") >= 1, "rights in {watched}: {rendered}");
    }
    let env = &find(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    let both = format!("{ns},{second}");
    assert!(
        env.as_array().unwrap().iter().any(|e| e["name"] == "FAXBOT_WATCH_NAMESPACES" && e["value"] == both.as_str())
    );
    server_dry_run(&kc, &rendered, "the two-namespace rendering");
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

/// `--set` arguments that point the chart at the images built and loaded into the test node.
pub(crate) fn image_values(node: &Node) -> Vec<String> {
    let (repository, tag) = node.operator_image.rsplit_once(':').expect("an image tag");
    vec![
        format!("image.repository={repository}"),
        format!("image.tag={tag}"),
        format!("tests.kubectlImage={}", node.kubectl_image),
        format!("tests.apiImage={}", node.api_image),
    ]
}

/// `helm <args> --set <each of sets>`.
fn with_sets<'a>(args: &[&'a str], sets: &'a [String]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    for s in sets {
        all.push("--set");
        all.push(s);
    }
    all
}

/// The holder of the operator's Lease, once there is one.
pub(crate) async fn lease_holder(client: &Client, ns: &str, lease: &str) -> Option<String> {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    leases.get_opt(lease).await.ok()??.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// Fails when an operator pod's logs show a missing permission or an admin key (the chart's `helm test` key
/// is random, so any `fbk_admin_` token counts).
fn assert_operator_logs_clean(logs: &str, extra: &[&str]) {
    assert!(!logs.to_lowercase().contains("forbidden"), "the operator hit a permission it lacks:\n{logs}");
    let leaked = logs
        .match_indices("fbk_admin_")
        .any(|(i, _)| logs[i + 10..].chars().take(20).filter(|c| c.is_ascii_alphanumeric()).count() == 20);
    assert!(!leaked, "an admin key reached the operator's logs");
    assert_logs_clean(logs, extra, &[]);
}

/// `helm install --wait` with the defaults (two replicas, cluster-wide RBAC) and the operator image built from
/// the Dockerfile, in a namespace enforcing the restricted Pod Security Standard; leader election between the
/// real pods and a takeover when the leader's pod is killed; `helm test`; `helm uninstall`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_runs_two_operator_replicas_and_helm_test_on_real_pods() {
    let _cluster = exclusive_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let Some(node) = Node::get() else { return };
    let Some(helm) = Helm::find(&kc) else { return };
    let client = client(&kc).await;
    install_crds(&client).await;
    let ns = namespace(&client, "e2e-helm").await;
    let _cleanup = cleanup(&kc, &[&ns]);
    enforce_restricted(&client, &ns).await;
    let release = Release::new(&ns);
    let sets = image_values(&node);

    // `--wait` returns once both replicas are Ready: the standby too (a readiness that waited for the Lease
    // would hang here until the timeout).
    let started = std::time::Instant::now();
    let out = helm.ok(&with_sets(&["install", &release.name, CHART, "-n", &ns, "--wait", "--timeout", "3m"], &sets));
    eprintln!("helm install --wait: both operator replicas Ready after {:.1} s", started.elapsed().as_secs_f64());
    assert!(out.contains("STATUS: deployed") && out.contains("It watches every namespace"), "{out}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let operator_deployment = deployments.get(&release.fullname).await.unwrap();
    assert_eq!(operator_deployment.status.unwrap().ready_replicas, Some(2), "two replicas Ready");
    assert!(Api::<ClusterRole>::all(client.clone()).get_opt(&release.fullname).await.unwrap().is_some());

    // One pod leads, the other waits; both are Ready.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let selector = format!("app.kubernetes.io/instance={}", release.name);
    let operator_pods = || {
        let pods = pods.clone();
        let selector = selector.clone();
        async move {
            let mut list = pods.list(&ListParams::default().labels(&selector)).await.unwrap().items;
            list.retain(|p| p.labels().get("app.kubernetes.io/component").map(String::as_str) != Some("helm-test"));
            list
        }
    };
    let leader = wait_for(Duration::from_secs(60), "a leader", || lease_holder(&client, &ns, &release.fullname)).await;
    let names: Vec<String> = operator_pods().await.iter().map(|p| p.name_any()).collect();
    assert!(names.contains(&leader), "the Lease is held by a pod of the release: {leader} in {names:?}");
    let standby = names.iter().find(|n| **n != leader).unwrap().clone();
    let logs = pods.logs(&standby, &Default::default()).await.unwrap();
    assert!(logs.contains("waiting for leadership"), "{logs}");

    // `helm test`: its Pod runs kubectl with its own token until the operator made the test API pod Ready.
    let started = std::time::Instant::now();
    let (ok, out, err) = helm.run(&["test", &release.name, "-n", &ns, "--timeout", "4m"]);
    assert!(ok && out.contains("Phase:          Succeeded"), "helm test failed:\n{out}\n{err}");
    eprintln!("helm test passed after {:.1} s", started.elapsed().as_secs_f64());
    // Passed tests clean up after themselves (hook-succeeded), and the operator's objects go with the config.
    let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), &ns);
    assert!(configs.get_opt(&release.test_name()).await.unwrap().is_none(), "the test FaxPluginConfig was deleted");

    // `helm upgrade --wait` with a changed pod template rolls both replicas: each new pod must become Ready
    // while the old leader still holds the Lease (a readiness tied to leadership deadlocked here).
    let started = std::time::Instant::now();
    let mut upgrade = vec!["upgrade", release.name.as_str(), CHART, "-n", ns.as_str(), "--wait", "--timeout", "3m"];
    upgrade.extend(["--set", "podAnnotations.rolled=one"]);
    helm.ok(&with_sets(&upgrade, &sets));
    eprintln!("helm upgrade --wait (rolling both replicas): {:.1} s", started.elapsed().as_secs_f64());
    let leader = wait_for(Duration::from_secs(60), "a leader after the upgrade", || {
        let (client, ns, lease) = (client.clone(), ns.clone(), release.fullname.clone());
        async move {
            let holder = lease_holder(&client, &ns, &lease).await?;
            let pods = Api::<Pod>::namespaced(client.clone(), &ns);
            let pod = pods.get_opt(&holder).await.ok()??;
            (pod.metadata.deletion_timestamp.is_none()
                && pod.annotations().get("rolled").map(String::as_str) == Some("one"))
            .then_some(holder)
        }
    })
    .await;
    wait_for(Duration::from_secs(90), "two Ready upgraded operator pods", || async {
        let ready = operator_pods()
            .await
            .iter()
            .filter(|p| {
                pod_ready(p)
                    && p.metadata.deletion_timestamp.is_none()
                    && p.annotations().get("rolled").map(String::as_str) == Some("one")
            })
            .count();
        (ready == 2).then_some(())
    })
    .await;

    // Draining the leader's node evicts its pod through the Eviction API, which the PDB (minAvailable 1)
    // allows only because the standby is Ready. It releases the Lease on SIGTERM, another replica leads at
    // once, and the Deployment's replacement makes two again. (A leader killed without a chance to step down
    // is the canary test's case: there the Lease has to expire.)
    pods.evict(&leader, &kube::api::EvictParams::default()).await.expect("the PDB allows evicting the leader");
    let started = std::time::Instant::now();
    let new_leader = wait_for(Duration::from_secs(60), "the standby to lead", || {
        let (client, ns, lease, leader) = (client.clone(), ns.clone(), release.fullname.clone(), leader.clone());
        async move { lease_holder(&client, &ns, &lease).await.filter(|h| *h != leader) }
    })
    .await;
    eprintln!("leader pod deleted: {new_leader} leads after {:.1} s", started.elapsed().as_secs_f64());
    // The deleted leader stepped down on SIGTERM: the standby or the Deployment's replacement took over.
    assert_ne!(new_leader, leader);
    wait_for(Duration::from_secs(90), "two Ready operator pods again", || async {
        let ready = operator_pods().await.iter().filter(|p| pod_ready(p) && p.name_any() != leader).count();
        (ready == 2).then_some(())
    })
    .await;
    assert_operator_logs_clean(&namespace_logs(&client, &ns).await, &[]);

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
/// own), while the operator pod on that token serves the watched one and `helm test` passes there. `helm
/// test` fails when the API pod cannot start (an image the node does not have).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_release_reads_secrets_only_where_it_works() {
    let _cluster = shared_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let Some(node) = Node::get() else { return };
    let Some(helm) = Helm::find(&kc) else { return };
    let client = client(&kc).await;
    install_crds(&client).await;
    let op_ns = namespace(&client, "e2e-helm-op").await;
    let fax_ns = namespace(&client, "e2e-helm-fax").await;
    let other_ns = namespace(&client, "e2e-helm-other").await;
    let _cleanup = cleanup(&kc, &[&op_ns, &fax_ns, &other_ns]);
    for ns in [&op_ns, &fax_ns, &other_ns] {
        enforce_restricted(&client, ns).await;
        put_secret(&client, ns, "someone-elses", &[("password", "not-for-the-operator")]).await;
    }
    let release = Release::new(&op_ns);
    let watch = format!("watchNamespace={fax_ns}");
    let mut sets = image_values(&node);
    // An API image the node does not have: the test API pod cannot start.
    sets.retain(|s| !s.starts_with("tests.apiImage="));
    sets.extend([
        watch,
        "replicaCount=1".into(),
        "tests.apiImage=localhost/faxbot-api:does-not-exist".into(),
        "tests.timeoutSeconds=20".into(),
    ]);
    helm.ok(&with_sets(&["install", &release.name, CHART, "-n", &op_ns, "--wait", "--timeout", "3m"], &sets));
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

    // The API pod cannot start: the resources never become Ready, the Pod fails, and so does `helm test`.
    let (ok, out, err) = helm.run(&["test", &release.name, "-n", &op_ns, "--timeout", "3m"]);
    assert!(!ok, "helm test must fail when the API pod cannot start:\n{out}\n{err}");

    // `helm upgrade` with the real image: `helm test` passes.
    let fixed = format!("tests.apiImage={}", node.api_image);
    helm.ok(&[
        "upgrade",
        &release.name,
        CHART,
        "-n",
        &op_ns,
        "--reuse-values",
        "--set",
        &fixed,
        "--set",
        "tests.timeoutSeconds=180",
        "--wait",
    ]);
    let (ok, out, err) = helm.run(&["test", &release.name, "-n", &op_ns, "--timeout", "4m"]);
    assert!(ok && out.contains("Phase:          Succeeded"), "helm test failed:\n{out}\n{err}");
    let mut logs = namespace_logs(&client, &op_ns).await;
    logs.push_str(&namespace_logs(&client, &fax_ns).await);
    assert_operator_logs_clean(&logs, &["not-for-the-operator"]);
    helm.ok(&["uninstall", &release.name, "-n", &op_ns, "--wait", "--timeout", "2m"]);
    assert!(Api::<Role>::namespaced(client.clone(), &fax_ns).get_opt(&release.fullname).await.unwrap().is_none());
}
