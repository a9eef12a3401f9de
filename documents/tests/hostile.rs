//! The hostile files of the hardening review against the page counter's budgets: each test checks the effect
//! of a limit (a refusal with its reason, or an answer reached within a budget far smaller than the naive
//! cost), never a duration.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test with its message.

use std::io::Cursor;
use std::time::Duration;

use faxbot_documents::pdf::{Limit, Limits, PdfError, count_pages, count_pages_limited};
use faxbot_documents::samples::{PdfBuilder, XrefRows, hostile, last_xref};

const MIB: u64 = 1024 * 1024;

fn limits(base_work: u64, work_per_byte: u64) -> Limits {
    Limits { base_work, work_per_byte, time: Duration::from_secs(600) }
}

#[test]
fn a_cross_reference_stream_is_decoded_once_not_once_per_tree_level() {
    let pdf = hostile::xref_stream_deep_tree();
    assert_eq!(count_pages(Cursor::new(&pdf)).unwrap(), 1);
    // Its rows decode to 16 MB; the tree has 60 levels. Decoding the rows once fits in 24 MiB of work,
    // decoding them per level would need 960 MB.
    assert_eq!(count_pages_limited(Cursor::new(&pdf), &limits(24 * MIB, 0)).unwrap(), 1);
}

#[test]
fn object_streams_decoded_again_at_every_level_run_out_of_work() {
    // 15 MiB of padding before the tree's objects, decoded again for each of 60 levels: about 900 MiB of
    // work for a 70 KB file.
    let pdf = hostile::object_stream_deep_tree();
    assert!(pdf.len() < 100_000, "{}", pdf.len());
    match count_pages(Cursor::new(&pdf)) {
        Err(e @ PdfError::TooComplex(Limit::Work)) => {
            assert_eq!(e.to_string(), "counting the PDF's pages exceeds the work limit")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn thousands_of_fake_catalogs_cost_work_in_proportion_to_the_file() {
    // No cross-reference data: the counter reconstructs by scanning and finds 4,096 catalogs, each over a
    // tree of 10,000 objects that are not pages. Walking every candidate is 40 million object loads; the
    // counter tries a bounded number of candidates, so a budget of a few times the file's size is enough
    // to conclude the file is damaged.
    let pdf = hostile::fake_catalogs(4096, 10_000, 1024 * 1024);
    let len = pdf.len() as u64;
    match count_pages_limited(Cursor::new(&pdf), &limits(0, 8)) {
        Err(PdfError::Damaged(_)) => {}
        other => panic!("{other:?} (file of {len} bytes)"),
    }
    assert!(matches!(count_pages(Cursor::new(&pdf)), Err(PdfError::Damaged(_))));
}

#[test]
fn bytes_the_scan_skips_are_work_too() {
    // 8 MiB of comments before the objects: a reconstruction scan reads them all, which a budget of 1 MiB
    // does not allow.
    let pdf = hostile::fake_catalogs(1, 10, 8 * 1024 * 1024);
    match count_pages_limited(Cursor::new(&pdf), &limits(MIB, 0)) {
        Err(PdfError::TooComplex(Limit::Work)) => {}
        other => panic!("{other:?}"),
    }
    // With the default budget (a multiple of the file's size) the real catalog is found.
    let mut honest = PdfBuilder::new();
    honest.raw(&vec![b'%'; 8 * 1024 * 1024]).raw(b"\n");
    honest.obj(1, "<< /Type /Catalog /Pages 2 0 R >>").obj(2, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
    honest.obj(3, "<< /Type /Page >>");
    assert_eq!(count_pages(Cursor::new(honest.finish_without_xref())).unwrap(), 1);
}

#[test]
fn the_time_limit_is_a_backstop() {
    let pdf = hostile::lying_count(3, 3);
    let limits = Limits { time: Duration::ZERO, ..Limits::default() };
    match count_pages_limited(Cursor::new(&pdf), &limits) {
        Err(e @ PdfError::TooComplex(Limit::Time)) => {
            assert_eq!(e.to_string(), "counting the PDF's pages exceeds the time limit")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count_pages(Cursor::new(&pdf)).unwrap(), 3);
}

#[test]
fn decoded_cross_reference_rows_kept_are_capped() {
    // Two sections of two million rows each (16 MB decoded apiece): the catalog is only in the older one,
    // so both must be decoded, and together they exceed the memory kept for rows.
    let mut b = PdfBuilder::new();
    b.obj(1, "<< /Type /Catalog /Pages 2 0 R >>").obj(2, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
    b.obj(3, "<< /Type /Page >>");
    let first = b.finish_xref_stream(2_000_000 - 1, 1, XrefRows::Dense(2_000_000), None);
    let prev = last_xref(&first);
    let mut update = PdfBuilder::update(first);
    update.obj(4, "<< /Producer (update) >>");
    let pdf = update.finish_xref_stream(1_999_998, 1, XrefRows::Dense(2_000_000), prev);
    match count_pages(Cursor::new(&pdf)) {
        Err(e @ PdfError::TooComplex(Limit::Memory)) => {
            assert_eq!(e.to_string(), "counting the PDF's pages exceeds the memory limit")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn page_limit_bypasses_are_refused() {
    assert!(matches!(count_pages(Cursor::new(hostile::repeated_kid(500))), Err(PdfError::Inconsistent(_))));
    assert!(matches!(count_pages(Cursor::new(hostile::lying_count(300, 1))), Err(PdfError::Inconsistent(_))));
    assert_eq!(count_pages(Cursor::new(hostile::lying_count(300, 300))).unwrap(), 300);
}
