//! The eBPF program on a real cgroup: allowed connects succeed, everything else EPERM.

use egress_check::Protocol;

use crate::common::*;

#[test]
fn allowed_connects_succeed_and_all_others_fail_with_eperm() {
    let cg = TestCgroup::new(&unique("basic"));
    let mut l = listeners();
    let tcp_a = l.tcp("127.0.0.2:0"); // allowed (tcp)
    let tcp_a_other_port = l.tcp("127.0.0.2:0"); // same address, port not allowed
    let tcp_b = l.tcp("127.0.0.3:0"); // address not allowed
    let tcp_6 = l.tcp("[::1]:0"); // allowed (tcp, IPv6)
    let tcp_6_other = l.tcp("[::1]:0"); // IPv6, port not allowed
    let udp_a = l.udp("127.0.0.2:0"); // allowed (udp)
    let udp_b = l.udp("127.0.0.4:0"); // address not allowed
    let udp_6 = l.udp("[::1]:0"); // allowed (udp, IPv6)
    let udp_6_other = l.udp("[::1]:0");

    let rules = vec![
        allow(tcp_a, 32, Protocol::Tcp),
        allow(udp_a, 32, Protocol::Udp),
        allow(tcp_6, 128, Protocol::Tcp),
        allow(udp_6, 128, Protocol::Udp),
    ];
    let mut att = TestAttachment::new(&unique("basic"), &cg, &rules);

    let expected = vec![
        (target("tcp", tcp_a), "ok"),
        (target("tcp", mapped(tcp_a)), "ok"),
        (target("tcp", tcp_a_other_port), "EPERM"),
        (target("tcp", tcp_b), "EPERM"),
        (target("tcp", mapped(tcp_b)), "EPERM"),
        (target("tcp", tcp_6), "ok"),
        (target("tcp", tcp_6_other), "EPERM"),
        // UDP over the sendmsg hooks (unconnected) and the connect hooks (connected).
        (target("udp", udp_a), "ok"),
        (target("udpc", udp_a), "ok"),
        (target("udp", mapped(udp_a)), "ok"),
        (target("udp", udp_b), "EPERM"),
        (target("udpc", udp_b), "EPERM"),
        (target("udp", mapped(udp_b)), "EPERM"),
        (target("udp", tcp_a), "EPERM"), // tcp-only port over udp
        (target("udp", udp_6), "ok"),
        (target("udpc", udp_6), "ok"),
        (target("udp", udp_6_other), "EPERM"),
        (target("tcp", udp_6), "EPERM"), // udp-only port over tcp
    ];
    let targets: Vec<String> = expected.iter().map(|(t, _)| t.clone()).collect();

    // Outside the cgroup nothing is denied: the EPERMs below come from the program.
    let outside = probe(None, &targets);
    for (t, result) in &outside {
        assert_ne!(
            result, "EPERM",
            "{t} denied outside the cgroup: {outside:#?}"
        );
    }

    let mut events = att.get().events().unwrap();
    let inside = probe(Some(&cg), &targets);
    expect(&inside, &expected);

    let denied = expected.iter().filter(|(_, r)| *r == "EPERM").count() as u64;
    let allowed = expected.iter().filter(|(_, r)| *r == "ok").count() as u64;
    let counters = att.get().counters();
    assert_eq!(counters["denied"], denied, "{counters:?}");
    assert!(counters["allowed"] >= allowed, "{counters:?}");
    assert_eq!(
        counters["denied_no_prefix"] + counters["denied_port"],
        denied,
        "{counters:?}"
    );

    // Every denial is reported with its destination and reason.
    let denials = events.wait(1000);
    assert_eq!(denials.len() as u64, denied, "{denials:#?}");
    assert!(denials
        .iter()
        .any(|d| d.destination == tcp_b.ip().to_string()
            && d.port == tcp_b.port()
            && d.protocol == "tcp"
            && d.reason == "no-rule-for-address"
            && d.agent_id == 7));
    assert!(denials.iter().any(|d| d.destination == "::1"
        && d.port == tcp_6_other.port()
        && d.reason == "port-or-protocol-not-allowed"));

    // Detach: the same cgroup is unconfined again.
    let name = att.name.clone();
    drop(att);
    assert!(!egress_enforce::loader::list().contains(&name));
    let after = probe(Some(&cg), &targets);
    for (t, result) in &after {
        assert_ne!(result, "EPERM", "{t} still denied after detach: {after:#?}");
    }
}

#[test]
fn a_more_specific_prefix_never_shadows_a_broader_allow() {
    let cg = TestCgroup::new(&unique("pushdown"));
    let mut l = listeners();
    let broad = l.tcp("127.0.0.5:0");
    let narrow = l.tcp("127.0.0.5:0");
    let rules = vec![
        allow(broad, 8, Protocol::Tcp),   // 127.0.0.0/8, port of `broad`
        allow(narrow, 32, Protocol::Tcp), // 127.0.0.5/32, port of `narrow`
    ];
    let _att = TestAttachment::new(&unique("pushdown"), &cg, &rules);
    let results = probe(Some(&cg), &[target("tcp", broad), target("tcp", narrow)]);
    expect(
        &results,
        &[(target("tcp", broad), "ok"), (target("tcp", narrow), "ok")],
    );
}

#[test]
fn rules_update_in_place_across_handles() {
    let cg = TestCgroup::new(&unique("sync"));
    let mut l = listeners();
    let a = l.tcp("127.0.0.6:0");
    let b = l.tcp("127.0.0.7:0");
    let name = unique("sync");
    let _att = TestAttachment::new(&name, &cg, &[allow(a, 32, Protocol::Tcp)]);
    let targets = [target("tcp", a), target("tcp", b)];
    expect(
        &probe(Some(&cg), &targets),
        &[(targets[0].clone(), "ok"), (targets[1].clone(), "EPERM")],
    );
    // A second handle opened from the pins (as another process would) swaps the rules.
    let mut other = egress_enforce::loader::open(&name).unwrap();
    let contents = egress_enforce::rules::compile(&[allow(b, 32, Protocol::Tcp)]).unwrap();
    other.sync_rules(&contents).unwrap();
    assert_eq!(other.rule_entries(), 1);
    expect(
        &probe(Some(&cg), &targets),
        &[(targets[0].clone(), "EPERM"), (targets[1].clone(), "ok")],
    );
    assert!(other.links().iter().all(|l| l.attached && l.prog_id != 0));
}
