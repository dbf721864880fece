//! Planning per agent: the destinations and capability to add, the entries to change,
//! the diff, the approvals the change needs and the verifier's new findings.

use super::*;

/// What planning shares across agents: the files' syntax trees and the names taken in
/// each, the edits, the destinations already marked `sni optional`, and lines for people.
pub(super) struct Work<'a> {
    pub(super) result: &'a CheckResult,
    pub(super) policy: &'a CheckedPolicy,
    pub(super) parsed_files: BTreeMap<FileId, egress_syntax::Parsed>,
    pub(super) taken: BTreeMap<FileId, BTreeSet<String>>,
    pub(super) edits: BTreeMap<FileId, Vec<Edit>>,
    pub(super) sni_marked: BTreeSet<DestId>,
    pub(super) lines: Vec<String>,
}

impl Work<'_> {
    /// The syntax tree of a policy file (parsed once) and its text.
    pub(super) fn parsed(&mut self, file: FileId) -> Option<(&egress_syntax::Parsed, &str)> {
        let f = self.result.file(file)?;
        let parsed = self
            .parsed_files
            .entry(file)
            .or_insert_with(|| egress_syntax::parse(file, &f.text));
        Some((parsed, &f.text))
    }

    /// Drops what the policy already allows (with a note), and marks `sni optional` the
    /// destinations that admitted nameless connections; the rest is to be added.
    pub(super) fn pending(&mut self, agent: AgentId, wants: &Wants) -> Pending {
        let policy = self.policy;
        let name = policy
            .agent(agent)
            .map_or(String::new(), |a| a.name.qualified.clone());
        let mut pending = Pending::new();
        let mut want = |target: Target, sni: bool, protocol: Protocol, port: u16, assumed: bool| {
            let entry = pending
                .entry((target, sni))
                .or_default()
                .entry(protocol)
                .or_default();
            entry.0.insert(port);
            entry.1 |= assumed;
        };
        let mut observed: Vec<(Connection, bool)> = Vec::new();
        for ((host, protocol), ports) in &wants.hosts {
            let known: BTreeSet<u16> = ports.iter().flatten().copied().collect();
            let assumed = known.is_empty();
            let ports = if assumed {
                [ASSUMED_PORT].into_iter().collect()
            } else {
                known
            };
            for port in ports {
                let target = Target::Host(host.clone());
                observed.push((
                    Connection {
                        target,
                        port,
                        protocol: *protocol,
                    },
                    assumed,
                ));
            }
        }
        for ((ip, protocol), ports) in &wants.addresses {
            for port in ports {
                let target = Target::Ip(*ip);
                observed.push((
                    Connection {
                        target,
                        port: *port,
                        protocol: *protocol,
                    },
                    false,
                ));
            }
        }
        for (connection, assumed) in observed {
            if allowed(policy, agent, &connection) {
                self.lines.push(format!(
                    "note: agent `{name}` may already open {connection} (the events predate the policy?)"
                ));
            } else {
                let (port, protocol) = (connection.port, connection.protocol);
                want(connection.target, false, protocol, port, assumed);
            }
        }
        for (host, ports) in &wants.nameless {
            for port in ports {
                let connection = Connection {
                    target: Target::Host(host.clone()),
                    port: *port,
                    protocol: Protocol::Tcp,
                };
                let answer = egress_verify::query(policy, agent, &connection);
                if !answer.allowed {
                    want(connection.target, true, Protocol::Tcp, *port, false);
                    continue;
                }
                for route in &answer.routes {
                    self.mark_sni_optional(&name, route.dest, &connection);
                }
            }
        }
        pending
    }

    /// Adds `sni optional` to a destination that admitted a connection that named no host.
    pub(super) fn mark_sni_optional(&mut self, agent: &str, dest: DestId, connection: &Connection) {
        let Some(dest) = self.policy.destination(dest) else {
            return;
        };
        let file = dest.name.span.file;
        let editable = !dest.inline && self.result.file(file).is_some_and(|f| !f.is_stdlib);
        if dest.sni_optional {
            self.lines.push(format!(
                "note: `{}` is already `sni optional`; agent `{agent}` was refused {connection} without a name by an older policy?",
                dest.name.qualified
            ));
            return;
        }
        if !editable {
            self.lines.push(format!(
                "note: agent `{agent}` reaches {connection} through `{}`, which egc cannot edit (inline or standard library): mark it `sni optional` by hand",
                dest.name.qualified
            ));
            return;
        }
        if !self.sni_marked.insert(dest.id) {
            return;
        }
        let Some((parsed, text)) = self.parsed(file) else {
            return;
        };
        let edit = parsed
            .ast
            .items
            .iter()
            .find(|i| matches!(&i.kind, ItemKind::Destination(d) if d.name.text == dest.name.local))
            .and_then(|i| braces(text, i.span))
            .map(|(open, close)| entry_insertion(text, open, close, "sni optional"));
        if let Some(edit) = edit {
            self.edits.entry(file).or_default().push(edit);
            self.lines.push(format!(
                "agent `{agent}`: `{}` becomes `sni optional` ({connection} named no host)",
                dest.name.qualified
            ));
        }
    }

    /// The destinations and the capability to add for an agent, named uniquely in the
    /// agent's module; `None` when there is nothing to add.
    pub(super) fn plan(&mut self, agent: AgentId, pending: Pending) -> Option<Plan> {
        if pending.is_empty() {
            return None;
        }
        let declared = self.policy.agent(agent)?;
        let file = declared.name.span.file;
        let mut names = match self.taken.get(&file) {
            Some(names) => names.clone(),
            None => names_in(self.parsed(file)?.0),
        };
        let mut dests = Vec::new();
        for ((target, sni), by_protocol) in pending {
            // One destination when TCP and UDP saw the same ports, else one per protocol.
            let mut groups: Vec<(BTreeSet<Protocol>, BTreeSet<u16>, bool)> = Vec::new();
            for (protocol, (ports, assumed)) in by_protocol {
                match groups
                    .iter_mut()
                    .find(|(_, p, a)| *p == ports && *a == assumed)
                {
                    Some(group) => {
                        group.0.insert(protocol);
                    }
                    None => groups.push(([protocol].into_iter().collect(), ports, assumed)),
                }
            }
            for (protocols, ports, assumed) in groups {
                let mut base = base_name(&target);
                if !protocols.contains(&Protocol::Tcp) {
                    base.push_str("_udp");
                }
                dests.push(NewDest {
                    name: unique(&base, &mut names),
                    target: target.clone(),
                    ports,
                    assumed,
                    protocols,
                    sni_optional: sni,
                });
            }
        }
        let capability = unique(&format!("suggested_{}", declared.name.local), &mut names);
        self.taken.insert(file, names);
        Some(Plan {
            agent,
            dests,
            capability,
        })
    }

    /// The plan's text, right after the agent's declaration, and its capability in the
    /// agent's `uses`.
    pub(super) fn write(&mut self, plan: &Plan) {
        let Some(agent) = self.policy.agent(plan.agent) else {
            return;
        };
        let file = agent.name.span.file;
        let Some((parsed, source)) = self.parsed(file) else {
            return;
        };
        let Some(item) = parsed
            .ast
            .items
            .iter()
            .find(|i| matches!(&i.kind, ItemKind::Agent(a) if a.name.text == agent.name.local))
        else {
            return;
        };
        let ItemKind::Agent(decl) = &item.kind else {
            return;
        };
        let mut text = String::new();
        for (i, dest) in plan.dests.iter().enumerate() {
            text.push_str("\n\n");
            if i == 0 {
                let _ = writeln!(
                    text,
                    "/// Suggested by `egc suggest` from the denials of `{}`: review before merging.",
                    agent.name.local
                );
            }
            render_dest(dest, &mut text);
        }
        let names: Vec<&str> = plan.dests.iter().map(|d| d.name.as_str()).collect();
        let _ = write!(
            text,
            "\n\n/// What `{}` was denied at run time (`egc suggest`).\ncapability {} {{\n    connect {}\n}}",
            agent.name.local,
            plan.capability,
            names.join(", ")
        );
        let end = item.span.end as usize;
        let mut edits = vec![Edit {
            start: end,
            end,
            text,
        }];
        let last_uses = decl.entries.iter().rev().find_map(|e| match e {
            AgentEntry::Uses { span, .. } => Some(*span),
            _ => None,
        });
        match last_uses {
            Some(span) => edits.push(Edit {
                start: span.end as usize,
                end: span.end as usize,
                text: format!(", {}", plan.capability),
            }),
            None => {
                if let Some((open, close)) = braces(source, item.span) {
                    let line = format!("uses {}", plan.capability);
                    edits.push(entry_insertion(source, open, close, &line));
                }
            }
        }
        self.edits.entry(file).or_default().extend(edits);
        for dest in &plan.dests {
            self.lines
                .push(describe(&agent.name.qualified, dest, &plan.capability));
        }
    }
}

/// One line for people about a destination to add.
pub(super) fn describe(agent: &str, dest: &NewDest, capability: &str) -> String {
    let what = match &dest.target {
        Target::Host(h) => format!("host \"{h}\""),
        Target::Ip(ip) => format!("address {ip}"),
        Target::Workload { .. } => String::new(),
    };
    let ports: Vec<String> = dest.ports.iter().map(u16::to_string).collect();
    let protocols: Vec<&str> = dest.protocols.iter().map(|p| p.as_str()).collect();
    format!(
        "agent `{agent}`: destination `{}` ({what}, port {}{}, {}{}) through capability `{capability}`",
        dest.name,
        ports.join(", "),
        if dest.assumed { " (assumed)" } else { "" },
        protocols.join(", "),
        if dest.sni_optional { ", sni optional" } else { "" },
    )
}

/// The changed files (by path) and their unified diff; each formatted as `egc fmt` would
/// when it was formatted before.
pub(super) fn changed_files(
    result: &CheckResult,
    edits: BTreeMap<FileId, Vec<Edit>>,
) -> (BTreeMap<String, String>, String) {
    let mut overlay: BTreeMap<String, String> = BTreeMap::new();
    let mut diff = String::new();
    for (file, file_edits) in edits {
        let Some(f) = result.file(file) else {
            continue;
        };
        let old: &str = &f.text;
        let mut new = apply(old, file_edits);
        if egress_syntax::format::format_source(old).is_ok_and(|formatted| formatted == old) {
            if let Ok(formatted) = egress_syntax::format::format_source(&new) {
                new = formatted;
            }
        }
        diff.push_str(&egress_sbom::unified_diff(old, &new, &f.path));
        overlay.insert(f.path.clone(), new);
    }
    (overlay, diff)
}

/// The zones that must approve each new destination an agent cannot reach approved.
pub(super) fn approvals(
    plans: &[Plan],
    old: &CheckedPolicy,
    new: &CheckedPolicy,
    result: &CheckResult,
    report: &mut String,
) {
    let mut needs: BTreeSet<String> = BTreeSet::new();
    for plan in plans {
        let Some(agent) = old.agent(plan.agent) else {
            continue;
        };
        // Ids may shift in the changed policy: find the agent by name.
        let Some(new_agent) = new
            .agents
            .iter()
            .find(|a| a.name.qualified == agent.name.qualified)
        else {
            continue;
        };
        let zones: Vec<&egress_check::Zone> = new.zones_of(new_agent.id).collect();
        for dest in &plan.dests {
            let unapproved = connections(dest)
                .iter()
                .any(|c| !egress_verify::query(new, new_agent.id, c).approved);
            if !unapproved {
                continue;
            }
            let Some(declared) = new.destinations.iter().find(|d| {
                !d.inline && d.name.local == dest.name && d.name.span.file == agent.name.span.file
            }) else {
                continue;
            };
            let module = declared
                .name
                .qualified
                .rsplit_once('.')
                .map_or("", |(m, _)| m);
            match zones.as_slice() {
                [] => {
                    needs.insert(format!(
                        "no zone lists agent `{}`: a zone must list it and approve `{}`",
                        agent.name.qualified, declared.name.qualified
                    ));
                }
                [zone] => {
                    needs.insert(format!(
                        "zone `{}`{} must approve `{}` ({})",
                        zone.name.local,
                        zone_owner(zone, result),
                        spelling(
                            result,
                            zone.name.span.file,
                            declared.name.span.file,
                            &dest.name,
                            module
                        ),
                        agent.name.qualified
                    ));
                }
                several => {
                    let names: Vec<String> = several
                        .iter()
                        .map(|z| format!("`{}`{}", z.name.local, zone_owner(z, result)))
                        .collect();
                    needs.insert(format!(
                        "one of the zones {} must approve `{}` ({})",
                        names.join(", "),
                        declared.name.qualified,
                        agent.name.qualified
                    ));
                }
            }
        }
    }
    if needs.is_empty() {
        let _ = writeln!(
            report,
            "\nthe zones already approve every suggested destination"
        );
        return;
    }
    let _ = writeln!(
        report,
        "\napprovals this change needs (zones are owned apart from agents; this diff does not edit them):"
    );
    for need in needs {
        let _ = writeln!(report, "  {need}");
    }
}

pub(super) fn zone_owner(zone: &egress_check::Zone, result: &CheckResult) -> String {
    let file = common::file_path(result, zone.name.span);
    match &zone.owner {
        Some(owner) => format!(" (owner \"{owner}\", {file})"),
        None => format!(" ({file})"),
    }
}

/// The verifier's findings on the changed policy that the policy before did not have, and
/// the properties whose status the change moves.
pub(super) fn findings(
    dir: &str,
    result: &CheckResult,
    before: &Report,
    after: &Report,
    color: bool,
    report: &mut String,
) {
    let seen: BTreeSet<(&Property, &str, &str)> = before
        .violations
        .iter()
        .map(|v| (&v.property, v.agent.as_str(), v.message.as_str()))
        .collect();
    let seen_warnings: BTreeSet<(&str, &str)> = before
        .warnings
        .iter()
        .map(|w| (w.code, w.message.as_str()))
        .collect();
    let mut fresh = after.clone();
    fresh
        .violations
        .retain(|v| !seen.contains(&(&v.property, v.agent.as_str(), v.message.as_str())));
    fresh
        .warnings
        .retain(|w| !seen_warnings.contains(&(w.code, w.message.as_str())));
    let _ = writeln!(
        report,
        "\nverification of the policy with this change ({} new finding(s)):",
        fresh.violations.len() + fresh.warnings.len()
    );
    let mut buffer = Vec::new();
    crate::render::human::report(dir, result, &fresh, color, &mut buffer);
    report.push_str(&String::from_utf8_lossy(&buffer));
    for property in &after.properties {
        let was = before.property(&property.id).map(|p| p.status);
        if was.is_some_and(|w| w != property.status) {
            let _ = writeln!(
                report,
                "  {} was {} before this change",
                property.id,
                was.map_or("absent", |w| w.as_str())
            );
        }
    }
}
