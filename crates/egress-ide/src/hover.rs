//! Hover: what a name is, its doc comment, what it resolves to and, for destinations, who
//! can reach them.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use egress_check::{
    Agent, CheckedPolicy, ClaimKind, DestId, Destination, EndpointKind, PortRange, Symbol,
    ZoneAgents,
};

use crate::{Analysis, TextRange};

/// Hover text (Markdown) for a range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoverResult {
    pub range: TextRange,
    pub markdown: String,
}

impl Analysis {
    /// What the name at `offset` is.
    pub fn hover(&self, path: &Path, offset: usize) -> Option<HoverResult> {
        let context = self.file_context(path)?;
        if let Some((range, markdown)) = self.alias_hover(&context, offset) {
            return Some(HoverResult { range, markdown });
        }
        let Some(target) = context.symbol_at(offset) else {
            return self.keyword_hover(&context.text, offset);
        };
        let symbol = target.symbol;
        let mut md = String::new();
        let _ = writeln!(md, "```egress\n{} {}\n```", symbol.kind, symbol.qualified);
        if let Some(file) = context.result.file(symbol.name_span.file) {
            let _ = writeln!(md, "declared in `{}`", file.path);
        }
        if let Some(doc) = &symbol.doc {
            let _ = writeln!(md, "\n{}", doc.trim());
        }
        match &context.result.policy {
            Some(policy) => {
                let details = details(policy, symbol);
                if !details.is_empty() {
                    md.push_str("\n---\n");
                    md.push_str(&details);
                }
            }
            None => {
                md.push_str(
                    "\n---\n_Resolved details appear once the policy checks without errors._\n",
                );
            }
        }
        Some(HoverResult {
            range: target.range,
            markdown: md.trim_end().to_string(),
        })
    }
}

fn names<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let list: Vec<String> = items.into_iter().map(|n| format!("`{n}`")).collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

fn ports(ports: &[PortRange]) -> String {
    ports
        .iter()
        .map(|p| {
            if p.start == p.end {
                p.start.to_string()
            } else {
                format!("{}-{}", p.start, p.end)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn dest_name(policy: &CheckedPolicy, id: DestId) -> String {
    match policy.destination(id) {
        Some(d) if d.inline => "an inline destination".to_string(),
        Some(d) => d.name.local.clone(),
        None => "?".to_string(),
    }
}

fn describe_destination(out: &mut String, destination: &Destination) {
    let _ = writeln!(out, "**Resolves to**");
    for endpoint in &destination.endpoints {
        match &endpoint.kind {
            EndpointKind::Host(pattern) => {
                let _ = writeln!(out, "- host `{pattern}`");
            }
            EndpointKind::Cidr(set) => {
                if set.except.is_empty() {
                    let _ = writeln!(out, "- cidr `{}`", set.network);
                } else {
                    let except: Vec<String> = set.except.iter().map(|e| e.to_string()).collect();
                    let _ = writeln!(
                        out,
                        "- cidr `{}` except `{}`",
                        set.network,
                        except.join("`, `")
                    );
                }
            }
            EndpointKind::Workload(selector) => {
                let _ = writeln!(out, "- workload `{selector}`");
            }
        }
    }
    let protocols: Vec<&str> = destination.protocols.iter().map(|p| p.as_str()).collect();
    let _ = writeln!(
        out,
        "- port {} over {}",
        ports(&destination.ports),
        protocols.join(", ")
    );
}

/// How each agent can reach (part of) a destination: every route of the agent (a
/// capability, a capability in a workflow, an exception) whose connections meet it, with
/// a concrete connection in common when the route is to another destination.
fn reachers(policy: &CheckedPolicy, dest: DestId) -> Vec<String> {
    use egress_sets::ConnectionSet;
    use egress_sets::Via;
    let Some(destination) = policy.destination(dest) else {
        return Vec::new();
    };
    let target = ConnectionSet::from_destination(destination);
    let mut out: BTreeSet<String> = BTreeSet::new();
    for agent in &policy.agents {
        for (route, set) in egress_sets::routes::route_sets(policy, agent.id) {
            let via = match route.via {
                Via::Capability(_) | Via::Workflow { .. } => {
                    egress_sets::routes::describe_via(policy, route.via)
                }
                Via::Exception(exception) => {
                    let exception = policy.exception(exception);
                    let approver = exception
                        .and_then(|e| policy.authority(e.approver.id))
                        .map(|a| a.name.local.as_str())
                        .unwrap_or("?");
                    format!(
                        "exception `{}` (approved by `{approver}`, token lifetime at most {})",
                        exception.map(|e| e.name.local.as_str()).unwrap_or("?"),
                        egress_check::format_duration(
                            exception.map(|e| e.max_ttl_secs).unwrap_or(0)
                        )
                    )
                }
            };
            if route.dest == dest {
                out.insert(format!("`{}` via {via}", agent.name.local));
                continue;
            }
            match set.intersection_witness(&target) {
                Ok(Some(witness)) => {
                    out.insert(format!(
                        "`{}` via {via} to `{}`, which overlaps it (e.g. `{witness}`)",
                        agent.name.local,
                        dest_name(policy, route.dest)
                    ));
                }
                Ok(None) => {}
                Err(_) => {
                    out.insert(format!(
                        "`{}` via {via} to `{}`, which may overlap it (undecided within the search budget)",
                        agent.name.local,
                        dest_name(policy, route.dest)
                    ));
                }
            }
        }
    }
    out.into_iter().collect()
}

fn approved_for(policy: &CheckedPolicy, dest: DestId) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    for zone in &policy.zones {
        if !zone.approve.iter().any(|d| d.id == dest) {
            continue;
        }
        match &zone.agents {
            ZoneAgents::All(_) => {
                out.insert(format!("every agent (zone `{}`)", zone.name.local));
            }
            ZoneAgents::Listed(list) => {
                for agent in list {
                    if let Some(agent) = policy.agent(agent.id) {
                        out.insert(format!(
                            "`{}` (zone `{}`)",
                            agent.name.local, zone.name.local
                        ));
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

fn agent_destinations(policy: &CheckedPolicy, agent: &Agent) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    for (_, dest) in policy.direct_destinations(agent) {
        out.insert(dest_name(policy, dest));
    }
    for exception in &policy.exceptions {
        if exception.agents.iter().any(|a| a.id == agent.id) {
            out.insert(format!(
                "{} (exception `{}`)",
                dest_name(policy, exception.to.id),
                exception.name.local
            ));
        }
    }
    out.into_iter().collect()
}

fn bullet_list(out: &mut String, title: &str, items: &[String]) {
    let _ = writeln!(out, "**{title}**");
    if items.is_empty() {
        let _ = writeln!(out, "- none");
    }
    for item in items {
        let _ = writeln!(out, "- {item}");
    }
}

fn details(policy: &CheckedPolicy, symbol: &Symbol) -> String {
    let mut out = String::new();
    let q = symbol.qualified.as_str();
    match symbol.kind {
        "destination" => {
            let Some(destination) = policy.destinations.iter().find(|d| d.name.qualified == q)
            else {
                return out;
            };
            describe_destination(&mut out, destination);
            bullet_list(&mut out, "Reachable by", &reachers(policy, destination.id));
            bullet_list(
                &mut out,
                "Approved for",
                &approved_for(policy, destination.id),
            );
        }
        "agent" => {
            let Some(agent) = policy.agents.iter().find(|a| a.name.qualified == q) else {
                return out;
            };
            let caps: Vec<&str> = agent
                .capabilities
                .iter()
                .filter_map(|c| policy.capability(c.id))
                .map(|c| c.name.local.as_str())
                .collect();
            let _ = writeln!(out, "**Uses** {}", names(caps));
            bullet_list(&mut out, "Can reach", &agent_destinations(policy, agent));
            let handles: Vec<&str> = agent
                .handles
                .iter()
                .filter_map(|d| policy.data_class(d.id))
                .map(|d| d.name.local.as_str())
                .collect();
            let _ = writeln!(out, "\n**Handles** {}", names(handles));
            let invokes: Vec<&str> = agent
                .invokes
                .iter()
                .filter_map(|i| policy.agent(i.callee))
                .map(|a| a.name.local.as_str())
                .collect();
            let _ = writeln!(out, "\n**Invokes** {}", names(invokes));
            let zones: Vec<&str> = policy
                .zones_of(agent.id)
                .map(|z| z.name.local.as_str())
                .collect();
            let _ = writeln!(out, "\n**Zones** {}", names(zones));
        }
        "capability" => {
            let Some(cap) = policy.capabilities.iter().find(|c| c.name.qualified == q) else {
                return out;
            };
            let connects: Vec<String> = cap
                .connects
                .iter()
                .map(|c| dest_name(policy, c.dest))
                .collect();
            let _ = writeln!(
                out,
                "**Connects to** {}",
                names(connects.iter().map(String::as_str))
            );
            let syscalls: Vec<&str> = cap
                .syscall_groups
                .iter()
                .filter_map(|g| policy.syscall_group(*g))
                .map(|g| g.name.local.as_str())
                .collect();
            let _ = writeln!(out, "\n**Syscall groups** {}", names(syscalls));
            let caps: Vec<&str> = cap.linux_caps.iter().map(|g| g.cap.name()).collect();
            let _ = writeln!(out, "\n**Linux capabilities** {}", names(caps));
            if !cap.workflows.is_empty() {
                let workflows: Vec<&str> = cap
                    .workflows
                    .iter()
                    .filter_map(|w| policy.workflow(w.id))
                    .map(|w| w.name.local.as_str())
                    .collect();
                let _ = writeln!(out, "\n**Only in workflows** {}", names(workflows));
            }
            let users: Vec<&str> = policy
                .agents
                .iter()
                .filter(|a| a.capabilities.iter().any(|c| c.id == cap.id))
                .map(|a| a.name.local.as_str())
                .collect();
            let _ = writeln!(out, "\n**Used by** {}", names(users));
        }
        "data" => {
            let Some(class) = policy.data_classes.iter().find(|d| d.name.qualified == q) else {
                return out;
            };
            let holders: Vec<&str> = policy
                .agents
                .iter()
                .filter(|a| a.handles.iter().any(|h| h.id == class.id))
                .map(|a| a.name.local.as_str())
                .collect();
            let _ = writeln!(out, "**Handled by** {}", names(holders));
            let mut cleared: BTreeSet<String> = BTreeSet::new();
            for zone in &policy.zones {
                for clearance in zone.clearances.iter().filter(|c| c.class.id == class.id) {
                    for dest in &clearance.to {
                        cleared.insert(format!(
                            "`{}` (zone `{}`)",
                            dest_name(policy, dest.id),
                            zone.name.local
                        ));
                    }
                }
            }
            let cleared: Vec<String> = cleared.into_iter().collect();
            out.push('\n');
            bullet_list(&mut out, "Cleared to", &cleared);
        }
        "syscalls" => {
            if let Some(group) = policy.syscall_groups.iter().find(|g| g.name.qualified == q) {
                let _ = writeln!(
                    out,
                    "**Syscalls** {}",
                    names(group.syscalls.iter().map(String::as_str))
                );
            }
        }
        "capset" => {
            if let Some(set) = policy.cap_sets.iter().find(|s| s.name.qualified == q) {
                let _ = writeln!(
                    out,
                    "**Linux capabilities** {}",
                    names(set.caps.iter().map(|c| c.name()))
                );
            }
        }
        "exception" => {
            if let Some(exception) = policy.exceptions.iter().find(|e| e.name.qualified == q) {
                let agents: Vec<&str> = exception
                    .agents
                    .iter()
                    .filter_map(|a| policy.agent(a.id))
                    .map(|a| a.name.local.as_str())
                    .collect();
                let _ = writeln!(out, "**Agents** {}", names(agents));
                if let Some(to) = policy.destination(exception.to.id) {
                    let _ = writeln!(out, "\n**To** {}", dest_name(policy, to.id));
                    describe_destination(&mut out, to);
                }
                let approver = policy
                    .authority(exception.approver.id)
                    .map(|a| a.name.local.clone())
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "\n**Approver** `{approver}`, token lifetime at most {}s{}",
                    exception.max_ttl_secs,
                    exception
                        .max_uses
                        .map(|n| format!(", at most {n} uses"))
                        .unwrap_or_default()
                );
                let _ = writeln!(
                    out,
                    "\n**Audited at** `{}`; legal basis: {}",
                    dest_name(policy, exception.audit.id),
                    exception.legal_basis
                );
            }
        }
        "authority" => {
            if let Some(authority) = policy.authorities.iter().find(|a| a.name.qualified == q) {
                let _ = writeln!(
                    out,
                    "**Signs tokens** valid at most {}s",
                    authority.max_ttl_secs
                );
            }
        }
        "zone" => {
            if let Some(zone) = policy.zones.iter().find(|z| z.name.qualified == q) {
                if let Some(owner) = &zone.owner {
                    let _ = writeln!(out, "**Owner** {owner}");
                }
                let agents = match &zone.agents {
                    ZoneAgents::All(_) => "every agent".to_string(),
                    ZoneAgents::Listed(list) => names(
                        list.iter()
                            .filter_map(|a| policy.agent(a.id))
                            .map(|a| a.name.local.as_str()),
                    ),
                };
                let _ = writeln!(out, "\n**Agents** {agents}");
                let approve: Vec<String> = zone
                    .approve
                    .iter()
                    .map(|d| dest_name(policy, d.id))
                    .collect();
                let _ = writeln!(
                    out,
                    "\n**Approves** {}",
                    names(approve.iter().map(String::as_str))
                );
            }
        }
        "workflow" => {
            if let Some(workflow) = policy.workflows.iter().find(|w| w.name.qualified == q) {
                let _ = writeln!(out, "**Steps** {}", workflow.steps.len());
            }
        }
        "assert" => {
            if let Some(assertion) = policy.asserts.iter().find(|a| a.name.qualified == q) {
                let mut claims = Vec::new();
                for claim in &assertion.claims {
                    claims.push(match &claim.kind {
                        ClaimKind::CannotReach { dest, .. } => {
                            format!("cannot reach {}", dest_name(policy, dest.id))
                        }
                        ClaimKind::CanReach { dest, .. } => {
                            format!("can reach {}", dest_name(policy, dest.id))
                        }
                        ClaimKind::NeverReaches { dest, .. } => {
                            format!("data never reaches {}", dest_name(policy, dest.id))
                        }
                    });
                }
                bullet_list(&mut out, "Claims", &claims);
            }
        }
        _ => {}
    }
    out
}

/// One line on what a keyword means.
fn keyword_doc(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "import" => "`import std.NAME` brings a stdlib module in (used as `NAME.x`); `import \"path.egress\" as a` a project file, relative to this file.",
        "data" => "`data a, b` declares data classes. Outside assertions, `data` declares; in an assertion, `data C never reaches D`.",
        "destination" => "A named set of connections: hosts, CIDRs or in-cluster workloads, times ports, times protocols (default `tcp`).",
        "capability" => "A named grant: destinations to `connect` to, `syscalls` groups, Linux capabilities to `grant`, optionally usable only in `workflows`.",
        "agent" => "An AI agent: its identity (`workload`, `image`, `cgroup`, `uid`), the capabilities it `uses`, the data it `handles`, whom it `invokes`. In an assertion, `agent A cannot reach D`.",
        "workflow" => "Steps in which workflow-scoped capabilities and delegations apply: `step AGENT uses CAP`, `step AGENT invokes B passing C`.",
        "exception" => "An audited path for a legally mandated call: `agents`, the bounding `to` set, the `approver` authority, `max_ttl`, optional `max_uses`, the `audit` sink and the `legal_basis`.",
        "authority" => "Who signs exception tokens: an ed25519 `key` and the longest token lifetime `max_ttl`.",
        "zone" => "Approvals owned by a security team: the `agents` it applies to, the destinations it `approve`s, and data clearances (`clear C to D`).",
        "assert" => "User properties the verifier proves: `agent A cannot reach D`, `agent A can reach D`, `data C never reaches D`.",
        "syscalls" => "A named group of system calls (an item), or the syscall groups a capability grants (an entry).",
        "capset" => "A named set of Linux capabilities, granted with `grant`.",
        "host" => "Host names: exact FQDNs, `*.x.example` (exactly one label), `**.x.example` (one or more, leftmost only); case-insensitive; never the apex.",
        "cidr" => "An IPv4 or IPv6 network, optionally `except` smaller networks inside it.",
        "except" => "Networks carved out of the `cidr` before it.",
        "workload" => "In-cluster workloads: `namespace \"ns\"` and `labels { k = \"v\" }` (all listed labels must match).",
        "port" | "ports" => "Ports or ranges (`443, 8000-8080`), 1 to 65535; required.",
        "protocol" => "`tcp`, `udp` or both; `tcp` when omitted.",
        "sni" | "optional" => "`sni optional`: the run-time gate also lets through connections to the learned addresses of this destination's hosts that name no host (no TLS SNI, no HTTP `Host` header, or an encrypted ClientHello); without it they are refused. Only for `host` destinations (W0005 elsewhere).",
        "connect" => "The destinations this capability may connect to.",
        "grant" => "Linux capabilities, literal (`CAP_NET_RAW`: an explicit grant) or capability sets.",
        "workflows" => "The capability is usable only within these workflows, and only by steps that use it.",
        "uses" => "The capabilities an agent uses (in a step: the capability used in that step).",
        "handles" => "The data classes the agent holds itself.",
        "invokes" => "Delegation: the invoker's data classes travel to the callee (all of them, or only those after `passing`).",
        "passing" => "Only these data classes travel along the invocation.",
        "agents" => "The agents this applies to (`*` for every agent).",
        "to" => "In an exception: the destination set that bounds every run-time destination. In `clear C to D`: where class C may travel.",
        "approver" => "The authority whose signed tokens open the exception.",
        "max_ttl" => "The longest token lifetime (at most the authority's, and at most 24h).",
        "max_uses" => "How many connections one token may open.",
        "audit" => "Where uses of the exception are audited; must be reachable and approved for every exception agent.",
        "legal_basis" => "Why the exception exists, for reviewers and the audit log.",
        "clear" => "`clear C to D, ...`: data class C may travel to these destinations.",
        "approve" => "The destinations the zone's agents are approved to reach; `approve grant CAP_...` approves Linux capabilities that bypass enforcement, `approve unix \"/path\"` local sockets.",
        "justified_by" => "`justified_by sbom`: the capability fetches the build's dependencies, so with `egc verify --sbom BOM` every destination it allows must be a host the SBOM declares, and every host the SBOM declares must be reachable through such a capability (property `sbom-justified`).",
        "unix" => "Local (Unix domain) sockets by absolute path: in a capability, the sockets its agents may use; in a zone (`approve unix`), the sockets its agents are approved to use.",
        _ => return None,
    })
}

impl Analysis {
    pub(crate) fn keyword_hover(&self, text: &str, offset: usize) -> Option<HoverResult> {
        let token = egress_syntax::lexer::tokenize(text)
            .into_iter()
            .find(|t| t.start() <= offset && offset <= t.end())?;
        let word = token.text(text);
        let doc = keyword_doc(word)?;
        Some(HoverResult {
            range: TextRange::new(token.start(), token.end()),
            markdown: format!("```egress\n{word}\n```\n{doc}"),
        })
    }
}
