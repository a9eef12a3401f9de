//! Cost of counting the pages of each hostile sample (`cargo run --release -p faxbot-documents --features
//! samples --example hostile_cost`): size, outcome and the CPU time of the counting thread, for
//! docs/benchmarks.md ("Hostile documents"). With `--write DIR` it also writes the files there, for
//! `scripts/bench/hostile` to upload to a running server.

use std::io::Cursor;
use std::time::Duration;

use faxbot_documents::pdf::count_pages;
use faxbot_documents::samples::hostile;

/// CPU time of this thread so far, from /proc (Linux): user + system clock ticks.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat(5); here 0-based after the state field (field 3).
    let total = ticks(11) + ticks(12);
    Duration::from_millis(total * 10)
}

/// The least work budget (`base_work`, nothing per byte) with which `path` still counts, by bisection.
fn least_budget(path: &str) {
    use faxbot_documents::pdf::{Limits, count_pages_in_file, count_pages_in_file_limited};
    let path = std::path::Path::new(path);
    let before = thread_cpu();
    let pages = count_pages_in_file(path);
    let cpu = thread_cpu().saturating_sub(before);
    let fits = |work: u64| {
        let limits = Limits { base_work: work, work_per_byte: 0, time: Duration::from_secs(600) };
        count_pages_in_file_limited(path, &limits).is_ok()
    };
    let (mut lo, mut hi) = (0u64, 1u64 << 40);
    while hi - lo > 1024 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) { hi = mid } else { lo = mid }
    }
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    let default = Limits::default();
    let allowed = default.base_work + default.work_per_byte * len;
    println!(
        "{}: {len} bytes, {pages:?}, CPU {} ms; least work budget {hi} units ({:.2} × its size; the default allows {allowed})",
        path.display(),
        cpu.as_millis(),
        hi as f64 / len.max(1) as f64
    );
}

fn main() {
    if let Some(i) = std::env::args().position(|a| a == "--least-budget") {
        for path in std::env::args().skip(i + 1) {
            least_budget(&path);
        }
        return;
    }
    println!("| file | what | bytes | result | CPU ms | wall ms |\n|---|---|---|---|---|---|");
    let samples: Vec<(&str, Vec<u8>)> = vec![
        ("xref stream, 2M rows, tree 60 deep", hostile::xref_stream_deep_tree()),
        ("object stream, 15 MiB padding, tree 60 deep", hostile::object_stream_deep_tree()),
        ("no xref, 4,096 fake catalogs × 10,000 kids, 9 MB", hostile::fake_catalogs(4096, 10_000, 9 * 1024 * 1024)),
        ("one page listed 500 times", hostile::repeated_kid(500)),
        ("300 pages, /Count 1", hostile::lying_count(300, 1)),
        ("form feeds, 10 MiB", hostile::form_feeds(10 * 1024 * 1024)),
    ];
    let args: Vec<String> = std::env::args().collect();
    let write_to = args.iter().position(|a| a == "--write").and_then(|i| args.get(i + 1)).map(std::path::PathBuf::from);
    for (i, (name, bytes)) in samples.into_iter().enumerate() {
        if let Some(dir) = &write_to {
            let file = dir.join(format!("hostile-{i}.{}", if name.starts_with("form feeds") { "txt" } else { "pdf" }));
            if let Err(e) = std::fs::write(&file, &bytes) {
                eprintln!("writing {}: {e}", file.display());
                std::process::exit(1);
            }
        }
        if name.starts_with("form feeds") {
            continue;
        }
        let before = thread_cpu();
        let started = std::time::Instant::now();
        let result = count_pages(Cursor::new(&bytes));
        let wall = started.elapsed();
        let cpu = thread_cpu().saturating_sub(before);
        println!("| {i} | {name} | {} | {result:?} | {} | {} |", bytes.len(), cpu.as_millis(), wall.as_millis());
    }
}
