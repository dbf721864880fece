//! Host names at run time on the real kernel: an exception token for a host name opens
//! that name in a running `egc run`'s DNS gateway for the token's lifetime (not resolved
//! once at apply time), its connections pass the name gate, and it closes at expiry.
//! Loopback only: the test's resolver and server listen on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};

use egress_enforce::maps::{lower_with, LowerConfig};
use egress_enforce::run::{run, LandlockMode, NamesConfig, RunConfig, RunUser};

use crate::common::*;

/// An HTTP server on 127.0.0.1 answering `200 <host>` with the request's Host.
fn server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let host = text
                .lines()
                .find_map(|l| l.strip_prefix("Host: "))
                .unwrap_or("")
                .to_string();
            let _ = stream.write_all(format!("HTTP/1.1 200 {host}\r\n\r\n").as_bytes());
        }
    });
    addr
}

#[test]
fn a_host_exception_opens_its_name_in_the_gateway_until_it_expires() {
    use egress_enforce::exception::{self, ApplyConfig, AuditLog, GrantRequest, Ledger};
    let (secret, public) = exception::keygen().unwrap();
    let key = exception::parse_secret_key(&secret).unwrap();
    let resolver = egress_gateway::testing::TestResolver::loopback(60).unwrap();
    let upstream = resolver.addr;
    let web = server();
    let port = web.port();
    let text = format!(
        r#"
import std.sys
authority dpo {{
    key "{public}"
    max_ttl 1h
}}
destination base_api {{
    host "base.corp.test"
    port {port}
}}
destination erasure_portal {{
    host "*.portal.test"
    port {port}
}}
capability client {{
    connect base_api
    syscalls sys.process_base, sys.network_client
}}
agent names_bot {{
    uses client
}}
exception gdpr_erasure {{
    agents names_bot
    to erasure_portal
    approver dpo
    max_ttl 15m
    audit base_api
    legal_basis "GDPR Art. 17"
}}
"#
    );
    let checked = egress_check::check_sources(&[("policy.egress", &text)]);
    let policy = checked
        .policy
        .unwrap_or_else(|| panic!("{:#?}", checked.diagnostics));
    let (maps, _) = lower_with(
        &policy,
        "names_bot",
        &LowerConfig {
            names: true,
            ..LowerConfig::default()
        },
    )
    .unwrap();
    assert_eq!(
        maps.names.len(),
        1,
        "the base host destination is a name rule"
    );
    let agent = policy.agent_by_name("names_bot").unwrap();
    let extra = egress_enforce::run::exception_tcp_ports(&policy, agent);
    let out = tempfile_path();
    let file = std::fs::File::create(&out).unwrap();
    // Before the token (t=0), with it (t≈3 s), after it expired (t≈8 s); the token lives
    // 4 s from t≈1.5 s. Each attempt resolves the name afresh (bash has no DNS cache).
    let attempt = |label: &str| {
        format!(
            "if exec 3<>/dev/tcp/dpa.portal.test/{port}; then printf 'GET / HTTP/1.1\\r\\nHost: dpa.portal.test\\r\\n\\r\\n' >&3; read -t 5 line <&3; echo \"{label}:$line\"; exec 3<&-; else echo {label}:refused; fi"
        )
    };
    let script = format!(
        "{} 2>/dev/null; sleep 3; {} 2>/dev/null; sleep 5; {} 2>/dev/null; exec 3<>/dev/tcp/other.portal.test/{port} 2>/dev/null && echo other:open || echo other:refused",
        attempt("before"),
        attempt("during"),
        attempt("after")
    );
    let mut names = NamesConfig::new(upstream);
    names.ttl_min = std::time::Duration::from_secs(1);
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
        names: Some(names),
        audit: false,
    };
    let runner = std::thread::spawn(move || with_stdout(file, || run(config, &mut |_, _| {})));
    let attachment = wait_for_run_attachment("names_bot");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (token, _) = exception::grant(
        &policy,
        &GrantRequest {
            exception: "gdpr_erasure",
            key: &key,
            ttl_secs: 4,
            to: Some(exception::parse_target(&format!("dpa.portal.test:{port}")).unwrap()),
            agent: None,
            now: egress_enforce::state::now_unix(),
        },
    )
    .unwrap();
    let scratch = std::env::temp_dir().join(unique("run-names-exc"));
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
    // The name, not an address resolved now.
    assert!(installed.rules.is_empty(), "{:?}", installed.rules);
    assert_eq!(installed.names.len(), 1, "{:?}", installed.names);
    assert_eq!(installed.names[0].pattern, "dpa.portal.test");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let _ = exception::wait_and_expire(&installed, &apply_config, &stop);
    let report = runner.join().unwrap().unwrap();
    let output = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(output.contains("before:refused"), "{output}");
    assert!(
        output.contains("during:HTTP/1.1 200 dpa.portal.test"),
        "the exception's name opened through the gate: {output}"
    );
    assert!(output.contains("after:refused"), "{output}");
    assert!(
        output.contains("other:refused"),
        "another name of the exception's pattern, not in the token: {output}"
    );
    assert!(
        !resolver.saw("other.portal.test"),
        "a name outside the token reached the resolver: {:?}",
        resolver.names()
    );
    assert!(
        report
            .events
            .iter()
            .any(|e| e.reason == "name-not-allowed" && e.name.as_deref() == Some("dpa.portal.test")),
        "the refused lookups are events: {:?}",
        report.events
    );
}
