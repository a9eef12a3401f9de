//! The edges of canary rollouts, on real pods, with the capacity invariant sampled every 200 ms throughout:
//! the ready API pods (not terminating) never fall below `replicas` because of a rollout.
//!
//! One test walks the scenarios in order on one config (two replicas on PostgreSQL, the simulated line, a
//! steady stream of faxes through the Service), because each starts from where the last one left it:
//! (a) a 50 % then 100 % canary under load is promoted (stable empties only behind ready canary pods, the
//!     promotion keeps the canary until the new stable pods are ready), kstatus InProgress then Current;
//! (b) a canary whose pods never become ready (an image that does not exist): stable untouched, rolled back
//!     at the progress deadline, kstatus Failed and Argo CD Degraded;
//! (c) the stable Deployment deleted after that rollback: recreated at the stable revision, failedRevisions
//!     kept, the failed revision not deployed;
//! (d) `retry` runs the rolled-back revision through a fresh canary once; reverting the spec is Ready again;
//! (e) `abort: true` rolls back the revision it was set for; a fix pushed while it is still set gets its own
//!     canary, and `promote: true` committed with it promotes it;
//! (f) a pause three times longer than the progress deadline is promoted, with the stable Deployment deleted
//!     mid-canary (recreated at the stable revision) and a referenced Secret deleted and recreated (the canary
//!     held, stable back to full size);
//! (g) a `serviceAccountName` change with `urgentFeatureFlags` goes through a canary, not at once;
//! (h) a HorizontalPodAutoscaler targeting the config scales it to 3 during a canary: no new revision, promoted
//!     on 3 pods.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faxbot_crds::{FaxPluginConfig, FaxProvider, RolloutStatus};
use faxbot_operator::names;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};

use crate::canary::{Seen, load};
use crate::pods::pod_database;
use crate::support::*;

const ADMIN: &str = "fbk_admin_edges-e2e-admin-key-8c41";
const PEPPER_VALUE: &str = "edges-e2e-pepper-90d2";
const LONG: Duration = Duration::from_secs(240);
const REPLICAS: usize = 2;

/// The knobs the scenarios turn.
#[derive(Clone)]
struct Knobs {
    image: String,
    steps: Value,
    deadline: &'static str,
    abort: bool,
    promote: bool,
    retry: Option<&'static str>,
    urgent: bool,
    service_account: Option<&'static str>,
}

fn config(k: &Knobs) -> Value {
    let mut rollout = json!({"strategy": "Canary", "steps": k.steps, "abort": k.abort, "promote": k.promote,
        "urgentFeatureFlags": k.urgent,
        // Two pods each side on a busy two-core node: latency is not what these scenarios are about.
        "analysis": {"interval": "1s", "window": "5s", "minSamples": 4, "maxFailedChecks": 3,
                     "maxNoDataChecks": 120, "progressDeadline": k.deadline,
                     "maxErrorRatePercent": 5, "maxLatencyIncreasePercent": 1000, "minLatencyIncreaseMs": 2000}});
    if let Some(r) = k.retry {
        rollout["retry"] = r.into();
    }
    let mut api = json!({"image": k.image, "replicas": REPLICAS,
        "database": {"urlSecretRef": {"name": "db", "key": "url"}}});
    if let Some(sa) = k.service_account {
        api["serviceAccountName"] = sa.into();
    }
    json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxPluginConfig", "metadata": {"name": "edge"},
        "spec": {"apiServer": api, "slots": {"outbound": ["line"], "auth": "keys"}, "rollout": rollout}})
}

fn line(latency_ms: u64) -> Value {
    json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxProvider", "metadata": {"name": "line"},
        "spec": {"plugin": "test", "settings": {"deliveryLatencyMs": latency_ms}}})
}

/// What the capacity sampler saw.
#[derive(Default)]
struct Capacity {
    samples: usize,
    lowest: Option<usize>,
    breaches: Vec<String>,
}

/// Samples the config's ready, non-terminating API pods every 200 ms until `stop`.
/// While `armed` is false (the test itself deletes the stable Deployment) nothing is recorded.
fn sample_capacity(
    client: kube::Client,
    ns: String,
    stop: Arc<AtomicBool>,
    armed: Arc<AtomicBool>,
    seen: Arc<Mutex<Capacity>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if !armed.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let pods = api_pods(&client, &ns, "edge").await;
            let ready = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p)).count();
            {
                let mut c = seen.lock().unwrap();
                c.samples += 1;
                c.lowest = Some(c.lowest.map_or(ready, |l| l.min(ready)));
                if ready < REPLICAS {
                    let names: Vec<String> = pods
                        .iter()
                        .map(|p| {
                            format!(
                                "{}{}{}",
                                p.metadata.name.clone().unwrap_or_default(),
                                if pod_ready(p) { " ready" } else { "" },
                                if p.metadata.deletion_timestamp.is_some() { " terminating" } else { "" }
                            )
                        })
                        .collect();
                    c.breaches.push(format!("at {:.1} s: {ready} ready: {names:?}", started.elapsed().as_secs_f64()));
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// The `gitops-health` tool (tools/gitops-health), built once by scripts/gitops-health-bin.sh.
fn health_tool() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gitops-health-bin.sh");
    let out = Command::new(script).stdin(Stdio::null()).output().expect("run scripts/gitops-health-bin.sh");
    assert!(out.status.success(), "gitops-health-bin.sh: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().lines().last().unwrap())
}

/// What kstatus (`["kstatus"]`) or Argo CD's health check (`["argocd", <lua>]`) says of the live config.
async fn health(tool: &Path, sub: &[&str], configs: &Api<FaxPluginConfig>) -> (String, String) {
    use std::io::Write;
    let mut object = serde_json::to_value(configs.get("edge").await.unwrap()).unwrap();
    object["apiVersion"] = "fax.faxbot.io/v1alpha1".into();
    object["kind"] = "FaxPluginConfig".into();
    let mut child = Command::new(tool)
        .args(sub)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(object.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gitops-health {sub:?}: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["status"].as_str().unwrap_or_default().to_string(), v["message"].as_str().unwrap_or_default().to_string())
}

async fn rollout(configs: &Api<FaxPluginConfig>) -> Option<RolloutStatus> {
    configs.get("edge").await.ok()?.status?.rollout
}

async fn revision_of(deployments: &Api<Deployment>, name: &str) -> Option<String> {
    faxbot_operator::status::deployment_revision(&deployments.get_opt(name).await.ok()??)
}

async fn wait_rollout<F: Fn(&RolloutStatus) -> bool>(
    configs: &Api<FaxPluginConfig>,
    what: &str,
    check: F,
) -> RolloutStatus {
    let deadline = Instant::now() + LONG;
    loop {
        if let Some(r) = rollout(configs).await
            && check(&r)
        {
            return r;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {:?}", rollout(configs).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits for the stable Deployment to exist again (not terminating) at `revision`.
async fn stable_recreated_at(deployments: &Api<Deployment>, name: &str, revision: &str) {
    wait_for(LONG, "the stable Deployment recreated at the stable revision", || async {
        let d = deployments.get_opt(name).await.ok()??;
        d.metadata.deletion_timestamp.is_none().then_some(())?;
        (faxbot_operator::status::deployment_revision(&d)? == revision).then_some(())
    })
    .await;
}

async fn wait_ready(configs: &Api<FaxPluginConfig>, what: &str) -> String {
    wait_for(LONG, what, || {
        let configs = configs.clone();
        async move {
            let status = configs.get("edge").await.ok()?.status?;
            status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())?;
            status.observed_revision
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canary_edges_keep_capacity_and_tell_gitops_the_truth() {
    let _cluster = shared_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let Some(node) = Node::get() else { return };
    let tool = health_tool();
    let argocd_lua =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/faxbot-operator/argocd/health-faxpluginconfig.lua");
    let client = client(&kc).await;
    install_crds(&client).await;
    let ns = namespace(&client, "edges").await;
    let _cleanup = cleanup(&kc, &[&ns]);
    enforce_restricted(&client, &ns).await;
    let db_url = pod_database().await;
    put_secret(&client, &ns, "admin", &[("adminKey", ADMIN), ("pepper", PEPPER_VALUE)]).await;
    put_secret(&client, &ns, "db", &[("url", &db_url)]).await;
    apply_json::<FaxProvider>(&client, &ns, line(100)).await.unwrap();
    apply_keys_provider(&client, &ns).await;
    let two_steps = json!([{"weight": 50, "pause": "3s"}, {"weight": 100, "pause": "3s"}]);
    let mut knobs = Knobs {
        image: node.api_image.clone(),
        steps: two_steps.clone(),
        deadline: "2m",
        abort: false,
        promote: false,
        retry: None,
        urgent: false,
        service_account: None,
    };
    let apply = |k: Knobs| {
        let client = client.clone();
        let ns = ns.clone();
        async move { apply_json::<FaxPluginConfig>(&client, &ns, config(&k)).await.unwrap() }
    };
    apply(knobs.clone()).await;
    let operator = Operator::start(&kc, &ns, "op-edges");
    let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let stable_name = names::api_name("edge");
    let canary_name = names::canary_name("edge");
    wait_ready(&configs, "the first revision Ready").await;
    assert_eq!(health(&tool, &["kstatus"], &configs).await.0, "Current");

    let api = Arc::new(FaxApi::of(&client, &ns, "edge", ADMIN).await.one_connection_per_request());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let traffic = load(api.clone(), stop.clone(), sent.clone(), seen.clone());
    let capacity = Arc::new(Mutex::new(Capacity::default()));
    let armed = Arc::new(AtomicBool::new(true));
    let sampler = sample_capacity(client.clone(), ns.clone(), stop.clone(), armed.clone(), capacity.clone());
    // Re-arms the sampler once the pods are back to full capacity after the test's own deletion.
    let rearm = || {
        let (client, ns, armed) = (client.clone(), ns.clone(), armed.clone());
        async move {
            wait_for(LONG, "capacity restored", || async {
                let pods = api_pods(&client, &ns, "edge").await;
                let ready = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p)).count();
                (ready >= REPLICAS).then_some(())
            })
            .await;
            armed.store(true, Ordering::Relaxed);
        }
    };

    // (a) 50 % then 100 % under load, promoted.
    apply_json::<FaxProvider>(&client, &ns, line(150)).await.unwrap();
    let mid = wait_rollout(&configs, "a canary running", |r| r.canary_revision.is_some()).await;
    let r1 = mid.canary_revision.clone().unwrap();
    let (kstatus, _) = health(&tool, &["kstatus"], &configs).await;
    assert_eq!(kstatus, "InProgress", "mid-canary");
    assert_eq!(health(&tool, &["argocd", argocd_lua], &configs).await.0, "Progressing");
    let full = wait_rollout(&configs, "the 100 % step with stable emptied", |r| {
        (r.requested_weight == 100 && r.stable_replicas == 0) || r.stable_revision == r1
    })
    .await;
    assert_eq!((full.requested_weight, full.canary_replicas), (100, REPLICAS as i32), "{full:?}");
    wait_rollout(&configs, "promotion", |r| r.phase == "Stable" && r.stable_revision == r1).await;
    assert_eq!(wait_ready(&configs, "r1 live everywhere").await, r1);
    assert!(deployments.get_opt(&canary_name).await.unwrap().is_none(), "the canary goes once stable is ready");
    assert_eq!(health(&tool, &["kstatus"], &configs).await.0, "Current");
    assert_eq!(health(&tool, &["argocd", argocd_lua], &configs).await.0, "Healthy");
    eprintln!("edges (a): 100 % step promoted; capacity lowest so far {:?}", capacity.lock().unwrap().lowest);

    // (a2) A Secret rotation (the database URL, textually new): the generation does not move, so `kubectl wait
    // --for=condition=Ready` alone could return on the old Ready. The documented two waits cannot.
    let before_rotation = configs.get("edge").await.unwrap().status.unwrap();
    assert_eq!(before_rotation.secret_versions.len(), 2, "admin and db: {:?}", before_rotation.secret_versions);
    let rotated = put_secret(&client, &ns, "db", &[("url", &format!("{db_url}?application_name=faxbot-edges"))]).await;
    let rv = rotated.metadata.resource_version.clone().unwrap();
    let for_rv = format!("--for=jsonpath={{.status.secretVersions.db}}={rv}");
    kubectl(&kc, &["-n", &ns, "wait", "faxpluginconfig/edge", &for_rv, "--timeout=120s"]).await;
    kubectl(&kc, &["-n", &ns, "wait", "faxpluginconfig/edge", "--for=condition=Ready", "--timeout=240s"]).await;
    let after_rotation = configs.get("edge").await.unwrap().status.unwrap();
    let rotated_revision = after_rotation.observed_revision.clone().unwrap();
    assert_ne!(rotated_revision, r1, "Ready returned for the rotated credentials, not the old revision");
    assert_eq!(after_rotation.desired_revision.as_deref(), Some(rotated_revision.as_str()));
    for pod in api_pods(&client, &ns, "edge").await.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        assert_eq!(
            pod.metadata.labels.as_ref().and_then(|l| l.get(names::REVISION_LABEL)),
            Some(&rotated_revision),
            "every pod runs the rotated revision when the waits return"
        );
    }
    let r1 = rotated_revision;

    // (b) A canary whose pods never become ready: stable untouched, rolled back at the deadline.
    let stable_before = deployments.get(&stable_name).await.unwrap();
    knobs.steps = json!([{"weight": 50, "pause": "3s"}]);
    knobs.deadline = "20s";
    knobs.image = "localhost/faxbot-does-not-exist:0".into();
    apply(knobs.clone()).await;
    let bad = wait_rollout(&configs, "the broken canary", |r| r.canary_revision.as_ref().is_some_and(|c| *c != r1))
        .await
        .canary_revision
        .unwrap();
    let rolled = wait_rollout(&configs, "the rollback at the deadline", |r| r.phase == "RolledBack").await;
    assert!(rolled.last_rollback.as_deref().unwrap_or_default().contains("deadline"), "{rolled:?}");
    assert!(rolled.failed_revisions.contains(&bad));
    let stable_after = deployments.get(&stable_name).await.unwrap();
    let image =
        |d: &Deployment| d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).map(|p| p.containers[0].image.clone());
    assert_eq!(image(&stable_after), image(&stable_before), "the canary's image never reaches stable");
    assert_eq!(stable_after.metadata.generation, stable_before.metadata.generation, "stable never scaled down");
    let (kstatus, message) = health(&tool, &["kstatus"], &configs).await;
    assert_eq!(kstatus, "Failed", "after a rollback: {message}");
    assert_eq!(health(&tool, &["argocd", argocd_lua], &configs).await.0, "Degraded");
    wait_for(LONG, "the broken canary removed", || async {
        deployments.get_opt(&canary_name).await.ok()?.is_none().then_some(())
    })
    .await;

    // (c) The stable Deployment deleted after the rollback: recreated at the stable revision.
    armed.store(false, Ordering::Relaxed);
    deployments.delete(&stable_name, &DeleteParams::foreground()).await.unwrap();
    stable_recreated_at(&deployments, &stable_name, &r1).await;
    rearm().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rollout(&configs).await.unwrap();
    assert!(after.failed_revisions.contains(&bad), "failedRevisions kept: {after:?}");
    assert_eq!(revision_of(&deployments, &stable_name).await.as_deref(), Some(r1.as_str()));
    assert!(deployments.get_opt(&canary_name).await.unwrap().is_none(), "the failed revision is not deployed");

    // (d) retry: the rolled-back revision runs through a fresh canary once more (and fails again).
    knobs.retry = Some("after-the-image-is-pushed");
    apply(knobs.clone()).await;
    wait_for(LONG, "the retried canary", || async {
        (revision_of(&deployments, &canary_name).await? == bad).then_some(())
    })
    .await;
    let again = wait_rollout(&configs, "the retry rolled back again", |r| {
        r.phase == "RolledBack" && r.retry_observed.as_deref() == Some("after-the-image-is-pushed")
    })
    .await;
    assert!(again.failed_revisions.contains(&bad), "{again:?}");
    // Revert: the stable revision again, Ready.
    knobs.image = node.api_image.clone();
    apply(knobs.clone()).await;
    assert_eq!(wait_ready(&configs, "the revert Ready").await, r1);
    assert_eq!(health(&tool, &["kstatus"], &configs).await.0, "Current");

    // (e) abort applies to the revision it was set for; the fix pushed after it gets its own canary.
    knobs.steps = json!([{"weight": 50}]);
    knobs.deadline = "2m";
    apply(knobs.clone()).await;
    apply_json::<FaxProvider>(&client, &ns, line(200)).await.unwrap();
    let r3 = wait_rollout(&configs, "a held canary", |r| r.phase == "Paused").await.canary_revision.unwrap();
    assert_eq!(health(&tool, &["argocd", argocd_lua], &configs).await.0, "Suspended");
    knobs.abort = true;
    apply(knobs.clone()).await;
    let aborted = wait_rollout(&configs, "the abort", |r| r.failed_revisions.contains(&r3)).await;
    assert_eq!(aborted.abort_for.as_deref(), Some(r3.as_str()));
    apply_json::<FaxProvider>(&client, &ns, line(250)).await.unwrap();
    let r4 = wait_rollout(&configs, "the fix's canary", |r| r.canary_revision.as_ref().is_some_and(|c| *c != r3))
        .await
        .canary_revision
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = rollout(&configs).await.unwrap();
    assert_eq!(held.canary_revision.as_deref(), Some(r4.as_str()), "not aborted by the old gate: {held:?}");
    assert!(!held.failed_revisions.contains(&r4));
    knobs.promote = true;
    apply(knobs.clone()).await;
    wait_rollout(&configs, "the fix promoted", |r| r.phase == "Stable" && r.stable_revision == r4).await;
    assert_eq!(wait_ready(&configs, "r4 live").await, r4);

    // (f) A 60 s pause against a 20 s deadline; the stable Deployment and a Secret deleted mid-canary.
    knobs.abort = false;
    knobs.promote = false;
    knobs.steps = json!([{"weight": 50, "pause": "60s"}]);
    knobs.deadline = "20s";
    apply(knobs.clone()).await;
    apply_json::<FaxProvider>(&client, &ns, line(300)).await.unwrap();
    wait_rollout(&configs, "the long pause started", |r| r.canary_revision.is_some() && r.step_started_at.is_some())
        .await;
    armed.store(false, Ordering::Relaxed);
    deployments.delete(&stable_name, &DeleteParams::foreground()).await.unwrap();
    stable_recreated_at(&deployments, &stable_name, &r4).await;
    rearm().await;
    // The admin Secret goes (an external secrets tool recreating it): the spec is invalid, the canary held.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets.delete("admin", &DeleteParams::default()).await.unwrap();
    wait_for(LONG, "the canary held while the spec is invalid", || async {
        let status = configs.get("edge").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "SecretNotFound" && ready.message.contains("held")).then_some(())?;
        let stable = deployments.get_opt(&stable_name).await.ok()??;
        (stable.spec?.replicas? == REPLICAS as i32).then_some(())?;
        deployments.get_opt(&canary_name).await.ok()?.map(|_| ())
    })
    .await;
    assert_eq!(health(&tool, &["kstatus"], &configs).await.0, "Failed", "invalid is Failed for kstatus");
    let mut secret = Secret {
        metadata: kube::api::ObjectMeta { name: Some("admin".into()), ..Default::default() },
        string_data: Some([("adminKey", ADMIN), ("pepper", PEPPER_VALUE)].map(|(k, v)| (k.into(), v.into())).into()),
        ..Default::default()
    };
    secret.metadata.namespace = Some(ns.clone());
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    let long_pause_started = Instant::now();
    let promoted = wait_rollout(&configs, "the long pause promoted", |r| {
        r.phase == "Stable" && r.stable_revision != r4 || r.phase == "RolledBack"
    })
    .await;
    assert_eq!(promoted.phase, "Stable", "a pause longer than the deadline is not a lack of progress: {promoted:?}");
    assert!(long_pause_started.elapsed() > Duration::from_secs(20), "it really paused past the deadline");
    let r5 = wait_ready(&configs, "r5 live").await;

    // (g) serviceAccountName with urgentFeatureFlags: not a flag, so a canary.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let sa = ServiceAccount {
        metadata: kube::api::ObjectMeta { name: Some("faxbot-alt".into()), ..Default::default() },
        ..Default::default()
    };
    accounts.create(&PostParams::default(), &sa).await.unwrap();
    knobs.urgent = true;
    knobs.steps = json!([{"weight": 50, "pause": "2s"}]);
    knobs.deadline = "2m";
    apply(knobs.clone()).await;
    knobs.service_account = Some("faxbot-alt");
    apply(knobs.clone()).await;
    let canary = wait_rollout(&configs, "a canary for the service account change", |r| {
        r.canary_revision.is_some() || r.stable_revision != r5
    })
    .await;
    assert!(canary.canary_revision.is_some(), "serviceAccountName is not a flag: {canary:?}");
    let r6 = wait_rollout(&configs, "the service account change promoted", |r| {
        r.phase == "Stable" && r.stable_revision != r5
    })
    .await
    .stable_revision;
    wait_ready(&configs, "r6 live").await;

    // (h) A real HorizontalPodAutoscaler scales the config (its scale subresource) during a canary. With
    // minReplicas above the current count the HPA controller scales without metrics (none run here). The
    // new count is split between stable and canary, the canary is not restarted (replicas are no revision)
    // and is promoted on 3 pods.
    knobs.urgent = false;
    knobs.steps = json!([{"weight": 50, "pause": "40s"}]);
    apply(knobs.clone()).await;
    apply_json::<FaxProvider>(&client, &ns, line(350)).await.unwrap();
    let r7 = wait_rollout(&configs, "the canary before scaling", |r| {
        r.canary_revision.is_some() && r.step_started_at.is_some()
    })
    .await
    .canary_revision
    .unwrap();
    assert_ne!(r7, r6);
    apply_json::<HorizontalPodAutoscaler>(
        &client,
        &ns,
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "edge"},
            "spec": {"scaleTargetRef": {"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxPluginConfig", "name": "edge"},
                     "minReplicas": 3, "maxReplicas": 3,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                  "target": {"type": "Utilization", "averageUtilization": 80}}}]}}),
    )
    .await
    .unwrap();
    wait_for(LONG, "the HPA scaled the config to 3", || async {
        (configs.get("edge").await.ok()?.spec.api_server.replicas == 3).then_some(())
    })
    .await;
    let during = rollout(&configs).await.unwrap();
    assert_eq!(during.canary_revision.as_deref(), Some(r7.as_str()), "scaling is not a new revision: {during:?}");
    wait_rollout(&configs, "promoted on 3 pods", |r| r.phase == "Stable" && r.stable_revision == r7).await;
    assert_eq!(wait_ready(&configs, "r7 live on 3 pods").await, r7);
    let status = configs.get("edge").await.unwrap().status.unwrap();
    assert_eq!((status.replicas, status.ready_replicas), (3, 3), "{status:?}");
    assert_eq!(deployments.get(&stable_name).await.unwrap().spec.unwrap().replicas, Some(3));
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
    let hpa = hpas.get("edge").await.unwrap().status.unwrap();
    assert_eq!(hpa.current_replicas, Some(3), "the HPA reads the scale subresource: {hpa:?}");

    stop.store(true, Ordering::Relaxed);
    for t in traffic {
        let _ = t.await;
    }
    let _ = sampler.await;
    let (samples, lowest, breaches) = {
        let c = capacity.lock().unwrap();
        (c.samples, c.lowest, c.breaches.clone())
    };
    eprintln!(
        "edges: {} capacity samples, lowest {:?} ready of {REPLICAS}; {} faxes accepted",
        samples,
        lowest,
        sent.load(Ordering::Relaxed)
    );
    assert!(samples > 100, "the sampler ran");
    assert!(breaches.is_empty(), "ready API pods fell below {REPLICAS}: {breaches:?}");
    assert_logs_clean(&namespace_logs(&client, &ns).await, &[ADMIN, PEPPER_VALUE, &db_url], &["+15557650108"]);
    operator.assert_no_leaks(&[ADMIN, PEPPER_VALUE, &db_url]);
}
