//! `egc run`'s launcher on the real kernel: a confined child, policy from a real check.

use std::ffi::OsString;

use egress_enforce::maps::{lower_with, LowerConfig};
use egress_enforce::run::{run, LandlockMode, RunConfig, RunUser};

use crate::common::*;

fn policy(allowed_tcp: u16, allowed_udp: u16, allowed_tcp6: u16) -> String {
    format!(
        r#"
import std.sys
destination local_api {{
    cidr 127.0.0.8/32
    port {allowed_tcp}
}}
destination local_api6 {{
    cidr ::1/128
    port {allowed_tcp6}
}}
destination local_dns {{
    cidr 127.0.0.8/32
    port {allowed_udp}
    protocol udp
}}
// The probe binds its UDP socket explicitly (std's UdpSocket always does).
syscalls udp_bind {{ bind }}
capability client {{
    connect local_api, local_api6, local_dns
    syscalls sys.process_base, sys.network_client, udp_bind
}}
agent probe_bot {{
    uses client
}}
"#
    )
}

fn run_probe(
    text: &str,
    landlock: LandlockMode,
    user: RunUser,
    targets: &[String],
) -> (
    std::collections::BTreeMap<String, String>,
    Vec<egress_enforce::loader::Denial>,
    Option<i32>,
    Option<usize>,
) {
    let result = egress_check::check_sources(&[("policy.egress", text)]);
    let policy = result
        .policy
        .unwrap_or_else(|| panic!("{:#?}", result.diagnostics));
    let (maps, _) = lower_with(&policy, "probe_bot", &LowerConfig::default()).unwrap();
    let agent = policy.agent_by_name("probe_bot").unwrap();
    let filter = egress_enforce::seccomp::for_agent(&policy, agent).unwrap();
    let out = tempfile_path();
    // Run the probe directly (no shell: the seccomp profile is the agent's, not a shell's)
    // and collect its stdout through a file descriptor it inherits.
    let file = std::fs::File::create(&out).unwrap();
    let config = RunConfig {
        maps,
        policy: None,
        seccomp: Some(filter.program),
        landlock,
        landlock_max_abi: None,
        extra_tcp_ports: Vec::new(),
        writable: Vec::new(),
        write_work_dir: false,
        unix_sockets: Vec::new(),
        program: probe_bin().into(),
        args: targets.iter().map(OsString::from).collect(),
        user,
        executables: Vec::new(),
        before_start: None,
        names: None,
        audit: false,
    };
    let report = with_stdout(file, || run(config, &mut |_, _| {})).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    (
        parse_probe(&text),
        report.denials,
        report.exit_code,
        report.landlock_ports,
    )
}

#[test]
fn run_confines_a_child_like_the_policy_says() {
    let mut l = listeners();
    let api = l.tcp("127.0.0.8:0");
    let same_port_other_addr = l.tcp(&format!("127.0.0.9:{}", api.port()));
    let other_port = l.tcp("127.0.0.8:0");
    let dns = l.udp("127.0.0.8:0");
    let dns_other_addr = l.udp(&format!("127.0.0.10:{}", dns.port()));
    let api6 = l.tcp("[::1]:0");
    let api6_other = l.tcp("[::1]:0");
    let text = policy(api.port(), dns.port(), api6.port());
    let targets = vec![
        target("tcp", api),
        target("tcp", mapped(api)),
        target("tcp", same_port_other_addr),
        target("tcp", other_port),
        target("udp", dns),
        target("udp", dns_other_addr),
        target("tcp", api6),
        target("tcp", api6_other),
        target("udp", api6),
        "self:CapEff".to_string(),
        "self:CapBnd".to_string(),
        "self:NoNewPrivs".to_string(),
        "self:Seccomp".to_string(),
        // Leaving the cgroup: the child's cgroup namespace is rooted at its cgroup.
        format!(
            "write:{}",
            egress_enforce::cgroup::cgroup2_root()
                .unwrap()
                .join("cgroup.procs")
                .display()
        ),
    ];

    // With Landlock (this kernel has ABI >= 4): the port check answers first (EACCES).
    assert!(
        egress_enforce::landlock::abi_version() >= 4,
        "kernel lacks Landlock network rules"
    );
    let (results, denials, code, ports) =
        run_probe(&text, LandlockMode::Require, RunUser::Root, &targets);
    expect(
        &results,
        &[
            (target("tcp", api), "ok"),
            (target("tcp", mapped(api)), "ok"),
            (target("tcp", same_port_other_addr), "EPERM"),
            (target("tcp", other_port), "EACCES"),
            (target("udp", dns), "ok"),
            (target("udp", dns_other_addr), "EPERM"),
            (target("tcp", api6), "ok"),
            (target("tcp", api6_other), "EACCES"),
            // UDP to an IPv6 TCP-only destination: the program denies it.
            (target("udp", api6), "EPERM"),
            ("self:CapEff".to_string(), "0000000000000000"),
            ("self:CapBnd".to_string(), "0000000000000000"),
            ("self:NoNewPrivs".to_string(), "1"),
            ("self:Seccomp".to_string(), "2"),
        ],
    );
    // A child running as uid 0 owns the cgroup files, so without Landlock it could move
    // itself out of its cgroup (the cgroup namespace only stops that when cgroup2 is
    // mounted with `nsdelegate`). Landlock's write rules keep it out of cgroupfs.
    let escape = targets.last().unwrap();
    assert_eq!(
        results.get(escape).map(String::as_str),
        Some("EACCES"),
        "{results:#?}"
    );
    assert_eq!(code, Some(0));
    assert_eq!(ports, Some(2));
    assert!(denials
        .iter()
        .any(|d| d.destination == "127.0.0.9" && d.port == api.port() && d.protocol == "tcp"));
    assert!(denials
        .iter()
        .any(|d| d.destination == "127.0.0.10" && d.protocol == "udp"));

    // Without Landlock (allowed only for a dedicated user) the eBPF program alone
    // answers: EPERM.
    let (results, _, _, ports) = run_probe(&text, LandlockMode::Off, RunUser::Dynamic, &targets);
    assert_eq!(ports, None);
    expect(
        &results,
        &[
            (target("tcp", api), "ok"),
            (target("tcp", other_port), "EPERM"),
            (target("tcp", same_port_other_addr), "EPERM"),
            (target("tcp", api6_other), "EPERM"),
        ],
    );
}

#[test]
fn run_as_another_user_keeps_confinement() {
    let mut l = listeners();
    let api = l.tcp("127.0.0.14:0");
    let dns = l.udp("127.0.0.14:0");
    let api6 = l.tcp("[::1]:0");
    let text = policy(api.port(), dns.port(), api6.port()).replace("127.0.0.8/32", "127.0.0.14/32");
    let other = l.tcp(&format!("127.0.0.15:{}", api.port()));
    let escape = format!(
        "write:{}",
        egress_enforce::cgroup::cgroup2_root()
            .unwrap()
            .join("cgroup.procs")
            .display()
    );
    let targets = vec![
        target("tcp", api),
        target("tcp", other),
        escape.clone(),
        "self:Uid".to_string(),
        "self:CapEff".to_string(),
        "self:CapAmb".to_string(),
    ];
    let (results, _, code, _) = run_probe(&text, LandlockMode::Auto, RunUser::Uid(65534), &targets);
    assert_eq!(code, Some(0));
    expect(
        &results,
        &[
            (target("tcp", api), "ok"),
            (target("tcp", other), "EPERM"),
            ("self:CapEff".to_string(), "0000000000000000"),
            ("self:CapAmb".to_string(), "0000000000000000"),
            (escape.clone(), "EACCES"),
        ],
    );
    assert!(results["self:Uid"].starts_with("65534"), "{results:#?}");
}

/// Issue 9, item 4: under `egc run`, an exception token applied while the command runs
/// opens its destination (Landlock's TCP ports include the exception's from the start),
/// and nothing else.
#[test]
fn an_exception_applied_during_a_run_opens_its_destination() {
    use egress_enforce::exception::{self, ApplyConfig, AuditLog, GrantRequest, Ledger};
    let (secret, public) = exception::keygen().unwrap();
    let key = exception::parse_secret_key(&secret).unwrap();
    let mut l = listeners();
    let base = l.tcp("127.0.0.41:0");
    let granted = l.tcp("127.0.0.42:0");
    let not_granted = l.tcp(&format!("127.0.0.43:{}", granted.port()));
    let text = format!(
        r#"
import std.sys
authority dpo {{
    key "{public}"
    max_ttl 1h
}}
destination base_api {{
    cidr 127.0.0.41/32
    port {}
}}
destination erasure_service {{
    cidr 127.0.0.0/8
    port {}
}}
capability client {{
    connect base_api
    syscalls sys.process_base, sys.network_client
}}
agent exception_bot {{
    uses client
}}
exception gdpr_erasure {{
    agents exception_bot
    to erasure_service
    approver dpo
    max_ttl 15m
    audit base_api
    legal_basis "GDPR Art. 17"
}}
"#,
        base.port(),
        granted.port()
    );
    let checked = egress_check::check_sources(&[("policy.egress", &text)]);
    let policy = checked
        .policy
        .unwrap_or_else(|| panic!("{:#?}", checked.diagnostics));
    let (maps, _) = lower_with(&policy, "exception_bot", &LowerConfig::default()).unwrap();
    let agent = policy.agent_by_name("exception_bot").unwrap();
    let extra = egress_enforce::run::exception_tcp_ports(&policy, agent);
    assert_eq!(extra, vec![(granted.port(), granted.port())]);
    let out = tempfile_path();
    let file = std::fs::File::create(&out).unwrap();
    // The command waits for the token, then tries the granted address and a neighbour on
    // the same port (in the exception's pattern, but not in the token).
    let script = format!(
        "sleep 2; for a in {} {}; do if (echo hi > /dev/tcp/$a/{}) 2>/dev/null; then echo $a:ok; else echo $a:refused; fi; done",
        granted.ip(),
        not_granted.ip(),
        granted.port()
    );
    let config = RunConfig {
        maps,
        policy: None,
        seccomp: None,
        landlock: LandlockMode::Require,
        landlock_max_abi: None,
        extra_tcp_ports: extra,
        writable: Vec::new(),
        write_work_dir: false,
        unix_sockets: Vec::new(),
        program: "bash".into(),
        args: vec!["-c".into(), script.into()],
        user: RunUser::Uid(65534),
        executables: Vec::new(),
        before_start: None,
        names: None,
        audit: false,
    };
    let runner = std::thread::spawn(move || with_stdout(file, || run(config, &mut |_, _| {})));
    let attachment = wait_for_run_attachment("exception_bot");
    let (token, _) = exception::grant(
        &policy,
        &GrantRequest {
            exception: "gdpr_erasure",
            key: &key,
            ttl_secs: 60,
            to: Some(exception::parse_target(&granted.to_string()).unwrap()),
            agent: None,
            now: egress_enforce::state::now_unix(),
        },
    )
    .unwrap();
    let scratch = std::env::temp_dir().join(unique("run-exc"));
    let apply_config = ApplyConfig {
        audit: AuditLog {
            path: scratch.join("audit.jsonl"),
        },
        ledger: Ledger {
            dir: scratch.join("ledger"),
        },
        attachment: Some(attachment),
    };
    let installed = exception::apply(&policy, &token, &apply_config).unwrap();
    let report = runner.join().unwrap().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let _ = exception::wait_and_expire(&installed, &apply_config, &stop);
    let output = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        output.contains(&format!("{}:ok", granted.ip())),
        "the granted destination opened under egc run: {output}"
    );
    assert!(
        output.contains(&format!("{}:refused", not_granted.ip())),
        "a neighbour the token does not name stays shut: {output}"
    );
    assert_eq!(
        report.landlock.ports,
        Some(2),
        "base port and exception port"
    );
}
