//! The canary path of the FaxPluginConfig reconciler (strategy `Canary`): translate between the status and
//! [`crate::canary::plan`], scrape and judge when a check is due, make the Deployments match the decision,
//! and report it (status, conditions, Events, metrics).
//!
//! The stable Deployment keeps its pod template for the whole canary; only its replica count follows the
//! split. The canary Deployment runs the new revision's template. Promotion applies the new template to the
//! stable Deployment; a rollback restores the stable count. Either way the canary goes only once stable's
//! pods are ready again ([`plan::targets`]): ready capacity never drops below `replicas` because of a
//! rollout.

use std::time::Duration;

use faxbot_crds::{
    AnalysisResult, ConditionStatus, FaxPluginConfig, FaxPluginConfigStatus, RolloutStatus, set_condition,
};
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use crate::apply::{Context, apply, publish};
use crate::canary::Rollout;
use crate::canary::analysis::{self, Verdict};
use crate::canary::plan::{self, Action, Phase, RolloutState};
use crate::metrics::ObjectLabels;
use crate::status::{Outcome, config_status, deployment_revision};
use crate::validate::{Desired, Invalid};
use crate::{Error, build, names};

fn to_duration(ts: Timestamp) -> Duration {
    Duration::from_millis(u64::try_from(ts.as_millisecond()).unwrap_or(0))
}

fn to_rfc3339(d: Duration) -> String {
    Timestamp::from_millisecond(i64::try_from(d.as_millis()).unwrap_or(0)).map(|t| t.to_string()).unwrap_or_default()
}

fn parse_time(text: &Option<String>) -> Option<Duration> {
    text.as_deref().and_then(|t| t.parse::<Timestamp>().ok()).map(to_duration)
}

fn phase_from(text: &str) -> Phase {
    match text {
        "Progressing" => Phase::Progressing,
        "Paused" => Phase::Paused,
        "RolledBack" => Phase::RolledBack,
        _ => Phase::Stable,
    }
}

/// The step machine's state as kept in status; the stable revision is the Deployment's, whatever status says.
fn state_from(status: Option<&RolloutStatus>, stable_revision: &str) -> RolloutState {
    let Some(s) = status else { return RolloutState::stable(stable_revision) };
    RolloutState {
        phase: phase_from(&s.phase),
        stable_revision: stable_revision.to_string(),
        canary_revision: s.canary_revision.clone(),
        step: usize::try_from(s.current_step).unwrap_or(0),
        step_started_at: parse_time(&s.step_started_at),
        started_at: parse_time(&s.started_at).unwrap_or_default(),
        progress_at: parse_time(&s.progress_at).unwrap_or_default(),
        failed_checks: u32::try_from(s.failed_checks).unwrap_or(0),
        no_data_checks: u32::try_from(s.no_data_checks).unwrap_or(0),
        failed_revisions: s.failed_revisions.clone(),
        last_rollback: s.last_rollback.clone(),
        abort_for: s.abort_for.clone(),
        promote_for: s.promote_for.clone(),
        retry_seen: s.retry_observed.clone(),
    }
}

fn check_result(verdict: &Verdict, at: Duration) -> AnalysisResult {
    let m = verdict.measurement();
    let ms = |v: Option<f64>| v.map(|s| (s * 1_000_000.0).round() / 1000.0);
    AnalysisResult {
        time: to_rfc3339(at),
        verdict: verdict.as_str().into(),
        canary_error_rate_percent: (m.canary_error_rate * 1000.0).round() / 1000.0,
        stable_error_rate_percent: (m.stable_error_rate * 1000.0).round() / 1000.0,
        canary_latency_ms: ms(m.canary_latency),
        stable_latency_ms: ms(m.stable_latency),
        canary_submit_latency_ms: ms(m.canary_submit_latency),
        stable_submit_latency_ms: ms(m.stable_submit_latency),
        latency_ratio: m.worst_latency_ratio().map(|r| (r * 1000.0).round() / 1000.0),
        canary_samples: m.canary_samples as i64,
        stable_samples: m.stable_samples as i64,
    }
}

/// Ready pods of the config by `(revision, is canary)`, counted from the pods themselves: the weight the
/// Service really gives, and it does not wait for the Deployment's status to catch up.
async fn ready_pods(client: &kube::Client, ns: &str, name: &str) -> Result<BTreeMap<(String, bool), i32>, Error> {
    let selector = names::selector_labels(name).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut out = BTreeMap::new();
    for pod in pods.list(&ListParams::default().labels(&selector)).await?.items {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let labels = pod.metadata.labels.unwrap_or_default();
        if let (true, Some(revision)) = (ready, labels.get(names::REVISION_LABEL)) {
            let canary = labels.get(names::TRACK_LABEL).is_some_and(|t| t == "canary");
            *out.entry((revision.clone(), canary)).or_insert(0) += 1;
        }
    }
    Ok(out)
}

async fn scale(api: &Api<Deployment>, name: &str, replicas: i32) -> Result<(), Error> {
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

async fn remove(api: &Api<Deployment>, name: &str) -> Result<bool, Error> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether `desired` differs from the stable revision only in its feature flags: same image, pod settings and
/// credentials (the pod template's credential checksum), and the same providers in the runtime config (read
/// from the stable revision's ConfigMap, which pruning keeps).
async fn flags_only(
    ctx: &Context,
    config: &FaxPluginConfig,
    desired: &Desired,
    stable: &Deployment,
    stable_revision: &str,
) -> Result<bool, Error> {
    // Everything that reaches a pod besides the config document (volumes, service account, trust bundle,
    // proxies, ...) must be what stable runs: a PVC or IRSA role change is not a flag. A stable Deployment
    // from before this annotation existed goes through the canary.
    let stable_inputs = stable.metadata.annotations.as_ref().and_then(|a| a.get(names::POD_INPUTS_ANNOTATION));
    if stable_inputs != Some(&desired.pod_inputs) {
        return Ok(false);
    }
    let template = stable.spec.as_ref().map(|s| &s.template);
    let annotations = template.and_then(|t| t.metadata.as_ref()).and_then(|m| m.annotations.as_ref());
    if annotations.and_then(|a| a.get(names::CREDENTIALS_CHECKSUM_ANNOTATION)) != Some(&desired.credentials_checksum) {
        return Ok(false);
    }
    let wanted = build::deployment(config, desired);
    let container = |d: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>| {
        d.and_then(|t| t.spec.as_ref()).and_then(|s| s.containers.first().cloned())
    };
    let (Some(have), Some(want)) = (container(template), container(wanted.spec.as_ref().map(|s| &s.template))) else {
        return Ok(false);
    };
    // Env values that name the revision (its revision label, its Secret) differ by construction.
    let env = |c: &k8s_openapi::api::core::v1::Container| -> Vec<(String, Option<String>)> {
        c.env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.name != "FAXBOT_REVISION")
            .map(|e| (e.name, e.value))
            .collect()
    };
    // The API server defaults an unset pull policy; only a policy the spec sets is compared.
    let pull_policy_differs = want.image_pull_policy.is_some() && have.image_pull_policy != want.image_pull_policy;
    if have.image != want.image || have.resources != want.resources || pull_policy_differs || env(&have) != env(&want) {
        return Ok(false);
    }
    let ns = config.namespace().ok_or(Error::MissingNamespace)?;
    let cm_name = names::config_map_name(&config.name_any(), stable_revision);
    let Some(cm) =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(ctx.client.clone(), &ns).get_opt(&cm_name).await?
    else {
        return Ok(false);
    };
    let stable_config = cm
        .data
        .as_ref()
        .and_then(|d| d.get(names::CONFIG_KEY))
        .and_then(|json| serde_json::from_str::<faxbot_contract::RuntimeConfig>(json).ok());
    Ok(stable_config.is_some_and(|c| c.version == desired.runtime.version && c.providers == desired.runtime.providers))
}

/// What the spec gives the canary path this reconcile.
#[derive(Debug, Clone, Copy)]
pub enum Spec<'a> {
    /// The spec renders this revision.
    Valid(&'a Desired),
    /// The spec is refused; a canary in flight is held (see [`plan::Action::Hold`]).
    Invalid(&'a Invalid),
}

/// Writes the stable snapshot (best effort is not enough: without it a deleted stable Deployment could only
/// be recreated at the desired revision, so a failure fails the reconcile and is retried).
/// Announces a promotion or rollback to the config's webhook, if it has one ([`crate::notify`]). A signing
/// Secret that cannot be read means no notification (never an unsigned one the receiver would refuse or, worse,
/// accept), counted as failed.
async fn notify(
    ctx: &Context,
    config: &FaxPluginConfig,
    kind: &'static str,
    revision: &str,
    stable_revision: &str,
    message: String,
    now: Timestamp,
) {
    let Some(webhook) = config.spec.rollout.notifications.as_ref().and_then(|n| n.webhook.as_ref()) else { return };
    let ns = config.namespace().unwrap_or_default();
    let key = match &webhook.signing_secret_ref {
        None => None,
        Some(r) => {
            let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(ctx.client.clone(), &ns);
            let value = secrets.get_opt(&r.name).await.ok().flatten().and_then(|s| s.data?.get(&r.key).cloned());
            match value {
                Some(v) if !v.0.is_empty() => Some(v.0),
                _ => {
                    tracing::warn!(namespace = %ns, secret = %r.name, key = %r.key,
                        "the notification signing Secret key is missing; notification not sent");
                    ctx.metrics
                        .notifications
                        .get_or_create(&crate::metrics::NotificationLabels { result: "failed" })
                        .inc();
                    return;
                }
            }
        }
    };
    crate::notify::send(
        ctx.metrics.clone(),
        webhook.url.clone(),
        key,
        crate::notify::Notification {
            kind,
            namespace: ns,
            config: config.name_any(),
            uid: config.metadata.uid.clone().unwrap_or_default(),
            revision: revision.to_string(),
            stable_revision: stable_revision.to_string(),
            message,
            time: now.to_string(),
        },
    );
}

async fn snapshot(ctx: &Context, config: &FaxPluginConfig, stable: &Deployment) -> Result<(), Error> {
    let ns = config.namespace().ok_or(Error::MissingNamespace)?;
    if let Some(cm) = build::stable_snapshot(config, stable) {
        apply(&Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns), &cm).await?;
    }
    Ok(())
}

/// `validated` (the spec that `desired` was rendered from) with the status of `fresh` (the latest read).
/// Only the status may come from the fresh read: a spec edited since the validation would be built with the
/// old revision's name, so a new image could reach the stable Deployment labelled as the stable revision
/// (seen on real pods: a canary's missing image applied to stable at the canary's start). The newer spec
/// gets its own reconcile from the watch.
fn with_status_of(validated: &FaxPluginConfig, fresh: FaxPluginConfig) -> FaxPluginConfig {
    FaxPluginConfig { metadata: validated.metadata.clone(), spec: validated.spec.clone(), status: fresh.status }
}

/// Reconciles a config whose stable Deployment already runs `stable` under strategy Canary. Returns the
/// status to write and when to look again.
pub async fn reconcile(
    ctx: &Context,
    config: &FaxPluginConfig,
    spec: Spec<'_>,
    stable: Deployment,
    now: Timestamp,
) -> Result<(FaxPluginConfigStatus, Duration), Error> {
    let ns = config.namespace().ok_or(Error::MissingNamespace)?;
    let name = config.name_any();
    // The rollout state is in status, and the watch cache may not show this operator's last status write
    // yet: acting on that older state would, for example, recreate a canary just rolled back. Read it fresh.
    let fresh = Api::<FaxPluginConfig>::namespaced(ctx.client.clone(), &ns).get(&name).await?;
    let config = &with_status_of(config, fresh);
    let key = format!("{ns}/{name}");
    let labels = ObjectLabels { namespace: ns.clone(), name: name.clone() };
    let desired = match spec {
        Spec::Valid(d) => Some(d),
        Spec::Invalid(_) => None,
    };
    // An invalid spec may carry an unparsable rollout too: the defaults still bound the held canary.
    let rollout = match Rollout::from_spec(&config.spec.rollout) {
        Some(r) => r,
        None if desired.is_none() => Rollout::from_spec(&faxbot_crds::RolloutSpec {
            steps: vec![faxbot_crds::RolloutStep { weight: 100, pause: None }],
            ..Default::default()
        })
        .ok_or_else(|| Error::InvalidRollout(name.clone()))?,
        None => return Err(Error::InvalidRollout(name.clone())),
    };
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let stable_name = names::api_name(&name);
    let canary_name = names::canary_name(&name);
    let replicas = config.spec.api_server.replicas.max(1);
    let stable_revision = deployment_revision(&stable).unwrap_or_default();
    let previous = config.status.as_ref().and_then(|s| s.rollout.as_ref());
    let state = state_from(previous, &stable_revision);
    let at = to_duration(now);

    let canary = deployments.get_opt(&canary_name).await?;
    let canary_deployed = canary.as_ref().and_then(deployment_revision);
    let step_weight = rollout.policy.steps.get(state.step).map(|(w, _)| *w).unwrap_or(100);
    let (want_stable, want_canary) = plan::split(replicas, step_weight);
    let pods = ready_pods(&ctx.client, &ns, &name).await?;
    // The revision under test: the desired one, or while the spec is invalid the one in flight.
    let testing = desired.map(|d| d.revision.clone()).or_else(|| state.canary_revision.clone());
    let canary_pods_ready = testing.as_ref().and_then(|r| pods.get(&(r.clone(), true)).copied()).unwrap_or(0);
    let canary_ready = testing.is_some()
        && state.canary_revision == testing
        && canary_deployed == testing
        && canary_pods_ready >= want_canary
        && want_canary > 0;

    // A new canary starts without the previous one's measurements; a check is due every interval while the
    // canary under test is up.
    let mut last_check = previous.and_then(|p| p.last_check.clone());
    let last_check_at =
        last_check.as_ref().filter(|_| state.canary_revision == testing).and_then(|c| c.time.parse::<Timestamp>().ok());
    let due = last_check_at.is_none_or(|t| at.saturating_sub(to_duration(t)) >= rollout.interval);
    let verdict = match (&testing, canary_ready && due) {
        (Some(testing), true) => {
            let (window, reach) = match &rollout.prometheus {
                None => {
                    let (scrape, reach) = ctx.source.scrape(&ctx.client, &ns, &name).await?;
                    (ctx.source.window(&key, at, rollout.window, scrape), reach)
                }
                Some(source) => match ctx.source.read_prometheus(source, &ns, &name, rollout.window).await {
                    Ok(window) => (window, Default::default()),
                    Err(e) => {
                        // The error names the metric and Prometheus' reason, never a series value.
                        tracing::warn!(namespace = %ns, config = %name, error = %crate::redact::mask_numbers(&e),
                            "Prometheus did not answer the analysis queries");
                        let sides = [testing.as_str(), stable_revision.as_str()];
                        (Default::default(), crate::analysis_source::Reach::none_of(sides))
                    }
                },
            };
            let empty = Default::default();
            let canary_counters = window.get(testing).unwrap_or(&empty);
            // A 100 % step leaves no stable pod: no baseline to compare with.
            let stable_counters = (want_stable > 0).then(|| window.get(&stable_revision).unwrap_or(&empty));
            let verdict = analysis::judge(canary_counters, stable_counters, &rollout.thresholds);
            // Pods that could not be read at all are not "no traffic": say so.
            let unreachable = reach.unreachable(testing) || (want_stable > 0 && reach.unreachable(&stable_revision));
            let verdict = match verdict {
                analysis::Verdict::NoData(m) if unreachable => analysis::Verdict::Unavailable(m),
                v => v,
            };
            let m = verdict.measurement();
            ctx.metrics.canary_error_rate.get_or_create(&labels).set(m.canary_error_rate);
            if let Some(r) = m.worst_latency_ratio() {
                ctx.metrics.canary_latency_ratio.get_or_create(&labels).set(r);
            }
            tracing::info!(namespace = %ns, config = %name, verdict = ?verdict, "canary check");
            last_check = Some(check_result(&verdict, at));
            Some(verdict)
        }
        _ => None,
    };

    // A flags-only change marked urgent goes straight through (a canary already running for it too).
    let urgent = match desired {
        Some(d) if config.spec.rollout.urgent_feature_flags && d.revision != stable_revision => {
            flags_only(ctx, config, d, &stable, &stable_revision).await?
        }
        _ => false,
    };
    let tick = plan::Tick {
        desired: desired.map(|d| d.revision.as_str()),
        now: at,
        canary_ready,
        verdict: verdict.as_ref(),
        urgent,
    };
    let (next, action) = plan::step(&rollout.policy, &state, &tick);
    if verdict.is_none() && next.canary_revision.is_some() && next.canary_revision != state.canary_revision {
        // A fresh canary: the previous one's measurements say nothing about it. (After a rollback they stay,
        // as the record of why.)
        last_check = None;
    }

    // Replica counts: what the decision asks for, moderated so that ready capacity never drops.
    let current = (
        stable.spec.as_ref().and_then(|s| s.replicas).unwrap_or(replicas),
        canary.as_ref().and_then(|c| c.spec.as_ref()).and_then(|s| s.replicas).unwrap_or(0),
    );
    let want = match &action {
        Action::StableOnly | Action::RollBack { .. } | Action::Promote => (replicas, 0),
        Action::Canary { weight } => plan::split(replicas, *weight),
        Action::Hold => (replicas, current.1),
    };
    let ready_canary_track = pods.iter().filter(|((_, canary), _)| *canary).map(|(_, n)| *n).sum::<i32>();
    let ready_stable = pods.get(&(next.stable_revision.clone(), false)).copied().unwrap_or(0);
    let (stable_pods, canary_pods) = plan::targets(replicas, want, current, (ready_stable, ready_canary_track));
    let requested = match &action {
        Action::Canary { weight } => *weight,
        _ => 0,
    };

    // The stable side first: it only grows here or shrinks behind ready canary pods.
    match (&action, desired) {
        (Action::Promote, Some(d)) => {
            let promoted = apply(&deployments, &build::deployment(config, d)).await?;
            snapshot(ctx, config, &promoted).await?;
        }
        (Action::StableOnly, Some(d)) if d.revision == next.stable_revision => {
            apply(&deployments, &build::deployment(config, d)).await?;
        }
        _ if current.0 != stable_pods => scale(&deployments, &stable_name, stable_pods).await?,
        _ => {}
    }
    match (&action, desired) {
        (Action::Canary { .. }, Some(d)) => {
            if state.canary_revision.as_deref() != Some(d.revision.as_str()) && canary.is_none() {
                // What serves now, kept in case the stable Deployment is deleted while the canary runs.
                snapshot(ctx, config, &stable).await?;
            }
            apply(&deployments, &build::canary_deployment(config, d, canary_pods)).await?;
        }
        _ if canary_pods == 0 => {
            let removed = remove(&deployments, &canary_name).await?;
            if removed {
                ctx.source.forget(&key);
            }
        }
        _ if current.1 != canary_pods => scale(&deployments, &canary_name, canary_pods).await?,
        _ => {}
    }
    let testing_label = testing.clone().unwrap_or_default();
    match &action {
        Action::Canary { weight } if state.canary_revision != next.canary_revision => {
            publish(
                ctx,
                config,
                EventType::Normal,
                "CanaryStarted",
                format!("canary of revision {testing_label} started at {weight}% (stable {stable_revision})"),
                "Rollout",
            )
            .await;
        }
        Action::Canary { weight } if next.step != state.step => {
            publish(
                ctx,
                config,
                EventType::Normal,
                "CanaryStep",
                format!("canary of revision {testing_label} advanced to step {} ({weight}%)", next.step + 1),
                "Rollout",
            )
            .await;
        }
        Action::RollBack { reason } => {
            ctx.metrics.canary_rollbacks.get_or_create(&labels).inc();
            let rolled_back = state.canary_revision.clone().unwrap_or(testing_label.clone());
            tracing::warn!(namespace = %ns, config = %name, revision = %rolled_back, reason = %reason, "canary rolled back");
            let message = format!("revision {rolled_back} rolled back: {reason}; revision {stable_revision} serves");
            publish(ctx, config, EventType::Warning, "RolledBack", message.clone(), "Rollout").await;
            notify(ctx, config, "RolledBack", &rolled_back, &stable_revision, message, now).await;
        }
        Action::Promote => {
            let message = if urgent {
                format!("revision {testing_label} only changes feature flags (urgentFeatureFlags): applied at once")
            } else {
                format!("revision {testing_label} promoted to every replica")
            };
            publish(ctx, config, EventType::Normal, "Promoted", message.clone(), "Rollout").await;
            notify(ctx, config, "Promoted", &testing_label, &testing_label, message, now).await;
        }
        _ => {}
    }

    // Status: the stable Deployment's view, then the canary's conditions on top.
    let stable_now = deployments.get_opt(&stable_name).await?;
    let canary_now = deployments.get_opt(&canary_name).await?;
    let mut status = match spec {
        Spec::Valid(desired) => {
            config_status(config, Outcome::Applied { desired, deployment: stable_now.as_ref() }, now)
        }
        Spec::Invalid(invalid) => {
            config_status(config, Outcome::Invalid { invalid, deployment: stable_now.as_ref() }, now)
        }
    };
    // The pods listed before acting: new or removed pods take longer than this reconcile to become ready
    // or go, so a second listing would tell nothing more.
    let actual = match (&canary_now, &testing) {
        (Some(_), Some(testing)) => plan::actual_weight(
            pods.get(&(next.stable_revision.clone(), false)).copied().unwrap_or(0),
            pods.get(&(testing.clone(), true)).copied().unwrap_or(0),
        ),
        _ => 0.0,
    };
    status.canary_weight = actual.round() as i32;
    // The scale subresource reports every API pod of the config: an autoscaler must see the canary's too.
    if let Some(canary) = &canary_now {
        status.replicas += canary.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        status.ready_replicas += canary.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    }
    let generation = config.metadata.generation;
    let conditions = &mut status.conditions;
    match (next.phase, spec) {
        (_, Spec::Invalid(_)) => {
            // The validation conditions stand; say what became of the canary.
            if let (Some(rev), Action::Hold) = (&next.canary_revision, &action)
                && let Some(ready) = conditions.iter_mut().find(|c| c.type_ == "Ready")
            {
                ready.message = format!(
                    "{}; the canary of revision {rev} is held at step {} and stable is back to {replicas} pods until the spec is valid again",
                    ready.message,
                    next.step + 1
                );
            }
            if next.phase == Phase::RolledBack {
                status.phase = Some("RolledBack".into());
            }
        }
        (Phase::Progressing | Phase::Paused, Spec::Valid(desired)) => {
            let paused = next.phase == Phase::Paused;
            let check = last_check
                .as_ref()
                .map(|c| {
                    format!(
                        "; last check {} (error rate {}%, latency ratio {})",
                        c.verdict,
                        c.canary_error_rate_percent,
                        c.latency_ratio.map(|r| r.to_string()).unwrap_or_else(|| "n/a".into())
                    )
                })
                .unwrap_or_default();
            let message = format!(
                "canary of revision {} at step {} of {} ({requested}% requested, {actual:.0}% actual){}{check}; revision {} serves the rest",
                desired.revision,
                next.step + 1,
                rollout.policy.steps.len(),
                if paused { ", paused" } else { "" },
                next.stable_revision
            );
            let unavailable = last_check.as_ref().is_some_and(|c| c.verdict == "AnalysisUnavailable");
            let reason = match (paused, unavailable) {
                (_, true) => "AnalysisUnavailable",
                (true, false) => "CanaryPaused",
                (false, false) => "CanaryInProgress",
            };
            set_condition(conditions, "Ready", ConditionStatus::False, reason, &message, generation, now);
            set_condition(conditions, "Progressing", ConditionStatus::True, reason, &message, generation, now);
            set_condition(conditions, "Degraded", ConditionStatus::False, "AsExpected", "", generation, now);
            status.phase = Some(if paused { "Paused" } else { "Progressing" }.into());
            status.current_revision = Some(next.stable_revision.clone());
        }
        (Phase::RolledBack, Spec::Valid(desired)) => {
            let message = format!(
                "revision {} was rolled back ({}); revision {} serves; change the spec, or set spec.rollout.retry to a new value to try it again",
                desired.revision,
                next.last_rollback.clone().unwrap_or_default(),
                next.stable_revision
            );
            set_condition(conditions, "Ready", ConditionStatus::False, "RolledBack", &message, generation, now);
            set_condition(conditions, "Degraded", ConditionStatus::True, "RolledBack", &message, generation, now);
            set_condition(conditions, "Progressing", ConditionStatus::False, "RolledBack", &message, generation, now);
            status.phase = Some("RolledBack".into());
            status.current_revision = Some(next.stable_revision.clone());
        }
        (Phase::Stable, Spec::Valid(_)) if canary_now.is_some() => {
            // Promoted: the canary's pods keep serving until the new stable pods are ready.
            let message = format!(
                "revision {} promoted; {} canary pods serve until the stable Deployment's are ready",
                next.stable_revision, canary_pods
            );
            set_condition(conditions, "Ready", ConditionStatus::False, "Promoting", &message, generation, now);
            set_condition(conditions, "Progressing", ConditionStatus::True, "Promoting", &message, generation, now);
            status.phase = Some("Progressing".into());
        }
        (Phase::Stable, Spec::Valid(_)) => {}
    }
    ctx.metrics.canary_phase.get_or_create(&labels).set(match next.phase {
        Phase::Stable => 0,
        Phase::Progressing => 1,
        Phase::Paused => 2,
        Phase::RolledBack => 3,
    });
    ctx.metrics.canary_weight.get_or_create(&labels).set(actual);
    ctx.metrics.canary_step.get_or_create(&labels).set(i64::try_from(next.step).unwrap_or(0));
    ctx.metrics.canary_failed_checks.get_or_create(&labels).set(i64::from(next.failed_checks));
    status.rollout = Some(RolloutStatus {
        phase: next.phase.as_str().into(),
        stable_revision: next.stable_revision.clone(),
        canary_revision: next.canary_revision.clone(),
        current_step: i32::try_from(next.step).unwrap_or(0),
        requested_weight: requested,
        actual_weight: (actual * 10.0).round() / 10.0,
        stable_replicas: stable_pods,
        canary_replicas: canary_pods,
        started_at: next.canary_revision.as_ref().map(|_| to_rfc3339(next.started_at)),
        step_started_at: next.step_started_at.map(to_rfc3339),
        progress_at: next.canary_revision.as_ref().map(|_| to_rfc3339(next.progress_at)),
        failed_checks: i32::try_from(next.failed_checks).unwrap_or(0),
        no_data_checks: i32::try_from(next.no_data_checks).unwrap_or(0),
        last_check,
        failed_revisions: next.failed_revisions.clone(),
        last_rollback: next.last_rollback.clone(),
        abort_for: next.abort_for.clone(),
        promote_for: next.promote_for.clone(),
        retry_observed: next.retry_seen.clone(),
    });
    // While pods still move (a canary, a promotion or a rollback waiting for stable), look again soon.
    let moving = matches!(next.phase, Phase::Progressing | Phase::Paused) || canary_now.is_some();
    let requeue = if moving {
        rollout.interval.min(Duration::from_secs(30)).max(Duration::from_millis(500))
    } else {
        Duration::from_secs(300)
    };
    Ok((status, requeue))
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test with its message.
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(image: &str, generation: i64, stable: Option<&str>) -> FaxPluginConfig {
        let mut value = serde_json::json!({
            "apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxPluginConfig",
            "metadata": {"name": "edge", "namespace": "ns", "generation": generation},
            "spec": {"apiServer": {"image": image}, "slots": {"outbound": ["line"], "auth": "keys"}},
        });
        if let Some(stable) = stable {
            value["status"] = serde_json::json!({"rollout": {"phase": "Progressing", "stableRevision": stable}});
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_spec_stays_the_validated_one_and_only_the_status_is_fresh() {
        let validated = config("good:1", 3, Some("old"));
        let fresh = config("missing:0", 4, Some("r1"));
        let merged = with_status_of(&validated, fresh);
        assert_eq!(merged.spec, validated.spec, "a newer spec waits for its own reconcile");
        assert_eq!(merged.metadata.generation, Some(3), "observedGeneration is the validated one");
        assert_eq!(merged.status.unwrap().rollout.unwrap().stable_revision, "r1", "the latest rollout state");
    }
}
