//! The verifier's warnings: findings that do not fail verification (W0101 unused
//! capability, W0102 shadowed destination, W0103 unused approval) and the code of notes on
//! unknown results (W0104).

use super::*;

/// Warning codes of the verifier.
pub const W_UNUSED_CAPABILITY: &str = "W0101";
pub const W_REDUNDANT_CONNECT: &str = "W0102";
pub const W_UNUSED_APPROVAL: &str = "W0103";
pub const W_UNKNOWN: &str = "W0104";

/// The one-line title of a verifier warning code.
pub fn warning_title(code: &str) -> &'static str {
    match code {
        W_UNUSED_CAPABILITY => "capability not used by any agent or workflow step",
        W_REDUNDANT_CONNECT => "destination shadowed by another in the same capability",
        W_UNUSED_APPROVAL => "approval that no agent of the zone uses",
        W_UNKNOWN => "property could not be decided",
        _ => "verifier warning",
    }
}

impl Ctx<'_> {
    pub(super) fn warnings(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for cap in self.graph.unused_capabilities() {
            if let Some(c) = self.policy.capability(cap) {
                if self
                    .policy
                    .file(c.name.span.file)
                    .is_some_and(|f| f.is_stdlib)
                {
                    continue;
                }
                out.push(
                    Diagnostic::warning(
                        W_UNUSED_CAPABILITY,
                        c.name.span,
                        format!(
                            "capability `{}` is not used by any agent or workflow step",
                            c.name.local
                        ),
                    )
                    .with_label("never used")
                    .with_help("remove it, or add it to an agent's `uses`"),
                );
            }
        }
        // Redundant connects: a destination inside another destination of the same capability.
        for cap in &self.policy.capabilities {
            if self
                .policy
                .file(cap.name.span.file)
                .is_some_and(|f| f.is_stdlib)
            {
                continue;
            }
            // A destination can lie inside another only if each of its boxes meets one of
            // the other's: the box index narrows each entry's partners to those, so the
            // exact containment check runs on a few pairs instead of every pair.
            let partners =
                ContainmentPartners::new(cap.connects.iter().map(|c| c.dest), &self.dest_boxes);
            // Where each destination is connected in this capability, so each entry visits
            // only its candidates' positions (in order), never every other entry.
            let mut positions: BTreeMap<DestId, Vec<usize>> = BTreeMap::new();
            for (j, c) in cap.connects.iter().enumerate() {
                positions.entry(c.dest).or_default().push(j);
            }
            for (i, c) in cap.connects.iter().enumerate() {
                let order: Vec<usize> = match partners.of(c.dest, &self.dest_boxes) {
                    Some(candidates) => {
                        let mut js: Vec<usize> = candidates
                            .iter()
                            .filter_map(|d| positions.get(d))
                            .flatten()
                            .copied()
                            .collect();
                        js.sort_unstable();
                        js
                    }
                    None => (0..cap.connects.len()).collect(),
                };
                for j in order {
                    let Some(other) = cap.connects.get(j) else {
                        continue;
                    };
                    if i == j || c.dest == other.dest {
                        continue;
                    }
                    let others = Allowed::new([other.dest], &self.dest_boxes);
                    // Report only one direction of a pair of equal destinations.
                    if matches!(self.outside_by(&self.lints, c.dest, &others), Answer::Holds) {
                        let mutual = matches!(
                            self.outside_by(
                                &self.lints,
                                other.dest,
                                &Allowed::new([c.dest], &self.dest_boxes),
                            ),
                            Answer::Holds
                        );
                        if mutual && j > i {
                            continue;
                        }
                        out.push(
                            Diagnostic::warning(
                                W_REDUNDANT_CONNECT,
                                c.span,
                                format!(
                                    "`{}` is redundant: every connection of it is already in `{}`",
                                    dest_name(self.policy, c.dest),
                                    dest_name(self.policy, other.dest)
                                ),
                            )
                            .with_label("shadowed")
                            .with_secondary(other.span, "covers it")
                            .with_help("remove the narrower entry, or narrow the broader one"),
                        );
                        break;
                    }
                }
            }
        }
        out
    }

    /// Approvals no agent of the zone uses (W0103).
    pub(super) fn zone_warnings(&self, zone: &egress_check::Zone) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        {
            let members: Vec<AgentId> = match &zone.agents {
                egress_check::ZoneAgents::All(_) => {
                    self.policy.agents.iter().map(|a| a.id).collect()
                }
                egress_check::ZoneAgents::Listed(l) => l.iter().map(|r| r.id).collect(),
            };
            // The members' routes on every core (a zone of `agents *` has them all).
            let reached: BTreeSet<DestId> = members
                .par_iter()
                .map(|a| {
                    // Only where they lead: no paths are built.
                    egress_sets::routes::route_steps(self.policy, &self.index, *a)
                        .into_iter()
                        .map(|r| r.dest)
                        .collect::<BTreeSet<DestId>>()
                })
                .reduce(BTreeSet::new, |mut a, b| {
                    a.extend(b);
                    a
                });
            let partners = ContainmentPartners::new(reached.iter().copied(), &self.dest_boxes);
            for approval in &zone.approve {
                if reached.contains(&approval.id) {
                    continue;
                }
                // Only destinations with a box the index finds near one of the approval's
                // can meet it.
                let near = partners.near(approval.id, &self.dest_boxes);
                // `near` is small (the index's candidates); `reached` may hold every
                // destination of the policy: walk the small one.
                let used = near.iter().filter(|d| reached.contains(*d)).any(|d| {
                    matches!(
                        self.meet_by(&self.lints, *d, approval.id),
                        Answer::Witness(_)
                    )
                });
                if !used {
                    out.push(
                        Diagnostic::warning(
                            W_UNUSED_APPROVAL,
                            approval.span,
                            format!(
                                "zone `{}` approves `{}`, but no agent of the zone reaches it",
                                zone.name.local,
                                dest_name(self.policy, approval.id)
                            ),
                        )
                        .with_label("unused approval")
                        .with_help("remove the approval so it cannot be used later without review"),
                    );
                }
            }
        }
        out
    }
}
