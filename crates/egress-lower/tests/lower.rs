//! Data-driven lowering tests.
//!
//! Every directory `tests/lower/<case>/` and every `examples/<name>/` of the repository is
//! one policy. For each, every target is lowered; a success must pass translation
//! validation, validate against the vendored schema of its format (`tests/schemas/`), and
//! lower to the same bytes twice; a refusal must carry codes from E0100–E0149. The
//! artifacts (or the refusal) are snapshotted with insta in `tests/lower/snapshots/`.
//!
//! One trial per case (libtest-mimic, `harness = false`): `cargo test -p egress-lower
//! --test lower -- case-NAME` runs one case, and a failing case never hides the next.
//!
//! Kernel tests (`kernel` module) install the generated seccomp profiles and nftables
//! rulesets for real. They need root, libseccomp, `nft` and `ip`; they fail when those are
//! missing.

// Tests may unwrap, index and panic: a failure is the test's report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod kernel;
mod schema;

use std::path::PathBuf;

use libtest_mimic::{Arguments, Trial};

use common::{load_case, render_build, repo_root};
use egress_lower::{Target, TargetConfig};

fn case_dirs() -> Vec<(String, PathBuf)> {
    let root = repo_root();
    let mut out = Vec::new();
    for (prefix, dir) in [
        ("case", root.join("tests/lower")),
        ("example", root.join("examples")),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let has_policy = path.is_dir()
                && std::fs::read_dir(&path)
                    .map(|d| {
                        d.flatten()
                            .any(|e| e.path().extension().is_some_and(|x| x == "egress"))
                    })
                    .unwrap_or(false);
            if has_policy {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                out.push((format!("{prefix}-{name}"), path));
            }
        }
    }
    out.sort();
    out
}

/// The one entry point the tests use: lower (and validate) a case for every target.
fn check_case(name: &str, dir: &std::path::Path) -> String {
    let (result, policy) = load_case(dir);
    let policy = policy.unwrap_or_else(|| {
        panic!(
            "case {name} does not check: {:#?}",
            result
                .diagnostics
                .iter()
                .map(|d| (d.code, &d.message))
                .collect::<Vec<_>>()
        )
    });
    let config = TargetConfig::default();
    let mut report = String::new();
    for target in Target::ALL {
        let first = egress_lower::build(&policy, &[target], &config, true);
        let second = egress_lower::build(&policy, &[target], &config, true);
        assert_eq!(first, second, "{name}/{target}: two builds differ");
        match &first {
            Ok(build) => {
                for (file, text) in &build.files {
                    schema::validate_artifact(target, file, text);
                }
            }
            Err(diags) => {
                assert!(diags.iter().any(|d| d.is_error()));
                for d in diags {
                    let n: u32 = d.code[1..].parse().unwrap();
                    assert!(
                        (100..150).contains(&n),
                        "{name}/{target}: unexpected code {}",
                        d.code
                    );
                    // Validation errors mean the lowering is wrong, never the policy.
                    assert!(
                        !["E0111", "E0120", "E0121", "E0122"].contains(&d.code),
                        "{name}/{target}: translation validation failed: {}",
                        d.message
                    );
                }
            }
        }
        report.push_str(&render_build(&result, target, &first));
    }
    report
}

/// One trial per case: lowers or refuses with a code, and matches its snapshot.
fn case_trials() -> Vec<Trial> {
    let cases = case_dirs();
    let count = cases.len();
    let mut trials = vec![Trial::test("cases-and-examples-found", move || {
        assert!(
            count >= 8,
            "expected the lowering cases and the examples, found {count}"
        );
        Ok(())
    })];
    trials.extend(cases.into_iter().map(|(name, dir)| {
        Trial::test(name.clone(), move || {
            let report = check_case(&name, &dir);
            let mut settings = insta::Settings::clone_current();
            settings.set_snapshot_path(repo_root().join("tests/lower/snapshots"));
            settings.set_prepend_module_to_snapshot(false);
            settings.bind(|| {
                insta::assert_snapshot!(name.as_str(), report);
            });
            Ok(())
        })
    }));
    trials
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = case_trials();
    let tests: [(&str, fn()); 12] = [
        (
            "loaded_ebpf_maps_are_never_wider",
            loaded_ebpf_maps_are_never_wider,
        ),
        ("loaded_names_are_never_wider", loaded_names_are_never_wider),
        (
            "every_lowering_passes_the_load_check",
            every_lowering_passes_the_load_check,
        ),
        (
            "cilium_multi_label_wildcard_depends_on_version",
            cilium_multi_label_wildcard_depends_on_version,
        ),
        (
            "validation_catches_tampered_artifacts",
            validation_catches_tampered_artifacts,
        ),
        (
            "nftables_validation_catches_tampered_rulesets",
            nftables_validation_catches_tampered_rulesets,
        ),
        (
            "undecidable_validation_is_e0122",
            undecidable_validation_is_e0122,
        ),
        (
            "validation_scales_to_many_agents",
            validation_scales_to_many_agents,
        ),
        (
            "schema::schemas_reject_what_they_should",
            schema::schemas_reject_what_they_should,
        ),
        ("kernel::child_entry", kernel::child_entry),
        (
            "kernel::seccomp_profiles_are_enforced_by_the_kernel",
            kernel::seccomp_profiles_are_enforced_by_the_kernel,
        ),
        (
            "kernel::nftables_rulesets_are_enforced_by_the_kernel",
            kernel::nftables_rulesets_are_enforced_by_the_kernel,
        ),
    ];
    trials.extend(tests.into_iter().map(|(name, test)| {
        Trial::test(name, move || {
            test();
            Ok(())
        })
    }));
    libtest_mimic::run(&args, trials).exit();
}

fn cilium_multi_label_wildcard_depends_on_version() {
    let dir = repo_root().join("tests/lower/cilium-wildcards");
    let (_, policy) = load_case(&dir);
    let policy = policy.unwrap();
    let old = TargetConfig::default();
    let err = egress_lower::build(&policy, &[Target::Cilium], &old, true).unwrap_err();
    assert!(err.iter().any(|d| d.code == "E0102"), "{err:?}");
    let mut new = TargetConfig::default();
    new.cilium.version = (1, 19);
    let build = egress_lower::build(&policy, &[Target::Cilium], &new, true).unwrap();
    assert!(build
        .files
        .values()
        .any(|t| t.contains("\"matchPattern\": \"**.")));
}

/// The load check never refuses what egc itself lowers: every agent of every example
/// and lower case, with and without names served, and with each workflow opened.
fn every_lowering_passes_the_load_check() {
    use egress_lower::ebpf::{check_loaded, maps};
    let root = repo_root();
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for base in ["examples", "tests/lower"] {
        for entry in std::fs::read_dir(root.join(base)).unwrap().flatten() {
            let path = entry.path();
            let has_policy = path.is_dir()
                && std::fs::read_dir(&path)
                    .unwrap()
                    .flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "egress"));
            if has_policy {
                dirs.push(path);
            }
        }
    }
    dirs.sort();
    let mut checked = 0;
    for dir in dirs {
        let (_, Some(policy)) = load_case(&dir) else {
            continue;
        };
        let mut workflows: Vec<Option<String>> = vec![None];
        workflows.extend(policy.workflows.iter().map(|w| Some(w.name.local.clone())));
        for agent in &policy.agents {
            for names in [false, true] {
                for workflow in &workflows {
                    let config = maps::LowerConfig {
                        workflow: workflow.clone(),
                        deny_unenforceable: true,
                        names,
                    };
                    if let Ok((lowered, _)) =
                        maps::lower_with(&policy, &agent.name.qualified, &config)
                    {
                        if let Err(d) = check_loaded(&policy, agent, &lowered) {
                            panic!(
                                "{}: agent {} ({config:?}) refused: {}",
                                dir.display(),
                                agent.name.local,
                                d.message
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} lowerings checked");
}

/// What `egc run` and `egc enforce apply` load is checked like what `egc build` writes:
/// the maps as lowered pass; a rule widened (with the trie recompiled to match, as the
/// loader would) is refused as E0120; opening a workflow admits that workflow's routes.
fn loaded_ebpf_maps_are_never_wider() {
    use egress_lower::ebpf::{check_loaded, maps, rules};
    let (_, policy) = load_case(&repo_root().join("tests/lower/mixed-layers"));
    let policy = policy.unwrap();
    let config = maps::LowerConfig {
        deny_unenforceable: true,
        ..Default::default()
    };
    let agent = policy.agent_by_name("reporter").unwrap();
    let (lowered, _) = maps::lower_with(&policy, "reporter", &config).unwrap();
    check_loaded(&policy, agent, &lowered).unwrap();
    let mut wider = lowered.clone();
    let rule = wider
        .rules
        .iter_mut()
        .find(|r| r.network == "10.40.0.0/16")
        .unwrap();
    rule.network = "10.40.0.0/15".to_string();
    wider.entries = maps::entry_records(&rules::compile(&wider.allow_rules().unwrap()).unwrap());
    let refused = check_loaded(&policy, agent, &wider).unwrap_err();
    assert_eq!(refused.code, "E0120", "{refused:?}");
    assert!(refused.message.contains("10.41."), "{}", refused.message);
    let mut inconsistent = lowered.clone();
    inconsistent.entries.clear();
    assert_eq!(
        check_loaded(&policy, agent, &inconsistent)
            .unwrap_err()
            .code,
        "E0111"
    );
    // The tables `egc run` applies besides the trie: no capability, syscall, Landlock
    // port or resolver beyond the policy's.
    let tampered: [(&str, Tamper); 4] = [
        ("CAP_SYS_ADMIN", |m| {
            m.linux_caps.push("CAP_SYS_ADMIN".into())
        }),
        ("ptrace", |m| m.syscalls.push("ptrace".into())),
        ("TCP ports 1-65535", |m| {
            m.landlock_tcp_ports = vec![(1, 65535)]
        }),
        ("203.0.113.53:53", |m| {
            m.resolvers.push("203.0.113.53:53".into())
        }),
    ];
    assert_tampered_maps_refused(&policy, agent, &lowered, &tampered);
}

/// A change to maps that were lowered for `agent`.
type Tamper = fn(&mut egress_lower::ebpf::maps::EbpfMaps);

/// Each tampered copy of `lowered` is refused at load as E0120, with a message that
/// names what was widened.
fn assert_tampered_maps_refused(
    policy: &egress_check::CheckedPolicy,
    agent: &egress_check::Agent,
    lowered: &egress_lower::ebpf::maps::EbpfMaps,
    tampered: &[(&str, Tamper)],
) {
    for (what, tamper) in tampered {
        let mut wider = lowered.clone();
        tamper(&mut wider);
        let refused = egress_lower::ebpf::check_loaded(policy, agent, &wider).unwrap_err();
        assert_eq!(refused.code, "E0120", "{what}: {refused:?}");
        assert!(
            refused.message.contains(what),
            "{what}: {}",
            refused.message
        );
    }
}

/// The host names the maps serve at run time (the DNS gateway and the name gate) are
/// checked too: as lowered they pass, `sni optional` included; a name the policy does not
/// allow, a port beyond the destination's, a protocol it does not name, skipping the SNI
/// check where the destination does not say so, or a name that is not a host pattern is
/// refused (E0120).
fn loaded_names_are_never_wider() {
    use egress_lower::ebpf::{check_loaded, maps};
    let text = "import std.dns\n\ndestination api {\n    host \"api.example.com\"\n    port 443\n}\n\ndestination legacy {\n    host \"*.legacy.example.org\"\n    port 8443\n    sni optional\n}\n\ndestination legacy_tls {\n    host \"*.legacy.example.org\"\n    port 443\n}\n\ncapability call {\n    connect api, legacy, legacy_tls, dns.kube_dns\n}\n\nagent bot {\n    workload namespace \"n\" labels { app = \"bot\" }\n    uses call\n}\n\nzone z {\n    owner \"security\"\n    agents bot\n    approve api, legacy, legacy_tls, dns.kube_dns\n}\n";
    let result = egress_check::check_sources(&[("main.egress", text)]);
    let policy = result.policy.expect("the case checks");
    let agent = policy.agent_by_name("bot").unwrap();
    let config = maps::LowerConfig {
        deny_unenforceable: true,
        names: true,
        ..Default::default()
    };
    let (lowered, _) = maps::lower_with(&policy, "bot", &config).unwrap();
    assert_eq!(lowered.names.len(), 3, "{:?}", lowered.names);
    assert!(lowered.names.iter().any(|n| n.sni_optional));
    check_loaded(&policy, agent, &lowered).unwrap();
    let tampered: [(&str, Tamper); 9] = [
        ("exfil.example.net", |m| {
            let mut extra = m.names[0].clone();
            extra.pattern = "exfil.example.net".into();
            m.names.push(extra);
        }),
        ("**.example.com", |m| {
            let api = m
                .names
                .iter_mut()
                .find(|n| n.pattern == "api.example.com")
                .unwrap();
            api.pattern = "**.example.com".into();
        }),
        ("api.example.com", |m| {
            let api = m
                .names
                .iter_mut()
                .find(|n| n.pattern == "api.example.com")
                .unwrap();
            api.ports = vec!["1-65535".into()];
        }),
        ("api.example.com", |m| {
            let api = m
                .names
                .iter_mut()
                .find(|n| n.pattern == "api.example.com")
                .unwrap();
            api.protocols.push(egress_check::Protocol::Udp);
        }),
        ("without SNI", |m| {
            let api = m
                .names
                .iter_mut()
                .find(|n| n.pattern == "api.example.com")
                .unwrap();
            api.sni_optional = true;
        }),
        ("api.example.com/x", |m| {
            m.names[0].pattern = "api.example.com/x".into();
        }),
        // No port: the gateway would still resolve the name.
        ("exfil.example.net` with no port", |m| {
            let mut extra = m.names[0].clone();
            extra.pattern = "exfil.example.net".into();
            extra.ports.clear();
            m.names.push(extra);
        }),
        ("with no port or protocol", |m| m.names[0].protocols.clear()),
        // Skipping SNI on port 443, which only the SNI-checked destination allows (the
        // `sni optional` one is on 8443).
        ("without SNI", |m| {
            let tls = m
                .names
                .iter_mut()
                .find(|n| n.pattern == "*.legacy.example.org" && n.ports == ["443"])
                .unwrap();
            tls.sni_optional = true;
        }),
    ];
    assert_tampered_maps_refused(&policy, agent, &lowered, &tampered);
}

/// Translation validation is not vacuous: a tampered artifact is caught, wider as E0120
/// (or E0106 when it comes through another agent's rules), narrower as E0121.
fn validation_catches_tampered_artifacts() {
    let (_, policy) = load_case(&repo_root().join("tests/lower/mixed-layers"));
    let policy = policy.unwrap();
    let config = TargetConfig::default();
    let codes = |target: Target, file: &str, from: &str, to: &str| -> Vec<&'static str> {
        let mut artifacts = egress_lower::lower(target, &policy, &config).unwrap();
        egress_lower::validate(target, &policy, &config, &artifacts).unwrap();
        let text = artifacts.files.get_mut(file).unwrap();
        assert!(text.contains(from), "{file} has no `{from}`");
        *text = text.replacen(from, to, 1);
        match egress_lower::validate(target, &policy, &config, &artifacts) {
            Ok(_) => Vec::new(),
            Err(diags) => {
                let mut codes: Vec<&'static str> = diags.iter().map(|d| d.code).collect();
                codes.sort();
                codes
            }
        }
    };
    // Kubernetes: a wider CIDR, a dropped exclusion, a narrower port range, a selector
    // that matches every pod of a namespace.
    let k8s = "agent-reporter.json";
    assert_eq!(
        codes(Target::K8s, k8s, "10.40.0.0/16", "10.40.0.0/15"),
        ["E0120"]
    );
    assert_eq!(
        codes(
            Target::K8s,
            k8s,
            "\"198.51.100.128/25\"",
            "\"198.51.100.192/26\""
        ),
        ["E0120"]
    );
    assert_eq!(
        codes(Target::K8s, k8s, "\"endPort\": 8080", "\"endPort\": 8079"),
        ["E0121"]
    );
    assert_eq!(
        codes(Target::K8s, k8s, "\"app\": \"vault\"", "\"tier\": \"any\""),
        ["E0120", "E0121"]
    );
    assert_eq!(
        codes(
            Target::K8s,
            "namespace-reports-default-deny-egress.json",
            "\"Egress\"",
            "\"Ingress\""
        ),
        Vec::<&str>::new(),
        "the agent's own policy still isolates its pods"
    );
    // eBPF maps, decoded as the loader compiles them and the program looks them up: a
    // wider network (rules and trie together), ports cut short, and a trie that is not
    // the compilation of the rules (E0111: the loader would compile something else).
    let maps = "reporter.maps.json";
    let ebpf = |edits: &[(&str, &str)]| -> Vec<&'static str> {
        let mut artifacts = egress_lower::lower(Target::Ebpf, &policy, &config).unwrap();
        egress_lower::validate(Target::Ebpf, &policy, &config, &artifacts).unwrap();
        let text = artifacts.files.get_mut(maps).unwrap();
        for (from, to) in edits {
            assert!(text.contains(from), "{maps} has no `{from}`");
            *text = text.replace(from, to);
        }
        let mut codes: Vec<&'static str> =
            match egress_lower::validate(Target::Ebpf, &policy, &config, &artifacts) {
                Ok(_) => Vec::new(),
                Err(diags) => diags.iter().map(|d| d.code).collect(),
            };
        codes.sort();
        codes
    };
    assert_eq!(
        ebpf(&[
            ("\"10.40.0.0/16\"", "\"10.40.0.0/15\""),
            ("\"key_prefix_len\": 112,", "\"key_prefix_len\": 111,")
        ]),
        ["E0120"]
    );
    assert_eq!(
        ebpf(&[
            ("\"8000-8080\"", "\"8000-8079\""),
            ("\"port_hi\": 8080", "\"port_hi\": 8079")
        ]),
        ["E0121"]
    );
    assert_eq!(
        ebpf(&[("\"key_prefix_len\": 112,", "\"key_prefix_len\": 111,")]),
        ["E0111"]
    );
    assert_eq!(
        ebpf(&[("\"workflow\": null", "\"workflow\": \"month_end\"")]),
        ["E0111"]
    );
    // Cilium: a widened CIDR and a port rule with UDP added.
    let cnp = "agent-reporter.json";
    assert_eq!(
        codes(Target::Cilium, cnp, "10.40.0.0/16", "10.0.0.0/8"),
        ["E0120"]
    );
    assert_eq!(
        codes(
            Target::Cilium,
            cnp,
            "\"port\": \"8200\",\n                \"protocol\": \"TCP\"",
            "\"port\": \"8200\",\n                \"protocol\": \"ANY\""
        ),
        ["E0120"]
    );
    // seccomp: a packet socket instead of an inet one, a default that only logs, and a
    // syscall of the baseline left out.
    let profile = "reporter.x86_64.json";
    assert_eq!(
        codes(Target::Seccomp, profile, "\"value\": 2,", "\"value\": 17,"),
        ["E0120", "E0121"]
    );
    assert_eq!(
        codes(
            Target::Seccomp,
            profile,
            "\"SCMP_ACT_ERRNO\"",
            "\"SCMP_ACT_LOG\""
        ),
        ["E0120"]
    );
    assert_eq!(codes(Target::Seccomp, profile, "\"close\",", ""), ["E0121"]);
}

fn nftables_validation_catches_tampered_rulesets() {
    let (_, policy) = load_case(&repo_root().join("tests/lower/nft-kernel"));
    let policy = policy.unwrap();
    let config = TargetConfig::default();
    let codes = |from: &str, to: &str| -> Vec<&'static str> {
        let mut artifacts = egress_lower::lower(Target::Nftables, &policy, &config).unwrap();
        egress_lower::validate(Target::Nftables, &policy, &config, &artifacts).unwrap();
        let text = artifacts.files.get_mut("egress.nft").unwrap();
        assert!(text.contains(from), "no `{from}`");
        *text = text.replacen(from, to, 1);
        match egress_lower::validate(Target::Nftables, &policy, &config, &artifacts) {
            Ok(_) => Vec::new(),
            Err(diags) => {
                let mut codes: Vec<&'static str> = diags.iter().map(|d| d.code).collect();
                codes.sort();
                codes
            }
        }
    };
    assert_eq!(
        codes(
            "10.200.1.0/29 . tcp . 8000-8001",
            "10.200.1.0/28 . tcp . 8000-8001"
        ),
        ["E0120"]
    );
    assert_eq!(
        codes(
            "fd00:200::2/128 . tcp . 8002",
            "fd00:200::2/128 . tcp . 8003"
        ),
        ["E0120", "E0121"]
    );
    assert_eq!(codes("policy drop;", "policy accept;"), ["E0111"]);
    assert_eq!(codes("meta skuid 4242 ip daddr", "ip daddr"), ["E0111"]);
    assert_eq!(
        codes("ct state established,related accept", "ct state new accept"),
        ["E0111"]
    );
}

/// A validation whose host-name question is too large to decide is E0122, never a pass:
/// an artifact that lost `*.*.….api.example.com` but kept one destination per level
/// fixing that level to `a` must be told apart from the policy by a search 18 labels
/// deep whose product automaton holds 2^18 states, past the default budget: E0122.
fn undecidable_validation_is_e0122() {
    let levels = 18;
    let mut text = String::from("import std.dns\n");
    text.push_str(&format!(
        "destination wide {{\n    host \"{}api.example.com\"\n    port 443\n}}\n",
        "*.".repeat(levels)
    ));
    let mut names = vec!["wide".to_string(), "dns.kube_dns".to_string()];
    for level in 0..levels {
        let labels: Vec<&str> = (0..levels)
            .map(|l| if l == level { "a" } else { "*" })
            .collect();
        text.push_str(&format!(
            "destination l{level} {{\n    host \"{}.api.example.com\"\n    port 443\n}}\n",
            labels.join(".")
        ));
        names.push(format!("l{level}"));
    }
    text.push_str(&format!(
        "capability call {{\n    connect {}\n}}\nagent bot {{\n    workload namespace \"jobs\" labels {{ app = \"bot\" }}\n    uses call\n}}\n",
        names.join(", ")
    ));
    let result = egress_check::check_sources(&[("wide.egress", &text)]);
    let policy = result
        .policy
        .unwrap_or_else(|| panic!("{:#?}", result.diagnostics));
    let mut config = TargetConfig::default();
    config.cilium.version = (1, 19);
    let artifacts = egress_lower::lower(Target::Cilium, &policy, &config).unwrap();
    egress_lower::validate(Target::Cilium, &policy, &config, &artifacts)
        .expect("the faithful artifact is decided within the default budget");
    let agent = policy.agents.first().unwrap();
    let mut lost = egress_sets::ConnectionSet::default();
    for dest in egress_lower::expected::unconditional_destinations(&policy, agent) {
        if dest.name.local != "wide" {
            lost.extend(&egress_lower::expected::destination_set(dest));
        }
    }
    let decoded = std::collections::BTreeMap::from([(
        agent.id,
        egress_lower::expected::Decoded {
            set: lost,
            contributors: vec![agent.name.local.clone()],
        },
    )]);
    let compare = |budget| {
        egress_lower::expected::compare_connection_sets(
            Target::Cilium,
            &policy,
            &decoded,
            &artifacts,
            budget,
            |_| true,
            &egress_lower::backend::Inexpressible::default(),
        )
        .unwrap_err()
        .iter()
        .map(|d| d.code)
        .collect::<Vec<_>>()
    };
    assert_eq!(
        compare(egress_sets::DEFAULT_BUDGET),
        ["E0122"],
        "nothing but undecided"
    );
}

/// Lowering and validation time for a generated policy, printed for the report; the
/// bound only guards against a blow-up (debug builds are ~20x slower than release).
fn validation_scales_to_many_agents() {
    let agents = 40;
    let mut text = String::from("import std.sys\n");
    for a in 0..agents {
        let mut connects = Vec::new();
        for d in 0..10 {
            text.push_str(&format!(
                "destination d{a}_{d} {{\n    cidr 10.{a}.{d}.0/24 except 10.{a}.{d}.128/26\n    cidr fd00:{a:x}:{d:x}::/48\n    port 443, {}-{}\n    protocol tcp, udp\n}}\n",
                8000 + d,
                8100 + d
            ));
            connects.push(format!("d{a}_{d}"));
        }
        text.push_str(&format!(
            "capability c{a} {{\n    connect {}\n    syscalls sys.process_base, sys.network_client\n}}\n",
            connects.join(", ")
        ));
        text.push_str(&format!(
            "agent a{a} {{\n    workload namespace \"ns{}\" labels {{ app = \"a{a}\" }}\n    cgroup \"/agents/a{a}\"\n    uid {}\n    uses c{a}\n}}\n",
            a % 4,
            10_000 + a
        ));
    }
    let result = egress_check::check_sources(&[("bench.egress", &text)]);
    let policy = result.policy.expect("the generated policy checks");
    let config = TargetConfig::default();
    for target in Target::ALL {
        let started = std::time::Instant::now();
        let artifacts = egress_lower::lower(target, &policy, &config).unwrap();
        let lowered = started.elapsed();
        let report = egress_lower::validate(target, &policy, &config, &artifacts).unwrap();
        let validated = started.elapsed() - lowered;
        println!(
            "{target}: {agents} agents x 10 destinations: lowered in {lowered:?}, validated {} artifacts in {validated:?}",
            report.agents_checked
        );
        assert!(
            validated.as_secs() < 60,
            "{target} validation took {validated:?}"
        );
    }
}
