//! Byte sources with bounded buffering.
//!
//! [`FileWindow`] gives the lexer byte-at-a-time access to a `Read + Seek`
//! through one small window, so random access to objects costs a few hundred
//! bytes of I/O, while sequential access (scans, stream data) grows the
//! window up to [`MAX_FILL`]. [`DecodedSource`] does the same for the output
//! of a decompressor.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

use super::PdfError;

/// A forward byte cursor, the input of the lexer.
pub(crate) trait Source {
    /// The next byte, or `None` at the end of the input.
    fn peek(&mut self) -> Result<Option<u8>, PdfError>;
    /// Consumes the byte returned by the last `peek`.
    fn bump(&mut self);
    /// Offset of the next byte.
    fn pos(&self) -> u64;
}

impl<S: Source + ?Sized> Source for &mut S {
    fn peek(&mut self) -> Result<Option<u8>, PdfError> {
        (**self).peek()
    }
    fn bump(&mut self) {
        (**self).bump();
    }
    fn pos(&self) -> u64 {
        (**self).pos()
    }
}

/// Size of the first read after a random seek: most objects that matter
/// (page tree nodes, cross-reference entries) fit in it.
pub(crate) const MIN_FILL: usize = 256;
/// Largest single read; sequential reads double up to this size.
pub(crate) const MAX_FILL: usize = 16 * 1024;

/// Total decoded bytes allowed per page count, across all streams. Each
/// stream is capped on its own too, but a file could hold many small "zip
/// bombs"; this bounds the CPU time they can cost.
const TOTAL_DECODE_BUDGET: u64 = 256 * 1024 * 1024;

/// A seekable file seen through one bounded window.
pub(crate) struct FileWindow<R> {
    inner: R,
    len: u64,
    buf: Vec<u8>,
    buf_start: u64,
    pos: u64,
    fill_size: usize,
    /// Decoded bytes still allowed (see [`TOTAL_DECODE_BUDGET`]).
    decode_budget: Rc<Cell<u64>>,
}

impl<R: Read + Seek> FileWindow<R> {
    pub(crate) fn new(mut inner: R) -> io::Result<Self> {
        let len = inner.seek(SeekFrom::End(0))?;
        Ok(Self {
            inner,
            len,
            buf: Vec::with_capacity(MAX_FILL),
            buf_start: 0,
            pos: 0,
            fill_size: MIN_FILL,
            decode_budget: Rc::new(Cell::new(TOTAL_DECODE_BUDGET)),
        })
    }

    /// The shared budget of decoded bytes, for [`Budgeted`] readers.
    pub(crate) fn decode_budget(&self) -> Rc<Cell<u64>> {
        Rc::clone(&self.decode_budget)
    }

    /// Total length of the file.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Moves the cursor; no I/O happens until a byte is needed.
    pub(crate) fn seek_to(&mut self, pos: u64) {
        self.pos = pos;
    }

    fn window_contains(&self, pos: u64) -> bool {
        pos >= self.buf_start && pos - self.buf_start < self.buf.len() as u64
    }

    /// Refills the window at the cursor. Reads that continue exactly where
    /// the window ended double in size; anything else starts small again.
    fn fill(&mut self) -> io::Result<()> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        self.fill_size =
            if !self.buf.is_empty() && self.pos == buf_end { (self.fill_size * 2).min(MAX_FILL) } else { MIN_FILL };
        let remaining = self.len.saturating_sub(self.pos);
        let want = usize::try_from(remaining).map_or(self.fill_size, |r| r.min(self.fill_size));
        self.buf.clear();
        self.buf.resize(want, 0);
        self.buf_start = self.pos;
        self.inner.seek(SeekFrom::Start(self.pos))?;
        let mut got = 0;
        while got < want {
            match self.inner.read(&mut self.buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.clear();
                    return Err(e);
                }
            }
        }
        self.buf.truncate(got);
        Ok(())
    }

    fn peek_io(&mut self) -> io::Result<Option<u8>> {
        if self.pos >= self.len {
            return Ok(None);
        }
        if !self.window_contains(self.pos) {
            self.fill()?;
        }
        let idx = usize::try_from(self.pos - self.buf_start).unwrap_or(usize::MAX);
        Ok(self.buf.get(idx).copied())
    }

    /// Copies bytes from the cursor into `out` and advances; returns 0 at
    /// the end of the file.
    pub(crate) fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || self.peek_io()?.is_none() {
            return Ok(0);
        }
        let start = usize::try_from(self.pos - self.buf_start).unwrap_or(usize::MAX);
        let avail = self.buf.get(start..).unwrap_or(&[]);
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Source for FileWindow<R> {
    fn peek(&mut self) -> Result<Option<u8>, PdfError> {
        Ok(self.peek_io()?)
    }
    fn bump(&mut self) {
        self.pos += 1;
    }
    fn pos(&self) -> u64 {
        self.pos
    }
}

/// Marks an I/O error of the underlying file that travelled through a
/// decompressor, so it is reported as I/O rather than as damage.
#[derive(Debug)]
struct FileIoError(io::Error);

impl fmt::Display for FileIoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for FileIoError {}

/// Marks the exhaustion of the decode budget.
#[derive(Debug)]
struct BudgetExhausted;

impl fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("decode budget exhausted")
    }
}

impl std::error::Error for BudgetExhausted {}

/// Charges everything read through it to the shared decode budget.
pub(crate) struct Budgeted<D> {
    inner: D,
    budget: Rc<Cell<u64>>,
}

impl<D> Budgeted<D> {
    pub(crate) fn new(inner: D, budget: Rc<Cell<u64>>) -> Self {
        Self { inner, budget }
    }
}

impl<D: Read> Read for Budgeted<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let left = self.budget.get();
        match left.checked_sub(n as u64) {
            Some(rest) => {
                self.budget.set(rest);
                Ok(n)
            }
            None => {
                self.budget.set(0);
                Err(io::Error::other(BudgetExhausted))
            }
        }
    }
}

/// Converts an error from a decoding pipeline: file I/O errors stay I/O
/// errors, everything else (bad compressed data) means the PDF is damaged.
pub(crate) fn classify_decode_error(err: io::Error) -> PdfError {
    if err.get_ref().is_some_and(|e| e.is::<BudgetExhausted>()) {
        return PdfError::Damaged("compressed streams exceed the decoding limit".into());
    }
    if err.get_ref().is_some_and(|e| e.is::<FileIoError>()) {
        let kind = err.kind();
        return match err.into_inner().map(|e| e.downcast::<FileIoError>()) {
            Some(Ok(inner)) => PdfError::Io(inner.0),
            _ => PdfError::Io(io::Error::from(kind)),
        };
    }
    PdfError::Damaged("corrupt compressed stream".into())
}

/// `Read` over a byte range of a [`FileWindow`], the raw input of a stream
/// filter.
pub(crate) struct RegionReader<'a, R> {
    file: &'a mut FileWindow<R>,
    pos: u64,
    end: u64,
}

impl<'a, R: Read + Seek> RegionReader<'a, R> {
    pub(crate) fn new(file: &'a mut FileWindow<R>, start: u64, end: u64) -> Self {
        Self { file, pos: start, end }
    }
}

impl<R: Read + Seek> Read for RegionReader<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let want = left.min(out.len());
        if want == 0 {
            return Ok(0);
        }
        self.file.seek_to(self.pos);
        let n = self.file.read_into(&mut out[..want]).map_err(|e| io::Error::new(e.kind(), FileIoError(e)))?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Byte cursor over decoded stream data, with a small fixed buffer. Offsets
/// are positions in the decoded data.
pub(crate) struct DecodedSource<D> {
    inner: D,
    buf: Box<[u8; 4096]>,
    start: usize,
    end: usize,
    pos: u64,
}

impl<D: Read> DecodedSource<D> {
    pub(crate) fn new(inner: D) -> Self {
        Self { inner, buf: Box::new([0; 4096]), start: 0, end: 0, pos: 0 }
    }

    /// Discards decoded bytes up to offset `target`. Returns false when the
    /// data ends first or the cursor is already past `target`.
    pub(crate) fn skip_to(&mut self, target: u64) -> Result<bool, PdfError> {
        while self.pos < target {
            if self.start == self.end && !self.refill()? {
                return Ok(false);
            }
            let avail = (self.end - self.start) as u64;
            let n = avail.min(target - self.pos);
            self.start += usize::try_from(n).unwrap_or(0);
            self.pos += n;
        }
        Ok(self.pos == target)
    }

    fn refill(&mut self) -> Result<bool, PdfError> {
        loop {
            match self.inner.read(&mut self.buf[..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(classify_decode_error(e)),
            }
        }
    }
}

impl<D: Read> Source for DecodedSource<D> {
    fn peek(&mut self) -> Result<Option<u8>, PdfError> {
        if self.start == self.end && !self.refill()? {
            return Ok(None);
        }
        Ok(Some(self.buf[self.start]))
    }
    fn bump(&mut self) {
        if self.start < self.end {
            self.start += 1;
            self.pos += 1;
        }
    }
    fn pos(&self) -> u64 {
        self.pos
    }
}
