//! What the log guard's pre-check saves (docs/benchmarks.md, "PHI guard"): per typical JSON log line, the
//! cost of [`may_hold_number`] against the parse, walk and re-check the guard otherwise does.
//!
//! `cargo run --release -p faxbot-contract --example phi_precheck`

use std::hint::black_box;
use std::time::Instant;

use faxbot_contract::phi::{GUARD_MIN_DIGITS, mask_standalone_numbers, may_hold_number};

/// The guard's slow path: parse the line and check every string in it.
fn parse_and_check(line: &str) -> bool {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => mask_standalone_numbers(s, GUARD_MIN_DIGITS) != *s,
            serde_json::Value::Array(items) => items.iter().any(walk),
            serde_json::Value::Object(map) => map.values().any(walk),
            _ => false,
        }
    }
    serde_json::from_str::<serde_json::Value>(line).map(|v| walk(&v)).unwrap_or(false)
}

fn per_line(n: u32, f: impl Fn() -> bool) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        black_box(f());
    }
    started.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let lines = [
        (
            "request line, no long digit run",
            r#","level":"INFO","message":"job submitted","backend":"phaxio","attempt":1,"pages":2,"target":"faxbot_api::queue::worker","span":{"name":"submit"}}"#,
        ),
        (
            "with a UUID (digit runs across dashes)",
            r#","level":"INFO","message":"job submitted","job_id":"3f2a1882-0455-4a3b-9c1d-123456789abc","attempt":1,"target":"faxbot_api::queue::worker"}"#,
        ),
    ];
    for (name, rest) in lines {
        let line = format!("{{\"timestamp\":\"2026-12-05T17:05:53.123456Z\"{rest}");
        let n = 1_000_000;
        let check = per_line(n, || may_hold_number(black_box(rest), GUARD_MIN_DIGITS));
        let parse = per_line(n, || parse_and_check(black_box(&line)));
        println!(
            "{name}: pre-check {check:.0} ns, parse and check {parse:.0} ns, pre-check says {}",
            if may_hold_number(rest, GUARD_MIN_DIGITS) { "parse" } else { "skip" }
        );
    }
}
