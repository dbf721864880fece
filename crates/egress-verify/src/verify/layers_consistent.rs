//! `layers-consistent`: syscalls, Linux capabilities and DNS agree with the network
//! policy.

use super::*;

impl Ctx<'_> {
    pub(super) fn check_layers(
        &self,
        agent: AgentId,
        routes: &[Route],
        approved: &Allowed,
    ) -> Vec<Finding> {
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
}
