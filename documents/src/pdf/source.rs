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
use std::time::{Duration, Instant};

use super::{Limit, PdfError};

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

/// Lexed bytes are charged to the [`Work`] budget in batches of this size,
/// so the per-byte cost of the budget is an increment and a compare.
const LEX_BATCH: u32 = 4096;

/// The work and time one page count may take, shared by every reader of one
/// count.
///
/// Work is counted in bytes touched: bytes read from the file (including
/// bytes that are only skipped, by the reconstruction scan for example),
/// bytes produced by decompression, and bytes looked at by the lexer. Each
/// costs a few nanoseconds at most, so the budget bounds CPU time in a way
/// that is the same on every machine (the time limit is only a backstop for
/// costs the budget does not see, and depends on the machine's load).
pub(crate) struct Work {
    left: Cell<u64>,
    deadline: Instant,
    /// The limit that ran out first; every later charge fails with it.
    hit: Cell<Option<Limit>>,
}

impl Work {
    pub(crate) fn new(units: u64, time: Duration) -> Self {
        let now = Instant::now();
        Self { left: Cell::new(units), deadline: now.checked_add(time).unwrap_or(now), hit: Cell::new(None) }
    }

    /// Charges `units`; fails once either limit has run out.
    pub(crate) fn charge(&self, units: u64) -> Result<(), PdfError> {
        self.charge_limit(units).map_err(PdfError::TooComplex)
    }

    fn charge_limit(&self, units: u64) -> Result<(), Limit> {
        if let Some(limit) = self.hit.get() {
            return Err(limit);
        }
        let limit = match self.left.get().checked_sub(units) {
            None => Limit::Work,
            Some(_) if Instant::now() >= self.deadline => Limit::Time,
            Some(rest) => {
                self.left.set(rest);
                return Ok(());
            }
        };
        self.hit.set(Some(limit));
        Err(limit)
    }

    /// The limit that ran out, if one did.
    pub(crate) fn exhausted(&self) -> Option<Limit> {
        self.hit.get()
    }

    /// [`Work::charge`] for readers, whose errors are `io::Error`s.
    fn charge_io(&self, units: u64) -> io::Result<()> {
        self.charge_limit(units).map_err(|limit| io::Error::other(BudgetExhausted(limit)))
    }
}

/// A seekable file seen through one bounded window.
pub(crate) struct FileWindow<R> {
    inner: R,
    len: u64,
    buf: Vec<u8>,
    buf_start: u64,
    pos: u64,
    fill_size: usize,
    /// The budget of the whole count, shared with decoders.
    work: Rc<Work>,
    /// Bytes lexed since the last charge (see [`LEX_BATCH`]).
    lexed: u32,
}

impl<R: Read + Seek> FileWindow<R> {
    /// Opens `inner`; the work allowed is decided from its length by `budget`.
    pub(crate) fn new(mut inner: R, budget: impl FnOnce(u64) -> Work) -> io::Result<Self> {
        let len = inner.seek(SeekFrom::End(0))?;
        Ok(Self {
            inner,
            len,
            buf: Vec::with_capacity(MAX_FILL),
            buf_start: 0,
            pos: 0,
            fill_size: MIN_FILL,
            work: Rc::new(budget(len)),
            lexed: 0,
        })
    }

    /// The budget of this count, for decoders and loops that do work
    /// without reading.
    pub(crate) fn work(&self) -> Rc<Work> {
        Rc::clone(&self.work)
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
    fn fill(&mut self) -> Result<(), PdfError> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        self.fill_size =
            if !self.buf.is_empty() && self.pos == buf_end { (self.fill_size * 2).min(MAX_FILL) } else { MIN_FILL };
        let remaining = self.len.saturating_sub(self.pos);
        let want = usize::try_from(remaining).map_or(self.fill_size, |r| r.min(self.fill_size));
        self.work.charge(want as u64)?;
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
                    return Err(e.into());
                }
            }
        }
        self.buf.truncate(got);
        Ok(())
    }

    fn peek_byte(&mut self) -> Result<Option<u8>, PdfError> {
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
    pub(crate) fn read_into(&mut self, out: &mut [u8]) -> Result<usize, PdfError> {
        if out.is_empty() || self.peek_byte()?.is_none() {
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
        if self.lexed >= LEX_BATCH {
            self.work.charge(u64::from(std::mem::take(&mut self.lexed)))?;
        }
        self.peek_byte()
    }
    fn bump(&mut self) {
        self.pos += 1;
        self.lexed += 1;
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

/// Marks the exhaustion of a [`Work`] limit inside a decoder.
#[derive(Debug)]
struct BudgetExhausted(Limit);

impl fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} limit exhausted", self.0)
    }
}

impl std::error::Error for BudgetExhausted {}

/// Charges everything read through it (decoded bytes) to the count's [`Work`].
pub(crate) struct Budgeted<D> {
    inner: D,
    work: Rc<Work>,
}

impl<D> Budgeted<D> {
    pub(crate) fn new(inner: D, work: Rc<Work>) -> Self {
        Self { inner, work }
    }
}

impl<D: Read> Read for Budgeted<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.work.charge_io(n as u64)?;
        Ok(n)
    }
}

/// Converts an error from a decoding pipeline: file I/O errors stay I/O
/// errors, everything else (bad compressed data) means the PDF is damaged.
pub(crate) fn classify_decode_error(err: io::Error) -> PdfError {
    if let Some(BudgetExhausted(limit)) = err.get_ref().and_then(|e| e.downcast_ref::<BudgetExhausted>()) {
        return PdfError::TooComplex(*limit);
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
        let n = self.file.read_into(&mut out[..want]).map_err(|e| match e {
            PdfError::Io(e) => io::Error::new(e.kind(), FileIoError(e)),
            PdfError::TooComplex(limit) => io::Error::other(BudgetExhausted(limit)),
            other => io::Error::other(other.to_string()),
        })?;
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
    /// Lexing decoded bytes is work too; decoding them is charged by [`Budgeted`].
    work: Rc<Work>,
    lexed: u32,
}

impl<D: Read> DecodedSource<D> {
    pub(crate) fn new(inner: D, work: Rc<Work>) -> Self {
        Self { inner, buf: Box::new([0; 4096]), start: 0, end: 0, pos: 0, work, lexed: 0 }
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
        if self.lexed >= LEX_BATCH {
            self.work.charge(u64::from(std::mem::take(&mut self.lexed)))?;
        }
        if self.start == self.end && !self.refill()? {
            return Ok(None);
        }
        Ok(Some(self.buf[self.start]))
    }
    fn bump(&mut self) {
        if self.start < self.end {
            self.start += 1;
            self.pos += 1;
            self.lexed += 1;
        }
    }
    fn pos(&self) -> u64 {
        self.pos
    }
}
