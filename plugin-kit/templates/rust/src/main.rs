//! Serves the plugin: `FAXBOT_PLUGIN_LISTEN` (default 127.0.0.1:8090), `FAXBOT_PLUGIN_TOKEN`,
//! `FAXBOT_PLUGIN_WEBHOOK_SECRET`.

use std::sync::Arc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let secret = std::env::var("FAXBOT_PLUGIN_WEBHOOK_SECRET").ok();
    faxbot_plugin_kit::serve_from_env(Arc::new(@@MODULE@@::@@TYPE@@::new(secret))).await
}
