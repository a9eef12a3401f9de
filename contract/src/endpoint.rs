//! Which URLs a provider plugin may send requests (and its credentials) to.
//!
//! A `keys:manage` key can change a provider's `baseUrl`. A prefix check let
//! `http://127.0.0.1@169.254.169.254/latest/meta-data/` through (the host is the metadata service; the rest is
//! userinfo) and `http://localhost.attacker.example/v2.1/`: the next fax sent the provider's Basic credentials
//! in the clear to whoever answered. So an endpoint is parsed as a URL (WHATWG rules, as the HTTP client
//! parses it) and judged on its parts:
//! - `https`, or `http` only to a loopback host (`127.0.0.0/8`, `::1`, exactly `localhost`: tests and a local
//!   proxy);
//! - no userinfo (credentials go in headers, and `user@` only serves to disguise the host);
//! - an IP-literal host must not be link-local or a cloud metadata service (`169.254.169.254`,
//!   `fd00:ec2::254`, Alibaba's `100.100.100.200`), unspecified, broadcast or multicast — ever — nor private
//!   (`10/8`, `172.16/12`, `192.168/16`, `fc00::/7`) or shared (`100.64/10`) unless the plugin's
//!   `allowPrivateNetwork` setting says the provider really is on the internal network (an on-premises
//!   gateway).
//!
//! Host names are not resolved here: the provider plugins' HTTP clients resolve them through a resolver that
//! drops the addresses [`address_allowed`] refuses, so a name that resolves to the metadata service (or, without
//! `allowPrivateNetwork`, to a private address) fails at connect time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an endpoint URL is refused, as a sentence for a validation message (private addresses refused).
pub fn problem(value: &str) -> Option<&'static str> {
    problem_allowing(value, false)
}

/// [`problem`], with private and shared addresses allowed when `allow_private` (never link-local, metadata,
/// unspecified, broadcast or multicast ones).
pub fn problem_allowing(value: &str, allow_private: bool) -> Option<&'static str> {
    let Ok(url) = url::Url::parse(value) else {
        return Some("must be an absolute URL");
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Some("must not contain credentials (user@ or user:password@)");
    }
    let host = match url.host() {
        Some(host) => host,
        None => return Some("must have a host"),
    };
    let ip = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    };
    let loopback = match (&host, ip) {
        (_, Some(ip)) => ip.is_loopback(),
        (url::Host::Domain(name), None) => name.eq_ignore_ascii_case("localhost"),
        _ => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Some("must use https (http only for loopback)"),
        _ => return Some("must be an https URL"),
    }
    if let Some(ip) = ip {
        match class(ip) {
            Class::Never => return Some("must not be a link-local, metadata, multicast or unspecified address"),
            Class::Private if !allow_private => {
                return Some("must not be a private or shared address (unless allowPrivateNetwork is set)");
            }
            _ => {}
        }
    }
    None
}

/// Whether a provider plugin may connect to `ip` (a name's resolved address, checked at connect time).
pub fn address_allowed(ip: IpAddr, allow_private: bool) -> bool {
    match class(ip) {
        Class::Public => true,
        Class::Private => allow_private,
        Class::Never => false,
    }
}

/// What an address is, for a provider endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Anything routable (and loopback, for tests and local proxies).
    Public,
    /// Private and shared ranges: allowed per plugin.
    Private,
    /// Link-local, metadata, unspecified, broadcast, multicast: never.
    Never,
}

fn class(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => class_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => class_v4(v4),
            None => class_v6(v6),
        },
    }
}

fn class_v4(ip: Ipv4Addr) -> Class {
    let [a, b, ..] = ip.octets();
    if ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip == Ipv4Addr::new(100, 100, 100, 200)
    // Alibaba Cloud's metadata service
    {
        Class::Never
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        // RFC 1918 and the shared address space (RFC 6598)
        Class::Private
    } else {
        Class::Public
    }
}

fn class_v6(ip: Ipv6Addr) -> Class {
    let first = ip.segments()[0];
    if ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xffc0) == 0xfe80 // link-local
        || ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
    // the AWS IPv6 metadata service, inside the unique local range
    {
        Class::Never
    } else if (first & 0xfe00) == 0xfc00 {
        Class::Private // unique local
    } else {
        Class::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_judged_on_their_parsed_parts() {
        let table: &[(&str, bool)] = &[
            ("https://api.phaxio.com/v2.1/", true),
            ("https://eu1.fax.api.sinch.com/v3/", true),
            ("http://127.0.0.1:8080/v2.1/", true),
            ("http://127.9.9.9/", true),
            ("http://localhost:9000/v2.1/", true),
            ("http://[::1]:9000/", true),
            ("https://198.18.0.1:4443/v2.1/", true), // the test cluster's bridge (benchmarking range)
            // The review's examples.
            ("http://127.0.0.1@169.254.169.254/latest/meta-data/", false),
            ("http://localhost.attacker.example/v2.1/", false),
            ("https://user:pass@api.phaxio.com/v2.1/", false),
            ("https://169.254.169.254/latest/", false),
            ("https://[fd00:ec2::254]/", false),
            ("https://[fe80::1]/", false),
            ("https://[::ffff:169.254.169.254]/", false),
            ("https://10.0.0.1/", false),
            ("https://172.16.5.4/", false),
            ("https://192.168.1.1/", false),
            ("https://100.64.0.1/", false),
            ("https://0.0.0.0/", false),
            ("https://224.0.0.1/", false),
            ("http://api.phaxio.com/v2.1/", false),
            ("ftp://api.phaxio.com/", false),
            ("api.phaxio.com/v2.1/", false),
            ("https:///v2.1/", false),
            // Disguises the WHATWG parser sees through: decimal and hex IPv4 are the metadata address...
            ("https://2852039166/", false), // 169.254.169.254
            ("https://0xa9fea9fe/", false), // 169.254.169.254
            // ...and a backslash ends the host, as in the HTTP client, which parses the same way: this one
            // goes to localhost with the path `/@169.254.169.254/`.
            ("http://localhost\\@169.254.169.254/", true),
        ];
        for (url, ok) in table {
            assert_eq!(problem(url).is_none(), *ok, "{url}: {:?}", problem(url));
        }
    }

    #[test]
    fn private_addresses_only_with_the_plugins_consent_and_metadata_never() {
        let table: &[(&str, bool, bool)] = &[
            // (url, allowed without allowPrivateNetwork, allowed with it)
            ("https://10.0.0.1/", false, true),
            ("https://172.16.5.4/", false, true),
            ("https://192.168.1.1/", false, true),
            ("https://100.64.0.1/", false, true),
            ("https://[fd12:3456::1]/", false, true),
            ("https://169.254.169.254/", false, false),
            ("https://[fd00:ec2::254]/", false, false),
            ("https://100.100.100.200/", false, false),
            ("https://[fe80::1]/", false, false),
            ("https://0.0.0.0/", false, false),
            ("https://api.phaxio.com/v2.1/", true, true),
            ("https://203.0.113.7/", true, true),
        ];
        for (url, without, with) in table {
            assert_eq!(problem_allowing(url, false).is_none(), *without, "{url} without");
            assert_eq!(problem_allowing(url, true).is_none(), *with, "{url} with");
        }
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert!(address_allowed(ip("127.0.0.1"), false));
        assert!(address_allowed(ip("198.18.0.1"), false));
        assert!(!address_allowed(ip("10.1.2.3"), false));
        assert!(address_allowed(ip("10.1.2.3"), true));
        assert!(!address_allowed(ip("169.254.169.254"), true));
        assert!(!address_allowed(ip("::ffff:169.254.169.254"), true));
        assert!(!address_allowed(ip("fd00:ec2::254"), true));
    }
}
