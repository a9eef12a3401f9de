//! The fax pipeline against the real tools: Ghostscript rasterises generated
//! 1-, 5- and 50-page PDFs (letter and A4) in both resolutions and both
//! codings, and every TIFF is checked twice, with libtiff's `tiffinfo` and
//! with our own `inspect_tiff`; TIFFs go back to PDF with `tiff2pdf` and are
//! checked with poppler's `pdfinfo`. Error paths (damaged input, too many
//! pages, timeouts, missing tools, failing tools) are driven through the same
//! API. Outside CI the tests skip loudly when a tool is missing; with
//! `CI=true` a missing tool fails them.

// This whole crate is test code (helpers included); panicking is the point.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use faxbot_documents::fax::{
    Compression, ConvertError, FaxImageOptions, PaperSize, Resolution, TiffSummary, Tools, inspect_tiff,
    pdf_to_fax_tiff, tiff_to_pdf,
};
use faxbot_documents::text::{TextLayout, render_text_pdf};

/// The real tools, or `None` (with a loud reason) when this machine lacks
/// one. Under `CI=true` a missing tool is a failure.
fn tools() -> Option<Tools> {
    let tools = Tools::from_env().unwrap();
    let mut missing = Vec::new();
    if let Err(e) = tools.check() {
        missing.push(e.to_string());
    }
    for tool in ["tiffinfo", "pdfinfo"] {
        if Command::new(tool).arg("-v").output().is_err() {
            missing.push(format!("{tool} is not on PATH"));
        }
    }
    if missing.is_empty() {
        return Some(tools);
    }
    let reason = format!("{} (apt-get install ghostscript libtiff-tools poppler-utils)", missing.join(", "));
    assert!(std::env::var("CI").map(|v| v != "true").unwrap_or(true), "CI=true but {reason}");
    eprintln!("SKIPPING fax pipeline test: {reason}");
    None
}

/// Renders `pages` pages of text (one form feed between pages) to a PDF.
fn text_pdf(dir: &Path, name: &str, pages: u32, layout: &TextLayout) -> PathBuf {
    let page = |i| format!("Page {i} of {pages}\nThe quick brown fox jumps over the lazy dog.\n{}", "=".repeat(80));
    write_pdf(dir, name, pages, layout, page)
}

/// Every page full of text (57 lines of 84 characters): several times slower to rasterise than [`text_pdf`].
fn dense_pdf(dir: &Path, name: &str, pages: u32) -> PathBuf {
    write_pdf(dir, name, pages, &TextLayout::default(), |i| {
        (0..57)
            .map(|l| {
                format!("{i:03}-{l:02} {}", "The quick brown fox jumps over the lazy dog. ".repeat(2))[..84].to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn write_pdf(dir: &Path, name: &str, pages: u32, layout: &TextLayout, page: impl Fn(u32) -> String) -> PathBuf {
    let text = (1..=pages).map(page).collect::<Vec<_>>().join("\x0c");
    let path = dir.join(name);
    let mut out = std::fs::File::create(&path).unwrap();
    assert_eq!(render_text_pdf(text.as_bytes(), &mut out, layout).unwrap(), pages);
    path
}

fn a4() -> TextLayout {
    TextLayout { page_width: 595.0, page_height: 842.0, ..TextLayout::default() }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// One directory as `tiffinfo` prints it.
#[derive(Debug, Default, PartialEq)]
struct InfoPage {
    width: u32,
    height: u32,
    resolution: String,
    compression: String,
}

/// Runs `tiffinfo` and parses every "TIFF Directory" block.
fn tiffinfo(path: &Path) -> Vec<InfoPage> {
    let out = Command::new("tiffinfo").arg(path).output().unwrap();
    assert!(out.status.success(), "tiffinfo failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut pages: Vec<InfoPage> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("TIFF Directory at offset") {
            pages.push(InfoPage::default());
        }
        let Some(page) = pages.last_mut() else { continue };
        if let Some(rest) = line.strip_prefix("Image Width: ") {
            let mut parts = rest.split_whitespace();
            page.width = parts.next().unwrap().parse().unwrap();
            assert_eq!(parts.next(), Some("Image"), "{line}");
            page.height = parts.nth(1).unwrap().parse().unwrap();
        } else if let Some(rest) = line.strip_prefix("Resolution: ") {
            page.resolution = rest.to_string();
        } else if let Some(rest) = line.strip_prefix("Compression Scheme: ") {
            page.compression = rest.to_string();
        }
    }
    pages
}

/// `pdfinfo`'s "Pages:" and "Page size:" lines.
fn pdfinfo(path: &Path) -> (u32, String) {
    let out = Command::new("pdfinfo").arg(path).output().unwrap();
    assert!(out.status.success(), "pdfinfo failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let field =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).unwrap_or_default();
    (field("Pages:").parse().unwrap(), field("Page size:"))
}

/// Checks a TIFF with both tiffinfo and inspect_tiff against the expectation.
fn verify_tiff(path: &Path, pages: u32, opts: &FaxImageOptions, returned: &TiffSummary) {
    let (width, height) = opts.page_size();
    let lpi = opts.resolution.lines_per_inch();
    let info = tiffinfo(path);
    assert_eq!(info.len(), pages as usize, "tiffinfo directory count for {opts:?}");
    let compression = match opts.compression {
        Compression::G4 => "CCITT Group 4",
        Compression::G3 => "CCITT Group 3",
    };
    for (i, page) in info.iter().enumerate() {
        let expected = InfoPage {
            width,
            height,
            resolution: format!("204, {lpi} pixels/inch"),
            compression: compression.to_string(),
        };
        assert_eq!(page, &expected, "tiffinfo page {} of {opts:?}", i + 1);
    }
    let ours = inspect_tiff(std::fs::File::open(path).unwrap()).unwrap();
    assert_eq!(&ours, returned, "the returned summary describes the file written");
    assert_eq!(ours.page_count(), pages);
    for page in &ours.pages {
        assert_eq!((page.width, page.height), (width, height));
        assert_eq!((page.x_dpi, page.y_dpi), (204.0, f64::from(lpi)));
        assert_eq!(page.compression, opts.compression.tiff_tag());
        assert_eq!((page.bits_per_sample, page.photometric, page.fill_order), (1, Some(0), 1));
        assert!(page.data_bytes > 0);
    }
}

fn all_modes() -> Vec<FaxImageOptions> {
    let mut modes = Vec::new();
    for resolution in [Resolution::Fine, Resolution::Standard] {
        for compression in [Compression::G4, Compression::G3] {
            modes.push(FaxImageOptions { resolution, paper: PaperSize::Letter, compression });
        }
    }
    modes
}

#[tokio::test]
async fn letter_pdfs_of_1_5_and_50_pages_in_every_mode() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    for pages in [1u32, 5, 50] {
        let pdf = text_pdf(dir.path(), &format!("letter-{pages}.pdf"), pages, &TextLayout::default());
        for opts in all_modes() {
            let out = dir.path().join(format!("{pages}-{opts:?}.tif").replace(' ', ""));
            let summary = pdf_to_fax_tiff(&tools, &pdf, &out, &opts, 100).await.unwrap();
            verify_tiff(&out, pages, &opts, &summary);
        }
    }
    assert_eq!(FaxImageOptions::default(), all_modes()[0], "the default is fine, letter, G4");
}

#[tokio::test]
async fn a4_pdfs_fit_a4_and_letter_paper() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pdf = text_pdf(dir.path(), "a4-5.pdf", 5, &a4());
    for (resolution, paper, rows) in [
        (Resolution::Fine, PaperSize::A4, 2292),
        (Resolution::Standard, PaperSize::A4, 1146),
        (Resolution::Fine, PaperSize::Letter, 2156),
    ] {
        let opts = FaxImageOptions { resolution, paper, compression: Compression::G4 };
        assert_eq!(opts.page_size(), (1728, rows));
        let out = dir.path().join(format!("{paper:?}-{resolution:?}.tif"));
        let summary = pdf_to_fax_tiff(&tools, &pdf, &out, &opts, 5).await.unwrap();
        verify_tiff(&out, 5, &opts, &summary);
    }
}

/// Ghostscript output, object streams, linearized files, incremental updates
/// and a broken cross-reference table all keep their page counts (the older
/// implementation reported 1 for every one of them on gs ≥ 9.50).
#[tokio::test]
async fn pdfs_of_other_structures_keep_their_page_counts() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (name, pages) in [
        ("gs-5pages.pdf", 5),
        ("objstm-50pages.pdf", 50),
        ("linearized-objstm-50pages.pdf", 50),
        ("incremental-7pages.pdf", 7),
        ("nested-tree-23pages.pdf", 23),
        ("broken-startxref-5pages.pdf", 5),
    ] {
        let out = dir.path().join(format!("{name}.tif"));
        let opts = FaxImageOptions::default();
        let summary = pdf_to_fax_tiff(&tools, &fixture(name), &out, &opts, 100).await.unwrap();
        verify_tiff(&out, pages, &opts, &summary);
    }
}

#[tokio::test]
async fn tiffs_round_trip_to_pdfs_with_the_same_pages() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (pages, opts, page_size) in [
        (1u32, FaxImageOptions::default(), "609.882 x 792 pts"),
        (50, FaxImageOptions::default(), "609.882 x 792 pts"),
        (
            5,
            FaxImageOptions { resolution: Resolution::Standard, compression: Compression::G3, ..Default::default() },
            "609.882 x 792 pts",
        ),
        (5, FaxImageOptions { paper: PaperSize::A4, ..Default::default() }, "609.882 x 841.959 pts"),
    ] {
        let pdf = text_pdf(dir.path(), &format!("in-{pages}.pdf"), pages, &TextLayout::default());
        let tif = dir.path().join(format!("rt-{pages}-{opts:?}.tif").replace(' ', ""));
        pdf_to_fax_tiff(&tools, &pdf, &tif, &opts, 100).await.unwrap();
        let back = dir.path().join(format!("rt-{pages}-{opts:?}.pdf").replace(' ', ""));
        let summary = tiff_to_pdf(&tools, &tif, &back, 100).await.unwrap();
        assert_eq!(summary.page_count(), pages);
        assert_eq!(pdfinfo(&back), (pages, page_size.to_string()), "{opts:?}");
        assert_eq!(faxbot_documents::pdf::count_pages_in_file(&back).unwrap(), pages);
    }
}

#[tokio::test]
async fn too_many_pages_are_refused_before_any_tool_runs() {
    let Some(real) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Tools that would fail with ToolMissing if they were started at all.
    let absent = Tools {
        ghostscript: dir.path().join("no-gs"),
        tiff2pdf: dir.path().join("no-tiff2pdf"),
        ..Tools::from_env().unwrap()
    };
    let pdf = text_pdf(dir.path(), "six.pdf", 6, &TextLayout::default());
    let out = dir.path().join("six.tif");
    let err = pdf_to_fax_tiff(&absent, &pdf, &out, &FaxImageOptions::default(), 5).await.unwrap_err();
    assert!(matches!(err, ConvertError::TooManyPages { pages: 6, max: 5 }), "{err:?}");
    assert_eq!(err.to_string(), "the document has 6 pages; at most 5 can be faxed");
    assert!(!out.exists());

    pdf_to_fax_tiff(&real, &pdf, &out, &FaxImageOptions::default(), 6).await.unwrap();
    let back = dir.path().join("six-back.pdf");
    let err = tiff_to_pdf(&absent, &out, &back, 5).await.unwrap_err();
    assert!(matches!(err, ConvertError::TooManyPages { max: 5, .. }), "{err:?}");
    assert!(!back.exists());
}

#[tokio::test]
async fn damaged_input_gets_a_clear_error_and_no_output() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.tif");
    let garbage = dir.path().join("garbage.pdf");
    std::fs::write(&garbage, b"%PDF-1.4\nthis is not a PDF at all, Jane Doe 5551234567\n").unwrap();
    let err = pdf_to_fax_tiff(&tools, &garbage, &out, &FaxImageOptions::default(), 100).await.unwrap_err();
    assert!(matches!(err, ConvertError::Damaged(_)), "{err:?}");
    assert!(err.to_string().contains("damaged"), "{err}");
    let encrypted = fixture("encrypted-aes256-5pages.pdf");
    let err = pdf_to_fax_tiff(&tools, &encrypted, &out, &FaxImageOptions::default(), 100).await.unwrap_err();
    assert_eq!(err.to_string(), "the PDF is encrypted");
    assert!(!out.exists());

    // A truncated TIFF is refused by inspect_tiff before tiff2pdf runs.
    let pdf = text_pdf(dir.path(), "two.pdf", 2, &TextLayout::default());
    let tif = dir.path().join("two.tif");
    pdf_to_fax_tiff(&tools, &pdf, &tif, &FaxImageOptions::default(), 100).await.unwrap();
    let mut bytes = std::fs::read(&tif).unwrap();
    bytes.truncate(bytes.len() / 2);
    let cut = dir.path().join("cut.tif");
    std::fs::write(&cut, &bytes).unwrap();
    let absent = Tools { tiff2pdf: dir.path().join("no-tiff2pdf"), ..tools.clone() };
    let err = tiff_to_pdf(&absent, &cut, &dir.path().join("cut.pdf"), 100).await.unwrap_err();
    assert!(matches!(err, ConvertError::Damaged(ref m) if m.starts_with("the TIFF is damaged")), "{err:?}");
    let err = tiff_to_pdf(&tools, &garbage, &dir.path().join("g.pdf"), 100).await.unwrap_err();
    assert_eq!(err.to_string(), "not a TIFF file (no II*/MM* header)");
    assert!(!dir.path().join("cut.pdf").exists() && !dir.path().join("g.pdf").exists());
}

#[tokio::test]
async fn a_slow_conversion_is_killed_and_cleaned_up() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let temp_root = dir.path().join("work");
    std::fs::create_dir(&temp_root).unwrap();
    let tools = Tools { timeout: Duration::from_millis(30), temp_root: temp_root.clone(), ..tools };
    // About 0.4 s of Ghostscript CPU time (docs/benchmarks.md), far beyond the 30 ms limit.
    let pdf = dense_pdf(dir.path(), "fifty.pdf", 50);
    let out = dir.path().join("fifty.tif");
    let started = std::time::Instant::now();
    let err = pdf_to_fax_tiff(&tools, &pdf, &out, &FaxImageOptions::default(), 100).await.unwrap_err();
    assert!(matches!(err, ConvertError::TimedOut(t) if t == Duration::from_millis(30)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "the timeout did not stop gs");
    assert!(!out.exists(), "no partial output at the destination");
    assert_eq!(std::fs::read_dir(&temp_root).unwrap().count(), 0, "the private directory is removed");
    // No process is left running in (what was) the private directory: it was killed and reaped.
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) {
            assert!(!cwd.starts_with(&temp_root), "process {:?} still runs in {}", entry.file_name(), cwd.display());
        }
    }
}

#[tokio::test]
async fn missing_tools_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let tools = Tools {
        ghostscript: dir.path().join("bin/gs"),
        tiff2pdf: dir.path().join("bin/tiff2pdf"),
        ..Tools::from_env().unwrap()
    };
    assert!(matches!(tools.check(), Err(ConvertError::ToolMissing(p)) if p == dir.path().join("bin/gs")));
    let pdf = text_pdf(dir.path(), "one.pdf", 1, &TextLayout::default());
    let err =
        pdf_to_fax_tiff(&tools, &pdf, &dir.path().join("o.tif"), &FaxImageOptions::default(), 10).await.unwrap_err();
    assert!(matches!(err, ConvertError::ToolMissing(ref p) if p.ends_with("bin/gs")), "{err:?}");
    assert!(err.to_string().contains("missing or not executable"));
}

/// Writes an executable shell script standing in for a converter, so the
/// sandbox the real tool gets can be observed from inside.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The converter runs without a shell in a private 0700 directory with a
/// cleared environment and stdin closed; a failure is reported with its exit
/// status and a sanitised excerpt that drops document text and numbers.
#[tokio::test]
async fn converters_run_sandboxed_and_failures_are_sanitised() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let fake_gs = script(
        dir.path(),
        "gs",
        &format!(
            "{{ pwd; stat -c %a .; echo \"TMPDIR=$TMPDIR\"; env | cut -d= -f1 | sort | tr '\\n' ' '; echo; \
             printf '%s\\n' \"$@\"; cat; }} > {report}\n\
             echo 'Error: /undefined in Jane_Doe_5551234567'\necho '   (Patient Jane Doe)'\n\
             echo 'GPL Ghostscript 10.00.0: Unrecoverable error, exit code 1' >&2\nexit 3",
            report = report.display()
        ),
    );
    let temp_root = dir.path().join("work");
    std::fs::create_dir(&temp_root).unwrap();
    let tools = Tools { ghostscript: fake_gs, temp_root: temp_root.clone(), ..Tools::from_env().unwrap() };
    let pdf = text_pdf(dir.path(), "one.pdf", 1, &TextLayout::default());
    let out = dir.path().join("one.tif");
    let err = pdf_to_fax_tiff(&tools, &pdf, &out, &FaxImageOptions::default(), 10).await.unwrap_err();
    let ConvertError::Failed { tool, status, stderr_tail } = &err else { panic!("{err:?}") };
    assert_eq!((tool.as_str(), status.code()), ("gs", Some(3)));
    assert_eq!(stderr_tail, "Error: /undefined | GPL Ghostscript 10.00.0: Unrecoverable error, exit code 1");
    assert!(!err.to_string().contains("Jane") && !err.to_string().contains("5551234567"));

    let report = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    let workdir = Path::new(lines[0]);
    assert_eq!(workdir.parent(), Some(temp_root.as_path()), "runs in a private directory under the temp root");
    assert_eq!(lines[1], "700", "the private directory is mode 0700");
    assert_eq!(lines[2], format!("TMPDIR={}", workdir.display()));
    let env: Vec<&str> = lines[3].split_whitespace().collect();
    assert!(env.iter().all(|v| ["PATH", "TMPDIR", "PWD", "SHLVL", "_", "OLDPWD"].contains(v)), "environment: {env:?}");
    let args = &lines[4..];
    for flag in ["-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=tiffg4", "-r204x196", "-sPAPERSIZE=letter"] {
        assert!(args.contains(&flag), "{flag} missing from {args:?}");
    }
    for flag in ["-dFIXEDMEDIA", "-dPDFFitPage", "-sOutputFile=out.tif"] {
        assert!(args.contains(&flag), "{flag} missing from {args:?}");
    }
    assert_eq!(args.last(), Some(&pdf.to_str().unwrap()), "the input is the last argument, as an absolute path");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(&temp_root).unwrap().count(), 0, "the private directory is removed after a failure");
}

/// A converter that drops pages (as the older implementation's page counting
/// did) is caught by comparing the TIFF's directories with the PDF's pages.
#[tokio::test]
async fn a_converter_that_loses_pages_is_caught() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let one = text_pdf(dir.path(), "one.pdf", 1, &TextLayout::default());
    let one_tif = dir.path().join("one.tif");
    pdf_to_fax_tiff(&tools, &one, &one_tif, &FaxImageOptions::default(), 10).await.unwrap();
    let lossy = script(dir.path(), "lossy-gs", &format!("cp {} out.tif", one_tif.display()));
    let lossy_tools = Tools { ghostscript: lossy, ..tools.clone() };
    let five = text_pdf(dir.path(), "five.pdf", 5, &TextLayout::default());
    let out = dir.path().join("five.tif");
    let err = pdf_to_fax_tiff(&lossy_tools, &five, &out, &FaxImageOptions::default(), 10).await.unwrap_err();
    assert!(matches!(err, ConvertError::PageCountMismatch { expected: 5, got: 1 }), "{err:?}");
    assert!(!out.exists());
    // Output in the wrong geometry is caught too: a standard-resolution page where fine was asked for.
    let standard = dir.path().join("standard.tif");
    let opts = FaxImageOptions { resolution: Resolution::Standard, ..Default::default() };
    pdf_to_fax_tiff(&tools, &one, &standard, &opts, 10).await.unwrap();
    let wrong = script(dir.path(), "wrong-gs", &format!("cp {} out.tif", standard.display()));
    let wrong_tools = Tools { ghostscript: wrong, ..tools };
    let err = pdf_to_fax_tiff(&wrong_tools, &one, &out, &FaxImageOptions::default(), 10).await.unwrap_err();
    assert!(matches!(err, ConvertError::UnexpectedOutput(ref m) if m.contains("1728x1078")), "{err:?}");
}
