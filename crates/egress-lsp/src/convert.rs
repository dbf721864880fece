//! Conversions between the IDE layer's plain data and LSP types: byte offsets and LSP
//! positions (UTF-16 code units), paths and URLs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lsp_types::{Position, Range, Url};

/// Line starts of a text, for offset/position conversion.
pub struct LineIndex {
    text: Arc<str>,
    line_starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: Arc<str>) -> LineIndex {
        let mut line_starts = vec![0];
        for (i, byte) in text.bytes().enumerate() {
            if byte == b'\n' {
                line_starts.push(i + 1);
            }
        }
        LineIndex { text, line_starts }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The LSP position of a byte offset (clamped to the text, snapped back to a
    /// character boundary).
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while offset > 0 && !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self
            .line_starts
            .partition_point(|start| *start <= offset)
            .saturating_sub(1);
        let line_start = self.line_starts.get(line).copied().unwrap_or(0);
        let column: usize = self
            .text
            .get(line_start..offset)
            .unwrap_or("")
            .chars()
            .map(char::len_utf16)
            .sum();
        Position {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            character: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }

    /// The byte offset of an LSP position; positions past a line's end or the text's end
    /// are clamped, as the protocol asks.
    pub fn offset(&self, position: Position) -> usize {
        let Some(line_start) = self.line_starts.get(position.line as usize).copied() else {
            return self.text.len();
        };
        let rest = self.text.get(line_start..).unwrap_or("");
        let mut units: u32 = 0;
        for (i, c) in rest.char_indices() {
            if units >= position.character || c == '\n' {
                return line_start + i;
            }
            units += u32::try_from(c.len_utf16()).unwrap_or(2);
        }
        self.text.len()
    }

    pub fn range(&self, range: egress_ide::TextRange) -> Range {
        Range {
            start: self.position(range.start),
            end: self.position(range.end),
        }
    }

    pub fn text_range(&self, range: Range) -> egress_ide::TextRange {
        let start = self.offset(range.start);
        let end = self.offset(range.end).max(start);
        egress_ide::TextRange::new(start, end)
    }
}

/// The file path of a `file:` URL.
pub fn url_to_path(url: &Url) -> Option<PathBuf> {
    if url.scheme() != "file" {
        return None;
    }
    url.to_file_path().ok().map(|p| egress_ide::normalize(&p))
}

pub fn path_to_url(path: &Path) -> Option<Url> {
    Url::from_file_path(path).ok()
}

/// Applies an LSP content change to a text.
pub fn apply_change(text: &str, range: Option<Range>, new_text: &str) -> String {
    match range {
        None => new_text.to_string(),
        Some(range) => {
            let index = LineIndex::new(Arc::from(text));
            let r = index.text_range(range);
            let mut out = String::with_capacity(text.len() + new_text.len());
            out.push_str(text.get(..r.start).unwrap_or(""));
            out.push_str(new_text);
            out.push_str(text.get(r.end..).unwrap_or(""));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units() {
        let index = LineIndex::new(Arc::from("ab\n\u{1F600}x\n"));
        assert_eq!(index.position(4), Position::new(1, 0));
        // The emoji is 4 bytes and 2 UTF-16 units.
        assert_eq!(index.position(7), Position::new(1, 2));
        assert_eq!(index.offset(Position::new(1, 2)), 7);
        assert_eq!(index.offset(Position::new(0, 99)), 2);
        assert_eq!(index.offset(Position::new(9, 0)), 9);
        assert_eq!(index.position(999), Position::new(2, 0));
    }

    #[test]
    fn applies_incremental_changes() {
        let text = "agent a {\n}\n";
        let changed = apply_change(
            text,
            Some(Range::new(Position::new(0, 6), Position::new(0, 7))),
            "bot",
        );
        assert_eq!(changed, "agent bot {\n}\n");
    }
}
