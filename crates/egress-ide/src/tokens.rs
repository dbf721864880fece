//! Semantic highlighting from the lexer, with names coloured by what they resolve to.

use std::collections::BTreeMap;
use std::path::Path;

use egress_syntax::lexer::{is_keyword, TokenKind};

use crate::db::span_range;
use crate::{Analysis, TextRange};

/// What a highlighted range is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HighlightTag {
    Keyword,
    Comment,
    DocComment,
    String,
    Number,
    /// An IP address or CIDR.
    Address,
    /// A duration such as `15m`.
    Duration,
    Operator,
    /// A declared name (or a use of one), with the keyword that declares it.
    Name(&'static str),
    /// A module alias or a stdlib module path.
    Module,
    /// A Linux capability or protocol literal.
    Constant,
    /// A name that resolves to nothing (yet).
    Unresolved,
    /// Bytes the lexer does not recognise.
    Invalid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HighlightedRange {
    pub range: TextRange,
    pub tag: HighlightTag,
    /// The range declares the name (rather than using it).
    pub declaration: bool,
}

impl Analysis {
    /// Every token of the file with what it is, in source order.
    pub fn highlight(&self, path: &Path) -> Vec<HighlightedRange> {
        let Some(context) = self.file_context(path) else {
            return Vec::new();
        };
        let text: &str = &context.text;
        // Declarations and references by start offset.
        let mut names: BTreeMap<usize, (HighlightTag, bool)> = BTreeMap::new();
        match context.file_id {
            Some(file_id) => {
                for symbol in &context.result.symbols {
                    if symbol.name_span.file == file_id {
                        let tag = if symbol.kind == "import" {
                            HighlightTag::Module
                        } else {
                            HighlightTag::Name(symbol.kind)
                        };
                        names.insert(symbol.name_span.start as usize, (tag, true));
                    }
                }
                for reference in &context.result.references {
                    if reference.span.file == file_id {
                        let tag = if reference.kind == "import" {
                            HighlightTag::Module
                        } else {
                            HighlightTag::Name(reference.kind)
                        };
                        names
                            .entry(reference.span.start as usize)
                            .or_insert((tag, false));
                    }
                }
            }
            None => {
                for item in &context.parsed.ast.items {
                    for ident in crate::symbols::declared_idents(item) {
                        names.insert(
                            span_range(ident.span).start,
                            (HighlightTag::Name(item.keyword()), true),
                        );
                    }
                }
            }
        }
        let mut previous_keyword = "";
        let mut out = Vec::with_capacity(context.parsed.tokens.len());
        for token in &context.parsed.tokens {
            let word = token.text(text);
            let (tag, declaration) = match token.kind {
                TokenKind::DocComment => (HighlightTag::DocComment, false),
                TokenKind::Comment => (HighlightTag::Comment, false),
                TokenKind::String | TokenKind::UnterminatedString => (HighlightTag::String, false),
                TokenKind::Number | TokenKind::PortRange => (HighlightTag::Number, false),
                TokenKind::Duration => (HighlightTag::Duration, false),
                TokenKind::Cidr => (HighlightTag::Address, false),
                TokenKind::Eq | TokenKind::Star => (HighlightTag::Operator, false),
                TokenKind::LBrace | TokenKind::RBrace | TokenKind::Comma => continue,
                TokenKind::Error => (HighlightTag::Invalid, false),
                TokenKind::Ident => {
                    if let Some(found) = names.get(&token.start()) {
                        *found
                    } else if is_keyword(word) {
                        (HighlightTag::Keyword, false)
                    } else if previous_keyword == "import" {
                        (HighlightTag::Module, false)
                    } else if word.starts_with("CAP_")
                        || (previous_keyword == "protocol" && matches!(word, "tcp" | "udp"))
                    {
                        (HighlightTag::Constant, false)
                    } else {
                        (HighlightTag::Unresolved, false)
                    }
                }
            };
            if token.kind == TokenKind::Ident && is_keyword(word) {
                previous_keyword = ITEM_OR_ENTRY
                    .iter()
                    .find(|k| **k == word)
                    .copied()
                    .unwrap_or("");
            }
            out.push(HighlightedRange {
                range: TextRange::new(token.start(), token.end()),
                tag,
                declaration,
            });
        }
        out
    }
}

const ITEM_OR_ENTRY: &[&str] = &["import", "protocol"];
