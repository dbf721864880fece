//! The fast path: one item read straight from its bytes by a recursive-descent parser that
//! follows `spec/egress.pest` rule for rule, with the grammar's ordered choices, its
//! implicit whitespace and comments, and its lexical rules.
//!
//! The pest grammar stays normative. This parser only ever answers "this item, exactly as
//! the grammar and the tree builder would give it" or "don't know": on `None` the item is
//! parsed by pest, whose errors are the ones reported. So it never has to produce a
//! diagnostic, and anything it does not follow is handed over, not guessed. That it agrees
//! with pest (the same item, spans and layout, or no answer) is checked by a differential
//! test over every `.egress` file in the repository and thousands of mutations of them
//! (`tests::fast_path_agrees_with_pest`), and by the `parse_check` fuzz target.
//!
//! Why: pest's generated parser and the conversion of its pairs took about 60 % of
//! `egc check` (every keyword alternative is a string comparison, every pair a queue entry).

use crate::ast::*;
use crate::{FileId, Span};

// The rules, by kind: `tokens` (the atomic rules: keywords, names, literals) and `items`
// (the items and their entries); this file has the entry point, positions, backtracking,
// trivia and lists.
mod items;
mod tokens;

/// What a successful fast parse gives: the item (without its doc comment) and the layout
/// offsets the tree builder would have recorded for it.
pub(super) struct FastItem {
    pub(super) item: Item,
    pub(super) line_starts: Vec<usize>,
    pub(super) block_braces: Vec<usize>,
}

/// Parses `text`, the text of one item starting at its keyword, at byte `base` of `file`.
/// `None` when the text is not exactly one item of the grammar (or uses something this
/// parser does not follow): the caller then asks pest.
pub(super) fn item(file: FileId, base: usize, text: &str) -> Option<FastItem> {
    let mut p = Fast {
        text: text.as_bytes(),
        src: text,
        pos: 0,
        last_end: 0,
        file,
        base,
        lines: Vec::new(),
        braces: Vec::new(),
    };
    let item = p.item()?;
    p.skip();
    if p.pos != p.text.len() {
        return None;
    }
    Some(FastItem {
        item,
        line_starts: p.lines,
        block_braces: p.braces,
    })
}

/// Top-level keywords: not names (rule `reserved`). None is a prefix of another, so "the
/// longest run of name characters is one of these" is the grammar's ordered choice.
const RESERVED: [&[u8]; 12] = [
    b"import",
    b"data",
    b"destination",
    b"capability",
    b"agent",
    b"workflow",
    b"exception",
    b"authority",
    b"zone",
    b"assert",
    b"syscalls",
    b"capset",
];

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Where the parser is, to go back to after a failed alternative (PEG backtracking).
#[derive(Clone, Copy)]
struct Mark {
    pos: usize,
    last_end: usize,
    lines: usize,
    braces: usize,
}

struct Fast<'s> {
    text: &'s [u8],
    src: &'s str,
    pos: usize,
    /// End of the last token read: a rule's span ends there (the tree builder trims the
    /// trailing whitespace and comments pest leaves in a pair).
    last_end: usize,
    file: FileId,
    base: usize,
    lines: Vec<usize>,
    braces: Vec<usize>,
}

impl<'s> Fast<'s> {
    // -----------------------------------------------------------------------------
    // Positions, backtracking, trivia

    fn peek_at(&self, i: usize) -> u8 {
        self.text.get(i).copied().unwrap_or(0)
    }

    fn peek(&self) -> u8 {
        self.peek_at(self.pos)
    }

    fn mark(&self) -> Mark {
        Mark {
            pos: self.pos,
            last_end: self.last_end,
            lines: self.lines.len(),
            braces: self.braces.len(),
        }
    }

    fn reset(&mut self, m: Mark) {
        self.pos = m.pos;
        self.last_end = m.last_end;
        self.lines.truncate(m.lines);
        self.braces.truncate(m.braces);
    }

    /// Runs `f`; on `None`, goes back to where it started.
    fn attempt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let m = self.mark();
        let r = f(self);
        if r.is_none() {
            self.reset(m);
        }
        r
    }

    /// The grammar's implicit `(WHITESPACE | COMMENT)*`.
    fn skip(&mut self) {
        loop {
            match self.peek() {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'/' if self.peek_at(self.pos + 1) == b'/' => {
                    while self.pos < self.text.len() && self.peek() != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, self.base + start, self.base + end)
    }

    /// The span from `start` to the end of the last token read.
    fn span_from(&self, start: usize) -> Span {
        self.span(start, self.last_end)
    }

    fn str_of(&self, start: usize, end: usize) -> &'s str {
        self.src.get(start..end).unwrap_or("")
    }

    fn line(&mut self, start: usize) {
        self.lines.push(self.base + start);
    }

    /// Skips trivia and returns where the next token starts.
    fn next_start(&mut self) -> usize {
        self.skip();
        self.pos
    }

    // -----------------------------------------------------------------------------
    // Lists

    /// `x ~ ("," ~ x)*`.
    fn list<T>(&mut self, mut x: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let mut out = vec![x(self)?];
        while let Some(next) = self.attempt(|p| {
            p.lit(b',')?;
            x(p)
        }) {
            out.push(next);
        }
        Some(out)
    }

    /// `name_list = { qname ~ ("," ~ qname)* }`.
    fn name_list(&mut self) -> Option<Vec<Ident>> {
        self.list(Self::qname)
    }

    /// `string_list = { string ~ ("," ~ string)* }`.
    fn string_list(&mut self) -> Option<Vec<StrLit>> {
        self.list(Self::string)
    }

    /// `entry*` (the caller reads the `}` after it).
    fn entries<T>(&mut self, mut entry: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let mut out = Vec::new();
        while let Some(e) = self.attempt(&mut entry) {
            out.push(e);
        }
        Some(out)
    }

    /// An item body's `{`, recorded as a block brace.
    fn open(&mut self) -> Option<()> {
        let at = self.lit(b'{')?;
        self.braces.push(self.base + at);
        Some(())
    }

    /// An item body's `}`, recorded as a block brace.
    fn close(&mut self) -> Option<()> {
        let at = self.lit(b'}')?;
        self.braces.push(self.base + at);
        Some(())
    }
}
