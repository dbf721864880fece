//! The parser: split the file into top-level items with the lexer, parse each item with
//! the pest grammar of `spec/egress.pest`, and convert the parse tree into the AST.

use std::collections::BTreeSet;

use pest::iterators::Pair;
use pest::Parser as _;

use crate::ast::*;
use crate::diagnostic::{sort_diagnostics, Diagnostic};
use crate::lexer::{tokenize, Token, TokenKind, ITEM_KEYWORDS};
use crate::{FileId, Span};

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
    if source.len() > MAX_SOURCE_BYTES {
        return Parsed {
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
        };
    }
    let tokens = tokenize(source);
    let mut parser = ItemParser {
        file,
        source,
        tokens: &tokens,
        items: Vec::new(),
        diagnostics: Vec::new(),
        layout: Layout::default(),
    };
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
