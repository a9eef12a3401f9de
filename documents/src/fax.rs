//! The fax document pipeline: PDF → fax TIFF for sending, TIFF → PDF for
//! received faxes.
//!
//! Self-hosted fax lines (Asterisk/spandsp) take TIFF Class F images and
//! deliver TIFF, while the API stores and serves PDF. Rasterising and
//! converting are left to proven tools run as supervised subprocesses
//! (Ghostscript for PDF → TIFF; libtiff's `tiff2pdf` for TIFF → PDF, because
//! Ghostscript cannot read TIFF), sandboxed as docs/documents.md describes. What
//! this module adds around them is what the tools do not guarantee:
//!
//! - page counts come from our own parsers ([`crate::pdf::count_pages`],
//!   [`inspect_tiff`]), checked *before* a tool runs (so an oversized
//!   document never costs a rasterisation) and again on the output (older
//!   Ghostscript wrappers silently counted every document as one page);
//! - the output geometry is verified (1728 pixels wide, 204 dpi, the
//!   requested vertical resolution, page length and compression);
//! - output appears at its destination atomically (temp name, `fsync`,
//!   rename), so a half-written file is never picked up.

mod supervise;
mod tiff;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

pub use tiff::{MAX_TIFF_PAGES, TiffError, TiffPage, TiffSummary, inspect_tiff, inspect_tiff_limited};

use crate::pdf::PdfError;

/// Vertical resolution of the fax image (the horizontal one is always 204 dpi).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolution {
    /// 204×196 dpi: readable small print, twice the data of standard.
    #[default]
    Fine,
    /// 204×98 dpi: what every fax machine accepts, fastest to send.
    Standard,
}

impl Resolution {
    /// Lines per inch, as Ghostscript's `-r204x<lpi>` and the TIFF's `YResolution`.
    pub fn lines_per_inch(self) -> u32 {
        match self {
            Resolution::Fine => 196,
            Resolution::Standard => 98,
        }
    }
}

/// The paper every page is fitted to; the fax image is as tall as this page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaperSize {
    /// US letter, 8.5×11 in.
    #[default]
    Letter,
    /// ISO A4, 210×297 mm.
    A4,
}

impl PaperSize {
    fn ghostscript_name(self) -> &'static str {
        match self {
            PaperSize::Letter => "letter",
            PaperSize::A4 => "a4",
        }
    }

    /// Page height in millimetres × 10, so row counts can be computed exactly.
    fn height_tenth_mm(self) -> u32 {
        match self {
            PaperSize::Letter => 2794,
            PaperSize::A4 => 2970,
        }
    }
}

/// CCITT coding of the fax image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// T.6 (MMR), TIFF compression 4: smallest; Asterisk/spandsp send it as is.
    #[default]
    G4,
    /// T.4 1-D (MH) with EOL padding, TIFF compression 3: the most compatible.
    G3,
}

impl Compression {
    fn ghostscript_device(self) -> &'static str {
        match self {
            Compression::G4 => "tiffg4",
            Compression::G3 => "tiffg3",
        }
    }

    /// The TIFF `Compression` tag value this coding is stored as.
    pub fn tiff_tag(self) -> u16 {
        match self {
            Compression::G4 => 4,
            Compression::G3 => 3,
        }
    }
}

/// How a PDF is rasterised for faxing. The default (fine, letter, G4) is what
/// the reference implementation sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaxImageOptions {
    /// Vertical resolution.
    pub resolution: Resolution,
    /// Paper every page is scaled to fit.
    pub paper: PaperSize,
    /// CCITT coding.
    pub compression: Compression,
}

/// Fax scan-line width in pixels for letter and A4 at 204 dpi (T.4).
pub const FAX_WIDTH: u32 = 1728;
/// Horizontal resolution of every fax image.
pub const FAX_X_DPI: u32 = 204;

impl FaxImageOptions {
    /// Image size in pixels every page must come out as: 1728 wide, and the
    /// paper height at the vertical resolution (letter fine 2156, standard
    /// 1078; A4 fine 2292, standard 1146).
    pub fn page_size(&self) -> (u32, u32) {
        let lpi = self.resolution.lines_per_inch();
        // rows = height_mm / 25.4 * lpi, rounded to nearest (as Ghostscript does).
        let rows = (self.paper.height_tenth_mm() * lpi * 2 + 254) / (254 * 2);
        (FAX_WIDTH, rows)
    }
}

/// Where the converters are and how long they may run.
#[derive(Debug, Clone)]
pub struct Tools {
    /// Ghostscript (`gs`) executable.
    pub ghostscript: PathBuf,
    /// libtiff's `tiff2pdf` executable.
    pub tiff2pdf: PathBuf,
    /// Wall-clock limit per converter run; the process is killed after it.
    pub timeout: Duration,
    /// Where per-conversion private directories are created.
    pub temp_root: PathBuf,
}

/// Default per-run limit: a 100-page letter PDF rasterises in a few seconds
/// (see docs/benchmarks.md), so this only stops runaway or hostile input.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

impl Tools {
    /// Finds the converters from `GHOSTSCRIPT` / `TIFF2PDF` (paths), else
    /// `gs` / `tiff2pdf` on `PATH`; `FAXBOT_CONVERT_TIMEOUT_SECS` overrides
    /// [`DEFAULT_TIMEOUT`], `TMPDIR` the temp root. A tool that cannot be
    /// found keeps its bare name and surfaces as [`ConvertError::ToolMissing`]
    /// from [`Tools::check`] or the first use, so a server that never
    /// converts does not need the tools; a malformed timeout is an error.
    pub fn from_env() -> Result<Tools, ToolsError> {
        Tools::from_lookup(|name| std::env::var_os(name))
    }

    /// [`Tools::from_env`] over any variable source (tests, config files).
    pub fn from_lookup(var: impl Fn(&str) -> Option<OsString>) -> Result<Tools, ToolsError> {
        let find = |name: &str, tool: &str| {
            var(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| supervise::on_path(tool))
                .unwrap_or_else(|| PathBuf::from(tool))
        };
        let timeout = match var("FAXBOT_CONVERT_TIMEOUT_SECS") {
            None => DEFAULT_TIMEOUT,
            Some(raw) => match raw.to_str().and_then(|v| v.trim().parse::<u64>().ok()) {
                Some(secs @ 1..=3600) => Duration::from_secs(secs),
                _ => return Err(ToolsError::Timeout),
            },
        };
        Ok(Tools {
            ghostscript: find("GHOSTSCRIPT", "gs"),
            tiff2pdf: find("TIFF2PDF", "tiff2pdf"),
            timeout,
            temp_root: std::env::temp_dir(),
        })
    }

    /// Verifies both tools are executable files, so a deployment without
    /// them fails at startup instead of on the first fax.
    pub fn check(&self) -> Result<(), ConvertError> {
        for tool in [&self.ghostscript, &self.tiff2pdf] {
            if !supervise::is_executable(tool) {
                return Err(ConvertError::ToolMissing(tool.clone()));
            }
        }
        Ok(())
    }
}

/// A converter setting in the environment is malformed; the message names
/// the variable and what it expects, as the server's other settings do.
#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    /// `FAXBOT_CONVERT_TIMEOUT_SECS` is not a whole number of seconds in range.
    #[error("FAXBOT_CONVERT_TIMEOUT_SECS: expected a whole number of seconds between 1 and 3600")]
    Timeout,
}

/// Why a conversion did not produce a verified document.
///
/// Every message is safe to log: converter output is reduced to its own
/// diagnostic lines with document text and long digit runs removed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The converter is not installed (or not executable) at this path.
    #[error("conversion tool {} is missing or not executable", .0.display())]
    ToolMissing(PathBuf),
    /// The converter ran longer than [`Tools::timeout`] and was killed.
    #[error("the conversion did not finish within {0:?} and was stopped")]
    TimedOut(Duration),
    /// The converter exited unsuccessfully.
    #[error("{tool} failed ({status}): {stderr_tail}")]
    Failed {
        /// "gs" or "tiff2pdf".
        tool: String,
        /// Its exit status (or the signal that ended it).
        status: ExitStatus,
        /// Sanitised excerpt of its messages.
        stderr_tail: String,
    },
    /// The document has more pages than the caller allows.
    #[error("the document has {pages} pages; at most {max} can be faxed")]
    TooManyPages {
        /// Pages counted. Counting stops early where it can, and then this
        /// is a lower bound: `max + 1` for a TIFF (the directory walk stops
        /// at the limit), and the counter's hard cap + 1
        /// ([`crate::pdf::MAX_PAGES`]) for a PDF beyond it.
        pages: u32,
        /// The caller's limit.
        max: u32,
    },
    /// The input cannot be read as a PDF / TIFF (or is encrypted).
    #[error("{0}")]
    Damaged(String),
    /// The converter's output does not have as many pages as the input.
    #[error("the converted document has {got} pages but the original has {expected}")]
    PageCountMismatch {
        /// Pages of the input.
        expected: u32,
        /// Pages of the output.
        got: u32,
    },
    /// The output is not the fax image that was asked for (geometry,
    /// resolution or coding); a tool version problem, not a document one.
    #[error("unexpected converter output: {0}")]
    UnexpectedOutput(String),
    /// Reading or writing files failed.
    #[error("I/O error during conversion: {0}")]
    Io(#[from] std::io::Error),
}

/// Rasterises a PDF into a multi-page TIFF Class F file at `out_tiff`.
///
/// Counts the PDF's pages first and refuses more than `max_pages` without
/// running Ghostscript; afterwards checks that the TIFF has exactly that many
/// pages, each with the geometry `opts` asks for. Ghostscript runs in a
/// private 0700 directory that is removed afterwards; `out_tiff` appears
/// atomically and only on success. Returns the TIFF's pages.
pub async fn pdf_to_fax_tiff(
    tools: &Tools,
    pdf: &Path,
    out_tiff: &Path,
    opts: &FaxImageOptions,
    max_pages: u32,
) -> Result<TiffSummary, ConvertError> {
    let pdf = std::path::absolute(pdf)?;
    let pages = blocking({
        let pdf = pdf.clone();
        move || crate::pdf::count_pages_in_file(&pdf)
    })
    .await?
    .map_err(|e| pdf_error(e, max_pages))?;
    if pages > max_pages {
        return Err(ConvertError::TooManyPages { pages, max: max_pages });
    }
    let work = private_dir(tools)?;
    let (width, rows) = opts.page_size();
    let lpi = opts.resolution.lines_per_inch();
    let args: Vec<OsString> = [
        "-q",
        "-dSAFER",
        "-dBATCH",
        "-dNOPAUSE",
        &format!("-sDEVICE={}", opts.compression.ghostscript_device()),
        &format!("-r{FAX_X_DPI}x{lpi}"),
        &format!("-sPAPERSIZE={}", opts.paper.ghostscript_name()),
        "-dFIXEDMEDIA",
        "-dPDFFitPage",
        // Relative to the private working directory: no '%' templating from caller paths.
        "-sOutputFile=out.tif",
    ]
    .iter()
    .map(OsString::from)
    // Absolute, so it cannot start with '-' or '@' and be taken for an option.
    .chain([pdf.into_os_string()])
    .collect();
    supervise::run(supervise::Invocation {
        tool: "gs",
        program: &tools.ghostscript,
        args,
        workdir: work.path(),
        timeout: tools.timeout,
    })
    .await?;
    let produced = work.path().join("out.tif");
    let summary = blocking({
        let produced = produced.clone();
        move || std::fs::File::open(&produced).map(|f| inspect_tiff(std::io::BufReader::new(f)))
    })
    .await??
    .map_err(|e| ConvertError::UnexpectedOutput(format!("Ghostscript wrote an unreadable TIFF: {e}")))?;
    if summary.page_count() != pages {
        return Err(ConvertError::PageCountMismatch { expected: pages, got: summary.page_count() });
    }
    for (i, page) in summary.pages.iter().enumerate() {
        let ok = page.width == width
            && page.height == rows
            && page.x_dpi == f64::from(FAX_X_DPI)
            && page.y_dpi == f64::from(lpi)
            && page.compression == opts.compression.tiff_tag();
        if !ok {
            return Err(ConvertError::UnexpectedOutput(format!(
                "page {} is {}x{} at {}x{} dpi, compression {}; expected {width}x{rows} at {FAX_X_DPI}x{lpi}, \
                 compression {}",
                i + 1,
                page.width,
                page.height,
                page.x_dpi,
                page.y_dpi,
                page.compression,
                opts.compression.tiff_tag()
            )));
        }
    }
    publish(produced, out_tiff.to_path_buf()).await?;
    drop(work);
    Ok(summary)
}

/// Converts a received fax TIFF into a PDF at `out_pdf` with `tiff2pdf`.
///
/// The TIFF is inspected first (damaged files and more than `max_pages`
/// pages are refused without running anything); the PDF's page count is
/// checked against it afterwards. Returns the input TIFF's pages.
pub async fn tiff_to_pdf(
    tools: &Tools,
    tiff: &Path,
    out_pdf: &Path,
    max_pages: u32,
) -> Result<TiffSummary, ConvertError> {
    let tiff = std::path::absolute(tiff)?;
    let summary = blocking({
        let tiff = tiff.clone();
        move || std::fs::File::open(&tiff).map(|f| inspect_tiff_limited(std::io::BufReader::new(f), max_pages))
    })
    .await??
    .map_err(|e| match e {
        TiffError::TooManyPages(limit) if limit == max_pages.min(MAX_TIFF_PAGES) => {
            ConvertError::TooManyPages { pages: limit.saturating_add(1), max: max_pages }
        }
        TiffError::Io(e) => ConvertError::Io(e),
        other => ConvertError::Damaged(other.to_string()),
    })?;
    let work = private_dir(tools)?;
    let args: Vec<OsString> =
        ["-o", "out.pdf", "--"].iter().map(OsString::from).chain([tiff.into_os_string()]).collect();
    supervise::run(supervise::Invocation {
        tool: "tiff2pdf",
        program: &tools.tiff2pdf,
        args,
        workdir: work.path(),
        timeout: tools.timeout,
    })
    .await?;
    let produced = work.path().join("out.pdf");
    let pages = blocking({
        let produced = produced.clone();
        move || crate::pdf::count_pages_in_file(&produced)
    })
    .await?
    .map_err(|e| ConvertError::UnexpectedOutput(format!("tiff2pdf wrote an unreadable PDF: {e}")))?;
    if pages != summary.page_count() {
        return Err(ConvertError::PageCountMismatch { expected: summary.page_count(), got: pages });
    }
    publish(produced, out_pdf.to_path_buf()).await?;
    drop(work);
    Ok(summary)
}

fn pdf_error(e: PdfError, max_pages: u32) -> ConvertError {
    match e {
        PdfError::Io(e) => ConvertError::Io(e),
        PdfError::TooManyPages(cap) => ConvertError::TooManyPages { pages: cap.saturating_add(1), max: max_pages },
        other => ConvertError::Damaged(other.to_string()),
    }
}

/// A fresh private directory (mode 0700, removed on drop) under the temp root.
fn private_dir(tools: &Tools) -> Result<tempfile::TempDir, ConvertError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("faxbot-convert-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(&tools.temp_root)?;
    Ok(dir)
}

/// Moves a finished file to `dest` so that `dest` is either absent or
/// complete: rename when on the same filesystem, otherwise copy to a temp
/// name next to `dest` and rename that. Data and directory are synced.
async fn publish(produced: PathBuf, dest: PathBuf) -> Result<(), ConvertError> {
    blocking(move || -> std::io::Result<()> {
        std::fs::File::open(&produced)?.sync_all()?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let Err(e) = std::fs::rename(&produced, &dest) {
            if e.kind() != std::io::ErrorKind::CrossesDevices {
                return Err(e);
            }
            let mut staged = tempfile::Builder::new().prefix(".faxbot-partial-").tempfile_in(&dir)?;
            std::io::copy(&mut std::fs::File::open(&produced)?, staged.as_file_mut())?;
            staged.as_file().sync_all()?;
            staged.persist(&dest).map_err(|e| e.error)?;
        }
        std::fs::File::open(&dir)?.sync_all()
    })
    .await??;
    Ok(())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ConvertError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ConvertError::Io(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_come_from_the_environment() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(*v))
        };
        let tools =
            Tools::from_lookup(vars(&[("GHOSTSCRIPT", "/opt/gs/bin/gs"), ("FAXBOT_CONVERT_TIMEOUT_SECS", "7")]));
        let tools = tools.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tools.ghostscript, PathBuf::from("/opt/gs/bin/gs"));
        assert_eq!(tools.timeout, Duration::from_secs(7));
        assert!(tools.tiff2pdf.ends_with("tiff2pdf"));
        let default = Tools::from_lookup(vars(&[])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(default.timeout, DEFAULT_TIMEOUT);
        for bad in [&[("FAXBOT_CONVERT_TIMEOUT_SECS", "0")][..], &[("FAXBOT_CONVERT_TIMEOUT_SECS", "2m")][..]] {
            let err = Tools::from_lookup(vars(bad)).err().map(|e| e.to_string());
            assert_eq!(
                err.as_deref(),
                Some("FAXBOT_CONVERT_TIMEOUT_SECS: expected a whole number of seconds between 1 and 3600")
            );
        }
    }

    #[test]
    fn page_sizes_match_ghostscript() {
        let size = |resolution, paper| FaxImageOptions { resolution, paper, compression: Compression::G4 }.page_size();
        assert_eq!(size(Resolution::Fine, PaperSize::Letter), (1728, 2156));
        assert_eq!(size(Resolution::Standard, PaperSize::Letter), (1728, 1078));
        assert_eq!(size(Resolution::Fine, PaperSize::A4), (1728, 2292));
        assert_eq!(size(Resolution::Standard, PaperSize::A4), (1728, 1146));
    }
}
