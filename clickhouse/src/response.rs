//! Reading ClickHouse's HTTP answers: the error texts it writes, in every
//! version's wording, and the exception it appends to a result it has already
//! started sending with `200 OK`.
//!
//! Both the host and the adapter stream results on to a guest, so both must
//! hold back the tail of every result ([`HoldBack`]) until more data, or the
//! end, shows that it is rows and not an exception.

use std::collections::VecDeque;
use std::fmt;

/// Longest message kept from an exception: ClickHouse's are a line or two,
/// and whatever is passed on to guests and logs stays bounded.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Bytes of a result held back by default: comfortably more than any
/// exception text ClickHouse appends.
pub const DEFAULT_HOLD_BACK: usize = 16 * 1024;

/// At most this many `Code: ` lines at the end of a result are tried as an
/// exception: a result made of such lines must not cost quadratic time.
const MAX_CANDIDATES: usize = 8;

/// An error report parsed from a ClickHouse response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerException {
    /// ClickHouse's error code (`Code: N`).
    pub code: u32,
    /// The human-readable part of the message.
    pub message: String,
}

impl fmt::Display for ServerException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code: {}: {}", self.code, self.message)
    }
}

/// ClickHouse error codes that mean "the query ran out of time".
const TIMEOUT_CODES: [u32; 2] = [
    159, // TIMEOUT_EXCEEDED
    394, // QUERY_WAS_CANCELLED (by KILL QUERY after the deadline)
];

impl ServerException {
    /// Parse the exception text ClickHouse writes in an error body, in both
    /// the 18.x–21.x form (`Code: 62, e.displayText() = DB::Exception: …,
    /// e.what() = DB::Exception`) and the current one (`Code: 62.
    /// DB::Exception: …. (SYNTAX_ERROR) (version 24.3.1.1)`).
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.trim_start().strip_prefix("Code: ")?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        // `digits` counts ASCII bytes, so this slice is on a char boundary.
        let code = rest[..digits].parse().ok()?;
        let rest = rest[digits..].trim_start_matches([',', '.']).trim_start();
        let rest = rest.strip_prefix("e.displayText() = ").unwrap_or(rest);
        let rest = rest.strip_prefix("DB::Exception: ").unwrap_or(rest);
        let mut message = rest
            .split("\nStack trace")
            .next()
            .unwrap_or(rest)
            .trim_end();
        for suffix_start in [", e.what() = ", " (version "] {
            if let Some(at) = message.rfind(suffix_start) {
                message = &message[..at];
            }
        }
        Some(Self {
            code,
            message: truncate(message.trim_end(), MAX_MESSAGE_BYTES).to_owned(),
        })
    }

    /// Whether ClickHouse stopped the query for running out of time.
    pub fn is_timeout(&self) -> bool {
        TIMEOUT_CODES.contains(&self.code)
    }
}

/// `text` cut to at most `max` bytes, never inside a character.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Find an exception ClickHouse appended to a result it had already started
/// sending with `200 OK`: the last line(s) of `tail` that start with `Code: `
/// and name a `DB::Exception`. Returns where the exception starts.
pub fn find_trailing_exception(tail: &[u8]) -> Option<(usize, ServerException)> {
    let mut search_end = tail.len();
    for _ in 0..MAX_CANDIDATES {
        let at = last_code_line(&tail[..search_end])?;
        let text = String::from_utf8_lossy(&tail[at..]);
        if text.contains("DB::Exception")
            && let Some(exception) = ServerException::parse(&text)
        {
            return Some((at, exception));
        }
        search_end = at;
    }
    None
}

/// Position of the last `Code: ` that starts a line (or the buffer).
fn last_code_line(haystack: &[u8]) -> Option<usize> {
    const NEEDLE: &[u8] = b"Code: ";
    (0..haystack.len().saturating_sub(NEEDLE.len() - 1))
        .rev()
        .find(|&at| haystack[at..].starts_with(NEEDLE) && (at == 0 || haystack[at - 1] == b'\n'))
}

/// A FIFO of result chunks that releases a chunk only once at least `limit`
/// bytes have arrived after it, so the tail can still be checked for an
/// appended exception when the result ends.
#[derive(Debug)]
pub struct HoldBack<C> {
    held: VecDeque<C>,
    held_len: usize,
    limit: usize,
    /// The server's body ended (and was not an exception).
    ended: bool,
}

/// What the reader of a held-back result does next: the one loop of the
/// host's streamed results (async) and the adapter's (blocking).
#[derive(Debug, PartialEq, Eq)]
pub enum Next<C> {
    /// Hand this chunk on: it is data.
    Chunk(C),
    /// Read more from the server, then [`HoldBack::push`] it, or call
    /// [`HoldBack::end`] at the end of its body.
    Read,
    /// The result is complete.
    Done,
}

impl<C: AsRef<[u8]>> HoldBack<C> {
    /// Hold back the last `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            held: VecDeque::new(),
            held_len: 0,
            limit,
            ended: false,
        }
    }

    /// What to do next: hand on a chunk known to be data, read more, or
    /// nothing (the result is complete).
    pub fn step(&mut self) -> Next<C> {
        let ready = if self.ended {
            self.pop_any()
        } else {
            self.pop_ready()
        };
        match ready {
            Some(chunk) => Next::Chunk(chunk),
            None if self.ended => Next::Done,
            None => Next::Read,
        }
    }

    /// The server's body ended: the exception its tail ends with, if any;
    /// otherwise what is held is data, for [`HoldBack::step`].
    pub fn end(&mut self) -> Result<(), ServerException> {
        self.ended = true;
        self.finish()
    }

    /// Add a chunk that just arrived.
    pub fn push(&mut self, chunk: C) {
        let len = chunk.as_ref().len();
        if len > 0 {
            self.held_len += len;
            self.held.push_back(chunk);
        }
    }

    /// The oldest chunk, if enough has arrived after it to be sure it is data.
    pub fn pop_ready(&mut self) -> Option<C> {
        let front = self.held.front()?.as_ref().len();
        if self.held_len - front >= self.limit {
            self.pop_any()
        } else {
            None
        }
    }

    /// The oldest chunk, ready or not (after [`HoldBack::finish`] succeeded).
    pub fn pop_any(&mut self) -> Option<C> {
        let chunk = self.held.pop_front()?;
        self.held_len -= chunk.as_ref().len();
        Some(chunk)
    }

    /// The result ended: the exception its tail ends with, if any. On `Ok`
    /// the held chunks are data; drain them with [`HoldBack::pop_any`].
    pub fn finish(&mut self) -> Result<(), ServerException> {
        if self.held.is_empty() {
            return Ok(());
        }
        let mut tail = Vec::with_capacity(self.held_len);
        for chunk in &self.held {
            tail.extend_from_slice(chunk.as_ref());
        }
        match find_trailing_exception(&tail) {
            Some((_, exception)) => {
                self.clear();
                Err(exception)
            }
            None => Ok(()),
        }
    }

    /// Drop everything held.
    pub fn clear(&mut self) {
        self.held.clear();
        self.held_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_old_style_exceptions() {
        let text = "Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position 1: SELEC 1, e.what() = DB::Exception\n";
        let parsed = ServerException::parse(text).expect("parses");
        assert_eq!(parsed.code, 62);
        assert_eq!(
            parsed.message,
            "Syntax error: failed at position 1: SELEC 1"
        );
    }

    #[test]
    fn parses_current_exceptions() {
        let text = "Code: 60. DB::Exception: Unknown table expression identifier 'nope' in scope SELECT * FROM nope. (UNKNOWN_TABLE) (version 24.8.4.13 (official build))\n";
        let parsed = ServerException::parse(text).expect("parses");
        assert_eq!(parsed.code, 60);
        assert_eq!(
            parsed.message,
            "Unknown table expression identifier 'nope' in scope SELECT * FROM nope. (UNKNOWN_TABLE)"
        );
    }

    #[test]
    fn rejects_text_that_is_not_an_exception() {
        assert_eq!(ServerException::parse("Ok.\n"), None);
        assert_eq!(ServerException::parse("Code: x"), None);
        assert_eq!(ServerException::parse("Code: 99999999999999999999"), None);
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let text = format!(
            "Code: 1, e.displayText() = DB::Exception: {}",
            "é".repeat(5000)
        );
        let parsed = ServerException::parse(&text).expect("parses");
        assert!(parsed.message.len() <= MAX_MESSAGE_BYTES);
        assert!(parsed.message.chars().all(|c| c == 'é'));
    }

    #[test]
    fn finds_an_exception_after_rows() {
        let body = b"{\"n\":1}\n{\"n\":2}\nCode: 395, e.displayText() = DB::Exception: Value passed to 'throwIf' function is non zero, e.what() = DB::Exception\n";
        let (at, exception) = find_trailing_exception(body).expect("found");
        assert_eq!(&body[..at], b"{\"n\":1}\n{\"n\":2}\n");
        assert_eq!(exception.code, 395);
    }

    #[test]
    fn ignores_rows_that_mention_code() {
        assert!(find_trailing_exception(b"{\"s\":\"Code: 1\"}\nCode: 12 apples\n").is_none());
    }

    #[test]
    fn timeouts_are_recognised() {
        let text = "Code: 159, e.displayText() = DB::Exception: Timeout exceeded: elapsed 2.0 seconds, maximum: 1, e.what() = DB::Exception";
        assert!(ServerException::parse(text).expect("parses").is_timeout());
    }

    fn drain(hold: &mut HoldBack<Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = hold.pop_any() {
            out.extend(chunk);
        }
        out
    }

    #[test]
    fn releases_chunks_once_enough_follows() {
        let mut hold = HoldBack::new(4);
        hold.push(b"aa\n".to_vec());
        assert_eq!(hold.pop_ready(), None);
        hold.push(b"bbbb\n".to_vec());
        assert_eq!(hold.pop_ready(), Some(b"aa\n".to_vec()));
        assert_eq!(hold.pop_ready(), None);
        assert!(hold.finish().is_ok());
        assert_eq!(drain(&mut hold), b"bbbb\n");
    }

    #[test]
    fn an_appended_exception_is_an_error_not_data() {
        let mut hold = HoldBack::new(DEFAULT_HOLD_BACK);
        hold.push(b"{\"n\":1}\n".to_vec());
        hold.push(
            b"Code: 395, e.displayText() = DB::Exception: boom, e.what() = DB::Exception\n"
                .to_vec(),
        );
        let exception = hold.finish().expect_err("exception");
        assert_eq!(exception.code, 395);
        assert_eq!(hold.pop_any(), None);
    }

    #[test]
    fn step_hands_on_data_reads_more_and_ends() {
        let mut held = HoldBack::new(4);
        assert_eq!(held.step(), Next::Read);
        held.push(b"abc".to_vec());
        assert_eq!(held.step(), Next::Read, "not enough after it yet");
        held.push(b"defgh".to_vec());
        assert_eq!(held.step(), Next::Chunk(b"abc".to_vec()));
        assert_eq!(held.step(), Next::Read);
        assert_eq!(held.end(), Ok(()));
        assert_eq!(held.step(), Next::Chunk(b"defgh".to_vec()));
        assert_eq!(held.step(), Next::Done);
        let mut failing = HoldBack::new(1 << 10);
        failing.push(b"1\n".to_vec());
        failing.push(b"Code: 241. DB::Exception: Memory limit exceeded".to_vec());
        assert!(failing.end().is_err());
        assert_eq!(failing.step(), Next::Done, "an exception is never data");
    }
}
