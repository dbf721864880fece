//! Exact sets of allowed connections and the set algebra translation validation needs.
//!
//! A connection is `(target, port, protocol)` where the target is an IP address, a host
//! name or an in-cluster workload. A [`ConnSet`] is a finite union of *atoms*: an IP
//! interval, a host pattern or a workload selector, crossed with a port range and a
//! protocol. Containment is decided exactly:
//! - IP atoms: elementary address intervals over all boundaries, each with its port set;
//! - workload atoms: a selector is covered by a union of selectors exactly when one
//!   selector of the same namespace asks for a subset of its labels (the workload that
//!   carries exactly the selector's labels must be matched by one of them);
//! - host atoms: a product automaton over right-aligned labels with the alphabet made of
//!   the policy's constant labels plus one fresh label, explored breadth-first.
//!
//! Every failed containment returns a concrete witness connection.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_check::{CidrSet, HostLabel, HostPattern, PortRange, Protocol, WorkloadSelector};
use ipnet::IpNet;

/// An IP address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn max(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }
}

/// An inclusive address interval within one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpInterval {
    pub family: Family,
    pub start: u128,
    pub end: u128,
}

impl IpInterval {
    pub fn of_net(net: &IpNet) -> IpInterval {
        match net {
            IpNet::V4(n) => IpInterval {
                family: Family::V4,
                start: u128::from(u32::from(n.network())),
                end: u128::from(u32::from(n.broadcast())),
            },
            IpNet::V6(n) => IpInterval {
                family: Family::V6,
                start: u128::from(n.network()),
                end: u128::from(n.broadcast()),
            },
        }
    }
}

/// Converts an address in a family to an `IpAddr`.
pub fn addr_of(family: Family, value: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// The intervals of a CIDR with its exclusions removed, sorted and disjoint.
pub fn cidr_intervals(cidr: &CidrSet) -> Vec<IpInterval> {
    let whole = IpInterval::of_net(&cidr.network);
    let mut out = vec![whole];
    for except in &cidr.except {
        let cut = IpInterval::of_net(except);
        out = subtract_interval(&out, cut);
    }
    out
}

fn subtract_interval(from: &[IpInterval], cut: IpInterval) -> Vec<IpInterval> {
    let mut out = Vec::new();
    for piece in from {
        if piece.family != cut.family || cut.end < piece.start || cut.start > piece.end {
            out.push(*piece);
            continue;
        }
        if cut.start > piece.start {
            out.push(IpInterval {
                end: cut.start - 1,
                ..*piece
            });
        }
        if cut.end < piece.end {
            out.push(IpInterval {
                start: cut.end + 1,
                ..*piece
            });
        }
    }
    out
}

/// The smallest list of CIDR prefixes that covers exactly `[start, end]`.
pub fn interval_to_prefixes(interval: IpInterval) -> Vec<IpNet> {
    let bits: u32 = match interval.family {
        Family::V4 => 32,
        Family::V6 => 128,
    };
    let mut out = Vec::new();
    let mut start = interval.start;
    loop {
        if start > interval.end {
            break;
        }
        // The largest block aligned at `start` that stays within the interval.
        let mut size_log = if start == 0 {
            bits
        } else {
            start.trailing_zeros().min(bits)
        };
        loop {
            let last = if size_log >= 128 {
                u128::MAX
            } else {
                start.saturating_add((1u128 << size_log) - 1)
            };
            if last <= interval.end {
                break;
            }
            size_log -= 1;
        }
        let prefix_len = u8::try_from(bits - size_log).unwrap_or(0);
        let net = match interval.family {
            Family::V4 => ipnet::Ipv4Net::new(
                Ipv4Addr::from(u32::try_from(start).unwrap_or(0)),
                prefix_len,
            )
            .map(IpNet::V4),
            Family::V6 => ipnet::Ipv6Net::new(Ipv6Addr::from(start), prefix_len).map(IpNet::V6),
        };
        if let Ok(net) = net {
            out.push(net);
        }
        let block_end = if size_log >= 128 {
            u128::MAX
        } else {
            start.saturating_add((1u128 << size_log) - 1)
        };
        if block_end >= interval.end {
            break;
        }
        start = block_end + 1;
    }
    out
}

/// A set of ports as sorted, merged, disjoint inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortSet(Vec<(u16, u16)>);

impl PortSet {
    pub fn empty() -> PortSet {
        PortSet(Vec::new())
    }
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u16, u16)>) -> PortSet {
        let mut v: Vec<(u16, u16)> = ranges.into_iter().filter(|(a, b)| a <= b).collect();
        v.sort();
        let mut out: Vec<(u16, u16)> = Vec::new();
        for (a, b) in v {
            if let Some(last) = out.last_mut() {
                if u32::from(a) <= u32::from(last.1) + 1 {
                    last.1 = last.1.max(b);
                    continue;
                }
            }
            out.push((a, b));
        }
        PortSet(out)
    }
    pub fn of(ranges: &[PortRange]) -> PortSet {
        PortSet::from_ranges(ranges.iter().map(|r| (r.start, r.end)))
    }
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn union(&self, other: &PortSet) -> PortSet {
        PortSet::from_ranges(self.0.iter().chain(other.0.iter()).copied())
    }
    /// `self \ other`.
    pub fn minus(&self, other: &PortSet) -> PortSet {
        let mut out = Vec::new();
        for &(a, b) in &self.0 {
            let mut pieces = vec![(u32::from(a), u32::from(b))];
            for &(c, d) in &other.0 {
                let (c, d) = (u32::from(c), u32::from(d));
                let mut next = Vec::new();
                for (x, y) in pieces {
                    if d < x || c > y {
                        next.push((x, y));
                        continue;
                    }
                    if c > x {
                        next.push((x, c - 1));
                    }
                    if d < y {
                        next.push((d + 1, y));
                    }
                }
                pieces = next;
            }
            for (x, y) in pieces {
                if let (Ok(x), Ok(y)) = (u16::try_from(x), u16::try_from(y)) {
                    out.push((x, y));
                }
            }
        }
        PortSet::from_ranges(out)
    }
    pub fn first(&self) -> Option<u16> {
        self.0.first().map(|r| r.0)
    }
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(a, b)| a <= port && port <= b)
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, b)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

/// What a connection goes to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Ip(IpInterval),
    Host(HostPattern),
    Workload(WorkloadSelector),
}

/// One atom of a connection set: targets × ports × one protocol.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Atom {
    pub protocol: Protocol,
    pub target: Target,
    pub ports: PortSet,
}

/// A set of allowed connections: a union of atoms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnSet {
    pub atoms: Vec<Atom>,
}

/// One concrete connection, the witness of a difference between two sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub protocol: Protocol,
    pub target: String,
    pub port: u16,
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.target, self.port, self.protocol)
    }
}

/// Containment could not be decided within the search bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TooLarge;

/// Bound on the states the host-pattern automaton may explore for one question.
const HOST_STATE_LIMIT: usize = 200_000;

impl ConnSet {
    pub fn new() -> ConnSet {
        ConnSet::default()
    }
    pub fn add(&mut self, protocol: Protocol, target: Target, ports: PortSet) {
        if ports.is_empty() {
            return;
        }
        self.atoms.push(Atom {
            protocol,
            target,
            ports,
        });
    }
    pub fn extend(&mut self, other: &ConnSet) {
        self.atoms.extend(other.atoms.iter().cloned());
    }
    pub fn is_empty(&self) -> bool {
        self.atoms.is_empty()
    }

    /// Canonical disjoint IP rectangles: for each protocol and family, elementary address
    /// intervals with the port set allowed there, adjacent intervals with equal port sets
    /// merged. Two sets have equal IP parts exactly when these are equal.
    pub fn ip_rectangles(&self) -> BTreeMap<(Protocol, Family), Vec<(IpInterval, PortSet)>> {
        let mut out = BTreeMap::new();
        let mut keys: BTreeSet<(Protocol, Family)> = BTreeSet::new();
        for atom in &self.atoms {
            if let Target::Ip(iv) = &atom.target {
                keys.insert((atom.protocol, iv.family));
            }
        }
        for (protocol, family) in keys {
            let pieces: Vec<(IpInterval, &PortSet)> = self
                .atoms
                .iter()
                .filter_map(|a| match &a.target {
                    Target::Ip(iv) if a.protocol == protocol && iv.family == family => {
                        Some((*iv, &a.ports))
                    }
                    _ => None,
                })
                .collect();
            let bounds = boundaries(pieces.iter().map(|(iv, _)| *iv));
            let mut rects: Vec<(IpInterval, PortSet)> = Vec::new();
            for (start, end) in elementary(&bounds, family) {
                let mut ports = PortSet::empty();
                for (iv, p) in &pieces {
                    if iv.start <= start && end <= iv.end {
                        ports = ports.union(p);
                    }
                }
                if ports.is_empty() {
                    continue;
                }
                if let Some((last, last_ports)) = rects.last_mut() {
                    if *last_ports == ports && last.end.checked_add(1) == Some(start) {
                        last.end = end;
                        continue;
                    }
                }
                rects.push((IpInterval { family, start, end }, ports));
            }
            out.insert((protocol, family), rects);
        }
        out
    }

    /// A connection in `self` but not in `other`, if any.
    pub fn first_not_in(&self, other: &ConnSet) -> Result<Option<Connection>, TooLarge> {
        if let Some(w) = self.ip_not_in(other) {
            return Ok(Some(w));
        }
        if let Some(w) = self.workload_not_in(other) {
            return Ok(Some(w));
        }
        self.host_not_in(other)
    }

    fn ip_not_in(&self, other: &ConnSet) -> Option<Connection> {
        let mine = self.ip_rectangles();
        let theirs = other.ip_rectangles();
        for ((protocol, family), rects) in &mine {
            let empty = Vec::new();
            let other_rects = theirs.get(&(*protocol, *family)).unwrap_or(&empty);
            let bounds = boundaries(
                rects
                    .iter()
                    .map(|(iv, _)| *iv)
                    .chain(other_rects.iter().map(|(iv, _)| *iv)),
            );
            for (start, end) in elementary(&bounds, *family) {
                let Some(mine_ports) = rects
                    .iter()
                    .find(|(iv, _)| iv.start <= start && end <= iv.end)
                    .map(|(_, p)| p)
                else {
                    continue;
                };
                let their_ports = other_rects
                    .iter()
                    .find(|(iv, _)| iv.start <= start && end <= iv.end)
                    .map(|(_, p)| p.clone())
                    .unwrap_or_default();
                let diff = mine_ports.minus(&their_ports);
                if let Some(port) = diff.first() {
                    return Some(Connection {
                        protocol: *protocol,
                        target: addr_of(*family, start).to_string(),
                        port,
                    });
                }
            }
        }
        None
    }

    fn workload_not_in(&self, other: &ConnSet) -> Option<Connection> {
        for atom in &self.atoms {
            let Target::Workload(sel) = &atom.target else {
                continue;
            };
            let mut covered = PortSet::empty();
            for theirs in &other.atoms {
                if theirs.protocol != atom.protocol {
                    continue;
                }
                if let Target::Workload(other_sel) = &theirs.target {
                    if other_sel.namespace == sel.namespace
                        && other_sel
                            .labels
                            .iter()
                            .all(|(k, v)| sel.labels.get(k) == Some(v))
                    {
                        covered = covered.union(&theirs.ports);
                    }
                }
            }
            if let Some(port) = atom.ports.minus(&covered).first() {
                return Some(Connection {
                    protocol: atom.protocol,
                    target: format!("workload {sel}"),
                    port,
                });
            }
        }
        None
    }

    fn host_not_in(&self, other: &ConnSet) -> Result<Option<Connection>, TooLarge> {
        let host_atoms: Vec<&Atom> = self
            .atoms
            .iter()
            .chain(other.atoms.iter())
            .filter(|a| matches!(a.target, Target::Host(_)))
            .collect();
        if host_atoms.is_empty() {
            return Ok(None);
        }
        let mut constants: BTreeSet<String> = BTreeSet::new();
        for atom in &host_atoms {
            if let Target::Host(p) = &atom.target {
                for label in &p.labels {
                    if let HostLabel::Exact(s) = label {
                        constants.insert(s.clone());
                    }
                }
            }
        }
        for atom in &self.atoms {
            let Target::Host(pattern) = &atom.target else {
                continue;
            };
            // Split the atom's ports at every boundary of the other side's host ports, so
            // each piece is covered by a fixed subset of the other side's patterns.
            let mut cuts: BTreeSet<u32> = BTreeSet::new();
            for &(a, b) in atom.ports.ranges() {
                cuts.insert(u32::from(a));
                cuts.insert(u32::from(b) + 1);
            }
            for theirs in &other.atoms {
                if theirs.protocol == atom.protocol && matches!(theirs.target, Target::Host(_)) {
                    for &(a, b) in theirs.ports.ranges() {
                        cuts.insert(u32::from(a));
                        cuts.insert(u32::from(b) + 1);
                    }
                }
            }
            let cuts: Vec<u32> = cuts.into_iter().collect();
            for pair in cuts.windows(2) {
                let (Some(&lo), Some(&hi)) = (pair.first(), pair.get(1)) else {
                    continue;
                };
                let Ok(port) = u16::try_from(lo) else {
                    continue;
                };
                if !atom.ports.contains(port) || hi <= lo {
                    continue;
                }
                let covering: Vec<&HostPattern> = other
                    .atoms
                    .iter()
                    .filter(|t| t.protocol == atom.protocol && t.ports.contains(port))
                    .filter_map(|t| match &t.target {
                        Target::Host(p) => Some(p),
                        _ => None,
                    })
                    .collect();
                if let Some(host) = host_pattern_not_covered(pattern, &covering, &constants)? {
                    return Ok(Some(Connection {
                        protocol: atom.protocol,
                        target: host,
                        port,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Is every connection of `self` in `other`?
    pub fn is_subset_of(&self, other: &ConnSet) -> Result<bool, TooLarge> {
        Ok(self.first_not_in(other)?.is_none())
    }
}

fn boundaries(intervals: impl Iterator<Item = IpInterval>) -> Vec<u128> {
    // Start points of elementary intervals: every start, and every end + 1.
    let mut set = BTreeSet::new();
    for iv in intervals {
        set.insert(iv.start);
        if let Some(next) = iv.end.checked_add(1) {
            if next <= iv.family.max() {
                set.insert(next);
            }
        }
    }
    set.into_iter().collect()
}

fn elementary(starts: &[u128], family: Family) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = match starts.get(i + 1) {
            Some(&next) => next - 1,
            None => family.max(),
        };
        out.push((start, end));
    }
    out
}

/// The reversed form of a pattern: labels from right to left; `**` can only be last.
fn reversed(pattern: &HostPattern) -> Vec<HostLabel> {
    pattern.labels.iter().rev().cloned().collect()
}

/// The label alphabet: each constant, or `None` for a fresh label no pattern names.
type Symbol = Option<String>;

fn step(pattern: &[HostLabel], state: usize, symbol: &Symbol) -> Option<usize> {
    match pattern.get(state) {
        Some(HostLabel::Exact(want)) => match symbol {
            Some(got) if got == want => Some(state + 1),
            _ => None,
        },
        Some(HostLabel::One) | Some(HostLabel::OneOrMore) => Some(state + 1),
        None => match pattern.last() {
            Some(HostLabel::OneOrMore) => Some(state),
            _ => None,
        },
    }
}

fn accepting(pattern: &[HostLabel], state: usize) -> bool {
    state == pattern.len()
}

/// A host name matched by `pattern` and by none of `covering`, if one exists.
fn host_pattern_not_covered(
    pattern: &HostPattern,
    covering: &[&HostPattern],
    constants: &BTreeSet<String>,
) -> Result<Option<String>, TooLarge> {
    let me = reversed(pattern);
    let others: Vec<Vec<HostLabel>> = covering.iter().map(|p| reversed(p)).collect();
    let mut alphabet: Vec<Symbol> = constants.iter().cloned().map(Some).collect();
    alphabet.push(None);
    type State = (usize, Vec<Option<usize>>);
    let start: State = (0, others.iter().map(|_| Some(0)).collect());
    let mut seen: BTreeSet<State> = BTreeSet::new();
    let mut queue: VecDeque<(State, Vec<Symbol>)> = VecDeque::new();
    seen.insert(start.clone());
    queue.push_back((start, Vec::new()));
    while let Some(((mine, theirs), path)) = queue.pop_front() {
        if accepting(&me, mine)
            && !theirs
                .iter()
                .zip(others.iter())
                .any(|(s, p)| s.is_some_and(|s| accepting(p, s)))
        {
            return Ok(Some(render_host(&path)));
        }
        for symbol in &alphabet {
            let Some(next_mine) = step(&me, mine, symbol) else {
                continue;
            };
            let next_theirs: Vec<Option<usize>> = theirs
                .iter()
                .zip(others.iter())
                .map(|(s, p)| s.and_then(|s| step(p, s, symbol)))
                .collect();
            let next = (next_mine, next_theirs);
            if seen.insert(next.clone()) {
                if seen.len() > HOST_STATE_LIMIT {
                    return Err(TooLarge);
                }
                let mut next_path = path.clone();
                next_path.push(symbol.clone());
                queue.push_back((next, next_path));
            }
        }
    }
    Ok(None)
}

fn render_host(reversed_path: &[Symbol]) -> String {
    let labels: Vec<String> = reversed_path
        .iter()
        .rev()
        .map(|s| s.clone().unwrap_or_else(|| "egc-witness".to_string()))
        .collect();
    labels.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> HostPattern {
        HostPattern {
            labels: s
                .split('.')
                .map(|l| match l {
                    "*" => HostLabel::One,
                    "**" => HostLabel::OneOrMore,
                    other => HostLabel::Exact(other.to_string()),
                })
                .collect(),
        }
    }

    fn hosts(list: &[&str]) -> ConnSet {
        let mut s = ConnSet::new();
        for h in list {
            s.add(
                Protocol::Tcp,
                Target::Host(pat(h)),
                PortSet::from_ranges([(443, 443)]),
            );
        }
        s
    }

    #[test]
    fn double_star_is_one_label_or_more_levels() {
        let a = hosts(&["**.x.example"]);
        let b = hosts(&["*.x.example", "**.*.x.example"]);
        assert!(a.is_subset_of(&b).unwrap());
        assert!(b.is_subset_of(&a).unwrap());
        let c = hosts(&["*.x.example"]);
        let w = a.first_not_in(&c).unwrap().unwrap();
        assert_eq!(w.target.split('.').count(), 4, "{w}");
        assert!(c.is_subset_of(&a).unwrap());
        assert!(!hosts(&["x.example"]).is_subset_of(&a).unwrap());
    }

    #[test]
    fn ip_rectangles_and_witness() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        let ex: IpNet = "10.1.0.0/16".parse().unwrap();
        let mut a = ConnSet::new();
        for iv in cidr_intervals(&CidrSet {
            network: net,
            except: vec![ex],
        }) {
            a.add(
                Protocol::Tcp,
                Target::Ip(iv),
                PortSet::from_ranges([(1, 100)]),
            );
        }
        let mut b = ConnSet::new();
        b.add(
            Protocol::Tcp,
            Target::Ip(IpInterval::of_net(&net)),
            PortSet::from_ranges([(1, 100)]),
        );
        assert!(a.is_subset_of(&b).unwrap());
        let w = b.first_not_in(&a).unwrap().unwrap();
        assert_eq!(w.target, "10.1.0.0");
    }

    #[test]
    fn prefixes_cover_interval_exactly() {
        let iv = IpInterval {
            family: Family::V4,
            start: u128::from(u32::from(Ipv4Addr::new(10, 0, 0, 1))),
            end: u128::from(u32::from(Ipv4Addr::new(10, 0, 0, 130))),
        };
        let p: Vec<String> = interval_to_prefixes(iv)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            p,
            [
                "10.0.0.1/32",
                "10.0.0.2/31",
                "10.0.0.4/30",
                "10.0.0.8/29",
                "10.0.0.16/28",
                "10.0.0.32/27",
                "10.0.0.64/26",
                "10.0.0.128/31",
                "10.0.0.130/32"
            ]
        );
        let all = IpInterval {
            family: Family::V6,
            start: 0,
            end: u128::MAX,
        };
        assert_eq!(interval_to_prefixes(all)[0].to_string(), "::/0");
    }

    use proptest::prelude::*;

    /// A small universe where brute force is exact: addresses 10.0.0.0–10.0.0.15,
    /// ports 1–6, both protocols, host names of one to four labels over {a, b, x}.
    fn small_ip() -> impl Strategy<Value = (Protocol, u8, u8, u16, u16)> {
        (any::<bool>(), 0u8..16, 0u8..16, 1u16..7, 1u16..7).prop_map(|(tcp, a, b, p, q)| {
            let proto = if tcp { Protocol::Tcp } else { Protocol::Udp };
            (proto, a.min(b), a.max(b), p.min(q), p.max(q))
        })
    }

    fn ip_set(atoms: &[(Protocol, u8, u8, u16, u16)]) -> ConnSet {
        let base = u128::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)));
        let mut s = ConnSet::new();
        for &(proto, a, b, p, q) in atoms {
            s.add(
                proto,
                Target::Ip(IpInterval {
                    family: Family::V4,
                    start: base + u128::from(a),
                    end: base + u128::from(b),
                }),
                PortSet::from_ranges([(p, q)]),
            );
        }
        s
    }

    fn ip_member(
        atoms: &[(Protocol, u8, u8, u16, u16)],
        proto: Protocol,
        addr: u8,
        port: u16,
    ) -> bool {
        atoms.iter().any(|&(p, a, b, lo, hi)| {
            p == proto && a <= addr && addr <= b && lo <= port && port <= hi
        })
    }

    fn host_pattern() -> impl Strategy<Value = HostPattern> {
        let label = prop_oneof![
            Just(HostLabel::Exact("a".into())),
            Just(HostLabel::Exact("b".into())),
            Just(HostLabel::One),
        ];
        (any::<bool>(), proptest::collection::vec(label, 1..3)).prop_map(|(double, mut labels)| {
            if double {
                labels.insert(0, HostLabel::OneOrMore);
            }
            HostPattern { labels }
        })
    }

    fn all_hosts() -> Vec<String> {
        let alphabet = ["a", "b", "x"];
        let mut out: Vec<String> = alphabet.iter().map(|s| s.to_string()).collect();
        let mut last = out.clone();
        for _ in 1..4 {
            let mut next = Vec::new();
            for h in &last {
                for l in alphabet {
                    next.push(format!("{l}.{h}"));
                }
            }
            out.extend(next.iter().cloned());
            last = next;
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn ip_difference_agrees_with_brute_force(
            left in proptest::collection::vec(small_ip(), 0..5),
            right in proptest::collection::vec(small_ip(), 0..5),
        ) {
            let (a, b) = (ip_set(&left), ip_set(&right));
            let mut brute = None;
            for proto in [Protocol::Tcp, Protocol::Udp] {
                for addr in 0..16u8 {
                    for port in 1..7u16 {
                        if brute.is_none() && ip_member(&left, proto, addr, port) && !ip_member(&right, proto, addr, port) {
                            brute = Some((proto, addr, port));
                        }
                    }
                }
            }
            let found = a.first_not_in(&b).unwrap();
            prop_assert_eq!(found.is_some(), brute.is_some(), "{:?} vs {:?}", found, brute);
            if let Some(w) = found {
                // The witness really is in the difference.
                let addr: u8 = w.target.rsplit('.').next().unwrap().parse().unwrap();
                prop_assert!(ip_member(&left, w.protocol, addr, w.port));
                prop_assert!(!ip_member(&right, w.protocol, addr, w.port));
            }
            // Canonical rectangles describe the same set.
            let rects = a.ip_rectangles();
            for proto in [Protocol::Tcp, Protocol::Udp] {
                for addr in 0..16u8 {
                    for port in 1..7u16 {
                        let base = u128::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)));
                        let in_rects = rects.get(&(proto, Family::V4)).into_iter().flatten().any(|(iv, ps)| {
                            iv.start <= base + u128::from(addr) && base + u128::from(addr) <= iv.end && ps.contains(port)
                        });
                        prop_assert_eq!(in_rects, ip_member(&left, proto, addr, port));
                    }
                }
            }
        }

        #[test]
        fn host_difference_agrees_with_brute_force(
            left in proptest::collection::vec(host_pattern(), 1..3),
            right in proptest::collection::vec(host_pattern(), 0..4),
        ) {
            let set = |ps: &[HostPattern]| {
                let mut s = ConnSet::new();
                for p in ps {
                    s.add(Protocol::Tcp, Target::Host(p.clone()), PortSet::from_ranges([(443, 443)]));
                }
                s
            };
            // Host patterns here are at most 3 labels (`**` plus 2), so names of up to 4
            // labels over {a, b, x} include a witness whenever one exists.
            let brute = all_hosts().into_iter().find(|h| {
                left.iter().any(|p| p.matches(h)) && !right.iter().any(|p| p.matches(h))
            });
            let found = set(&left).first_not_in(&set(&right)).unwrap();
            prop_assert_eq!(found.is_some(), brute.is_some(), "{:?} vs {:?}", found, brute);
            if let Some(w) = found {
                prop_assert!(left.iter().any(|p| p.matches(&w.target)), "{}", w.target);
                prop_assert!(!right.iter().any(|p| p.matches(&w.target)), "{}", w.target);
            }
        }

        #[test]
        fn prefixes_cover_exactly(start in 0u32..4096, len in 0u32..4096) {
            let iv = IpInterval { family: Family::V4, start: u128::from(start), end: u128::from(start) + u128::from(len) };
            let prefixes = interval_to_prefixes(iv);
            let mut next = iv.start;
            for p in &prefixes {
                let piece = IpInterval::of_net(p);
                prop_assert_eq!(piece.start, next);
                next = piece.end + 1;
            }
            prop_assert_eq!(next, iv.end + 1);
        }
    }
}
