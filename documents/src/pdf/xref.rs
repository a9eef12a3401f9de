//! Cross-reference data: classic `xref` tables, cross-reference streams,
//! hybrid files and incremental updates.
//!
//! Nothing is loaded eagerly. A classic table is kept as a list of
//! subsection positions and individual 20-byte entries are read on demand; a
//! cross-reference stream is decoded in bulk the first time a lookup needs
//! it and its raw rows are kept for later lookups (at most
//! [`MAX_XREF_ROWS_BYTES`] for all streams of a file): decoding it again for
//! each batch, one row per read, is what let an 18 KB file cost seconds.

use std::cell::{Cell, OnceCell};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{Read, Seek};

use super::filters::{MAX_DECODED, StreamSpec};
use super::lexer::{Dict, Kw, Obj, Parser, Tok, damaged, skip_whitespace};
use super::source::{FileWindow, Source, classify_decode_error};
use super::{Limit, MAX_XREF_ROWS_BYTES, PdfError};

/// Where an object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    /// Byte offset of the `num gen obj` header.
    Offset(u64),
    /// Inside object stream `stream`, at position `index`.
    InStream { stream: u32, index: u32 },
}

/// Upper bound on cross-reference sections followed through `/Prev`.
const MAX_SECTIONS: usize = 1024;
/// Upper bound on subsections in all classic tables together (each lookup
/// checks every subsection of a table).
const MAX_SUBSECTIONS: usize = 4096;
/// How far from the end of the file `startxref` is searched for.
const TAIL: u64 = 4096;

struct Subsection {
    start: u32,
    count: u32,
    /// Offset of the first entry.
    offset: u64,
    /// Entry width: 20 per the specification, 19 or 21 in sloppy files.
    width: u64,
}

struct XrefStream {
    widths: [usize; 3],
    /// `(first object, count)` pairs from `/Index`.
    index: Vec<(u32, u32)>,
    spec: StreamSpec,
    /// The decoded rows, once a lookup has needed them.
    rows: OnceCell<Vec<u8>>,
}

enum Section {
    Table(Vec<Subsection>),
    Stream(XrefStream),
}

/// The trailer entries that matter for page counting.
#[derive(Default)]
struct TrailerInfo {
    root: Option<u32>,
    encrypt: bool,
    prev: Option<u64>,
    xref_stm: Option<u64>,
}

impl TrailerInfo {
    fn from_dict(d: &Dict) -> Self {
        let offset = |key: &[u8]| d.get_int(key).and_then(|v| u64::try_from(v).ok());
        Self {
            root: d.get(b"Root").and_then(Obj::as_ref),
            encrypt: d.get(b"Encrypt").is_some_and(|e| *e != Obj::Null),
            prev: offset(b"Prev"),
            xref_stm: offset(b"XRefStm"),
        }
    }
}

/// The chain of cross-reference sections, newest first.
pub(crate) struct XrefChain {
    sections: Vec<Section>,
    /// Object number of the catalog.
    pub(crate) root: u32,
    /// Bytes of decoded rows kept (see [`MAX_XREF_ROWS_BYTES`]).
    kept: Cell<u64>,
}

impl XrefChain {
    /// Follows `startxref` and the `/Prev` chain. Fails with `Damaged` when
    /// anything does not parse (the caller then reconstructs by scanning)
    /// and with `Encrypted` when a trailer has `/Encrypt`.
    pub(crate) fn load<R: Read + Seek>(file: &mut FileWindow<R>) -> Result<Self, PdfError> {
        let start = find_startxref(file)?;
        let mut sections = Vec::new();
        let mut root = None;
        let mut encrypt = false;
        let mut seen = HashSet::new();
        let mut total_subsections = 0;
        let mut next = Some(start);
        while let Some(offset) = next {
            if !seen.insert(offset) || sections.len() >= MAX_SECTIONS {
                break;
            }
            let (section, info) = parse_section(file, offset)?;
            if let Section::Table(subs) = &section {
                total_subsections += subs.len();
                if total_subsections > MAX_SUBSECTIONS {
                    return Err(damaged("too many xref subsections"));
                }
            }
            sections.push(section);
            encrypt |= info.encrypt;
            root = root.or(info.root);
            if let Some(stm) = info.xref_stm
                && seen.insert(stm)
            {
                // Hybrid file: the stream holds the objects the classic
                // table does not; it is consulted right after the table.
                let (section, stm_info) = parse_section(file, stm)?;
                if !matches!(section, Section::Stream(_)) {
                    return Err(damaged("/XRefStm does not point at a cross-reference stream"));
                }
                sections.push(section);
                encrypt |= stm_info.encrypt;
            }
            next = info.prev;
        }
        if encrypt {
            return Err(PdfError::Encrypted);
        }
        let root = root.ok_or_else(|| damaged("trailer has no /Root"))?;
        Ok(Self { sections, root, kept: Cell::new(0) })
    }

    /// Finds the newest definition of each object in `needed`. Free entries
    /// do not hide older definitions, which makes hybrid files (whose tables
    /// may list compressed objects as free) work. Objects that are not found
    /// are absent from the result.
    pub(crate) fn locate<R: Read + Seek>(
        &self,
        file: &mut FileWindow<R>,
        needed: &BTreeSet<u32>,
    ) -> Result<HashMap<u32, Loc>, PdfError> {
        let mut remaining = needed.clone();
        let mut found = HashMap::new();
        for section in &self.sections {
            if remaining.is_empty() {
                break;
            }
            match section {
                Section::Table(subs) => locate_in_table(file, subs, &mut remaining, &mut found)?,
                Section::Stream(xs) => {
                    let rows = self.rows(file, xs)?;
                    locate_in_stream(file, xs, rows, &mut remaining, &mut found)?;
                }
            }
        }
        Ok(found)
    }
}

impl XrefChain {
    /// The decoded rows of `xs`, decoding them on first use.
    fn rows<'a, R: Read + Seek>(&self, file: &mut FileWindow<R>, xs: &'a XrefStream) -> Result<&'a [u8], PdfError> {
        if let Some(rows) = xs.rows.get() {
            return Ok(rows);
        }
        let row_len = xs.widths.iter().sum::<usize>() as u64;
        let declared: u64 = xs.index.iter().map(|&(_, count)| u64::from(count) * row_len).sum();
        let want = declared.min(MAX_DECODED);
        let kept = self.kept.get().saturating_add(want);
        if kept > MAX_XREF_ROWS_BYTES {
            return Err(PdfError::TooComplex(Limit::Memory));
        }
        self.kept.set(kept);
        // Reserved at once, so that the rows are never copied while they grow: pages the decoder does not
        // fill (a declared size that is a lie) are never touched, so they cost address space, not memory.
        let mut rows = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
        xs.spec.open(file).take(want).read_to_end(&mut rows).map_err(classify_decode_error)?;
        Ok(xs.rows.get_or_init(|| rows))
    }
}

/// Reads the offset after the last `startxref` near the end of the file.
fn find_startxref<R: Read + Seek>(file: &mut FileWindow<R>) -> Result<u64, PdfError> {
    let start = file.len().saturating_sub(TAIL);
    let mut tail = vec![0u8; usize::try_from(file.len() - start).unwrap_or(0)];
    file.seek_to(start);
    let mut got = 0;
    while got < tail.len() {
        let n = file.read_into(&mut tail[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    tail.truncate(got);
    let key = b"startxref";
    let at = tail.windows(key.len()).rposition(|w| w == key).ok_or_else(|| damaged("no startxref"))?;
    file.seek_to(start + (at + key.len()) as u64);
    let mut p = Parser::new(&mut *file);
    match p.next()? {
        Tok::Int(v) if v > 0 => u64::try_from(v).map_err(|_| damaged("bad startxref")),
        _ => Err(damaged("bad startxref")),
    }
}

fn parse_section<R: Read + Seek>(file: &mut FileWindow<R>, offset: u64) -> Result<(Section, TrailerInfo), PdfError> {
    if offset >= file.len() {
        return Err(damaged("cross-reference offset out of range"));
    }
    file.seek_to(offset);
    let first = Parser::new(&mut *file).next()?;
    match first {
        Tok::Keyword(Kw::Xref) => parse_table(file),
        Tok::Int(_) => {
            file.seek_to(offset);
            parse_xref_stream(file)
        }
        _ => Err(damaged("startxref does not point at cross-reference data")),
    }
}

/// Parses a classic table; the cursor is just after the `xref` keyword.
fn parse_table<R: Read + Seek>(file: &mut FileWindow<R>) -> Result<(Section, TrailerInfo), PdfError> {
    let mut subs = Vec::new();
    loop {
        let mut p = Parser::new(&mut *file);
        match p.next()? {
            Tok::Int(start) => {
                let Tok::Int(count) = p.next()? else {
                    return Err(damaged("bad xref subsection header"));
                };
                let (Ok(start), Ok(count)) = (u32::try_from(start), u32::try_from(count)) else {
                    return Err(damaged("bad xref subsection header"));
                };
                skip_whitespace(&mut p.src)?;
                let offset = p.src.pos();
                drop(p);
                let width = if count == 0 { 20 } else { entry_width(file, offset)? };
                if subs.len() >= MAX_SUBSECTIONS {
                    return Err(damaged("too many xref subsections"));
                }
                subs.push(Subsection { start, count, offset, width });
                file.seek_to(offset + u64::from(count) * width);
            }
            Tok::Keyword(Kw::Trailer) => {
                let Obj::Dict(trailer) = p.parse_value()? else {
                    return Err(damaged("trailer is not a dictionary"));
                };
                return Ok((Section::Table(subs), TrailerInfo::from_dict(&trailer)));
            }
            _ => return Err(damaged("bad xref table")),
        }
    }
}

/// Reads one table entry: `oooooooooo ggggg n` (the EOL is not included).
fn read_entry<R: Read + Seek>(file: &mut FileWindow<R>, offset: u64) -> Result<Option<(u64, u8)>, PdfError> {
    let mut e = [0u8; 18];
    file.seek_to(offset);
    let mut got = 0;
    while got < e.len() {
        let n = file.read_into(&mut e[got..])?;
        if n == 0 {
            return Ok(None);
        }
        got += n;
    }
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if !(digits(&e[..10]) && e[10] == b' ' && digits(&e[11..16]) && e[16] == b' ') {
        return Ok(None);
    }
    if e[17] != b'n' && e[17] != b'f' {
        return Ok(None);
    }
    let value = e[..10].iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    Ok(Some((value, e[17])))
}

/// Determines the width of the entries of a subsection from its first entry.
fn entry_width<R: Read + Seek>(file: &mut FileWindow<R>, offset: u64) -> Result<u64, PdfError> {
    if read_entry(file, offset)?.is_none() {
        return Err(damaged("bad xref entry"));
    }
    let mut eol = 0u64;
    file.seek_to(offset + 18);
    while eol < 3 {
        match file.peek()? {
            Some(b' ' | b'\r' | b'\n') => {
                eol += 1;
                file.bump();
            }
            _ => break,
        }
    }
    if eol == 0 {
        return Err(damaged("bad xref entry"));
    }
    Ok(18 + eol)
}

fn locate_in_table<R: Read + Seek>(
    file: &mut FileWindow<R>,
    subs: &[Subsection],
    remaining: &mut BTreeSet<u32>,
    found: &mut HashMap<u32, Loc>,
) -> Result<(), PdfError> {
    let mut hits = Vec::new();
    let work = file.work();
    for &num in remaining.iter() {
        work.charge(subs.len() as u64)?;
        for sub in subs {
            let Some(i) = num.checked_sub(sub.start).filter(|&i| i < sub.count) else {
                continue;
            };
            let entry =
                read_entry(file, sub.offset + u64::from(i) * sub.width)?.ok_or_else(|| damaged("bad xref entry"))?;
            if let (offset, b'n') = entry
                && offset > 0
            {
                hits.push((num, Loc::Offset(offset)));
                break;
            }
        }
    }
    for (num, loc) in hits {
        remaining.remove(&num);
        found.insert(num, loc);
    }
    Ok(())
}

fn parse_xref_stream<R: Read + Seek>(file: &mut FileWindow<R>) -> Result<(Section, TrailerInfo), PdfError> {
    let mut p = Parser::new(&mut *file);
    p.object_header()?;
    let Obj::Dict(dict) = p.parse_value()? else {
        return Err(damaged("cross-reference stream is not a dictionary"));
    };
    let data = p.stream_start()?.ok_or_else(|| damaged("cross-reference stream has no data"))?;
    if !dict.has_type(b"XRef") {
        return Err(damaged("startxref does not point at an /XRef stream"));
    }
    let w: Vec<usize> = dict
        .get(b"W")
        .and_then(Obj::as_array)
        .map(|a| a.iter().map(|v| v.as_int().and_then(|i| usize::try_from(i).ok()).unwrap_or(99)).collect())
        .unwrap_or_default();
    let [w0, w1, w2] = w[..] else {
        return Err(damaged("bad /W in cross-reference stream"));
    };
    if w0 > 8 || w1 > 8 || w2 > 8 || w0 + w1 + w2 == 0 {
        return Err(damaged("bad /W in cross-reference stream"));
    }
    let size = dict
        .get_int(b"Size")
        .and_then(|s| u32::try_from(s).ok())
        .ok_or_else(|| damaged("bad /Size in cross-reference stream"))?;
    let index = match dict.get(b"Index").and_then(Obj::as_array) {
        None => vec![(0, size)],
        Some(a) => {
            if a.len() % 2 != 0 {
                return Err(damaged("bad /Index in cross-reference stream"));
            }
            a.chunks(2)
                .map(|pair| {
                    let v = |o: &Obj| o.as_int().and_then(|i| u32::try_from(i).ok());
                    match (v(&pair[0]), v(&pair[1])) {
                        (Some(s), Some(c)) => Ok((s, c)),
                        _ => Err(damaged("bad /Index in cross-reference stream")),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    let spec = StreamSpec::from_dict(&dict, data)?;
    let info = TrailerInfo::from_dict(&dict);
    Ok((Section::Stream(XrefStream { widths: [w0, w1, w2], index, spec, rows: OnceCell::new() }), info))
}

fn be_field(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

fn locate_in_stream<R: Read + Seek>(
    file: &mut FileWindow<R>,
    xs: &XrefStream,
    rows: &[u8],
    remaining: &mut BTreeSet<u32>,
    found: &mut HashMap<u32, Loc>,
) -> Result<(), PdfError> {
    let [w0, w1, w2] = xs.widths;
    let row_len = w0 + w1 + w2;
    file.work().charge(xs.index.len() as u64)?;
    let mut first_row = 0usize;
    let mut hits = Vec::new();
    for &(start, count) in &xs.index {
        let end = u64::from(start) + u64::from(count);
        for &num in remaining.range(start..) {
            if u64::from(num) >= end {
                break;
            }
            let at = (first_row + (num - start) as usize) * row_len;
            let row = rows.get(at..at + row_len).ok_or_else(|| damaged("cross-reference stream is truncated"))?;
            let kind = if w0 == 0 { 1 } else { be_field(&row[..w0]) };
            let f2 = be_field(&row[w0..w0 + w1]);
            let f3 = be_field(&row[w0 + w1..]);
            let loc = match kind {
                1 if f2 > 0 => Loc::Offset(f2),
                2 => match (u32::try_from(f2), u32::try_from(f3)) {
                    (Ok(stream), Ok(index)) => Loc::InStream { stream, index },
                    _ => continue,
                },
                // Free entries and unknown types: keep looking in older sections.
                _ => continue,
            };
            hits.push((num, loc));
        }
        first_row = first_row.saturating_add(count as usize);
    }
    file.work().charge(hits.len() as u64)?;
    // An object listed twice in one stream: the first row wins, as when the rows are read in order.
    for (num, loc) in hits {
        if remaining.remove(&num) {
            found.insert(num, loc);
        }
    }
    Ok(())
}
