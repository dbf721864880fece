//! The concrete evaluator: decides one concrete connection at a time, straight from the
//! checked model (`HostPattern::matches`, `CidrSet::contains`, `WorkloadSelector::matches`),
//! without the set algebra or the solver. Every counterexample is replayed here before it
//! is reported, and the brute-force oracle is built on it.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_check::{
    AgentId, CheckedPolicy, CidrSet, DataClassId, Destination, EndpointKind, StepAction, Zone,
    ZoneAgents, ZoneId,
};
use ipnet::IpNet;

use crate::sets::{Connection, Target};

pub use egress_sets::routes::{
    agent_node, describe_destination, dest_contains, dest_id_contains, dest_node,
    exception_conditions, format_duration, routes, routes_indexed, Route, RouteIndex, Via,
};

/// Every route of `agent` that allows `c`.
pub fn allowed_routes(policy: &CheckedPolicy, agent: AgentId, c: &Connection) -> Vec<Route> {
    allowed_routes_indexed(policy, &RouteIndex::new(policy), agent, c)
}

/// [`allowed_routes`] with a prepared index.
pub fn allowed_routes_indexed(
    policy: &CheckedPolicy,
    index: &RouteIndex,
    agent: AgentId,
    c: &Connection,
) -> Vec<Route> {
    routes_indexed(policy, index, agent)
        .into_iter()
        .filter(|r| dest_id_contains(policy, r.dest, c))
        .collect()
}

/// The zones that apply to each agent (by [`Zone::applies_to`]'s rule), so replaying
/// many witnesses does not scan every zone for each.
#[derive(Clone, Debug, Default)]
pub struct ZoneIndex {
    /// Per agent: the zones that apply to it, in policy order.
    zones: Vec<Vec<ZoneId>>,
}

impl ZoneIndex {
    pub fn new(policy: &CheckedPolicy) -> ZoneIndex {
        let mut zones: Vec<Vec<ZoneId>> = vec![Vec::new(); policy.agents.len()];
        for z in &policy.zones {
            match &z.agents {
                ZoneAgents::All(_) => zones.iter_mut().for_each(|v| v.push(z.id)),
                ZoneAgents::Listed(list) => {
                    for a in list {
                        if let Some(v) = zones.get_mut(a.id.index()) {
                            if v.last() != Some(&z.id) {
                                v.push(z.id);
                            }
                        }
                    }
                }
            }
        }
        ZoneIndex { zones }
    }

    /// The zones that apply to `agent`, in policy order.
    pub fn zones<'a>(
        &'a self,
        policy: &'a CheckedPolicy,
        agent: AgentId,
    ) -> impl Iterator<Item = &'a Zone> {
        self.zones
            .get(agent.index())
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|z| policy.zone(*z))
    }
}

/// [`approved`] with a prepared zone index.
pub fn approved_indexed(
    policy: &CheckedPolicy,
    zones: &ZoneIndex,
    agent: AgentId,
    c: &Connection,
) -> bool {
    zones
        .zones(policy, agent)
        .any(|z| z.approve.iter().any(|d| dest_id_contains(policy, d.id, c)))
}

/// [`cleared`] with a prepared zone index.
pub fn cleared_indexed(
    policy: &CheckedPolicy,
    zones: &ZoneIndex,
    agent: AgentId,
    class: DataClassId,
    c: &Connection,
) -> bool {
    zones
        .zones(policy, agent)
        .flat_map(|z| z.clearances.iter())
        .filter(|cl| cl.class.id == class)
        .any(|cl| cl.to.iter().any(|d| dest_id_contains(policy, d.id, c)))
}

/// The concrete evaluator: the first route by which `agent` may open `c`, if any.
pub fn allowed(policy: &CheckedPolicy, agent: AgentId, c: &Connection) -> Option<Route> {
    allowed_routes(policy, agent, c).into_iter().next()
}

/// Is `c` in the approvals of the zones that apply to `agent`?
pub fn approved(policy: &CheckedPolicy, agent: AgentId, c: &Connection) -> bool {
    policy
        .zones
        .iter()
        .filter(|z| z.applies_to(agent))
        .any(|z| z.approve.iter().any(|d| dest_id_contains(policy, d.id, c)))
}

/// May class `class` travel to `c` from `agent`, by the clearances of its zones?
pub fn cleared(policy: &CheckedPolicy, agent: AgentId, class: DataClassId, c: &Connection) -> bool {
    policy
        .zones
        .iter()
        .filter(|z| z.applies_to(agent))
        .flat_map(|z| z.clearances.iter())
        .filter(|cl| cl.class.id == class)
        .any(|cl| cl.to.iter().any(|d| dest_id_contains(policy, d.id, c)))
}

/// The data classes each agent holds, its own and received through invocations
/// (including workflow steps), by a plain fixpoint iteration. Indexed by agent.
pub fn holdings(policy: &CheckedPolicy) -> Vec<BTreeSet<DataClassId>> {
    let mut held: Vec<BTreeSet<DataClassId>> = policy
        .agents
        .iter()
        .map(|a| a.handles.iter().map(|h| h.id).collect())
        .collect();
    // (from, to, passing: None = everything)
    let mut edges: Vec<(AgentId, AgentId, Option<Vec<DataClassId>>)> = Vec::new();
    for a in &policy.agents {
        for inv in &a.invokes {
            edges.push((
                a.id,
                inv.callee,
                inv.passing
                    .as_ref()
                    .map(|p| p.iter().map(|r| r.id).collect()),
            ));
        }
    }
    for w in &policy.workflows {
        for s in &w.steps {
            if let StepAction::Invokes { callee, passing } = &s.action {
                let passing = if passing.is_empty() {
                    None
                } else {
                    Some(passing.iter().map(|r| r.id).collect())
                };
                edges.push((s.agent, callee.id, passing));
            }
        }
    }
    loop {
        let mut changed = false;
        for (from, to, passing) in &edges {
            let moving: Vec<DataClassId> = held
                .get(from.index())
                .map(|h| {
                    h.iter()
                        .copied()
                        .filter(|c| passing.as_ref().is_none_or(|p| p.contains(c)))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(target) = held.get_mut(to.index()) {
                for c in moving {
                    changed |= target.insert(c);
                }
            }
        }
        if !changed {
            return held;
        }
    }
}

/// The metadata networks of `no-metadata`.
pub fn metadata_nets() -> Vec<IpNet> {
    [
        "169.254.0.0/16",
        "::ffff:169.254.0.0/112",
        "fe80::/10",
        "fd00:ec2::254/128",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// Is the address a link-local or cloud metadata address?
pub fn is_metadata(addr: IpAddr) -> bool {
    metadata_nets().iter().any(|n| n.contains(&addr))
}

/// The first and last address of a network.
fn bounds(net: &IpNet) -> (IpAddr, IpAddr) {
    (net.network(), net.broadcast())
}

/// The address before `a` in its family, if any.
fn pred(a: IpAddr) -> Option<IpAddr> {
    match a {
        IpAddr::V4(v) => u32::from(v)
            .checked_sub(1)
            .map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        IpAddr::V6(v) => u128::from(v)
            .checked_sub(1)
            .map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    }
}

/// The address after `a` in its family, if any.
fn succ(a: IpAddr) -> Option<IpAddr> {
    match a {
        IpAddr::V4(v) => u32::from(v)
            .checked_add(1)
            .map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        IpAddr::V6(v) => u128::from(v)
            .checked_add(1)
            .map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    }
}

/// Does a CIDR endpoint name metadata addresses: is every address of it (its network
/// minus its `except` networks) a metadata address?
///
/// Decided on points, without set arithmetic: if some address of the endpoint is not a
/// metadata address, then so is the first address of the run of such addresses that
/// holds it, and that run starts at the network's first address, just after an
/// exclusion, or just after a metadata network. So it is enough to look at those points
/// (and, for good measure, the other ends and their neighbours).
pub fn cidr_names_metadata(cidr: &CidrSet) -> bool {
    let mut points: Vec<IpAddr> = Vec::new();
    let mut around = |net: &IpNet| {
        let (first, last) = bounds(net);
        points.extend(
            [Some(first), Some(last), pred(first), succ(last)]
                .into_iter()
                .flatten(),
        );
    };
    around(&cidr.network);
    cidr.except.iter().for_each(&mut around);
    metadata_nets().iter().for_each(&mut around);
    points
        .into_iter()
        .filter(|p| cidr.contains(*p))
        .all(is_metadata)
}

/// Does the destination name the address as a metadata address: does a CIDR endpoint
/// that names metadata addresses ([`cidr_names_metadata`]) contain it?
pub fn names_metadata(dest: &Destination, addr: IpAddr) -> bool {
    dest.endpoints.iter().any(|e| match &e.kind {
        EndpointKind::Cidr(c) => c.contains(addr) && cidr_names_metadata(c),
        _ => false,
    })
}

/// Does `c` break `no-metadata` on this route: is it a connection of the route's
/// destination to a metadata address that, on an exception route, the exception's `to`
/// does not name? (An address is exempt only on an exception route, and only when some
/// CIDR of the same `to`, all of whose addresses are metadata addresses, contains it.)
pub fn metadata_leak(policy: &CheckedPolicy, route: &Route, c: &Connection) -> bool {
    let Target::Ip(ip) = &c.target else {
        return false;
    };
    let Some(dest) = policy.destination(route.dest) else {
        return false;
    };
    is_metadata(*ip)
        && dest_contains(dest, c)
        && !(route.is_exception() && names_metadata(dest, *ip))
}

/// The answer to `egc query`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryAnswer {
    pub agent: AgentId,
    pub connection: Connection,
    pub allowed: bool,
    /// Every route that allows the connection (empty when denied).
    pub routes: Vec<Route>,
    /// Is the connection within the agent's approvals?
    pub approved: bool,
}

/// Is `agent` allowed to open `connection`, and by which routes?
pub fn query(policy: &CheckedPolicy, agent: AgentId, connection: &Connection) -> QueryAnswer {
    let routes = allowed_routes(policy, agent, connection);
    QueryAnswer {
        agent,
        connection: connection.clone(),
        allowed: !routes.is_empty(),
        routes,
        approved: approved(policy, agent, connection),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::sets::{metadata_addresses, IpSet};

    fn cidr(network: &str, except: &[&str]) -> CidrSet {
        CidrSet {
            network: network.parse().unwrap(),
            except: except.iter().map(|e| e.parse().unwrap()).collect(),
        }
    }

    /// A CIDR names metadata addresses when every address of it, after its exclusions, is
    /// one; decided on points, it agrees with the set algebra.
    #[test]
    fn cidr_names_metadata_on_points() {
        let cases: &[(&str, &[&str], bool)] = &[
            ("169.254.169.254/32", &[], true),
            ("169.254.0.0/16", &[], true),
            ("169.254.0.0/16", &["169.254.169.254/32"], true),
            ("169.254.0.0/15", &[], false),
            ("169.254.0.0/15", &["169.255.0.0/16"], true),
            ("169.254.0.0/15", &["169.254.0.0/16"], false),
            ("fd00:ec2::254/128", &[], true),
            ("fd00:ec2::/32", &[], false),
            ("::ffff:169.254.0.0/112", &[], true),
            ("::ffff:0.0.0.0/96", &["::ffff:0.0.0.0/104"], false),
            ("fe80::/10", &[], true),
            ("fe80::/9", &[], false),
            ("fe80::/9", &["fec0::/10"], true),
            ("10.0.0.0/8", &[], false),
            ("0.0.0.0/0", &[], false),
            ("::/0", &[], false),
        ];
        for (network, except, names) in cases {
            let c = cidr(network, except);
            assert_eq!(
                cidr_names_metadata(&c),
                *names,
                "{network} except {except:?}"
            );
            assert_eq!(
                IpSet::from_cidr(&c).is_subset(&metadata_addresses()),
                *names,
                "{network} except {except:?} (set algebra)"
            );
        }
    }
}
