//! PDF writers for tests and benchmarks (feature `samples`): a small builder for files whose structure is
//! known exactly, and the hostile files of the hardening review, each made to cost a naive page counter
//! seconds of CPU or to make it miscount.
//!
//! Shared by the crate's own tests, the API server's black-box tests and the hostile-input benchmark
//! (`scripts/bench/hostile`), so that all three measure the same files.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;

/// Builds a PDF object by object, then writes its cross-reference data as a classic table or as a
/// cross-reference stream (the only way to list objects that live in object streams).
#[derive(Default)]
pub struct PdfBuilder {
    out: Vec<u8>,
    direct: BTreeMap<u32, u64>,
    compressed: BTreeMap<u32, (u32, u32)>,
}

/// The rows of a cross-reference stream.
#[derive(Debug, Clone, Copy)]
pub enum XrefRows {
    /// Every object number below the given size (at least every number used), free where absent.
    Dense(u32),
    /// Only the objects written by this builder, as an incremental update lists them (a free row in an
    /// update would delete the older definition).
    Changed,
}

/// Where an incremental update's cross-reference data points back to.
#[derive(Debug, Clone, Copy)]
pub struct Previous {
    /// Offset of the previous cross-reference section.
    pub xref: u64,
}

impl PdfBuilder {
    /// Starts a file with the `%PDF-1.7` header and a binary comment.
    pub fn new() -> Self {
        let mut b = Self::default();
        b.out.extend_from_slice(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n");
        b
    }

    /// Continues `bytes` (a complete file) with an incremental update.
    pub fn update(bytes: Vec<u8>) -> Self {
        Self { out: bytes, ..Self::default() }
    }

    /// Appends raw bytes (comments, junk, padding).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    /// Appends `num 0 obj <body> endobj`.
    pub fn obj(&mut self, num: u32, body: &str) -> &mut Self {
        self.direct.insert(num, self.out.len() as u64);
        self.out.extend_from_slice(format!("{num} 0 obj\n{body}\nendobj\n").as_bytes());
        self
    }

    /// Appends a stream object; `dict` holds the entries other than `/Length` and `/Filter`.
    pub fn stream(&mut self, num: u32, dict: &str, data: &[u8], flate: bool) -> &mut Self {
        let data = if flate { deflate(data) } else { data.to_vec() };
        let filter = if flate { " /Filter /FlateDecode" } else { "" };
        self.direct.insert(num, self.out.len() as u64);
        self.out.extend_from_slice(
            format!("{num} 0 obj\n<< {dict} /Length {}{filter} >>\nstream\n", data.len()).as_bytes(),
        );
        self.out.extend_from_slice(&data);
        self.out.extend_from_slice(b"\nendstream\nendobj\n");
        self
    }

    /// Appends object stream `num` holding `members` (`(number, body)`), with `padding` bytes of whitespace
    /// between the header and the first object (how a tiny file makes a counter decode megabytes).
    pub fn object_stream(&mut self, num: u32, members: &[(u32, String)], padding: usize) -> &mut Self {
        let mut header = String::new();
        let mut objects = vec![b' '; padding];
        for (index, (member, body)) in members.iter().enumerate() {
            header.push_str(&format!("{member} {} ", objects.len()));
            objects.extend_from_slice(body.as_bytes());
            objects.push(b'\n');
            self.compressed.insert(*member, (num, index as u32));
        }
        let mut data = header.into_bytes();
        let first = data.len();
        data.extend_from_slice(&objects);
        self.stream(num, &format!("/Type /ObjStm /N {} /First {first}", members.len()), &data, true)
    }

    /// The bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.out
    }

    /// Ends the file with a classic `xref` table and `trailer`.
    pub fn finish_classic(mut self, root: u32, prev: Option<Previous>) -> Vec<u8> {
        let xref = self.out.len();
        let size = self.direct.keys().next_back().map_or(1, |n| n + 1);
        self.out.extend_from_slice(b"xref\n");
        if prev.is_none() {
            self.out.extend_from_slice(b"0 1\n0000000000 65535 f\r\n");
        }
        for (num, offset) in &self.direct {
            self.out.extend_from_slice(format!("{num} 1\n{offset:010} 00000 n\r\n").as_bytes());
        }
        let prev = prev.map(|p| format!(" /Prev {}", p.xref)).unwrap_or_default();
        self.out.extend_from_slice(
            format!("trailer\n<< /Size {size} /Root {root} 0 R{prev} >>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
        );
        self.out
    }

    /// Ends the file with a cross-reference stream (object `num`), `/W [1 4 2]`, Flate compressed with the
    /// PNG predictor, as Acrobat writes them.
    pub fn finish_xref_stream(mut self, num: u32, root: u32, rows: XrefRows, prev: Option<Previous>) -> Vec<u8> {
        let xref = self.out.len() as u64;
        self.direct.insert(num, xref);
        let used = self.direct.keys().chain(self.compressed.keys()).max().map_or(0, |n| n + 1);
        // `(first, count)` runs of the rows written.
        let runs: Vec<(u32, u32)> = match rows {
            XrefRows::Dense(size) => vec![(0, size.max(used))],
            XrefRows::Changed => {
                let mut runs: Vec<(u32, u32)> = Vec::new();
                let mut nums: Vec<u32> = self.direct.keys().chain(self.compressed.keys()).copied().collect();
                nums.sort_unstable();
                for n in nums {
                    match runs.last_mut() {
                        Some((first, count)) if *first + *count == n => *count += 1,
                        _ => runs.push((n, 1)),
                    }
                }
                runs
            }
        };
        let mut data = Vec::new();
        for &(first, count) in &runs {
            for n in first..first + count {
                let (kind, f2, f3): (u8, u32, u16) = match (self.direct.get(&n), self.compressed.get(&n)) {
                    (Some(&offset), _) => (1, u32::try_from(offset).unwrap_or(u32::MAX), 0),
                    (None, Some(&(stream, index))) => (2, stream, u16::try_from(index).unwrap_or(u16::MAX)),
                    (None, None) => (0, 0, if n == 0 { 65535 } else { 0 }),
                };
                // PNG filter type 0 (None) for each row.
                data.push(0);
                data.push(kind);
                data.extend_from_slice(&f2.to_be_bytes());
                data.extend_from_slice(&f3.to_be_bytes());
            }
        }
        let size = runs.last().map_or(1, |&(first, count)| first + count).max(used);
        let index: Vec<String> = runs.iter().map(|(first, count)| format!("{first} {count}")).collect();
        let data = deflate(&data);
        let prev = prev.map(|p| format!(" /Prev {}", p.xref)).unwrap_or_default();
        self.out.extend_from_slice(
            format!(
                "{num} 0 obj\n<< /Type /XRef /Size {size} /Index [{}] /W [1 4 2] /Root {root} 0 R{prev} /Length {} \
                 /Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 7 >> >>\nstream\n",
                index.join(" "),
                data.len()
            )
            .as_bytes(),
        );
        self.out.extend_from_slice(&data);
        self.out.extend_from_slice(format!("\nendstream\nendobj\nstartxref\n{xref}\n%%EOF\n").as_bytes());
        self.out
    }

    /// Ends the file without any cross-reference data, trailer or `startxref`: readers must reconstruct.
    pub fn finish_without_xref(mut self) -> Vec<u8> {
        self.out.extend_from_slice(b"%%EOF\n");
        self.out
    }
}

/// Offset of the last cross-reference section of a complete file (the number after its last `startxref`).
pub fn last_xref(bytes: &[u8]) -> Option<Previous> {
    let at = bytes.windows(9).rposition(|w| w == b"startxref")?;
    let digits: String = bytes[at + 9..]
        .iter()
        .map(|&b| b as char)
        .skip_while(|c| c.is_whitespace())
        .take_while(char::is_ascii_digit)
        .collect();
    Some(Previous { xref: digits.parse().ok()? })
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Hostile files from the hardening review (issue 13), each with the cost or lie it carries.
pub mod hostile {
    use super::{PdfBuilder, XrefRows};

    /// Review item 2: a small file (about 70 KB) with a compressed cross-reference stream of two million
    /// rows (16 MB decoded) and a page tree 60 levels deep whose objects sit at the end of the stream. A
    /// counter that decodes the stream again for each level of the tree decodes it 60 times, a row per read.
    /// One page.
    pub fn xref_stream_deep_tree() -> Vec<u8> {
        const ROWS: u32 = 2_000_000;
        const DEPTH: u32 = 60;
        let mut b = PdfBuilder::new();
        let first = ROWS - DEPTH - 10;
        b.obj(first, &format!("<< /Type /Catalog /Pages {} 0 R >>", first + 1));
        for level in 1..DEPTH {
            let n = first + level;
            b.obj(n, &format!("<< /Type /Pages /Kids [{} 0 R] /Count 1 >>", n + 1));
        }
        b.obj(first + DEPTH, "<< /Type /Page /MediaBox [0 0 612 792] >>");
        b.finish_xref_stream(ROWS - 1, first, XrefRows::Dense(ROWS), None)
    }

    /// Review item 2, the object stream variant: the 60-level tree lives in one object stream whose members
    /// follow 15 MiB of whitespace, so each level of a breadth-first walk decodes 15 MiB again. One page.
    pub fn object_stream_deep_tree() -> Vec<u8> {
        const DEPTH: u32 = 60;
        let mut members = Vec::new();
        for level in 1..DEPTH {
            members.push((level + 1, format!("<< /Type /Pages /Kids [{} 0 R] /Count 1 >>", level + 2)));
        }
        members.push((DEPTH + 1, "<< /Type /Page /MediaBox [0 0 612 792] >>".to_string()));
        let mut b = PdfBuilder::new();
        b.obj(1, "<< /Type /Catalog /Pages 2 0 R >>");
        b.object_stream(100, &members, 15 * 1024 * 1024);
        b.finish_xref_stream(101, 1, XrefRows::Dense(102), None)
    }

    /// Review item 3: no cross-reference data and no `startxref`, so the counter must reconstruct by
    /// scanning; `catalogs` fake catalogs (found first, being last in the file) each point to a page tree
    /// of `kids` objects that are not pages, and `padding` bytes of comments lengthen the scan. The one real
    /// catalog, first in the file, has one page. A counter that tries every catalog walks `catalogs × kids`
    /// objects.
    pub fn fake_catalogs(catalogs: u32, kids: u32, padding: usize) -> Vec<u8> {
        let mut b = PdfBuilder::new();
        b.obj(1, "<< /Type /Catalog /Pages 2 0 R >>");
        b.obj(2, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
        b.obj(3, "<< /Type /Page /MediaBox [0 0 612 792] >>");
        let line = b"% padding that a reconstruction scan has to read past ...........................\n";
        for _ in 0..padding / line.len() {
            b.raw(line);
        }
        let fake_kids = 10;
        for k in 0..kids {
            b.obj(fake_kids + k, "0");
        }
        let list: Vec<String> = (0..kids).map(|k| format!("{} 0 R", fake_kids + k)).collect();
        let fake_tree = fake_kids + kids;
        b.obj(fake_tree, &format!("<< /Type /Pages /Kids [{}] /Count {kids} >>", list.join(" ")));
        for c in 0..catalogs {
            b.obj(fake_tree + 1 + c, &format!("<< /Type /Catalog /Pages {fake_tree} 0 R >>"));
        }
        b.finish_without_xref()
    }

    /// Review item 5: one page object listed `times` times in `/Kids` (Ghostscript renders it `times` times).
    pub fn repeated_kid(times: u32) -> Vec<u8> {
        let kids = vec!["3 0 R"; times as usize].join(" ");
        let mut b = PdfBuilder::new();
        b.obj(1, "<< /Type /Catalog /Pages 2 0 R >>");
        b.obj(2, &format!("<< /Type /Pages /Kids [{kids}] /Count {times} >>"));
        b.obj(3, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>");
        b.finish_classic(1, None)
    }

    /// Review item 5: `pages` pages under a root that declares `/Count {declared}`.
    pub fn lying_count(pages: u32, declared: u32) -> Vec<u8> {
        let kids: Vec<String> = (0..pages).map(|p| format!("{} 0 R", p + 3)).collect();
        let mut b = PdfBuilder::new();
        b.obj(1, "<< /Type /Catalog /Pages 2 0 R >>");
        b.obj(2, &format!("<< /Type /Pages /Kids [{}] /Count {declared} >>", kids.join(" ")));
        for p in 0..pages {
            b.obj(p + 3, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>");
        }
        b.finish_classic(1, None)
    }

    /// Review item 4: `n` form feeds, each a page break for a text renderer.
    pub fn form_feeds(n: usize) -> Vec<u8> {
        vec![0x0c; n]
    }
}

/// A little-endian TIFF with `pages` 1728x2156 G4 pages, each with one
/// 4-byte strip; `next_of_last` lets tests build loops (the page walker's and the property tests' seed).
pub fn tiff(pages: u32, next_of_last: Option<u32>) -> Vec<u8> {
    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    let entries: u16 = 8;
    let ifd_len = 2 + 12 * u32::from(entries) + 4;
    let page_len = ifd_len + 16 + 4; // IFD, two rationals, strip
    for p in 0..pages {
        let base = 8 + p * page_len;
        let rationals = base + ifd_len;
        let strip = rationals + 16;
        out.extend_from_slice(&entries.to_le_bytes());
        let mut entry = |tag: u16, kind: u16, value: u32| {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        };
        entry(256u16, 4u16, 1728);
        entry(257u16, 4u16, 2156);
        entry(259u16, 3u16, 4);
        entry(273u16, 4u16, strip);
        entry(279u16, 4u16, 4);
        entry(282u16, 5u16, rationals);
        entry(283u16, 5u16, rationals + 8);
        entry(296u16, 3u16, 2);
        let next = if p + 1 == pages { next_of_last.unwrap_or(0) } else { base + page_len };
        out.extend_from_slice(&next.to_le_bytes());
        for v in [204u32, 1, 196, 1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
    }
    out
}
