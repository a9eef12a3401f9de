//! Failed authentication, limited per client address.
//!
//! Every failed API key costs a database lookup and an audit line, and guessing keys costs nothing else, so a
//! client address that fails more than `FAXBOT_AUTH_FAILURES_PER_MINUTE` times (default 30) in a minute is
//! answered `429` with `Retry-After` for the rest of that minute when it presents a key again, before its
//! request reaches a handler (or a database). Only failures of API key authentication count (the routes mark them, [`AuthFailure`]); a
//! forged provider callback is refused by its plugin without a lookup and does not.
//!
//! Behind a load balancer or ingress every request comes from the proxy's address, and limiting that would let
//! one guesser lock everyone out. So the client address is the peer's unless the peer is a trusted proxy
//! (`FAXBOT_TRUSTED_PROXIES`, CIDRs): then it is the right-most `X-Forwarded-For` entry that is not itself a
//! trusted proxy (entries further left are the client's own claims and can be forged).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use super::AppState;
use super::error::ErrorBody;

/// Marks a response as a failed API key authentication (set by [`super::error::ApiError::AuthFailed`]).
#[derive(Debug, Clone, Copy)]
pub struct AuthFailure;

/// Addresses remembered at most; past it, windows that have ended are dropped first, then all (a flood of
/// distinct addresses resets the limiter rather than growing it without bound).
const MAX_ADDRESSES: usize = 100_000;

/// Failed authentications per client address and minute.
#[derive(Debug)]
pub struct FailedAuth {
    limit: u32,
    trusted: Vec<IpNet>,
    /// Address → (minute number, failures in it).
    windows: Mutex<HashMap<IpAddr, (u64, u32)>>,
}

impl FailedAuth {
    /// A limiter allowing `limit` failures a minute per address (0 = off), trusting `X-Forwarded-For` from
    /// `trusted` peers.
    pub fn new(limit: u32, trusted: Vec<IpNet>) -> Self {
        FailedAuth { limit, trusted, windows: Mutex::new(HashMap::new()) }
    }

    /// `Err(retry_after)` when `client` has used up its failures in the current minute.
    fn check(&self, client: IpAddr, now: SystemTime) -> Result<(), Duration> {
        let (minute, secs) = minute_of(now);
        let Ok(windows) = self.windows.lock() else { return Ok(()) };
        decide(windows.get(&client).copied(), minute, self.limit).map_err(|()| Duration::from_secs(60 - secs % 60))
    }

    /// Counts a failure of `client`.
    fn record(&self, client: IpAddr, now: SystemTime) {
        let (minute, _) = minute_of(now);
        let Ok(mut windows) = self.windows.lock() else { return };
        if windows.len() >= MAX_ADDRESSES {
            windows.retain(|_, (m, _)| *m == minute);
            if windows.len() >= MAX_ADDRESSES {
                windows.clear();
            }
        }
        let entry = windows.entry(client).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

fn minute_of(now: SystemTime) -> (u64, u64) {
    let secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    (secs / 60, secs)
}

/// The rule: refused once `limit` failures were counted in the current minute (0 = never).
fn decide(window: Option<(u64, u32)>, minute: u64, limit: u32) -> Result<(), ()> {
    match window {
        _ if limit == 0 => Ok(()),
        Some((m, failures)) if m == minute && failures >= limit => Err(()),
        _ => Ok(()),
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most `X-Forwarded-For`
/// entry that is not a trusted proxy (a malformed entry stops the walk at the last trusted hop).
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    for hop in hops.iter().rev().flat_map(|v| v.rsplit(',')) {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// The middleware: refuses a client over its limit before the handler runs, and counts the failures the
/// handler reports.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let failed = &state.failed_auth;
    let Some(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) else {
        return next.run(request).await;
    };
    let client = client_address(peer, request.headers(), &failed.trusted);
    // Only a request that presents a key can cost a lookup; callbacks and keyless requests pass (a missing key
    // is refused without touching the database, and a provider's callbacks must not share a guesser's fate).
    let presents_key = presents_key(&request);
    if presents_key && let Err(retry_after) = failed.check(client, SystemTime::now()) {
        crate::metrics::Metrics::count(&state.metrics.auth_failures, "rate_limited");
        crate::audit!("auth_rate_limited", limit = failed.limit);
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(ErrorBody { detail: "Too many failed authentication attempts; retry later".into() }),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let response = next.run(request).await;
    if response.extensions().get::<AuthFailure>().is_some() {
        failed.record(client, SystemTime::now());
    }
    response
}

/// Whether a request presents an API key: in `X-API-Key`, in `Authorization` (MCP clients send `Bearer`), or
/// in the body of the admin console's sign-in form.
fn presents_key(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key("x-api-key")
        || headers.contains_key(header::AUTHORIZATION)
        || (request.method() == axum::http::Method::POST && request.uri().path() == "/admin/ui/signin")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    /// (the address's window, the current minute, the limit, allowed)
    type Case = (Option<(u64, u32)>, u64, u32, bool);

    #[test]
    fn requests_that_present_a_key() {
        let request = |method: &str, path: &str, header: Option<(&str, &str)>| {
            let mut r = axum::http::Request::builder().method(method).uri(path);
            if let Some((k, v)) = header {
                r = r.header(k, v);
            }
            r.body(axum::body::Body::empty()).unwrap()
        };
        for (r, presents) in [
            (request("GET", "/fax/x", Some(("X-API-Key", "k"))), true),
            (request("POST", "/mcp", Some(("Authorization", "Bearer k"))), true),
            (request("POST", "/admin/ui/signin", None), true),
            (request("GET", "/admin/ui/signin", None), false),
            (request("POST", "/admin/ui/signout", None), false),
            (request("POST", "/webhooks/phaxio", Some(("X-Phaxio-Signature", "s"))), false),
            (request("GET", "/health", None), false),
        ] {
            assert_eq!(presents_key(&r), presents, "{} {}", r.method(), r.uri());
        }
    }

    #[test]
    fn the_limit_rule() {
        let table: &[Case] = &[
            (None, 5, 3, true),
            (Some((5, 2)), 5, 3, true),
            (Some((5, 3)), 5, 3, false),
            (Some((5, 99)), 5, 3, false),
            (Some((4, 99)), 5, 3, true), // a new minute
            (Some((5, 99)), 5, 0, true), // off
        ];
        for &(window, minute, limit, allowed) in table {
            assert_eq!(decide(window, minute, limit).is_ok(), allowed, "{window:?} {minute} {limit}");
        }
    }

    #[test]
    fn failures_are_counted_per_address_and_forgotten_with_the_minute() {
        let limiter = FailedAuth::new(3, Vec::new());
        let t0 = UNIX_EPOCH + Duration::from_secs(6_000); // the start of a minute
        for _ in 0..3 {
            assert!(limiter.check(ip("203.0.113.9"), t0).is_ok());
            limiter.record(ip("203.0.113.9"), t0);
        }
        assert_eq!(limiter.check(ip("203.0.113.9"), t0 + Duration::from_secs(15)), Err(Duration::from_secs(45)));
        assert!(limiter.check(ip("203.0.113.10"), t0).is_ok(), "another address");
        assert!(limiter.check(ip("203.0.113.9"), t0 + Duration::from_secs(60)).is_ok(), "the next minute");
    }

    #[test]
    fn the_client_address_comes_from_trusted_proxies_only() {
        let trusted: Vec<IpNet> = vec!["198.18.0.0/15".parse().unwrap_or_else(|_| IpNet::default())];
        let headers = |xff: &[&str]| {
            let mut h = HeaderMap::new();
            for v in xff {
                h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")));
            }
            h
        };
        let table: &[(&str, &[&str], &str)] = &[
            // An untrusted peer is the client, whatever it claims.
            ("203.0.113.5", &["192.0.2.1"], "203.0.113.5"),
            // A trusted proxy: the right-most entry that is not a proxy.
            ("198.18.0.7", &["192.0.2.1"], "192.0.2.1"),
            ("198.18.0.7", &["192.0.2.66, 192.0.2.1"], "192.0.2.1"),
            ("198.18.0.7", &["192.0.2.1, 198.18.0.9"], "192.0.2.1"),
            ("198.18.0.7", &["192.0.2.1", "198.18.0.9"], "192.0.2.1"),
            // No header, or garbage: the last trusted hop.
            ("198.18.0.7", &[], "198.18.0.7"),
            ("198.18.0.7", &["not-an-address"], "198.18.0.7"),
            ("198.18.0.7", &["192.0.2.1, junk, 198.18.0.9"], "198.18.0.9"),
        ];
        for (peer, xff, expected) in table {
            assert_eq!(client_address(ip(peer), &headers(xff), &trusted), ip(expected), "{peer} {xff:?}");
        }
    }
}
