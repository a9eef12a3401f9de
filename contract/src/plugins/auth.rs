//! The API-key auth plugin (`api_keys`).

use super::*;

/// Settings of the API-key auth plugin (`api_keys`). It has none today; the object exists so that the
/// auth slot is validated like every other slot.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKeyAuthSettings {}

impl SettingsCheck for ApiKeyAuthSettings {
    fn check(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}
