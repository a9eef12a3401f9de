//! The shipped manifests pass every check, and `faxbot-manifest` signs a manifest that the server's rule
//! then trusts (keygen → sign → verify), refusing a changed one.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::Command;

fn tool(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_faxbot-manifest")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn shipped() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_manifest_passes_the_checks() {
    let files = shipped();
    assert!(!files.is_empty());
    let args: Vec<&str> = std::iter::once("check").chain(files.iter().map(String::as_str)).collect();
    let (ok, output) = tool(&args);
    assert!(ok, "{output}");
    assert_eq!(output.matches(": ok (").count(), files.len(), "{output}");
}

#[test]
fn keygen_sign_and_verify() {
    let dir = tempfile_dir();
    let secret = dir.join("publisher.key");
    let (ok, public) = tool(&["keygen", secret.to_str().unwrap()]);
    assert!(ok, "{public}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    let (ok, again) = tool(&["keygen", secret.to_str().unwrap()]);
    assert!(!ok, "an existing key is never overwritten: {again}");

    let manifest = shipped().into_iter().find(|f| f.ends_with("phaxio-http.json")).unwrap();
    let (ok, signed) = tool(&["sign", secret.to_str().unwrap(), "acme", &manifest]);
    assert!(ok, "{signed}");
    let signed_file = dir.join("signed.json");
    std::fs::write(&signed_file, &signed).unwrap();
    let keys = dir.join("keys.json");
    std::fs::write(&keys, serde_json::json!({"acme": public.trim()}).to_string()).unwrap();
    let (ok, output) = tool(&["verify", keys.to_str().unwrap(), signed_file.to_str().unwrap()]);
    assert!(ok && output.contains("verified, signed by `acme`"), "{output}");

    let mut changed: serde_json::Value = serde_json::from_str(&signed).unwrap();
    changed["statuses"]["delivered"] = serde_json::json!(["success", "failure"]);
    changed["statuses"]["failed"] = serde_json::json!(["partialsuccess"]);
    std::fs::write(&signed_file, changed.to_string()).unwrap();
    let (ok, output) = tool(&["verify", keys.to_str().unwrap(), signed_file.to_str().unwrap()]);
    assert!(!ok && output.contains("the signature does not match the manifest"), "{output}");
    let (ok, output) = tool(&["verify", keys.to_str().unwrap(), &manifest]);
    assert!(!ok && output.contains("not signed"), "{output}");
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("faxbot-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
