//! Fax document handling for the Faxbot API server.
//!
//! Uploads are streamed straight to storage, and the API server must be able
//! to inspect them without ever holding a whole document in memory: a 10 MiB
//! upload may add at most ~2 MiB of peak RSS. Everything in this crate is
//! therefore incremental or seek-based, and every buffer it allocates has a
//! fixed upper bound that does not grow with the size of the document.
//!
//! Module layout:
//!
//! - [`sniff`]: incremental document type detection ([`sniff::Sniffer`]),
//!   fed chunk by chunk while an upload streams to storage. It decides
//!   between PDF and UTF-8 text and rejects everything else.
//! - [`pdf`]: bounded-memory PDF page counting ([`pdf::count_pages`]). It
//!   reads the cross-reference data and the page tree through `Read + Seek`
//!   in small windows, and falls back to a sequential scan when the
//!   cross-reference data is broken.
//! - [`text`]: streaming text to PDF rendering ([`text::render_text_pdf`]),
//!   so that plain-text submissions can be faxed. Memory is bounded by one
//!   page of text.
//! - [`fax`]: the fax image pipeline (PDF → TIFF Class F with Ghostscript,
//!   TIFF → PDF with tiff2pdf) run as supervised subprocesses, with page
//!   counts and geometry verified by our own parsers, including a
//!   bounded-memory TIFF directory walker ([`fax::inspect_tiff`]).

pub mod fax;
pub mod pdf;
#[cfg(feature = "samples")]
pub mod samples;
pub mod sniff;
pub mod text;
