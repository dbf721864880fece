//! Deciding box questions: differences and intersections with witnesses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{
    host_search, may_intersect, pattern_subsumes, ConnBox, Connection, IntervalSet, IpSet, Point,
    Target, TargetSet,
};
use egress_check::{HostPattern, Protocol};

// ---------------------------------------------------------------------------------------
// Deciding box questions

/// The search for a host witness gave up after this many steps; the caller falls back to
/// the solver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget;

/// Steps a host search may take before it reports [`Budget`].
pub const DEFAULT_BUDGET: usize = 200_000;

/// The ports × protocols of `b` not covered by the live boxes: a (port, protocol) in the
/// residual, if any.
fn residual_port(b: &ConnBox, live: &[&ConnBox]) -> Option<(u16, Protocol)> {
    for proto in b.protocols.iter() {
        let mut ports = b.ports.clone();
        for j in live {
            if j.protocols.contains(proto) {
                ports = ports.difference(&j.ports);
                if ports.is_empty() {
                    break;
                }
            }
        }
        if let Some(p) = ports.first() {
            return Some((p, proto));
        }
    }
    None
}

/// A connection in `b` outside every box of `union`, or `None` when `b ⊆ ∪ union`.
pub fn box_difference_witness(
    b: &ConnBox,
    union: &[&ConnBox],
    budget: usize,
) -> Result<Option<Connection>, Budget> {
    if b.is_empty() {
        return Ok(None);
    }
    // Only boxes that share a port and a protocol with `b` matter.
    let relevant: Vec<&ConnBox> = union
        .iter()
        .copied()
        .filter(|j| {
            !j.protocols.intersection(b.protocols).is_empty() && j.ports.intersects(&b.ports)
        })
        .collect();
    match &b.target {
        TargetSet::Ip(ips) => Ok(ip_difference(b, ips, &relevant)),
        TargetSet::Workload(sel) => {
            let live: Vec<&ConnBox> = relevant
                .iter()
                .copied()
                .filter(|j| match &j.target {
                    TargetSet::Workload(s) => {
                        s.namespace == sel.namespace
                            && s.labels.iter().all(|(k, v)| sel.labels.get(k) == Some(v))
                    }
                    _ => false,
                })
                .collect();
            Ok(residual_port(b, &live).map(|(port, protocol)| Connection {
                target: Target::Workload {
                    namespace: sel.namespace.clone(),
                    labels: sel.labels.to_map(),
                },
                port,
                protocol,
            }))
        }
        TargetSet::Host(pattern) => {
            let hosts: Vec<(&HostPattern, &ConnBox)> = relevant
                .iter()
                .filter_map(|j| match &j.target {
                    TargetSet::Host(p) if may_intersect(p, pattern) => Some((p, *j)),
                    _ => None,
                })
                .collect();
            // Fast path: one box covers b entirely.
            if hosts.iter().any(|(p, j)| {
                pattern_subsumes(p, pattern)
                    && b.ports.is_subset(&j.ports)
                    && b.protocols.is_subset(j.protocols)
            }) {
                return Ok(None);
            }
            let patterns: Vec<&HostPattern> = hosts.iter().map(|(p, _)| *p).collect();
            let mut found: Option<(u16, Protocol)> = None;
            let host = host_search(pattern, &patterns, budget, &mut |live_idx| {
                let live: Vec<&ConnBox> = live_idx
                    .iter()
                    .filter_map(|i| hosts.get(*i).map(|h| h.1))
                    .collect();
                found = residual_port(b, &live);
                found.is_some()
            })?;
            Ok(match (host, found) {
                (Some(h), Some((port, protocol))) => Some(Connection {
                    target: Target::Host(h),
                    port,
                    protocol,
                }),
                _ => None,
            })
        }
    }
}

fn ip_difference(b: &ConnBox, ips: &IpSet, relevant: &[&ConnBox]) -> Option<Connection> {
    let others: Vec<(&IpSet, &ConnBox)> = relevant
        .iter()
        .filter_map(|j| match &j.target {
            TargetSet::Ip(s) => Some((s, *j)),
            _ => None,
        })
        .collect();
    // Fast path: one box covers b entirely.
    if others.iter().any(|(s, j)| {
        ips.is_subset(s) && b.ports.is_subset(&j.ports) && b.protocols.is_subset(j.protocols)
    }) {
        return None;
    }
    if let Some((addr, port, protocol)) = sweep(&ips.v4, others.iter().map(|(s, j)| (&s.v4, *j)), b)
    {
        return Some(Connection {
            target: Target::Ip(IpAddr::V4(Ipv4Addr::from(addr))),
            port,
            protocol,
        });
    }
    sweep(&ips.v6, others.iter().map(|(s, j)| (&s.v6, *j)), b).map(|(addr, port, protocol)| {
        Connection {
            target: Target::Ip(IpAddr::V6(Ipv6Addr::from(addr))),
            port,
            protocol,
        }
    })
}

/// Splits `space` into elementary segments on which the set of covering boxes is
/// constant, and returns the first point of the first segment whose covering boxes leave
/// some port and protocol of `b` uncovered.
fn sweep<'a, T: Point>(
    space: &IntervalSet<T>,
    others: impl Iterator<Item = (&'a IntervalSet<T>, &'a ConnBox)>,
    b: &ConnBox,
) -> Option<(T, u16, Protocol)> {
    if space.is_empty() {
        return None;
    }
    // Events: (point, +box index) starts, (point, -) ends after point.
    let mut boxes: Vec<&ConnBox> = Vec::new();
    let mut starts: Vec<(T, usize)> = Vec::new();
    let mut ends: Vec<(T, usize)> = Vec::new();
    for (set, j) in others {
        let clipped = set.intersection(space);
        if clipped.is_empty() {
            continue;
        }
        let idx = boxes.len();
        boxes.push(j);
        for &(s, e) in clipped.intervals() {
            starts.push((s, idx));
            ends.push((e, idx));
        }
    }
    starts.sort();
    ends.sort();
    // Candidate segment starts: each interval start of space, each box start, and the
    // point after each box end.
    let mut cuts: BTreeSet<T> = space.intervals().iter().map(|(s, _)| *s).collect();
    cuts.extend(starts.iter().map(|(s, _)| *s));
    cuts.extend(ends.iter().filter_map(|(e, _)| e.succ()));
    let mut active: BTreeMap<usize, usize> = BTreeMap::new();
    let (mut si, mut ei) = (0usize, 0usize);
    for cut in cuts {
        if !space.contains(cut) {
            continue;
        }
        while let Some(&(s, idx)) = starts.get(si) {
            if s > cut {
                break;
            }
            *active.entry(idx).or_insert(0) += 1;
            si += 1;
        }
        while let Some(&(e, idx)) = ends.get(ei) {
            if e >= cut {
                break;
            }
            if let Some(count) = active.get_mut(&idx) {
                *count -= 1;
                if *count == 0 {
                    active.remove(&idx);
                }
            }
            ei += 1;
        }
        let live: Vec<&ConnBox> = active
            .keys()
            .filter_map(|i| boxes.get(*i).copied())
            .collect();
        if let Some((port, protocol)) = residual_port(b, &live) {
            return Some((cut, port, protocol));
        }
    }
    None
}

/// A connection in both boxes, or `None` when they are disjoint.
pub fn box_intersection_witness(
    a: &ConnBox,
    b: &ConnBox,
    budget: usize,
) -> Result<Option<Connection>, Budget> {
    let protocol = match a.protocols.intersection(b.protocols).iter().next() {
        Some(p) => p,
        None => return Ok(None),
    };
    let port = match a.ports.intersection(&b.ports).first() {
        Some(p) => p,
        None => return Ok(None),
    };
    let target = match (&a.target, &b.target) {
        (TargetSet::Ip(x), TargetSet::Ip(y)) => x.intersection(y).first().map(Target::Ip),
        (TargetSet::Workload(x), TargetSet::Workload(y)) => {
            let consistent = x.namespace == y.namespace
                && x.labels
                    .iter()
                    .all(|(k, v)| y.labels.get(k).is_none_or(|w| w == v));
            consistent.then(|| {
                let mut labels = x.labels.to_map();
                labels.extend(y.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                Target::Workload {
                    namespace: x.namespace.clone(),
                    labels,
                }
            })
        }
        (TargetSet::Host(x), TargetSet::Host(y)) => {
            host_search(x, &[y], budget, &mut |live| !live.is_empty())?.map(Target::Host)
        }
        _ => None,
    };
    Ok(target.map(|target| Connection {
        target,
        port,
        protocol,
    }))
}
