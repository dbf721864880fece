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
    ast: ast::SourceAst,
    imports: BTreeMap<String, ImportInfo>,
    /// A hash map: looking names up is much of checking a large policy. Never iterated
    /// where order shows (see `sorted_names`).
    decls: Decls,
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
}

impl Parts {
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
        for (file, item) in bucket {
            self.build_item(file, &item, kind);
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
type Bucket = Vec<(usize, ast::Item)>;

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
            for item in std::mem::take(&mut file.ast.items) {
                let Some(kind) = item_kind(&item.kind) else {
                    continue;
                };
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
                    run.push((index, item));
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
        let parts: Vec<Builder<'_>> = runs
            .into_par_iter()
            .map(|(kind, start, run)| {
                let mut b = Builder::new(files, editor_data);
                b.base = start;
                b.cap_sets = &cap_sets;
                b.build_kind(kind, run);
                b
            })
            .collect();
        for kind in LARGE {
            let count = self.counts.get(&kind).copied().unwrap_or(0) as usize;
            main.parts.reserve(kind, count);
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
        let policy = (!has_errors).then(|| CheckedPolicy {
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
