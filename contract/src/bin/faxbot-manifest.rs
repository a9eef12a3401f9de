//! `faxbot-manifest`: check and sign HTTP plugin manifests (docs/plugins.md).
//!
//! ```text
//! faxbot-manifest check <manifest.json>...               every problem, with its path; exit 1 if any
//! faxbot-manifest keygen <secret-file>                  a new Ed25519 key: the secret (base64, mode 0600) to
//!                                                       the file, the public key to stdout
//! faxbot-manifest sign <secret-file> <key-id> <manifest.json>   the manifest with its signature, to stdout
//! faxbot-manifest verify <publisher-keys.json> <manifest.json>  who signed it; exit 1 unless verified
//! ```
//!
//! Three commands with positional arguments do not need an argument-parsing crate.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use faxbot_contract::manifest::check::{Policy, check};
use faxbot_contract::manifest::signature::{self, Trust};
use faxbot_contract::manifest::{HttpManifest, ManifestSignature};

const USAGE: &str = "usage: faxbot-manifest check <manifest.json>... | keygen <secret-file> | \
                     sign <secret-file> <key-id> <manifest.json> | verify <publisher-keys.json> <manifest.json>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["check", files @ ..] if !files.is_empty() => check_files(files),
        ["keygen", secret] => keygen(secret),
        ["sign", secret, key_id, file] => sign(secret, key_id, file),
        ["verify", keys, file] => verify(keys, file),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(faxbot_contract::manifest::MAX_MANIFEST_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(bytes)
}

fn load(path: &str) -> Result<HttpManifest, String> {
    HttpManifest::parse(&read(path)?).map_err(|e| format!("{path}: {e}"))
}

fn check_files(files: &[&str]) -> Result<(), String> {
    let mut failed = false;
    for file in files {
        let manifest = load(file)?;
        let problems = check(&manifest, Policy::from_env());
        for (path, message) in &problems {
            println!("{file}: {path}: {message}");
        }
        if problems.is_empty() {
            println!("{file}: ok ({})", manifest.id);
        }
        failed |= !problems.is_empty();
    }
    if failed { Err("manifests with problems".into()) } else { Ok(()) }
}

fn secret(path: &str) -> Result<[u8; 32], String> {
    let text = String::from_utf8(read(path)?).map_err(|_| format!("{path}: not text"))?;
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("{path}: not a base64 Ed25519 secret key"))
}

fn keygen(path: &str) -> Result<(), String> {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| format!("{path}: {e}"))?;
    std::io::Write::write_all(&mut file, STANDARD.encode(key).as_bytes()).map_err(|e| format!("{path}: {e}"))?;
    println!("{}", signature::public_key(&key));
    Ok(())
}

fn sign(secret_file: &str, key_id: &str, file: &str) -> Result<(), String> {
    let key = secret(secret_file)?;
    let mut manifest = load(file)?;
    let problems = check(&manifest, Policy::from_env());
    if let Some((path, message)) = problems.first() {
        return Err(format!("{file}: refusing to sign an invalid manifest: {path}: {message}"));
    }
    let value = signature::sign(&manifest.canonical(), &key);
    manifest.signature = Some(ManifestSignature { key_id: key_id.to_string(), value });
    println!("{}", serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?);
    Ok(())
}

fn verify(keys_file: &str, file: &str) -> Result<(), String> {
    let keys: BTreeMap<String, String> =
        serde_json::from_slice(&read(keys_file)?).map_err(|e| format!("{keys_file}: {e}"))?;
    match signature::signed_by(&load(file)?, &keys) {
        Trust::Verified(key) => {
            println!("{file}: verified, signed by `{key}`");
            Ok(())
        }
        Trust::Unsigned => Err(format!("{file}: not signed")),
        Trust::Invalid(e) => Err(format!("{file}: {e}")),
    }
}
