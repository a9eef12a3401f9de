//! Property tests of the TIFF page walker (received faxes from the SIP plugin, and uploaded TIFFs): valid
//! files count the pages written; the same files mutated as a fuzzer would, loops among them, and arbitrary
//! bytes are walked or refused with a typed error, never a panic, within the walker's limits.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test with its message.

use std::io::Cursor;

use faxbot_documents::fax::{MAX_TIFF_PAGES, inspect_tiff, inspect_tiff_limited};
use faxbot_documents::samples;
use proptest::prelude::*;
use proptest::test_runner::Config;

mod mutate;

/// Pieces of TIFF structure worth inserting: headers, IFD entry counts, offsets that point far or back.
const TIFF_TOKENS: &[&[u8]] = &[
    b"II*\0",
    b"MM\0*",
    b"\x08\0\0\0",
    b"\xff\xff",
    b"\xff\xff\xff\xff",
    b"\0\0\0\0",
    b"\x11\x01\x04\0\x01\0\0\0",
    b"\x00\x01\x04\0\xff\xff\xff\x0f",
];

/// Headers for arbitrary bytes: with one, the walker reads on past the byte order.
const TIFF_HEADS: &[&[u8]] = &[b"II*\0\x08\0\0\0", b"MM\0*\0\0\0\x08", b""];

/// Cases per property (`FAXBOT_PROPTEST_CASES` for a longer hunt).
fn cases(default: u32) -> u32 {
    std::env::var("FAXBOT_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(Config { cases: cases(512), failure_persistence: None, ..Config::default() })]

    #[test]
    fn valid_files_count_the_pages_written(pages in 1..40u32) {
        prop_assert_eq!(inspect_tiff(Cursor::new(samples::tiff(pages, None))).unwrap().page_count(), pages);
    }

    #[test]
    fn a_last_page_pointing_back_is_refused(pages in 1..12u32, back in 0..12u32) {
        // The last directory's "next" points at one of the earlier ones: a loop.
        let page_len = 2 + 12 * 8 + 4 + 16 + 4;
        let target = 8 + (back % pages) * page_len;
        prop_assert!(inspect_tiff(Cursor::new(samples::tiff(pages, Some(target)))).is_err());
    }

    #[test]
    fn mutated_files_are_walked_or_refused(
        pages in 1..12u32,
        mutations in prop::collection::vec(mutate::mutation(TIFF_TOKENS), 1..6),
        limit in 1..20u32,
    ) {
        let bytes = mutate::apply(samples::tiff(pages, None), &mutations);
        if let Ok(summary) = inspect_tiff(Cursor::new(&bytes)) {
            prop_assert!(summary.page_count() <= MAX_TIFF_PAGES);
        }
        if let Ok(summary) = inspect_tiff_limited(Cursor::new(&bytes), limit) {
            prop_assert!(summary.page_count() <= limit, "{} pages past the limit {limit}", summary.page_count());
        }
    }

    #[test]
    fn arbitrary_bytes_are_walked_or_refused(
        head in prop::sample::select(TIFF_HEADS),
        body in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let bytes = [head, &body].concat();
        if let Ok(summary) = inspect_tiff(Cursor::new(&bytes)) {
            prop_assert!(summary.page_count() <= MAX_TIFF_PAGES);
        }
    }
}
