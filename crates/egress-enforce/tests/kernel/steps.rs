//! Workflow steps granted by the orchestrator, in a real cgroup: a step opens exactly its
//! destinations, ending it closes them (an established connection stops), and
//! out-of-order, replayed, wrong-agent and forged tokens are refused, with audit lines.

use std::io::Read;
use std::time::Duration;

use egress_enforce::control::{self, ApplyRequest, Kind};
use egress_enforce::exception::{self, ApplyConfig, AuditLog, ExceptionError, Ledger};
use egress_enforce::maps::{lower_with, LowerConfig};
use egress_enforce::state::now_unix;
use egress_enforce::steps::{self, StepGrant};

use crate::common::*;

#[test]
fn a_step_opens_exactly_its_destinations_until_it_ends() {
    let (secret, public) = exception::keygen().unwrap();
    let key = exception::parse_secret_key(&secret).unwrap();
    let (other_secret, _) = exception::keygen().unwrap();
    let other_key = exception::parse_secret_key(&other_secret).unwrap();
    let mut l = listeners();
    let first = std::net::TcpListener::bind("127.0.0.51:0").unwrap();
    let first_addr = first.local_addr().unwrap();
    let second = l.tcp("127.0.0.52:0");
    let text = format!(
        r#"
import std.sys
authority ci {{
    key "{public}"
    max_ttl 1h
}}
destination fetch_source {{
    cidr 127.0.0.51/32
    port {}
}}
destination publish {{
    cidr 127.0.0.52/32
    port {}
}}
capability base {{
    syscalls sys.process_base, sys.network_client
}}
capability fetch {{
    connect fetch_source
    workflows release
}}
capability upload {{
    connect publish
    workflows release
}}
agent builder {{
    uses base, fetch, upload
}}
agent bystander {{
    uses base
}}
workflow release {{
    orchestrator ci
    ordered
    step builder uses fetch
    step builder uses upload
}}
"#,
        first_addr.port(),
        second.port()
    );
    let checked = egress_check::check_sources(&[("policy.egress", &text)]);
    let policy = checked
        .policy
        .unwrap_or_else(|| panic!("{:#?}", checked.diagnostics));
    let cg = TestCgroup::new(&unique("steps"));
    let name = unique("steps");
    let (maps, _) = lower_with(&policy, "builder", &LowerConfig::default()).unwrap();
    control::apply(&ApplyRequest {
        name: &name,
        maps: &maps,
        cgroup: &cg.path,
        policy: None,
        kind: Kind::Enforce,
    })
    .unwrap();
    let scratch = std::env::temp_dir().join(unique("steps-audit"));
    let config = ApplyConfig {
        audit: AuditLog {
            path: scratch.join("audit.jsonl"),
        },
        ledger: Ledger {
            dir: scratch.join("ledger"),
        },
        attachment: Some(name.clone()),
    };
    let (t1, t2) = (target("tcp", first_addr), target("tcp", second));
    expect(
        &probe(Some(&cg), &[t1.clone(), t2.clone()]),
        &[(t1.clone(), "EPERM"), (t2.clone(), "EPERM")],
    );
    let grant = |step, agent: &str, key| {
        steps::grant(
            &policy,
            &StepGrant {
                workflow: "release",
                step,
                agent,
                key,
                ttl_secs: 60,
                run: "run-7",
                now: now_unix(),
            },
        )
    };
    // Grant-time refusals: another agent, another key.
    assert!(matches!(
        grant(1, "bystander", &key),
        Err(ExceptionError::Refused(_))
    ));
    assert!(matches!(
        grant(1, "builder", &other_key),
        Err(ExceptionError::Refused(_))
    ));
    let (token1, _) = grant(1, "builder", &key).unwrap();
    let (token2, _) = grant(2, "builder", &key).unwrap();
    // Out of order: step 2 before step 1.
    assert!(
        matches!(steps::apply(&policy, &token2, &config, now_unix()), Err(ExceptionError::Refused(m)) if m.contains("ordered")),
    );
    // Forged: step 1's claims re-signed with another key.
    let (payload, _) = token1.split_once('.').unwrap();
    use base64::Engine;
    use ed25519_dalek::Signer;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let forged = format!(
        "{payload}.{}",
        engine.encode(other_key.sign(&engine.decode(payload).unwrap()).to_bytes())
    );
    assert!(
        matches!(steps::apply(&policy, &forged, &config, now_unix()), Err(ExceptionError::Refused(m)) if m.contains("bad signature")),
    );
    // Step 1 opens exactly its destination.
    let installed = steps::apply(&policy, &token1, &config, now_unix()).unwrap();
    expect(
        &probe(Some(&cg), &[t1.clone(), t2.clone()]),
        &[(t1.clone(), "ok"), (t2.clone(), "EPERM")],
    );
    assert!(
        matches!(steps::apply(&policy, &token1, &config, now_unix()), Err(ExceptionError::Refused(m)) if m.contains("already")),
        "a step applies once per run"
    );
    // A connection opened during the step, still sending after it ends.
    let script = format!(
        "exec 3<>/dev/tcp/{}/{} || exit 3; echo before >&3; sleep 2; echo after >&3; sleep 1; exit 0",
        first_addr.ip(),
        first_addr.port()
    );
    let mut command = std::process::Command::new("bash");
    command.args(["-c", &script]);
    egress_enforce::sandbox::Confinement {
        cgroup: Some(egress_enforce::sandbox::CgroupJoin::open(&cg.path).unwrap()),
        ..Default::default()
    }
    .apply_to(&mut command);
    let mut child = command.spawn().unwrap();
    let (mut stream, _) = loop {
        // Skip the probe's earlier connection; take the script's.
        let (s, a) = first.accept().unwrap();
        let mut s = s;
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(n) if n > 0 && buf[..n].starts_with(b"before") => break (s, a),
            _ => continue,
        }
    };
    assert_eq!(steps::end(&token1, &config).unwrap(), 2);
    let _ = child.wait();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(
        !String::from_utf8_lossy(&rest).contains("after"),
        "data crossed after the step ended: {:?}",
        String::from_utf8_lossy(&rest)
    );
    expect(
        &probe(Some(&cg), std::slice::from_ref(&t1)),
        &[(t1.clone(), "EPERM")],
    );
    drop(installed);
    // Now step 2, in order.
    let _installed2 = steps::apply(&policy, &token2, &config, now_unix()).unwrap();
    expect(
        &probe(Some(&cg), &[t1.clone(), t2.clone()]),
        &[(t1.clone(), "EPERM"), (t2.clone(), "ok")],
    );
    let events: Vec<String> = config
        .audit
        .read()
        .iter()
        .map(|r| r["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        events,
        ["refuse", "refuse", "use", "refuse", "end", "use"],
        "{:#?}",
        config.audit.read()
    );
    let _ = control::detach(&name);
    let _ = std::fs::remove_dir_all(&scratch);
}
