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
//! 256 KiB parse budget), and one entry per page tree node for cycle
//! detection. Only the scan fallback keeps a map with one entry per object.

mod filters;
mod lexer;
mod scan;
mod source;
mod tree;
mod xref;

use std::io::{Read, Seek};
use std::path::Path;

use lexer::damaged;
use scan::ScanIndex;
use source::{FileWindow, MIN_FILL};
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
}

/// Upper bound on the page count; larger documents are rejected with
/// [`PdfError::TooManyPages`] without walking the rest of the tree.
pub const MAX_PAGES: u32 = 10_000;

/// How far into the file the `%PDF-` header may appear (viewers accept
/// leading junk, for example from mail gateways).
const HEADER_SEARCH: usize = 1024;

/// Counts the pages of a PDF with bounded memory.
///
/// Reads `startxref`, the cross-reference tables or streams, the trailer,
/// the catalog and the page tree through `Seek` + `Read`, never the whole
/// file. Leaves of the page tree (`/Type /Page`, or nodes without `/Kids`)
/// are counted; cycles are ignored and depth is capped. Broken
/// cross-reference data triggers a sequential reconstruction scan.
///
/// Errors: [`PdfError::Encrypted`] when the trailer has `/Encrypt`,
/// [`PdfError::TooManyPages`] above [`MAX_PAGES`], [`PdfError::Damaged`] for
/// anything that is not a countable PDF, [`PdfError::Io`] for read errors.
pub fn count_pages<R: Read + Seek>(reader: R) -> Result<u32, PdfError> {
    let mut file = FileWindow::new(reader)?;
    check_header(&mut file)?;
    let xref_error = match XrefChain::load(&mut file) {
        Ok(chain) => match count_with(&mut file, &Index::Xref(chain)) {
            Ok(n) => return Ok(n),
            Err(e @ PdfError::Damaged(_)) => e,
            Err(e) => return Err(e),
        },
        Err(e @ PdfError::Damaged(_)) => e,
        Err(e) => return Err(e),
    };
    // No fallback to the root's declared /Count: a tree that cannot be walked with a /Count of 1 was how a
    // 300-page file passed as one page.
    let scanned = ScanIndex::build(&mut file).and_then(|index| count_with(&mut file, &Index::Scan(index)));
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
    let file = std::fs::File::open(path)?;
    count_pages(std::io::BufReader::with_capacity(MIN_FILL, file))
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
