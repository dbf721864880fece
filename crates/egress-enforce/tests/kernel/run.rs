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
    };
    let report = with_stdout(file, || run(config, &mut |_| {})).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    (
        parse_probe(&text),
        report.denials,
        report.exit_code,
        report.landlock_ports,
    )
}

fn tempfile_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("egc-run-test-{}", unique("out")))
}

/// Runs `f` with the process's stdout redirected to `file` (the child inherits it).
fn with_stdout<T>(file: std::fs::File, f: impl FnOnce() -> T) -> T {
    use std::os::fd::AsRawFd;
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    // SAFETY: dup/dup2 on valid descriptors; stdout is restored before returning.
    unsafe {
        let saved = libc::dup(1);
        libc::dup2(file.as_raw_fd(), 1);
        let out = f();
        libc::dup2(saved, 1);
        libc::close(saved);
        out
    }
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
