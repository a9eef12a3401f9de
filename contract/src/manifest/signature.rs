//! Ed25519 signatures over a manifest's canonical form, so a registry entry or a manifest applied to a
//! cluster can be traced to a publisher whose key the operator trusts.
//!
//! The canonical form is JSON with object keys sorted and no whitespace (what `serde_json` writes for a
//! `Value`, whose maps are sorted) of [`super::HttpManifest::canonical`]. [`trust`] says what a manifest's
//! signature proves against the trusted publisher keys, and [`admit`] — a pure rule with a table test —
//! whether it may be used.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Why a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature is not 64 bytes of base64.
    #[error("the signature is not a base64 Ed25519 signature")]
    Malformed,
    /// The public key is not 32 bytes of base64, or not a valid point.
    #[error("the publisher key is not a base64 Ed25519 public key")]
    BadKey,
    /// No trusted key has the signature's key id.
    #[error("no trusted publisher key `{0}`")]
    UnknownKey(String),
    /// The signature does not match the manifest.
    #[error("the signature does not match the manifest")]
    Mismatch,
}

/// The bytes a signature covers.
pub fn canonical(manifest: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(manifest).unwrap_or_default()
}

/// Signs a manifest with a 32-byte Ed25519 secret key; the signature in base64.
pub fn sign(manifest: &serde_json::Value, secret: &[u8; 32]) -> String {
    let key = SigningKey::from_bytes(secret);
    STANDARD.encode(key.sign(&canonical(manifest)).to_bytes())
}

/// Signs raw bytes (for fakes of providers that sign webhooks with Ed25519); the signature in base64.
pub fn sign_bytes(message: &[u8], secret: &[u8; 32]) -> String {
    STANDARD.encode(SigningKey::from_bytes(secret).sign(message).to_bytes())
}

/// The base64 public key of a 32-byte secret key.
pub fn public_key(secret: &[u8; 32]) -> String {
    STANDARD.encode(SigningKey::from_bytes(secret).verifying_key().to_bytes())
}

/// Verifies a base64 signature with a base64 public key (`verify_strict`: no malleable signatures, no
/// weak keys).
pub fn verify(manifest: &serde_json::Value, signature: &str, public_key: &str) -> Result<(), SignatureError> {
    verify_bytes(&canonical(manifest), signature, public_key)
}

/// Verifies a base64 Ed25519 signature over `message` with a base64 public key (webhook signatures).
pub fn verify_bytes(message: &[u8], signature: &str, public_key: &str) -> Result<(), SignatureError> {
    let key = parse_public_key(public_key)?;
    let sig: [u8; 64] =
        STANDARD.decode(signature.trim()).ok().and_then(|b| b.try_into().ok()).ok_or(SignatureError::Malformed)?;
    key.verify_strict(message, &Signature::from_bytes(&sig)).map_err(|_| SignatureError::Mismatch)
}

/// Checks that `public_key` is a base64 Ed25519 public key (32 bytes, a valid point), as [`verify`] will read
/// it: for a publisher key list checked before it is handed on.
pub fn check_public_key(public_key: &str) -> Result<(), SignatureError> {
    parse_public_key(public_key).map(|_| ())
}

fn parse_public_key(public_key: &str) -> Result<VerifyingKey, SignatureError> {
    let key: [u8; 32] =
        STANDARD.decode(public_key.trim()).ok().and_then(|b| b.try_into().ok()).ok_or(SignatureError::BadKey)?;
    VerifyingKey::from_bytes(&key).map_err(|_| SignatureError::BadKey)
}

/// Verifies against the trusted key named `key_id` in `trusted` (key id → base64 public key).
pub fn verify_with(
    manifest: &serde_json::Value,
    signature: &str,
    key_id: &str,
    trusted: &std::collections::BTreeMap<String, String>,
) -> Result<(), SignatureError> {
    let key = trusted.get(key_id).ok_or_else(|| SignatureError::UnknownKey(key_id.to_string()))?;
    // Verifying keeps the cheap checks first: a malformed signature costs no curve arithmetic.
    verify(manifest, signature, key)
}

/// What a manifest's signature proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Signed by the trusted key with this id.
    Verified(String),
    /// Not signed.
    Unsigned,
    /// Signed, but the signature does not verify against the trusted keys.
    Invalid(SignatureError),
}

/// The publisher name of what this release carries: the built-in plugins and the shipped manifests.
pub const BUILTIN_PUBLISHER: &str = "builtin";

/// Checks a manifest's signature against `trusted` (key id → base64 public key). A manifest this release
/// ships, unchanged ([`super::registry::is_shipped`]), is trusted as the built-in plugins are, signed or not.
pub fn trust(manifest: &super::HttpManifest, trusted: &std::collections::BTreeMap<String, String>) -> Trust {
    if super::registry::is_shipped(manifest) {
        return Trust::Verified(BUILTIN_PUBLISHER.to_string());
    }
    signed_by(manifest, trusted)
}

/// What the manifest's own signature proves against `trusted`, whatever else would vouch for it (the
/// `faxbot-manifest verify` command: a publisher checks the signature it made).
pub fn signed_by(manifest: &super::HttpManifest, trusted: &std::collections::BTreeMap<String, String>) -> Trust {
    match &manifest.signature {
        None => Trust::Unsigned,
        Some(sig) => match verify_with(&manifest.canonical(), &sig.value, &sig.key_id, trusted) {
            Ok(()) => Trust::Verified(sig.key_id.clone()),
            Err(e) => Trust::Invalid(e),
        },
    }
}

/// Whether a manifest may be used: verified ones always; unsigned or wrongly signed ones only when
/// `allow_unverified` (the document's `features.pluginInstall`). The refusal says why and what to do.
pub fn admit(id: &str, trust: &Trust, allow_unverified: bool) -> Result<(), String> {
    let why = match trust {
        Trust::Verified(_) => return Ok(()),
        _ if allow_unverified => return Ok(()),
        Trust::Unsigned => "is not signed".to_string(),
        Trust::Invalid(e) => format!("has a signature that does not verify: {e}"),
    };
    Err(format!(
        "manifest `{id}` {why}; sign it with a trusted publisher key, or set features.pluginInstall to accept \
         unverified plugins"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_signature_covers_content_not_formatting() {
        let secret = [7u8; 32];
        let a: serde_json::Value = serde_json::from_str(r#"{"id":"x","version":"1","b":[1,2]}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str("{\n \"version\": \"1\", \"b\": [1, 2], \"id\": \"x\"}").unwrap();
        let sig = sign(&a, &secret);
        let key = public_key(&secret);
        assert_eq!(verify(&b, &sig, &key), Ok(()), "same content, other key order and spacing");
        assert_eq!(verify(&json!({"id":"x","version":"2","b":[1,2]}), &sig, &key), Err(SignatureError::Mismatch));
        assert_eq!(verify(&a, &sig, &public_key(&[8u8; 32])), Err(SignatureError::Mismatch));
        assert_eq!(verify(&a, "not base64!", &key), Err(SignatureError::Malformed));
        assert_eq!(verify(&a, &sig, "AAAA"), Err(SignatureError::BadKey));
        assert_eq!(check_public_key(&key), Ok(()));
        assert_eq!(check_public_key("AAAA"), Err(SignatureError::BadKey));
        let trusted = [("acme".to_string(), key.clone())].into_iter().collect();
        assert_eq!(verify_with(&a, &sig, "acme", &trusted), Ok(()));
        assert_eq!(verify_with(&a, &sig, "other", &trusted), Err(SignatureError::UnknownKey("other".into())));
    }

    #[test]
    fn only_verified_manifests_are_admitted_unless_unverified_ones_are_allowed() {
        let bad = Trust::Invalid(SignatureError::Mismatch);
        let table = [
            (Trust::Verified("acme".into()), false, None),
            (Trust::Verified("acme".into()), true, None),
            (Trust::Unsigned, true, None),
            (bad.clone(), true, None),
            (Trust::Unsigned, false, Some("manifest `x` is not signed;")),
            (bad, false, Some("manifest `x` has a signature that does not verify: the signature does not match")),
        ];
        for (trust, allow, refused) in table {
            match (admit("x", &trust, allow), refused) {
                (Ok(()), None) => {}
                (Err(e), Some(expected)) => assert!(e.starts_with(expected), "{e}"),
                (got, expected) => panic!("{trust:?} allow={allow}: {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn a_signed_manifest_is_trusted_until_it_changes() {
        let mut m: super::super::HttpManifest =
            serde_json::from_value(super::super::check::tests::base()).expect("manifest");
        let secret = [3u8; 32];
        let trusted = [("acme".to_string(), public_key(&secret))].into_iter().collect();
        assert_eq!(trust(&m, &trusted), Trust::Unsigned);
        m.signature =
            Some(super::super::ManifestSignature { key_id: "acme".into(), value: sign(&m.canonical(), &secret) });
        assert_eq!(trust(&m, &trusted), Trust::Verified("acme".into()));
        m.allowed_domains.push("collector.example.net".into());
        assert_eq!(trust(&m, &trusted), Trust::Invalid(SignatureError::Mismatch));
    }

    #[test]
    fn a_shipped_manifest_is_trusted_as_builtin_until_it_changes() {
        let none = std::collections::BTreeMap::new();
        let mut m = super::super::registry::shipped()[0].clone();
        assert_eq!(trust(&m, &none), Trust::Verified(BUILTIN_PUBLISHER.into()));
        m.version.push_str("-local");
        assert_eq!(trust(&m, &none), Trust::Unsigned);
    }
}
