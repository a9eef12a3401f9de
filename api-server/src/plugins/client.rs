//! The HTTP client of the provider plugins: redirects off (the endpoint was checked, a redirect would take the
//! request and its credentials somewhere that was not) and a resolver that refuses addresses a provider may
//! not be at.
//!
//! `faxbot_contract::endpoint` checks the configured URL, but a host *name* is only a name: an administrator
//! (or whoever controls the name's DNS) can point `fax.example.org` at `169.254.169.254`. So names are
//! resolved here, and the addresses `endpoint::address_allowed` refuses (link-local and metadata always;
//! private and shared ones unless the plugin's `allowPrivateNetwork` is set) are dropped before the client
//! connects. A name left with no address fails the request like an unknown name does, with a message that
//! says why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use faxbot_contract::endpoint::address_allowed;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The client for a provider plugin.
pub fn provider_client(allow_private: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .build()
        // Building fails only when the TLS backend cannot start; the same settings without the resolver
        // would fail the same way, so there is no weaker fallback.
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "the provider HTTP client could not be built");
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default()
        })
}

/// Resolves with the system resolver, then keeps the allowed addresses.
struct GuardedResolver {
    allow_private: bool,
}

/// A name whose every address was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "{name} resolves only to addresses a provider may not be at (link-local or metadata, or private without allowPrivateNetwork)"
)]
pub struct Refused {
    name: String,
}

/// The addresses of `name` a provider may be at, or why there are none.
pub fn allowed(name: &str, addrs: Vec<SocketAddr>, allow_private: bool) -> Result<Vec<SocketAddr>, Refused> {
    let kept: Vec<SocketAddr> = addrs.into_iter().filter(|a| address_allowed(a.ip(), allow_private)).collect();
    if kept.is_empty() { Err(Refused { name: name.to_string() }) } else { Ok(kept) }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept = allowed(&host, addrs, allow_private)?;
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)), 0)
    }

    #[test]
    fn refused_addresses_are_dropped_and_a_name_with_none_left_fails() {
        let table: &[(&[&str], bool, Result<usize, ()>)] = &[
            (&["203.0.113.7"], false, Ok(1)),
            (&["169.254.169.254"], false, Err(())),
            (&["169.254.169.254"], true, Err(())),
            (&["10.0.0.5"], false, Err(())),
            (&["10.0.0.5"], true, Ok(1)),
            (&["10.0.0.5", "203.0.113.7"], false, Ok(1)),
            (&["fd00:ec2::254", "::1"], true, Ok(1)),
            (&[], true, Err(())),
        ];
        for (addrs, allow, expected) in table {
            let got = allowed("fax.example.org", addrs.iter().map(|a| addr(a)).collect(), *allow);
            assert_eq!(got.as_ref().map(Vec::len).map_err(|_| ()), *expected, "{addrs:?} allow={allow}");
        }
        let refused = allowed("fax.example.org", vec![addr("169.254.169.254")], false).err().map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some(
                "fax.example.org resolves only to addresses a provider may not be at (link-local or metadata, or \
                 private without allowPrivateNetwork)"
            )
        );
    }

    #[tokio::test]
    async fn the_client_resolves_names_through_the_guard() {
        // `localhost` is loopback, which is allowed: the request reaches the (closed) port and fails to
        // connect, rather than failing to resolve.
        let client = provider_client(false);
        let err = client.get("http://localhost:9/").send().await.err().map(|e| format!("{e:?}")).unwrap_or_default();
        assert!(err.contains("Connect") || err.contains("onnect"), "{err}");
        assert!(!err.contains("resolves only"), "{err}");
    }
}
