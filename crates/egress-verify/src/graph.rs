//! The reachability graph: agents, invocations, workflows, capabilities, destinations and
//! exceptions as a petgraph graph, and the data-class fixpoint over invocation edges.

use std::collections::{BTreeMap, VecDeque};

use egress_check::{
    AgentId, CapId, CheckedPolicy, DataClassId, DestId, ExceptionId, Span, StepAction, WorkflowId,
};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    Agent(AgentId),
    Capability(CapId),
    Destination(DestId),
    Workflow(WorkflowId),
    Exception(ExceptionId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Agent → capability (`uses`).
    Uses,
    /// Capability → destination (`connect`).
    Connects,
    /// Agent → agent: data travels. `passing: None` lets every class through.
    Invokes {
        span: Span,
        passing: Option<Vec<DataClassId>>,
        workflow: Option<WorkflowId>,
    },
    /// Workflow → capability (a step `uses` it) and workflow → agent (a step's agent).
    Step,
    /// Agent → exception (listed in it).
    Listed,
    /// Exception → destination (`to` and `audit`).
    ExceptionTo,
}

/// Where an agent got a data class from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// It handles the class itself (`handles`), at this span.
    Own(Span),
    /// It received the class when `from` invoked it, at the invocation's span.
    Received {
        from: AgentId,
        span: Span,
        workflow: Option<WorkflowId>,
    },
}

/// One invocation a class travelled along: (from, to, span, workflow of a step).
pub type Hop = (AgentId, AgentId, Span, Option<WorkflowId>);

pub struct ReachGraph {
    pub graph: DiGraph<Node, Edge>,
    pub agents: Vec<NodeIndex>,
    pub capabilities: Vec<NodeIndex>,
    /// Per agent: each class it holds and where it came from (a shortest chain).
    pub held: Vec<BTreeMap<DataClassId, Provenance>>,
}

impl ReachGraph {
    pub fn build(policy: &CheckedPolicy) -> ReachGraph {
        let mut graph = DiGraph::new();
        let agents: Vec<NodeIndex> = policy
            .agents
            .iter()
            .map(|a| graph.add_node(Node::Agent(a.id)))
            .collect();
        let capabilities: Vec<NodeIndex> = policy
            .capabilities
            .iter()
            .map(|c| graph.add_node(Node::Capability(c.id)))
            .collect();
        let destinations: Vec<NodeIndex> = policy
            .destinations
            .iter()
            .map(|d| graph.add_node(Node::Destination(d.id)))
            .collect();
        let workflows: Vec<NodeIndex> = policy
            .workflows
            .iter()
            .map(|w| graph.add_node(Node::Workflow(w.id)))
            .collect();
        let exceptions: Vec<NodeIndex> = policy
            .exceptions
            .iter()
            .map(|e| graph.add_node(Node::Exception(e.id)))
            .collect();
        let node = |v: &Vec<NodeIndex>, i: usize| v.get(i).copied();
        for cap in &policy.capabilities {
            for c in &cap.connects {
                if let (Some(a), Some(b)) = (
                    node(&capabilities, cap.id.index()),
                    node(&destinations, c.dest.index()),
                ) {
                    graph.add_edge(a, b, Edge::Connects);
                }
            }
        }
        for agent in &policy.agents {
            let Some(from) = node(&agents, agent.id.index()) else {
                continue;
            };
            for used in &agent.capabilities {
                if let Some(c) = node(&capabilities, used.id.index()) {
                    graph.add_edge(from, c, Edge::Uses);
                }
            }
            for inv in &agent.invokes {
                if let Some(to) = node(&agents, inv.callee.index()) {
                    graph.add_edge(
                        from,
                        to,
                        Edge::Invokes {
                            span: inv.span,
                            passing: inv
                                .passing
                                .as_ref()
                                .map(|p| p.iter().map(|r| r.id).collect()),
                            workflow: None,
                        },
                    );
                }
            }
        }
        for w in &policy.workflows {
            let Some(wn) = node(&workflows, w.id.index()) else {
                continue;
            };
            for step in &w.steps {
                let Some(an) = node(&agents, step.agent.index()) else {
                    continue;
                };
                graph.add_edge(wn, an, Edge::Step);
                match &step.action {
                    StepAction::Uses(cap) => {
                        if let Some(c) = node(&capabilities, cap.id.index()) {
                            graph.add_edge(wn, c, Edge::Step);
                        }
                    }
                    StepAction::Invokes { callee, passing } => {
                        if let Some(to) = node(&agents, callee.id.index()) {
                            graph.add_edge(
                                an,
                                to,
                                Edge::Invokes {
                                    span: step.span,
                                    // A step without `passing` lets everything through,
                                    // as an `invokes` entry without it does.
                                    passing: (!passing.is_empty())
                                        .then(|| passing.iter().map(|r| r.id).collect()),
                                    workflow: Some(w.id),
                                },
                            );
                        }
                    }
                }
            }
        }
        for e in &policy.exceptions {
            let Some(en) = node(&exceptions, e.id.index()) else {
                continue;
            };
            for a in &e.agents {
                if let Some(an) = node(&agents, a.id.index()) {
                    graph.add_edge(an, en, Edge::Listed);
                }
            }
            for d in [e.to.id, e.audit.id] {
                if let Some(dn) = node(&destinations, d.index()) {
                    graph.add_edge(en, dn, Edge::ExceptionTo);
                }
            }
        }
        let held = propagate(&graph, &agents, policy);
        ReachGraph {
            graph,
            agents,
            capabilities,
            held,
        }
    }

    /// Capabilities that no agent uses and no workflow step uses.
    pub fn unused_capabilities(&self) -> Vec<CapId> {
        self.capabilities
            .iter()
            .filter(|n| {
                self.graph
                    .edges_directed(**n, Direction::Incoming)
                    .all(|e| !matches!(e.weight(), Edge::Uses | Edge::Step))
            })
            .filter_map(|n| match self.graph.node_weight(*n) {
                Some(Node::Capability(c)) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// The chain by which `agent` holds `class`: the invocations from the agent that
    /// handles it, in order (empty when the agent handles it itself).
    pub fn chain(&self, agent: AgentId, class: DataClassId) -> (AgentId, Vec<Hop>) {
        let mut steps = Vec::new();
        let mut current = agent;
        let mut guard = 0usize;
        while let Some(Provenance::Received {
            from,
            span,
            workflow,
        }) = self
            .held
            .get(current.index())
            .and_then(|h| h.get(&class))
            .copied()
        {
            steps.push((from, current, span, workflow));
            current = from;
            guard += 1;
            if guard > self.agents.len() {
                break;
            }
        }
        steps.reverse();
        (current, steps)
    }
}

/// Breadth-first fixpoint: each (agent, class) is reached once, by a shortest chain of
/// invocations. Cycles terminate because a class is added to an agent at most once.
fn propagate(
    graph: &DiGraph<Node, Edge>,
    agents: &[NodeIndex],
    policy: &CheckedPolicy,
) -> Vec<BTreeMap<DataClassId, Provenance>> {
    let mut held: Vec<BTreeMap<DataClassId, Provenance>> = policy
        .agents
        .iter()
        .map(|a| {
            a.handles
                .iter()
                .map(|h| (h.id, Provenance::Own(h.span)))
                .collect()
        })
        .collect();
    let mut queue: VecDeque<(AgentId, DataClassId)> = VecDeque::new();
    for (i, h) in held.iter().enumerate() {
        for c in h.keys() {
            queue.push_back((AgentId(u32::try_from(i).unwrap_or(u32::MAX)), *c));
        }
    }
    while let Some((agent, class)) = queue.pop_front() {
        let Some(n) = agents.get(agent.index()) else {
            continue;
        };
        for edge in graph.edges_directed(*n, Direction::Outgoing) {
            let Edge::Invokes {
                span,
                passing,
                workflow,
            } = edge.weight()
            else {
                continue;
            };
            if passing.as_ref().is_some_and(|p| !p.contains(&class)) {
                continue;
            }
            let Some(Node::Agent(callee)) = graph.node_weight(edge.target()).copied() else {
                continue;
            };
            if let Some(h) = held.get_mut(callee.index()) {
                if let std::collections::btree_map::Entry::Vacant(slot) = h.entry(class) {
                    slot.insert(Provenance::Received {
                        from: agent,
                        span: *span,
                        workflow: *workflow,
                    });
                    queue.push_back((callee, class));
                }
            }
        }
    }
    held
}
