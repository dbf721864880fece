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
        // (Exception routes are checked by `exception-gated`.) With Z3 answering, the
        // agent's whole question is asked first in a few calls; only the destinations it
        // could not clear are then asked one by one.
        let suspects = match self.decider.engine {
            Engine::Smt => Some(self.smt_suspects(routes, approved)),
            Engine::Fast | Engine::Both => None,
        };
        for route in routes.iter().filter(|r| !r.is_exception()) {
            if suspects.as_ref().is_some_and(|s| !s.contains(&route.dest)) {
                continue;
            }
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
    /// The destinations of the agent's (non-exception) routes that Z3 could not prove
    /// approved all at once: one call for all of them; each witness names the
    /// destinations it lies in, which leave the question, until the rest is proven (or Z3
    /// cannot decide, and every remaining destination is asked alone). A destination not
    /// returned lies, every box of it, in the approvals: the union asked against holds,
    /// for each box, every approval box the index says may meet it.
    fn smt_suspects(&self, routes: &[Route], approved: &Allowed) -> BTreeSet<DestId> {
        let mut remaining: Vec<DestId> = routes
            .iter()
            .filter(|r| !r.is_exception() && !approved.dests.contains(&r.dest))
            .map(|r| r.dest)
            .collect();
        remaining.sort();
        remaining.dedup();
        let boxes_of = |d: &DestId| {
            self.dest_boxes
                .get(d.index())
                .map(Vec::as_slice)
                .unwrap_or(&[])
        };
        let mut suspects = BTreeSet::new();
        while !remaining.is_empty() {
            let any_of: Vec<&ConnBox> = remaining.iter().flat_map(boxes_of).collect();
            let mut union: Vec<&ConnBox> =
                any_of.iter().flat_map(|b| approved.relevant(b)).collect();
            union.sort_by_key(|b| *b as *const ConnBox as usize);
            union.dedup_by(|a, b| std::ptr::eq(*a, *b));
            match self.decider.any_difference_smt(&any_of, &union) {
                Answer::Holds => break,
                Answer::Witness(w) => {
                    let (hit, rest): (Vec<DestId>, Vec<DestId>) = remaining
                        .iter()
                        .partition(|d| boxes_of(d).iter().any(|b| b.contains(&w)));
                    if hit.is_empty() {
                        suspects.extend(rest);
                        break;
                    }
                    suspects.extend(hit);
                    remaining = rest;
                }
                Answer::Unknown(_) => {
                    suspects.extend(remaining);
                    break;
                }
            }
        }
        suspects
    }

    /// With `--engine smt`: do the boxes of these destinations all miss `x` (an address
    /// box: the unspecified or the metadata addresses)? One Z3 call for the agent; `false`
    /// (ask destination by destination) when they may meet it or Z3 cannot tell.
    pub(super) fn smt_none_meet(&self, dests: &[DestId], x: &ConnBox) -> bool {
        if self.decider.engine != Engine::Smt {
            return false;
        }
        let meets: Vec<ConnBox> = dests
            .iter()
            .flat_map(|d| {
                self.dest_boxes
                    .get(d.index())
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
            })
            .filter_map(|b| crate::sets::box_meet(b, x))
            .collect();
        let refs: Vec<&ConnBox> = meets.iter().collect();
        matches!(self.decider.any_difference_smt(&refs, &[]), Answer::Holds)
    }

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
