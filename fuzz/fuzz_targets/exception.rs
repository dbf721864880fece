//! Exception tokens and the audit log on arbitrary bytes. The first byte picks a mode:
//! - a token as given (`verify`, `peek_claims`), plus the small parsers next to it
//!   (`parse_target`, `parse_duration`, `parse_secret_key`);
//! - the rest as the claims JSON of a token signed with the policy's own key, so the
//!   checks after the signature are reached; a token that verifies must keep every
//!   promise `verify` makes (agents listed, lifetime within the maximum, not expired,
//!   use limit equal to the exception's, destination inside the pattern);
//! - the rest as an audit log file read by `AuditLog::read`.
//!
//! The policy is built once, with an authority whose key is a fixed test key.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use egress_check::CheckedPolicy;
use egress_enforce::exception::{self, AuditLog, Claims};
use libfuzzer_sys::fuzz_target;

/// Seconds since the epoch the tokens are checked at (a fixed instant in 2027).
const NOW: u64 = 1_800_000_000;

const POLICY: &str = r#"
data pii
authority dpo {
    key "KEY"
    max_ttl 1h
}
destination audit_sink {
    host "audit.corp.example"
    port 6514
}
destination erasure {
    host "**.erasure.example", "one.example"
    cidr 10.1.0.0/16 except 10.1.2.0/24
    cidr 2001:db8::/32
    port 443, 8000-8100
    protocol tcp
}
destination dns {
    cidr 10.0.0.10/32
    port 53
    protocol udp
}
capability work {
    connect audit_sink, dns
}
agent bot {
    workload namespace "n" labels { app = "bot" }
    uses work
}
agent helper {
    workload namespace "n" labels { app = "helper" }
    uses work
}
exception erase {
    agents bot, helper
    to erasure
    approver dpo
    max_ttl 15m
    max_uses 1
    audit audit_sink
    legal_basis "test"
}
exception resolve {
    agents helper
    to dns
    approver dpo
    max_ttl 1h
    audit audit_sink
    legal_basis "test"
}
zone z {
    agents *
    approve audit_sink, dns, erasure
}
"#;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn policy() -> &'static CheckedPolicy {
    static POLICY_CELL: OnceLock<CheckedPolicy> = OnceLock::new();
    POLICY_CELL.get_or_init(|| {
        let text = POLICY.replace("KEY", &exception::public_key_text(&key().verifying_key()));
        let result = egress_check::check_sources(&[("policy.egress", text.as_str())]);
        match result.policy {
            Some(policy) => policy,
            None => panic!("the fuzz policy does not check: {:#?}", result.diagnostics),
        }
    })
}

fn audit_path() -> &'static std::path::Path {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("egc-fuzz-audit-{}.jsonl", std::process::id()))
    })
}

/// What a verified token must satisfy.
fn check_verified(policy: &CheckedPolicy, claims: &Claims, now: u64) {
    let exception = policy
        .exception_by_name(&claims.exception)
        .expect("a verified token names an exception of the policy");
    assert_eq!(claims.v, 1);
    assert!(claims.issued_at < claims.expires_at);
    assert!(claims.expires_at - claims.issued_at <= exception.max_ttl_secs);
    assert!(now < claims.expires_at);
    assert!(claims.issued_at <= now + 60);
    assert!(!claims.agents.is_empty());
    for agent in &claims.agents {
        let agent = policy
            .agent_by_name(agent)
            .expect("a verified token names agents of the policy");
        assert!(exception.agents.iter().any(|a| a.id == agent.id));
    }
    assert_eq!(claims.max_uses, exception.max_uses);
    if let Some(target) = &claims.to {
        let dest = policy.destination(exception.to.id).expect("destination");
        assert!(dest.ports.iter().any(|p| p.contains(target.port)));
        // The target must read back from its display form.
        let again = exception::parse_target(&target.to_string());
        assert!(again.is_ok(), "{target} does not parse back: {again:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let policy = policy();
    match mode % 3 {
        0 => {
            let text = String::from_utf8_lossy(rest);
            let _ = exception::peek_claims(&text);
            if let Ok(claims) = exception::verify(policy, &text, NOW) {
                check_verified(policy, &claims, NOW);
            }
            if let Ok(target) = exception::parse_target(&text) {
                assert!(target.port != 0);
                let _ = target.to_string();
            }
            let _ = exception::parse_duration(&text);
            let _ = exception::parse_secret_key(&text);
        }
        1 => {
            let signature = key().sign(rest);
            let token = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(rest),
                URL_SAFE_NO_PAD.encode(signature.to_bytes())
            );
            let peeked = exception::peek_claims(&token);
            if let Ok(claims) = exception::verify(policy, &token, NOW) {
                assert_eq!(peeked.as_ref(), Some(&claims));
                check_verified(policy, &claims, NOW);
            }
        }
        _ => {
            let path = audit_path();
            if std::fs::write(path, rest).is_ok() {
                let records = AuditLog {
                    path: path.to_path_buf(),
                }
                .read();
                assert!(records.len() <= rest.iter().filter(|b| **b == b'\n').count() + 1);
            }
        }
    }
});
