//! Every rule an HTTP plugin manifest must satisfy, as one pure function over the parsed document. The CRD's
//! schema refuses what a schema can (types, required fields); this is the rest, and the operator and the API
//! server both run it, so a manifest is refused with the same message wherever it is applied.

use std::net::IpAddr;

use super::template::{self, Declared, Scope};
use super::{Action, Auth, Body, HttpManifest, Part, Verification, WebhookBody};
use crate::plugins::builtin_manifests;

/// What the deployment allows beyond the manifest's own fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Let `allowedDomains` name loopback (`127.0.0.0/8`, `::1`, `localhost`) and action URLs use plain
    /// `http` there. For tests only: a manifest on a real server must not reach the server's own pod.
    pub allow_loopback: bool,
}

impl Policy {
    /// The process's policy: `FAXBOT_MANIFEST_ALLOW_LOOPBACK=true` allows loopback. It is an environment
    /// variable of the process, never a field of a document, so nobody who can only edit documents can
    /// turn it on.
    pub fn from_env() -> Policy {
        Policy { allow_loopback: std::env::var("FAXBOT_MANIFEST_ALLOW_LOOPBACK").is_ok_and(|v| v == "true") }
    }
}

/// Host names of cloud metadata services, refused like their addresses.
const METADATA_NAMES: &[&str] =
    &["metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"];

/// A problem: the path of the field (`actions.send.url`) and what is wrong.
pub type Problem = (String, String);

/// Checks a manifest; an empty list means it may be used.
pub fn check(m: &HttpManifest, policy: Policy) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut push = |path: &str, message: String| p.push((path.to_string(), message));

    if !valid_id(&m.id) {
        push("id", "must be 2 to 40 lower-case letters, digits or `-`, starting with a letter".into());
    } else if m.id == "http" || builtin_manifests().iter().any(|b| b.id == m.id) {
        push("id", format!("`{}` is the id of a built-in plugin", m.id));
    }
    for (field, value) in [("name", &m.name), ("version", &m.version)] {
        if value.trim().is_empty() || value.len() > 100 {
            push(field, "must be 1 to 100 characters".into());
        }
    }
    names(m.credentials.iter().map(|c| c.name.as_str()), "credentials", &mut push);
    names(m.settings.iter().map(|s| s.name.as_str()), "settings", &mut push);
    for (i, s) in m.settings.iter().enumerate() {
        if super::BINDING_SETTINGS.contains(&s.name.as_str()) {
            push(&format!("settings[{i}].name"), format!("`{}` is a setting of every manifest plugin", s.name));
        }
    }

    if m.allowed_domains.is_empty() {
        push("allowedDomains", "must name at least one host".into());
    }
    for (i, domain) in m.allowed_domains.iter().enumerate() {
        if let Some(problem) = domain_problem(domain, m.allow_private_network, policy) {
            push(&format!("allowedDomains[{i}]"), problem);
        }
    }

    let credentials: Vec<String> = m.credentials.iter().map(|c| c.name.clone()).collect();
    let settings: Vec<String> = m.settings.iter().map(|s| s.name.clone()).collect();
    let declared = Declared { credentials: &credentials, settings: &settings, arguments: &[] };
    let tpl = |path: &str, source: &str, scope: Scope| {
        template::problem(source, scope, &declared).map(|problem| (path.to_string(), problem))
    };
    let mut template_problems = Vec::new();

    match &m.auth {
        Auth::Basic { username, password } => {
            template_problems.extend(tpl("auth.username", username, Scope::Credentials));
            template_problems.extend(tpl("auth.password", password, Scope::Credentials));
        }
        Auth::Bearer { token } => template_problems.extend(tpl("auth.token", token, Scope::Credentials)),
        Auth::Header { name, value } | Auth::Query { name, value } => {
            if !valid_header(name) {
                push("auth.name", "must be a header or parameter name (letters, digits, `-`, `_`)".into());
            }
            template_problems.extend(tpl("auth.value", value, Scope::Credentials));
        }
        Auth::Hmac { header, key, signed, timestamp_header, .. } => {
            if !valid_header(header) {
                push("auth.header", "must be a header name".into());
            }
            template_problems.extend(tpl("auth.key", key, Scope::Credentials));
            if signed.is_empty() {
                push("auth.signed", "must name what is signed".into());
            }
            for (i, part) in signed.iter().enumerate() {
                match Part::parse(part) {
                    None | Some(Part::Header(_) | Part::FormSorted | Part::FilesSha1Sorted) => push(
                        &format!("auth.signed[{i}]"),
                        "a request signature covers url, method, body, timestamp or literal:<text>".into(),
                    ),
                    Some(Part::Timestamp) if timestamp_header.is_none() => push(
                        &format!("auth.signed[{i}]"),
                        "a signed timestamp must be sent: set auth.timestampHeader".into(),
                    ),
                    _ => {}
                }
            }
        }
    }

    let actions = [
        ("send", Some(&m.actions.send), Scope::Send),
        ("status", Some(&m.actions.status), Scope::Fax),
        ("cancel", m.actions.cancel.as_ref(), Scope::Fax),
        ("list", m.actions.list.as_ref(), Scope::List),
    ];
    for (name, action, scope) in actions {
        let Some(action) = action else { continue };
        let base = format!("actions.{name}");
        if let Some(problem) = url_problem(&action.url, m, policy) {
            push(&format!("{base}.url"), problem);
        }
        for header in action.headers.keys().filter(|h| !valid_header(h)) {
            push(&format!("{base}.headers"), format!("`{header}` is not a header name"));
        }
        for (path, source) in action_templates(action, &base) {
            template_problems.extend(tpl(&path, &source, scope));
        }
        if matches!(&action.body, Some(Body::Multipart { document: Some(_), .. })) && name != "send" {
            push(&format!("{base}.body.document"), "only the send action carries the document".into());
        }
        let r = &action.response;
        let pointers = [
            ("items", &r.items),
            ("providerId", &r.provider_id),
            ("status", &r.status),
            ("error", &r.error),
            ("errorKind", &r.error_kind),
            ("pages", &r.pages),
            ("message", &r.message),
        ];
        for (field, pointer) in pointers {
            if let Some(pointer) = pointer
                && !valid_pointer(pointer)
            {
                push(&format!("{base}.response.{field}"), "must be a JSON pointer (`/data/id`)".into());
            }
        }
        if let Some(success) = &r.success
            && !valid_pointer(&success.pointer)
        {
            push(&format!("{base}.response.success.pointer"), "must be a JSON pointer (`/success`)".into());
        }
        match name {
            "send" | "list" if r.provider_id.is_none() => {
                push(&format!("{base}.response.providerId"), "must say where the provider's fax id is".into())
            }
            "status" if r.status.is_none() => {
                push(&format!("{base}.response.status"), "must say where the provider's status is".into())
            }
            _ => {}
        }
        match (name, &r.items) {
            ("list", None) => push(&format!("{base}.response.items"), "must say where the list of faxes is".into()),
            ("list", _) | (_, None) => {}
            (_, Some(_)) => push(&format!("{base}.response.items"), "only the list action has items".into()),
        }
    }
    let send = &m.actions.send;
    let uploads = matches!(&send.body, Some(Body::Multipart { document: Some(_), .. }));
    if !uploads && !reads(send, "document_url") {
        push(
            "actions.send",
            "must deliver the document: a multipart body with `document`, or a template that reads document_url".into(),
        );
    }

    let s = &m.statuses;
    if s.delivered.is_empty() {
        push("statuses.delivered", "must list the provider's delivered status".into());
    }
    if s.failed.is_empty() {
        push("statuses.failed", "must list the provider's failed statuses".into());
    }
    let all: Vec<&String> = s.queued.iter().chain(&s.in_progress).chain(&s.delivered).chain(&s.failed).collect();
    for (i, v) in all.iter().enumerate() {
        if all[..i].contains(v) {
            push("statuses", format!("`{v}` is mapped twice"));
        }
    }
    for (i, rule) in m.errors.iter().enumerate() {
        if !(400..=599).contains(&rule.status) {
            push(&format!("errors[{i}].status"), "must be an HTTP error status (400–599)".into());
        } else if m.errors[..i].iter().any(|r| r.status == rule.status) {
            push(&format!("errors[{i}].status"), format!("{} is mapped twice", rule.status));
        }
    }

    match &m.webhook {
        None => {}
        Some(w) => {
            match &w.verification {
                Verification::None { allow_unverified: false } => push(
                    "webhook.verification",
                    "declares no webhook verification: anyone could call it; verify callbacks (hmac, basic or \
                     token) or set allowUnverified: true"
                        .into(),
                ),
                Verification::None { allow_unverified: true } => {}
                Verification::Hmac { header, key, signed, .. } => {
                    if !valid_header(header) {
                        push("webhook.verification.header", "must be a header name".into());
                    }
                    template_problems.extend(tpl("webhook.verification.key", key, Scope::Credentials));
                    if signed.is_empty() {
                        push("webhook.verification.signed", "must name what is signed".into());
                    }
                    for (i, part) in signed.iter().enumerate() {
                        let path = format!("webhook.verification.signed[{i}]");
                        match Part::parse(part) {
                            None | Some(Part::Method | Part::Timestamp) => push(
                                &path,
                                "a callback signature covers url, body, formSorted, filesSha1Sorted, \
                                 header:<name> or literal:<text>"
                                    .into(),
                            ),
                            Some(Part::FormSorted) if w.body == WebhookBody::Json => {
                                push(&path, "formSorted needs a form or multipart body".into())
                            }
                            Some(Part::FilesSha1Sorted) if w.body != WebhookBody::Multipart => {
                                push(&path, "filesSha1Sorted needs a multipart body".into())
                            }
                            _ => {}
                        }
                    }
                }
                Verification::Ed25519 { header, public_key, signed } => {
                    if !valid_header(header) {
                        push("webhook.verification.header", "must be a header name".into());
                    }
                    template_problems.extend(tpl("webhook.verification.publicKey", public_key, Scope::Credentials));
                    if signed.is_empty() {
                        push("webhook.verification.signed", "must name what is signed".into());
                    }
                    for (i, part) in signed.iter().enumerate() {
                        if !matches!(
                            Part::parse(part),
                            Some(Part::Url | Part::Body | Part::Header(_) | Part::Literal(_))
                        ) {
                            push(
                                &format!("webhook.verification.signed[{i}]"),
                                "an Ed25519 callback signature covers url, body, header:<name> or literal:<text>"
                                    .into(),
                            );
                        }
                    }
                }
                Verification::Basic { username, password } => {
                    template_problems.extend(tpl("webhook.verification.username", username, Scope::Credentials));
                    template_problems.extend(tpl("webhook.verification.password", password, Scope::Credentials));
                }
                Verification::Token { header, value } => {
                    if !valid_header(header) {
                        push("webhook.verification.header", "must be a header name".into());
                    }
                    template_problems.extend(tpl("webhook.verification.value", value, Scope::Credentials));
                }
            }
            let id_ok = match w.body {
                WebhookBody::Json => valid_pointer(&w.provider_id),
                WebhookBody::Form | WebhookBody::Multipart => match w.provider_id.split_once('#') {
                    Some((field, pointer)) => !field.is_empty() && valid_pointer(pointer),
                    None => !w.provider_id.is_empty(),
                },
            };
            if !id_ok {
                push(
                    "webhook.providerId",
                    "must be a JSON pointer for a json body, or a field name (optionally `field#/pointer`)".into(),
                );
            }
            if !(1024..=32 * 1024 * 1024).contains(&w.max_bytes) {
                push("webhook.maxBytes", "must be between 1024 and 33554432".into());
            }
            if let Some(freshness) = &w.timestamp {
                let signed = match &w.verification {
                    Verification::Hmac { signed, .. } | Verification::Ed25519 { signed, .. } => signed.as_slice(),
                    _ => &[],
                };
                let covered = signed.iter().any(
                    |p| matches!(Part::parse(p), Some(Part::Header(h)) if h.eq_ignore_ascii_case(&freshness.header)),
                );
                if !valid_header(&freshness.header) {
                    push("webhook.timestamp.header", "must be a header name".into());
                } else if !covered {
                    push(
                        "webhook.timestamp.header",
                        format!(
                            "must be signed: add `header:{}` to an hmac or ed25519 verification's `signed`, or a \
                             replayed callback could carry any time",
                            freshness.header
                        ),
                    );
                }
                if !(30..=3600).contains(&freshness.max_age_seconds) {
                    push("webhook.timestamp.maxAgeSeconds", "must be between 30 and 3600".into());
                }
            }
        }
    }
    for (i, tool) in m.tools.iter().enumerate() {
        let base = format!("tools[{i}]");
        let name_ok = (2..=32).contains(&tool.name.len())
            && tool.name.starts_with(|c: char| c.is_ascii_lowercase())
            && tool.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !name_ok {
            push(&format!("{base}.name"), "must be 2 to 32 lower-case letters, digits or `_`".into());
        } else if m.tools[..i].iter().any(|t| t.name == tool.name) {
            push(&format!("{base}.name"), format!("`{}` is declared twice", tool.name));
        }
        if tool.description.trim().is_empty() || tool.description.len() > 1024 {
            push(&format!("{base}.description"), "must be 1 to 1024 characters".into());
        } else if crate::phi::may_hold_number(&tool.description, 5) {
            push(
                &format!("{base}.description"),
                "must not contain a number: descriptions reach an assistant's model (PHI guard)".into(),
            );
        }
        if !super::TOOL_SCOPES.contains(&tool.scope.as_str()) {
            push(&format!("{base}.scope"), format!("must be one of {}", super::TOOL_SCOPES.join(", ")));
        }
        names(tool.arguments.iter().map(|a| a.name.as_str()), &format!("{base}.arguments"), &mut push);
        if let Some(problem) = url_problem(&tool.action.url, m, policy) {
            push(&format!("{base}.action.url"), problem);
        }
        if matches!(&tool.action.body, Some(Body::Multipart { document: Some(_), .. })) {
            push(&format!("{base}.action.body.document"), "only the send action carries the document".into());
        }
        if let Some(pointer) = &tool.result
            && !valid_pointer(pointer)
        {
            push(&format!("{base}.result"), "must be a JSON pointer (`/data`)".into());
        }
        let arguments: Vec<String> = tool.arguments.iter().map(|a| a.name.clone()).collect();
        let tool_declared = Declared { credentials: &credentials, settings: &settings, arguments: &arguments };
        for (path, source) in action_templates(&tool.action, &format!("{base}.action")) {
            if let Some(problem) = template::problem(&source, Scope::Tool, &tool_declared) {
                template_problems.push((path, problem));
            }
        }
    }
    if !(1_000..=60_000).contains(&m.limits.timeout_ms) {
        push("limits.timeoutMs", "must be between 1000 and 60000".into());
    }
    if !(100..=600_000).contains(&m.limits.poll_interval_ms) {
        push("limits.pollIntervalMs", "must be between 100 and 600000".into());
    }
    p.extend(template_problems);
    p
}

fn valid_id(id: &str) -> bool {
    (2..=40).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn names<'a>(names: impl Iterator<Item = &'a str>, what: &str, push: &mut impl FnMut(&str, String)) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, name) in names.enumerate() {
        let ok = (1..=40).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            push(&format!("{what}[{i}].name"), "must be 1 to 40 letters, digits or `_`, starting with a letter".into());
        } else if seen.contains(&name) {
            push(&format!("{what}[{i}].name"), format!("`{name}` is declared twice"));
        }
        seen.push(name);
    }
}

fn valid_header(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_pointer(pointer: &str) -> bool {
    pointer.is_empty() || pointer.starts_with('/')
}

/// Every template of an action with its path under `base`: URL, headers, body fields or JSON strings, and
/// the document's file name.
fn action_templates(action: &Action, base: &str) -> Vec<(String, String)> {
    let mut out = vec![(format!("{base}.url"), action.url.clone())];
    for (header, value) in &action.headers {
        out.push((format!("{base}.headers.{header}"), value.clone()));
    }
    match &action.body {
        Some(Body::Json { template }) => json_templates(template, &format!("{base}.body.template"), &mut |p, v| {
            out.push((p.to_string(), v.to_string()))
        }),
        Some(Body::Form { fields }) | Some(Body::Multipart { fields, .. }) => {
            for (field, value) in fields {
                out.push((format!("{base}.body.fields.{field}"), value.clone()));
            }
        }
        None => {}
    }
    if let Some(Body::Multipart { document: Some(doc), .. }) = &action.body {
        out.push((format!("{base}.body.document.fileName"), doc.file_name.clone()));
    }
    out
}

/// Whether any template of the action reads `variable`.
fn reads(action: &Action, variable: &str) -> bool {
    action_templates(action, "").iter().any(|(_, source)| source.contains(variable))
}

/// Calls `f` with every string (and its path) in a JSON body template.
fn json_templates(value: &serde_json::Value, path: &str, f: &mut impl FnMut(&str, &str)) {
    match value {
        serde_json::Value::String(s) => f(path, s),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                json_templates(item, &format!("{path}[{i}]"), f);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                json_templates(v, &format!("{path}.{k}"), f);
            }
        }
        _ => {}
    }
}

/// Why a host may not be in `allowedDomains`.
pub fn domain_problem(domain: &str, allow_private: bool, policy: Policy) -> Option<String> {
    // `*.example.com`: one label under a domain of at least two labels, the label a setting fills
    // (SignalWire's `<space>.signalwire.com`). The domain itself passes every rule a literal host does.
    if let Some(parent) = domain.strip_prefix("*.") {
        if parent.parse::<IpAddr>().is_ok() || parent.split('.').count() < 2 {
            return Some(format!("`{domain}`: a wildcard covers one label under a domain name of at least two labels"));
        }
        return domain_problem(parent, allow_private, policy);
    }
    let bare = domain.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        // IP addresses are not repeated in the message (the path names the entry): logs mask digit runs.
        if ip.is_loopback() {
            return (!policy.allow_loopback)
                .then(|| "is a loopback address: a provider is never this server's own host".to_string());
        }
        return crate::endpoint::problem_allowing(&format!("https://{domain}/"), allow_private).map(str::to_string);
    }
    let lower = domain.to_ascii_lowercase();
    if lower != domain || !valid_hostname(domain) {
        return Some(format!("`{domain}` is not a lower-case host name or an IP address"));
    }
    if domain == "localhost" || domain.ends_with(".localhost") {
        return (!policy.allow_loopback)
            .then(|| format!("`{domain}` is loopback: a provider is never this server's own host"));
    }
    if METADATA_NAMES.contains(&domain) {
        return Some(format!("`{domain}` is a cloud metadata service"));
    }
    None
}

fn valid_hostname(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The label a templated host is checked with before any setting fills it.
const WILDCARD_SAMPLE: &str = "label";

/// `{{ settings.<name> }}.<domain>` → (`name`, `domain`); anything else in a templated host is refused.
fn templated_host(authority: &str) -> Option<(&str, &str)> {
    let (inner, rest) = authority.strip_prefix("{{")?.split_once("}}")?;
    let setting = inner.trim().strip_prefix("settings.")?;
    let parent = rest.strip_prefix('.')?;
    let identifier = !setting.is_empty() && setting.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (identifier && valid_hostname(parent)).then_some((setting, parent))
}

/// Whether `host` (as a URL gives it) is one of `allowed`: equal to an entry, or one DNS label under a `*.`
/// entry's domain. The API server applies the same rule to every rendered URL.
pub fn host_listed(allowed: &[String], host: &str) -> bool {
    let bare = host.trim_matches(['[', ']']);
    allowed.iter().any(|d| {
        d.trim_matches(['[', ']']) == bare
            || d.strip_prefix("*.").is_some_and(|parent| {
                bare.parse::<IpAddr>().is_err()
                    && bare
                        .strip_suffix(parent)
                        .and_then(|l| l.strip_suffix('.'))
                        .is_some_and(|label| !label.contains('.') && valid_hostname(label))
            })
    })
}

/// Why an action URL is refused: its scheme and host must be literal, the host one of `allowedDomains`,
/// and the scheme https (http only to loopback, which only tests allow).
fn url_problem(url: &str, m: &HttpManifest, policy: Policy) -> Option<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some("must start with https://".into());
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let mut authority = rest[..authority_end].to_string();
    if scheme.contains("{{") {
        return Some("the scheme and host must be written out, not templated".into());
    }
    if authority.contains("{{") {
        // One exception: a first label that is exactly one declared setting, under a `*.` domain of
        // allowedDomains. The rendered host is checked again before each request (one label, that domain).
        let Some((setting, parent)) = templated_host(&authority) else {
            return Some(
                "the scheme and host must be written out, not templated (except a first label \
                 `{{ settings.<name> }}.` under a `*.` domain of allowedDomains)"
                    .into(),
            );
        };
        if !m.settings.iter().any(|s| s.name == setting) {
            return Some(format!("the host reads setting `{setting}`, which the manifest does not declare"));
        }
        if !m.allowed_domains.iter().any(|d| d.strip_prefix("*.") == Some(parent)) {
            return Some(format!("host `*.{parent}` is not in allowedDomains"));
        }
        authority = format!("{WILDCARD_SAMPLE}.{parent}");
    }
    let parsed = match url::Url::parse(&format!("{scheme}://{authority}/")) {
        Ok(u) => u,
        Err(_) => return Some("must be an absolute URL".into()),
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Some("must not contain credentials (user@)".into());
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        None => return Some("must have a host".into()),
    };
    let listed = host_listed(&m.allowed_domains, &host);
    if !listed {
        return Some(format!("host `{host}` is not in allowedDomains"));
    }
    if let Some(problem) = domain_problem(&host, m.allow_private_network, policy) {
        return Some(problem);
    }
    let loopback =
        host == "localhost" || host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => None,
        "http" if loopback && policy.allow_loopback => None,
        _ => Some("must use https".into()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A small valid manifest, as JSON, to vary.
    pub(crate) fn base() -> serde_json::Value {
        serde_json::json!({
            "id": "examplefax", "name": "Example Fax", "version": "1.0.0", "hipaaCompliant": true,
            "credentials": [{"name": "apiKey", "description": "API key", "required": true},
                            {"name": "webhookSecret", "description": "webhook key", "required": false}],
            "settings": [{"name": "senderId", "required": true}],
            "allowedDomains": ["api.example.com"],
            "auth": {"scheme": "bearer", "token": "{{ credentials.apiKey }}"},
            "actions": {
                "send": {"method": "POST", "url": "https://api.example.com/v1/faxes",
                    "body": {"kind": "multipart", "fields": {"to": "{{ to }}", "from": "{{ settings.senderId }}"},
                             "document": {"field": "file"}},
                    "response": {"providerId": "/id"}},
                "status": {"method": "GET", "url": "https://api.example.com/v1/faxes/{{ provider_id | urlencode }}",
                    "response": {"status": "/status", "error": "/failure_reason"}}
            },
            "statuses": {"queued": ["queued"], "delivered": ["delivered"], "failed": ["failed"]},
            "webhook": {"verification": {"scheme": "hmac", "header": "X-Signature", "algorithm": "sha256",
                "encoding": "hex", "key": "{{ credentials.webhookSecret }}", "signed": ["body"]},
                "body": "json", "providerId": "/data/id"}
        })
    }

    fn problems(doc: &serde_json::Value, policy: Policy) -> Vec<Problem> {
        let m: HttpManifest = serde_json::from_value(doc.clone()).expect("parses");
        check(&m, policy)
    }

    fn with(path: &[&str], value: serde_json::Value) -> serde_json::Value {
        let mut doc = base();
        let mut at = &mut doc;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        doc
    }

    #[test]
    fn the_base_manifest_is_valid() {
        assert_eq!(problems(&base(), Policy::default()), Vec::<Problem>::new());
        // A signed callback time is valid once the verification signs its header (any case).
        let mut timed = with(&["webhook", "timestamp"], json!({"header": "X-Sent-At", "maxAgeSeconds": 300}));
        timed["webhook"]["verification"]["signed"] = json!(["header:x-sent-at", "literal:.", "body"]);
        assert_eq!(problems(&timed, Policy::default()), Vec::<Problem>::new());
        // A host's first label from a declared setting, under a `*.` domain of allowedDomains.
        let mut spaced = with(&["allowedDomains"], json!(["*.api.example.com"]));
        spaced["settings"] = json!([{"name": "senderId", "required": true}, {"name": "space", "required": true}]);
        spaced["actions"]["send"]["url"] = json!("https://{{ settings.space }}.api.example.com/v1/faxes");
        spaced["actions"]["status"]["url"] =
            json!("https://{{settings.space}}.api.example.com/v1/faxes/{{ provider_id | urlencode }}");
        assert_eq!(problems(&spaced, Policy::default()), Vec::<Problem>::new());
    }

    #[test]
    fn refusals_name_the_field_and_the_reason() {
        use serde_json::json;
        let table: Vec<(serde_json::Value, &str, &str)> = vec![
            (with(&["id"], json!("phaxio")), "id", "is the id of a built-in plugin"),
            (with(&["id"], json!("Bad Id")), "id", "lower-case letters"),
            (with(&["allowedDomains"], json!(["169.254.169.254"])), "allowedDomains[0]", "link-local, metadata"),
            (with(&["allowedDomains"], json!(["10.1.2.3"])), "allowedDomains[0]", "private or shared"),
            (with(&["allowedDomains"], json!(["192.168.1.1"])), "allowedDomains[0]", "private or shared"),
            (with(&["allowedDomains"], json!(["127.0.0.1"])), "allowedDomains[0]", "is a loopback address"),
            (with(&["allowedDomains"], json!(["metadata.google.internal"])), "allowedDomains[0]", "metadata"),
            (
                with(&["actions", "send", "url"], json!("https://evil.example.net/v1/faxes")),
                "actions.send.url",
                "host `evil.example.net` is not in allowedDomains",
            ),
            (
                with(&["actions", "send", "url"], json!("https://api.example.com@169.254.169.254/")),
                "actions.send.url",
                "must not contain credentials",
            ),
            (
                with(&["actions", "status", "url"], json!("https://{{ settings.from }}/x")),
                "actions.status.url",
                "must be written out, not templated",
            ),
            (
                with(&["actions", "send", "url"], json!("http://api.example.com/v1/faxes")),
                "actions.send.url",
                "must use https",
            ),
            (
                with(&["actions", "send", "headers"], json!({"X-Home": "{{ env.HOME }}"})),
                "actions.send.headers.X-Home",
                "cannot read the environment",
            ),
            (
                with(&["actions", "send", "body", "fields", "to"], json!("{{ file('/etc/passwd') }}")),
                "actions.send.body.fields.to",
                "cannot read files",
            ),
            (
                with(&["actions", "send", "body", "fields", "to"], json!("{% include '/etc/passwd' %}")),
                "actions.send.body.fields.to",
                "statements",
            ),
            (
                with(&["webhook", "verification"], json!({"scheme": "none"})),
                "webhook.verification",
                "declares no webhook verification",
            ),
            (
                with(&["webhook", "verification", "signed"], json!(["formSorted"])),
                "webhook.verification.signed[0]",
                "formSorted needs a form or multipart body",
            ),
            (
                with(&["webhook", "timestamp"], json!({"header": "X-Sent-At", "maxAgeSeconds": 300})),
                "webhook.timestamp.header",
                "must be signed: add `header:X-Sent-At`",
            ),
            (
                with(&["webhook", "timestamp"], json!({"header": "X-Sent-At", "maxAgeSeconds": 86400})),
                "webhook.timestamp.maxAgeSeconds",
                "between 30 and 3600",
            ),
            (
                with(&["webhook", "timestamp"], json!({"header": "bad header", "maxAgeSeconds": 300})),
                "webhook.timestamp.header",
                "must be a header name",
            ),
            (with(&["allowedDomains"], json!(["*.com"])), "allowedDomains[0]", "a wildcard covers one label"),
            (with(&["allowedDomains"], json!(["*.169.254.169.254"])), "allowedDomains[0]", "a wildcard covers"),
            (with(&["allowedDomains"], json!(["*.metadata.google.internal"])), "allowedDomains[0]", "metadata"),
            (
                with(&["actions", "send", "url"], json!("https://{{ settings.senderId }}.example.com/v1/faxes")),
                "actions.send.url",
                "host `*.example.com` is not in allowedDomains",
            ),
            (
                with(&["actions", "send", "url"], json!("https://{{ settings.space }}.api.example.com/v1/faxes")),
                "actions.send.url",
                "reads setting `space`, which the manifest does not declare",
            ),
            (
                with(&["actions", "send", "url"], json!("https://{{ settings.senderId | lower }}.example.com/v1")),
                "actions.send.url",
                "not templated (except a first label",
            ),
            (
                with(&["actions", "send", "url"], json!("https://api.{{ settings.senderId }}.com/v1")),
                "actions.send.url",
                "not templated",
            ),
            (with(&["actions", "send", "body", "document"], json!(null)), "actions.send", "must deliver the document"),
            (with(&["statuses", "failed"], json!(["delivered"])), "statuses", "`delivered` is mapped twice"),
            (with(&["auth"], json!({"scheme": "bearer", "token": "{{ to }}"})), "auth.token", "not available"),
        ];
        for (doc, path, message) in table {
            let got = problems(&doc, Policy::default());
            assert!(got.iter().any(|(p, m)| p == path && m.contains(message)), "{path}: {message}: got {got:?}");
        }
    }

    #[test]
    fn tools_are_checked_like_actions_and_their_descriptions_by_the_phi_guard() {
        use serde_json::json;
        let tool = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut t = json!({"name": "lookup", "description": "Looks a number up.",
                "arguments": [{"name": "number", "required": true}],
                "action": {"method": "GET", "url": "https://api.example.com/v1/lookup/{{ arguments.number | urlencode }}"},
                "result": "/data"});
            change(&mut t);
            with(&["tools"], json!([t]))
        };
        assert_eq!(problems(&tool(&|_| {}), Policy::default()), Vec::<Problem>::new());
        let table: Vec<(serde_json::Value, &str, &str)> = vec![
            (tool(&|t| t["description"] = "Call +15551234567 for help.".into()), "tools[0].description", "PHI guard"),
            (tool(&|t| t["scope"] = "admin".into()), "tools[0].scope", "must be one of"),
            (tool(&|t| t["name"] = "Look Up".into()), "tools[0].name", "lower-case"),
            (
                tool(&|t| t["action"]["url"] = "https://api.example.com/v1/{{ arguments.other }}".into()),
                "tools[0].action.url",
                "reads argument `other`, which the tool does not declare",
            ),
            (
                tool(&|t| t["action"]["url"] = "https://api.example.com/v1/{{ to }}".into()),
                "tools[0].action.url",
                "reads `to`, which is not available here",
            ),
            (
                tool(&|t| t["action"]["url"] = "https://evil.example.net/".into()),
                "tools[0].action.url",
                "not in allowedDomains",
            ),
        ];
        for (doc, path, message) in table {
            let got = problems(&doc, Policy::default());
            assert!(got.iter().any(|(p, m)| p == path && m.contains(message)), "{path}: {message}: got {got:?}");
        }
    }

    #[test]
    fn loopback_is_for_tests_only() {
        let doc = {
            let mut d = with(&["allowedDomains"], serde_json::json!(["127.0.0.1"]));
            d["actions"]["send"]["url"] = "http://127.0.0.1:8080/v1/faxes".into();
            d["actions"]["status"]["url"] = "http://127.0.0.1:8080/v1/faxes/{{ provider_id }}".into();
            d
        };
        assert!(!problems(&doc, Policy::default()).is_empty());
        assert_eq!(problems(&doc, Policy { allow_loopback: true }), Vec::<Problem>::new());
    }

    #[test]
    fn none_is_accepted_only_when_explicitly_allowed() {
        let doc = with(&["webhook", "verification"], serde_json::json!({"scheme": "none", "allowUnverified": true}));
        assert_eq!(problems(&doc, Policy::default()), Vec::<Problem>::new());
    }
}
