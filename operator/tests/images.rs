//! The container build cannot run here (no image builder on these machines), so what can be checked is
//! checked: the Dockerfile builds the binaries this workspace produces, its runtime stages run as the UID the
//! operator's pod security context and the operator's own manifest use, and they are distroless (the
//! `api-sip` variant adds Ghostscript and libtiff on Debian slim for the sip plugin).

#[test]
fn the_dockerfile_matches_the_workspace_and_the_pod_security_context() {
    let dockerfile = include_str!("../../Dockerfile");
    for (stage, bin) in [("api", "faxbot-api"), ("operator", "faxbot-operator")] {
        assert!(dockerfile.contains(&format!("-p {bin}")), "the build stage builds {bin}");
        assert!(dockerfile.contains(&format!("target/release/{bin}")), "{bin} is copied out of the build");
        assert!(
            dockerfile.contains(&format!("FROM gcr.io/distroless/cc-debian12:nonroot AS {stage}")),
            "stage {stage} is distroless and non-root"
        );
        assert!(dockerfile.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{bin}\"]")));
    }
    let uid = faxbot_operator::build::RUN_AS;
    assert_eq!(dockerfile.matches(&format!("USER {uid}:{uid}")).count(), 3, "every image runs as {uid}");
    // The SIP variant carries the tools the sip plugin runs (faxbot_documents::fax::Tools).
    let sip = &dockerfile[dockerfile.find("AS api-sip").expect("an api-sip stage")..];
    assert!(sip.contains("ghostscript") && sip.contains("libtiff-tools"), "the api-sip image has gs and tiff2pdf");
    assert!(sip.contains("ENTRYPOINT [\"/usr/local/bin/faxbot-api\"]"));
    let manifest = include_str!("../../config/operator/operator.yaml");
    assert!(manifest.contains(&format!("runAsUser: {uid}")), "the operator's Deployment runs as {uid}");
    assert!(manifest.contains("readOnlyRootFilesystem: true") && manifest.contains("runAsNonRoot: true"));
    // The Helm chart runs the same image under the same UID (its rendering is checked in the e2e suite).
    let values = include_str!("../../charts/faxbot-operator/values.yaml");
    assert!(values.contains(&format!("runAsUser: {uid}")), "the chart's default UID is {uid}");
    let chart = include_str!("../../charts/faxbot-operator/Chart.yaml");
    assert!(chart.contains(&format!("appVersion: \"{}\"", env!("CARGO_PKG_VERSION"))), "the chart's appVersion");
    // Every workspace member the build needs is in the build context (nothing but build output is ignored).
    let ignore = include_str!("../../.dockerignore");
    for line in ignore.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(["target", ".git", "**/*.db", "data"].contains(&line), "unexpected .dockerignore entry {line}");
    }
}
