//! The template language of HTTP plugin manifests: minijinja expressions (`{{ to }}`,
//! `{{ credentials.apiKey }}`, `{{ job_id | urlencode }}`) and nothing else.
//!
//! Manifests are data written by whoever administers a cluster, and may come from a registry, so a template
//! must not be able to do anything but substitute the values a request is built from. minijinja is made
//! for untrusted templates (no file or environment access of its own, bounded string repetition, a fuel
//! limit on instructions); on top of that:
//! - the environment starts empty ([`minijinja::Environment::empty`]): no `debug()` (which would print the
//!   whole context, credentials included), no loader (so no `include`), only the filters listed in
//!   [`FILTERS`];
//! - statements (`{% … %}`) are refused, so there are no loops, macros, imports or assignments;
//! - every variable a template reads must be one the action offers ([`Scope`]), checked when the manifest
//!   is validated, so `{{ env.HOME }}` or `{{ file('/etc/passwd') }}` is refused with a message that names it
//!   before any request is made;
//! - a template is at most [`MAX_TEMPLATE`] bytes and its output at most [`MAX_OUTPUT`] bytes.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior, Value};

/// Longest template source.
pub const MAX_TEMPLATE: usize = 4096;
/// Longest rendered value.
pub const MAX_OUTPUT: usize = 16 * 1024;
/// Instructions one render may execute (a substitution with two filters takes about ten).
const FUEL: u64 = 2_000;

/// The filters a template may use.
pub const FILTERS: &[&str] = &["urlencode", "lower", "upper", "trim", "digits"];

/// Where a template is used, which decides the variables it may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The `send` action: the job, its destination, the document URL.
    Send,
    /// `status` and `cancel`: the provider's fax id.
    Fax,
    /// `list` (finding a submission again): the job.
    List,
    /// Credentials of the auth scheme or of webhook verification: no job data at all.
    Credentials,
    /// A tool's request: its declared `arguments.<name>`, no job data.
    Tool,
}

impl Scope {
    /// The plain variables of the scope (`credentials.<name>` and `settings.<name>` are checked apart).
    pub fn variables(self) -> &'static [&'static str] {
        match self {
            Scope::Send => &["to", "job_id", "idempotency_key", "document_url", "pages", "callback_url"],
            Scope::Fax => &["provider_id", "callback_url"],
            Scope::List => &["job_id", "idempotency_key"],
            Scope::Credentials | Scope::Tool => &[],
        }
    }
}

/// What a manifest template may refer to besides the scope's variables.
pub struct Declared<'a> {
    /// Credential names the manifest declares.
    pub credentials: &'a [String],
    /// Setting names the manifest declares.
    pub settings: &'a [String],
    /// Argument names of the tool being checked (empty elsewhere).
    pub arguments: &'a [String],
}

fn environment() -> Environment<'static> {
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(16);
    env.add_filter("urlencode", minijinja::filters::urlencode);
    env.add_filter("lower", minijinja::filters::lower);
    env.add_filter("upper", minijinja::filters::upper);
    env.add_filter("trim", minijinja::filters::trim);
    env.add_filter("digits", |value: String| value.chars().filter(char::is_ascii_digit).collect::<String>());
    env
}

/// Why a template is refused, as a sentence.
pub fn problem(source: &str, scope: Scope, declared: &Declared<'_>) -> Option<String> {
    if source.len() > MAX_TEMPLATE {
        return Some(format!("template longer than {MAX_TEMPLATE} bytes"));
    }
    if source.contains("{%") || source.contains("{#") {
        return Some("only substitutions ({{ … }}) are allowed: statements ({% … %}) and comments are not".into());
    }
    let env = environment();
    let template = match env.template_from_str(source) {
        Ok(t) => t,
        Err(e) => return Some(format!("not a valid template: {}", e.detail().unwrap_or("syntax error"))),
    };
    let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    names.sort();
    for name in names {
        if let Some(problem) = variable_problem(&name, scope, declared) {
            return Some(problem);
        }
    }
    // Filters are looked up when rendering; refusing unknown ones here needs a render, with every allowed
    // variable set to a sample value.
    if let Err(e) = template.render(sample_context(scope, declared)) {
        return Some(match e.kind() {
            minijinja::ErrorKind::UnknownFilter => {
                format!("uses a filter that is not available (available: {})", FILTERS.join(", "))
            }
            minijinja::ErrorKind::UnknownFunction => "calls a function: templates cannot call functions".into(),
            _ => format!("cannot be rendered: {}", e.detail().unwrap_or("invalid expression")),
        });
    }
    None
}

fn variable_problem(name: &str, scope: Scope, declared: &Declared<'_>) -> Option<String> {
    let (head, rest) = match name.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (name, None),
    };
    match (head, rest) {
        ("credentials", Some(c)) if declared.credentials.iter().any(|d| d == c) => None,
        ("credentials", Some(c)) => Some(format!("reads credential `{c}`, which the manifest does not declare")),
        ("credentials", None) => Some("must name a credential: credentials.<name>".into()),
        ("settings", Some(s)) if declared.settings.iter().any(|d| d == s) => None,
        ("settings", Some(s)) => Some(format!("reads setting `{s}`, which the manifest does not declare")),
        ("settings", None) => Some("must name a setting: settings.<name>".into()),
        ("arguments", Some(a)) if scope == Scope::Tool && declared.arguments.iter().any(|d| d == a) => None,
        ("arguments", Some(a)) if scope == Scope::Tool => {
            Some(format!("reads argument `{a}`, which the tool does not declare"))
        }
        ("env" | "environ" | "environment", _) => {
            Some(format!("reads `{name}`: templates cannot read the environment"))
        }
        ("file" | "open" | "read" | "include" | "import" | "load", _) => {
            Some(format!("uses `{head}`: templates cannot read files"))
        }
        (plain, None) if scope.variables().contains(&plain) => None,
        _ => Some(format!("reads `{name}`, which is not available here (available: {})", available(scope).join(", "))),
    }
}

fn available(scope: Scope) -> Vec<String> {
    let mut names: Vec<String> = scope.variables().iter().map(|v| v.to_string()).collect();
    names.push("credentials.<name>".into());
    names.push("settings.<name>".into());
    names
}

fn sample_context(scope: Scope, declared: &Declared<'_>) -> Value {
    let mut values = Values::default();
    for v in scope.variables() {
        values.set(v, "sample");
    }
    for c in declared.credentials {
        values.credentials.insert(c.clone(), "sample".into());
    }
    for s in declared.settings {
        values.settings.insert(s.clone(), "sample".into());
    }
    for a in declared.arguments {
        values.arguments.insert(a.clone(), "sample".into());
    }
    values.context()
}

/// The values a template is rendered with.
#[derive(Default, Clone)]
pub struct Values {
    plain: BTreeMap<String, String>,
    /// Credential values by name.
    pub credentials: BTreeMap<String, String>,
    /// Setting values by name.
    pub settings: BTreeMap<String, String>,
    /// A tool's argument values by name.
    pub arguments: BTreeMap<String, String>,
}

impl std::fmt::Debug for Values {
    // The values are numbers and credentials: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Values")
            .field("plain", &self.plain.keys().collect::<Vec<_>>())
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .field("arguments", &self.arguments.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Values {
    /// Sets a plain variable (`to`, `job_id`, …).
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.plain.insert(name.to_string(), value.into());
        self
    }

    fn has(&self, name: &str) -> bool {
        match name.split_once('.') {
            Some(("credentials", c)) => self.credentials.contains_key(c),
            Some(("settings", c)) => self.settings.contains_key(c),
            Some(("arguments", c)) => self.arguments.contains_key(c),
            _ => self.plain.contains_key(name),
        }
    }

    fn context(&self) -> Value {
        let pairs = |m: &BTreeMap<String, String>| {
            Value::from_pairs(
                m.iter().map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str()))).collect::<Vec<_>>(),
            )
        };
        let mut all: Vec<(Value, Value)> =
            self.plain.iter().map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str()))).collect();
        all.push((Value::from("credentials"), pairs(&self.credentials)));
        all.push((Value::from("settings"), pairs(&self.settings)));
        all.push((Value::from("arguments"), pairs(&self.arguments)));
        Value::from_pairs(all)
    }
}

/// Why a render failed. The message never contains a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template read a value that is not set (an optional setting left empty, say).
    #[error("template reads a value that is not set")]
    Missing,
    /// The output is longer than [`MAX_OUTPUT`].
    #[error("rendered value longer than {MAX_OUTPUT} bytes")]
    TooLong,
    /// Anything else (the manifest was validated, so this is a bug or an out-of-fuel render).
    #[error("template could not be rendered")]
    Failed,
}

/// Renders a validated template.
pub fn render(source: &str, values: &Values) -> Result<String, RenderError> {
    if !source.contains("{{") {
        return Ok(source.to_string());
    }
    let env = environment();
    let template = env.template_from_str(source).map_err(|_| RenderError::Failed)?;
    // Strict undefined behaviour still lets a filter turn an unset value into "" (`{{ x | urlencode }}`),
    // so every value the template reads must be set before it is rendered.
    if !template.undeclared_variables(true).iter().all(|name| values.has(name)) {
        return Err(RenderError::Missing);
    }
    let out = template.render(values.context()).map_err(|e| match e.kind() {
        minijinja::ErrorKind::UndefinedError => RenderError::Missing,
        _ => RenderError::Failed,
    })?;
    if out.len() > MAX_OUTPUT { Err(RenderError::TooLong) } else { Ok(out) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> (Vec<String>, Vec<String>) {
        (vec!["apiKey".into()], vec!["from".into()])
    }

    #[test]
    fn templates_read_only_what_the_action_offers() {
        let (c, s) = declared();
        let d = Declared { credentials: &c, settings: &s, arguments: &[] };
        let table: &[(&str, Scope, Option<&str>)] = &[
            ("https://api.example.com/v2/faxes", Scope::Send, None),
            ("{{ to }}", Scope::Send, None),
            ("{{ to | digits }}", Scope::Send, None),
            ("Bearer {{ credentials.apiKey }}", Scope::Credentials, None),
            ("{{ settings.from }}", Scope::Send, None),
            ("faxes/{{ provider_id | urlencode }}", Scope::Fax, None),
            ("{{ to }}", Scope::Fax, Some("reads `to`, which is not available here")),
            ("{{ credentials.password }}", Scope::Send, Some("reads credential `password`, which the manifest")),
            ("{{ credentials }}", Scope::Send, Some("must name a credential")),
            ("{{ settings.region }}", Scope::Send, Some("reads setting `region`")),
            ("{{ env.HOME }}", Scope::Send, Some("templates cannot read the environment")),
            ("{{ file('/etc/passwd') }}", Scope::Send, Some("templates cannot read files")),
            ("{{ debug() }}", Scope::Send, Some("reads `debug`, which is not available")),
            ("{% include '/etc/passwd' %}", Scope::Send, Some("statements ({% … %})")),
            ("{% for i in range(10) %}x{% endfor %}", Scope::Send, Some("statements")),
            ("{{ to | tojson }}", Scope::Send, Some("uses a filter that is not available")),
            ("{{ to ", Scope::Send, Some("not a valid template")),
            ("{{ 'x' * 100000000000 }}", Scope::Send, Some("cannot be rendered")),
        ];
        for (source, scope, expected) in table {
            let got = problem(source, *scope, &d);
            match (expected, &got) {
                (None, None) => {}
                (Some(e), Some(g)) if g.contains(e) => {}
                _ => panic!("{source}: expected {expected:?}, got {got:?}"),
            }
        }
        assert!(problem(&"x".repeat(MAX_TEMPLATE + 1), Scope::Send, &d).is_some());
    }

    #[test]
    fn rendering_substitutes_and_refuses_missing_values() {
        let mut v = Values::default();
        v.set("to", "+15551234567").set("job_id", "abc");
        v.credentials.insert("apiKey".into(), "k".into());
        assert_eq!(render("{{ to | digits }}-{{ job_id }}", &v).as_deref(), Ok("15551234567-abc"));
        assert_eq!(render("{{ to | urlencode }}", &v).as_deref(), Ok("%2B15551234567"));
        assert_eq!(render("Bearer {{ credentials.apiKey }}", &v).as_deref(), Ok("Bearer k"));
        assert_eq!(render("{{ settings.from }}", &v), Err(RenderError::Missing));
        assert_eq!(render("{{ provider_id | urlencode }}", &v), Err(RenderError::Missing));
        assert_eq!(render("plain", &v).as_deref(), Ok("plain"));
        assert!(!format!("{v:?}").contains("+1555"), "Debug shows names only");
    }
}
