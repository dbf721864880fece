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
    // Tokens (atomic rules): each skips trivia first, and on failure moves nothing

    /// A literal such as `{`, `,` or `=`.
    fn lit(&mut self, s: u8) -> Option<usize> {
        let m = self.mark();
        let start = self.next_start();
        if self.peek() == s {
            self.pos += 1;
            self.last_end = self.pos;
            Some(start)
        } else {
            self.reset(m);
            None
        }
    }

    /// A keyword rule `k_* = @{ "word" ~ !ident_char }`; returns its start.
    fn kw(&mut self, word: &[u8]) -> Option<usize> {
        let m = self.mark();
        let start = self.next_start();
        let end = start + word.len();
        if self.text.get(start..end) == Some(word) && !ident_char(self.peek_at(end)) {
            self.pos = end;
            self.last_end = end;
            Some(start)
        } else {
            self.reset(m);
            None
        }
    }

    /// `k_port = @{ ("ports" | "port") ~ !ident_char }`: the choice commits to `ports`.
    fn kw_port(&mut self) -> Option<usize> {
        let m = self.mark();
        let start = self.next_start();
        let rest = self.text.get(start..).unwrap_or(&[]);
        let len = if rest.starts_with(b"ports") {
            5
        } else if rest.starts_with(b"port") {
            4
        } else {
            0
        };
        if len > 0 && !ident_char(self.peek_at(start + len)) {
            self.pos = start + len;
            self.last_end = self.pos;
            Some(start)
        } else {
            self.reset(m);
            None
        }
    }

    /// The end of a run of name characters starting at `i`.
    fn ident_chars_end(&self, mut i: usize) -> usize {
        while ident_char(self.peek_at(i)) {
            i += 1;
        }
        i
    }

    /// `ident = @{ !reserved ~ ident_start ~ ident_char* }`.
    fn ident(&mut self) -> Option<Ident> {
        let m = self.mark();
        let start = self.next_start();
        if !ident_start(self.peek()) {
            self.reset(m);
            return None;
        }
        let end = self.ident_chars_end(start + 1);
        let word = self.text.get(start..end).unwrap_or(&[]);
        if RESERVED.contains(&word) {
            self.reset(m);
            return None;
        }
        self.pos = end;
        self.last_end = end;
        Some(Ident {
            text: self.str_of(start, end).to_string(),
            span: self.span(start, end),
        })
    }

    /// `qname = @{ ident ~ ("." ~ ident_start ~ ident_char*)* }`.
    fn qname(&mut self) -> Option<Ident> {
        let first = self.ident()?;
        let start = self.pos - first.text.len();
        let mut end = self.pos;
        while self.peek_at(end) == b'.' && ident_start(self.peek_at(end + 1)) {
            end = self.ident_chars_end(end + 2);
        }
        if end == self.pos {
            return Some(first);
        }
        self.pos = end;
        self.last_end = end;
        Some(Ident {
            text: self.str_of(start, end).to_string(),
            span: self.span(start, end),
        })
    }

    /// `star = { "*" }`: its span.
    fn star(&mut self) -> Option<Span> {
        let start = self.lit(b'*')?;
        Some(self.span(start, start + 1))
    }

    /// `string = @{ "\"" ~ (("\\" ~ !"\n" ~ ANY) | (!("\"" | "\\" | "\n") ~ ANY))* ~ "\"" }`,
    /// with its escapes resolved as the tree builder does.
    fn string(&mut self) -> Option<StrLit> {
        let m = self.mark();
        let start = self.next_start();
        if self.peek() != b'"' {
            self.reset(m);
            return None;
        }
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            match self.peek_at(i) {
                _ if i >= self.text.len() => {
                    self.reset(m);
                    return None;
                }
                b'\n' => {
                    self.reset(m);
                    return None;
                }
                b'"' => break,
                b'\\' => {
                    if self.peek_at(i + 1) == b'\n' || i + 1 >= self.text.len() {
                        self.reset(m);
                        return None;
                    }
                    escaped = true;
                    // The escaped character's first byte; a multi-byte character's other
                    // bytes are never `"`, `\` or a newline, so the loop takes them.
                    i += 2;
                }
                _ => i += 1,
            }
        }
        let end = i + 1;
        self.pos = end;
        self.last_end = end;
        let inner = self.str_of(start + 1, i);
        let value = if escaped {
            super::tree::unescape(inner)
        } else {
            inner.to_string()
        };
        Some(StrLit {
            value,
            span: self.span(start, end),
        })
    }

    fn digits_end(&self, mut i: usize) -> usize {
        while self.peek_at(i).is_ascii_digit() {
            i += 1;
        }
        i
    }

    /// `number = @{ ASCII_DIGIT+ ~ !ident_char }`.
    fn number(&mut self) -> Option<NumLit> {
        let m = self.mark();
        let start = self.next_start();
        let end = self.digits_end(start);
        if end == start || ident_char(self.peek_at(end)) {
            self.reset(m);
            return None;
        }
        self.pos = end;
        self.last_end = end;
        Some(self.num_lit(start, end))
    }

    fn num_lit(&self, start: usize, end: usize) -> NumLit {
        let text = self.str_of(start, end);
        NumLit {
            text: text.to_string(),
            value: text.parse().ok(),
            span: self.span(start, end),
        }
    }

    /// `port_item = _{ port_range | number }`, with
    /// `port_range = @{ ASCII_DIGIT+ ~ "-" ~ ASCII_DIGIT+ ~ !ident_char }`.
    fn port_item(&mut self) -> Option<PortLit> {
        let m = self.mark();
        let start = self.next_start();
        let first_end = self.digits_end(start);
        if first_end > start && self.peek_at(first_end) == b'-' {
            let second_end = self.digits_end(first_end + 1);
            if second_end > first_end + 1 && !ident_char(self.peek_at(second_end)) {
                self.pos = second_end;
                self.last_end = second_end;
                return Some(PortLit {
                    start: self.num_lit(start, first_end),
                    end: Some(self.num_lit(first_end + 1, second_end)),
                    span: self.span(start, second_end),
                });
            }
        }
        self.reset(m);
        let number = self.number()?;
        Some(PortLit {
            span: number.span,
            start: number,
            end: None,
        })
    }

    /// `duration = @{ ASCII_DIGIT+ ~ ("s" | "m" | "h" | "d") ~ !ident_char }`.
    fn duration(&mut self) -> Option<DurationLit> {
        let m = self.mark();
        let start = self.next_start();
        let digits = self.digits_end(start);
        let end = digits + 1;
        if digits == start
            || !matches!(self.peek_at(digits), b's' | b'm' | b'h' | b'd')
            || ident_char(self.peek_at(end))
        {
            self.reset(m);
            return None;
        }
        self.pos = end;
        self.last_end = end;
        Some(DurationLit {
            text: self.str_of(start, end).to_string(),
            span: self.span(start, end),
        })
    }

    /// `cidr_lit = @{ (ipv4 | ipv6) ~ ("/" ~ ASCII_DIGIT+)? }`, with
    /// `ipv4 = @{ D+ "." D+ "." D+ "." D+ }` and `ipv6 = @{ HEX* ":" (HEX | ":" | ".")* }`.
    fn cidr(&mut self) -> Option<CidrLit> {
        let m = self.mark();
        let start = self.next_start();
        let ipv4 = || {
            let mut i = start;
            for part in 0..4 {
                if part > 0 {
                    if self.peek_at(i) != b'.' {
                        return None;
                    }
                    i += 1;
                }
                let end = self.digits_end(i);
                if end == i {
                    return None;
                }
                i = end;
            }
            Some(i)
        };
        let ipv6 = || {
            let mut i = start;
            while self.peek_at(i).is_ascii_hexdigit() {
                i += 1;
            }
            if self.peek_at(i) != b':' {
                return None;
            }
            i += 1;
            while matches!(self.peek_at(i), b':' | b'.') || self.peek_at(i).is_ascii_hexdigit() {
                i += 1;
            }
            Some(i)
        };
        let Some(mut end) = ipv4().or_else(ipv6) else {
            self.reset(m);
            return None;
        };
        if self.peek_at(end) == b'/' {
            let digits = self.digits_end(end + 1);
            if digits > end + 1 {
                end = digits;
            }
        }
        self.pos = end;
        self.last_end = end;
        Some(CidrLit {
            text: self.str_of(start, end).to_string(),
            span: self.span(start, end),
        })
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

    /// `entry*` followed by `}`.
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

    // -----------------------------------------------------------------------------
    // Items

    fn item(&mut self) -> Option<Item> {
        let start = self.next_start();
        self.line(start);
        let word_end = self.ident_chars_end(start);
        let kind = match self.text.get(start..word_end)? {
            b"import" => self.import()?,
            b"data" => {
                self.kw(b"data")?;
                ItemKind::Data(DataDecl {
                    names: self.list(Self::ident)?,
                })
            }
            b"destination" => {
                self.kw(b"destination")?;
                let name = self.ident()?;
                let body = self.dest_block()?;
                ItemKind::Destination(DestinationDecl { name, body })
            }
            b"capability" => self.capability()?,
            b"agent" => self.agent()?,
            b"workflow" => self.workflow()?,
            b"exception" => self.exception()?,
            b"authority" => self.authority()?,
            b"zone" => self.zone()?,
            b"assert" => self.assert()?,
            b"syscalls" => ItemKind::Syscalls(self.name_set(b"syscalls")?),
            b"capset" => ItemKind::CapSet(self.name_set(b"capset")?),
            _ => return None,
        };
        Some(Item {
            doc: None,
            span: self.span_from(start),
            kind,
        })
    }

    /// `import_decl = { k_import ~ (string | qname) ~ (k_as ~ ident)? }`.
    fn import(&mut self) -> Option<ItemKind> {
        self.kw(b"import")?;
        let path = match self.string() {
            Some(s) => ImportPath::File(s),
            None => ImportPath::Module(self.qname()?),
        };
        let alias = self.attempt(|p| {
            p.kw(b"as")?;
            p.ident()
        });
        Some(ItemKind::Import(Import { path, alias }))
    }

    /// `syscalls_decl` and `capset_decl`:
    /// `{ k ~ ident ~ "{" ~ (ident ~ ("," ~ ident)* ~ ","?)? ~ "}" }`.
    fn name_set(&mut self, keyword: &[u8]) -> Option<NameSetDecl> {
        self.kw(keyword)?;
        let name = self.ident()?;
        self.open()?;
        let mut members = Vec::new();
        let member = |p: &mut Self| {
            let ident = p.ident()?;
            p.line(ident.span.start as usize - p.base);
            Some(ident)
        };
        if let Some(first) = self.attempt(member) {
            members.push(first);
            while let Some(next) = self.attempt(|p| {
                p.lit(b',')?;
                member(p)
            }) {
                members.push(next);
            }
            self.attempt(|p| p.lit(b','));
        }
        self.close()?;
        Some(NameSetDecl { name, members })
    }

    // -----------------------------------------------------------------------------
    // Destinations

    /// `dest_block = { "{" ~ dest_entry* ~ "}" }`.
    fn dest_block(&mut self) -> Option<DestBody> {
        let start = self.lit(b'{')?;
        let entries = self.entries(Self::dest_entry)?;
        let end = self.lit(b'}')?;
        self.braces.push(self.base + start);
        self.braces.push(self.base + end);
        Some(DestBody {
            span: self.span_from(start),
            entries,
        })
    }

    /// `dest_expr = _{ dest_block | qname }`.
    fn dest_expr(&mut self) -> Option<DestExpr> {
        if let Some(body) = self.attempt(Self::dest_block) {
            return Some(DestExpr::Inline(body));
        }
        Some(DestExpr::Named(self.qname()?))
    }

    fn dest_entry(&mut self) -> Option<DestEntry> {
        let start = self.next_start();
        let word_end = self.ident_chars_end(start);
        let entry = match self.text.get(start..word_end)? {
            b"host" => {
                self.kw(b"host")?;
                let hosts = self.string_list()?;
                DestEntry::Hosts {
                    span: self.span_from(start),
                    hosts,
                }
            }
            b"cidr" => {
                self.kw(b"cidr")?;
                let network = self.cidr()?;
                let except = self
                    .attempt(|p| {
                        p.kw(b"except")?;
                        p.list(Self::cidr)
                    })
                    .unwrap_or_default();
                DestEntry::Cidr {
                    span: self.span_from(start),
                    network,
                    except,
                }
            }
            b"workload" => DestEntry::Workload(self.workload()?),
            b"port" | b"ports" => {
                self.kw_port()?;
                let ports = self.list(Self::port_item)?;
                DestEntry::Ports {
                    span: self.span_from(start),
                    ports,
                }
            }
            b"protocol" => {
                self.kw(b"protocol")?;
                let names = self.list(Self::ident)?;
                DestEntry::Protocols {
                    span: self.span_from(start),
                    names,
                }
            }
            b"sni" => {
                self.kw(b"sni")?;
                self.kw(b"optional")?;
                DestEntry::SniOptional {
                    span: self.span_from(start),
                }
            }
            _ => return None,
        };
        self.line(start);
        Some(entry)
    }

    /// `workload_entry = { k_workload ~ k_namespace ~ string ~ (k_labels ~ labels)? }`.
    fn workload(&mut self) -> Option<WorkloadAst> {
        let start = self.kw(b"workload")?;
        self.kw(b"namespace")?;
        let namespace = self.string()?;
        let labels = self.attempt(|p| {
            p.kw(b"labels")?;
            p.labels()
        });
        self.line(start);
        Some(WorkloadAst {
            span: self.span_from(start),
            namespace,
            labels: labels.unwrap_or_default(),
        })
    }

    /// `labels = { "{" ~ (label ~ ("," ~ label)* ~ ","?)? ~ "}" }`.
    fn labels(&mut self) -> Option<Vec<(StrLit, StrLit)>> {
        self.lit(b'{')?;
        let mut out = Vec::new();
        if let Some(first) = self.attempt(Self::label) {
            out.push(first);
            while let Some(next) = self.attempt(|p| {
                p.lit(b',')?;
                p.label()
            }) {
                out.push(next);
            }
            self.attempt(|p| p.lit(b','));
        }
        self.lit(b'}')?;
        Some(out)
    }

    /// `label = { (ident | string) ~ "=" ~ string }`.
    fn label(&mut self) -> Option<(StrLit, StrLit)> {
        let key = match self.attempt(Self::ident) {
            Some(ident) => StrLit {
                value: ident.text,
                span: ident.span,
            },
            None => self.string()?,
        };
        self.lit(b'=')?;
        let value = self.string()?;
        Some((key, value))
    }

    // -----------------------------------------------------------------------------
    // Capabilities and agents

    /// `capability_decl = { k_capability ~ ident ~ "{" ~ cap_entry* ~ "}" }`.
    fn capability(&mut self) -> Option<ItemKind> {
        self.kw(b"capability")?;
        let name = self.ident()?;
        self.open()?;
        let entries = self.entries(Self::cap_entry)?;
        self.close()?;
        Some(ItemKind::Capability(CapabilityDecl { name, entries }))
    }

    fn cap_entry(&mut self) -> Option<CapEntry> {
        let start = self.next_start();
        let word_end = self.ident_chars_end(start);
        let word = self.text.get(start..word_end)?;
        let kind = match word {
            b"connect" => CapEntryKind::Connect,
            b"syscalls" => CapEntryKind::Syscalls,
            b"grant" => CapEntryKind::Grant,
            b"workflows" => CapEntryKind::Workflows,
            b"unix" => CapEntryKind::Unix,
            b"justified_by" => CapEntryKind::JustifiedBySbom,
            _ => return None,
        };
        self.kw(word)?;
        let (names, paths) = match kind {
            CapEntryKind::JustifiedBySbom => {
                self.kw(b"sbom")?;
                (Vec::new(), Vec::new())
            }
            CapEntryKind::Unix => (Vec::new(), self.string_list()?),
            _ => (self.name_list()?, Vec::new()),
        };
        self.line(start);
        Some(CapEntry {
            kind,
            span: self.span_from(start),
            names,
            paths,
        })
    }

    /// `agent_decl = { k_agent ~ ident ~ "{" ~ agent_entry* ~ "}" }`.
    fn agent(&mut self) -> Option<ItemKind> {
        self.kw(b"agent")?;
        let name = self.ident()?;
        self.open()?;
        let entries = self.entries(Self::agent_entry)?;
        self.close()?;
        Some(ItemKind::Agent(AgentDecl { name, entries }))
    }

    fn agent_entry(&mut self) -> Option<AgentEntry> {
        let start = self.next_start();
        let word_end = self.ident_chars_end(start);
        let word = self.text.get(start..word_end)?;
        let entry = match word {
            b"workload" => AgentEntry::Workload(self.workload()?),
            b"image" | b"executable" | b"cgroup" => {
                self.kw(word)?;
                let value = self.string()?;
                let span = self.span_from(start);
                match word {
                    b"image" => AgentEntry::Image { span, value },
                    b"executable" => AgentEntry::Executable { span, value },
                    _ => AgentEntry::Cgroup { span, value },
                }
            }
            b"uid" => {
                self.kw(b"uid")?;
                let value = self.number()?;
                AgentEntry::Uid {
                    span: self.span_from(start),
                    value,
                }
            }
            b"uses" | b"handles" => {
                self.kw(word)?;
                let names = self.name_list()?;
                let span = self.span_from(start);
                if word == b"uses" {
                    AgentEntry::Uses { span, names }
                } else {
                    AgentEntry::Handles { span, names }
                }
            }
            // `invokes_entry = { k_invokes ~ qname ~ (passing | ("," ~ qname)*) }`
            b"invokes" => {
                self.kw(b"invokes")?;
                let mut callees = vec![self.qname()?];
                let passing = self.attempt(Self::passing);
                if passing.is_none() {
                    while let Some(next) = self.attempt(|p| {
                        p.lit(b',')?;
                        p.qname()
                    }) {
                        callees.push(next);
                    }
                }
                AgentEntry::Invokes {
                    span: self.span_from(start),
                    callees,
                    passing,
                }
            }
            _ => return None,
        };
        self.line(start);
        Some(entry)
    }

    /// `passing = { k_passing ~ name_list }`.
    fn passing(&mut self) -> Option<Vec<Ident>> {
        self.kw(b"passing")?;
        self.name_list()
    }

    // -----------------------------------------------------------------------------
    // Workflows

    /// `workflow_decl = { k_workflow ~ ident ~ "{" ~ workflow_entry* ~ step* ~ "}" }`.
    fn workflow(&mut self) -> Option<ItemKind> {
        self.kw(b"workflow")?;
        let name = self.ident()?;
        self.open()?;
        let mut orchestrator = None;
        let mut ordered = None;
        while let Some(entry) = self.attempt(|p| {
            let start = p.next_start();
            let entry = if p.kw(b"orchestrator").is_some() {
                Ok(p.qname()?)
            } else {
                p.kw(b"ordered")?;
                Err(p.span_from(start))
            };
            p.line(start);
            Some(entry)
        }) {
            match entry {
                Ok(name) => orchestrator = Some(name),
                Err(span) => ordered = Some(span),
            }
        }
        let steps = self.entries(Self::step)?;
        self.close()?;
        Some(ItemKind::Workflow(WorkflowDecl {
            name,
            orchestrator,
            ordered,
            steps,
        }))
    }

    /// `step = { k_step ~ qname ~ (step_uses | step_invokes) }`.
    fn step(&mut self) -> Option<StepAst> {
        let start = self.kw(b"step")?;
        let agent = self.qname()?;
        let action = if self.kw(b"uses").is_some() {
            StepActionAst::Uses(self.qname()?)
        } else {
            self.kw(b"invokes")?;
            let callee = self.qname()?;
            let passing = self.attempt(Self::passing);
            StepActionAst::Invokes { callee, passing }
        };
        self.line(start);
        Some(StepAst {
            span: self.span_from(start),
            agent,
            action,
        })
    }

    // -----------------------------------------------------------------------------
    // Exceptions, authorities, zones

    /// `agents_entry = { k_agents ~ (star | name_list) }`, after the keyword.
    fn agents(&mut self) -> Option<AgentsAst> {
        if let Some(span) = self.attempt(Self::star) {
            return Some(AgentsAst::All(span));
        }
        Some(AgentsAst::Names(self.name_list()?))
    }

    /// `exception_decl = { k_exception ~ ident ~ "{" ~ exception_entry* ~ "}" }`.
    fn exception(&mut self) -> Option<ItemKind> {
        self.kw(b"exception")?;
        let name = self.ident()?;
        self.open()?;
        let entries = self.entries(|p| {
            let start = p.next_start();
            let word_end = p.ident_chars_end(start);
            let word = p.text.get(start..word_end)?;
            p.kw(word)?;
            let entry = match word {
                b"agents" => {
                    let agents = p.agents()?;
                    ExceptionEntry::Agents {
                        span: p.span_from(start),
                        agents,
                    }
                }
                b"to" => {
                    let dest = p.dest_expr()?;
                    ExceptionEntry::To {
                        span: p.span_from(start),
                        dest,
                    }
                }
                b"approver" => {
                    let name = p.qname()?;
                    ExceptionEntry::Approver {
                        span: p.span_from(start),
                        name,
                    }
                }
                b"max_ttl" => {
                    let value = p.duration()?;
                    ExceptionEntry::MaxTtl {
                        span: p.span_from(start),
                        value,
                    }
                }
                b"max_uses" => {
                    let value = p.number()?;
                    ExceptionEntry::MaxUses {
                        span: p.span_from(start),
                        value,
                    }
                }
                b"audit" => {
                    let dest = p.dest_expr()?;
                    ExceptionEntry::Audit {
                        span: p.span_from(start),
                        dest,
                    }
                }
                b"legal_basis" => {
                    let value = p.string()?;
                    ExceptionEntry::LegalBasis {
                        span: p.span_from(start),
                        value,
                    }
                }
                _ => return None,
            };
            p.line(start);
            Some(entry)
        })?;
        self.close()?;
        Some(ItemKind::Exception(ExceptionDecl { name, entries }))
    }

    /// `authority_decl = { k_authority ~ ident ~ "{" ~ authority_entry* ~ "}" }`.
    fn authority(&mut self) -> Option<ItemKind> {
        self.kw(b"authority")?;
        let name = self.ident()?;
        self.open()?;
        let entries = self.entries(|p| {
            let start = p.next_start();
            let entry = if p.kw(b"key").is_some() {
                let value = p.string()?;
                AuthorityEntry::Key {
                    span: p.span_from(start),
                    value,
                }
            } else {
                p.kw(b"max_ttl")?;
                let value = p.duration()?;
                AuthorityEntry::MaxTtl {
                    span: p.span_from(start),
                    value,
                }
            };
            p.line(start);
            Some(entry)
        })?;
        self.close()?;
        Some(ItemKind::Authority(AuthorityDecl { name, entries }))
    }

    /// `zone_decl = { k_zone ~ ident ~ "{" ~ zone_entry* ~ "}" }`.
    fn zone(&mut self) -> Option<ItemKind> {
        self.kw(b"zone")?;
        let name = self.ident()?;
        self.open()?;
        let entries = self.entries(Self::zone_entry)?;
        self.close()?;
        Some(ItemKind::Zone(ZoneDecl { name, entries }))
    }

    /// `zone_entry = _{ owner_entry | agents_entry | approve_grant_entry
    ///   | approve_unix_entry | approve_entry | clear_entry }`, in that order.
    fn zone_entry(&mut self) -> Option<ZoneEntry> {
        let start = self.next_start();
        let word_end = self.ident_chars_end(start);
        let entry = match self.text.get(start..word_end)? {
            b"owner" => {
                self.kw(b"owner")?;
                let value = self.string()?;
                ZoneEntry::Owner {
                    span: self.span_from(start),
                    value,
                }
            }
            b"agents" => {
                self.kw(b"agents")?;
                let agents = self.agents()?;
                ZoneEntry::Agents {
                    span: self.span_from(start),
                    agents,
                }
            }
            b"approve" => {
                if let Some(names) = self.attempt(|p| {
                    p.kw(b"approve")?;
                    p.kw(b"grant")?;
                    p.name_list()
                }) {
                    ZoneEntry::ApproveGrant {
                        span: self.span_from(start),
                        names,
                    }
                } else if let Some(paths) = self.attempt(|p| {
                    p.kw(b"approve")?;
                    p.kw(b"unix")?;
                    p.string_list()
                }) {
                    ZoneEntry::ApproveUnix {
                        span: self.span_from(start),
                        paths,
                    }
                } else {
                    self.kw(b"approve")?;
                    let names = self.name_list()?;
                    ZoneEntry::Approve {
                        span: self.span_from(start),
                        names,
                    }
                }
            }
            b"clear" => {
                self.kw(b"clear")?;
                let class = self.qname()?;
                self.kw(b"to")?;
                let to = self.name_list()?;
                ZoneEntry::Clear {
                    span: self.span_from(start),
                    class,
                    to,
                }
            }
            _ => return None,
        };
        self.line(start);
        Some(entry)
    }

    // -----------------------------------------------------------------------------
    // Assertions

    /// `assert_decl = { k_assert ~ ident ~ "{" ~ claim* ~ "}" }`.
    fn assert(&mut self) -> Option<ItemKind> {
        self.kw(b"assert")?;
        let name = self.ident()?;
        self.open()?;
        let claims = self.entries(Self::claim)?;
        self.close()?;
        Some(ItemKind::Assert(AssertDecl { name, claims }))
    }

    /// `agent_claim = { k_agent ~ (star | qname) ~ (cannot_reach | can_reach) ~ dest_expr }`
    /// and `data_claim = { k_data ~ qname ~ k_never ~ k_reaches ~ dest_expr }`.
    fn claim(&mut self) -> Option<ClaimAst> {
        let start = self.next_start();
        let claim = if self.kw(b"agent").is_some() {
            let agent = match self.attempt(Self::star) {
                Some(span) => AgentRef::All(span),
                None => AgentRef::Named(self.qname()?),
            };
            let can = if self.kw(b"cannot").is_some() {
                false
            } else {
                self.kw(b"can")?;
                true
            };
            self.kw(b"reach")?;
            let dest = self.dest_expr()?;
            ClaimAst::Agent {
                span: self.span_from(start),
                agent,
                can,
                dest,
            }
        } else {
            self.kw(b"data")?;
            let class = self.qname()?;
            self.kw(b"never")?;
            self.kw(b"reaches")?;
            let dest = self.dest_expr()?;
            ClaimAst::Data {
                span: self.span_from(start),
                class,
                dest,
            }
        };
        self.line(start);
        Some(claim)
    }
}
