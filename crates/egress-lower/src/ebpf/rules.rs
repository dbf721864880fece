//! Allow rules and their compilation into LPM trie entries (pure; no kernel).
//!
//! An [`AllowRule`] says "connections to `network`, `protocol`, ports `ports` are allowed"
//! (optionally only through an exception slot). [`compile`] turns a list of them into
//! the exact trie contents: one entry per distinct prefix, each holding its own rules
//! plus the rules of every prefix that covers it ("push-down"), because an LPM lookup
//! returns only the longest match. With push-down, the set of (protocol, port) the
//! program allows for an address is the union over every rule whose network contains
//! the address, which is exactly the meaning of an allowlist.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_check::{PortRange, Protocol};
use ipnet::{IpNet, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::layout::{PortRule, IPPROTO_TCP, IPPROTO_UDP, MAX_RULES};

/// One allowed network, protocol and port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AllowRule {
    pub network: IpNet,
    pub protocol: Protocol,
    pub ports: PortRange,
    /// 0 for a policy rule; otherwise the exception slot that gates this rule.
    pub exception_slot: u16,
}

/// A trie key in the program's address space: IPv4 networks are IPv4-mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TriePrefix {
    /// The 16-byte address (network byte order).
    pub addr: [u8; 16],
    /// Prefix length in bits, 0..=128 (IPv4 /n is 96 + n).
    pub prefix_len: u8,
}

/// The prefix the IPv4-mapped addresses occupy, `::ffff:0:0/96`.
pub fn ipv4_mapped_block() -> Ipv6Net {
    // ::ffff:0:0/96 is a valid network, so this never falls back.
    Ipv6Net::new(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96)
        .unwrap_or_else(|_| Ipv6Net::default())
}

impl TriePrefix {
    pub fn from_net(network: IpNet) -> TriePrefix {
        match network {
            IpNet::V4(net) => TriePrefix {
                addr: net.network().to_ipv6_mapped().octets(),
                prefix_len: 96 + net.prefix_len(),
            },
            IpNet::V6(net) => TriePrefix {
                addr: net.network().octets(),
                prefix_len: net.prefix_len(),
            },
        }
    }

    /// Does this prefix contain (or equal) `other`?
    pub fn contains(&self, other: &TriePrefix) -> bool {
        if other.prefix_len < self.prefix_len {
            return false;
        }
        let a = u128::from_be_bytes(self.addr);
        let b = u128::from_be_bytes(other.addr);
        let mask = prefix_mask(self.prefix_len);
        a & mask == b & mask
    }

    /// Does this prefix contain the address?
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        self.contains(&TriePrefix {
            addr: mapped_octets(addr),
            prefix_len: 128,
        })
    }

    /// The network this prefix stands for (IPv4 for the mapped block).
    pub fn to_net(&self) -> IpNet {
        let v6 = Ipv6Addr::from(self.addr);
        if self.prefix_len >= 96 {
            if let Some(v4) = v6.to_ipv4_mapped() {
                if let Ok(net) = ipnet::Ipv4Net::new(v4, self.prefix_len - 96) {
                    return IpNet::V4(net);
                }
            }
        }
        Ipv6Net::new(v6, self.prefix_len.min(128))
            .map(IpNet::V6)
            .unwrap_or_default()
    }
}

impl fmt::Display for TriePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_net())
    }
}

fn prefix_mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

/// The 16-byte form the program looks up: IPv4 addresses IPv4-mapped.
pub fn mapped_octets(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address a 16-byte key stands for (IPv4 when IPv4-mapped).
pub fn unmapped_addr(octets: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(octets);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

pub fn protocol_number(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    }
}

pub fn protocol_from_number(number: u8) -> Option<Protocol> {
    match number {
        IPPROTO_TCP => Some(Protocol::Tcp),
        IPPROTO_UDP => Some(Protocol::Udp),
        _ => None,
    }
}

/// A prefix that would need more than [`MAX_RULES`] port rules after push-down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TooManyRules {
    pub prefix: TriePrefix,
    pub needed: usize,
}

impl fmt::Display for TooManyRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} needs {} port rules after merging with covering prefixes; the program holds at most {MAX_RULES}",
            self.prefix, self.needed
        )
    }
}

/// The exact contents of the rules trie.
pub type TrieContents = BTreeMap<TriePrefix, Vec<PortRule>>;

/// Compiles allow rules into trie entries with covering prefixes' rules pushed down.
///
/// IPv6 rules never cover IPv4-mapped space: `::ffff:0:0/96` is subtracted from every
/// IPv6 network, since connections to those addresses are IPv4 connections and IPv4
/// rules govern them. The unspecified networks (`egress_check::UNSPECIFIED_NETWORKS`:
/// `0.0.0.0/8`, `::`, reaching the local host) are subtracted from every rule, whatever
/// the policy or a token says; the program refuses them before any lookup as well.
pub fn compile(rules: &[AllowRule]) -> Result<TrieContents, Vec<TooManyRules>> {
    let mapped = ipv4_mapped_block();
    let mut own: BTreeMap<TriePrefix, Vec<PortRule>> = BTreeMap::new();
    for rule in rules {
        let port_rule = PortRule {
            port_lo: rule.ports.start,
            port_hi: rule.ports.end,
            protocol: protocol_number(rule.protocol),
            pad: 0,
            exception_slot: rule.exception_slot,
        };
        let mut excluded: Vec<IpNet> = egress_check::UNSPECIFIED_NETWORKS.to_vec();
        if let IpNet::V6(_) = rule.network {
            excluded.push(IpNet::V6(mapped));
        }
        let networks: Vec<IpNet> = subtract(rule.network.trunc(), &excluded);
        for network in networks {
            own.entry(TriePrefix::from_net(network))
                .or_default()
                .push(port_rule);
        }
    }
    // Sorted by (address, length): every covering prefix comes before what it covers,
    // so a stack of the current chain of ancestors gives each entry its inheritance.
    let mut out = TrieContents::new();
    let mut errors = Vec::new();
    let mut stack: Vec<(TriePrefix, Vec<PortRule>)> = Vec::new();
    for (prefix, rules) in own {
        while let Some((top, _)) = stack.last() {
            if top.contains(&prefix) {
                break;
            }
            stack.pop();
        }
        let mut merged: Vec<PortRule> = stack
            .last()
            .map(|(_, inherited)| inherited.clone())
            .unwrap_or_default();
        merged.extend(rules);
        let merged = normalise(merged);
        if merged.len() > MAX_RULES {
            errors.push(TooManyRules {
                prefix,
                needed: merged.len(),
            });
        }
        stack.push((prefix, merged.clone()));
        out.insert(prefix, merged);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Sorts rules (policy rules first, so they match before an exception use is counted)
/// and merges overlapping or adjacent port ranges of the same protocol and slot.
pub fn normalise(mut rules: Vec<PortRule>) -> Vec<PortRule> {
    rules.sort_by_key(|r| (r.exception_slot, r.protocol, r.port_lo, r.port_hi));
    let mut out: Vec<PortRule> = Vec::with_capacity(rules.len());
    for rule in rules {
        if let Some(last) = out.last_mut() {
            if last.exception_slot == rule.exception_slot
                && last.protocol == rule.protocol
                && u32::from(rule.port_lo) <= u32::from(last.port_hi) + 1
            {
                last.port_hi = last.port_hi.max(rule.port_hi);
                continue;
            }
        }
        out.push(rule);
    }
    // A policy rule that already covers an exception rule makes it redundant; drop it so
    // the exception's use counter only counts connections it really opened.
    let policy: Vec<PortRule> = out
        .iter()
        .filter(|r| r.exception_slot == 0)
        .copied()
        .collect();
    out.retain(|r| {
        r.exception_slot == 0
            || !policy.iter().any(|p| {
                p.protocol == r.protocol && p.port_lo <= r.port_lo && r.port_hi <= p.port_hi
            })
    });
    out
}

/// Evaluates the trie the way the program does (longest match, then the rules), for
/// tests and for explaining a denial. Exception rules count as allowing.
pub fn lookup(contents: &TrieContents, addr: IpAddr, protocol: Protocol, port: u16) -> bool {
    let key = TriePrefix {
        addr: mapped_octets(addr),
        prefix_len: 128,
    };
    let best = contents
        .iter()
        .filter(|(prefix, _)| prefix.contains(&key))
        .max_by_key(|(prefix, _)| prefix.prefix_len);
    match best {
        None => false,
        Some((_, rules)) => rules.iter().any(|r| {
            r.protocol == protocol_number(protocol) && r.port_lo <= port && port <= r.port_hi
        }),
    }
}

/// `network` minus `excluded`, exactly, as a sorted list of disjoint prefixes.
pub fn subtract(network: IpNet, excluded: &[IpNet]) -> Vec<IpNet> {
    let mut current = vec![network.trunc()];
    for ex in excluded {
        let mut next = Vec::new();
        for net in current {
            next.extend(subtract_one(net, ex.trunc()));
        }
        current = next;
    }
    current.sort();
    current.dedup();
    current
}

fn subtract_one(net: IpNet, ex: IpNet) -> Vec<IpNet> {
    let same_family = matches!(
        (net, ex),
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
    );
    if !same_family {
        return vec![net];
    }
    if ex.contains(&net) {
        return Vec::new();
    }
    if !net.contains(&ex) {
        return vec![net];
    }
    // Split `net` into its two halves and recurse into the half holding `ex`.
    let mut out = Vec::new();
    let mut cur = net;
    while cur.prefix_len() < ex.prefix_len() {
        let Ok(mut halves) = cur.subnets(cur.prefix_len() + 1) else {
            break;
        };
        let (Some(a), Some(b)) = (halves.next(), halves.next()) else {
            break;
        };
        if a.contains(&ex) {
            out.push(b);
            cur = a;
        } else {
            out.push(a);
            cur = b;
        }
    }
    out
}

/// Convenience for tests: a rule from text parts.
pub fn rule(network: &str, protocol: Protocol, start: u16, end: u16) -> Option<AllowRule> {
    Some(AllowRule {
        network: network.parse().ok()?,
        protocol,
        ports: PortRange { start, end },
        exception_slot: 0,
    })
}

/// `0.0.0.0` as a placeholder where an address is needed but unknown.
pub const UNSPECIFIED_V4: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(net: &str, p: Protocol, a: u16, b: u16) -> AllowRule {
        rule(net, p, a, b).unwrap()
    }

    #[test]
    fn push_down_keeps_broader_allow() {
        let rules = [
            r("10.0.0.0/8", Protocol::Tcp, 443, 443),
            r("10.1.0.0/16", Protocol::Tcp, 80, 80),
        ];
        let trie = compile(&rules).unwrap();
        let addr: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(lookup(&trie, addr, Protocol::Tcp, 443));
        assert!(lookup(&trie, addr, Protocol::Tcp, 80));
        assert!(!lookup(
            &trie,
            "10.2.0.1".parse().unwrap(),
            Protocol::Tcp,
            80
        ));
        assert!(!lookup(&trie, addr, Protocol::Udp, 443));
    }

    #[test]
    fn ipv6_rules_do_not_cover_ipv4_mapped_space() {
        let trie = compile(&[r("::/1", Protocol::Tcp, 1, 65535)]).unwrap();
        assert!(!lookup(
            &trie,
            "127.0.0.1".parse().unwrap(),
            Protocol::Tcp,
            80
        ));
        assert!(lookup(&trie, "::1".parse().unwrap(), Protocol::Tcp, 80));
    }

    #[test]
    fn subtract_is_exact() {
        let out = subtract(
            "198.51.100.0/24".parse().unwrap(),
            &["198.51.100.128/25".parse().unwrap()],
        );
        assert_eq!(out, vec!["198.51.100.0/25".parse::<IpNet>().unwrap()]);
        let out = subtract(
            "198.51.100.0/24".parse().unwrap(),
            &["198.51.100.7/32".parse().unwrap()],
        );
        assert_eq!(out.len(), 8);
    }

    #[test]
    fn unspecified_networks_are_never_in_the_trie() {
        let trie = compile(&[
            r("0.0.0.0/7", Protocol::Tcp, 80, 80),
            r("::/127", Protocol::Tcp, 80, 80),
        ])
        .unwrap();
        let covers = |addr: &str| {
            let ip: std::net::IpAddr = addr.parse().unwrap();
            trie.keys().any(|p| p.to_net().contains(&ip))
        };
        assert!(!covers("0.0.0.0"));
        assert!(!covers("0.255.255.255"));
        assert!(!covers("::"));
        assert!(covers("1.0.0.0"));
        assert!(covers("::1"));
    }

    #[test]
    fn too_many_rules_is_refused() {
        let rules: Vec<AllowRule> = (0..40u16)
            .map(|i| r("192.0.2.0/24", Protocol::Tcp, 1000 + 2 * i, 1000 + 2 * i))
            .collect();
        let err = compile(&rules).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].needed, 40);
    }

    fn arb_v4_rule() -> impl Strategy<Value = AllowRule> {
        (0u8..4, 0u8..4, 20u8..=32, any::<bool>(), 1u16..8, 0u16..4).prop_map(
            |(a, b, len, udp, lo, span)| {
                let addr = Ipv4Addr::new(10, a, b, 7);
                let net = ipnet::Ipv4Net::new(addr, len).unwrap().trunc();
                AllowRule {
                    network: IpNet::V4(net),
                    protocol: if udp { Protocol::Udp } else { Protocol::Tcp },
                    ports: PortRange {
                        start: lo,
                        end: lo + span,
                    },
                    exception_slot: 0,
                }
            },
        )
    }

    proptest! {
        /// The trie answers exactly "some rule contains the address, protocol and port".
        #[test]
        fn trie_equals_union_of_rules(
            rules in proptest::collection::vec(arb_v4_rule(), 1..12),
            a in 0u8..4, b in 0u8..4, c in 0u8..=255, port in 1u16..14, udp in any::<bool>(),
        ) {
            let trie = compile(&rules).unwrap();
            let addr = IpAddr::V4(Ipv4Addr::new(10, a, b, c));
            let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
            let expected = rules.iter().any(|r| {
                r.network.contains(&addr) && r.protocol == protocol && r.ports.contains(port)
            });
            prop_assert_eq!(lookup(&trie, addr, protocol, port), expected);
        }

        #[test]
        fn subtract_matches_membership(
            len in 16u8..=24, ex_len in 16u8..=30, ex_c in 0u8..=255, probe in 0u32..65536,
        ) {
            let net: IpNet = IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::new(10, 9, 0, 0), len).unwrap().trunc());
            let ex: IpNet = IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::new(10, 9, ex_c, 0), ex_len).unwrap().trunc());
            let parts = subtract(net, &[ex]);
            let addr = IpAddr::V4(Ipv4Addr::new(10, 9, (probe >> 8) as u8, probe as u8));
            let expected = net.contains(&addr) && !ex.contains(&addr);
            prop_assert_eq!(parts.iter().any(|p| p.contains(&addr)), expected);
        }
    }
}
