//! The differential test: thousands of random small policies, generated as text and run
//! through the whole pipeline (`check_sources`, then `verify`). The fast path, the Z3 path
//! and the brute-force oracle must agree on every property, and every witness must replay.
//! Failing seeds are kept in `proptest-regressions/` and re-run first.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use egress_verify::generate::{
    AgentSpec, CapExtras, DestSpec, EndpointSpec, ExceptionSpec, Passing, PolicySpec, ZoneSpec,
};
use egress_verify::{oracle, Engine, Property, Verdict, VerifyConfig};
use proptest::prelude::*;

fn host() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a.svc.example",
        "b.svc.example",
        "a.b.svc.example",
        "*.svc.example",
        "**.svc.example",
        "*.a.svc.example",
        "**.a.svc.example",
        "a.*.svc.example",
        "*.*.svc.example",
        "**.*.svc.example",
        "b.a.svc.example",
    ])
    .prop_map(str::to_string)
}

fn cidr() -> impl Strategy<Value = (String, Vec<String>)> {
    prop::sample::select(vec![
        ("10.0.0.0/9", vec![]),
        ("10.128.0.0/9", vec![]),
        ("10.1.0.0/16", vec![]),
        ("10.1.0.0/16", vec!["10.1.2.0/24"]),
        ("10.1.0.0/16", vec!["10.1.0.0/17"]),
        ("10.1.2.0/24", vec![]),
        ("10.1.2.3/32", vec![]),
        ("192.0.2.0/24", vec!["192.0.2.128/25"]),
        ("169.254.169.254/32", vec![]),
        ("169.254.0.0/16", vec!["169.254.169.254/32"]),
        // Metadata ranges beside wider networks (no-metadata exempts per address).
        ("169.254.0.0/16", vec![]),
        ("169.254.0.0/15", vec![]),
        ("169.254.0.0/15", vec!["169.255.0.0/16"]),
        ("fd00:ec2::254/128", vec![]),
        ("fd00:ec2::/32", vec![]),
        ("::ffff:169.254.169.254/128", vec![]),
        ("::ffff:0.0.0.0/96", vec!["::ffff:0.0.0.0/104"]),
        ("2001:db8::/32", vec![]),
        ("2001:db8:1::/48", vec!["2001:db8:1::/64"]),
        ("2001:db8::1/128", vec![]),
        ("fe80::/64", vec![]),
        ("fe80::/9", vec![]),
        // Unspecified and this-network addresses (no-unspecified): inside, excluded, and
        // IPv4-mapped.
        ("0.0.0.0/5", vec![]),
        ("0.0.0.0/5", vec!["0.0.0.0/8"]),
        ("0.0.0.0/32", vec![]),
        ("::/64", vec![]),
        ("::ffff:0.0.0.0/96", vec!["::ffff:0.0.0.0/104"]),
        ("::ffff:0.0.0.0/100", vec![]),
    ])
    .prop_map(|(n, e)| (n.to_string(), e.into_iter().map(str::to_string).collect()))
}

fn workload() -> impl Strategy<Value = (String, Vec<(String, String)>)> {
    (
        prop::sample::select(vec!["x", "y"]),
        prop::sample::subsequence(vec![("app", "p"), ("tier", "t")], 0..=2),
        any::<bool>(),
    )
        .prop_map(|(ns, labels, alt)| {
            let labels = labels
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        if alt && k == "app" {
                            "q".to_string()
                        } else {
                            v.to_string()
                        },
                    )
                })
                .collect();
            (ns.to_string(), labels)
        })
}

fn endpoint() -> impl Strategy<Value = EndpointSpec> {
    prop_oneof![
        3 => host().prop_map(EndpointSpec::Host),
        3 => cidr().prop_map(|(network, except)| EndpointSpec::Cidr { network, except }),
        1 => workload().prop_map(|(namespace, labels)| EndpointSpec::Workload { namespace, labels }),
    ]
}

fn dest() -> impl Strategy<Value = DestSpec> {
    (
        prop::collection::vec(endpoint(), 1..=2),
        prop::sample::subsequence(
            vec![
                (53u16, 53u16),
                (80, 80),
                (443, 443),
                (443, 444),
                (25, 25),
                (1, 1024),
                (8000, 8100),
            ],
            1..=2,
        ),
        0u8..3,
    )
        .prop_map(|(endpoints, ports, proto)| DestSpec {
            endpoints,
            ports,
            tcp: proto != 1,
            udp: proto != 0,
        })
}

fn idx(n: usize) -> impl Strategy<Value = usize> {
    0..n
}

fn policy() -> impl Strategy<Value = PolicySpec> {
    (2usize..=5, 1usize..=3, 1usize..=3).prop_flat_map(|(nd, nc, na)| {
        let passing = passing_strategy();
        let agent = (
            prop::collection::vec(idx(nc), 0..=2),
            any::<bool>(),
            prop::collection::vec((idx(na), passing), 0..=1),
        )
            .prop_map(|(uses, handles_pii, invokes)| AgentSpec {
                uses,
                handles_pii,
                invokes,
            });
        let zone = (
            prop::collection::vec(idx(na), 0..=2),
            prop::collection::vec(idx(nd), 0..=3),
            prop::collection::vec(idx(nd), 0..=3),
            prop::bool::weighted(0.3),
            prop::collection::vec(0usize..2, 0..=1),
        )
            .prop_map(
                |(agents, approve, clear_pii, approve_net_raw, approve_unix)| ZoneSpec {
                    agents,
                    approve,
                    clear_pii,
                    approve_net_raw,
                    approve_unix,
                },
            );
        let extras = (
            prop::bool::weighted(0.2),
            any::<bool>(),
            prop::collection::vec(0usize..2, 0..=1),
        )
            .prop_map(|(net_raw, via_set, unix)| CapExtras {
                net_raw,
                via_set,
                unix,
            });
        let exception = (prop::collection::vec(idx(na), 1..=1), idx(nd), idx(nd))
            .prop_map(|(agents, to, audit)| ExceptionSpec { agents, to, audit });
        (
            prop::collection::vec(dest(), nd),
            prop::collection::vec(prop::collection::vec(idx(nd), 0..=2), nc),
            prop::collection::vec(agent, na),
            prop::collection::vec(zone, 1..=2),
            prop::collection::vec(exception, 0..=1),
            prop::collection::vec((prop::option::of(idx(na)), idx(nd)), 0..=1),
            prop::collection::vec(idx(nd), 0..=1),
            prop::collection::vec(extras, nc),
            prop::collection::vec((prop::option::of(idx(na)), idx(nd)), 0..=1),
            prop::collection::vec((idx(na), idx(na), passing_strategy()), 0..=2),
        )
            .prop_map(
                |(
                    dests,
                    mut caps,
                    agents,
                    zones,
                    exceptions,
                    cannot_reach,
                    never_reaches,
                    cap_extras,
                    can_reach,
                    step_invokes,
                )| {
                    for c in &mut caps {
                        c.sort();
                        c.dedup();
                    }
                    let dedup = |mut v: Vec<usize>| {
                        v.sort();
                        v.dedup();
                        v
                    };
                    PolicySpec {
                        dests,
                        caps,
                        cap_extras,
                        agents: agents
                            .into_iter()
                            .map(|a| AgentSpec {
                                uses: dedup(a.uses),
                                ..a
                            })
                            .collect(),
                        zones: zones
                            .into_iter()
                            .map(|z| ZoneSpec {
                                agents: dedup(z.agents),
                                approve: dedup(z.approve),
                                clear_pii: dedup(z.clear_pii),
                                ..z
                            })
                            .collect(),
                        exceptions,
                        cannot_reach,
                        can_reach,
                        never_reaches,
                        step_invokes,
                    }
                },
            )
    })
}

fn passing_strategy() -> impl Strategy<Value = Passing> {
    prop::sample::select(vec![Passing::Everything, Passing::Pii, Passing::Other])
}

/// Networks around the metadata ranges, for exceptions whose `to` names some of them.
fn metadata_cidr() -> impl Strategy<Value = EndpointSpec> {
    prop::sample::select(vec![
        ("169.254.169.254/32", vec![]),
        ("169.254.0.0/16", vec![]),
        ("169.254.0.0/16", vec!["169.254.169.254/32"]),
        ("169.254.128.0/17", vec![]),
        ("169.254.0.0/15", vec![]),
        ("169.254.0.0/15", vec!["169.255.0.0/16"]),
        ("169.254.0.0/15", vec!["169.254.0.0/16"]),
        ("fd00:ec2::254/128", vec![]),
        ("fd00:ec2::/32", vec![]),
        ("fd00:ec2::/32", vec!["fd00:ec2::/64"]),
        ("::ffff:169.254.0.0/112", vec![]),
        ("::ffff:169.254.169.254/128", vec![]),
        ("::ffff:0.0.0.0/96", vec!["::ffff:0.0.0.0/104"]),
        ("fe80::/10", vec![]),
        ("fe80::/64", vec![]),
        ("fe80::/9", vec![]),
        ("fe80::/9", vec!["fec0::/10"]),
        ("10.0.0.0/8", vec![]),
    ])
    .prop_map(|(n, e)| EndpointSpec::Cidr {
        network: n.to_string(),
        except: e.into_iter().map(str::to_string).collect(),
    })
}

/// Policies whose exceptions open destinations of one to three networks around the
/// metadata ranges, sometimes also reached by a capability: the shapes of the
/// `no-metadata` exemption (per address, named by a CIDR all of whose addresses are
/// metadata addresses).
fn metadata_policy() -> impl Strategy<Value = PolicySpec> {
    let to = prop::collection::vec(metadata_cidr(), 1..=3).prop_map(|endpoints| DestSpec {
        endpoints,
        ports: vec![(80, 80)],
        tcp: true,
        udp: false,
    });
    (
        prop::collection::vec(to, 2),
        any::<bool>(),
        any::<bool>(),
        1usize..=2,
    )
        .prop_map(|(mut dests, second_exception, cap_reaches, na)| {
            // d2: the audit sink.
            dests.push(DestSpec {
                endpoints: vec![EndpointSpec::Cidr {
                    network: "10.1.2.3/32".to_string(),
                    except: vec![],
                }],
                ports: vec![(6514, 6514)],
                tcp: true,
                udp: false,
            });
            let mut exceptions = vec![ExceptionSpec {
                agents: vec![0],
                to: 0,
                audit: 2,
            }];
            if second_exception {
                exceptions.push(ExceptionSpec {
                    agents: vec![na - 1],
                    to: 1,
                    audit: 2,
                });
            }
            PolicySpec {
                dests,
                caps: vec![if cap_reaches { vec![1, 2] } else { vec![2] }],
                cap_extras: Vec::new(),
                agents: (0..na)
                    .map(|_| AgentSpec {
                        uses: vec![0],
                        handles_pii: false,
                        invokes: Vec::new(),
                    })
                    .collect(),
                zones: vec![ZoneSpec {
                    agents: Vec::new(),
                    approve: vec![0, 1, 2],
                    clear_pii: Vec::new(),
                    approve_net_raw: false,
                    approve_unix: Vec::new(),
                }],
                exceptions,
                cannot_reach: Vec::new(),
                can_reach: Vec::new(),
                never_reaches: Vec::new(),
                step_invokes: Vec::new(),
            }
        })
}

fn statuses(report: &egress_verify::Report) -> Vec<(Property, Verdict)> {
    report
        .properties
        .iter()
        .map(|p| (p.id.clone(), p.status))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn fast_smt_and_oracle_agree(spec in policy()) {
        engines_agree(&spec)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 500,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn metadata_exemption_engines_agree(spec in metadata_policy()) {
        engines_agree(&spec)?;
    }
}

/// The fast path, the Z3 path and the oracle agree on every property of the policy, and
/// every witness is a counterexample of its property.
fn engines_agree(spec: &PolicySpec) -> Result<(), TestCaseError> {
    let text = spec.render();
    let result = egress_check::check_sources(&[("policy.egress", text.as_str())]);
    let errors: Vec<_> = result.diagnostics.iter().filter(|d| d.is_error()).collect();
    prop_assert!(
        errors.is_empty(),
        "generated policy does not check:\n{text}\n{errors:#?}"
    );
    let policy = result.policy.as_ref().unwrap();
    let fast = egress_verify::verify(
        policy,
        &VerifyConfig {
            warnings: false,
            ..VerifyConfig::default()
        },
    );
    let smt = egress_verify::verify(
        policy,
        &VerifyConfig {
            engine: Engine::Smt,
            warnings: false,
            ..VerifyConfig::default()
        },
    );
    let oracle: Vec<(Property, Verdict)> = oracle::statuses(policy).into_iter().collect();
    let mut fast_statuses = statuses(&fast);
    fast_statuses.sort();
    let mut smt_statuses = statuses(&smt);
    smt_statuses.sort();
    prop_assert!(
        fast.verdict != Verdict::Unknown,
        "fast path unknown:\n{text}\n{:#?}",
        fast.warnings
    );
    prop_assert_eq!(
        &fast_statuses,
        &oracle,
        "fast path vs oracle on:\n{}\n{:#?}",
        text,
        fast.violations
    );
    prop_assert_eq!(
        &smt_statuses,
        &oracle,
        "Z3 path vs oracle on:\n{}\n{:#?}",
        text,
        smt.violations
    );
    // Every witness is a real connection of its path (the verifier replays it too), and
    // a counterexample of its property, exemptions included.
    for v in fast.violations.iter().chain(&smt.violations) {
        let Some(w) = &v.witness else { continue };
        let agent = policy.agent_by_name(&v.agent).unwrap();
        match v.property {
            Property::EgressApproved => {
                prop_assert!(egress_verify::allowed(policy, agent.id, w).is_some());
                prop_assert!(!egress_verify::eval::approved(policy, agent.id, w));
            }
            Property::NoMetadata => {
                let leaks = egress_verify::eval::allowed_routes(policy, agent.id, w)
                    .iter()
                    .any(|r| egress_verify::eval::metadata_leak(policy, r, w));
                prop_assert!(
                    leaks,
                    "no-metadata witness {} is not a counterexample:\n{}",
                    w,
                    text
                );
            }
            _ => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 150,
        max_shrink_iters: 500,
        ..ProptestConfig::default()
    })]

    /// Incremental verification is exact: for a policy and every policy one line shorter
    /// (and back), a run with the other's memo reports what a run without a memo does.
    #[test]
    fn incremental_runs_match_full_runs(spec in policy(), warnings in any::<bool>()) {
        incremental_matches(&spec.render(), warnings)?;
    }
}

/// The report without its counters (which say how the answer was found).
fn comparable(mut report: egress_verify::Report) -> egress_verify::Report {
    report.stats = egress_verify::Stats::default();
    report
}

/// With `warnings` off, zone warnings are not computed, so their keys are not in the
/// next memo: that costs the next run time, never a wrong answer.
fn incremental_matches(text: &str, warnings: bool) -> Result<(), TestCaseError> {
    let config = VerifyConfig {
        warnings,
        ..VerifyConfig::default()
    };
    let checked = |text: &str| egress_check::check_sources(&[("policy.egress", text)]).policy;
    let Some(original) = checked(text) else {
        return Ok(());
    };
    let (_, memo) =
        egress_verify::verify_incremental(&original, None, &config, &egress_verify::Memo::new());
    let (again, _) = egress_verify::verify_incremental(&original, None, &config, &memo);
    prop_assert_eq!(
        comparable(again.clone()),
        comparable(egress_verify::verify(&original, &config))
    );
    let lines: Vec<&str> = text.lines().collect();
    for skip in 0..lines.len() {
        let mutant: String = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        let Some(policy) = checked(&mutant) else {
            continue;
        };
        let full = comparable(egress_verify::verify(&policy, &config));
        let (incremental, back) = egress_verify::verify_incremental(&policy, None, &config, &memo);
        prop_assert_eq!(
            &comparable(incremental),
            &full,
            "with the memo of the original, after deleting line {}:\n{}",
            skip + 1,
            mutant
        );
        let (restored, _) = egress_verify::verify_incremental(&original, None, &config, &back);
        prop_assert_eq!(
            comparable(restored),
            comparable(again.clone()),
            "with the memo of the policy without line {}, on the original:\n{}",
            skip + 1,
            text
        );
    }
    Ok(())
}
