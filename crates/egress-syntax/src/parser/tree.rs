//! The tree builder: pest pairs converted into the AST, with spans and the layout the
//! formatter needs.

use super::*;

/// Converts pest pairs into the AST. Returns `None` only if the tree has a shape the
/// grammar cannot produce (a bug), never on user input.
pub(super) struct Converter<'l> {
    pub(super) file: FileId,
    pub(super) base: usize,
    pub(super) layout: &'l mut Layout,
}

type P<'i> = Pair<'i, Rule>;

fn significant(pair: P<'_>) -> impl Iterator<Item = P<'_>> {
    pair.into_inner().filter(|p| !is_keyword_rule(p.as_rule()))
}

/// Whether `rule` is a keyword rule (`k_*`), whose pairs carry nothing. Worked out from the
/// rule's name once per rule and kept, not formatted again for every pair.
fn is_keyword_rule(rule: Rule) -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    static KNOWN: [AtomicU8; 512] = [const { AtomicU8::new(0) }; 512];
    let by_name = || format!("{rule:?}").starts_with("k_");
    let Some(slot) = KNOWN.get(rule as usize) else {
        return by_name();
    };
    match slot.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let keyword = by_name();
            slot.store(if keyword { 1 } else { 2 }, Ordering::Relaxed);
            keyword
        }
    }
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
        StrLit {
            value: unescape(inner),
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

    pub(super) fn item(&mut self, pair: P<'_>, doc: Option<String>) -> Option<Item> {
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

/// The value of a string literal's text between its quotes: `\n` and `\t` are a newline
/// and a tab, a backslash before any other character stands for that character.
pub(super) fn unescape(inner: &str) -> String {
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
    value
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
