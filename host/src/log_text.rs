//! Text from outside on its way into the logs: a registry's error body, a
//! ClickHouse exception, a request's path, a guest's words. Whatever a log
//! call passes, it goes through here on the way out, in every log format:
//!
//! - human format: every field of every event and span is formatted by
//!   [`human_fields`], which escapes control characters (line breaks
//!   included, so no text can start a log line of its own) and cuts each
//!   field at [`MAX_FIELD_CHARS`];
//! - JSON: serde escapes control characters itself, and [`BoundedJson`]
//!   cuts the strings of an event longer than [`MAX_JSON_EVENT_BYTES`] to
//!   [`MAX_FIELD_CHARS`], keeping it one valid JSON object.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::format::Writer;

/// The longest field (in characters) a log line keeps; the rest is said to
/// be cut, with its length.
pub(crate) const MAX_FIELD_CHARS: usize = 2048;

/// A JSON event longer than this has its strings cut.
pub(crate) const MAX_JSON_EVENT_BYTES: usize = 16 * 1024;

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A writer that makes what passes through it safe for a log line, as it
/// is written (nothing is held): control characters (C0, DEL, C1), and the
/// Unicode line and paragraph separators and direction overrides that
/// rearrange what a terminal shows, become escapes (`\n`, `\u{1b}`); the
/// first `left` characters are kept, and the bytes of the rest counted and
/// said at the end ([`Escaping::finish`]).
struct Escaping<'a, W: std::fmt::Write> {
    out: &'a mut W,
    left: usize,
    cut: usize,
}

impl<'a, W: std::fmt::Write> Escaping<'a, W> {
    fn new(out: &'a mut W, max: usize) -> Self {
        Self {
            out,
            left: max,
            cut: 0,
        }
    }

    /// Say how much was cut, if anything was.
    fn finish(self) -> std::fmt::Result {
        if self.cut > 0 {
            write!(self.out, "…({} more bytes cut)", self.cut)?;
        }
        Ok(())
    }
}

impl<W: std::fmt::Write> std::fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        for c in text.chars() {
            if self.left == 0 {
                self.cut += c.len_utf8();
                continue;
            }
            self.left -= 1;
            match c {
                '\n' => self.out.write_str("\\n")?,
                '\r' => self.out.write_str("\\r")?,
                '\t' => self.out.write_str("\\t")?,
                c if needs_escape(c) => write!(self.out, "\\u{{{:x}}}", u32::from(c))?,
                c => self.out.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// `text` escaped and cut as a log field is ([`Escaping`], at
/// [`MAX_FIELD_CHARS`]), for lines printed outside the log: a terminal
/// shows a file name the way the log would.
pub(crate) fn escaped(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    let mut writer = Escaping::new(&mut out, MAX_FIELD_CHARS);
    // Writing to a String cannot fail.
    let _ = writer.write_str(text);
    let _ = writer.finish();
    out
}

/// The human format's field formatter: `message` as it is, other fields
/// `name=value`, separated by spaces, every value escaped and cut
/// ([`Escaping`]) as it is written.
pub(crate) fn human_fields()
-> impl for<'writer> tracing_subscriber::fmt::FormatFields<'writer> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(
        |writer: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
            if field.name() != "message" {
                write!(writer, "{}=", field.name())?;
            }
            let mut escaping = Escaping::new(writer, MAX_FIELD_CHARS);
            write!(escaping, "{value:?}")?;
            escaping.finish()
        },
    )
    .delimited(" ")
}

/// Standard error for the JSON format, each event cut to size: an event
/// longer than [`MAX_JSON_EVENT_BYTES`] has every string in it cut to
/// [`MAX_FIELD_CHARS`] (the format writes one event per write).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BoundedJson;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BoundedJson {
    type Writer = JsonEvent;

    fn make_writer(&'a self) -> Self::Writer {
        JsonEvent(Vec::new())
    }
}

/// One JSON event on its way to standard error, written when dropped.
pub(crate) struct JsonEvent(Vec<u8>);

impl std::io::Write for JsonEvent {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for JsonEvent {
    fn drop(&mut self) {
        let line = bound_json_event(std::mem::take(&mut self.0));
        let _ = std::io::stderr().lock().write_all(&line);
    }
}

/// `line` (one JSON event and its line break) within bounds: as it is when
/// short enough, else with each string cut to [`MAX_FIELD_CHARS`].
fn bound_json_event(line: Vec<u8>) -> Vec<u8> {
    if line.len() <= MAX_JSON_EVENT_BYTES {
        return line;
    }
    let Ok(mut event) = serde_json::from_slice::<serde_json::Value>(&line) else {
        // Not one JSON document (never, from the JSON format): keep the start.
        let mut cut = line[..MAX_JSON_EVENT_BYTES].to_vec();
        cut.extend_from_slice(b"\n");
        return cut;
    };
    cut_strings(&mut event);
    let mut out = serde_json::to_vec(&event).unwrap_or_default();
    out.push(b'\n');
    out
}

fn cut_strings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) if text.chars().count() > MAX_FIELD_CHARS => {
            let end = text
                .char_indices()
                .nth(MAX_FIELD_CHARS)
                .map_or(text.len(), |(at, _)| at);
            let more = text.len() - end;
            text.truncate(end);
            let _ = write!(text, "…({more} more bytes cut)");
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(cut_strings),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(cut_strings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` as a log line holds it, cut after `max` characters.
    fn escape(text: &str, max: usize) -> String {
        let mut out = String::new();
        let mut escaping = Escaping::new(&mut out, max);
        escaping.write_str(text).expect("into a String");
        escaping.finish().expect("into a String");
        out
    }

    #[test]
    fn control_characters_and_line_breaks_are_escaped() {
        assert_eq!(escape("plain text", 100), "plain text");
        assert_eq!(
            escape("a\nINFO fake\r\tb\u{1b}[31m\u{7f}\u{85}", 100),
            "a\\nINFO fake\\r\\tb\\u{1b}[31m\\u{7f}\\u{85}"
        );
        assert_eq!(escape("x\u{2028}y\u{202e}z", 100), "x\\u{2028}y\\u{202e}z");
        assert_eq!(escape("Jürgen ✓", 100), "Jürgen ✓");
    }

    #[test]
    fn long_text_is_cut_and_says_how_much() {
        let long = "é".repeat(5000);
        let cut = escape(&long, 10);
        assert!(cut.starts_with(&"é".repeat(10)), "{cut}");
        assert!(
            cut.ends_with(&format!("…({} more bytes cut)", 2 * 4990)),
            "{cut}"
        );
    }

    /// A subscriber with `layer`'s format writing into a buffer, for `run`.
    fn captured(json: bool, run: impl FnOnce()) -> String {
        use tracing_subscriber::layer::SubscriberExt as _;
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let make = move || Sink(sink.clone());
        let subscriber = tracing_subscriber::registry();
        if json {
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_writer(move || BoundedSink(make()));
            tracing::subscriber::with_default(subscriber.with(layer), run);
        } else {
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .fmt_fields(human_fields())
                .with_writer(make);
            tracing::subscriber::with_default(subscriber.with(layer), run);
        }
        let bytes = buffer.lock().expect("buffer").clone();
        String::from_utf8(bytes).expect("UTF-8 log")
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// [`BoundedJson`]'s cut, into a [`Sink`].
    struct BoundedSink(Sink);

    impl std::io::Write for BoundedSink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.write_all(&bound_json_event(bytes.to_vec()))?;
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const FORGED: &str = "oops\n2026-12-08T00:00:00Z  INFO wasmhouse::access: GET /admin 200";

    #[test]
    fn outside_text_cannot_start_a_human_log_line() {
        let log = captured(false, || {
            let span = tracing::info_span!("request", path = %FORGED);
            let _entered = span.enter();
            tracing::warn!(body = %FORGED, debug = ?FORGED, "the registry said {FORGED}");
        });
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains("oops\\n2026"), "{log}");
        assert!(!log.contains("\n2026"), "{log}");
    }

    #[test]
    fn a_huge_field_is_cut_in_both_formats() {
        let huge = "x".repeat(1 << 20);
        let human = captured(false, || tracing::warn!(body = %huge, "registry error"));
        assert!(human.len() < 4 * MAX_FIELD_CHARS, "{} bytes", human.len());
        assert!(human.contains("more bytes cut"));
        let json = captured(true, || tracing::warn!(body = %huge, "registry error"));
        assert!(json.len() < MAX_JSON_EVENT_BYTES, "{} bytes", json.len());
        assert_eq!(json.lines().count(), 1);
        let event: serde_json::Value = serde_json::from_str(&json).expect("one JSON event");
        assert!(
            event["fields"]["body"]
                .as_str()
                .is_some_and(|body| body.ends_with("more bytes cut)")),
            "{event}"
        );
        let forged = captured(true, || tracing::warn!(body = %FORGED, "x"));
        assert_eq!(forged.lines().count(), 1, "{forged}");
    }
}
