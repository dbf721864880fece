//! Reading the events: `egc-event/1` lines, what each agent's denials ask for.

use super::*;

/// One `egc-event/1` line, with the fields `egc suggest` reads.
#[derive(serde::Deserialize)]
pub(super) struct Event {
    pub(super) format: String,
    pub(super) agent: String,
    pub(super) name: Option<String>,
    pub(super) address: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) protocol: String,
    pub(super) layer: String,
    pub(super) reason: String,
}

pub(super) const FORMAT: &str = "egc-event/1";

/// Gate reasons for a connection that named no host: `sni optional` lets them through.
pub(super) const NAMELESS_REASONS: &[&str] = &["no-sni", "no-host", "encrypted-client-hello"];

/// DNS reasons a destination can answer: the name (or a name of its CNAME chain) matched
/// no rule.
pub(super) const DNS_NAME_REASONS: &[&str] = &["name-not-allowed", "cname-not-allowed"];

/// What the denials of one agent ask for.
#[derive(Default)]
pub(super) struct Wants {
    /// (host, protocol) → ports (`None`: refused at DNS, no port known).
    pub(super) hosts: BTreeMap<(String, Protocol), BTreeSet<Option<u16>>>,
    /// (address, protocol) → ports.
    pub(super) addresses: BTreeMap<(IpAddr, Protocol), BTreeSet<u16>>,
    /// Gate refusals of connections that named no host: the host that admitted the
    /// address → ports.
    pub(super) nameless: BTreeMap<String, BTreeSet<u16>>,
}

/// Per (target, `sni optional`), per protocol: the ports, and whether they are assumed.
pub(super) type Pending = BTreeMap<(Target, bool), BTreeMap<Protocol, (BTreeSet<u16>, bool)>>;

/// A destination to add.
pub(super) struct NewDest {
    pub(super) name: String,
    pub(super) target: Target,
    pub(super) ports: BTreeSet<u16>,
    /// No port was observed (refused at DNS): [`ASSUMED_PORT`] is assumed.
    pub(super) assumed: bool,
    pub(super) protocols: BTreeSet<Protocol>,
    pub(super) sni_optional: bool,
}

/// One text edit: replace `start..end` of a file with `text`.
pub(super) struct Edit {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) text: String,
}

/// A lower-case host name of letters, digits, `-` and `_` labels, or `None`.
pub(super) fn host_name(name: &str) -> Option<String> {
    let lower = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let valid = !lower.is_empty()
        && lower.len() <= 253
        && lower.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    valid.then_some(lower)
}

pub(super) fn protocol_of(text: &str) -> Option<Protocol> {
    match text {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        _ => None,
    }
}

/// The agent an event names: its qualified name, a qualified name ending in `.NAME` (the
/// run may have had another project root), or its local name, when exactly one matches.
pub(super) fn find_agent(policy: &CheckedPolicy, name: &str) -> Option<AgentId> {
    if let Some(a) = policy.agents.iter().find(|a| a.name.qualified == name) {
        return Some(a.id);
    }
    let suffix = format!(".{name}");
    let by_suffix: Vec<AgentId> = policy
        .agents
        .iter()
        .filter(|a| a.name.qualified.ends_with(&suffix))
        .map(|a| a.id)
        .collect();
    if let [one] = by_suffix.as_slice() {
        return Some(*one);
    }
    let by_local: Vec<AgentId> = policy
        .agents
        .iter()
        .filter(|a| a.name.local == name)
        .map(|a| a.id)
        .collect();
    match by_local.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// The events read: wants per agent, the lines ignored (not `egc-event/1`), the events
/// no policy change allows (by agent, layer and reason), and the agents the policy lacks
/// (with the first line naming each).
pub(super) struct EventsRead {
    pub(super) wants: BTreeMap<AgentId, Wants>,
    pub(super) ignored: Vec<usize>,
    pub(super) not_expressible: BTreeMap<(String, String, String), usize>,
    pub(super) unknown_agents: BTreeMap<String, usize>,
    pub(super) events: usize,
}

pub(super) fn parse_events(text: &str, policy: &CheckedPolicy) -> EventsRead {
    let mut parsed = EventsRead {
        wants: BTreeMap::new(),
        ignored: Vec::new(),
        not_expressible: BTreeMap::new(),
        unknown_agents: BTreeMap::new(),
        events: 0,
    };
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let event = match serde_json::from_str::<Event>(line) {
            Ok(e) if e.format == FORMAT => e,
            _ => {
                parsed.ignored.push(index + 1);
                continue;
            }
        };
        parsed.events += 1;
        let Some(agent) = find_agent(policy, &event.agent) else {
            parsed
                .unknown_agents
                .entry(event.agent.clone())
                .or_insert(index + 1);
            continue;
        };
        let qualified = policy
            .agent(agent)
            .map_or_else(|| event.agent.clone(), |a| a.name.qualified.clone());
        let mut not_expressible = || {
            *parsed
                .not_expressible
                .entry((qualified.clone(), event.layer.clone(), event.reason.clone()))
                .or_insert(0) += 1;
        };
        let Some(protocol) = protocol_of(&event.protocol) else {
            not_expressible();
            continue;
        };
        let name_target = event
            .name
            .as_deref()
            .and_then(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Some(Target::Ip(ip)),
                Err(_) => host_name(n).map(Target::Host),
            });
        let address = event
            .address
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok());
        // Port 0 is no port a connection can use: the event names none.
        let port = event.port.filter(|p| *p != 0);
        let wants = parsed.wants.entry(agent).or_default();
        match (event.layer.as_str(), name_target, address, port) {
            // The query's own protocol says nothing of the connection that would have
            // followed: TCP is assumed, as the port is.
            ("dns", Some(Target::Host(host)), _, port)
                if DNS_NAME_REASONS.contains(&event.reason.as_str()) =>
            {
                wants
                    .hosts
                    .entry((host, Protocol::Tcp))
                    .or_default()
                    .insert(port);
            }
            ("gate", Some(Target::Host(host)), _, Some(port))
                if NAMELESS_REASONS.contains(&event.reason.as_str()) =>
            {
                wants.nameless.entry(host).or_default().insert(port);
            }
            ("gate", Some(Target::Host(host)), _, Some(port))
                if matches!(event.reason.as_str(), "sni-mismatch" | "host-mismatch") =>
            {
                wants
                    .hosts
                    .entry((host, protocol))
                    .or_default()
                    .insert(Some(port));
            }
            ("connect", Some(Target::Host(host)), _, Some(port)) => {
                wants
                    .hosts
                    .entry((host, protocol))
                    .or_default()
                    .insert(Some(port));
            }
            ("connect", Some(Target::Ip(ip)), _, Some(port))
            | ("connect", None, Some(ip), Some(port)) => {
                wants
                    .addresses
                    .entry((ip, protocol))
                    .or_default()
                    .insert(port);
            }
            _ => not_expressible(),
        }
    }
    parsed
}
