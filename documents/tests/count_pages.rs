//! Page counting against committed fixtures (see `fixtures/README.md`),
//! hand-built edge cases, and a bounded-I/O behaviour test.

// This whole crate is test code (helpers included); panicking is the point.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{self, BufWriter, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use faxbot_documents::pdf::{MAX_PAGES, PdfError, count_pages, count_pages_in_file};
use faxbot_documents::text::{TextLayout, render_text_pdf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn count_fixture(name: &str) -> Result<u32, PdfError> {
    let path = fixture(name);
    assert!(path.is_file(), "missing fixture {name}");
    count_pages_in_file(&path)
}

fn assert_fixtures(cases: &[(&str, u32)]) {
    for &(name, expected) in cases {
        match count_fixture(name) {
            Ok(n) => assert_eq!(n, expected, "{name}"),
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

/// A unique path in the system temp directory, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> Self {
        Self(std::env::temp_dir().join(format!("faxbot-documents-{}-{tag}.pdf", std::process::id())))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Builds a PDF with a classic xref table from `(number, body)` pairs.
fn classic_pdf(objects: &[(u32, &str)], root: u32) -> Vec<u8> {
    let mut data = b"%PDF-1.4\n".to_vec();
    let size = objects.iter().map(|o| o.0).max().unwrap_or(0) + 1;
    let mut offsets = vec![None; size as usize];
    for &(num, body) in objects {
        offsets[num as usize] = Some(data.len());
        data.extend_from_slice(format!("{num} 0 obj\n{body}\nendobj\n").as_bytes());
    }
    let xref = data.len();
    data.extend_from_slice(format!("xref\n0 {size}\n").as_bytes());
    for off in &offsets {
        let entry = match off {
            Some(o) => format!("{o:010} 00000 n\r\n"),
            None => "0000000000 65535 f\r\n".to_string(),
        };
        data.extend_from_slice(entry.as_bytes());
    }
    data.extend_from_slice(
        format!("trailer\n<< /Size {size} /Root {root} 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
    );
    data
}

fn count_bytes(data: Vec<u8>) -> Result<u32, PdfError> {
    count_pages(Cursor::new(data))
}

#[test]
fn classic_xref_fixtures() {
    assert_fixtures(&[
        ("text-1page.pdf", 1),
        ("text-5pages.pdf", 5),
        ("text-50pages.pdf", 50),
        ("gs-1page.pdf", 1),
        ("gs-5pages.pdf", 5),
        ("nested-tree-23pages.pdf", 23),
    ]);
}

#[test]
fn xref_stream_and_object_stream_fixtures() {
    assert_fixtures(&[("objstm-50pages.pdf", 50), ("objstm-gs-5pages.pdf", 5), ("hybrid-3pages.pdf", 3)]);
}

#[test]
fn linearized_fixtures() {
    assert_fixtures(&[("linearized-50pages.pdf", 50), ("linearized-objstm-50pages.pdf", 50)]);
}

#[test]
fn incremental_update_fixtures() {
    // The updates redefine the /Pages node; the original definitions say 5
    // and 50 pages, so these counts prove the newest definition wins.
    assert_fixtures(&[("incremental-7pages.pdf", 7), ("incremental-xrefstream-21pages.pdf", 21)]);
}

#[test]
fn damaged_fixtures_are_reconstructed() {
    assert_fixtures(&[
        ("broken-startxref-5pages.pdf", 5),
        ("broken-offsets-gs-5pages.pdf", 5),
        ("broken-startxref-objstm-50pages.pdf", 50),
    ]);
}

#[test]
fn encrypted_fixtures_are_rejected() {
    for name in ["encrypted-aes256-5pages.pdf", "encrypted-aes128-objstm-5pages.pdf"] {
        assert!(matches!(count_fixture(name), Err(PdfError::Encrypted)), "{name}");
    }
    // Also when the cross-reference data is broken and the file is scanned.
    let mut data = std::fs::read(fixture("encrypted-aes256-5pages.pdf")).unwrap();
    let at = data.windows(9).rposition(|w| w == b"startxref").unwrap();
    data.truncate(at);
    data.extend_from_slice(b"startxref\n17\n%%EOF\n");
    assert!(matches!(count_bytes(data), Err(PdfError::Encrypted)));
}

#[test]
fn non_pdfs_are_damaged() {
    let mut x: u32 = 7;
    let noise: Vec<u8> = (0..50_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 24) as u8
        })
        .collect();
    for data in [
        noise,
        Vec::new(),
        b"Just some text, SECRET-TOKEN-123\n".repeat(100),
        b"%PDF-1.4\n".to_vec(),
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\nSECRET-TOKEN-123".to_vec(),
    ] {
        match count_bytes(data) {
            Err(PdfError::Damaged(msg)) => {
                assert!(!msg.contains("SECRET"), "message leaks content: {msg}");
            }
            other => panic!("expected Damaged, got {other:?}"),
        }
    }
}

#[test]
fn truncated_pdf_is_damaged() {
    // The renderer writes the page tree root and catalog last, so the first
    // half of a file has pages but no tree to count them with.
    let data = std::fs::read(fixture("text-50pages.pdf")).unwrap();
    let half = data[..data.len() / 2].to_vec();
    assert!(matches!(count_bytes(half), Err(PdfError::Damaged(_))));
}

#[test]
fn cycles_in_the_page_tree_are_refused_as_inconsistent() {
    let data = classic_pdf(
        &[
            (1, "<< /Type /Catalog /Pages 2 0 R >>"),
            (2, "<< /Type /Pages /Kids [3 0 R 2 0 R 4 0 R] /Count 99 >>"),
            (3, "<< /Type /Page /Parent 2 0 R >>"),
            (4, "<< /Type /Pages /Kids [4 0 R 2 0 R 5 0 R 3 0 R] /Parent 2 0 R >>"),
            (5, "<< /Type /Page /Parent 4 0 R >>"),
        ],
        1,
    );
    assert!(matches!(count_bytes(data), Err(PdfError::Inconsistent(_))));
}

#[test]
fn a_page_listed_many_times_is_refused_not_counted_once() {
    // Ghostscript renders each reference: 500 pages sent for a file counted as one.
    let kids = vec!["3 0 R"; 500].join(" ");
    let tree = format!("<< /Type /Pages /Kids [{kids}] /Count 500 >>");
    let data =
        classic_pdf(&[(1, "<< /Type /Catalog /Pages 2 0 R >>"), (2, &tree), (3, "<< /Type /Page /Parent 2 0 R >>")], 1);
    match count_bytes(data) {
        Err(PdfError::Inconsistent(reason)) => assert!(reason.contains("object 3"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_count_that_is_not_the_trees_is_refused() {
    let data = classic_pdf(
        &[
            (1, "<< /Type /Catalog /Pages 2 0 R >>"),
            (2, "<< /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 1 >>"),
            (3, "<< /Type /Page /Parent 2 0 R >>"),
            (4, "<< /Type /Page /Parent 2 0 R >>"),
            (5, "<< /Type /Page /Parent 2 0 R >>"),
        ],
        1,
    );
    match count_bytes(data) {
        Err(PdfError::Inconsistent(reason)) => {
            assert_eq!(reason, "the page tree has 3 pages but declares /Count 1")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn untyped_nodes_and_missing_kids() {
    // Leaves without /Type count (no /Kids); references to objects that do
    // not exist are ignored.
    let data = classic_pdf(
        &[
            (1, "<< /Type /Catalog /Pages 2 0 R >>"),
            (2, "<< /Kids [3 0 R 4 0 R 9 0 R] >>"),
            (3, "<< /MediaBox [0 0 612 792] >>"),
            (4, "<< /Kids [5 0 R] >>"),
            (5, "<< /Contents 8 0 R >>"),
        ],
        1,
    );
    assert_eq!(count_bytes(data).unwrap(), 2);
}

fn deep_chain(levels: u32, root_count: Option<u32>) -> Vec<u8> {
    let mut bodies = vec![(1, "<< /Type /Catalog /Pages 2 0 R >>".to_string())];
    for n in 2..levels + 2 {
        let count = match (n, root_count) {
            (2, Some(c)) => format!(" /Count {c}"),
            _ => String::new(),
        };
        bodies.push((n, format!("<< /Type /Pages /Kids [{} 0 R]{count} >>", n + 1)));
    }
    bodies.push((levels + 2, "<< /Type /Page >>".to_string()));
    let refs: Vec<(u32, &str)> = bodies.iter().map(|(n, b)| (*n, b.as_str())).collect();
    classic_pdf(&refs, 1)
}

#[test]
fn depth_is_capped_and_a_declared_count_is_never_trusted_alone() {
    assert_eq!(count_bytes(deep_chain(20, None)).unwrap(), 1);
    assert_eq!(count_bytes(deep_chain(20, Some(1))).unwrap(), 1);
    // Too deep to walk: damaged, whatever the root declares (a declared /Count 1 over a tree that cannot be
    // walked is how a 300-page file passed as one page).
    assert!(matches!(count_bytes(deep_chain(200, Some(1))), Err(PdfError::Damaged(_))));
    assert!(matches!(count_bytes(deep_chain(200, None)), Err(PdfError::Damaged(_))));
    assert!(matches!(count_bytes(deep_chain(200, Some(50_000))), Err(PdfError::Damaged(_))));
}

#[test]
fn catalog_without_pages_is_damaged() {
    let data = classic_pdf(&[(1, "<< /Type /Catalog >>")], 1);
    assert!(matches!(count_bytes(data), Err(PdfError::Damaged(_))));
}

fn render_to_vec(text: &str) -> (u32, Vec<u8>) {
    let mut out = Vec::new();
    let pages = render_text_pdf(text.as_bytes(), &mut out, &TextLayout::default()).unwrap();
    (pages, out)
}

#[test]
fn page_limit() {
    let (pages, pdf) = render_to_vec(&"p\x0c".repeat(MAX_PAGES as usize));
    assert_eq!(pages, MAX_PAGES);
    assert_eq!(count_bytes(pdf).unwrap(), MAX_PAGES);
    let (pages, pdf) = render_to_vec(&"p\x0c".repeat(MAX_PAGES as usize + 1));
    assert_eq!(pages, MAX_PAGES + 1);
    assert!(matches!(count_bytes(pdf), Err(PdfError::TooManyPages(MAX_PAGES))));
}

/// Fails every read, to check that I/O errors are reported as such.
struct FailingReader;

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }
}

impl Seek for FailingReader {
    fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
        Ok(1000)
    }
}

#[test]
fn io_errors_are_reported_as_io() {
    assert!(matches!(count_pages(FailingReader), Err(PdfError::Io(_))));
    assert!(matches!(count_pages_in_file(Path::new("/nonexistent/faxbot.pdf")), Err(PdfError::Io(_))));
}

/// Records how the page counter reads its input.
struct Tracking<R> {
    inner: R,
    total_read: u64,
    max_request: usize,
    reads: u64,
}

impl<R: Read> Read for Tracking<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.max_request = self.max_request.max(buf.len());
        self.reads += 1;
        let n = self.inner.read(buf)?;
        self.total_read += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Tracking<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Renders `pages` full pages of text into a file.
fn write_big_pdf(path: &Path, pages: usize) -> u64 {
    let line = "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs\n";
    assert_eq!(line.len(), 85);
    let text = line.repeat(57 * pages);
    let mut out = BufWriter::new(File::create(path).unwrap());
    let rendered = render_text_pdf(text.as_bytes(), &mut out, &TextLayout::default()).unwrap();
    out.flush().unwrap();
    assert_eq!(rendered as usize, pages);
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn large_pdf_is_counted_with_small_reads() {
    let tmp = TempPath::new("big");
    let len = write_big_pdf(&tmp.0, 1000);
    assert!(len > 5_000_000, "file is only {len} bytes");
    let mut tracking = Tracking { inner: File::open(&tmp.0).unwrap(), total_read: 0, max_request: 0, reads: 0 };
    assert_eq!(count_pages(&mut tracking).unwrap(), 1000);
    eprintln!(
        "read {} of {len} bytes in {} reads, largest request {} bytes",
        tracking.total_read, tracking.reads, tracking.max_request
    );
    // Only the trailer, the xref table and the page tree are read: about one
    // small window per page object, never the content streams.
    assert!(tracking.total_read * 10 < len, "read {} of {len} bytes", tracking.total_read);
    assert!(tracking.max_request <= 16 * 1024, "{}", tracking.max_request);
    assert!(tracking.reads > 0);
}

#[test]
fn scan_fallback_reads_in_bounded_chunks() {
    let tmp = TempPath::new("big-broken");
    write_big_pdf(&tmp.0, 300);
    // Break startxref so that the whole file has to be scanned.
    let mut data = std::fs::read(&tmp.0).unwrap();
    let at = data.windows(9).rposition(|w| w == b"startxref").unwrap();
    data.truncate(at);
    data.extend_from_slice(b"startxref\n999\n%%EOF\n");
    let len = data.len() as u64;
    let mut tracking = Tracking { inner: Cursor::new(data), total_read: 0, max_request: 0, reads: 0 };
    assert_eq!(count_pages(&mut tracking).unwrap(), 300);
    assert!(tracking.total_read >= len, "the scan reads everything");
    assert!(tracking.max_request <= 16 * 1024, "{}", tracking.max_request);
}

#[test]
fn rendered_output_round_trips_through_a_file() {
    let tmp = TempPath::new("roundtrip");
    let text: String = (0..500).map(|i| format!("{i}\t(tab) \\ \u{20ac}\n")).collect();
    let (pages, pdf) = render_to_vec(&text);
    assert_eq!(pages, 9);
    std::fs::write(&tmp.0, pdf).unwrap();
    assert_eq!(count_pages_in_file(&tmp.0).unwrap(), pages);
}
