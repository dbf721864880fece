//! The properties, checked per agent in parallel, with every counterexample replayed
//! through the concrete evaluator before it is reported.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// Warning codes of the verifier.
pub const W_UNUSED_CAPABILITY: &str = "W0101";
pub const W_REDUNDANT_CONNECT: &str = "W0102";
pub const W_UNUSED_APPROVAL: &str = "W0103";
pub const W_UNKNOWN: &str = "W0104";

/// The one-line title of a verifier warning code.
pub fn warning_title(code: &str) -> &'static str {
    match code {
        W_UNUSED_CAPABILITY => "capability not used by any agent or workflow step",
        W_REDUNDANT_CONNECT => "destination shadowed by another in the same capability",
        W_UNUSED_APPROVAL => "approval that no agent of the zone uses",
        W_UNKNOWN => "property could not be decided",
        _ => "verifier warning",
    }
}

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
    dest_boxes: Vec<Vec<ConnBox>>,
    index: RouteIndex,
    graph: ReachGraph,
    /// Per agent: index into `approvals`.
    zone_set_of: Vec<usize>,
    zone_sets: Vec<Vec<ZoneId>>,
    approvals: Vec<Allowed>,
    /// Per (index into `zone_sets`, data class held by an agent of that zone set): where
    /// the zones clear the class, built once and shared by every such agent.
    clearances: HashMap<(usize, DataClassId), Allowed>,
    /// The zones of each agent, computed by the concrete evaluator, for replay.
    zone_index: eval::ZoneIndex,
    /// Concrete holdings, computed independently of the graph, for replay.
    concrete_holdings: Vec<BTreeSet<DataClassId>>,
    metadata: ConnBox,
    unspecified: ConnBox,
}

mod boundary;

/// Verifies every property of a checked policy.
pub fn verify(policy: &CheckedPolicy, config: &VerifyConfig) -> Report {
    verify_inner(policy, None, config)
}

/// Verifies every property of a checked policy, and `within-boundary`: everything every
/// agent can reach (directly, in workflows, through exceptions at their widest, and the
/// data it holds by delegation) lies inside the boundary policy.
pub fn verify_within(
    policy: &CheckedPolicy,
    boundary: &CheckedPolicy,
    config: &VerifyConfig,
) -> Report {
    verify_inner(policy, Some(boundary), config)
}

fn verify_inner(
    policy: &CheckedPolicy,
    boundary: Option<&CheckedPolicy>,
    config: &VerifyConfig,
) -> Report {
    let ctx = Ctx::new(policy, config);
    let agent_ids: Vec<AgentId> = policy.agents.iter().map(|a| a.id).collect();
    let per_agent: Vec<Vec<Finding>> = agent_ids.par_iter().map(|a| ctx.check_agent(*a)).collect();
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
    };
    Report {
        verdict,
        properties: ordered,
        violations,
        warnings,
        stats,
    }
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

/// Prefers a well-known instance-metadata address as a witness when it breaks
/// `no-metadata` on the route too (it is in the route's destination and, on an exception
/// route, not named by the exception's `to`), so the witness stays a counterexample.
fn prefer_metadata_witness(policy: &CheckedPolicy, route: &Route, w: Connection) -> Connection {
    for candidate in ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"] {
        if let Ok(ip) = candidate.parse() {
            let c = Connection {
                target: crate::sets::Target::Ip(ip),
                ..w.clone()
            };
            if eval::metadata_leak(policy, route, &c) {
                return c;
            }
        }
    }
    w
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
        let approvals: Vec<Allowed> = zone_sets
            .par_iter()
            .map(|zs| {
                Allowed::new(
                    zs.iter()
                        .filter_map(|z| policy.zone(*z))
                        .flat_map(|z| z.approve.iter().map(|r| r.id)),
                    &dest_boxes,
                )
            })
            .collect();
        let graph = ReachGraph::build(policy);
        // One clearance per zone set and class its agents hold.
        let pairs: BTreeSet<(usize, DataClassId)> = zone_set_of
            .iter()
            .zip(&graph.held)
            .flat_map(|(set, held)| held.keys().map(move |class| (*set, *class)))
            .collect();
        let pairs: Vec<(usize, DataClassId)> = pairs.into_iter().collect();
        let clearances: HashMap<(usize, DataClassId), Allowed> = pairs
            .par_iter()
            .map(|&(set, class)| {
                let zones = zone_sets.get(set).map(Vec::as_slice).unwrap_or(&[]);
                (
                    (set, class),
                    clearance_of(policy, zones, class, &dest_boxes),
                )
            })
            .collect();
        Ctx {
            policy,
            decider: Decider::new(config.engine, config.timeout_ms, config.budget),
            dest_boxes,
            index: RouteIndex::new(policy),
            graph,
            zone_set_of,
            zone_sets,
            approvals,
            clearances,
            zone_index: eval::ZoneIndex::new(policy),
            concrete_holdings: eval::holdings(policy),
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

    /// The zones of an agent (its zone set), without scanning every zone of the policy.
    fn zones_of(&self, agent: AgentId) -> impl Iterator<Item = &egress_check::Zone> {
        self.zone_set_of
            .get(agent.index())
            .and_then(|i| self.zone_sets.get(*i))
            .map(Vec::as_slice)
            .unwrap_or(&[])
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
            .and_then(|i| self.approvals.get(*i))
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
        if allowed.dests.contains(&dest) {
            return Answer::Holds;
        }
        for b in self
            .dest_boxes
            .get(dest.index())
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            match self.decider.difference(b, &allowed.relevant(b)) {
                Answer::Holds => {}
                other => return other,
            }
        }
        Answer::Holds
    }

    /// A connection of `dest` inside `b`.
    fn inside(&self, dest: DestId, b: &ConnBox) -> Answer {
        let mut unknown = None;
        for d in self
            .dest_boxes
            .get(dest.index())
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            match self.decider.intersection(d, b) {
                Answer::Holds => {}
                Answer::Witness(w) => return Answer::Witness(w),
                Answer::Unknown(why) => unknown = Some(why),
            }
        }
        unknown.map_or(Answer::Holds, Answer::Unknown)
    }

    /// A connection in both destinations.
    fn meet(&self, a: DestId, b: DestId) -> Answer {
        let mut unknown = None;
        for x in self
            .dest_boxes
            .get(b.index())
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            match self.inside(a, x) {
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

        // egress-approved: every capability and workflow route lies in the approvals.
        // (Exception routes are checked by `exception-gated`.)
        for route in routes.iter().filter(|r| !r.is_exception()) {
            match self.outside(route.dest, approved) {
                Answer::Holds => {}
                Answer::Unknown(reason) => {
                    out.push(self.unknown(Property::EgressApproved, reason, route))
                }
                Answer::Witness(w) => {
                    let confirmed = self.route_allows_in(&routes, route, &w)
                        && !eval::approved_indexed(self.policy, &self.zone_index, agent, &w);
                    let message = format!(
                        "{}; `{w}` is not approved for `{name}`; witness `{w}`",
                        story(&route.path)
                    );
                    out.push(self.finding(
                        confirmed,
                        Violation {
                            property: Property::EgressApproved,
                            agent: name.clone(),
                            path: route.path.clone(),
                            witness: Some(w),
                            conditions: route.conditions.clone(),
                            message,
                        },
                    ));
                }
            }
        }

        // data-clearance: every class held goes only where it is cleared.
        let held: Vec<DataClassId> = self
            .graph
            .held
            .get(agent.index())
            .map(|h| h.keys().copied().collect())
            .unwrap_or_default();
        for class in held {
            let cleared = self.clearance(agent, class);
            let clearance = cleared.get();
            let cname = class_name(self.policy, class);
            for route in &routes {
                match self.outside(route.dest, clearance) {
                    Answer::Holds => {}
                    Answer::Unknown(reason) => {
                        out.push(self.unknown(Property::DataClearance, reason, route))
                    }
                    Answer::Witness(w) => {
                        let confirmed = self
                            .concrete_holdings
                            .get(agent.index())
                            .is_some_and(|h| h.contains(&class))
                            && self.route_allows_in(&routes, route, &w)
                            && !eval::cleared_indexed(
                                self.policy,
                                &self.zone_index,
                                agent,
                                class,
                                &w,
                            );
                        let (origin, path, mut conditions) = self.data_path(agent, class, route);
                        conditions.extend(route.conditions.iter().cloned());
                        let dname = dest_name(self.policy, route.dest);
                        let message = format!(
                            "{}; `{dname}` is not cleared for `{cname}`; witness `{w}`",
                            story(&path)
                        );
                        out.push(self.finding(
                            confirmed,
                            Violation {
                                property: Property::DataClearance,
                                agent: agent_name(self.policy, origin),
                                path,
                                witness: Some(w),
                                conditions,
                                message,
                            },
                        ));
                    }
                }
            }
        }

        // no-metadata: no route reaches a metadata address, unless the route is an
        // exception whose `to` names that address.
        for route in &routes {
            let answer = if route.is_exception() {
                self.metadata_through_exception(route.dest)
            } else {
                self.inside(route.dest, &self.metadata)
            };
            match answer {
                Answer::Holds => {}
                Answer::Unknown(reason) => {
                    out.push(self.unknown(Property::NoMetadata, reason, route))
                }
                Answer::Witness(w) => {
                    let w = prefer_metadata_witness(self.policy, route, w);
                    // Replay against the whole property, the exemption included.
                    let confirmed = self.route_allows_in(&routes, route, &w)
                        && eval::metadata_leak(self.policy, route, &w);
                    let unnamed = if route.is_exception() {
                        ", and no CIDR of the exception's `to` names it"
                    } else {
                        ""
                    };
                    let message = format!(
                        "{}; `{}` is a link-local or cloud metadata address{unnamed}; witness `{w}`",
                        story(&route.path),
                        w.target
                    );
                    out.push(self.finding(
                        confirmed,
                        Violation {
                            property: Property::NoMetadata,
                            agent: name.clone(),
                            path: route.path.clone(),
                            witness: Some(w),
                            conditions: route.conditions.clone(),
                            message,
                        },
                    ));
                }
            }
        }

        // no-unspecified: no route at all, exceptions included, reaches 0.0.0.0/8 or ::.
        for route in &routes {
            match self.inside(route.dest, &self.unspecified) {
                Answer::Holds => {}
                Answer::Unknown(reason) => {
                    out.push(self.unknown(Property::NoUnspecified, reason, route))
                }
                Answer::Witness(w) => {
                    let confirmed = self.route_allows_in(&routes, route, &w)
                        && matches!(&w.target, crate::sets::Target::Ip(ip) if egress_check::is_unspecified(*ip));
                    let message = format!(
                        "{}; `{}` is an unspecified or this-network address, which reaches the local host; witness `{w}`",
                        story(&route.path),
                        w.target
                    );
                    out.push(self.finding(
                        confirmed,
                        Violation {
                            property: Property::NoUnspecified,
                            agent: name.clone(),
                            path: route.path.clone(),
                            witness: Some(w),
                            conditions: route.conditions.clone(),
                            message,
                        },
                    ));
                }
            }
        }

        out.extend(self.check_unix_approvals(agent));
        out.extend(self.check_layers(agent, &routes, approved));
        out
    }

    /// egress-approved for local sockets: every socket path of a capability the agent can
    /// use is approved by one of its zones (`approve unix "..."`).
    fn check_unix_approvals(&self, agent: AgentId) -> Vec<Finding> {
        let mut out = Vec::new();
        let Some(a) = self.policy.agent(agent) else {
            return out;
        };
        let Some(start) = agent_node(self.policy, agent) else {
            return out;
        };
        let approved = self.approved_unix_sockets(agent);
        let usable = self.policy.usable_capabilities(a);
        for cap in usable.iter().filter_map(|c| self.policy.capability(*c)) {
            let used_span = a
                .capabilities
                .iter()
                .find(|u| u.id == cap.id)
                .map_or(cap.name.span, |u| u.span);
            for socket in &cap.unix_sockets {
                if approved.contains(&socket.path) {
                    continue;
                }
                let path = vec![
                    start.clone(),
                    PathNode {
                        kind: "capability",
                        name: cap.name.local.clone(),
                        span: used_span,
                        note: format!("uses `{}`", cap.name.local),
                    },
                    PathNode {
                        kind: "unix",
                        name: socket.path.clone(),
                        span: socket.span,
                        note: format!("which may use the local socket `{}`", socket.path),
                    },
                ];
                let message = format!(
                    "{}; local socket `{}` is not approved for `{}` (a zone of the agent needs `approve unix \"{}\"`)",
                    story(&path),
                    socket.path,
                    a.name.local,
                    socket.path
                );
                // Replay: the socket really is the agent's, and really unapproved.
                let confirmed = self.policy.unix_sockets_of(a).contains(&socket.path)
                    && !self
                        .zone_index
                        .zones(self.policy, agent)
                        .any(|z| z.approve_unix.iter().any(|u| u.path == socket.path));
                out.push(self.finding(
                    confirmed,
                    Violation {
                        property: Property::EgressApproved,
                        agent: a.name.local.clone(),
                        path,
                        witness: None,
                        conditions: vec![format!("local socket `{}`", socket.path)],
                        message,
                    },
                ));
            }
        }
        out
    }

    /// A metadata address of an exception's `to` that the `to` does not name: one in an
    /// endpoint's box, in the metadata ranges, and in no endpoint all of whose addresses
    /// are metadata addresses (those endpoints name the addresses they hold).
    fn metadata_through_exception(&self, dest: DestId) -> Answer {
        let boxes = self
            .dest_boxes
            .get(dest.index())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut naming: Vec<&ConnBox> = Vec::new();
        let mut others: Vec<&ConnBox> = Vec::new();
        for b in boxes {
            if !matches!(b.target, TargetSet::Ip(_)) {
                continue;
            }
            match self.decider.difference(b, &[&self.metadata]) {
                Answer::Holds => naming.push(b),
                Answer::Witness(_) => others.push(b),
                Answer::Unknown(why) => return Answer::Unknown(why),
            }
        }
        let mut unknown = None;
        for b in others {
            match self.decider.difference_within(b, &self.metadata, &naming) {
                Answer::Holds => {}
                Answer::Witness(w) => return Answer::Witness(w),
                Answer::Unknown(why) => unknown = Some(why),
            }
        }
        unknown.map_or(Answer::Holds, Answer::Unknown)
    }

    fn unknown(&self, property: Property, reason: String, route: &Route) -> Finding {
        Finding::Unknown {
            property,
            reason,
            span: route.path.last().map(|n| n.span).unwrap_or_default(),
        }
    }

    /// The path of a data-clearance violation: from the agent that handles the class,
    /// along the invocations, to the destination.
    fn data_path(
        &self,
        agent: AgentId,
        class: DataClassId,
        route: &Route,
    ) -> (AgentId, Vec<PathNode>, Vec<String>) {
        let (origin, chain) = self.graph.chain(agent, class);
        let cname = class_name(self.policy, class);
        let mut path = Vec::new();
        let mut conditions = Vec::new();
        if let Some(mut start) = agent_node(self.policy, origin) {
            if let Some(Provenance::Own(span)) = self
                .graph
                .held
                .get(origin.index())
                .and_then(|h| h.get(&class))
                .copied()
            {
                // Point at the `handles` entry of the agent that handles the class.
                start.note = format!("agent `{}` handles `{cname}`", start.name);
                start.span = span;
            }
            path.push(start);
        }
        for (_, to, span, workflow) in &chain {
            let callee = agent_name(self.policy, *to);
            if let Some(w) = workflow.and_then(|w| self.policy.workflow(w)) {
                conditions.push(format!("in workflow `{}`", w.name.local));
            }
            path.push(PathNode {
                kind: "invokes",
                name: callee.clone(),
                span: *span,
                note: format!("invokes `{callee}`, and `{cname}` travels along"),
            });
        }
        path.extend(route.path.iter().skip(1).cloned());
        (origin, path, conditions)
    }

    fn check_layers(&self, agent: AgentId, routes: &[Route], approved: &Allowed) -> Vec<Finding> {
        let mut out = Vec::new();
        let Some(a) = self.policy.agent(agent) else {
            return out;
        };
        let name = a.name.local.clone();
        let Some(start) = agent_node(self.policy, agent) else {
            return out;
        };
        // Network syscalls without any network route. An agent that names local sockets
        // may keep the syscalls those need: its profile creates `AF_UNIX` sockets only.
        let names_sockets = !self.policy.unix_sockets_of(a).is_empty();
        if routes.is_empty() {
            for used in &a.capabilities {
                let Some(cap) = self.policy.capability(used.id) else {
                    continue;
                };
                for g in cap
                    .syscall_groups
                    .iter()
                    .filter_map(|g| self.policy.syscall_group(*g))
                {
                    let net: Vec<&str> = g
                        .syscalls
                        .iter()
                        .map(String::as_str)
                        .filter(|s| NETWORK_SYSCALLS.contains(s))
                        .filter(|s| !(names_sockets && UNIX_SOCKET_SYSCALLS.contains(s)))
                        .collect();
                    if net.is_empty() {
                        continue;
                    }
                    let path = vec![
                        start.clone(),
                        PathNode {
                            kind: "capability",
                            name: cap.name.local.clone(),
                            span: used.span,
                            note: format!("uses `{}`", cap.name.local),
                        },
                        PathNode {
                            kind: "syscalls",
                            name: g.name.local.clone(),
                            span: g.name.span,
                            note: format!(
                                "whose syscall group `{}` allows {}",
                                g.name.local,
                                quote_list(&net)
                            ),
                        },
                    ];
                    let message = format!(
                        "{}; but `{name}` has no network capability or exception, so the network syscalls {} should be denied",
                        story(&path),
                        quote_list(&net)
                    );
                    // Replay: the syscalls really are granted to the agent.
                    let granted = self.policy.syscalls_of(a);
                    let confirmed = net.iter().all(|s| granted.iter().any(|g| g == s));
                    out.push(
                        self.finding(
                            confirmed,
                            Violation {
                                property: Property::LayersConsistent,
                                agent: name.clone(),
                                path,
                                witness: None,
                                conditions: net
                                    .iter()
                                    .map(|s| format!("syscall `{s}` allowed"))
                                    .collect(),
                                message,
                            },
                        ),
                    );
                }
            }
        }
        // CAP_NET_RAW / CAP_NET_ADMIN only by a literal grant.
        for used in &a.capabilities {
            let Some(cap) = self.policy.capability(used.id) else {
                continue;
            };
            for g in &cap.linux_caps {
                if g.cap != LinuxCap::NET_RAW && g.cap != LinuxCap::NET_ADMIN {
                    continue;
                }
                let Some(set) = g.via.and_then(|s| self.policy.cap_set(s)) else {
                    continue;
                };
                let path = vec![
                    start.clone(),
                    PathNode {
                        kind: "capability",
                        name: cap.name.local.clone(),
                        span: used.span,
                        note: format!("uses `{}`", cap.name.local),
                    },
                    PathNode {
                        kind: "capset",
                        name: set.name.local.clone(),
                        span: g.span,
                        note: format!(
                            "which grants `{}` through capability set `{}`",
                            g.cap, set.name.local
                        ),
                    },
                ];
                let message = format!(
                    "{}; `{}` must be granted literally (`grant {}`), never through a set",
                    story(&path),
                    g.cap,
                    g.cap
                );
                let confirmed = self.policy.linux_caps_of(a).contains(&g.cap);
                out.push(self.finding(
                    confirmed,
                    Violation {
                        property: Property::LayersConsistent,
                        agent: name.clone(),
                        path,
                        witness: None,
                        conditions: vec![format!(
                            "`{}` via capability set `{}`",
                            g.cap, set.name.local
                        )],
                        message,
                    },
                ));
            }
        }
        // Linux capabilities that bypass enforcement need a zone's approval.
        let approved_caps = self.approved_linux_caps(agent);
        let mut reported: BTreeSet<(egress_check::CapId, LinuxCap)> = BTreeSet::new();
        for used in &a.capabilities {
            let Some(cap) = self.policy.capability(used.id) else {
                continue;
            };
            for g in &cap.linux_caps {
                if !g.cap.bypasses_enforcement()
                    || approved_caps.contains(&g.cap)
                    || !reported.insert((cap.id, g.cap))
                {
                    continue;
                }
                let set = g.via.and_then(|s| self.policy.cap_set(s));
                let grant_note = match set {
                    Some(set) => format!(
                        "which grants `{}` through capability set `{}`",
                        g.cap, set.name.local
                    ),
                    None => format!("which grants `{}`", g.cap),
                };
                let path = vec![
                    start.clone(),
                    PathNode {
                        kind: "capability",
                        name: cap.name.local.clone(),
                        span: used.span,
                        note: format!("uses `{}`", cap.name.local),
                    },
                    PathNode {
                        kind: "grant",
                        name: g.cap.to_string(),
                        span: g.span,
                        note: grant_note,
                    },
                ];
                let message = format!(
                    "{}; `{}` bypasses enforcement, and no zone of `{name}` approves it (`approve grant {}`)",
                    story(&path),
                    g.cap,
                    g.cap
                );
                let confirmed = self.policy.linux_caps_of(a).contains(&g.cap)
                    && !self
                        .zone_index
                        .zones(self.policy, agent)
                        .any(|z| z.approve_caps.iter().any(|c| c.cap == g.cap));
                out.push(self.finding(
                    confirmed,
                    Violation {
                        property: Property::LayersConsistent,
                        agent: name.clone(),
                        path,
                        witness: None,
                        conditions: vec![format!("`{}` granted without approval", g.cap)],
                        message,
                    },
                ));
            }
        }
        // DNS is an exit: an agent that reaches host names needs an approved resolver.
        let reaches_hosts = routes.iter().find(|r| {
            self.dest_boxes
                .get(r.dest.index())
                .is_some_and(|bs| bs.iter().any(|b| matches!(b.target, TargetSet::Host(_))))
        });
        if let Some(host_route) = reaches_hosts {
            let dns_port = crate::sets::PortSet::point(53);
            let dns_routes: Vec<&Route> = routes
                .iter()
                .filter(|r| {
                    self.dest_boxes.get(r.dest.index()).is_some_and(|bs| {
                        bs.iter().any(|b| {
                            b.ports.contains(53) && !matches!(b.target, TargetSet::Host(_))
                        })
                    })
                })
                .collect();
            if dns_routes.is_empty() {
                let message = format!(
                    "{}; but `{name}` reaches no DNS resolver (port 53), so the host name cannot be resolved through an approved exit",
                    story(&host_route.path)
                );
                let confirmed = !routes.iter().any(|r| {
                    self.policy.destination(r.dest).is_some_and(|d| {
                        d.ports.iter().any(|p| p.contains(53))
                            && d.endpoints
                                .iter()
                                .any(|e| !matches!(e.kind, egress_check::EndpointKind::Host(_)))
                    })
                });
                out.push(self.finding(
                    confirmed,
                    Violation {
                        property: Property::LayersConsistent,
                        agent: name.clone(),
                        path: host_route.path.clone(),
                        witness: None,
                        conditions: vec!["no route to a resolver on port 53".to_string()],
                        message,
                    },
                ));
            }
            for route in dns_routes {
                for b in self
                    .dest_boxes
                    .get(route.dest.index())
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    if matches!(b.target, TargetSet::Host(_)) {
                        continue;
                    }
                    let dns_box = ConnBox {
                        target: b.target.clone(),
                        ports: b.ports.intersection(&dns_port),
                        protocols: b.protocols,
                    };
                    if dns_box.is_empty() || approved.dests.contains(&route.dest) {
                        continue;
                    }
                    match self
                        .decider
                        .difference(&dns_box, &approved.relevant(&dns_box))
                    {
                        Answer::Holds => {}
                        Answer::Unknown(reason) => {
                            out.push(self.unknown(Property::LayersConsistent, reason, route))
                        }
                        Answer::Witness(w) => {
                            let confirmed = w.port == 53
                                && self.route_allows_in(routes, route, &w)
                                && !eval::approved_indexed(
                                    self.policy,
                                    &self.zone_index,
                                    agent,
                                    &w,
                                );
                            let message = format!(
                                "{}; DNS is an exit, and resolver `{w}` is not approved for `{name}`; witness `{w}`",
                                story(&route.path)
                            );
                            out.push(self.finding(
                                confirmed,
                                Violation {
                                    property: Property::LayersConsistent,
                                    agent: name.clone(),
                                    path: route.path.clone(),
                                    witness: Some(w),
                                    conditions: route.conditions.clone(),
                                    message,
                                },
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    fn check_exception(&self, id: egress_check::ExceptionId) -> Vec<Finding> {
        let mut out = Vec::new();
        let Some(e) = self.policy.exception(id) else {
            return out;
        };
        let ename = e.name.local.clone();
        let exception_node = |span: Span, note: String| PathNode {
            kind: "exception",
            name: ename.clone(),
            span,
            note,
        };
        let authority = self.policy.authority(e.approver.id);
        let first_agent = e
            .agents
            .first()
            .map(|a| agent_name(self.policy, a.id))
            .unwrap_or_default();
        let simple = |span: Span, note: String, message: String, conditions: Vec<String>| {
            Finding::Violation(Violation {
                property: Property::ExceptionGated,
                agent: first_agent.clone(),
                path: vec![exception_node(span, note)],
                witness: None,
                conditions,
                message,
            })
        };
        match authority {
            None => out.push(simple(
                e.approver.span,
                "names an approver that does not exist".to_string(),
                format!("exception `{ename}` has no approving authority"),
                Vec::new(),
            )),
            Some(auth) => {
                if auth.key.iter().all(|b| *b == 0) {
                    out.push(simple(
                        e.approver.span,
                        format!(
                            "is approved by `{}`, whose key is all zeros",
                            auth.name.local
                        ),
                        format!(
                            "exception `{ename}`: authority `{}` has no usable key",
                            auth.name.local
                        ),
                        Vec::new(),
                    ));
                }
                if e.max_ttl_secs > auth.max_ttl_secs {
                    out.push(simple(
                        e.max_ttl_span,
                        format!("allows tokens of {}", format_duration(e.max_ttl_secs)),
                        format!(
                            "exception `{ename}` allows tokens of {}, longer than authority `{}` may sign ({})",
                            format_duration(e.max_ttl_secs),
                            auth.name.local,
                            format_duration(auth.max_ttl_secs)
                        ),
                        vec![format!("authority `{}` max_ttl {}", auth.name.local, format_duration(auth.max_ttl_secs))],
                    ));
                }
            }
        }
        if e.max_ttl_secs > MAX_EXCEPTION_TTL_SECS || e.max_ttl_secs == 0 {
            out.push(simple(
                e.max_ttl_span,
                format!("allows tokens of {}", format_duration(e.max_ttl_secs)),
                format!(
                    "exception `{ename}` token lifetime {} is outside 1s..24h",
                    format_duration(e.max_ttl_secs)
                ),
                Vec::new(),
            ));
        }
        for listed in &e.agents {
            let agent = listed.id;
            let aname = agent_name(self.policy, agent);
            let empty = Allowed::default();
            let approved = self.approved_set(agent).unwrap_or(&empty);
            let routes = eval::routes_indexed(self.policy, &self.index, agent);
            let own = Allowed::new(
                routes.iter().filter(|r| !r.is_exception()).map(|r| r.dest),
                &self.dest_boxes,
            );
            let Some(start) = agent_node(self.policy, agent) else {
                continue;
            };
            let mut base = vec![
                start,
                exception_node(listed.span, format!("is listed in exception `{ename}`")),
            ];
            // The exception's `to` must lie within the agent's approvals.
            if let Some(to) = dest_node(self.policy, e.to.id, e.to.span) {
                match self.outside(e.to.id, approved) {
                    Answer::Holds => {}
                    Answer::Unknown(reason) => out.push(Finding::Unknown {
                        property: Property::ExceptionGated,
                        reason,
                        span: e.to.span,
                    }),
                    Answer::Witness(w) => {
                        let mut path = base.clone();
                        path.push(to);
                        let confirmed = self
                            .policy
                            .destination(e.to.id)
                            .is_some_and(|d| eval::dest_contains(d, &w))
                            && !eval::approved_indexed(self.policy, &self.zone_index, agent, &w);
                        let message = format!(
                            "{}; the exception is broader than the approvals of `{aname}`; witness `{w}`",
                            story(&path)
                        );
                        out.push(self.finding(
                            confirmed,
                            Violation {
                                property: Property::ExceptionGated,
                                agent: aname.clone(),
                                path,
                                witness: Some(w),
                                conditions: eval::exception_conditions(self.policy, id),
                                message,
                            },
                        ));
                    }
                }
            }
            // The audit sink must be reachable by the agent's own capabilities and approved.
            if let Some(last) = base.last_mut() {
                last.note = format!(
                    "is listed in exception `{ename}`, audited to `{}`",
                    dest_name(self.policy, e.audit.id)
                );
            }
            let audit_node = PathNode {
                kind: "destination",
                name: dest_name(self.policy, e.audit.id),
                span: e.audit.span,
                note: format!(
                    "whose audit sink is `{}`",
                    self.policy
                        .destination(e.audit.id)
                        .map(describe_destination)
                        .unwrap_or_default()
                ),
            };
            for (what, allowed, is_approval) in [
                ("approved for", approved, true),
                ("reachable by", &own, false),
            ] {
                match self.outside(e.audit.id, allowed) {
                    Answer::Holds => {}
                    Answer::Unknown(reason) => out.push(Finding::Unknown {
                        property: Property::ExceptionGated,
                        reason,
                        span: e.audit.span,
                    }),
                    Answer::Witness(w) => {
                        let mut path = base.clone();
                        path.push(audit_node.clone());
                        let in_audit = self
                            .policy
                            .destination(e.audit.id)
                            .is_some_and(|d| eval::dest_contains(d, &w));
                        let confirmed = in_audit
                            && if is_approval {
                                !eval::approved_indexed(self.policy, &self.zone_index, agent, &w)
                            } else {
                                !eval::allowed_routes_indexed(self.policy, &self.index, agent, &w)
                                    .iter()
                                    .any(|r| !r.is_exception())
                            };
                        let message = format!(
                            "{}; the audit sink is not {what} `{aname}`, so uses of the exception could go unaudited; witness `{w}`",
                            story(&path)
                        );
                        out.push(self.finding(
                            confirmed,
                            Violation {
                                property: Property::ExceptionGated,
                                agent: aname.clone(),
                                path,
                                witness: Some(w),
                                conditions: eval::exception_conditions(self.policy, id),
                                message,
                            },
                        ));
                    }
                }
            }
        }
        out
    }

    fn check_asserts(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for assertion in &self.policy.asserts {
            let id = Property::Assert(assertion.name.local.clone());
            let assert_node = |span: Span, note: String| PathNode {
                kind: "assert",
                name: assertion.name.local.clone(),
                span,
                note,
            };
            for claim in &assertion.claims {
                match &claim.kind {
                    ClaimKind::CannotReach { agent, dest }
                    | ClaimKind::CanReach { agent, dest } => {
                        let can = matches!(claim.kind, ClaimKind::CanReach { .. });
                        let agents: Vec<AgentId> = match agent {
                            AgentSel::All(_) => self.policy.agents.iter().map(|a| a.id).collect(),
                            AgentSel::One(r) => vec![r.id],
                        };
                        let dname = dest_name(self.policy, dest.id);
                        let results: Vec<Finding> = agents
                            .par_iter()
                            .flat_map_iter(|a| {
                                let routes = eval::routes_indexed(self.policy, &self.index, *a);
                                let aname = agent_name(self.policy, *a);
                                let mut found = Vec::new();
                                if can {
                                    let mut reached = false;
                                    let mut unknown = None;
                                    for r in routes.iter().filter(|r| !r.is_exception()) {
                                        match self.meet(r.dest, dest.id) {
                                            Answer::Witness(_) => {
                                                reached = true;
                                                break;
                                            }
                                            Answer::Unknown(why) => unknown = Some(why),
                                            Answer::Holds => {}
                                        }
                                    }
                                    if !reached {
                                        match unknown {
                                            Some(reason) => found.push(Finding::Unknown {
                                                property: id.clone(),
                                                reason,
                                                span: claim.span,
                                            }),
                                            None => {
                                                let mut path: Vec<PathNode> = agent_node(self.policy, *a).into_iter().collect();
                                                path.push(assert_node(claim.span, format!("is asserted to reach `{dname}`")));
                                                found.push(Finding::Violation(Violation {
                                                    property: id.clone(),
                                                    agent: aname.clone(),
                                                    message: format!(
                                                        "agent `{aname}` is asserted to reach `{dname}`, but no capability or workflow of it reaches any connection of `{dname}`"
                                                    ),
                                                    path,
                                                    witness: None,
                                                    conditions: Vec::new(),
                                                }));
                                            }
                                        }
                                    }
                                    return found;
                                }
                                for r in &routes {
                                    match self.meet(r.dest, dest.id) {
                                        Answer::Holds => {}
                                        Answer::Unknown(reason) => found.push(Finding::Unknown {
                                            property: id.clone(),
                                            reason,
                                            span: claim.span,
                                        }),
                                        Answer::Witness(w) => {
                                            let confirmed = self.route_allows(*a, r, &w)
                                                && self.policy.destination(dest.id).is_some_and(|d| eval::dest_contains(d, &w));
                                            let mut path = r.path.clone();
                                            path.push(assert_node(claim.span, format!("which the assertion says `{aname}` cannot reach")));
                                            let message = format!(
                                                "{}; assertion `{}` says `{aname}` cannot reach `{dname}`; witness `{w}`",
                                                story(&r.path),
                                                assertion.name.local
                                            );
                                            found.push(self.finding(
                                                confirmed,
                                                Violation {
                                                    property: id.clone(),
                                                    agent: aname.clone(),
                                                    path,
                                                    witness: Some(w),
                                                    conditions: r.conditions.clone(),
                                                    message,
                                                },
                                            ));
                                        }
                                    }
                                }
                                found
                            })
                            .collect();
                        out.extend(results);
                    }
                    ClaimKind::NeverReaches { class, dest } => {
                        let cname = class_name(self.policy, class.id);
                        let dname = dest_name(self.policy, dest.id);
                        let holders: Vec<AgentId> = self
                            .policy
                            .agents
                            .iter()
                            .map(|a| a.id)
                            .filter(|a| {
                                self.graph
                                    .held
                                    .get(a.index())
                                    .is_some_and(|h| h.contains_key(&class.id))
                            })
                            .collect();
                        let results: Vec<Finding> = holders
                            .par_iter()
                            .flat_map_iter(|a| {
                                let routes = eval::routes_indexed(self.policy, &self.index, *a);
                                let mut found = Vec::new();
                                for r in &routes {
                                    match self.meet(r.dest, dest.id) {
                                        Answer::Holds => {}
                                        Answer::Unknown(reason) => found.push(Finding::Unknown {
                                            property: id.clone(),
                                            reason,
                                            span: claim.span,
                                        }),
                                        Answer::Witness(w) => {
                                            let confirmed = self.concrete_holdings.get(a.index()).is_some_and(|h| h.contains(&class.id))
                                                && self.route_allows(*a, r, &w)
                                                && self.policy.destination(dest.id).is_some_and(|d| eval::dest_contains(d, &w));
                                            let (origin, mut path, mut conditions) = self.data_path(*a, class.id, r);
                                            conditions.extend(r.conditions.iter().cloned());
                                            path.push(assert_node(claim.span, format!("which the assertion says `{cname}` never reaches")));
                                            let message = format!(
                                                "{}; assertion `{}` says `{cname}` never reaches `{dname}`; witness `{w}`",
                                                story(path.get(..path.len().saturating_sub(1)).unwrap_or(&[])),
                                                assertion.name.local
                                            );
                                            found.push(self.finding(
                                                confirmed,
                                                Violation {
                                                    property: id.clone(),
                                                    agent: agent_name(self.policy, origin),
                                                    path,
                                                    witness: Some(w),
                                                    conditions,
                                                    message,
                                                },
                                            ));
                                        }
                                    }
                                }
                                found
                            })
                            .collect();
                        out.extend(results);
                    }
                }
            }
        }
        out
    }

    fn warnings(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for cap in self.graph.unused_capabilities() {
            if let Some(c) = self.policy.capability(cap) {
                if self
                    .policy
                    .file(c.name.span.file)
                    .is_some_and(|f| f.is_stdlib)
                {
                    continue;
                }
                out.push(
                    Diagnostic::warning(
                        W_UNUSED_CAPABILITY,
                        c.name.span,
                        format!(
                            "capability `{}` is not used by any agent or workflow step",
                            c.name.local
                        ),
                    )
                    .with_label("never used")
                    .with_help("remove it, or add it to an agent's `uses`"),
                );
            }
        }
        // Redundant connects: a destination inside another destination of the same capability.
        for cap in &self.policy.capabilities {
            if self
                .policy
                .file(cap.name.span.file)
                .is_some_and(|f| f.is_stdlib)
            {
                continue;
            }
            // A destination can lie inside another only if each of its boxes meets one of
            // the other's: the box index narrows each entry's partners to those, so the
            // exact containment check runs on a few pairs instead of every pair.
            let partners =
                ContainmentPartners::new(cap.connects.iter().map(|c| c.dest), &self.dest_boxes);
            for (i, c) in cap.connects.iter().enumerate() {
                let candidates = partners.of(c.dest, &self.dest_boxes);
                for (j, other) in cap.connects.iter().enumerate() {
                    if i == j || c.dest == other.dest {
                        continue;
                    }
                    if let Some(candidates) = &candidates {
                        if !candidates.contains(&other.dest) {
                            continue;
                        }
                    }
                    let others = Allowed::new([other.dest], &self.dest_boxes);
                    // Report only one direction of a pair of equal destinations.
                    if matches!(self.outside(c.dest, &others), Answer::Holds) {
                        let mutual = matches!(
                            self.outside(other.dest, &Allowed::new([c.dest], &self.dest_boxes)),
                            Answer::Holds
                        );
                        if mutual && j > i {
                            continue;
                        }
                        out.push(
                            Diagnostic::warning(
                                W_REDUNDANT_CONNECT,
                                c.span,
                                format!(
                                    "`{}` is redundant: every connection of it is already in `{}`",
                                    dest_name(self.policy, c.dest),
                                    dest_name(self.policy, other.dest)
                                ),
                            )
                            .with_label("shadowed")
                            .with_secondary(other.span, "covers it")
                            .with_help("remove the narrower entry, or narrow the broader one"),
                        );
                        break;
                    }
                }
            }
        }
        // Approvals no agent of the zone uses.
        for zone in &self.policy.zones {
            let members: Vec<AgentId> = match &zone.agents {
                egress_check::ZoneAgents::All(_) => {
                    self.policy.agents.iter().map(|a| a.id).collect()
                }
                egress_check::ZoneAgents::Listed(l) => l.iter().map(|r| r.id).collect(),
            };
            let reached: BTreeSet<DestId> = members
                .iter()
                .flat_map(|a| eval::routes_indexed(self.policy, &self.index, *a))
                .map(|r| r.dest)
                .collect();
            let partners = ContainmentPartners::new(reached.iter().copied(), &self.dest_boxes);
            for approval in &zone.approve {
                if reached.contains(&approval.id) {
                    continue;
                }
                // Only destinations with a box the index finds near one of the approval's
                // can meet it.
                let near = partners.near(approval.id, &self.dest_boxes);
                let used = reached
                    .iter()
                    .filter(|d| near.contains(*d))
                    .any(|d| matches!(self.meet(*d, approval.id), Answer::Witness(_)));
                if !used {
                    out.push(
                        Diagnostic::warning(
                            W_UNUSED_APPROVAL,
                            approval.span,
                            format!(
                                "zone `{}` approves `{}`, but no agent of the zone reaches it",
                                zone.name.local,
                                dest_name(self.policy, approval.id)
                            ),
                        )
                        .with_label("unused approval")
                        .with_help("remove the approval so it cannot be used later without review"),
                    );
                }
            }
        }
        out
    }
}

fn quote_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    quoted.join(", ")
}
