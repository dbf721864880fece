//! The checker: load files and imports, collect declarations, resolve names, validate
//! values and build the [`CheckedPolicy`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use egress_syntax::ast::{self, DestExpr, Ident, ImportPath, ItemKind};
use egress_syntax::{diagnostic::sort_diagnostics, Diagnostic, FileId, Span};

use crate::model::*;
use crate::values;
use crate::{CheckResult, FileSource, LoadedFile, ReadError, Reference, Symbol};

mod agents;
mod asserts;
mod capabilities;
mod destinations;
mod exceptions;
mod lints;
mod modules;
mod names;
mod workflows;
mod zones;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Data,
    Destination,
    Capability,
    Agent,
    Workflow,
    Exception,
    Authority,
    Zone,
    Assert,
    Syscalls,
    CapSet,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Data => "data",
            Kind::Destination => "destination",
            Kind::Capability => "capability",
            Kind::Agent => "agent",
            Kind::Workflow => "workflow",
            Kind::Exception => "exception",
            Kind::Authority => "authority",
            Kind::Zone => "zone",
            Kind::Assert => "assert",
            Kind::Syscalls => "syscalls",
            Kind::CapSet => "capset",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Data => "data class",
            Kind::Assert => "assertion",
            Kind::Syscalls => "syscall group",
            Kind::CapSet => "capability set",
            other => other.name(),
        }
    }

    fn article(self) -> &'static str {
        match self {
            Kind::Data => "a data class",
            Kind::Destination => "a destination",
            Kind::Capability => "a capability",
            Kind::Agent => "an agent",
            Kind::Workflow => "a workflow",
            Kind::Exception => "an exception",
            Kind::Authority => "an authority",
            Kind::Zone => "a zone",
            Kind::Assert => "an assertion",
            Kind::Syscalls => "a syscall group",
            Kind::CapSet => "a capability set",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Decl {
    kind: Kind,
    index: u32,
    name_span: Span,
}

#[derive(Debug)]
struct ImportInfo {
    target: Option<usize>,
    span: Span,
    /// Set by name resolution, which runs on several threads at once.
    used: AtomicBool,
}

struct FileData {
    path: String,
    module: String,
    text: Arc<str>,
    is_stdlib: bool,
    /// The byte range of every chunk of the text (see [`Held`]).
    chunks: Vec<(u32, u32)>,
    /// The file's items, sorted by start (as the parser gives them).
    items: Vec<Held>,
    imports: BTreeMap<String, ImportInfo>,
    /// A hash map: looking names up is much of checking a large policy. Never iterated
    /// where order shows (see `sorted_names`).
    decls: Decls,
}

/// An item between loading and building. Without the model ([`Checker::keep_model`]),
/// loading reads every chunk of a file (see [`egress_syntax::parse_chunks`]) and keeps
/// only what declaring needs; an item is read again from its chunk when it is built, so
/// the whole syntax tree of a large policy is never in memory at once. With the model,
/// every item is kept whole.
enum Held {
    /// Imports and data declarations (loading and declaring read them whole), an item
    /// with a doc comment when editor data is recorded, and every item of a chunk that gave
    /// more than one (error recovery: reading such a chunk again for each of its items
    /// would cost the chunk's length per item).
    Whole(Box<ast::Item>),
    /// The only item of its chunk, read again when built.
    Head(Head),
}

/// What declaring needs of an item (offsets in its file's text).
struct Head {
    kind: Kind,
    /// The index of its chunk in [`FileData::chunks`].
    chunk: u32,
    /// Where the declared name is (its text is the file's text there).
    name: (u32, u32),
    span: (u32, u32),
}

impl Head {
    fn name_span(&self, file: usize) -> Span {
        Span::new(
            Checker::file_id(file),
            self.name.0 as usize,
            self.name.1 as usize,
        )
    }

    fn span(&self, file: usize) -> Span {
        Span::new(
            Checker::file_id(file),
            self.span.0 as usize,
            self.span.1 as usize,
        )
    }
}

impl Held {
    fn start(&self) -> u32 {
        match self {
            Held::Whole(item) => item.span.start,
            Held::Head(head) => head.span.0,
        }
    }

    fn kind(&self) -> Option<Kind> {
        match self {
            Held::Whole(item) => item_kind(&item.kind),
            Held::Head(head) => Some(head.kind),
        }
    }

    /// Pushes onto `out` what to keep of the items of one chunk of `text`; `docs`: keep
    /// doc comments (for the editor data).
    fn of_chunk(
        text: &str,
        chunk: usize,
        items: &mut Vec<ast::Item>,
        docs: bool,
        out: &mut Vec<Held>,
    ) {
        if items.len() == 1 {
            if let Some(item) = items.pop() {
                let kind = match &item.kind {
                    ItemKind::Import(_) | ItemKind::Data(_) => None,
                    _ if docs && item.doc.is_some() => None,
                    other => item_kind(other),
                };
                // A name whose text is not the file's text at its span is kept whole
                // (never expected: declared names are read as written).
                let head = kind.zip(item.name()).and_then(|(kind, name)| {
                    (text.get(name.span.range()) == Some(name.text.as_str())).then_some(Head {
                        kind,
                        chunk: u32::try_from(chunk).unwrap_or(u32::MAX),
                        name: (name.span.start, name.span.end),
                        span: (item.span.start, item.span.end),
                    })
                });
                out.push(match head {
                    Some(head) => Held::Head(head),
                    None => Held::Whole(Box::new(item)),
                });
                return;
            }
        }
        out.extend(items.drain(..).map(|i| Held::Whole(Box::new(i))));
    }
}

/// A module's declarations by name. foldhash (seeded per process, as hashbrown's default
/// hasher is) instead of SipHash: looking names up is much of checking.
type Decls = HashMap<String, Decl, foldhash::fast::RandomState>;

pub(crate) struct Checker<'s> {
    source: &'s dyn FileSource,
    files: Vec<FileData>,
    by_path: BTreeMap<String, usize>,
    /// Files that could not be read (kept so diagnostics can point at them).
    unreadable: BTreeSet<usize>,
    diagnostics: Vec<Diagnostic>,
    references: Vec<Reference>,
    symbols: Vec<Symbol>,
    /// Record `symbols` and `references` (editors ask for them; the command line does not).
    editor_data: bool,
    /// Keep the model to make a policy of. Without it (`egc check`, which wants only the
    /// diagnostics), each run of a large kind is dropped once built, keeping only what the
    /// checks after the runs read: the same diagnostics, in far less memory.
    pub(crate) keep_model: bool,
    /// Import edges (from, to, span of the import).
    edges: Vec<(usize, usize, Span)>,
    counts: BTreeMap<Kind, u32>,
    /// The model under construction.
    parts: Parts,
    /// Destinations used as allowlists, with the span of one use.
    allowlist_uses: BTreeMap<DestId, Span>,
}

/// Build order of the kinds: named destinations first, so their ids match their
/// collection order (inline destinations of exceptions and assertions come after).
/// Diagnostics and references are reported in this order.
const ORDER: [Kind; 11] = [
    Kind::Data,
    Kind::Destination,
    Kind::Syscalls,
    Kind::CapSet,
    Kind::Authority,
    Kind::Capability,
    Kind::Agent,
    Kind::Workflow,
    Kind::Exception,
    Kind::Zone,
    Kind::Assert,
];

/// The model's items, by kind, as they are built.
#[derive(Default)]
struct Parts {
    data_classes: Vec<DataClass>,
    destinations: Vec<Destination>,
    capabilities: Vec<Capability>,
    agents: Vec<Agent>,
    workflows: Vec<Workflow>,
    exceptions: Vec<Exception>,
    authorities: Vec<Authority>,
    zones: Vec<Zone>,
    syscall_groups: Vec<SyscallGroup>,
    cap_sets: Vec<CapSet>,
    asserts: Vec<Assertion>,
    /// What is left of the large kinds' items dropped once built (a check that keeps no
    /// model: [`Checker::keep_model`]).
    dropped: Dropped,
}

/// The items of the large kinds a check that keeps no model drops once a run is built:
/// how many (they come before the kept ones of their kind: ids go on from them), and
/// what the checks after the runs read of them. Those checks read items through
/// [`Parts`]' accessors, the same for a dropped item as for a kept one.
#[derive(Default)]
struct Dropped {
    destinations: usize,
    capabilities: usize,
    agents: usize,
    zones: usize,
    /// The destinations that would be reported if used as allowlists (by id; rare).
    risky_destinations: Vec<Destination>,
    /// The capabilities limited to workflows (by id; rare).
    limited_capabilities: Vec<Capability>,
    /// Every dropped agent's name span, capabilities and callees, by id.
    agents_seen: Vec<AgentSeen>,
}

/// Item `index` of a kind whose first `dropped` items were dropped: from `kept` (the
/// items after them), or from `still` (the dropped ones some check reads, by id).
fn kept_or_dropped<'a, T>(
    kept: &'a [T],
    dropped: usize,
    still: &'a [T],
    index: usize,
    id: impl Fn(&T) -> usize,
) -> Option<&'a T> {
    match index.checked_sub(dropped) {
        Some(at) => kept.get(at),
        None => still
            .binary_search_by_key(&index, id)
            .ok()
            .and_then(|at| still.get(at)),
    }
}

/// What the checks after the runs read of an agent: workflow steps (E0037, E0038),
/// exceptions for `agents *`, and W0004.
struct AgentSeen {
    name: Span,
    capabilities: Box<[Ref<CapId>]>,
    callees: Box<[AgentId]>,
}

impl Parts {
    /// How many items of `kind` have been built (kept or dropped).
    fn len(&self, kind: Kind) -> usize {
        let d = &self.dropped;
        match kind {
            Kind::Data => self.data_classes.len(),
            Kind::Destination => d.destinations + self.destinations.len(),
            Kind::Capability => d.capabilities + self.capabilities.len(),
            Kind::Agent => d.agents + self.agents.len(),
            Kind::Workflow => self.workflows.len(),
            Kind::Exception => self.exceptions.len(),
            Kind::Authority => self.authorities.len(),
            Kind::Zone => d.zones + self.zones.len(),
            Kind::Syscalls => self.syscall_groups.len(),
            Kind::CapSet => self.cap_sets.len(),
            Kind::Assert => self.asserts.len(),
        }
    }

    /// Drops the built items of `kind` (a large kind), keeping what the checks after the
    /// runs read of them.
    fn drop_built(&mut self, kind: Kind) {
        let d = &mut self.dropped;
        match kind {
            Kind::Destination => {
                for dest in std::mem::take(&mut self.destinations) {
                    d.destinations += 1;
                    if lints::allowlist_risks(&dest).next().is_some() {
                        d.risky_destinations.push(dest);
                    }
                }
            }
            Kind::Capability => {
                for cap in std::mem::take(&mut self.capabilities) {
                    d.capabilities += 1;
                    if !cap.workflows.is_empty() {
                        d.limited_capabilities.push(cap);
                    }
                }
            }
            Kind::Agent => {
                for agent in std::mem::take(&mut self.agents) {
                    d.agents += 1;
                    d.agents_seen.push(AgentSeen {
                        name: agent.name.span,
                        capabilities: agent.capabilities.into_boxed_slice(),
                        callees: agent.invokes.iter().map(|i| i.callee).collect(),
                    });
                }
            }
            Kind::Zone => {
                d.zones += self.zones.len();
                self.zones = Vec::new();
            }
            _ => {}
        }
    }

    /// A destination, kept or dropped (`None` for a dropped one no check reads).
    fn destination(&self, id: DestId) -> Option<&Destination> {
        let d = &self.dropped;
        kept_or_dropped(
            &self.destinations,
            d.destinations,
            &d.risky_destinations,
            id.index(),
            |x| x.id.index(),
        )
    }

    /// A capability, kept or dropped (`None` for a dropped one not limited to workflows,
    /// the only ones a check reads).
    fn capability(&self, id: CapId) -> Option<&Capability> {
        let d = &self.dropped;
        kept_or_dropped(
            &self.capabilities,
            d.capabilities,
            &d.limited_capabilities,
            id.index(),
            |x| x.id.index(),
        )
    }

    /// An agent's name span and capabilities, kept or dropped.
    fn agent_uses(&self, id: AgentId) -> Option<(Span, &[Ref<CapId>])> {
        let dropped = self.dropped.agents;
        match id.index().checked_sub(dropped) {
            Some(kept) => self
                .agents
                .get(kept)
                .map(|a| (a.name.span, a.capabilities.as_slice())),
            None => self
                .dropped
                .agents_seen
                .get(id.index())
                .map(|a| (a.name, &a.capabilities[..])),
        }
    }

    /// Whether agent `id` (kept or dropped) declares `invokes callee`.
    fn may_invoke(&self, id: AgentId, callee: AgentId) -> bool {
        let dropped = self.dropped.agents;
        match id.index().checked_sub(dropped) {
            Some(kept) => self
                .agents
                .get(kept)
                .is_some_and(|a| a.invokes.iter().any(|i| i.callee == callee)),
            None => self
                .dropped
                .agents_seen
                .get(id.index())
                .is_some_and(|a| a.callees.contains(&callee)),
        }
    }

    /// Every agent's id, name span and capabilities, in id order. An agent's id is its
    /// place among the built agents (kept or dropped): every agent item builds exactly one
    /// model agent (see [`Builder::base`]).
    fn each_agent_uses(&self) -> impl Iterator<Item = (AgentId, Span, &[Ref<CapId>])> {
        let dropped = self
            .dropped
            .agents_seen
            .iter()
            .map(|a| (a.name, &a.capabilities[..]));
        let kept = self
            .agents
            .iter()
            .map(|a| (a.name.span, a.capabilities.as_slice()));
        dropped
            .chain(kept)
            .enumerate()
            .map(|(i, (span, caps))| (AgentId(u32::try_from(i).unwrap_or(u32::MAX)), span, caps))
    }

    /// Room for `n` more items of `kind`.
    fn reserve(&mut self, kind: Kind, n: usize) {
        match kind {
            Kind::Data => self.data_classes.reserve(n),
            Kind::Destination => self.destinations.reserve(n),
            Kind::Capability => self.capabilities.reserve(n),
            Kind::Agent => self.agents.reserve(n),
            Kind::Workflow => self.workflows.reserve(n),
            Kind::Exception => self.exceptions.reserve(n),
            Kind::Authority => self.authorities.reserve(n),
            Kind::Zone => self.zones.reserve(n),
            Kind::Syscalls => self.syscall_groups.reserve(n),
            Kind::CapSet => self.cap_sets.reserve(n),
            Kind::Assert => self.asserts.reserve(n),
        }
    }

    /// Moves the items of `kind` from `other` to the end of this one's.
    fn append(&mut self, kind: Kind, other: &mut Parts) {
        match kind {
            Kind::Data => self.data_classes.append(&mut other.data_classes),
            Kind::Destination => self.destinations.append(&mut other.destinations),
            Kind::Capability => self.capabilities.append(&mut other.capabilities),
            Kind::Agent => self.agents.append(&mut other.agents),
            Kind::Workflow => self.workflows.append(&mut other.workflows),
            Kind::Exception => self.exceptions.append(&mut other.exceptions),
            Kind::Authority => self.authorities.append(&mut other.authorities),
            Kind::Zone => self.zones.append(&mut other.zones),
            Kind::Syscalls => self.syscall_groups.append(&mut other.syscall_groups),
            Kind::CapSet => self.cap_sets.append(&mut other.cap_sets),
            Kind::Assert => self.asserts.append(&mut other.asserts),
        }
        // What `other` dropped of the kind comes before what it kept (and after what
        // this one has: runs are gathered in order, and a check drops all or none).
        let (d, o) = (&mut self.dropped, &mut other.dropped);
        match kind {
            Kind::Destination => {
                d.destinations += std::mem::take(&mut o.destinations);
                d.risky_destinations.append(&mut o.risky_destinations);
            }
            Kind::Capability => {
                d.capabilities += std::mem::take(&mut o.capabilities);
                d.limited_capabilities.append(&mut o.limited_capabilities);
            }
            Kind::Agent => {
                d.agents += std::mem::take(&mut o.agents);
                d.agents_seen.append(&mut o.agents_seen);
            }
            Kind::Zone => d.zones += std::mem::take(&mut o.zones),
            _ => {}
        }
    }
}

/// Builds model items from their syntax. Reads the files (declarations, imports) and
/// writes only its own model vectors, diagnostics, references and allowlist uses, so
/// several build different kinds at once; [`Checker::build`] gathers them in [`ORDER`].
pub(super) struct Builder<'f> {
    files: &'f [FileData],
    editor_data: bool,
    diagnostics: Vec<Diagnostic>,
    references: Vec<Reference>,
    /// Destinations used as allowlists, with the span of one use (of the kind being built).
    allowlist_uses_now: BTreeMap<DestId, Span>,
    /// Per kind built: its diagnostics and references.
    segments: Vec<(Kind, Vec<Diagnostic>, Vec<Reference>)>,
    /// Per kind built: its allowlist uses.
    allowlist_uses: Vec<(Kind, BTreeMap<DestId, Span>)>,
    parts: Parts,
    /// The capability sets, built before the capabilities that name them and shared by
    /// every builder of capabilities (read only).
    cap_sets: &'f [CapSet],
    /// The id of the first item this builder builds of its kind: a large kind is built in
    /// runs by several builders, each numbering from where the run starts. Right because
    /// every item of a large kind builds exactly one model item, or reports an error (a
    /// zone without `agents`), and then no policy comes out of the check.
    base: usize,
}

impl<'f> Builder<'f> {
    fn new(files: &'f [FileData], editor_data: bool) -> Builder<'f> {
        Builder {
            files,
            editor_data,
            diagnostics: Vec::new(),
            references: Vec::new(),
            allowlist_uses_now: BTreeMap::new(),
            segments: Vec::new(),
            allowlist_uses: Vec::new(),
            parts: Parts::default(),
            cap_sets: &[],
            base: 0,
        }
    }

    /// The id of the next item of this builder's kind, `len` of which it has built.
    fn next_id(&self, len: usize) -> u32 {
        u32::try_from(self.base + len).unwrap_or(u32::MAX)
    }

    /// Builds every item of one kind, then files what it reported under the kind.
    fn build_kind(&mut self, kind: Kind, bucket: Bucket) {
        // Room for the bucket at once: growing a model's vector item by item copies it
        // and touches fresh memory at every doubling (a large part of checking a big
        // policy).
        self.parts.reserve(kind, bucket.len());
        // Each item is dropped once built, on the builder's core.
        for (file, held) in bucket {
            let file = file as usize;
            match held {
                Held::Whole(item) => self.build_item(file, &item, kind),
                Held::Head(head) => self.build_head(file, &head, kind),
            }
        }
        let diagnostics = std::mem::take(&mut self.diagnostics);
        let references = std::mem::take(&mut self.references);
        self.segments.push((kind, diagnostics, references));
        let uses = std::mem::take(&mut self.allowlist_uses_now);
        self.allowlist_uses.push((kind, uses));
    }

    /// Takes over what `other` built, kind by kind (the kinds this builder has not
    /// built; what `other` was only given to read, such as capability sets, stays).
    fn absorb(&mut self, mut other: Builder<'_>) {
        for (kind, _, _) in &other.segments {
            self.parts.append(*kind, &mut other.parts);
        }
        self.segments.append(&mut other.segments);
        self.allowlist_uses.append(&mut other.allowlist_uses);
    }

    fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn duplicate_entry(&mut self, span: Span, first: Span, what: &str) {
        self.error(
            Diagnostic::error("E0016", span, format!("`{what}` is given more than once"))
                .with_label("repeated entry")
                .with_secondary(first, "first given here")
                .with_help(format!("give `{what}` once")),
        );
    }

    fn missing_entry(&mut self, span: Span, item: &str, what: &str, help: &str) {
        self.error(
            Diagnostic::error("E0017", span, format!("{item} is missing `{what}`"))
                .with_label(format!("needs `{what}`"))
                .with_help(help.to_string()),
        );
    }

    /// Reads a held item again from its chunk and builds it.
    fn build_head(&mut self, file: usize, head: &Head, kind: Kind) {
        let item = self.files.get(file).and_then(|f| {
            let chunk = f.chunks.get(head.chunk as usize)?;
            let range = (chunk.0 as usize, chunk.1 as usize);
            let mut items = egress_syntax::parse_chunk(Checker::file_id(file), &f.text, range);
            (items.len() == 1).then(|| items.pop()).flatten()
        });
        let span = head.span(file);
        match item {
            Some(item) if item.span == span => self.build_item(file, &item, kind),
            // Never expected (parsing a chunk again gives what it gave): no policy is
            // built from an item that was not read.
            _ => self.error(
                Diagnostic::error("E0001", span, "this item could not be read a second time")
                    .with_label("read differently on the second pass")
                    .with_help("this is a bug in egc; please report it with the file"),
            ),
        }
    }

    fn build_item(&mut self, file: usize, item: &ast::Item, kind: Kind) {
        let doc = item.doc.clone();
        match (&item.kind, kind) {
            (ItemKind::Data(d), Kind::Data) => {
                for name in &d.names {
                    let id = DataClassId(
                        u32::try_from(self.parts.data_classes.len()).unwrap_or(u32::MAX),
                    );
                    self.parts.data_classes.push(DataClass {
                        id,
                        name: self.name(file, name),
                        span: item.span,
                        doc: doc.clone(),
                    });
                }
            }
            (ItemKind::Destination(d), Kind::Destination) => {
                let name = self.name(file, &d.name);
                self.destination(name, &d.body, item.span, doc, false);
            }
            (ItemKind::Syscalls(d), Kind::Syscalls) => self.syscall_group(file, d, item.span, doc),
            (ItemKind::CapSet(d), Kind::CapSet) => self.cap_set(file, d, item.span, doc),
            (ItemKind::Authority(d), Kind::Authority) => self.authority(file, d, item.span, doc),
            (ItemKind::Capability(d), Kind::Capability) => self.capability(file, d, item.span, doc),
            (ItemKind::Agent(d), Kind::Agent) => self.agent(file, d, item.span, doc),
            (ItemKind::Workflow(d), Kind::Workflow) => self.workflow(file, d, item.span, doc),
            (ItemKind::Exception(d), Kind::Exception) => self.exception(file, d, item.span, doc),
            (ItemKind::Zone(d), Kind::Zone) => self.zone(file, d, item.span, doc),
            (ItemKind::Assert(d), Kind::Assert) => self.assertion(file, d, item.span, doc),
            _ => {}
        }
    }
}

/// How many items of a large kind one builder builds (several build at once).
const RUN: usize = 2048;

/// The kinds built in runs, on every core.
const LARGE: [Kind; 4] = [Kind::Destination, Kind::Capability, Kind::Agent, Kind::Zone];

/// Items of one kind to build, each with the index of its file.
type Bucket = Vec<(u32, Held)>;

/// The kind an item declares (`None` for an import).
fn item_kind(kind: &ItemKind) -> Option<Kind> {
    Some(match kind {
        ItemKind::Import(_) => return None,
        ItemKind::Data(_) => Kind::Data,
        ItemKind::Destination(_) => Kind::Destination,
        ItemKind::Capability(_) => Kind::Capability,
        ItemKind::Agent(_) => Kind::Agent,
        ItemKind::Workflow(_) => Kind::Workflow,
        ItemKind::Exception(_) => Kind::Exception,
        ItemKind::Authority(_) => Kind::Authority,
        ItemKind::Zone(_) => Kind::Zone,
        ItemKind::Assert(_) => Kind::Assert,
        ItemKind::Syscalls(_) => Kind::Syscalls,
        ItemKind::CapSet(_) => Kind::CapSet,
    })
}

const STD_PREFIX: &str = "std/";

impl<'s> Checker<'s> {
    pub(crate) fn new(source: &'s dyn FileSource, editor_data: bool) -> Self {
        Checker {
            source,
            editor_data,
            keep_model: true,
            files: Vec::new(),
            by_path: BTreeMap::new(),
            unreadable: BTreeSet::new(),
            diagnostics: Vec::new(),
            references: Vec::new(),
            symbols: Vec::new(),
            edges: Vec::new(),
            counts: BTreeMap::new(),
            parts: Parts::default(),
            allowlist_uses: BTreeMap::new(),
        }
    }

    fn file_id(index: usize) -> FileId {
        FileId(u32::try_from(index).unwrap_or(u32::MAX))
    }

    pub(crate) fn build(&mut self) {
        self.build_in_runs(RUN);
    }

    /// [`Checker::build`] with the large kinds in runs of at most `run` items (any size
    /// gives the same result: `tests::runs_change_nothing`).
    pub(crate) fn build_in_runs(&mut self, run: usize) {
        let run_len = run.max(1);
        // The items are moved out of the files (nothing reads the AST after this),
        // bucketed by kind in (file, item) order, and each is dropped once built. A large
        // kind's bucket is cut into runs of at most `run_len` items as it is filled; each
        // run is sized at once (from the declarations counted).
        let limit = |kind: Kind| {
            if LARGE.contains(&kind) {
                run_len
            } else {
                usize::MAX
            }
        };
        let mut buckets: Vec<Vec<Bucket>> = ORDER.iter().map(|_| Vec::new()).collect();
        for (index, file) in self.files.iter_mut().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            for held in std::mem::take(&mut file.items) {
                let Some(kind) = held.kind() else {
                    continue;
                };
                let item = (index, held);
                let Some(runs) = ORDER
                    .iter()
                    .position(|k| *k == kind)
                    .and_then(|position| buckets.get_mut(position))
                else {
                    continue;
                };
                let limit = limit(kind);
                if runs.last().is_none_or(|run| run.len() >= limit) {
                    let count = self.counts.get(&kind).copied().unwrap_or(0) as usize;
                    let left = count.saturating_sub(runs.len().saturating_mul(limit));
                    runs.push(Vec::with_capacity(left.min(limit)));
                }
                if let Some(run) = runs.last_mut() {
                    run.push(item);
                }
            }
        }
        // A small kind's bucket is one run.
        let whole = |mut runs: Vec<Bucket>| -> Bucket {
            if runs.len() <= 1 {
                runs.pop().unwrap_or_default()
            } else {
                runs.into_iter().flatten().collect()
            }
        };
        let mut take = |kind: Kind| -> Vec<Bucket> {
            ORDER
                .iter()
                .position(|k| *k == kind)
                .and_then(|i| buckets.get_mut(i))
                .map(std::mem::take)
                .unwrap_or_default()
        };
        // The small kinds first, then the large ones at once, each by its own builder from
        // empty vectors, so their ids are those of a build one by one (an item's id is
        // its place in its kind); capabilities read the capability sets. Then workflows
        // (which read agents), exceptions (agents, authorities, and inline destinations
        // after the named ones) and assertions (inline destinations), on the builder that
        // gathers the rest.
        let (files, editor_data) = (self.files.as_slice(), self.editor_data);
        let mut main = Builder::new(files, editor_data);
        for kind in [Kind::Data, Kind::Syscalls, Kind::CapSet, Kind::Authority] {
            main.build_kind(kind, whole(take(kind)));
        }
        // The large kinds' runs, each by its own builder numbering from where its run
        // starts; gathered in order, a run's items, diagnostics, references and allowlist
        // uses follow the run before it, as in one build.
        let mut runs: Vec<(Kind, usize, Bucket)> = Vec::new();
        for kind in LARGE {
            let kind_runs = take(kind);
            if kind_runs.is_empty() {
                runs.push((kind, 0, Vec::new()));
            }
            for (i, run) in kind_runs.into_iter().enumerate() {
                runs.push((kind, i * run_len, run));
            }
        }
        // Every builder reads the capability sets in place (a copy per run would grow
        // with sets × capabilities); they go back to `main` once the runs are gathered.
        let cap_sets = std::mem::take(&mut main.parts.cap_sets);
        let keep_model = self.keep_model;
        let parts: Vec<Builder<'_>> = runs
            .into_par_iter()
            .map(|(kind, start, run)| {
                let mut b = Builder::new(files, editor_data);
                b.base = start;
                b.cap_sets = &cap_sets;
                b.build_kind(kind, run);
                if !keep_model {
                    b.parts.drop_built(kind);
                }
                b
            })
            .collect();
        if keep_model {
            for kind in LARGE {
                let count = self.counts.get(&kind).copied().unwrap_or(0) as usize;
                main.parts.reserve(kind, count);
            }
        }
        for part in parts {
            main.absorb(part);
        }
        main.parts.cap_sets = cap_sets;
        for kind in [Kind::Workflow, Kind::Exception, Kind::Assert] {
            main.build_kind(kind, whole(take(kind)));
        }
        // Diagnostics and references in the order of a build one kind after another.
        let mut segments = main.segments;
        segments.sort_by_key(|(kind, _, _)| ORDER.iter().position(|k| k == kind));
        for (_, diagnostics, references) in segments {
            self.diagnostics.extend(diagnostics);
            self.references.extend(references);
        }
        // The first use of a destination as an allowlist, in that order too.
        let mut uses = main.allowlist_uses;
        uses.sort_by_key(|(kind, _)| ORDER.iter().position(|k| k == kind));
        for (_, map) in uses {
            for (dest, span) in map {
                self.allowlist_uses.entry(dest).or_insert(span);
            }
        }
        self.parts = main.parts;
        self.check_workflow_limits();
        self.check_allowlists();
        self.check_unused_imports();
    }

    pub(crate) fn finish(mut self) -> CheckResult {
        sort_diagnostics(&mut self.diagnostics);
        let files: Vec<LoadedFile> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                LoadedFile::new(
                    Self::file_id(i),
                    f.path.clone(),
                    f.text.clone(),
                    f.is_stdlib,
                )
            })
            .collect();
        let has_errors = self.diagnostics.iter().any(|d| d.is_error());
        let policy = (!has_errors && self.keep_model).then(|| CheckedPolicy {
            files: self
                .files
                .iter()
                .enumerate()
                .map(|(i, f)| SourceFile {
                    id: Self::file_id(i),
                    path: f.path.clone(),
                    module: f.module.clone(),
                    is_stdlib: f.is_stdlib,
                })
                .collect(),
            data_classes: std::mem::take(&mut self.parts.data_classes),
            destinations: std::mem::take(&mut self.parts.destinations),
            capabilities: std::mem::take(&mut self.parts.capabilities),
            agents: std::mem::take(&mut self.parts.agents),
            workflows: std::mem::take(&mut self.parts.workflows),
            exceptions: std::mem::take(&mut self.parts.exceptions),
            authorities: std::mem::take(&mut self.parts.authorities),
            zones: std::mem::take(&mut self.parts.zones),
            syscall_groups: std::mem::take(&mut self.parts.syscall_groups),
            cap_sets: std::mem::take(&mut self.parts.cap_sets),
            asserts: std::mem::take(&mut self.parts.asserts),
            _sealed: Sealed::default(),
        });
        self.symbols
            .sort_by(|a, b| (a.name_span, &a.qualified).cmp(&(b.name_span, &b.qualified)));
        self.references.sort_by_key(|a| (a.span, a.target));
        self.references.dedup();
        CheckResult {
            files,
            diagnostics: self.diagnostics,
            policy,
            symbols: self.symbols,
            references: self.references,
        }
    }
}
