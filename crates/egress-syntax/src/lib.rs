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
    /// (byte offset, character offset) about every [`MARK_BYTES`] bytes, so a column on a
    /// long line is counted from a nearby mark rather than from the line's start (one
    /// 10 MB line with 60,000 diagnostics took 3.8 s, half of it counting characters).
    marks: Vec<(usize, usize)>,
}

/// Bytes between two of [`LineIndex`]'s character marks.
const MARK_BYTES: usize = 1024;

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        let mut line_start_chars = vec![0];
        let mut marks = Vec::with_capacity(text.len() / MARK_BYTES);
        let mut next_mark = MARK_BYTES;
        let mut chars = 0;
        for (i, c) in text.char_indices() {
            if i >= next_mark {
                marks.push((i, chars));
                next_mark = i + MARK_BYTES;
            }
            chars += 1;
            if c == '\n' {
                line_starts.push(i + 1);
                line_start_chars.push(chars);
            }
        }
        LineIndex {
            line_starts,
            line_start_chars,
            marks,
        }
    }

    /// Zero-based (line, column in characters) of a byte offset. The column is 0 when
    /// `offset` is not on a character boundary.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self
            .line_starts
            .partition_point(|start| *start <= offset)
            .saturating_sub(1);
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let start_chars = self.line_start_chars.get(line).copied().unwrap_or(0);
        // Count from the line's start or from the last mark before `offset`, whichever
        // is nearer.
        let (from, from_chars) = self
            .marks
            .partition_point(|(byte, _)| *byte <= offset)
            .checked_sub(1)
            .and_then(|i| self.marks.get(i).copied())
            .filter(|(byte, _)| *byte > start)
            .unwrap_or((start, start_chars));
        let column = match (text.get(start..offset), text.get(from..offset)) {
            (Some(_), Some(rest)) => from_chars + rest.chars().count() - start_chars,
            _ => 0,
        };
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

#[cfg(test)]
mod line_index_tests {
    use super::*;

    /// The index answers what counting from the text's start answers, at every offset of
    /// texts with long lines, multi-byte characters and line breaks around the marks.
    #[test]
    fn line_index_agrees_with_counting() {
        let mut texts = vec![
            String::new(),
            "a".repeat(5000),
            "é".repeat(3000),
            format!(
                "{}\n{}\n\n{}",
                "x".repeat(1023),
                "ü€".repeat(700),
                "y".repeat(2049)
            ),
        ];
        let mut seed: u64 = 7;
        let mut text = String::new();
        for _ in 0..6000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push(match (seed >> 33) % 9 {
                0 => '\n',
                1 => 'é',
                2 => '€',
                3 => '😀',
                _ => 'a',
            });
        }
        texts.push(text);
        for text in &texts {
            let index = LineIndex::new(text);
            for offset in 0..=text.len() + 2 {
                let expected = if text.is_char_boundary(offset.min(text.len())) {
                    line_col(text, offset)
                } else {
                    // Not a boundary: the line, column 0.
                    let bytes = text.as_bytes().get(..offset).unwrap_or_default();
                    (bytes.iter().filter(|b| **b == b'\n').count(), 0)
                };
                assert_eq!(index.line_col(text, offset), expected, "offset {offset}");
            }
        }
    }
}
