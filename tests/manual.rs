//! The manual holds together: README.md, CONTRIBUTING.md (when there is one),
//! ARCHITECTURE.md, BENCHMARKS.md and docs/*.md.
//!
//! - Every relative link (`[text](path)`, `[text](path#anchor)`,
//!   `[text](#anchor)`, and reference definitions `[name]: path`) names a file
//!   or directory of the repository, and every anchor into a Markdown file is
//!   one of its headings, slugged as GitHub does: lower case; letters (any
//!   script), digits, spaces, `-` and `_` kept, everything else dropped;
//!   spaces become `-`; a repeated heading gets `-1`, `-2`, … Links in code
//!   and links to other sites (`http://`, `https://`, `mailto:`) are not
//!   followed.
//! - Every `wasmhouse …` command in a shell block (language `sh`, `bash`,
//!   `console`, `shell` or none), also after `$ ` or inside a chain with
//!   `&&`, `|` or `;`, names a subcommand the binary has and only `--flags`
//!   that subcommand (or the top level) takes, as the binary's own `--help`
//!   says.
//!
//! Every failure is collected and the test fails once, listing each as
//! `file:line: problem`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// Languages of fenced blocks whose lines are shell commands.
const SHELL: [&str; 6] = ["", "sh", "bash", "console", "shell", "zsh"];

/// Words that run the command after them, skipped before the binary.
const WRAPPERS: [&str; 5] = ["env", "exec", "nohup", "sudo", "time"];

/// The repository's root: host/'s parent.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is inside the repository")
        .to_path_buf()
}

/// The binary the commands are checked against.
fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wasmhouse"))
}

/// The manual's files, relative to `root`: the top-level documents, then
/// docs/*.md in name order.
fn manual_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"]
        .into_iter()
        .map(PathBuf::from)
        .collect();
    if root.join("CONTRIBUTING.md").is_file() {
        files.push(PathBuf::from("CONTRIBUTING.md"));
    }
    let mut guides: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("reading docs/")
        .map(|entry| entry.expect("an entry of docs/").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .map(|path| {
            path.strip_prefix(root)
                .expect("docs/ is under the root")
                .to_path_buf()
        })
        .collect();
    guides.sort();
    files.extend(guides);
    files
}

/// A fenced code block: its language (the info string's first word, in lower
/// case; empty when there is none) and its lines with their numbers.
#[derive(Debug, Default)]
struct CodeBlock<'a> {
    language: String,
    lines: Vec<(usize, &'a str)>,
}

/// A fence line's character (`` ` `` or `~`), how many of them, and the info
/// string after them.
fn fence(line: &str) -> Option<(char, usize, &str)> {
    let trimmed = line.trim_start();
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let ch = trimmed.chars().next()?;
    if ch != '`' && ch != '~' {
        return None;
    }
    let run = trimmed.len() - trimmed.trim_start_matches(ch).len();
    if run < 3 {
        return None;
    }
    Some((ch, run, trimmed[run..].trim()))
}

/// `text`'s lines outside fenced code blocks, and the blocks; lines are
/// numbered from 1. A block left open runs to the end of the file.
fn split_code(text: &str) -> (Vec<(usize, &str)>, Vec<CodeBlock<'_>>) {
    let mut prose = Vec::new();
    let mut blocks = Vec::new();
    let mut open: Option<(char, usize)> = None;
    let mut current = CodeBlock::default();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let marker = fence(line);
        match open {
            Some((ch, run)) => {
                let closes =
                    marker.is_some_and(|(c, r, info)| c == ch && r >= run && info.is_empty());
                if closes {
                    blocks.push(std::mem::take(&mut current));
                    open = None;
                } else {
                    current.lines.push((number, line));
                }
            }
            None => match marker {
                Some((ch, run, info)) => {
                    open = Some((ch, run));
                    current.language = info
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_lowercase();
                }
                None => prose.push((number, line)),
            },
        }
    }
    if open.is_some() {
        blocks.push(current);
    }
    (prose, blocks)
}

/// The text of an ATX heading (`## Text`, `### Text ###`).
fn heading(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let level = trimmed.len() - trimmed.trim_start_matches('#').len();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &trimmed[level..];
    if !rest.is_empty() && !rest.starts_with(' ') && !rest.starts_with('\t') {
        return None;
    }
    let text = rest.trim();
    // A closing run of `#` counts only after a space: `## C#` keeps its `#`.
    let without = text.trim_end_matches('#');
    if without.is_empty() || without.ends_with(' ') || without.ends_with('\t') {
        Some(without.trim_end())
    } else {
        Some(text)
    }
}

/// `text` without the targets of its links: `[a](b)` becomes `[a]`.
fn strip_link_targets(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        out.push_str(&rest[..=start]);
        let Some(end) = rest[start..].find(')') else {
            rest = &rest[start + 1..];
            break;
        };
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// GitHub's anchor for a heading's text (before any `-1` for a repeat).
fn slug(heading: &str) -> String {
    strip_link_targets(heading)
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(*c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings, repeats numbered as GitHub
/// numbers them.
fn anchors(text: &str) -> BTreeSet<String> {
    let (prose, _) = split_code(text);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    for (_, line) in prose {
        let Some(text) = heading(line) else {
            continue;
        };
        let base = slug(text);
        let count = seen.entry(base.clone()).or_insert(0);
        if *count == 0 {
            anchors.insert(base);
        } else {
            anchors.insert(format!("{base}-{count}"));
        }
        *count += 1;
    }
    anchors
}

/// A link target as written, without `<…>` around it.
fn bare_target(target: &str) -> String {
    target
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// The target of a reference definition, `[name]: target`.
fn reference_definition(line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix('[')?;
    let close = rest.find("]:")?;
    if close == 0 || rest.starts_with('^') || rest[..close].contains(['[', ']']) {
        return None;
    }
    let target = rest[close + 2..].split_whitespace().next()?;
    Some(bare_target(target))
}

/// The link targets in prose lines, each with its line number: inline links
/// and images (`[text](target)`) outside inline code, and reference
/// definitions. A code span may run over several lines of a paragraph; a
/// blank line, or a code block, ends it.
fn links(prose: &[(usize, &str)]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    // The length of the backtick run that opened the code span we are in.
    let mut ticks: Option<usize> = None;
    let mut previous = 0;
    for &(number, line) in prose {
        if line.trim().is_empty() || number != previous + 1 {
            ticks = None;
        }
        previous = number;
        if ticks.is_none()
            && let Some(target) = reference_definition(line)
        {
            found.push((number, target));
            continue;
        }
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'`' {
                let run = bytes[i..].iter().take_while(|&&b| b == b'`').count();
                ticks = match ticks {
                    None => Some(run),
                    Some(open) if open == run => None,
                    other => other,
                };
                i += run;
                continue;
            }
            if ticks.is_none() && bytes[i..].starts_with(b"](") {
                let rest = &line[i + 2..];
                if let Some(end) = rest.find(')') {
                    let inner = rest[..end].trim();
                    let target = inner.split_whitespace().next().unwrap_or_default();
                    if !target.is_empty() {
                        found.push((number, bare_target(target)));
                    }
                    i += 2 + end + 1;
                    continue;
                }
            }
            i += 1;
        }
    }
    found
}

/// Whether a link leaves the repository for another site.
fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// `text` with its `%XX` escapes decoded, as a browser reads a link.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `path` with `.` and `..` taken out; `None` when it climbs above where it
/// starts (out of the repository) or is absolute.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.into_iter().collect())
}

/// Record what is wrong with the links of `file` (relative to `root`).
fn check_links(root: &Path, file: &Path, text: &str, failures: &mut Vec<String>) {
    let (prose, _) = split_code(text);
    let dir = file.parent().unwrap_or_else(|| Path::new(""));
    for (number, target) in links(&prose) {
        if is_external(&target) {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(percent_decode(anchor))),
            None => (target.as_str(), None),
        };
        let path = percent_decode(path.split('?').next().unwrap_or_default());
        let resolved = if path.is_empty() {
            Some(file.to_path_buf())
        } else if let Some(from_root) = path.strip_prefix('/') {
            normalise(Path::new(from_root))
        } else {
            normalise(&dir.join(&path))
        };
        let at = format!("{}:{number}", file.display());
        let Some(resolved) = resolved else {
            failures.push(format!("{at}: `{target}` points outside the repository"));
            continue;
        };
        let full = root.join(&resolved);
        if !full.exists() {
            failures.push(format!(
                "{at}: `{target}`: there is no {}",
                resolved.display()
            ));
            continue;
        }
        let Some(anchor) = anchor else {
            continue;
        };
        if full.extension().is_none_or(|ext| ext != "md") {
            continue;
        }
        match std::fs::read_to_string(&full) {
            Ok(target_text) => {
                if !anchors(&target_text).contains(&anchor) {
                    failures.push(format!(
                        "{at}: `{target}`: {} has no heading with the anchor #{anchor}",
                        resolved.display()
                    ));
                }
            }
            Err(err) => failures.push(format!(
                "{at}: `{target}`: reading {}: {err}",
                resolved.display()
            )),
        }
    }
}

/// What the binary accepts: its subcommands with the long flags each takes,
/// and the top-level flags, which count for every subcommand.
#[derive(Debug)]
struct Cli {
    global: BTreeSet<String>,
    commands: BTreeMap<String, BTreeSet<String>>,
}

impl Cli {
    /// Read from `binary --help` and `binary SUBCOMMAND --help`.
    fn from_binary(binary: &Path) -> Self {
        let top = help(binary, &[]);
        let global = long_flags(&top);
        let commands = subcommands(&top)
            .into_iter()
            .map(|name| {
                // clap's `help` subcommand takes subcommand names, no flags.
                let flags = if name == "help" {
                    BTreeSet::new()
                } else {
                    long_flags(&help(binary, &[name.as_str()]))
                };
                (name, flags)
            })
            .collect();
        Self { global, commands }
    }
}

/// `binary ARGS --help`'s output, run in an empty directory so that no
/// `.env` is read.
fn help(binary: &Path, args: &[&str]) -> String {
    let empty = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(binary)
        .args(args)
        .arg("--help")
        .current_dir(empty.path())
        .env_remove("WASMHOUSE_ENV_FILE")
        .output()
        .expect("running wasmhouse --help");
    assert!(
        output.status.success(),
        "wasmhouse {args:?} --help failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The names listed under `Commands:` in clap's help: lines indented by
/// exactly two spaces (a description's wrapped lines are indented further).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line[2..].starts_with(' '))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every `--name` that clap's help text mentions.
fn long_flags(help: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    let mut rest = help;
    while let Some(start) = rest.find("--") {
        let after = &rest[start + 2..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            flags.insert(format!("--{name}"));
        }
        rest = &after[name.len()..];
    }
    flags
}

/// The simple commands of one shell line, each as its words: split at `;`,
/// `|`, `&` (so `&&` and `||` too) and parentheses outside quotes, with
/// quotes removed and a `#` comment dropped.
fn shell_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether `word` has begun (a quoted empty string is a word).
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                word.extend(chars.by_ref().take_while(|&q| q != '\''));
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        other => word.push(other),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            '#' if !in_word => break,
            ';' | '|' | '&' | '(' | ')' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

/// Whether `word` sets a variable for the command (`NAME=value`).
fn is_assignment(word: &str) -> bool {
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `word` runs the binary: `wasmhouse`, or a path ending in it.
fn is_wasmhouse(word: &str) -> bool {
    word == "wasmhouse" || word.ends_with("/wasmhouse")
}

/// The `wasmhouse` commands of a shell block: each with its line number (the
/// first line, for a command continued with `\`) and its words after the
/// binary. In a `console` block only lines after a `$ ` prompt are commands.
fn wasmhouse_commands(block: &CodeBlock<'_>) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    let mut joined = String::new();
    let mut first = 0;
    for &(number, line) in &block.lines {
        let line = if joined.is_empty() {
            let trimmed = line.trim_start();
            match trimmed.strip_prefix("$ ") {
                Some(command) => command,
                None if block.language == "console" => continue,
                None => trimmed,
            }
        } else {
            line
        };
        if joined.is_empty() {
            first = number;
        }
        if let Some(start) = line.strip_suffix('\\') {
            joined.push_str(start);
            joined.push(' ');
            continue;
        }
        joined.push_str(line);
        for words in shell_commands(&joined) {
            let mut words = words
                .into_iter()
                .skip_while(|word| is_assignment(word) || WRAPPERS.contains(&word.as_str()));
            if words.next().is_some_and(|word| is_wasmhouse(&word)) {
                found.push((first, words.collect()));
            }
        }
        joined.clear();
    }
    found
}

/// What is wrong with `wasmhouse WORDS`: a subcommand the binary does not
/// have, or a `--flag` it does not take.
fn command_problems(cli: &Cli, words: &[String]) -> Vec<String> {
    let Some(first) = words.first() else {
        return Vec::new();
    };
    if first.starts_with("--") {
        // A top-level flag (`wasmhouse --version`); what follows depends on it.
        let name = flag_name(first);
        if cli.global.contains(&name) {
            return Vec::new();
        }
        return vec![format!("`wasmhouse` has no flag `{name}`")];
    }
    if first.starts_with('-') {
        return Vec::new();
    }
    let Some(flags) = cli.commands.get(first) else {
        return vec![format!("`wasmhouse {first}`: there is no such subcommand")];
    };
    words[1..]
        .iter()
        .take_while(|word| word.as_str() != "--")
        .filter(|word| word.starts_with("--"))
        .map(|word| flag_name(word.as_str()))
        .filter(|name| !flags.contains(name) && !cli.global.contains(name))
        .map(|name| format!("`wasmhouse {first}` has no flag `{name}`"))
        .collect()
}

/// A `--flag` word without its `=value`.
fn flag_name(word: &str) -> String {
    word.split('=').next().unwrap_or_default().to_string()
}

/// Record what is wrong with the `wasmhouse` commands in `file`'s shell
/// blocks.
fn check_commands(file: &Path, text: &str, cli: &Cli, failures: &mut Vec<String>) {
    let (_, blocks) = split_code(text);
    for block in blocks
        .iter()
        .filter(|block| SHELL.contains(&block.language.as_str()))
    {
        for (number, words) in wasmhouse_commands(block) {
            for problem in command_problems(cli, &words) {
                failures.push(format!("{}:{number}: {problem}", file.display()));
            }
        }
    }
}

/// Everything wrong with `files` (relative to `root`), one line each.
fn check_manual(root: &Path, files: &[PathBuf], cli: &Cli) -> Vec<String> {
    let mut failures = Vec::new();
    for file in files {
        match std::fs::read_to_string(root.join(file)) {
            Ok(text) => {
                check_links(root, file, &text, &mut failures);
                check_commands(file, &text, cli, &mut failures);
            }
            Err(err) => failures.push(format!("{}: reading it: {err}", file.display())),
        }
    }
    failures
}

#[test]
fn the_manual_holds_together() {
    let root = repo_root();
    let files = manual_files(&root);
    assert!(
        files.iter().any(|file| file.starts_with("docs")),
        "no guides in docs/"
    );
    let failures = check_manual(&root, &files, &Cli::from_binary(binary()));
    assert!(
        failures.is_empty(),
        "{} problems in the manual:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(
        slug("Routes in Python (2026-12-03)"),
        "routes-in-python-2026-12-03"
    );
    assert_eq!(
        slug("The request path: `GET /concurrent/simple-query`"),
        "the-request-path-get-concurrentsimple-query"
    );
    assert_eq!(
        slug("What's new? Ünïcode, naïve & Größe"),
        "whats-new-ünïcode-naïve--größe"
    );
    assert_eq!(
        slug("snake_case and kebab-case"),
        "snake_case-and-kebab-case"
    );
    assert_eq!(
        slug("A [link](https://example.com/x) inside"),
        "a-link-inside"
    );
}

#[test]
fn repeated_headings_are_numbered_and_code_is_not_a_heading() {
    let text = "# Notes\n\n## Setup\n\n```sh\n# Setup\n```\n\n## Setup\n\n### Setup ###\n\n## C#\n";
    let expected: BTreeSet<String> = ["notes", "setup", "setup-1", "setup-2", "c"]
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(anchors(text), expected);
}

#[test]
fn links_are_found_outside_code_only() {
    let text = "See [a](x.md#y), `[b](in-code.md)` and [c](https://example.com).\n\
                A span `that runs\n\
                over [d](lines.md)` ends.\n\
                \n\
                ```md\n\
                [e](fenced.md)\n\
                ```\n\
                ![f](img.svg \"a title\") then [g](<spaced.md>)\n\
                [h]: defined.md\n";
    let (prose, _) = split_code(text);
    let found = links(&prose);
    let expected: Vec<(usize, String)> = [
        (1, "x.md#y"),
        (1, "https://example.com"),
        (8, "img.svg"),
        (8, "spaced.md"),
        (9, "defined.md"),
    ]
    .into_iter()
    .map(|(line, target)| (line, target.to_string()))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn wasmhouse_commands_are_found_in_shell_lines() {
    let text = "```sh\n\
                $ RUST_LOG=debug wasmhouse serve --manifest m.toml && curl -s x | ./target/release/wasmhouse load --json  # wasmhouse fake --nope\n\
                wasmhouse push app.wasm \\\n\
                \x20 oci://r/x:live --insecure-registry=r\n\
                echo 'wasmhouse quoted --nope'; (cd dir && wasmhouse build)\n\
                ```\n";
    let (_, blocks) = split_code(text);
    assert_eq!(blocks.len(), 1);
    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|word| word.to_string()).collect()
    }
    assert_eq!(
        wasmhouse_commands(&blocks[0]),
        vec![
            (2, words(&["serve", "--manifest", "m.toml"])),
            (2, words(&["load", "--json"])),
            (
                3,
                words(&[
                    "push",
                    "app.wasm",
                    "oci://r/x:live",
                    "--insecure-registry=r"
                ])
            ),
            (5, words(&["build"])),
        ]
    );
}

#[test]
fn the_binarys_help_is_read() {
    let cli = Cli::from_binary(binary());
    for flag in ["--log-format", "--help", "--version"] {
        assert!(cli.global.contains(flag), "top-level {flag}: {cli:?}");
    }
    let serve = cli.commands.get("serve").expect("a serve subcommand");
    assert!(serve.contains("--manifest") && serve.contains("--clickhouse-url"));
    let new = cli.commands.get("new").expect("a new subcommand");
    assert!(new.contains("--lang"));
    assert!(
        !new.contains("--manifest"),
        "new takes no --manifest: {new:?}"
    );
}

#[test]
fn the_checker_reports_a_dead_link_and_an_invented_flag() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path();
    std::fs::create_dir(root.join("docs")).expect("creating docs/");
    std::fs::write(
        root.join("README.md"),
        "# Title\n\n\
         See [the guide](docs/guide.md#set-up), [a gone one](docs/gone.md),\n\
         [a wrong anchor](docs/guide.md#setup), [here](#title) and [docs](docs/).\n",
    )
    .expect("writing README.md");
    std::fs::write(
        root.join("docs/guide.md"),
        "# Guide\n\n## Set up\n\n\
         ```sh\n\
         wasmhouse serve --manifest wasmhouse.toml --no-such-flag\n\
         wasmhouse frobnicate\n\
         ```\n\n\
         Back to [the top](../README.md#title), or [out](../../elsewhere.md).\n",
    )
    .expect("writing docs/guide.md");
    let files = [PathBuf::from("README.md"), PathBuf::from("docs/guide.md")];
    let failures = check_manual(root, &files, &Cli::from_binary(binary()));
    let expected = [
        "README.md:3: `docs/gone.md`: there is no docs/gone.md",
        "README.md:4: `docs/guide.md#setup`: docs/guide.md has no heading with the anchor #setup",
        "docs/guide.md:10: `../../elsewhere.md` points outside the repository",
        "docs/guide.md:6: `wasmhouse serve` has no flag `--no-such-flag`",
        "docs/guide.md:7: `wasmhouse frobnicate`: there is no such subcommand",
    ];
    assert_eq!(failures, expected, "{}", failures.join("\n"));
}
