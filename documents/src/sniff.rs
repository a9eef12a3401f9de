//! Incremental document type detection.
//!
//! The API server feeds every chunk of an upload into a [`Sniffer`] while the
//! upload is written to storage, so the type decision covers the whole
//! document (not just a prefix) without buffering it. The sniffer keeps a
//! constant amount of state: the first five bytes, at most three carry-over
//! bytes of an unfinished UTF-8 sequence, and a few flags.

/// The kinds of document the fax pipeline accepts.
///
/// Anything that is not one of these is rejected at upload time, so that the
/// rest of the pipeline only ever has to deal with these two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A PDF document (the stream starts with `%PDF-`).
    Pdf,
    /// UTF-8 text without binary control characters; it is rendered to PDF
    /// by [`crate::text::render_text_pdf`] before faxing.
    Text,
}

/// Why an upload was not accepted as a document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SniffError {
    /// No bytes at all were fed; an empty fax makes no sense.
    #[error("file is empty")]
    Empty,
    /// The stream is neither a PDF nor clean UTF-8 text.
    #[error("only PDF and UTF-8 text documents are accepted")]
    Unsupported,
}

/// The PDF magic number, which must appear at offset 0.
const PDF_MAGIC: &[u8; 5] = b"%PDF-";

/// Incremental type detector, fed chunk by chunk while an upload streams to
/// storage.
///
/// Invariant: memory use is constant regardless of how much is fed. UTF-8
/// validation is carried across chunk boundaries with at most three
/// carry-over bytes, so a multi-byte character split between two chunks is
/// still validated correctly.
#[derive(Debug, Default)]
pub struct Sniffer {
    /// Total number of bytes fed so far.
    seen: u64,
    /// The first bytes of the stream (up to the length of the PDF magic).
    head: [u8; 5],
    /// How many bytes of `head` are filled.
    head_len: usize,
    /// Bytes of an incomplete UTF-8 sequence at the end of the last chunk.
    carry: [u8; 3],
    /// How many bytes of `carry` are in use.
    carry_len: usize,
    /// Set once the stream is known not to be acceptable text.
    not_text: bool,
}

impl Sniffer {
    /// Creates a sniffer that has seen no bytes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the stream. Chunks may be of any size,
    /// including empty, and may split UTF-8 sequences anywhere.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.seen = self.seen.saturating_add(chunk.len() as u64);
        if self.head_len < self.head.len() {
            let take = (self.head.len() - self.head_len).min(chunk.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&chunk[..take]);
            self.head_len += take;
        }
        if self.not_text || self.is_pdf() {
            // The decision can no longer change, so skip the validation work.
            return;
        }
        let rest = self.complete_carry(chunk);
        self.validate(rest);
    }

    /// Decides the document kind once the whole stream has been fed.
    ///
    /// A stream is a PDF when it starts with `%PDF-` at offset 0. Otherwise
    /// it is text when the whole stream is valid UTF-8 without binary
    /// control characters (C0 controls other than tab, line feed, carriage
    /// return and form feed). A UTF-8 sequence truncated at the end of the
    /// stream makes it unsupported.
    pub fn finish(self) -> Result<DocumentKind, SniffError> {
        if self.seen == 0 {
            return Err(SniffError::Empty);
        }
        if self.is_pdf() {
            return Ok(DocumentKind::Pdf);
        }
        if self.not_text || self.carry_len != 0 {
            return Err(SniffError::Unsupported);
        }
        Ok(DocumentKind::Text)
    }

    /// Number of bytes fed so far, so the caller can enforce size limits and
    /// record the stored size without counting separately.
    pub fn bytes_seen(&self) -> u64 {
        self.seen
    }

    fn is_pdf(&self) -> bool {
        self.head_len == PDF_MAGIC.len() && &self.head == PDF_MAGIC
    }

    /// Completes a UTF-8 sequence left over from the previous chunk using the
    /// start of `chunk`, and returns the part of `chunk` after it.
    fn complete_carry<'a>(&mut self, chunk: &'a [u8]) -> &'a [u8] {
        if self.carry_len == 0 {
            return chunk;
        }
        let width = utf8_width(self.carry[0]);
        let needed = width.saturating_sub(self.carry_len);
        let mut seq = [0u8; 4];
        seq[..self.carry_len].copy_from_slice(&self.carry[..self.carry_len]);
        if chunk.len() < needed {
            // Still incomplete: keep carrying, but reject invalid prefixes now.
            let have = self.carry_len + chunk.len();
            seq[self.carry_len..have].copy_from_slice(chunk);
            match std::str::from_utf8(&seq[..have]) {
                Err(e) if e.error_len().is_none() => {
                    self.carry[..have].copy_from_slice(&seq[..have]);
                    self.carry_len = have;
                }
                _ => self.not_text = true,
            }
            return &[];
        }
        seq[self.carry_len..width].copy_from_slice(&chunk[..needed]);
        self.carry_len = 0;
        if std::str::from_utf8(&seq[..width]).is_err() {
            self.not_text = true;
        }
        &chunk[needed..]
    }

    /// Validates `data`, which starts on a character boundary, keeping an
    /// incomplete trailing sequence as carry-over.
    fn validate(&mut self, data: &[u8]) {
        if self.not_text {
            return;
        }
        let valid = match std::str::from_utf8(data) {
            Ok(_) => data.len(),
            Err(e) => {
                if e.error_len().is_some() {
                    self.not_text = true;
                    return;
                }
                // Only an incomplete sequence (at most three bytes) remains.
                let tail = &data[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len();
                e.valid_up_to()
            }
        };
        // Continuation and lead bytes of multi-byte sequences are all >= 0x80,
        // so a byte-wise check finds exactly the C0 control characters.
        if data[..valid].iter().any(|&b| is_binary_control(b)) {
            self.not_text = true;
        }
    }
}

/// Length of the UTF-8 sequence introduced by `lead` (1 for invalid leads,
/// which `from_utf8` rejects anyway).
fn utf8_width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// C0 control characters that do not occur in ordinary text files.
fn is_binary_control(b: u8) -> bool {
    b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff_chunks(chunks: &[&[u8]]) -> Result<DocumentKind, SniffError> {
        let mut s = Sniffer::new();
        for c in chunks {
            s.feed(c);
        }
        s.finish()
    }

    fn sniff_bytewise(data: &[u8]) -> Result<DocumentKind, SniffError> {
        let mut s = Sniffer::new();
        for b in data {
            s.feed(std::slice::from_ref(b));
        }
        assert_eq!(s.bytes_seen(), data.len() as u64);
        s.finish()
    }

    #[test]
    fn pdf_magic_is_detected() {
        assert_eq!(sniff_chunks(&[b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"]), Ok(DocumentKind::Pdf));
        // Split magic, and binary content after it, still count as PDF.
        assert_eq!(sniff_chunks(&[b"%P", b"DF", b"-1.4\n\x00\xff\xfe"]), Ok(DocumentKind::Pdf));
        assert_eq!(sniff_bytewise(b"%PDF-1.4\n\x00\x01"), Ok(DocumentKind::Pdf));
    }

    #[test]
    fn pdf_magic_only_counts_at_offset_zero() {
        // Not at offset 0: it is just text mentioning PDF.
        assert_eq!(sniff_chunks(&[b" %PDF-1.4\n"]), Ok(DocumentKind::Text));
        // A BOM before the magic is not a PDF; it is valid text.
        assert_eq!(sniff_chunks(&[b"\xef\xbb\xbf%PDF-1.4\n"]), Ok(DocumentKind::Text));
        // Truncated magic is not a PDF.
        assert_eq!(sniff_chunks(&[b"%PDF"]), Ok(DocumentKind::Text));
    }

    #[test]
    fn text_is_detected() {
        assert_eq!(sniff_chunks(&[b"Hello,\r\n\tworld\x0c", "caf\u{e9} \u{20ac}".as_bytes()]), Ok(DocumentKind::Text));
    }

    #[test]
    fn empty_stream_is_rejected() {
        assert_eq!(Sniffer::new().finish(), Err(SniffError::Empty));
        assert_eq!(sniff_chunks(&[b"", b""]), Err(SniffError::Empty));
    }

    #[test]
    fn binary_data_is_rejected() {
        assert_eq!(sniff_chunks(&[b"abc\x00def"]), Err(SniffError::Unsupported));
        assert_eq!(sniff_chunks(&[b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"]), Err(SniffError::Unsupported));
        assert_eq!(sniff_chunks(&[b"\xff\xd8\xff\xe0\x00\x10JFIF"]), Err(SniffError::Unsupported));
        // Pseudo-random high bytes (a simple LCG, deterministic).
        let mut x: u32 = 12345;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                0x80 | (x >> 24) as u8
            })
            .collect();
        assert_eq!(sniff_chunks(&[&noise]), Err(SniffError::Unsupported));
        // Other C0 controls (escape, bell) are binary too.
        assert_eq!(sniff_chunks(&[b"a\x1bb"]), Err(SniffError::Unsupported));
        assert_eq!(sniff_chunks(&[b"a\x07b"]), Err(SniffError::Unsupported));
    }

    #[test]
    fn multibyte_chars_split_at_every_boundary() {
        let text = "a\u{e9}b\u{20ac}c\u{1f600}d \u{10ffff}\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}";
        let bytes = text.as_bytes();
        assert_eq!(sniff_bytewise(bytes), Ok(DocumentKind::Text));
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(sniff_chunks(&[a, b]), Ok(DocumentKind::Text), "split {split}");
        }
        for i in 0..bytes.len() {
            for j in i..bytes.len() {
                let parts = [&bytes[..i], &bytes[i..j], &bytes[j..]];
                assert_eq!(sniff_chunks(&parts), Ok(DocumentKind::Text), "{i}/{j}");
            }
        }
    }

    #[test]
    fn invalid_sequences_split_across_chunks_are_rejected() {
        // Overlong encoding, surrogate, out-of-range code point, stray
        // continuation byte and a lead byte followed by ASCII.
        for bad in [&b"x\xc0\xafy"[..], b"x\xed\xa0\x80y", b"x\xf4\x90\x80\x80y", b"x\x80y", b"x\xe2\x82y"] {
            assert_eq!(sniff_bytewise(bad), Err(SniffError::Unsupported), "{bad:?}");
            for split in 0..=bad.len() {
                let (a, b) = bad.split_at(split);
                assert_eq!(sniff_chunks(&[a, b]), Err(SniffError::Unsupported), "{bad:?} split {split}");
            }
        }
    }

    #[test]
    fn invalid_utf8_after_64_kib_is_rejected() {
        let mut data = vec![b'a'; 64 * 1024 + 100];
        data.push(0xff);
        data.extend_from_slice(b"more text");
        assert_eq!(sniff_chunks(&[&data]), Err(SniffError::Unsupported));
        let chunks: Vec<&[u8]> = data.chunks(8192).collect();
        assert_eq!(sniff_chunks(&chunks), Err(SniffError::Unsupported));
        // The same stream without the bad byte is text (non-vacuous check).
        data.retain(|&b| b != 0xff);
        assert_eq!(sniff_chunks(&[&data]), Ok(DocumentKind::Text));
    }

    #[test]
    fn nul_after_64_kib_is_rejected() {
        let mut data = vec![b'a'; 70 * 1024];
        data[69 * 1024] = 0;
        let chunks: Vec<&[u8]> = data.chunks(1000).collect();
        assert_eq!(sniff_chunks(&chunks), Err(SniffError::Unsupported));
    }

    #[test]
    fn truncated_multibyte_at_end_is_rejected() {
        let euro = "\u{20ac}".as_bytes();
        assert_eq!(sniff_chunks(&[b"abc", &euro[..2]]), Err(SniffError::Unsupported));
        assert_eq!(sniff_bytewise(b"abc\xf0\x9f\x98"), Err(SniffError::Unsupported));
        assert_eq!(sniff_chunks(&[b"abc\xc3"]), Err(SniffError::Unsupported));
        // Completing the sequence makes it valid again.
        assert_eq!(sniff_chunks(&[b"abc", &euro[..2], &euro[2..]]), Ok(DocumentKind::Text));
    }
}
