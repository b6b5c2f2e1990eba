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
//!   no byte of the input is ever copied into the SQL unescaped;
//! - in both, `Identifier` values are substituted as quoted names (they are
//!   structure, not data), and integers after `LIMIT`, `OFFSET` or `TOP` as
//!   plain numbers, which every server accepts there (18.16 refuses a `CAST`);
//! - on older servers an array right after `IN` (`x IN {ids:Array(UInt32)}`)
//!   becomes the list `(1, 2, 3)`, which is what 18.16 takes there (it
//!   refuses an array); newer servers take the `param_` array itself.
//!
//! Placeholders are the [`crate::lexer`]'s tokens, so a `{` inside a string
//! or comment is never one. The bound text is what the statement check reads
//! afterwards ([`crate::policy`]): it sees the names a value becomes.
//!
//! The SQL, the types and the values all come from untrusted guests, so every
//! step is linear in its input (or bounded by [`MAX_TYPE_DEPTH`]), nothing
//! recurses deeper than that bound, and error messages quote at most about a
//! hundred bytes of guest text.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::lexer::{Token, TokenKind, tokenize};

/// How deeply `Array`, `Nullable` and `LowCardinality` may nest in a
/// placeholder's type. Parsing, checking and writing values recurse along
/// the type, so this also bounds their stack use.
pub const MAX_TYPE_DEPTH: usize = 16;

/// Largest `N` a `FixedString(N)` placeholder may declare.
pub const MAX_FIXED_STRING_BYTES: usize = 1 << 20;

/// Largest SQL text binding produces when it substitutes values into the
/// query: a large value in many placeholders must not multiply into
/// gigabytes. (ClickHouse's own `max_query_size` is 256 KiB by default.)
pub const MAX_BOUND_SQL_BYTES: usize = 8 << 20;

/// Most value bytes checked again when a name is declared with more than one
/// type: repeating a placeholder with the same type costs nothing, but a
/// large value checked against thousands of different types would cost
/// seconds.
const MAX_RECHECKED_VALUE_BYTES: usize = 256 << 10;

/// Longest piece of guest text an error message quotes.
const MAX_QUOTED_BYTES: usize = 100;

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

/// Whose mistake a binding error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindFault {
    /// A value is not one of its placeholder's type: the caller's input
    /// (for a route, usually its client's).
    Value,
    /// The query's placeholders and the parameters given do not match, or a
    /// placeholder's type is not one parameters can have: the route's SQL.
    Query,
}

/// Why parameters could not be bound; the message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BindError {
    /// Whose mistake it is.
    pub fault: BindFault,
    message: String,
}

impl BindError {
    fn query(message: String) -> Self {
        Self {
            fault: BindFault::Query,
            message,
        }
    }

    fn value(message: String) -> Self {
        Self {
            fault: BindFault::Value,
            message,
        }
    }
}

/// Bind `params` to the `{name:Type}` placeholders of `sql`.
///
/// Every placeholder needs a value and every value a placeholder: a typo on
/// either side is an error rather than a silently different query.
pub fn bind(
    sql: &str,
    params: &[(String, String)],
    mode: BindMode,
) -> Result<BoundQuery, BindError> {
    let tokens = tokenize(sql).map_err(|err| BindError::query(err.to_string()))?;
    bind_tokens(sql, &tokens, params, mode)
}

/// [`bind`] for a query already split into `tokens`.
pub fn bind_tokens(
    sql: &str,
    tokens: &[Token<'_>],
    params: &[(String, String)],
    mode: BindMode,
) -> Result<BoundQuery, BindError> {
    let placeholders: Vec<(usize, &str, &str)> = tokens
        .iter()
        .enumerate()
        .filter_map(|(at, t)| t.placeholder().map(|(name, ty)| (at, name, ty)))
        .collect();
    // Hash lookups keep binding linear: up to a thousand parameters against
    // tens of thousands of placeholders would otherwise be quadratic.
    let used: HashSet<&str> = placeholders.iter().map(|p| p.1).collect();
    let mut values: HashMap<&str, &str> = HashMap::with_capacity(params.len());
    for (name, value) in params {
        if values.insert(name.as_str(), value.as_str()).is_some() {
            return Err(BindError::query(format!(
                "parameter {} is given twice",
                quoted(name)
            )));
        }
        if !used.contains(name.as_str()) {
            let name = clip(name);
            return Err(BindError::query(format!(
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
    // Each (name, type, form) is checked and rendered once however often it
    // is repeated: `Some(sql)` when it is substituted into the query.
    let mut checked: HashMap<(&str, ParamType, Form), Option<String>> = HashMap::new();
    let mut checked_names = HashSet::new();
    let mut rechecked_bytes = 0usize;
    for &(at, name, type_text) in &placeholders {
        let token = &tokens[at];
        let Some(&raw) = values.get(name) else {
            return Err(BindError::query(format!(
                "placeholder {{{}:{}}} has no value",
                clip(name),
                clip(type_text)
            )));
        };
        let ty = ParamType::parse(type_text).map_err(|why| {
            BindError::query(format!(
                "placeholder {{{}:{}}}: {why}",
                clip(name),
                clip(type_text)
            ))
        })?;
        let plain = in_limit_clause(tokens, at) && ty.is_number();
        let list = mode == BindMode::Inline
            && matches!(ty, ParamType::Array(_))
            && at
                .checked_sub(1)
                .and_then(|i| tokens.get(i))
                .is_some_and(|t| t.is_word("in"));
        // Identifiers are structure, not data: even in server mode they are
        // substituted, as quoted names, so every server version reads them
        // the same way (and the statement check sees them).
        let form = if plain {
            Form::Plain
        } else if list {
            Form::List
        } else if mode == BindMode::Inline || ty == ParamType::Identifier {
            Form::Literal
        } else {
            Form::Param
        };
        let rendered = match checked.entry((name, ty, form)) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let (_, ty, form) = entry.key();
                // The first check of each value is bounded by the caller's
                // limit on parameter bytes; checks against further types are
                // not, so they get a budget of their own.
                if !checked_names.insert(name) {
                    rechecked_bytes = rechecked_bytes.saturating_add(raw.len());
                    if rechecked_bytes > MAX_RECHECKED_VALUE_BYTES {
                        return Err(BindError::query(format!(
                            "parameter {} is declared with too many different types",
                            quoted(name)
                        )));
                    }
                }
                let invalid = |why: String| {
                    BindError::value(format!(
                        "parameter {} = {} is not a valid {}: {why}",
                        quoted(name),
                        quoted(raw),
                        clip(&ty.to_string())
                    ))
                };
                let mut text = String::new();
                match form {
                    Form::Plain => {
                        write_value(ty, raw, false, Form::Plain, true, &mut text)
                            .map_err(invalid)?;
                        entry.insert(Some(text))
                    }
                    Form::Literal => {
                        write_sql(ty, raw, &mut text).map_err(invalid)?;
                        entry.insert(Some(text))
                    }
                    Form::List => {
                        write_list(ty, raw, &mut text).map_err(invalid)?;
                        entry.insert(Some(text))
                    }
                    Form::Param => {
                        write_value(ty, raw, false, Form::Param, true, &mut text)
                            .map_err(invalid)?;
                        // A name declared with several types is checked
                        // against each, and sent once, as its first
                        // placeholder reads it.
                        if sent.insert(name) {
                            url_params.push((format!("param_{name}"), text));
                        }
                        entry.insert(None)
                    }
                }
            }
        };
        let Some(rendered) = rendered else { continue };
        let before = &sql[copied_to..token.start];
        // A space where the value would touch other text, so it never glues
        // to a neighbouring word, number or operator (`1 -` and `-5`).
        let pad_before = needs_space(before.as_bytes().last());
        let pad_after = needs_space(sql.as_bytes().get(token.end()));
        let grown = before.len() + rendered.len() + 2;
        if bound_sql.len() + grown > MAX_BOUND_SQL_BYTES {
            return Err(too_long());
        }
        bound_sql.push_str(before);
        if pad_before {
            bound_sql.push(' ');
        }
        bound_sql.push_str(rendered);
        if pad_after {
            bound_sql.push(' ');
        }
        copied_to = token.end();
    }
    let rest = &sql[copied_to..];
    if bound_sql.len() + rest.len() > MAX_BOUND_SQL_BYTES {
        return Err(too_long());
    }
    bound_sql.push_str(rest);
    Ok(BoundQuery {
        sql: bound_sql,
        url_params,
    })
}

/// Whether text substituted next to `neighbour` needs a space between.
fn needs_space(neighbour: Option<&u8>) -> bool {
    neighbour.is_some_and(|b| !b.is_ascii_whitespace() && !b"(),[]".contains(b))
}

/// Whether the placeholder at `at` is a count of a `LIMIT`, `OFFSET` or
/// `TOP` clause (`LIMIT {n}`, `LIMIT {o}, {n}`, `OFFSET {o}`), where 18.16
/// accepts only a number.
fn in_limit_clause(tokens: &[Token<'_>], at: usize) -> bool {
    let word = |i: Option<usize>, words: &[&str]| {
        i.and_then(|i| tokens.get(i))
            .is_some_and(|t| words.iter().any(|w| t.is_word(w)))
    };
    let before = |n: usize| at.checked_sub(n);
    if word(before(1), &["limit", "offset", "top"]) {
        return true;
    }
    // `LIMIT offset, count`: the count after a comma.
    before(1)
        .and_then(|i| tokens.get(i))
        .is_some_and(|t| t.is_punct(","))
        && before(2)
            .and_then(|i| tokens.get(i))
            .is_some_and(|t| matches!(t.kind, TokenKind::Number | TokenKind::Placeholder))
        && word(before(3), &["limit"])
}

fn too_long() -> BindError {
    BindError::query(format!(
        "the query with its parameters substituted would be longer than \
         {MAX_BOUND_SQL_BYTES} bytes"
    ))
}

/// `text` cut to at most [`MAX_QUOTED_BYTES`] bytes on a character boundary,
/// with `…` when something was cut: error messages must not echo megabytes.
fn clip(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_QUOTED_BYTES {
        return Cow::Borrowed(text);
    }
    let mut end = MAX_QUOTED_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

/// Guest text quoted for an error message, cut like [`clip`].
fn quoted(text: &str) -> String {
    format!("{:?}", clip(text))
}

/// A ClickHouse type a parameter can be declared with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// Parse a type name as written in a placeholder. `Array`, `Nullable` and
    /// `LowCardinality` nest at most [`MAX_TYPE_DEPTH`] levels deep, and only
    /// the way ClickHouse allows (`Nullable` never wraps an array or another
    /// wrapper).
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_nested(text, 0)
    }

    /// Parse `text`, found inside `depth` wrapping types.
    fn parse_nested(text: &str, depth: usize) -> Result<Self, String> {
        let text = text.trim();
        let (head, args) = match text.split_once('(') {
            Some((head, rest)) => match rest.strip_suffix(')') {
                Some(args) => (head.trim(), Some(args)),
                None => return Err(format!("type {} has an unbalanced '('", quoted(text))),
            },
            None => (text, None),
        };
        let wrapped = |inner: &str| -> Result<Box<Self>, String> {
            if depth >= MAX_TYPE_DEPTH {
                return Err(format!(
                    "type {} nests more than {MAX_TYPE_DEPTH} levels deep",
                    quoted(text)
                ));
            }
            Self::parse_nested(inner, depth + 1).map(Box::new)
        };
        let int_arg = |args: Option<&str>| -> Result<u64, String> {
            args.and_then(|a| a.trim().parse().ok())
                .ok_or_else(|| format!("type {} needs a number argument", quoted(text)))
        };
        // `DecimalN(S)` has the fixed precision P; S must not exceed it.
        let decimal = |precision: u8, args: Option<&str>| -> Result<Self, String> {
            let scale = int_arg(args)?;
            match u8::try_from(scale) {
                Ok(scale) if scale <= precision => Ok(Self::Decimal(precision, scale)),
                _ => Err(format!(
                    "type {} needs a scale from 0 to {precision}",
                    quoted(text)
                )),
            }
        };
        let tz_arg = |arg: &str| -> Result<String, String> {
            let arg = arg.trim();
            let tz = arg
                .strip_prefix('\'')
                .and_then(|a| a.strip_suffix('\''))
                .ok_or_else(|| format!("time zone {} must be quoted", quoted(arg)))?;
            if tz
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
            {
                Ok(tz.to_owned())
            } else {
                Err(format!("time zone {} is not a time zone name", quoted(tz)))
            }
        };
        let ty = match (head, args) {
            ("String", None) => Self::String,
            ("FixedString", args) => {
                let n = int_arg(args)?;
                match usize::try_from(n) {
                    Ok(n) if (1..=MAX_FIXED_STRING_BYTES).contains(&n) => Self::FixedString(n),
                    _ => {
                        return Err(format!(
                            "type {} needs a length from 1 to {MAX_FIXED_STRING_BYTES}",
                            quoted(text)
                        ));
                    }
                }
            }
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
                    .ok_or_else(|| format!("type {} needs Decimal(P, S)", quoted(text)))?;
                let p: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad precision in {}", quoted(text)))?;
                let s: u8 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad scale in {}", quoted(text)))?;
                if p == 0 || p > 76 || s > p {
                    return Err(format!(
                        "type {} has an impossible precision or scale",
                        quoted(text)
                    ));
                }
                Self::Decimal(p, s)
            }
            ("Decimal32", args) => decimal(9, args)?,
            ("Decimal64", args) => decimal(18, args)?,
            ("Decimal128", args) => decimal(38, args)?,
            ("Decimal256", args) => decimal(76, args)?,
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
                    .ok_or_else(|| {
                        format!("type {} needs a precision from 0 to 9", quoted(text))
                    })?;
                Self::DateTime64(precision, tz)
            }
            ("UUID", None) => Self::Uuid,
            ("Identifier", None) => Self::Identifier,
            // As in ClickHouse, Nullable wraps plain values only, and
            // LowCardinality those or a Nullable one: checking an array item
            // then goes through at most two wrappers, however deep the type.
            ("Nullable", Some(inner)) => match wrapped(inner)? {
                inner
                    if matches!(
                        *inner,
                        Self::Nullable(_) | Self::LowCardinality(_) | Self::Array(_)
                    ) =>
                {
                    return Err(format!(
                        "type {} cannot be inside Nullable",
                        clip(&inner.to_string())
                    ));
                }
                inner => Self::Nullable(inner),
            },
            ("LowCardinality", Some(inner)) => match wrapped(inner)? {
                inner if matches!(*inner, Self::LowCardinality(_) | Self::Array(_)) => {
                    return Err(format!(
                        "type {} cannot be inside LowCardinality",
                        clip(&inner.to_string())
                    ));
                }
                inner => Self::LowCardinality(inner),
            },
            ("Array", Some(inner)) => Self::Array(wrapped(inner)?),
            _ => {
                return Err(format!(
                    "type {} is not supported for parameters",
                    quoted(text)
                ));
            }
        };
        Ok(ty)
    }
}

impl ParamType {
    /// Whether values of this type are plain numbers.
    fn is_number(&self) -> bool {
        matches!(self, Self::Int(_) | Self::UInt(_) | Self::Float(_))
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

/// The element type of `ty` if it is an array, looking through `Nullable`
/// and `LowCardinality`.
fn array_element(ty: &ParamType) -> Option<&ParamType> {
    let mut ty = ty;
    loop {
        match ty {
            ParamType::Array(inner) => return Some(inner),
            ParamType::Nullable(inner) | ParamType::LowCardinality(inner) => ty = inner,
            _ => return None,
        }
    }
}

/// The two ways a checked value is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Form {
    /// An SQL literal: `'quoted\'text'`, `NULL`, `[a, b]`.
    Literal,
    /// A bare number, where ClickHouse takes no expression (`LIMIT 10`).
    Plain,
    /// ClickHouse's escaped text form of `param_<name>` values: top-level
    /// strings bare, `\N`, `[a,b]` with quoted strings inside.
    Param,
    /// An array's items as the list after `IN`: `(1, 2)`, `('a')`.
    List,
}

/// Check `raw` as a `ty` and write it as a typed SQL expression.
fn write_sql(ty: &ParamType, raw: &str, out: &mut String) -> Result<(), String> {
    match ty {
        ParamType::Identifier => {
            check_identifier(raw)?;
            for (i, part) in raw.split('.').enumerate() {
                if i > 0 {
                    out.push('.');
                }
                let _ = write!(out, "`{part}`");
            }
        }
        ParamType::Bool => write_value(ty, raw, false, Form::Literal, true, out)?,
        _ => {
            out.push_str("CAST(");
            write_value(ty, raw, false, Form::Literal, true, out)?;
            let _ = write!(out, " AS {})", sql_type(ty));
        }
    }
    Ok(())
}

/// Check the array `raw` and write its items as the parenthesised list an
/// `IN` takes: `[1, 2]` as `(1, 2)`. Each item is a literal, checked and
/// re-rendered like an array's; ClickHouse converts them to the type of the
/// left-hand side, as it does any literal list.
fn write_list(ty: &ParamType, raw: &str, out: &mut String) -> Result<(), String> {
    let ParamType::Array(element) = ty else {
        return Err("only an array makes a list".into());
    };
    let mut array = String::new();
    let rest = write_array(element, raw, Form::Literal, &mut array)?;
    if !rest.trim().is_empty() {
        return Err("text after the array".into());
    }
    let items = array
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .ok_or("expected [item, item, …]")?;
    if items.is_empty() {
        return Err("an empty list cannot follow IN on this server; send at least one item".into());
    }
    out.push('(');
    out.push_str(items);
    out.push(')');
    Ok(())
}

/// Check `raw` as a `ty` and write it in `form`, re-rendered from what was
/// parsed. `quoted` says `raw` was a quoted array item (the string `'NULL'`
/// is text, not NULL); `top_level` that it is not inside an array. Recurses
/// once per level of `ty`, so at most [`MAX_TYPE_DEPTH`] deep; on error,
/// `out` holds a partial value and must be dropped.
fn write_value(
    ty: &ParamType,
    raw: &str,
    quoted: bool,
    form: Form,
    top_level: bool,
    out: &mut String,
) -> Result<(), String> {
    let text = |text: &str, out: &mut String| match form {
        Form::Param if top_level => escape_text(text, out),
        _ => write_quoted(text, out),
    };
    match ty {
        ParamType::Nullable(inner) => {
            if !quoted && (raw == "\\N" || raw.eq_ignore_ascii_case("null")) {
                out.push_str(match form {
                    Form::Literal | Form::Plain | Form::List => "NULL",
                    Form::Param => "\\N",
                });
            } else {
                write_value(inner, raw, quoted, form, top_level, out)?;
            }
        }
        ParamType::LowCardinality(inner) => {
            write_value(inner, raw, quoted, form, top_level, out)?;
        }
        ParamType::String => text(raw, out),
        ParamType::FixedString(n) => {
            if raw.len() > *n {
                return Err(format!("{} bytes is longer than {n}", raw.len()));
            }
            text(raw, out);
        }
        ParamType::Int(bits) => write_int(raw, *bits, true, out)?,
        ParamType::UInt(bits) => write_int(raw, *bits, false, out)?,
        ParamType::Float(_) => write_float(raw, out)?,
        ParamType::Bool => {
            let value = ["true", "1"]
                .iter()
                .any(|t| raw.eq_ignore_ascii_case(t))
                .then_some("1")
                .or_else(|| {
                    ["false", "0"]
                        .iter()
                        .any(|f| raw.eq_ignore_ascii_case(f))
                        .then_some("0")
                })
                .ok_or("expected true, false, 1 or 0")?;
            out.push_str(value);
        }
        ParamType::Decimal(precision, scale) => {
            text(parse_decimal(raw, *precision, *scale)?, out);
        }
        ParamType::Date(_) => {
            parse_date(raw)?;
            text(raw, out);
        }
        ParamType::DateTime(_) => text(&parse_datetime(raw, 0)?, out),
        ParamType::DateTime64(precision, _) => text(&parse_datetime(raw, *precision)?, out),
        ParamType::Uuid => text(&parse_uuid(raw)?, out),
        ParamType::Identifier => {
            check_identifier(raw)?;
            text(raw, out);
        }
        ParamType::Array(element) => {
            let rest = write_array(element, raw, form, out)?;
            if !rest.trim().is_empty() {
                return Err("text after the array".into());
            }
        }
    }
    Ok(())
}

/// Check and write the array `[item, …]` at the start of `raw` (after
/// whitespace); returns the text after its `]`. Items are quoted strings,
/// nested arrays (when `element` is one) or bare text up to the next `,` or
/// `]`. One pass over the text: a nested array is read from the same text,
/// not split out and read again, so even 16 levels cost one pass.
fn write_array<'a>(
    element: &ParamType,
    raw: &'a str,
    form: Form,
    out: &mut String,
) -> Result<&'a str, String> {
    let mut rest = raw
        .trim_start()
        .strip_prefix('[')
        .ok_or("expected [item, item, …]")?;
    out.push('[');
    if let Some(after) = rest.trim_start().strip_prefix(']') {
        out.push(']');
        return Ok(after);
    }
    let nested = array_element(element);
    let separator = match form {
        Form::Literal | Form::Plain | Form::List => ", ",
        Form::Param => ",",
    };
    let mut first = true;
    loop {
        if !first {
            out.push_str(separator);
        }
        first = false;
        rest = rest.trim_start();
        match (rest.chars().next(), nested) {
            (Some(quote @ ('\'' | '"')), None) => {
                let (text, after) = read_quoted(&rest[1..], quote)?;
                write_value(element, &text, true, form, false, out)?;
                rest = after;
            }
            (Some('\'' | '"'), Some(_)) => {
                return Err("arrays inside an array are written unquoted".into());
            }
            (Some('['), Some(inner)) => rest = write_array(inner, rest, form, out)?,
            _ => {
                // The delimiters are ASCII, so `end` is a character boundary.
                let end = rest
                    .bytes()
                    .position(|b| matches!(b, b',' | b']' | b'[' | b'\'' | b'"'))
                    .unwrap_or(rest.len());
                let item = rest[..end].trim();
                match rest[end..].chars().next() {
                    Some('[') if nested.is_none() => {
                        return Err("brackets nest deeper than the type's arrays".into());
                    }
                    Some('\'' | '"' | '[') => {
                        return Err("a quote or '[' inside an unquoted item".into());
                    }
                    _ => {}
                }
                if item.is_empty() {
                    return Err("empty array item".into());
                }
                write_value(element, item, false, form, false, out)?;
                rest = &rest[end..];
            }
        }
        rest = rest.trim_start();
        let mut chars = rest.chars();
        match chars.next() {
            Some(',') => rest = chars.as_str(),
            Some(']') => {
                out.push(']');
                return Ok(chars.as_str());
            }
            Some(_) => return Err("expected ',' or ']' after an item".into()),
            None => return Err("unbalanced '['".into()),
        }
    }
}

/// Read a quoted item whose text starts at `rest` (just after the opening
/// `quote`): its unescaped text and what follows the closing quote.
fn read_quoted(rest: &str, quote: char) -> Result<(String, &str), String> {
    let mut text = String::new();
    let mut chars = rest.chars();
    loop {
        let c = match chars.next() {
            Some('\\') => match chars.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some('0') => '\0',
                Some(escaped) => escaped,
                None => return Err("unterminated escape".into()),
            },
            Some(c) if c == quote => return Ok((text, chars.as_str())),
            Some(c) => c,
            None => return Err("unterminated quoted item".into()),
        };
        text.push(c);
    }
}

/// Write `text` as a quoted SQL string. Line breaks are escaped too, so a
/// literal is one line and can never end a line comment around it.
fn write_quoted(text: &str, out: &mut String) {
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

fn check_identifier(raw: &str) -> Result<(), String> {
    let valid = raw
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if valid && !raw.ends_with('.') && !raw.contains("..") {
        Ok(())
    } else {
        Err("identifiers are letters, digits, '_' and one optional '.'".into())
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

/// Check an integer of `bits` bits and write it in canonical form (no `+`,
/// no leading zeros).
fn write_int(raw: &str, bits: u16, signed: bool, out: &mut String) -> Result<(), String> {
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
    let in_range = match bits {
        8 | 16 | 32 | 64 => {
            // At most 2^64, so every shift and subtraction here fits.
            let limit: u128 = if signed {
                (1u128 << (bits - 1)) - u128::from(!negative)
            } else {
                (1u128 << bits) - 1
            };
            digits
                .parse::<u64>()
                .is_ok_and(|magnitude| u128::from(magnitude) <= limit)
        }
        // 128- and 256-bit bounds exceed u128 for the unsigned 256 case; a
        // digit-count bound keeps the check simple and the server enforces
        // the exact edge.
        128 => digits.len() <= 39,
        256 => digits.len() <= 78,
        _ => return Err(format!("{bits}-bit integers are not supported")),
    };
    if !in_range {
        return Err(format!("out of range for {bits}-bit integers"));
    }
    if negative && digits != "0" {
        out.push('-');
    }
    out.push_str(digits);
    Ok(())
}

/// Check a floating-point number and write it in canonical form.
fn write_float(raw: &str, out: &mut String) -> Result<(), String> {
    let text = raw.trim();
    let is = |names: &[&str]| names.iter().any(|name| text.eq_ignore_ascii_case(name));
    if is(&["nan"]) {
        out.push_str("nan");
    } else if is(&["inf", "+inf", "infinity"]) {
        out.push_str("inf");
    } else if is(&["-inf", "-infinity"]) {
        out.push_str("-inf");
    } else {
        let looks_numeric = text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
        match text.parse::<f64>() {
            Ok(value) if looks_numeric && value.is_finite() => {
                let _ = write!(out, "{value:?}");
            }
            _ => return Err("expected a number".into()),
        }
    }
    Ok(())
}

/// Check a decimal number against `Decimal(precision, scale)`; returns it trimmed.
fn parse_decimal(raw: &str, precision: u8, scale: u8) -> Result<&str, String> {
    // `ParamType::parse` never makes S > P, but the variant is public.
    let whole_limit = precision
        .checked_sub(scale)
        .ok_or_else(|| format!("Decimal({precision}, {scale}) is not a type"))?;
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
    if whole_digits > usize::from(whole_limit) || fraction.len() > usize::from(scale) {
        return Err(format!("does not fit Decimal({precision}, {scale})"));
    }
    Ok(text)
}

fn parse_date(raw: &str) -> Result<(), String> {
    let bytes = raw.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return Err("expected YYYY-MM-DD".into());
    }
    // All ten bytes are ASCII, so these ranges are on character boundaries.
    let number = |range: std::ops::Range<usize>| {
        raw.get(range)
            .and_then(|digits| digits.parse::<u32>().ok())
            .unwrap_or(0)
    };
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
    // `get` is `None` for a range that cuts a multi-byte character, where
    // indexing would panic.
    let (Some(date), Some(&separator), Some(time), Some(rest)) = (
        text.get(..10),
        text.as_bytes().get(10),
        text.get(11..19),
        text.get(19..),
    ) else {
        return Err("expected YYYY-MM-DD hh:mm:ss or a Unix timestamp".into());
    };
    parse_date(date)?;
    let time_ok = (separator == b' ' || separator == b'T')
        && time.bytes().enumerate().all(|(i, b)| match i {
            2 | 5 => b == b':',
            _ => b.is_ascii_digit(),
        });
    if !time_ok {
        return Err("expected YYYY-MM-DD hh:mm:ss".into());
    }
    let field = |range: std::ops::Range<usize>| {
        time.get(range)
            .and_then(|digits| digits.parse::<u32>().ok())
            .unwrap_or(99)
    };
    if field(0..2) > 23 || field(3..5) > 59 || field(6..8) > 59 {
        return Err(format!("{time} is not a time of day"));
    }
    let fraction = match rest.strip_prefix('.') {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => digits,
        None if rest.is_empty() => "",
        _ => return Err("unexpected text after the time".into()),
    };
    if fraction.len() > usize::from(precision) {
        return Err(format!("more than {precision} fractional digits"));
    }
    let mut canonical = format!("{date} {time}");
    if !fraction.is_empty() {
        canonical.push('.');
        canonical.push_str(fraction);
    }
    Ok(canonical)
}

fn parse_uuid(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    let shape = [8, 4, 4, 4, 12];
    let mut groups = text.split('-');
    // Stops at the first group that does not fit instead of collecting all.
    let ok = shape.iter().all(|&len| {
        groups
            .next()
            .is_some_and(|g| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
    }) && groups.next().is_none();
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err("expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".into())
    }
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
    fn arrays_after_in_are_lists_on_older_servers() {
        let sql = "SELECT n FROM t WHERE n IN {ids:Array(UInt32)} AND s NOT IN {s:Array(String)}";
        assert_eq!(
            inline(sql, &[("ids", "[1, 3]"), ("s", r"['a', 'b\'c']")]).unwrap(),
            r"SELECT n FROM t WHERE n IN (1, 3) AND s NOT IN ('a', 'b\'c')"
        );
        assert_eq!(
            inline("SELECT 1 WHERE n IN {ids:Array(UInt8)}", &[("ids", "[7]")]).unwrap(),
            "SELECT 1 WHERE n IN (7)"
        );
        // Checked as an array's items are.
        let bad = inline(
            "SELECT 1 WHERE n IN {ids:Array(UInt8)}",
            &[("ids", "[1, 300]")],
        );
        assert_eq!(bad.unwrap_err().fault, BindFault::Value);
        let empty = inline("SELECT 1 WHERE n IN {ids:Array(UInt8)}", &[("ids", "[]")]);
        assert_eq!(empty.unwrap_err().fault, BindFault::Value);
        // Elsewhere an array stays an array; newer servers get the array.
        assert_eq!(
            inline("SELECT has({ids:Array(UInt8)}, 1)", &[("ids", "[1]")]).unwrap(),
            "SELECT has(CAST([1] AS Array(UInt8)), 1)"
        );
        let server = server(
            "SELECT 1 WHERE n IN {ids:Array(UInt8)}",
            &[("ids", "[1, 2]")],
        )
        .unwrap();
        assert_eq!(server.sql, "SELECT 1 WHERE n IN {ids:Array(UInt8)}");
        assert_eq!(
            server.url_params,
            [("param_ids".to_owned(), "[1,2]".to_owned())]
        );
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
            "SELECT 1 - CAST(-5 AS Int8)"
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
                .to_string()
                .contains("no value")
        );
        assert!(
            inline("SELECT 1", &[("a", "1")])
                .unwrap_err()
                .to_string()
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

    fn server(sql: &str, pairs: &[(&str, &str)]) -> Result<BoundQuery, BindError> {
        bind(sql, &params(pairs), BindMode::Server)
    }

    fn nested(wrapper: &str, depth: usize, inner: &str) -> String {
        format!(
            "{}{inner}{}",
            format!("{wrapper}(").repeat(depth),
            ")".repeat(depth)
        )
    }

    #[test]
    fn deep_types_are_refused_without_overflowing_the_stack() {
        // Every wrapper counts towards the depth.
        let deepest = nested(
            "Array",
            MAX_TYPE_DEPTH - 2,
            "LowCardinality(Nullable(String))",
        );
        assert!(ParamType::parse(&deepest).is_ok());
        assert!(ParamType::parse(&format!("Array({deepest})")).is_err());
        assert!(ParamType::parse(&nested("Array", MAX_TYPE_DEPTH, "String")).is_ok());
        let too_deep = nested("Array", MAX_TYPE_DEPTH + 1, "String");
        let err = ParamType::parse(&too_deep).unwrap_err();
        assert!(err.contains("levels deep"), "{err}");
        for wrapper in ["Array", "Nullable", "LowCardinality"] {
            // Was: unbounded recursion, a stack overflow aborting the process.
            let err = ParamType::parse(&nested(wrapper, 100_000, "String")).unwrap_err();
            assert!(err.len() < 300, "{} bytes of error", err.len());
        }
        let sql = format!("SELECT {{a:{}}}", nested("Array", 100_000, "String"));
        let err = inline(&sql, &[("a", "[]")]).unwrap_err();
        assert!(
            err.to_string().contains("levels deep") && err.to_string().len() < 500,
            "{err}"
        );
    }

    #[test]
    fn wrappers_nest_as_in_clickhouse() {
        for bad in [
            "Nullable(Nullable(String))",
            "Nullable(Array(String))",
            "Nullable(LowCardinality(String))",
            "LowCardinality(LowCardinality(String))",
            "LowCardinality(Array(String))",
            "Array(Nullable(Nullable(UInt8)))",
        ] {
            let err = ParamType::parse(bad).unwrap_err();
            assert!(err.contains("cannot be inside"), "{bad}: {err}");
        }
        for good in [
            "LowCardinality(Nullable(String))",
            "Array(LowCardinality(Nullable(String)))",
            "Array(Nullable(UInt8))",
            "Array(Array(Nullable(Date)))",
        ] {
            assert!(ParamType::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn values_nest_only_as_deep_as_their_type() {
        let sql = format!("SELECT {{a:{}}}", nested("Array", MAX_TYPE_DEPTH, "UInt8"));
        let value = format!(
            "{}1{}",
            "[".repeat(MAX_TYPE_DEPTH),
            "]".repeat(MAX_TYPE_DEPTH)
        );
        assert!(inline(&sql, &[("a", &value)]).is_ok());
        let deeper = format!("[{value}]");
        assert!(inline(&sql, &[("a", &deeper)]).is_err());
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(inline("SELECT {a:Array(String)}", &[("a", &deep)]).is_err());
        assert!(inline("SELECT {a:Array(Array(UInt8))}", &[("a", "[[[1]]]")]).is_err());
        assert_eq!(
            inline(
                "SELECT {a:Array(Array(UInt8))}",
                &[("a", " [ [1,2] , [], [ 3 ] ] ")]
            )
            .unwrap(),
            "SELECT CAST([[1, 2], [], [3]] AS Array(Array(UInt8)))"
        );
        // Brackets inside nested strings do not count.
        assert_eq!(
            inline(
                "SELECT {a:Array(Array(String))}",
                &[("a", "[['a]', 'b,'], ['[']]")]
            )
            .unwrap(),
            "SELECT CAST([['a]', 'b,'], ['[']] AS Array(Array(String)))"
        );
        for bad in [
            "[1",
            "[1]]",
            "[[1]",
            "[1] x",
            "[,]",
            "[1,]",
            "[1 2]x",
            "['a' 'b']",
            "[a'b']",
        ] {
            assert!(
                inline("SELECT {a:Array(String)}", &[("a", bad)]).is_err(),
                "{bad:?} was accepted"
            );
        }
        assert!(inline("SELECT {a:Array(Array(UInt8))}", &[("a", "['[1]']")]).is_err());
    }

    #[test]
    fn quoted_null_in_an_array_is_text() {
        assert_eq!(
            inline(
                "SELECT {a:Array(Nullable(String))}",
                &[("a", "[NULL, 'NULL', \\N, '\\\\N', null]")]
            )
            .unwrap(),
            r"SELECT CAST([NULL, 'NULL', NULL, '\\N', NULL] AS Array(Nullable(String)))"
        );
        assert_eq!(
            server(
                "SELECT {a:Array(Nullable(String))}",
                &[("a", "[NULL, 'NULL']")]
            )
            .unwrap()
            .url_params,
            vec![("param_a".to_owned(), r"[\N,'NULL']".to_owned())]
        );
    }

    #[test]
    fn multi_byte_characters_never_split() {
        // Was: `&text[..10]`, `&text[11..19]` panicking inside a character.
        let good = "2024-01-31 23:59:58.123";
        for at in 0..=good.len() {
            for c in ['é', '✓', '𐍈'] {
                let mut value = good.to_owned();
                value.insert(at, c);
                for ty in ["DateTime", "DateTime64(3)", "Date", "UUID", "Decimal(9, 3)"] {
                    let sql = format!("SELECT {{t:{ty}}}");
                    assert!(inline(&sql, &[("t", &value)]).is_err(), "{value:?} as {ty}");
                }
                let mut ty = "DateTime64(3, 'UTC')".to_owned();
                ty.insert(at.min(ty.len() - 1), c);
                let _ = ParamType::parse(&ty);
            }
        }
        assert!(parse_datetime("2024-01-31 23:59:5é", 0).is_err());
        assert!(parse_datetime("2024-01-3é 23:59:58", 0).is_err());
        assert!(parse_datetime("2024-01-31é23:59:58", 0).is_err());
    }

    #[test]
    fn numeric_type_arguments_are_checked_not_truncated() {
        // Was: `300 as u8` = 44, then `9 - 44` overflowing in parse_decimal.
        for bad in [
            "Decimal32(300)",
            "Decimal32(10)",
            "Decimal64(19)",
            "Decimal128(39)",
            "Decimal256(77)",
            "Decimal32(18446744073709551616)",
            "Decimal(77, 1)",
            "Decimal(0, 0)",
            "Decimal(5, 6)",
            "FixedString(0)",
            "FixedString(1048577)",
            "FixedString(18446744073709551615)",
            "DateTime64(10)",
        ] {
            assert!(ParamType::parse(bad).is_err(), "{bad} was accepted");
            let sql = format!("SELECT {{d:{bad}}}");
            assert!(inline(&sql, &[("d", "1")]).is_err(), "{bad}");
        }
        assert_eq!(
            ParamType::parse("Decimal32(9)"),
            Ok(ParamType::Decimal(9, 9))
        );
        assert_eq!(
            ParamType::parse("Decimal256(76)"),
            Ok(ParamType::Decimal(76, 76))
        );
        assert_eq!(
            ParamType::parse("FixedString(1048576)"),
            Ok(ParamType::FixedString(MAX_FIXED_STRING_BYTES))
        );
        assert_eq!(
            inline("SELECT {d:Decimal32(2)}", &[("d", "-1234567.89")]).unwrap(),
            "SELECT CAST('-1234567.89' AS Decimal(9, 2))"
        );
        // The variants are public: impossible ones are errors, not panics.
        for ty in [
            ParamType::Decimal(5, 10),
            ParamType::Int(0),
            ParamType::UInt(0),
            ParamType::Int(7),
            ParamType::UInt(300),
        ] {
            let mut out = String::new();
            assert!(write_value(&ty, "1", false, Form::Literal, true, &mut out).is_err());
        }
    }

    #[test]
    fn unclosed_quotes_and_comments_are_refused() {
        for sql in [
            "SELECT 'a\\",
            "SELECT \"\\é",
            "SELECT `\\",
            "SELECT 1 /* open",
            "SELECT 1 /*",
            "SELECT 'é\\é",
            "'",
            "\\",
            "SELECT {a:UInt8",
        ] {
            assert!(inline(sql, &[]).is_err(), "{sql:?}");
            assert!(inline(sql, &[("a", "1")]).is_err(), "{sql:?}");
        }
        assert_eq!(inline("SELECT 1 --", &[]).unwrap(), "SELECT 1 --");
    }

    #[test]
    fn error_messages_quote_little_of_the_input() {
        let long = "é".repeat(1 << 20);
        let cases = [
            (format!("SELECT {{{long}}}"), vec![]),
            (format!("SELECT {{{long}:String}}"), vec![]),
            (format!("SELECT {{a:{long}}}"), vec![("a", "1")]),
            (format!("SELECT {{a:DateTime('{long}')}}"), vec![("a", "1")]),
            (
                format!("SELECT {{a:DateTime('{}')}}", "a".repeat(1 << 20)),
                vec![("a", "x")],
            ),
            ("SELECT {a:UInt8}".to_owned(), vec![("a", long.as_str())]),
            ("SELECT 1".to_owned(), vec![(long.as_str(), "1")]),
            ("SELECT {a:UInt8}".to_owned(), vec![("a", "1"), ("a", "1")]),
            (format!("SELECT {{{}:UInt8}}", "a".repeat(1 << 20)), vec![]),
        ];
        for (sql, pairs) in &cases {
            let err = inline(sql, pairs).unwrap_err();
            assert!(
                err.to_string().len() < 500,
                "{} bytes: {}",
                err.to_string().len(),
                clip(&err.to_string())
            );
        }
        // Map literals are not placeholders.
        let err = inline("SELECT {'a':1}", &[]).unwrap_err();
        assert!(err.to_string().contains("name is letters"), "{err}");
    }

    #[test]
    fn line_breaks_in_values_are_escaped() {
        assert_eq!(
            inline("SELECT {s:String}", &[("s", "a\nb\r\0'\\")]).unwrap(),
            r"SELECT CAST('a\nb\r\0\'\\' AS String)"
        );
    }

    #[test]
    fn constructs_servers_read_differently_are_refused_in_both_modes() {
        for sql in [
            "SELECT $$ {s:String} $$",
            "SELECT $a$ {s:String} $a$",
            // Newer servers read `//` and `# ` as comments, so their quote
            // does not open a string there, and the next one does: the
            // literal would land inside a string and its `'` would end it.
            "SELECT 1 // '\n, ' , {s:String}, '",
            "SELECT 1 # '\n, ' , {s:String}, '",
            "SELECT 1 /* /* */ {s:String} */",
            "SELECT {s:String} AS a$",
        ] {
            assert!(inline(sql, &[("s", "x")]).is_err(), "{sql:?}");
            assert!(server(sql, &[("s", "x")]).is_err(), "{sql:?}");
        }
        // Inside quotes and comments they mean nothing.
        assert!(inline("SELECT '$#//' -- $\n, {s:String} /* $ */", &[("s", "x")]).is_ok());
    }

    #[test]
    fn counts_of_limit_clauses_are_plain_numbers() {
        assert_eq!(
            inline("SELECT 1 LIMIT {n:UInt32}", &[("n", "3")]).unwrap(),
            "SELECT 1 LIMIT 3"
        );
        assert_eq!(
            inline(
                "SELECT 1 LIMIT {o:UInt32}, {n:UInt32}",
                &[("o", "2"), ("n", "5")]
            )
            .unwrap(),
            "SELECT 1 LIMIT 2, 5"
        );
        assert_eq!(
            inline("SELECT 1 LIMIT 10 OFFSET {o:UInt64}", &[("o", "7")]).unwrap(),
            "SELECT 1 LIMIT 10 OFFSET 7"
        );
        // Also in server mode: 19.x servers take no parameter there either.
        let bound = server("SELECT {n:UInt8} LIMIT {n:UInt8}", &[("n", "4")]).unwrap();
        assert_eq!(bound.sql, "SELECT {n:UInt8} LIMIT 4");
        assert_eq!(
            bound.url_params,
            vec![("param_n".to_owned(), "4".to_owned())]
        );
        // Still checked: a bad value is the caller's fault.
        let err = inline("SELECT 1 LIMIT {n:UInt32}", &[("n", "3; DROP")]).unwrap_err();
        assert_eq!(err.fault, BindFault::Value);
        // Elsewhere a number keeps its type.
        assert_eq!(
            inline("SELECT {n:UInt32} + 1", &[("n", "3")]).unwrap(),
            "SELECT CAST(3 AS UInt32) + 1"
        );
        // A substituted value never glues to its neighbours.
        assert_eq!(
            inline("SELECT 1 LIMIT {n:UInt8}5", &[("n", "7")]).unwrap(),
            "SELECT 1 LIMIT 7 5"
        );
    }

    #[test]
    fn a_bad_value_is_the_callers_fault_a_bad_placeholder_the_querys() {
        let fault = |sql: &str, pairs: &[(&str, &str)]| inline(sql, pairs).unwrap_err().fault;
        assert_eq!(fault("SELECT {n:UInt8}", &[("n", "x")]), BindFault::Value);
        assert_eq!(fault("SELECT {n:UInt8}", &[]), BindFault::Query);
        assert_eq!(fault("SELECT 1", &[("n", "1")]), BindFault::Query);
        assert_eq!(
            fault("SELECT {n:NoSuchType}", &[("n", "1")]),
            BindFault::Query
        );
    }

    #[test]
    fn repeated_placeholders_are_checked_once_and_bounded() {
        let big = "x".repeat(1 << 20);
        let sql = "{s:String}".repeat(30_000);
        let err = inline(&sql, &[("s", &big)]).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
        let bound = server(&sql, &[("s", &big)]).unwrap();
        assert_eq!(bound.url_params.len(), 1);
        assert_eq!(bound.sql, sql);
        let idents = "{s:Identifier}".repeat(30_000);
        let err = server(&idents, &[("s", &big)]).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
        // A big value against ever new types runs out of budget.
        let types: String = (1..2000)
            .map(|n| format!("{{s:FixedString({})}}", (1 << 20) - n))
            .collect();
        let err = server(&types, &[("s", &"x".repeat(100_000))]).unwrap_err();
        assert!(
            err.to_string().contains("too many different types"),
            "{err}"
        );
        // A name used with two types is checked against both, sent once.
        let bound = server("SELECT {n:UInt8}, {n:String}", &[("n", "7")]).unwrap();
        assert_eq!(
            bound.url_params,
            vec![("param_n".to_owned(), "7".to_owned())]
        );
        assert!(server("SELECT {n:String}, {n:UInt8}", &[("n", "x")]).is_err());
    }

    #[test]
    fn many_parameters_and_placeholders_bind_in_linear_time() {
        let pairs: Vec<(String, String)> = (0..1024)
            .map(|i| (format!("p{i}"), i.to_string()))
            .collect();
        let sql: String = (0..20_000)
            .map(|i| format!("{{p{}:UInt16}}", i % 1024))
            .collect();
        let bound = bind(&sql, &pairs, BindMode::Inline).unwrap();
        assert!(bound.sql.starts_with("CAST(0 AS UInt16) CAST(1 AS UInt16)"));
        let bound = bind(&sql, &pairs, BindMode::Server).unwrap();
        assert_eq!(bound.url_params.len(), 1024);
    }
}
