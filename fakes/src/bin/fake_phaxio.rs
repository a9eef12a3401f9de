//! Runs the Phaxio fake for local development: point a Phaxio provider's base URL at it.
//!
//! Environment: `FAKE_PHAXIO_LISTEN` (default `127.0.0.1:8931`), `FAKE_PHAXIO_API_KEY`,
//! `FAKE_PHAXIO_API_SECRET`, `FAKE_PHAXIO_WEBHOOK_TOKEN`, `FAKE_PHAXIO_STEP_MS` (default 1000).

use faxbot_fakes::phaxio::{PhaxioFake, PhaxioFakeConfig};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let defaults = PhaxioFakeConfig::default();
    let config = PhaxioFakeConfig {
        api_key: var("FAKE_PHAXIO_API_KEY").unwrap_or(defaults.api_key),
        api_secret: var("FAKE_PHAXIO_API_SECRET").unwrap_or(defaults.api_secret),
        webhook_token: var("FAKE_PHAXIO_WEBHOOK_TOKEN").unwrap_or(defaults.webhook_token),
        step: std::time::Duration::from_millis(var("FAKE_PHAXIO_STEP_MS").and_then(|v| v.parse().ok()).unwrap_or(1000)),
    };
    let listen = var("FAKE_PHAXIO_LISTEN").unwrap_or_else(|| "127.0.0.1:8931".into());
    let addr = listen.parse().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    let fake = PhaxioFake::start_on(config, addr).await?;
    println!("fake Phaxio API v2.1 at {} (Basic auth with the configured key and secret)", fake.base_url);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
