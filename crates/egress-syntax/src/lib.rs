//! Syntax of the egc policy language: tokens ([`lexer`]), the pest grammar kept in
//! `spec/egress.pest`, the syntax tree ([`ast`]), and the formatter ([`format`]).
//!
//! **Architecture invariant:** parsing never fails. [`parse`] returns the items it could
//! parse plus a diagnostic for every item it could not; one bad item never hides the rest.
//! Nothing in this crate performs I/O.

pub mod ast;
pub mod diagnostic;
pub mod format;
pub mod lexer;
mod parser;

use serde::Serialize;

pub use diagnostic::{Diagnostic, Label, Severity, Suggestion};
#[cfg(feature = "differential")]
pub use parser::parse_with_pest_only;
pub use parser::{parse, parse_chunk, parse_chunks, parse_items, Chunked, Parsed};

/// Identifies a source file within one check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FileId(pub u32);

/// A byte range in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// Line starts of a text, for fast offset → (line, column) and byte → character
/// conversions on large files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineIndex {
    /// Byte offset of each line start.
    line_starts: Vec<usize>,
    /// Character offset of each line start.
    line_start_chars: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        let mut line_start_chars = vec![0];
        let mut chars = 0;
        for (i, c) in text.char_indices() {
            chars += 1;
            if c == '\n' {
                line_starts.push(i + 1);
                line_start_chars.push(chars);
            }
        }
        LineIndex {
            line_starts,
            line_start_chars,
        }
    }

    /// Zero-based (line, column in characters) of a byte offset.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self
            .line_starts
            .partition_point(|start| *start <= offset)
            .saturating_sub(1);
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let column = text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(0);
        (line, column)
    }

    /// The character offset of a byte offset.
    pub fn char_offset(&self, text: &str, offset: usize) -> usize {
        let (line, column) = self.line_col(text, offset);
        self.line_start_chars.get(line).copied().unwrap_or(0) + column
    }

    /// The byte offset of a zero-based (line, column in characters).
    pub fn offset(&self, text: &str, line: usize, column: usize) -> usize {
        let Some(start) = self.line_starts.get(line).copied() else {
            return text.len();
        };
        let rest = text.get(start..).unwrap_or("");
        let mut offset = start;
        for (count, c) in rest.chars().enumerate() {
            if count == column || c == '\n' {
                break;
            }
            offset += c.len_utf8();
        }
        offset
    }
}

/// Converts a byte offset into a zero-based (line, column) pair, columns in characters.
/// For many lookups in one text, build a [`LineIndex`] instead.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before
        .get(line_start..)
        .map(|s| s.chars().count())
        .unwrap_or(0);
    (line, column)
}
