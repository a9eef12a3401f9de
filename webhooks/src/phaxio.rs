//! Phaxio's `X-Phaxio-Signature` (API v2.1 webhooks), as real Phaxio computes it.
//!
//! The signed string is the callback URL exactly as it was given to Phaxio (scheme, host, path, trailing
//! slash, query string — behind a proxy that is the configured public URL, never what the server thinks its
//! own URL is), then every non-file form field sorted by name as `name` + `value`, then every file part
//! sorted by part name as `name` + lowercase hex SHA-1 of the bytes. The key is the callback ("webhook")
//! token, not the API secret. Sorting is plain byte order; fields that repeat a name keep their order of
//! arrival (a stable sort), which is what Phaxio's reference SDKs do.

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::Rejection;

/// Name of the header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Phaxio-Signature";

/// The string Phaxio signs, for diagnostics and tests. It contains field values (possibly PHI): never log it.
pub fn string_to_sign(url: &str, fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(url.len() + 64 * (fields.len() + files.len()));
    out.extend_from_slice(url.as_bytes());
    let mut fields: Vec<&(&str, &str)> = fields.iter().collect();
    fields.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    let mut files: Vec<&(&str, &[u8])> = files.iter().collect();
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (name, bytes) in files {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(hex::encode(Sha1::digest(bytes)).as_bytes());
    }
    out
}

fn mac(token: &[u8], message: &[u8]) -> [u8; 20] {
    // HMAC accepts keys of any length, so this cannot fail; an empty key is refused earlier by `verify`.
    let mut mac = match Hmac::<Sha1>::new_from_slice(token) {
        Ok(m) => m,
        Err(_) => return [0; 20],
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The lowercase hex signature Phaxio would send (used by the Phaxio fake to sign its webhooks).
pub fn sign(token: &[u8], url: &str, fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> String {
    hex::encode(mac(token, &string_to_sign(url, fields, files)))
}

/// What can be checked of `header` (the `X-Phaxio-Signature` value, if any) before the body is read: that it
/// is there and is 40 hex digits. A request that fails this cannot verify, so its body need not be read.
pub fn precheck(header: Option<&str>) -> Result<(), Rejection> {
    let header = header.ok_or(Rejection::Missing)?.trim();
    let mut given = [0u8; 20];
    if header.len() != 40 || hex::decode_to_slice(header, &mut given).is_err() {
        return Err(Rejection::Malformed);
    }
    Ok(())
}

/// Verifies `header` (the `X-Phaxio-Signature` value, if any) against the request. Constant-time in the
/// signature; hex case is accepted either way. An empty token never verifies anything.
pub fn verify(
    token: &[u8],
    url: &str,
    fields: &[(&str, &str)],
    files: &[(&str, &[u8])],
    header: Option<&str>,
) -> Result<(), Rejection> {
    let header = header.ok_or(Rejection::Missing)?.trim();
    if header.len() != 40 {
        return Err(Rejection::Malformed);
    }
    let mut given = [0u8; 20];
    hex::decode_to_slice(header, &mut given).map_err(|_| Rejection::Malformed)?;
    if token.is_empty() {
        return Err(Rejection::Mismatch);
    }
    let expected = mac(token, &string_to_sign(url, fields, files));
    if bool::from(expected.ct_eq(&given)) { Ok(()) } else { Err(Rejection::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOKEN: &[u8] = b"test-webhook-token";
    const URL: &str = "https://example.test/phaxio/callback?job_id=abc123";
    const FAX: &str = r#"{"id":123,"status":"success","num_pages":1}"#;
    const PDF: &[u8] = b"%PDF-1.4\n% test\n%%EOF\n";

    fn fields() -> Vec<(&'static str, &'static str)> {
        // Deliberately not in sorted order: the algorithm sorts.
        vec![
            ("success", "true"),
            ("fax", FAX),
            ("direction", "sent"),
            ("is_test", "true"),
            ("event_type", "fax_completed"),
        ]
    }

    /// The reference's vectors (shared/reference/providers.md §1.9).
    #[test]
    fn reproduces_the_reference_test_vectors() {
        let s = String::from_utf8(string_to_sign(URL, &fields(), &[])).unwrap();
        assert_eq!(
            s,
            "https://example.test/phaxio/callback?job_id=abc123directionsentevent_typefax_completedfax{\"id\":123,\"status\":\"success\",\"num_pages\":1}is_testtruesuccesstrue"
        );
        assert_eq!(sign(TOKEN, URL, &fields(), &[]), "7b995f573b43d678029b898aa64683c1aa3c3763");
        assert_eq!(hex::encode(Sha1::digest(PDF)), "bf70c8b9e62230bba1061b2c605484c6ee3dfc66");
        assert_eq!(sign(TOKEN, URL, &fields(), &[("file", PDF)]), "c58c45853c5dbd6888ab86524df454ae714b4975");
        verify(TOKEN, URL, &fields(), &[("file", PDF)], Some("c58c45853c5dbd6888ab86524df454ae714b4975")).unwrap();
        verify(TOKEN, URL, &fields(), &[("file", PDF)], Some("C58C45853C5DBD6888AB86524DF454AE714B4975")).unwrap();
    }

    #[test]
    fn precheck_refuses_exactly_what_verify_would_refuse_without_the_body() {
        let good = sign(TOKEN, URL, &fields(), &[]);
        assert_eq!(precheck(Some(&good)), Ok(()));
        assert_eq!(precheck(Some(&good.to_uppercase())), Ok(()));
        assert_eq!(precheck(Some("0123456789abcdef0123456789abcdef01234567")), Ok(()), "forged, but well-formed");
        assert_eq!(precheck(None), Err(Rejection::Missing));
        for bad in ["", "not-hex", &good[..39], &format!("{good}0"), "g123456789abcdef0123456789abcdef01234567"] {
            assert_eq!(precheck(Some(bad)), Err(Rejection::Malformed), "{bad}");
            assert!(verify(TOKEN, URL, &fields(), &[], Some(bad)).is_err());
        }
    }

    #[test]
    fn missing_malformed_and_wrong_signatures_are_refused() {
        let good = sign(TOKEN, URL, &fields(), &[]);
        assert_eq!(verify(TOKEN, URL, &fields(), &[], None), Err(Rejection::Missing));
        assert_eq!(verify(TOKEN, URL, &fields(), &[], Some("")), Err(Rejection::Malformed));
        assert_eq!(verify(TOKEN, URL, &fields(), &[], Some(&good[..39])), Err(Rejection::Malformed));
        assert_eq!(verify(TOKEN, URL, &fields(), &[], Some(&"z".repeat(40))), Err(Rejection::Malformed));
        assert_eq!(verify(b"other-token", URL, &fields(), &[], Some(&good)), Err(Rejection::Mismatch));
        assert_eq!(verify(b"", URL, &fields(), &[], Some(&good)), Err(Rejection::Mismatch));
        // The URL is part of what is signed: a webhook replayed to another job's callback URL fails.
        let other = "https://example.test/phaxio/callback?job_id=abc124";
        assert_eq!(verify(TOKEN, other, &fields(), &[], Some(&good)), Err(Rejection::Mismatch));
        // A swapped file fails.
        let signed_with_file = sign(TOKEN, URL, &fields(), &[("file", PDF)]);
        assert_eq!(
            verify(TOKEN, URL, &fields(), &[("file", b"%PDF-1.4 other")], Some(&signed_with_file)),
            Err(Rejection::Mismatch)
        );
    }

    /// A mutation of a signed webhook: one field's value, name, an added or removed field, the URL, the file
    /// bytes, or the signature itself.
    #[derive(Debug, Clone)]
    enum Mutation {
        Value(usize, String),
        Name(usize, String),
        Add(String, String),
        Remove(usize),
        Url(String),
        File(Vec<u8>),
        DropFile,
        SignatureBit(usize, u8),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (0usize..5, ".{0,40}").prop_map(|(i, v)| Mutation::Value(i, v)),
            (0usize..5, "[a-z_]{1,12}").prop_map(|(i, n)| Mutation::Name(i, n)),
            ("[a-z_]{1,12}", ".{0,20}").prop_map(|(n, v)| Mutation::Add(n, v)),
            (0usize..5).prop_map(Mutation::Remove),
            "https://[a-z.]{1,20}/[a-z/?=&0-9]{0,30}".prop_map(Mutation::Url),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Mutation::File),
            Just(Mutation::DropFile),
            (0usize..40, 1u8..=255).prop_map(|(i, x)| Mutation::SignatureBit(i, x)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Acceptance: 10,000 mutated webhook requests, none accepted.
        #[test]
        fn no_mutated_webhook_verifies(m in mutation()) {
            let signature = sign(TOKEN, URL, &fields(), &[("file", PDF)]);
            let mut f: Vec<(String, String)> = fields().iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
            let mut url = URL.to_string();
            let mut file: Option<Vec<u8>> = Some(PDF.to_vec());
            let mut sig = signature.clone().into_bytes();
            match m {
                Mutation::Value(i, v) => f[i].1 = v,
                Mutation::Name(i, n) => f[i].0 = n,
                Mutation::Add(n, v) => f.push((n, v)),
                Mutation::Remove(i) => { f.remove(i); }
                Mutation::Url(u) => url = u,
                Mutation::File(b) => file = Some(b),
                Mutation::DropFile => file = None,
                Mutation::SignatureBit(i, x) => sig[i] ^= x,
            }
            let sig = String::from_utf8_lossy(&sig).into_owned();
            let unchanged = f == fields().iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>()
                && url == URL && file.as_deref() == Some(PDF) && sig.eq_ignore_ascii_case(&signature);
            // Renaming a field to a name that sorts to the same string (e.g. `success` → `success`) or a value
            // to itself is no mutation; only real changes must fail.
            let fields_ref: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let files_ref: Vec<(&str, &[u8])> = file.as_deref().map(|b| vec![("file", b)]).unwrap_or_default();
            let same_string = string_to_sign(&url, &fields_ref, &files_ref) == string_to_sign(URL, &fields(), &[("file", PDF)])
                && sig.eq_ignore_ascii_case(&signature);
            let accepted = verify(TOKEN, &url, &fields_ref, &files_ref, Some(&sig)).is_ok();
            prop_assert!(!accepted || unchanged || same_string, "a mutated webhook verified: {:?}", (&url, &f, sig));
        }
    }
}
