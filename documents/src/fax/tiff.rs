//! A bounded-memory TIFF directory walker.
//!
//! Fax images arrive from and go to tools we do not control (Ghostscript,
//! spandsp via Asterisk), so before a TIFF is passed on, its pages are
//! counted and described from the image file directories (IFDs) alone, never
//! by decoding image data. The walker reads one directory at a time (at most
//! [`MAX_ENTRIES`] entries of 12 bytes), follows the next-IFD chain while
//! remembering visited offsets (loops are refused), and checks that every
//! strip lies inside the file, so truncated files are caught here rather
//! than by a converter half way through.

use std::collections::HashSet;
use std::io::{self, Read, Seek, SeekFrom};

/// Hard cap on the number of pages (IFDs) the walker follows; matches the
/// PDF page counter's cap so both directions refuse the same documents.
pub const MAX_TIFF_PAGES: u32 = crate::pdf::MAX_PAGES;

/// Entries per directory; a fax page has about 20, so anything larger is
/// garbage and would otherwise make us allocate for it.
const MAX_ENTRIES: u16 = 512;

/// Strips per page; Ghostscript writes one, spandsp a few, so this only
/// bounds the time spent on hostile files.
const MAX_STRIPS: u32 = 65_536;

/// Why a TIFF could not be described.
///
/// Messages name only structural facts (directory numbers, tags), never
/// image content, so they are safe to log and to show to API clients.
#[derive(Debug, thiserror::Error)]
pub enum TiffError {
    /// Reading failed; the file itself may be fine.
    #[error("I/O error reading the TIFF: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with a TIFF header.
    #[error("not a TIFF file (no II*/MM* header)")]
    NotTiff,
    /// A valid TIFF we deliberately do not handle (BigTIFF, tiled pages).
    #[error("unsupported TIFF: {0}")]
    Unsupported(&'static str),
    /// The structure is broken: offsets outside the file, loops, missing tags.
    #[error("the TIFF is damaged: {0}")]
    Damaged(String),
    /// More directories than [`MAX_TIFF_PAGES`] (or the caller's limit).
    #[error("the TIFF has more than {0} pages")]
    TooManyPages(u32),
}

/// What the pipeline needs to know about one page (one IFD).
#[derive(Debug, Clone, PartialEq)]
pub struct TiffPage {
    /// `ImageWidth` in pixels; 1728 for letter/A4 fax pages.
    pub width: u32,
    /// `ImageLength` in rows; 2156 for letter at 196 lpi.
    pub height: u32,
    /// Horizontal resolution in dots per inch (converted from
    /// pixels/cm when `ResolutionUnit` is centimetres, as spandsp writes).
    pub x_dpi: f64,
    /// Vertical resolution in dots per inch.
    pub y_dpi: f64,
    /// The `Compression` tag: 3 = CCITT T.4 (G3), 4 = CCITT T.6 (G4).
    pub compression: u16,
    /// `BitsPerSample` (1 for fax).
    pub bits_per_sample: u16,
    /// `PhotometricInterpretation` when present (0 = min-is-white).
    pub photometric: Option<u16>,
    /// `FillOrder` (1 = msb-to-lsb, the default).
    pub fill_order: u16,
    /// `T4Options` for G3 pages (bit 0 = 2-D coding).
    pub t4_options: Option<u32>,
    /// Number of strips the page is stored in.
    pub strips: u32,
    /// Total compressed image bytes of the page.
    pub data_bytes: u64,
}

/// The pages of a TIFF, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TiffSummary {
    /// One entry per image file directory.
    pub pages: Vec<TiffPage>,
}

impl TiffSummary {
    /// The page count, as a fax transport reports it.
    pub fn page_count(&self) -> u32 {
        u32::try_from(self.pages.len()).unwrap_or(u32::MAX)
    }
}

/// Describes every page of a TIFF without decoding image data.
///
/// Memory is bounded by one directory plus one visited offset per page;
/// more than [`MAX_TIFF_PAGES`] directories are refused.
pub fn inspect_tiff<R: Read + Seek>(r: R) -> Result<TiffSummary, TiffError> {
    inspect_tiff_limited(r, MAX_TIFF_PAGES)
}

/// [`inspect_tiff`] that stops at `max_pages` directories, so a caller with
/// a lower limit does not walk (or remember) more than it will accept.
/// Returns [`TiffError::TooManyPages`] with that limit when exceeded.
pub fn inspect_tiff_limited<R: Read + Seek>(mut r: R, max_pages: u32) -> Result<TiffSummary, TiffError> {
    let max_pages = max_pages.min(MAX_TIFF_PAGES);
    let len = r.seek(SeekFrom::End(0))?;
    let mut file = TiffFile { r, len, big_endian: false };
    let mut head = [0u8; 8];
    if len < 8 {
        return Err(TiffError::NotTiff);
    }
    file.read_at(0, &mut head)?;
    file.big_endian = match &head[..4] {
        b"II*\0" => false,
        b"MM\0*" => true,
        b"II+\0" | b"MM\0+" => return Err(TiffError::Unsupported("BigTIFF")),
        _ => return Err(TiffError::NotTiff),
    };
    let mut next = file.u32_of(&head[4..8]);
    if next == 0 {
        return Err(damaged("no image directories (no pages)"));
    }
    let mut seen = HashSet::new();
    let mut pages = Vec::new();
    while next != 0 {
        if !seen.insert(next) {
            return Err(damaged(format!("directory chain loops back after directory {}", pages.len())));
        }
        if pages.len() >= max_pages as usize {
            return Err(TiffError::TooManyPages(max_pages));
        }
        let (page, following) = file.directory(u64::from(next), pages.len())?;
        pages.push(page);
        next = following;
    }
    Ok(TiffSummary { pages })
}

fn damaged(message: impl Into<String>) -> TiffError {
    TiffError::Damaged(message.into())
}

struct TiffFile<R> {
    r: R,
    len: u64,
    big_endian: bool,
}

/// One raw directory entry: tag, field type, value count and the 4-byte
/// value-or-offset field.
#[derive(Clone, Copy)]
struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    value: [u8; 4],
}

const TAG_IMAGE_WIDTH: u16 = 256;
const TAG_IMAGE_LENGTH: u16 = 257;
const TAG_BITS_PER_SAMPLE: u16 = 258;
const TAG_COMPRESSION: u16 = 259;
const TAG_PHOTOMETRIC: u16 = 262;
const TAG_FILL_ORDER: u16 = 266;
const TAG_STRIP_OFFSETS: u16 = 273;
const TAG_STRIP_BYTE_COUNTS: u16 = 279;
const TAG_X_RESOLUTION: u16 = 282;
const TAG_Y_RESOLUTION: u16 = 283;
const TAG_T4_OPTIONS: u16 = 292;
const TAG_RESOLUTION_UNIT: u16 = 296;
const TAG_TILE_OFFSETS: u16 = 324;

const TYPE_SHORT: u16 = 3;
const TYPE_LONG: u16 = 4;
const TYPE_RATIONAL: u16 = 5;

impl<R: Read + Seek> TiffFile<R> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), TiffError> {
        let end = offset.checked_add(buf.len() as u64).ok_or_else(|| damaged("offset overflow"))?;
        if end > self.len {
            return Err(damaged(format!("data at offset {offset} lies beyond the end of the file")));
        }
        self.r.seek(SeekFrom::Start(offset))?;
        self.r.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => damaged("the file is truncated"),
            _ => TiffError::Io(e),
        })
    }

    fn u16_of(&self, b: &[u8]) -> u16 {
        let b = [b[0], b[1]];
        if self.big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) }
    }

    fn u32_of(&self, b: &[u8]) -> u32 {
        let b = [b[0], b[1], b[2], b[3]];
        if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    }

    /// Reads the directory at `offset` (page number `index`, for messages)
    /// and returns the page and the offset of the next directory.
    fn directory(&mut self, offset: u64, index: usize) -> Result<(TiffPage, u32), TiffError> {
        let mut count = [0u8; 2];
        self.read_at(offset, &mut count)
            .map_err(|e| relabel(e, || format!("directory {index} lies outside the file")))?;
        let n = self.u16_of(&count);
        if n == 0 || n > MAX_ENTRIES {
            return Err(damaged(format!("directory {index} has {n} entries")));
        }
        let mut raw = vec![0u8; usize::from(n) * 12 + 4];
        self.read_at(offset + 2, &mut raw)
            .map_err(|e| relabel(e, || format!("directory {index} is cut off by the end of the file")))?;
        let entries: Vec<Entry> = raw[..usize::from(n) * 12]
            .chunks_exact(12)
            .map(|e| Entry {
                tag: self.u16_of(&e[0..2]),
                kind: self.u16_of(&e[2..4]),
                count: self.u32_of(&e[4..8]),
                value: [e[8], e[9], e[10], e[11]],
            })
            .collect();
        let next = self.u32_of(&raw[usize::from(n) * 12..]);
        let find = |tag: u16| entries.iter().copied().find(|e| e.tag == tag);
        let need = |tag: u16, name: &str| find(tag).ok_or_else(|| damaged(format!("page {} has no {name}", index + 1)));

        let width = self.scalar(need(TAG_IMAGE_WIDTH, "ImageWidth")?, index)?;
        let height = self.scalar(need(TAG_IMAGE_LENGTH, "ImageLength")?, index)?;
        if width == 0 || height == 0 {
            return Err(damaged(format!("page {} is {width}x{height} pixels", index + 1)));
        }
        let small = |this: &mut Self, tag: u16, default: u16| -> Result<u16, TiffError> {
            match find(tag) {
                Some(e) => u16::try_from(this.scalar(e, index)?)
                    .map_err(|_| damaged(format!("page {} has an out-of-range tag {tag}", index + 1))),
                None => Ok(default),
            }
        };
        let compression = small(self, TAG_COMPRESSION, 1)?;
        let bits_per_sample = small(self, TAG_BITS_PER_SAMPLE, 1)?;
        let fill_order = small(self, TAG_FILL_ORDER, 1)?;
        let photometric = match find(TAG_PHOTOMETRIC) {
            Some(_) => Some(small(self, TAG_PHOTOMETRIC, 0)?),
            None => None,
        };
        let t4_options = match find(TAG_T4_OPTIONS) {
            Some(e) => Some(self.scalar(e, index)?),
            None => None,
        };
        let unit = small(self, TAG_RESOLUTION_UNIT, 2)?;
        let per_inch = if unit == 3 { 2.54 } else { 1.0 };
        let x_dpi = match find(TAG_X_RESOLUTION) {
            Some(e) => self.rational(e, index)? * per_inch,
            None => 0.0,
        };
        let y_dpi = match find(TAG_Y_RESOLUTION) {
            Some(e) => self.rational(e, index)? * per_inch,
            None => 0.0,
        };

        let Some(offsets) = find(TAG_STRIP_OFFSETS) else {
            if find(TAG_TILE_OFFSETS).is_some() {
                return Err(TiffError::Unsupported("tiled pages"));
            }
            return Err(damaged(format!("page {} has no StripOffsets", index + 1)));
        };
        let counts = need(TAG_STRIP_BYTE_COUNTS, "StripByteCounts")?;
        if offsets.count != counts.count || offsets.count == 0 || offsets.count > MAX_STRIPS {
            return Err(damaged(format!(
                "page {} has {} strip offsets and {} strip sizes",
                index + 1,
                offsets.count,
                counts.count
            )));
        }
        let mut data_bytes = 0u64;
        for i in 0..offsets.count {
            let start = u64::from(self.element(offsets, i, index)?);
            let size = u64::from(self.element(counts, i, index)?);
            if start + size > self.len {
                return Err(damaged(format!("page {} image data runs past the end of the file", index + 1)));
            }
            data_bytes += size;
        }
        let page = TiffPage {
            width,
            height,
            x_dpi,
            y_dpi,
            compression,
            bits_per_sample,
            photometric,
            fill_order,
            t4_options,
            strips: offsets.count,
            data_bytes,
        };
        Ok((page, next))
    }

    /// The first value of a SHORT or LONG entry.
    fn scalar(&mut self, e: Entry, index: usize) -> Result<u32, TiffError> {
        if e.count == 0 {
            return Err(damaged(format!("page {} has an empty tag {}", index + 1, e.tag)));
        }
        self.element(e, 0, index)
    }

    /// Value `i` of a SHORT or LONG array entry, inline or at its offset.
    fn element(&mut self, e: Entry, i: u32, index: usize) -> Result<u32, TiffError> {
        let size = match e.kind {
            TYPE_SHORT => 2u64,
            TYPE_LONG => 4,
            _ => return Err(damaged(format!("page {} has tag {} of type {}", index + 1, e.tag, e.kind))),
        };
        let total = size * u64::from(e.count);
        let at = u64::from(i) * size;
        let mut buf = [0u8; 4];
        if total <= 4 {
            let at = at as usize;
            buf[..size as usize].copy_from_slice(&e.value[at..at + size as usize]);
        } else {
            let base = u64::from(self.u32_of(&e.value));
            self.read_at(base + at, &mut buf[..size as usize])?;
        }
        Ok(if size == 2 { u32::from(self.u16_of(&buf)) } else { self.u32_of(&buf) })
    }

    fn rational(&mut self, e: Entry, index: usize) -> Result<f64, TiffError> {
        if e.kind != TYPE_RATIONAL || e.count == 0 {
            return Err(damaged(format!("page {} has a resolution that is not a rational", index + 1)));
        }
        let mut buf = [0u8; 8];
        self.read_at(u64::from(self.u32_of(&e.value)), &mut buf)?;
        let (num, den) = (self.u32_of(&buf[..4]), self.u32_of(&buf[4..]));
        if den == 0 {
            return Err(damaged(format!("page {} has a resolution with a zero denominator", index + 1)));
        }
        Ok(f64::from(num) / f64::from(den))
    }
}

fn relabel(e: TiffError, message: impl FnOnce() -> String) -> TiffError {
    match e {
        TiffError::Damaged(_) => TiffError::Damaged(message()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    use crate::samples::tiff as tiny_tiff;

    #[test]
    fn reads_pages_and_geometry() {
        let summary = inspect_tiff(Cursor::new(tiny_tiff(3, None))).unwrap_or_default();
        assert_eq!(summary.page_count(), 3);
        let page = &summary.pages[2];
        assert_eq!((page.width, page.height, page.compression, page.strips, page.data_bytes), (1728, 2156, 4, 1, 4));
        assert_eq!((page.x_dpi, page.y_dpi), (204.0, 196.0));
    }

    #[test]
    fn refuses_loops_truncation_and_garbage() {
        let looped = tiny_tiff(2, Some(8));
        assert!(matches!(inspect_tiff(Cursor::new(looped)), Err(TiffError::Damaged(m)) if m.contains("loops")));
        let mut cut = tiny_tiff(2, None);
        cut.truncate(cut.len() - 10);
        assert!(matches!(inspect_tiff(Cursor::new(cut)), Err(TiffError::Damaged(_))));
        assert!(matches!(inspect_tiff(Cursor::new(b"%PDF-1.4 not a tiff".to_vec())), Err(TiffError::NotTiff)));
        assert!(matches!(inspect_tiff(Cursor::new(b"II+\0\x08\0\0\0".to_vec())), Err(TiffError::Unsupported(_))));
        let mut huge = tiny_tiff(1, None);
        huge[8] = 0xff;
        huge[9] = 0xff;
        assert!(matches!(inspect_tiff(Cursor::new(huge)), Err(TiffError::Damaged(m)) if m.contains("entries")));
    }

    #[test]
    fn stops_at_the_callers_limit() {
        let r = inspect_tiff_limited(Cursor::new(tiny_tiff(5, None)), 4);
        assert!(matches!(r, Err(TiffError::TooManyPages(4))));
        assert_eq!(inspect_tiff_limited(Cursor::new(tiny_tiff(4, None)), 4).map(|s| s.page_count()).ok(), Some(4));
    }
}
