//! The brute-force oracle: every property decided by enumerating a finite universe of
//! concrete connections through the concrete evaluator, with no set algebra and no
//! solver.
//!
//! The universe comes from the policy's constants plus boundaries: the first and last
//! address of every network, exclusion and metadata network and their neighbours, every port range's ends
//! and their neighbours, every host pattern instantiated with each constant label and a
//! fresh one (for `**`, one or more labels up to the longest pattern), the apex of each
//! wildcard and one label beyond each exact host, and each workload selector's own labels,
//! merged with every other selector's. For the small policies of the differential test
//! this universe contains a witness whenever one exists; the verifier and the oracle must
//! agree on every property.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_check::{
    AgentId, AgentSel, CheckedPolicy, ClaimKind, EndpointKind, HostLabel, LinuxCap, Protocol,
    MAX_EXCEPTION_TTL_SECS,
};

use crate::eval::{self, Route, RouteIndex};
use crate::report::*;
use crate::sets::{fresh_label, Connection, Target};
use crate::verify::{NETWORK_SYSCALLS, UNIX_SOCKET_SYSCALLS};

/// The finite universe of a policy.
pub fn universe(policy: &CheckedPolicy) -> Vec<Connection> {
    let mut ports: BTreeSet<u16> = [1u16, 53, 65535].into_iter().collect();
    let mut ips: BTreeSet<IpAddr> = BTreeSet::new();
    for m in [
        "169.254.169.254",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "fe80::1",
        "0.0.0.0",
        "0.255.255.255",
        "::",
        "::ffff:0.0.0.0",
        "::ffff:0.255.255.255",
    ] {
        if let Ok(ip) = m.parse() {
            ips.insert(ip);
        }
    }
    // The ends of the metadata networks and their neighbours: a part of a CIDR in the
    // metadata ranges that no exception names starts at one of them, or at an end of a
    // network or an exclusion (below).
    let metadata = eval::metadata_nets();
    let mut nets: Vec<&ipnet::IpNet> = metadata.iter().collect();
    let mut patterns = Vec::new();
    let mut selectors = Vec::new();
    for d in &policy.destinations {
        for e in &d.endpoints {
            if let EndpointKind::Cidr(c) = &e.kind {
                nets.push(&c.network);
                nets.extend(c.except.iter());
            }
        }
    }
    for net in nets {
        match net {
            ipnet::IpNet::V4(n) => {
                let (a, b) = (u32::from(n.network()), u32::from(n.broadcast()));
                for v in [Some(a), Some(b), a.checked_sub(1), b.checked_add(1)]
                    .into_iter()
                    .flatten()
                {
                    ips.insert(IpAddr::V4(Ipv4Addr::from(v)));
                }
            }
            ipnet::IpNet::V6(n) => {
                let (a, b) = (u128::from(n.network()), u128::from(n.broadcast()));
                for v in [Some(a), Some(b), a.checked_sub(1), b.checked_add(1)]
                    .into_iter()
                    .flatten()
                {
                    ips.insert(IpAddr::V6(Ipv6Addr::from(v)));
                }
            }
        }
    }
    for d in &policy.destinations {
        for p in &d.ports {
            for v in [
                Some(p.start),
                Some(p.end),
                p.start.checked_sub(1),
                p.end.checked_add(1),
            ]
            .into_iter()
            .flatten()
            {
                if v != 0 {
                    ports.insert(v);
                }
            }
        }
        for e in &d.endpoints {
            match &e.kind {
                EndpointKind::Host(h) => patterns.push(h.clone()),
                EndpointKind::Workload(w) => selectors.push(w.clone()),
                EndpointKind::Cidr(_) => {}
            }
        }
    }
    // Hosts.
    let constants: BTreeSet<String> = patterns
        .iter()
        .flat_map(|p| p.labels.iter())
        .filter_map(|l| match l {
            HostLabel::Exact(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    let fresh = fresh_label(constants.iter().map(String::as_str));
    let mut alphabet: Vec<String> = constants.iter().cloned().collect();
    alphabet.push(fresh.clone());
    let longest = patterns.iter().map(|p| p.labels.len()).max().unwrap_or(1);
    let mut hosts: BTreeSet<String> = BTreeSet::new();
    for p in &patterns {
        let mut partial: Vec<Vec<String>> = vec![Vec::new()];
        for label in &p.labels {
            let options: Vec<Vec<String>> = match label {
                HostLabel::Exact(s) => vec![vec![s.clone()]],
                HostLabel::One => alphabet.iter().map(|a| vec![a.clone()]).collect(),
                HostLabel::OneOrMore => {
                    let room = (longest + 1).saturating_sub(p.labels.len()).max(1);
                    let mut seqs: Vec<Vec<String>> = Vec::new();
                    let mut frontier: Vec<Vec<String>> = vec![Vec::new()];
                    for _ in 0..room {
                        frontier = frontier
                            .iter()
                            .flat_map(|s| {
                                alphabet.iter().map(move |a| {
                                    let mut n = s.clone();
                                    n.push(a.clone());
                                    n
                                })
                            })
                            .collect();
                        seqs.extend(frontier.iter().cloned());
                    }
                    seqs
                }
            };
            partial = partial
                .iter()
                .flat_map(|pre| {
                    options.iter().map(move |o| {
                        let mut n = pre.clone();
                        n.extend(o.iter().cloned());
                        n
                    })
                })
                .collect();
            if partial.len() > 20_000 {
                partial.truncate(20_000);
            }
        }
        for h in partial {
            hosts.insert(h.join("."));
            // One label beyond.
            hosts.insert(format!("{fresh}.{}", h.join(".")));
        }
        // The apex: the pattern without its wildcard labels.
        let apex: Vec<String> = p
            .labels
            .iter()
            .filter_map(|l| match l {
                HostLabel::Exact(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        if !apex.is_empty() {
            hosts.insert(apex.join("."));
        }
    }
    // Workloads.
    let mut workloads: BTreeSet<(String, BTreeMap<String, String>)> = BTreeSet::new();
    for s in &selectors {
        let labels = s.labels.to_map();
        workloads.insert((s.namespace.clone(), labels.clone()));
        workloads.insert((fresh.clone(), labels.clone()));
        for t in &selectors {
            let mut merged = labels.clone();
            for (k, v) in &t.labels {
                merged.entry(k.clone()).or_insert_with(|| v.clone());
            }
            workloads.insert((s.namespace.clone(), merged));
        }
        for k in labels.keys() {
            let mut changed = labels.clone();
            changed.insert(k.clone(), fresh.clone());
            workloads.insert((s.namespace.clone(), changed));
            let mut dropped = labels.clone();
            dropped.remove(k);
            workloads.insert((s.namespace.clone(), dropped));
        }
    }
    let targets: Vec<Target> = hosts
        .into_iter()
        .map(Target::Host)
        .chain(ips.into_iter().map(Target::Ip))
        .chain(
            workloads
                .into_iter()
                .map(|(namespace, labels)| Target::Workload { namespace, labels }),
        )
        .collect();
    let mut out = Vec::with_capacity(targets.len() * ports.len() * 2);
    for t in &targets {
        for p in &ports {
            for protocol in [Protocol::Tcp, Protocol::Udp] {
                out.push(Connection {
                    target: t.clone(),
                    port: *p,
                    protocol,
                });
            }
        }
    }
    out
}

fn dest_has_host(policy: &CheckedPolicy, r: &Route) -> bool {
    policy.destination(r.dest).is_some_and(|d| {
        d.endpoints
            .iter()
            .any(|e| matches!(e.kind, EndpointKind::Host(_)))
    })
}

fn dest_has_dns(policy: &CheckedPolicy, r: &Route) -> bool {
    policy.destination(r.dest).is_some_and(|d| {
        d.ports.iter().any(|p| p.contains(53))
            && d.endpoints
                .iter()
                .any(|e| !matches!(e.kind, EndpointKind::Host(_)))
    })
}

/// The status of every property, by brute force.
pub fn statuses(policy: &CheckedPolicy) -> BTreeMap<Property, Verdict> {
    let universe = universe(policy);
    let index = RouteIndex::new(policy);
    let holdings = eval::holdings(policy);
    let mut out: BTreeMap<Property, Verdict> = Property::BUILTIN
        .iter()
        .map(|p| (p.clone(), Verdict::Verified))
        .collect();
    for a in &policy.asserts {
        out.insert(Property::Assert(a.name.local.clone()), Verdict::Verified);
    }
    let mut violate = |id: Property| {
        out.insert(id, Verdict::Violated);
    };
    let routes: Vec<Vec<Route>> = policy
        .agents
        .iter()
        .map(|a| eval::routes_indexed(policy, &index, a.id))
        .collect();
    let contains = |r: &Route, c: &Connection| {
        policy
            .destination(r.dest)
            .is_some_and(|d| eval::dest_contains(d, c))
    };
    for agent in &policy.agents {
        let id = agent.id;
        let rs = routes.get(id.index()).map(Vec::as_slice).unwrap_or(&[]);
        let held = holdings.get(id.index()).cloned().unwrap_or_default();
        let reaches_hosts = rs.iter().any(|r| dest_has_host(policy, r));
        let dns_routes: Vec<&Route> = rs.iter().filter(|r| dest_has_dns(policy, r)).collect();
        if reaches_hosts && dns_routes.is_empty() {
            violate(Property::LayersConsistent);
        }
        for c in &universe {
            let allowing: Vec<&Route> = rs.iter().filter(|r| contains(r, c)).collect();
            if allowing.is_empty() {
                continue;
            }
            let approved = eval::approved(policy, id, c);
            if !approved && allowing.iter().any(|r| !r.is_exception()) {
                violate(Property::EgressApproved);
            }
            for class in &held {
                if !eval::cleared(policy, id, *class, c) {
                    violate(Property::DataClearance);
                }
            }
            if allowing.iter().any(|r| eval::metadata_leak(policy, r, c)) {
                violate(Property::NoMetadata);
            }
            if let Target::Ip(ip) = &c.target {
                if egress_check::is_unspecified(*ip) {
                    violate(Property::NoUnspecified);
                }
            }
            if reaches_hosts
                && !approved
                && c.port == 53
                && !matches!(c.target, Target::Host(_))
                && allowing.iter().any(|r| dns_routes.contains(r))
            {
                violate(Property::LayersConsistent);
            }
        }
        // Syscalls, Linux capabilities and local sockets (no connections involved).
        let sockets = policy.unix_sockets_of(agent);
        if rs.is_empty()
            && policy.syscalls_of(agent).iter().any(|s| {
                NETWORK_SYSCALLS.contains(&s.as_str())
                    && (sockets.is_empty() || !UNIX_SOCKET_SYSCALLS.contains(&s.as_str()))
            })
        {
            violate(Property::LayersConsistent);
        }
        let approved_sockets: Vec<&str> = policy
            .zones
            .iter()
            .filter(|z| z.applies_to(id))
            .flat_map(|z| z.approve_unix.iter().map(|u| u.path.as_str()))
            .collect();
        if sockets
            .iter()
            .any(|s| !approved_sockets.contains(&s.as_str()))
        {
            violate(Property::EgressApproved);
        }
        let approved_caps: Vec<LinuxCap> = policy
            .zones
            .iter()
            .filter(|z| z.applies_to(id))
            .flat_map(|z| z.approve_caps.iter().map(|c| c.cap))
            .collect();
        if policy
            .linux_caps_of(agent)
            .iter()
            .any(|c| c.bypasses_enforcement() && !approved_caps.contains(c))
        {
            violate(Property::LayersConsistent);
        }
        for used in &agent.capabilities {
            if let Some(cap) = policy.capability(used.id) {
                if cap.linux_caps.iter().any(|g| {
                    (g.cap == LinuxCap::NET_RAW || g.cap == LinuxCap::NET_ADMIN) && g.via.is_some()
                }) {
                    violate(Property::LayersConsistent);
                }
            }
        }
    }
    for e in &policy.exceptions {
        let auth = policy.authority(e.approver.id);
        if auth.is_none_or(|a| a.key.iter().all(|b| *b == 0) || e.max_ttl_secs > a.max_ttl_secs)
            || e.max_ttl_secs > MAX_EXCEPTION_TTL_SECS
            || e.max_ttl_secs == 0
        {
            violate(Property::ExceptionGated);
        }
        for listed in &e.agents {
            let rs = routes
                .get(listed.id.index())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for c in &universe {
                let in_to = policy
                    .destination(e.to.id)
                    .is_some_and(|d| eval::dest_contains(d, c));
                let in_audit = policy
                    .destination(e.audit.id)
                    .is_some_and(|d| eval::dest_contains(d, c));
                let approved = eval::approved(policy, listed.id, c);
                if in_to && !approved {
                    violate(Property::ExceptionGated);
                }
                if in_audit
                    && (!approved || !rs.iter().any(|r| !r.is_exception() && contains(r, c)))
                {
                    violate(Property::ExceptionGated);
                }
            }
        }
    }
    for a in &policy.asserts {
        let id = Property::Assert(a.name.local.clone());
        for claim in &a.claims {
            let failed = match &claim.kind {
                ClaimKind::CannotReach { agent, dest } | ClaimKind::CanReach { agent, dest } => {
                    let agents: Vec<AgentId> = match agent {
                        AgentSel::All(_) => policy.agents.iter().map(|a| a.id).collect(),
                        AgentSel::One(r) => vec![r.id],
                    };
                    let can = matches!(claim.kind, ClaimKind::CanReach { .. });
                    let in_dest = |c: &Connection| {
                        policy
                            .destination(dest.id)
                            .is_some_and(|d| eval::dest_contains(d, c))
                    };
                    agents.iter().any(|ag| {
                        let rs = routes.get(ag.index()).map(Vec::as_slice).unwrap_or(&[]);
                        let reached = |c: &Connection| {
                            rs.iter()
                                .any(|r| (!can || !r.is_exception()) && contains(r, c))
                        };
                        let hit = universe.iter().any(|c| in_dest(c) && reached(c));
                        if can {
                            !hit
                        } else {
                            hit
                        }
                    })
                }
                ClaimKind::NeverReaches { class, dest } => policy.agents.iter().any(|ag| {
                    holdings
                        .get(ag.id.index())
                        .is_some_and(|h| h.contains(&class.id))
                        && {
                            let rs = routes.get(ag.id.index()).map(Vec::as_slice).unwrap_or(&[]);
                            universe.iter().any(|c| {
                                policy
                                    .destination(dest.id)
                                    .is_some_and(|d| eval::dest_contains(d, c))
                                    && rs.iter().any(|r| contains(r, c))
                            })
                        }
                }),
            };
            if failed {
                violate(id.clone());
            }
        }
    }
    out
}
