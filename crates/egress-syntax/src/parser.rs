//! The parser: split the file into top-level items with the lexer, parse each item with
//! the pest grammar of `spec/egress.pest`, and convert the parse tree into the AST.

use std::collections::BTreeSet;

use pest::iterators::Pair;
use pest::Parser as _;

use crate::ast::*;
use crate::diagnostic::{sort_diagnostics, Diagnostic};
use crate::lexer::{tokenize, Token, TokenKind, ITEM_KEYWORDS};
use crate::{FileId, Span};

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

struct ItemParser<'a> {
    file: FileId,
    source: &'a str,
    tokens: &'a [Token],
    items: Vec<Item>,
    diagnostics: Vec<Diagnostic>,
    layout: Layout,
}

fn is_item_keyword(token: &Token, source: &str) -> bool {
    token.kind == TokenKind::Ident && ITEM_KEYWORDS.contains(&token.text(source))
}

fn at_line_start(source: &str, offset: usize) -> bool {
    offset == 0 || source.as_bytes().get(offset - 1) == Some(&b'\n')
}

impl<'a> ItemParser<'a> {
    fn run(&mut self) {
        let chunks = self.split(0, self.tokens.len(), false);
        for (start, end) in chunks {
            self.parse_chunk(start, end, true);
        }
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
                && (depth == 0 || (at_columns && at_line_start(self.source, token.start)))
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
        let first = self.tokens.get(start).map(|t| t.start).unwrap_or(0);
        // The chunk's text runs to the start of the next chunk's first token, so trailing
        // comments stay with it.
        let last = self
            .tokens
            .get(end)
            .map(|t| t.start)
            .unwrap_or(self.source.len());
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
            let text = token.text(self.source);
            let text = text.strip_prefix("///").unwrap_or(text);
            doc_lines.push(
                text.strip_prefix(' ')
                    .unwrap_or(text)
                    .trim_end()
                    .to_string(),
            );
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
                    Span::new(self.file, keyword.start, keyword.end),
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
        let base = keyword.start;
        let text = self.source.get(base..text_end).unwrap_or("");
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
                        Span::new(self.file, keyword.start, keyword.end),
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

    fn report(
        &mut self,
        error: pest::error::Error<Rule>,
        base: usize,
        start: usize,
        end: usize,
        keyword: &Token,
    ) {
        let item_keyword = keyword.text(self.source);
        let chunk_tokens = self.tokens.get(start..end).unwrap_or(&[]);
        if let Some(bad) = chunk_tokens.iter().find(|t| t.kind == TokenKind::Error) {
            let text = bad.text(self.source);
            let shown: String = text.chars().take(20).collect();
            self.diagnostics.push(
                Diagnostic::error(
                    "E0002",
                    Span::new(self.file, bad.start, bad.end),
                    format!("invalid character(s) `{}`", shown.escape_debug()),
                )
                .with_label("not part of the language")
                .with_help("names use letters, digits, `_` and `-`; text goes in double quotes"),
            );
            return;
        }
        if let Some(bad) = chunk_tokens
            .iter()
            .find(|t| t.kind == TokenKind::UnterminatedString)
        {
            self.diagnostics.push(
                Diagnostic::error(
                    "E0003",
                    Span::new(self.file, bad.start, bad.end),
                    "this string has no closing quote",
                )
                .with_label("string starts here")
                .with_help("add `\"` at the end of the string; strings cannot span lines"),
            );
            return;
        }
        let offset = match error.location {
            pest::error::InputLocation::Pos(p) => base + p,
            pest::error::InputLocation::Span((s, _)) => base + s,
        };
        let found = chunk_tokens
            .iter()
            .find(|t| t.end > offset && !t.kind.is_trivia())
            .copied();
        let (span, found_text) = match found {
            Some(t) => (
                Span::new(self.file, t.start, t.end),
                describe_token(&t, self.source),
            ),
            None => (
                Span::new(self.file, offset, offset),
                "the end of the file".to_string(),
            ),
        };
        let expected = match &error.variant {
            pest::error::ErrorVariant::ParsingError { positives, .. } => {
                let mut names: Vec<String> =
                    positives.iter().filter_map(|r| describe_rule(*r)).collect();
                names.sort();
                names.dedup();
                names
            }
            pest::error::ErrorVariant::CustomError { message } => vec![message.clone()],
        };
        // An item whose braces never close: say so at its first `{`.
        let depth: i64 = chunk_tokens
            .iter()
            .map(|t| match t.kind {
                TokenKind::LBrace => 1,
                TokenKind::RBrace => -1,
                _ => 0,
            })
            .sum();
        let at_end = found.is_none();
        if depth > 0 && at_end {
            if let Some(open) = chunk_tokens.iter().find(|t| t.kind == TokenKind::LBrace) {
                let name = chunk_tokens
                    .get(1)
                    .filter(|t| t.kind == TokenKind::Ident)
                    .map(|t| format!("{item_keyword} `{}`", t.text(self.source)))
                    .unwrap_or_else(|| format!("this {item_keyword}"));
                let next = if end < self.tokens.len() {
                    "before the next item"
                } else {
                    "before the end of the file"
                };
                self.diagnostics.push(
                    Diagnostic::error(
                        "E0001",
                        Span::new(self.file, open.start, open.end),
                        format!("{name} is not closed: expected `}}` {next}"),
                    )
                    .with_label("this `{` has no matching `}`")
                    .with_help("add the missing `}` at the end of the item"),
                );
                return;
            }
        }
        let message = if expected.is_empty() {
            format!("unexpected {found_text}")
        } else {
            format!("expected {}, found {found_text}", join_or(&expected))
        };
        self.diagnostics.push(
            Diagnostic::error("E0001", span, message)
                .with_label("unexpected here")
                .with_help(item_help(item_keyword)),
        );
    }
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

fn describe_token(token: &Token, source: &str) -> String {
    let text = token.text(source);
    match token.kind {
        TokenKind::Ident => format!("`{text}`"),
        TokenKind::String => "a string".to_string(),
        TokenKind::Number => format!("the number `{text}`"),
        TokenKind::LBrace => "`{`".to_string(),
        TokenKind::RBrace => "`}`".to_string(),
        _ => {
            let shown: String = text.chars().take(30).collect();
            format!("`{shown}`")
        }
    }
}

fn describe_rule(rule: Rule) -> Option<String> {
    let text = match rule {
        Rule::ident | Rule::qname => "a name",
        Rule::string => "a string",
        Rule::number => "a number",
        Rule::port_range => "a port range",
        Rule::duration => "a duration such as `15m`",
        Rule::cidr_lit | Rule::ipv4 | Rule::ipv6 => "a CIDR such as `192.0.2.0/24`",
        Rule::star => "`*`",
        Rule::labels => "`{`",
        Rule::label => "a label `key = \"value\"`",
        Rule::dest_block => "`{`",
        Rule::EOI => "the end of the item",
        Rule::host_entry => "`host`",
        Rule::cidr_entry => "`cidr`",
        Rule::workload_entry => "`workload`",
        Rule::port_entry => "`port`",
        Rule::protocol_entry => "`protocol`",
        Rule::sni_entry => "`sni optional`",
        Rule::passing => "`passing`",
        Rule::step => "`step`",
        Rule::step_uses => "`uses`",
        Rule::step_invokes => "`invokes`",
        Rule::cannot_reach => "`cannot reach`",
        Rule::can_reach => "`can reach`",
        Rule::agent_claim => "`agent`",
        Rule::data_claim => "`data`",
        Rule::connect_entry => "`connect`",
        Rule::syscalls_entry => "`syscalls`",
        Rule::grant_entry => "`grant`",
        Rule::workflows_entry => "`workflows`",
        Rule::image_entry => "`image`",
        Rule::executable_entry => "`executable`",
        Rule::cgroup_entry => "`cgroup`",
        Rule::uid_entry => "`uid`",
        Rule::uses_entry => "`uses`",
        Rule::handles_entry => "`handles`",
        Rule::invokes_entry => "`invokes`",
        Rule::agents_entry => "`agents`",
        Rule::to_entry => "`to`",
        Rule::approver_entry => "`approver`",
        Rule::orchestrator_entry => "`orchestrator`",
        Rule::ordered_entry => "`ordered`",
        Rule::max_ttl_entry => "`max_ttl`",
        Rule::max_uses_entry => "`max_uses`",
        Rule::audit_entry => "`audit`",
        Rule::legal_basis_entry => "`legal_basis`",
        Rule::key_entry => "`key`",
        Rule::owner_entry => "`owner`",
        Rule::approve_entry => "`approve`",
        Rule::approve_grant_entry => "`approve grant`",
        Rule::approve_unix_entry => "`approve unix`",
        Rule::unix_entry => "`unix`",
        Rule::justified_entry => "`justified_by sbom`",
        Rule::clear_entry => "`clear`",
        _ => {
            let name = format!("{rule:?}");
            if let Some(keyword) = name.strip_prefix("k_") {
                return Some(format!("`{keyword}`"));
            }
            return None;
        }
    };
    Some(text.to_string())
}

fn item_help(keyword: &str) -> String {
    match keyword {
        "import" => "write `import std.dns`, `import std.dns as d` or `import \"file.egress\" as name`".into(),
        "data" => "declare data classes as `data pii, secrets`".into(),
        "destination" => "a destination holds `host`, `cidr`, `workload`, `port` and `protocol` entries inside `{ }`".into(),
        "capability" => "a capability holds `connect`, `syscalls`, `grant`, `unix`, `workflows` and `justified_by sbom` entries inside `{ }`".into(),
        "agent" => "an agent holds `workload`, `image`, `executable`, `cgroup`, `uid`, `uses`, `handles` and `invokes` entries inside `{ }`".into(),
        "workflow" => "a workflow holds steps: `step AGENT uses CAPABILITY` or `step AGENT invokes AGENT passing CLASS`".into(),
        "exception" => "an exception holds `agents`, `to`, `approver`, `max_ttl`, `max_uses`, `audit` and `legal_basis` entries".into(),
        "authority" => "an authority holds `key \"ed25519:...\"` and `max_ttl` entries".into(),
        "zone" => "a zone holds `owner`, `agents`, `approve`, `approve grant CAP_...`, `approve unix \"/path\"` and `clear CLASS to DEST` entries".into(),
        "assert" => "an assertion holds claims: `agent A cannot reach D`, `agent A can reach D`, `data C never reaches D`".into(),
        "syscalls" => "a syscall group lists syscall names: `syscalls NAME { read, write }`".into(),
        "capset" => "a capability set lists Linux capabilities: `capset NAME { CAP_NET_BIND_SERVICE }`".into(),
        _ => "see `spec/` for the grammar".into(),
    }
}

/// Converts pest pairs into the AST. Returns `None` only if the tree has a shape the
/// grammar cannot produce (a bug), never on user input.
struct Converter<'l> {
    file: FileId,
    base: usize,
    layout: &'l mut Layout,
}

type P<'i> = Pair<'i, Rule>;

fn significant(pair: P<'_>) -> impl Iterator<Item = P<'_>> {
    pair.into_inner().filter(|p| {
        let name = format!("{:?}", p.as_rule());
        !name.starts_with("k_")
    })
}

impl Converter<'_> {
    /// The span of a pair, without the trailing whitespace and comments that pest's
    /// implicit whitespace may leave inside it.
    fn span(&self, pair: &P<'_>) -> Span {
        let s = pair.as_span();
        let trimmed = trim_trailing_trivia(pair.as_str());
        Span::new(
            self.file,
            self.base + s.start(),
            self.base + s.start() + trimmed.len(),
        )
    }

    fn line(&mut self, pair: &P<'_>) {
        self.layout
            .line_starts
            .insert(self.base + pair.as_span().start());
    }

    fn ident(&self, pair: P<'_>) -> Ident {
        Ident {
            text: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn string(&self, pair: P<'_>) -> StrLit {
        let raw = pair.as_str();
        let inner = raw
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(raw);
        let mut value = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(other) => value.push(other),
                    None => {}
                }
            } else {
                value.push(c);
            }
        }
        StrLit {
            value,
            span: self.span(&pair),
        }
    }

    fn number(&self, pair: P<'_>) -> NumLit {
        NumLit {
            text: pair.as_str().to_string(),
            value: pair.as_str().parse().ok(),
            span: self.span(&pair),
        }
    }

    fn names(&self, pair: P<'_>) -> Vec<Ident> {
        significant(pair).map(|p| self.ident(p)).collect()
    }

    fn strings(&self, pair: P<'_>) -> Vec<StrLit> {
        significant(pair).map(|p| self.string(p)).collect()
    }

    fn item(&mut self, pair: P<'_>, doc: Option<String>) -> Option<Item> {
        let span = self.span(&pair);
        self.line(&pair);
        let rule = pair.as_rule();
        let kind = match rule {
            Rule::import_decl => {
                let mut path = None;
                let mut alias = None;
                for p in significant(pair) {
                    match p.as_rule() {
                        Rule::string => path = Some(ImportPath::File(self.string(p))),
                        Rule::qname => path = Some(ImportPath::Module(self.ident(p))),
                        Rule::ident => alias = Some(self.ident(p)),
                        _ => {}
                    }
                }
                ItemKind::Import(Import { path: path?, alias })
            }
            Rule::data_decl => ItemKind::Data(DataDecl {
                names: self.names(pair),
            }),
            Rule::syscalls_decl | Rule::capset_decl => {
                self.block_braces_of(&pair);
                let mut inner = significant(pair);
                let name = self.ident(inner.next()?);
                let members = inner
                    .map(|p| {
                        self.line(&p);
                        self.ident(p)
                    })
                    .collect();
                let decl = NameSetDecl { name, members };
                if rule == Rule::syscalls_decl {
                    ItemKind::Syscalls(decl)
                } else {
                    ItemKind::CapSet(decl)
                }
            }
            Rule::destination_decl => {
                let mut inner = significant(pair);
                let name = self.ident(inner.next()?);
                let body = self.dest_body(inner.next()?)?;
                ItemKind::Destination(DestinationDecl { name, body })
            }
            Rule::capability_decl => {
                self.block_braces_of(&pair);
                let mut inner = significant(pair);
                let name = self.ident(inner.next()?);
                let mut entries = Vec::new();
                for p in inner {
                    self.line(&p);
                    let kind = match p.as_rule() {
                        Rule::connect_entry => CapEntryKind::Connect,
                        Rule::syscalls_entry => CapEntryKind::Syscalls,
                        Rule::grant_entry => CapEntryKind::Grant,
                        Rule::workflows_entry => CapEntryKind::Workflows,
                        Rule::unix_entry => CapEntryKind::Unix,
                        Rule::justified_entry => CapEntryKind::JustifiedBySbom,
                        _ => return None,
                    };
                    let span = self.span(&p);
                    if kind == CapEntryKind::JustifiedBySbom {
                        entries.push(CapEntry {
                            kind,
                            span,
                            names: Vec::new(),
                            paths: Vec::new(),
                        });
                        continue;
                    }
                    let list = significant(p).next()?;
                    let (names, paths) = if kind == CapEntryKind::Unix {
                        (Vec::new(), self.strings(list))
                    } else {
                        (self.names(list), Vec::new())
                    };
                    entries.push(CapEntry {
                        kind,
                        span,
                        names,
                        paths,
                    });
                }
                ItemKind::Capability(CapabilityDecl { name, entries })
            }
            Rule::agent_decl => {
                self.block_braces_of(&pair);
                let mut inner = significant(pair);
                let name = self.ident(inner.next()?);
                let mut entries = Vec::new();
                for p in inner {
                    entries.push(self.agent_entry(p)?);
                }
                ItemKind::Agent(AgentDecl { name, entries })
            }
            Rule::workflow_decl => {
                self.block_braces_of(&pair);
                let mut inner = significant(pair);
                let name = self.ident(inner.next()?);
                let mut steps = Vec::new();
                let mut orchestrator = None;
                let mut ordered = None;
                for p in inner {
                    self.line(&p);
                    let span = self.span(&p);
                    match p.as_rule() {
                        Rule::orchestrator_entry => {
                            orchestrator = significant(p).next().map(|n| self.ident(n));
                            continue;
                        }
                        Rule::ordered_entry => {
                            ordered = Some(span);
                            continue;
                        }
                        _ => {}
                    }
                    let mut parts = significant(p);
                    let agent = self.ident(parts.next()?);
                    let action = parts.next()?;
                    let action = match action.as_rule() {
                        Rule::step_uses => {
                            StepActionAst::Uses(self.ident(significant(action).next()?))
                        }
                        Rule::step_invokes => {
                            let mut a = significant(action);
                            let callee = self.ident(a.next()?);
                            let passing = match a.next() {
                                Some(p) => Some(self.names(significant(p).next()?)),
                                None => None,
                            };
                            StepActionAst::Invokes { callee, passing }
                        }
                        _ => return None,
                    };
                    steps.push(StepAst {
                        span,
                        agent,
                        action,
                    });
                }
                ItemKind::Workflow(WorkflowDecl {
                    name,
                    orchestrator,
                    ordered,
                    steps,
                })
            }
            Rule::exception_decl => {
                self.block_braces_of(&pair);
                let mut inner = significant(pair);
                let name = self.ident(inner.next()?);
                let mut entries = Vec::new();
                for p in inner {
                    self.line(&p);
                    let span = self.span(&p);
                    let rule = p.as_rule();
                    let mut parts = significant(p);
                    let entry = match rule {
                        Rule::agents_entry => ExceptionEntry::Agents {
                            span,
                            agents: self.agents(parts.next()?),
                        },
                        Rule::to_entry => ExceptionEntry::To {
                            span,
                            dest: self.dest_expr(parts.next()?)?,
                        },
                        Rule::approver_entry => ExceptionEntry::Approver {
                            span,
                            name: self.ident(parts.next()?),
                        },
                        Rule::max_ttl_entry => ExceptionEntry::MaxTtl {
                            span,
                            value: self.duration(parts.next()?),
                        },
                        Rule::max_uses_entry => ExceptionEntry::MaxUses {
                            span,
                            value: self.number(parts.next()?),
                        },
                        Rule::audit_entry => ExceptionEntry::Audit {
                            span,
                            dest: self.dest_expr(parts.next()?)?,
                        },
                        Rule::legal_basis_entry => ExceptionEntry::LegalBasis {
                            span,
                            value: self.string(parts.next()?),
                        },
                        _ => return None,
                    };
                    entries.push(entry);
                }
                ItemKind::Exception(ExceptionDecl { name, entries })
            }
            Rule::authority_decl => {
                self.block_braces_of(&pair);
                let mut inner = significant(pair);
                let name = self.ident(inner.next()?);
                let mut entries = Vec::new();
                for p in inner {
                    self.line(&p);
                    let span = self.span(&p);
                    let rule = p.as_rule();
                    let value = significant(p).next()?;
                    entries.push(match rule {
                        Rule::key_entry => AuthorityEntry::Key {
                            span,
                            value: self.string(value),
                        },
                        Rule::max_ttl_entry => AuthorityEntry::MaxTtl {
                            span,
                            value: self.duration(value),
                        },
                        _ => return None,
                    });
                }
                ItemKind::Authority(AuthorityDecl { name, entries })
            }
            Rule::zone_decl => {
                self.block_braces_of(&pair);
                let mut inner = significant(pair);
                let name = self.ident(inner.next()?);
                let mut entries = Vec::new();
                for p in inner {
                    self.line(&p);
                    let span = self.span(&p);
                    let rule = p.as_rule();
                    let mut parts = significant(p);
                    entries.push(match rule {
                        Rule::owner_entry => ZoneEntry::Owner {
                            span,
                            value: self.string(parts.next()?),
                        },
                        Rule::agents_entry => ZoneEntry::Agents {
                            span,
                            agents: self.agents(parts.next()?),
                        },
                        Rule::approve_entry => ZoneEntry::Approve {
                            span,
                            names: self.names(parts.next()?),
                        },
                        Rule::approve_grant_entry => ZoneEntry::ApproveGrant {
                            span,
                            names: self.names(parts.next()?),
                        },
                        Rule::approve_unix_entry => ZoneEntry::ApproveUnix {
                            span,
                            paths: self.strings(parts.next()?),
                        },
                        Rule::clear_entry => ZoneEntry::Clear {
                            span,
                            class: self.ident(parts.next()?),
                            to: self.names(parts.next()?),
                        },
                        _ => return None,
                    });
                }
                ItemKind::Zone(ZoneDecl { name, entries })
            }
            Rule::assert_decl => {
                self.block_braces_of(&pair);
                let mut inner = significant(pair);
                let name = self.ident(inner.next()?);
                let mut claims = Vec::new();
                for p in inner {
                    self.line(&p);
                    let span = self.span(&p);
                    let rule = p.as_rule();
                    let mut parts = significant(p);
                    claims.push(match rule {
                        Rule::agent_claim => {
                            let who = parts.next()?;
                            let agent = if who.as_rule() == Rule::star {
                                AgentRef::All(self.span(&who))
                            } else {
                                AgentRef::Named(self.ident(who))
                            };
                            let can = parts.next()?.as_rule() == Rule::can_reach;
                            let dest = self.dest_expr(parts.next()?)?;
                            ClaimAst::Agent {
                                span,
                                agent,
                                can,
                                dest,
                            }
                        }
                        Rule::data_claim => ClaimAst::Data {
                            span,
                            class: self.ident(parts.next()?),
                            dest: self.dest_expr(parts.next()?)?,
                        },
                        _ => return None,
                    });
                }
                ItemKind::Assert(AssertDecl { name, claims })
            }
            _ => return None,
        };
        Some(Item { doc, span, kind })
    }

    /// Records the outer `{` and `}` of an item body as multi-line block braces.
    fn block_braces_of(&mut self, pair: &P<'_>) {
        let text = pair.as_str();
        let start = self.base + pair.as_span().start();
        if let Some(open) = first_brace(text) {
            self.layout.block_braces.insert(start + open);
        }
        if text.ends_with('}') {
            self.layout
                .block_braces
                .insert(start + text.len().saturating_sub(1));
        }
    }

    fn duration(&self, pair: P<'_>) -> DurationLit {
        DurationLit {
            text: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn agents(&self, pair: P<'_>) -> AgentsAst {
        if pair.as_rule() == Rule::star {
            AgentsAst::All(self.span(&pair))
        } else {
            AgentsAst::Names(self.names(pair))
        }
    }

    fn dest_expr(&mut self, pair: P<'_>) -> Option<DestExpr> {
        match pair.as_rule() {
            Rule::dest_block => Some(DestExpr::Inline(self.dest_body(pair)?)),
            Rule::qname => Some(DestExpr::Named(self.ident(pair))),
            _ => None,
        }
    }

    fn dest_body(&mut self, pair: P<'_>) -> Option<DestBody> {
        let span = self.span(&pair);
        self.layout.block_braces.insert(span.start as usize);
        self.layout
            .block_braces
            .insert((span.end as usize).saturating_sub(1));
        let mut entries = Vec::new();
        for p in significant(pair) {
            self.line(&p);
            let span = self.span(&p);
            let rule = p.as_rule();
            let entry = match rule {
                Rule::host_entry => DestEntry::Hosts {
                    span,
                    hosts: significant(p).map(|s| self.string(s)).collect(),
                },
                Rule::cidr_entry => {
                    let mut parts = significant(p);
                    let network = self.cidr(parts.next()?);
                    let except = parts.map(|c| self.cidr(c)).collect();
                    DestEntry::Cidr {
                        span,
                        network,
                        except,
                    }
                }
                Rule::workload_entry => DestEntry::Workload(self.workload(p)?),
                Rule::port_entry => {
                    let mut ports = Vec::new();
                    for item in significant(p) {
                        ports.push(self.port(item)?);
                    }
                    DestEntry::Ports { span, ports }
                }
                Rule::protocol_entry => DestEntry::Protocols {
                    span,
                    names: significant(p).map(|i| self.ident(i)).collect(),
                },
                Rule::sni_entry => DestEntry::SniOptional { span },
                _ => return None,
            };
            entries.push(entry);
        }
        Some(DestBody { span, entries })
    }

    fn cidr(&self, pair: P<'_>) -> CidrLit {
        CidrLit {
            text: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn port(&self, pair: P<'_>) -> Option<PortLit> {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::number => Some(PortLit {
                start: self.number(pair),
                end: None,
                span,
            }),
            Rule::port_range => {
                let text = pair.as_str();
                let (a, b) = text.split_once('-')?;
                let first_end = span.start as usize + a.len();
                let second_start = first_end + 1;
                Some(PortLit {
                    start: NumLit {
                        text: a.to_string(),
                        value: a.parse().ok(),
                        span: Span::new(self.file, span.start as usize, first_end),
                    },
                    end: Some(NumLit {
                        text: b.to_string(),
                        value: b.parse().ok(),
                        span: Span::new(self.file, second_start, span.end as usize),
                    }),
                    span,
                })
            }
            _ => None,
        }
    }

    fn workload(&mut self, pair: P<'_>) -> Option<WorkloadAst> {
        self.line(&pair);
        let span = self.span(&pair);
        let mut parts = significant(pair);
        let namespace = self.string(parts.next()?);
        let mut labels = Vec::new();
        if let Some(block) = parts.next() {
            for label in significant(block) {
                let mut kv = significant(label);
                let key = kv.next()?;
                let key = if key.as_rule() == Rule::string {
                    self.string(key)
                } else {
                    StrLit {
                        value: key.as_str().to_string(),
                        span: self.span(&key),
                    }
                };
                let value = self.string(kv.next()?);
                labels.push((key, value));
            }
        }
        Some(WorkloadAst {
            span,
            namespace,
            labels,
        })
    }

    fn agent_entry(&mut self, pair: P<'_>) -> Option<AgentEntry> {
        self.line(&pair);
        let span = self.span(&pair);
        let rule = pair.as_rule();
        if rule == Rule::workload_entry {
            return Some(AgentEntry::Workload(self.workload(pair)?));
        }
        let mut parts = significant(pair);
        Some(match rule {
            Rule::image_entry => AgentEntry::Image {
                span,
                value: self.string(parts.next()?),
            },
            Rule::executable_entry => AgentEntry::Executable {
                span,
                value: self.string(parts.next()?),
            },
            Rule::cgroup_entry => AgentEntry::Cgroup {
                span,
                value: self.string(parts.next()?),
            },
            Rule::uid_entry => AgentEntry::Uid {
                span,
                value: self.number(parts.next()?),
            },
            Rule::uses_entry => AgentEntry::Uses {
                span,
                names: self.names(parts.next()?),
            },
            Rule::handles_entry => AgentEntry::Handles {
                span,
                names: self.names(parts.next()?),
            },
            Rule::invokes_entry => {
                let mut callees = Vec::new();
                let mut passing = None;
                for p in parts {
                    match p.as_rule() {
                        Rule::qname => callees.push(self.ident(p)),
                        Rule::passing => passing = Some(self.names(significant(p).next()?)),
                        _ => {}
                    }
                }
                AgentEntry::Invokes {
                    span,
                    callees,
                    passing,
                }
            }
            _ => return None,
        })
    }
}

/// `text` without trailing whitespace and trailing `//` comments.
fn trim_trailing_trivia(text: &str) -> &str {
    let mut current = text.trim_end();
    loop {
        // The last line: if it holds a comment start outside a string, cut it.
        let line_start = current.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line = current.get(line_start..).unwrap_or("");
        match comment_start(line) {
            Some(offset) if line_start + offset > 0 => {
                current = current
                    .get(..line_start + offset)
                    .unwrap_or(current)
                    .trim_end();
            }
            _ => return current,
        }
    }
}

fn comment_start(line: &str) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    let mut previous = '\0';
    for (i, c) in line.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c == '/' && previous == '/' {
            return Some(i - 1);
        }
        previous = c;
    }
    None
}

fn first_brace(text: &str) -> Option<usize> {
    // The first `{` outside a string or a comment.
    let mut in_string = false;
    let mut in_comment = false;
    let mut escaped = false;
    let mut previous = '\0';
    for (i, c) in text.char_indices() {
        if in_comment {
            if c == '\n' {
                in_comment = false;
            }
        } else if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c == '/' && previous == '/' {
            in_comment = true;
        } else if c == '{' {
            return Some(i);
        }
        previous = c;
    }
    None
}
