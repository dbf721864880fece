//! `data-clearance`: a data class an agent holds (its own or along delegation chains)
//! goes only to destinations its zones clear for it.

use super::*;

impl Ctx<'_> {
    pub(super) fn check_data_clearance(
        &self,
        agent: AgentId,
        routes: &[Route],
        out: &mut Vec<Finding>,
    ) {
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
            for route in routes {
                match self.outside(route.dest, clearance) {
                    Answer::Holds => {}
                    Answer::Unknown(reason) => {
                        out.push(self.unknown(Property::DataClearance, reason, route))
                    }
                    Answer::Witness(w) => {
                        let confirmed = self
                            .concrete_holdings()
                            .get(agent.index())
                            .is_some_and(|h| h.contains(&class))
                            && self.route_allows_in(routes, route, &w)
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
    }
}

impl Ctx<'_> {
    /// The path of a data-clearance violation: from the agent that handles the class,
    /// along the invocations, to the destination.
    pub(super) fn data_path(
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
}
