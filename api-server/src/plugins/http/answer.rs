//! What a provider's answer means, by the manifest: pure functions from an HTTP status, a Retry-After and a
//! JSON body to the queue's view (a value to read from, or a [`ProviderError`] whose variant decides
//! retries and failover).

use std::time::Duration;

use faxbot_contract::manifest::{ErrorRule, HttpManifest, Outcome, ResponseMap, StatusMap};
use serde_json::Value;

use crate::plugins::{ProviderError, RemoteStatus};

/// The default meaning of an error status: 401/403 refused credentials, 429 rate limited, 408 and 5xx
/// unavailable, other 4xx a refused fax.
pub fn default_outcome(status: u16) -> Outcome {
    match status {
        401 | 403 => Outcome::Unauthorized,
        429 => Outcome::RateLimited,
        408 | 500..=599 => Outcome::Unavailable,
        _ => Outcome::Rejected,
    }
}

fn outcome(status: u16, rules: &[ErrorRule]) -> Outcome {
    rules.iter().find(|r| r.status == status).map_or_else(|| default_outcome(status), |r| r.outcome)
}

/// Reads a JSON pointer; an empty pointer is the whole document.
pub fn at<'a>(body: &'a Value, pointer: &str) -> Option<&'a Value> {
    body.pointer(pointer)
}

/// A value as text: strings as they are, numbers written out (fax ids are often integers).
pub fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The provider's message for a refusal, at most 200 characters.
fn message(body: Option<&Value>, map: &ResponseMap) -> String {
    let pointer = map.message.as_deref().unwrap_or("/message");
    body.and_then(|b| text(at(b, pointer)))
        .or_else(|| body.and_then(|b| map.error.as_deref().and_then(|p| text(at(b, p)))))
        .unwrap_or_else(|| "no message".into())
        .chars()
        .take(200)
        .collect()
}

/// Interprets an answer: `Ok(body)` for an accepted request, the error the queue acts on otherwise.
/// `body` is `None` when the answer was not JSON or was larger than the read limit.
pub fn interpret(
    manifest: &HttpManifest,
    map: &ResponseMap,
    status: u16,
    retry_after: Option<Duration>,
    body: Option<Value>,
) -> Result<Value, ProviderError> {
    let name = &manifest.name;
    if (200..300).contains(&status) {
        let Some(body) = body else {
            // Accepted, but unreadable: as ambiguous as a timeout, so retryable (and the list action, where
            // the manifest has one, finds the fax before the next attempt).
            return Err(ProviderError::Transport(format!("{name}'s answer could not be read or was too large")));
        };
        if let Some(check) = &map.success
            && at(&body, &check.pointer) != Some(&check.equals)
        {
            return Err(ProviderError::Rejected(format!("{name}: {}", message(Some(&body), map))));
        }
        return Ok(body);
    }
    let msg = format!("{name}: {}", message(body.as_ref(), map));
    Err(match outcome(status, &manifest.errors) {
        Outcome::Unauthorized => ProviderError::Unauthorized(msg),
        Outcome::Rejected => ProviderError::Rejected(msg),
        Outcome::RateLimited => ProviderError::RateLimited { message: msg, retry_after },
        Outcome::Unavailable => ProviderError::Unavailable { message: format!("{name}: HTTP {status}"), retry_after },
    })
}

/// The queue's view of a fax object, by the status map; a value in no list is in progress.
pub fn remote_status(fax: &Value, map: &ResponseMap, statuses: &StatusMap) -> RemoteStatus {
    let value = map.status.as_deref().and_then(|p| text(at(fax, p))).unwrap_or_default();
    let listed = |list: &[String]| list.iter().any(|v| v == &value);
    if listed(&statuses.delivered) {
        RemoteStatus::Delivered
    } else if listed(&statuses.failed) {
        let reason =
            map.error.as_deref().and_then(|p| text(at(fax, p))).unwrap_or_else(|| "transmission failed".into());
        let kind =
            map.error_kind.as_deref().and_then(|p| text(at(fax, p))).map(|k| format!(" ({k})")).unwrap_or_default();
        RemoteStatus::Failed(format!("{}{kind}", reason.chars().take(200).collect::<String>()))
    } else if listed(&statuses.queued) {
        RemoteStatus::Queued
    } else {
        RemoteStatus::InProgress
    }
}

/// Parses a Retry-After header given in seconds (the HTTP-date form is rare for APIs and treated as absent).
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    value.and_then(|v| v.trim().parse::<u64>().ok()).map(|s| Duration::from_secs(s.min(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(errors: serde_json::Value) -> HttpManifest {
        let mut doc: Value = serde_json::from_str(include_str!("../../../../manifests/phaxio-http.json")).unwrap();
        doc["errors"] = errors;
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn statuses_and_errors_map_by_the_manifest() {
        let m = manifest(json!([{"status": 422, "outcome": "unavailable"}]));
        let map = m.actions.send.response.clone();
        let secs = Some(Duration::from_secs(3));
        let table: Vec<(u16, Option<Value>, Result<(), &str>)> = vec![
            (200, Some(json!({"success": true, "data": {"id": 1}})), Ok(())),
            (200, Some(json!({"success": false, "message": "bad number"})), Err("rejected")),
            (200, None, Err("transport")),
            (401, Some(json!({"message": "no"})), Err("unauthorized")),
            (403, None, Err("unauthorized")),
            (429, None, Err("rate_limited")),
            (503, None, Err("unavailable")),
            (408, None, Err("unavailable")),
            (400, None, Err("rejected")),
            (422, None, Err("unavailable")),
        ];
        for (status, body, expected) in table {
            let got = interpret(&m, &map, status, secs, body).map(|_| ()).map_err(|e| e.kind());
            assert_eq!(got, expected, "{status}");
        }
        let e = interpret(&m, &map, 429, secs, None).unwrap_err();
        assert_eq!(e.retry_after(), secs);
        let e = interpret(&m, &map, 401, None, Some(json!({"message": "Invalid API key"}))).unwrap_err();
        assert_eq!(e.to_string(), "provider rejected the credentials: Phaxio (manifest): Invalid API key");

        let status = m.actions.status.response.clone();
        let fax = |s: &str| json!({"data": {"status": s, "error_message": "Busy", "error_type": "lineError"}});
        assert_eq!(remote_status(&fax("queued"), &status, &m.statuses), RemoteStatus::Queued);
        assert_eq!(remote_status(&fax("inprogress"), &status, &m.statuses), RemoteStatus::InProgress);
        assert_eq!(remote_status(&fax("whatever"), &status, &m.statuses), RemoteStatus::InProgress);
        assert_eq!(remote_status(&fax("success"), &status, &m.statuses), RemoteStatus::Delivered);
        assert_eq!(
            remote_status(&fax("failure"), &status, &m.statuses),
            RemoteStatus::Failed("Busy (lineError)".into())
        );
        assert_eq!(retry_after(Some(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    }
}
