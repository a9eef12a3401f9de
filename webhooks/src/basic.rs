//! HTTP Basic credentials on webhooks: Sinch Fax v3's only webhook protection (credentials embedded in the
//! callback URL, which Sinch sends as `Authorization: Basic base64(user:pass)`), also usable for Phaxio.
//!
//! The expected credentials are compared in constant time over a fixed-size digest, so neither the content nor
//! the length of the configured password leaks through timing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::Rejection;

/// The `Authorization` header value for `user:password` (used by the Sinch fake and to build callback URLs).
pub fn header_value(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// Verifies an `Authorization` header against the expected credentials. Empty expected credentials never
/// verify: a webhook endpoint without configured credentials must be refused, not open.
pub fn verify(user: &str, password: &str, header: Option<&str>) -> Result<(), Rejection> {
    let header = header.ok_or(Rejection::Missing)?.trim();
    let (scheme, encoded) = header.split_once(' ').ok_or(Rejection::Malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Rejection::Malformed);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| Rejection::Malformed)?;
    if !decoded.contains(&b':') {
        return Err(Rejection::Malformed);
    }
    if user.is_empty() || password.is_empty() {
        return Err(Rejection::Mismatch);
    }
    let expected = Sha1::digest(format!("{user}:{password}").as_bytes());
    let given = Sha1::digest(&decoded);
    if bool::from(expected.as_slice().ct_eq(given.as_slice())) { Ok(()) } else { Err(Rejection::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_exactly_the_configured_credentials() {
        let good = header_value("sinch", "s3cret:with:colons");
        verify("sinch", "s3cret:with:colons", Some(&good)).unwrap();
        verify("sinch", "s3cret:with:colons", Some(&good.replacen("Basic", "basic", 1))).unwrap();
        assert_eq!(verify("sinch", "s3cret", None), Err(Rejection::Missing));
        assert_eq!(verify("sinch", "s3cret", Some("Bearer abc")), Err(Rejection::Malformed));
        assert_eq!(verify("sinch", "s3cret", Some("Basic !!!")), Err(Rejection::Malformed));
        assert_eq!(
            verify("sinch", "s3cret", Some(&format!("Basic {}", STANDARD.encode("nocolon")))),
            Err(Rejection::Malformed)
        );
        assert_eq!(verify("sinch", "s3cret", Some(&header_value("sinch", "s3cre"))), Err(Rejection::Mismatch));
        assert_eq!(verify("sinch", "s3cret", Some(&header_value("sinc", "s3cret"))), Err(Rejection::Mismatch));
        assert_eq!(verify("", "", Some(&header_value("", ""))), Err(Rejection::Mismatch), "unconfigured is closed");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// 10,000 arbitrary or near-miss Authorization headers: only the exact credentials pass.
        #[test]
        fn only_the_exact_credentials_verify(user in "[a-zA-Z0-9]{0,12}", password in ".{0,16}", raw in ".{0,40}") {
            let accepted = verify("sinch-user", "p@ss:w0rd", Some(&header_value(&user, &password))).is_ok();
            prop_assert_eq!(accepted, user == "sinch-user" && password == "p@ss:w0rd");
            prop_assert!(verify("sinch-user", "p@ss:w0rd", Some(&raw)).is_err() || raw.trim() == header_value("sinch-user", "p@ss:w0rd"));
        }
    }
}
