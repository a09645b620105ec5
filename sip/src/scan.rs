//! Small lexical helpers shared by the typed views: tokens, quoted strings, and splitting outside quotes.
//!
//! These run on every header of every message, so they avoid allocating and take the fast,
//! memchr-backed path when a value holds no quotes or angle brackets, which is most of the time.

/// Builds a byte-class table from the bytes listed plus, when `alphanumeric`, the ASCII letters and digits.
pub(crate) const fn byte_class(listed: &[u8], alphanumeric: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = alphanumeric && b.is_ascii_alphanumeric();
        c += 1;
    }
    let mut i = 0;
    while i < listed.len() {
        table[listed[i] as usize] = true;
        i += 1;
    }
    table
}

/// RFC 3261 `token` characters.
static TOKEN: [bool; 256] = byte_class(b"-.!%*_+`'~", true);

/// RFC 3261 `word` characters (Call-ID): token characters and a few separators.
static WORD: [bool; 256] = byte_class(b"-.!%*_+`'~()<>:\\\"/[]?{}", true);

/// RFC 3261 `token` characters.
pub(crate) fn is_token_char(c: u8) -> bool {
    TOKEN[usize::from(c)]
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// RFC 3261 `word`, as Call-ID is made of.
pub(crate) fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| WORD[usize::from(c)])
}

/// Bytes that change the state of [`split_outside_quotes`] for a separator, the separator included.
const fn split_specials(sep: u8) -> [bool; 256] {
    byte_class(&[sep, b'"', b'\\', b'<', b'>'], false)
}

static SPLIT_AT_COMMA: [bool; 256] = split_specials(b',');
static SPLIT_AT_SEMICOLON: [bool; 256] = split_specials(b';');

/// Splits `s` at every `sep` (`,` or `;`) that is not inside a quoted string or `<...>`.
pub(crate) fn split_outside_quotes(s: &str, sep: u8) -> SplitOutsideQuotes<'_> {
    let bytes = s.as_bytes();
    // Without quotes or angle brackets (or without any separator) every separator splits.
    let plain = !has_byte(bytes, sep) || (!has_byte(bytes, b'"') && !has_byte(bytes, b'<'));
    let specials = if sep == b';' { &SPLIT_AT_SEMICOLON } else { &SPLIT_AT_COMMA };
    SplitOutsideQuotes { s, sep, specials, plain, start: 0, done: false }
}

/// The iterator [`split_outside_quotes`] returns: always at least one item.
pub(crate) struct SplitOutsideQuotes<'a> {
    s: &'a str,
    sep: u8,
    specials: &'static [bool; 256],
    /// Every `sep` splits: no quote or angle bracket can hide one.
    plain: bool,
    start: usize,
    done: bool,
}

impl<'a> Iterator for SplitOutsideQuotes<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        let rest = self.s.get(self.start..).unwrap_or("");
        let end = if self.plain { find_byte(rest.as_bytes(), self.sep) } else { self.next_sep(rest) };
        match end {
            Some(end) => {
                self.start += end + 1;
                rest.get(..end)
            }
            None => {
                self.done = true;
                Some(rest)
            }
        }
    }
}

impl SplitOutsideQuotes<'_> {
    /// The offset of the next separator outside quotes and angle brackets.
    fn next_sep(&self, rest: &str) -> Option<usize> {
        let bytes = rest.as_bytes();
        let mut quoting = Quoting::default();
        let mut in_angle = false;
        let mut i = 0;
        while let Some(&c) = bytes.get(i) {
            i += 1;
            if !self.specials[usize::from(c)] && !quoting.escape_pending() {
                continue;
            }
            if !quoting.outside(c) {
                continue;
            }
            match c {
                b'<' => in_angle = true,
                b'>' => in_angle = false,
                _ if c == self.sep && !in_angle => return Some(i - 1),
                _ => {}
            }
        }
        None
    }
}

/// Removes the quotes and backslash escapes of a quoted string; `None` if it is not one.
pub(crate) fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    if !has_byte(inner.as_bytes(), b'\\') {
        return (!has_byte(inner.as_bytes(), b'"')).then(|| inner.to_owned());
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else if c == '"' {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Quotes a string for printing as an RFC 3261 quoted-string.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn is_lws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims the linear white space RFC 3261 allows around separators.
pub(crate) fn trim_lws(s: &str) -> &str {
    let bytes = s.as_bytes();
    let start = bytes.iter().position(|&c| !is_lws(c)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|&c| !is_lws(c)).map_or(start, |i| i + 1);
    // Both ends sit next to ASCII bytes, so they are character boundaries.
    s.get(start..end).unwrap_or("")
}

/// Parses `1*DIGIT` into a number: unlike `str::parse`, a sign or any other character is refused.
pub(crate) fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The index of the first `target` byte outside quoted strings.
pub(crate) fn find_unquoted(s: &str, target: u8) -> Option<usize> {
    let bytes = s.as_bytes();
    let first_quote = find_byte(bytes, b'"');
    let first_target = find_byte(bytes, target);
    match (first_target, first_quote) {
        (None, _) => return None,
        (Some(t), None) => return Some(t),
        (Some(t), Some(q)) if t < q => return Some(t),
        _ => {}
    }
    let mut quoting = Quoting::default();
    bytes.iter().position(|&c| quoting.outside(c) && c == target)
}

/// Follows a byte scan through RFC 3261 quoted-strings (with backslash quoted-pairs), for the
/// scanners that must skip what is quoted.
#[derive(Debug, Default)]
pub(crate) struct Quoting {
    in_quotes: bool,
    escaped: bool,
}

impl Quoting {
    /// Feeds the next byte; whether it stands outside any quoted string (the quotes themselves
    /// count as inside).
    pub(crate) fn outside(&mut self, c: u8) -> bool {
        if self.in_quotes {
            if self.escaped {
                self.escaped = false;
            } else if c == b'\\' {
                self.escaped = true;
            } else if c == b'"' {
                self.in_quotes = false;
            }
            false
        } else if c == b'"' {
            self.in_quotes = true;
            false
        } else {
            true
        }
    }

    /// Whether the next byte is escaped by a backslash.
    pub(crate) fn escape_pending(&self) -> bool {
        self.escaped
    }

    /// Whether the scan ended inside a quoted string.
    pub(crate) fn is_open(&self) -> bool {
        self.in_quotes
    }
}

/// The index of the first `needle` byte, eight bytes at a time (no unsafe, no memchr crate).
pub(crate) fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(needle);
    let mut offset = 0;
    for chunk in haystack.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let diff = u64::from_le_bytes(word) ^ pattern;
        // Some byte of `diff` is zero exactly when this is non-zero.
        if diff.wrapping_sub(ONES) & !diff & HIGHS != 0 {
            break;
        }
        offset += 8;
    }
    let tail = haystack.get(offset..)?;
    tail.iter().position(|&b| b == needle).map(|i| offset + i)
}

/// Whether `haystack` holds `needle`; for the short strings of SIP headers this beats memchr's set-up.
pub(crate) fn has_byte(haystack: &[u8], needle: u8) -> bool {
    find_byte(haystack, needle).is_some()
}

/// `str::split_once` for an ASCII separator, through [`find_byte`].
pub(crate) fn split_once_byte(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = find_byte(s.as_bytes(), sep)?;
    // An ASCII byte sits on character boundaries on both sides.
    Some((s.get(..i)?, s.get(i + 1..)?))
}
