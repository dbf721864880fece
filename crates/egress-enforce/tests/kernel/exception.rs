//! Run-time exceptions on the real kernel: a signed token opens exactly its destination,
//! for its lifetime and use limit; forged, tampered, expired, replayed and out-of-pattern
//! tokens are refused; every step is in the audit log.

use std::thread::sleep;
use std::time::Duration;

use ed25519_dalek::Signer;
use egress_enforce::control::{self, ApplyRequest, Kind};
use egress_enforce::exception::{
    self, parse_secret_key, parse_target, ApplyConfig, AuditLog, ExceptionError, GrantRequest,
    Ledger,
};
use egress_enforce::maps::lower;
use egress_enforce::state::now_unix;

use crate::common::*;

fn policy_text(public_key: &str, base_port: u16, exception_port: u16) -> String {
    format!(
        r#"
import std.sys
authority dpo {{
    key "{public_key}"
    max_ttl 1h
}}
destination base_api {{
    cidr 127.0.0.11/32
    port {base_port}
}}
destination erasure_service {{
    cidr 127.0.0.0/8
    port {exception_port}
}}
capability client {{
    connect base_api
    syscalls sys.process_base, sys.network_client
}}
agent privacy_bot {{
    uses client
}}
exception gdpr_erasure {{
    agents privacy_bot
    to erasure_service
    approver dpo
    max_ttl 15m
    max_uses 2
    audit base_api
    legal_basis "GDPR Art. 17"
}}
"#
    )
}

#[test]
fn a_granted_exception_opens_exactly_its_destination_until_expiry() {
    let (secret, public) = exception::keygen().unwrap();
    let key = parse_secret_key(&secret).unwrap();
    let (other_secret, _) = exception::keygen().unwrap();
    let other_key = parse_secret_key(&other_secret).unwrap();

    let mut l = listeners();
    let base = l.tcp("127.0.0.11:0");
    let exc_a = l.tcp("127.0.0.12:0");
    let exc_b = l.tcp(&format!("127.0.0.13:{}", exc_a.port()));
    let text = policy_text(&public, base.port(), exc_a.port());
    let checked = egress_check::check_sources(&[("policy.egress", &text)]);
    let policy = checked
        .policy
        .unwrap_or_else(|| panic!("{:#?}", checked.diagnostics));

    let cg = TestCgroup::new(&unique("exc"));
    let name = unique("exc");
    let maps = lower(&policy, "privacy_bot").unwrap();
    control::apply(&ApplyRequest {
        name: &name,
        maps: &maps,
        cgroup: &cg.path,
        policy: None,
        kind: Kind::Enforce,
    })
    .unwrap();
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = control::detach(&self.0);
        }
    }
    let _detach = Detach(name.clone());

    let scratch = std::env::temp_dir().join(unique("exc-audit"));
    let config = ApplyConfig {
        audit: AuditLog {
            path: scratch.join("audit.jsonl"),
        },
        ledger: Ledger {
            dir: scratch.join("ledger"),
        },
        attachment: None,
    };
    let (a, b) = (target("tcp", exc_a), target("tcp", exc_b));
    let a_mapped = target("tcp", mapped(exc_a));
    let base_t = target("tcp", base);
    expect(
        &probe(Some(&cg), &[base_t.clone(), a.clone(), b.clone()]),
        &[
            (base_t.clone(), "ok"),
            (a.clone(), "EPERM"),
            (b.clone(), "EPERM"),
        ],
    );

    // Grant checks: wrong key, ttl over max, destination out of pattern.
    let grant = |key, ttl, to: &str| {
        exception::grant(
            &policy,
            &GrantRequest {
                exception: "gdpr_erasure",
                key,
                ttl_secs: ttl,
                to: Some(parse_target(to).unwrap()),
                agent: None,
                now: now_unix(),
            },
        )
    };
    assert!(matches!(
        grant(&other_key, 60, &exc_a.to_string()),
        Err(ExceptionError::Refused(_))
    ));
    assert!(matches!(
        grant(&key, 16 * 60, &exc_a.to_string()),
        Err(ExceptionError::Refused(_))
    ));
    assert!(matches!(
        grant(&key, 60, &base.to_string()),
        Err(ExceptionError::Refused(_))
    ));

    // Token A: 127.0.0.12 only, two uses.
    let (token_a, claims_a) = grant(&key, 60, &exc_a.to_string()).unwrap();
    exception::audit_grant(&config.audit, &claims_a, &policy).unwrap();
    let installed_a = exception::apply(&policy, &token_a, &config).unwrap();
    assert_eq!(installed_a.attachment, name);
    // Exactly its destination: 127.0.0.12 opens (twice: the use limit), 127.0.0.13 stays shut.
    expect(
        &probe(
            Some(&cg),
            &[a.clone(), a_mapped.clone(), b.clone(), base_t.clone()],
        ),
        &[
            (a.clone(), "ok"),
            (a_mapped.clone(), "ok"),
            (b.clone(), "EPERM"),
            (base_t.clone(), "ok"),
        ],
    );
    // Third connection: beyond max_uses.
    expect(
        &probe(Some(&cg), std::slice::from_ref(&a)),
        &[(a.clone(), "EPERM")],
    );
    let counters = egress_enforce::loader::open(&name).unwrap().counters();
    assert_eq!(counters["allowed_via_exception"], 2, "{counters:?}");
    assert_eq!(counters["denied_exception_exhausted"], 1, "{counters:?}");
    // Replay while active, then after removal: refused.
    assert!(
        matches!(exception::apply(&policy, &token_a, &config), Err(ExceptionError::Refused(m)) if m.contains("already active"))
    );
    let used = exception::remove(&installed_a, &config, "revoke").unwrap();
    assert_eq!(used, 2);
    assert!(
        matches!(exception::apply(&policy, &token_a, &config), Err(ExceptionError::Refused(m)) if m.contains("use limit"))
    );

    // Token B: 127.0.0.13, 4 seconds (at least 3 s, since claims count whole seconds). Opens, then the kernel closes it at expiry.
    let (token_b, claims_b) = grant(&key, 4, &exc_b.to_string()).unwrap();
    exception::audit_grant(&config.audit, &claims_b, &policy).unwrap();
    let installed_b = exception::apply(&policy, &token_b, &config).unwrap();
    expect(
        &probe(Some(&cg), &[b.clone(), a.clone()]),
        &[(b.clone(), "ok"), (a.clone(), "EPERM")],
    );
    while now_unix() < claims_b.expires_at {
        sleep(Duration::from_millis(100));
    }
    sleep(Duration::from_millis(200));
    // Expired in the kernel even before user space removes the entry.
    expect(
        &probe(Some(&cg), std::slice::from_ref(&b)),
        &[(b.clone(), "EPERM")],
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    assert_eq!(
        exception::wait_and_expire(&installed_b, &config, &stop).unwrap(),
        1
    );
    assert!(egress_enforce::state::load(&name)
        .unwrap()
        .exceptions
        .is_empty());
    let trie_entries = egress_enforce::loader::open(&name).unwrap().rule_entries();
    assert_eq!(trie_entries, 1, "only the base rule remains");
    assert!(
        matches!(exception::apply(&policy, &token_b, &config), Err(ExceptionError::Refused(m)) if m.contains("expired"))
    );

    // Tampered: change the claims (a different destination) but keep the signature.
    let (token_c, _) = grant(&key, 60, &exc_a.to_string()).unwrap();
    let (payload, signature) = token_c.split_once('.').unwrap();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims_text = String::from_utf8(engine.decode(payload).unwrap()).unwrap();
    let tampered_claims = claims_text.replace("127.0.0.12", "127.0.0.13");
    assert_ne!(tampered_claims, claims_text);
    let tampered = format!("{}.{signature}", engine.encode(tampered_claims.as_bytes()));
    assert!(
        matches!(exception::apply(&policy, &tampered, &config), Err(ExceptionError::Refused(m)) if m.contains("bad signature"))
    );
    // Forged: well-formed, signed by a key that is not the approver's.
    let forged_sig = other_key.sign(tampered_claims.as_bytes());
    let forged = format!(
        "{}.{}",
        engine.encode(tampered_claims.as_bytes()),
        engine.encode(forged_sig.to_bytes())
    );
    assert!(
        matches!(exception::apply(&policy, &forged, &config), Err(ExceptionError::Refused(m)) if m.contains("bad signature"))
    );
    // Out of pattern yet signed by the approver (grant refuses to make one; build it by hand).
    let out_of_pattern = claims_text
        .replace(&format!(":{}", exc_a.port()), &format!(":{}", base.port()))
        .replace(
            &format!("\"port\":{}", exc_a.port()),
            &format!("\"port\":{}", base.port()),
        );
    assert_ne!(out_of_pattern, claims_text);
    let sig = key.sign(out_of_pattern.as_bytes());
    let oop = format!(
        "{}.{}",
        engine.encode(out_of_pattern.as_bytes()),
        engine.encode(sig.to_bytes())
    );
    assert!(
        matches!(exception::apply(&policy, &oop, &config), Err(ExceptionError::Refused(m)) if m.contains("outside"))
    );
    expect(
        &probe(Some(&cg), &[b.clone(), a.clone()]),
        &[(b.clone(), "EPERM"), (a.clone(), "EPERM")],
    );

    // The audit log holds every step, one JSON object per line.
    let events: Vec<String> = config
        .audit
        .read()
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        events,
        [
            "grant", "use", "refuse", "revoke", "refuse", "grant", "use", "expire", "refuse",
            "refuse", "refuse", "refuse"
        ],
        "{:#?}",
        config.audit.read()
    );
    let expire = config
        .audit
        .read()
        .into_iter()
        .find(|r| r["event"] == "expire")
        .unwrap();
    assert_eq!(expire["connections"], 1);
    assert_eq!(expire["exception"], "policy.gdpr_erasure");
    let _ = std::fs::remove_dir_all(&scratch);
}

trait At {
    fn at(&self, attachment: &str) -> ApplyConfig;
}

impl At for ApplyConfig {
    /// The same audit log and ledger, installing into `attachment` (other tests attach
    /// the same agent in parallel).
    fn at(&self, attachment: &str) -> ApplyConfig {
        ApplyConfig {
            attachment: Some(attachment.to_string()),
            ..self.clone()
        }
    }
}

/// A listener that records what each accepted connection sends, with the instant.
fn recording_listener(
    addr: &str,
) -> (
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<(std::time::Instant, String)>,
) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind(addr).unwrap();
    let local = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let _ = tx.send((std::time::Instant::now(), text));
                }
            });
        }
    });
    (local, rx)
}

fn attach_agent(policy: &egress_check::CheckedPolicy, cg: &TestCgroup, name: &str) {
    let maps = lower(policy, "privacy_bot").unwrap();
    control::apply(&ApplyRequest {
        name,
        maps: &maps,
        cgroup: &cg.path,
        policy: None,
        kind: Kind::Enforce,
    })
    .unwrap();
}

/// Issue 9, item 4: a connection opened during an exception stops carrying data when the
/// exception expires; `max_uses` holds across attachments (successive `egc run`s) and
/// across an applying process that died; an unreadable ledger entry refuses the token.
#[test]
fn exceptions_end_their_connections_and_count_uses_durably() {
    let (secret, public) = exception::keygen().unwrap();
    let key = parse_secret_key(&secret).unwrap();
    let mut l = listeners();
    let base = l.tcp("127.0.0.21:0");
    let (exc, received) = recording_listener("127.0.0.22:0");
    let text = policy_text(&public, base.port(), exc.port());
    let checked = egress_check::check_sources(&[("policy.egress", &text)]);
    let policy = checked
        .policy
        .unwrap_or_else(|| panic!("{:#?}", checked.diagnostics));
    let scratch = std::env::temp_dir().join(unique("exc-durable"));
    let config = ApplyConfig {
        audit: AuditLog {
            path: scratch.join("audit.jsonl"),
        },
        ledger: Ledger {
            dir: scratch.join("ledger"),
        },
        attachment: None,
    };
    let grant = |ttl| {
        exception::grant(
            &policy,
            &GrantRequest {
                exception: "gdpr_erasure",
                key: &key,
                ttl_secs: ttl,
                to: Some(parse_target(&exc.to_string()).unwrap()),
                agent: None,
                now: now_unix(),
            },
        )
        .unwrap()
    };

    // 1. A connection opened through a 4-second exception, still open at expiry.
    let cg = TestCgroup::new(&unique("exc-conn"));
    let name = unique("exc-conn");
    attach_agent(&policy, &cg, &name);
    let (token, claims) = grant(4);
    let installed = exception::apply(&policy, &token, &config.at(&name)).unwrap();
    let script = format!(
        "exec 3<>/dev/tcp/{}/{} || exit 3; echo before >&3; sleep 6; echo after >&3; sleep 1; echo again >&3; exit 0",
        exc.ip(),
        exc.port()
    );
    let mut command = std::process::Command::new("bash");
    command.args(["-c", &script]);
    egress_enforce::sandbox::Confinement {
        cgroup: Some(egress_enforce::sandbox::CgroupJoin::open(&cg.path).unwrap()),
        ..Default::default()
    }
    .apply_to(&mut command);
    let status = command.status().unwrap();
    let expired_at = std::time::UNIX_EPOCH + Duration::from_secs(claims.expires_at);
    let _ = expired_at;
    let got: Vec<String> = received.try_iter().map(|(_, t)| t).collect();
    assert!(
        got.iter().any(|t| t.contains("before")),
        "the connection opened during the exception carried data: {got:?} (bash exit {status:?})"
    );
    assert!(
        !got.iter()
            .any(|t| t.contains("after") || t.contains("again")),
        "data crossed after the exception expired: {got:?}"
    );
    let counters = egress_enforce::loader::open(&name).unwrap().counters();
    assert!(counters["dropped_packets"] >= 1, "{counters:?}");
    let stop = std::sync::atomic::AtomicBool::new(false);
    exception::wait_and_expire(&installed, &config.at(&name), &stop).unwrap();
    let _ = control::detach(&name);

    // 2. max_uses 2, used in one attachment that then goes away (the `egc run` ended
    // while the applying process watched): the uses are counted, and a second
    // attachment cannot have more.
    let cg_a = TestCgroup::new(&unique("exc-a"));
    let name_a = unique("exc-a");
    attach_agent(&policy, &cg_a, &name_a);
    let (token, _) = grant(60);
    let installed = exception::apply(&policy, &token, &config.at(&name_a)).unwrap();
    let t = target("tcp", exc);
    expect(
        &probe(Some(&cg_a), std::slice::from_ref(&t)),
        &[(t.clone(), "ok")],
    );
    expect(
        &probe(Some(&cg_a), std::slice::from_ref(&t)),
        &[(t.clone(), "ok")],
    );
    let watcher = {
        let installed = installed.clone();
        let config = config.at(&name_a);
        std::thread::spawn(move || {
            let stop = std::sync::atomic::AtomicBool::new(false);
            exception::wait_and_expire(&installed, &config, &stop)
        })
    };
    sleep(Duration::from_millis(300));
    control::detach(&name_a).unwrap();
    assert_eq!(
        watcher.join().unwrap().unwrap(),
        2,
        "both uses are counted after the attachment went away"
    );
    let cg_b = TestCgroup::new(&unique("exc-b"));
    let name_b = unique("exc-b");
    attach_agent(&policy, &cg_b, &name_b);
    assert!(
        matches!(exception::apply(&policy, &token, &config.at(&name_b)), Err(ExceptionError::Refused(m)) if m.contains("use limit")),
        "a second attachment gets no more uses"
    );

    // 3. An applying process that dies without recording its count: its reserved uses
    // stay spent.
    let (token, _) = grant(60);
    let installed = exception::apply(&policy, &token, &config.at(&name_b)).unwrap();
    drop(installed); // the process "died": no remove, no count
    control::detach(&name_b).unwrap();
    let cg_c = TestCgroup::new(&unique("exc-c"));
    let name_c = unique("exc-c");
    attach_agent(&policy, &cg_c, &name_c);
    assert!(
        matches!(exception::apply(&policy, &token, &config.at(&name_c)), Err(ExceptionError::Refused(m)) if m.contains("use limit")),
        "reserved uses of a dead installation are not given back"
    );

    // 4. An unreadable ledger entry refuses the token instead of resetting its count.
    let (token, claims) = grant(60);
    std::fs::create_dir_all(scratch.join("ledger")).unwrap();
    std::fs::write(
        scratch.join("ledger").join(format!("{}.json", claims.id)),
        "{not json",
    )
    .unwrap();
    assert!(
        matches!(exception::apply(&policy, &token, &config.at(&name_c)), Err(ExceptionError::Failed(m)) if m.contains("unreadable")),
    );
    let _ = control::detach(&name_c);
    let _ = std::fs::remove_dir_all(&scratch);
}
