//! The OpenAPI document (utoipa, generated from the handlers' annotations) and the docs page.

use super::AppState;
use super::error::{ErrorBody, Unprocessable, ValidationBody, ValidationItem};
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

/// The API description served at `/openapi.json`, apart from its paths: the router adds those from the
/// handlers it routes (`http::routes`), then [`finish`] completes the document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Faxbot API", description = "Faxbot-compatible fax API: send faxes through pluggable providers, \
        with durable jobs, scoped API keys and PHI-safe auditing."),
    components(schemas(ErrorBody, Unprocessable, ValidationBody, ValidationItem)),
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

/// Every operation that takes an API key can answer 401 (no or a wrong key) and 429 (`Retry-After`): its
/// per-key request limit, or too many failed keys from the client's address (`http::auth_failures`). Added here
/// once rather than on each handler, so that no route forgets them.
struct AuthAnswers;

impl Modify for AuthAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::response::ResponseBuilder;
        use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref};
        let error = || ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                if !secured {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                responses.entry("401".into()).or_insert_with(|| {
                    ResponseBuilder::new()
                        .description("Invalid or missing API key")
                        .content("application/json", error())
                        .build()
                        .into()
                });
                responses.insert(
                    "429".into(),
                    ResponseBuilder::new()
                        .description(
                            "Too many requests for this key (`MAX_REQUESTS_PER_MINUTE`), or too many failed keys from \
                             this client address (`FAXBOT_AUTH_FAILURES_PER_MINUTE`); retry after `Retry-After` seconds",
                        )
                        .content("application/json", error())
                        .header(
                            "Retry-After",
                            HeaderBuilder::new()
                                .schema(Some(utoipa::openapi::schema::Object::with_type(
                                    utoipa::openapi::schema::Type::Integer,
                                )))
                                .description(Some("Seconds to wait"))
                                .build(),
                        )
                        .build()
                        .into(),
                );
            }
        }
    }
}

/// Completes the document once the router has added every path: the answers every authenticated operation
/// can give.
pub fn finish(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    AuthAnswers.modify(&mut api);
    api
}

/// `/openapi.json` and the Swagger UI at `/docs` (assets vendored into the binary: no CDN at runtime).
pub fn routes(api: utoipa::openapi::OpenApi) -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", api))
}
