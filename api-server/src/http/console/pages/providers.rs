//! Providers and plugins: what fills each slot, whether it may carry PHI, and its settings in a form
//! generated from the plugin manifest's JSON Schema ([`settings_form`]). Saving goes through the REST
//! route's own code ([`plugins::update_config`]: the same validation, the same atomic write and reload), and
//! its validation messages are shown beside the fields they name. Where the document is not this server's to
//! write (environment variables, or the operator's read-only ConfigMap) the form is read-only and says what
//! to change instead.

use super::{Frame, error_page, posted, render, require};
use crate::domain::Scope;
use crate::http::AppState;
use crate::http::console::session::Session;
use crate::http::console::settings_form::{self, Field, Kind};
use crate::http::error::ApiError;
use crate::http::routes::plugins::{self as routes, PluginConfigUpdate};
use askama::Template;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use faxbot_contract::plugins::PluginManifest;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One control as the template draws it.
struct Control {
    name: String,
    input: String,
    id: String,
    help: String,
    /// `checkbox`, `number`, `text`, `select` or `textarea`.
    control: &'static str,
    value: String,
    checked: bool,
    min: String,
    max: String,
    step: &'static str,
    /// `(value, label, selected)`.
    options: Vec<(String, String, bool)>,
    optional: bool,
    error: Option<String>,
}

impl Control {
    fn of(slot: &str, field: &Field, error: Option<String>) -> Control {
        let (control, min, max, step, options, optional) = match &field.kind {
            Kind::Checkbox => ("checkbox", None, None, "", Vec::new(), false),
            Kind::Integer { min, max } => ("number", *min, *max, "1", Vec::new(), false),
            Kind::Number => ("number", None, None, "any", Vec::new(), false),
            Kind::Text { nullable } => ("text", None, None, "", Vec::new(), *nullable),
            Kind::Choice { options, nullable } => {
                let options = options
                    .iter()
                    .map(|(value, label)| {
                        let label = if label.is_empty() { value.clone() } else { format!("{value}: {label}") };
                        (value.clone(), label, *value == field.value)
                    })
                    .collect();
                ("select", None, None, "", options, *nullable)
            }
            Kind::Json => ("textarea", None, None, "", Vec::new(), false),
        };
        Control {
            name: field.name.clone(),
            input: field.input_name(),
            id: format!("{slot}-{}", field.name),
            help: field.help.clone(),
            control,
            value: field.value.clone(),
            checked: field.checked,
            min: min.map(|v| v.to_string()).unwrap_or_default(),
            max: max.map(|v| v.to_string()).unwrap_or_default(),
            step,
            options,
            optional,
            error,
        }
    }
}

/// One filled slot.
struct SlotView {
    slot: &'static str,
    id: String,
    name: String,
    version: String,
    description: String,
    hipaa: bool,
    enabled: bool,
    controls: Vec<Control>,
    credentials: Vec<String>,
    errors: Vec<String>,
}

/// A plugin in the catalogue.
struct PluginView {
    id: String,
    name: String,
    slots: String,
    hipaa: bool,
}

#[derive(Template)]
#[template(path = "console/providers.html")]
struct Providers {
    signed_in: bool,
    csrf: String,
    key_id: String,
    nav: &'static str,
    slots: Vec<SlotView>,
    plugins: Vec<PluginView>,
    read_only: Option<&'static str>,
    saved: Option<String>,
    revision: String,
}

/// What a refused save left on the page: the slot, the values posted, and the messages by field.
struct Refused {
    slot: &'static str,
    values: Value,
    enabled: bool,
    fields: BTreeMap<String, String>,
    general: Vec<String>,
}

fn manifests(app: &AppState) -> BTreeMap<String, PluginManifest> {
    faxbot_contract::validate::all_manifests(&app.runtime.load_current().config)
        .into_iter()
        .map(|m| (m.id.clone(), m))
        .collect()
}

fn page(
    app: &AppState,
    session: &Session,
    status: StatusCode,
    saved: Option<String>,
    refused: Option<Refused>,
) -> Response {
    let runtime = app.runtime.load_current();
    let manifests = manifests(app);
    let mut slots = Vec::new();
    for (category, binding) in routes::slots(&runtime.config) {
        let Some(binding) = binding else { continue };
        let Some(manifest) = manifests.get(&binding.plugin) else { continue };
        let slot = category.as_str();
        let mine = refused.as_ref().filter(|r| r.slot == slot);
        let current = mine.map_or(&binding.settings, |r| &r.values);
        let controls = settings_form::fields(&manifest.settings_schema, current)
            .iter()
            .map(|f| Control::of(slot, f, mine.and_then(|r| r.fields.get(&f.name).cloned())))
            .collect();
        slots.push(SlotView {
            slot,
            id: manifest.id.clone(),
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            description: manifest.description.clone(),
            hipaa: manifest.hipaa_compliant,
            enabled: mine.map_or(binding.enabled, |r| r.enabled),
            controls,
            credentials: manifest.credentials.iter().map(|c| c.name.clone()).collect(),
            errors: mine.map(|r| r.general.clone()).unwrap_or_default(),
        });
    }
    let plugins = manifests
        .values()
        .map(|m| PluginView {
            id: m.id.clone(),
            name: m.name.clone(),
            slots: m.categories.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
            hipaa: m.hipaa_compliant,
        })
        .collect();
    let Frame { signed_in, csrf, key_id, nav } = Frame::of(session, "providers");
    let read_only = routes::config_writable(app).err();
    let revision = runtime.revision.clone();
    render(status, &Providers { signed_in, csrf, key_id, nav, slots, plugins, read_only, saved, revision })
}

/// `?saved=<slot>` after a save.
#[derive(Deserialize)]
pub struct SavedQuery {
    #[serde(default)]
    saved: String,
}

/// `GET /admin/ui/providers`.
pub async fn list(State(app): State<AppState>, headers: HeaderMap, Query(query): Query<SavedQuery>) -> Response {
    let session = match require(&app, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Err(e) = app.auth.permit(&session.identity, Scope::KeysManage, "console:providers", 0) {
        return error_page(Some(&session), e);
    }
    let saved = ["outbound", "inbound", "storage", "auth"].contains(&query.saved.as_str()).then_some(query.saved);
    page(&app, &session, StatusCode::OK, saved, None)
}

/// `POST /admin/ui/providers/{slot}/{id}`: the settings and enabled flag of plugin `id` in `slot`.
pub async fn save(State(app): State<AppState>, Path((slot, id)): Path<(String, String)>, request: Request) -> Response {
    let (session, form) = match posted(&app, request).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    if let Err(e) = app.auth.permit(&session.identity, Scope::KeysManage, "console:providers", 0) {
        return error_page(Some(&session), e);
    }
    let runtime = app.runtime.load_current();
    let bound = routes::slots(&runtime.config)
        .into_iter()
        .find(|(category, b)| category.as_str() == slot && b.is_some_and(|b| b.plugin == id));
    let (Some((category, Some(binding))), Some(manifest)) = (bound, manifests(&app).remove(&id)) else {
        return error_page(Some(&session), ApiError::not_found("Plugin not found"));
    };
    let current = binding.settings.clone();
    let controls = settings_form::fields(&manifest.settings_schema, &current);
    let values = settings_form::settings(&controls, |name| {
        let all = form.all(name);
        all.into_iter().next()
    });
    let enabled = !form.all("enabled").is_empty();
    let update = PluginConfigUpdate { enabled: Some(enabled), settings: Some(values.clone()) };
    let what = format!("admin console, key {}", session.key_id());
    match routes::update_config(&app, &id, Some(category), update, &what).await {
        Ok(_) => {
            crate::audit!("console_plugin_saved", key_id = %session.key_id(), plugin = %id, slot = %slot);
            Redirect::to(&format!("/admin/ui/providers?saved={slot}")).into_response()
        }
        Err(ApiError::Validation(items)) => {
            let mut fields = BTreeMap::new();
            let mut general = Vec::new();
            for item in items {
                let at = item.loc.iter().position(|s| s == "settings");
                match at.and_then(|i| item.loc.get(i + 1)) {
                    Some(name) if manifest.settings_schema["properties"].get(name).is_some() => {
                        fields.insert(name.clone(), item.msg);
                    }
                    _ => general.push(item.msg),
                }
            }
            let refused = Refused { slot: category.as_str(), values, enabled, fields, general };
            page(&app, &session, StatusCode::UNPROCESSABLE_ENTITY, None, Some(refused))
        }
        Err(e) => {
            let (status, message) = e.into_message();
            let refused =
                Refused { slot: category.as_str(), values, enabled, fields: BTreeMap::new(), general: vec![message] };
            page(&app, &session, status, None, Some(refused))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(hipaa: bool) -> SlotView {
        SlotView {
            slot: "outbound",
            id: "acme".into(),
            name: "Acme Fax".into(),
            version: "1.0.0".into(),
            description: "A provider.".into(),
            hipaa,
            enabled: true,
            controls: Vec::new(),
            credentials: vec!["apiKey".into()],
            errors: Vec::new(),
        }
    }

    fn rendered(slots: Vec<SlotView>, read_only: Option<&'static str>) -> String {
        Providers {
            signed_in: true,
            csrf: "t".into(),
            key_id: "env".into(),
            nav: "providers",
            slots,
            plugins: vec![PluginView {
                id: "acme".into(),
                name: "Acme Fax".into(),
                slots: "outbound".into(),
                hipaa: false,
            }],
            read_only,
            saved: None,
            revision: "r1".into(),
        }
        .render()
        .unwrap()
    }

    #[test]
    fn a_plugin_that_is_not_hipaa_capable_carries_a_warning() {
        let warned = rendered(vec![slot(false)], None);
        assert!(warned.contains("Not HIPAA-capable."), "{warned}");
        assert!(warned.contains("not capable"));
        let fine = rendered(vec![slot(true)], None);
        assert!(!fine.contains("Not HIPAA-capable."));
        assert!(fine.contains("HIPAA-capable"));
    }

    #[test]
    fn an_operator_managed_config_is_shown_read_only() {
        let page = rendered(vec![slot(true)], Some("the runtime config document is read-only here"));
        assert!(page.contains("<fieldset disabled>"), "{page}");
        assert!(page.contains("id=\"read-only\""));
        assert!(!page.contains("Save and apply"));
        let writable = rendered(vec![slot(true)], None);
        assert!(writable.contains("Save and apply"));
    }
}
