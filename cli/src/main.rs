//! `faxbot plugin new <id> --kind manifest|rust|python|node [--dir DIR] [--kit PATH]`
//!
//! Writes a provider plugin skeleton into DIR (default `./<id>`) that passes `faxbot-plugin-conformance` as
//! generated; prints what to run next. One command with a few flags does not need an argument-parsing crate.

use std::path::PathBuf;
use std::process::ExitCode;

use faxbot_cli::{Kind, generate, names};

const USAGE: &str = "usage: faxbot plugin new <id> --kind manifest|rust|python|node [--dir DIR] [--kit PATH]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let ["plugin", "new", id, rest @ ..] = words.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let (mut kind, mut dir, mut kit) = (None, None, None);
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        match (*flag, it.next()) {
            ("--kind", Some(k)) => kind = Kind::parse(k),
            ("--dir", Some(d)) => dir = Some(PathBuf::from(d)),
            ("--kit", Some(k)) => kit = Some(PathBuf::from(k)),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(kind) = kind else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let names = match names(id) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let out = dir.unwrap_or_else(|| PathBuf::from(id));
    match generate(kind, &names, &out, kit.as_deref()) {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            let next = match kind {
                Kind::Manifest => format!("faxbot-plugin-conformance {}/manifest.json", out.display()),
                Kind::Rust => format!("cd {} && cargo test && cargo run", out.display()),
                Kind::Python => {
                    format!("cd {} && pip install . && python -m unittest && python -m {}", out.display(), names.module)
                }
                Kind::Node => format!("cd {} && npm install && npm test && npm start", out.display()),
            };
            println!("next: {next}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
