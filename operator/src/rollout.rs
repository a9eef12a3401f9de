//! The canary path of the FaxPluginConfig reconciler (strategy `Canary`): translate between the status and
//! [`crate::canary::plan`], scrape and judge when a check is due, make the Deployments match the decision,
//! and report it (status, conditions, Events, metrics).
//!
//! The stable Deployment keeps its pod template for the whole canary; only its replica count follows the
//! split. The canary Deployment runs the new revision's template. Promotion applies the new template to the
//! stable Deployment and removes the canary; a rollback removes the canary and restores the stable count.

use std::time::Duration;

use faxbot_crds::{
    AnalysisResult, ConditionStatus, FaxPluginConfig, FaxPluginConfigStatus, RolloutStatus, set_condition,
};
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use crate::canary::Rollout;
use crate::canary::analysis::{self, Verdict};
use crate::canary::plan::{self, Action, Phase, RolloutState};
use crate::metrics::ObjectLabels;
use crate::reconcile::{Context, apply, publish};
use crate::status::{Outcome, config_status, deployment_revision};
use crate::validate::Desired;
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
    }
}

fn check_result(verdict: &Verdict, at: Duration) -> AnalysisResult {
    let m = verdict.measurement();
    let ms = |v: Option<f64>| v.map(|s| (s * 1_000_000.0).round() / 1000.0);
    AnalysisResult {
        time: to_rfc3339(at),
        verdict: match verdict {
            Verdict::Pass(_) => "Pass",
            Verdict::Fail(..) => "Fail",
            Verdict::NoData(_) => "NoData",
        }
        .into(),
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

/// Reconciles a config whose stable Deployment already runs `stable` under strategy Canary. Returns the
/// status to write and when to look again.
pub async fn reconcile(
    ctx: &Context,
    config: &FaxPluginConfig,
    desired: &Desired,
    stable: Deployment,
    now: Timestamp,
) -> Result<(FaxPluginConfigStatus, Duration), Error> {
    let ns = config.namespace().ok_or(Error::MissingNamespace)?;
    let name = config.name_any();
    // The rollout state is in status, and the watch cache may not show this operator's last status write
    // yet: acting on that older state would, for example, recreate a canary just rolled back. Read it fresh.
    let fresh = Api::<FaxPluginConfig>::namespaced(ctx.client.clone(), &ns).get(&name).await?;
    let config = &fresh;
    let key = format!("{ns}/{name}");
    let labels = ObjectLabels { namespace: ns.clone(), name: name.clone() };
    let rollout = Rollout::from_spec(&config.spec.rollout).ok_or_else(|| Error::InvalidRollout(name.clone()))?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let stable_name = names::api_name(&name);
    let canary_name = names::canary_name(&name);
    let replicas = config.spec.api_server.replicas.max(1);
    let stable_revision = deployment_revision(&stable).unwrap_or_default();
    let previous = config.status.as_ref().and_then(|s| s.rollout.as_ref());
    let state = state_from(previous, &stable_revision);
    let at = to_duration(now);

    let canary = deployments.get_opt(&canary_name).await?;
    let step_weight = rollout.policy.steps.get(state.step).map(|(w, _)| *w).unwrap_or(100);
    let (_, want_canary) = plan::split(replicas, step_weight);
    let pods = ready_pods(&ctx.client, &ns, &name).await?;
    let canary_pods_ready = pods.get(&(desired.revision.clone(), true)).copied().unwrap_or(0);
    let canary_ready = state.canary_revision.as_deref() == Some(desired.revision.as_str())
        && canary.as_ref().and_then(deployment_revision).as_deref() == Some(desired.revision.as_str())
        && canary_pods_ready >= want_canary
        && want_canary > 0;

    // A new canary starts without the previous one's measurements; a check is due every interval while the
    // canary under test is up.
    let same_canary = state.canary_revision.as_deref() == Some(desired.revision.as_str());
    let mut last_check = previous.and_then(|p| p.last_check.clone());
    let last_check_at = last_check.as_ref().filter(|_| same_canary).and_then(|c| c.time.parse::<Timestamp>().ok());
    let due = last_check_at.is_none_or(|t| at.saturating_sub(to_duration(t)) >= rollout.interval);
    let verdict = if canary_ready && due {
        let scrape = ctx.source.scrape(&ctx.client, &ns, &name).await?;
        let window = ctx.source.window(&key, at, rollout.window, scrape);
        let empty = Default::default();
        let canary_counters = window.get(&desired.revision).unwrap_or(&empty);
        let stable_counters = window.get(&stable_revision).unwrap_or(&empty);
        let verdict = analysis::judge(canary_counters, stable_counters, &rollout.thresholds);
        let m = verdict.measurement();
        ctx.metrics.canary_error_rate.get_or_create(&labels).set(m.canary_error_rate);
        if let Some(r) = m.worst_latency_ratio() {
            ctx.metrics.canary_latency_ratio.get_or_create(&labels).set(r);
        }
        tracing::info!(namespace = %ns, config = %name, verdict = ?verdict, "canary check");
        last_check = Some(check_result(&verdict, at));
        Some(verdict)
    } else {
        None
    };

    // A flags-only change marked urgent goes straight through (a canary already running for it too).
    let mut policy = rollout.policy.clone();
    let urgent = config.spec.rollout.urgent_feature_flags
        && desired.revision != stable_revision
        && flags_only(ctx, config, desired, &stable, &stable_revision).await?;
    if urgent {
        policy.promote = true;
    }
    let (next, action) = plan::step(&policy, &state, &desired.revision, at, canary_ready, verdict.as_ref());
    if verdict.is_none() && next.canary_revision.is_some() && next.canary_revision != state.canary_revision {
        // A fresh canary: the previous one's measurements say nothing about it. (After a rollback they stay,
        // as the record of why.)
        last_check = None;
    }
    let mut requested = 0;
    let (mut stable_pods, mut canary_pods) = (replicas, 0);
    match &action {
        Action::StableOnly => {
            if remove(&deployments, &canary_name).await? {
                ctx.source.forget(&key);
            }
            if desired.revision == next.stable_revision {
                apply(&deployments, &build::deployment(config, desired)).await?;
            } else if stable.spec.as_ref().and_then(|s| s.replicas) != Some(replicas) {
                scale(&deployments, &stable_name, replicas).await?;
            }
        }
        Action::Canary { weight } => {
            requested = *weight;
            (stable_pods, canary_pods) = plan::split(replicas, *weight);
            apply(&deployments, &build::canary_deployment(config, desired, canary_pods)).await?;
            if stable.spec.as_ref().and_then(|s| s.replicas) != Some(stable_pods) {
                scale(&deployments, &stable_name, stable_pods).await?;
            }
            if state.canary_revision.as_deref() != Some(desired.revision.as_str()) {
                publish(
                    ctx,
                    config,
                    EventType::Normal,
                    "CanaryStarted",
                    format!("canary of revision {} started at {weight}% (stable {stable_revision})", desired.revision),
                    "Rollout",
                )
                .await;
            } else if next.step != state.step {
                publish(
                    ctx,
                    config,
                    EventType::Normal,
                    "CanaryStep",
                    format!("canary of revision {} advanced to step {} ({weight}%)", desired.revision, next.step + 1),
                    "Rollout",
                )
                .await;
            }
        }
        Action::RollBack { reason } => {
            remove(&deployments, &canary_name).await?;
            ctx.source.forget(&key);
            scale(&deployments, &stable_name, replicas).await?;
            ctx.metrics.canary_rollbacks.get_or_create(&labels).inc();
            tracing::warn!(namespace = %ns, config = %name, revision = %desired.revision, reason = %reason, "canary rolled back");
            publish(
                ctx,
                config,
                EventType::Warning,
                "RolledBack",
                format!("revision {} rolled back: {reason}; revision {stable_revision} serves", desired.revision),
                "Rollout",
            )
            .await;
        }
        Action::Promote => {
            apply(&deployments, &build::deployment(config, desired)).await?;
            remove(&deployments, &canary_name).await?;
            ctx.source.forget(&key);
            publish(
                ctx,
                config,
                EventType::Normal,
                "Promoted",
                if urgent {
                    format!(
                        "revision {} only changes feature flags (urgentFeatureFlags): applied at once",
                        desired.revision
                    )
                } else {
                    format!("revision {} promoted to every replica", desired.revision)
                },
                "Rollout",
            )
            .await;
        }
    }

    // Status: the stable Deployment's view, then the canary's conditions on top.
    let stable_now = deployments.get_opt(&stable_name).await?;
    let canary_now = deployments.get_opt(&canary_name).await?;
    let mut status = config_status(config, Outcome::Applied { desired, deployment: stable_now.as_ref() }, now);
    // The pods listed before acting: new or removed pods take longer than this reconcile to become ready
    // or go, so a second listing would tell nothing more.
    let actual = match (&canary_now, &next.canary_revision) {
        (Some(_), Some(canary_revision)) => plan::actual_weight(
            pods.get(&(next.stable_revision.clone(), false)).copied().unwrap_or(0),
            pods.get(&(canary_revision.clone(), true)).copied().unwrap_or(0),
        ),
        _ => 0.0,
    };
    status.canary_weight = actual.round() as i32;
    let generation = config.metadata.generation;
    let conditions = &mut status.conditions;
    match next.phase {
        Phase::Progressing | Phase::Paused => {
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
            let reason = if paused { "CanaryPaused" } else { "CanaryInProgress" };
            set_condition(conditions, "Ready", ConditionStatus::False, reason, &message, generation, now);
            set_condition(conditions, "Progressing", ConditionStatus::True, reason, &message, generation, now);
            set_condition(conditions, "Degraded", ConditionStatus::False, "AsExpected", "", generation, now);
            status.phase = Some(if paused { "Paused" } else { "Progressing" }.into());
            status.current_revision = Some(next.stable_revision.clone());
        }
        Phase::RolledBack => {
            let message = format!(
                "revision {} was rolled back ({}); revision {} serves; change the spec to try a newer revision",
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
        Phase::Stable => {}
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
    });
    let requeue = match next.phase {
        Phase::Progressing | Phase::Paused => {
            rollout.interval.min(Duration::from_secs(30)).max(Duration::from_millis(500))
        }
        _ => Duration::from_secs(300),
    };
    Ok((status, requeue))
}
