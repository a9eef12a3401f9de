//! Reconstruction of the object table by scanning, for files whose
//! cross-reference data is missing or wrong.
//!
//! The file is read sequentially in fixed-size chunks (with a small overlap,
//! so that patterns across chunk boundaries are seen). Only object number to
//! offset mappings and a handful of candidate offsets are stored.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{Read, Seek};

use super::PdfError;
use super::lexer::{Kw, Obj, Parser, Tok, is_delimiter, is_whitespace};
use super::source::{DecodedSource, FileWindow};
use super::tree::{object_stream_header, read_pairs};
use super::xref::Loc;

/// Bytes read per scan step.
const CHUNK: usize = 64 * 1024;
/// Bytes carried over between chunks; more than any pattern plus the
/// backwards context an object header needs.
const OVERLAP: usize = 64;
/// Bytes a pattern match may need to look at after its start.
const LOOKAHEAD: usize = 16;
/// Upper bound on remembered candidates of each kind (newest are kept).
const MAX_CANDIDATES: usize = 4096;

/// The reconstructed object table.
pub(crate) struct ScanIndex {
    direct: HashMap<u32, u64>,
    compressed: HashMap<u32, (u32, u32)>,
    /// Catalog candidates, best first.
    pub(crate) roots: Vec<u32>,
}

#[derive(Default)]
struct Found {
    objects: HashMap<u32, u64>,
    trailers: VecDeque<u64>,
    catalogs: VecDeque<(u32, u64)>,
    xref_streams: VecDeque<(u32, u64)>,
    object_streams: VecDeque<(u32, u64)>,
    /// The last object header seen, to attribute keywords to objects.
    last_object: Option<(u32, u64)>,
}

fn push_capped<T>(list: &mut VecDeque<T>, item: T) {
    if list.len() >= MAX_CANDIDATES {
        list.pop_front();
    }
    list.push_back(item);
}

fn is_regular(b: u8) -> bool {
    !is_whitespace(b) && !is_delimiter(b)
}

impl ScanIndex {
    pub(crate) fn build<R: Read + Seek>(file: &mut FileWindow<R>) -> Result<Self, PdfError> {
        let found = scan(file)?;
        let Found { objects, trailers, catalogs, xref_streams, object_streams, .. } = found;
        let current = |&(num, off): &(u32, u64)| objects.get(&num) == Some(&off);

        // Trailer dictionaries and cross-reference stream dictionaries, newest
        // first: they name the catalog and reveal encryption.
        let mut trailer_like: Vec<(u64, Option<u32>)> = trailers
            .iter()
            .map(|&t| (t, None))
            .chain(xref_streams.iter().filter(|x| current(x)).map(|&(n, o)| (o, Some(n))))
            .collect();
        trailer_like.sort_unstable_by_key(|t| std::cmp::Reverse(t.0));
        let mut roots = Vec::new();
        let mut encrypted = false;
        for (offset, xref_num) in trailer_like {
            file.seek_to(offset);
            let mut p = Parser::new(&mut *file);
            let ok = match xref_num {
                None => p.next()? == Tok::Keyword(Kw::Trailer),
                Some(num) => p.object_header().ok() == Some(num),
            };
            if !ok {
                continue;
            }
            let Ok(Obj::Dict(d)) = p.parse_value() else {
                continue;
            };
            if xref_num.is_some() && !d.has_type(b"XRef") {
                continue;
            }
            encrypted |= d.get(b"Encrypt").is_some_and(|e| *e != Obj::Null);
            if let Some(root) = d.get(b"Root").and_then(Obj::as_ref) {
                roots.push(root);
            }
        }
        if encrypted {
            return Err(PdfError::Encrypted);
        }
        roots.extend(catalogs.iter().rev().filter(|c| current(c)).map(|c| c.0));
        let mut seen = BTreeSet::new();
        roots.retain(|r| seen.insert(*r));

        // Objects inside object streams that have no direct definition.
        let mut compressed = HashMap::new();
        for &(stream, offset) in object_streams.iter().filter(|s| current(s)) {
            let Ok((spec, n, first)) = object_stream_header(file, offset, stream) else {
                continue;
            };
            let Some(last) = n.checked_sub(1) else {
                continue;
            };
            let work = file.work();
            let mut src = DecodedSource::new(spec.open(file), work);
            // A damaged object stream contributes the pairs read so far; running out of budget ends the count.
            let pairs = read_pairs(&mut src, last, first, &mut |i, num, _| {
                if !objects.contains_key(&num) {
                    compressed.entry(num).or_insert((stream, i));
                }
            });
            if let Err(e @ (PdfError::TooComplex(_) | PdfError::Io(_))) = pairs {
                return Err(e);
            }
        }
        Ok(Self { direct: objects, compressed, roots })
    }

    pub(crate) fn locate(&self, needed: &BTreeSet<u32>) -> HashMap<u32, Loc> {
        needed
            .iter()
            .filter_map(|&n| {
                if let Some(&off) = self.direct.get(&n) {
                    Some((n, Loc::Offset(off)))
                } else {
                    self.compressed.get(&n).map(|&(stream, index)| (n, Loc::InStream { stream, index }))
                }
            })
            .collect()
    }
}

/// Reads the whole file once, in chunks, recording object headers and
/// candidate trailers, catalogs, cross-reference and object streams.
fn scan<R: Read + Seek>(file: &mut FileWindow<R>) -> Result<Found, PdfError> {
    let mut found = Found::default();
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + OVERLAP);
    // File offset of buf[0], and of the next byte to read.
    let mut base = 0u64;
    let mut read_pos = 0u64;
    // Everything before this file offset has been examined.
    let mut checked = 0u64;
    loop {
        let keep = buf.len();
        buf.resize(keep + CHUNK, 0);
        file.seek_to(read_pos);
        let mut got = 0;
        while keep + got < buf.len() {
            let n = file.read_into(&mut buf[keep + got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(keep + got);
        read_pos += got as u64;
        let eof = read_pos >= file.len() || got == 0;
        let limit = if eof { buf.len() } else { buf.len().saturating_sub(LOOKAHEAD) };
        let from = usize::try_from(checked.saturating_sub(base)).unwrap_or(usize::MAX);
        for i in from..limit {
            examine(&buf, i, base, eof, &mut found);
        }
        checked = checked.max(base + limit as u64);
        if eof {
            break;
        }
        let drop_to = buf.len().saturating_sub(OVERLAP);
        buf.drain(..drop_to);
        base += drop_to as u64;
    }
    Ok(found)
}

/// True when `buf[i..]` starts with `word` followed by a non-regular byte
/// (or the end of the file).
fn word_at(buf: &[u8], i: usize, word: &[u8], eof: bool) -> bool {
    if !buf[i..].starts_with(word) {
        return false;
    }
    match buf.get(i + word.len()) {
        Some(&b) => !is_regular(b),
        None => eof,
    }
}

fn examine(buf: &[u8], i: usize, base: u64, eof: bool, found: &mut Found) {
    match buf[i] {
        b'o' if word_at(buf, i, b"obj", eof) => {
            if let Some((num, start)) = header_before(buf, i, base) {
                found.objects.insert(num, base + start as u64);
                found.last_object = Some((num, base + start as u64));
            }
        }
        b't' if word_at(buf, i, b"trailer", eof) && ((i == 0 && base == 0) || (i > 0 && !is_regular(buf[i - 1]))) => {
            push_capped(&mut found.trailers, base + i as u64);
        }
        b'/' => {
            let Some(obj) = found.last_object else {
                return;
            };
            if word_at(buf, i, b"/Catalog", eof) {
                push_capped(&mut found.catalogs, obj);
            } else if word_at(buf, i, b"/XRef", eof) {
                push_capped(&mut found.xref_streams, obj);
            } else if word_at(buf, i, b"/ObjStm", eof) {
                push_capped(&mut found.object_streams, obj);
            }
        }
        _ => {}
    }
}

/// Matches `num gen` (with whitespace) right before `obj` at `i`. Returns
/// the object number and the index where the header starts.
fn header_before(buf: &[u8], i: usize, base: u64) -> Option<(u32, usize)> {
    let mut j = i;
    while j > 0 && is_whitespace(buf[j - 1]) && i - j < 8 {
        j -= 1;
    }
    let gen_end = j;
    while j > 0 && buf[j - 1].is_ascii_digit() && gen_end - j < 5 {
        j -= 1;
    }
    if j == gen_end {
        return None;
    }
    let gen_start = j;
    while j > 0 && is_whitespace(buf[j - 1]) && gen_start - j < 8 {
        j -= 1;
    }
    if j == gen_start {
        return None;
    }
    let num_end = j;
    while j > 0 && buf[j - 1].is_ascii_digit() && num_end - j < 10 {
        j -= 1;
    }
    if j == num_end {
        return None;
    }
    // The number must start at a token boundary.
    let boundary = if j == 0 { base == 0 } else { !is_regular(buf[j - 1]) };
    if !boundary {
        return None;
    }
    let num = std::str::from_utf8(&buf[j..num_end]).ok()?.parse().ok()?;
    Some((num, j))
}
