//! Bounded-memory PDF page counting.
//!
//! The API server needs the page count of every uploaded PDF (for quotas and
//! transmission estimates) without loading uploads into memory. This module
//! reads only the structures needed to count pages, through `Read + Seek`, in
//! small windows:
//!
//! 1. `startxref` near the end of the file;
//! 2. the cross-reference sections, following `/Prev` (incremental updates,
//!    newest definition wins) and `/XRefStm` (hybrid files); classic tables
//!    are read entry by entry on demand, cross-reference streams are decoded
//!    as a stream (Flate, PNG/TIFF predictors) once per lookup batch;
//! 3. the catalog (`/Root`) and the page tree, breadth first, one batch of
//!    objects per tree level; objects inside object streams are decoded as a
//!    stream too, with a cap on the decoded size.
//!
//! When the cross-reference data is broken (a wrong `startxref`, offsets that
//! do not point at `num gen obj`, ...) the object table is reconstructed by
//! scanning the file sequentially in fixed-size chunks, as viewers do, and
//! the walk is retried. A tree that still cannot be walked is damaged: the
//! root's declared `/Count` is never trusted on its own, and a tree whose
//! pages do not match that `/Count`, or that lists a node twice, is
//! [`PdfError::Inconsistent`].
//!
//! Memory stays bounded regardless of file size: one read window (at most
//! 16 KiB), decompressor state, at most one parsed object at a time (with a
//! 256 KiB parse budget), the decoded rows of the cross-reference streams
//! (decoded once, at most [`MAX_XREF_ROWS_BYTES`] together), and one entry per
//! page tree node for cycle detection. Only the scan fallback keeps a map
//! with one entry per object.
//!
//! CPU stays bounded too: every byte read, decompressed or lexed is charged
//! to one work budget per count ([`Limits`]), with a time limit behind it,
//! so a small file that makes the parser go round in circles is refused with
//! [`PdfError::TooComplex`] instead of costing seconds of CPU.

mod filters;
mod lexer;
mod scan;
mod source;
mod tree;
mod xref;

use std::io::{Read, Seek};
use std::path::Path;
use std::time::Duration;

use lexer::damaged;
use scan::ScanIndex;
use source::{FileWindow, MIN_FILL, Work};
use tree::{Index, count_with};
use xref::XrefChain;

/// Why a PDF's pages could not be counted.
///
/// The messages are safe to show to API clients and to log: they never
/// include document content, only short structural keywords.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// Reading the underlying file failed; the document itself may be fine.
    #[error("I/O error reading the PDF: {0}")]
    Io(#[from] std::io::Error),
    /// The document is encrypted; it cannot be rasterised for faxing
    /// without a password, so it is rejected up front.
    #[error("the PDF is encrypted")]
    Encrypted,
    /// The document is not a PDF or is too broken to count its pages.
    #[error("the PDF is damaged: {0}")]
    Damaged(String),
    /// The document has more pages than any fax we are willing to send.
    #[error("the PDF has more than {0} pages")]
    TooManyPages(u32),
    /// The page tree contradicts itself (a page listed twice, a `/Count` that is not the tree's): renderers
    /// disagree on such a file (Ghostscript renders a page listed 500 times 500 times), so no count of it
    /// can be trusted for the page limit or billing.
    #[error("the PDF page tree is inconsistent: {0}")]
    Inconsistent(String),
    /// Counting the pages would take more work or time than [`Limits`] allow: the file makes the parser
    /// read, decompress or lex far more than its size suggests (reconstruction from thousands of fake
    /// catalogs, object streams decoded again at every level of a deep tree, ...).
    #[error("counting the PDF's pages exceeds the {0}")]
    TooComplex(Limit),
}

/// Which of the [`Limits`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The work budget (bytes read, decompressed and lexed).
    Work,
    /// The time limit.
    Time,
    /// The memory kept for decoded cross-reference rows ([`MAX_XREF_ROWS_BYTES`]).
    Memory,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Work => "work limit",
            Limit::Time => "time limit",
            Limit::Memory => "memory limit",
        })
    }
}

/// The work and time one page count may take.
///
/// The work budget is `base_work + work_per_byte × file length` units, a unit being one byte read from the
/// file, produced by decompression or looked at by the lexer. An honest file needs a small multiple of its
/// length (the reconstruction scan reads it once; object streams are decoded once per page tree level), so
/// the default leaves room for every well-formed and most damaged files while holding the worst case to
/// well under a second of CPU (docs/benchmarks.md, "Hostile documents").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Units allowed whatever the size.
    pub base_work: u64,
    /// Further units allowed per byte of the file.
    pub work_per_byte: u64,
    /// Wall-clock limit: a backstop for costs the work budget does not see.
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { base_work: 64 * 1024 * 1024, work_per_byte: 2, time: Duration::from_secs(10) }
    }
}

impl Limits {
    fn work(&self, len: u64) -> Work {
        Work::new(self.base_work.saturating_add(self.work_per_byte.saturating_mul(len)), self.time)
    }
}

/// Upper bound on the page count; larger documents are rejected with
/// [`PdfError::TooManyPages`] without walking the rest of the tree.
pub const MAX_PAGES: u32 = 10_000;

/// Upper bound on the decoded cross-reference stream rows kept for one count. Rows are decoded once and kept
/// (decoding them again for each level of the page tree is what made an 18 KB file cost seconds); a file
/// with a million objects needs about 5 MiB.
pub const MAX_XREF_ROWS_BYTES: u64 = 16 * 1024 * 1024;

/// How far into the file the `%PDF-` header may appear (viewers accept
/// leading junk, for example from mail gateways).
const HEADER_SEARCH: usize = 1024;

/// Counts the pages of a PDF with bounded memory.
///
/// Reads `startxref`, the cross-reference tables or streams, the trailer,
/// the catalog and the page tree through `Seek` + `Read`, never the whole
/// file. Leaves of the page tree (`/Type /Page`, or nodes without `/Kids`)
/// are counted; a node reached twice is [`PdfError::Inconsistent`] and depth is capped. Broken
/// cross-reference data triggers a sequential reconstruction scan.
///
/// Errors: [`PdfError::Encrypted`] when the trailer has `/Encrypt`,
/// [`PdfError::TooManyPages`] above [`MAX_PAGES`], [`PdfError::Damaged`] for
/// anything that is not a countable PDF, [`PdfError::TooComplex`] when the
/// default [`Limits`] run out, [`PdfError::Io`] for read errors.
pub fn count_pages<R: Read + Seek>(reader: R) -> Result<u32, PdfError> {
    count_pages_limited(reader, &Limits::default())
}

/// [`count_pages`] with explicit [`Limits`].
pub fn count_pages_limited<R: Read + Seek>(reader: R, limits: &Limits) -> Result<u32, PdfError> {
    let mut file = FileWindow::new(reader, |len| limits.work(len))?;
    let result = count_in(&mut file);
    // A limit that ran out inside a step that tolerates damage (a candidate trailer that does not parse, say)
    // still ends the count: whatever was found after it was found without the budget.
    match (file.work().exhausted(), result) {
        (_, Err(e @ PdfError::Io(_))) => Err(e),
        (Some(limit), _) => Err(PdfError::TooComplex(limit)),
        (None, result) => result,
    }
}

fn count_in<R: Read + Seek>(file: &mut FileWindow<R>) -> Result<u32, PdfError> {
    check_header(file)?;
    let xref_error = match XrefChain::load(file) {
        Ok(chain) => match count_with(file, &Index::Xref(chain)) {
            Ok(n) => return Ok(n),
            Err(e @ PdfError::Damaged(_)) => e,
            Err(e) => return Err(e),
        },
        Err(e @ PdfError::Damaged(_)) => e,
        Err(e) => return Err(e),
    };
    // No fallback to the root's declared /Count: a tree that cannot be walked with a /Count of 1 was how a
    // 300-page file passed as one page.
    let scanned = ScanIndex::build(file).and_then(|index| count_with(file, &Index::Scan(index)));
    match scanned {
        Ok(n) => Ok(n),
        Err(PdfError::Damaged(_)) => Err(xref_error),
        Err(e) => Err(e),
    }
}

/// Opens `path` and counts its pages with [`count_pages`].
///
/// The file is wrapped in a `BufReader` whose capacity equals the smallest
/// read [`count_pages`] makes, so it never buffers beyond what is asked for.
pub fn count_pages_in_file(path: &Path) -> Result<u32, PdfError> {
    count_pages_in_file_limited(path, &Limits::default())
}

/// [`count_pages_in_file`] with explicit [`Limits`].
pub fn count_pages_in_file_limited(path: &Path, limits: &Limits) -> Result<u32, PdfError> {
    let file = std::fs::File::open(path)?;
    count_pages_limited(std::io::BufReader::with_capacity(MIN_FILL, file), limits)
}

fn check_header<R: Read + Seek>(file: &mut FileWindow<R>) -> Result<(), PdfError> {
    let mut head = [0u8; HEADER_SEARCH];
    file.seek_to(0);
    let mut got = 0;
    while got < head.len() {
        let n = file.read_into(&mut head[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    if head[..got].windows(5).any(|w| w == b"%PDF-") { Ok(()) } else { Err(damaged("not a PDF (no %PDF- header)")) }
}
