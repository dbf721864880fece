//! The property `within-boundary`: everything every agent of a policy can reach lies
//! inside an organisation's boundary, itself a policy in the same language.
//!
//! The boundary states four things with items the language already has:
//! - **destinations**: the `approve` entries of its zones (a zone with `agents *` applies
//!   to every agent; a zone that lists agents applies to the policy's agents of those
//!   names);
//! - **data-class rules**: a class the boundary declares (`data pii`, matched by name) may
//!   travel only to the destinations its zones `clear` it to;
//! - **maximum exception lifetimes**: its `authority` items. Every exception must be
//!   approved by an authority whose key is one of the boundary's, with a `max_ttl` at
//!   most that boundary authority's `max_ttl`;
//! - **forbidden Linux capabilities**: every Linux capability the boundary's zones do not
//!   approve (`approve grant`), and every local socket they do not approve
//!   (`approve unix`).
//!
//! Reach is counted on the policy's own routes (capabilities, workflow steps, exceptions
//! with their `to` at its widest) and, for data classes, along delegation chains: the
//! same routes, set algebra and replay as every other property.

use egress_check::{CheckedPolicy, DataClassId};

use super::*;

/// The boundary, prepared for one policy.
struct Prepared<'b> {
    boundary: &'b CheckedPolicy,
    dest_boxes: Vec<Vec<ConnBox>>,
}

impl<'b> Prepared<'b> {
    fn new(boundary: &'b CheckedPolicy) -> Prepared<'b> {
        Prepared {
            boundary,
            dest_boxes: boundary
                .destinations
                .iter()
                .map(destination_boxes)
                .collect(),
        }
    }

    /// The boundary's zones that apply to the policy's agent named `name`.
    fn zones_for<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a egress_check::Zone> {
        self.boundary.zones.iter().filter(move |z| match &z.agents {
            egress_check::ZoneAgents::All(_) => true,
            egress_check::ZoneAgents::Listed(list) => list.iter().any(|a| {
                self.boundary
                    .agent(a.id)
                    .is_some_and(|b| b.name.local == name)
            }),
        })
    }

    fn union(&self, dests: impl IntoIterator<Item = DestId>) -> (Allowed, Vec<DestId>) {
        let ids: Vec<DestId> = dests.into_iter().collect();
        let boxes = ids
            .iter()
            .filter_map(|d| self.dest_boxes.get(d.index()))
            .flat_map(|b| b.iter().cloned())
            .collect();
        (
            Allowed {
                dests: BTreeSet::new(),
                index: BoxIndex::new(boxes),
            },
            ids,
        )
    }

    /// The destinations the boundary allows for an agent, as boxes and as ids.
    fn destinations(&self, agent: &str) -> (Allowed, Vec<DestId>) {
        self.union(
            self.zones_for(agent)
                .flat_map(|z| z.approve.iter().map(|r| r.id))
                .collect::<Vec<_>>(),
        )
    }

    /// The boundary's class of this name, if it declares one.
    fn class(&self, name: &str) -> Option<DataClassId> {
        self.boundary
            .data_classes
            .iter()
            .find(|c| c.name.local == name)
            .map(|c| c.id)
    }

    /// Where the boundary lets class `class` (its own id) travel from an agent.
    fn clearance(&self, agent: &str, class: DataClassId) -> (Allowed, Vec<DestId>) {
        self.union(
            self.zones_for(agent)
                .flat_map(|z| z.clearances.iter())
                .filter(|c| c.class.id == class)
                .flat_map(|c| c.to.iter().map(|r| r.id))
                .collect::<Vec<_>>(),
        )
    }

    /// The concrete evaluator on the boundary's own model: is `c` in one of `dests`?
    fn contains(&self, dests: &[DestId], c: &Connection) -> bool {
        dests.iter().any(|d| {
            self.boundary
                .destination(*d)
                .is_some_and(|d| eval::dest_contains(d, c))
        })
    }
}

impl Ctx<'_> {
    pub(super) fn check_boundary(&self, boundary: &CheckedPolicy) -> Vec<Finding> {
        let prepared = Prepared::new(boundary);
        let mut out: Vec<Finding> = self
            .policy
            .agents
            .par_iter()
            .map(|a| self.boundary_agent(&prepared, a.id))
            .flatten()
            .collect();
        for e in &self.policy.exceptions {
            out.extend(self.boundary_exception(&prepared, e.id));
        }
        out
    }

    fn boundary_agent(&self, b: &Prepared<'_>, agent: AgentId) -> Vec<Finding> {
        let mut out = Vec::new();
        let Some(a) = self.policy.agent(agent) else {
            return out;
        };
        let name = a.name.local.clone();
        let routes = eval::routes_indexed(self.policy, &self.index, agent);

        // Destinations: every route, exceptions at their widest.
        let (allowed, allowed_ids) = b.destinations(&name);
        for route in &routes {
            match self.outside(route.dest, &allowed) {
                Answer::Holds => {}
                Answer::Unknown(reason) => {
                    out.push(self.unknown(Property::WithinBoundary, reason, route))
                }
                Answer::Witness(w) => {
                    let confirmed =
                        self.route_allows(agent, route, &w) && !b.contains(&allowed_ids, &w);
                    let message = format!(
                        "{}; `{w}` is outside the boundary: no destination it approves for `{name}` holds it; witness `{w}`",
                        story(&route.path)
                    );
                    out.push(self.finding(
                        confirmed,
                        Violation {
                            property: Property::WithinBoundary,
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

        // Data classes the boundary declares, held directly or by delegation.
        let held: Vec<DataClassId> = self
            .graph
            .held
            .get(agent.index())
            .map(|h| h.keys().copied().collect())
            .unwrap_or_default();
        for class in held {
            let cname = class_name(self.policy, class);
            let Some(boundary_class) = b.class(&cname) else {
                continue;
            };
            let (cleared, cleared_ids) = b.clearance(&name, boundary_class);
            for route in &routes {
                match self.outside(route.dest, &cleared) {
                    Answer::Holds => {}
                    Answer::Unknown(reason) => {
                        out.push(self.unknown(Property::WithinBoundary, reason, route))
                    }
                    Answer::Witness(w) => {
                        let confirmed = self
                            .concrete_holdings()
                            .get(agent.index())
                            .is_some_and(|h| h.contains(&class))
                            && self.route_allows(agent, route, &w)
                            && !b.contains(&cleared_ids, &w);
                        let (origin, path, mut conditions) = self.data_path(agent, class, route);
                        conditions.extend(route.conditions.iter().cloned());
                        let message = format!(
                            "{}; the boundary does not clear `{cname}` for `{w}`; witness `{w}`",
                            story(&path)
                        );
                        out.push(self.finding(
                            confirmed,
                            Violation {
                                property: Property::WithinBoundary,
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

        // Linux capabilities and local sockets: only those the boundary approves.
        let Some(start) = agent_node(self.policy, agent) else {
            return out;
        };
        let approved_caps: BTreeSet<LinuxCap> = b
            .zones_for(&name)
            .flat_map(|z| z.approve_caps.iter().map(|c| c.cap))
            .collect();
        let approved_unix: BTreeSet<&str> = b
            .zones_for(&name)
            .flat_map(|z| z.approve_unix.iter().map(|u| u.path.as_str()))
            .collect();
        let granted = self.policy.linux_caps_of(a);
        let sockets = self.policy.unix_sockets_of(a);
        let mut reported: BTreeSet<LinuxCap> = BTreeSet::new();
        for used in &a.capabilities {
            let Some(cap) = self.policy.capability(used.id) else {
                continue;
            };
            let cap_node = PathNode {
                kind: "capability",
                name: cap.name.local.clone(),
                span: used.span,
                note: format!("uses `{}`", cap.name.local),
            };
            for g in &cap.linux_caps {
                if approved_caps.contains(&g.cap) || !reported.insert(g.cap) {
                    continue;
                }
                let path = vec![
                    start.clone(),
                    cap_node.clone(),
                    PathNode {
                        kind: "grant",
                        name: g.cap.to_string(),
                        span: g.span,
                        note: format!("which grants `{}`", g.cap),
                    },
                ];
                let message = format!(
                    "{}; the boundary forbids `{}` for `{name}` (none of its zones says `approve grant {}`)",
                    story(&path),
                    g.cap,
                    g.cap
                );
                out.push(self.finding(
                    granted.contains(&g.cap),
                    Violation {
                        property: Property::WithinBoundary,
                        agent: name.clone(),
                        path,
                        witness: None,
                        conditions: vec![format!("`{}` granted", g.cap)],
                        message,
                    },
                ));
            }
            for socket in &cap.unix_sockets {
                if approved_unix.contains(socket.path.as_str()) || !sockets.contains(&socket.path) {
                    continue;
                }
                let path = vec![
                    start.clone(),
                    cap_node.clone(),
                    PathNode {
                        kind: "unix",
                        name: socket.path.clone(),
                        span: socket.span,
                        note: format!("which may use the local socket `{}`", socket.path),
                    },
                ];
                let message = format!(
                    "{}; the boundary does not approve the local socket `{}` for `{name}`",
                    story(&path),
                    socket.path
                );
                out.push(Finding::Violation(Violation {
                    property: Property::WithinBoundary,
                    agent: name.clone(),
                    path,
                    witness: None,
                    conditions: vec![format!("local socket `{}`", socket.path)],
                    message,
                }));
            }
        }
        out
    }

    /// Maximum exception lifetimes: the approver's key must be a boundary authority's,
    /// and the exception's `max_ttl` within that authority's.
    fn boundary_exception(&self, b: &Prepared<'_>, id: egress_check::ExceptionId) -> Vec<Finding> {
        let mut out = Vec::new();
        let Some(e) = self.policy.exception(id) else {
            return out;
        };
        let Some(approver) = self.policy.authority(e.approver.id) else {
            return out;
        };
        let agent = e
            .agents
            .first()
            .map(|a| agent_name(self.policy, a.id))
            .unwrap_or_default();
        let ename = &e.name.local;
        let limit = b
            .boundary
            .authorities
            .iter()
            .filter(|a| a.key == approver.key)
            .map(|a| (a.max_ttl_secs, a.name.local.clone()))
            .max();
        match limit {
            None => {
                let path = vec![PathNode {
                    kind: "exception",
                    name: ename.clone(),
                    span: e.approver.span,
                    note: format!("is approved by `{}`", approver.name.local),
                }];
                out.push(Finding::Violation(Violation {
                    property: Property::WithinBoundary,
                    agent,
                    path,
                    witness: None,
                    conditions: vec![format!("token signed by `{}`", approver.name.local)],
                    message: format!(
                        "exception `{ename}` is approved by `{}`, whose key is not an authority of the boundary",
                        approver.name.local
                    ),
                }));
            }
            Some((max, boundary_name)) if e.max_ttl_secs > max => {
                let path = vec![PathNode {
                    kind: "exception",
                    name: ename.clone(),
                    span: e.max_ttl_span,
                    note: format!("allows tokens of {}", format_duration(e.max_ttl_secs)),
                }];
                out.push(Finding::Violation(Violation {
                    property: Property::WithinBoundary,
                    agent,
                    path,
                    witness: None,
                    conditions: vec![format!(
                        "token lifetime at most {}",
                        format_duration(e.max_ttl_secs)
                    )],
                    message: format!(
                        "exception `{ename}` allows tokens of {}, longer than the boundary allows for `{boundary_name}` ({})",
                        format_duration(e.max_ttl_secs),
                        format_duration(max)
                    ),
                }));
            }
            Some(_) => {}
        }
        out
    }
}
