//! Unit tests of the algebra's box questions.

use egress_check::{CidrSet, Protocol, WorkloadSelector};

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
            labels: egress_check::Labels::new(),
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
