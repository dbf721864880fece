//! `egress-approved`: everything an agent can reach, through its capabilities and
//! workflow steps, lies in the approvals of its zones; local sockets included.

use super::*;

impl Ctx<'_> {
    /// The network half: every capability and workflow route lies in the approvals.
    pub(super) fn check_egress_approved(
        &self,
        agent: AgentId,
        name: &str,
        routes: &[Route],
        approved: &Allowed,
        out: &mut Vec<Finding>,
    ) {
        // egress-approved: every capability and workflow route lies in the approvals.
        // (Exception routes are checked by `exception-gated`.)
        for route in routes.iter().filter(|r| !r.is_exception()) {
            match self.outside(route.dest, approved) {
                Answer::Holds => {}
                Answer::Unknown(reason) => {
                    out.push(self.unknown(Property::EgressApproved, reason, route))
                }
                Answer::Witness(w) => {
                    let confirmed = self.route_allows_in(routes, route, &w)
                        && !eval::approved_indexed(self.policy, &self.zone_index, agent, &w);
                    let message = format!(
                        "{}; `{w}` is not approved for `{name}`; witness `{w}`",
                        story(&route.path)
                    );
                    out.push(self.finding(
                        confirmed,
                        Violation {
                            property: Property::EgressApproved,
                            agent: name.to_string(),
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

impl Ctx<'_> {
    /// egress-approved for local sockets: every socket path of a capability the agent can
    /// use is approved by one of its zones (`approve unix "..."`).
    pub(super) fn check_unix_approvals(&self, agent: AgentId) -> Vec<Finding> {
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
}
