//! URL checks shared by the settings of plugins that call out (S3, Phaxio, Sinch).

/// Whether the URL is plain HTTP to this machine (`127.0.0.1`, `localhost`, `[::1]`, any port): allowed for
/// tests and sidecars where HTTPS is required otherwise.
pub(super) fn loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host =
        host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// Whether the value is an HTTPS URL, or HTTP to this machine.
pub(super) fn http_url(value: &str) -> bool {
    value.starts_with("https://") || value.starts_with("http://127.0.0.1") || value.starts_with("http://localhost")
}

/// Whether the URL's host is an IP address literal (`1.2.3.4` or `[::1]`).
pub(super) fn ip_literal_host(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.starts_with('[') {
        return true;
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Whether a URL carries `user:password@` (credentials belong in files, not in the config document).
pub(super) fn has_userinfo(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
}
