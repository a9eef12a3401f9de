//! Property tests of the page counter: generated PDFs whose true page count is known by construction
//! (random page trees, pages with broken content, classic tables or cross-reference streams, objects in
//! object streams, incremental updates, a `startxref` that points nowhere), and files that must be refused
//! (a page listed twice, a root `/Count` that is not the tree's). A deterministic sample of the consistent
//! files is rendered by Ghostscript, whose page count must agree. And the hostile side: the same files and the
//! crafted hostile samples, mutated as a fuzzer would, and arbitrary bytes, are counted or refused with a
//! typed error, never a panic, within the counter's work budget.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test with its message.

use std::io::Cursor;

use faxbot_documents::pdf::{PdfError, count_pages};
use faxbot_documents::samples::{PdfBuilder, XrefRows, last_xref};
use proptest::prelude::*;

mod mutate;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

/// A page tree node as generated.
#[derive(Debug, Clone)]
enum Node {
    /// A page; `broken` pages have garbage content streams or contents that do not exist.
    Page {
        broken: bool,
    },
    Pages(Vec<Node>),
}

impl Node {
    fn pages(&self) -> u32 {
        match self {
            Node::Page { .. } => 1,
            Node::Pages(kids) => kids.iter().map(Node::pages).sum(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Xref {
    Classic,
    /// A cross-reference stream; with `objstm`, tree nodes go into object streams (each by a coin toss).
    Stream {
        objstm: bool,
    },
}

/// One generated file.
#[derive(Debug, Clone)]
struct Case {
    root: Vec<Node>,
    xref: Xref,
    /// Coin tosses for which nodes live in object streams.
    in_objstm: Vec<bool>,
    /// Pages an incremental update appends to the root.
    update: Option<u32>,
    /// The last `startxref` points at nothing: the counter must reconstruct.
    break_startxref: bool,
    /// A page is listed a second time in its parent's `/Kids`.
    duplicate: bool,
    /// The root declares this much more than its pages.
    count_error: i64,
}

impl Case {
    fn expected(&self) -> Result<u32, &'static str> {
        if self.duplicate || self.count_error != 0 {
            return Err("inconsistent");
        }
        Ok(Node::Pages(self.root.clone()).pages() + self.update.unwrap_or(0))
    }
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = any::<bool>().prop_map(|b| Node::Page { broken: b });
    leaf.prop_recursive(4, 64, 6, |inner| prop::collection::vec(inner, 1..6).prop_map(Node::Pages))
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(node(), 1..6),
        prop_oneof![Just(Xref::Classic), Just(Xref::Stream { objstm: false }), Just(Xref::Stream { objstm: true })],
        prop::collection::vec(any::<bool>(), 128),
        prop::option::of(1u32..4),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.1),
        prop_oneof![8 => Just(0i64), 1 => Just(-1i64), 1 => Just(5i64)],
    )
        .prop_map(|(root, xref, in_objstm, update, break_startxref, duplicate, count_error)| Case {
            root,
            xref,
            in_objstm,
            update,
            break_startxref,
            duplicate,
            count_error,
        })
}

/// Writes the file of `case`.
fn build(case: &Case) -> Vec<u8> {
    // Object numbers: 1 catalog, 2 root Pages node, then the rest breadth first; content streams after.
    struct Flat {
        body: String,
        stream: Option<Vec<u8>>,
    }
    let mut objects: Vec<(u32, Flat)> = Vec::new();
    let mut next = 3u32;
    let mut contents: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut next_content = 10_000u32;
    let mut queue: std::collections::VecDeque<(u32, u32, Vec<Node>)> = std::collections::VecDeque::new();
    let mut first_page: Option<u32> = None;
    let mut root_refs = Vec::new();
    let mut root_count = 0i64;
    queue.push_back((2, 0, case.root.clone()));
    while let Some((num, parent, kids)) = queue.pop_front() {
        let mut refs = Vec::new();
        for kid in &kids {
            let kid_num = next;
            next += 1;
            refs.push(format!("{kid_num} 0 R"));
            match kid {
                Node::Page { broken } => {
                    first_page.get_or_insert(kid_num);
                    let contents_ref = if *broken {
                        // Contents that do not exist, or a stream of garbage: renderers draw a blank page.
                        if kid_num.is_multiple_of(2) {
                            "/Contents 99999 0 R".to_string()
                        } else {
                            contents.push((next_content, b"q 1 0 0 RG ( unbalanced [ << BT Tj".to_vec()));
                            next_content += 1;
                            format!("/Contents {} 0 R", next_content - 1)
                        }
                    } else {
                        contents.push((next_content, b"0 0 m 10 10 l S".to_vec()));
                        next_content += 1;
                        format!("/Contents {} 0 R", next_content - 1)
                    };
                    objects.push((
                        kid_num,
                        Flat {
                            body: format!("<< /Type /Page /Parent {num} 0 R /MediaBox [0 0 612 792] {contents_ref} >>"),
                            stream: None,
                        },
                    ));
                }
                Node::Pages(grandkids) => queue.push_back((kid_num, num, grandkids.clone())),
            }
        }
        let count = i64::from(Node::Pages(kids.clone()).pages());
        if num == 2 {
            // Written once every page has its number (a duplicate may name a page deep in the tree).
            root_refs = refs;
            root_count = count;
            continue;
        }
        objects.push((
            num,
            Flat {
                body: format!("<< /Type /Pages /Kids [{}] /Count {count} /Parent {parent} 0 R >>", refs.join(" ")),
                stream: None,
            },
        ));
    }
    if case.duplicate
        && let Some(page) = first_page
    {
        root_refs.push(format!("{page} 0 R"));
    }
    let root_count = root_count + case.count_error + i64::from(case.duplicate);
    objects.push((
        2,
        Flat { body: format!("<< /Type /Pages /Kids [{}] /Count {root_count} >>", root_refs.join(" ")), stream: None },
    ));
    for (num, data) in contents {
        objects.push((num, Flat { body: String::new(), stream: Some(data) }));
    }
    objects.sort_by_key(|o| o.0);

    let mut b = PdfBuilder::new();
    b.obj(1, "<< /Type /Catalog /Pages 2 0 R >>");
    let mut packed = Vec::new();
    for (i, (num, flat)) in objects.iter().enumerate() {
        match &flat.stream {
            Some(data) => {
                b.stream(*num, "", data, i.is_multiple_of(2));
            }
            None if case.xref == Xref::Stream { objstm: true } && case.in_objstm[i % case.in_objstm.len()] => {
                packed.push((*num, flat.body.clone()));
            }
            None => {
                b.obj(*num, &flat.body);
            }
        }
    }
    // Two object streams, so that a level of the tree spans both.
    let half = packed.len() / 2;
    if !packed[..half].is_empty() {
        b.object_stream(20_000, &packed[..half], 0);
    }
    if !packed[half..].is_empty() {
        b.object_stream(20_001, &packed[half..], 0);
    }
    let stream_xref = matches!(case.xref, Xref::Stream { .. });
    let mut bytes =
        if stream_xref { b.finish_xref_stream(30_000, 1, XrefRows::Dense(0), None) } else { b.finish_classic(1, None) };

    if let Some(extra) = case.update {
        // The update rewrites the root with `extra` more pages appended.
        let prev = last_xref(&bytes);
        let root_body = objects.iter().find(|o| o.0 == 2).map(|o| o.1.body.clone()).unwrap();
        let mut u = PdfBuilder::update(bytes);
        let mut new_refs = Vec::new();
        for k in 0..extra {
            let num = 40_000 + k;
            u.obj(num, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>");
            new_refs.push(format!(" {num} 0 R"));
        }
        let kids_end = root_body.find(']').unwrap();
        let count_at = root_body.find("/Count ").unwrap() + "/Count ".len();
        let count_end = count_at + root_body[count_at..].find(|c: char| !c.is_ascii_digit() && c != '-').unwrap();
        let old_count: i64 = root_body[count_at..count_end].parse().unwrap();
        let new_body = format!(
            "{}{}{}{}{}",
            &root_body[..kids_end],
            new_refs.concat(),
            &root_body[kids_end..count_at],
            old_count + i64::from(extra),
            &root_body[count_end..]
        );
        u.obj(2, &new_body);
        bytes = if stream_xref {
            u.finish_xref_stream(30_001, 1, XrefRows::Changed, prev)
        } else {
            u.finish_classic(1, prev)
        };
    }
    if case.break_startxref {
        let at = bytes.windows(9).rposition(|w| w == b"startxref").unwrap();
        bytes.truncate(at);
        bytes.extend_from_slice(b"startxref\n17\n%%EOF\n");
    }
    bytes
}

fn outcome(bytes: &[u8]) -> Result<u32, &'static str> {
    match count_pages(Cursor::new(bytes)) {
        Ok(n) => Ok(n),
        Err(PdfError::Inconsistent(_)) => Err("inconsistent"),
        Err(e) => panic!("unexpected {e:?}"),
    }
}

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    #[test]
    fn the_counter_finds_the_pages_that_were_written(case in case()) {
        let bytes = build(&case);
        prop_assert_eq!(outcome(&bytes), case.expected(), "{:?}", case);
    }
}

/// Pieces of PDF syntax worth inserting into a file.
const PDF_TOKENS: &[&[u8]] = &[
    b"obj",
    b"endobj",
    b"stream\n",
    b"endstream",
    b"xref\n",
    b"trailer",
    b"startxref\n",
    b"%%EOF",
    b"/Type /Pages",
    b"/Kids [",
    b"]",
    b"/Count 99999999",
    b"<<",
    b">>",
    b" 0 R",
    b"/ObjStm",
    b"/XRef",
    b"/Filter /FlateDecode",
    b"/Length 999999",
    b"/Prev 0",
    b"(",
    b"\\",
    b"99999999999999999999",
];

/// Cases per hostile property (`FAXBOT_PROPTEST_CASES` for a longer hunt).
fn cases(default: u32) -> u32 {
    std::env::var("FAXBOT_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Headers for arbitrary bytes: with one, the counter reads on past the sniffing.
const PDF_HEADS: &[&[u8]] = &[b"%PDF-1.7\n", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", b""];

/// A file to mutate: a generated one, or one of the crafted hostile samples.
fn seed() -> impl Strategy<Value = Vec<u8>> {
    use faxbot_documents::samples::hostile;
    prop_oneof![
        // (The deep-tree samples are megabytes each: too slow to mutate a thousand times in a debug build.)
        4 => case().prop_map(|c| build(&c)),
        1 => Just(hostile::fake_catalogs(8, 4, 64)),
        1 => Just(hostile::repeated_kid(20)),
        1 => Just(hostile::lying_count(3, 7)),
    ]
}

proptest! {
    // Each case is one count; the budget keeps every one bounded, so the number of cases bounds the run.
    #![proptest_config(Config { cases: cases(512), failure_persistence: None, ..Config::default() })]

    #[test]
    fn mutated_files_are_counted_or_refused(
        bytes in seed(),
        mutations in prop::collection::vec(mutate::mutation(PDF_TOKENS), 1..6),
    ) {
        let mutated = mutate::apply(bytes, &mutations);
        if let Ok(n) = count_pages(Cursor::new(&mutated)) {
            prop_assert!(n <= faxbot_documents::pdf::MAX_PAGES + 1, "{n} pages");
        }
    }

    #[test]
    fn arbitrary_bytes_are_counted_or_refused(
        head in prop::sample::select(PDF_HEADS),
        body in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let bytes = [head, &body].concat();
        let _ = count_pages(Cursor::new(&bytes));
    }
}

/// Pages Ghostscript renders from `bytes` (the bbox device prints one bounding box per page).
fn ghostscript_pages(bytes: &[u8]) -> Option<u32> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.pdf");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("gs")
        .args(["-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=bbox"])
        .arg(&path)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    Some(text.lines().filter(|l| l.starts_with("%%BoundingBox")).count() as u32)
}

#[test]
fn ghostscript_renders_as_many_pages_as_the_counter_counts() {
    if std::process::Command::new("gs").arg("--version").output().is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: Ghostscript (gs) is required");
        eprintln!("SKIPPING: Ghostscript (gs) is not installed");
        return;
    }
    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let mut compared = 0;
    let mut kinds = std::collections::BTreeSet::new();
    while compared < 40 {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        let Ok(expected) = case.expected() else { continue };
        let bytes = build(&case);
        assert_eq!(outcome(&bytes), Ok(expected), "{case:?}");
        assert_eq!(ghostscript_pages(&bytes), Some(expected), "Ghostscript disagrees on {case:?}");
        kinds.insert(format!("{:?} update={} broken={}", case.xref, case.update.is_some(), case.break_startxref));
        compared += 1;
    }
    eprintln!("Ghostscript agreed on {compared} files: {kinds:?}");
    assert!(kinds.len() >= 6, "the sample covers too few kinds of file: {kinds:?}");
}
