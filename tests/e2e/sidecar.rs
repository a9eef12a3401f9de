//! The sidecar plugin (`external`) on a real control plane: admission refuses a sidecar on another plugin and
//! an `external` provider without one; the operator adds the plugin's container to the API pods with the token
//! and the provider's own credentials by reference, points the runtime config's binding at it, accepts it in
//! a HIPAA config only when `sidecar.hipaaCompliant` vouches for it, refuses a port conflict (Ready=False and a
//! Warning Event, the Deployment untouched), and runs a changed sidecar in the canary pods first.
//!
//! Nothing here needs the plugin to run (the API pods are only rendered and, without `--kubelet`, made Ready
//! by kwok), so it runs on the plain control plane too.

use std::time::Duration;

use faxbot_crds::{FaxPluginConfig, FaxProvider};
use faxbot_operator::names;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret};
use kube::Api;
use serde_json::{Value, json};

use crate::support::*;
use crate::{T, deployment_revision, events_for, wait_ready};

const TOKEN: &str = "e2e-plugin-token-do-not-leak-3b7e";
/// The sidecar's own provider key (credential `apiKey`, Secret key `api-key`).
const PROVIDER_KEY: &str = "e2e-provider-api-key-do-not-leak-91c4";
const ROTATED_KEY: &str = "e2e-rotated-provider-key-do-not-leak-5d20";

/// The sidecar's image: on a real node the Python plugin image `scripts/images.sh` loads (its pods run), else
/// a made-up name (without a kubelet nothing runs).
fn plugin_image() -> String {
    std::env::var("FAXBOT_TEST_PLUGIN_PYTHON_IMAGE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "acme/fax-plugin:1".into())
}

/// Whether this cluster has a real node (pods run; the canary needs the test PostgreSQL).
fn real_node() -> bool {
    std::env::var("FAXBOT_TEST_POD_POSTGRES_URL").is_ok_and(|v| !v.is_empty())
}

fn external(port: i32, image: &str, extra: impl Fn(&mut Value)) -> Value {
    let mut p = json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxProvider", "metadata": {"name": "acme"},
        "spec": {"plugin": "external",
                 // Overwritten by the operator with the sidecar's address.
                 "settings": {"url": "http://127.0.0.1:1", "timeoutMs": 5000},
                 "credentialsSecretRef": {"name": "acme", "items": [
                     {"credential": "pluginToken", "key": "pluginToken"},
                     {"credential": "apiKey", "key": "api-key"}]},
                 "sidecar": {"image": image, "port": port, "env": [{"name": "ACME_REGION", "value": "eu-1"}]}}});
    extra(&mut p);
    p
}

fn config(name: &str, canary: bool) -> Value {
    let mut spec = json!({
        "apiServer": {"image": crate::api_image()},
        "slots": {"outbound": ["acme"], "auth": "keys"},
        // `acme` does not set sidecar.hipaaCompliant (step 3 covers HIPAA configs).
        "compliance": {"hipaa": false}
    });
    if canary {
        spec["apiServer"]["database"] = json!({"urlSecretRef": {"name": "db", "key": "url"}});
        // Without a kubelet there are no metrics to analyse: the canary waits at its first step.
        spec["rollout"] = json!({"strategy": "Canary", "steps": [{"weight": 50}],
            "analysis": {"interval": "1m", "maxNoDataChecks": 100, "progressDeadline": "1h"}});
    }
    json!({"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxPluginConfig", "metadata": {"name": name},
        "spec": spec})
}

/// A config with the default compliance (`hipaa: true`) whose outbound provider is `provider`.
fn hipaa_config(name: &str, provider: &str) -> Value {
    let mut c = config(name, false);
    c["spec"]["slots"]["outbound"] = json!([provider]);
    drop(c["spec"].as_object_mut().unwrap().remove("compliance"));
    c
}

fn containers(d: &Deployment) -> Vec<Container> {
    d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).map(|p| p.containers.clone()).unwrap_or_default()
}

fn env_value(c: &Container, name: &str) -> Option<String> {
    c.env.as_ref()?.iter().find(|e| e.name == name)?.value.clone()
}

/// The runtime document of one revision.
async fn runtime_document(client: &kube::Client, ns: &str, config: &str, revision: &str) -> Value {
    let cm: ConfigMap =
        Api::namespaced(client.clone(), ns).get(&names::config_map_name(config, revision)).await.unwrap();
    serde_json::from_str(&cm.data.unwrap()[names::CONFIG_KEY]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_provider_runs_as_a_sidecar_of_the_api_pods() {
    let _cluster = shared_cluster().await;
    let Some(kubeconfig) = kubeconfig() else { return };
    let client = client(&kubeconfig).await;
    install_crds(&client).await;
    let ns = namespace(&client, "e2e-side").await;
    let image = plugin_image();
    let _cleanup = cleanup(&kubeconfig, &[&ns]);

    // 1. Admission: the CRD's rules, before anything is stored.
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "a sidecar on another plugin",
            external(9000, &image, |p| p["spec"]["plugin"] = json!("test")),
            "spec.sidecar is only for plugin external",
        ),
        (
            "external without a sidecar",
            external(9000, &image, |p| drop(p["spec"].as_object_mut().unwrap().remove("sidecar"))),
            "plugin external runs as a sidecar container beside the API server: set spec.sidecar",
        ),
        (
            "an operator variable",
            external(9000, &image, |p| {
                p["spec"]["sidecar"]["env"] = json!([{"name": "FAXBOT_PLUGIN_TOKEN", "value": "x"}])
            }),
            "names starting with FAXBOT_PLUGIN_ are set by the operator",
        ),
        (
            "a credential variable",
            external(9000, &image, |p| {
                p["spec"]["sidecar"]["env"] = json!([{"name": "FAXBOT_CREDENTIAL_API_KEY", "value": "literal"}])
            }),
            "names starting with FAXBOT_CREDENTIAL_ are set by the operator from spec.credentialsSecretRef",
        ),
        (
            "a variable twice",
            external(9000, &image, |p| {
                p["spec"]["sidecar"]["env"] = json!([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}])
            }),
            "duplicate entries for key [name=\"A\"]",
        ),
        ("a privileged port", external(80, &image, |_| {}), "spec.sidecar.port"),
        (
            "an unknown pull policy",
            external(9000, &image, |p| p["spec"]["sidecar"]["imagePullPolicy"] = json!("Sometimes")),
            "Unsupported value: \"Sometimes\"",
        ),
        ("no image", external(9000, "", |_| {}), "spec.sidecar.image"),
    ];
    for (what, manifest, fragment) in cases {
        let err = apply_json::<FaxProvider>(&client, &ns, manifest).await.expect_err(what);
        let message = match &err {
            kube::Error::Api(s) => s.message.clone(),
            other => panic!("{what}: {other}"),
        };
        assert!(message.contains(fragment), "{what}: {message}");
    }
    // The port defaults to 8090.
    let defaulted = apply_json::<FaxProvider>(
        &client,
        &ns,
        external(9000, &image, |p| {
            p["metadata"]["name"] = json!("defaults");
            drop(p["spec"]["sidecar"].as_object_mut().unwrap().remove("port"));
        }),
    )
    .await
    .unwrap();
    assert_eq!(defaulted.spec.sidecar.unwrap().port, 8090);

    // 2. A config using an external provider: the plugin's container in the API pods.
    put_secret(&client, &ns, "admin", &[("adminKey", ADMIN_KEY), ("pepper", PEPPER)]).await;
    put_secret(&client, &ns, "acme", &[("pluginToken", TOKEN), ("api-key", PROVIDER_KEY)]).await;
    // The canary's replicas share a database: on a real node the test PostgreSQL, else a name nothing calls.
    let database = if real_node() {
        crate::pods::pod_database().await
    } else {
        "postgres://faxbot:e2e-db-password@db.invalid:5432/faxbot".to_string()
    };
    put_secret(&client, &ns, "db", &[("url", &database)]).await;
    apply_keys_provider(&client, &ns).await;
    apply_json::<FaxProvider>(&client, &ns, external(9000, &image, |_| {})).await.unwrap();
    apply_json::<FaxPluginConfig>(&client, &ns, config("main", false)).await.unwrap();
    let mut operator = Operator::start(&kubeconfig, &ns, "op-side");
    let configs: Api<FaxPluginConfig> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_ready(&configs, "main", ("True", "Available")).await;
    let rev1 = deployment_revision(&deployments, "main-api").await.unwrap();

    let dep = deployments.get("main-api").await.unwrap();
    let all = containers(&dep);
    assert_eq!(all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["api", "plugin-acme"]);
    let sidecar = &all[1];
    assert_eq!(sidecar.image.as_deref(), Some(image.as_str()));
    assert_eq!(env_value(sidecar, "FAXBOT_PLUGIN_LISTEN").as_deref(), Some("127.0.0.1:9000"));
    assert_eq!(env_value(sidecar, "ACME_REGION").as_deref(), Some("eu-1"));
    let token = sidecar.env.as_ref().unwrap().iter().find(|e| e.name == "FAXBOT_PLUGIN_TOKEN").unwrap();
    let reference = token.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!(
        (reference.name.as_str(), reference.key.as_str()),
        (names::credentials_secret_name("main", &rev1).as_str(), "outbound.pluginToken")
    );
    let sc = sidecar.security_context.as_ref().unwrap();
    assert_eq!(
        (sc.run_as_non_root, sc.read_only_root_filesystem, sc.allow_privilege_escalation),
        (Some(true), Some(true), Some(false))
    );
    // The provider's own credential: FAXBOT_CREDENTIAL_<NAME> by reference to its key in the same Secret.
    let key = sidecar.env.as_ref().unwrap().iter().find(|e| e.name == "FAXBOT_CREDENTIAL_API_KEY").unwrap();
    assert_eq!(key.value, None);
    let reference = key.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!(
        (reference.name.as_str(), reference.key.as_str()),
        (names::credentials_secret_name("main", &rev1).as_str(), "outbound.apiKey")
    );
    // Every operator variable but the address is a reference; the API container gets none of them.
    for e in sidecar.env.as_ref().unwrap().iter().filter(|e| e.name.starts_with("FAXBOT_CREDENTIAL_")) {
        assert!(e.value.is_none() && e.value_from.is_some(), "{}: by reference only", e.name);
    }
    assert!(!all[0].env.as_ref().unwrap().iter().any(|e| e.name.starts_with("FAXBOT_CREDENTIAL_")));
    // The referenced keys exist in the API server's own Secret, and nothing public holds a value.
    let secret: Secret =
        Api::namespaced(client.clone(), &ns).get(&names::credentials_secret_name("main", &rev1)).await.unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["outbound.pluginToken"].0, TOKEN.as_bytes());
    assert_eq!(data["outbound.apiKey"].0, PROVIDER_KEY.as_bytes());
    let public = serde_json::to_string(&dep).unwrap();
    for value in [TOKEN, PROVIDER_KEY] {
        assert!(!public.contains(value), "credentials by reference only");
    }
    // The server calls the plugin on loopback at its port; the user's url is overwritten, and the binding says
    // the sidecar was not admitted to patient data.
    let document = runtime_document(&client, &ns, "main", &rev1).await;
    assert_eq!(document["providers"]["outbound"]["plugin"], "external");
    assert_eq!(document["providers"]["outbound"]["settings"]["url"], "http://127.0.0.1:9000");
    assert_eq!(document["providers"]["outbound"]["settings"]["hipaaCompliant"], false);
    assert!(!document.to_string().contains(TOKEN) && !document.to_string().contains(PROVIDER_KEY));
    // Exactly what the pure pipeline renders.
    let (c, desired) = crate::expected(&client, &ns, "main").await;
    assert_eq!(desired.revision, rev1);
    let want = &containers(&faxbot_operator::build::deployment(&c, &desired))[1];
    // (The server defaults the pull policy and the termination message fields.)
    assert_eq!(
        (&sidecar.image, &sidecar.env, &sidecar.volume_mounts, &sidecar.security_context, &sidecar.resources),
        (&want.image, &want.env, &want.volume_mounts, &want.security_context, &want.resources)
    );
    assert!(sidecar.startup_probe.is_none() && sidecar.readiness_probe.is_none() && sidecar.liveness_probe.is_none());

    // 3. HIPAA (the default compliance): a sidecar nobody vouched for is refused; one whose FaxProvider sets
    //    sidecar.hipaaCompliant is accepted, and its binding tells the server to check the sidecar's manifest.
    apply_json::<FaxPluginConfig>(&client, &ns, hipaa_config("strict", "acme")).await.unwrap();
    let message = wait_ready(&configs, "strict", ("False", "NotHipaaCapable")).await;
    assert!(
        message.contains("FaxProvider acme uses plugin `external`, whose spec.sidecar.hipaaCompliant is not true"),
        "{message}"
    );
    assert!(deployments.get_opt("strict-api").await.unwrap().is_none(), "nothing runs for a refused config");
    apply_json::<FaxProvider>(
        &client,
        &ns,
        external(9200, &image, |p| {
            p["metadata"]["name"] = json!("vouched");
            p["spec"]["sidecar"]["hipaaCompliant"] = json!(true);
            // A user's `false` is overwritten like the url.
            p["spec"]["settings"]["hipaaCompliant"] = json!(false);
        }),
    )
    .await
    .unwrap();
    apply_json::<FaxPluginConfig>(&client, &ns, hipaa_config("hipaa", "vouched")).await.unwrap();
    wait_ready(&configs, "hipaa", ("True", "Available")).await;
    let hipaa_rev = deployment_revision(&deployments, "hipaa-api").await.unwrap();
    let document = runtime_document(&client, &ns, "hipaa", &hipaa_rev).await;
    assert_eq!(document["providers"]["outbound"]["settings"]["hipaaCompliant"], true);
    assert_eq!(document["providers"]["outbound"]["settings"]["url"], "http://127.0.0.1:9200");
    let hipaa_dep = deployments.get("hipaa-api").await.unwrap();
    assert_eq!(containers(&hipaa_dep)[1].name, "plugin-vouched");

    // 4. A sidecar on the API server's port: refused on the provider and on the config, with Warning Events;
    //    the Deployment keeps serving the last good revision.
    let untouched = deployments.get("main-api").await.unwrap().metadata.generation;
    apply_json::<FaxProvider>(&client, &ns, external(8080, &image, |_| {})).await.unwrap();
    let message = wait_ready(&configs, "main", ("False", "SidecarPortConflict")).await;
    assert!(message.contains("FaxProvider acme: spec.sidecar.port 8080 is the API server's own port"), "{message}");
    let providers: Api<FaxProvider> = Api::namespaced(client.clone(), &ns);
    wait_for(T, "the provider's Ready=False SidecarPortConflict", || {
        let providers = providers.clone();
        async move {
            let p = providers.get("acme").await.ok()?;
            let c = p.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
            (c.status == "False" && c.reason == "SidecarPortConflict").then_some(())
        }
    })
    .await;
    for object in ["main", "acme"] {
        wait_for(T, "a SidecarPortConflict Warning Event", || {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                events_for(&client, &ns, object)
                    .await
                    .into_iter()
                    .any(|e| {
                        e.reason.as_deref() == Some("SidecarPortConflict") && e.type_.as_deref() == Some("Warning")
                    })
                    .then_some(())
            }
        })
        .await;
    }
    let after = deployments.get("main-api").await.unwrap();
    assert_eq!(after.metadata.generation, untouched, "an invalid provider must not touch the Deployment");

    // 5. A new port: a new revision, listening and called there.
    apply_json::<FaxProvider>(&client, &ns, external(9100, &image, |_| {})).await.unwrap();
    let rev2 = wait_for(T, "a new revision for the new port", || {
        let (deployments, rev1) = (deployments.clone(), rev1.clone());
        async move { deployment_revision(&deployments, "main-api").await.filter(|r| *r != rev1) }
    })
    .await;
    wait_ready(&configs, "main", ("True", "Available")).await;
    let dep = deployments.get("main-api").await.unwrap();
    assert_eq!(env_value(&containers(&dep)[1], "FAXBOT_PLUGIN_LISTEN").as_deref(), Some("127.0.0.1:9100"));
    let document = runtime_document(&client, &ns, "main", &rev2).await;
    assert_eq!(document["providers"]["outbound"]["settings"]["url"], "http://127.0.0.1:9100");
    // A rotated provider key is a new revision too (through the credentials checksum), whose Secret the
    // sidecar's reference names.
    put_secret(&client, &ns, "acme", &[("pluginToken", TOKEN), ("api-key", ROTATED_KEY)]).await;
    let rev3 = wait_for(T, "a new revision for the rotated provider key", || {
        let (deployments, rev2) = (deployments.clone(), rev2.clone());
        async move { deployment_revision(&deployments, "main-api").await.filter(|r| *r != rev2) }
    })
    .await;
    wait_ready(&configs, "main", ("True", "Available")).await;
    let dep = deployments.get("main-api").await.unwrap();
    let key = containers(&dep)[1].env.clone().unwrap().into_iter().find(|e| e.name == "FAXBOT_CREDENTIAL_API_KEY");
    let reference = key.and_then(|e| e.value_from?.secret_key_ref).unwrap();
    assert_eq!(reference.name, names::credentials_secret_name("main", &rev3));
    let secret: Secret = Api::namespaced(client.clone(), &ns).get(&reference.name).await.unwrap();
    assert_eq!(secret.data.unwrap()["outbound.apiKey"].0, ROTATED_KEY.as_bytes());
    assert!(!serde_json::to_string(&dep).unwrap().contains(ROTATED_KEY));

    // 6. With a canary rollout, a new sidecar image runs in the canary pods first; stable keeps the old one.
    apply_json::<FaxPluginConfig>(&client, &ns, config("staged", true)).await.unwrap();
    wait_ready(&configs, "staged", ("True", "Available")).await;
    // A changed sidecar (its environment: the image must exist on a real node) is a new pod template.
    apply_json::<FaxProvider>(
        &client,
        &ns,
        external(9100, &image, |p| p["spec"]["sidecar"]["env"] = json!([{"name": "ACME_REGION", "value": "eu-2"}])),
    )
    .await
    .unwrap();
    let canary = wait_for(Duration::from_secs(90), "the canary Deployment", || {
        let deployments = deployments.clone();
        async move { deployments.get_opt(&names::canary_name("staged")).await.ok()? }
    })
    .await;
    let canary_containers = containers(&canary);
    assert_eq!(canary_containers[1].name, "plugin-acme");
    assert_eq!(env_value(&canary_containers[1], "ACME_REGION").as_deref(), Some("eu-2"));
    let stable = deployments.get(&names::api_name("staged")).await.unwrap();
    assert_eq!(env_value(&containers(&stable)[1], "ACME_REGION").as_deref(), Some("eu-1"), "stable is untouched");
    // The operator creates the canary Deployment before it records the rollout in the status, so a reader
    // can see the one before the other: wait for the status rather than read it once.
    wait_for(T, "the status to record the canary in flight", || {
        let configs = configs.clone();
        async move { configs.get("staged").await.ok()?.status?.rollout?.canary_revision.map(|_| ()) }
    })
    .await;

    assert!(operator.terminate(), "graceful shutdown exits 0");
    operator.assert_no_leaks(&[TOKEN, PROVIDER_KEY, ROTATED_KEY, ADMIN_KEY, PEPPER]);
}
