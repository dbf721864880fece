//! nftables (`nft -f`): one `inet` table replaced atomically.
//!
//! The `output` chain drops by default. It first drops packets to unspecified and "this
//! network" addresses (0.0.0.0/8, ::, ::ffff:0.0.0.0/104), which are never reachable
//! whatever the policy says, then accepts packets of established or related
//! connections, packets to the loopback interface (they never leave the host), IPv6
//! neighbour discovery (link-local, hop limit 255; needed for IPv6 to work at all), and,
//! per agent, new connections whose `(destination address, protocol, destination port)`
//! lies in the agent's interval sets (one for IPv4, one for IPv6: prefixes concatenated
//! with `inet_proto` and port ranges). An agent's packets are recognised by its cgroup v2
//! path (`socket cgroupv2 level N "PATH"`, which also matches descendant cgroups) and/or
//! its uid (`meta skuid`). Host-name and workload destinations cannot be expressed (E0100,
//! E0101). A cgroup must exist when the ruleset is loaded: nft resolves it then.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use egress_check::{Agent, AgentId, CheckedPolicy, EndpointKind, Protocol};

use crate::expected::{self, Decoded};
use crate::k8s::undecodable;
use crate::{file_stem, Artifacts, Diagnostic, Target, TargetConfig};
use egress_sets::{
    interval_to_prefixes, ConnectionSet, Family, IpInterval, IpSet, PortSet, TargetSet,
};

pub const FILE: &str = "egress.nft";
const CHAIN_HEADER: &str = "type filter hook output priority filter; policy drop;";
/// Unspecified and "this network" destinations ([`egress_check::UNSPECIFIED_NETWORKS`])
/// are dropped before any accept, whatever the sets say (they hold none of them either).
/// A `connect` to 0.0.0.0 or `::` is rewritten by the kernel to the loopback address
/// before any packet exists, so these rules catch only packets sent with such a
/// destination; the sets and the runtime's connect hook are what refuse the connect.
const UNSPECIFIED_V4_RULE: &str = "ip daddr 0.0.0.0/8 drop";
const UNSPECIFIED_V6_RULE: &str = "ip6 daddr { ::, ::ffff:0.0.0.0/104 } drop";
const NDP_RULE: &str =
    "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept";

/// How nftables recognises an agent's packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Cgroup v2 path without the leading `/`, e.g. `agents/invoice-bot`.
    pub cgroup: Option<String>,
    pub uid: Option<u32>,
}

impl Identity {
    pub fn of(agent: &Agent) -> Identity {
        Identity {
            cgroup: agent
                .identity
                .cgroup
                .as_ref()
                .map(|c| c.trim_matches('/').to_string()),
            uid: agent.identity.uid,
        }
    }

    fn is_some(&self) -> bool {
        self.cgroup.is_some() || self.uid.is_some()
    }

    /// Can one process match both identities? Cgroup matches cover descendants, so two
    /// paths overlap when one is a prefix (by components) of the other.
    pub fn overlaps(&self, other: &Identity) -> bool {
        let cgroups = match (&self.cgroup, &other.cgroup) {
            (Some(a), Some(b)) => is_component_prefix(a, b) || is_component_prefix(b, a),
            _ => true,
        };
        let uids = match (self.uid, other.uid) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        cgroups && uids
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(path) = &self.cgroup {
            let level = path.split('/').count();
            let _ = write!(out, "socket cgroupv2 level {level} \"{path}\" ");
        }
        if let Some(uid) = self.uid {
            let _ = write!(out, "meta skuid {uid} ");
        }
        out
    }
}

fn is_component_prefix(prefix: &str, path: &str) -> bool {
    path == prefix || path.starts_with(&format!("{prefix}/"))
}

fn valid_cgroup(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars().all(|ch| {
                    ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.' | ':' | '@')
                })
        })
}

fn set_name(agent: &Agent, family: Family) -> String {
    let stem = file_stem(&agent.name.local).replace('-', "_");
    match family {
        Family::V4 => format!("a_{stem}_v4"),
        Family::V6 => format!("a_{stem}_v6"),
    }
}

fn element_ports(ports: &PortSet) -> Vec<String> {
    ports
        .intervals()
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect()
}

pub fn lower(policy: &CheckedPolicy, config: &TargetConfig) -> Result<Artifacts, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let mut sets = String::new();
    let mut rules = String::new();
    for agent in &policy.agents {
        let dests = expected::unconditional_destinations(policy, agent);
        notes.extend(expected::static_narrowings(policy, agent, Target::Nftables));
        let identity = Identity::of(agent);
        if let Some(path) = &identity.cgroup {
            if !valid_cgroup(path) {
                errors.push(
                    Diagnostic::error(
                        "E0112",
                        agent.name.span,
                        format!(
                            "nftables cannot match cgroup path `{path}` of agent `{}`",
                            agent.name.local
                        ),
                    )
                    .with_help("use a cgroup path of letters, digits and `-_.:@` components"),
                );
                continue;
            }
        }
        if dests.is_empty() {
            // Nothing to allow: the default drop already applies.
            continue;
        }
        if !identity.is_some() {
            notes.push(
                Diagnostic::warning(
                    "E0103",
                    agent.name.span,
                    format!(
                        "agent `{}` is not in the nftables ruleset: it has neither a `cgroup` nor a `uid`, so its packets cannot be told apart; on a host with this ruleset all its new connections are dropped",
                        agent.name.local
                    ),
                )
                .with_label("no host identity")
                .with_help("if the agent runs on a host, add `cgroup \"/agents/NAME\"` or `uid N` to it"),
            );
            continue;
        }
        let mut set = ConnectionSet::default();
        let mut ok = true;
        for dest in &dests {
            for endpoint in &dest.endpoints {
                match &endpoint.kind {
                    EndpointKind::Host(pattern) => {
                        ok = false;
                        errors.push(
                            Diagnostic::error(
                                "E0100",
                                endpoint.span,
                                format!(
                                    "nftables cannot express host name `{pattern}` (destination `{}`, agent `{}`)",
                                    dest.name.local, agent.name.local
                                ),
                            )
                            .with_label("host names cannot be matched by a packet filter")
                            .with_help("targets that can express host names: `cilium` (toFQDNs); or replace the host with a `cidr`"),
                        );
                    }
                    EndpointKind::Workload(sel) => {
                        ok = false;
                        errors.push(
                            Diagnostic::error(
                                "E0101",
                                endpoint.span,
                                format!(
                                    "nftables cannot express workload `{sel}` (destination `{}`, agent `{}`)",
                                    dest.name.local, agent.name.local
                                ),
                            )
                            .with_label("workload selectors need a cluster's view of pods")
                            .with_help("targets that can express workloads: `k8s` and `cilium`; or replace the workload with a `cidr`"),
                        );
                    }
                    EndpointKind::Cidr(_) => {}
                }
            }
            set.extend(&expected::destination_set(dest));
        }
        if !ok {
            continue;
        }
        let rects = set.ip_rectangles();
        for family in [Family::V4, Family::V6] {
            let mut elements = Vec::new();
            for protocol in [Protocol::Tcp, Protocol::Udp] {
                for (interval, ports) in rects.get(&(protocol, family)).into_iter().flatten() {
                    for prefix in interval_to_prefixes(*interval) {
                        for port in element_ports(ports) {
                            elements.push(format!("{prefix} . {} . {port}", protocol.as_str()));
                        }
                    }
                }
            }
            if elements.is_empty() {
                continue;
            }
            let name = set_name(agent, family);
            let (addr_type, match_family) = match family {
                Family::V4 => ("ipv4_addr", "ip"),
                Family::V6 => ("ipv6_addr", "ip6"),
            };
            let _ = writeln!(sets, "\tset {name} {{");
            let _ = writeln!(sets, "\t\ttype {addr_type} . inet_proto . inet_service");
            let _ = writeln!(sets, "\t\tflags interval");
            let _ = writeln!(sets, "\t\telements = {{");
            let count = elements.len();
            for (i, e) in elements.iter().enumerate() {
                let sep = if i + 1 < count { "," } else { "" };
                let _ = writeln!(sets, "\t\t\t{e}{sep}");
            }
            let _ = writeln!(sets, "\t\t}}");
            let _ = writeln!(sets, "\t}}");
            let _ = writeln!(rules, "\t\t# agent {}", agent.name.local);
            let _ = writeln!(
                rules,
                "\t\t{}{match_family} daddr . meta l4proto . th dport @{name} accept",
                identity.render()
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let table = &config.nftables.table;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Generated by egc from a checked policy. Do not edit."
    );
    let _ = writeln!(
        text,
        "# Load with `nft -f`; the table is replaced atomically."
    );
    let _ = writeln!(text, "table inet {table}");
    let _ = writeln!(text, "delete table inet {table}");
    let _ = writeln!(text, "table inet {table} {{");
    text.push_str(&sets);
    let _ = writeln!(text, "\tchain output {{");
    let _ = writeln!(text, "\t\t{CHAIN_HEADER}");
    let _ = writeln!(text, "\t\t{UNSPECIFIED_V4_RULE}");
    let _ = writeln!(text, "\t\t{UNSPECIFIED_V6_RULE}");
    let _ = writeln!(text, "\t\tct state established,related accept");
    let _ = writeln!(text, "\t\toif \"lo\" accept");
    let _ = writeln!(text, "\t\t{NDP_RULE}");
    text.push_str(&rules);
    let _ = writeln!(text, "\t}}");
    let _ = writeln!(text, "}}");
    Ok(Artifacts {
        files: BTreeMap::from([(FILE.to_string(), text)]),
        notes,
    })
}

// ---------------------------------------------------------------------------------------
// Decoding: a parser of the emitted ruleset and an evaluator of its output chain.

struct DecodedRule {
    agent: Option<String>,
    identity: Identity,
    set: String,
}

struct Parsed {
    sets: BTreeMap<String, ConnectionSet>,
    rules: Vec<DecodedRule>,
}

fn parse_element(family: Family, text: &str) -> Result<(Protocol, IpInterval, PortSet), String> {
    let parts: Vec<&str> = text.split(" . ").map(str::trim).collect();
    let [addr, proto, port] = parts.as_slice() else {
        return Err(format!("element `{text}` is not `prefix . proto . port`"));
    };
    let net: ipnet::IpNet = addr.parse().map_err(|_| format!("bad prefix `{addr}`"))?;
    let interval = IpInterval::of_net(&net);
    if interval.family != family {
        return Err(format!("element `{text}` of the wrong family"));
    }
    let protocol = match *proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => return Err(format!("protocol `{other}` not decoded")),
    };
    let (a, b) = match port.split_once('-') {
        Some((a, b)) => (a, b),
        None => (*port, *port),
    };
    let a: u16 = a.parse().map_err(|_| format!("bad port `{port}`"))?;
    let b: u16 = b.parse().map_err(|_| format!("bad port `{port}`"))?;
    if a > b {
        return Err(format!("bad port range `{port}`"));
    }
    Ok((protocol, interval, PortSet::from_intervals([(a, b)])))
}

fn parse_rule(line: &str) -> Result<(Identity, Family, String), String> {
    let mut rest = line;
    let mut identity = Identity {
        cgroup: None,
        uid: None,
    };
    if let Some(r) = rest.strip_prefix("socket cgroupv2 level ") {
        let (level, r) = r.split_once(' ').ok_or("truncated cgroup match")?;
        let r = r.strip_prefix('"').ok_or("cgroup path not quoted")?;
        let (path, r) = r.split_once('"').ok_or("cgroup path not closed")?;
        let level: usize = level.parse().map_err(|_| "bad cgroup level")?;
        if level != path.split('/').count() {
            // A lower level would match an ancestor: every sibling cgroup too.
            return Err(format!("cgroup level {level} does not match path `{path}`"));
        }
        identity.cgroup = Some(path.to_string());
        rest = r.trim_start();
    }
    if let Some(r) = rest.strip_prefix("meta skuid ") {
        let (uid, r) = r.split_once(' ').ok_or("truncated uid match")?;
        identity.uid = Some(uid.parse().map_err(|_| "bad uid")?);
        rest = r.trim_start();
    }
    let (family, r) = if let Some(r) = rest.strip_prefix("ip daddr . meta l4proto . th dport @") {
        (Family::V4, r)
    } else if let Some(r) = rest.strip_prefix("ip6 daddr . meta l4proto . th dport @") {
        (Family::V6, r)
    } else {
        return Err(format!("rule `{line}` not decoded"));
    };
    let set = r
        .strip_suffix(" accept")
        .ok_or("rule does not end in accept")?;
    Ok((identity, family, set.to_string()))
}

fn parse(text: &str, table: &str) -> Result<Parsed, String> {
    let mut sets: BTreeMap<String, ConnectionSet> = BTreeMap::new();
    let mut set_family: BTreeMap<String, Family> = BTreeMap::new();
    let mut rules = Vec::new();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut header_seen = false;
    let mut chain_header_seen = false;
    let mut pending_agent: Option<String> = None;
    let mut in_table = false;
    let mut in_chain = false;
    let mut unspecified_dropped = 0;
    let mut accepted = false;
    while let Some(line) = lines.next() {
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(name) = comment.trim().strip_prefix("agent ") {
                pending_agent = Some(name.to_string());
            }
            continue;
        }
        if !in_table {
            if line == format!("table inet {table}") || line == format!("delete table inet {table}")
            {
                continue;
            }
            if line == format!("table inet {table} {{") {
                in_table = true;
                continue;
            }
            return Err(format!("unexpected line `{line}` outside the table"));
        }
        if !in_chain {
            if let Some(name) = line.strip_prefix("set ").and_then(|l| l.strip_suffix(" {")) {
                let ty = lines.next().ok_or("truncated set")?;
                let family = match ty {
                    "type ipv4_addr . inet_proto . inet_service" => Family::V4,
                    "type ipv6_addr . inet_proto . inet_service" => Family::V6,
                    other => return Err(format!("set type `{other}` not decoded")),
                };
                if lines.next() != Some("flags interval") {
                    return Err("set without `flags interval`".into());
                }
                if lines.next() != Some("elements = {") {
                    return Err("set without elements".into());
                }
                let mut set = ConnectionSet::default();
                loop {
                    let l = lines.next().ok_or("truncated elements")?;
                    if l == "}" {
                        break;
                    }
                    let (protocol, interval, ports) =
                        parse_element(family, l.trim_end_matches(','))?;
                    set.add(
                        protocol,
                        TargetSet::Ip(IpSet::from_interval(interval)),
                        ports,
                    );
                }
                if lines.next() != Some("}") {
                    return Err("set not closed".into());
                }
                set_family.insert(name.to_string(), family);
                sets.insert(name.to_string(), set);
                continue;
            }
            if line == "chain output {" {
                in_chain = true;
                continue;
            }
            if line == "}" {
                in_table = false;
                continue;
            }
            return Err(format!("unexpected line `{line}` in the table"));
        }
        if line == "}" {
            in_chain = false;
            continue;
        }
        if line == CHAIN_HEADER {
            chain_header_seen = true;
            header_seen = true;
            continue;
        }
        if line == UNSPECIFIED_V4_RULE || line == UNSPECIFIED_V6_RULE {
            if accepted {
                return Err(format!("`{line}` comes after an accept rule"));
            }
            unspecified_dropped += 1;
            continue;
        }
        accepted = true;
        if line == "ct state established,related accept"
            || line == "oif \"lo\" accept"
            || line == NDP_RULE
        {
            continue;
        }
        let (identity, family, set) = parse_rule(line)?;
        if set_family.get(&set) != Some(&family) {
            return Err(format!(
                "rule matches set `{set}` of another family or no set"
            ));
        }
        if !identity.is_some() {
            return Err(format!("rule `{line}` matches every process"));
        }
        rules.push(DecodedRule {
            agent: pending_agent.take(),
            identity,
            set,
        });
    }
    if !header_seen || !chain_header_seen {
        return Err("no output chain with policy drop".into());
    }
    if unspecified_dropped != 2 {
        return Err("the output chain does not drop unspecified destinations (0.0.0.0/8, ::, ::ffff:0.0.0.0/104) before its accepts".into());
    }
    Ok(Parsed { sets, rules })
}

pub fn decode(
    policy: &CheckedPolicy,
    config: &TargetConfig,
    artifacts: &Artifacts,
) -> Result<BTreeMap<AgentId, Decoded>, Vec<Diagnostic>> {
    let span = crate::policy_span(policy);
    let Some(text) = artifacts.files.get(FILE) else {
        return Err(vec![undecodable(span, FILE, "missing")]);
    };
    let parsed =
        parse(text, &config.nftables.table).map_err(|why| vec![undecodable(span, FILE, &why)])?;
    let mut out = BTreeMap::new();
    for agent in &policy.agents {
        let identity = Identity::of(agent);
        if !identity.is_some() {
            continue;
        }
        let mut d = Decoded::default();
        for rule in &parsed.rules {
            if rule.identity.overlaps(&identity) {
                if let Some(set) = parsed.sets.get(&rule.set) {
                    d.set.extend(set);
                }
                d.contributors
                    .push(rule.agent.clone().unwrap_or_else(|| rule.set.clone()));
            }
        }
        out.insert(agent.id, d);
    }
    Ok(out)
}

/// The nftables backend.
pub struct Nftables;

impl crate::backend::Backend for Nftables {
    fn target(&self) -> Target {
        Target::Nftables
    }
    fn lower(
        &self,
        policy: &CheckedPolicy,
        config: &TargetConfig,
    ) -> Result<Artifacts, Vec<Diagnostic>> {
        lower(policy, config)
    }
    fn decode(
        &self,
        policy: &CheckedPolicy,
        config: &TargetConfig,
        artifacts: &Artifacts,
    ) -> Result<crate::backend::Decoding, Vec<Diagnostic>> {
        decode(policy, config, artifacts).map(crate::backend::Decoding::Connections)
    }
    fn identifies(&self, agent: &egress_check::Agent) -> bool {
        Identity::of(agent).cgroup.is_some() || agent.identity.uid.is_some()
    }
}
