//! Identifiers and random tokens.

use base64::Engine;
use rand::RngCore;
use std::fmt;

/// A fax job or inbound fax id: 32 lowercase hex characters (a random UUID4 without dashes, as the
/// reference produces), so ids are unguessable and clients that parse them keep working.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JobId(String);

impl JobId {
    /// A fresh random id with the UUID4 version and variant bits set.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        JobId(hex::encode(bytes))
    }

    /// Accepts only the canonical form, so a malformed path segment is a 404 without a database query.
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| JobId(raw.to_owned()))
    }

    /// Rebuilds an id read from the database.
    pub fn from_stored(raw: String) -> Self {
        JobId(raw)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0)
    }
}

/// 32 random bytes as unpadded URL-safe base64 (43 characters): the entropy of API-key secrets and
/// download tokens.
pub fn new_secret_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_are_uuid4() {
        let id = JobId::generate();
        assert_eq!(id.as_str().len(), 32);
        assert_eq!(&id.as_str()[12..13], "4");
        assert!(JobId::parse(id.as_str()).is_some());
        assert!(JobId::parse("ABCDEF0123456789abcdef0123456789").is_none());
        assert!(JobId::parse("nope").is_none());
        assert_ne!(JobId::generate(), JobId::generate());
    }

    #[test]
    fn secret_tokens_have_43_urlsafe_chars() {
        let t = new_secret_token();
        assert_eq!(t.len(), 43);
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}
