//! IP address sets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::IntervalSet;
use egress_check::{CidrSet, PortRange, Protocol};
use ipnet::IpNet;

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
// Intervals of one family, and CIDR prefixes (what packet filters are lowered to)

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

/// An inclusive address interval within one family (IPv4 addresses as their `u32`
/// value widened to `u128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpInterval {
    pub family: Family,
    pub start: u128,
    pub end: u128,
}

impl IpInterval {
    pub fn of_net(net: &IpNet) -> IpInterval {
        match net {
            IpNet::V4(n) => {
                let (a, b) = net_bounds_v4(n);
                IpInterval {
                    family: Family::V4,
                    start: u128::from(a),
                    end: u128::from(b),
                }
            }
            IpNet::V6(n) => {
                let (a, b) = net_bounds_v6(n);
                IpInterval {
                    family: Family::V6,
                    start: a,
                    end: b,
                }
            }
        }
    }
}

/// An address of a family from its numeric value.
pub fn addr_of(family: Family, value: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

impl IpSet {
    /// The addresses of one interval.
    pub fn from_interval(iv: IpInterval) -> Self {
        match iv.family {
            Family::V4 => IpSet {
                v4: IntervalSet::interval(
                    u32::try_from(iv.start).unwrap_or(u32::MAX),
                    u32::try_from(iv.end).unwrap_or(u32::MAX),
                ),
                v6: IntervalSet::empty(),
            },
            Family::V6 => IpSet {
                v4: IntervalSet::empty(),
                v6: IntervalSet::interval(iv.start, iv.end),
            },
        }
    }

    /// The set's disjoint intervals, IPv4 first, each family in order.
    pub fn intervals(&self) -> Vec<IpInterval> {
        let v4 = self.v4.intervals().iter().map(|&(a, b)| IpInterval {
            family: Family::V4,
            start: u128::from(a),
            end: u128::from(b),
        });
        let v6 = self.v6.intervals().iter().map(|&(a, b)| IpInterval {
            family: Family::V6,
            start: a,
            end: b,
        });
        v4.chain(v6).collect()
    }
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
