//! Building a manifest action's request, apart from sending it: templates rendered, the host checked again
//! against `allowedDomains`, the auth scheme applied. Pure, so every rule has a table test; the plugin does
//! the I/O around it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use faxbot_contract::manifest::template::{self, RenderError, Values};
use faxbot_contract::manifest::{Action, Auth, Body, Encoding, HmacAlgorithm, HttpManifest, Method, Part};
use hmac::{Hmac, Mac};

/// A request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Method.
    pub method: Method,
    /// Full URL.
    pub url: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: PreparedBody,
}

/// A request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreparedBody {
    /// No body.
    None,
    /// `application/json`.
    Json(Vec<u8>),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<u8>),
    /// `multipart/form-data`: text fields, and the document part's (field, file name).
    Multipart {
        /// Text fields.
        fields: Vec<(String, String)>,
        /// Where the document goes.
        document: Option<(String, String)>,
    },
}

/// Why a request could not be built. Never carries a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    /// A required template could not be rendered.
    #[error("{what}: {source}")]
    Template {
        /// Which template.
        what: String,
        /// Why.
        source: RenderError,
    },
    /// The rendered URL is not an allowed one.
    #[error("the {action} URL is not on an allowed domain")]
    Domain {
        /// Which action.
        action: &'static str,
    },
    /// HMAC request signing cannot cover a multipart body.
    #[error("an HMAC over the body needs a json or form body")]
    UnsignableBody,
}

fn required(source: &str, values: &Values, what: &str) -> Result<String, PrepareError> {
    template::render(source, values).map_err(|source| PrepareError::Template { what: what.to_string(), source })
}

/// Renders an optional value: one that reads an unset value (an optional setting, `callback_url` without
/// callbacks) is left out.
fn optional(source: &str, values: &Values, what: &str) -> Result<Option<String>, PrepareError> {
    match template::render(source, values) {
        Ok(v) => Ok(Some(v)),
        Err(RenderError::Missing) => Ok(None),
        Err(source) => Err(PrepareError::Template { what: what.to_string(), source }),
    }
}

fn render_json(value: &serde_json::Value, values: &Values) -> Result<Option<serde_json::Value>, PrepareError> {
    Ok(match value {
        serde_json::Value::String(s) => optional(s, values, "body")?.map(serde_json::Value::String),
        serde_json::Value::Array(items) => Some(serde_json::Value::Array(
            items
                .iter()
                .map(|i| render_json(i, values))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .collect(),
        )),
        serde_json::Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if let Some(v) = render_json(v, values)? {
                    out.insert(k.clone(), v);
                }
            }
            Some(serde_json::Value::Object(out))
        }
        other => Some(other.clone()),
    })
}

/// Whether the URL's host is one of the manifest's allowed domains (checked again after rendering, so no
/// template can move a request elsewhere, whatever the checks before missed).
pub fn allowed_host(manifest: &HttpManifest, url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else { return false };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return false;
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return false,
    };
    matches!(parsed.scheme(), "https" | "http")
        && faxbot_contract::manifest::check::host_listed(&manifest.allowed_domains, &host)
}

/// Builds the request of `action` (`name` for messages) with `values`; `now` is the Unix time an HMAC
/// signature covers.
pub fn prepare(
    manifest: &HttpManifest,
    action: &Action,
    name: &'static str,
    values: &Values,
    now: u64,
) -> Result<Prepared, PrepareError> {
    let mut url = required(&action.url, values, &format!("{name} URL"))?;
    let mut headers = Vec::new();
    for (header, source) in &action.headers {
        if let Some(value) = optional(source, values, &format!("{name} header {header}"))? {
            headers.push((header.clone(), value));
        }
    }
    let body = match &action.body {
        None => PreparedBody::None,
        Some(Body::Json { template }) => PreparedBody::Json(
            serde_json::to_vec(&render_json(template, values)?.unwrap_or(serde_json::Value::Null)).unwrap_or_default(),
        ),
        Some(Body::Form { fields }) => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (field, source) in fields {
                if let Some(value) = optional(source, values, &format!("{name} field {field}"))? {
                    form.append_pair(field, &value);
                }
            }
            PreparedBody::Form(form.finish().into_bytes())
        }
        Some(Body::Multipart { fields, document }) => {
            let mut out = Vec::new();
            for (field, source) in fields {
                if let Some(value) = optional(source, values, &format!("{name} field {field}"))? {
                    out.push((field.clone(), value));
                }
            }
            let document = match document {
                Some(d) => Some((d.field.clone(), required(&d.file_name, values, "document file name")?)),
                None => None,
            };
            PreparedBody::Multipart { fields: out, document }
        }
    };
    match &manifest.auth {
        Auth::Basic { username, password } => {
            let user = required(username, values, "auth username")?;
            let pass = required(password, values, "auth password")?;
            headers.push(("authorization".into(), format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))));
        }
        Auth::Bearer { token } => {
            headers.push(("authorization".into(), format!("Bearer {}", required(token, values, "auth token")?)))
        }
        Auth::Header { name: header, value } => headers.push((header.clone(), required(value, values, "auth value")?)),
        Auth::Query { name: param, value } => {
            let value = required(value, values, "auth value")?;
            let mut parsed = url::Url::parse(&url).map_err(|_| PrepareError::Domain { action: name })?;
            parsed.query_pairs_mut().append_pair(param, &value);
            url = parsed.to_string();
        }
        Auth::Hmac { header, algorithm, encoding, key, signed, timestamp_header, prefix } => {
            let key = required(key, values, "auth key")?;
            let mut message = Vec::new();
            for part in signed.iter().filter_map(|p| Part::parse(p)) {
                match part {
                    Part::Url => message.extend_from_slice(url.as_bytes()),
                    Part::Method => message.extend_from_slice(action.method.as_str().as_bytes()),
                    Part::Body => match &body {
                        PreparedBody::None => {}
                        PreparedBody::Json(b) | PreparedBody::Form(b) => message.extend_from_slice(b),
                        PreparedBody::Multipart { .. } => return Err(PrepareError::UnsignableBody),
                    },
                    Part::Timestamp => message.extend_from_slice(now.to_string().as_bytes()),
                    Part::Literal(text) => message.extend_from_slice(text.as_bytes()),
                    // Refused by the manifest check for requests.
                    Part::Header(_) | Part::FormSorted | Part::FilesSha1Sorted => {}
                }
            }
            if let Some(ts) = timestamp_header {
                headers.push((ts.clone(), now.to_string()));
            }
            headers.push((header.clone(), format!("{prefix}{}", mac(*algorithm, *encoding, key.as_bytes(), &message))));
        }
    }
    if !allowed_host(manifest, &url) {
        return Err(PrepareError::Domain { action: name });
    }
    Ok(Prepared { method: action.method, url, headers, body })
}

/// An HMAC, encoded.
pub fn mac(algorithm: HmacAlgorithm, encoding: Encoding, key: &[u8], message: &[u8]) -> String {
    let bytes = mac_bytes(algorithm, key, message);
    match encoding {
        Encoding::Hex => hex::encode(bytes),
        Encoding::Base64 => STANDARD.encode(bytes),
    }
}

/// An HMAC's raw bytes. HMAC takes keys of any length, so building it cannot fail.
pub fn mac_bytes(algorithm: HmacAlgorithm, key: &[u8], message: &[u8]) -> Vec<u8> {
    match algorithm {
        HmacAlgorithm::Sha1 => Hmac::<sha1::Sha1>::new_from_slice(key)
            .map(|mut m| {
                m.update(message);
                m.finalize().into_bytes().to_vec()
            })
            .unwrap_or_default(),
        HmacAlgorithm::Sha256 => Hmac::<sha2::Sha256>::new_from_slice(key)
            .map(|mut m| {
                m.update(message);
                m.finalize().into_bytes().to_vec()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(auth: serde_json::Value) -> HttpManifest {
        let mut doc: serde_json::Value =
            serde_json::from_str(include_str!("../../../../manifests/phaxio-http.json")).unwrap();
        doc["auth"] = auth;
        serde_json::from_value(doc).unwrap()
    }

    fn values() -> Values {
        let mut v = Values::default();
        v.set("to", "+15551234567").set("job_id", "0123abcd").set("idempotency_key", "0123abcd");
        v.credentials.insert("apiKey".into(), "key".into());
        v.credentials.insert("apiSecret".into(), "secret".into());
        v
    }

    #[test]
    fn the_send_request_is_built_from_the_templates() {
        let m = manifest(
            json!({"scheme": "basic", "username": "{{ credentials.apiKey }}", "password": "{{ credentials.apiSecret }}"}),
        );
        let p = prepare(&m, &m.actions.send, "send", &values(), 0).unwrap();
        assert_eq!(p.url, "https://api.phaxio.com/v2.1/faxes");
        assert_eq!(p.headers, vec![("authorization".to_string(), format!("Basic {}", STANDARD.encode("key:secret")))]);
        assert_eq!(
            p.body,
            PreparedBody::Multipart {
                // callback_url is not set, so its field is left out.
                fields: vec![("tag[faxbot_job]".into(), "0123abcd".into()), ("to".into(), "+15551234567".into())],
                document: Some(("file".into(), "0123abcd.pdf".into())),
            }
        );
        let mut with_callback = values();
        with_callback.set("callback_url", "https://faxbot.example.org/webhooks/phaxio-http");
        let p = prepare(&m, &m.actions.send, "send", &with_callback, 0).unwrap();
        let PreparedBody::Multipart { fields, .. } = p.body else { panic!() };
        assert_eq!(fields[0], ("callback_url".into(), "https://faxbot.example.org/webhooks/phaxio-http".into()));
        let list = prepare(&m, m.actions.list.as_ref().unwrap(), "list", &values(), 0).unwrap();
        assert_eq!(list.url, "https://api.phaxio.com/v2.1/faxes?tag%5Bfaxbot_job%5D=0123abcd&direction=sent");
        // A status request whose provider id is missing cannot be built (and names no value).
        let e = prepare(&m, &m.actions.status, "status", &values(), 0).unwrap_err();
        assert_eq!(e.to_string(), "status URL: template reads a value that is not set");
    }

    /// An auth scheme, the header it must add, and the query it must append.
    type AuthCase = (serde_json::Value, Option<(&'static str, String)>, &'static str);

    #[test]
    fn every_auth_scheme_is_applied() {
        let cases: Vec<AuthCase> = vec![
            (
                json!({"scheme": "bearer", "token": "{{ credentials.apiKey }}"}),
                Some(("authorization", "Bearer key".into())),
                "",
            ),
            (
                json!({"scheme": "header", "name": "X-Api-Key", "value": "{{ credentials.apiKey }}"}),
                Some(("X-Api-Key", "key".into())),
                "",
            ),
            (json!({"scheme": "query", "name": "api_key", "value": "{{ credentials.apiKey }}"}), None, "?api_key=key"),
            (
                json!({"scheme": "hmac", "header": "X-Sig", "algorithm": "sha256", "encoding": "hex",
                       "key": "{{ credentials.apiSecret }}", "signed": ["method", "literal:\n", "url", "timestamp"],
                       "timestampHeader": "X-Time", "prefix": "v1="}),
                Some((
                    "X-Sig",
                    format!(
                        "v1={}",
                        mac(
                            HmacAlgorithm::Sha256,
                            Encoding::Hex,
                            b"secret",
                            b"GET\nhttps://api.phaxio.com/v2.1/faxes/77/cancel1700000000"
                        )
                    ),
                )),
                "",
            ),
        ];
        let mut v = values();
        v.set("provider_id", "77");
        for (auth, header, query) in cases {
            let m = manifest(auth.clone());
            let mut action = m.actions.cancel.clone().unwrap();
            action.method = Method::Get;
            let p = prepare(&m, &action, "cancel", &v, 1_700_000_000).unwrap();
            assert_eq!(p.url, format!("https://api.phaxio.com/v2.1/faxes/77/cancel{query}"), "{auth}");
            if let Some((name, value)) = header {
                assert!(p.headers.iter().any(|(n, v)| n == name && v == &value), "{auth}: {:?}", p.headers);
            }
        }
    }

    #[test]
    fn a_rendered_url_off_the_allowed_domains_is_refused() {
        let m = manifest(json!({"scheme": "bearer", "token": "t"}));
        assert!(allowed_host(&m, "https://api.phaxio.com/v2.1/faxes"));
        assert!(!allowed_host(&m, "https://api.phaxio.com.evil.example/x"));
        assert!(!allowed_host(&m, "https://api.phaxio.com@169.254.169.254/x"));
        assert!(!allowed_host(&m, "file:///etc/passwd"));
    }

    #[test]
    fn the_shipped_signalwire_manifest_sends_to_the_space_a_setting_names() {
        let m: HttpManifest = serde_json::from_str(include_str!("../../../../manifests/signalwire.json")).unwrap();
        assert!(faxbot_contract::manifest::registry::is_shipped(&m), "the shipped one, unchanged");
        let mut v = values();
        v.settings.insert("projectId".into(), "p-1".into());
        v.settings.insert("senderId".into(), "+15550001234".into());
        v.credentials.insert("apiToken".into(), "t".into());
        let prepared = |space: &str| {
            let mut v = v.clone();
            v.settings.insert("space".into(), space.into());
            prepare(&m, &m.actions.send, "send", &v, 0).map(|p| p.url)
        };
        assert_eq!(
            prepared("acme").unwrap(),
            "https://acme.signalwire.com/api/laml/2010-04-01/Accounts/p-1/Faxes.json"
        );
        // A setting cannot move the request off the space's domain.
        for space in ["evil.example/x?", "evil.example#", "a.b", "user@169.254.169.254/", ""] {
            assert!(prepared(space).is_err(), "{space:?}");
        }
    }

    #[test]
    fn a_wildcard_domain_admits_one_label_and_nothing_else() {
        let mut m = manifest(json!({"scheme": "bearer", "token": "t"}));
        m.allowed_domains = vec!["*.signalwire.com".into()];
        for (url, allowed) in [
            ("https://acme.signalwire.com/api/laml", true),
            ("https://ACME.signalwire.com/api/laml", true),
            ("https://signalwire.com/api", false),
            ("https://a.b.signalwire.com/api", false),
            ("https://acmesignalwire.com/api", false),
            ("https://evil.example/x?.signalwire.com/api", false),
            ("https://evil.example#.signalwire.com/api", false),
            ("https://acme.signalwire.com@169.254.169.254/", false),
            ("https://acme.signalwire.com.evil.example/", false),
            ("https://-x.signalwire.com/", false),
        ] {
            assert_eq!(allowed_host(&m, url), allowed, "{url}");
        }
    }
}
