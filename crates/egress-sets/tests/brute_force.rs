//! The set algebra against brute force, on universes small enough to enumerate: the
//! address × port rectangles a packet filter is lowered from, the witnesses of
//! differences, host-pattern containment and CIDR prefixes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::Ipv4Addr;

use egress_check::{CidrSet, HostLabel, HostPattern, Protocol};
use egress_sets::*;
use ipnet::IpNet;

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

fn hosts(list: &[&str]) -> ConnectionSet {
    let mut s = ConnectionSet::default();
    for h in list {
        s.add(
            Protocol::Tcp,
            TargetSet::Host(pat(h)),
            PortSet::from_intervals([(443, 443)]),
        );
    }
    s
}

#[test]
fn double_star_is_one_label_or_more_levels() {
    let a = hosts(&["**.x.example"]);
    let b = hosts(&["*.x.example", "**.*.x.example"]);
    assert!(a.difference_witness(&b).unwrap().is_none());
    assert!(b.difference_witness(&a).unwrap().is_none());
    let c = hosts(&["*.x.example"]);
    let w = a.difference_witness(&c).unwrap().unwrap();
    assert_eq!(w.target.to_string().split('.').count(), 4, "{w}");
    assert!(c.difference_witness(&a).unwrap().is_none());
    assert!(hosts(&["x.example"])
        .difference_witness(&a)
        .unwrap()
        .is_some());
}

#[test]
fn ip_rectangles_and_witness() {
    let net: IpNet = "10.0.0.0/8".parse().unwrap();
    let ex: IpNet = "10.1.0.0/16".parse().unwrap();
    let mut a = ConnectionSet::default();
    for iv in IpSet::from_cidr(&CidrSet {
        network: net,
        except: vec![ex],
    })
    .intervals()
    {
        a.add(
            Protocol::Tcp,
            TargetSet::Ip(IpSet::from_interval(iv)),
            PortSet::from_intervals([(1, 100)]),
        );
    }
    let mut b = ConnectionSet::default();
    b.add(
        Protocol::Tcp,
        TargetSet::Ip(IpSet::from_interval(IpInterval::of_net(&net))),
        PortSet::from_intervals([(1, 100)]),
    );
    assert!(a.difference_witness(&b).unwrap().is_none());
    let w = b.difference_witness(&a).unwrap().unwrap();
    assert_eq!(w.target.to_string(), "10.1.0.0");
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

fn ip_set(atoms: &[(Protocol, u8, u8, u16, u16)]) -> ConnectionSet {
    let base = u128::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)));
    let mut s = ConnectionSet::default();
    for &(proto, a, b, p, q) in atoms {
        s.add(
            proto,
            TargetSet::Ip(IpSet::from_interval(IpInterval {
                family: Family::V4,
                start: base + u128::from(a),
                end: base + u128::from(b),
            })),
            PortSet::from_intervals([(p, q)]),
        );
    }
    s
}

fn ip_member(atoms: &[(Protocol, u8, u8, u16, u16)], proto: Protocol, addr: u8, port: u16) -> bool {
    atoms
        .iter()
        .any(|&(p, a, b, lo, hi)| p == proto && a <= addr && addr <= b && lo <= port && port <= hi)
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
        let found = a.difference_witness(&b).unwrap();
        prop_assert_eq!(found.is_some(), brute.is_some(), "{:?} vs {:?}", found, brute);
        if let Some(w) = found {
            // The witness really is in the difference.
            let addr: u8 = w.target.to_string().rsplit('.').next().unwrap().parse().unwrap();
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
            let mut s = ConnectionSet::default();
            for p in ps {
                s.add(Protocol::Tcp, TargetSet::Host(p.clone()), PortSet::from_intervals([(443, 443)]));
            }
            s
        };
        // Host patterns here are at most 3 labels (`**` plus 2), so names of up to 4
        // labels over {a, b, x} include a witness whenever one exists.
        let brute = all_hosts().into_iter().find(|h| {
            left.iter().any(|p| p.matches(h)) && !right.iter().any(|p| p.matches(h))
        });
        let found = set(&left).difference_witness(&set(&right)).unwrap();
        prop_assert_eq!(found.is_some(), brute.is_some(), "{:?} vs {:?}", found, brute);
        if let Some(w) = found {
            let name = w.target.to_string();
            prop_assert!(left.iter().any(|p| p.matches(&name)), "{}", name);
            prop_assert!(!right.iter().any(|p| p.matches(&name)), "{}", name);
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
