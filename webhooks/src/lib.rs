//! Authentication of provider webhooks, before anything in the request is allowed to change state.
//!
//! Providers authenticate their callbacks differently, and the older Faxbot implementation got both wrong:
//! - **Phaxio** signs every webhook with `X-Phaxio-Signature`: HMAC-SHA1, keyed with the account's callback
//!   token, over the callback URL *as submitted*, the non-file fields sorted by name (name then value, no
//!   separators), then the file parts sorted by name (name then lowercase hex SHA-1 of the bytes) —
//!   [`phaxio`].
//! - **Sinch** Fax v3 has no signature at all; the only protection is HTTP Basic credentials embedded in the
//!   callback URL, which Sinch sends as `Authorization: Basic …` — [`basic`].
//!
//! [`form`] splits the `multipart/form-data` bodies Phaxio's callbacks arrive in, without copying them.
//!
//! Everything here is pure (no I/O, no clock) and compares secrets in constant time, so the API server, the
//! provider fakes and the fuzz tests share one implementation.

pub mod basic;
pub mod form;
pub mod phaxio;

/// Why a webhook was refused. The variants are deliberately coarse: a caller learns that it failed, not
/// which byte was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The authentication header is absent.
    #[error("missing webhook authentication")]
    Missing,
    /// The header is present but malformed (wrong length, not hex, not Basic, not UTF-8…).
    #[error("malformed webhook authentication")]
    Malformed,
    /// Well-formed but does not match.
    #[error("webhook authentication does not match")]
    Mismatch,
}
