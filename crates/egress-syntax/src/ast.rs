//! The syntax tree. Every node keeps its span; values are as written (unvalidated):
//! the checker gives them meaning and reports what is wrong with them.

use serde::Serialize;

use crate::Span;

/// A name or a qualified name (`std.dns.kube_dns`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ident {
    pub text: String,
    pub span: Span,
}

/// A string literal with its escapes resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StrLit {
    pub value: String,
    pub span: Span,
}

/// A run of digits; `value` is `None` when it does not fit in a `u64`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NumLit {
    pub text: String,
    pub value: Option<u64>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortLit {
    pub start: NumLit,
    pub end: Option<NumLit>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CidrLit {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DurationLit {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceAst {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// The text of the `///` comments before the item, without the slashes.
    pub doc: Option<String>,
    pub span: Span,
    pub kind: ItemKind,
}

impl Item {
    /// The declared name, for items that declare one.
    pub fn name(&self) -> Option<&Ident> {
        match &self.kind {
            ItemKind::Import(_) | ItemKind::Data(_) => None,
            ItemKind::Destination(d) => Some(&d.name),
            ItemKind::Capability(d) => Some(&d.name),
            ItemKind::Agent(d) => Some(&d.name),
            ItemKind::Workflow(d) => Some(&d.name),
            ItemKind::Exception(d) => Some(&d.name),
            ItemKind::Authority(d) => Some(&d.name),
            ItemKind::Zone(d) => Some(&d.name),
            ItemKind::Assert(d) => Some(&d.name),
            ItemKind::Syscalls(d) => Some(&d.name),
            ItemKind::CapSet(d) => Some(&d.name),
        }
    }

    /// The keyword that introduces the item.
    pub fn keyword(&self) -> &'static str {
        match &self.kind {
            ItemKind::Import(_) => "import",
            ItemKind::Data(_) => "data",
            ItemKind::Destination(_) => "destination",
            ItemKind::Capability(_) => "capability",
            ItemKind::Agent(_) => "agent",
            ItemKind::Workflow(_) => "workflow",
            ItemKind::Exception(_) => "exception",
            ItemKind::Authority(_) => "authority",
            ItemKind::Zone(_) => "zone",
            ItemKind::Assert(_) => "assert",
            ItemKind::Syscalls(_) => "syscalls",
            ItemKind::CapSet(_) => "capset",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ItemKind {
    Import(Import),
    Data(DataDecl),
    Destination(DestinationDecl),
    Capability(CapabilityDecl),
    Agent(AgentDecl),
    Workflow(WorkflowDecl),
    Exception(ExceptionDecl),
    Authority(AuthorityDecl),
    Zone(ZoneDecl),
    Assert(AssertDecl),
    Syscalls(NameSetDecl),
    CapSet(NameSetDecl),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ImportPath {
    /// `import std.dns`
    Module(Ident),
    /// `import "shared/vault.egress"`
    File(StrLit),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Import {
    pub path: ImportPath,
    pub alias: Option<Ident>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DataDecl {
    pub names: Vec<Ident>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DestinationDecl {
    pub name: Ident,
    pub body: DestBody,
}

/// `{ host ... cidr ... workload ... port ... protocol ... sni optional }`
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DestBody {
    pub span: Span,
    pub entries: Vec<DestEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum DestEntry {
    Hosts {
        span: Span,
        hosts: Vec<StrLit>,
    },
    Cidr {
        span: Span,
        network: CidrLit,
        except: Vec<CidrLit>,
    },
    Workload(WorkloadAst),
    Ports {
        span: Span,
        ports: Vec<PortLit>,
    },
    Protocols {
        span: Span,
        names: Vec<Ident>,
    },
    /// `sni optional`: the run-time gate also admits connections that name no host.
    SniOptional {
        span: Span,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkloadAst {
    pub span: Span,
    pub namespace: StrLit,
    pub labels: Vec<(StrLit, StrLit)>,
}

/// A destination by name, or written inline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum DestExpr {
    Named(Ident),
    Inline(DestBody),
}

impl DestExpr {
    pub fn span(&self) -> Span {
        match self {
            DestExpr::Named(i) => i.span,
            DestExpr::Inline(b) => b.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CapabilityDecl {
    pub name: Ident,
    pub entries: Vec<CapEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum CapEntryKind {
    Connect,
    Syscalls,
    Grant,
    Workflows,
    /// `unix "/path", ...`: local sockets by path; the values are in `paths`.
    Unix,
    /// `justified_by sbom`: a fetcher whose destinations the SBOM must declare (no names,
    /// no paths).
    JustifiedBySbom,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CapEntry {
    pub kind: CapEntryKind,
    pub span: Span,
    /// The names of a `connect`, `syscalls`, `grant` or `workflows` entry.
    pub names: Vec<Ident>,
    /// The strings of a `unix` entry (empty for the other kinds).
    pub paths: Vec<StrLit>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentDecl {
    pub name: Ident,
    pub entries: Vec<AgentEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum AgentEntry {
    Workload(WorkloadAst),
    Image {
        span: Span,
        value: StrLit,
    },
    /// `executable "sha256:..."`: a program `egc run` may start as this agent.
    Executable {
        span: Span,
        value: StrLit,
    },
    Cgroup {
        span: Span,
        value: StrLit,
    },
    Uid {
        span: Span,
        value: NumLit,
    },
    Uses {
        span: Span,
        names: Vec<Ident>,
    },
    Handles {
        span: Span,
        names: Vec<Ident>,
    },
    Invokes {
        span: Span,
        callees: Vec<Ident>,
        passing: Option<Vec<Ident>>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkflowDecl {
    pub name: Ident,
    /// `orchestrator AUTHORITY`: whose key signs step tokens.
    pub orchestrator: Option<Ident>,
    /// `ordered`: step tokens apply only in the order of the steps.
    pub ordered: Option<Span>,
    pub steps: Vec<StepAst>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepAst {
    pub span: Span,
    pub agent: Ident,
    pub action: StepActionAst,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum StepActionAst {
    Uses(Ident),
    Invokes {
        callee: Ident,
        passing: Option<Vec<Ident>>,
    },
}

/// `agents *` or `agents a, b`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum AgentsAst {
    All(Span),
    Names(Vec<Ident>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExceptionDecl {
    pub name: Ident,
    pub entries: Vec<ExceptionEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ExceptionEntry {
    Agents { span: Span, agents: AgentsAst },
    To { span: Span, dest: DestExpr },
    Approver { span: Span, name: Ident },
    MaxTtl { span: Span, value: DurationLit },
    MaxUses { span: Span, value: NumLit },
    Audit { span: Span, dest: DestExpr },
    LegalBasis { span: Span, value: StrLit },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthorityDecl {
    pub name: Ident,
    pub entries: Vec<AuthorityEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum AuthorityEntry {
    Key { span: Span, value: StrLit },
    MaxTtl { span: Span, value: DurationLit },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ZoneDecl {
    pub name: Ident,
    pub entries: Vec<ZoneEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ZoneEntry {
    Owner {
        span: Span,
        value: StrLit,
    },
    Agents {
        span: Span,
        agents: AgentsAst,
    },
    Approve {
        span: Span,
        names: Vec<Ident>,
    },
    /// `approve grant CAP_NET_RAW, ...`: Linux capabilities the zone's agents may be granted.
    ApproveGrant {
        span: Span,
        names: Vec<Ident>,
    },
    /// `approve unix "/path", ...`: local sockets the zone's agents may use.
    ApproveUnix {
        span: Span,
        paths: Vec<StrLit>,
    },
    Clear {
        span: Span,
        class: Ident,
        to: Vec<Ident>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AssertDecl {
    pub name: Ident,
    pub claims: Vec<ClaimAst>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum AgentRef {
    All(Span),
    Named(Ident),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ClaimAst {
    Agent {
        span: Span,
        agent: AgentRef,
        can: bool,
        dest: DestExpr,
    },
    Data {
        span: Span,
        class: Ident,
        dest: DestExpr,
    },
}

/// `syscalls NAME { a, b }` and `capset NAME { CAP_A, CAP_B }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NameSetDecl {
    pub name: Ident,
    pub members: Vec<Ident>,
}
