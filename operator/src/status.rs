//! Pure status computation for both custom resources.
//!
//! Conditions follow the Kubernetes conventions: `Ready` summarises, `Progressing` says a rollout is under
//! way, `Degraded` says the spec cannot be served as written (the previous revision keeps serving). Every
//! condition carries `observedGeneration`; `lastTransitionTime` moves only when a status flips, so a
//! reconcile that changes nothing writes nothing new.

use faxbot_contract::manifest::HttpManifest;
use faxbot_crds::{
    ConditionStatus, FaxPluginConfig, FaxPluginConfigStatus, FaxPluginManifest, FaxPluginManifestStatus, FaxProvider,
    FaxProviderStatus, set_condition,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;

use crate::names;
use crate::validate::{Desired, Invalid, ResolvedProvider};

/// Condition type saying whether every pod of a config sees the same documents.
pub const DOCUMENT_STORE_SHARED: &str = "DocumentStoreShared";

/// What the reconciler achieved for a config.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// The desired objects were applied; `deployment` is the API Deployment as last observed.
    Applied {
        /// The applied state.
        desired: &'a Desired,
        /// The Deployment read back from the cluster (its status tells how far the rollout got).
        deployment: Option<&'a Deployment>,
    },
    /// The spec was refused; whatever the Deployment runs keeps running.
    Invalid {
        /// Why.
        invalid: &'a Invalid,
        /// The Deployment as it stands, untouched.
        deployment: Option<&'a Deployment>,
    },
}

/// How far a Deployment has rolled out a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentProgress {
    /// Every replica runs the revision and is available; no old pod is left.
    Complete,
    /// Still rolling; the message says what is missing.
    InProgress(String),
}

/// The revision a Deployment's pod template runs, if it is ours.
pub fn deployment_revision(deployment: &Deployment) -> Option<String> {
    deployment.spec.as_ref()?.template.metadata.as_ref()?.annotations.as_ref()?.get(names::REVISION_ANNOTATION).cloned()
}

/// Judges a Deployment against the revision it should run, from its status as the deployment controller
/// reports it.
pub fn deployment_progress(deployment: &Deployment, revision: &str) -> DeploymentProgress {
    if deployment_revision(deployment).as_deref() != Some(revision) {
        return DeploymentProgress::InProgress("the Deployment does not run this revision yet".into());
    }
    let want = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = deployment.status.as_ref() else {
        return DeploymentProgress::InProgress("the Deployment has no status yet".into());
    };
    let generation = deployment.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return DeploymentProgress::InProgress(
            "the deployment controller has not observed the new template yet".into(),
        );
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if updated < want {
        return DeploymentProgress::InProgress(format!("{updated} of {want} pods run the new revision"));
    }
    if available < want {
        return DeploymentProgress::InProgress(format!("{available} of {want} pods are available"));
    }
    if total > want {
        return DeploymentProgress::InProgress(format!("{} old pods are still terminating", total - want));
    }
    DeploymentProgress::Complete
}

/// The status of a config after a reconcile.
pub fn config_status(config: &FaxPluginConfig, outcome: Outcome<'_>, now: Timestamp) -> FaxPluginConfigStatus {
    let generation = config.metadata.generation;
    let mut status = config.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let conditions = &mut status.conditions;
    let deployment = match &outcome {
        Outcome::Applied { deployment, .. } | Outcome::Invalid { deployment, .. } => *deployment,
    };
    let dep_status = deployment.and_then(|d| d.status.as_ref());
    status.replicas = deployment.and_then(|d| d.spec.as_ref()).and_then(|s| s.replicas).unwrap_or(0);
    status.ready_replicas = dep_status.and_then(|s| s.ready_replicas).unwrap_or(0);
    status.selector = Some(names::selector(config.metadata.name.as_deref().unwrap_or_default()));
    status.canary_weight = 0;

    match outcome {
        Outcome::Applied { desired, deployment } => {
            status.config_map_name =
                Some(names::config_map_name(config.metadata.name.as_deref().unwrap_or_default(), &desired.revision));
            let state = deployment
                .map(|d| deployment_progress(d, &desired.revision))
                .unwrap_or_else(|| DeploymentProgress::InProgress("the Deployment does not exist yet".into()));
            set_condition(conditions, "Degraded", ConditionStatus::False, "AsExpected", "", generation, now);
            let (shared, reason, message) = desired.document_store.condition();
            let shared = if shared { ConditionStatus::True } else { ConditionStatus::False };
            set_condition(conditions, DOCUMENT_STORE_SHARED, shared, reason, message, generation, now);
            match state {
                DeploymentProgress::Complete => {
                    status.current_revision = Some(desired.revision.clone());
                    let message = format!("revision {} serves on all {} replicas", desired.revision, status.replicas);
                    set_condition(conditions, "Ready", ConditionStatus::True, "Available", &message, generation, now);
                    set_condition(
                        conditions,
                        "Progressing",
                        ConditionStatus::False,
                        "RolloutComplete",
                        &message,
                        generation,
                        now,
                    );
                    status.phase = Some("Ready".into());
                }
                DeploymentProgress::InProgress(why) => {
                    if status.current_revision.is_none() {
                        status.current_revision = deployment.and_then(deployment_revision);
                    }
                    let message = format!("rolling out revision {}: {why}", desired.revision);
                    set_condition(
                        conditions,
                        "Ready",
                        ConditionStatus::False,
                        "RolloutInProgress",
                        &message,
                        generation,
                        now,
                    );
                    set_condition(
                        conditions,
                        "Progressing",
                        ConditionStatus::True,
                        "NewRevision",
                        &message,
                        generation,
                        now,
                    );
                    status.phase = Some("Progressing".into());
                }
            }
        }
        Outcome::Invalid { invalid, deployment } => {
            let serving = deployment.and_then(deployment_revision);
            status.current_revision = serving.clone();
            let keeps = match &serving {
                Some(rev) => format!("; revision {rev} keeps serving"),
                None => "; nothing is deployed until it is fixed".into(),
            };
            let message = format!("{}{keeps}", invalid.message);
            set_condition(conditions, "Ready", ConditionStatus::False, invalid.reason, &message, generation, now);
            set_condition(conditions, "Degraded", ConditionStatus::True, invalid.reason, &message, generation, now);
            set_condition(conditions, "Progressing", ConditionStatus::False, "InvalidSpec", &message, generation, now);
            status.phase = Some("Invalid".into());
        }
    }
    status
}

/// Derives the condition pair kstatus reads (cli-utils' `Compute`, which Flux's `wait: true` and health
/// checks use) from the summary conditions, and records the revision last live on every pod.
///
/// kstatus ignores `Ready` for custom resources: it says InProgress while `Reconciling` is True (or
/// `observedGeneration` lags), Failed while `Stalled` is True, Current otherwise. So: `Stalled` mirrors
/// `Degraded` (rolled back, invalid: the operator cannot get there without a change), and `Reconciling` is
/// True whenever the config is neither Ready nor Stalled (a canary, a rolling update, a promotion).
pub fn kstatus(status: &mut FaxPluginConfigStatus, generation: Option<i64>, now: Timestamp) {
    let find = |t: &str| status.conditions.iter().find(|c| c.type_ == t).cloned();
    let ready = find("Ready").filter(|c| c.status == "True");
    let degraded = find("Degraded").filter(|c| c.status == "True");
    let pending = find("Ready").filter(|c| c.status != "True");
    let conditions = &mut status.conditions;
    match (&degraded, &ready, &pending) {
        (Some(d), _, _) => {
            set_condition(conditions, "Stalled", ConditionStatus::True, &d.reason, &d.message, generation, now);
            set_condition(conditions, "Reconciling", ConditionStatus::False, "Stalled", "", generation, now);
        }
        (None, Some(_), _) | (None, None, None) => {
            set_condition(conditions, "Stalled", ConditionStatus::False, "AsExpected", "", generation, now);
            set_condition(conditions, "Reconciling", ConditionStatus::False, "Ready", "", generation, now);
        }
        (None, None, Some(p)) => {
            set_condition(conditions, "Stalled", ConditionStatus::False, "AsExpected", "", generation, now);
            set_condition(conditions, "Reconciling", ConditionStatus::True, &p.reason, &p.message, generation, now);
        }
    }
    if ready.is_some() {
        status.observed_revision.clone_from(&status.current_revision);
    }
}

/// The status of a FaxProvider after validation.
pub fn provider_status(
    provider: &FaxProvider,
    result: Result<&ResolvedProvider, &Invalid>,
    now: Timestamp,
) -> FaxProviderStatus {
    let generation = provider.metadata.generation;
    let mut status = provider.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    match result {
        Ok(resolved) => {
            status.plugin_version = Some(resolved.manifest.version.clone());
            status.slots = Some(resolved.manifest.categories.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","));
            let message = format!("plugin `{}` settings and credentials are valid", resolved.manifest.id);
            set_condition(&mut status.conditions, "Ready", ConditionStatus::True, "Valid", &message, generation, now);
            set_condition(&mut status.conditions, "Stalled", ConditionStatus::False, "Valid", "", generation, now);
        }
        Err(invalid) => {
            let manifest = faxbot_contract::manifest(&provider.spec.plugin);
            status.plugin_version = manifest.as_ref().map(|m| m.version.clone());
            status.slots = manifest.map(|m| m.categories.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","));
            set_condition(
                &mut status.conditions,
                "Ready",
                ConditionStatus::False,
                invalid.reason,
                &invalid.message,
                generation,
                now,
            );
            // kstatus reads Stalled, not Ready: without it an invalid provider would wait out a Flux timeout.
            set_condition(
                &mut status.conditions,
                "Stalled",
                ConditionStatus::True,
                invalid.reason,
                &invalid.message,
                generation,
                now,
            );
        }
    }
    status
}

/// The status of a FaxPluginManifest after validation.
pub fn manifest_status(
    resource: &FaxPluginManifest,
    result: Result<&HttpManifest, &Invalid>,
    now: Timestamp,
) -> FaxPluginManifestStatus {
    let generation = resource.metadata.generation;
    let mut status = resource.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let (ready, stalled, reason, message) = match result {
        Ok(m) => (ConditionStatus::True, ConditionStatus::False, "Valid", format!("plugin `{}` is valid", m.id)),
        Err(invalid) => (ConditionStatus::False, ConditionStatus::True, invalid.reason, invalid.message.clone()),
    };
    set_condition(&mut status.conditions, "Ready", ready, reason, &message, generation, now);
    // kstatus reads Stalled, as for providers.
    let stalled_message = if stalled == ConditionStatus::True { message.as_str() } else { "" };
    set_condition(&mut status.conditions, "Stalled", stalled, reason, stalled_message, generation, now);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build;
    use crate::validate::tests::{base_config, base_referenced};
    use crate::validate::validate_config;
    use k8s_openapi::api::apps::v1::DeploymentStatus;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn condition<'a>(
        s: &'a FaxPluginConfigStatus,
        t: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    fn with_status(mut d: Deployment, updated: i32, available: i32, total: i32) -> Deployment {
        d.metadata.generation = Some(2);
        d.status = Some(DeploymentStatus {
            observed_generation: Some(2),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ready_replicas: Some(available),
            replicas: Some(total),
            ..Default::default()
        });
        d
    }

    #[test]
    fn ready_only_when_every_replica_runs_and_serves_the_revision() {
        let c = base_config();
        let d = validate_config(&c, &base_referenced()).unwrap();
        let dep = build::deployment(&c, &d);
        assert_eq!(deployment_progress(&with_status(dep.clone(), 1, 1, 1), &d.revision), DeploymentProgress::Complete);
        assert!(matches!(
            deployment_progress(&with_status(dep.clone(), 0, 1, 1), &d.revision),
            DeploymentProgress::InProgress(_)
        ));
        assert!(
            matches!(deployment_progress(&with_status(dep.clone(), 1, 1, 2), &d.revision), DeploymentProgress::InProgress(m) if m.contains("terminating"))
        );
        assert!(matches!(
            deployment_progress(&with_status(dep.clone(), 1, 1, 1), "other"),
            DeploymentProgress::InProgress(_)
        ));
        let mut stale = with_status(dep.clone(), 1, 1, 1);
        stale.metadata.generation = Some(3);
        assert!(matches!(deployment_progress(&stale, &d.revision), DeploymentProgress::InProgress(_)));

        let done = with_status(dep.clone(), 1, 1, 1);
        let s = config_status(&c, Outcome::Applied { desired: &d, deployment: Some(&done) }, now());
        assert_eq!(condition(&s, "Ready").status, "True");
        assert_eq!(condition(&s, "Progressing").status, "False");
        assert_eq!(condition(&s, "Degraded").status, "False");
        assert_eq!(condition(&s, "Ready").observed_generation, Some(3));
        assert_eq!(s.current_revision.as_deref(), Some(d.revision.as_str()));
        assert_eq!(s.phase.as_deref(), Some("Ready"));
        // The scale subresource's selector picks the pods the Deployment makes (and the canary's: same labels).
        let pod_labels = done.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().labels.clone().unwrap();
        let selector = s.selector.clone().unwrap();
        assert_eq!(selector.split(',').count(), 2, "{selector}");
        for term in selector.split(',') {
            let (k, v) = term.split_once('=').unwrap();
            assert_eq!(pod_labels.get(k).map(String::as_str), Some(v), "{selector} against {pod_labels:?}");
        }
        assert_eq!(condition(&s, DOCUMENT_STORE_SHARED).reason, "SinglePod");

        // Several pods on per-pod volumes: reported, but the revision still rolls out.
        let mut several = c.clone();
        several.spec.api_server.replicas = 3;
        let d3 = validate_config(&several, &base_referenced()).unwrap();
        let s = config_status(&several, Outcome::Applied { desired: &d3, deployment: Some(&done) }, now());
        let shared = condition(&s, DOCUMENT_STORE_SHARED);
        assert_eq!((shared.status.as_str(), shared.reason.as_str()), ("False", "PerPodVolume"));
        assert!(shared.message.contains("S3 storage"), "{}", shared.message);

        let rolling = with_status(dep, 0, 0, 1);
        let s = config_status(&c, Outcome::Applied { desired: &d, deployment: Some(&rolling) }, now());
        assert_eq!(condition(&s, "Ready").reason, "RolloutInProgress");
        assert_eq!(condition(&s, "Progressing").status, "True");
    }

    #[test]
    fn invalid_spec_reports_the_reason_and_the_revision_that_keeps_serving() {
        let c = base_config();
        let d = validate_config(&c, &base_referenced()).unwrap();
        let dep = build::deployment(&c, &d);
        let invalid =
            Invalid { reason: "SecretNotFound", message: "FaxProvider keys: Secret admin does not exist".into() };
        let s = config_status(&c, Outcome::Invalid { invalid: &invalid, deployment: Some(&dep) }, now());
        let ready = condition(&s, "Ready");
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "SecretNotFound"));
        assert!(ready.message.contains(&format!("revision {} keeps serving", d.revision)), "{}", ready.message);
        assert_eq!(condition(&s, "Degraded").status, "True");
        assert_eq!(s.current_revision.as_deref(), Some(d.revision.as_str()));
    }

    #[test]
    fn provider_status_reports_validity_slots_and_version() {
        use crate::validate::tests::{provider, secret};
        use crate::validate::validate_provider;
        let keys = provider("keys", "api_keys", serde_json::json!({}), Some("admin"));
        let admin = secret("admin", &[("adminKey", "k"), ("pepper", "p")]);
        let resolved = validate_provider(&keys, Some(&admin), None).unwrap();
        let s = provider_status(&keys, Ok(&resolved), now());
        assert_eq!(s.slots.as_deref(), Some("auth"));
        assert_eq!(s.plugin_version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        assert_eq!((s.conditions[0].status.as_str(), s.conditions[0].reason.as_str()), ("True", "Valid"));

        let invalid = validate_provider(&keys, None, None).unwrap_err();
        let s = provider_status(&keys, Err(&invalid), now());
        assert_eq!((s.conditions[0].status.as_str(), s.conditions[0].reason.as_str()), ("False", "SecretNotFound"));
        assert_eq!(s.slots.as_deref(), Some("auth"), "slots are shown even while invalid");
        let unknown = provider("x", "fax9000", serde_json::json!({}), None);
        let invalid = validate_provider(&unknown, None, None).unwrap_err();
        let s = provider_status(&unknown, Err(&invalid), now());
        assert_eq!(s.conditions[0].reason, "UnknownPlugin");
        assert_eq!(s.slots, None);
    }

    #[test]
    fn an_unchanged_outcome_produces_an_identical_status() {
        let mut c = base_config();
        let d = validate_config(&c, &base_referenced()).unwrap();
        let s1 = config_status(&c, Outcome::Applied { desired: &d, deployment: None }, now());
        c.status = Some(s1.clone());
        let later: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let s2 = config_status(&c, Outcome::Applied { desired: &d, deployment: None }, later);
        assert_eq!(s1, s2, "a reconcile that changes nothing must not rewrite the status");
    }

    #[test]
    fn the_kstatus_pair_follows_the_summary_conditions() {
        let c = base_config();
        let d = validate_config(&c, &base_referenced()).unwrap();
        let dep = build::deployment(&c, &d);
        let get = |s: &FaxPluginConfigStatus, t: &str| {
            let c = condition(s, t);
            (c.status.clone(), c.reason.clone())
        };
        // Rolling out: Reconciling.
        let mut s = config_status(
            &c,
            Outcome::Applied { desired: &d, deployment: Some(&with_status(dep.clone(), 0, 0, 1)) },
            now(),
        );
        kstatus(&mut s, Some(3), now());
        assert_eq!(get(&s, "Reconciling"), ("True".into(), "RolloutInProgress".into()));
        assert_eq!(get(&s, "Stalled").0, "False");
        assert_eq!(s.observed_revision, None, "nothing was live everywhere yet");
        // Done: neither, and the revision is recorded as live.
        let mut s = config_status(
            &c,
            Outcome::Applied { desired: &d, deployment: Some(&with_status(dep.clone(), 1, 1, 1)) },
            now(),
        );
        kstatus(&mut s, Some(3), now());
        assert_eq!((get(&s, "Reconciling").0, get(&s, "Stalled").0), ("False".into(), "False".into()));
        assert_eq!(s.observed_revision.as_deref(), Some(d.revision.as_str()));
        // Invalid: Stalled with the validation reason; the last live revision stays recorded.
        let mut c2 = c.clone();
        c2.status = Some(s);
        let invalid = Invalid { reason: "SecretNotFound", message: "Secret x does not exist".into() };
        let mut s = config_status(&c2, Outcome::Invalid { invalid: &invalid, deployment: Some(&dep) }, now());
        kstatus(&mut s, Some(3), now());
        assert_eq!(get(&s, "Stalled"), ("True".into(), "SecretNotFound".into()));
        assert_eq!(get(&s, "Reconciling").0, "False");
        assert_eq!(s.observed_revision.as_deref(), Some(d.revision.as_str()));
        assert!(condition(&s, "Stalled").message.contains("Secret x"));
    }
}
