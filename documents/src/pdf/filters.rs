//! Stream decoding: FlateDecode and the TIFF/PNG predictors, streamed with a
//! cap on the decoded size so that a small "zip bomb" cannot make us produce
//! (let alone allocate) unbounded output.

use std::io::{self, Read, Seek};

use flate2::read::ZlibDecoder;

use super::PdfError;
use super::lexer::{Dict, Obj, damaged};
use super::source::{Budgeted, FileWindow, RegionReader};

/// Upper bound on the decoded size of any stream we read.
pub(crate) const MAX_DECODED: u64 = 16 * 1024 * 1024;
/// Upper bound on one predictor row, to bound the row buffers.
const MAX_ROW: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Predictor {
    None,
    Tiff,
    Png,
}

/// Where a stream's data is and how to decode it.
#[derive(Debug, Clone)]
pub(crate) struct StreamSpec {
    data_offset: u64,
    /// Direct `/Length`, if any. Indirect lengths are not resolved: Flate
    /// data ends by itself, and the consumers know how much they need.
    length: Option<u64>,
    flate: bool,
    predictor: Predictor,
    colors: usize,
    bits: usize,
    columns: usize,
}

impl StreamSpec {
    pub(crate) fn from_dict(dict: &Dict, data_offset: u64) -> Result<Self, PdfError> {
        let length = dict.get_int(b"Length").and_then(|l| u64::try_from(l).ok());
        let filters: Vec<&[u8]> = match dict.get(b"Filter") {
            None | Some(Obj::Null) => Vec::new(),
            Some(Obj::Name(n)) => vec![&**n],
            Some(Obj::Array(a)) => a.iter().filter_map(Obj::as_name).collect(),
            Some(_) => return Err(damaged("unsupported stream filter")),
        };
        let flate = match filters.as_slice() {
            [] => false,
            [b"FlateDecode" | b"Fl"] => true,
            _ => return Err(damaged("unsupported stream filter")),
        };
        let params = match dict.get(b"DecodeParms").or_else(|| dict.get(b"DP")) {
            Some(Obj::Dict(d)) => Some(d),
            Some(Obj::Array(a)) => a.first().and_then(Obj::as_dict),
            _ => None,
        };
        let param = |key: &[u8], default: i64| params.and_then(|p| p.get_int(key)).unwrap_or(default);
        let predictor = match param(b"Predictor", 1) {
            1 => Predictor::None,
            2 => Predictor::Tiff,
            10..=15 => Predictor::Png,
            _ => return Err(damaged("unsupported predictor")),
        };
        let colors = usize::try_from(param(b"Colors", 1)).unwrap_or(0);
        let bits = usize::try_from(param(b"BitsPerComponent", 8)).unwrap_or(0);
        let columns = usize::try_from(param(b"Columns", 1)).unwrap_or(0);
        let spec = Self { data_offset, length, flate, predictor, colors, bits, columns };
        if predictor != Predictor::None {
            let row = spec.row_len().ok_or_else(|| damaged("bad predictor parameters"))?;
            if row == 0 || row > MAX_ROW {
                return Err(damaged("bad predictor parameters"));
            }
            if predictor == Predictor::Tiff && bits != 8 {
                return Err(damaged("unsupported predictor"));
            }
        }
        Ok(spec)
    }

    fn row_len(&self) -> Option<usize> {
        if !matches!(self.bits, 1 | 2 | 4 | 8 | 16) || self.colors == 0 || self.colors > 32 {
            return None;
        }
        let bits = self.columns.checked_mul(self.colors)?.checked_mul(self.bits)?;
        Some(bits.div_ceil(8))
    }

    /// Bytes per complete pixel, the distance used by the Sub/Average/Paeth
    /// and TIFF filters.
    fn bytes_per_pixel(&self) -> usize {
        (self.colors * self.bits).div_ceil(8).max(1)
    }

    /// Opens the decoded data of the stream as a reader. The reader never
    /// yields more than [`MAX_DECODED`] bytes.
    pub(crate) fn open<'a, R: Read + Seek + 'a>(&self, file: &'a mut FileWindow<R>) -> Box<dyn Read + 'a> {
        let end = match self.length {
            Some(l) if !self.flate => self.data_offset.saturating_add(l).min(file.len()),
            // Flate data is self-terminating; a wrong /Length is common, so
            // let the decoder find the end (bounded by the file).
            _ => file.len(),
        };
        let work = file.work();
        let raw = RegionReader::new(file, self.data_offset, end);
        let decoded: Box<dyn Read + 'a> = if self.flate {
            Box::new(Budgeted::new(ZlibDecoder::new(raw).take(MAX_DECODED), work))
        } else {
            Box::new(Budgeted::new(raw.take(MAX_DECODED), work))
        };
        let row = self.row_len().unwrap_or(1);
        match self.predictor {
            Predictor::None => decoded,
            Predictor::Tiff => Box::new(TiffRows::new(decoded, row, self.colors)),
            Predictor::Png => Box::new(PngRows::new(decoded, row, self.bytes_per_pixel())),
        }
    }
}

/// Reads as much as possible into `buf`: returns `Ok(false)` on a clean end
/// before the first byte, and an error for a partial fill.
fn fill_row(inner: &mut dyn Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match inner.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated row")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Undoes the PNG row filters (predictors 10-15). Each encoded row is one
/// filter-type byte followed by the row bytes.
struct PngRows<'a> {
    inner: Box<dyn Read + 'a>,
    bpp: usize,
    /// Filter type byte plus the current row.
    raw: Vec<u8>,
    prev: Vec<u8>,
    cur: Vec<u8>,
    /// Next unread byte of `cur`.
    out: usize,
}

impl<'a> PngRows<'a> {
    fn new(inner: Box<dyn Read + 'a>, row: usize, bpp: usize) -> Self {
        Self { inner, bpp, raw: vec![0; row + 1], prev: vec![0; row], cur: vec![0; row], out: row }
    }

    fn next_row(&mut self) -> io::Result<bool> {
        if !fill_row(&mut *self.inner, &mut self.raw)? {
            return Ok(false);
        }
        std::mem::swap(&mut self.prev, &mut self.cur);
        let bpp = self.bpp;
        let filter = self.raw[0];
        for i in 0..self.cur.len() {
            let x = self.raw[i + 1];
            let a = if i >= bpp { self.cur[i - bpp] } else { 0 };
            let b = self.prev[i];
            let c = if i >= bpp { self.prev[i - bpp] } else { 0 };
            self.cur[i] = match filter {
                0 => x,
                1 => x.wrapping_add(a),
                2 => x.wrapping_add(b),
                3 => x.wrapping_add(((u16::from(a) + u16::from(b)) / 2) as u8),
                4 => x.wrapping_add(paeth(a, b, c)),
                _ => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "unknown PNG filter"));
                }
            };
        }
        self.out = 0;
        Ok(true)
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let pa = (p - i16::from(a)).abs();
    let pb = (p - i16::from(b)).abs();
    let pc = (p - i16::from(c)).abs();
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

impl Read for PngRows<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.out >= self.cur.len() && !self.next_row()? {
            return Ok(0);
        }
        let avail = &self.cur[self.out..];
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.out += n;
        Ok(n)
    }
}

/// Undoes TIFF predictor 2 for 8-bit components.
struct TiffRows<'a> {
    inner: Box<dyn Read + 'a>,
    colors: usize,
    cur: Vec<u8>,
    out: usize,
}

impl<'a> TiffRows<'a> {
    fn new(inner: Box<dyn Read + 'a>, row: usize, colors: usize) -> Self {
        Self { inner, colors, cur: vec![0; row], out: row }
    }
}

impl Read for TiffRows<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.out >= self.cur.len() {
            if !fill_row(&mut *self.inner, &mut self.cur)? {
                return Ok(0);
            }
            for i in self.colors..self.cur.len() {
                self.cur[i] = self.cur[i].wrapping_add(self.cur[i - self.colors]);
            }
            self.out = 0;
        }
        let avail = &self.cur[self.out..];
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.out += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdf::source::Work;
    use std::io::{Cursor, Write};

    fn rows_decode(encoded: &[u8], row: usize, bpp: usize) -> Vec<u8> {
        let mut out = Vec::new();
        PngRows::new(Box::new(encoded), row, bpp).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn png_filters_round_trip() {
        // Rows of 4 bytes, bpp 2, one row per filter type, each encoded from
        // known raw data using the PNG definitions.
        let raw: [[u8; 4]; 5] = [[1, 2, 3, 4], [10, 20, 250, 7], [0, 255, 128, 64], [9, 8, 7, 6], [200, 100, 50, 25]];
        let bpp = 2;
        let mut encoded = Vec::new();
        let mut prev = [0u8; 4];
        for (filter, row) in raw.iter().enumerate() {
            encoded.push(filter as u8);
            for i in 0..4 {
                let a = if i >= bpp { row[i - bpp] } else { 0 };
                let b = prev[i];
                let c = if i >= bpp { prev[i - bpp] } else { 0 };
                let pred = match filter {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                    _ => paeth(a, b, c),
                };
                encoded.push(row[i].wrapping_sub(pred));
            }
            prev = *row;
        }
        let decoded = rows_decode(&encoded, 4, bpp);
        assert_eq!(decoded, raw.concat());
    }

    #[test]
    fn unknown_png_filter_is_an_error() {
        let mut out = Vec::new();
        let r = PngRows::new(Box::new(&[7u8, 1, 2][..]), 2, 1).read_to_end(&mut out);
        assert!(r.is_err());
    }

    #[test]
    fn decoded_size_is_capped() {
        // 64 MiB of zeros compress to a few tens of KiB.
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            enc.write_all(&zeros).unwrap();
        }
        let data = enc.finish().unwrap();
        let mut pdf = b"1 0 obj\n<< /Filter /FlateDecode >>\nstream\n".to_vec();
        let offset = pdf.len() as u64;
        pdf.extend_from_slice(&data);
        let mut file =
            FileWindow::new(Cursor::new(pdf), |_| Work::new(u64::MAX, std::time::Duration::from_secs(60))).unwrap();
        let mut dict = Dict::default();
        dict.0.push((b"Filter".to_vec().into(), Obj::Name(b"FlateDecode".to_vec().into())));
        let spec = StreamSpec::from_dict(&dict, offset).unwrap();
        let n = io::copy(&mut spec.open(&mut file), &mut io::sink()).unwrap();
        assert_eq!(n, MAX_DECODED);
    }
}
