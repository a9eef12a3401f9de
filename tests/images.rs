//! The container images: the Dockerfile's runtime stages are the one definition of what an image holds (user,
//! port, entrypoint, files), for a registry build (`docker build --target api .` on the upstream bases) and for
//! the build here (`scripts/images.sh`: the same stages on bases made from Debian packages). The first test
//! reads the Dockerfile; the second opens the images `scripts/images.sh` built (the archives the test node
//! imported) and compares what is in them with what the Dockerfile and the operator's pod spec declare, file by
//! file: a missing shared library or a user the pod cannot run as fails here as well as on the node.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use faxbot_operator::build::{API_PORT, RUN_AS};

const DOCKERFILE: &str = include_str!("../Dockerfile");

/// The instructions of one stage (`FROM … AS name` up to the next `FROM`).
fn stage(name: &str) -> &'static str {
    let start = DOCKERFILE.find(&format!(" AS {name}\n")).unwrap_or_else(|| panic!("a stage {name}"));
    let rest = &DOCKERFILE[start..];
    let end = rest[1..].find("\nFROM ").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

#[test]
fn the_dockerfile_matches_the_workspace_and_the_pod_security_context() {
    // The upstream bases are the defaults of the build arguments; scripts/images.sh substitutes its own.
    for default in [
        "ARG RUST_IMAGE=rust:1.94-bookworm",
        "ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot",
        "ARG SIP_BASE=debian:bookworm-slim",
        "ARG BINARIES=build",
    ] {
        assert!(DOCKERFILE.contains(default), "{default}");
    }
    let build = stage("build");
    for bin in ["faxbot-api", "faxbot-operator"] {
        // Only the server binaries: faxbot-mcp (the stdio bridge for desktops) is not part of an image.
        assert!(build.contains(&format!("--bin {bin}")), "the build stage builds {bin}");
        assert!(build.contains(&format!("target/release/{bin}")), "{bin} is copied out of the build");
        assert!(build.contains(&format!("objcopy --strip-debug /out/{bin}")), "{bin} loses its line tables");
        assert!(stage("prebuilt").contains(&format!("prebuilt/{bin}")), "the prebuilt stage takes {bin}");
    }
    assert!(!build.contains("-p faxbot-api"), "a package build would also build faxbot-mcp");
    let uid = RUN_AS;
    for (name, base, bin) in [
        ("api", "${RUNTIME_BASE}", "faxbot-api"),
        ("operator", "${RUNTIME_BASE}", "faxbot-operator"),
        ("api-sip", "${SIP_BASE}", "faxbot-api"),
    ] {
        let s = stage(name);
        assert!(DOCKERFILE.contains(&format!("FROM {base} AS {name}\n")), "stage {name} is built on {base}");
        assert!(s.contains(&format!("COPY --from=binaries /out/{bin} /usr/local/bin/{bin}")), "{name}: {bin}");
        assert!(s.contains(&format!("USER {uid}:{uid}")), "{name} runs as {uid}");
        assert!(s.contains(&format!("EXPOSE {API_PORT}")), "{name} listens on {API_PORT}");
        assert!(s.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{bin}\"]")), "{name} runs {bin}");
    }
    // The SIP variant carries the tools the sip plugin runs (faxbot_documents::fax::Tools).
    let sip = stage("api-sip");
    assert!(sip.contains("ghostscript") && sip.contains("libtiff-tools"), "the api-sip image has gs and tiff2pdf");
    let manifest = include_str!("../config/operator/operator.yaml");
    assert!(manifest.contains(&format!("runAsUser: {uid}")), "the operator's Deployment runs as {uid}");
    assert!(manifest.contains("readOnlyRootFilesystem: true") && manifest.contains("runAsNonRoot: true"));
    // The Helm chart runs the same image under the same UID (its rendering is checked in the e2e suite).
    let values = include_str!("../charts/faxbot-operator/values.yaml");
    assert!(values.contains(&format!("runAsUser: {uid}")), "the chart's default UID is {uid}");
    let chart = include_str!("../charts/faxbot-operator/Chart.yaml");
    assert!(chart.contains(&format!("appVersion: \"{}\"", env!("CARGO_PKG_VERSION"))), "the chart's appVersion");
    // Every workspace member the build needs is in the build context (nothing but build output is ignored).
    let ignore = include_str!("../.dockerignore");
    for line in ignore.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(["target", ".git", "**/*.db", "data"].contains(&line), "unexpected .dockerignore entry {line}");
    }
}

/// An image archive (`podman save --format docker-archive`) unpacked: its config and its root filesystem.
struct Image {
    config: serde_json::Value,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Image {
    fn open(archive: &Path) -> Image {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("archive");
        let root = dir.path().join("root");
        std::fs::create_dir_all(&raw).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        untar(archive, &raw);
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(raw.join("manifest.json")).unwrap()).unwrap();
        let entry = &manifest[0];
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(raw.join(entry["Config"].as_str().unwrap())).unwrap()).unwrap();
        for layer in entry["Layers"].as_array().unwrap() {
            untar(&raw.join(layer.as_str().unwrap()), &root);
        }
        Image { config, root, _dir: dir }
    }

    /// The path of `path` inside the image, following symbolic links inside the image (never the host's).
    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let mut current = PathBuf::from("/");
        let mut parts: Vec<String> = path.split('/').filter(|p| !p.is_empty()).rev().map(String::from).collect();
        let mut hops = 0;
        while let Some(part) = parts.pop() {
            if part == ".." {
                current.pop();
                continue;
            }
            let next = current.join(&part);
            let on_disk = self.root.join(next.strip_prefix("/").unwrap());
            let meta = std::fs::symlink_metadata(&on_disk).ok()?;
            if meta.file_type().is_symlink() {
                hops += 1;
                assert!(hops < 40, "symlink loop at {}", next.display());
                let target = std::fs::read_link(&on_disk).unwrap();
                let target = target.to_string_lossy().to_string();
                if target.starts_with('/') {
                    current = PathBuf::from("/");
                }
                parts.extend(target.split('/').filter(|p| !p.is_empty() && *p != ".").rev().map(String::from));
            } else {
                current = next;
            }
        }
        let on_disk = self.root.join(current.strip_prefix("/").unwrap());
        on_disk.exists().then_some(on_disk)
    }

    fn has(&self, path: &str) -> bool {
        self.resolve(path).is_some()
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.resolve(path).unwrap_or_else(|| panic!("{path} in the image"))).unwrap()
    }

    /// Every shared library `binary` (a path in the image) needs, and its program interpreter, resolved in
    /// the image the way ld.so would (the multiarch directories of a Debian system); the unresolved ones.
    fn unresolved_libraries(&self, binary: &str) -> Vec<String> {
        let file = self.resolve(binary).unwrap_or_else(|| panic!("{binary} in the image"));
        let out = Command::new("readelf").arg("-dl").arg(&file).output().expect("readelf (binutils)");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut missing = Vec::new();
        for line in text.lines() {
            if let Some(interp) = line.split("[Requesting program interpreter: ").nth(1) {
                let interp = interp.trim_end_matches(']');
                if !self.has(interp) {
                    missing.push(interp.to_string());
                }
            }
            if line.contains("(NEEDED)") {
                let lib = line.split('[').nth(1).unwrap().trim_end_matches(']');
                let dirs = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib", "/lib64"];
                if !dirs.iter().any(|d| self.has(&format!("{d}/{lib}"))) {
                    missing.push(lib.to_string());
                }
            }
        }
        missing
    }
}

fn untar(archive: &Path, into: &Path) {
    let out =
        Command::new("tar").args(["--no-same-owner", "-xf"]).arg(archive).arg("-C").arg(into).output().expect("tar");
    assert!(out.status.success(), "tar -xf {}: {}", archive.display(), String::from_utf8_lossy(&out.stderr));
}

/// The image archives of the test node (`scripts/kube-testenv.sh start --kubelet` exports them), or `None`
/// with a loud skip; under `CI=true` missing archives fail.
fn archives() -> Option<BTreeMap<&'static str, PathBuf>> {
    let mut found = BTreeMap::new();
    for (name, var) in [
        ("api", "FAXBOT_TEST_API_IMAGE_ARCHIVE"),
        ("api-sip", "FAXBOT_TEST_API_SIP_IMAGE_ARCHIVE"),
        ("operator", "FAXBOT_TEST_OPERATOR_IMAGE_ARCHIVE"),
    ] {
        match std::env::var_os(var) {
            Some(path) => drop(found.insert(name, PathBuf::from(path))),
            None if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but {var} is not set: scripts/test builds the images (scripts/images.sh)")
            }
            None => {
                eprintln!("SKIPPING image contents test: {var} is not set (scripts/kube-testenv.sh start --kubelet)");
                return None;
            }
        }
    }
    Some(found)
}

#[test]
fn the_built_images_hold_what_the_dockerfile_declares() {
    let Some(archives) = archives() else { return };
    let uid = RUN_AS.to_string();
    for (name, archive) in &archives {
        let image = Image::open(archive);
        let config = &image.config["config"];
        let bin = if *name == "operator" { "faxbot-operator" } else { "faxbot-api" };
        // What the Dockerfile declares, as the runtime reads it from the image.
        assert_eq!(config["User"], format!("{uid}:{uid}"), "{name}: the user the pod's runAsUser expects");
        assert!(config["ExposedPorts"].get(format!("{API_PORT}/tcp")).is_some(), "{name}: {config}");
        assert_eq!(config["Entrypoint"], serde_json::json!([format!("/usr/local/bin/{bin}")]), "{name}");
        // The binary, executable by anyone (the pod's UID owns nothing in the image), and every library it needs.
        let path = image.resolve(&format!("/usr/local/bin/{bin}")).unwrap_or_else(|| panic!("{name}: {bin}"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o005, 0o005, "{name}: {bin} o+rx");
        assert_eq!(image.unresolved_libraries(&format!("/usr/local/bin/{bin}")), Vec::<String>::new(), "{name}");
        let sections = Command::new("readelf").arg("-S").arg(&path).output().unwrap();
        assert!(!String::from_utf8_lossy(&sections.stdout).contains(".debug_line"), "{name}: {bin} is stripped");
        // TLS needs the CA bundle (without one every HTTPS call fails: "No CA certificates were loaded").
        let bundle = image.read("/etc/ssl/certs/ca-certificates.crt");
        assert!(bundle.matches("BEGIN CERTIFICATE").count() > 100, "{name}: the CA bundle");
        let passwd = image.read("/etc/passwd");
        assert!(passwd.lines().any(|l| l.starts_with("root:x:0:0:")), "{name}: {passwd}");
        if *name == "api-sip" {
            // Debian: a shell and apt are part of it; the converters the sip plugin runs are there.
            for tool in ["/usr/bin/gs", "/usr/bin/tiff2pdf"] {
                assert!(image.has(tool), "api-sip: {tool}");
                assert_eq!(image.unresolved_libraries(tool), Vec::<String>::new(), "api-sip: {tool}");
            }
        } else {
            // distroless: the zone database and netbase, no shell, no package manager, its non-root account,
            // and a /tmp writable by anyone (sticky).
            assert!(image.has("/usr/share/zoneinfo/UTC") && image.has("/etc/services"), "{name}: tzdata, netbase");
            for absent in ["/bin/sh", "/bin/bash", "/usr/bin/apt-get", "/usr/bin/dpkg"] {
                assert!(!image.has(absent), "{name}: {absent} must not be in a distroless image");
            }
            assert!(passwd.contains("nonroot:x:65532:65532:"), "{name}: {passwd}");
            let tmp = std::fs::metadata(image.resolve("/tmp").unwrap()).unwrap();
            assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777, "{name}: /tmp");
        }
    }
}

/// The Python sidecar plugin image of the real-pod sidecar test (tests/e2e/sidecar_pod.rs), built by
/// `scripts/images.sh` from tools/images/Containerfile.plugin-python: the plugin `faxbot plugin new pod-sim
/// --kind python` writes and this checkout's Python kit, on Debian's interpreter with every library it and the
/// modules the kit loads need, the standard library compiled (the pod's root is read-only), the pod's user,
/// and still no shell or package manager.
#[test]
fn the_python_plugin_image_holds_the_generated_plugin_the_kit_and_its_interpreter() {
    let var = "FAXBOT_TEST_PLUGIN_PYTHON_IMAGE_ARCHIVE";
    let archive = match std::env::var_os(var) {
        Some(path) => PathBuf::from(path),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but {var} is not set: scripts/test builds the images (scripts/images.sh)")
        }
        None => {
            eprintln!("SKIPPING Python plugin image test: {var} is not set (scripts/kube-testenv.sh start --kubelet)");
            return;
        }
    };
    let image = Image::open(&archive);
    let config = &image.config["config"];
    let uid = RUN_AS.to_string();
    assert_eq!(config["User"], format!("{uid}:{uid}"), "{config}");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/usr/bin/python3", "-m", "pod_sim"]), "{config}");
    let env: Vec<&str> = config["Env"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    for want in ["PYTHONPATH=/opt/faxbot-plugin", "PYTHONDONTWRITEBYTECODE=1", "FAXBOT_PLUGIN_LISTEN=127.0.0.1:8090"] {
        assert!(env.contains(&want), "{want} in {env:?}");
    }
    // The interpreter and the extension modules the kit loads (ssl and hashlib for TLS and HMAC, uuid).
    assert_eq!(image.unresolved_libraries("/usr/bin/python3"), Vec::<String>::new());
    for module in ["_ssl", "_hashlib", "_uuid"] {
        let path = format!("/usr/lib/python3.11/lib-dynload/{module}.cpython-311-x86_64-linux-gnu.so");
        assert_eq!(image.unresolved_libraries(&path), Vec::<String>::new(), "{module}");
    }
    assert!(image.has("/usr/lib/python3.11/__pycache__/os.cpython-311.pyc"), "the standard library is compiled");
    // The kit as it is in this checkout (a stale image fails here), and the generated plugin.
    let kit = faxbot_tests::repo_root().join("plugin-kit/python/faxbot_plugin_kit");
    for entry in std::fs::read_dir(&kit).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".py") {
            let host = std::fs::read_to_string(kit.join(&name)).unwrap();
            assert!(image.read(&format!("/opt/faxbot-plugin/faxbot_plugin_kit/{name}")) == host, "kit {name}");
        }
    }
    let plugin = image.read("/opt/faxbot-plugin/pod_sim/__init__.py");
    assert!(plugin.contains("id=\"pod-sim\"") && !plugin.contains("@@"), "the generated plugin: {plugin}");
    assert!(image.has("/opt/faxbot-plugin/pod_sim/__main__.py"));
    for absent in ["/bin/sh", "/bin/bash", "/usr/bin/apt-get", "/usr/bin/dpkg", "/usr/bin/pip3"] {
        assert!(!image.has(absent), "{absent} must not be in the plugin image");
    }
}
