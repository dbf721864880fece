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
pub use parser::{parse, Parsed};

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

/// Converts a byte offset into a zero-based (line, column) pair, columns in characters.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before.get(line_start..).map(|s| s.chars().count()).unwrap_or(0);
    (line, column)
}
