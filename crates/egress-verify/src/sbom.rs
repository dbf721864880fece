//! Property `sbom-justified` (`egc verify --sbom BOM`): the capabilities marked
//! `justified_by sbom` reach exactly what the SBOM declares.
//!
//! - Every connection of every route through a marked capability (capability and
//!   workflow routes; exceptions are not fetchers) lies in the declared set: the union of
//!   the declared sources, each a host (or address) on one TCP port.
//! - Every declared source is reached by some agent through a marked capability, so the
//!   build does not break. Which fetcher downloads which component is not in an SBOM, so
//!   one is enough.
//!
//! The SBOM comes in as plain data ([`DeclaredSource`]); reading it is `egress-sbom`'s job.
//! Both halves are decided by the exact set algebra, and every witness is replayed
//! through the concrete evaluator before it is reported.

use egress_check::{AgentId, CheckedPolicy, HostLabel, HostPattern, Protocol, Span};

use crate::eval::{self, Via};
use crate::report::*;
use crate::sets::{
    ConnBox, Connection, ConnectionSet, IntervalSet, IpSet, ProtoSet, Target, TargetSet,
};
use crate::verify::W_UNKNOWN;

/// One host and port an SBOM declares, with the components that declare it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeclaredSource {
    /// A host name (lower case, no trailing dot) or an address.
    pub target: Target,
    pub port: u16,
    /// The components (purl, or name and version), sorted.
    pub components: Vec<String>,
}

impl DeclaredSource {
    fn connection(&self) -> Connection {
        Connection {
            target: self.target.clone(),
            port: self.port,
            protocol: Protocol::Tcp,
        }
    }

    fn conn_box(&self) -> Option<ConnBox> {
        let target = match &self.target {
            Target::Host(h) => TargetSet::Host(HostPattern {
                labels: h
                    .split('.')
                    .map(|l| HostLabel::Exact(l.to_string()))
                    .collect(),
            }),
            Target::Ip(std::net::IpAddr::V4(a)) => TargetSet::Ip(IpSet {
                v4: IntervalSet::point(u32::from(*a)),
                v6: IntervalSet::empty(),
            }),
            Target::Ip(std::net::IpAddr::V6(a)) => TargetSet::Ip(IpSet {
                v4: IntervalSet::empty(),
                v6: IntervalSet::point(u128::from(*a)),
            }),
            Target::Workload { .. } => return None,
        };
        Some(ConnBox {
            target,
            ports: IntervalSet::point(self.port),
            protocols: ProtoSet::from_protocols(&[Protocol::Tcp]),
        })
    }
}

/// Adds `sbom-justified` to a report of [`crate::verify()`] on the same policy: its
/// status, its violations and notes on unknown results; the verdict is recomputed.
pub fn add_sbom_justified(report: &mut Report, policy: &CheckedPolicy, sources: &[DeclaredSource]) {
    let (violations, unknown) = check(policy, sources);
    let status = if !violations.is_empty() {
        Verdict::Violated
    } else if !unknown.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Verified
    };
    report
        .properties
        .retain(|p| p.id != Property::SbomJustified);
    report.properties.push(PropertyResult {
        id: Property::SbomJustified,
        status,
    });
    report.violations.extend(violations);
    for (reason, span) in unknown {
        report.warnings.push(
            egress_check::Diagnostic::warning(
                W_UNKNOWN,
                span,
                format!(
                    "property `{}` is unknown: {reason}",
                    Property::SbomJustified
                ),
            )
            .with_help(
                "simplify the host patterns of the marked capability; unknown is never a pass",
            ),
        );
    }
    egress_syntax::diagnostic::sort_diagnostics(&mut report.warnings);
    report.verdict = if report
        .properties
        .iter()
        .any(|p| p.status == Verdict::Violated)
    {
        Verdict::Violated
    } else if report
        .properties
        .iter()
        .any(|p| p.status == Verdict::Unknown)
    {
        Verdict::Unknown
    } else {
        Verdict::Verified
    };
}

/// The marked capability a route goes through, if any.
fn marked_capability(policy: &CheckedPolicy, via: &Via) -> Option<egress_check::CapId> {
    let cap = match via {
        Via::Capability(cap) | Via::Workflow { cap, .. } => *cap,
        Via::Exception(_) => return None,
    };
    policy
        .capability(cap)
        .and_then(|c| c.justified_by_sbom)
        .map(|_| cap)
}

/// The violations of `sbom-justified`, and the questions left undecided.
fn check(
    policy: &CheckedPolicy,
    sources: &[DeclaredSource],
) -> (Vec<Violation>, Vec<(String, Span)>) {
    let declared = ConnectionSet {
        boxes: sources
            .iter()
            .filter_map(DeclaredSource::conn_box)
            .collect(),
    };
    let mut violations = Vec::new();
    let mut unknown = Vec::new();
    // Every route through a marked capability, per agent.
    let mut fetch_routes: Vec<(AgentId, eval::Route)> = Vec::new();
    for agent in &policy.agents {
        for route in eval::routes(policy, agent.id) {
            if marked_capability(policy, &route.via).is_some() {
                fetch_routes.push((agent.id, route));
            }
        }
    }

    // 1. What a fetcher may reach, the SBOM declares.
    for (agent, route) in &fetch_routes {
        let (Some(dest), Some(a)) = (policy.destination(route.dest), policy.agent(*agent)) else {
            continue;
        };
        let cap_name = marked_capability(policy, &route.via)
            .and_then(|c| policy.capability(c))
            .map(|c| c.name.local.clone())
            .unwrap_or_default();
        match ConnectionSet::from_destination(dest).difference_witness(&declared) {
            Ok(None) => {}
            Ok(Some(witness)) => {
                // Replay: the agent may open it, and no declared source holds it.
                let replayed = eval::allowed_routes(policy, *agent, &witness)
                    .iter()
                    .any(|r| r.dest == route.dest)
                    && !declared.contains(&witness);
                if !replayed {
                    unknown.push((
                        format!("a witness for `{}` did not replay", dest.name.local),
                        dest.span,
                    ));
                    continue;
                }
                violations.push(Violation {
                    property: Property::SbomJustified,
                    agent: a.name.local.clone(),
                    path: route.path.clone(),
                    witness: Some(witness.clone()),
                    conditions: route.conditions.clone(),
                    message: format!(
                        "`{}` may reach {witness} through `{cap_name}` (justified_by sbom) and destination `{}`, but no SBOM component declares it",
                        a.name.local, dest.name.local
                    ),
                });
            }
            Err(_) => unknown.push((
                format!(
                    "the host search for destination `{}` exceeded its budget",
                    dest.name.local
                ),
                dest.span,
            )),
        }
    }

    // 2. What the SBOM declares, a fetcher reaches.
    let marked: Vec<&egress_check::Capability> = policy
        .capabilities
        .iter()
        .filter(|c| c.justified_by_sbom.is_some())
        .collect();
    for source in sources {
        let connection = source.connection();
        let reached = fetch_routes.iter().any(|(agent, route)| {
            eval::allowed_routes(policy, *agent, &connection)
                .iter()
                .any(|r| r.dest == route.dest && r.via == route.via)
        });
        if reached {
            continue;
        }
        let path = marked
            .iter()
            .map(|c| PathNode {
                kind: "capability",
                name: c.name.local.clone(),
                span: c.justified_by_sbom.unwrap_or(c.span),
                note: format!(
                    "`{}` is justified by the SBOM but no agent reaches {connection} through it",
                    c.name.local
                ),
            })
            .collect();
        violations.push(Violation {
            property: Property::SbomJustified,
            agent: String::new(),
            path,
            witness: None,
            conditions: Vec::new(),
            message: format!(
                "{} declare{} {}:{}, but no agent reaches it through a capability marked `justified_by sbom`",
                source
                    .components
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if source.components.len() == 1 { "s" } else { "" },
                source.target,
                source.port
            ),
        });
    }
    violations.sort_by(|a, b| (&a.agent, &a.message).cmp(&(&b.agent, &b.message)));
    violations.dedup();
    (violations, unknown)
}
