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
