//! The write side shared by both controllers and the canary: the controllers' [`Context`], server-side apply
//! of owned objects, status patches, pruning of old revisions, and events.
//!
//! Below [`crate::reconcile`] and [`crate::rollout`], which both build on it; it decides nothing beyond what to
//! delete when pruning.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faxbot_crds::FaxPluginConfig;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::metrics::Metrics;
use crate::{Error, FIELD_MANAGER, build, names};

/// Shared state of both controllers.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Operator metrics.
    pub metrics: Arc<Metrics>,
    /// Event recorder (events.k8s.io/v1).
    pub recorder: Recorder,
    /// Canary analysis metrics (pod scrapes and their history).
    pub source: crate::analysis_source::MetricsSource,
    /// Consecutive failures per object, for per-object exponential backoff (kube-runtime has none built in).
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context reporting events as `faxbot-operator` from `instance` (the pod name); canary analysis
    /// scrapes `metrics_urls` instead of pods when that is not empty.
    pub fn new(client: Client, metrics: Arc<Metrics>, instance: Option<String>, metrics_urls: Vec<String>) -> Self {
        let reporter = Reporter { controller: FIELD_MANAGER.into(), instance };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            source: crate::analysis_source::MetricsSource::new(metrics_urls),
            failures: Mutex::default(),
        }
    }

    pub(crate) fn reset_failures(&self, key: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }

    /// Backoff after the n-th consecutive failure: 1 s, 2 s, 4 s … capped at 5 minutes, with ±20 % jitter so a
    /// burst of failures does not retry in lockstep.
    pub(crate) fn next_backoff(&self, key: &str) -> Duration {
        let n = self
            .failures
            .lock()
            .map(|mut map| {
                let n = map.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            })
            .unwrap_or(1);
        let base = Duration::from_secs(1u64 << n.saturating_sub(1).min(9)).min(Duration::from_secs(300));
        let jitter = rand::random_range(0.8..1.2);
        base.mul_f64(jitter)
    }
}

/// Server-side apply of one owned object with the operator's field manager.
pub async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let mut value = serde_json::to_value(obj).map_err(|e| Error::Serialize(std::any::type_name::<K>(), e))?;
    value["apiVersion"] = K::api_version(&()).into();
    value["kind"] = K::kind(&()).into();
    Ok(api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(value)).await?)
}

/// The config's revision objects of one kind (`runtime-config` ConfigMaps or `credentials` Secrets) whose
/// revision is not in `keep`, newest first, as (name, revision). Metadata only: pruning never needs to read a
/// Secret's data.
async fn stale_revisions<K>(
    api: &Api<K>,
    config: &str,
    kind: &str,
    keep: &[String],
) -> Result<Vec<(String, String)>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let selector =
        format!("{},{}={config},{}={kind}", names::managed_selector(), names::CONFIG_LABEL, names::KIND_LABEL);
    let mut objects = api.list_metadata(&ListParams::default().labels(&selector)).await?.items;
    objects.sort_by(|a, b| b.metadata.creation_timestamp.cmp(&a.metadata.creation_timestamp));
    Ok(objects
        .into_iter()
        .map(|o| {
            let revision =
                o.metadata.labels.as_ref().and_then(|l| l.get(names::REVISION_LABEL)).cloned().unwrap_or_default();
            (o.metadata.name.unwrap_or_default(), revision)
        })
        .filter(|(_, revision)| !keep.contains(revision))
        .collect())
}

/// Deletes `name`; already gone is fine.
pub(crate) async fn delete_quietly<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub async fn publish(
    ctx: &Context,
    obj: &impl Resource<DynamicType = ()>,
    type_: EventType,
    reason: &str,
    note: String,
    action: &str,
) {
    let event = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not publish an event");
    }
}

/// How soon to look again while an old revision's credentials Secret waits for its pods to go.
pub(crate) const LINGERING_REQUEUE: Duration = Duration::from_secs(10);

/// Applies the config's PodDisruptionBudget, or deletes the operator's own when `spec.apiServer` no longer
/// asks for one.
pub(crate) async fn apply_pod_disruption_budget(
    client: &Client,
    ns: &str,
    config: &FaxPluginConfig,
    previous: &faxbot_crds::FaxPluginConfigStatus,
) -> Result<(), Error> {
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let name = names::api_name(&config.name_any());
    match build::pod_disruption_budget(config) {
        Some(pdb) => drop(apply(&budgets, &pdb).await?),
        // Removed from the spec: only a spec edit can do that, so only then look for the one the operator made
        // (a user's PDB of that name, without the operator's label, is left alone).
        None if previous.observed_generation != config.metadata.generation => {
            let ours = budgets
                .get_opt(&name)
                .await?
                .and_then(|p| p.metadata.labels)
                .is_some_and(|l| l.get(names::MANAGED_BY.0).map(String::as_str) == Some(names::MANAGED_BY.1));
            if ours {
                delete_quietly(&budgets, &name).await?;
            }
        }
        None => {}
    }
    Ok(())
}

/// Deletes old revisions' objects: `runtime-config` ConfigMaps beyond the history limit, and `credentials`
/// Secrets of any revision not in `keep` that no pod runs. Returns whether such a Secret lingers because a pod
/// still runs its revision.
pub(crate) async fn prune_revisions(
    client: &Client,
    ns: &str,
    config: &FaxPluginConfig,
    keep: Vec<String>,
) -> Result<bool, Error> {
    let name = config.name_any();
    let limit = usize::try_from(config.spec.revision_history_limit.max(1)).unwrap_or(5);
    // Old revisions' ConfigMaps: the newest `limit` stay as history.
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), ns);
    for (stale, _) in stale_revisions(&config_maps, &name, "runtime-config", &keep).await?.iter().skip(limit) {
        delete_quietly(&config_maps, stale).await?;
    }
    // Credentials have no history: a rotated (revoked) credential must not linger in an old revision's Secret.
    // Going back to a revision rebuilds its Secret from the referenced ones, so a credentials Secret is kept only
    // while a pod may still mount it: the revisions in `keep`, and any pod's (the old ReplicaSet's pods of a
    // rolling update that is still under way). The pods are listed only when there is an old Secret to decide
    // on: most reconciles have none.
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let stale_credentials = stale_revisions(&secrets, &name, "credentials", &keep).await?;
    let mut lingering = false;
    if !stale_credentials.is_empty() {
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
        let running = pods.list_metadata(&ListParams::default().labels(&names::selector(&name))).await?;
        let in_use: Vec<String> = running
            .items
            .iter()
            .filter_map(|p| p.metadata.labels.as_ref()?.get(names::REVISION_LABEL).cloned())
            .collect();
        for (stale, revision) in &stale_credentials {
            if in_use.contains(revision) {
                // Pods are not watched: look again soon for them to be gone, so the Secret goes too.
                lingering = true;
            } else {
                delete_quietly(&secrets, stale).await?;
            }
        }
    }
    Ok(lingering)
}

pub(crate) async fn write_status<K>(
    client: &Client,
    ns: &str,
    name: &str,
    status: serde_json::Value,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(body)).await?;
    Ok(())
}
