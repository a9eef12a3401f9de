//! The OpenAPI document (utoipa, generated from the handlers' annotations) and the docs page.

use super::AppState;
use super::error::{ErrorBody, ValidationItem};
use super::routes::{admin, fax, health, inbound, keys, plugins, webhooks};
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

/// The API description served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Faxbot API", description = "Faxbot-compatible fax API: send faxes through pluggable providers, \
        with durable jobs, scoped API keys and PHI-safe auditing."),
    paths(fax::send, fax::get, fax::pdf, fax::cancel, health::live, health::ready, health::metrics, keys::create, keys::list, keys::revoke,
        keys::rotate, admin::features, plugins::list, plugins::get_config, plugins::put_config, plugins::registry,
        plugins::health, webhooks::receive, inbound::list, inbound::get, inbound::pdf, inbound::issue_token,
        inbound::webhook, inbound::asterisk_legacy, inbound::simulate, admin::events, admin::webhooks, admin::inbound_callbacks),
    components(schemas(ErrorBody, ValidationItem)),
    modifiers(&ApiKeyScheme),
    tags((name = "fax", description = "Outbound faxes"), (name = "inbound", description = "Received faxes"), (name = "health", description = "Probes and metrics"),
        (name = "admin", description = "Administration (env key or a key with keys:manage)"),
        (name = "plugins", description = "v3 plugin management (feature flags v3Plugins / pluginRegistry)"),
        (name = "webhooks", description = "Provider callbacks, authenticated by the provider's own scheme"))
)]
pub struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    }
}

/// `/openapi.json` and the Swagger UI at `/docs` (assets vendored into the binary: no CDN at runtime).
pub fn routes() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
