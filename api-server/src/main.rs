//! `faxbot-api`: reads settings from the environment, starts the server, and stops gracefully on
//! SIGTERM/SIGINT. Exit codes: 0 after a clean stop, 1 on a runtime failure, 2 on invalid settings.

use faxbot_api::configuration::Settings;
use faxbot_api::startup::{Application, shutdown_signal};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("faxbot-api: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    faxbot_api::telemetry::init(&settings.log_format, settings.audit_log_file.as_deref());
    let signal = shutdown_signal();
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "startup failed");
            return ExitCode::from(1);
        }
    };
    match app.run_until_stopped(signal).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "server failed");
            ExitCode::from(1)
        }
    }
}
