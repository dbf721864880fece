//! Exact set algebra on connections, without a solver.
//!
//! **API boundary:** this module is stable and free of Z3, so other crates (translation
//! validation in the backends, the language server) may use it directly.
//!
//! A connection is a target (a host name, an IP address or an in-cluster workload), a
//! port and a protocol. A [`ConnBox`] is a product `targets × ports × protocols`, and a
//! [`ConnectionSet`] is a finite union of boxes. Every question the verifier asks about
//! sets is one of two: is `box \ union` empty (and if not, which concrete connection is in
//! it), and is `box ∩ box` empty (and if not, which connection is in both). Both are
//! decided exactly:
//! - IP addresses and ports are unions of inclusive intervals ([`IntervalSet`]); IPv4 as
//!   `u32`, IPv6 as `u128`.
//! - Host patterns are compared label by label from the right. Labels only matter by
//!   equality with the constants of the patterns involved, so a search over "each
//!   constant, or one fresh label that no pattern uses" is exact ([`host_search`]).
//! - A workload selector matches workloads whose labels include the selector's; the
//!   workload whose labels are exactly a selector's is the one hardest to cover, so it is
//!   the witness.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_check::{
    CidrSet, Destination, EndpointKind, HostLabel, HostPattern, PortRange, Protocol,
    WorkloadSelector,
};
use ipnet::IpNet;
use serde::Serialize;

// ---------------------------------------------------------------------------------------
// Intervals

/// A totally ordered point type with a least and a greatest element.
pub trait Point: Copy + Ord + fmt::Debug + Send + Sync + 'static {
    const MIN: Self;
    const MAX: Self;
    fn succ(self) -> Option<Self>;
    fn pred(self) -> Option<Self>;
}

macro_rules! impl_point {
    ($($t:ty),*) => {$(
        impl Point for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            fn succ(self) -> Option<Self> { self.checked_add(1) }
            fn pred(self) -> Option<Self> { self.checked_sub(1) }
        }
    )*};
}
impl_point!(u16, u32, u128);

/// A finite union of inclusive intervals, kept sorted, disjoint and non-adjacent, so two
/// equal sets have equal representations.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntervalSet<T: Point> {
    ranges: Vec<(T, T)>,
}

impl<T: Point> Default for IntervalSet<T> {
    fn default() -> Self {
        IntervalSet { ranges: Vec::new() }
    }
}

impl<T: Point> IntervalSet<T> {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every point of the type.
    pub fn full() -> Self {
        IntervalSet {
            ranges: vec![(T::MIN, T::MAX)],
        }
    }

    /// The inclusive interval `start..=end`; empty when `start > end`.
    pub fn interval(start: T, end: T) -> Self {
        if start > end {
            return Self::empty();
        }
        IntervalSet {
            ranges: vec![(start, end)],
        }
    }

    pub fn point(p: T) -> Self {
        Self::interval(p, p)
    }

    /// Builds a set from any inclusive intervals (overlapping, unsorted, or empty ones).
    pub fn from_intervals(intervals: impl IntoIterator<Item = (T, T)>) -> Self {
        let mut ranges: Vec<(T, T)> = intervals.into_iter().filter(|(a, b)| a <= b).collect();
        ranges.sort();
        let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            if let Some(last) = out.last_mut() {
                let adjacent = last.1.succ().is_none_or(|next| start <= next);
                if adjacent {
                    if end > last.1 {
                        last.1 = end;
                    }
                    continue;
                }
            }
            out.push((start, end));
        }
        IntervalSet { ranges: out }
    }

    /// The intervals, sorted, disjoint and non-adjacent.
    pub fn intervals(&self) -> &[(T, T)] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, p: T) -> bool {
        // Binary search for the last interval starting at or before p.
        let idx = self.ranges.partition_point(|(start, _)| *start <= p);
        idx.checked_sub(1)
            .and_then(|i| self.ranges.get(i))
            .is_some_and(|(_, end)| p <= *end)
    }

    /// The least point, if any.
    pub fn first(&self) -> Option<T> {
        self.ranges.first().map(|(start, _)| *start)
    }

    /// The greatest point, if any.
    pub fn last(&self) -> Option<T> {
        self.ranges.last().map(|(_, end)| *end)
    }

    pub fn union(&self, other: &Self) -> Self {
        Self::from_intervals(self.ranges.iter().chain(other.ranges.iter()).copied())
    }

    pub fn intersection(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let (mut i, mut j) = (0usize, 0usize);
        while let (Some(&(a0, a1)), Some(&(b0, b1))) = (self.ranges.get(i), other.ranges.get(j)) {
            let start = a0.max(b0);
            let end = a1.min(b1);
            if start <= end {
                out.push((start, end));
            }
            if a1 < b1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        IntervalSet { ranges: out }
    }

    pub fn complement(&self) -> Self {
        let mut out = Vec::new();
        let mut next: Option<T> = Some(T::MIN);
        for &(start, end) in &self.ranges {
            if let Some(from) = next {
                if from < start {
                    if let Some(to) = start.pred() {
                        out.push((from, to));
                    }
                }
            }
            next = end.succ();
        }
        if let Some(from) = next {
            out.push((from, T::MAX));
        }
        IntervalSet { ranges: out }
    }

    pub fn difference(&self, other: &Self) -> Self {
        self.intersection(&other.complement())
    }

    pub fn is_subset(&self, other: &Self) -> bool {
        self.difference(other).is_empty()
    }

    pub fn intersects(&self, other: &Self) -> bool {
        let (mut i, mut j) = (0usize, 0usize);
        while let (Some(&(a0, a1)), Some(&(b0, b1))) = (self.ranges.get(i), other.ranges.get(j)) {
            if a0.max(b0) <= a1.min(b1) {
                return true;
            }
            if a1 < b1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }

    /// Interesting points for a brute-force oracle: the first and last point of each
    /// interval and their neighbours.
    pub fn boundary_points(&self) -> Vec<T> {
        let mut out = Vec::new();
        for &(start, end) in &self.ranges {
            out.push(start);
            out.push(end);
            out.extend(start.pred());
            out.extend(end.succ());
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Ports, protocols, addresses

/// A set of ports; port 0 is never part of a policy's sets.
pub type PortSet = IntervalSet<u16>;

/// Every valid port, 1..=65535.
pub fn all_ports() -> PortSet {
    PortSet::interval(1, u16::MAX)
}

pub fn port_set(ranges: &[PortRange]) -> PortSet {
    PortSet::from_intervals(ranges.iter().map(|r| (r.start, r.end)))
}

/// A set of transport protocols.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtoSet {
    bits: u8,
}

impl ProtoSet {
    pub const ALL: [Protocol; 2] = [Protocol::Tcp, Protocol::Udp];

    fn bit(p: Protocol) -> u8 {
        match p {
            Protocol::Tcp => 1,
            Protocol::Udp => 2,
        }
    }
    pub fn empty() -> Self {
        ProtoSet { bits: 0 }
    }
    pub fn all() -> Self {
        ProtoSet { bits: 3 }
    }
    pub fn from_protocols(ps: &[Protocol]) -> Self {
        ProtoSet {
            bits: ps.iter().fold(0, |acc, p| acc | Self::bit(*p)),
        }
    }
    pub fn contains(self, p: Protocol) -> bool {
        self.bits & Self::bit(p) != 0
    }
    pub fn is_empty(self) -> bool {
        self.bits == 0
    }
    pub fn intersection(self, other: Self) -> Self {
        ProtoSet {
            bits: self.bits & other.bits,
        }
    }
    pub fn union(self, other: Self) -> Self {
        ProtoSet {
            bits: self.bits | other.bits,
        }
    }
    pub fn is_subset(self, other: Self) -> bool {
        self.bits & !other.bits == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Protocol> {
        Self::ALL.into_iter().filter(move |p| self.contains(*p))
    }
}

/// A set of IP addresses of both families.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpSet {
    pub v4: IntervalSet<u32>,
    pub v6: IntervalSet<u128>,
}

fn net_bounds_v4(net: &ipnet::Ipv4Net) -> (u32, u32) {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

fn net_bounds_v6(net: &ipnet::Ipv6Net) -> (u128, u128) {
    (u128::from(net.network()), u128::from(net.broadcast()))
}

impl IpSet {
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn from_net(net: &IpNet) -> Self {
        match net {
            IpNet::V4(n) => {
                let (a, b) = net_bounds_v4(n);
                IpSet {
                    v4: IntervalSet::interval(a, b),
                    v6: IntervalSet::empty(),
                }
            }
            IpNet::V6(n) => {
                let (a, b) = net_bounds_v6(n);
                IpSet {
                    v4: IntervalSet::empty(),
                    v6: IntervalSet::interval(a, b),
                }
            }
        }
    }

    /// A network minus its exclusions.
    pub fn from_cidr(cidr: &CidrSet) -> Self {
        let mut set = Self::from_net(&cidr.network);
        for ex in &cidr.except {
            set = set.difference(&Self::from_net(ex));
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }
    pub fn union(&self, o: &Self) -> Self {
        IpSet {
            v4: self.v4.union(&o.v4),
            v6: self.v6.union(&o.v6),
        }
    }
    pub fn intersection(&self, o: &Self) -> Self {
        IpSet {
            v4: self.v4.intersection(&o.v4),
            v6: self.v6.intersection(&o.v6),
        }
    }
    pub fn difference(&self, o: &Self) -> Self {
        IpSet {
            v4: self.v4.difference(&o.v4),
            v6: self.v6.difference(&o.v6),
        }
    }
    pub fn is_subset(&self, o: &Self) -> bool {
        self.v4.is_subset(&o.v4) && self.v6.is_subset(&o.v6)
    }
    /// The least address (IPv4 before IPv6).
    pub fn first(&self) -> Option<IpAddr> {
        self.v4
            .first()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .or_else(|| self.v6.first().map(|a| IpAddr::V6(Ipv6Addr::from(a))))
    }
}

/// Link-local and cloud metadata addresses: 169.254.0.0/16, its IPv4-mapped IPv6 form
/// ::ffff:169.254.0.0/112, fe80::/10, and the IPv6 instance-metadata address
/// fd00:ec2::254.
pub fn metadata_addresses() -> IpSet {
    let v4 = IntervalSet::interval(0xA9FE_0000u32, 0xA9FE_FFFF);
    let mapped_base: u128 = 0xFFFF_0000_0000u128 | 0xA9FE_0000u128;
    let v6 = IntervalSet::from_intervals([
        (mapped_base, mapped_base | 0xFFFF),
        (
            0xFE80u128 << 112,
            (0xFE80u128 << 112) | ((1u128 << 118) - 1),
        ),
        (
            u128::from(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
            u128::from(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
        ),
    ]);
    IpSet { v4, v6 }
}

/// Unspecified and "this network" addresses ([`egress_check::UNSPECIFIED_NETWORKS`]):
/// 0.0.0.0/8, :: and ::ffff:0.0.0.0/104.
pub fn unspecified_addresses() -> IpSet {
    let mut set = IpSet::default();
    for net in egress_check::UNSPECIFIED_NETWORKS {
        set = set.union(&IpSet::from_net(net));
    }
    set
}

// ---------------------------------------------------------------------------------------
// Targets, boxes, connection sets

/// The target part of a box.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetSet {
    Host(HostPattern),
    Ip(IpSet),
    Workload(WorkloadSelector),
}

/// `targets × ports × protocols`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnBox {
    pub target: TargetSet,
    pub ports: PortSet,
    pub protocols: ProtoSet,
}

impl ConnBox {
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
            || self.protocols.is_empty()
            || matches!(&self.target, TargetSet::Ip(ip) if ip.is_empty())
    }

    /// The concrete evaluator: is `c` in this box?
    pub fn contains(&self, c: &Connection) -> bool {
        if !self.ports.contains(c.port) || !self.protocols.contains(c.protocol) {
            return false;
        }
        match (&self.target, &c.target) {
            (TargetSet::Host(p), Target::Host(h)) => p.matches(h),
            (TargetSet::Ip(set), Target::Ip(addr)) => set.contains(*addr),
            (TargetSet::Workload(sel), Target::Workload { namespace, labels }) => {
                sel.matches(namespace, labels)
            }
            _ => false,
        }
    }
}

/// The intersection of two boxes, where it needs no pattern arithmetic: two address
/// boxes meet in a box, and boxes of different target kinds in an empty one. `None` for
/// two host or two workload boxes.
pub fn box_meet(a: &ConnBox, b: &ConnBox) -> Option<ConnBox> {
    let target = match (&a.target, &b.target) {
        (TargetSet::Ip(x), TargetSet::Ip(y)) => TargetSet::Ip(x.intersection(y)),
        (TargetSet::Host(_), TargetSet::Host(_))
        | (TargetSet::Workload(_), TargetSet::Workload(_)) => return None,
        _ => TargetSet::Ip(IpSet::empty()),
    };
    Some(ConnBox {
        target,
        ports: a.ports.intersection(&b.ports),
        protocols: a.protocols.intersection(b.protocols),
    })
}

/// The boxes of one destination: one per endpoint, each with the destination's ports
/// and protocols. The index of a box is the index of its endpoint.
pub fn destination_boxes(dest: &Destination) -> Vec<ConnBox> {
    let ports = port_set(&dest.ports);
    let protocols = ProtoSet::from_protocols(&dest.protocols);
    dest.endpoints
        .iter()
        .map(|e| ConnBox {
            target: match &e.kind {
                EndpointKind::Host(p) => TargetSet::Host(p.clone()),
                EndpointKind::Cidr(c) => TargetSet::Ip(IpSet::from_cidr(c)),
                EndpointKind::Workload(w) => TargetSet::Workload(w.clone()),
            },
            ports: ports.clone(),
            protocols,
        })
        .collect()
}

/// A finite union of boxes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionSet {
    pub boxes: Vec<ConnBox>,
}

impl ConnectionSet {
    pub fn from_destination(dest: &Destination) -> Self {
        ConnectionSet {
            boxes: destination_boxes(dest),
        }
    }
    pub fn contains(&self, c: &Connection) -> bool {
        self.boxes.iter().any(|b| b.contains(c))
    }
    pub fn extend(&mut self, other: &ConnectionSet) {
        self.boxes.extend(other.boxes.iter().cloned());
    }
    pub fn is_empty(&self) -> bool {
        self.boxes.iter().all(|b| b.is_empty())
    }
    /// A connection in `self` outside `other`, or `None` when `self ⊆ other`.
    pub fn difference_witness(&self, other: &ConnectionSet) -> Result<Option<Connection>, Budget> {
        let refs: Vec<&ConnBox> = other.boxes.iter().collect();
        for b in &self.boxes {
            if let Some(w) = box_difference_witness(b, &refs, DEFAULT_BUDGET)? {
                return Ok(Some(w));
            }
        }
        Ok(None)
    }
    /// A connection in both sets, or `None` when they are disjoint.
    pub fn intersection_witness(
        &self,
        other: &ConnectionSet,
    ) -> Result<Option<Connection>, Budget> {
        for a in &self.boxes {
            for b in &other.boxes {
                if let Some(w) = box_intersection_witness(a, b, DEFAULT_BUDGET)? {
                    return Ok(Some(w));
                }
            }
        }
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------
// Concrete connections

/// A concrete target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Host(String),
    Ip(IpAddr),
    Workload {
        namespace: String,
        labels: BTreeMap<String, String>,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Host(h) => f.write_str(h),
            Target::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Target::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Target::Workload { namespace, labels } => {
                write!(f, "workload {namespace}")?;
                if !labels.is_empty() {
                    f.write_str(" {")?;
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            f.write_str(",")?;
                        }
                        write!(f, " {k}={v}")?;
                    }
                    f.write_str(" }")?;
                }
                Ok(())
            }
        }
    }
}

/// One concrete connection an agent might open.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Connection {
    pub target: Target,
    pub port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.target, self.port, self.protocol)
    }
}

impl Connection {
    /// Parses `HOST_OR_IP:PORT[/tcp|udp]` (IPv6 in brackets: `[2001:db8::1]:443`).
    pub fn parse(text: &str) -> Result<Connection, String> {
        let (rest, protocol) = match text.rsplit_once('/') {
            Some((r, "tcp")) => (r, Protocol::Tcp),
            Some((r, "udp")) => (r, Protocol::Udp),
            Some((_, other)) => return Err(format!("unknown protocol `{other}` (use tcp or udp)")),
            None => (text, Protocol::Tcp),
        };
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("`{text}` has no port; write HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{port}` is not a port (1-65535)"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err("empty host".to_string());
        }
        let target = match host.parse::<IpAddr>() {
            Ok(ip) => Target::Ip(ip),
            Err(_) => {
                let lower = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
                let valid = lower.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                });
                if !valid {
                    return Err(format!("`{host}` is neither an IP address nor a host name"));
                }
                Target::Host(lower)
            }
        };
        Ok(Connection {
            target,
            port,
            protocol,
        })
    }
}

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
                    labels: sel.labels.clone(),
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
                let mut labels = x.labels.clone();
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

// ---------------------------------------------------------------------------------------
// Host patterns

/// A host pattern aligned from the right: `suffix[0]` is the top-level label.
#[derive(Clone, Debug)]
struct Aligned<'a> {
    /// `None` stands for `*`.
    suffix: Vec<Option<&'a str>>,
    /// The pattern starts with `**`: it matches `suffix.len() + 1` labels or more.
    open: bool,
}

impl<'a> Aligned<'a> {
    fn new(p: &'a HostPattern) -> Aligned<'a> {
        let mut suffix = Vec::with_capacity(p.labels.len());
        let mut open = false;
        for label in p.labels.iter().rev() {
            match label {
                HostLabel::Exact(s) => suffix.push(Some(s.as_str())),
                HostLabel::One => suffix.push(None),
                // Only the leftmost label may be `**`; treat one elsewhere the same way,
                // as "one or more labels here and everything to its left".
                HostLabel::OneOrMore => {
                    open = true;
                    break;
                }
            }
        }
        Aligned { suffix, open }
    }
    fn fixed(&self) -> usize {
        self.suffix.len()
    }
    /// Does a host with exactly `len` labels fit the pattern's length?
    fn allows_len(&self, len: usize) -> bool {
        if self.open {
            len > self.fixed()
        } else {
            len == self.fixed()
        }
    }
    /// Does the pattern accept `label` at position `pos` from the right (for a host
    /// long enough to have that position)?
    fn accepts(&self, pos: usize, label: &str) -> bool {
        match self.suffix.get(pos) {
            Some(Some(want)) => *want == label,
            Some(None) => true,
            None => self.open,
        }
    }
}

/// A cheap necessary condition for two patterns to share a host: no position from the
/// right where both have different constants, and compatible lengths. Allocation-free,
/// so filtering a large union by it is fast.
pub fn may_intersect(a: &HostPattern, b: &HostPattern) -> bool {
    let open = |p: &HostPattern| matches!(p.labels.first(), Some(HostLabel::OneOrMore));
    let (a_open, b_open) = (open(a), open(b));
    let (a_fixed, b_fixed) = (
        a.labels.len() - usize::from(a_open),
        b.labels.len() - usize::from(b_open),
    );
    let lengths = match (a_open, b_open) {
        (false, false) => a_fixed == b_fixed,
        (true, false) => b_fixed > a_fixed,
        (false, true) => a_fixed > b_fixed,
        (true, true) => true,
    };
    lengths
        && a.labels
            .iter()
            .rev()
            .zip(b.labels.iter().rev())
            .all(|pair| match pair {
                (HostLabel::Exact(x), HostLabel::Exact(y)) => x == y,
                _ => true,
            })
}

/// Does pattern `outer` match every host `inner` matches? Exact, by structure.
pub fn pattern_subsumes(outer: &HostPattern, inner: &HostPattern) -> bool {
    let o = Aligned::new(outer);
    let i = Aligned::new(inner);
    // Lengths: inner's lengths must all be allowed by outer.
    let lengths_ok = match (o.open, i.open) {
        (false, false) => o.fixed() == i.fixed(),
        (false, true) => false,
        (true, false) => i.fixed() > o.fixed(),
        (true, true) => i.fixed() >= o.fixed(),
    };
    if !lengths_ok {
        return false;
    }
    // Position by position: where outer has a constant, inner must have the same constant.
    o.suffix.iter().enumerate().all(|(pos, want)| match want {
        None => true,
        Some(w) => matches!(i.suffix.get(pos), Some(Some(got)) if got == w),
    })
}

/// A label no pattern in `patterns` uses as a constant.
pub fn fresh_label<'a>(constants: impl IntoIterator<Item = &'a str>) -> String {
    let used: BTreeSet<&str> = constants.into_iter().collect();
    let mut n = 0u32;
    loop {
        let candidate = if n == 0 {
            "unlisted".to_string()
        } else {
            format!("unlisted{n}")
        };
        if !used.contains(candidate.as_str()) {
            return candidate;
        }
        n += 1;
    }
}

/// Searches the hosts matched by `pattern` for one whose set of matching `others`
/// (given as indices into `others`) satisfies `leaf`. Returns that host.
///
/// Exact: hosts are enumerated up to equivalence. Position by position from the right,
/// a label is either a constant some live pattern uses at that position, or one fresh
/// label (which behaves like every other non-constant label). Beyond the longest fixed
/// suffix, every longer host behaves like the shortest one, so lengths are bounded.
pub fn host_search(
    pattern: &HostPattern,
    others: &[&HostPattern],
    budget: usize,
    leaf: &mut dyn FnMut(&[usize]) -> bool,
) -> Result<Option<String>, Budget> {
    let b = Aligned::new(pattern);
    let aligned: Vec<Aligned<'_>> = others.iter().map(|p| Aligned::new(p)).collect();
    let constants = pattern
        .labels
        .iter()
        .chain(others.iter().flat_map(|p| p.labels.iter()))
        .filter_map(|l| match l {
            HostLabel::Exact(s) => Some(s.as_str()),
            _ => None,
        });
    let fresh = fresh_label(constants);
    let live: Vec<usize> = (0..aligned.len()).collect();
    let mut chosen: Vec<String> = Vec::new();
    let mut steps = 0usize;
    let found = search_rec(
        &b,
        &aligned,
        &fresh,
        live,
        &mut chosen,
        &mut steps,
        budget,
        leaf,
    )?;
    Ok(found.then(|| {
        let mut labels = chosen.clone();
        labels.reverse();
        labels.join(".")
    }))
}

#[allow(clippy::too_many_arguments)]
fn search_rec(
    b: &Aligned<'_>,
    others: &[Aligned<'_>],
    fresh: &str,
    live: Vec<usize>,
    chosen: &mut Vec<String>,
    steps: &mut usize,
    budget: usize,
    leaf: &mut dyn FnMut(&[usize]) -> bool,
) -> Result<bool, Budget> {
    *steps += 1;
    if *steps > budget {
        return Err(Budget);
    }
    let pos = chosen.len();
    // Option 1: the host ends here (has `pos` labels).
    if pos > 0 && b.allows_len(pos) {
        let matching: Vec<usize> = live
            .iter()
            .copied()
            .filter(|i| others.get(*i).is_some_and(|o| o.allows_len(pos)))
            .collect();
        if leaf(&matching) {
            return Ok(true);
        }
    }
    // Option 2: the host has more labels. Stop when longer hosts behave like this one.
    let b_can_grow = b.open || pos < b.fixed();
    if !b_can_grow {
        return Ok(false);
    }
    let horizon = live
        .iter()
        .filter_map(|i| others.get(*i))
        .map(|o| o.fixed() + 1)
        .max()
        .unwrap_or(0)
        .max(b.fixed() + 1);
    if pos >= horizon {
        return Ok(false);
    }
    // Candidate labels at this position.
    let mut candidates: BTreeSet<&str> = BTreeSet::new();
    match b.suffix.get(pos) {
        Some(Some(c)) => {
            candidates.insert(c);
        }
        _ => {
            for i in &live {
                if let Some(Some(Some(c))) = others.get(*i).map(|o| o.suffix.get(pos)) {
                    candidates.insert(c);
                }
            }
            candidates.insert(fresh);
        }
    }
    for label in candidates {
        let next_live: Vec<usize> = live
            .iter()
            .copied()
            .filter(|i| others.get(*i).is_some_and(|o| o.accepts(pos, label)))
            .collect();
        chosen.push(label.to_string());
        if search_rec(b, others, fresh, next_live, chosen, steps, budget, leaf)? {
            return Ok(true);
        }
        chosen.pop();
    }
    Ok(false)
}

/// An index over a union of boxes: host boxes in a trie keyed by their constant labels
/// from the right, so the boxes that may meet a given box are found without scanning the
/// whole union. Lookups return a superset of the boxes that intersect (never fewer), so
/// deciding against the candidates is exact.
#[derive(Clone, Debug, Default)]
pub struct BoxIndex {
    boxes: Vec<ConnBox>,
    root: TrieNode,
    /// Workload boxes by namespace (a workload is in one namespace).
    workloads: BTreeMap<String, Vec<usize>>,
    /// Address boxes by their intervals, one index per family.
    v4: IntervalIndex,
    v6: IntervalIndex,
}

#[derive(Clone, Debug, Default)]
struct TrieNode {
    /// Boxes whose constant suffix ends here (next label is a wildcard, or none).
    here: Vec<usize>,
    children: BTreeMap<String, TrieNode>,
}

impl TrieNode {
    fn collect_all(&self, out: &mut Vec<usize>) {
        out.extend(self.here.iter().copied());
        for child in self.children.values() {
            child.collect_all(out);
        }
    }
}

/// Intervals (inclusive, as `u128`) tagged with a box, sorted by start, with a max-end
/// tree over them: the intervals that overlap a query are found in O(log n + found).
#[derive(Clone, Debug, Default)]
struct IntervalIndex {
    /// (start, end, box), sorted.
    entries: Vec<(u128, u128, usize)>,
    /// `max_end[node]` for a segment tree over `entries` (node 1 is the root).
    max_end: Vec<u128>,
}

impl IntervalIndex {
    fn new(mut entries: Vec<(u128, u128, usize)>) -> IntervalIndex {
        entries.sort_unstable();
        let mut max_end = vec![0; 4 * entries.len().max(1)];
        Self::build(&entries, &mut max_end, 1, 0, entries.len());
        IntervalIndex { entries, max_end }
    }

    fn build(
        entries: &[(u128, u128, usize)],
        tree: &mut [u128],
        node: usize,
        lo: usize,
        hi: usize,
    ) {
        if lo >= hi {
            return;
        }
        let value = if hi - lo == 1 {
            entries.get(lo).map_or(0, |e| e.1)
        } else {
            let mid = lo + (hi - lo) / 2;
            Self::build(entries, tree, 2 * node, lo, mid);
            Self::build(entries, tree, 2 * node + 1, mid, hi);
            let left = tree.get(2 * node).copied().unwrap_or(0);
            let right = tree.get(2 * node + 1).copied().unwrap_or(0);
            left.max(right)
        };
        if let Some(slot) = tree.get_mut(node) {
            *slot = value;
        }
    }

    /// Pushes the box of every interval that overlaps `[start, end]`.
    fn overlapping(&self, start: u128, end: u128, out: &mut Vec<usize>) {
        // Only intervals starting at or before `end` can overlap it.
        let k = self.entries.partition_point(|e| e.0 <= end);
        self.visit(1, 0, self.entries.len(), k, start, out);
    }

    fn visit(
        &self,
        node: usize,
        lo: usize,
        hi: usize,
        k: usize,
        start: u128,
        out: &mut Vec<usize>,
    ) {
        if lo >= hi || lo >= k || self.max_end.get(node).is_none_or(|m| *m < start) {
            return;
        }
        if hi - lo == 1 {
            if let Some(e) = self.entries.get(lo) {
                out.push(e.2);
            }
            return;
        }
        let mid = lo + (hi - lo) / 2;
        self.visit(2 * node, lo, mid, k, start, out);
        self.visit(2 * node + 1, mid, hi, k, start, out);
    }
}

impl BoxIndex {
    pub fn new(boxes: Vec<ConnBox>) -> BoxIndex {
        let mut root = TrieNode::default();
        let mut workloads: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, b) in boxes.iter().enumerate() {
            match &b.target {
                TargetSet::Host(p) => {
                    let mut node = &mut root;
                    for label in p.labels.iter().rev() {
                        match label {
                            HostLabel::Exact(s) => {
                                node = node.children.entry(s.clone()).or_default()
                            }
                            _ => break,
                        }
                    }
                    node.here.push(i);
                }
                TargetSet::Workload(sel) => {
                    workloads.entry(sel.namespace.clone()).or_default().push(i)
                }
                TargetSet::Ip(ips) => {
                    v4.extend(
                        ips.v4
                            .intervals()
                            .iter()
                            .map(|&(s, e)| (u128::from(s), u128::from(e), i)),
                    );
                    v6.extend(ips.v6.intervals().iter().map(|&(s, e)| (s, e, i)));
                }
            }
        }
        BoxIndex {
            boxes,
            root,
            workloads,
            v4: IntervalIndex::new(v4),
            v6: IntervalIndex::new(v6),
        }
    }

    pub fn boxes(&self) -> &[ConnBox] {
        &self.boxes
    }

    /// The boxes that may intersect `b` (of its target kind), in the order they were
    /// given: every box that intersects `b` is among them.
    pub fn candidates(&self, b: &ConnBox) -> Vec<&ConnBox> {
        let mut out = Vec::new();
        match &b.target {
            TargetSet::Host(p) => {
                let mut node = &self.root;
                let mut labels = p.labels.iter().rev();
                loop {
                    out.extend(node.here.iter().copied());
                    match labels.next() {
                        Some(HostLabel::Exact(s)) => match node.children.get(s) {
                            Some(child) => node = child,
                            None => break,
                        },
                        Some(_) => {
                            // A wildcard here: any deeper constant may match it.
                            for child in node.children.values() {
                                child.collect_all(&mut out);
                            }
                            break;
                        }
                        None => break,
                    }
                }
            }
            // Only a workload box of the same namespace can meet a workload box.
            TargetSet::Workload(sel) => {
                if let Some(found) = self.workloads.get(&sel.namespace) {
                    out.extend(found.iter().copied());
                }
            }
            // Only an address box with an overlapping interval can meet an address box.
            TargetSet::Ip(ips) => {
                for &(s, e) in ips.v4.intervals() {
                    self.v4.overlapping(u128::from(s), u128::from(e), &mut out);
                }
                for &(s, e) in ips.v6.intervals() {
                    self.v6.overlapping(s, e, &mut out);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out.iter().filter_map(|i| self.boxes.get(*i)).collect()
    }
}

/// Parses a host pattern written as in a policy (`*.example.com`, `**.corp.internal`).
/// For tests and tools; the checker is the authority on valid patterns.
pub fn parse_host_pattern(text: &str) -> HostPattern {
    let text = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    HostPattern {
        labels: text
            .split('.')
            .map(|l| match l {
                "*" => HostLabel::One,
                "**" => HostLabel::OneOrMore,
                other => HostLabel::Exact(other.to_string()),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hbox(p: &str, ports: (u16, u16)) -> ConnBox {
        ConnBox {
            target: TargetSet::Host(parse_host_pattern(p)),
            ports: PortSet::interval(ports.0, ports.1),
            protocols: ProtoSet::from_protocols(&[Protocol::Tcp]),
        }
    }

    fn ibox(cidr: &str, except: &[&str], ports: (u16, u16)) -> ConnBox {
        let set = CidrSet {
            network: cidr.parse().unwrap(),
            except: except.iter().map(|e| e.parse().unwrap()).collect(),
        };
        ConnBox {
            target: TargetSet::Ip(IpSet::from_cidr(&set)),
            ports: PortSet::interval(ports.0, ports.1),
            protocols: ProtoSet::from_protocols(&[Protocol::Tcp]),
        }
    }

    #[test]
    fn intervals_normalise_and_complement() {
        let s = IntervalSet::<u16>::from_intervals([(5, 7), (1, 2), (3, 4), (10, 12)]);
        assert_eq!(s.intervals(), &[(1, 7), (10, 12)]);
        assert_eq!(
            s.complement().intervals(),
            &[(0, 0), (8, 9), (13, u16::MAX)]
        );
        assert!(s.contains(7) && !s.contains(8) && s.contains(10));
        let full = IntervalSet::<u32>::full();
        assert!(full.complement().is_empty());
        assert_eq!(
            IntervalSet::<u16>::interval(1, 10)
                .difference(&IntervalSet::interval(3, 4))
                .intervals(),
            &[(1, 2), (5, 10)]
        );
    }

    #[test]
    fn wildcard_wider_than_approved() {
        let reach = hbox("*.telemetry.internal", (4317, 4317));
        let approved = hbox("otel.telemetry.internal", (4317, 4317));
        let w = box_difference_witness(&reach, &[&approved], DEFAULT_BUDGET)
            .unwrap()
            .unwrap();
        assert_eq!(w.to_string(), "unlisted.telemetry.internal:4317/tcp");
        assert!(reach.contains(&w) && !approved.contains(&w));
    }

    #[test]
    fn double_star_needs_deeper_witness() {
        // `**.a.example` minus `*.a.example` leaves hosts with two or more labels in front.
        let reach = hbox("**.a.example", (443, 443));
        let approved = hbox("*.a.example", (443, 443));
        let w = box_difference_witness(&reach, &[&approved], DEFAULT_BUDGET)
            .unwrap()
            .unwrap();
        assert!(reach.contains(&w) && !approved.contains(&w), "{w}");
        // But `**` covers `*`.
        assert!(box_difference_witness(&approved, &[&reach], DEFAULT_BUDGET)
            .unwrap()
            .is_none());
        // And a union of constants plus `*.*` covers `*` + two-label cases.
        let two = hbox("*.*.a.example", (443, 443));
        let three = hbox("**.*.*.a.example", (443, 443));
        assert!(
            box_difference_witness(&reach, &[&approved, &two, &three], DEFAULT_BUDGET)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn ports_split_over_two_boxes() {
        let reach = hbox("api.example.com", (1, 100));
        let a = hbox("api.example.com", (1, 50));
        let b = hbox("*.example.com", (51, 100));
        assert!(box_difference_witness(&reach, &[&a, &b], DEFAULT_BUDGET)
            .unwrap()
            .is_none());
        let c = hbox("*.example.com", (52, 100));
        let w = box_difference_witness(&reach, &[&a, &c], DEFAULT_BUDGET)
            .unwrap()
            .unwrap();
        assert_eq!(w.to_string(), "api.example.com:51/tcp");
    }

    #[test]
    fn cidr_exclusion_hole() {
        let reach = ibox("10.0.0.0/8", &["10.1.0.0/17"], (443, 443));
        let approved = ibox("10.0.0.0/8", &["10.1.0.0/16"], (443, 443));
        let w = box_difference_witness(&reach, &[&approved], DEFAULT_BUDGET)
            .unwrap()
            .unwrap();
        assert_eq!(w.to_string(), "10.1.128.0:443/tcp");
        assert!(box_difference_witness(&approved, &[&reach], DEFAULT_BUDGET)
            .unwrap()
            .is_none());
    }

    #[test]
    fn ip_sweep_with_mixed_ports() {
        let reach = ibox("192.0.2.0/24", &[], (443, 444));
        let a = ibox("192.0.2.0/25", &[], (443, 444));
        let b = ibox("192.0.2.128/25", &[], (443, 443));
        let c = ibox("192.0.2.200/32", &[], (444, 444));
        let w = box_difference_witness(&reach, &[&a, &b, &c], DEFAULT_BUDGET)
            .unwrap()
            .unwrap();
        assert_eq!(w.to_string(), "192.0.2.128:444/tcp");
    }

    #[test]
    fn workloads() {
        let sel = |ns: &str, labels: &[(&str, &str)]| ConnBox {
            target: TargetSet::Workload(WorkloadSelector {
                namespace: ns.into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
            ports: PortSet::point(8200),
            protocols: ProtoSet::from_protocols(&[Protocol::Tcp]),
        };
        let reach = sel("vault", &[("app", "vault")]);
        assert!(
            box_difference_witness(&reach, &[&sel("vault", &[])], DEFAULT_BUDGET)
                .unwrap()
                .is_none()
        );
        let w = box_difference_witness(
            &reach,
            &[&sel("vault", &[("app", "vault"), ("tier", "a")])],
            DEFAULT_BUDGET,
        )
        .unwrap()
        .unwrap();
        assert!(reach.contains(&w));
        let x = box_intersection_witness(
            &sel("vault", &[("app", "vault")]),
            &sel("vault", &[("tier", "a")]),
            10,
        )
        .unwrap()
        .unwrap();
        assert!(reach.contains(&x));
        assert!(box_intersection_witness(
            &sel("vault", &[("app", "a")]),
            &sel("vault", &[("app", "b")]),
            10
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn subsumption() {
        let p = parse_host_pattern;
        assert!(pattern_subsumes(&p("**.example.com"), &p("*.example.com")));
        assert!(pattern_subsumes(
            &p("**.example.com"),
            &p("**.a.example.com")
        ));
        assert!(!pattern_subsumes(&p("*.example.com"), &p("**.example.com")));
        assert!(!pattern_subsumes(&p("*.example.com"), &p("example.com")));
        assert!(pattern_subsumes(&p("*.example.com"), &p("a.example.com")));
    }

    #[test]
    fn metadata_ranges() {
        let m = metadata_addresses();
        assert!(m.contains("169.254.169.254".parse().unwrap()));
        assert!(m.contains("fe80::1".parse().unwrap()));
        assert!(m.contains("::ffff:169.254.169.254".parse().unwrap()));
        assert!(m.contains("febf:ffff::1".parse().unwrap()));
        assert!(!m.contains("fec0::1".parse().unwrap()));
        assert!(!m.contains("169.255.0.0".parse().unwrap()));
    }

    #[test]
    fn parse_connections() {
        assert_eq!(
            Connection::parse("A.Example.com:443").unwrap().to_string(),
            "a.example.com:443/tcp"
        );
        assert_eq!(
            Connection::parse("[2001:db8::1]:53/udp")
                .unwrap()
                .to_string(),
            "[2001:db8::1]:53/udp"
        );
        assert!(Connection::parse("example.com").is_err());
        assert!(Connection::parse("example.com:0").is_err());
        assert!(Connection::parse("example.com:80/sctp").is_err());
    }

    /// The index returns, for address and workload boxes, every box that meets the query
    /// (checked against all pairs), in the order the boxes were given.
    #[test]
    fn box_index_finds_every_meeting_box() {
        let wbox = |ns: &str| ConnBox {
            target: TargetSet::Workload(WorkloadSelector {
                namespace: ns.into(),
                labels: BTreeMap::new(),
            }),
            ports: PortSet::point(80),
            protocols: ProtoSet::from_protocols(&[Protocol::Tcp]),
        };
        let mut boxes = Vec::new();
        for a in 0..24u8 {
            let len = 8 + (a % 4) * 8;
            boxes.push(ibox(
                &format!("10.{a}.{}.0/{len}", u32::from(a) * 7 % 256),
                &[],
                (1, 9),
            ));
            boxes.push(ibox(
                &format!("fd00:{a:x}::/{}", 32 + (a % 3) * 16),
                &[],
                (1, 9),
            ));
            boxes.push(wbox(&format!("ns{}", a % 5)));
        }
        boxes.push(ibox("10.0.0.0/8", &["10.3.0.0/16", "10.9.0.0/16"], (1, 9)));
        boxes.push(ibox("0.0.0.0/0", &[], (1, 9)));
        let index = BoxIndex::new(boxes.clone());
        let mut queries = boxes.clone();
        queries.push(ibox("10.3.1.0/24", &[], (1, 9)));
        queries.push(ibox("192.0.2.0/24", &[], (1, 9)));
        queries.push(ibox("2001:db8::/32", &[], (1, 9)));
        queries.push(wbox("elsewhere"));
        for q in &queries {
            let found: Vec<usize> = index
                .candidates(q)
                .into_iter()
                .map(|f| {
                    index
                        .boxes()
                        .iter()
                        .position(|b| std::ptr::eq(b, f))
                        .unwrap()
                })
                .collect();
            let expected: Vec<usize> = (0..boxes.len())
                .filter(|&i| match (&q.target, &boxes[i].target) {
                    (TargetSet::Ip(x), TargetSet::Ip(y)) => !x.intersection(y).is_empty(),
                    (TargetSet::Workload(x), TargetSet::Workload(y)) => x.namespace == y.namespace,
                    _ => false,
                })
                .collect();
            for e in &expected {
                assert!(found.contains(e), "{q:?}: box {e} missing");
            }
            let positions = found;
            assert!(
                positions.windows(2).all(|w| w[0] < w[1]),
                "{q:?}: not in order"
            );
        }
    }
}
