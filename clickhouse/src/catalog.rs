//! What the host knows of ClickHouse's names: every function, table function,
//! engine, system table, data type, codec, keyword and setting that
//! ClickHouse 18.16 and 26.9 list in their own catalogues, each classified.
//!
//! The classification lives in `catalog/*.tsv` beside this crate (one file a
//! catalogue, made with `catalog/dump.py` from both servers and reviewed name
//! by name); `tests/catalog.rs` fails when a server lists a name the files do
//! not. Guest SQL may use only names classified `allow`: a name the host does
//! not know, such as one a newer server brings, is refused until someone
//! reads what it does and classifies it.
//!
//! Names are matched as ClickHouse matches function names: exactly, or
//! ignoring ASCII case. A name denied in any catalogue is denied in every
//! position and every spelling, so no keyword, alias or case variant can
//! reopen it.

use std::collections::HashMap;
use std::sync::LazyLock;

/// What the host lets guests do with a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Guests may use it.
    Allow,
    /// Guests may not; the reason, for the refusal's message.
    Deny(&'static str),
    /// Not in the catalogue: refused until classified.
    Unknown,
}

/// Who may set a ClickHouse setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingClass {
    /// It shapes the output only: every guest may set it.
    Guest,
    /// Harmless to the server, but it changes resources or behaviour: a
    /// route's `allowed_settings` may let its guests set it.
    Route,
    /// Never a guest's: limits, sessions, paths, the network.
    Host,
}

/// One catalogue file: names with their class and reason.
struct Entries {
    /// Exact names.
    exact: HashMap<&'static str, (&'static str, &'static str)>,
    /// Lower-case names.
    folded: HashMap<String, (&'static str, &'static str)>,
}

impl Entries {
    fn parse(text: &'static str) -> Self {
        let mut exact = HashMap::new();
        let mut folded: HashMap<String, (&'static str, &'static str)> = HashMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split('\t');
            let name = fields.next().unwrap_or_default();
            let class = fields.next().unwrap_or("deny").trim();
            let why = fields.next().unwrap_or("").trim();
            exact.insert(name, (class, why));
            // Folded names keep the strictest class: a deny under any
            // spelling denies every spelling.
            let entry = folded
                .entry(name.to_ascii_lowercase())
                .or_insert((class, why));
            if class == "deny" || (entry.0 != "deny" && class == "host") {
                *entry = (class, why);
            }
        }
        Self { exact, folded }
    }

    fn get(&self, name: &str) -> Option<(&'static str, &'static str)> {
        self.exact
            .get(name)
            .copied()
            .or_else(|| self.folded.get(&name.to_ascii_lowercase()).copied())
    }

    fn denied(&self, name: &str) -> Option<&'static str> {
        self.folded
            .get(&name.to_ascii_lowercase())
            .filter(|(class, _)| *class == "deny")
            .map(|(_, why)| *why)
    }

    fn allowed(&self, name: &str) -> bool {
        self.get(name).is_some_and(|(class, _)| class == "allow")
    }
}

/// Every catalogue, parsed once.
struct Catalog {
    functions: Entries,
    combinators: Entries,
    table_functions: Entries,
    table_engines: Entries,
    database_engines: Entries,
    system_tables: Entries,
    data_types: Entries,
    codecs: Entries,
    keywords: Entries,
    index_types: Entries,
    settings: Entries,
}

macro_rules! catalog_file {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/catalog/",
            $name,
            ".tsv"
        ))
    };
}

/// The files, by catalogue name (as `catalog/dump.py` prints them).
pub const FILES: &[(&str, &str)] = &[
    ("function", catalog_file!("function")),
    ("combinator", catalog_file!("combinator")),
    ("table_function", catalog_file!("table_function")),
    ("table_engine", catalog_file!("table_engine")),
    ("database_engine", catalog_file!("database_engine")),
    ("system_table", catalog_file!("system_table")),
    ("data_type", catalog_file!("data_type")),
    ("codec", catalog_file!("codec")),
    ("keyword", catalog_file!("keyword")),
    ("index_type", catalog_file!("index_type")),
    ("setting", catalog_file!("setting")),
];

fn file(name: &str) -> &'static str {
    FILES
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, text)| *text)
        .unwrap_or_default()
}

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| Catalog {
    functions: Entries::parse(file("function")),
    combinators: Entries::parse(file("combinator")),
    table_functions: Entries::parse(file("table_function")),
    table_engines: Entries::parse(file("table_engine")),
    database_engines: Entries::parse(file("database_engine")),
    system_tables: Entries::parse(file("system_table")),
    data_types: Entries::parse(file("data_type")),
    codecs: Entries::parse(file("codec")),
    keywords: Entries::parse(file("keyword")),
    index_types: Entries::parse(file("index_type")),
    settings: Entries::parse(file("setting")),
});

impl Catalog {
    /// Catalogues whose names may be written before `(` in a call: the
    /// engines too, for `ENGINE = MergeTree()` (whose name [`engine`]
    /// judges first).
    fn callables(&self) -> [&Entries; 9] {
        [
            &self.functions,
            &self.table_functions,
            &self.data_types,
            &self.codecs,
            &self.keywords,
            &self.index_types,
            &self.combinators,
            &self.table_engines,
            &self.database_engines,
        ]
    }

    /// A denial of `name` as something callable. Engines are not called,
    /// so their denials (`Alias`, `Buffer`) do not stop a function or a
    /// keyword of the same spelling; [`engine`] applies them.
    fn denied_call(&self, name: &str) -> Option<&'static str> {
        self.callables()[..7]
            .iter()
            .find_map(|entries| entries.denied(name))
    }
}

/// Most combinator suffixes one aggregate call may carry (`sumArrayIfOrNull`).
const MAX_COMBINATORS: usize = 4;

/// A name written before `(`: a function, table function, engine, type,
/// codec, index type or keyword. Denied in any of them is denied; allowed
/// in one (and denied in none) is allowed. An aggregate function with
/// combinators (`sumIf`, `uniqArrayMerge`) is judged by its base name.
pub fn call(name: &str) -> Verdict {
    let catalog = &*CATALOG;
    if let Some(why) = catalog.denied_call(name) {
        return Verdict::Deny(why);
    }
    if catalog
        .callables()
        .iter()
        .any(|entries| entries.allowed(name))
    {
        return Verdict::Allow;
    }
    // An aggregate function with combinators: strip the longest suffix and
    // look again, at functions only (a keyword or type with a suffix is no
    // function at all).
    let mut base = name;
    for _ in 0..MAX_COMBINATORS {
        let Some(stripped) = strip_combinator(&catalog.combinators, base) else {
            break;
        };
        base = stripped;
        if let Some(why) = catalog.denied_call(base) {
            return Verdict::Deny(why);
        }
        if catalog.functions.allowed(base) {
            return Verdict::Allow;
        }
    }
    Verdict::Unknown
}

fn strip_combinator<'n>(combinators: &Entries, name: &'n str) -> Option<&'n str> {
    combinators
        .exact
        .iter()
        .filter(|(_, (class, _))| *class == "allow")
        .filter_map(|(suffix, _)| name.strip_suffix(suffix))
        .filter(|base| !base.is_empty())
        .min_by_key(|base| base.len())
}

/// A table or database engine named in an `ENGINE` clause.
pub fn engine(name: &str) -> Verdict {
    let catalog = &*CATALOG;
    let engines = [&catalog.table_engines, &catalog.database_engines];
    if let Some(why) = engines
        .iter()
        .find_map(|entries| entries.denied(name))
        .or_else(|| catalog.denied_call(name))
    {
        return Verdict::Deny(why);
    }
    if engines.iter().any(|entries| entries.allowed(name)) {
        Verdict::Allow
    } else {
        Verdict::Unknown
    }
}

/// Whether `name` is one of ClickHouse's keywords (any class).
pub fn is_keyword(name: &str) -> bool {
    CATALOG.keywords.get(name).is_some()
}

/// Whether `name` is a function the catalogue denies (in any spelling).
pub fn denied_function(name: &str) -> Option<&'static str> {
    CATALOG.functions.denied(name)
}

/// A table of the `system` database.
pub fn system_table(name: &str) -> Verdict {
    match CATALOG.system_tables.get(name) {
        Some(("allow", _)) => Verdict::Allow,
        Some((_, why)) => Verdict::Deny(why),
        None => Verdict::Unknown,
    }
}

/// Who may set `name`; `None` when no server the host knows has it.
pub fn setting(name: &str) -> Option<SettingClass> {
    CATALOG
        .settings
        .exact
        .get(name)
        .map(|(class, _)| match *class {
            "guest" => SettingClass::Guest,
            "route" => SettingClass::Route,
            _ => SettingClass::Host,
        })
}

/// Every setting of `class`, sorted.
pub fn settings_of(class: SettingClass) -> Vec<&'static str> {
    let mut names: Vec<_> = CATALOG
        .settings
        .exact
        .keys()
        .copied()
        .filter(|name| setting(name) == Some(class))
        .collect();
    names.sort_unstable();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_has_a_known_class_and_denials_say_why() {
        for (catalog, text) in FILES {
            let classes: &[&str] = match *catalog {
                "setting" => &["guest", "route", "host"],
                "keyword" => &["allow", "deny", "plain"],
                _ => &["allow", "deny"],
            };
            for line in text
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                let fields: Vec<_> = line.split('\t').collect();
                assert!(
                    fields.len() >= 2 && classes.contains(&fields[1]),
                    "{catalog}.tsv: {line:?}"
                );
                let needs_reason = !matches!(fields[1], "allow" | "guest" | "plain");
                assert!(
                    !needs_reason || fields.get(2).is_some_and(|why| !why.trim().is_empty()),
                    "{catalog}.tsv: {line:?} needs a reason"
                );
            }
        }
    }

    #[test]
    fn names_are_judged_across_catalogues() {
        assert_eq!(call("abs"), Verdict::Allow);
        assert_eq!(call("ABS"), Verdict::Allow);
        assert_eq!(call("numbers"), Verdict::Allow);
        assert_eq!(call("Nullable"), Verdict::Allow);
        assert_eq!(call("sumIf"), Verdict::Allow);
        assert_eq!(call("uniqArrayIfOrNull"), Verdict::Allow);
        for denied in [
            "url",
            "URL",
            "remote",
            "file",
            "hasColumnInTable",
            "dictGet",
            "merge",
            "cluster",
            "s3",
        ] {
            assert!(matches!(call(denied), Verdict::Deny(_)), "{denied}");
        }
        assert!(matches!(call("fileIf"), Verdict::Deny(_)));
        assert_eq!(call("noSuchFunctionAnywhere"), Verdict::Unknown);
        assert_eq!(engine("MergeTree"), Verdict::Allow);
        assert!(matches!(engine("URL"), Verdict::Deny(_)));
        assert!(matches!(engine("Distributed"), Verdict::Deny(_)));
        assert_eq!(system_table("numbers"), Verdict::Allow);
        assert!(matches!(system_table("processes"), Verdict::Deny(_)));
        assert_eq!(system_table("no_such_table"), Verdict::Unknown);
        assert_eq!(setting("max_execution_time"), Some(SettingClass::Host));
        assert_eq!(setting("format_schema"), Some(SettingClass::Host));
        assert_eq!(
            setting("output_format_json_quote_64bit_integers"),
            Some(SettingClass::Guest)
        );
        assert_eq!(setting("no_such_setting"), None);
    }
}
