//! `faxbot-plugin-conformance`: checks a provider plugin against the sidecar protocol and the conformance
//! numbers (docs/plugins.md, "The conformance suite").
//!
//! ```text
//! faxbot-plugin-conformance http://127.0.0.1:8090 [--token T] [--sim-webhook-secret S]   a running sidecar
//! faxbot-plugin-conformance manifest.json [--provider http://127.0.0.1:PORT]           an HTTP plugin manifest
//! faxbot-plugin-conformance builtin:test                                               a built-in plugin
//! ```
//!
//! Prints one line per check; exit status 0 when every check passed, 1 when one failed, 2 when the plugin
//! could not be checked at all. Secrets may come from the environment instead of the command line
//! (`FAXBOT_PLUGIN_TOKEN`, `FAXBOT_PLUGIN_WEBHOOK_SECRET`), so they stay out of process listings.

use std::process::ExitCode;

use faxbot_plugin_conformance::{checks, targets};

const USAGE: &str = "usage: faxbot-plugin-conformance <http://127.0.0.1:PORT | manifest.json | builtin:ID> \
                     [--token T] [--sim-webhook-secret S] [--provider ORIGIN]";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut what = None;
    let mut token = std::env::var("FAXBOT_PLUGIN_TOKEN").ok().filter(|t| !t.is_empty());
    let mut secret = std::env::var("FAXBOT_PLUGIN_WEBHOOK_SECRET").ok().filter(|t| !t.is_empty());
    let mut provider = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--token" => token = rest.next().cloned(),
            "--sim-webhook-secret" => secret = rest.next().cloned(),
            "--provider" => provider = rest.next().cloned(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other if what.is_none() && !other.starts_with("--") => what = Some(other.to_string()),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(what) = what else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let prepared = if let Some(id) = what.strip_prefix("builtin:") {
        targets::builtin(id).await
    } else if what.starts_with("http://") || what.starts_with("https://") {
        targets::sidecar(&what, token, secret)
    } else {
        targets::manifest(&what, provider.as_deref()).await
    };
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot check {what}: {e:#}");
            return ExitCode::from(2);
        }
    };
    let outcomes = checks::run(&prepared.target).await;
    let (text, passed) = checks::report(&outcomes);
    print!("{text}");
    if passed { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
