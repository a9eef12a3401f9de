//! Object loading and the page tree walk.
//!
//! Objects are loaded in batches (one batch per level of the page tree) so
//! that each cross-reference stream and each object stream is decoded once
//! per level rather than once per object. Page tree nodes are reduced to a
//! [`NodeInfo`] while they are parsed, so page dictionaries are never held in
//! memory.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{Read, Seek};

use super::filters::StreamSpec;
use super::lexer::{Dict, NodeInfo, NodeKind, Obj, Parser, Tok, damaged, next_token};
use super::scan::ScanIndex;
use super::source::{DecodedSource, FileWindow};
use super::xref::{Loc, XrefChain};
use super::{MAX_PAGES, PdfError};

/// Maximum depth of the page tree.
const MAX_TREE_DEPTH: usize = 64;
/// Maximum number of page tree nodes visited. A valid tree with at most
/// `MAX_PAGES` pages has far fewer nodes than this.
const MAX_NODES: usize = 2 * MAX_PAGES as usize + 1024;
/// Maximum number of objects in one object stream.
const MAX_OBJSTM_OBJECTS: i64 = 1_000_000;
/// Catalog candidates tried, best first. A damaged file has one or two (an incremental update's and the
/// original); a file with thousands is made to make us walk thousands of trees.
const MAX_ROOT_CANDIDATES: usize = 16;

/// How objects are located: through the cross-reference data, or through
/// the table reconstructed by scanning.
pub(crate) enum Index {
    Xref(XrefChain),
    Scan(ScanIndex),
}

impl Index {
    fn locate<R: Read + Seek>(
        &self,
        file: &mut FileWindow<R>,
        needed: &BTreeSet<u32>,
    ) -> Result<std::collections::HashMap<u32, Loc>, PdfError> {
        match self {
            Index::Xref(x) => x.locate(file, needed),
            Index::Scan(s) => Ok(s.locate(needed)),
        }
    }

    /// Candidate catalog object numbers, best first.
    fn roots(&self) -> Vec<u32> {
        match self {
            Index::Xref(x) => vec![x.root],
            Index::Scan(s) => s.roots.clone(),
        }
    }
}

/// What to produce for each loaded object.
#[derive(Clone, Copy)]
pub(crate) enum Want {
    /// The full (budgeted) object.
    Obj,
    /// A page tree node summary, keeping at most `MAX_PAGES + 1` kids.
    Node,
}

/// A loaded object, in the form asked for by [`Want`].
pub(crate) enum Loaded {
    Obj(Obj),
    /// `None` when the object is not a dictionary.
    Node(Option<NodeInfo>),
}

/// Loads the objects `nums`, calling `sink` for each one found. Objects
/// that do not exist are skipped (references to them mean null).
pub(crate) fn load_many<R: Read + Seek>(
    file: &mut FileWindow<R>,
    index: &Index,
    nums: &[u32],
    want: Want,
    sink: &mut dyn FnMut(u32, Loaded) -> Result<(), PdfError>,
) -> Result<(), PdfError> {
    let needed: BTreeSet<u32> = nums.iter().copied().collect();
    let locs = index.locate(file, &needed)?;
    let mut direct = Vec::new();
    let mut by_stream: BTreeMap<u32, Vec<(u32, u32)>> = BTreeMap::new();
    for (&num, &loc) in &locs {
        match loc {
            Loc::Offset(offset) => direct.push((offset, num)),
            Loc::InStream { stream, index } => {
                by_stream.entry(stream).or_default().push((index, num));
            }
        }
    }
    drop(locs);
    // In file order, so that neighbouring objects share reads.
    direct.sort_unstable();
    for (offset, num) in direct {
        let loaded = load_direct(file, offset, num, want)?;
        sink(num, loaded)?;
    }
    if by_stream.is_empty() {
        return Ok(());
    }
    let stream_nums: BTreeSet<u32> = by_stream.keys().copied().collect();
    let stream_locs = index.locate(file, &stream_nums)?;
    for (stream, mut members) in by_stream {
        let Some(&Loc::Offset(offset)) = stream_locs.get(&stream) else {
            // Missing object stream: its objects are missing too.
            continue;
        };
        members.sort_unstable();
        load_from_stream(file, offset, stream, &members, want, sink)?;
    }
    Ok(())
}

/// Loads one object as a full object.
pub(crate) fn load_obj<R: Read + Seek>(
    file: &mut FileWindow<R>,
    index: &Index,
    num: u32,
) -> Result<Option<Obj>, PdfError> {
    let mut result = None;
    load_many(file, index, &[num], Want::Obj, &mut |_, loaded| {
        if let Loaded::Obj(obj) = loaded {
            result = Some(obj);
        }
        Ok(())
    })?;
    Ok(result)
}

fn load_direct<R: Read + Seek>(
    file: &mut FileWindow<R>,
    offset: u64,
    num: u32,
    want: Want,
) -> Result<Loaded, PdfError> {
    file.seek_to(offset);
    let mut p = Parser::new(&mut *file);
    if p.object_header()? != num {
        return Err(damaged("cross-reference offset does not point at the object"));
    }
    Ok(match want {
        Want::Obj => Loaded::Obj(p.parse_value()?),
        Want::Node => Loaded::Node(p.parse_node(MAX_PAGES as usize + 1)?),
    })
}

/// Reads the dictionary of object stream `stream` at `offset` and returns
/// `(decoding spec, /N, /First)`.
pub(crate) fn object_stream_header<R: Read + Seek>(
    file: &mut FileWindow<R>,
    offset: u64,
    stream: u32,
) -> Result<(StreamSpec, u32, u64), PdfError> {
    file.seek_to(offset);
    let mut p = Parser::new(&mut *file);
    if p.object_header()? != stream {
        return Err(damaged("cross-reference offset does not point at the object"));
    }
    let Obj::Dict(dict) = p.parse_value()? else {
        return Err(damaged("object stream is not a stream"));
    };
    let data = p.stream_start()?.ok_or_else(|| damaged("object stream is not a stream"))?;
    stream_params(&dict, data)
}

fn stream_params(dict: &Dict, data: u64) -> Result<(StreamSpec, u32, u64), PdfError> {
    let n = dict
        .get_int(b"N")
        .filter(|n| (0..=MAX_OBJSTM_OBJECTS).contains(n))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| damaged("bad /N in object stream"))?;
    let first = dict
        .get_int(b"First")
        .and_then(|f| u64::try_from(f).ok())
        .ok_or_else(|| damaged("bad /First in object stream"))?;
    Ok((StreamSpec::from_dict(dict, data)?, n, first))
}

/// Reads the `(object number, offset)` pairs at the start of an object
/// stream, calling `visit(index, number, offset)` for indexes `0..=last`.
/// The pairs must lie within the first `first` decoded bytes (the header),
/// which also bounds the work for a bogus `/N`.
pub(crate) fn read_pairs<S: super::source::Source>(
    src: &mut S,
    last: u32,
    first: u64,
    visit: &mut dyn FnMut(u32, u32, u64),
) -> Result<(), PdfError> {
    for i in 0..=last {
        if src.pos() >= first {
            return Err(damaged("bad object stream header"));
        }
        let (Tok::Int(num), Tok::Int(off)) = (next_token(src)?, next_token(src)?) else {
            return Err(damaged("bad object stream header"));
        };
        let (Ok(num), Ok(off)) = (u32::try_from(num), u64::try_from(off)) else {
            return Err(damaged("bad object stream header"));
        };
        visit(i, num, off);
    }
    Ok(())
}

fn load_from_stream<R: Read + Seek>(
    file: &mut FileWindow<R>,
    offset: u64,
    stream: u32,
    members: &[(u32, u32)],
    want: Want,
    sink: &mut dyn FnMut(u32, Loaded) -> Result<(), PdfError>,
) -> Result<(), PdfError> {
    let (spec, n, first) = object_stream_header(file, offset, stream)?;
    let members: Vec<(u32, u32)> = members.iter().copied().filter(|m| m.0 < n).collect();
    let Some(&(last, _)) = members.last() else {
        return Ok(());
    };
    let work = file.work();
    let mut src = DecodedSource::new(spec.open(file), work);
    let mut wanted = Vec::with_capacity(members.len());
    let mut it = members.iter().peekable();
    read_pairs(&mut src, last, first, &mut |i, num, off| {
        while let Some(&&(index, expected)) = it.peek() {
            if index > i {
                break;
            }
            it.next();
            // An index that names a different object means the entry is
            // stale; treat the object as missing.
            if index == i && expected == num {
                wanted.push((first.saturating_add(off), num));
            }
        }
    })?;
    wanted.sort_unstable();
    for (pos, num) in wanted {
        if !src.skip_to(pos)? {
            return Err(damaged("bad object offset in object stream"));
        }
        let mut p = Parser::new(&mut src);
        let loaded = match want {
            Want::Obj => Loaded::Obj(p.parse_direct_value()?),
            Want::Node => Loaded::Node(p.parse_node(MAX_PAGES as usize + 1)?),
        };
        drop(p);
        sink(num, loaded)?;
    }
    Ok(())
}

/// Counts pages by walking the tree from the catalog, trying each root
/// candidate of the index.
pub(crate) fn count_with<R: Read + Seek>(file: &mut FileWindow<R>, index: &Index) -> Result<u32, PdfError> {
    let mut last_err = damaged("no document catalog");
    for root in index.roots().into_iter().take(MAX_ROOT_CANDIDATES) {
        let catalog = match load_obj(file, index, root) {
            Ok(Some(Obj::Dict(d))) => d,
            Ok(_) => continue,
            Err(e @ PdfError::Damaged(_)) => {
                last_err = e;
                continue;
            }
            Err(e) => return Err(e),
        };
        let Some(pages) = catalog.get(b"Pages").and_then(Obj::as_ref) else {
            last_err = damaged("catalog has no /Pages");
            continue;
        };
        match walk(file, index, pages) {
            Ok(n) => return Ok(n),
            Err(e @ PdfError::Damaged(_)) => last_err = e,
            Err(e) => return Err(e),
        }
    }
    Err(last_err)
}

/// Breadth-first walk of the page tree rooted at object `root`.
fn walk<R: Read + Seek>(file: &mut FileWindow<R>, index: &Index, root: u32) -> Result<u32, PdfError> {
    let mut visited = HashSet::from([root]);
    let mut root_count = None;
    let mut level = vec![root];
    let mut pages: u32 = 0;
    let mut depth = 0;
    while !level.is_empty() {
        depth += 1;
        if depth > MAX_TREE_DEPTH {
            return Err(damaged("page tree is too deep"));
        }
        let mut next = Vec::new();
        load_many(file, index, &level, Want::Node, &mut |num, loaded| {
            let Loaded::Node(Some(info)) = loaded else {
                return Ok(());
            };
            if num == root {
                root_count = info.count;
            }
            if info.kids_overflow {
                return Err(PdfError::TooManyPages(MAX_PAGES));
            }
            let leaf = match info.kind {
                NodeKind::Page => true,
                NodeKind::Pages => false,
                NodeKind::Other => info.kids.is_none(),
            };
            if leaf {
                pages += 1;
                if pages > MAX_PAGES {
                    return Err(PdfError::TooManyPages(MAX_PAGES));
                }
            } else if let Some(kids) = info.kids {
                for kid in kids {
                    // A node reached twice is a cycle or a page listed twice: renderers follow each
                    // reference (Ghostscript renders a page listed 500 times 500 times), so the count
                    // would not be the number of pages sent.
                    if !visited.insert(kid) {
                        return Err(PdfError::Inconsistent(format!(
                            "object {kid} appears more than once in the page tree"
                        )));
                    }
                    next.push(kid);
                }
                if visited.len() > MAX_NODES {
                    return Err(PdfError::TooManyPages(MAX_PAGES));
                }
            }
            Ok(())
        })?;
        level = next;
    }
    if pages == 0 {
        return Err(damaged("page tree has no pages"));
    }
    if let Some(count) = root_count
        && count != i64::from(pages)
    {
        return Err(PdfError::Inconsistent(format!("the page tree has {pages} pages but declares /Count {count}")));
    }
    Ok(pages)
}
