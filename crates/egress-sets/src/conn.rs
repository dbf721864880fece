//! Targets, boxes, connection sets and concrete connections.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use crate::{
    box_difference_witness, box_intersection_witness, port_set, Budget, Family, IpInterval, IpSet,
    PortSet, ProtoSet, DEFAULT_BUDGET,
};
use egress_check::{Destination, EndpointKind, HostPattern, Protocol, WorkloadSelector};
use serde::Serialize;

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
        self.difference_witness_within(other, DEFAULT_BUDGET)
    }
    /// [`ConnectionSet::difference_witness`] with at most `budget` search steps per box.
    pub fn difference_witness_within(
        &self,
        other: &ConnectionSet,
        budget: usize,
    ) -> Result<Option<Connection>, Budget> {
        let refs: Vec<&ConnBox> = other.boxes.iter().collect();
        for b in &self.boxes {
            if let Some(w) = box_difference_witness(b, &refs, budget)? {
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

impl ConnectionSet {
    /// Adds the box `target × ports × {protocol}` (nothing when `ports` is empty).
    pub fn add(&mut self, protocol: Protocol, target: TargetSet, ports: PortSet) {
        if ports.is_empty() {
            return;
        }
        self.boxes.push(ConnBox {
            target,
            ports,
            protocols: ProtoSet::from_protocols(&[protocol]),
        });
    }

    /// The set without the addresses of `ips` (host and workload boxes unchanged).
    pub fn without_addresses(&self, ips: &IpSet) -> ConnectionSet {
        ConnectionSet {
            boxes: self
                .boxes
                .iter()
                .map(|b| match &b.target {
                    TargetSet::Ip(set) => ConnBox {
                        target: TargetSet::Ip(set.difference(ips)),
                        ..b.clone()
                    },
                    _ => b.clone(),
                })
                .filter(|b| !b.is_empty())
                .collect(),
        }
    }

    /// Canonical disjoint address rectangles: for each protocol and family, elementary
    /// address intervals with the ports allowed there, adjacent intervals with equal
    /// ports merged. Two sets have equal address parts exactly when these are equal; a
    /// packet filter is lowered from them.
    pub fn ip_rectangles(&self) -> BTreeMap<(Protocol, Family), Vec<(IpInterval, PortSet)>> {
        let mut out = BTreeMap::new();
        for protocol in ProtoSet::ALL {
            for family in [Family::V4, Family::V6] {
                let pieces: Vec<(IpInterval, &PortSet)> = self
                    .boxes
                    .iter()
                    .filter(|b| b.protocols.contains(protocol) && !b.ports.is_empty())
                    .filter_map(|b| match &b.target {
                        TargetSet::Ip(set) => Some((set, &b.ports)),
                        _ => None,
                    })
                    .flat_map(|(set, ports)| {
                        set.intervals()
                            .into_iter()
                            .filter(|iv| iv.family == family)
                            .map(move |iv| (iv, ports))
                    })
                    .collect();
                if pieces.is_empty() {
                    continue;
                }
                // Start points of elementary intervals: every start, and every end + 1.
                let mut starts: BTreeSet<u128> = BTreeSet::new();
                for (iv, _) in &pieces {
                    starts.insert(iv.start);
                    if let Some(next) = iv.end.checked_add(1).filter(|n| *n <= family.max()) {
                        starts.insert(next);
                    }
                }
                let starts: Vec<u128> = starts.into_iter().collect();
                let mut rects: Vec<(IpInterval, PortSet)> = Vec::new();
                for (i, &start) in starts.iter().enumerate() {
                    let end = match starts.get(i + 1) {
                        Some(&next) => next - 1,
                        None => family.max(),
                    };
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
                if !rects.is_empty() {
                    out.insert((protocol, family), rects);
                }
            }
        }
        out
    }
}
