//! The `ebpf` backend: the contents of the eBPF maps `egc enforce` and `egc run` load
//! (one JSON file per agent, layout `egc-ebpf-maps/1`, `book/src/runtime/maps.md`).
//!
//! - [`layout`]: the port rules a trie entry holds (the rest of the byte layout, with the
//!   kernel-facing structs, is `egress-enforce`'s).
//! - [`rules`]: allow rules compiled into exact LPM trie contents, and [`rules::lookup`],
//!   the program's own lookup (longest prefix, then the port rules).
//! - [`maps`]: a checked policy's agent → [`maps::EbpfMaps`].
//!
//! Translation validation decodes the maps files back: every address region of the trie
//! (an entry's prefix minus the longer prefixes inside it, which the longest-prefix
//! lookup sends elsewhere) with that entry's policy rules, as exact connection sets.

pub mod layout;
pub mod maps;
pub mod rules;

use std::collections::BTreeMap;

use egress_check::{Agent, CheckedPolicy};
use egress_sets::{unspecified_addresses, ConnectionSet, IntervalSet, IpSet, PortSet, TargetSet};

use crate::backend::{Backend, Decoding, Inexpressible};
use crate::expected::Decoded;
use crate::{Artifacts, Diagnostic, Target, TargetConfig};

/// The eBPF maps backend.
pub struct Ebpf;

/// `::ffff:0:0/96`: IPv4-mapped IPv6 addresses, the trie's IPv4 space.
const MAPPED: (u128, u128) = (0xffff_0000_0000, 0xffff_ffff_ffff);

impl Backend for Ebpf {
    fn target(&self) -> Target {
        Target::Ebpf
    }

    /// Every agent's maps. Host names and workloads cannot be enforced at the socket
    /// without names served at run time: they stay closed, each with a warning.
    fn lower(
        &self,
        policy: &CheckedPolicy,
        _config: &TargetConfig,
    ) -> Result<Artifacts, Vec<Diagnostic>> {
        let config = maps::LowerConfig {
            deny_unenforceable: true,
            ..Default::default()
        };
        let (files, notes) = maps::lower_all(policy, &config)?;
        Ok(Artifacts { files, notes })
    }

    /// Each agent's trie, read the way the program reads it: an address takes the rules
    /// of the longest prefix that holds it, so an entry governs its prefix minus the
    /// longer prefixes inside it; exception rules need a token and are not counted; the
    /// unspecified addresses are refused before any lookup.
    fn decode(
        &self,
        policy: &CheckedPolicy,
        _config: &TargetConfig,
        artifacts: &Artifacts,
    ) -> Result<Decoding, Vec<Diagnostic>> {
        let span = crate::policy_span(policy);
        let mut out = BTreeMap::new();
        let mut errors = Vec::new();
        for (file, text) in &artifacts.files {
            let decoded = maps::from_json(text).and_then(|m| {
                let agent = policy
                    .agent_by_name(&m.agent)
                    .ok_or_else(|| format!("names agent `{}`, not in the policy", m.agent))?;
                Ok((agent.id, m.agent_name.clone(), loaded(&m)?))
            });
            match decoded {
                Ok((id, name, set)) => {
                    out.insert(
                        id,
                        Decoded {
                            set,
                            contributors: vec![name],
                        },
                    );
                }
                Err(e) => errors.push(crate::k8s::undecodable(span, file, &e)),
            }
        }
        if errors.is_empty() {
            Ok(Decoding::Connections(out))
        } else {
            Err(errors)
        }
    }

    /// One maps file per agent, attached to the agent's own cgroup.
    fn identifies(&self, _agent: &Agent) -> bool {
        true
    }

    fn never_expresses(&self) -> Inexpressible {
        Inexpressible {
            hosts: true,
            workloads: true,
            addresses: IpSet {
                v4: IntervalSet::empty(),
                v6: IntervalSet::interval(MAPPED.0, MAPPED.1),
            },
        }
    }
}

/// What the kernel gets from a maps file: the loader compiles the file's `rules` into
/// the trie (`AttachmentState::desired_trie`), so those are decoded; the recorded
/// `entries` must be exactly that trie.
fn decode_rules(m: &maps::EbpfMaps) -> Result<ConnectionSet, String> {
    let trie = rules::compile(&m.allow_rules()?).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    if m.trie()? != trie {
        return Err("its trie entries are not the compilation of its rules".into());
    }
    Ok(allowed(&trie))
}

/// A built artifact (`egc build --target ebpf`): its rules decoded; it opens no workflow
/// and serves no names (those are `egc run` / `egc enforce` settings, lowered at load
/// time and checked there by [`check_loaded`]).
fn loaded(m: &maps::EbpfMaps) -> Result<ConnectionSet, String> {
    if m.workflow.is_some() {
        return Err("opens a workflow; a built artifact never does".into());
    }
    if !m.names.is_empty() {
        return Err("serves host names; a built artifact never does".into());
    }
    decode_rules(m)
}

/// The check `egc run` and `egc enforce apply` make on the maps they are about to load:
/// the trie the loader compiles from them, read with the program's lookup, lies within
/// what the policy lets the agent reach without a token (its unconditional routes and,
/// when the maps open a workflow, that workflow's routes). A wider trie is refused
/// (E0120, with a witness; E0122 when undecided, E0111 when the maps do not decode).
/// Narrower is allowed here: host names served by the gateway, workloads and closed
/// destinations are not in the trie by design. The host names served are checked on their
/// own ([`check_names`]), and so are the side tables (capabilities, syscalls, Landlock
/// ports, resolvers).
pub fn check_loaded(
    policy: &CheckedPolicy,
    agent: &Agent,
    m: &maps::EbpfMaps,
) -> Result<(), Diagnostic> {
    let span = agent.name.span;
    let found = decode_rules(m).map_err(|e| crate::k8s::undecodable(span, &m.agent, &e))?;
    let opened = |workflow: egress_check::WorkflowId| {
        m.workflow.as_deref().is_some_and(|wanted| {
            policy
                .workflow(workflow)
                .is_some_and(|w| w.name.local == wanted || w.name.qualified == wanted)
        })
    };
    let mut expected = ConnectionSet::default();
    let mut counted = Vec::new();
    for (route, set) in egress_sets::routes::route_sets(policy, agent.id) {
        let counts = match route.via {
            egress_sets::Via::Capability(_) => true,
            egress_sets::Via::Workflow { workflow, .. } => opened(workflow),
            egress_sets::Via::Exception(_) => false,
        };
        if counts {
            expected.extend(&set);
            counted.push(route.dest);
        }
    }
    let expected = expected.without_addresses(&unspecified_addresses());
    match found.difference_witness(&expected) {
        Ok(None) => {
            check_names(policy, agent, m, &expected, &counted)?;
            check_side_tables(policy, agent, m, &found)
        }
        Ok(Some(w)) => Err(Diagnostic::error(
            "E0120",
            span,
            format!(
                "the eBPF maps lowered for agent `{}` would let it reach {w}, which the policy does not allow; nothing is loaded",
                agent.name.local
            ),
        )
        .with_label("maps wider than the policy")
        .with_help("this is a bug in egc's lowering; please report it with the policy")),
        Err(_) => Err(Diagnostic::error(
            "E0122",
            span,
            format!(
                "checking the eBPF maps of agent `{}` against the policy is too large to decide; nothing is loaded",
                agent.name.local
            ),
        )
        .with_help("an undecided check is never a pass")),
    }
}

/// E0120 for maps about to be loaded: they would let `agent` do `what`.
fn wider_than_policy(agent: &Agent, what: &str) -> Diagnostic {
    Diagnostic::error(
        "E0120",
        agent.name.span,
        format!(
            "the eBPF maps lowered for agent `{}` {what}, which the policy does not allow; nothing is loaded",
            agent.name.local
        ),
    )
    .with_label("maps wider than the policy")
    .with_help("this is a bug in egc's lowering; please report it with the policy")
}

/// The host names the maps serve (the DNS gateway resolves them and the name gate lets the
/// agent reach the learned addresses): each name has ports and protocols, its name ×
/// ports × protocols lie within what the policy lets the agent reach, and a name may skip
/// the SNI check only within destinations the agent reaches that say `sni optional`
/// (pattern, ports and protocols alike).
fn check_names(
    policy: &CheckedPolicy,
    agent: &Agent,
    m: &maps::EbpfMaps,
    expected: &ConnectionSet,
    counted: &[egress_check::DestId],
) -> Result<(), Diagnostic> {
    let refuse = |what: String| wider_than_policy(agent, &what);
    // What the agent may reach at destinations that say `sni optional`: a name may skip
    // the SNI check only within it (its pattern, ports and protocols).
    let mut without_sni = ConnectionSet::default();
    for dest in counted.iter().filter_map(|d| policy.destination(*d)) {
        if dest.sni_optional {
            without_sni.extend(&ConnectionSet::from_destination(dest));
        }
    }
    for record in &m.names {
        let Some(pattern) = egress_check::host_pattern_of(&record.pattern) else {
            return Err(refuse(format!("serve the name `{}`", record.pattern)));
        };
        // The gateway resolves a served name whatever its ports: a record without ports
        // or protocols would open name resolution (a channel of its own) for nothing the
        // policy allows.
        if record.ports.is_empty() || record.protocols.is_empty() {
            return Err(refuse(format!(
                "serve the name `{}` with no port or protocol",
                record.pattern
            )));
        }
        let mut served = ConnectionSet::default();
        for text in &record.ports {
            let Some(ports) = maps::parse_ports(text) else {
                return Err(refuse(format!(
                    "serve `{}` on ports `{text}`",
                    record.pattern
                )));
            };
            for protocol in &record.protocols {
                served.add(
                    *protocol,
                    TargetSet::Host(pattern.clone()),
                    PortSet::interval(ports.start, ports.end),
                );
            }
        }
        match served.difference_witness(expected) {
            Ok(None) => {}
            Ok(Some(w)) => return Err(refuse(format!("serve the name `{}` ({w})", record.pattern))),
            Err(_) => {
                return Err(Diagnostic::error(
                    "E0122",
                    agent.name.span,
                    format!(
                        "checking the names the eBPF maps of agent `{}` serve against the policy is too large to decide; nothing is loaded",
                        agent.name.local
                    ),
                )
                .with_help("an undecided check is never a pass"))
            }
        }
        if record.sni_optional && !matches!(served.difference_witness(&without_sni), Ok(None)) {
            return Err(refuse(format!(
                "let `{}` through without SNI",
                record.pattern
            )));
        }
    }
    Ok(())
}

/// The maps' tables besides the trie, which `egc run` also applies: the Linux
/// capabilities kept and the syscalls allowed must be the policy's for the agent (no
/// more), the TCP ports Landlock allows must be those of the rules and of the host names
/// served (and DNS over TCP when names are served), and every DNS resolver must be an
/// address the rules let the agent reach on UDP port 53.
fn check_side_tables(
    policy: &CheckedPolicy,
    agent: &Agent,
    m: &maps::EbpfMaps,
    found: &ConnectionSet,
) -> Result<(), Diagnostic> {
    let refuse = |what: String| Err(wider_than_policy(agent, &what));
    let caps: Vec<&str> = policy
        .linux_caps_of(agent)
        .into_iter()
        .map(|c| c.name())
        .collect();
    if let Some(extra) = m.linux_caps.iter().find(|c| !caps.contains(&c.as_str())) {
        return refuse(format!("keep the Linux capability `{extra}`"));
    }
    let syscalls = policy.syscalls_of(agent);
    if let Some(extra) = m.syscalls.iter().find(|s| !syscalls.contains(s)) {
        return refuse(format!("allow the syscall `{extra}`"));
    }
    let mut tcp: Vec<(u16, u16)> = Vec::new();
    for r in m
        .rules
        .iter()
        .filter(|r| r.protocol == egress_check::Protocol::Tcp)
    {
        if let Some(p) = maps::parse_ports(&r.ports) {
            tcp.push((p.start, p.end));
        }
    }
    for n in m
        .names
        .iter()
        .filter(|n| n.protocols.contains(&egress_check::Protocol::Tcp))
    {
        tcp.extend(
            n.ports
                .iter()
                .filter_map(|p| maps::parse_ports(p))
                .map(|p| (p.start, p.end)),
        );
    }
    if !m.names.is_empty() {
        tcp.push((53, 53));
    }
    let allowed_ports = PortSet::from_intervals(tcp.iter().copied());
    for (lo, hi) in &m.landlock_tcp_ports {
        let wanted = PortSet::interval(*lo, *hi);
        if !wanted.difference(&allowed_ports).is_empty() {
            return refuse(format!("let Landlock allow TCP ports {lo}-{hi}"));
        }
    }
    for resolver in &m.resolvers {
        let reachable = resolver
            .parse::<std::net::SocketAddr>()
            .ok()
            .filter(|a| a.port() == 53)
            .is_some_and(|a| {
                found.contains(&egress_sets::Connection {
                    target: egress_sets::Target::Ip(a.ip()),
                    port: 53,
                    protocol: egress_check::Protocol::Udp,
                })
            });
        if !reachable {
            return refuse(format!("name `{resolver}` as a DNS resolver"));
        }
    }
    Ok(())
}

/// What a trie allows, as the program's lookup decides it. Keys are masked to their
/// prefix length, as the kernel's LPM trie reads them.
pub fn allowed(trie: &rules::TrieContents) -> ConnectionSet {
    let span = |p: &rules::TriePrefix| -> (u128, u128) {
        let start = u128::from_be_bytes(p.addr);
        let bits = 128 - u32::from(p.prefix_len.min(128));
        let size = if bits >= 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        (start, start | size)
    };
    let spans: Vec<(u128, u128)> = trie.keys().map(span).collect();
    let mut set = ConnectionSet::default();
    for ((prefix, port_rules), &(start, end)) in trie.iter().zip(spans.iter()) {
        // The prefix minus every longer prefix inside it.
        let inner = IntervalSet::from_intervals(
            trie.keys()
                .zip(spans.iter())
                .filter(|(q, &(s, e))| q.prefix_len > prefix.prefix_len && start <= s && e <= end)
                .map(|(_, &iv)| iv),
        );
        let region = IntervalSet::interval(start, end).difference(&inner);
        // The IPv4-mapped part is the IPv4 space.
        let mapped = region.intersection(&IntervalSet::interval(MAPPED.0, MAPPED.1));
        let v4 = IntervalSet::from_intervals(mapped.intervals().iter().filter_map(|&(a, b)| {
            Some((
                u32::try_from(a - MAPPED.0).ok()?,
                u32::try_from(b - MAPPED.0).ok()?,
            ))
        }));
        let v6 = region.difference(&IntervalSet::interval(MAPPED.0, MAPPED.1));
        let ips = IpSet { v4, v6 }.difference(&unspecified_addresses());
        for rule in port_rules.iter().filter(|r| r.exception_slot == 0) {
            let Some(protocol) = rules::protocol_from_number(rule.protocol) else {
                continue;
            };
            set.add(
                protocol,
                TargetSet::Ip(ips.clone()),
                PortSet::interval(rule.port_lo, rule.port_hi),
            );
        }
    }
    set
}
