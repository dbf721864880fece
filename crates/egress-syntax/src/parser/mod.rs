//! The parser: split the file into top-level items with the lexer, parse each item with
//! the pest grammar of `spec/egress.pest`, and convert the parse tree into the AST.

use std::collections::BTreeSet;

use pest::iterators::Pair;
use pest::Parser as _;

use crate::ast::*;
use crate::diagnostic::{sort_diagnostics, Diagnostic};
use crate::lexer::{tokenize, tokenize_range, Token, TokenKind, ITEM_KEYWORDS};
use crate::{FileId, Span};

mod fast;
mod items;
mod recovery;
mod tree;

use items::ItemParser;

#[derive(pest_derive::Parser)]
#[grammar = "../../spec/egress.pest"]
struct Grammar;

/// The largest source file the parser accepts, in bytes.
pub const MAX_SOURCE_BYTES: usize = 16 * 1024 * 1024;

/// The result of parsing one file: the items that parsed, a diagnostic for each that did
/// not, and the layout the formatter needs.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub ast: SourceAst,
    pub diagnostics: Vec<Diagnostic>,
    pub tokens: Vec<Token>,
    pub layout: Layout,
}

impl Parsed {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.is_error())
    }
}

/// Where lines and blocks start, by byte offset of their first token. Filled for the items
/// that parsed; the formatter relies on it.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// Offsets of tokens that begin a line: items, entries, steps and claims.
    pub line_starts: BTreeSet<usize>,
    /// Offsets of `{` and `}` that open or close a multi-line block.
    pub block_braces: BTreeSet<usize>,
    /// Offsets of item starts (the keyword, after doc comments).
    pub item_starts: BTreeSet<usize>,
}

/// Parses `source`. Never fails: every problem is a diagnostic.
pub fn parse(file: FileId, source: &str) -> Parsed {
    parse_with(file, source, true)
}

/// [`parse`] without the tokens and the layout (left empty), which only the formatter
/// and the editor need: the same items and diagnostics, with far less memory (the tokens
/// of a file take more than the file). What the checker calls.
pub fn parse_items(file: FileId, source: &str) -> Parsed {
    if let Some(too_large) = too_large(file, source) {
        return too_large;
    }
    let (mut items, mut diagnostics) = items::parse_streaming(file, source);
    items.sort_by_key(|i| i.span.start);
    sort_diagnostics(&mut diagnostics);
    Parsed {
        ast: SourceAst { items },
        diagnostics,
        tokens: Vec::new(),
        layout: Layout::default(),
    }
}

/// A file read chunk by chunk ([`parse_chunks`]).
#[derive(Clone, Debug)]
pub struct Chunked<T> {
    /// The byte range of every chunk: each starts at an item (or its doc comments), except
    /// the first, which starts at the first token; together they cover the file.
    pub chunks: Vec<(usize, usize)>,
    /// What the caller kept of the chunks' items, in chunk order.
    pub kept: Vec<T>,
    /// Sorted; the same [`parse_items`] reports.
    pub diagnostics: Vec<Diagnostic>,
}

/// [`parse_items`] for a caller that keeps only part of each item: `keep` is given every
/// chunk's index and items (sorted by start; on any thread) and takes what to keep onto
/// its output; what it leaves is dropped right after, so a file's whole syntax tree is never in memory at
/// once. The items of all chunks in order, sorted by start, are those of [`parse_items`];
/// [`parse_chunk`] reads one chunk's items again.
pub fn parse_chunks<T: Send>(
    file: FileId,
    source: &str,
    keep: impl Fn(usize, &mut Vec<Item>, &mut Vec<T>) + Sync,
) -> Chunked<T> {
    if let Some(too_large) = too_large(file, source) {
        return Chunked {
            chunks: Vec::new(),
            kept: Vec::new(),
            diagnostics: too_large.diagnostics,
        };
    }
    let (chunks, kept, mut diagnostics) = items::parse_chunks(file, source, keep);
    sort_diagnostics(&mut diagnostics);
    Chunked {
        chunks,
        kept,
        diagnostics,
    }
}

/// The items of the chunk `chunk` (a range [`parse_chunks`] gave for this `source`),
/// sorted by start: the same items it gave for that chunk (parsing is deterministic and
/// a chunk is read alone). Its diagnostics are not repeated.
pub fn parse_chunk(file: FileId, source: &str, chunk: (usize, usize)) -> Vec<Item> {
    items::parse_one_chunk(file, source, chunk)
}

fn too_large(file: FileId, source: &str) -> Option<Parsed> {
    (source.len() > MAX_SOURCE_BYTES).then(|| Parsed {
        ast: SourceAst { items: Vec::new() },
        diagnostics: vec![Diagnostic::error(
            "E0004",
            Span::new(file, 0, 0),
            format!(
                "this file is {} bytes; the limit is {} bytes",
                source.len(),
                MAX_SOURCE_BYTES
            ),
        )
        .with_label("file too large")
        .with_help("split the policy into modules and import them")],
        tokens: Vec::new(),
        layout: Layout::default(),
    })
}

/// [`parse`], reading items with pest alone when `fast` is false (the fast parser must
/// agree with it: `tests::fast_path_agrees_with_pest`).
fn parse_with(file: FileId, source: &str, fast: bool) -> Parsed {
    if let Some(too_large) = too_large(file, source) {
        return too_large;
    }
    let tokens = tokenize(source);
    let mut parser = ItemParser::new(file, source, &tokens, fast, source.len());
    parser.run();
    let ItemParser {
        mut items,
        mut diagnostics,
        layout,
        ..
    } = parser;
    items.sort_by_key(|i| i.span.start);
    sort_diagnostics(&mut diagnostics);
    Parsed {
        ast: SourceAst { items },
        diagnostics,
        tokens,
        layout,
    }
}

/// [`parse`] with pest alone: the reference the fast parser is tested against (the
/// `differential` feature, for the fuzz targets).
#[cfg(feature = "differential")]
pub fn parse_with_pest_only(file: FileId, source: &str) -> Parsed {
    parse_with(file, source, false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;

    /// Every `.egress` file of the repository (examples, stdlib, test cases, docs), with
    /// its path.
    fn corpus() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut out = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for path in entries {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if path.is_dir() {
                    if !name.starts_with('.') && name != "target" && name != "fuzz" {
                        dirs.push(path);
                    }
                } else if name.ends_with(".egress") {
                    // Cases of non-UTF-8 files never reach the parser.
                    if let Ok(text) = String::from_utf8(std::fs::read(&path).unwrap()) {
                        out.push((path.display().to_string(), text));
                    }
                }
            }
        }
        assert!(out.len() > 100, "found {} .egress files", out.len());
        out
    }

    /// Lexing a file in two halves at once finds the item starts one pass finds, wherever
    /// the split falls: after a newline (as in use), inside a token, a string, a comment or
    /// a doc comment run (the second half is then out of step and the first goes on).
    #[test]
    fn split_lexing_agrees_with_one_pass() {
        let mut cases: Vec<String> = corpus().into_iter().map(|(_, text)| text).collect();
        cases.push(
            "/// a\n/// b\nagent x {\n uses c\n}\n/// d\n\n// e\nzone z { agents x }\n".into(),
        );
        cases.push(
            "destination d { host \"a agent b\nzone\" }\nagent x { uses \"}\" }\nzone y {}\n"
                .into(),
        );
        cases.push("}}}} agent a { { { } zone b { } } } agent c {}\n{ destination\n".into());
        cases.push("   \n\n  agent-x agent x {}\n\"unterminated\nagent y {}\n".into());
        let mut splits_checked = 0;
        for text in &cases {
            let one = items::item_starts(text);
            let boundaries: Vec<usize> = (0..=text.len())
                .filter(|i| text.is_char_boundary(*i))
                .collect();
            // Every boundary of a small case; about 200 spread over a large one.
            let step = (boundaries.len() / 200).max(1);
            for split in boundaries.iter().step_by(step) {
                assert_eq!(
                    items::item_starts_split(text, *split),
                    one,
                    "split at {split} of:\n{text}"
                );
                splits_checked += 1;
            }
        }
        assert!(splits_checked > 10_000, "{splits_checked}");
    }

    /// The fast parse and the pest parse of `source`, shown; the checker's parse
    /// ([`parse_items`]) must give the pest parse's items and diagnostics.
    fn both(source: &str) -> (String, String) {
        let show = |p: Parsed| format!("{:?}\n{:?}\n{:?}", p.ast, p.diagnostics, p.layout);
        let pest = parse_with(FileId(3), source, false);
        let streamed = parse_items(FileId(3), source);
        assert_eq!(
            (&streamed.ast, &streamed.diagnostics),
            (&pest.ast, &pest.diagnostics),
            "parse_items on:\n{source}"
        );
        (show(parse_with(FileId(3), source, true)), show(pest))
    }

    /// The fast parser reads every item of every policy in the repository, and reads it
    /// exactly as pest and the tree builder do (item, spans and layout).
    #[test]
    fn fast_path_reads_every_valid_item() {
        let mut items = 0;
        for (path, text) in corpus() {
            let parsed = parse_with(FileId(3), &text, false);
            for item in &parsed.ast.items {
                let (start, end) = (item.span.start as usize, item.span.end as usize);
                let fast = fast::item(FileId(3), start, &text[start..end])
                    .unwrap_or_else(|| panic!("{path}: the fast parser gave up on {item:?}"));
                let mut expected = item.clone();
                expected.doc = None;
                assert_eq!(fast.item, expected, "{path}");
                items += 1;
            }
        }
        assert!(items > 500, "{items} items");
    }

    /// Whole files, and mutations of them (a token deleted, replaced by another, or a
    /// byte inserted), parse to the same items, diagnostics and layout with and without
    /// the fast parser. Mutations are chosen by a fixed generator, so a failure repeats.
    #[test]
    fn fast_path_agrees_with_pest() {
        const POOL: [&str; 40] = [
            "{",
            "}",
            ",",
            "*",
            "=",
            ".",
            "-",
            "/",
            "\"",
            "\\",
            "\n",
            " ",
            "// c\n",
            "///d\n",
            "port",
            "ports",
            "portsx",
            "agent",
            "data",
            "approve",
            "grant",
            "unix",
            "passing",
            "10.0.0.1/8",
            "1.2.3",
            "::1",
            "fd00::/8x",
            "\"a\\\"b\"",
            "\"a\\",
            "1-2",
            "1-",
            "5m",
            "5mx",
            "a.b",
            "a.",
            "a.data",
            "99999999999999999999",
            "é",
            "\t",
            "\r",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        let mut cases = 0;
        for (path, text) in corpus() {
            let (fast, pest) = both(&text);
            assert_eq!(fast, pest, "{path}");
            let tokens = tokenize(&text);
            let mutations = (tokens.len() * 2).min(300);
            for _ in 0..mutations {
                let token = tokens[next(tokens.len())];
                let (start, end) = (token.start(), token.end());
                let mutated = match next(3) {
                    0 => format!("{}{}", &text[..start], &text[end..]),
                    1 => format!(
                        "{}{}{}",
                        &text[..start],
                        POOL[next(POOL.len())],
                        &text[end..]
                    ),
                    _ => format!("{}{}{}", &text[..end], POOL[next(POOL.len())], &text[end..]),
                };
                let (fast, pest) = both(&mutated);
                assert_eq!(fast, pest, "{path}, mutated:\n{mutated}");
                cases += 1;
            }
        }
        assert!(cases > 10_000, "{cases} cases");
    }
}
