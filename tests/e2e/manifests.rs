//! The GitOps manifests in `config/` are what the real API server accepts: `kubectl kustomize` (kustomize v5,
//! built into kubectl) renders `config/default` (namespace, CRDs, RBAC, the operator Deployment, PDB and
//! metrics Service) and the result is applied with server-side dry-run; so are the samples and the per-provider
//! overlays in `config/overlays/` (with the S3 storage component on top of one of them).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::*;

fn kubectl_bin() -> String {
    std::env::var("KUBE_BINS").map(|d| format!("{d}/kubectl")).unwrap_or_else(|_| "kubectl".into())
}

fn run(kubeconfig: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(kubectl_bin())
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn config_manifests_render_and_the_api_server_accepts_them() {
    let _cluster = shared_cluster().await;
    let Some(kc) = kubeconfig() else { return };
    let client = client(&kc).await;
    install_crds(&client).await;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

    let (ok, rendered) = run(&kc, &["kustomize", &format!("{root}/config/default")], None);
    assert!(ok, "kustomize failed: {rendered}");
    for kind in [
        "kind: Namespace",
        "kind: CustomResourceDefinition",
        "kind: ClusterRole",
        "kind: ClusterRoleBinding",
        "kind: Role",
        "kind: RoleBinding",
        "kind: ServiceAccount",
        "kind: Deployment",
        "kind: PodDisruptionBudget",
        "kind: Service",
    ] {
        assert!(rendered.contains(kind), "{kind} missing from config/default:\n{rendered}");
    }
    assert!(rendered.matches("namespace: faxbot-system").count() >= 6, "namespaced objects and subjects");

    // The namespace must exist for a dry run of what goes into it.
    let (ok, out) = run(&kc, &["apply", "--server-side", "-f", &format!("{root}/config/default/namespace.yaml")], None);
    assert!(ok, "{out}");
    let (ok, out) = run(
        &kc,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "--field-manager=manifests-test",
            "-f",
            "-",
        ],
        Some(&rendered),
    );
    assert!(ok, "the API server refused config/default:\n{out}");
    assert!(out.contains("deployment.apps/faxbot-operator serverside-applied (server dry run)"), "{out}");

    let ns = namespace(&client, "samples").await;
    let (ok, out) = run(
        &kc,
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-n",
            &ns,
            "-f",
            &format!("{root}/config/samples/simulated-line.yaml"),
        ],
        None,
    );
    assert!(ok, "the API server refused the sample:\n{out}");

    // The overlays: each renders a FaxPluginConfig and its FaxProviders, no Secret (those are created
    // separately), and the API server accepts them.
    for (overlay, plugins) in [
        ("simulated-line", &["test", "api_keys"][..]),
        ("phaxio", &["phaxio", "api_keys"][..]),
        ("sinch", &["sinch", "api_keys"][..]),
        ("sip", &["sip", "api_keys"][..]),
    ] {
        let (ok, rendered) = run(&kc, &["kustomize", &format!("{root}/config/overlays/{overlay}")], None);
        assert!(ok, "kustomize {overlay} failed: {rendered}");
        assert_eq!(rendered.matches("kind: FaxPluginConfig").count(), 1, "{overlay}:\n{rendered}");
        assert!(!rendered.contains("kind: Secret"), "{overlay} must not carry a Secret:\n{rendered}");
        for plugin in plugins {
            assert!(rendered.contains(&format!("plugin: {plugin}")), "{overlay} uses {plugin}:\n{rendered}");
        }
        let (ok, out) =
            run(&kc, &["apply", "--server-side", "--dry-run=server", "-n", &ns, "-f", "-"], Some(&rendered));
        assert!(ok, "the API server refused overlay {overlay}:\n{out}");
        assert!(out.contains("faxpluginconfig.fax.faxbot.io/faxbot serverside-applied (server dry run)"), "{out}");
    }
    // The S3 component on top of an overlay: one more provider, the config's storage slot names it, and
    // the shared volume is gone.
    let (ok, rendered) = run(&kc, &["kustomize", &format!("{root}/config/overlays/phaxio-s3")], None);
    assert!(ok, "kustomize phaxio-s3 failed: {rendered}");
    assert!(rendered.contains("plugin: s3") && rendered.contains("storage: s3"), "{rendered}");
    assert!(!rendered.contains("dataVolume") && !rendered.contains("kind: Secret"), "{rendered}");
    let (ok, out) = run(&kc, &["apply", "--server-side", "--dry-run=server", "-n", &ns, "-f", "-"], Some(&rendered));
    assert!(ok, "the API server refused phaxio + s3-storage:\n{out}");
}
