//! PDF lexer and object parser (ISO 32000-1, 7.2 and 7.3).
//!
//! Parsed objects are bounded: string contents are never kept, names are
//! truncated to the 127-byte limit of the specification, nesting depth is
//! capped, and every parse runs against a byte budget. Values that are not
//! needed can be skipped without allocating at all.

use super::PdfError;
use super::source::Source;

/// Maximum nesting of arrays and dictionaries.
const MAX_DEPTH: usize = 64;
/// Names longer than this (the specification's limit) are truncated.
const MAX_NAME: usize = 127;
/// Default memory budget for one parsed object, in bytes.
pub(crate) const OBJECT_BUDGET: usize = 256 * 1024;

/// Builds a [`PdfError::Damaged`]. Callers pass fixed structural messages,
/// never document content.
pub(crate) fn damaged(msg: &str) -> PdfError {
    PdfError::Damaged(msg.to_string())
}

/// Keywords the parser cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    True,
    False,
    Null,
    R,
    Obj,
    EndObj,
    Stream,
    EndStream,
    Xref,
    Trailer,
    StartXref,
    Other,
}

/// A lexical token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Int(i64),
    Real(f64),
    Name(Box<[u8]>),
    /// A literal or hexadecimal string; the contents are not kept.
    Str,
    ArrayOpen,
    ArrayClose,
    DictOpen,
    DictClose,
    /// `{` or `}` (PostScript calculator functions).
    Brace,
    Keyword(Kw),
    Eof,
}

pub(crate) fn is_whitespace(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

pub(crate) fn is_delimiter(b: u8) -> bool {
    matches!(b, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%')
}

fn is_regular(b: u8) -> bool {
    !is_whitespace(b) && !is_delimiter(b)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Skips whitespace and comments.
pub(crate) fn skip_whitespace<S: Source>(src: &mut S) -> Result<(), PdfError> {
    while let Some(b) = src.peek()? {
        if is_whitespace(b) {
            src.bump();
        } else if b == b'%' {
            while let Some(c) = src.peek()? {
                if c == b'\r' || c == b'\n' {
                    break;
                }
                src.bump();
            }
        } else {
            break;
        }
    }
    Ok(())
}

/// Reads the next token. The source is left just after the token, having
/// peeked (not consumed) at most one following byte.
pub(crate) fn next_token<S: Source>(src: &mut S) -> Result<Tok, PdfError> {
    skip_whitespace(src)?;
    let Some(b) = src.peek()? else {
        return Ok(Tok::Eof);
    };
    match b {
        b'[' => {
            src.bump();
            Ok(Tok::ArrayOpen)
        }
        b']' => {
            src.bump();
            Ok(Tok::ArrayClose)
        }
        b'{' | b'}' => {
            src.bump();
            Ok(Tok::Brace)
        }
        b'(' => {
            src.bump();
            skip_literal_string(src)?;
            Ok(Tok::Str)
        }
        b'<' => {
            src.bump();
            if src.peek()? == Some(b'<') {
                src.bump();
                return Ok(Tok::DictOpen);
            }
            loop {
                match src.peek()? {
                    None => return Err(damaged("unterminated hex string")),
                    Some(b'>') => {
                        src.bump();
                        return Ok(Tok::Str);
                    }
                    Some(_) => src.bump(),
                }
            }
        }
        b'>' => {
            src.bump();
            if src.peek()? == Some(b'>') {
                src.bump();
                return Ok(Tok::DictClose);
            }
            Err(damaged("unexpected '>'"))
        }
        b')' => {
            src.bump();
            Err(damaged("unexpected ')'"))
        }
        b'/' => {
            src.bump();
            lex_name(src)
        }
        b'0'..=b'9' | b'+' | b'-' | b'.' => lex_number(src),
        _ => lex_keyword(src),
    }
}

fn skip_literal_string<S: Source>(src: &mut S) -> Result<(), PdfError> {
    let mut depth = 1usize;
    loop {
        let Some(b) = src.peek()? else {
            return Err(damaged("unterminated string"));
        };
        src.bump();
        match b {
            // Skip the escaped byte, whatever it is.
            b'\\' if src.peek()?.is_some() => src.bump(),
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(());
                }
            }
            _ => {}
        }
    }
}

fn lex_name<S: Source>(src: &mut S) -> Result<Tok, PdfError> {
    let mut name = Vec::new();
    while let Some(b) = src.peek()? {
        if !is_regular(b) {
            break;
        }
        src.bump();
        let mut byte = b;
        if b == b'#' {
            // Two hex digits follow; malformed escapes keep the '#'.
            if let Some(h) = src.peek()?.and_then(hex_value) {
                src.bump();
                byte = h;
                if let Some(l) = src.peek()?.and_then(hex_value) {
                    src.bump();
                    byte = h * 16 + l;
                }
            }
        }
        if name.len() < MAX_NAME {
            name.push(byte);
        }
    }
    Ok(Tok::Name(name.into_boxed_slice()))
}

fn lex_number<S: Source>(src: &mut S) -> Result<Tok, PdfError> {
    let mut negative = false;
    let mut int: i64 = 0;
    let mut overflow = false;
    let mut frac: f64 = 0.0;
    let mut scale = 1.0f64;
    let mut seen_dot = false;
    let mut first = true;
    while let Some(b) = src.peek()? {
        if !is_regular(b) {
            break;
        }
        src.bump();
        match b {
            b'+' | b'-' if first => negative = b == b'-',
            b'.' if !seen_dot => seen_dot = true,
            b'0'..=b'9' => {
                let d = i64::from(b - b'0');
                if seen_dot {
                    scale /= 10.0;
                    frac += d as f64 * scale;
                } else if let Some(v) = int.checked_mul(10).and_then(|v| v.checked_add(d)) {
                    int = v;
                } else {
                    overflow = true;
                }
            }
            // Garbage inside a number (e.g. "1-2"): ignore it, as viewers do.
            _ => {}
        }
        first = false;
    }
    let sign = if negative { -1 } else { 1 };
    if overflow {
        return Ok(Tok::Real(f64::from(sign) * f64::MAX));
    }
    if seen_dot { Ok(Tok::Real(f64::from(sign) * (int as f64 + frac))) } else { Ok(Tok::Int(int * i64::from(sign))) }
}

fn lex_keyword<S: Source>(src: &mut S) -> Result<Tok, PdfError> {
    let mut word = [0u8; 9];
    let mut len = 0usize;
    let mut too_long = false;
    while let Some(b) = src.peek()? {
        if !is_regular(b) {
            break;
        }
        src.bump();
        if len < word.len() {
            word[len] = b;
            len += 1;
        } else {
            too_long = true;
        }
    }
    if len == 0 {
        // A byte that is neither regular nor a known delimiter start cannot
        // occur (all delimiters are handled), but never loop forever.
        src.bump();
        return Ok(Tok::Keyword(Kw::Other));
    }
    if too_long {
        return Ok(Tok::Keyword(Kw::Other));
    }
    let kw = match &word[..len] {
        b"true" => Kw::True,
        b"false" => Kw::False,
        b"null" => Kw::Null,
        b"R" => Kw::R,
        b"obj" => Kw::Obj,
        b"endobj" => Kw::EndObj,
        b"stream" => Kw::Stream,
        b"endstream" => Kw::EndStream,
        b"xref" => Kw::Xref,
        b"trailer" => Kw::Trailer,
        b"startxref" => Kw::StartXref,
        _ => Kw::Other,
    };
    Ok(Tok::Keyword(kw))
}

/// A parsed PDF object. Strings are kept only as a marker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Obj {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    Name(Box<[u8]>),
    Str,
    Array(Vec<Obj>),
    Dict(Dict),
    Ref(u32, u16),
}

impl Obj {
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Obj::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub(crate) fn as_name(&self) -> Option<&[u8]> {
        match self {
            Obj::Name(n) => Some(n),
            _ => None,
        }
    }
    pub(crate) fn as_dict(&self) -> Option<&Dict> {
        match self {
            Obj::Dict(d) => Some(d),
            _ => None,
        }
    }
    pub(crate) fn as_array(&self) -> Option<&[Obj]> {
        match self {
            Obj::Array(a) => Some(a),
            _ => None,
        }
    }
    pub(crate) fn as_ref(&self) -> Option<u32> {
        match self {
            Obj::Ref(n, _) => Some(*n),
            _ => None,
        }
    }
}

/// A dictionary; small, so a vector of pairs is fine. Later duplicates of a
/// key are ignored, as in most readers.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Dict(pub(crate) Vec<(Box<[u8]>, Obj)>);

impl Dict {
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Obj> {
        self.0.iter().find(|(k, _)| &**k == key).map(|(_, v)| v)
    }
    pub(crate) fn get_int(&self, key: &[u8]) -> Option<i64> {
        self.get(key).and_then(Obj::as_int)
    }
    pub(crate) fn get_name(&self, key: &[u8]) -> Option<&[u8]> {
        self.get(key).and_then(Obj::as_name)
    }
    pub(crate) fn has_type(&self, ty: &[u8]) -> bool {
        self.get_name(b"Type") == Some(ty)
    }
}

/// Summary of a page tree node: all the walker needs, so that page
/// dictionaries (resources, annotations...) are never materialised.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct NodeInfo {
    /// Value of `/Type`, if it is `/Page` or `/Pages`.
    pub(crate) kind: NodeKind,
    /// Object numbers in `/Kids`, if present.
    pub(crate) kids: Option<Vec<u32>>,
    /// `/Kids` had more entries than were kept.
    pub(crate) kids_overflow: bool,
    /// `/Count`, if it is an integer.
    pub(crate) count: Option<i64>,
}

/// The `/Type` of a page tree node, as far as the walk cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Page,
    Pages,
    #[default]
    Other,
}

/// Recursive-descent parser with up to two tokens of pushback (needed to
/// recognise `n g R` references).
pub(crate) struct Parser<S> {
    pub(crate) src: S,
    pushback: Vec<Tok>,
    budget: usize,
}

impl<S: Source> Parser<S> {
    pub(crate) fn new(src: S) -> Self {
        Self { src, pushback: Vec::with_capacity(2), budget: OBJECT_BUDGET }
    }

    pub(crate) fn next(&mut self) -> Result<Tok, PdfError> {
        match self.pushback.pop() {
            Some(t) => Ok(t),
            None => next_token(&mut self.src),
        }
    }

    fn unread(&mut self, tok: Tok) {
        self.pushback.push(tok);
    }

    /// True when no token has been read ahead, so `src.pos()` is exact.
    pub(crate) fn at_source_position(&self) -> bool {
        self.pushback.is_empty()
    }

    fn charge(&mut self, bytes: usize) -> Result<(), PdfError> {
        let cost = std::mem::size_of::<Obj>() + bytes;
        self.budget = self.budget.checked_sub(cost).ok_or_else(|| damaged("object exceeds parser limits"))?;
        Ok(())
    }

    /// Parses one value.
    pub(crate) fn parse_value(&mut self) -> Result<Obj, PdfError> {
        let tok = self.next()?;
        self.value_from(tok, 0, true)
    }

    /// Parses one value that is known not to be a reference (the value of
    /// an object in an object stream). Unlike [`Parser::parse_value`], a
    /// top-level integer does not read ahead, so the source position stays
    /// exact for the next object.
    pub(crate) fn parse_direct_value(&mut self) -> Result<Obj, PdfError> {
        match self.next()? {
            Tok::Int(i) => Ok(Obj::Int(i)),
            tok => self.value_from(tok, 0, true),
        }
    }

    /// Parses a value starting with `tok`. When `keep` is false, nothing is
    /// stored and `Obj::Null` is returned.
    fn value_from(&mut self, tok: Tok, depth: usize, keep: bool) -> Result<Obj, PdfError> {
        if depth > MAX_DEPTH {
            return Err(damaged("objects nested too deeply"));
        }
        if keep {
            let extra = if let Tok::Name(n) = &tok { n.len() } else { 0 };
            self.charge(extra)?;
        }
        Ok(match tok {
            Tok::Int(a) => self.int_or_ref(a)?,
            Tok::Real(r) => Obj::Real(r),
            Tok::Name(n) => {
                if keep {
                    Obj::Name(n)
                } else {
                    Obj::Null
                }
            }
            Tok::Str => Obj::Str,
            Tok::Keyword(Kw::True) => Obj::Bool(true),
            Tok::Keyword(Kw::False) => Obj::Bool(false),
            Tok::Keyword(Kw::Null) => Obj::Null,
            Tok::ArrayOpen => {
                let mut items = Vec::new();
                loop {
                    let t = self.next()?;
                    if t == Tok::ArrayClose {
                        break;
                    }
                    if t == Tok::Eof {
                        return Err(damaged("unterminated array"));
                    }
                    let v = self.value_from(t, depth + 1, keep)?;
                    if keep {
                        items.push(v);
                    }
                }
                Obj::Array(items)
            }
            Tok::DictOpen => {
                let mut entries = Vec::new();
                loop {
                    let key = match self.next()? {
                        Tok::DictClose => break,
                        Tok::Name(k) => k,
                        Tok::Eof => return Err(damaged("unterminated dictionary")),
                        _ => return Err(damaged("dictionary key is not a name")),
                    };
                    if keep {
                        self.charge(key.len())?;
                    }
                    let t = self.next()?;
                    if t == Tok::DictClose {
                        // Missing value: treat as null and end the dictionary.
                        break;
                    }
                    let v = self.value_from(t, depth + 1, keep)?;
                    if keep {
                        entries.push((key, v));
                    }
                }
                Obj::Dict(Dict(entries))
            }
            Tok::Eof => return Err(damaged("unexpected end of data")),
            _ => return Err(damaged("unexpected token")),
        })
    }

    fn int_or_ref(&mut self, a: i64) -> Result<Obj, PdfError> {
        let t2 = self.next()?;
        if let Tok::Int(b) = t2 {
            let t3 = self.next()?;
            if t3 == Tok::Keyword(Kw::R)
                && let (Ok(num), Ok(generation)) = (u32::try_from(a), u16::try_from(b))
            {
                return Ok(Obj::Ref(num, generation));
            }
            self.unread(t3);
        }
        self.unread(t2);
        Ok(Obj::Int(a))
    }

    /// Parses an indirect object header `num gen obj` and returns `num`.
    pub(crate) fn object_header(&mut self) -> Result<u32, PdfError> {
        let (Tok::Int(num), Tok::Int(_), Tok::Keyword(Kw::Obj)) = (self.next()?, self.next()?, self.next()?) else {
            return Err(damaged("expected an object header"));
        };
        u32::try_from(num).map_err(|_| damaged("bad object number"))
    }

    /// After the value of an indirect object, checks for `stream` and, if
    /// present, returns the offset of the stream data.
    pub(crate) fn stream_start(&mut self) -> Result<Option<u64>, PdfError> {
        let tok = self.next()?;
        if tok != Tok::Keyword(Kw::Stream) {
            return Ok(None);
        }
        if !self.at_source_position() {
            return Err(damaged("malformed stream"));
        }
        // The keyword is followed by CRLF or LF (a lone CR is tolerated).
        if self.src.peek()? == Some(b'\r') {
            self.src.bump();
        }
        if self.src.peek()? == Some(b'\n') {
            self.src.bump();
        }
        Ok(Some(self.src.pos()))
    }

    /// Parses a page tree node value, keeping only `/Type`, `/Kids` and
    /// `/Count`. At most `max_kids` kids are kept; more set the overflow
    /// flag. Non-dictionary values give `None`.
    pub(crate) fn parse_node(&mut self, max_kids: usize) -> Result<Option<NodeInfo>, PdfError> {
        if self.next()? != Tok::DictOpen {
            // Not a dictionary, so not a node. Nothing more is read, so the
            // source stays right after this token.
            return Ok(None);
        }
        let mut info = NodeInfo::default();
        loop {
            let key = match self.next()? {
                Tok::DictClose => break,
                Tok::Name(k) => k,
                Tok::Eof => return Err(damaged("unterminated dictionary")),
                _ => return Err(damaged("dictionary key is not a name")),
            };
            let t = self.next()?;
            if t == Tok::DictClose {
                break;
            }
            match &*key {
                b"Type" => {
                    if let Tok::Name(n) = &t {
                        info.kind = match &**n {
                            b"Page" => NodeKind::Page,
                            b"Pages" => NodeKind::Pages,
                            _ => NodeKind::Other,
                        };
                    } else {
                        self.value_from(t, 1, false)?;
                    }
                }
                b"Count" => {
                    if let Obj::Int(c) = self.value_from(t, 1, true)? {
                        info.count = Some(c);
                    }
                }
                b"Kids" if t == Tok::ArrayOpen => {
                    let mut kids = Vec::new();
                    loop {
                        let k = self.next()?;
                        match k {
                            Tok::ArrayClose => break,
                            Tok::Eof => return Err(damaged("unterminated array")),
                            _ => {}
                        }
                        // Direct dictionaries or other junk in /Kids are
                        // invalid; skip them.
                        if let Obj::Ref(n, _) = self.value_from(k, 1, false)? {
                            if kids.len() < max_kids {
                                kids.push(n);
                            } else {
                                info.kids_overflow = true;
                            }
                        }
                    }
                    info.kids = Some(kids);
                }
                _ => {
                    self.value_from(t, 1, false)?;
                }
            }
        }
        Ok(Some(info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In-memory source for lexer tests.
    struct Bytes<'a> {
        data: &'a [u8],
        pos: usize,
    }

    impl Source for Bytes<'_> {
        fn peek(&mut self) -> Result<Option<u8>, PdfError> {
            Ok(self.data.get(self.pos).copied())
        }
        fn bump(&mut self) {
            self.pos += 1;
        }
        fn pos(&self) -> u64 {
            self.pos as u64
        }
    }

    fn parser(data: &[u8]) -> Parser<Bytes<'_>> {
        Parser::new(Bytes { data, pos: 0 })
    }

    fn name(n: &str) -> Obj {
        Obj::Name(n.as_bytes().into())
    }

    #[test]
    fn parses_objects_with_comments_and_references() {
        let mut p = parser(
            b"<</Type/Pages%comment\r/Kids[3 0 R 4 1 R]/Count 2/A (x(y)\\)z)/B<41 42>/C -1.5/D true/N#41 null>>",
        );
        let Obj::Dict(d) = p.parse_value().unwrap() else { panic!("not a dict") };
        assert_eq!(d.get(b"Type"), Some(&name("Pages")));
        assert_eq!(d.get(b"Kids"), Some(&Obj::Array(vec![Obj::Ref(3, 0), Obj::Ref(4, 1)])));
        assert_eq!(d.get_int(b"Count"), Some(2));
        assert_eq!(d.get(b"A"), Some(&Obj::Str));
        assert_eq!(d.get(b"B"), Some(&Obj::Str));
        assert_eq!(d.get(b"C"), Some(&Obj::Real(-1.5)));
        assert_eq!(d.get(b"D"), Some(&Obj::Bool(true)));
        assert_eq!(d.get(b"NA"), Some(&Obj::Null));
    }

    #[test]
    fn integers_not_followed_by_r_stay_integers() {
        let mut p = parser(b"[1 2 3 0 R 4]");
        assert_eq!(p.parse_value().unwrap(), Obj::Array(vec![Obj::Int(1), Obj::Int(2), Obj::Ref(3, 0), Obj::Int(4)]));
    }

    #[test]
    fn object_header_and_stream_start() {
        let data = b"12 0 obj\n<< /Length 3 >>\r\nstream\r\nabc\nendstream";
        let mut p = parser(data);
        assert_eq!(p.object_header().unwrap(), 12);
        assert!(p.parse_value().unwrap().as_dict().is_some());
        let start = p.stream_start().unwrap().unwrap();
        assert_eq!(&data[start as usize..start as usize + 3], b"abc");
    }

    #[test]
    fn node_parsing_keeps_only_tree_keys() {
        let mut p =
            parser(b"<< /Type /Pages /Resources << /Font << /F1 5 0 R >> >> /Kids [ 1 0 R 2 0 R 3 0 R ] /Count 3 >>");
        let info = p.parse_node(2).unwrap().unwrap();
        assert_eq!(info.kind, NodeKind::Pages);
        assert_eq!(info.kids, Some(vec![1, 2]));
        assert!(info.kids_overflow);
        assert_eq!(info.count, Some(3));
    }

    #[test]
    fn budget_limits_huge_objects() {
        let mut data = b"[".to_vec();
        for _ in 0..100_000 {
            data.extend_from_slice(b"/Name ");
        }
        data.push(b']');
        let mut p = parser(&data);
        assert!(matches!(p.parse_value(), Err(PdfError::Damaged(_))));
        // Skipping the same value (an unneeded key of a node) needs no budget.
        let mut node = b"<< /Type /Page /Annots ".to_vec();
        node.extend_from_slice(&data);
        node.extend_from_slice(b" >>");
        let mut p = parser(&node);
        assert_eq!(p.parse_node(10).unwrap().unwrap().kind, NodeKind::Page);
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let data = vec![b'['; 1000];
        let mut p = parser(&data);
        assert!(matches!(p.parse_value(), Err(PdfError::Damaged(_))));
    }
}
