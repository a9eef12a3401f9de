//! Authentication, scopes and rate limits, in the reference's order: 401 → 403 → 429.
//!
//! Secrets are high-entropy random strings, so a slow password KDF buys nothing; we store
//! HMAC-SHA256(pepper, secret) and compare digests in constant time. The pepper is a server secret kept
//! outside the database, so a database dump alone cannot be used to check guesses.

use super::error::ApiError;
use crate::db::{Db, keys};
use crate::domain::{Scope, Timestamp};
use crate::metrics::Metrics;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Dev mode without a credential.
    Anonymous,
    /// The bootstrap env key.
    Env,
    /// A database key.
    Key {
        /// Public key id.
        key_id: String,
        /// Granted scopes.
        scopes: Vec<String>,
    },
}

impl Identity {
    /// The id used for rate limits and audit entries.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Identity::Anonymous => None,
            Identity::Env => Some("env"),
            Identity::Key { key_id, .. } => Some(key_id),
        }
    }
}

/// Why a credential was refused (audit and metrics only; clients always get the same 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Missing,
    Malformed,
    Unknown,
    Mismatch,
    Revoked,
    Expired,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::Unknown => "unknown_key",
            Refusal::Mismatch => "wrong_secret",
            Refusal::Revoked => "revoked",
            Refusal::Expired => "expired",
        }
    }
}

/// Authentication state shared by all requests.
#[derive(Debug)]
pub struct Auth {
    db: Db,
    env_key_digest: Option<[u8; 32]>,
    pepper: Vec<u8>,
    enforced: bool,
    rate: RateLimiter,
    last_used: Mutex<HashMap<String, Timestamp>>,
    metrics: Arc<Metrics>,
}

/// A parsed `fbk_<env>_<key_id>_<secret>` token.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedToken<'a> {
    /// Public key id (12 hex).
    pub key_id: &'a str,
    /// The secret part.
    pub secret: &'a str,
}

/// The key a request presents: `X-API-Key`, or where `bearer` allows it `Authorization: Bearer <key>`.
fn presented_key(headers: &HeaderMap, bearer: bool) -> Result<&str, Refusal> {
    if let Some(value) = headers.get("x-api-key") {
        return value.to_str().map_err(|_| Refusal::Malformed);
    }
    let value = headers.get(axum::http::header::AUTHORIZATION).filter(|_| bearer).ok_or(Refusal::Missing)?;
    match value.to_str().map_err(|_| Refusal::Malformed)?.split_once(' ') {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() => Ok(key.trim()),
        _ => Err(Refusal::Malformed),
    }
}

/// Parses a DB key token. The secret may itself contain `_`.
pub fn parse_token(token: &str) -> Option<ParsedToken<'_>> {
    let rest = token.strip_prefix("fbk_")?;
    let (_env, rest) = rest.split_once('_')?;
    let (key_id, secret) = rest.split_once('_')?;
    let id_ok = key_id.len() == 12 && key_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (id_ok && !secret.is_empty() && secret.len() <= 256).then_some(ParsedToken { key_id, secret })
}

impl Auth {
    /// Builds the auth state.
    pub fn new(db: Db, env_key: Option<&str>, pepper: Vec<u8>, enforced: bool, metrics: Arc<Metrics>) -> Self {
        Auth {
            db,
            env_key_digest: env_key.map(|k| Sha256::digest(k.as_bytes()).into()),
            pepper,
            enforced,
            rate: RateLimiter::default(),
            last_used: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Whether credentials are required.
    pub fn enforced(&self) -> bool {
        self.enforced
    }

    /// The stored form of a secret.
    pub fn hash_secret(&self, secret: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.pepper).expect("HMAC accepts keys of any length");
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Identifies the caller by `X-API-Key`, or (where `bearer` allows it: MCP clients send keys that way)
    /// by `Authorization: Bearer`.
    async fn identify(&self, headers: &HeaderMap, bearer: bool) -> Result<Result<Identity, Refusal>, ApiError> {
        let token = match presented_key(headers, bearer) {
            Ok(token) => token,
            Err(refusal) => return Ok(Err(refusal)),
        };
        self.identify_token(token).await
    }

    /// Identifies the holder of `token`, however it was presented.
    async fn identify_token(&self, token: &str) -> Result<Result<Identity, Refusal>, ApiError> {
        if let Some(expected) = &self.env_key_digest {
            let got: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if bool::from(got.ct_eq(expected)) {
                return Ok(Ok(Identity::Env));
            }
        }
        let Some(parsed) = parse_token(token) else { return Ok(Err(Refusal::Malformed)) };
        let Some(row) = keys::find(&self.db, parsed.key_id).await? else { return Ok(Err(Refusal::Unknown)) };
        let computed = self.hash_secret(parsed.secret);
        if !bool::from(computed.as_bytes().ct_eq(row.key_hash.as_bytes())) {
            return Ok(Err(Refusal::Mismatch));
        }
        if row.revoked_at.is_some() {
            return Ok(Err(Refusal::Revoked));
        }
        let now = Timestamp::now();
        if row.expires_at.is_some_and(|e| e <= now) {
            return Ok(Err(Refusal::Expired));
        }
        if let Ok(mut used) = self.last_used.lock() {
            used.insert(row.key_id.clone(), now);
        }
        Ok(Ok(Identity::Key { key_id: row.key_id, scopes: row.scopes }))
    }

    fn refuse(&self, refusal: Refusal, path: &str) {
        Metrics::count(&self.metrics.auth_failures, refusal.as_str());
        crate::audit!("auth_failed", reason = refusal.as_str(), path = %path);
    }

    /// Authenticates a user route: 401, then 403 for a missing scope, then 429 over `rpm` (0 = off).
    pub async fn user(
        &self,
        headers: &HeaderMap,
        scope: Scope,
        route: &'static str,
        rpm: u32,
    ) -> Result<Identity, ApiError> {
        let identity = self.caller(headers, route, false).await?;
        self.permit(&identity, scope, route, rpm)?;
        Ok(identity)
    }

    /// Who is calling: the 401 step of [`Auth::user`] alone, for a route whose operations need different
    /// scopes (MCP: one endpoint, a scope per tool). `bearer` also accepts `Authorization: Bearer <key>`.
    pub async fn caller(&self, headers: &HeaderMap, route: &str, bearer: bool) -> Result<Identity, ApiError> {
        match self.identify(headers, bearer).await? {
            Ok(identity) => Ok(identity),
            Err(refusal) if self.enforced => {
                self.refuse(refusal, route);
                Err(ApiError::AuthFailed { detail: "Invalid or missing API key" })
            }
            Err(_) => Ok(Identity::Anonymous),
        }
    }

    /// The 403 and 429 steps of [`Auth::user`]: whether `identity` holds `scope`, and its request budget for
    /// `route`.
    pub fn permit(&self, identity: &Identity, scope: Scope, route: &'static str, rpm: u32) -> Result<(), ApiError> {
        if let Identity::Key { key_id, scopes } = &identity
            && !scope.granted_by(scopes)
        {
            crate::audit!("api_key_denied_scope", key_id = %key_id, required = scope.as_str());
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Insufficient scope: {} required", scope.as_str()),
            ));
        }
        if let Some(key_id) = identity.key_id()
            && let Err(retry_after) = self.rate.check(key_id, route, rpm)
        {
            crate::audit!("rate_limited", key_id = %key_id, path = route, limit = rpm);
            return Err(ApiError::RateLimited { retry_after });
        }
        Ok(())
    }

    /// Authenticates an admin route: the env key or a key that literally holds `keys:manage`. Every
    /// failure is the same 401, in dev mode too.
    pub async fn admin(&self, headers: &HeaderMap, route: &str) -> Result<Identity, ApiError> {
        let refused = || ApiError::AuthFailed { detail: "Admin authentication failed" };
        match self.identify(headers, false).await? {
            Ok(Identity::Env) => Ok(Identity::Env),
            Ok(Identity::Key { key_id, scopes }) if Scope::KeysManage.granted_by(&scopes) => {
                Ok(Identity::Key { key_id, scopes })
            }
            Ok(Identity::Key { key_id, .. }) => {
                crate::audit!("api_key_denied_scope", key_id = %key_id, required = "keys:manage");
                Err(refused())
            }
            Ok(Identity::Anonymous) => Err(refused()),
            Err(refusal) => {
                self.refuse(refusal, route);
                Err(refused())
            }
        }
    }

    /// The admin console's sign-in: the key typed into its form, which must hold `keys:manage` (or be the
    /// bootstrap key). A key that is not valid counts as a failed authentication, like a refused header.
    pub async fn sign_in(&self, token: &str, route: &str) -> Result<Identity, ApiError> {
        match self.identify_token(token.trim()).await? {
            Ok(Identity::Env) => Ok(Identity::Env),
            Ok(Identity::Key { key_id, scopes }) if Scope::KeysManage.granted_by(&scopes) => {
                Ok(Identity::Key { key_id, scopes })
            }
            Ok(Identity::Key { key_id, .. }) => {
                crate::audit!("api_key_denied_scope", key_id = %key_id, required = "keys:manage");
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "This key cannot sign in: the console needs the keys:manage scope",
                ))
            }
            Ok(Identity::Anonymous) | Err(_) if token.trim().is_empty() => {
                Err(ApiError::AuthFailed { detail: "Enter an API key" })
            }
            Ok(Identity::Anonymous) => Err(ApiError::AuthFailed { detail: "Invalid API key" }),
            Err(refusal) => {
                self.refuse(refusal, route);
                Err(ApiError::AuthFailed { detail: "Invalid API key" })
            }
        }
    }

    /// Whether the key `key_id` is still good (not revoked, not expired): a console session ends with its key.
    pub async fn key_still_valid(&self, key_id: &str) -> Result<bool, ApiError> {
        if key_id == "env" {
            return Ok(self.env_key_digest.is_some());
        }
        let now = Timestamp::now();
        Ok(keys::find(&self.db, key_id)
            .await?
            .is_some_and(|row| row.revoked_at.is_none() && row.expires_at.is_none_or(|e| e > now)))
    }

    /// Writes the coalesced `last_used_at` values.
    pub async fn flush_last_used(&self) {
        let uses: Vec<(String, Timestamp)> = match self.last_used.lock() {
            Ok(mut map) => map.drain().collect(),
            Err(_) => return,
        };
        if let Err(e) = keys::touch_many(&self.db, &uses).await {
            tracing::warn!(error = %e, "writing last_used_at failed");
        }
    }
}

/// A rate-limit bucket: key id and route template.
type Bucket = (String, &'static str);
/// A window: minute number and requests counted in it.
type Window = (u64, u32);

/// Fixed one-minute windows aligned to the wall clock, per (key, route), as in the reference.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<Bucket, Window>>,
}

impl RateLimiter {
    /// Counts a request; `Err(retry_after)` once the count exceeds `limit` in the current window.
    pub fn check(&self, key_id: &str, route: &'static str, limit: u32) -> Result<(), Duration> {
        self.check_at(key_id, route, limit, std::time::SystemTime::now())
    }

    fn check_at(
        &self,
        key_id: &str,
        route: &'static str,
        limit: u32,
        now: std::time::SystemTime,
    ) -> Result<(), Duration> {
        if limit == 0 {
            return Ok(());
        }
        let secs = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let window = secs / 60;
        let Ok(mut map) = self.windows.lock() else { return Ok(()) };
        if map.len() > 10_000 {
            map.retain(|_, (w, _)| *w == window);
        }
        let entry = map.entry((key_id.to_string(), route)).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
        if entry.1 > limit { Err(Duration::from_secs(60 - secs % 60)) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn the_key_comes_from_x_api_key_or_where_allowed_a_bearer_header() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, axum::http::HeaderValue::from_static(v));
            }
            h
        };
        type Headers = &'static [(&'static str, &'static str)];
        let cases: &[(Headers, bool, Result<&str, Refusal>)] = &[
            (&[("x-api-key", "k1")], false, Ok("k1")),
            (&[("x-api-key", "k1"), ("authorization", "Bearer k2")], true, Ok("k1")),
            (&[("authorization", "Bearer k2")], true, Ok("k2")),
            (&[("authorization", "bearer  k2 ")], true, Ok("k2")),
            (&[("authorization", "Bearer k2")], false, Err(Refusal::Missing)),
            (&[("authorization", "Basic azI6")], true, Err(Refusal::Malformed)),
            (&[("authorization", "Bearer ")], true, Err(Refusal::Malformed)),
            (&[], true, Err(Refusal::Missing)),
        ];
        for (pairs, bearer, want) in cases {
            assert_eq!(presented_key(&headers(pairs), *bearer), *want, "{pairs:?} bearer={bearer}");
        }
    }

    #[test]
    fn tokens_parse_like_the_reference() {
        let t = parse_token("fbk_live_0123456789ab_se_cr-et").unwrap();
        assert_eq!(t, ParsedToken { key_id: "0123456789ab", secret: "se_cr-et" });
        assert!(parse_token("fbk_test_0123456789ab_x").is_some());
        assert!(parse_token("fbk_live_0123456789AB_x").is_none());
        assert!(parse_token("fbk_live_short_x").is_none());
        assert!(parse_token("fbk_live_0123456789ab_").is_none());
        assert!(parse_token("bearer xyz").is_none());
    }

    #[test]
    fn limit_plus_one_is_refused_until_the_window_turns() {
        let r = RateLimiter::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(600 * 60 + 15);
        assert!(r.check_at("k", "/fax", 2, t0).is_ok());
        assert!(r.check_at("k", "/fax", 2, t0).is_ok());
        assert_eq!(r.check_at("k", "/fax", 2, t0), Err(Duration::from_secs(45)));
        assert!(r.check_at("other", "/fax", 2, t0).is_ok());
        assert!(r.check_at("k", "/fax/{id}", 2, t0).is_ok());
        assert!(r.check_at("k", "/fax", 2, t0 + Duration::from_secs(45)).is_ok());
        assert!(r.check_at("k", "/fax", 0, SystemTime::now()).is_ok());
    }
}
