//! What the checked policy allows each agent, as exact connection sets, and the
//! comparison of decoded artifacts against it.
//!
//! Static artifacts enforce an agent's *unconditional* set: the destinations of the
//! capabilities it `uses` that are not limited to workflows. Two parts of the policy's
//! reachable set are conditional and cannot be decided by a static packet filter:
//! capabilities usable only within workflows (E0104) and exception paths gated by signed
//! tokens (E0105). They are left out, which narrows the artifact; each is declared as a
//! warning. Including them would allow them outside their condition, a widening.

use std::collections::BTreeMap;

use egress_check::{Agent, AgentId, CheckedPolicy, CidrSet, Destination, Protocol};

use egress_sets::{unspecified_addresses, ConnectionSet, TargetSet};

use crate::{Artifacts, Diagnostic, Target, ValidationReport};

/// A CIDR endpoint as every backend enforces it: without the unspecified and "this
/// network" addresses ([`egress_check::UNSPECIFIED_NETWORKS`]), which are never
/// reachable whatever the policy says (on Linux they reach the local host). Each such
/// network inside the CIDR is added to its exclusions (unless one already covers it);
/// `None` when the CIDR lies entirely inside one, so the endpoint allows nothing.
pub fn enforced_cidr(cidr: &CidrSet) -> Option<CidrSet> {
    if egress_check::UNSPECIFIED_NETWORKS
        .iter()
        .any(|u| u.contains(&cidr.network))
    {
        return None;
    }
    let mut out = cidr.clone();
    for u in egress_check::UNSPECIFIED_NETWORKS {
        if cidr.network.contains(u) && !cidr.except.iter().any(|e| e.contains(u)) {
            out.except.push(*u);
        }
    }
    Some(out)
}

/// The connections of one destination as every backend enforces them: the set
/// algebra's set of the destination without the unspecified addresses.
pub fn destination_set(dest: &Destination) -> ConnectionSet {
    ConnectionSet::from_destination(dest).without_addresses(&unspecified_addresses())
}

/// The destinations an agent may reach unconditionally, deduplicated, in id order: the
/// routes of [`egress_sets::routes`] that need no workflow and no token.
pub fn unconditional_destinations<'p>(
    policy: &'p CheckedPolicy,
    agent: &Agent,
) -> Vec<&'p Destination> {
    egress_sets::routes::unconditional_destinations(policy, agent.id)
}

/// The agent's unconditional connection set.
pub fn agent_set(policy: &CheckedPolicy, agent: &Agent) -> ConnectionSet {
    let mut set = ConnectionSet::default();
    for dest in unconditional_destinations(policy, agent) {
        set.extend(&destination_set(dest));
    }
    set
}

/// Does the agent open network connections unconditionally?
pub fn has_network(policy: &CheckedPolicy, agent: &Agent) -> bool {
    !unconditional_destinations(policy, agent).is_empty()
}

/// The protocols the agent's unconditional destinations use.
pub fn protocols_of(policy: &CheckedPolicy, agent: &Agent) -> Vec<Protocol> {
    let mut out: Vec<Protocol> = unconditional_destinations(policy, agent)
        .iter()
        .flat_map(|d| d.protocols.iter().copied())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Warnings declaring what a static artifact for `target` leaves out for this agent.
pub fn static_narrowings(policy: &CheckedPolicy, agent: &Agent, target: Target) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for granted in &agent.capabilities {
        let Some(cap) = policy.capability(granted.id) else {
            continue;
        };
        if cap.workflows.is_empty() || cap.connects.is_empty() {
            continue;
        }
        let workflows: Vec<String> = cap
            .workflows
            .iter()
            .filter_map(|w| policy.workflow(w.id))
            .map(|w| w.name.local.clone())
            .collect();
        out.push(
            Diagnostic::warning(
                "E0104",
                granted.span,
                format!(
                    "the {target} artifact of agent `{}` leaves out capability `{}`, usable only within workflow(s) {}",
                    agent.name.local,
                    cap.name.local,
                    workflows.join(", ")
                ),
            )
            .with_label("usable only within workflows")
            .with_secondary(cap.span, "limited to workflows here")
            .with_help(
                "a static artifact cannot tell whether a workflow is running; the agent cannot reach these destinations through this artifact. Enforce workflows at run time with `egc enforce`, or drop `workflows` from the capability if it should always apply",
            ),
        );
    }
    for exception in &policy.exceptions {
        if !exception.agents.iter().any(|a| a.id == agent.id) {
            continue;
        }
        let span = exception
            .agents
            .iter()
            .find(|a| a.id == agent.id)
            .map(|a| a.span)
            .unwrap_or(exception.span);
        out.push(
            Diagnostic::warning(
                "E0105",
                span,
                format!(
                    "the {target} artifact of agent `{}` leaves out exception `{}`",
                    agent.name.local, exception.name.local
                ),
            )
            .with_label("exception path not in the static artifact")
            .with_secondary(exception.to.span, "reachable only with a signed, audited token")
            .with_help(
                "exceptions need a token check at connection time, which a static artifact cannot do; enforce them with `egc enforce`",
            ),
        );
    }
    out
}

/// What a decoder found for one agent: its effective allowed set and every agent whose
/// rules contribute to it (more than one when selectors overlap).
#[derive(Clone, Debug, Default)]
pub struct Decoded {
    pub set: ConnectionSet,
    pub contributors: Vec<String>,
}

/// Compares decoded per-agent sets with the policy's unconditional sets. Every agent the
/// target can identify must be decoded.
pub fn compare_connection_sets(
    target: Target,
    policy: &CheckedPolicy,
    decoded: &BTreeMap<AgentId, Decoded>,
    artifacts: &Artifacts,
    budget: usize,
    identifiable: impl Fn(&Agent) -> bool,
    never_expressed: &crate::backend::Inexpressible,
) -> Result<ValidationReport, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut checked = 0;
    // Agents the target cannot identify are left out with a warning (E0103); every other
    // agent must be in the artifact with exactly its set.
    for agent in policy.agents.iter().filter(|a| identifiable(a)) {
        let mut expected = agent_set(policy, agent);
        expected.boxes.retain(|b| match &b.target {
            TargetSet::Host(_) => !never_expressed.hosts,
            TargetSet::Workload(_) => !never_expressed.workloads,
            TargetSet::Ip(_) => true,
        });
        let expected = expected.without_addresses(&never_expressed.addresses);
        let Some(found) = decoded.get(&agent.id) else {
            if expected.is_empty() {
                continue;
            }
            errors.push(
                Diagnostic::error(
                    "E0121",
                    agent.name.span,
                    format!(
                        "the {target} artifact does not contain agent `{}`",
                        agent.name.local
                    ),
                )
                .with_label("no rules found for this agent"),
            );
            continue;
        };
        checked += 1;
        match found.set.difference_witness_within(&expected, budget) {
            Err(_) => errors.push(too_large(target, agent)),
            Ok(Some(witness)) => {
                let others: Vec<&String> = found
                    .contributors
                    .iter()
                    .filter(|c| **c != agent.name.local)
                    .collect();
                let diag = if others.is_empty() {
                    Diagnostic::error(
                        "E0120",
                        agent.name.span,
                        format!(
                            "the {target} artifact lets agent `{}` reach {witness}, which the policy does not allow",
                            agent.name.local
                        ),
                    )
                    .with_label("artifact wider than the policy")
                    .with_help("this is a bug in egc's lowering; please report it with the policy")
                } else {
                    let names: Vec<String> = others.iter().map(|n| format!("`{n}`")).collect();
                    Diagnostic::error(
                        "E0106",
                        agent.name.span,
                        format!(
                            "with {target}, the rules of {} also apply to agent `{}` (their identities overlap), so it could reach {witness}, which its policy does not allow",
                            names.join(", "),
                            agent.name.local
                        ),
                    )
                    .with_label("selectors overlap; allowances add up")
                    .with_help(
                        "give each agent an identity no other agent's identity can also match (e.g. a distinct `app` label value, or cgroups that do not nest)",
                    )
                };
                errors.push(diag);
            }
            Ok(None) => {}
        }
        match expected.difference_witness_within(&found.set, budget) {
            Err(_) => errors.push(too_large(target, agent)),
            Ok(Some(witness)) => errors.push(
                Diagnostic::error(
                    "E0121",
                    agent.name.span,
                    format!(
                        "the {target} artifact does not let agent `{}` reach {witness}, which the policy allows",
                        agent.name.local
                    ),
                )
                .with_label("artifact narrower than the policy, undeclared")
                .with_help("this is a bug in egc's lowering; please report it with the policy"),
            ),
            Ok(None) => {}
        }
    }
    if errors.is_empty() {
        Ok(ValidationReport {
            agents_checked: checked,
            narrowings: artifacts.notes.clone(),
        })
    } else {
        Err(errors)
    }
}

fn too_large(target: Target, agent: &Agent) -> Diagnostic {
    Diagnostic::error(
        "E0122",
        agent.name.span,
        format!(
            "translation validation of the {target} artifact of agent `{}` is too large to decide",
            agent.name.local
        ),
    )
    .with_help("split the agent's host patterns into fewer, simpler destinations; an undecided validation is never a pass")
}
