//! Pages per second of the PDF → fax TIFF conversion, with one and with two
//! Ghostscript processes at a time (docs/benchmarks.md, "Document pipeline").
//!
//! ```sh
//! cargo run --release -p faxbot-documents --example fax_bench [rounds]
//! ```
//!
//! Three 50-page letter PDFs are generated: sparse text (a few lines per
//! page, like most faxed letters), dense text (every page full, 57 lines of
//! 84 characters), and a graphics-heavy one made by Ghostscript's pdfwrite
//! (grey fills and 200 lines per page: halftoning to 1 bit is the expensive
//! part of rasterising scans). Each is converted `rounds` times (default 6)
//! per concurrency level through the real `pdf_to_fax_tiff` (page counting,
//! supervision, TIFF verification and atomic publish included), and the wall
//! time of the whole batch gives pages per second. The converters' CPU time
//! per page (from the reaped children's rusage) is printed too, since the
//! wall time depends on whatever else shares the cores.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use faxbot_documents::fax::{Compression, FaxImageOptions, Resolution, Tools, pdf_to_fax_tiff};
use faxbot_documents::text::{TextLayout, render_text_pdf};

const PAGES: u32 = 50;

fn text_pdf(path: &Path, dense: bool) -> std::io::Result<()> {
    let page = |n: u32| {
        if dense {
            // 7 + 77 = 84 characters: exactly one full line each, 57 lines: one full page.
            let filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt";
            (0..57).map(|l| format!("{n:03}-{l:02} {}", &filler[..77])).collect::<Vec<_>>().join("\n")
        } else {
            format!("Page {n} of {PAGES}\n\nDear colleague,\nplease find the referral attached.\n\nRegards")
        }
    };
    let text = (1..=PAGES).map(page).collect::<Vec<_>>().join("\x0c");
    let pages = render_text_pdf(text.as_bytes(), std::fs::File::create(path)?, &TextLayout::default())?;
    assert_eq!(pages, PAGES);
    Ok(())
}

fn graphics_pdf(gs: &Path, path: &Path) -> std::io::Result<()> {
    let ps = format!(
        "%!PS\n1 1 {PAGES} {{ /p exch def\n\
         0 1 9 {{ /i exch def i 0.1 mul setgray 36 i 72 mul 36 add 540 60 rectfill }} for\n\
         0 setgray 0.5 setlinewidth 0 1 199 {{ /j exch def 36 j 3.6 mul 36 add moveto 576 j p add 3.1 mul 36 add lineto stroke }} for\n\
         /Helvetica findfont 24 scalefont setfont 72 740 moveto (Page ) show p 3 string cvs show showpage }} for\n"
    );
    let ps_path = path.with_extension("ps");
    std::fs::write(&ps_path, ps)?;
    let status = std::process::Command::new(gs)
        .args(["-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pdfwrite", "-sPAPERSIZE=letter"])
        .arg(format!("-sOutputFile={}", path.display()))
        .arg(&ps_path)
        .status()?;
    assert!(status.success(), "pdfwrite failed");
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().nth(1).map(|r| r.parse()).transpose()?.unwrap_or(6);
    let tools = Arc::new(Tools::from_env()?);
    tools.check()?;
    let dir = tempfile::tempdir()?;
    let inputs: Vec<(&str, PathBuf)> = vec![
        ("sparse text", dir.path().join("sparse.pdf")),
        ("dense text", dir.path().join("dense.pdf")),
        ("graphics", dir.path().join("graphics.pdf")),
    ];
    text_pdf(&inputs[0].1, false)?;
    text_pdf(&inputs[1].1, true)?;
    graphics_pdf(&tools.ghostscript, &inputs[2].1)?;
    let modes = [
        ("fine G4", FaxImageOptions::default()),
        ("fine G3", FaxImageOptions { compression: Compression::G3, ..Default::default() }),
        ("standard G4", FaxImageOptions { resolution: Resolution::Standard, ..Default::default() }),
    ];
    println!("{rounds} conversions of a {PAGES}-page letter PDF per cell; load average before: {}", loadavg());
    println!(
        "| document | mode | 1 gs process: pages/s (s per document) | 2 gs processes: pages/s | speed-up | gs CPU ms per page |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, pdf) in &inputs {
        for (mode, opts) in &modes {
            let cpu_before = children_cpu_seconds();
            let one = batch(&tools, pdf, opts, rounds, 1, dir.path()).await?;
            let cpu_ms_per_page = (children_cpu_seconds() - cpu_before) * 1000.0 / (rounds as f64 * f64::from(PAGES));
            let two = batch(&tools, pdf, opts, rounds, 2, dir.path()).await?;
            println!(
                "| {name} | {mode} | {one:.1} ({:.2} s) | {two:.1} | {:.2}× | {cpu_ms_per_page:.2} |",
                f64::from(PAGES) / one,
                two / one
            );
        }
    }
    println!("load average after: {}", loadavg());
    Ok(())
}

/// Converts `pdf` `rounds` times with `concurrency` conversions in flight;
/// returns pages per second over the wall time of the batch.
async fn batch(
    tools: &Arc<Tools>,
    pdf: &Path,
    opts: &FaxImageOptions,
    rounds: usize,
    concurrency: usize,
    dir: &Path,
) -> Result<f64, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (tools, pdf, opts, next) = (tools.clone(), pdf.to_path_buf(), *opts, next.clone());
        let out = dir.join(format!("out-{w}.tif"));
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < rounds {
                let summary = pdf_to_fax_tiff(&tools, &pdf, &out, &opts, PAGES).await?;
                assert_eq!(summary.page_count(), PAGES);
            }
            Ok::<_, faxbot_documents::fax::ConvertError>(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok((rounds as f64 * f64::from(PAGES)) / started.elapsed().as_secs_f64())
}

/// User + system CPU time of all reaped child processes (the converters), from
/// `/proc/self/stat` (`cutime`, `cstime`): what the conversions cost whatever
/// else the machine is doing.
fn children_cpu_seconds() -> f64 {
    let ticks_per_second = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<f64> = after_name.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    // Fields 16 and 17 of stat(5); the split starts at field 3.
    (fields.get(13).copied().unwrap_or(0.0) + fields.get(14).copied().unwrap_or(0.0)) / ticks_per_second
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
