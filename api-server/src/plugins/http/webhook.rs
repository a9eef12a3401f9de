//! Verifying a manifest provider's status callback, as the manifest declares, before anything in it is read;
//! then finding the fax it names. Pure: the route hands over the headers and the body.

use bytes::Bytes;
use faxbot_contract::manifest::template::{self, Values};
use faxbot_contract::manifest::{Part, Verification, Webhook, WebhookBody};
use sha1::Digest;
use subtle::ConstantTimeEq;

use super::answer::{at, text};
use super::request::mac_bytes;

/// Why a callback is refused. The messages name no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Verification cannot run: a credential or the callback URL it needs is not configured.
    #[error("webhooks are not configured: {0}")]
    NotConfigured(&'static str),
    /// The header that carries the proof is missing.
    #[error("missing {0}")]
    Missing(String),
    /// The proof does not match.
    #[error("signature or credentials do not match")]
    Mismatch,
    /// The signed callback time is not a time, or is outside the manifest's window (a replay).
    #[error("callback time outside the accepted window")]
    Stale,
    /// The body is not in the declared format (authentication comes first wherever it can).
    #[error("malformed webhook body")]
    Malformed,
    /// Authentic, but it names no fax.
    #[error("webhook without a fax id")]
    NoFax,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn render(source: &str, values: &Values, what: &'static str) -> Result<String, Refusal> {
    template::render(source, values).ok().filter(|v| !v.is_empty()).ok_or(Refusal::NotConfigured(what))
}

/// What the headers alone tell: verification configured, its header present, and the callback time (when the
/// manifest declares one) within its window of `now` (Unix seconds). The time is checked before the signature
/// that covers it, which only makes a forged time cost less to refuse.
pub fn precheck(
    webhook: &Webhook,
    values: &Values,
    callback_url: Option<&str>,
    headers: &[(String, String)],
    now: u64,
) -> Result<(), Refusal> {
    match &webhook.verification {
        Verification::Hmac { header: name, key, signed, .. } => {
            render(key, values, "the signing key credential")?;
            if callback_url.is_none() && signed.iter().any(|p| Part::parse(p) == Some(Part::Url)) {
                return Err(Refusal::NotConfigured("callbackUrl"));
            }
            header(headers, name).ok_or_else(|| Refusal::Missing(name.clone()))?;
        }
        Verification::Ed25519 { header: name, public_key, .. } => {
            render(public_key, values, "the provider's public key")?;
            header(headers, name).ok_or_else(|| Refusal::Missing(name.clone()))?;
        }
        Verification::Basic { username, password } => {
            render(username, values, "the callback user")?;
            render(password, values, "the callback password")?;
            header(headers, "authorization").ok_or_else(|| Refusal::Missing("Authorization".into()))?;
        }
        Verification::Token { header: name, value } => {
            let expected = render(value, values, "the callback token")?;
            let given = header(headers, name).ok_or_else(|| Refusal::Missing(name.clone()))?;
            // A header token is checked completely here, so a forgery never has its body read.
            if !bool::from(given.trim().as_bytes().ct_eq(expected.as_bytes())) {
                return Err(Refusal::Mismatch);
            }
        }
        Verification::None { .. } => {}
    }
    if let Some(freshness) = &webhook.timestamp {
        let given = header(headers, &freshness.header).ok_or_else(|| Refusal::Missing(freshness.header.clone()))?;
        let at: u64 = given.trim().parse().map_err(|_| Refusal::Stale)?;
        if now.abs_diff(at) > freshness.max_age_seconds {
            return Err(Refusal::Stale);
        }
    }
    Ok(())
}

/// A callback's body, split as its format says.
enum Parsed {
    Json(serde_json::Value),
    Fields { fields: Vec<(String, String)>, files: Vec<(String, Bytes)> },
}

fn parse(kind: WebhookBody, headers: &[(String, String)], body: &Bytes) -> Result<Parsed, Refusal> {
    match kind {
        WebhookBody::Json => serde_json::from_slice(body).map(Parsed::Json).map_err(|_| Refusal::Malformed),
        WebhookBody::Form => Ok(Parsed::Fields {
            fields: form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
            files: Vec::new(),
        }),
        WebhookBody::Multipart => {
            use faxbot_webhooks::form::{boundary, split};
            let content_type = header(headers, "content-type").unwrap_or("");
            let boundary = boundary(content_type).map_err(|_| Refusal::Malformed)?;
            let (mut fields, mut files) = (Vec::new(), Vec::new());
            for part in split(body, &boundary).map_err(|_| Refusal::Malformed)? {
                match part.file_name {
                    Some(_) => files.push((part.name, part.data)),
                    None => {
                        fields.push((part.name, String::from_utf8(part.data.to_vec()).map_err(|_| Refusal::Malformed)?))
                    }
                }
            }
            Ok(Parsed::Fields { fields, files })
        }
    }
}

/// The bytes a callback signature covers, in the manifest's order. Form parts need the parsed body.
fn signed_message(
    signed: &[String],
    callback_url: Option<&str>,
    headers: &[(String, String)],
    body: &Bytes,
    parsed: Option<&Parsed>,
) -> Vec<u8> {
    let mut message = Vec::new();
    for part in signed.iter().filter_map(|p| Part::parse(p)) {
        match (&part, parsed) {
            (Part::Url, _) => message.extend_from_slice(callback_url.unwrap_or("").as_bytes()),
            (Part::Body, _) => message.extend_from_slice(body),
            (Part::Literal(t), _) => message.extend_from_slice(t.as_bytes()),
            (Part::Header(h), _) => message.extend_from_slice(header(headers, h).unwrap_or("").as_bytes()),
            (Part::FormSorted, Some(Parsed::Fields { fields, .. })) => {
                let mut sorted: Vec<&(String, String)> = fields.iter().collect();
                sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                for (k, v) in sorted {
                    message.extend_from_slice(k.as_bytes());
                    message.extend_from_slice(v.as_bytes());
                }
            }
            (Part::FilesSha1Sorted, Some(Parsed::Fields { files, .. })) => {
                let mut sorted: Vec<&(String, Bytes)> = files.iter().collect();
                sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                for (k, v) in sorted {
                    message.extend_from_slice(k.as_bytes());
                    message.extend_from_slice(hex::encode(sha1::Sha1::digest(v)).as_bytes());
                }
            }
            _ => {}
        }
    }
    message
}

/// Verifies a callback and returns the provider's id of the fax it is about.
pub fn verify(
    webhook: &Webhook,
    values: &Values,
    callback_url: Option<&str>,
    headers: &[(String, String)],
    body: &Bytes,
    now: u64,
) -> Result<String, Refusal> {
    precheck(webhook, values, callback_url, headers, now)?;
    match &webhook.verification {
        Verification::Basic { username, password } => {
            let expected = format!("{}:{}", render(username, values, "")?, render(password, values, "")?);
            let given = header(headers, "authorization")
                .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
                .and_then(|b| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.decode(b.trim()).ok()
                })
                .unwrap_or_default();
            if !bool::from(given.ct_eq(expected.as_bytes())) {
                return Err(Refusal::Mismatch);
            }
        }
        Verification::Ed25519 { header: name, public_key, signed } => {
            let key = render(public_key, values, "the provider's public key")?;
            let message = signed_message(signed, callback_url, headers, body, None);
            let given = header(headers, name).unwrap_or("");
            faxbot_contract::manifest::signature::verify_bytes(&message, given, &key).map_err(|_| Refusal::Mismatch)?;
        }
        Verification::Token { .. } | Verification::None { .. } | Verification::Hmac { .. } => {}
    }
    // Parsing only splits the body; nothing is interpreted before the signature below is checked.
    let parsed = parse(webhook.body, headers, body)?;
    if let Verification::Hmac { header: name, algorithm, encoding, key, signed, prefix } = &webhook.verification {
        let key = render(key, values, "the signing key credential")?;
        let message = signed_message(signed, callback_url, headers, body, Some(&parsed));
        let expected = mac_bytes(*algorithm, key.as_bytes(), &message);
        let given = header(headers, name).unwrap_or("").trim();
        let given = given.strip_prefix(prefix.as_str()).ok_or(Refusal::Mismatch)?;
        let decoded = match encoding {
            faxbot_contract::manifest::Encoding::Hex => hex::decode(given.to_ascii_lowercase()).ok(),
            faxbot_contract::manifest::Encoding::Base64 => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(given).ok()
            }
        }
        .ok_or(Refusal::Mismatch)?;
        if !bool::from(decoded.ct_eq(&expected)) {
            return Err(Refusal::Mismatch);
        }
    }
    // Authentic from here on.
    let id = match (&parsed, webhook.body) {
        (Parsed::Json(value), _) => text(at(value, &webhook.provider_id)),
        (Parsed::Fields { fields, .. }, _) => {
            let (field, pointer) = webhook.provider_id.split_once('#').unwrap_or((&webhook.provider_id, ""));
            let raw = fields.iter().find(|(k, _)| k == field).map(|(_, v)| v.clone());
            match raw {
                Some(raw) if pointer.is_empty() => Some(raw).filter(|v| !v.is_empty()),
                Some(raw) => serde_json::from_str::<serde_json::Value>(&raw).ok().and_then(|v| text(at(&v, pointer))),
                None => None,
            }
        }
    };
    id.ok_or(Refusal::NoFax)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faxbot_contract::manifest::HttpManifest;

    fn phaxio() -> Webhook {
        let m: HttpManifest = serde_json::from_str(include_str!("../../../../manifests/phaxio-http.json")).unwrap();
        m.webhook.unwrap()
    }

    fn multipart(fields: &[(&str, &str)]) -> (Vec<(String, String)>, Bytes) {
        let mut body = String::new();
        for (k, v) in fields {
            body.push_str(&format!("--XyZ\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"));
        }
        body.push_str("--XyZ--\r\n");
        (vec![("content-type".into(), "multipart/form-data; boundary=XyZ".into())], Bytes::from(body))
    }

    #[test]
    fn phaxio_style_signatures_verify_like_the_built_in_plugin() {
        let url = "https://faxbot.example.org/webhooks/phaxio-http";
        let mut values = Values::default();
        values.credentials.insert("webhookToken".into(), "tok".into());
        let fields = [("event_type", "fax_completed"), ("fax", r#"{"id":1234,"status":"success"}"#)];
        let signature = faxbot_webhooks::phaxio::sign(b"tok", url, &fields, &[]);
        let (mut headers, body) = multipart(&fields);
        let w = phaxio();
        assert_eq!(precheck(&w, &values, Some(url), &headers, 0), Err(Refusal::Missing("X-Phaxio-Signature".into())));
        headers.push(("x-phaxio-signature".into(), signature.clone()));
        assert_eq!(verify(&w, &values, Some(url), &headers, &body, 0), Ok("1234".into()));
        // Another URL, another token, a changed field: refused.
        assert_eq!(verify(&w, &values, Some("https://other.example/x"), &headers, &body, 0), Err(Refusal::Mismatch));
        let mut wrong = Values::default();
        wrong.credentials.insert("webhookToken".into(), "other".into());
        assert_eq!(verify(&w, &wrong, Some(url), &headers, &body, 0), Err(Refusal::Mismatch));
        let (_, changed) = multipart(&[("event_type", "fax_completed"), ("fax", r#"{"id":9999,"status":"success"}"#)]);
        assert_eq!(verify(&w, &values, Some(url), &headers, &changed, 0), Err(Refusal::Mismatch));
        // Not configured: refused before anything else.
        assert_eq!(
            precheck(&w, &Values::default(), Some(url), &headers, 0),
            Err(Refusal::NotConfigured("the signing key credential"))
        );
        assert_eq!(precheck(&w, &values, None, &headers, 0), Err(Refusal::NotConfigured("callbackUrl")));
    }

    #[test]
    fn ed25519_signatures_verify_with_the_public_key() {
        use faxbot_contract::manifest::signature::{public_key, sign_bytes};
        let secret = [9u8; 32];
        let mut values = Values::default();
        values.settings.insert("publicKey".into(), public_key(&secret));
        let w: Webhook = serde_json::from_value(serde_json::json!({
            "verification": {"scheme": "ed25519", "header": "telnyx-signature-ed25519",
                "publicKey": "{{ settings.publicKey }}", "signed": ["header:telnyx-timestamp", "literal:|", "body"]},
            "body": "json", "providerId": "/data/payload/fax_id"}))
        .unwrap();
        let body = Bytes::from_static(br#"{"data":{"payload":{"fax_id":"f-9"}}}"#);
        let signature = sign_bytes(&[b"1700000000|".as_slice(), &body].concat(), &secret);
        let headers = |ts: &str, sig: &str| {
            vec![
                ("telnyx-timestamp".to_string(), ts.to_string()),
                ("telnyx-signature-ed25519".to_string(), sig.to_string()),
            ]
        };
        assert_eq!(verify(&w, &values, None, &headers("1700000000", &signature), &body, 0), Ok("f-9".into()));
        assert_eq!(verify(&w, &values, None, &headers("1700000001", &signature), &body, 0), Err(Refusal::Mismatch));
        let other = sign_bytes(&[b"1700000000|".as_slice(), &body].concat(), &[8u8; 32]);
        assert_eq!(verify(&w, &values, None, &headers("1700000000", &other), &body, 0), Err(Refusal::Mismatch));
        assert_eq!(
            precheck(&w, &Values::default(), None, &headers("1", "x"), 0),
            Err(Refusal::NotConfigured("the provider's public key"))
        );

        // With the signed time declared (Telnyx's 300 s): authentic callbacks inside the window pass, a replay
        // after it (or a time too far ahead, or not a time) is refused, signature and all.
        let mut timed = w.clone();
        timed.timestamp =
            Some(faxbot_contract::manifest::Freshness { header: "telnyx-timestamp".into(), max_age_seconds: 300 });
        let at = 1_700_000_000;
        let signed = headers("1700000000", &signature);
        for (now, expected) in [
            (at, Ok("f-9".to_string())),
            (at + 300, Ok("f-9".into())),
            (at - 300, Ok("f-9".into())),
            (at + 301, Err(Refusal::Stale)),
            (at - 301, Err(Refusal::Stale)),
        ] {
            assert_eq!(
                verify(&timed, &values, None, &signed, &body, now),
                expected,
                "now = at + {}",
                now as i64 - at as i64
            );
        }
        let odd = sign_bytes(&[b"soon|".as_slice(), &body].concat(), &secret);
        assert_eq!(verify(&timed, &values, None, &headers("soon", &odd), &body, at), Err(Refusal::Stale));
        let no_time = vec![("telnyx-signature-ed25519".to_string(), signature.clone())];
        assert_eq!(
            verify(&timed, &values, None, &no_time, &body, at),
            Err(Refusal::Missing("telnyx-timestamp".into()))
        );
    }

    #[test]
    fn tokens_and_basic_credentials_are_compared_whole() {
        let mut values = Values::default();
        values.credentials.insert("hookToken".into(), "s3cret".into());
        let token: Webhook = serde_json::from_value(serde_json::json!({
            "verification": {"scheme": "token", "header": "X-Hook-Token", "value": "{{ credentials.hookToken }}"},
            "body": "json", "providerId": "/data/fax_id"}))
        .unwrap();
        let body = Bytes::from_static(br#"{"data":{"fax_id":"f-1"}}"#);
        let h = |v: &str| vec![("x-hook-token".to_string(), v.to_string())];
        assert_eq!(verify(&token, &values, None, &h("s3cret"), &body, 0), Ok("f-1".into()));
        assert_eq!(precheck(&token, &values, None, &h("s3cre"), 0), Err(Refusal::Mismatch));
        assert_eq!(verify(&token, &values, None, &h("s3cret"), &Bytes::from_static(b"{}"), 0), Err(Refusal::NoFax));
        assert_eq!(
            verify(&token, &values, None, &h("s3cret"), &Bytes::from_static(b"<xml/>"), 0),
            Err(Refusal::Malformed)
        );

        let basic: Webhook = serde_json::from_value(serde_json::json!({
            "verification": {"scheme": "basic", "username": "faxbot", "password": "{{ credentials.hookToken }}"},
            "body": "form", "providerId": "FaxSid"}))
        .unwrap();
        use base64::Engine;
        let auth = |u: &str| {
            vec![(
                "authorization".to_string(),
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(u)),
            )]
        };
        let form = Bytes::from_static(b"FaxSid=FX123&Status=delivered");
        assert_eq!(verify(&basic, &values, None, &auth("faxbot:s3cret"), &form, 0), Ok("FX123".into()));
        assert_eq!(verify(&basic, &values, None, &auth("faxbot:wrong"), &form, 0), Err(Refusal::Mismatch));
    }
}
