//! User assertions (`assert NAME { ... }`), each its own property `assert:NAME`.

use super::*;

impl Ctx<'_> {
    pub(super) fn check_asserts(&self) -> Vec<Finding> {
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
                                            let confirmed = self.concrete_holdings().get(a.index()).is_some_and(|h| h.contains(&class.id))
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
}
