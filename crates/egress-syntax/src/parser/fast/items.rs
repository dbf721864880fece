//! The grammar's item rules and their entries, in `spec/egress.pest`'s order.

use super::*;

impl Fast<'_> {
    // -----------------------------------------------------------------------------
    // Items

    pub(super) fn item(&mut self) -> Option<Item> {
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
    pub(super) fn import(&mut self) -> Option<ItemKind> {
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
    pub(super) fn name_set(&mut self, keyword: &[u8]) -> Option<NameSetDecl> {
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
    pub(super) fn dest_block(&mut self) -> Option<DestBody> {
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
    pub(super) fn dest_expr(&mut self) -> Option<DestExpr> {
        if let Some(body) = self.attempt(Self::dest_block) {
            return Some(DestExpr::Inline(body));
        }
        Some(DestExpr::Named(self.qname()?))
    }

    pub(super) fn dest_entry(&mut self) -> Option<DestEntry> {
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
    pub(super) fn workload(&mut self) -> Option<WorkloadAst> {
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
    pub(super) fn labels(&mut self) -> Option<Vec<(StrLit, StrLit)>> {
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
    pub(super) fn label(&mut self) -> Option<(StrLit, StrLit)> {
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
    pub(super) fn capability(&mut self) -> Option<ItemKind> {
        self.kw(b"capability")?;
        let name = self.ident()?;
        self.open()?;
        let entries = self.entries(Self::cap_entry)?;
        self.close()?;
        Some(ItemKind::Capability(CapabilityDecl { name, entries }))
    }

    pub(super) fn cap_entry(&mut self) -> Option<CapEntry> {
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
    pub(super) fn agent(&mut self) -> Option<ItemKind> {
        self.kw(b"agent")?;
        let name = self.ident()?;
        self.open()?;
        let entries = self.entries(Self::agent_entry)?;
        self.close()?;
        Some(ItemKind::Agent(AgentDecl { name, entries }))
    }

    pub(super) fn agent_entry(&mut self) -> Option<AgentEntry> {
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
    pub(super) fn passing(&mut self) -> Option<Vec<Ident>> {
        self.kw(b"passing")?;
        self.name_list()
    }

    // -----------------------------------------------------------------------------
    // Workflows

    /// `workflow_decl = { k_workflow ~ ident ~ "{" ~ workflow_entry* ~ step* ~ "}" }`.
    pub(super) fn workflow(&mut self) -> Option<ItemKind> {
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
    pub(super) fn step(&mut self) -> Option<StepAst> {
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
    pub(super) fn agents(&mut self) -> Option<AgentsAst> {
        if let Some(span) = self.attempt(Self::star) {
            return Some(AgentsAst::All(span));
        }
        Some(AgentsAst::Names(self.name_list()?))
    }

    /// `exception_decl = { k_exception ~ ident ~ "{" ~ exception_entry* ~ "}" }`.
    pub(super) fn exception(&mut self) -> Option<ItemKind> {
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
    pub(super) fn authority(&mut self) -> Option<ItemKind> {
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
    pub(super) fn zone(&mut self) -> Option<ItemKind> {
        self.kw(b"zone")?;
        let name = self.ident()?;
        self.open()?;
        let entries = self.entries(Self::zone_entry)?;
        self.close()?;
        Some(ItemKind::Zone(ZoneDecl { name, entries }))
    }

    /// `zone_entry = _{ owner_entry | agents_entry | approve_grant_entry
    ///   | approve_unix_entry | approve_entry | clear_entry }`, in that order.
    pub(super) fn zone_entry(&mut self) -> Option<ZoneEntry> {
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
    pub(super) fn assert(&mut self) -> Option<ItemKind> {
        self.kw(b"assert")?;
        let name = self.ident()?;
        self.open()?;
        let claims = self.entries(Self::claim)?;
        self.close()?;
        Some(ItemKind::Assert(AssertDecl { name, claims }))
    }

    /// `agent_claim = { k_agent ~ (star | qname) ~ (cannot_reach | can_reach) ~ dest_expr }`
    /// and `data_claim = { k_data ~ qname ~ k_never ~ k_reaches ~ dest_expr }`.
    pub(super) fn claim(&mut self) -> Option<ClaimAst> {
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
