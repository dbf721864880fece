//! Lowering one agent of a [`CheckedPolicy`] to the contents of the eBPF maps (pure).
//!
//! The result, [`EbpfMaps`], is what `egc build --target ebpf` writes (one JSON file per
//! agent, layout `egc-ebpf-maps/1`, documented in `book/src/runtime/maps.md`) and what
//! `egc enforce apply` and `egc run` load into the kernel.
//!
//! What the socket can and cannot enforce:
//! - CIDR destinations: exactly. Exclusions are expanded into the exact set of prefixes
//!   that remain; IPv6 networks never cover IPv4-mapped space (IPv4 rules govern it).
//! - Host-name destinations (E0100) and workload destinations (E0101): a socket hook
//!   sees only an address, and trusting a resolver would let DNS widen the policy. They
//!   are refused, never widened. With [`LowerConfig::deny_unenforceable`] they become
//!   warnings and the destinations stay closed (a declared narrowing).
//! - Capabilities usable only within workflows (E0104, a warning): left out unless
//!   [`LowerConfig::workflow`] names a workflow in which the agent uses them.
//! - Exceptions: never in the base maps; a signed token opens them at run time.

use std::collections::BTreeMap;

use egress_check::{
    Agent, CheckedPolicy, Diagnostic, EndpointKind, FileId, LinuxCap, PortRange, Protocol, Span,
    StepAction,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::layout::MAX_RULES;
use super::rules::{compile, protocol_from_number, AllowRule, TrieContents, TriePrefix};

/// The layout identifier written into every maps file.
pub const FORMAT: &str = "egc-ebpf-maps/1";

/// Codes of this crate (E0150, E0151; E0100, E0101 and E0104 shared with `egress-lower`)
/// are registered, with their titles, in the one registry every stage shares.
pub use egress_syntax::diagnostic::code_title;

/// Settings for [`lower_with`]. The default is the strict one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LowerConfig {
    /// Also open capabilities usable only within this workflow (when a step of the
    /// workflow has the agent use them).
    pub workflow: Option<String>,
    /// Keep host-name and workload destinations closed (with a warning) instead of
    /// refusing the policy.
    pub deny_unenforceable: bool,
    /// Host-name destinations are enforced by egc's DNS gateway and name gate (`egc
    /// run`): they become [`EbpfMaps::names`] instead of errors.
    pub names: bool,
}

/// A host-name destination enforced at run time by the DNS gateway and the name gate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NameRecord {
    /// The host pattern (`api.corp.example`, `*.corp.example`).
    pub pattern: String,
    /// The destination's qualified name.
    pub destination: String,
    #[serde(with = "protocols_serde")]
    pub protocols: Vec<Protocol>,
    /// `443` or `8000-8080`.
    pub ports: Vec<String>,
    /// The destination accepts clients that send no SNI or an encrypted ClientHello.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sni_optional: bool,
}

/// One allowed network, protocol and port range, with the destination it came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleRecord {
    /// `198.51.100.0/25` or `2001:db8::/48`.
    pub network: String,
    #[serde(with = "protocol_serde")]
    pub protocol: Protocol,
    /// `443` or `8000-8080`.
    pub ports: String,
    /// The destination's qualified name.
    pub destination: String,
}

/// One rule of a trie entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRuleRecord {
    #[serde(with = "protocol_serde")]
    pub protocol: Protocol,
    pub port_lo: u16,
    pub port_hi: u16,
}

/// One entry of the `rules` LPM trie, exactly as loaded.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryRecord {
    /// The prefix in its own family (`127.0.0.0/8`).
    pub prefix: String,
    /// The key the kernel sees: prefix length over the 16-byte address.
    pub key_prefix_len: u8,
    /// The 16-byte key address in hex (IPv4 is IPv4-mapped).
    pub key_addr: String,
    /// The rules, with every covering prefix's rules pushed down.
    pub rules: Vec<PortRuleRecord>,
}

/// A destination the socket cannot enforce, kept closed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NotEnforced {
    pub destination: String,
    pub endpoint: String,
    pub reason: String,
}

/// The map contents for one agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EbpfMaps {
    pub format: String,
    /// The agent's qualified name (`module.agent`).
    pub agent: String,
    /// The agent's name as declared.
    pub agent_name: String,
    /// The agent's index in the policy; written to the `config` map and every denial.
    pub agent_id: u32,
    /// The workflow whose capabilities were included, if any.
    pub workflow: Option<String>,
    /// The allow rules, sorted.
    pub rules: Vec<RuleRecord>,
    /// The trie entries, sorted by key.
    pub entries: Vec<EntryRecord>,
    /// Destinations kept closed because the socket cannot enforce them.
    pub not_enforced: Vec<NotEnforced>,
    /// Host-name destinations enforced by the DNS gateway and the name gate (only when
    /// lowered for `egc run`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<NameRecord>,
    /// Single-address destinations on UDP port 53 the agent may reach: its declared
    /// resolvers (`address:53`), the DNS gateway's upstream candidates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolvers: Vec<String>,
    /// TCP port ranges for Landlock's connect rules (`egc run`), merged.
    pub landlock_tcp_ports: Vec<(u16, u16)>,
    /// The agent's syscalls (from its syscall groups), sorted.
    pub syscalls: Vec<String>,
    /// The Linux capabilities it is granted, sorted.
    pub linux_caps: Vec<String>,
}

fn zero_span(policy: &CheckedPolicy) -> Span {
    policy
        .files
        .first()
        .map(|f| Span {
            file: f.id,
            start: 0,
            end: 0,
        })
        .unwrap_or(Span {
            file: FileId(0),
            start: 0,
            end: 0,
        })
}

/// [`lower_with`] with the strict defaults.
pub fn lower(policy: &CheckedPolicy, agent: &str) -> Result<EbpfMaps, Vec<Diagnostic>> {
    lower_with(policy, agent, &LowerConfig::default()).map(|(maps, _)| maps)
}

/// Lowers one agent. On success, also returns warnings (declared narrowings).
pub fn lower_with(
    policy: &CheckedPolicy,
    agent_name: &str,
    config: &LowerConfig,
) -> Result<(EbpfMaps, Vec<Diagnostic>), Vec<Diagnostic>> {
    let Some(agent) = policy.agent_by_name(agent_name) else {
        let known: Vec<&str> = policy
            .agents
            .iter()
            .map(|a| a.name.local.as_str())
            .collect();
        return Err(vec![Diagnostic::error(
            "E0151",
            zero_span(policy),
            format!("no agent `{agent_name}` in this policy"),
        )
        .with_help(format!("agents in this policy: {}", known.join(", ")))]);
    };
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut rules: Vec<(AllowRule, RuleRecord)> = Vec::new();
    let mut not_enforced = Vec::new();
    let mut names: Vec<NameRecord> = Vec::new();

    for granted in &agent.capabilities {
        let Some(cap) = policy.capability(granted.id) else {
            continue;
        };
        if !cap.workflows.is_empty() && !workflow_opens(policy, agent, cap.id, config) {
            let names: Vec<String> = cap
                .workflows
                .iter()
                .filter_map(|w| policy.workflow(w.id))
                .map(|w| w.name.local.clone())
                .collect();
            warnings.push(
                Diagnostic::warning(
                    "E0104",
                    granted.span,
                    format!(
                        "capability `{}` is usable only within workflow(s) {}; the socket cannot tell workflows apart, so it stays closed",
                        cap.name.local,
                        names.join(", ")
                    ),
                )
                .with_label("left out of the eBPF maps")
                .with_help("a signed step token opens it for one step (`egc workflow grant`, then `egc run --step-token` or `egc enforce step apply`); `--workflow NAME` opens it unsigned, for debugging"),
            );
            continue;
        }
        for connect in &cap.connects {
            let Some(dest) = policy.destination(connect.dest) else {
                continue;
            };
            for endpoint in &dest.endpoints {
                match &endpoint.kind {
                    EndpointKind::Cidr(cidr) => {
                        let networks = super::rules::subtract(cidr.network, &cidr.except);
                        if networks.iter().any(covers_ipv4_mapped) {
                            warnings.push(ipv4_mapped_narrowing(
                                &dest.name.qualified,
                                cidr.network,
                                endpoint.span,
                            ));
                        }
                        for network in networks {
                            for protocol in &dest.protocols {
                                for ports in &dest.ports {
                                    let rule = AllowRule {
                                        network,
                                        protocol: *protocol,
                                        ports: *ports,
                                        exception_slot: 0,
                                    };
                                    let record = RuleRecord {
                                        network: network.to_string(),
                                        protocol: *protocol,
                                        ports: ports_text(*ports),
                                        destination: dest.name.qualified.clone(),
                                    };
                                    rules.push((rule, record));
                                }
                            }
                        }
                    }
                    EndpointKind::Host(pattern) if config.names => {
                        names.push(NameRecord {
                            pattern: pattern.to_string(),
                            destination: dest.name.qualified.clone(),
                            protocols: dest.protocols.clone(),
                            ports: dest.ports.iter().map(|p| ports_text(*p)).collect(),
                            sni_optional: dest.sni_optional,
                        });
                    }
                    EndpointKind::Host(pattern) => {
                        let (code, what) = ("E0100", format!("host {pattern}"));
                        unenforceable(
                            config,
                            &mut errors,
                            &mut warnings,
                            &mut not_enforced,
                            code,
                            endpoint.span,
                            &dest.name.qualified,
                            what,
                            "a socket hook sees addresses, not names; resolving names at load time would let DNS widen the policy",
                        );
                    }
                    // With names served, every DNS query goes to egc's gateway whatever
                    // its address: a resolver given as a workload (`dns.kube_dns`) needs
                    // no rule of its own (the gateway forwards to `--resolver`).
                    EndpointKind::Workload(selector)
                        if config.names
                            && dest.ports.iter().all(|p| p.start == 53 && p.end == 53) =>
                    {
                        not_enforced.push(NotEnforced {
                            destination: dest.name.qualified.clone(),
                            endpoint: format!("workload {selector}"),
                            reason: "a resolver: the agent's DNS goes to egc's DNS gateway, which forwards allowed names to --resolver".to_string(),
                        });
                    }
                    EndpointKind::Workload(selector) => {
                        unenforceable(
                            config,
                            &mut errors,
                            &mut warnings,
                            &mut not_enforced,
                            "E0101",
                            endpoint.span,
                            &dest.name.qualified,
                            format!("workload {selector}"),
                            "workload addresses are known only to the cluster; enforce workload destinations with `--target k8s` or `--target cilium`",
                        );
                    }
                }
            }
        }
    }

    let allow: Vec<AllowRule> = rules.iter().map(|(r, _)| *r).collect();
    let trie = match compile(&allow) {
        Ok(trie) => trie,
        Err(too_many) => {
            for problem in too_many {
                errors.push(
                    Diagnostic::error(
                        "E0150",
                        agent.name.span,
                        format!(
                            "agent `{}`: {problem}",
                            agent.name.local
                        ),
                    )
                    .with_label("too many distinct port ranges")
                    .with_help(format!(
                        "merge port ranges of destinations that overlap {} (at most {MAX_RULES} per address after merging)",
                        problem.prefix
                    )),
                );
            }
            TrieContents::new()
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut records: Vec<RuleRecord> = rules.into_iter().map(|(_, r)| r).collect();
    records.sort();
    records.dedup();
    not_enforced.sort();
    not_enforced.dedup();
    names.sort();
    names.dedup();
    let resolvers = resolvers(&allow);
    let mut landlock_rules = allow.clone();
    for name in &names {
        // Connections to a name's addresses (and DNS over TCP) leave through their own
        // ports; the eBPF program sends them to the gate, which checks the name.
        if name.protocols.contains(&Protocol::Tcp) {
            for ports in &name.ports {
                if let Some(range) = parse_ports(ports) {
                    landlock_rules.push(AllowRule {
                        network: IpNet::default(),
                        protocol: Protocol::Tcp,
                        ports: range,
                        exception_slot: 0,
                    });
                }
            }
        }
    }
    if !names.is_empty() {
        landlock_rules.push(AllowRule {
            network: IpNet::default(),
            protocol: Protocol::Tcp,
            ports: PortRange { start: 53, end: 53 },
            exception_slot: 0,
        });
    }
    let landlock_tcp_ports = tcp_port_ranges(&landlock_rules);
    let maps = EbpfMaps {
        format: FORMAT.to_string(),
        agent: agent.name.qualified.clone(),
        agent_name: agent.name.local.clone(),
        agent_id: agent.id.0,
        workflow: config.workflow.clone(),
        rules: records,
        entries: entry_records(&trie),
        not_enforced,
        names,
        resolvers,
        landlock_tcp_ports,
        syscalls: policy.syscalls_of(agent),
        linux_caps: policy
            .linux_caps_of(agent)
            .into_iter()
            .map(|c: LinuxCap| c.name().to_string())
            .collect(),
    };
    Ok((maps, warnings))
}

#[allow(clippy::too_many_arguments)]
fn unenforceable(
    config: &LowerConfig,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
    not_enforced: &mut Vec<NotEnforced>,
    code: &'static str,
    span: Span,
    destination: &str,
    what: String,
    why: &str,
) {
    let message =
        format!("destination `{destination}` ({what}) cannot be enforced at the socket: {why}");
    if config.deny_unenforceable {
        warnings.push(
            Diagnostic::warning(code, span, message)
                .with_label("kept closed by the eBPF program (narrowing)"),
        );
        not_enforced.push(NotEnforced {
            destination: destination.to_string(),
            endpoint: what,
            reason: "kept closed: the socket cannot enforce it".to_string(),
        });
    } else {
        errors.push(
            Diagnostic::error(code, span, message)
                .with_label("not expressible as an address prefix")
                .with_help(if code == "E0100" {
                    "`egc run` enforces host names through its DNS gateway; for `egc enforce apply`, pass `--serve-names` to do the same, write the destination as `cidr ...`, or pass `--deny-unenforceable` to keep it closed"
                } else {
                    "write the destination as `cidr ...`, or pass `--deny-unenforceable` to keep it closed"
                }),
        );
    }
}

fn workflow_opens(
    policy: &CheckedPolicy,
    agent: &Agent,
    cap: egress_check::CapId,
    config: &LowerConfig,
) -> bool {
    let Some(wanted) = &config.workflow else {
        return false;
    };
    let Some(capability) = policy.capability(cap) else {
        return false;
    };
    capability.workflows.iter().any(|w| {
        policy.workflow(w.id).is_some_and(|workflow| {
            (workflow.name.local == *wanted || workflow.name.qualified == *wanted)
                && workflow.steps.iter().any(|step| {
                    step.agent == agent.id
                        && matches!(&step.action, StepAction::Uses(c) if c.id == cap)
                })
        })
    })
}

fn ports_text(ports: PortRange) -> String {
    if ports.start == ports.end {
        ports.start.to_string()
    } else {
        format!("{}-{}", ports.start, ports.end)
    }
}

mod protocols_serde {
    use egress_check::Protocol;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(protocols: &[Protocol], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(protocols.iter().map(|p| p.as_str()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Protocol>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names
            .iter()
            .map(|n| super::protocol_serde::parse(n).map_err(serde::de::Error::custom))
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Trie contents as serialisable records.
pub fn entry_records(trie: &TrieContents) -> Vec<EntryRecord> {
    trie.iter()
        .map(|(prefix, rules)| EntryRecord {
            prefix: prefix.to_string(),
            key_prefix_len: prefix.prefix_len,
            key_addr: hex(&prefix.addr),
            rules: rules
                .iter()
                .filter_map(|r| {
                    Some(PortRuleRecord {
                        protocol: protocol_from_number(r.protocol)?,
                        port_lo: r.port_lo,
                        port_hi: r.port_hi,
                    })
                })
                .collect(),
        })
        .collect()
}

/// The single addresses the rules let the agent reach on UDP port 53, as `addr:53`.
fn resolvers(rules: &[AllowRule]) -> Vec<String> {
    let mut out: Vec<String> = rules
        .iter()
        .filter(|r| r.protocol == Protocol::Udp && r.ports.start <= 53 && 53 <= r.ports.end)
        .filter(|r| r.network.prefix_len() == r.network.max_prefix_len())
        .map(|r| std::net::SocketAddr::new(r.network.addr(), 53).to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Merged TCP port ranges of a rule list.
pub fn tcp_port_ranges(rules: &[AllowRule]) -> Vec<(u16, u16)> {
    let mut ranges: Vec<(u16, u16)> = rules
        .iter()
        .filter(|r| r.protocol == Protocol::Tcp)
        .map(|r| (r.ports.start, r.ports.end))
        .collect();
    ranges.sort();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (lo, hi) in ranges {
        if let Some(last) = out.last_mut() {
            if u32::from(lo) <= u32::from(last.1) + 1 {
                last.1 = last.1.max(hi);
                continue;
            }
        }
        out.push((lo, hi));
    }
    out
}

impl EbpfMaps {
    /// The allow rules, parsed back.
    pub fn allow_rules(&self) -> Result<Vec<AllowRule>, String> {
        self.rules
            .iter()
            .map(|r| {
                let network: IpNet = r
                    .network
                    .parse()
                    .map_err(|_| format!("bad network {:?}", r.network))?;
                let ports =
                    parse_ports(&r.ports).ok_or_else(|| format!("bad ports {:?}", r.ports))?;
                Ok(AllowRule {
                    network,
                    protocol: r.protocol,
                    ports,
                    exception_slot: 0,
                })
            })
            .collect()
    }

    /// The trie contents, from the recorded entries (as written, so a file loads exactly).
    pub fn trie(&self) -> Result<TrieContents, String> {
        let mut out = TrieContents::new();
        for entry in &self.entries {
            let addr =
                unhex(&entry.key_addr).ok_or_else(|| format!("bad key {:?}", entry.key_addr))?;
            if entry.key_prefix_len > 128 {
                return Err(format!("bad prefix length {}", entry.key_prefix_len));
            }
            let rules = entry
                .rules
                .iter()
                .map(|r| super::layout::PortRule {
                    port_lo: r.port_lo,
                    port_hi: r.port_hi,
                    protocol: super::rules::protocol_number(r.protocol),
                    pad: 0,
                    exception_slot: 0,
                })
                .collect::<Vec<_>>();
            if rules.len() > MAX_RULES {
                return Err(format!(
                    "entry {} has more than {MAX_RULES} rules",
                    entry.prefix
                ));
            }
            out.insert(
                TriePrefix {
                    addr,
                    prefix_len: entry.key_prefix_len,
                },
                rules,
            );
        }
        Ok(out)
    }
}

pub fn parse_ports(text: &str) -> Option<PortRange> {
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let p: u16 = text.trim().parse().ok()?;
            (p, p)
        }
    };
    (a >= 1 && a <= b).then_some(PortRange { start: a, end: b })
}

/// Does an IPv6 network share addresses with `::ffff:0:0/96`? A socket sees a connection
/// to an IPv4-mapped address as IPv4, so the trie's IPv4 rules govern those addresses and
/// IPv6 rules never cover them (see `rules::compile`).
fn covers_ipv4_mapped(network: &IpNet) -> bool {
    let mapped = super::rules::ipv4_mapped_block();
    match network {
        IpNet::V6(net) => net.contains(&mapped) || mapped.contains(net),
        IpNet::V4(_) => false,
    }
}

/// E0113: the IPv4-mapped part of an IPv6 CIDR is left to the IPv4 rules, a declared
/// narrowing.
fn ipv4_mapped_narrowing(destination: &str, network: IpNet, span: Span) -> Diagnostic {
    Diagnostic::warning(
        "E0113",
        span,
        format!(
            "destination `{destination}` (cidr {network}) covers IPv4-mapped IPv6 addresses (`::ffff:0:0/96`): a socket sees connections to them as IPv4, so the eBPF maps leave them to the IPv4 rules and they stay closed unless an IPv4 destination allows the address"
        ),
    )
    .with_label("IPv4-mapped part left out of the eBPF maps")
    .with_help("write the IPv4 network as `cidr a.b.c.d/n` to allow it, or add `except ::ffff:0:0/96` to say that this entry means native IPv6 only")
}

/// Pretty JSON with a final newline (byte-identical for the same input).
pub fn to_json(maps: &EbpfMaps) -> String {
    let mut text = serde_json::to_string_pretty(maps).unwrap_or_default();
    text.push('\n');
    text
}

pub fn from_json(text: &str) -> Result<EbpfMaps, String> {
    let maps: EbpfMaps = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if maps.format != FORMAT {
        return Err(format!(
            "unsupported maps format {:?} (expected {FORMAT:?})",
            maps.format
        ));
    }
    Ok(maps)
}

/// Files (name → contents) and the warnings that declare narrowings.
pub type MapsFiles = (BTreeMap<String, String>, Vec<Diagnostic>);

/// Every agent's maps for `egc build --target ebpf`: file name → JSON. Agents whose
/// maps cannot be built contribute their diagnostics; any error fails the whole build.
pub fn lower_all(
    policy: &CheckedPolicy,
    config: &LowerConfig,
) -> Result<MapsFiles, Vec<Diagnostic>> {
    let mut files = BTreeMap::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for agent in &policy.agents {
        match lower_with(policy, &agent.name.qualified, config) {
            Ok((maps, notes)) => {
                files.insert(
                    format!("{}.maps.json", file_stem(&maps.agent_name)),
                    to_json(&maps),
                );
                warnings.extend(notes);
            }
            Err(diags) => errors.extend(diags),
        }
    }
    if errors.is_empty() {
        Ok((files, warnings))
    } else {
        Err(errors)
    }
}

/// A file- and bpffs-safe spelling of a name (`a.b_c` → `a-b_c`).
pub fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// `tcp` / `udp` for serde (the model type serialises only).
pub mod protocol_serde {
    use egress_check::Protocol;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(protocol: &Protocol, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(protocol.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    pub fn parse(text: &str) -> Result<Protocol, String> {
        match text {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            other => Err(format!("unknown protocol {other:?}")),
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::super::rules::lookup;
    use super::*;
    use std::net::IpAddr;

    const POLICY: &str = r#"
import std.sys
destination loopback_web {
    cidr 127.0.0.0/8 except 127.0.0.128/25
    port 8080, 9000-9010
}
destination api6 {
    cidr ::1/128
    port 9000
    protocol udp
}
destination named {
    host "api.example.com"
    port 443
}
capability web {
    connect loopback_web, api6
    syscalls sys.process_base, sys.network_client
}
capability outside {
    connect named
}
agent bot {
    uses web
}
agent named_bot {
    uses web, outside
}
"#;

    fn check(text: &str) -> CheckedPolicy {
        let result = egress_check::check_sources(&[("policy.egress", text)]);
        match result.policy {
            Some(policy) => policy,
            None => panic!("policy has errors: {:#?}", result.diagnostics),
        }
    }

    fn allows(maps: &EbpfMaps, addr: &str, protocol: Protocol, port: u16) -> bool {
        let trie = maps.trie().unwrap();
        lookup(&trie, addr.parse::<IpAddr>().unwrap(), protocol, port)
    }

    #[test]
    fn cidr_destinations_with_exclusions_lower_exactly() {
        let policy = check(POLICY);
        let maps = lower(&policy, "bot").unwrap();
        assert!(allows(&maps, "127.0.0.1", Protocol::Tcp, 8080));
        assert!(allows(&maps, "127.0.0.127", Protocol::Tcp, 9005));
        assert!(!allows(&maps, "127.0.0.128", Protocol::Tcp, 8080));
        assert!(!allows(&maps, "127.0.0.1", Protocol::Udp, 8080));
        assert!(!allows(&maps, "127.0.0.1", Protocol::Tcp, 8081));
        assert!(allows(&maps, "::1", Protocol::Udp, 9000));
        assert!(!allows(&maps, "::1", Protocol::Tcp, 9000));
        assert!(!allows(&maps, "::ffff:127.0.0.1", Protocol::Udp, 9000));
        assert_eq!(maps.landlock_tcp_ports, vec![(8080, 8080), (9000, 9010)]);
        assert!(maps.syscalls.contains(&"connect".to_string()));
        // Round trip through the documented JSON layout is exact.
        let text = to_json(&maps);
        assert_eq!(from_json(&text).unwrap(), maps);
        assert_eq!(to_json(&lower(&check(POLICY), "bot").unwrap()), text);
    }

    #[test]
    fn host_destinations_are_refused_not_widened() {
        let policy = check(POLICY);
        let errors = lower(&policy, "named_bot").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code, "E0100");
        let config = LowerConfig {
            deny_unenforceable: true,
            ..LowerConfig::default()
        };
        let (maps, warnings) = lower_with(&policy, "named_bot", &config).unwrap();
        assert_eq!(warnings.len(), 1);
        assert_eq!(maps.not_enforced.len(), 1);
        // The narrowed maps are the same as the agent without the host destination.
        assert_eq!(maps.entries, lower(&policy, "bot").unwrap().entries);
    }

    #[test]
    fn unknown_agent_is_a_diagnostic() {
        let errors = lower(&check(POLICY), "nobody").unwrap_err();
        assert_eq!(errors[0].code, "E0151");
    }
}
