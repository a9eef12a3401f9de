//! Streaming text to PDF rendering.
//!
//! Fax transports only accept PDF/TIFF, so plain-text submissions are laid
//! out as monospaced pages. The renderer reads its input incrementally and
//! writes every page as soon as it is full: memory is bounded by one page of
//! text plus one offset per written object, however large the input is.
//!
//! The output uses the base-14 font Courier with WinAnsiEncoding (nothing is
//! embedded) and uncompressed content streams. Because the number of pages is
//! unknown until the input ends, the page objects are written first and the
//! `/Pages` node (with `/Kids` and `/Count`) and the catalog are written after
//! them, which PDF allows since objects are located through the
//! cross-reference table.

use std::io::{self, BufRead, BufWriter, Write};

/// Page geometry and typography for rendered text.
///
/// The defaults are US Letter (612 x 792 pt) with 54 pt (0.75 in) margins
/// and Courier 10 pt: Courier advances 0.6 em, so 6 pt per character, which
/// gives (612 - 2 * 54) / 6 = 84 columns; with 12 pt leading,
/// (792 - 2 * 54) / 12 = 57 lines per page.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLayout {
    /// Page width in PDF points (1/72 in).
    pub page_width: f32,
    /// Page height in PDF points.
    pub page_height: f32,
    /// Margin on all four sides, in points.
    pub margin: f32,
    /// Courier font size in points; the advance width is 0.6 times this.
    pub font_size: f32,
    /// Distance between baselines, in points.
    pub leading: f32,
}

impl Default for TextLayout {
    /// US Letter, 54 pt margins, Courier 10 pt on 12 pt leading: 84 columns
    /// by 57 lines.
    fn default() -> Self {
        Self { page_width: 612.0, page_height: 792.0, margin: 54.0, font_size: 10.0, leading: 12.0 }
    }
}

/// Courier glyphs are 600 units wide in a 1000-unit em.
const COURIER_ADVANCE: f32 = 0.6;

/// Tab stops are every eight columns.
const TAB_WIDTH: usize = 8;

/// When a line must wrap, a space within this many columns of the right edge
/// is used as the break point; otherwise the line is broken hard.
const WRAP_LOOKBACK: usize = 20;

impl TextLayout {
    /// Characters per line: the printable width divided by the Courier
    /// advance, never less than 1 so that degenerate layouts still progress.
    pub fn columns(&self) -> usize {
        let usable = self.page_width - 2.0 * self.margin;
        let advance = self.font_size * COURIER_ADVANCE;
        to_count(usable / advance)
    }

    /// Lines per page: the printable height divided by the leading, never
    /// less than 1.
    pub fn lines_per_page(&self) -> usize {
        let usable = self.page_height - 2.0 * self.margin;
        to_count(usable / self.leading)
    }
}

/// Converts a (possibly degenerate) float ratio to a count of at least one.
fn to_count(ratio: f32) -> usize {
    // A tiny epsilon keeps exact ratios such as 84.0 from rounding down to 83
    // through float error.
    let r = (ratio + 1e-3).floor();
    if r.is_finite() && r >= 1.0 {
        // Saturating float-to-int conversion; anything huge is clamped.
        r.min(100_000.0) as usize
    } else {
        1
    }
}

/// Renders UTF-8 text to a PDF, streaming.
///
/// The input is read incrementally (invalid UTF-8 is replaced by `?`) and
/// each page's content stream is written as soon as the page is full, so
/// memory is bounded by one page. Returns the number of pages written, which
/// is at least 1: empty input gives one blank page.
///
/// Layout rules: lines longer than [`TextLayout::columns`] wrap, at the last
/// space within the final 20 columns if there is one, otherwise hard; tabs
/// expand to the next multiple of 8 columns; `\n`, `\r\n` and a lone `\r`
/// end a line; form feed starts a new page; characters outside WinAnsi
/// become `?`; other control characters are dropped.
pub fn render_text_pdf<R: BufRead, W: Write>(input: R, output: W, layout: &TextLayout) -> io::Result<u32> {
    render(input, output, layout, u32::MAX)
}

/// Why [`render_text_pdf_limited`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The text needs more than this many pages; rendering stopped at the first page beyond it.
    #[error("the text needs more than {0} pages")]
    TooManyPages(u32),
    /// Reading the text or writing the PDF failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The marker error a page beyond the limit raises inside the writer.
#[derive(Debug, thiserror::Error)]
#[error("page limit reached")]
struct PageLimit;

/// [`render_text_pdf`] that stops as soon as the text needs more than `max_pages` pages: 10 MiB of form feeds
/// is ten million pages, and rendering them all (seconds of CPU, gigabytes written) before looking at the
/// page limit was the cost. Work and output are bounded by `max_pages + 1` pages.
pub fn render_text_pdf_limited<R: BufRead, W: Write>(
    input: R,
    output: W,
    layout: &TextLayout,
    max_pages: u32,
) -> Result<u32, RenderError> {
    render(input, output, layout, max_pages).map_err(|e| {
        if e.get_ref().is_some_and(|inner| inner.is::<PageLimit>()) {
            RenderError::TooManyPages(max_pages)
        } else {
            RenderError::Io(e)
        }
    })
}

fn render<R: BufRead, W: Write>(mut input: R, output: W, layout: &TextLayout, max_pages: u32) -> io::Result<u32> {
    let mut pdf = PdfWriter::new(output, layout)?;
    pdf.max_pages = max_pages;
    let mut typesetter = Typesetter::new(layout);
    let mut decoder = Utf8Decoder::default();
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        for &b in chunk {
            let (first, second) = decoder.push(b);
            for c in first.into_iter().chain(second) {
                typesetter.push_char(c, &mut pdf)?;
            }
        }
        input.consume(n);
    }
    if decoder.pending() {
        typesetter.push_char(char::REPLACEMENT_CHARACTER, &mut pdf)?;
    }
    typesetter.finish(&mut pdf)?;
    pdf.finish()
}

/// Minimal streaming UTF-8 decoder that replaces malformed input with
/// U+FFFD (which then renders as `?`), so that a stray bad byte does not
/// abort a whole fax.
#[derive(Default)]
struct Utf8Decoder {
    buf: [u8; 4],
    len: usize,
    need: usize,
}

impl Utf8Decoder {
    /// True when an incomplete sequence is buffered.
    fn pending(&self) -> bool {
        self.len > 0
    }

    /// Feeds one byte. Returns up to two characters, in order: a
    /// replacement for a sequence that the byte proved truncated, and the
    /// character the byte completes (or is, for ASCII).
    fn push(&mut self, b: u8) -> (Option<char>, Option<char>) {
        if self.len == 0 {
            return (None, self.start(b));
        }
        if b & 0xC0 == 0x80 {
            self.buf[self.len] = b;
            self.len += 1;
            if self.len < self.need {
                return (None, None);
            }
            let decoded = std::str::from_utf8(&self.buf[..self.len])
                .ok()
                .and_then(|s| s.chars().next())
                .unwrap_or(char::REPLACEMENT_CHARACTER);
            self.len = 0;
            return (None, Some(decoded));
        }
        // The buffered sequence is truncated; the byte starts afresh.
        self.len = 0;
        (Some(char::REPLACEMENT_CHARACTER), self.start(b))
    }

    /// Starts a new sequence with lead byte `b`.
    fn start(&mut self, b: u8) -> Option<char> {
        let need = match b {
            0x00..=0x7F => return Some(char::from(b)),
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return Some(char::REPLACEMENT_CHARACTER),
        };
        self.buf[0] = b;
        self.len = 1;
        self.need = need;
        None
    }
}

/// Lays characters out into lines and pages, handing full pages to the
/// writer. Holds at most one page of lines.
struct Typesetter {
    columns: usize,
    lines_per_page: usize,
    /// The line being filled, already in WinAnsi bytes.
    line: Vec<u8>,
    /// Finished lines of the current page. A full page is only written when
    /// another line (or a form feed, or the end) arrives, so that a form feed
    /// right after a full page does not produce a blank page.
    lines: Vec<Vec<u8>>,
    /// The previous character was `\r`, so a following `\n` is part of the
    /// same line end.
    pending_cr: bool,
    /// The previous character was a form feed, so a directly following line
    /// end belongs to it and does not produce an empty first line.
    after_form_feed: bool,
}

impl Typesetter {
    fn new(layout: &TextLayout) -> Self {
        let lines_per_page = layout.lines_per_page();
        Self {
            columns: layout.columns(),
            lines_per_page,
            line: Vec::new(),
            lines: Vec::with_capacity(lines_per_page.min(1024)),
            pending_cr: false,
            after_form_feed: false,
        }
    }

    fn push_char<W: Write>(&mut self, c: char, pdf: &mut PdfWriter<W>) -> io::Result<()> {
        match c {
            '\r' => {
                if std::mem::take(&mut self.after_form_feed) {
                    self.pending_cr = true;
                    return Ok(());
                }
                self.end_line(pdf)?;
                self.pending_cr = true;
            }
            '\n' => {
                if std::mem::take(&mut self.pending_cr) || std::mem::take(&mut self.after_form_feed) {
                    return Ok(());
                }
                self.end_line(pdf)?;
            }
            '\x0c' => {
                self.pending_cr = false;
                if !self.line.is_empty() {
                    self.end_line(pdf)?;
                }
                pdf.write_page(&self.lines)?;
                self.lines.clear();
                self.after_form_feed = true;
            }
            _ => {
                self.pending_cr = false;
                self.after_form_feed = false;
                if c == '\t' {
                    let spaces = TAB_WIDTH - self.line.len() % TAB_WIDTH;
                    for _ in 0..spaces {
                        self.push_byte(b' ', pdf)?;
                    }
                } else if !(c.is_control() || c == '\u{feff}') {
                    // Byte-order marks and control characters have no glyph.
                    self.push_byte(winansi(c), pdf)?;
                }
            }
        }
        Ok(())
    }

    /// Appends one glyph, wrapping first if the line is full.
    fn push_byte<W: Write>(&mut self, b: u8, pdf: &mut PdfWriter<W>) -> io::Result<()> {
        if self.line.len() < self.columns {
            self.line.push(b);
            return Ok(());
        }
        if b == b' ' {
            // The space itself is the break.
            return self.end_line(pdf);
        }
        let lookback_start = self.columns.saturating_sub(WRAP_LOOKBACK);
        let break_at =
            self.line[lookback_start..].iter().rposition(|&x| x == b' ').map(|i| i + lookback_start).filter(|&i| i > 0);
        match break_at {
            Some(i) => {
                let rest = self.line.split_off(i + 1);
                self.line.truncate(i);
                self.end_line(pdf)?;
                self.line = rest;
            }
            None => self.end_line(pdf)?,
        }
        self.line.push(b);
        Ok(())
    }

    /// Finishes the current line, writing out the page first if it is full.
    fn end_line<W: Write>(&mut self, pdf: &mut PdfWriter<W>) -> io::Result<()> {
        if self.lines.len() >= self.lines_per_page {
            pdf.write_page(&self.lines)?;
            self.lines.clear();
        }
        self.lines.push(std::mem::take(&mut self.line));
        Ok(())
    }

    fn finish<W: Write>(mut self, pdf: &mut PdfWriter<W>) -> io::Result<()> {
        if !self.line.is_empty() {
            self.end_line(pdf)?;
        }
        if !self.lines.is_empty() || pdf.pages == 0 {
            pdf.write_page(&self.lines)?;
        }
        Ok(())
    }
}

/// Maps a character to its WinAnsiEncoding code, or `?` when the encoding
/// (and so the un-embedded Courier font) has no glyph for it.
fn winansi(c: char) -> u8 {
    let code = u32::from(c);
    if (0x20..=0x7E).contains(&code) || (0xA0..=0xFF).contains(&code) {
        return u8::try_from(code).unwrap_or(b'?');
    }
    match c {
        '\u{20ac}' => 0x80,
        '\u{201a}' => 0x82,
        '\u{0192}' => 0x83,
        '\u{201e}' => 0x84,
        '\u{2026}' => 0x85,
        '\u{2020}' => 0x86,
        '\u{2021}' => 0x87,
        '\u{02c6}' => 0x88,
        '\u{2030}' => 0x89,
        '\u{0160}' => 0x8A,
        '\u{2039}' => 0x8B,
        '\u{0152}' => 0x8C,
        '\u{017d}' => 0x8E,
        '\u{2018}' => 0x91,
        '\u{2019}' => 0x92,
        '\u{201c}' => 0x93,
        '\u{201d}' => 0x94,
        '\u{2022}' => 0x95,
        '\u{2013}' => 0x96,
        '\u{2014}' => 0x97,
        '\u{02dc}' => 0x98,
        '\u{2122}' => 0x99,
        '\u{0161}' => 0x9A,
        '\u{203a}' => 0x9B,
        '\u{0153}' => 0x9C,
        '\u{017e}' => 0x9E,
        '\u{0178}' => 0x9F,
        _ => b'?',
    }
}

/// Counts bytes written so that object offsets for the cross-reference
/// table are exact.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Fixed object numbers. Page objects start at `FIRST_PAGE_OBJECT` and
/// alternate content stream / page dictionary.
const FONT_OBJECT: usize = 1;
const PAGES_OBJECT: usize = 2;
const CATALOG_OBJECT: usize = 3;
const FIRST_PAGE_OBJECT: usize = 4;

/// Writes the PDF structure incrementally.
struct PdfWriter<W: Write> {
    out: CountingWriter<BufWriter<W>>,
    /// Byte offset of object `n` at index `n - 1`; 0 until written.
    offsets: Vec<u64>,
    pages: u32,
    /// Pages allowed; writing one more fails with [`PageLimit`].
    max_pages: u32,
    /// Page setup operators shared by all content streams.
    prologue: String,
    media_box: String,
}

impl<W: Write> PdfWriter<W> {
    fn new(output: W, layout: &TextLayout) -> io::Result<Self> {
        let first_baseline = layout.page_height - layout.margin - layout.font_size;
        let mut w = Self {
            out: CountingWriter { inner: BufWriter::new(output), count: 0 },
            offsets: vec![0; CATALOG_OBJECT],
            pages: 0,
            max_pages: u32::MAX,
            prologue: format!(
                "BT\n/F1 {} Tf\n{} TL\n{} {} Td\n",
                fmt_num(layout.font_size),
                fmt_num(layout.leading),
                fmt_num(layout.margin),
                fmt_num(first_baseline)
            ),
            media_box: format!("[0 0 {} {}]", fmt_num(layout.page_width), fmt_num(layout.page_height)),
        };
        // The comment with high bytes marks the file as binary for transfer
        // tools, as recommended by the PDF specification.
        w.out.write_all(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")?;
        w.start_object(FONT_OBJECT)?;
        w.out
            .write_all(b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>\nendobj\n")?;
        Ok(w)
    }

    /// Records the offset of object `num` and writes its header.
    fn start_object(&mut self, num: usize) -> io::Result<()> {
        if self.offsets.len() < num {
            self.offsets.resize(num, 0);
        }
        self.offsets[num - 1] = self.out.count;
        writeln!(self.out, "{num} 0 obj")
    }

    /// Writes one page (content stream plus page dictionary).
    fn write_page(&mut self, lines: &[Vec<u8>]) -> io::Result<()> {
        if self.pages >= self.max_pages {
            return Err(io::Error::other(PageLimit));
        }
        let mut content = Vec::with_capacity(self.prologue.len() + lines.len() * 96);
        content.extend_from_slice(self.prologue.as_bytes());
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                content.extend_from_slice(b"T*\n");
            }
            if !line.is_empty() {
                content.push(b'(');
                escape_into(line, &mut content);
                content.extend_from_slice(b") Tj\n");
            }
        }
        content.extend_from_slice(b"ET");

        let content_obj = FIRST_PAGE_OBJECT + 2 * self.pages as usize;
        self.start_object(content_obj)?;
        write!(self.out, "<< /Length {} >>\nstream\n", content.len())?;
        self.out.write_all(&content)?;
        self.out.write_all(b"\nendstream\nendobj\n")?;

        self.start_object(content_obj + 1)?;
        write!(
            self.out,
            "<< /Type /Page /Parent {PAGES_OBJECT} 0 R /MediaBox {} /Resources << /Font << /F1 {FONT_OBJECT} 0 R >> >> /Contents {content_obj} 0 R >>\nendobj\n",
            self.media_box
        )?;
        self.pages += 1;
        Ok(())
    }

    /// Writes the page tree root, the catalog, the cross-reference table and
    /// the trailer, then flushes. Returns the page count.
    fn finish(mut self) -> io::Result<u32> {
        self.start_object(PAGES_OBJECT)?;
        self.out.write_all(b"<< /Type /Pages /Kids [")?;
        for k in 0..self.pages as usize {
            let sep = if k % 10 == 9 { "\n" } else { " " };
            write!(self.out, "{} 0 R{sep}", FIRST_PAGE_OBJECT + 2 * k + 1)?;
        }
        write!(self.out, "] /Count {} >>\nendobj\n", self.pages)?;

        self.start_object(CATALOG_OBJECT)?;
        write!(self.out, "<< /Type /Catalog /Pages {PAGES_OBJECT} 0 R >>\nendobj\n")?;

        let xref_offset = self.out.count;
        let size = self.offsets.len() + 1;
        write!(self.out, "xref\n0 {size}\n0000000000 65535 f\r\n")?;
        for &offset in &self.offsets {
            // Exactly 20 bytes per entry, as the specification requires.
            write!(self.out, "{offset:010} 00000 n\r\n")?;
        }
        write!(self.out, "trailer\n<< /Size {size} /Root {CATALOG_OBJECT} 0 R >>\nstartxref\n{xref_offset}\n%%EOF\n")?;
        self.out.flush()?;
        Ok(self.pages)
    }
}

/// Escapes WinAnsi bytes for a PDF literal string. Parentheses and
/// backslashes are escaped; bytes outside printable ASCII are written as
/// octal escapes so that content streams stay 7-bit clean.
fn escape_into(line: &[u8], out: &mut Vec<u8>) {
    for &b in line {
        match b {
            b'(' | b')' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            0x20..=0x7E => out.push(b),
            _ => {
                out.push(b'\\');
                out.push(b'0' + (b >> 6));
                out.push(b'0' + ((b >> 3) & 7));
                out.push(b'0' + (b & 7));
            }
        }
    }
}

/// Formats a PDF number without exponent notation or needless decimals.
fn fmt_num(v: f32) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdf::count_pages;
    use std::io::Cursor;

    fn render(text: &str) -> (u32, Vec<u8>) {
        render_bytes(text.as_bytes())
    }

    fn render_bytes(input: &[u8]) -> (u32, Vec<u8>) {
        let mut out = Vec::new();
        let pages = render_text_pdf(input, &mut out, &TextLayout::default()).unwrap();
        (pages, out)
    }

    fn unescape(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < s.len() {
            if s[i] == b'\\' {
                let next = s[i + 1];
                if next.is_ascii_digit() {
                    let v = (s[i + 1] - b'0') * 64 + (s[i + 2] - b'0') * 8 + (s[i + 3] - b'0');
                    out.push(v);
                    i += 4;
                } else {
                    out.push(next);
                    i += 2;
                }
            } else {
                out.push(s[i]);
                i += 1;
            }
        }
        out
    }

    /// Recovers the laid-out text from our own (uncompressed) output: one
    /// vector of lines per page, lines as WinAnsi bytes.
    fn layout_of(pdf: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut pages = Vec::new();
        let mut cur: Vec<Vec<u8>> = Vec::new();
        for line in pdf.split(|&b| b == b'\n') {
            if line == b"BT" {
                cur = vec![Vec::new()];
            } else if line == b"ET" {
                pages.push(std::mem::take(&mut cur));
            } else if line == b"T*" {
                cur.push(Vec::new());
            } else if line.starts_with(b"(") && line.ends_with(b") Tj") {
                *cur.last_mut().unwrap() = unescape(&line[1..line.len() - 4]);
            }
        }
        pages
    }

    fn lines(n: usize) -> String {
        (0..n).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn default_layout_is_84_by_57() {
        let l = TextLayout::default();
        assert_eq!((l.columns(), l.lines_per_page()), (84, 57));
        let a4ish = TextLayout { page_width: 595.0, page_height: 842.0, ..TextLayout::default() };
        assert_eq!((a4ish.columns(), a4ish.lines_per_page()), (81, 61));
        let degenerate = TextLayout { margin: 1000.0, ..TextLayout::default() };
        assert_eq!((degenerate.columns(), degenerate.lines_per_page()), (1, 1));
    }

    #[test]
    fn empty_input_gives_one_blank_page() {
        let (pages, pdf) = render("");
        assert_eq!(pages, 1);
        assert_eq!(layout_of(&pdf), vec![vec![Vec::<u8>::new()]]);
        assert_eq!(count_pages(Cursor::new(pdf)).unwrap(), 1);
    }

    #[test]
    fn page_breaks_after_57_lines() {
        let (pages, pdf) = render(&lines(57));
        assert_eq!(pages, 1);
        let layout = layout_of(&pdf);
        assert_eq!(layout.len(), 1);
        assert_eq!(layout[0].len(), 57);
        assert_eq!(layout[0][56], b"line 56");

        let (pages, pdf) = render(&lines(58));
        assert_eq!(pages, 2);
        let layout = layout_of(&pdf);
        assert_eq!(layout[1], vec![b"line 57".to_vec()]);

        // The last line does not need a terminator.
        let text = lines(57) + "tail";
        assert_eq!(render(&text).0, 2);
        assert_eq!(render(&lines(57 * 3)).0, 3);
        assert_eq!(render(&lines(57 * 3 + 1)).0, 4);
    }

    #[test]
    fn form_feed_starts_a_new_page() {
        let (pages, pdf) = render("one\x0ctwo\n\x0cthree");
        assert_eq!(pages, 3);
        assert_eq!(layout_of(&pdf), vec![vec![b"one".to_vec()], vec![b"two".to_vec()], vec![b"three".to_vec()]]);
        // A form feed on its own line does not leave an empty first line,
        // and a trailing form feed does not add a blank page.
        let (pages, pdf) = render("a\n\x0c\r\nb\n\x0c\n");
        assert_eq!(pages, 2);
        assert_eq!(layout_of(&pdf), vec![vec![b"a".to_vec()], vec![b"b".to_vec()]]);
        // A form feed right after a full page does not add a blank page.
        assert_eq!(render(&(lines(57) + "\x0cnext")).0, 2);
        // Consecutive form feeds do produce a blank page.
        assert_eq!(render("a\x0c\x0cb").0, 3);
    }

    #[test]
    fn long_lines_wrap() {
        let long = "x".repeat(200);
        let (_, pdf) = render(&long);
        let layout = layout_of(&pdf);
        let widths: Vec<usize> = layout[0].iter().map(Vec::len).collect();
        assert_eq!(widths, vec![84, 84, 32]);
        // 54 short lines plus the 200-character line fill exactly one page;
        // one more short line spills onto a second page.
        assert_eq!(render(&(lines(54) + &long)).0, 1);
        assert_eq!(render(&(lines(55) + &long)).0, 2);
    }

    #[test]
    fn wrapping_prefers_the_last_space() {
        let text = format!("{} {}", "a".repeat(70), "b".repeat(30));
        let (_, pdf) = render(&text);
        let layout = layout_of(&pdf);
        assert_eq!(layout[0], vec!["a".repeat(70).into_bytes(), "b".repeat(30).into_bytes()]);
        // A space further back than 20 columns is not used.
        let text = format!("{} {}", "a".repeat(10), "b".repeat(100));
        let layout = layout_of(&render(&text).1);
        assert_eq!(layout[0][0].len(), 84);
        assert_eq!(layout[0][1], "b".repeat(100 - 73).into_bytes());
        // A space exactly at the wrap column is the break itself.
        let text = format!("{} {}", "a".repeat(84), "b".repeat(5));
        let layout = layout_of(&render(&text).1);
        assert_eq!(layout[0], vec!["a".repeat(84).into_bytes(), b"bbbbb".to_vec()]);
    }

    #[test]
    fn tabs_expand_to_multiples_of_eight() {
        let layout = layout_of(&render("a\tb\n12345678\tc\n\td").1);
        assert_eq!(layout[0], vec![b"a       b".to_vec(), b"12345678        c".to_vec(), b"        d".to_vec()]);
    }

    #[test]
    fn line_endings_crlf_and_cr() {
        let layout = layout_of(&render("a\r\nb\rc\n\r\nd\r\re").1);
        let expected: Vec<Vec<u8>> = ["a", "b", "c", "", "d", "", "e"].iter().map(|s| s.as_bytes().to_vec()).collect();
        assert_eq!(layout[0], expected);
    }

    #[test]
    fn string_delimiters_are_escaped() {
        let (_, pdf) = render("f(x) = \\y)(");
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("(f\\(x\\) = \\\\y\\)\\() Tj"), "{text}");
        assert_eq!(layout_of(&pdf)[0][0], b"f(x) = \\y)(");
        assert_eq!(count_pages(Cursor::new(pdf)).unwrap(), 1);
    }

    #[test]
    fn characters_map_to_winansi_or_question_mark() {
        let (_, pdf) = render("caf\u{e9} \u{20ac}5 \u{201c}q\u{201d} \u{2022}\u{2014} \u{4e2d}\u{1f600}\u{3b1}");
        let layout = layout_of(&pdf);
        assert_eq!(layout[0][0], b"caf\xe9 \x805 \x93q\x94 \x95\x97 ???".to_vec());
        // Non-ASCII bytes are written as octal escapes.
        assert!(String::from_utf8_lossy(&pdf).contains("(caf\\351 \\2005"));
    }

    #[test]
    fn control_characters_and_bom_are_dropped() {
        let layout = layout_of(&render("\u{feff}a\u{0}b\u{7}c\u{1b}d\u{7f}e\u{85}f").1);
        assert_eq!(layout[0][0], b"abcdef");
    }

    #[test]
    fn invalid_utf8_becomes_question_marks() {
        let layout = layout_of(&render_bytes(b"a\xffb\xe2\x82c\xc3").1);
        assert_eq!(layout[0][0], b"a?b?c?");
    }

    #[test]
    fn output_structure_is_valid() {
        let (pages, pdf) = render(&lines(200));
        assert_eq!(pages, 4);
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.starts_with("%PDF-1.4\n"));
        assert!(text.ends_with("%%EOF\n"));
        assert!(text.contains("/BaseFont /Courier /Encoding /WinAnsiEncoding"));
        assert!(text.contains("/Count 4 >>"));
        // Every xref entry must point exactly at its object header. (Byte
        // offsets: the lossy string above has different lengths.)
        let rfind = |needle: &[u8]| pdf.windows(needle.len()).rposition(|w| w == needle);
        let xref_at = rfind(b"\nxref\n").unwrap() + 1;
        let after = &pdf[rfind(b"startxref\n").unwrap() + 10..];
        let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
        let startxref: usize = std::str::from_utf8(&after[..digits]).unwrap().parse().unwrap();
        assert_eq!(startxref, xref_at);
        let table = &pdf[xref_at..];
        let header_end = table.iter().position(|&b| b == b'\n').unwrap() + 1;
        let count_line_end = header_end + table[header_end..].iter().position(|&b| b == b'\n').unwrap() + 1;
        let size: usize = std::str::from_utf8(&table[header_end + 2..count_line_end - 1]).unwrap().parse().unwrap();
        assert_eq!(size, 3 + 2 * 4 + 1);
        for num in 1..size {
            let entry = &table[count_line_end + 20 * num..count_line_end + 20 * (num + 1)];
            assert_eq!(&entry[10..20], b" 00000 n\r\n");
            let offset: usize = std::str::from_utf8(&entry[..10]).unwrap().parse().unwrap();
            let header = format!("{num} 0 obj\n");
            assert!(pdf[offset..].starts_with(header.as_bytes()), "object {num}");
        }
    }

    #[test]
    fn render_then_count_round_trip() {
        for (text, expected) in [
            (String::new(), 1),
            (lines(57), 1),
            (lines(58), 2),
            (lines(1000), 18),
            ("p\x0c".repeat(120), 120),
            ("x".repeat(84 * 57 * 3), 3),
        ] {
            let (pages, pdf) = render(&text);
            assert_eq!(pages, expected);
            assert_eq!(count_pages(Cursor::new(pdf)).unwrap(), expected);
        }
    }

    #[test]
    fn rendering_stops_at_the_first_page_beyond_the_limit() {
        // 10 MiB of form feeds would be ten million pages; with a limit of 100 the renderer stops after 101
        // and has written a bounded amount.
        let feeds = vec![b'\x0c'; 10 * 1024 * 1024];
        let mut out = Vec::new();
        let err = render_text_pdf_limited(&feeds[..], &mut out, &TextLayout::default(), 100).unwrap_err();
        assert!(matches!(err, RenderError::TooManyPages(100)), "{err:?}");
        assert!(out.len() < 100 * 1024, "{} bytes written", out.len());
        // Exactly at the limit is fine (each "p" and its form feed is a page), one more is not.
        let mut out = Vec::new();
        let at = "p\x0c".repeat(100);
        assert_eq!(render_text_pdf_limited(at.as_bytes(), &mut out, &TextLayout::default(), 100).unwrap(), 100);
        let mut out = Vec::new();
        let over = "p\x0c".repeat(101);
        assert!(matches!(
            render_text_pdf_limited(over.as_bytes(), &mut out, &TextLayout::default(), 100),
            Err(RenderError::TooManyPages(100))
        ));
    }
}
