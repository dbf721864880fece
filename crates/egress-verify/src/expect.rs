//! Expectations of `egc test`: "agent A can/cannot reach X", "data C can/cannot reach X",
//! "exception E opens only D". Each is decided on the routes of [`eval`] and the set
//! algebra of [`sets`], like the properties, and a failure carries the path that
//! contradicts it and, where it is about a connection, a witness.

use egress_check::{AgentId, CheckedPolicy, DataClassId, DestId, ExceptionId};

use crate::eval::{self, agent_node, Route};
use crate::graph::ReachGraph;
use crate::report::PathNode;
use crate::sets::{Connection, ConnectionSet};

/// What an expectation is about: one concrete connection, or every connection of a
/// destination of the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    Connection(Connection),
    Destination(DestId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// `agent A can reach X` (`can: true`): a capability or workflow route of `A` reaches
    /// a connection of X (exceptions are not a standing grant and do not count).
    /// `agent A cannot reach X`: no route of A, exceptions included, reaches X.
    /// `agent: None` is `agent *`: every agent of the policy (so `agent * can reach X`
    /// needs each agent to reach X, and holds vacuously when there is none).
    Agent {
        agent: Option<AgentId>,
        can: bool,
        reach: Reach,
    },
    /// `data C can reach X`: an agent holding C (itself or by delegation) has a
    /// capability or workflow route to X. `cannot`: no agent holding C has any route to X.
    Data {
        class: DataClassId,
        can: bool,
        reach: Reach,
    },
    /// `exception E opens only D, ...`: every connection of E's `to` lies in the union.
    ExceptionOnly {
        exception: ExceptionId,
        within: Vec<DestId>,
    },
}

/// The result of one expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// The path that contradicts the expectation (empty when the contradiction is that
    /// no path exists), a witness connection where there is one, and a sentence.
    Fail {
        path: Vec<PathNode>,
        witness: Option<Connection>,
        message: String,
    },
}

fn fail(path: Vec<PathNode>, witness: Option<Connection>, message: String) -> Outcome {
    Outcome::Fail {
        path,
        witness,
        message,
    }
}

/// A connection of `route` that is in `reach`; `Err` when the set algebra gave up.
fn meet(policy: &CheckedPolicy, route: &Route, reach: &Reach) -> Result<Option<Connection>, ()> {
    let Some(dest) = policy.destination(route.dest) else {
        return Ok(None);
    };
    match reach {
        Reach::Connection(c) => Ok(eval::dest_contains(dest, c).then(|| c.clone())),
        Reach::Destination(d) => {
            let Some(other) = policy.destination(*d) else {
                return Ok(None);
            };
            let w = ConnectionSet::from_destination(dest)
                .intersection_witness(&ConnectionSet::from_destination(other))
                .map_err(|_| ())?;
            // Replay on the model itself.
            Ok(w.filter(|w| eval::dest_contains(dest, w) && eval::dest_contains(other, w)))
        }
    }
}

fn describe(policy: &CheckedPolicy, reach: &Reach) -> String {
    match reach {
        Reach::Connection(c) => format!("`{c}`"),
        Reach::Destination(d) => policy
            .destination(*d)
            .map(|d| format!("`{}`", d.name.local))
            .unwrap_or_default(),
    }
}

fn story(path: &[PathNode]) -> String {
    path.iter()
        .map(|n| n.note.as_str())
        .filter(|n| !n.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decides one expectation.
pub fn check(policy: &CheckedPolicy, expectation: &Expectation) -> Outcome {
    match expectation {
        Expectation::Agent { agent, can, reach } => {
            let agents: Vec<AgentId> = match agent {
                Some(a) => vec![*a],
                None => policy.agents.iter().map(|a| a.id).collect(),
            };
            if *can {
                // Every agent must reach X: the first that does not fails the expectation.
                for a in &agents {
                    if let fail @ Outcome::Fail { .. } =
                        check_agents(policy, &[*a], true, reach, |_| Vec::new())
                    {
                        return fail;
                    }
                }
                return Outcome::Pass;
            }
            check_agents(policy, &agents, *can, reach, |_| Vec::new())
        }
        Expectation::Data { class, can, reach } => {
            let graph = ReachGraph::build(policy);
            let holders: Vec<AgentId> = policy
                .agents
                .iter()
                .map(|a| a.id)
                .filter(|a| {
                    graph
                        .held
                        .get(a.index())
                        .is_some_and(|h| h.contains_key(class))
                })
                .collect();
            let cname = policy
                .data_class(*class)
                .map(|c| c.name.local.clone())
                .unwrap_or_default();
            check_agents(policy, &holders, *can, reach, |agent| {
                data_prefix(policy, &graph, agent, *class, &cname)
            })
        }
        Expectation::ExceptionOnly { exception, within } => {
            let Some(e) = policy.exception(*exception) else {
                return fail(Vec::new(), None, "no such exception".to_string());
            };
            let Some(to) = policy.destination(e.to.id) else {
                return Outcome::Pass;
            };
            let mut union = ConnectionSet::default();
            for d in within.iter().filter_map(|d| policy.destination(*d)) {
                union.extend(&ConnectionSet::from_destination(d));
            }
            match ConnectionSet::from_destination(to).difference_witness(&union) {
                Ok(None) => Outcome::Pass,
                Ok(Some(w)) => {
                    let path = vec![PathNode {
                        kind: "exception",
                        name: e.name.local.clone(),
                        span: e.to.span,
                        note: format!(
                            "exception `{}` opens `{}`",
                            e.name.local,
                            eval::describe_destination(to)
                        ),
                    }];
                    let message = format!(
                        "{}, which holds `{w}`, outside what it should open only; witness `{w}`",
                        story(&path)
                    );
                    fail(path, Some(w), message)
                }
                Err(_) => fail(
                    Vec::new(),
                    None,
                    "undecided: the host search exceeded its budget".to_string(),
                ),
            }
        }
    }
}

/// The path by which `agent` holds `class`: from the agent that handles it along each
/// invocation.
fn data_prefix(
    policy: &CheckedPolicy,
    graph: &ReachGraph,
    agent: AgentId,
    class: DataClassId,
    cname: &str,
) -> Vec<PathNode> {
    let (origin, chain) = graph.chain(agent, class);
    let mut path = Vec::new();
    if let Some(mut start) = agent_node(policy, origin) {
        start.note = format!("agent `{}` handles `{cname}`", start.name);
        path.push(start);
    }
    for (_, to, span, _) in chain {
        let callee = policy
            .agent(to)
            .map(|a| a.name.local.clone())
            .unwrap_or_default();
        path.push(PathNode {
            kind: "invokes",
            name: callee.clone(),
            span,
            note: format!("invokes `{callee}`, and `{cname}` travels along"),
        });
    }
    path
}

fn check_agents(
    policy: &CheckedPolicy,
    agents: &[AgentId],
    can: bool,
    reach: &Reach,
    prefix: impl Fn(AgentId) -> Vec<PathNode>,
) -> Outcome {
    let target = describe(policy, reach);
    for agent in agents {
        for route in eval::routes(policy, *agent) {
            // `can` counts standing grants only; `cannot` counts every route.
            if can && route.is_exception() {
                continue;
            }
            match meet(policy, &route, reach) {
                Ok(None) => {}
                Ok(Some(w)) => {
                    if can {
                        return Outcome::Pass;
                    }
                    let mut path = prefix(*agent);
                    let skip = usize::from(!path.is_empty());
                    path.extend(route.path.iter().skip(skip).cloned());
                    let mut message = format!("{}; witness `{w}`", story(&path));
                    if !route.conditions.is_empty() {
                        message.push_str(&format!(" (when {})", route.conditions.join("; ")));
                    }
                    return fail(path, Some(w), message);
                }
                Err(()) => {
                    return fail(
                        route.path.clone(),
                        None,
                        "undecided: the host search exceeded its budget".to_string(),
                    )
                }
            }
        }
    }
    if can {
        let who = match agents {
            [one] => policy
                .agent(*one)
                .map(|a| format!("agent `{}`", a.name.local))
                .unwrap_or_default(),
            [] => "no agent holds it, so nothing".to_string(),
            _ => "no agent of them".to_string(),
        };
        return fail(
            Vec::new(),
            None,
            format!("{who} has no capability or workflow route to {target}"),
        );
    }
    Outcome::Pass
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn policy(text: &str) -> CheckedPolicy {
        let result = egress_check::check_sources(&[("t.egress", text)]);
        result
            .policy
            .unwrap_or_else(|| panic!("{:#?}", result.diagnostics))
    }

    /// `agent * can reach X` needs every agent to reach X, as the `assert` claim does.
    #[test]
    fn every_agent_can_reach() {
        let text = |second: &str| {
            format!(
                "destination a {{ cidr 10.0.0.1/32 port 80 }}\n\
                 destination b {{ cidr 10.0.0.2/32 port 80 }}\n\
                 capability ca {{ connect a }}\n\
                 capability cb {{ connect {second} }}\n\
                 agent one {{ uses ca }}\n\
                 agent two {{ uses cb }}\n"
            )
        };
        let every = |p: &CheckedPolicy| Expectation::Agent {
            agent: None,
            can: true,
            reach: Reach::Destination(p.destinations.first().unwrap().id),
        };
        let both = policy(&text("a"));
        assert_eq!(check(&both, &every(&both)), Outcome::Pass);
        let one = policy(&text("b"));
        match check(&one, &every(&one)) {
            Outcome::Fail { message, .. } => assert!(message.contains("`two`"), "{message}"),
            Outcome::Pass => panic!("agent `two` does not reach `a`"),
        }
        // Vacuous with no agents.
        let none = policy("destination a { cidr 10.0.0.1/32 port 80 }\n");
        assert_eq!(check(&none, &every(&none)), Outcome::Pass);
    }
}
