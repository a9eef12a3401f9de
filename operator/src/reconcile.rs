//! The two controllers and their watch wiring: dereference, then the decisions of [`crate::validate`],
//! [`crate::build`] and [`crate::status`], written through [`crate::apply`]. This module only fetches what the
//! decisions need and hands on what they return.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faxbot_crds::{FaxPluginConfig, FaxPluginManifest, FaxProvider, RolloutStrategy};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::DeleteParams;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use crate::apply::{
    Context, LINGERING_REQUEUE, apply, apply_pod_disruption_budget, prune_revisions, publish, write_status,
};
use crate::metrics::ObjectLabels;
use crate::status::{Outcome, config_status, provider_status};
use crate::validate::{Referenced, validate_config, validate_provider};
use crate::{Error, build, names};

fn object_key<K: Resource>(kind: &str, obj: &K) -> String {
    format!("{kind}/{}/{}", obj.meta().namespace.as_deref().unwrap_or(""), obj.meta().name.as_deref().unwrap_or(""))
}

/// Fetches everything a config references; whatever does not exist is simply absent. The reads are fresh, not
/// the watch caches': a status must describe the Secrets it was computed from.
async fn dereference(client: &Client, ns: &str, config: &FaxPluginConfig) -> Result<Referenced, Error> {
    let providers: Api<FaxProvider> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut referenced = Referenced::default();
    let mut secret_names = Vec::new();
    let mut provider_names = Referenced::provider_names(config);
    provider_names.sort();
    provider_names.dedup();
    let manifests: Api<FaxPluginManifest> = Api::namespaced(client.clone(), ns);
    for name in provider_names {
        if let Some(p) = providers.get_opt(&name).await? {
            if let Some(r) = &p.spec.credentials_secret_ref {
                secret_names.push(r.name.clone());
            }
            if let Some(r) = &p.spec.manifest_ref
                && !referenced.manifests.contains_key(&r.name)
                && let Some(m) = manifests.get_opt(&r.name).await?
            {
                referenced.manifests.insert(r.name.clone(), m);
            }
            referenced.providers.insert(name, p);
        }
    }
    if let Some(db) = &config.spec.api_server.database {
        secret_names.push(db.url_secret_ref.name.clone());
    }
    if let Some(keys) = &config.spec.publisher_keys_secret_ref {
        secret_names.push(keys.name.clone());
    }
    secret_names.sort();
    secret_names.dedup();
    for name in secret_names {
        if let Some(s) = secrets.get_opt(&name).await? {
            referenced.secrets.insert(name, s);
        }
    }
    let config_map_names = [
        config.spec.api_server.trust_bundle.as_ref().map(|b| &b.name),
        config.spec.registry_index_ref.as_ref().map(|r| &r.name),
    ];
    for name in config_map_names.into_iter().flatten() {
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        if !referenced.config_maps.contains_key(name)
            && let Some(cm) = config_maps.get_opt(name).await?
        {
            referenced.config_maps.insert(name.clone(), cm);
        }
    }
    Ok(referenced)
}

/// Reconciles one FaxPluginConfig.
pub async fn reconcile_config(config: Arc<FaxPluginConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = object_key("FaxPluginConfig", config.as_ref());
    let result = reconcile_config_inner(&config, &ctx).await;
    ctx.metrics.observe("faxpluginconfig", started.elapsed(), result.as_ref().err().map(Error::metric_label));
    if result.is_ok() {
        ctx.reset_failures(&key);
    }
    result
}

async fn reconcile_config_inner(config: &FaxPluginConfig, ctx: &Context) -> Result<Action, Error> {
    // Being deleted: the garbage collector removes the owned objects. Re-applying them now would fight it
    // (with foreground deletion the config stays until its dependents are gone, so that fight never ends).
    if config.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = config.namespace().ok_or(Error::MissingNamespace)?;
    let name = config.name_any();
    let client = &ctx.client;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let referenced = dereference(client, &ns, config).await?;
    let previous = config.status.clone().unwrap_or_default();
    let previous_ready = previous.conditions.iter().find(|c| c.type_ == "Ready").cloned();
    let now = Timestamp::now();

    let (status, requeue) = match validate_config(config, &referenced) {
        Ok(desired) => {
            apply(&Api::<ConfigMap>::namespaced(client.clone(), &ns), &build::config_map(config, &desired)).await?;
            apply(&Api::<Secret>::namespaced(client.clone(), &ns), &build::credentials_secret(config, &desired))
                .await?;
            apply(&Api::<Service>::namespaced(client.clone(), &ns), &build::service(config)).await?;
            apply_pod_disruption_budget(client, &ns, config, &previous).await?;
            let mut before = deployments.get_opt(&names::api_name(&name)).await?;
            let serving = before.as_ref().and_then(crate::status::deployment_revision);
            let mut keep = vec![desired.revision.clone()];
            keep.extend(serving.clone());
            // The rollout's revisions stay too: a deleted stable Deployment is recreated from them.
            if let Some(r) = &previous.rollout {
                keep.push(r.stable_revision.clone());
                keep.extend(r.canary_revision.clone());
            }
            let lingering = prune_revisions(client, &ns, config, keep).await?;

            let canary_strategy = config.spec.rollout.strategy == RolloutStrategy::Canary;
            let known_stable = previous.rollout.as_ref().map(|r| r.stable_revision.clone()).filter(|r| !r.is_empty());
            if canary_strategy
                && before.is_none()
                && let Some(stable_revision) = known_stable
            {
                // The stable Deployment was deleted (by hand, or by a tool pruning it): recreate it at the
                // stable revision, never at the desired one, which may be under test or known to be bad.
                match recreate_stable(ctx, config, &ns, &stable_revision).await? {
                    Some(recreated) => before = Some(recreated),
                    None => {
                        let status = stable_missing(config, &desired, &stable_revision, now);
                        return finish(ctx, config, status, Duration::from_secs(30), previous_ready, &referenced).await;
                    }
                }
            }
            // A canary needs something stable to compare with: the first deployment goes out directly.
            if canary_strategy && let Some(stable) = before.filter(|d| crate::status::deployment_revision(d).is_some())
            {
                let (mut status, requeue) =
                    crate::rollout::reconcile(ctx, config, crate::rollout::Spec::Valid(&desired), stable, now).await?;
                status.desired_revision = Some(desired.revision.clone());
                return finish(ctx, config, status, requeue, previous_ready, &referenced).await;
            }
            let deployment = apply(&deployments, &build::deployment(config, &desired)).await?;
            // Strategy switched away from Canary while one ran: nothing runs beside stable any more.
            let had_canary = previous.rollout.is_some() && !canary_strategy;
            if had_canary {
                match deployments.delete(&names::canary_name(&name), &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }

            if serving.as_deref() != Some(desired.revision.as_str()) {
                tracing::info!(namespace = %ns, config = %name, revision = %desired.revision, "applied a new revision");
                publish(
                    ctx,
                    config,
                    EventType::Normal,
                    "RevisionApplied",
                    format!("revision {} applied to Deployment {}", desired.revision, names::api_name(&name)),
                    "Apply",
                )
                .await;
            }
            let mut status =
                config_status(config, Outcome::Applied { desired: &desired, deployment: Some(&deployment) }, now);
            if had_canary {
                status.rollout = None;
            }
            status.desired_revision = Some(desired.revision.clone());
            let progressing = status.phase.as_deref() == Some("Progressing");
            let requeue = match (lingering, progressing) {
                (true, _) => LINGERING_REQUEUE,
                (false, true) => Duration::from_secs(30),
                (false, false) => Duration::from_secs(300),
            };
            (status, requeue)
        }
        Err(invalid) => {
            let deployment = deployments.get_opt(&names::api_name(&name)).await?;
            if previous_ready.as_ref().map(|c| c.reason.as_str()) != Some(invalid.reason) {
                tracing::warn!(namespace = %ns, config = %name, reason = invalid.reason, message = %invalid.message, "spec refused");
                publish(ctx, config, EventType::Warning, invalid.reason, invalid.message.clone(), "Validate").await;
            }
            // A canary in flight (or one still winding down) stays supervised while the spec is invalid.
            let in_flight = previous.rollout.as_ref().is_some_and(|r| r.canary_revision.is_some())
                || deployments.get_opt(&names::canary_name(&name)).await?.is_some();
            if config.spec.rollout.strategy == RolloutStrategy::Canary
                && in_flight
                && let Some(stable) = deployment.clone().filter(|d| crate::status::deployment_revision(d).is_some())
            {
                let (mut status, requeue) =
                    crate::rollout::reconcile(ctx, config, crate::rollout::Spec::Invalid(&invalid), stable, now)
                        .await?;
                status.desired_revision = None;
                return finish(ctx, config, status, requeue, previous_ready, &referenced).await;
            }
            let mut status =
                config_status(config, Outcome::Invalid { invalid: &invalid, deployment: deployment.as_ref() }, now);
            status.desired_revision = None;
            (status, Duration::from_secs(300))
        }
    };

    finish(ctx, config, status, requeue, previous_ready, &referenced).await
}

/// Recreates the stable Deployment at `revision` from its snapshot; `None` when no snapshot of that
/// revision exists (an operator upgraded mid-canary, or the snapshot deleted too).
async fn recreate_stable(
    ctx: &Context,
    config: &FaxPluginConfig,
    ns: &str,
    revision: &str,
) -> Result<Option<Deployment>, Error> {
    let name = config.name_any();
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let Some(snapshot) = config_maps.get_opt(&names::stable_snapshot_name(&name)).await? else {
        return Ok(None);
    };
    let replicas = config.spec.api_server.replicas.max(1);
    let Some(deployment) = build::from_snapshot(config, &snapshot, revision, replicas) else {
        return Ok(None);
    };
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let recreated = apply(&deployments, &deployment).await?;
    tracing::warn!(namespace = %ns, config = %name, revision, "stable Deployment was missing: recreated at the stable revision");
    publish(
        ctx,
        config,
        EventType::Warning,
        "StableRecreated",
        format!("Deployment {} was missing; recreated at the stable revision {revision}", names::api_name(&name)),
        "Rollout",
    )
    .await;
    Ok(Some(recreated))
}

/// Status when the stable Deployment is gone and cannot be recreated at its revision: nothing is deployed
/// (deploying the desired revision would skip the canary, and it may be a rolled-back one).
fn stable_missing(
    config: &FaxPluginConfig,
    desired: &crate::validate::Desired,
    stable_revision: &str,
    now: Timestamp,
) -> faxbot_crds::FaxPluginConfigStatus {
    let invalid = crate::validate::Invalid {
        reason: "StableMissing",
        message: format!(
            "Deployment {} was deleted and no snapshot of the stable revision {stable_revision} exists; revision {} is not deployed without a canary: switch spec.rollout.strategy to Immediate to deploy it directly",
            names::api_name(&config.name_any()),
            desired.revision
        ),
    };
    let mut status = config_status(config, Outcome::Invalid { invalid: &invalid, deployment: None }, now);
    status.desired_revision = Some(desired.revision.clone());
    status
}

/// Publishes the Ready event and metric and writes the status when it changed.
async fn finish(
    ctx: &Context,
    config: &FaxPluginConfig,
    status: faxbot_crds::FaxPluginConfigStatus,
    requeue: Duration,
    previous_ready: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    referenced: &Referenced,
) -> Result<Action, Error> {
    let client = &ctx.client;
    let ns = config.namespace().ok_or(Error::MissingNamespace)?;
    let name = config.name_any();
    let mut status = status;
    // Which version of each referenced Secret this status was computed from: after a Secret change, waiting
    // for its resourceVersion here, then for Ready, cannot return on a Ready left from before the change.
    status.secret_versions = referenced
        .secrets
        .iter()
        .map(|(name, s)| (name.clone(), s.metadata.resource_version.clone().unwrap_or_default()))
        .collect();
    crate::status::kstatus(&mut status, config.metadata.generation, Timestamp::now());
    let ready = status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    // Warn once when the pods stop sharing their documents (not on every reconcile while they don't).
    let unshared = |s: Option<&faxbot_crds::FaxPluginConfigStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == crate::status::DOCUMENT_STORE_SHARED).cloned())
            .filter(|c| c.status == "False")
    };
    if let Some(condition) = unshared(Some(&status))
        && unshared(config.status.as_ref()).is_none()
    {
        publish(ctx, config, EventType::Warning, &condition.reason, condition.message.clone(), "Validate").await;
    }
    if ready && previous_ready.as_ref().is_none_or(|c| c.status != "True") {
        publish(
            ctx,
            config,
            EventType::Normal,
            "Ready",
            format!("revision {} is serving", status.current_revision.clone().unwrap_or_default()),
            "Rollout",
        )
        .await;
    }
    ctx.metrics
        .config_ready
        .get_or_create(&ObjectLabels { namespace: ns.clone(), name: name.clone() })
        .set(i64::from(ready));
    if config.status.as_ref() != Some(&status) {
        write_status::<FaxPluginConfig>(
            client,
            &ns,
            &name,
            serde_json::to_value(&status).map_err(|e| Error::Serialize("status", e))?,
        )
        .await?;
    }
    Ok(Action::requeue(requeue))
}

/// Reconciles one FaxProvider: validates it on its own and reports the result in its status.
pub async fn reconcile_provider(provider: Arc<FaxProvider>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = object_key("FaxProvider", provider.as_ref());
    let result = async {
        let ns = provider.namespace().ok_or(Error::MissingNamespace)?;
        let secret = match &provider.spec.credentials_secret_ref {
            Some(r) => Api::<Secret>::namespaced(ctx.client.clone(), &ns).get_opt(&r.name).await?,
            None => None,
        };
        let manifest = match &provider.spec.manifest_ref {
            Some(r) => Api::<FaxPluginManifest>::namespaced(ctx.client.clone(), &ns).get_opt(&r.name).await?,
            None => None,
        };
        let result = validate_provider(&provider, secret.as_ref(), manifest.as_ref());
        let status = provider_status(&provider, result.as_ref(), Timestamp::now());
        if provider.status.as_ref() != Some(&status) {
            if let Err(invalid) = &result {
                publish(
                    ctx.as_ref(),
                    provider.as_ref(),
                    EventType::Warning,
                    invalid.reason,
                    invalid.message.clone(),
                    "Validate",
                )
                .await;
            }
            let value = serde_json::to_value(&status).map_err(|e| Error::Serialize("status", e))?;
            write_status::<FaxProvider>(&ctx.client, &ns, &provider.name_any(), value).await?;
        }
        Ok(Action::requeue(Duration::from_secs(600)))
    }
    .await;
    ctx.metrics.observe("faxprovider", started.elapsed(), result.as_ref().err().map(Error::metric_label));
    if result.is_ok() {
        ctx.reset_failures(&key);
    }
    result
}

/// Reconciles one FaxPluginManifest: checks it with the API server's rules and reports the result in its
/// status (and a Warning Event when it is invalid). The configs using it are reconciled through their
/// providers.
pub async fn reconcile_manifest(resource: Arc<FaxPluginManifest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = object_key("FaxPluginManifest", resource.as_ref());
    let result = async {
        let ns = resource.namespace().ok_or(Error::MissingNamespace)?;
        let result = crate::validate::validate_manifest(&resource);
        let status = crate::status::manifest_status(&resource, result.as_ref(), Timestamp::now());
        if resource.status.as_ref() != Some(&status) {
            if let Err(invalid) = &result {
                publish(
                    ctx.as_ref(),
                    resource.as_ref(),
                    EventType::Warning,
                    invalid.reason,
                    invalid.message.clone(),
                    "Validate",
                )
                .await;
            }
            let value = serde_json::to_value(&status).map_err(|e| Error::Serialize("status", e))?;
            write_status::<FaxPluginManifest>(&ctx.client, &ns, &resource.name_any(), value).await?;
        }
        Ok(Action::await_change())
    }
    .await;
    ctx.metrics.observe("faxpluginmanifest", started.elapsed(), result.as_ref().err().map(Error::metric_label));
    if result.is_ok() {
        ctx.reset_failures(&key);
    }
    result
}

fn error_policy<K: Resource>(kind: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action {
    move |obj, error, ctx| {
        let key = object_key(kind, obj.as_ref());
        let delay = ctx.next_backoff(&key);
        tracing::warn!(object = %key, error = %error, retry_in_ms = delay.as_millis() as u64, "reconcile failed");
        Action::requeue(delay)
    }
}

/// Which configs (in `ns`) use provider `provider`.
fn configs_using(configs: &Store<FaxPluginConfig>, ns: &str, provider: &str) -> Vec<ObjectRef<FaxPluginConfig>> {
    configs
        .state()
        .iter()
        .filter(|c| c.namespace().as_deref() == Some(ns) && Referenced::provider_names(c).iter().any(|p| p == provider))
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// Runs the three controllers (providers, configs, manifests) until `shutdown` resolves; in-flight reconciles
/// finish first.
///
/// `concurrency` bounds the reconciles in flight per controller: at a cold start every object is due at once,
/// and unbounded concurrency would hold a thousand responses in memory together.
pub async fn run(
    client: Client,
    ctx: Arc<Context>,
    namespace: Option<String>,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let config = kube::runtime::controller::Config::default().concurrency(concurrency);
    fn api<K: Resource<Scope = k8s_openapi::NamespaceResourceScope>>(client: &Client, ns: &Option<String>) -> Api<K>
    where
        K::DynamicType: Default,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let owned = watcher::Config::default().labels(&names::managed_selector());
    let any = watcher::Config::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // Main streams pass only generation changes (spec edits, creation): the operator's own status writes must
    // not trigger another full reconcile of the object it just wrote. The reflector stores still see every
    // event, so the mappers read current objects.
    let (providers_store, providers_writer) = reflector::store();
    let providers_stream =
        reflector::reflector(providers_writer, watcher(api::<FaxProvider>(&client, &namespace), any.clone()))
            .default_backoff()
            .applied_objects()
            .predicate_filter(predicates::generation, Default::default());
    let providers_ctrl = Controller::for_stream(providers_stream, providers_store.clone());
    let providers_ctrl = providers_ctrl
        .watches(api::<PartialObjectMeta<Secret>>(&client, &namespace), any.clone(), {
            let store = providers_store.clone();
            move |secret: PartialObjectMeta<Secret>| {
                let ns = secret.namespace();
                let name = secret.name_any();
                store
                    .state()
                    .iter()
                    .filter(|p| {
                        p.namespace() == ns && p.spec.credentials_secret_ref.as_ref().is_some_and(|r| r.name == name)
                    })
                    .map(|p| ObjectRef::from_obj(p.as_ref()))
                    .collect::<Vec<_>>()
            }
        })
        .watches(api::<PartialObjectMeta<FaxPluginManifest>>(&client, &namespace), any.clone(), {
            let store = providers_store.clone();
            move |manifest: PartialObjectMeta<FaxPluginManifest>| {
                let ns = manifest.namespace();
                let name = manifest.name_any();
                store
                    .state()
                    .iter()
                    .filter(|p| p.namespace() == ns && p.spec.manifest_ref.as_ref().is_some_and(|r| r.name == name))
                    .map(|p| ObjectRef::from_obj(p.as_ref()))
                    .collect::<Vec<_>>()
            }
        })
        .with_config(config.clone())
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(reconcile_provider, error_policy::<FaxProvider>("FaxProvider"), ctx.clone())
        .for_each(|_| async {});

    // Manifests: only spec changes (generation) are reconciled, never the operator's own status writes.
    let (manifests_store, manifests_writer) = reflector::store();
    let manifests_stream = reflector::reflector(
        manifests_writer,
        watcher(api::<FaxPluginManifest>(&client, &namespace), watcher::Config::default()),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());
    let manifests_ctrl = Controller::for_stream(manifests_stream, manifests_store)
        .with_config(config.clone())
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(reconcile_manifest, error_policy::<FaxPluginManifest>("FaxPluginManifest"), ctx.clone())
        .for_each(|_| async {});

    let (configs, configs_writer) = reflector::store();
    let configs_stream =
        reflector::reflector(configs_writer, watcher(api::<FaxPluginConfig>(&client, &namespace), any.clone()))
            .default_backoff()
            .applied_objects()
            .predicate_filter(predicates::generation, Default::default());
    let configs_ctrl = Controller::for_stream(configs_stream, configs.clone());
    // A provider's status changes (written by the provider controller) do not concern the configs using it.
    let provider_changes = watcher(api::<PartialObjectMeta<FaxProvider>>(&client, &namespace), any.clone())
        .default_backoff()
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let configs_ctrl = configs_ctrl
        // Metadata-only watches: a change is all the trigger needs (the reconcile reads what it uses), and the
        // operator's memory then does not grow with the size of the objects it owns.
        .owns(api::<PartialObjectMeta<Deployment>>(&client, &namespace), owned.clone())
        .owns(api::<PartialObjectMeta<Service>>(&client, &namespace), owned.clone())
        .owns(api::<PartialObjectMeta<ConfigMap>>(&client, &namespace), owned.clone())
        // A trust bundle (apiServer.trustBundle) or registry index (registryIndexRef) ConfigMap is not owned: a
        // change maps to the configs naming it.
        .watches(api::<PartialObjectMeta<ConfigMap>>(&client, &namespace), any.clone(), {
            let configs = configs.clone();
            move |cm: PartialObjectMeta<ConfigMap>| {
                let ns = cm.namespace();
                let name = cm.name_any();
                configs
                    .state()
                    .iter()
                    .filter(|c| {
                        c.namespace() == ns
                            && (c.spec.api_server.trust_bundle.as_ref().is_some_and(|b| b.name == name)
                                || c.spec.registry_index_ref.as_ref().is_some_and(|r| r.name == name))
                    })
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            }
        })
        .watches_stream(provider_changes, {
            let configs = configs.clone();
            move |p: PartialObjectMeta<FaxProvider>| {
                configs_using(&configs, p.namespace().as_deref().unwrap_or(""), &p.name_any())
            }
        })
        // A manifest change maps to the configs using a provider defined by it.
        .watches(api::<PartialObjectMeta<FaxPluginManifest>>(&client, &namespace), any.clone(), {
            let configs = configs.clone();
            let providers = providers_store.clone();
            move |manifest: PartialObjectMeta<FaxPluginManifest>| {
                let ns = manifest.namespace().unwrap_or_default();
                let name = manifest.name_any();
                let mut refs: BTreeMap<String, ObjectRef<FaxPluginConfig>> = BTreeMap::new();
                for p in providers.state().iter().filter(|p| {
                    p.namespace().as_deref() == Some(ns.as_str())
                        && p.spec.manifest_ref.as_ref().is_some_and(|r| r.name == name)
                }) {
                    for r in configs_using(&configs, &ns, &p.name_any()) {
                        refs.insert(r.name.clone(), r);
                    }
                }
                refs.into_values().collect::<Vec<_>>()
            }
        })
        .watches(api::<PartialObjectMeta<Secret>>(&client, &namespace), any, {
            let configs = configs.clone();
            let providers = providers_store;
            move |secret: PartialObjectMeta<Secret>| {
                let ns = secret.namespace().unwrap_or_default();
                let name = secret.name_any();
                let mut refs: BTreeMap<String, ObjectRef<FaxPluginConfig>> = BTreeMap::new();
                // Owned credentials Secrets map back to their config.
                for owner in secret.owner_references() {
                    if owner.kind == "FaxPluginConfig" {
                        let r = ObjectRef::new(&owner.name).within(&ns);
                        refs.insert(owner.name.clone(), r);
                    }
                }
                // Referenced Secrets map to the configs that use a provider (or a database, or publisher keys) reading them.
                for p in providers.state().iter().filter(|p| {
                    p.namespace().as_deref() == Some(ns.as_str())
                        && p.spec.credentials_secret_ref.as_ref().is_some_and(|r| r.name == name)
                }) {
                    for r in configs_using(&configs, &ns, &p.name_any()) {
                        refs.insert(r.name.clone(), r);
                    }
                }
                for c in configs.state().iter().filter(|c| {
                    c.namespace().as_deref() == Some(ns.as_str())
                        && (c.spec.api_server.database.as_ref().is_some_and(|d| d.url_secret_ref.name == name)
                            || c.spec.publisher_keys_secret_ref.as_ref().is_some_and(|k| k.name == name))
                }) {
                    let r = ObjectRef::from_obj(c.as_ref());
                    refs.insert(r.name.clone(), r);
                }
                refs.into_values().collect::<Vec<_>>()
            }
        })
        .with_config(config)
        .graceful_shutdown_on(stopped(stop_rx))
        .run(reconcile_config, error_policy::<FaxPluginConfig>("FaxPluginConfig"), ctx)
        .for_each(|_| async {});

    tokio::join!(providers_ctrl, configs_ctrl, manifests_ctrl);
}
