//! ClickHouse's error texts: `Code: N, e.displayText() = …` and the like.

use std::fmt;

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
            message: message.trim_end().to_owned(),
        })
    }

    /// Whether ClickHouse stopped the query for running out of time.
    pub fn is_timeout(&self) -> bool {
        TIMEOUT_CODES.contains(&self.code)
    }
}

/// Find an exception ClickHouse appended to a result it had already started
/// sending with `200 OK`: the last line(s) of `tail` that start with `Code: `.
pub fn find_trailing_exception(tail: &[u8]) -> Option<(usize, ServerException)> {
    let mut search_end = tail.len();
    while let Some(at) = memrchr_code(&tail[..search_end]) {
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
fn memrchr_code(haystack: &[u8]) -> Option<usize> {
    const NEEDLE: &[u8] = b"Code: ";
    (0..haystack.len().saturating_sub(NEEDLE.len() - 1))
        .rev()
        .find(|&at| haystack[at..].starts_with(NEEDLE) && (at == 0 || haystack[at - 1] == b'\n'))
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
}
