//! Item splitting: the lexer's tokens cut into chunks at top-level item keywords, each
//! chunk parsed on its own with the grammar, and re-split at line-start keywords when it
//! does not parse, so one syntax error costs only its item.

use super::fast;
use super::recovery::describe_token;
use super::tree::Converter;
use rayon::prelude::*;

use super::*;

/// Files at least this long have their items parsed on every core.
const PARALLEL_BYTES: usize = 256 * 1024;
/// Items per parallel task.
const PARALLEL_ITEMS: usize = 256;

pub(super) struct ItemParser<'a> {
    pub(super) file: FileId,
    pub(super) source: &'a str,
    pub(super) tokens: &'a [Token],
    pub(super) items: Vec<Item>,
    pub(super) diagnostics: Vec<Diagnostic>,
    pub(super) layout: Layout,
    /// Whether items are read by the fast parser first (pest reads what it does not).
    pub(super) fast: bool,
    /// Where the text after the last of `tokens` ends: the end of the file, or of the one
    /// item the tokens are (see [`parse_streaming`]).
    pub(super) tokens_end: usize,
}

/// The text of a `///` comment line: without the slashes, one leading space and
/// trailing whitespace.
fn doc_line(comment: &str) -> String {
    let text = comment.strip_prefix("///").unwrap_or(comment);
    text.strip_prefix(' ')
        .unwrap_or(text)
        .trim_end()
        .to_string()
}

impl<'a> ItemParser<'a> {
    /// A parser of `tokens` (the whole file's, or one item's ending at `tokens_end`).
    pub(super) fn new(
        file: FileId,
        source: &'a str,
        tokens: &'a [Token],
        fast: bool,
        tokens_end: usize,
    ) -> ItemParser<'a> {
        ItemParser {
            file,
            source,
            tokens,
            items: Vec::new(),
            diagnostics: Vec::new(),
            layout: Layout::default(),
            fast,
            tokens_end,
        }
    }
}

fn is_item_keyword(token: &Token, source: &str) -> bool {
    token.kind == TokenKind::Ident && ITEM_KEYWORDS.contains(&token.text(source))
}

fn at_line_start(source: &str, offset: usize) -> bool {
    offset == 0 || source.as_bytes().get(offset - 1) == Some(&b'\n')
}

impl<'a> ItemParser<'a> {
    pub(super) fn run(&mut self) {
        self.run_with(self.source.len() >= PARALLEL_BYTES);
    }

    fn run_with(&mut self, parallel: bool) {
        let chunks = self.split(0, self.tokens.len(), false);
        if !parallel {
            for (start, end) in chunks {
                self.parse_chunk(start, end, true);
            }
            return;
        }
        // Items are independent: parse runs of them on every core, each into its own
        // items, diagnostics and layout, then append those in file order, so the result
        // is the one the loop above gives.
        let (file, source, tokens, fast) = (self.file, self.source, self.tokens, self.fast);
        let parts: Vec<(Vec<Item>, Vec<Diagnostic>, Layout)> = chunks
            .par_chunks(PARALLEL_ITEMS)
            .map(|run| {
                let mut part = ItemParser::new(file, source, tokens, fast, source.len());
                for (start, end) in run {
                    part.parse_chunk(*start, *end, true);
                }
                (part.items, part.diagnostics, part.layout)
            })
            .collect();
        // The layouts' offsets, gathered in order, then each set built at once (inserting
        // them one by one into the file's sets cost as much as parsing a tenth of it).
        let (mut lines, mut braces, mut starts) = (Vec::new(), Vec::new(), Vec::new());
        for (items, diagnostics, layout) in parts {
            self.items.extend(items);
            self.diagnostics.extend(diagnostics);
            lines.extend(layout.line_starts);
            braces.extend(layout.block_braces);
            starts.extend(layout.item_starts);
        }
        let layout = std::mem::take(&mut self.layout);
        self.layout = Layout {
            line_starts: layout.line_starts.into_iter().chain(lines).collect(),
            block_braces: layout.block_braces.into_iter().chain(braces).collect(),
            item_starts: layout.item_starts.into_iter().chain(starts).collect(),
        };
    }

    /// Splits tokens `[from, to)` into chunks that each start with an item keyword (the
    /// first chunk may be a preamble without one). With `at_columns`, an item keyword at
    /// the start of a line also starts a chunk inside braces (recovery after a missing `}`).
    fn split(&self, from: usize, to: usize, at_columns: bool) -> Vec<(usize, usize)> {
        let mut starts = vec![from];
        let mut depth: i64 = 0;
        for index in from..to {
            let Some(token) = self.tokens.get(index) else {
                break;
            };
            match token.kind {
                TokenKind::LBrace => depth += 1,
                TokenKind::RBrace => depth = (depth - 1).max(0),
                _ => {}
            }
            if index > from
                && is_item_keyword(token, self.source)
                && (depth == 0 || (at_columns && at_line_start(self.source, token.start())))
            {
                // Doc comments directly above the keyword belong to the item.
                let mut begin = index;
                while begin > from
                    && self
                        .tokens
                        .get(begin - 1)
                        .is_some_and(|t| t.kind == TokenKind::DocComment)
                {
                    begin -= 1;
                }
                if begin > *starts.last().unwrap_or(&from) {
                    starts.push(begin);
                }
                depth = 0;
            }
        }
        let mut chunks = Vec::new();
        for (i, start) in starts.iter().enumerate() {
            let end = starts.get(i + 1).copied().unwrap_or(to);
            if *start < end {
                chunks.push((*start, end));
            }
        }
        chunks
    }

    fn token_range_text(&self, start: usize, end: usize) -> (usize, usize) {
        let first = self.tokens.get(start).map(|t| t.start()).unwrap_or(0);
        // The chunk's text runs to the start of the next chunk's first token, so trailing
        // comments stay with it.
        let last = self
            .tokens
            .get(end)
            .map(|t| t.start())
            .unwrap_or(self.tokens_end);
        (first, last)
    }

    fn parse_chunk(&mut self, start: usize, end: usize, may_resplit: bool) {
        // Leading doc comments.
        let mut keyword_index = start;
        let mut doc_lines = Vec::new();
        while let Some(token) = self.tokens.get(keyword_index) {
            if keyword_index >= end || token.kind != TokenKind::DocComment {
                break;
            }
            doc_lines.push(doc_line(token.text(self.source)));
            keyword_index += 1;
        }
        // Skip plain comments before the keyword too (they are formatting trivia).
        while let Some(token) = self.tokens.get(keyword_index) {
            if keyword_index >= end || !token.kind.is_trivia() {
                break;
            }
            keyword_index += 1;
        }
        if keyword_index >= end {
            return; // Only comments.
        }
        let Some(keyword) = self.tokens.get(keyword_index).copied() else {
            return;
        };
        if !is_item_keyword(&keyword, self.source) {
            self.diagnostics.push(
                Diagnostic::error(
                    "E0001",
                    Span::new(self.file, keyword.start(), keyword.end()),
                    format!(
                        "expected an item, found {}",
                        describe_token(&keyword, self.source)
                    ),
                )
                .with_label("expected an item here")
                .with_help(format!(
                    "a file is a list of items, each starting with one of: {}",
                    ITEM_KEYWORDS.join(", ")
                )),
            );
            return;
        }
        let (_, text_end) = self.token_range_text(keyword_index, end);
        let base = keyword.start();
        let text = self.source.get(base..text_end).unwrap_or("");
        if self.fast {
            if let Some(fast) = fast::item(self.file, base, text) {
                let mut item = fast.item;
                if !doc_lines.is_empty() {
                    item.doc = Some(doc_lines.join("\n"));
                }
                self.layout.line_starts.extend(fast.line_starts);
                self.layout.block_braces.extend(fast.block_braces);
                self.layout.item_starts.insert(base);
                self.items.push(item);
                return;
            }
        }
        match Grammar::parse(Rule::single_item, text) {
            Ok(mut pairs) => {
                let Some(pair) = pairs.find(|p| p.as_rule() != Rule::EOI) else {
                    return;
                };
                let mut conv = Converter {
                    file: self.file,
                    base,
                    layout: &mut self.layout,
                };
                let doc = if doc_lines.is_empty() {
                    None
                } else {
                    Some(doc_lines.join("\n"))
                };
                match conv.item(pair, doc) {
                    Some(item) => {
                        self.layout.item_starts.insert(base);
                        self.items.push(item);
                    }
                    None => self.diagnostics.push(Diagnostic::error(
                        "E0001",
                        Span::new(self.file, keyword.start(), keyword.end()),
                        "this item could not be read",
                    )),
                }
            }
            Err(error) => {
                if may_resplit {
                    let chunks = self.split(keyword_index, end, true);
                    if chunks.len() > 1 {
                        for (s, e) in chunks {
                            self.parse_chunk(s, e, false);
                        }
                        return;
                    }
                }
                self.report(error, base, keyword_index, end, &keyword);
            }
        }
    }
}

/// The items and diagnostics of `source`, as [`ItemParser::run`] gives them, without the
/// file's tokens or layout: the checker's parse. One pass of the lexer finds where items
/// start and keeps no token; each item is then read by the fast parser from its text, and
/// only an item it does not read is lexed again, alone, for pest and error recovery.
pub(super) fn parse_streaming(file: FileId, source: &str) -> (Vec<Item>, Vec<Diagnostic>) {
    let (_, kept, diagnostics) = parse_chunks(file, source, |_, items, out| out.append(items));
    (kept, diagnostics)
}

/// [`parse_streaming`], chunk by chunk: the byte range of every chunk of [`chunk_bytes`],
/// what `keep` takes from each chunk's items (sorted by start, on any thread; chunks in
/// order) and the diagnostics. What `keep` leaves of a chunk's items is dropped.
pub(super) fn parse_chunks<T: Send>(
    file: FileId,
    source: &str,
    keep: impl Fn(usize, &mut Vec<Item>, &mut Vec<T>) + Sync,
) -> (Vec<(usize, usize)>, Vec<T>, Vec<Diagnostic>) {
    let chunks = chunk_bytes(source);
    let parse_run = |first: usize, run: &[(usize, usize)], kept: &mut Vec<T>| {
        let mut diagnostics = Vec::new();
        let mut items = Vec::new();
        for (i, chunk) in run.iter().enumerate() {
            items.clear();
            parse_chunk_text(file, source, *chunk, &mut items, &mut diagnostics);
            items.sort_by_key(|item| item.span.start);
            keep(first + i, &mut items, kept);
        }
        diagnostics
    };
    let mut kept = Vec::with_capacity(chunks.len());
    if source.len() < PARALLEL_BYTES {
        let diagnostics = parse_run(0, &chunks, &mut kept);
        return (chunks, kept, diagnostics);
    }
    let parts: Vec<(Vec<T>, Vec<Diagnostic>)> = chunks
        .par_chunks(PARALLEL_ITEMS)
        .enumerate()
        .map(|(i, run)| {
            let mut kept = Vec::with_capacity(run.len());
            let diagnostics = parse_run(i * PARALLEL_ITEMS, run, &mut kept);
            (kept, diagnostics)
        })
        .collect();
    let mut diagnostics = Vec::new();
    for (k, d) in parts {
        kept.extend(k);
        diagnostics.extend(d);
    }
    (chunks, kept, diagnostics)
}

/// The items of one chunk of [`parse_chunks`] (sorted by start), read again; its
/// diagnostics were reported when it was first read.
pub(super) fn parse_one_chunk(file: FileId, source: &str, chunk: (usize, usize)) -> Vec<Item> {
    let mut items = Vec::new();
    parse_chunk_text(file, source, chunk, &mut items, &mut Vec::new());
    items.sort_by_key(|item| item.span.start);
    items
}

/// The byte ranges `split(0, tokens.len(), false)` gives in tokens: each starts at an item
/// keyword outside braces (or at the doc comments right above it), except the first, which
/// starts at the first token; each ends where the next starts, the last at the end.
///
/// A large file is lexed in two halves at once (see [`item_starts_split`]).
fn chunk_bytes(source: &str) -> Vec<(usize, usize)> {
    let starts = if source.len() >= PARALLEL_BYTES {
        // Just after the first newline past the middle (a newline byte is never inside
        // a multi-byte character, so this is a character boundary).
        let middle = source.len() / 2;
        let split = source
            .as_bytes()
            .get(middle..)
            .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
            .map_or(source.len(), |i| middle + i + 1);
        item_starts_split(source, split)
    } else {
        item_starts(source)
    };
    let mut chunks = Vec::with_capacity(starts.len());
    for (i, start) in starts.iter().enumerate() {
        chunks.push((*start, starts.get(i + 1).copied().unwrap_or(source.len())));
    }
    chunks
}

/// The item starts of `source`, in one pass.
pub(super) fn item_starts(source: &str) -> Vec<usize> {
    let mut scan = StartScan::default();
    scan_tokens(source, 0, |start, class| {
        scan.token(start, class);
        true
    });
    scan.starts
}

/// What [`chunk_bytes`] needs of a token.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Open,
    Close,
    /// A name that is an item keyword.
    Keyword,
    Doc,
    Other,
}

/// Lexes `source[from..]` (`from` on a character boundary), calling `each` with every
/// token's start (in `source`) and class until it returns false.
fn scan_tokens(source: &str, from: usize, mut each: impl FnMut(usize, Class) -> bool) {
    use logos::Logos as _;
    let mut lexer = TokenKind::lexer(source.get(from..).unwrap_or(""));
    while let Some(result) = lexer.next() {
        let span = lexer.span();
        let class = match result.unwrap_or(TokenKind::Error) {
            TokenKind::LBrace => Class::Open,
            TokenKind::RBrace => Class::Close,
            TokenKind::DocComment => Class::Doc,
            TokenKind::Ident if ITEM_KEYWORDS.contains(&lexer.slice()) => Class::Keyword,
            _ => Class::Other,
        };
        if !each(from + span.start, class) {
            return;
        }
    }
}

/// The item starts found so far, and the state between tokens.
#[derive(Default)]
struct StartScan {
    starts: Vec<usize>,
    depth: i64,
    doc_run: Option<usize>,
}

impl StartScan {
    fn token(&mut self, start: usize, class: Class) {
        let first = self.starts.is_empty();
        if first {
            self.starts.push(start);
        }
        match class {
            Class::Open => self.depth += 1,
            Class::Close => self.depth = (self.depth - 1).max(0),
            Class::Keyword if !first && self.depth == 0 => {
                let begin = self.doc_run.unwrap_or(start);
                if self.starts.last().is_some_and(|last| begin > *last) {
                    self.starts.push(begin);
                }
            }
            _ => {}
        }
        self.doc_run = match class {
            Class::Doc => self.doc_run.or(Some(start)),
            _ => None,
        };
    }
}

/// The item starts of `source`, lexed in two halves at once: the second half from `split`
/// (just after a newline) on its own, recording its tokens' classes, while the first half
/// is lexed from the start. Lexing is context-free from any token start, so when the first
/// half's lexer reaches a token starting exactly where the second half's first token does,
/// the rest is the second half's record. When it does not (the split fell inside a
/// multi-line token), the first half's lexer simply goes on to the end.
pub(super) fn item_starts_split(source: &str, split: usize) -> Vec<usize> {
    // The second half's tokens, with runs of `Other` kept as their first: a run of
    // other tokens acts on the scan as its first does (it ends a doc run, and only the
    // very first token of a file starts a chunk).
    let record = |from: usize| {
        let mut events: Vec<(usize, Class)> = Vec::new();
        scan_tokens(source, from, |start, class| {
            if !(class == Class::Other && events.last().is_some_and(|(_, c)| *c == Class::Other)) {
                events.push((start, class));
            }
            true
        });
        events
    };
    let ((mut scan, reached), second) = rayon::join(
        || {
            let mut scan = StartScan::default();
            let mut reached = None;
            scan_tokens(source, 0, |start, class| {
                if start >= split {
                    reached = Some((start, class));
                    return false;
                }
                scan.token(start, class);
                true
            });
            (scan, reached)
        },
        || record(split),
    );
    match reached {
        None => {}
        Some((start, _)) if second.first().is_some_and(|(s, _)| *s == start) => {
            for (start, class) in second {
                scan.token(start, class);
            }
        }
        Some((start, _)) => {
            // Out of step: the first half's lexer goes on from the token it stopped at.
            scan_tokens(source, start, |start, class| {
                scan.token(start, class);
                true
            });
        }
    }
    scan.starts
}

/// One chunk of [`chunk_bytes`]: the fast parser when it starts with an item, else (or when
/// the fast parser does not read it) the chunk's own tokens through [`ItemParser`].
fn parse_chunk_text(
    file: FileId,
    source: &str,
    (start, end): (usize, usize),
    items: &mut Vec<Item>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    use logos::Logos as _;
    // Doc comments, then other comments, then the keyword (as `parse_chunk`).
    let mut doc_lines = Vec::new();
    let mut keyword = None;
    let mut in_docs = true;
    let mut lexer = TokenKind::lexer(source.get(start..end).unwrap_or(""));
    while let Some(result) = lexer.next() {
        let kind = result.unwrap_or(TokenKind::Error);
        let text = lexer.slice();
        if in_docs && kind == TokenKind::DocComment {
            doc_lines.push(doc_line(text));
            continue;
        }
        in_docs = false;
        if !kind.is_trivia() {
            if kind == TokenKind::Ident && ITEM_KEYWORDS.contains(&text) {
                keyword = Some(start + lexer.span().start);
            }
            break;
        }
    }
    if let Some(base) = keyword {
        if let Some(fast) = fast::item(file, base, source.get(base..end).unwrap_or("")) {
            let mut item = fast.item;
            if !doc_lines.is_empty() {
                item.doc = Some(doc_lines.join("\n"));
            }
            items.push(item);
            return;
        }
    }
    let tokens = tokenize_range(source, start, end);
    let mut parser = ItemParser::new(file, source, &tokens, false, end);
    parser.parse_chunk(0, tokens.len(), true);
    items.append(&mut parser.items);
    diagnostics.append(&mut parser.diagnostics);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The parallel path gives exactly what the one-by-one loop gives: the same items,
    /// diagnostics and layout, in the same order, broken items included.
    #[test]
    fn parallel_and_serial_parses_agree() {
        let mut text = String::new();
        for i in 0..4000 {
            text.push_str(&format!(
                "/// Destination {i}.\ndestination d{i} {{\n    host \"h{i}.example.com\"\n    port 443\n}}\n"
            ));
            if i % 97 == 0 {
                text.push_str("agent broken {\n    uses ,\n");
            }
            if i % 131 == 0 {
                text.push_str("capability c$ { connect d1 }\n");
            }
        }
        assert!(text.len() >= PARALLEL_BYTES, "{}", text.len());
        let tokens = tokenize(&text);
        let run = |parallel: bool| {
            let mut p = ItemParser::new(FileId(0), &text, &tokens, true, text.len());
            p.run_with(parallel);
            (
                format!("{:?}", p.items),
                format!("{:?}", p.diagnostics),
                format!("{:?}", p.layout),
            )
        };
        let (serial, parallel) = (run(false), run(true));
        assert!(serial.1.contains("E0001"), "the case has broken items");
        assert_eq!(serial.0, parallel.0, "items");
        assert_eq!(serial.1, parallel.1, "diagnostics");
        assert_eq!(serial.2, parallel.2, "layout");
        // The checker's parse, streamed and on every core, gives the same too.
        let (mut items, mut diagnostics) = parse_streaming(FileId(0), &text);
        items.sort_by_key(|i| i.span.start);
        crate::diagnostic::sort_diagnostics(&mut diagnostics);
        assert_eq!(format!("{items:?}"), serial.0, "streamed items");
        assert_eq!(format!("{diagnostics:?}"), serial.1, "streamed diagnostics");
    }
}
