//! Console sessions: the rules (pure functions, table-tested below) and the cookie round trip around them.
//!
//! - The API key is typed once into the sign-in form and exchanged for a random session cookie; the key never
//!   reaches the browser's storage, and only the SHA-256 of the cookie is stored.
//! - The cookie is `HttpOnly`, `SameSite=Strict`, limited to `/admin/ui`, and `Secure` unless the console is
//!   opened on a loopback address (where browsers accept no `Secure` cookie over plain HTTP).
//! - A session ends after [`IDLE`] without a request, after [`LIFETIME`] in any case, at sign-out, and when its
//!   key is revoked or expires.
//! - Every change is a POST that must come from the console's own pages: the browser's `Origin` (or
//!   `Sec-Fetch-Site`) must say so, and the form must carry the session's CSRF token.

use crate::db::sessions::{self, SessionRow};
use crate::domain::Timestamp;
use crate::http::AppState;
use crate::http::auth::Identity;
use crate::http::error::ApiError;
use axum::http::{HeaderMap, StatusCode, header};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "faxbot_console";
/// A session unused this long is over.
pub const IDLE: Duration = Duration::from_secs(15 * 60);
/// No session lasts longer than this.
pub const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// `last_seen_at` is written at most this often (not on every page).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Whether a stored session may still be used at `now`.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Good; `touch` says whether to record this request.
    Valid { touch: bool },
    /// Signed out.
    SignedOut,
    /// Unused for longer than [`IDLE`].
    Idle,
    /// Older than [`LIFETIME`].
    Expired,
}

/// The rule for a session opened at `created`, last seen at `last_seen`, signed out at `revoked`.
pub fn verdict(created: Timestamp, last_seen: Timestamp, revoked: Option<Timestamp>, now: Timestamp) -> Verdict {
    let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    if revoked.is_some() {
        Verdict::SignedOut
    } else if now.micros().saturating_sub(created.micros()) >= micros(LIFETIME) {
        Verdict::Expired
    } else if now.micros().saturating_sub(last_seen.micros()) >= micros(IDLE) {
        Verdict::Idle
    } else {
        Verdict::Valid { touch: now.micros().saturating_sub(last_seen.micros()) >= micros(TOUCH_EVERY) }
    }
}

/// Whether the console was opened on a loopback address, by the `Host` it was asked for.
pub fn loopback_host(host: &str) -> bool {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, port)| if port.contains(':') { host } else { name }),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The `Set-Cookie` value that opens a session (`value`) or, with `None`, ends it.
pub fn set_cookie(value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(value) => format!("{COOKIE}={value}; Path=/admin/ui; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{COOKIE}=; Path=/admin/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// The session cookie's value in a `Cookie` header.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty() && value.len() <= 64)
}

/// Whether a state-changing request came from another site: its `Origin` is not this console's (the scheme
/// and `Host` the browser asked for), or, without an `Origin`, `Sec-Fetch-Site` says it is not same-origin.
/// A request with neither header is not a browser's cross-site request (every current browser sends
/// `Origin` on a form POST); the CSRF token still has to match.
pub fn cross_site(origin: Option<&str>, fetch_site: Option<&str>, host: Option<&str>) -> bool {
    match (origin, fetch_site) {
        (Some(origin), _) => {
            let Some(host) = host else { return true };
            let authority = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            authority.is_none_or(|a| !a.eq_ignore_ascii_case(host))
        }
        (None, Some(site)) => !site.eq_ignore_ascii_case("same-origin"),
        (None, None) => false,
    }
}

/// A signed-in console user.
#[derive(Debug, Clone)]
pub struct Session {
    /// Hash of the cookie (the row's key).
    pub id_hash: String,
    /// Who signed in (the API key's identity).
    pub identity: Identity,
    /// The token the session's forms carry.
    pub csrf: String,
}

impl Session {
    /// The key id for audit entries.
    pub fn key_id(&self) -> &str {
        self.identity.key_id().unwrap_or("anonymous")
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), ApiError> {
        if bool::from(token.as_bytes().ct_eq(self.csrf.as_bytes())) { Ok(()) } else { Err(forbidden_cross_site()) }
    }
}

/// The refusal of a request that did not come from the console's own pages.
pub fn forbidden_cross_site() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "This form did not come from the console: reload the page and try again")
}

/// Refuses a POST from another site (before its body is read).
pub fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if cross_site(get("origin"), get("sec-fetch-site"), get("host")) {
        crate::audit!("console_cross_site_refused");
        return Err(forbidden_cross_site());
    }
    Ok(())
}

/// Opens a session for `identity`; returns the cookie value (shown to the browser once).
pub async fn open(app: &AppState, identity: &Identity) -> Result<String, ApiError> {
    let cookie = crate::domain::new_secret_token();
    let now = Timestamp::now();
    let scopes = match identity {
        Identity::Key { scopes, .. } => scopes.clone(),
        Identity::Env | Identity::Anonymous => vec!["*".into(), "keys:manage".into()],
    };
    let row = SessionRow {
        id_hash: crate::db::tokens::hash(&cookie),
        key_id: identity.key_id().unwrap_or("anonymous").to_string(),
        scopes,
        csrf: crate::domain::new_secret_token(),
        created_at: now,
        last_seen_at: now,
        revoked_at: None,
    };
    sessions::insert(&app.db, &row).await?;
    Ok(cookie)
}

/// The session of this request, if its cookie names a good one whose key is still valid.
pub async fn current(app: &AppState, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    let Some(cookie) = cookie_value(headers) else { return Ok(None) };
    let id_hash = crate::db::tokens::hash(cookie);
    let Some(row) = sessions::find(&app.db, &id_hash).await? else { return Ok(None) };
    let now = Timestamp::now();
    match verdict(row.created_at, row.last_seen_at, row.revoked_at, now) {
        Verdict::Valid { touch } => {
            if !app.auth.key_still_valid(&row.key_id).await? {
                sessions::revoke(&app.db, &id_hash, now).await?;
                return Ok(None);
            }
            if touch {
                sessions::touch(&app.db, &id_hash, now).await?;
            }
        }
        Verdict::SignedOut | Verdict::Idle | Verdict::Expired => return Ok(None),
    }
    let identity =
        if row.key_id == "env" { Identity::Env } else { Identity::Key { key_id: row.key_id, scopes: row.scopes } };
    Ok(Some(Session { id_hash, identity, csrf: row.csrf }))
}

/// Ends the session.
pub async fn close(app: &AppState, session: &Session) -> Result<(), ApiError> {
    sessions::revoke(&app.db, &session.id_hash, Timestamp::now()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000 + secs * 1_000_000)
    }

    #[test]
    fn a_session_ends_when_idle_too_old_or_signed_out() {
        let idle = IDLE.as_secs() as i64;
        let life = LIFETIME.as_secs() as i64;
        for (created, seen, revoked, now, want) in [
            (0, 0, None, 1, Verdict::Valid { touch: false }),
            (0, 0, None, 59, Verdict::Valid { touch: false }),
            (0, 0, None, 60, Verdict::Valid { touch: true }),
            (0, 0, None, idle - 1, Verdict::Valid { touch: true }),
            (0, 0, None, idle, Verdict::Idle),
            (0, life - 10, None, life - 1, Verdict::Valid { touch: false }),
            (0, life - 10, None, life, Verdict::Expired),
            (0, 0, Some(5), 6, Verdict::SignedOut),
            (0, 0, Some(5), life * 2, Verdict::SignedOut),
        ] {
            assert_eq!(verdict(at(created), at(seen), revoked.map(at), at(now)), want, "{created} {seen} {now}");
        }
    }

    #[test]
    fn the_cookie_is_secure_except_on_loopback() {
        for (host, loopback) in [
            ("127.0.0.1:8080", true),
            ("127.0.0.1", true),
            ("localhost:3000", true),
            ("LOCALHOST", true),
            ("[::1]:8080", true),
            ("::1", true),
            ("fax.example.org", false),
            ("fax.example.org:443", false),
            ("198.18.0.10:8080", false),
            ("localhost.example.org", false),
            ("127.0.0.1.example.org", false),
        ] {
            assert_eq!(loopback_host(host), loopback, "{host}");
        }
        assert_eq!(
            set_cookie(Some("abc"), true),
            "faxbot_console=abc; Path=/admin/ui; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(set_cookie(Some("abc"), false), "faxbot_console=abc; Path=/admin/ui; HttpOnly; SameSite=Strict");
        assert!(set_cookie(None, false).contains("Max-Age=0"));
    }

    #[test]
    fn the_session_cookie_is_read_among_others() {
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::COOKIE, v.parse().unwrap());
            h
        };
        assert_eq!(cookie_value(&headers("faxbot_console=abc")), Some("abc"));
        assert_eq!(cookie_value(&headers("a=1; faxbot_console=abc; b=2")), Some("abc"));
        assert_eq!(cookie_value(&headers("faxbot_consoleX=abc")), None);
        assert_eq!(cookie_value(&headers("faxbot_console=")), None);
        assert_eq!(cookie_value(&headers(&format!("faxbot_console={}", "a".repeat(65)))), None);
        assert_eq!(cookie_value(&HeaderMap::new()), None);
    }

    #[test]
    fn posts_from_other_sites_are_told_apart() {
        let host = Some("127.0.0.1:8080");
        for (origin, site, host, cross) in [
            (Some("http://127.0.0.1:8080"), Some("same-origin"), host, false),
            (Some("https://fax.example.org"), None, Some("fax.example.org"), false),
            (Some("http://127.0.0.1:9999"), Some("same-site"), host, true),
            (Some("https://evil.example"), Some("cross-site"), host, true),
            (Some("null"), None, host, true),
            (Some("http://127.0.0.1:8080"), None, None, true),
            (None, Some("same-origin"), host, false),
            (None, Some("same-site"), host, true),
            (None, Some("cross-site"), host, true),
            (None, Some("none"), host, true),
            (None, None, host, false),
        ] {
            assert_eq!(cross_site(origin, site, host), cross, "{origin:?} {site:?} {host:?}");
        }
    }
}
