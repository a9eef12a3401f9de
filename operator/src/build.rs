//! Pure builders: the Kubernetes objects one validated FaxPluginConfig revision needs.
//!
//! Each function returns the full desired object; the reconciler server-side-applies it. Nothing here reads
//! the cluster, so every field the operator sets is visible (and tested) in one place.

use std::collections::BTreeMap;

use faxbot_crds::FaxPluginConfig;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecretVolumeSource, SecurityContext,
    Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use crate::names;
use crate::validate::{Desired, Sidecar};

/// Port the API container listens on (in `names`, which validation reads too).
pub use crate::names::API_PORT;
/// Non-root UID/GID the API server runs as (matches the container image's user).
pub const RUN_AS: i64 = 10001;
/// Where the runtime config ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/faxbot/config";
/// Where the credentials Secret is mounted.
pub const CREDENTIALS_DIR: &str = "/etc/faxbot/credentials";
/// The API server's data directory (SQLite database, local documents).
pub const DATA_DIR: &str = "/var/lib/faxbot";

/// The canary Deployment: the desired revision's pod template under its own name, with `replicas` pods.
/// Its pods carry the config's selector labels, so the Service sends them their share of traffic, plus the
/// track label its own selector adds.
pub fn canary_deployment(config: &FaxPluginConfig, desired: &Desired, replicas: i32) -> Deployment {
    let config_name = config.metadata.name.as_deref().unwrap_or_default();
    let mut d = deployment(config, desired);
    d.metadata.name = Some(names::canary_name(config_name));
    d.metadata.labels.get_or_insert_with(Default::default).insert(names::TRACK_LABEL.into(), "canary".into());
    if let Some(spec) = d.spec.as_mut() {
        spec.replicas = Some(replicas);
        spec.selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(names::TRACK_LABEL.into(), "canary".into());
        spec.template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(names::TRACK_LABEL.into(), "canary".into());
    }
    d
}

/// The PodDisruptionBudget over every API pod of the config (stable and canary share the selector labels),
/// when `apiServer.podDisruptionBudget` asks for one.
pub fn pod_disruption_budget(config: &FaxPluginConfig) -> Option<PodDisruptionBudget> {
    let budget = config.spec.api_server.pod_disruption_budget.as_ref()?;
    let config_name = config.metadata.name.as_deref().unwrap_or_default();
    Some(PodDisruptionBudget {
        metadata: metadata(config, names::api_name(config_name), &[]),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(budget.max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(names::selector_labels(config_name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    })
}

/// Key of the snapshot ConfigMap holding the stable Deployment as JSON.
pub const SNAPSHOT_KEY: &str = "deployment.json";

/// A copy of the stable Deployment (its metadata labels and annotations, selector, strategy and pod
/// template), kept so that a stable Deployment deleted mid-canary or after a rollback can be recreated at
/// the **stable** revision: the spec only renders the desired revision, which may be the one under test or
/// one known to be bad. Written when a canary starts and when one is promoted. Not immutable (it follows
/// the stable revision); it holds no credential, only references to the revision's Secret.
pub fn stable_snapshot(config: &FaxPluginConfig, stable: &Deployment) -> Option<ConfigMap> {
    let config_name = config.metadata.name.as_deref().unwrap_or_default();
    let revision = crate::status::deployment_revision(stable)?;
    let spec = stable.spec.as_ref()?;
    let copy = Deployment {
        metadata: ObjectMeta {
            name: stable.metadata.name.clone(),
            labels: stable.metadata.labels.clone(),
            annotations: stable.metadata.annotations.clone(),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            selector: spec.selector.clone(),
            strategy: spec.strategy.clone(),
            template: spec.template.clone(),
            revision_history_limit: spec.revision_history_limit,
            ..Default::default()
        }),
        status: None,
    };
    let json = serde_json::to_string(&copy).ok()?;
    Some(ConfigMap {
        metadata: metadata(
            config,
            names::stable_snapshot_name(config_name),
            &[(names::KIND_LABEL, "stable-snapshot"), (names::REVISION_LABEL, &revision)],
        ),
        data: Some(BTreeMap::from([(SNAPSHOT_KEY.to_string(), json)])),
        ..Default::default()
    })
}

/// The stable Deployment recreated from a snapshot of `revision` with `replicas` pods; `None` when the
/// snapshot is of another revision or unreadable.
pub fn from_snapshot(
    config: &FaxPluginConfig,
    snapshot: &ConfigMap,
    revision: &str,
    replicas: i32,
) -> Option<Deployment> {
    let json = snapshot.data.as_ref()?.get(SNAPSHOT_KEY)?;
    let mut d: Deployment = serde_json::from_str(json).ok()?;
    if crate::status::deployment_revision(&d).as_deref() != Some(revision) {
        return None;
    }
    d.metadata.namespace = config.metadata.namespace.clone();
    d.metadata.owner_references = Some(vec![owner_reference(config)]);
    d.spec.as_mut()?.replicas = Some(replicas);
    Some(d)
}

/// The owner reference every owned object carries, so deleting the config garbage-collects them.
pub fn owner_reference(config: &FaxPluginConfig) -> OwnerReference {
    OwnerReference {
        api_version: FaxPluginConfig::api_version(&()).into_owned(),
        kind: FaxPluginConfig::kind(&()).into_owned(),
        name: config.metadata.name.clone().unwrap_or_default(),
        uid: config.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn metadata(config: &FaxPluginConfig, name: String, extra_labels: &[(&str, &str)]) -> ObjectMeta {
    let config_name = config.metadata.name.as_deref().unwrap_or_default();
    let mut labels = names::common_labels(config_name);
    for (k, v) in extra_labels {
        labels.insert((*k).into(), (*v).into());
    }
    ObjectMeta {
        name: Some(name),
        namespace: config.metadata.namespace.clone(),
        labels: Some(labels),
        owner_references: Some(vec![owner_reference(config)]),
        ..Default::default()
    }
}

/// The immutable ConfigMap holding one revision's runtime config document.
pub fn config_map(config: &FaxPluginConfig, desired: &Desired) -> ConfigMap {
    let name = names::config_map_name(config.metadata.name.as_deref().unwrap_or_default(), &desired.revision);
    ConfigMap {
        metadata: metadata(
            config,
            name,
            &[(names::REVISION_LABEL, &desired.revision), (names::KIND_LABEL, "runtime-config")],
        ),
        data: Some({
            let mut data = BTreeMap::from([(names::CONFIG_KEY.to_string(), desired.config_json.clone())]);
            if let Some(bundle) = &desired.trust_bundle {
                data.insert(names::TRUST_BUNDLE_KEY.to_string(), bundle.clone());
            }
            data
        }),
        immutable: Some(true),
        ..Default::default()
    }
}

/// The immutable Secret holding exactly the credentials one revision's providers reference.
pub fn credentials_secret(config: &FaxPluginConfig, desired: &Desired) -> Secret {
    let name = names::credentials_secret_name(config.metadata.name.as_deref().unwrap_or_default(), &desired.revision);
    Secret {
        metadata: metadata(
            config,
            name,
            &[(names::REVISION_LABEL, &desired.revision), (names::KIND_LABEL, "credentials")],
        ),
        data: Some(desired.credentials.clone()),
        type_: Some("Opaque".into()),
        immutable: Some(true),
        ..Default::default()
    }
}

/// The ClusterIP Service in front of the API pods.
pub fn service(config: &FaxPluginConfig) -> Service {
    let config_name = config.metadata.name.as_deref().unwrap_or_default();
    Service {
        metadata: metadata(config, names::api_name(config_name), &[]),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(names::selector_labels(config_name)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env_var(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("100m".into())),
            ("memory".to_string(), Quantity("128Mi".into())),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), Quantity("512Mi".into()))])),
        ..Default::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            scheme: Some("HTTP".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// Requests of a sidecar without `resources`: enough for the scheduler to count it. No limit: the operator
/// cannot know what a plugin needs, and a guessed memory limit would kill it.
fn default_sidecar_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("50m".into())),
            ("memory".to_string(), Quantity("64Mi".into())),
        ])),
        ..Default::default()
    }
}

/// The securityContext of every container the operator runs in the API pods.
fn hardened() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
        ..Default::default()
    }
}

/// The container running an `external` provider's plugin beside the API server, in the same pod: the
/// FaxProvider's image, pull policy, resources and environment, plus what the operator decides:
///
/// - `FAXBOT_PLUGIN_LISTEN=127.0.0.1:<port>`: the plugin listens on the pod's loopback only, where the API
///   server calls it (the binding's `url`) and nothing outside the pod can reach it;
/// - `FAXBOT_PLUGIN_TOKEN`, when the provider maps the `pluginToken` credential: a `secretKeyRef` to the
///   revision's credentials Secret, the same key the API server reads as a file, so the value never appears
///   in the Deployment;
/// - `FAXBOT_CREDENTIAL_<NAME>` for every other credential the provider maps (its fax provider's API key and
///   the like, [`names::credential_env_name`]): a `secretKeyRef` to that credential's key in the same Secret;
/// - the API container's hardening (non-root, read-only root filesystem, no privilege escalation, no
///   capabilities, seccomp `RuntimeDefault`) and a writable `emptyDir` at `/tmp`.
///
/// No kubelet probes: the kubelet probes a pod from its node, at the pod's IP, never at its loopback, so an
/// `httpGet` of `/v1/health` on a loopback-only plugin would fail every time (the startup probe would restart
/// the plugin forever and the readiness probe keep the pod out of the Service). A plugin that exits is
/// restarted by the kubelet as any container; one that does not answer fails its calls as `unavailable`.
pub fn sidecar_container(sidecar: &Sidecar, credentials_secret: &str) -> Container {
    let spec = &sidecar.spec;
    let from_secret = |name: &str, key: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: credentials_secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut env: Vec<EnvVar> = spec.env.iter().map(|v| env_var(&v.name, v.value.clone())).collect();
    env.push(env_var("FAXBOT_PLUGIN_LISTEN", format!("127.0.0.1:{}", spec.port)));
    if let Some(key) = &sidecar.token_key {
        env.push(from_secret("FAXBOT_PLUGIN_TOKEN", key));
    }
    for (name, key) in &sidecar.credentials {
        env.push(from_secret(name, key));
    }
    Container {
        name: sidecar.container.clone(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        env: Some(env),
        resources: Some(spec.resources.clone().unwrap_or_else(default_sidecar_resources)),
        security_context: Some(SecurityContext {
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
            ..hardened()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: sidecar.container.clone(),
            mount_path: "/tmp".into(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// The API Deployment running one revision.
pub fn deployment(config: &FaxPluginConfig, desired: &Desired) -> Deployment {
    let config_name = config.metadata.name.as_deref().unwrap_or_default();
    let api = &config.spec.api_server;
    let secret_name = names::credentials_secret_name(config_name, &desired.revision);
    let mut env = vec![
        env_var("FAXBOT_LISTEN", format!("0.0.0.0:{API_PORT}")),
        env_var("FAX_DATA_DIR", DATA_DIR),
        env_var("FAXBOT_CONFIG_PATH", format!("{CONFIG_DIR}/{}", names::CONFIG_KEY)),
        env_var("FAXBOT_CREDENTIALS_DIR", CREDENTIALS_DIR),
        env_var("FAXBOT_REVISION", desired.revision.clone()),
        env_var("FAXBOT_LOG_FORMAT", "json"),
        env_var("REQUIRE_API_KEY", "true"),
        // Readiness fails first so endpoints drop the pod before it stops accepting requests.
        env_var("FAXBOT_DRAIN_DELAY_SECS", "5"),
    ];
    if desired.credentials.contains_key(&names::credential_key("auth", "adminKey")) {
        env.push(env_var("API_KEY_FILE", format!("{CREDENTIALS_DIR}/{}", names::credential_key("auth", "adminKey"))));
    }
    if desired.credentials.contains_key(&names::credential_key("auth", "pepper")) {
        env.push(env_var(
            "FAXBOT_PEPPER_FILE",
            format!("{CREDENTIALS_DIR}/{}", names::credential_key("auth", "pepper")),
        ));
    }
    // The TLS clients (rustls with the platform verifier) read their roots from SSL_CERT_FILE when it is set.
    if desired.trust_bundle.is_some() {
        env.push(env_var("SSL_CERT_FILE", format!("{CONFIG_DIR}/{}", names::TRUST_BUNDLE_KEY)));
    }
    if !desired.trusted_proxies.is_empty() {
        env.push(env_var("FAXBOT_TRUSTED_PROXIES", desired.trusted_proxies.join(",")));
    }
    if let Some(file) = &desired.audit_log_file {
        env.push(env_var("AUDIT_LOG_FILE", file.clone()));
    }
    if desired.shared_database {
        env.push(EnvVar {
            name: "DATABASE_URL".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret_name.clone(),
                    key: names::DATABASE_URL_KEY.into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }

    let data_volume = match &api.data_volume {
        Some(v) => Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: v.persistent_volume_claim_name.clone(),
                read_only: None,
            }),
            ..Default::default()
        },
        None => Volume { name: "data".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() },
    };
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map_name(config_name, &desired.revision),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "credentials".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret_name.clone()),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
        data_volume,
        Volume { name: "tmp".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() },
    ];
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };

    let container = Container {
        name: "api".into(),
        image: Some(api.image.clone()),
        image_pull_policy: api.image_pull_policy.clone(),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: API_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env: Some(env),
        resources: Some(api.resources.clone().unwrap_or_else(default_resources)),
        startup_probe: Some(http_probe("/health", 2, 30)),
        liveness_probe: Some(http_probe("/health", 10, 3)),
        readiness_probe: Some(http_probe("/health/ready", 5, 2)),
        security_context: Some(hardened()),
        volume_mounts: Some(vec![
            mount("config", CONFIG_DIR, true),
            mount("credentials", CREDENTIALS_DIR, true),
            mount("data", DATA_DIR, false),
            mount("tmp", "/tmp", false),
        ]),
        ..Default::default()
    };

    // The `external` providers' plugins, each with its own /tmp.
    let mut containers = vec![container];
    for sidecar in &desired.sidecars {
        containers.push(sidecar_container(sidecar, &secret_name));
        volumes.push(Volume {
            name: sidecar.container.clone(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
    }

    let mut pod_labels = names::common_labels(config_name);
    pod_labels.insert(names::REVISION_LABEL.into(), desired.revision.clone());
    let annotations = BTreeMap::from([
        (names::REVISION_ANNOTATION.to_string(), desired.revision.clone()),
        (names::CONFIG_CHECKSUM_ANNOTATION.to_string(), desired.config_checksum.clone()),
        (names::CREDENTIALS_CHECKSUM_ANNOTATION.to_string(), desired.credentials_checksum.clone()),
    ]);

    // SQLite lives on one pod's volume: two pods must never run against it at once, so replace rather than
    // surge. With a shared database a rolling update keeps full capacity.
    let strategy = if desired.shared_database {
        DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::String("25%".into())),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        }
    } else {
        DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None }
    };

    let mut deployment_metadata = metadata(config, names::api_name(config_name), &[]);
    // On the Deployment, not the pod template: recording it must not roll the pods.
    deployment_metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(names::POD_INPUTS_ANNOTATION.to_string(), desired.pod_inputs.clone());
    Deployment {
        metadata: deployment_metadata,
        spec: Some(DeploymentSpec {
            replicas: Some(api.replicas),
            revision_history_limit: Some(config.spec.revision_history_limit),
            selector: LabelSelector { match_labels: Some(names::selector_labels(config_name)), ..Default::default() },
            strategy: Some(strategy),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    // The user's pod annotations first, so the operator's own keys win.
                    annotations: Some(api.pod_annotations.clone().into_iter().chain(annotations).collect()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers,
                    volumes: Some(volumes),
                    service_account_name: api.service_account_name.clone(),
                    node_selector: (!api.node_selector.is_empty()).then(|| api.node_selector.clone()),
                    affinity: api.affinity.clone(),
                    tolerations: (!api.tolerations.is_empty()).then(|| api.tolerations.clone()),
                    topology_spread_constraints: (!api.topology_spread_constraints.is_empty())
                        .then(|| api.topology_spread_constraints.clone()),
                    image_pull_secrets: (!api.image_pull_secrets.is_empty()).then(|| api.image_pull_secrets.clone()),
                    priority_class_name: api.priority_class_name.clone(),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(30),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS),
                        run_as_group: Some(RUN_AS),
                        fs_group: Some(RUN_AS),
                        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::{ADMIN_KEY, DB_URL, PEPPER, base_config, base_referenced, secret};
    use crate::validate::validate_config;

    fn desired() -> (FaxPluginConfig, Desired) {
        let c = base_config();
        let d = validate_config(&c, &base_referenced()).unwrap();
        (c, d)
    }

    #[test]
    fn config_map_is_immutable_named_by_revision_and_owned() {
        let (c, d) = desired();
        let cm = config_map(&c, &d);
        assert_eq!(cm.metadata.name.as_deref(), Some(format!("main-config-{}", d.revision).as_str()));
        assert_eq!(cm.immutable, Some(true));
        let owner = &cm.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("FaxPluginConfig", "main", Some(true))
        );
        let doc = &cm.data.as_ref().unwrap()[names::CONFIG_KEY];
        assert_eq!(faxbot_contract::validate::parse_and_validate(doc.as_bytes()).unwrap(), d.runtime);
    }

    #[test]
    fn credentials_appear_only_in_the_secret() {
        let mut c = base_config();
        c.spec.api_server.database = Some(faxbot_crds::DatabaseSpec {
            url_secret_ref: faxbot_crds::SecretKeyRef { name: "db".into(), key: "url".into() },
        });
        let mut r = base_referenced();
        r.secrets.insert("db".into(), secret("db", &[("url", DB_URL)]));
        let d = validate_config(&c, &r).unwrap();
        let secret = credentials_secret(&c, &d);
        let data = secret.data.as_ref().unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), vec!["auth.adminKey", "auth.pepper", "database.url"]);
        assert_eq!(secret.immutable, Some(true));

        let public = [
            serde_json::to_string(&config_map(&c, &d)).unwrap(),
            serde_json::to_string(&deployment(&c, &d)).unwrap(),
            serde_json::to_string(&service(&c)).unwrap(),
            format!(
                "{:?}",
                crate::status::config_status(
                    &c,
                    crate::status::Outcome::Applied { desired: &d, deployment: None },
                    "2026-01-01T00:00:00Z".parse().unwrap()
                )
            ),
        ];
        for text in public {
            for value in [ADMIN_KEY, PEPPER, DB_URL, "db-password-never-leak"] {
                assert!(!text.contains(value), "credential leaked into {text}");
            }
        }
    }

    #[test]
    fn deployment_is_hardened_probed_and_carries_the_checksums() {
        let (c, d) = desired();
        let dep = deployment(&c, &d);
        let spec = dep.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.strategy.as_ref().unwrap().type_.as_deref(), Some("Recreate"));
        let template = &spec.template;
        let annotations = template.metadata.as_ref().unwrap().annotations.as_ref().unwrap();
        assert_eq!(annotations[names::REVISION_ANNOTATION], d.revision);
        assert_eq!(annotations[names::CREDENTIALS_CHECKSUM_ANNOTATION], d.credentials_checksum);
        let pod = template.spec.as_ref().unwrap();
        let psc = pod.security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.service_account_name, None, "the namespace's default unless one is named");
        let container = &pod.containers[0];
        let sc = container.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            container.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(),
            Some("/health/ready")
        );
        assert_eq!(
            container.liveness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(),
            Some("/health")
        );
        assert!(container.resources.as_ref().unwrap().requests.is_some());
        let env: BTreeMap<_, _> =
            container.env.as_ref().unwrap().iter().map(|e| (e.name.as_str(), e.value.clone())).collect();
        assert_eq!(env["API_KEY_FILE"].as_deref(), Some("/etc/faxbot/credentials/auth.adminKey"));
        assert_eq!(env["FAXBOT_REVISION"].as_deref(), Some(d.revision.as_str()));
        assert_eq!(env["REQUIRE_API_KEY"].as_deref(), Some("true"));
        let volumes = pod.volumes.as_ref().unwrap();
        assert_eq!(volumes[0].config_map.as_ref().unwrap().name, format!("main-config-{}", d.revision));
        assert_eq!(
            volumes[1].secret.as_ref().unwrap().secret_name.as_deref(),
            Some(format!("main-credentials-{}", d.revision).as_str())
        );
        // The selector never carries the revision: it is immutable on a Deployment.
        assert!(!spec.selector.match_labels.as_ref().unwrap().contains_key(names::REVISION_LABEL));
    }

    #[test]
    fn a_trust_bundle_goes_into_the_config_map_and_ssl_cert_file_names_it() {
        let (c, mut d) = desired();
        let env = |d: &Desired| -> Vec<(String, Option<String>)> {
            deployment(&c, d).spec.unwrap().template.spec.unwrap().containers[0]
                .env
                .clone()
                .unwrap()
                .into_iter()
                .map(|e| (e.name, e.value))
                .collect()
        };
        assert!(!env(&d).iter().any(|(n, _)| n == "SSL_CERT_FILE"));
        assert_eq!(config_map(&c, &d).data.unwrap().len(), 1);
        d.trust_bundle = Some("-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n".into());
        let data = config_map(&c, &d).data.unwrap();
        assert_eq!(data[names::TRUST_BUNDLE_KEY], d.trust_bundle.clone().unwrap());
        let file = env(&d).into_iter().find(|(n, _)| n == "SSL_CERT_FILE").and_then(|(_, v)| v);
        assert_eq!(file.as_deref(), Some("/etc/faxbot/config/ca-bundle.crt"), "inside the mounted ConfigMap");
        assert!(!env(&d).iter().any(|(n, _)| n == "FAXBOT_TRUSTED_PROXIES"));
        d.trusted_proxies = vec!["198.18.0.0/24".into(), "2001:db8::/64".into()];
        let proxies = env(&d).into_iter().find(|(n, _)| n == "FAXBOT_TRUSTED_PROXIES").and_then(|(_, v)| v);
        assert_eq!(proxies.as_deref(), Some("198.18.0.0/24,2001:db8::/64"));
        assert!(!env(&d).iter().any(|(n, _)| n == "AUDIT_LOG_FILE"));
        d.audit_log_file = Some("/var/lib/faxbot/audit.log".into());
        let file = env(&d).into_iter().find(|(n, _)| n == "AUDIT_LOG_FILE").and_then(|(_, v)| v);
        assert_eq!(file.as_deref(), Some("/var/lib/faxbot/audit.log"));
    }

    #[test]
    fn an_external_provider_adds_its_plugin_hardened_on_loopback_with_the_token_by_reference() {
        use crate::validate::tests::{PLUGIN_TOKEN_VALUE, external_config};
        use faxbot_crds::{PullPolicy, SidecarEnvVar};
        // (outbound chain, container, port, token key, the provider's own env/pull policy/resources?)
        let table = [
            (&["acme"][..], "plugin-acme", 9000, Some("outbound.pluginToken"), false),
            (&["acme"][..], "plugin-acme", 9000, Some("outbound.pluginToken"), true),
            (&["line", "other"][..], "plugin-other", 9001, None, false),
        ];
        for (outbound, name, port, token_key, customised) in table {
            let (c, mut r) = external_config(outbound);
            let limits = ResourceRequirements {
                limits: Some(BTreeMap::from([("memory".to_string(), Quantity("256Mi".into()))])),
                ..Default::default()
            };
            if customised {
                let sidecar = r.providers.get_mut("acme").unwrap().spec.sidecar.as_mut().unwrap();
                sidecar.env = vec![
                    SidecarEnvVar { name: "ACME_REGION".into(), value: "eu-1".into() },
                    SidecarEnvVar { name: "ACME_LOG".into(), value: "info".into() },
                ];
                sidecar.image_pull_policy = Some(PullPolicy::Always);
                sidecar.resources = Some(limits.clone());
            }
            let d = validate_config(&c, &r).unwrap();
            let dep = deployment(&c, &d);
            let pod = dep.spec.as_ref().unwrap().template.spec.clone().unwrap();
            let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, vec!["api", name], "the API container stays first");
            let sidecar = &pod.containers[1];
            assert_eq!(sidecar.image.as_deref(), Some("acme/fax-plugin:1"));
            assert_eq!(sidecar.image_pull_policy.as_deref(), customised.then_some("Always"));

            let env: Vec<(&str, Option<&str>)> =
                sidecar.env.as_ref().unwrap().iter().map(|e| (e.name.as_str(), e.value.as_deref())).collect();
            let listen = format!("127.0.0.1:{port}");
            let mut want = Vec::new();
            if customised {
                want.extend([("ACME_REGION", Some("eu-1")), ("ACME_LOG", Some("info"))]);
            }
            want.push(("FAXBOT_PLUGIN_LISTEN", Some(listen.as_str())));
            if token_key.is_some() {
                want.push(("FAXBOT_PLUGIN_TOKEN", None));
            }
            assert_eq!(env, want, "{name}");
            let token = sidecar.env.as_ref().unwrap().iter().find(|e| e.name == "FAXBOT_PLUGIN_TOKEN");
            let reference = token.and_then(|e| e.value_from.as_ref()?.secret_key_ref.clone());
            assert_eq!(
                reference.map(|r| (r.name, r.key, r.optional)),
                token_key.map(|k| (format!("main-credentials-{}", d.revision), k.to_string(), Some(false))),
                "the API server's own Secret key, by reference"
            );

            // No kubelet probes: they would reach the pod IP, where a loopback-only plugin does not listen.
            assert!(sidecar.startup_probe.is_none() && sidecar.readiness_probe.is_none());
            assert!(sidecar.liveness_probe.is_none() && sidecar.ports.is_none());
            let sc = sidecar.security_context.as_ref().unwrap();
            assert_eq!(sc.run_as_non_root, Some(true));
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert_eq!(sc.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_string()][..]));
            assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
            assert_eq!(pod.security_context.as_ref().unwrap().run_as_user, Some(RUN_AS), "the pod's user");
            // Its own writable /tmp, and nothing else: not the credentials, the config or the data.
            let mounts = sidecar.volume_mounts.as_ref().unwrap();
            assert_eq!(mounts.len(), 1);
            assert_eq!((mounts[0].name.as_str(), mounts[0].mount_path.as_str()), (name, "/tmp"));
            let volume = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == name).unwrap();
            assert!(volume.empty_dir.is_some());
            let requests = sidecar.resources.as_ref().unwrap();
            if customised {
                assert_eq!(requests, &limits);
            } else {
                assert_eq!(requests.requests.as_ref().unwrap()["memory"], Quantity("64Mi".into()));
                assert!(requests.limits.is_none(), "no guessed limit");
            }

            // The API server calls it at the same address.
            let outbound = serde_json::to_value(&d.runtime.providers).unwrap();
            assert!(outbound.to_string().contains(&format!("\"url\":\"http://127.0.0.1:{port}\"")), "{outbound}");
            // Canary pods run it too, and the stable snapshot keeps it.
            let canary = canary_deployment(&c, &d, 1);
            assert_eq!(&canary.spec.unwrap().template.spec.unwrap().containers[1], sidecar);
            let mut stable = dep.clone();
            stable.metadata.namespace = Some("fax".into());
            let snapshot = stable_snapshot(&c, &stable).unwrap();
            let recreated = from_snapshot(&c, &snapshot, &d.revision, 1).unwrap();
            assert_eq!(&recreated.spec.unwrap().template.spec.unwrap().containers[1], sidecar);

            // No credential value anywhere public.
            let public = [
                serde_json::to_string(&dep).unwrap(),
                serde_json::to_string(&config_map(&c, &d)).unwrap(),
                serde_json::to_string(&snapshot).unwrap(),
                d.config_json.clone(),
            ];
            for text in public {
                for value in [PLUGIN_TOKEN_VALUE, ADMIN_KEY, PEPPER] {
                    assert!(!text.contains(value), "a credential leaked into {text}");
                }
            }
            if token_key.is_some() {
                let data = credentials_secret(&c, &d).data.unwrap();
                assert_eq!(data["outbound.pluginToken"].0, PLUGIN_TOKEN_VALUE.as_bytes(), "only in the Secret");
            }
        }
        // Without an external provider the pods are what they were: one container, four volumes.
        let (c, d) = desired();
        let pod = deployment(&c, &d).spec.unwrap().template.spec.unwrap();
        assert_eq!((pod.containers.len(), pod.volumes.unwrap().len()), (1, 4));
    }

    #[test]
    fn an_external_providers_credentials_reach_its_sidecar_by_reference_only() {
        use crate::validate::tests::{PLUGIN_TOKEN_VALUE, PROVIDER_KEY_VALUE, with_sidecar_credentials};
        let (c, r) = with_sidecar_credentials(&[
            ("pluginToken", "pluginToken"),
            ("apiSecret", "api-secret"),
            ("apiKey", "api-key"),
        ]);
        let d = validate_config(&c, &r).unwrap();
        let dep = deployment(&c, &d);
        let pod = dep.spec.as_ref().unwrap().template.spec.clone().unwrap();
        let secret_name = format!("main-credentials-{}", d.revision);
        let references: Vec<(&str, &str)> = pod.containers[1]
            .env
            .as_ref()
            .unwrap()
            .iter()
            .filter(|e| e.name != "FAXBOT_PLUGIN_LISTEN")
            .map(|e| {
                assert_eq!(e.value, None, "{}: by reference, never a value", e.name);
                let r = e.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()).unwrap();
                assert_eq!((r.name.as_str(), r.optional), (secret_name.as_str(), Some(false)), "{}", e.name);
                (e.name.as_str(), r.key.as_str())
            })
            .collect();
        assert_eq!(
            references,
            vec![
                ("FAXBOT_PLUGIN_TOKEN", "outbound.pluginToken"),
                ("FAXBOT_CREDENTIAL_API_KEY", "outbound.apiKey"),
                ("FAXBOT_CREDENTIAL_API_SECRET", "outbound.apiSecret"),
            ],
            "the token as before, then the provider's credentials in name order, from the revision's Secret"
        );
        // The keys exist in the revision's Secret; the API container gets no new variable.
        let data = credentials_secret(&c, &d).data.unwrap();
        assert_eq!(data["outbound.apiKey"].0, PROVIDER_KEY_VALUE.as_bytes());
        assert!(data.contains_key("outbound.apiSecret") && data.contains_key("outbound.pluginToken"));
        let api_env = pod.containers[0].env.as_ref().unwrap();
        assert!(
            !api_env.iter().any(|e| e.name.starts_with("FAXBOT_CREDENTIAL_") || e.name.starts_with("FAXBOT_PLUGIN_"))
        );
        // No value anywhere public, including the canary and the stable snapshot.
        let mut stable = dep.clone();
        stable.metadata.namespace = Some("fax".into());
        let public = [
            serde_json::to_string(&dep).unwrap(),
            serde_json::to_string(&canary_deployment(&c, &d, 1)).unwrap(),
            serde_json::to_string(&stable_snapshot(&c, &stable).unwrap()).unwrap(),
            serde_json::to_string(&config_map(&c, &d)).unwrap(),
        ];
        for text in public {
            for value in [PROVIDER_KEY_VALUE, "s3cr3t", PLUGIN_TOKEN_VALUE, ADMIN_KEY, PEPPER] {
                assert!(!text.contains(value), "a credential leaked into {text}");
            }
        }
    }

    #[test]
    fn service_selects_every_revision_of_the_config() {
        let (c, _) = desired();
        let svc = service(&c);
        let spec = svc.spec.unwrap();
        assert_eq!(spec.selector.unwrap(), names::selector_labels("main"));
        assert_eq!(spec.ports.unwrap()[0].port, 80);
    }

    #[test]
    fn scheduling_settings_reach_the_pods_roll_them_and_a_budget_covers_canary_pods_too() {
        let plain = base_config();
        let plain_desired = validate_config(&plain, &base_referenced()).unwrap();
        assert!(pod_disruption_budget(&plain).is_none(), "no budget unless asked for");
        let mut c = plain.clone();
        let api = &mut c.spec.api_server;
        api.node_selector.insert("topology.kubernetes.io/zone".into(), "a".into());
        api.tolerations.push(k8s_openapi::api::core::v1::Toleration {
            key: Some("dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("fax".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        });
        api.pod_annotations.insert("mesh.example/inject".into(), "true".into());
        api.pod_annotations.insert(names::REVISION_ANNOTATION.into(), "forged".into());
        api.image_pull_secrets.push(k8s_openapi::api::core::v1::LocalObjectReference { name: "regcred".into() });
        api.priority_class_name = Some("fax-critical".into());
        api.pod_disruption_budget = Some(faxbot_crds::DisruptionBudgetSpec { max_unavailable: 1 });
        let d = validate_config(&c, &base_referenced()).unwrap();
        assert_ne!(d.revision, plain_desired.revision, "scheduling changes roll the pods");
        let dep = deployment(&c, &d);
        let template = dep.spec.unwrap().template;
        let pod = template.spec.unwrap();
        assert_eq!(pod.node_selector.unwrap()["topology.kubernetes.io/zone"], "a");
        assert_eq!(pod.tolerations.unwrap()[0].key.as_deref(), Some("dedicated"));
        assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "regcred");
        assert_eq!(pod.priority_class_name.as_deref(), Some("fax-critical"));
        let annotations = template.metadata.unwrap().annotations.unwrap();
        assert_eq!(annotations["mesh.example/inject"], "true");
        assert_eq!(annotations[names::REVISION_ANNOTATION], d.revision, "the operator's own keys win");
        let pdb = pod_disruption_budget(&c).unwrap();
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        // The selector labels, without the track label: stable and canary pods count together.
        assert_eq!(spec.selector.unwrap().match_labels, Some(names::selector_labels("main")));
        // A budget alone does not touch the pods.
        let mut only_budget = plain.clone();
        only_budget.spec.api_server.pod_disruption_budget =
            Some(faxbot_crds::DisruptionBudgetSpec { max_unavailable: 2 });
        assert_eq!(validate_config(&only_budget, &base_referenced()).unwrap().revision, plain_desired.revision);
    }
}
