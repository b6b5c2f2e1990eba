//! The one reading of guest SQL: ClickHouse's lexer, as both the oldest server
//! the host supports (18.16) and current ones (26.9) run it.
//!
//! Everything that looks at guest SQL goes through [`tokenize`]: the
//! statement check, the placeholder finder and the result cache's key. Three
//! readings would drift apart; one cannot.
//!
//! Where the two servers read the same text differently, or where the text
//! could mean one thing to the host and another to a server, the lexer
//! refuses instead of guessing. Each rule below was checked against both
//! servers, and `tests/tokenizer.rs` keeps checking them (generated SQL read
//! by this lexer, by 18.16 and by chdb 26.9 must agree):
//!
//! - **Whitespace** is ASCII's six (`' '`, `\t`, `\n`, `\r`, `\f`, `\v`).
//!   Current servers also skip Unicode spaces, 18.16 does not: any non-ASCII
//!   character outside quotes and comments is refused.
//! - **Comments**: `--` to the end of the line (only `\n` ends it), and
//!   `/* … */`. Current servers nest block comments, 18.16 ends them at the
//!   first `*/`: a `/*` inside a comment is refused. `//` and `#` (comments
//!   on some versions) and `$` (heredoc strings, and a word character on
//!   current servers) are refused outside quotes.
//! - **Strings** (`'…'`) decode `''`, and the escapes both servers decode
//!   alike: `\\ \' \" \` \/ \=`, `\0 \a \b \e \f \n \r \t \v`, `\N` (nothing),
//!   `\xHH` with two hex digits, and a backslash before an ASCII control
//!   character (the character). After any other character 18.16 drops the
//!   backslash and current servers keep it: refused.
//! - **Quoted names** (`` `…` `` and `"…"`) decode a doubled quote; a
//!   backslash in a quoted name is refused outright, so no name can hide
//!   behind an escape (`` `pro\x63esses` `` is `processes` to ClickHouse).
//! - **Numbers** follow ClickHouse's rules (hex with `0x`, a decimal point,
//!   an exponent, after a `.` only digits, for `t.1.2`); a number directly
//!   followed by a letter, digit or `_` (`1_000`, `0b101`, `123abc`) is an
//!   error on 18.16 and something else on current servers: refused.
//! - **Words** are ASCII letters, digits and `_`, not starting with a digit;
//!   a word glued to a string (`X'41'`, `B'01'`: one hex or binary string
//!   to current servers) is refused.
//! - **Placeholders** `{name:Type}` are one token; any other `{` is refused.

use std::borrow::Cow;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A bare word: a keyword or an unquoted name.
    Word,
    /// A `` `quoted` `` or `"quoted"` name; [`Token::name`] decodes it.
    QuotedName,
    /// A `'string'` literal; [`Token::string_value`] decodes it.
    String,
    /// A number literal.
    Number,
    /// A `{name:Type}` query parameter.
    Placeholder,
    /// An operator or punctuation: `(`, `,`, `::`, `<=`, `->`, …
    Punct,
}

/// One token of a query; comments and whitespace are not tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    /// What it is.
    pub kind: TokenKind,
    /// Its text exactly as written (quotes included).
    pub raw: &'a str,
    /// Where it starts in the query, in bytes.
    pub start: usize,
}

impl<'a> Token<'a> {
    /// The end of the token in the query, in bytes.
    pub fn end(&self) -> usize {
        self.start + self.raw.len()
    }

    /// The name this token is, if it is one: a bare word as written, a
    /// quoted name decoded (the lexer admits no escapes in quoted names, so
    /// decoding is undoubling the quote).
    pub fn name(&self) -> Option<Cow<'a, str>> {
        match self.kind {
            TokenKind::Word => Some(Cow::Borrowed(self.raw)),
            TokenKind::QuotedName => {
                let quote = &self.raw[..1];
                let inner = &self.raw[1..self.raw.len() - 1];
                if inner.contains(quote) {
                    Some(Cow::Owned(inner.replace(&quote.repeat(2), quote)))
                } else {
                    Some(Cow::Borrowed(inner))
                }
            }
            _ => None,
        }
    }

    /// Whether this token is the keyword `keyword` (any case).
    pub fn is_word(&self, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.raw.eq_ignore_ascii_case(keyword)
    }

    /// Whether this token is the punctuation `text`.
    pub fn is_punct(&self, text: &str) -> bool {
        self.kind == TokenKind::Punct && self.raw == text
    }

    /// The bytes a string literal stands for, decoded as ClickHouse does.
    pub fn string_value(&self) -> Option<Vec<u8>> {
        (self.kind == TokenKind::String).then(|| decode_string(&self.raw[1..self.raw.len() - 1]))
    }

    /// A placeholder's name and type text, trimmed.
    pub fn placeholder(&self) -> Option<(&'a str, &'a str)> {
        if self.kind != TokenKind::Placeholder {
            return None;
        }
        let inner = &self.raw[1..self.raw.len() - 1];
        let (name, type_text) = inner.split_once(':')?;
        Some((name.trim(), type_text.trim()))
    }
}

/// Why the lexer refused a query: the message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {at})")]
pub struct LexError {
    /// Where the problem starts, in bytes.
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

fn refuse<T>(at: usize, message: impl Into<String>) -> Result<T, LexError> {
    Err(LexError {
        at,
        message: message.into(),
    })
}

/// The whitespace both servers skip.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Characters of bare words (ClickHouse's `isWordCharASCII`).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Operators of two or three characters, longest first: ClickHouse reads
/// them as one token each.
const OPERATORS: &[&str] = &["<=>", "->", "::", "<=", ">=", "<>", "!=", "==", "||"];

/// Characters that are a token on their own.
const SINGLE: &[u8] = b"()[],;.+-*/%=<>?:";

/// Split `sql` into tokens as ClickHouse reads it; refuse what the servers
/// read differently.
pub fn tokenize(sql: &str) -> Result<Vec<Token<'_>>, LexError> {
    let bytes = sql.as_bytes();
    let mut tokens: Vec<Token<'_>> = Vec::with_capacity(sql.len() / 4 + 4);
    let mut i = 0;
    // Every branch starts on an ASCII byte and ends at an ASCII byte or the
    // end, so every slice below is on a character boundary.
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let kind = match b {
            b if is_space(b) => {
                i += 1;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = find(bytes, i + 2, b"\n").unwrap_or(bytes.len());
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(bytes, i)?;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                return refuse(i, "`//` is not accepted; use -- for comments");
            }
            b'#' => return refuse(i, "`#` is not accepted; use -- for comments"),
            b'$' => {
                return refuse(
                    i,
                    "`$` is not accepted outside strings (no $heredoc$ strings, no $ in names)",
                );
            }
            b'\'' => {
                i = scan_string(bytes, i)?;
                TokenKind::String
            }
            b'`' | b'"' => {
                i = scan_quoted_name(bytes, i)?;
                TokenKind::QuotedName
            }
            b'{' => {
                i = scan_placeholder(sql, i)?;
                TokenKind::Placeholder
            }
            b'0'..=b'9' => {
                i = scan_number(bytes, i, previous_is_dot(&tokens))?;
                TokenKind::Number
            }
            b'.' if starts_number_after_dot(bytes, i, &tokens) => {
                i = scan_fraction(bytes, i)?;
                TokenKind::Number
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'$') {
                    return refuse(i, "`$` is not accepted in names");
                }
                // `X'31'` and `B'0101'` are one string to current servers
                // and a name and a string to 18.16.
                if bytes.get(i) == Some(&b'\'') {
                    return refuse(
                        start,
                        "a name directly followed by a 'string' (X'41', B'01') is read differently by ClickHouse versions",
                    );
                }
                TokenKind::Word
            }
            b if b.is_ascii_control() => {
                return refuse(
                    i,
                    format!("control character {b:#04x} outside a string is not accepted"),
                );
            }
            b if !b.is_ascii() => {
                return refuse(
                    i,
                    "characters other than ASCII are accepted only inside strings, quoted names and comments",
                );
            }
            _ => {
                if let Some(op) = OPERATORS
                    .iter()
                    .find(|op| bytes[i..].starts_with(op.as_bytes()))
                {
                    i += op.len();
                } else if SINGLE.contains(&b) {
                    i += 1;
                } else {
                    return refuse(i, format!("`{}` is not accepted here", b as char));
                }
                TokenKind::Punct
            }
        };
        tokens.push(Token {
            kind,
            raw: &sql[start..i],
            start,
        });
    }
    Ok(tokens)
}

/// The first `needle` at or after `from`.
fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| from + at)
}

/// After a `/*` at `start`: the end of the comment. A `/*` inside it is
/// refused (current servers nest comments, 18.16 does not).
fn skip_block_comment(bytes: &[u8], start: usize) -> Result<usize, LexError> {
    let mut i = start + 2;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'*', b'/') => return Ok(i + 2),
            (b'/', b'*') => {
                return refuse(
                    i,
                    "a /* inside a /* comment */ is not accepted (ClickHouse versions disagree on nesting)",
                );
            }
            _ => i += 1,
        }
    }
    refuse(start, "a /* comment is not closed")
}

/// After a `'` at `start`: the end of the string (past its closing quote).
fn scan_string(bytes: &[u8], start: usize) -> Result<usize, LexError> {
    let mut i = start + 1;
    loop {
        match bytes.get(i) {
            None => return refuse(start, "a 'string' is not closed"),
            Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            Some(b'\'') => return Ok(i + 1),
            Some(b'\\') => i = check_escape(bytes, i)?,
            Some(_) => i += 1,
        }
    }
}

/// The escape at `at` (a backslash) in a string: where the text after it
/// goes on, if both server generations decode it alike.
fn check_escape(bytes: &[u8], at: usize) -> Result<usize, LexError> {
    match bytes.get(at + 1) {
        None => refuse(at, "a 'string' ends in a backslash"),
        Some(b'x') => {
            let hex = bytes.get(at + 2..at + 4);
            if hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                Ok(at + 4)
            } else {
                refuse(at, "\\x in a string needs two hex digits (\\x41)")
            }
        }
        Some(&c) if agreed_escape(c).is_some() || c == b'N' || c < 0x20 => Ok(at + 2),
        Some(&c) => {
            let shown = if c.is_ascii_graphic() {
                format!("\\{}", c as char)
            } else {
                "a backslash before this character".to_owned()
            };
            refuse(
                at,
                format!(
                    "{shown} in a string is read differently by ClickHouse versions; write \\\\ for a backslash"
                ),
            )
        }
    }
}

/// What an escape character decodes to where every server agrees.
fn agreed_escape(c: u8) -> Option<u8> {
    Some(match c {
        b'\\' | b'\'' | b'"' | b'`' | b'/' | b'=' => c,
        b'0' => 0,
        b'a' => 0x07,
        b'b' => 0x08,
        b'e' => 0x1b,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 0x0b,
        _ => return None,
    })
}

/// The bytes of a string literal's inside (as [`scan_string`] admitted it).
fn decode_string(inner: &str) -> Vec<u8> {
    let bytes = inner.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => {
                // A doubled quote, the only way a quote is inside.
                out.push(b'\'');
                i += 2;
            }
            b'\\' => {
                let c = bytes.get(i + 1).copied().unwrap_or(b'\\');
                match c {
                    b'x' => {
                        let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap_or("00");
                        out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                        i += 4;
                    }
                    b'N' => i += 2,
                    c => {
                        out.push(agreed_escape(c).unwrap_or(c));
                        i += 2;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// After a `` ` `` or `"` at `start`: the end of the quoted name.
fn scan_quoted_name(bytes: &[u8], start: usize) -> Result<usize, LexError> {
    let quote = bytes[start];
    let mut i = start + 1;
    loop {
        match bytes.get(i) {
            None => return refuse(start, "a quoted name is not closed"),
            Some(&b) if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            Some(&b) if b == quote => {
                if i == start + 1 {
                    return refuse(start, "an empty quoted name is not a name");
                }
                return Ok(i + 1);
            }
            Some(b'\\') => {
                return refuse(
                    i,
                    "escape sequences in quoted names are not accepted (ClickHouse decodes them, so the name is not what it looks like)",
                );
            }
            Some(_) => i += 1,
        }
    }
}

/// After a `{` at `start`: the end of a `{name:Type}` placeholder.
fn scan_placeholder(sql: &str, start: usize) -> Result<usize, LexError> {
    let bytes = sql.as_bytes();
    let Some(close) = find(bytes, start + 1, b"}") else {
        return refuse(start, "a '{' is not closed: parameters are {name:Type}");
    };
    let inner = &sql[start + 1..close];
    let Some((name, type_text)) = inner.split_once(':') else {
        return refuse(
            start,
            "'{' starts a {name:Type} parameter (write map('k', v) for a map)",
        );
    };
    let name = name.trim();
    let valid_name = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(is_word_byte);
    if !valid_name {
        return refuse(start, "a parameter's name is letters, digits and '_'");
    }
    if type_text.trim().is_empty() || type_text.contains('{') {
        return refuse(start, "a parameter needs a type: {name:Type}");
    }
    Ok(close + 1)
}

fn previous_is_dot(tokens: &[Token<'_>]) -> bool {
    tokens.last().is_some_and(|t| t.is_punct("."))
}

/// ClickHouse reads a `.` before a digit as a number (`.5`) at the very
/// start, or after anything but a name, a number or a closing bracket;
/// otherwise it is a dot (`t.1`, `x.5`).
fn starts_number_after_dot(bytes: &[u8], at: usize, tokens: &[Token<'_>]) -> bool {
    if !bytes.get(at + 1).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    if at == 0 {
        return true;
    }
    !tokens.last().is_some_and(|t| {
        matches!(
            t.kind,
            TokenKind::Word | TokenKind::QuotedName | TokenKind::Number
        ) || t.is_punct(")")
            || t.is_punct("]")
    })
}

/// A number starting with a digit at `start`.
fn scan_number(bytes: &[u8], start: usize, after_dot: bool) -> Result<usize, LexError> {
    let mut i = start + 1;
    if after_dot {
        // `t.1.2` is two tuple accesses, not `t . 1.2`.
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        return end_of_number(bytes, start, i);
    }
    let hex = bytes[start] == b'0'
        && matches!(bytes.get(start + 1), Some(b'x' | b'X'))
        && bytes.get(start + 2).is_some_and(u8::is_ascii_hexdigit);
    if hex {
        i = start + 2;
    }
    let digit = |b: &u8| {
        if hex {
            b.is_ascii_hexdigit()
        } else {
            b.is_ascii_digit()
        }
    };
    while bytes.get(i).is_some_and(digit) {
        i += 1;
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        while bytes.get(i).is_some_and(digit) {
            i += 1;
        }
    }
    let exponent: &[u8] = if hex { b"pP" } else { b"eE" };
    i = scan_exponent(bytes, i, exponent);
    end_of_number(bytes, start, i)
}

/// A number starting with `.` at `start` (`.5`, `.5e3`).
fn scan_fraction(bytes: &[u8], start: usize) -> Result<usize, LexError> {
    let mut i = start + 1;
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i = scan_exponent(bytes, i, b"eE");
    end_of_number(bytes, start, i)
}

/// An exponent at `i`, as ClickHouse takes it: the letter only when
/// something follows it, the sign only when something follows that.
fn scan_exponent(bytes: &[u8], mut i: usize, letters: &[u8]) -> usize {
    if i + 1 < bytes.len() && letters.contains(&bytes[i]) {
        i += 1;
        if i + 1 < bytes.len() && matches!(bytes[i], b'+' | b'-') {
            i += 1;
        }
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    i
}

fn end_of_number(bytes: &[u8], start: usize, end: usize) -> Result<usize, LexError> {
    match bytes.get(end) {
        Some(&b) if is_word_byte(b) || b == b'$' => refuse(
            start,
            "a number directly followed by a letter, digit or '_' is read differently by ClickHouse versions (write 1000, not 1_000; 0x5, not 0b101)",
        ),
        _ => Ok(end),
    }
}

/// The tokens of `sql` written out with one space between them: what
/// ClickHouse reads, without comments or layout. Two queries with the same
/// canonical text are the same token sequence (the lexer reads the text
/// back into exactly these tokens), so it can key a cache.
pub fn canonical(tokens: &[Token<'_>]) -> String {
    let mut out = String::with_capacity(tokens.iter().map(|t| t.raw.len() + 1).sum());
    for (i, token) in tokens.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(token.raw);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(TokenKind, &str)> {
        tokenize(sql)
            .unwrap_or_else(|err| panic!("{sql:?}: {err}"))
            .into_iter()
            .map(|t| (t.kind, t.raw))
            .collect()
    }

    fn refused(sql: &str) -> bool {
        tokenize(sql).is_err()
    }

    #[test]
    fn splits_as_clickhouse_does() {
        use TokenKind::*;
        assert_eq!(
            kinds("SELECT a.1, 'x''y', `q`, 1e-3 -- c\nFROM t/* c */WHERE x<=2"),
            vec![
                (Word, "SELECT"),
                (Word, "a"),
                (Punct, "."),
                (Number, "1"),
                (Punct, ","),
                (String, "'x''y'"),
                (Punct, ","),
                (QuotedName, "`q`"),
                (Punct, ","),
                (Number, "1e-3"),
                (Word, "FROM"),
                (Word, "t"),
                (Word, "WHERE"),
                (Word, "x"),
                (Punct, "<="),
                (Number, "2"),
            ]
        );
        assert_eq!(
            kinds("t.1.2"),
            vec![
                (Word, "t"),
                (Punct, "."),
                (Number, "1"),
                (Punct, "."),
                (Number, "2")
            ]
        );
        assert_eq!(kinds(".5"), vec![(Number, ".5")]);
        assert_eq!(kinds("(.5)")[1], (Number, ".5"));
        assert_eq!(kinds("x .5")[1], (Punct, "."));
        assert_eq!(
            kinds("0x1Fp2 1.e3 08"),
            vec![(Number, "0x1Fp2"), (Number, "1.e3"), (Number, "08")]
        );
        assert_eq!(kinds("{n:UInt8}"), vec![(Placeholder, "{n:UInt8}")]);
    }

    #[test]
    fn a_line_comment_ends_only_at_a_line_feed() {
        assert_eq!(kinds("SELECT 1 -- x\r, 2").len(), 2);
        assert_eq!(kinds("SELECT 1 -- x\n, 2").len(), 4);
    }

    #[test]
    fn names_decode_doubled_quotes_and_refuse_escapes() {
        let tokens = tokenize("SELECT `a``b`, \"c\"\"d\"").unwrap();
        assert_eq!(tokens[1].name().as_deref(), Some("a`b"));
        assert_eq!(tokens[3].name().as_deref(), Some("c\"d"));
        for sql in [
            "SELECT query FROM system.`pro\\x63esses`",
            "SELECT * FROM \"u\\rl\"('x')",
            "SELECT `a\\Nb`",
            "SELECT ``",
        ] {
            assert!(refused(sql), "{sql}");
        }
    }

    #[test]
    fn strings_decode_the_escapes_servers_agree_on() {
        let value = |sql: &str| tokenize(sql).unwrap()[0].string_value().unwrap();
        assert_eq!(value(r"'a\x41\N\n\\\'b'"), b"aA\n\\'b");
        assert_eq!(value("'it''s'"), b"it's");
        assert_eq!(value("'\\\tx'"), b"\tx");
        for sql in [
            r"'100\%'",
            r"'\u0041'",
            r"'\x4'",
            r"'\xZZ'",
            "'\\é'",
            "'a\\",
        ] {
            assert!(refused(sql), "{sql}");
        }
    }

    #[test]
    fn what_servers_read_differently_is_refused() {
        for sql in [
            "SELECT 1_000",
            "SELECT 0b101",
            "SELECT 123abc",
            "SELECT 1e",
            "SELECT 0xg",
            "SELECT a$b",
            "SELECT $$x$$",
            "SELECT 1 // c",
            "SELECT 1 # c",
            "SELECT 1 /* a /* b */ */",
            "SELECT 1 /* open",
            "SELECT 1\u{a0}AS x",
            "SELECT ✓",
            "SELECT 1\0",
            "SELECT 1 \\ 2",
            "SELECT {'a': 1}",
            "SELECT {x}",
            "SELECT {1x:UInt8}",
            "SELECT 'open",
            "SELECT @x",
            "SELECT !x",
            "SELECT X'31'",
            "SELECT b'0101'",
        ] {
            assert!(refused(sql), "{sql:?} was accepted");
        }
    }

    #[test]
    fn canonical_text_reads_back_into_the_same_tokens() {
        for sql in [
            "SELECT 1 -- c\nWHERE x",
            "SELECT a.1.2, (.5), 'x' 'y' FROM t",
            "select `a b`,\"c\"\"d\" from {t:Identifier}",
            "SELECT - -1, 1-2",
        ] {
            let tokens = tokenize(sql).unwrap();
            let text = canonical(&tokens);
            let again: Vec<_> = tokenize(&text)
                .unwrap()
                .into_iter()
                .map(|t| (t.kind, t.raw))
                .collect();
            let first: Vec<_> = tokens.into_iter().map(|t| (t.kind, t.raw)).collect();
            assert_eq!(first, again, "{sql}");
        }
        // The comment's WHERE is not the query's WHERE.
        let commented = canonical(&tokenize("SELECT 1 -- x\nWHERE 0").unwrap());
        let folded = canonical(&tokenize("SELECT 1 -- x WHERE 0").unwrap());
        assert_ne!(commented, folded);
    }
}
