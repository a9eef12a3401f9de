//! `multipart/form-data` bodies (RFC 7578) split into parts that are slices of the body, not copies.
//!
//! Provider callbacks carrying a fax (Phaxio's inbound webhook) arrive whole in memory, because their
//! signature covers the body and must be checked before anything else is done with it. multer, the
//! streaming parser the upload route uses, copies everything it is given into its own growing buffer, so a
//! 31 MiB forged callback was held two to three times while its signature was checked. Here the body is
//! searched in place (memchr's `memmem`), part headers are parsed by httparse, and each part's data is a
//! [`Bytes`] slice of the body: splitting costs no memory beyond the list of parts.
//!
//! Bounded: at most [`MAX_PARTS`] parts, [`MAX_HEADERS`] headers of at most [`MAX_HEADER_BYTES`] per part.

use bytes::Bytes;
use memchr::memmem;

/// Most parts accepted (Phaxio's callbacks have fewer than ten).
pub const MAX_PARTS: usize = 64;
/// Most headers per part.
pub const MAX_HEADERS: usize = 16;
/// Largest header block of one part.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// One part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The `name` parameter of its `Content-Disposition`.
    pub name: String,
    /// The `filename` parameter, present for file parts.
    pub file_name: Option<String>,
    /// The part's data: a slice of the body.
    pub data: Bytes,
}

/// Why a body is not a form. The messages never quote the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The content type is not `multipart/form-data` with a usable boundary.
    #[error("not multipart/form-data with a boundary")]
    NoBoundary,
    /// The body does not follow the multipart syntax.
    #[error("malformed multipart body: {0}")]
    Malformed(&'static str),
    /// More than [`MAX_PARTS`] parts.
    #[error("more than {MAX_PARTS} parts")]
    TooManyParts,
}

/// The boundary of a `multipart/form-data` content type (RFC 2046: 1 to 70 characters).
pub fn boundary(content_type: &str) -> Result<String, FormError> {
    let mut params = content_type.split(';');
    let essence = params.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return Err(FormError::NoBoundary);
    }
    for param in params {
        let Some((key, value)) = param.split_once('=') else { continue };
        if key.trim().eq_ignore_ascii_case("boundary") {
            let value = value.trim();
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            if value.is_empty() || value.len() > 70 {
                return Err(FormError::NoBoundary);
            }
            return Ok(value.to_string());
        }
    }
    Err(FormError::NoBoundary)
}

/// Splits `body` into its parts.
pub fn split(body: &Bytes, boundary: &str) -> Result<Vec<Part>, FormError> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    // Each part ends at CRLF + delimiter; the first delimiter may follow a preamble.
    let mut between = Vec::with_capacity(delimiter.len() + 2);
    between.extend_from_slice(b"\r\n");
    between.extend_from_slice(delimiter);
    let next_part = memmem::Finder::new(&between);
    let first = if body.starts_with(delimiter) {
        0
    } else {
        next_part.find(body).ok_or(FormError::Malformed("no boundary"))? + 2
    };
    let mut pos = first + delimiter.len();
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            // The close delimiter; an epilogue after it is ignored.
            return Ok(parts);
        }
        // Transport padding, then CRLF.
        let padding = rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        if !rest[padding..].starts_with(b"\r\n") {
            return Err(FormError::Malformed("no line break after a boundary"));
        }
        pos += padding + 2;
        if parts.len() == MAX_PARTS {
            return Err(FormError::TooManyParts);
        }
        let (header_len, name, file_name) = part_headers(&body[pos..])?;
        pos += header_len;
        let end = next_part.find(&body[pos..]).ok_or(FormError::Malformed("a part has no closing boundary"))?;
        parts.push(Part { name, file_name, data: body.slice(pos..pos + end) });
        pos += end + between.len();
    }
}

/// Parses the header block at the start of `data`: its length and the disposition's name and file name.
fn part_headers(data: &[u8]) -> Result<(usize, String, Option<String>), FormError> {
    let window = &data[..data.len().min(MAX_HEADER_BYTES)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (len, headers) = match httparse::parse_headers(window, &mut headers) {
        Ok(httparse::Status::Complete((len, headers))) => (len, headers),
        Ok(httparse::Status::Partial) => return Err(FormError::Malformed("part headers incomplete or too long")),
        Err(httparse::Error::TooManyHeaders) => return Err(FormError::Malformed("too many part headers")),
        Err(_) => return Err(FormError::Malformed("bad part header")),
    };
    let disposition = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-disposition"))
        .ok_or(FormError::Malformed("a part has no Content-Disposition"))?;
    let value = std::str::from_utf8(disposition.value).map_err(|_| FormError::Malformed("bad Content-Disposition"))?;
    let (name, file_name) = disposition_names(value)?;
    Ok((len, name, file_name))
}

/// `form-data; name="…"; filename="…"`: the name (required) and file name (optional).
fn disposition_names(value: &str) -> Result<(String, Option<String>), FormError> {
    let bad = FormError::Malformed("bad Content-Disposition");
    let (kind, mut rest) = value.split_once(';').unwrap_or((value, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(bad);
    }
    let (mut name, mut file_name) = (None, None);
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest.split_once('=').ok_or(bad.clone())?;
        let (value, after) = param_value(after.trim_start()).ok_or(bad.clone())?;
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(value),
            "filename" => file_name = Some(value),
            _ => {}
        }
        rest = after;
    }
    Ok((name.ok_or(bad)?, file_name))
}

/// A token or a quoted string (with `\` escapes) at the start of `s`, and what follows it.
fn param_value(s: &str) -> Option<(String, &str)> {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((out, &quoted[i + 1..])),
                '\\' => out.push(chars.next()?.1),
                c => out.push(c),
            }
        }
        None
    } else {
        let end = s.find(';').unwrap_or(s.len());
        Some((s[..end].trim().to_string(), &s[end..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn form(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Bytes {
        let mut body = Vec::new();
        for (name, file, data) in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match file.map(|f| f.replace('\\', "\\\\").replace('"', "\\\"")) {
                Some(f) => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: \
                         application/pdf\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => body
                    .extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
            }
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Bytes::from(body)
    }

    #[test]
    fn boundaries_from_content_types() {
        assert_eq!(boundary("multipart/form-data; boundary=abc").as_deref(), Ok("abc"));
        assert_eq!(boundary("Multipart/Form-Data;charset=utf-8; Boundary=\"a b\"").as_deref(), Ok("a b"));
        assert_eq!(boundary("application/json"), Err(FormError::NoBoundary));
        assert_eq!(boundary("multipart/form-data"), Err(FormError::NoBoundary));
        assert_eq!(boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))), Err(FormError::NoBoundary));
    }

    #[test]
    fn parts_are_slices_of_the_body() {
        let body = form("XyZ", &[("fax", None, br#"{"id":1}"#), ("file", Some("a \"b\".pdf"), b"%PDF-\r\n--Xy")]);
        let parts = split(&body, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].name.as_str(), parts[0].file_name.as_deref()), ("fax", None));
        assert_eq!(&parts[0].data[..], br#"{"id":1}"#);
        assert_eq!(parts[1].file_name.as_deref(), Some("a \"b\".pdf"));
        assert_eq!(&parts[1].data[..], b"%PDF-\r\n--Xy");
        // The same memory as the body.
        let inside = body.as_ptr_range();
        assert!(inside.contains(&parts[1].data.as_ptr()));
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        let junk = Bytes::from(vec![b'-'; 4096]);
        assert_eq!(split(&junk, "x"), Err(FormError::Malformed("no boundary")));
        let open = Bytes::from_static(b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue without end");
        assert_eq!(split(&open, "x"), Err(FormError::Malformed("a part has no closing boundary")));
        let nameless = Bytes::from_static(b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--");
        assert_eq!(split(&nameless, "x"), Err(FormError::Malformed("bad Content-Disposition")));
        let headless = Bytes::from_static(b"--x\r\nContent-Type: text/plain\r\n\r\nv\r\n--x--");
        assert_eq!(split(&headless, "x"), Err(FormError::Malformed("a part has no Content-Disposition")));
        let endless_headers = Bytes::from(format!("--x\r\nX: {}", "y".repeat(20_000)));
        assert_eq!(split(&endless_headers, "x"), Err(FormError::Malformed("part headers incomplete or too long")));
        let many: Vec<(&str, Option<&str>, &[u8])> = vec![("a", None, b"1"); MAX_PARTS + 1];
        assert_eq!(split(&form("x", &many), "x"), Err(FormError::TooManyParts));
        assert_eq!(split(&form("x", &many[..MAX_PARTS]), "x").map(|p| p.len()), Ok(MAX_PARTS));
    }

    /// Pieces of multipart syntax worth inserting into a form.
    const FORM_TOKENS: &[&[u8]] = &[
        b"\r\n--b0undary\r\n",
        b"\r\n--b0undary--",
        b"--b0undary",
        b"\r\n\r\n",
        b"Content-Disposition: form-data; name=\"x\"\r\n",
        b"\r\n",
    ];

    proptest! {
        #[test]
        fn generated_forms_split_into_what_was_written(
            parts in prop::collection::vec(("[a-z_]{1,12}", prop::option::of("[a-zA-Z0-9 ._-]{1,20}"),
                prop::collection::vec(any::<u8>(), 0..300)), 0..8),
        ) {
            let boundary = "----faxbotProptestBoundary7MA4YWxkTrZu0gW";
            let written: Vec<(&str, Option<&str>, &[u8])> =
                parts.iter().map(|(n, f, d)| (n.as_str(), f.as_deref(), d.as_slice())).collect();
            let body = form(boundary, &written);
            let split = split(&body, boundary).unwrap();
            prop_assert_eq!(split.len(), parts.len());
            for (got, (name, file, data)) in split.iter().zip(&parts) {
                prop_assert_eq!(&got.name, name);
                prop_assert_eq!(&got.file_name, file);
                prop_assert_eq!(&got.data[..], &data[..]);
            }
        }

        #[test]
        fn forms_with_delimiters_inserted_split_within_bounds(
            inserts in prop::collection::vec((0usize..200, prop::sample::select(FORM_TOKENS)), 0..40),
        ) {
            let body = form("b0undary", &[("fax", None, b"{\"id\":7}"), ("file", Some("f.pdf"), b"%PDF-1.4 data")]);
            let mut bytes = body.to_vec();
            for (at, token) in inserts {
                let at = at.min(bytes.len());
                bytes.splice(at..at, token.iter().copied());
            }
            let body = Bytes::from(bytes);
            if let Ok(parts) = split(&body, "b0undary") {
                prop_assert!(parts.len() <= MAX_PARTS);
                for part in parts {
                    // Every part is a slice of the body, never a copy.
                    let start = part.data.as_ptr() as usize;
                    let body_start = body.as_ptr() as usize;
                    prop_assert!(part.data.is_empty() || (start >= body_start && start + part.data.len() <= body_start + body.len()));
                }
            }
        }

        #[test]
        fn mutated_forms_never_panic(cuts in prop::collection::vec((0usize..400, any::<u8>()), 0..12), keep in 0usize..400) {
            let body = form("b0undary", &[("fax", None, b"{\"id\":7}"), ("file", Some("f.pdf"), b"%PDF-1.4 data")]);
            let mut bytes = body.to_vec();
            for (at, value) in cuts {
                if let Some(b) = bytes.get_mut(at) {
                    *b = value;
                }
            }
            bytes.truncate(keep.max(1));
            let _ = split(&Bytes::from(bytes), "b0undary");
        }
    }
}
