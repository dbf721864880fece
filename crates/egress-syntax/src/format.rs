//! The formatter: one canonical layout, every comment kept.
//!
//! It works on the token stream (which holds the comments) guided by the [`Layout`] the
//! parser records: where items, entries, steps and claims start, and which braces open a
//! multi-line block. Rules:
//! - one item, entry, step or claim per line, indented by four spaces per block;
//! - one space between tokens on a line, none before `,`;
//! - exactly one blank line between items (consecutive imports may stay together), at
//!   most one blank line kept elsewhere;
//! - a comment on the same line as code stays there; other comments keep their own line;
//! - empty blocks are written `{}`; the file ends with one newline.
//!
//! Formatting is idempotent: formatting the output again yields the same text.

use crate::lexer::TokenKind;
use crate::parser::{parse, Layout, Parsed};
use crate::{Diagnostic, FileId};

const INDENT: &str = "    ";

/// Formats `source`. Returns the diagnostics instead when the file does not parse: the
/// formatter never guesses at the structure of broken input.
pub fn format_source(source: &str) -> Result<String, Vec<Diagnostic>> {
    let parsed = parse(FileId(0), source);
    if parsed.has_errors() {
        return Err(parsed
            .diagnostics
            .into_iter()
            .filter(|d| d.is_error())
            .collect());
    }
    Ok(format_parsed(source, &parsed))
}

/// Formats an already parsed, error-free file.
pub fn format_parsed(source: &str, parsed: &Parsed) -> String {
    let layout: &Layout = &parsed.layout;
    let mut out = String::with_capacity(source.len() + source.len() / 8);
    let mut indent: usize = 0;
    let mut previous: Option<(TokenKind, usize)> = None; // kind and end offset
    let mut force_newline = false;
    let mut previous_opened_block = false;
    let mut previous_item_was_import = false;

    for token in &parsed.tokens {
        let text = token.text(source).trim_end();
        let gap = previous
            .map(|(_, end)| source.get(end..token.start()).unwrap_or(""))
            .unwrap_or("");
        let newlines = gap.matches('\n').count();
        let first = previous.is_none();
        let previous_is_comment = previous.is_some_and(|(k, _)| k.is_trivia());

        let is_block_open =
            token.kind == TokenKind::LBrace && layout.block_braces.contains(&token.start());
        let is_block_close =
            token.kind == TokenKind::RBrace && layout.block_braces.contains(&token.start());
        let is_item = layout.item_starts.contains(&token.start());

        if token.kind.is_trivia() {
            if !first && newlines == 0 && !previous_opened_block_or_line_start(&out) {
                out.push(' ');
                out.push_str(text);
            } else {
                start_line(&mut out, first, newlines >= 2 && !previous_opened_block);
                push_indent(&mut out, indent);
                out.push_str(text);
            }
            force_newline = true;
            previous_opened_block = false;
            previous = Some((token.kind, token.end()));
            continue;
        }

        if is_block_close {
            indent = indent.saturating_sub(1);
            if previous_opened_block {
                // An empty block: `{}`.
                out.push('}');
            } else {
                start_line(&mut out, first, false);
                push_indent(&mut out, indent);
                out.push('}');
            }
            force_newline = true;
            previous_opened_block = false;
            previous = Some((token.kind, token.end()));
            continue;
        }

        let line_start = layout.line_starts.contains(&token.start());
        // Consecutive imports stay together unless the source separates them.
        let is_import = is_item && text == "import";
        let item_needs_blank = is_item && !(is_import && previous_item_was_import);
        if is_item {
            previous_item_was_import = is_import;
        }
        if first {
            out.push_str(text);
        } else if line_start || force_newline {
            let blank = !previous_opened_block
                && (newlines >= 2 || (item_needs_blank && !previous_is_comment));
            start_line(&mut out, false, blank);
            // A token pushed to a new line only by a comment is a continuation.
            let extra = usize::from(!line_start);
            push_indent(&mut out, indent + extra);
            out.push_str(text);
        } else if token.kind == TokenKind::Comma {
            out.push(',');
        } else {
            out.push(' ');
            out.push_str(text);
        }
        force_newline = false;
        previous_opened_block = false;
        if is_block_open {
            indent += 1;
            force_newline = true;
            previous_opened_block = true;
        }
        previous = Some((token.kind, token.end()));
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn previous_opened_block_or_line_start(out: &str) -> bool {
    out.is_empty() || out.ends_with('\n')
}

fn start_line(out: &mut String, first: bool, blank: bool) {
    if first || out.is_empty() {
        return;
    }
    out.push('\n');
    if blank {
        out.push('\n');
    }
}

fn push_indent(out: &mut String, indent: usize) {
    for _ in 0..indent {
        out.push_str(INDENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_keeps_comments() {
        let source = "// head\n/// The plane.\ndestination cp{host \"cp.example.com\" // trailing\nport 443,8443\n\n\n\nprotocol tcp}\nagent a{uses x,y}\nagent b {}";
        let formatted = format_source(source).unwrap();
        assert_eq!(
            formatted,
            "// head\n/// The plane.\ndestination cp {\n    host \"cp.example.com\" // trailing\n    port 443, 8443\n\n    protocol tcp\n}\n\nagent a {\n    uses x, y\n}\n\nagent b {}\n"
        );
        assert_eq!(format_source(&formatted).unwrap(), formatted);
    }

    #[test]
    fn sni_optional_round_trips() {
        let source = "destination cdn{host \"cdn.example.com\"\nport 443 sni   optional // ECH\n}";
        let formatted = format_source(source).unwrap();
        assert_eq!(
            formatted,
            "destination cdn {\n    host \"cdn.example.com\"\n    port 443\n    sni optional // ECH\n}\n"
        );
        assert_eq!(format_source(&formatted).unwrap(), formatted);
        let parsed = parse(FileId(0), &formatted);
        let Some(crate::ast::ItemKind::Destination(d)) = parsed.ast.items.first().map(|i| &i.kind)
        else {
            panic!("not a destination: {:?}", parsed.ast.items);
        };
        assert!(d
            .body
            .entries
            .iter()
            .any(|e| matches!(e, crate::ast::DestEntry::SniOptional { .. })));
        // `sni` needs `optional`.
        assert!(parse(FileId(0), "destination x { host \"a.example\" port 1 sni }").has_errors());
    }

    #[test]
    fn imports_stay_together() {
        let source = "import std.dns\nimport std.sys\n\n\nimport \"a.egress\" as a\ndata pii";
        let formatted = format_source(source).unwrap();
        assert_eq!(
            formatted,
            "import std.dns\nimport std.sys\n\nimport \"a.egress\" as a\n\ndata pii\n"
        );
        assert_eq!(format_source(&formatted).unwrap(), formatted);
    }
}
