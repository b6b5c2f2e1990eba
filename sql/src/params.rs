//! Typed query parameters: `{name:Type}` placeholders bound safely.
//!
//! Guests write ClickHouse's own placeholder syntax and pass values as text.
//! Every value is parsed as the type its placeholder declares before anything
//! reaches the server; a value that does not parse is rejected. Then:
//!
//! - on servers with native parameters (19.11+) the SQL is sent unchanged and
//!   each value travels as a `param_<name>` URL parameter, in ClickHouse's
//!   escaped text form;
//! - on older servers (Debian's 18.16) the host substitutes a typed literal,
//!   `CAST('…' AS Type)`, with the value re-rendered from its parsed form, so
//!   no byte of the input is ever copied into the SQL unescaped.

use std::collections::HashSet;
use std::fmt::Write as _;

/// How bound values reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// Substitute typed literals into the SQL (servers before 19.11).
    Inline,
    /// Send `param_<name>` values beside unchanged SQL (19.11 and later).
    Server,
}

/// A query with its parameters bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundQuery {
    /// The SQL to send.
    pub sql: String,
    /// `param_<name>` URL parameters to send with it (server mode only).
    pub url_params: Vec<(String, String)>,
}

/// Why parameters could not be bound; the message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BindError(String);

/// Bind `params` to the `{name:Type}` placeholders of `sql`.
///
/// Every placeholder needs a value and every value a placeholder: a typo on
/// either side is an error rather than a silently different query.
pub fn bind(
    sql: &str,
    params: &[(String, String)],
    mode: BindMode,
) -> Result<BoundQuery, BindError> {
    let placeholders = find_placeholders(sql)?;
    let mut seen = HashSet::new();
    for (name, _) in params {
        if !seen.insert(name.as_str()) {
            return Err(BindError(format!("parameter {name:?} is given twice")));
        }
        if !placeholders.iter().any(|p| p.name == *name) {
            return Err(BindError(format!(
                "parameter {name:?} has no {{{name}:Type}} placeholder in the query"
            )));
        }
    }
    if placeholders.is_empty() {
        return Ok(BoundQuery {
            sql: sql.to_owned(),
            url_params: Vec::new(),
        });
    }

    let mut bound_sql = String::with_capacity(sql.len() + 32);
    let mut url_params = Vec::new();
    let mut copied_to = 0;
    let mut sent = HashSet::new();
    for placeholder in &placeholders {
        let name = &placeholder.name;
        let Some((_, raw)) = params.iter().find(|(n, _)| n == name) else {
            return Err(BindError(format!(
                "placeholder {{{name}:{}}} has no value",
                placeholder.type_text
            )));
        };
        let ty = ParamType::parse(&placeholder.type_text).map_err(|why| {
            BindError(format!(
                "placeholder {{{name}:{}}}: {why}",
                placeholder.type_text
            ))
        })?;
        let value = Value::parse(&ty, raw).map_err(|why| {
            BindError(format!(
                "parameter {name:?} = {raw:?} is not a valid {ty}: {why}"
            ))
        })?;
        match mode {
            BindMode::Inline => {
                bound_sql.push_str(&sql[copied_to..placeholder.start]);
                value.write_sql(&ty, &mut bound_sql);
                copied_to = placeholder.end;
            }
            BindMode::Server => {
                if ty == ParamType::Identifier {
                    // Identifiers are structure, not data: substitute a quoted
                    // identifier so every server version reads it the same way.
                    bound_sql.push_str(&sql[copied_to..placeholder.start]);
                    value.write_sql(&ty, &mut bound_sql);
                    copied_to = placeholder.end;
                } else if sent.insert(name.as_str()) {
                    let mut text = String::new();
                    value.write_param_text(&mut text, true);
                    url_params.push((format!("param_{name}"), text));
                }
            }
        }
    }
    bound_sql.push_str(&sql[copied_to..]);
    Ok(BoundQuery {
        sql: bound_sql,
        url_params,
    })
}

/// A `{name:Type}` placeholder found in SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placeholder {
    name: String,
    type_text: String,
    start: usize,
    end: usize,
}

/// Find placeholders outside string literals, quoted identifiers and comments.
fn find_placeholders(sql: &str) -> Result<Vec<Placeholder>, BindError> {
    let bytes = sql.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |end| i + 2 + end + 2);
            }
            b'{' => {
                let close = sql[i..]
                    .find('}')
                    .map(|at| i + at)
                    .ok_or_else(|| BindError(format!("unclosed '{{' at byte {i} of the query")))?;
                let inner = &sql[i + 1..close];
                let (name, type_text) = inner.split_once(':').ok_or_else(|| {
                    BindError(format!(
                        "placeholder {{{inner}}} needs a type: {{{inner}:Type}}"
                    ))
                })?;
                let name = name.trim();
                let valid_name = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid_name {
                    return Err(BindError(format!(
                        "placeholder name {name:?} is not a valid name"
                    )));
                }
                found.push(Placeholder {
                    name: name.to_owned(),
                    type_text: type_text.trim().to_owned(),
                    start: i,
                    end: close + 1,
                });
                i = close + 1;
            }
            _ => i += 1,
        }
    }
    Ok(found)
}

/// A ClickHouse type a parameter can be declared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamType {
    /// `String`.
    String,
    /// `FixedString(N)`: at most N bytes.
    FixedString(usize),
    /// `Int8` … `Int256`, bits.
    Int(u16),
    /// `UInt8` … `UInt256`, bits.
    UInt(u16),
    /// `Float32`, `Float64`.
    Float(u16),
    /// `Decimal(P, S)` and `Decimal32/64/128/256(S)`.
    Decimal(u8, u8),
    /// `Bool`.
    Bool,
    /// `Date`, `Date32`.
    Date(&'static str),
    /// `DateTime`, optionally with a time zone.
    DateTime(Option<String>),
    /// `DateTime64(precision)`, optionally with a time zone.
    DateTime64(u8, Option<String>),
    /// `UUID`.
    Uuid,
    /// `Identifier`: a table or column name, substituted as a quoted name.
    Identifier,
    /// `Nullable(T)`: `\N` or `NULL` is NULL.
    Nullable(Box<ParamType>),
    /// `LowCardinality(T)`, bound as T.
    LowCardinality(Box<ParamType>),
    /// `Array(T)`, written as `[v1, v2, …]`.
    Array(Box<ParamType>),
}

impl ParamType {
    /// Parse a type name as written in a placeholder.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (head, args) = match text.find('(') {
            Some(open) if text.ends_with(')') => {
                (text[..open].trim(), Some(&text[open + 1..text.len() - 1]))
            }
            Some(_) => return Err(format!("type {text:?} has an unbalanced '('")),
            None => (text, None),
        };
        let int_arg = |args: Option<&str>| -> Result<u64, String> {
            args.and_then(|a| a.trim().parse().ok())
                .ok_or_else(|| format!("type {text:?} needs a number argument"))
        };
        let tz_arg = |arg: &str| -> Result<String, String> {
            let arg = arg.trim();
            let tz = arg
                .strip_prefix('\'')
                .and_then(|a| a.strip_suffix('\''))
                .ok_or_else(|| format!("time zone {arg:?} must be quoted"))?;
            if tz
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
            {
                Ok(tz.to_owned())
            } else {
                Err(format!("time zone {tz:?} is not a time zone name"))
            }
        };
        let ty = match (head, args) {
            ("String", None) => Self::String,
            ("FixedString", args) => Self::FixedString(int_arg(args)? as usize),
            ("Int8", None) => Self::Int(8),
            ("Int16", None) => Self::Int(16),
            ("Int32", None) => Self::Int(32),
            ("Int64", None) => Self::Int(64),
            ("Int128", None) => Self::Int(128),
            ("Int256", None) => Self::Int(256),
            ("UInt8", None) => Self::UInt(8),
            ("UInt16", None) => Self::UInt(16),
            ("UInt32", None) => Self::UInt(32),
            ("UInt64", None) => Self::UInt(64),
            ("UInt128", None) => Self::UInt(128),
            ("UInt256", None) => Self::UInt(256),
            ("Float32", None) => Self::Float(32),
            ("Float64", None) => Self::Float(64),
            ("Bool" | "Boolean", None) => Self::Bool,
            ("Decimal", Some(args)) => {
                let (p, s) = args
                    .split_once(',')
                    .ok_or_else(|| format!("type {text:?} needs Decimal(P, S)"))?;
                let p: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad precision in {text:?}"))?;
                let s: u8 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad scale in {text:?}"))?;
                if p == 0 || p > 76 || s > p {
                    return Err(format!(
                        "type {text:?} has an impossible precision or scale"
                    ));
                }
                Self::Decimal(p, s)
            }
            ("Decimal32", args) => Self::Decimal(9, int_arg(args)? as u8),
            ("Decimal64", args) => Self::Decimal(18, int_arg(args)? as u8),
            ("Decimal128", args) => Self::Decimal(38, int_arg(args)? as u8),
            ("Decimal256", args) => Self::Decimal(76, int_arg(args)? as u8),
            ("Date", None) => Self::Date("Date"),
            ("Date32", None) => Self::Date("Date32"),
            ("DateTime", None) => Self::DateTime(None),
            ("DateTime", Some(tz)) => Self::DateTime(Some(tz_arg(tz)?)),
            ("DateTime64", Some(args)) => {
                let (precision, tz) = match args.split_once(',') {
                    Some((p, tz)) => (p, Some(tz_arg(tz)?)),
                    None => (args, None),
                };
                let precision: u8 = precision
                    .trim()
                    .parse()
                    .ok()
                    .filter(|p| *p <= 9)
                    .ok_or_else(|| format!("type {text:?} needs a precision from 0 to 9"))?;
                Self::DateTime64(precision, tz)
            }
            ("UUID", None) => Self::Uuid,
            ("Identifier", None) => Self::Identifier,
            ("Nullable", Some(inner)) => Self::Nullable(Box::new(Self::parse(inner)?)),
            ("LowCardinality", Some(inner)) => Self::LowCardinality(Box::new(Self::parse(inner)?)),
            ("Array", Some(inner)) => Self::Array(Box::new(Self::parse(inner)?)),
            _ => return Err(format!("type {text:?} is not supported for parameters")),
        };
        if let Self::Decimal(_, scale) = ty
            && scale > 76
        {
            return Err(format!("type {text:?} has an impossible scale"));
        }
        Ok(ty)
    }
}

impl std::fmt::Display for ParamType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::String => f.write_str("String"),
            Self::FixedString(n) => write!(f, "FixedString({n})"),
            Self::Int(bits) => write!(f, "Int{bits}"),
            Self::UInt(bits) => write!(f, "UInt{bits}"),
            Self::Float(bits) => write!(f, "Float{bits}"),
            Self::Decimal(p, s) => write!(f, "Decimal({p}, {s})"),
            Self::Bool => f.write_str("Bool"),
            Self::Date(name) => f.write_str(name),
            Self::DateTime(None) => f.write_str("DateTime"),
            Self::DateTime(Some(tz)) => write!(f, "DateTime('{tz}')"),
            Self::DateTime64(p, None) => write!(f, "DateTime64({p})"),
            Self::DateTime64(p, Some(tz)) => write!(f, "DateTime64({p}, '{tz}')"),
            Self::Uuid => f.write_str("UUID"),
            Self::Identifier => f.write_str("Identifier"),
            Self::Nullable(inner) => write!(f, "Nullable({inner})"),
            Self::LowCardinality(inner) => write!(f, "LowCardinality({inner})"),
            Self::Array(inner) => write!(f, "Array({inner})"),
        }
    }
}

/// A parameter value, checked against its type.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    /// Text to be quoted: strings, dates, UUIDs, decimals, identifiers.
    Quoted(String),
    /// A number in canonical form, written bare.
    Number(String),
    Array(Vec<Value>),
}

impl Value {
    fn parse(ty: &ParamType, raw: &str) -> Result<Self, String> {
        match ty {
            ParamType::Nullable(inner) => {
                if raw == "\\N" || raw.eq_ignore_ascii_case("null") {
                    Ok(Self::Null)
                } else {
                    Self::parse(inner, raw)
                }
            }
            ParamType::LowCardinality(inner) => Self::parse(inner, raw),
            ParamType::String => Ok(Self::Quoted(raw.to_owned())),
            ParamType::FixedString(n) => {
                if raw.len() <= *n {
                    Ok(Self::Quoted(raw.to_owned()))
                } else {
                    Err(format!("{} bytes is longer than {n}", raw.len()))
                }
            }
            ParamType::Int(bits) => parse_int(raw, *bits, true).map(Self::Number),
            ParamType::UInt(bits) => parse_int(raw, *bits, false).map(Self::Number),
            ParamType::Float(_) => parse_float(raw).map(Self::Number),
            ParamType::Bool => match raw.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Self::Number("1".into())),
                "false" | "0" => Ok(Self::Number("0".into())),
                _ => Err("expected true, false, 1 or 0".into()),
            },
            ParamType::Decimal(precision, scale) => {
                parse_decimal(raw, *precision, *scale).map(Self::Quoted)
            }
            ParamType::Date(_) => parse_date(raw).map(|()| Self::Quoted(raw.to_owned())),
            ParamType::DateTime(_) => parse_datetime(raw, 0).map(Self::Quoted),
            ParamType::DateTime64(precision, _) => {
                parse_datetime(raw, *precision).map(Self::Quoted)
            }
            ParamType::Uuid => parse_uuid(raw).map(Self::Quoted),
            ParamType::Identifier => {
                let valid = raw
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && raw
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                if valid && !raw.ends_with('.') && !raw.contains("..") {
                    Ok(Self::Quoted(raw.to_owned()))
                } else {
                    Err("identifiers are letters, digits, '_' and one optional '.'".into())
                }
            }
            ParamType::Array(inner) => {
                let items = split_array(raw)?;
                items
                    .iter()
                    .map(|item| Self::parse(inner, item))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Self::Array)
            }
        }
    }

    /// Write this value as a typed SQL expression.
    fn write_sql(&self, ty: &ParamType, out: &mut String) {
        match (ty, self) {
            (ParamType::Identifier, Self::Quoted(name)) => {
                for (i, part) in name.split('.').enumerate() {
                    if i > 0 {
                        out.push('.');
                    }
                    let _ = write!(out, "`{part}`");
                }
            }
            (ParamType::Bool, Self::Number(n)) => out.push_str(n),
            _ => {
                out.push_str("CAST(");
                self.write_literal(out);
                let _ = write!(out, " AS {})", sql_type(ty));
            }
        }
    }

    /// Write this value as an SQL literal (no type).
    fn write_literal(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("NULL"),
            Self::Number(n) => out.push_str(n),
            Self::Quoted(text) => {
                out.push('\'');
                for c in text.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\'' => out.push_str("\\'"),
                        '\0' => out.push_str("\\0"),
                        c => out.push(c),
                    }
                }
                out.push('\'');
            }
            Self::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_literal(out);
                }
                out.push(']');
            }
        }
    }

    /// Write this value in the escaped text form ClickHouse reads
    /// `param_<name>` values in. Top-level strings are bare; strings inside
    /// arrays are quoted.
    fn write_param_text(&self, out: &mut String, top_level: bool) {
        match self {
            Self::Null => out.push_str("\\N"),
            Self::Number(n) => out.push_str(n),
            Self::Quoted(text) if top_level => escape_text(text, out),
            Self::Quoted(_) => self.write_literal(out),
            Self::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_param_text(out, false);
                }
                out.push(']');
            }
        }
    }
}

/// The type as written in a `CAST`: `Bool` is `UInt8` on servers without it,
/// and `LowCardinality` only matters for storage.
fn sql_type(ty: &ParamType) -> String {
    match ty {
        ParamType::Bool => "UInt8".into(),
        ParamType::LowCardinality(inner) => sql_type(inner),
        ParamType::Nullable(inner) => format!("Nullable({})", sql_type(inner)),
        ParamType::Array(inner) => format!("Array({})", sql_type(inner)),
        other => other.to_string(),
    }
}

/// ClickHouse's escaped text format: backslash, tab and newline escaped.
fn escape_text(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
}

fn parse_int(raw: &str, bits: u16, signed: bool) -> Result<String, String> {
    let text = raw.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected an integer".into());
    }
    if negative && !signed {
        return Err("expected a non-negative integer".into());
    }
    let digits = digits.trim_start_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let in_range = if bits <= 64 {
        match digits.parse::<u128>() {
            Ok(magnitude) => {
                let limit: u128 = if signed {
                    (1u128 << (bits - 1)) - u128::from(!negative)
                } else {
                    (1u128 << bits) - 1
                };
                magnitude <= limit
            }
            Err(_) => false,
        }
    } else {
        // 128- and 256-bit bounds exceed u128 for the unsigned 256 case; a
        // digit-count bound keeps the check simple and the server enforces
        // the exact edge.
        let max_digits = if bits == 128 { 39 } else { 78 };
        digits.len() <= max_digits
    };
    if !in_range {
        return Err(format!("out of range for {bits}-bit integers"));
    }
    Ok(if negative && digits != "0" {
        format!("-{digits}")
    } else {
        digits.to_owned()
    })
}

fn parse_float(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    match text.to_ascii_lowercase().as_str() {
        "nan" => return Ok("nan".into()),
        "inf" | "+inf" | "infinity" => return Ok("inf".into()),
        "-inf" | "-infinity" => return Ok("-inf".into()),
        _ => {}
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    match text.parse::<f64>() {
        Ok(value) if looks_numeric && value.is_finite() => Ok(format!("{value:?}")),
        _ => Err("expected a number".into()),
    }
}

fn parse_decimal(raw: &str, precision: u8, scale: u8) -> Result<String, String> {
    let text = raw.trim();
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_ok = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok {
        return Err("expected a decimal number like -12.34".into());
    }
    let whole_digits = whole.trim_start_matches('0').len();
    if whole_digits > usize::from(precision - scale) || fraction.len() > usize::from(scale) {
        return Err(format!("does not fit Decimal({precision}, {scale})"));
    }
    Ok(text.to_owned())
}

fn parse_date(raw: &str) -> Result<(), String> {
    let bytes = raw.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return Err("expected YYYY-MM-DD".into());
    }
    let number = |range: std::ops::Range<usize>| raw[range].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return Err(format!("month {month} does not exist")),
    };
    if day == 0 || day > days_in_month {
        return Err(format!("day {day} does not exist in {year}-{month:02}"));
    }
    Ok(())
}

/// `YYYY-MM-DD hh:mm:ss[.fff]` (a `T` may separate date and time) or a Unix
/// timestamp; returns the canonical text.
fn parse_datetime(raw: &str, precision: u8) -> Result<String, String> {
    let text = raw.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(text.to_owned());
    }
    if text.len() < 19 {
        return Err("expected YYYY-MM-DD hh:mm:ss or a Unix timestamp".into());
    }
    parse_date(&text[..10])?;
    let separator = text.as_bytes()[10];
    let time = &text[11..19];
    let time_ok = (separator == b' ' || separator == b'T')
        && time.as_bytes()[2] == b':'
        && time.as_bytes()[5] == b':'
        && time
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 2 || i == 5 || b.is_ascii_digit());
    if !time_ok {
        return Err("expected YYYY-MM-DD hh:mm:ss".into());
    }
    let field = |range: std::ops::Range<usize>| time[range].parse::<u32>().unwrap_or(99);
    if field(0..2) > 23 || field(3..5) > 59 || field(6..8) > 59 {
        return Err(format!("{time} is not a time of day"));
    }
    let rest = &text[19..];
    let fraction = match rest.strip_prefix('.') {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => digits,
        None if rest.is_empty() => "",
        _ => return Err("unexpected text after the time".into()),
    };
    if fraction.len() > usize::from(precision) {
        return Err(format!("more than {precision} fractional digits"));
    }
    let mut canonical = format!("{} {}", &text[..10], time);
    if !fraction.is_empty() {
        canonical.push('.');
        canonical.push_str(fraction);
    }
    Ok(canonical)
}

fn parse_uuid(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    let groups: Vec<&str> = text.split('-').collect();
    let shape = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(shape)
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err("expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".into())
    }
}

/// Split `[a, 'b,c', [1,2]]` into its top-level items, unquoting strings.
fn split_array(raw: &str) -> Result<Vec<String>, String> {
    let inner = raw
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or("expected [item, item, …]")?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut items = Vec::new();
    let mut current = String::new();
    let mut depth = 0u32;
    let mut chars = inner.chars().peekable();
    let mut quoted_item = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' if depth == 0 => {
                if !current.trim().is_empty() {
                    return Err("text before a quoted item".into());
                }
                current.clear();
                let quote = c;
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some('n') => current.push('\n'),
                            Some('t') => current.push('\t'),
                            Some('0') => current.push('\0'),
                            Some(escaped) => current.push(escaped),
                            None => return Err("unterminated escape".into()),
                        },
                        Some(c) if c == quote => break,
                        Some(c) => current.push(c),
                        None => return Err("unterminated quoted item".into()),
                    }
                }
                quoted_item = true;
            }
            '[' => {
                depth += 1;
                current.push(c);
            }
            ']' => {
                depth = depth.checked_sub(1).ok_or("unbalanced ']'")?;
                current.push(c);
            }
            ',' if depth == 0 => {
                items.push(finish_item(&mut current, &mut quoted_item)?);
            }
            c if quoted_item => {
                if !c.is_whitespace() {
                    return Err("text after a quoted item".into());
                }
            }
            c => current.push(c),
        }
    }
    if depth != 0 {
        return Err("unbalanced '['".into());
    }
    items.push(finish_item(&mut current, &mut quoted_item)?);
    Ok(items)
}

fn finish_item(current: &mut String, quoted: &mut bool) -> Result<String, String> {
    let item = if *quoted {
        std::mem::take(current)
    } else {
        let trimmed = current.trim().to_owned();
        current.clear();
        if trimmed.is_empty() {
            return Err("empty array item".into());
        }
        trimmed
    };
    *quoted = false;
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn inline(sql: &str, pairs: &[(&str, &str)]) -> Result<String, BindError> {
        bind(sql, &params(pairs), BindMode::Inline).map(|bound| bound.sql)
    }

    #[test]
    fn sql_without_placeholders_is_untouched() {
        assert_eq!(inline("SELECT 1", &[]).unwrap(), "SELECT 1");
    }

    #[test]
    fn strings_are_escaped_and_typed() {
        let sql = inline("SELECT {s:String}", &[("s", "x' OR 1=1 --\\")]).unwrap();
        assert_eq!(sql, r"SELECT CAST('x\' OR 1=1 --\\' AS String)");
    }

    #[test]
    fn numbers_are_checked_and_canonical() {
        assert_eq!(
            inline("SELECT {n:UInt8}", &[("n", "007")]).unwrap(),
            "SELECT CAST(7 AS UInt8)"
        );
        assert_eq!(
            inline("SELECT 1 -{n:Int8}", &[("n", "-5")]).unwrap(),
            "SELECT 1 -CAST(-5 AS Int8)"
        );
        assert!(inline("SELECT {n:UInt8}", &[("n", "256")]).is_err());
        assert!(inline("SELECT {n:UInt8}", &[("n", "-1")]).is_err());
        assert!(inline("SELECT {n:Int64}", &[("n", "1;DROP TABLE x")]).is_err());
        assert_eq!(
            inline("SELECT {n:Int64}", &[("n", "-9223372036854775808")]).unwrap(),
            "SELECT CAST(-9223372036854775808 AS Int64)"
        );
        assert!(inline("SELECT {n:Int64}", &[("n", "9223372036854775808")]).is_err());
        assert_eq!(
            inline("SELECT {f:Float64}", &[("f", "1.5")]).unwrap(),
            "SELECT CAST(1.5 AS Float64)"
        );
        assert!(inline("SELECT {f:Float64}", &[("f", "1.5)")]).is_err());
    }

    #[test]
    fn dates_and_uuids_are_validated() {
        assert!(inline("SELECT {d:Date}", &[("d", "2024-02-29")]).is_ok());
        assert!(inline("SELECT {d:Date}", &[("d", "2023-02-29")]).is_err());
        assert!(inline("SELECT {d:Date}", &[("d", "2024-01-01' OR '1")]).is_err());
        assert_eq!(
            inline("SELECT {t:DateTime}", &[("t", "2024-01-31T23:59:58")]).unwrap(),
            "SELECT CAST('2024-01-31 23:59:58' AS DateTime)"
        );
        assert!(
            inline(
                "SELECT {t:DateTime64(3)}",
                &[("t", "2024-01-31 23:59:58.1234")]
            )
            .is_err()
        );
        assert!(
            inline(
                "SELECT {u:UUID}",
                &[("u", "61f0c404-5cb3-11e7-907b-a6006ad3dba0")]
            )
            .is_ok()
        );
        assert!(inline("SELECT {u:UUID}", &[("u", "61f0c404")]).is_err());
    }

    #[test]
    fn arrays_nullable_and_identifiers() {
        assert_eq!(
            inline(
                "SELECT {a:Array(String)}",
                &[("a", "['a', 'b\\'c', '[,]']")]
            )
            .unwrap(),
            r"SELECT CAST(['a', 'b\'c', '[,]'] AS Array(String))"
        );
        assert_eq!(
            inline("SELECT {a:Array(UInt8)}", &[("a", "[]")]).unwrap(),
            "SELECT CAST([] AS Array(UInt8))"
        );
        assert!(inline("SELECT {a:Array(UInt8)}", &[("a", "[1, x]")]).is_err());
        assert_eq!(
            inline("SELECT {n:Nullable(String)}", &[("n", "\\N")]).unwrap(),
            "SELECT CAST(NULL AS Nullable(String))"
        );
        assert_eq!(
            inline("SELECT * FROM {t:Identifier}", &[("t", "system.numbers")]).unwrap(),
            "SELECT * FROM `system`.`numbers`"
        );
        assert!(inline("SELECT * FROM {t:Identifier}", &[("t", "a`b")]).is_err());
    }

    #[test]
    fn placeholders_in_literals_and_comments_are_not_placeholders() {
        let sql = "SELECT '{x:String}', `{y}` -- {z:String}\n/* {w:String} */";
        assert_eq!(inline(sql, &[]).unwrap(), sql);
    }

    #[test]
    fn missing_unknown_and_duplicate_parameters_are_errors() {
        assert!(
            inline("SELECT {a:UInt8}", &[])
                .unwrap_err()
                .0
                .contains("no value")
        );
        assert!(
            inline("SELECT 1", &[("a", "1")])
                .unwrap_err()
                .0
                .contains("no {a:Type}")
        );
        assert!(inline("SELECT {a:UInt8}", &[("a", "1"), ("a", "2")]).is_err());
        assert!(inline("SELECT {a:Map(String, String)}", &[("a", "{}")]).is_err());
        assert!(inline("SELECT {a}", &[("a", "1")]).is_err());
    }

    #[test]
    fn server_mode_sends_escaped_values_beside_unchanged_sql() {
        let bound = bind(
            "SELECT {s:String}, {a:Array(String)}, {s:String}",
            &params(&[("s", "tab\there\\"), ("a", "['x', 'y']")]),
            BindMode::Server,
        )
        .unwrap();
        assert_eq!(
            bound.sql,
            "SELECT {s:String}, {a:Array(String)}, {s:String}"
        );
        assert_eq!(
            bound.url_params,
            vec![
                ("param_s".to_owned(), "tab\\there\\\\".to_owned()),
                ("param_a".to_owned(), "['x','y']".to_owned()),
            ]
        );
    }
}
