//! The one route computation: every way an agent may open connections, and how.
//!
//! An agent reaches a destination through a capability it `uses` (unconditionally, when
//! the capability is not limited to workflows), through a workflow step that has it use a
//! capability (while the workflow runs), or through an exception that lists it (under the
//! exception's token conditions). The verifier, every backend's translation validation,
//! `egc diff`, `egc query` and the editor's hover all start from [`routes`].

use std::collections::BTreeSet;

use egress_check::{
    Agent, AgentId, CapId, Capability, CheckedPolicy, DestId, Destination, EndpointKind,
    ExceptionId, Ref, Span, StepAction, WorkflowId,
};
use serde::Serialize;

use crate::{Connection, ConnectionSet, Target};

/// One step of a route or a counterexample path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathNode {
    /// `agent`, `invokes`, `workflow`, `capability`, `destination`, `exception`, `zone`,
    /// `syscalls`, `capset`, `grant`, `unix`, `authority` or `assert`.
    pub kind: &'static str,
    pub name: String,
    pub span: Span,
    /// What this step says, for a label in the source ("invokes `ledger`").
    pub note: String,
}

/// How an agent reaches a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Via {
    /// A capability the agent `uses`, without workflow restriction.
    Capability(CapId),
    /// A capability used by a step of a workflow.
    Workflow { workflow: WorkflowId, cap: CapId },
    /// An exception that lists the agent.
    Exception(ExceptionId),
}

/// One way an agent may open connections to a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dest: DestId,
    pub via: Via,
    /// From the agent to the destination.
    pub path: Vec<PathNode>,
    pub conditions: Vec<String>,
}

impl Route {
    pub fn is_exception(&self) -> bool {
        matches!(self.via, Via::Exception(_))
    }
}

pub use egress_check::format_duration;

/// A short description of a destination's endpoints and ports: `*.telemetry.internal:4317`.
pub fn describe_destination(dest: &Destination) -> String {
    let ports: Vec<String> = dest.ports.iter().map(|p| p.to_string()).collect();
    let ports = ports.join(",");
    let endpoints: Vec<String> = dest
        .endpoints
        .iter()
        .map(|e| match &e.kind {
            EndpointKind::Host(h) => format!("{h}:{ports}"),
            EndpointKind::Cidr(c) => {
                let mut s = c.network.to_string();
                if !c.except.is_empty() {
                    let ex: Vec<String> = c.except.iter().map(|e| e.to_string()).collect();
                    s.push_str(&format!(" except {}", ex.join(", ")));
                }
                format!("{s} port {ports}")
            }
            EndpointKind::Workload(w) => format!("{w} port {ports}"),
        })
        .collect();
    endpoints.join(" | ")
}

pub fn agent_node(policy: &CheckedPolicy, agent: AgentId) -> Option<PathNode> {
    let a = policy.agent(agent)?;
    Some(PathNode {
        kind: "agent",
        name: a.name.local.clone(),
        span: a.name.span,
        note: format!("agent `{}`", a.name.local),
    })
}

pub fn dest_node(
    policy: &CheckedPolicy,
    dest: DestId,
    span: egress_check::Span,
) -> Option<PathNode> {
    let d = policy.destination(dest)?;
    Some(PathNode {
        kind: "destination",
        name: d.name.local.clone(),
        span,
        note: format!("which may reach `{}`", describe_destination(d)),
    })
}

/// Which workflow steps and exceptions mention each agent, so routes of many agents are
/// found without scanning every workflow for each.
#[derive(Clone, Debug, Default)]
pub struct RouteIndex {
    /// Per agent: (workflow index, step index).
    steps: Vec<Vec<(usize, usize)>>,
    /// Per agent: exception index.
    exceptions: Vec<Vec<usize>>,
}

impl RouteIndex {
    pub fn new(policy: &CheckedPolicy) -> RouteIndex {
        let mut index = RouteIndex {
            steps: vec![Vec::new(); policy.agents.len()],
            exceptions: vec![Vec::new(); policy.agents.len()],
        };
        for (wi, w) in policy.workflows.iter().enumerate() {
            for (si, s) in w.steps.iter().enumerate() {
                if let Some(v) = index.steps.get_mut(s.agent.index()) {
                    v.push((wi, si));
                }
            }
        }
        for (ei, e) in policy.exceptions.iter().enumerate() {
            for a in &e.agents {
                if let Some(v) = index.exceptions.get_mut(a.id.index()) {
                    if v.last() != Some(&ei) {
                        v.push(ei);
                    }
                }
            }
        }
        index
    }
}

/// Every route of an agent, in a stable order: capabilities, then workflow steps, then
/// exceptions.
pub fn routes(policy: &CheckedPolicy, agent: AgentId) -> Vec<Route> {
    routes_indexed(policy, &RouteIndex::new(policy), agent)
}

/// A route without its path: where an agent may connect, how, and the two entries the
/// path points at. [`route_steps`] is the route computation; [`routes_indexed`] only
/// adds the path and conditions, so a question that needs no path (which destinations
/// an agent reaches) never builds one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteStep {
    pub dest: DestId,
    pub via: Via,
    /// The entry that opens the route: the `uses` entry, the workflow step, or the
    /// agent's entry in the exception's `agents`.
    pub entry: egress_check::Span,
    /// The entry that names the destination: the capability's `connect` entry, or the
    /// exception's `to`.
    pub at: egress_check::Span,
}

/// Every route of an agent without its path, in the order of [`routes_indexed`].
pub fn route_steps(policy: &CheckedPolicy, index: &RouteIndex, agent: AgentId) -> Vec<RouteStep> {
    let mut out = Vec::new();
    let Some(a) = policy.agent(agent) else {
        return out;
    };
    let known = |d: DestId| policy.destination(d).is_some();
    let mut unconditional: BTreeSet<CapId> = BTreeSet::new();
    for (used, cap) in unconditional_capabilities(policy, a) {
        unconditional.insert(cap.id);
        for connect in cap.connects.iter().filter(|c| known(c.dest)) {
            out.push(RouteStep {
                dest: connect.dest,
                via: Via::Capability(cap.id),
                entry: used.span,
                at: connect.span,
            });
        }
    }
    let no_steps = Vec::new();
    // One route per (workflow, capability), however many steps use it.
    let mut seen_steps: BTreeSet<(WorkflowId, CapId)> = BTreeSet::new();
    for (wi, si) in index.steps.get(agent.index()).unwrap_or(&no_steps) {
        let Some(workflow) = policy.workflows.get(*wi) else {
            continue;
        };
        let Some(step) = workflow.steps.get(*si) else {
            continue;
        };
        let StepAction::Uses(cap_ref) = &step.action else {
            continue;
        };
        let Some(cap) = policy.capability(cap_ref.id) else {
            continue;
        };
        if unconditional.contains(&cap.id) || !seen_steps.insert((workflow.id, cap.id)) {
            continue;
        }
        if !cap.workflows.is_empty() && !cap.workflows.iter().any(|w| w.id == workflow.id) {
            continue;
        }
        for connect in cap.connects.iter().filter(|c| known(c.dest)) {
            out.push(RouteStep {
                dest: connect.dest,
                via: Via::Workflow {
                    workflow: workflow.id,
                    cap: cap.id,
                },
                entry: step.span,
                at: connect.span,
            });
        }
    }
    let no_exceptions = Vec::new();
    for ei in index
        .exceptions
        .get(agent.index())
        .unwrap_or(&no_exceptions)
    {
        let Some(exception) = policy.exceptions.get(*ei) else {
            continue;
        };
        let Some(listed) = exception.agents.iter().find(|r| r.id == agent) else {
            continue;
        };
        if !known(exception.to.id) {
            continue;
        }
        out.push(RouteStep {
            dest: exception.to.id,
            via: Via::Exception(exception.id),
            entry: listed.span,
            at: exception.to.span,
        });
    }
    out
}

/// [`routes`] with a prepared index: [`route_steps`] with their paths and conditions.
pub fn routes_indexed(policy: &CheckedPolicy, index: &RouteIndex, agent: AgentId) -> Vec<Route> {
    let Some(start) = agent_node(policy, agent) else {
        return Vec::new();
    };
    route_steps(policy, index, agent)
        .into_iter()
        .filter_map(|step| {
            let dest = dest_node(policy, step.dest, step.at)?;
            let (middle, conditions) = match step.via {
                Via::Capability(cap) => {
                    let cap = policy.capability(cap)?;
                    (
                        vec![PathNode {
                            kind: "capability",
                            name: cap.name.local.clone(),
                            span: step.entry,
                            note: format!("uses `{}`", cap.name.local),
                        }],
                        Vec::new(),
                    )
                }
                Via::Workflow { workflow, cap } => {
                    let (workflow, cap) = (policy.workflow(workflow)?, policy.capability(cap)?);
                    (
                        vec![
                            PathNode {
                                kind: "workflow",
                                name: workflow.name.local.clone(),
                                span: step.entry,
                                note: format!(
                                    "in workflow `{}` uses `{}`",
                                    workflow.name.local, cap.name.local
                                ),
                            },
                            PathNode {
                                kind: "capability",
                                name: cap.name.local.clone(),
                                span: cap.name.span,
                                note: format!("capability `{}`", cap.name.local),
                            },
                        ],
                        vec![format!("in workflow `{}`", workflow.name.local)],
                    )
                }
                Via::Exception(id) => {
                    let exception = policy.exception(id)?;
                    (
                        vec![PathNode {
                            kind: "exception",
                            name: exception.name.local.clone(),
                            span: step.entry,
                            note: format!("is listed in exception `{}`", exception.name.local),
                        }],
                        exception_conditions(policy, id),
                    )
                }
            };
            let mut path = Vec::with_capacity(middle.len() + 2);
            path.push(start.clone());
            path.extend(middle);
            path.push(dest);
            Some(Route {
                dest: step.dest,
                via: step.via,
                path,
                conditions,
            })
        })
        .collect()
}

/// The conditions under which an exception's path is open.
pub fn exception_conditions(policy: &CheckedPolicy, id: ExceptionId) -> Vec<String> {
    let Some(e) = policy.exception(id) else {
        return Vec::new();
    };
    let approver = policy
        .authority(e.approver.id)
        .map(|a| a.name.local.clone())
        .unwrap_or_default();
    let audit = policy
        .destination(e.audit.id)
        .map(|d| d.name.local.clone())
        .unwrap_or_default();
    let mut out = vec![
        format!("with a token signed by `{approver}`"),
        format!("token lifetime at most {}", format_duration(e.max_ttl_secs)),
    ];
    if let Some(n) = e.max_uses {
        out.push(format!("at most {n} connection(s) per token"));
    }
    out.push(format!("each use audited to `{audit}`"));
    out
}

/// Is the concrete connection in the destination?
pub fn dest_contains(dest: &Destination, c: &Connection) -> bool {
    if !dest.protocols.contains(&c.protocol) || !dest.ports.iter().any(|p| p.contains(c.port)) {
        return false;
    }
    dest.endpoints.iter().any(|e| match (&e.kind, &c.target) {
        (EndpointKind::Host(p), Target::Host(h)) => p.matches(h),
        (EndpointKind::Cidr(set), Target::Ip(ip)) => set.contains(*ip),
        (EndpointKind::Workload(sel), Target::Workload { namespace, labels }) => {
            sel.matches(namespace, labels)
        }
        _ => false,
    })
}

pub fn dest_id_contains(policy: &CheckedPolicy, dest: DestId, c: &Connection) -> bool {
    policy
        .destination(dest)
        .is_some_and(|d| dest_contains(d, c))
}

/// The capabilities an agent uses that are not limited to workflows, with the `uses`
/// entry naming each: the routes [`Via::Capability`] of [`routes_indexed`].
fn unconditional_capabilities<'p>(
    policy: &'p CheckedPolicy,
    agent: &'p Agent,
) -> impl Iterator<Item = (&'p Ref<CapId>, &'p Capability)> {
    agent.capabilities.iter().filter_map(move |used| {
        let cap = policy.capability(used.id)?;
        cap.workflows.is_empty().then_some((used, cap))
    })
}

/// Is this route open without any condition (no workflow, no exception token)? Exactly
/// these routes are what a static artifact (a NetworkPolicy, a seccomp profile, an
/// nftables table, the eBPF maps without tokens) enforces.
pub fn is_unconditional(route: &Route) -> bool {
    matches!(route.via, Via::Capability(_))
}

/// The destinations an agent reaches unconditionally, deduplicated, in id order.
pub fn unconditional_destinations(policy: &CheckedPolicy, agent: AgentId) -> Vec<&Destination> {
    // The capability routes of [`routes_indexed`], without building the index the
    // workflow and exception routes need.
    let mut ids: Vec<DestId> = policy
        .agent(agent)
        .into_iter()
        .flat_map(|a| unconditional_capabilities(policy, a))
        .flat_map(|(_, cap)| cap.connects.iter().map(|c| c.dest))
        .collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .filter_map(|id| policy.destination(id))
        .collect()
}

/// The connections of each route, in route order: what the agent may open, and how.
pub fn route_sets(policy: &CheckedPolicy, agent: AgentId) -> Vec<(Route, ConnectionSet)> {
    routes(policy, agent)
        .into_iter()
        .filter_map(|r| {
            let set = policy
                .destination(r.dest)
                .map(ConnectionSet::from_destination)?;
            Some((r, set))
        })
        .collect()
}

/// How a route reaches its destination, in words: ``capability `c` ``,
/// ``capability `c`, only in workflow `w` `` or ``exception `e` ``.
pub fn describe_via(policy: &CheckedPolicy, via: Via) -> String {
    let cap_name = |id| {
        policy
            .capability(id)
            .map(|c| c.name.local.as_str())
            .unwrap_or("?")
    };
    match via {
        Via::Capability(cap) => format!("capability `{}`", cap_name(cap)),
        Via::Workflow { workflow, cap } => format!(
            "capability `{}`, only in workflow `{}`",
            cap_name(cap),
            policy
                .workflow(workflow)
                .map(|w| w.name.local.as_str())
                .unwrap_or("?")
        ),
        Via::Exception(e) => format!(
            "exception `{}`",
            policy
                .exception(e)
                .map(|e| e.name.local.as_str())
                .unwrap_or("?")
        ),
    }
}
