//! The properties, checked per agent in parallel, with every counterexample replayed
//! through the concrete evaluator before it is reported.
//!
//! This module is the driver: the configuration, the shared context (`Ctx`: routes,
//! approvals, clearances and the decider; approvals are built when first asked for, and
//! clearances for the agents a run checks, so an incremental run builds only what the
//! agents it re-verifies need), the per-agent and per-exception
//! parallel loops and the assembly of the [`Report`]. Each property is its own module
//! (`egress_approved`, `data_clearance`, `exception_gated`, `layers_consistent`,
//! `no_metadata`, `no_unspecified`, `asserts`, `within`), and the warnings are apart
//! (`warnings`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use egress_check::{
    AgentId, AgentSel, CheckedPolicy, ClaimKind, DataClassId, DestId, Diagnostic, LinuxCap, Span,
    ZoneId, MAX_EXCEPTION_TTL_SECS,
};
use rayon::prelude::*;

use crate::decide::{Answer, Decider, Engine};
use crate::eval::{
    self, agent_node, describe_destination, dest_node, format_duration, Route, RouteIndex,
};
use crate::graph::{Provenance, ReachGraph};
use crate::incremental::{self, Memo};
use crate::report::*;
use crate::sets::{
    all_ports, destination_boxes, metadata_addresses, unspecified_addresses, BoxIndex, ConnBox,
    Connection, ProtoSet, TargetSet, DEFAULT_BUDGET,
};

/// How to verify.
#[derive(Clone, Debug)]
pub struct VerifyConfig {
    /// Z3's time limit per question, in milliseconds. A question it cannot decide in time
    /// makes its property `unknown`, never `verified`.
    pub timeout_ms: u64,
    pub engine: Engine,
    /// Steps the exact host search may take before it hands a question to Z3.
    pub budget: usize,
    /// Also report warnings (unused capabilities, redundant rules, unused approvals).
    pub warnings: bool,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            timeout_ms: 10_000,
            engine: Engine::Fast,
            budget: DEFAULT_BUDGET,
            warnings: true,
        }
    }
}

/// Syscalls that create or address network sockets. io_uring is here because its
/// `IORING_OP_SOCKET`/`IORING_OP_CONNECT`/`IORING_OP_SENDMSG` open connections without
/// the syscalls themselves.
pub const NETWORK_SYSCALLS: &[&str] = &[
    "connect",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "socket",
    "socketcall",
];

/// The network syscalls an agent that names local sockets needs for them: with no
/// network route, the seccomp profile lets `socket` create `AF_UNIX` sockets only, so
/// these reach no network. (`socketcall` and io_uring stay network syscalls: neither is
/// filtered by family.)
pub const UNIX_SOCKET_SYSCALLS: &[&str] = &["connect", "sendmmsg", "sendmsg", "sendto", "socket"];

enum Finding {
    Violation(Violation),
    Unknown {
        property: Property,
        reason: String,
        span: Span,
    },
}

/// A union of destinations, by id and as indexed boxes.
#[derive(Default)]
struct Allowed {
    dests: BTreeSet<DestId>,
    index: BoxIndex,
}

impl Allowed {
    fn new(ids: impl IntoIterator<Item = DestId>, dest_boxes: &[Vec<ConnBox>]) -> Allowed {
        let dests: BTreeSet<DestId> = ids.into_iter().collect();
        let boxes = dests
            .iter()
            .filter_map(|d| dest_boxes.get(d.index()))
            .flat_map(|b| b.iter().cloned())
            .collect();
        Allowed {
            dests,
            index: BoxIndex::new(boxes),
        }
    }
    fn relevant(&self, b: &ConnBox) -> Vec<&ConnBox> {
        self.index.candidates(b)
    }
}

/// Which destinations of a set may contain, or meet, a given one: the boxes of the set in
/// one index, each box mapped back to the destinations it belongs to.
struct ContainmentPartners {
    index: BoxIndex,
    owners: BTreeMap<ConnBox, BTreeSet<DestId>>,
}

impl ContainmentPartners {
    fn new(dests: impl IntoIterator<Item = DestId>, dest_boxes: &[Vec<ConnBox>]) -> Self {
        let mut owners: BTreeMap<ConnBox, BTreeSet<DestId>> = BTreeMap::new();
        for d in dests {
            for b in dest_boxes.get(d.index()).map(Vec::as_slice).unwrap_or(&[]) {
                owners.entry(b.clone()).or_default().insert(d);
            }
        }
        ContainmentPartners {
            index: BoxIndex::new(owners.keys().cloned().collect()),
            owners,
        }
    }

    /// The destinations with a box that may intersect one of `dest`'s boxes.
    fn near(&self, dest: DestId, dest_boxes: &[Vec<ConnBox>]) -> BTreeSet<DestId> {
        let mut out = BTreeSet::new();
        for b in dest_boxes
            .get(dest.index())
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            for candidate in self.index.candidates(b) {
                if let Some(ds) = self.owners.get(candidate) {
                    out.extend(ds.iter().copied());
                }
            }
        }
        out
    }

    /// The destinations that may contain `dest`: those near every non-empty box of it.
    /// `None` when `dest` has no non-empty box (it lies inside anything).
    fn of(&self, dest: DestId, dest_boxes: &[Vec<ConnBox>]) -> Option<BTreeSet<DestId>> {
        let mut result: Option<BTreeSet<DestId>> = None;
        for b in dest_boxes
            .get(dest.index())
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if b.is_empty() {
                continue;
            }
            let mut here = BTreeSet::new();
            for candidate in self.index.candidates(b) {
                if let Some(ds) = self.owners.get(candidate) {
                    here.extend(ds.iter().copied());
                }
            }
            result = Some(match result {
                None => here,
                Some(previous) => previous.intersection(&here).copied().collect(),
            });
        }
        result
    }
}

/// Where a list of zones clears a data class.
fn clearance_of(
    policy: &CheckedPolicy,
    zones: &[ZoneId],
    class: DataClassId,
    dest_boxes: &[Vec<ConnBox>],
) -> Allowed {
    Allowed::new(
        zones
            .iter()
            .filter_map(|z| policy.zone(*z))
            .flat_map(|z| z.clearances.iter())
            .filter(|c| c.class.id == class)
            .flat_map(|c| c.to.iter().map(|r| r.id)),
        dest_boxes,
    )
}

/// A clearance: shared by a zone set, or built for one question.
enum Cleared<'a> {
    Shared(&'a Allowed),
    Built(Allowed),
}

impl Cleared<'_> {
    fn get(&self) -> &Allowed {
        match self {
            Cleared::Shared(a) => a,
            Cleared::Built(a) => a,
        }
    }
}

struct Ctx<'p> {
    policy: &'p CheckedPolicy,
    decider: Decider,
    /// Answers the warnings' questions: the set algebra (Z3 only where its search runs
    /// out of budget), whatever `--engine` says. Warnings prove nothing; the engine
    /// choice is for the properties.
    lints: Decider,
    dest_boxes: Vec<Vec<ConnBox>>,
    index: RouteIndex,
    graph: ReachGraph,
    /// Per agent: index into `approvals`.
    zone_set_of: Vec<usize>,
    zone_sets: Vec<Vec<ZoneId>>,
    /// Per zone set, built when first asked for (an incremental run asks only for the
    /// zone sets of the agents it re-verifies).
    approvals: Vec<OnceLock<Allowed>>,
    /// Per (index into `zone_sets`, data class held by an agent of that zone set): where
    /// the zones clear the class, built once for the agents this run checks
    /// ([`Ctx::prepare_clearances`]) and shared by every such agent.
    clearances: HashMap<(usize, DataClassId), Allowed>,
    /// The zones of each agent, computed by the concrete evaluator, for replay.
    zone_index: eval::ZoneIndex,
    /// Concrete holdings, computed independently of the graph, for replay (when a
    /// witness is first replayed).
    concrete_holdings: OnceLock<Vec<BTreeSet<DataClassId>>>,
    metadata: ConnBox,
    unspecified: ConnBox,
}

mod asserts;
mod data_clearance;
mod egress_approved;
mod exception_gated;
mod layers_consistent;
mod no_metadata;
mod no_unspecified;
mod warnings;
mod within;

pub use warnings::{
    warning_title, W_REDUNDANT_CONNECT, W_UNKNOWN, W_UNUSED_APPROVAL, W_UNUSED_CAPABILITY,
};

/// Verifies every property of a checked policy.
pub fn verify(policy: &CheckedPolicy, config: &VerifyConfig) -> Report {
    verify_inner(policy, None, config, None).0
}

/// Verifies every property of a checked policy, and `within-boundary`: everything every
/// agent can reach (directly, in workflows, through exceptions at their widest, and the
/// data it holds by delegation) lies inside the boundary policy.
pub fn verify_within(
    policy: &CheckedPolicy,
    boundary: &CheckedPolicy,
    config: &VerifyConfig,
) -> Report {
    verify_inner(policy, Some(boundary), config, None).0
}

/// [`verify`] (or, with a boundary, [`verify_within`]) reusing what an earlier run proved:
/// an agent whose key is in `memo` found nothing on exactly these inputs and is not
/// checked again (see [`crate::incremental`] for what a key covers). Returns the report,
/// whose properties, violations and warnings are those a run without a memo gives (its
/// `stats` say how many agents were remembered), and the memo of this run: the keys of
/// every agent check and zone warning that found nothing. One caveat: Z3's time limit is
/// wall-clock time, so a question decided in time by the run that was remembered might
/// not be by a run under heavier load (it would say `unknown`, never `violated`).
pub fn verify_incremental(
    policy: &CheckedPolicy,
    boundary: Option<&CheckedPolicy>,
    config: &VerifyConfig,
    memo: &Memo,
) -> (Report, Memo) {
    let (report, next) = verify_inner(policy, boundary, config, Some(memo));
    (report, next.unwrap_or_default())
}

fn verify_inner(
    policy: &CheckedPolicy,
    boundary: Option<&CheckedPolicy>,
    config: &VerifyConfig,
    memo: Option<&Memo>,
) -> (Report, Option<Memo>) {
    // The deep fingerprints need only the policy: they are computed while the context
    // is built.
    let (mut ctx, deep) = rayon::join(
        || Ctx::new(policy, config),
        || memo.map(|_| incremental::Deep::new(policy)),
    );
    let keys = deep.map(|deep| {
        let lists: Vec<&[ZoneId]> = policy.agents.iter().map(|a| ctx.zone_list(a.id)).collect();
        incremental::fingerprints(policy, &deep, &ctx.graph, &lists, config)
    });
    let remembered = |key: Option<&incremental::Key>| match (memo, key) {
        (Some(memo), Some(key)) => memo.contains(key),
        _ => false,
    };
    let agent_ids: Vec<AgentId> = policy
        .agents
        .iter()
        .map(|a| a.id)
        .filter(|a| !remembered(keys.as_ref().and_then(|k| k.agents.get(a.index()))))
        .collect();
    let cached = policy.agents.len() - agent_ids.len();
    ctx.prepare_clearances(&agent_ids);
    let per_agent: Vec<Vec<Finding>> = agent_ids.par_iter().map(|a| ctx.check_agent(*a)).collect();
    // The keys of the next memo, gathered, then sorted into it at once.
    let mut next: Option<Vec<incremental::Key>> = memo.map(|_| Vec::new());
    if let (Some(next), Some(keys)) = (next.as_mut(), keys.as_ref()) {
        for (a, found) in agent_ids.iter().zip(&per_agent) {
            if found.is_empty() {
                if let Some(k) = keys.agents.get(a.index()) {
                    next.push(*k);
                }
            }
        }
        // What was remembered and not re-checked still holds.
        for a in &policy.agents {
            if let Some(k) = keys.agents.get(a.id.index()) {
                if remembered(Some(k)) {
                    next.push(*k);
                }
            }
        }
    }
    let per_exception: Vec<Vec<Finding>> = policy
        .exceptions
        .par_iter()
        .map(|e| ctx.check_exception(e.id))
        .collect();
    let mut findings: Vec<Finding> = per_agent
        .into_iter()
        .chain(per_exception)
        .flatten()
        .collect();
    findings.extend(ctx.check_asserts());
    if let Some(boundary) = boundary {
        findings.extend(ctx.check_boundary(boundary));
    }

    let mut properties: BTreeMap<Property, Status> = Property::BUILTIN
        .iter()
        .map(|p| (p.clone(), Verdict::Verified))
        .collect();
    if boundary.is_some() {
        properties.insert(Property::WithinBoundary, Verdict::Verified);
    }
    for a in &policy.asserts {
        properties.insert(Property::Assert(a.name.local.clone()), Verdict::Verified);
    }
    let mut violations = Vec::new();
    let mut warnings = Vec::new();
    for f in findings {
        match f {
            Finding::Violation(v) => {
                properties.insert(v.property.clone(), Verdict::Violated);
                violations.push(v);
            }
            Finding::Unknown {
                property,
                reason,
                span,
            } => {
                let status = properties
                    .entry(property.clone())
                    .or_insert(Verdict::Unknown);
                if *status != Verdict::Violated {
                    *status = Verdict::Unknown;
                }
                warnings.push(
                    Diagnostic::warning(W_UNKNOWN, span, format!("property `{property}` is unknown: {reason}"))
                        .with_help("raise --timeout, or simplify the patterns involved; unknown is never a pass"),
                );
            }
        }
    }
    if config.warnings {
        warnings.extend(ctx.warnings());
        let zones: Vec<(usize, Vec<Diagnostic>)> = policy
            .zones
            .par_iter()
            .enumerate()
            .filter(|(zi, _)| !remembered(keys.as_ref().and_then(|k| k.zone_warnings.get(*zi))))
            .map(|(zi, zone)| (zi, ctx.zone_warnings(zone)))
            .collect();
        for (zi, found) in zones {
            if let (true, Some(next), Some(k)) = (
                found.is_empty(),
                next.as_mut(),
                keys.as_ref().and_then(|k| k.zone_warnings.get(zi)),
            ) {
                next.push(*k);
            }
            warnings.extend(found);
        }
        if let (Some(next), Some(keys)) = (next.as_mut(), keys.as_ref()) {
            for k in &keys.zone_warnings {
                if remembered(Some(k)) {
                    next.push(*k);
                }
            }
        }
    }
    egress_syntax::diagnostic::sort_diagnostics(&mut warnings);
    violations.sort_by(|a, b| {
        (
            &a.property,
            &a.agent,
            a.path.first().map(|n| n.span),
            &a.message,
        )
            .cmp(&(
                &b.property,
                &b.agent,
                b.path.first().map(|n| n.span),
                &b.message,
            ))
    });
    violations.dedup();
    // Built-in properties first in their fixed order, then assertions by name.
    let mut ordered: Vec<PropertyResult> = Property::BUILTIN
        .iter()
        .filter_map(|p| {
            properties.remove(p).map(|status| PropertyResult {
                id: p.clone(),
                status,
            })
        })
        .collect();
    ordered.extend(
        properties
            .into_iter()
            .map(|(id, status)| PropertyResult { id, status }),
    );
    let verdict = if ordered.iter().any(|p| p.status == Verdict::Violated) {
        Verdict::Violated
    } else if ordered.iter().any(|p| p.status == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Verified
    };
    let stats = Stats {
        agents: policy.agents.len(),
        fast_decisions: ctx.decider.fast.load(std::sync::atomic::Ordering::Relaxed),
        smt_decisions: ctx.decider.smt.load(std::sync::atomic::Ordering::Relaxed),
        replayed: violations.iter().filter(|v| v.witness.is_some()).count(),
        remembered: cached,
    };
    (
        Report {
            verdict,
            properties: ordered,
            violations,
            warnings,
            stats,
        },
        next.map(Memo::from_keys),
    )
}

fn agent_name(policy: &CheckedPolicy, a: AgentId) -> String {
    policy
        .agent(a)
        .map(|a| a.name.local.clone())
        .unwrap_or_default()
}

fn class_name(policy: &CheckedPolicy, c: DataClassId) -> String {
    policy
        .data_class(c)
        .map(|c| c.name.local.clone())
        .unwrap_or_default()
}

/// A destination's name, or its endpoints when it was written inline.
fn dest_name(policy: &CheckedPolicy, d: DestId) -> String {
    policy
        .destination(d)
        .map(|d| {
            if d.inline {
                describe_destination(d)
            } else {
                d.name.local.clone()
            }
        })
        .unwrap_or_default()
}

/// Joins the notes of a path into one sentence.
fn story(path: &[PathNode]) -> String {
    let notes: Vec<&str> = path
        .iter()
        .map(|n| n.note.as_str())
        .filter(|n| !n.is_empty())
        .collect();
    notes.join(", ")
}

/// Quotes each item in backticks, joined by commas.
fn quote_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    quoted.join(", ")
}

impl<'p> Ctx<'p> {
    fn new(policy: &'p CheckedPolicy, config: &VerifyConfig) -> Ctx<'p> {
        let dest_boxes: Vec<Vec<ConnBox>> =
            policy.destinations.iter().map(destination_boxes).collect();
        // Zones per agent, then one approval set per distinct list of zones.
        let mut zones_of: Vec<Vec<ZoneId>> = vec![Vec::new(); policy.agents.len()];
        for z in &policy.zones {
            match &z.agents {
                egress_check::ZoneAgents::All(_) => zones_of.iter_mut().for_each(|v| v.push(z.id)),
                egress_check::ZoneAgents::Listed(list) => {
                    for a in list {
                        if let Some(v) = zones_of.get_mut(a.id.index()) {
                            if v.last() != Some(&z.id) {
                                v.push(z.id);
                            }
                        }
                    }
                }
            }
        }
        let mut set_index: HashMap<Vec<ZoneId>, usize> = HashMap::new();
        let mut zone_sets: Vec<Vec<ZoneId>> = Vec::new();
        let mut zone_set_of = Vec::with_capacity(zones_of.len());
        for zs in zones_of {
            let next = zone_sets.len();
            let idx = *set_index.entry(zs.clone()).or_insert_with(|| {
                zone_sets.push(zs);
                next
            });
            zone_set_of.push(idx);
        }
        let approvals: Vec<OnceLock<Allowed>> = zone_sets.iter().map(|_| OnceLock::new()).collect();
        let graph = ReachGraph::build(policy);
        Ctx {
            policy,
            decider: Decider::new(config.engine, config.timeout_ms, config.budget),
            lints: Decider::new(Engine::Fast, config.timeout_ms, config.budget),
            dest_boxes,
            index: RouteIndex::new(policy),
            graph,
            zone_set_of,
            zone_sets,
            approvals,
            clearances: HashMap::new(),
            zone_index: eval::ZoneIndex::new(policy),
            concrete_holdings: OnceLock::new(),
            metadata: ConnBox {
                target: TargetSet::Ip(metadata_addresses()),
                ports: all_ports(),
                protocols: ProtoSet::all(),
            },
            unspecified: ConnBox {
                target: TargetSet::Ip(unspecified_addresses()),
                ports: all_ports(),
                protocols: ProtoSet::all(),
            },
        }
    }

    /// Builds, once per zone set and class the agents to check hold, where the zones
    /// clear that class, shared by every such agent (and, in parallel, the approvals of
    /// their zone sets).
    fn prepare_clearances(&mut self, agents: &[AgentId]) {
        let pairs: BTreeSet<(usize, DataClassId)> = agents
            .iter()
            .filter_map(|a| {
                Some((
                    *self.zone_set_of.get(a.index())?,
                    self.graph.held.get(a.index())?,
                ))
            })
            .flat_map(|(set, held)| held.keys().map(move |class| (set, *class)))
            .collect();
        let pairs: Vec<(usize, DataClassId)> = pairs.into_iter().collect();
        let (policy, zone_sets, dest_boxes) = (self.policy, &self.zone_sets, &self.dest_boxes);
        self.clearances = pairs
            .par_iter()
            .map(|&(set, class)| {
                let zones = zone_sets.get(set).map(Vec::as_slice).unwrap_or(&[]);
                ((set, class), clearance_of(policy, zones, class, dest_boxes))
            })
            .collect();
        let sets: BTreeSet<usize> = agents
            .iter()
            .filter_map(|a| self.zone_set_of.get(a.index()).copied())
            .collect();
        let sets: Vec<usize> = sets.into_iter().collect();
        sets.par_iter().for_each(|s| {
            let _ = self.approvals_of(*s);
        });
    }

    /// The approvals of a zone set, built on first use.
    fn approvals_of(&self, set: usize) -> Option<&Allowed> {
        let cell = self.approvals.get(set)?;
        Some(cell.get_or_init(|| {
            let zones = self.zone_sets.get(set).map(Vec::as_slice).unwrap_or(&[]);
            Allowed::new(
                zones
                    .iter()
                    .filter_map(|z| self.policy.zone(*z))
                    .flat_map(|z| z.approve.iter().map(|r| r.id)),
                &self.dest_boxes,
            )
        }))
    }

    /// The concrete evaluator's holdings, for replay, computed on first use.
    fn concrete_holdings(&self) -> &[BTreeSet<DataClassId>] {
        self.concrete_holdings
            .get_or_init(|| eval::holdings(self.policy))
    }

    /// The zones of an agent, in order.
    fn zone_list(&self, agent: AgentId) -> &[ZoneId] {
        self.zone_set_of
            .get(agent.index())
            .and_then(|i| self.zone_sets.get(*i))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The zones of an agent (its zone set), without scanning every zone of the policy.
    fn zones_of(&self, agent: AgentId) -> impl Iterator<Item = &egress_check::Zone> {
        self.zone_list(agent)
            .iter()
            .filter_map(|z| self.policy.zone(*z))
    }

    /// [`CheckedPolicy::approved_linux_caps`] over the agent's zone set.
    fn approved_linux_caps(&self, agent: AgentId) -> Vec<LinuxCap> {
        let mut out: Vec<LinuxCap> = self
            .zones_of(agent)
            .flat_map(|z| z.approve_caps.iter().map(|a| a.cap))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// [`CheckedPolicy::approved_unix_sockets`] over the agent's zone set.
    fn approved_unix_sockets(&self, agent: AgentId) -> Vec<String> {
        let mut out: Vec<String> = self
            .zones_of(agent)
            .flat_map(|z| z.approve_unix.iter().map(|u| u.path.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn approved_set(&self, agent: AgentId) -> Option<&Allowed> {
        self.zone_set_of
            .get(agent.index())
            .and_then(|i| self.approvals_of(*i))
    }

    /// Where the agent's zones clear `class`: shared per zone set, built here only for a
    /// class the graph did not list as held.
    fn clearance(&self, agent: AgentId, class: DataClassId) -> Cleared<'_> {
        let set = self.zone_set_of.get(agent.index()).copied();
        match set.and_then(|s| self.clearances.get(&(s, class))) {
            Some(shared) => Cleared::Shared(shared),
            None => {
                let zones = set
                    .and_then(|s| self.zone_sets.get(s))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                Cleared::Built(clearance_of(self.policy, zones, class, &self.dest_boxes))
            }
        }
    }

    /// Is every connection of `dest` in `allowed`? The first connection outside it, if not.
    fn outside(&self, dest: DestId, allowed: &Allowed) -> Answer {
        self.outside_by(&self.decider, dest, allowed)
    }

    /// [`Ctx::outside`] answered by `decider`.
    fn outside_by(&self, decider: &Decider, dest: DestId, allowed: &Allowed) -> Answer {
        if allowed.dests.contains(&dest) {
            return Answer::Holds;
        }
        for b in self
            .dest_boxes
            .get(dest.index())
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            match decider.difference(b, &allowed.relevant(b)) {
                Answer::Holds => {}
                other => return other,
            }
        }
        Answer::Holds
    }

    /// A connection of `dest` inside `b`.
    fn inside(&self, dest: DestId, b: &ConnBox) -> Answer {
        self.inside_by(&self.decider, dest, b)
    }

    /// [`Ctx::inside`] answered by `decider`.
    fn inside_by(&self, decider: &Decider, dest: DestId, b: &ConnBox) -> Answer {
        let mut unknown = None;
        for d in self
            .dest_boxes
            .get(dest.index())
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            match decider.intersection(d, b) {
                Answer::Holds => {}
                Answer::Witness(w) => return Answer::Witness(w),
                Answer::Unknown(why) => unknown = Some(why),
            }
        }
        unknown.map_or(Answer::Holds, Answer::Unknown)
    }

    /// A connection in both destinations.
    fn meet(&self, a: DestId, b: DestId) -> Answer {
        self.meet_by(&self.decider, a, b)
    }

    /// [`Ctx::meet`] answered by `decider`.
    fn meet_by(&self, decider: &Decider, a: DestId, b: DestId) -> Answer {
        let mut unknown = None;
        for x in self
            .dest_boxes
            .get(b.index())
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            match self.inside_by(decider, a, x) {
                Answer::Holds => {}
                Answer::Witness(w) => return Answer::Witness(w),
                Answer::Unknown(why) => unknown = Some(why),
            }
        }
        unknown.map_or(Answer::Holds, Answer::Unknown)
    }

    /// Builds the finding for a witness, after replaying it: `confirmed` is the concrete
    /// evaluator's verdict on the witness.
    fn finding(&self, confirmed: bool, v: Violation) -> Finding {
        if confirmed {
            Finding::Violation(v)
        } else {
            Finding::Unknown {
                span: v.path.first().map(|n| n.span).unwrap_or_default(),
                reason: format!(
                    "internal error: a counterexample failed its concrete replay and was suppressed ({})",
                    v.message
                ),
                property: v.property,
            }
        }
    }

    fn route_allows(&self, agent: AgentId, route: &Route, w: &Connection) -> bool {
        eval::allowed_routes_indexed(self.policy, &self.index, agent, w)
            .iter()
            .any(|r| r.via == route.via && r.dest == route.dest)
    }

    /// [`Self::route_allows`] over the agent's routes as `eval::routes_indexed` already
    /// enumerated them: the same answer, without enumerating them again per witness.
    fn route_allows_in(&self, routes: &[Route], route: &Route, w: &Connection) -> bool {
        routes.iter().any(|r| {
            r.via == route.via
                && r.dest == route.dest
                && self
                    .policy
                    .destination(r.dest)
                    .is_some_and(|d| eval::dest_contains(d, w))
        })
    }

    fn check_agent(&self, agent: AgentId) -> Vec<Finding> {
        let mut out = Vec::new();
        let routes = eval::routes_indexed(self.policy, &self.index, agent);
        let name = agent_name(self.policy, agent);
        let empty = Allowed::default();
        let approved = self.approved_set(agent).unwrap_or(&empty);

        self.check_egress_approved(agent, &name, &routes, approved, &mut out);
        self.check_data_clearance(agent, &routes, &mut out);
        self.check_no_metadata(&name, &routes, &mut out);
        self.check_no_unspecified(&name, &routes, &mut out);
        out.extend(self.check_unix_approvals(agent));
        out.extend(self.check_layers(agent, &routes, approved));
        out
    }

    fn unknown(&self, property: Property, reason: String, route: &Route) -> Finding {
        Finding::Unknown {
            property,
            reason,
            span: route.path.last().map(|n| n.span).unwrap_or_default(),
        }
    }
}
