//! Signed inputs of the supply-chain features on arbitrary bytes. The first byte picks a
//! mode:
//! - an intent manifest and its signature as given (`manifest::open`), and a public key
//!   as given (`manifest::parse_public_key`);
//! - the rest as a manifest signed with the test key, so parsing after the signature is
//!   reached; a manifest that opens must survive its canonical form unchanged;
//! - a workflow step token as given (`steps::peek`, `steps::verify`);
//! - the rest as the claims JSON of a step token signed with the orchestrator's key, so
//!   the checks after the signature are reached; a token that verifies must name a step
//!   of the workflow performed by the agent it names.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use egress_check::CheckedPolicy;
use egress_enforce::{exception, manifest, steps};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_800_000_000;

const POLICY: &str = r#"
authority ci {
    key "KEY"
    max_ttl 1h
}
destination cache {
    cidr 10.1.0.0/16
    port 443
}
capability fetch {
    connect cache
    workflows release
}
agent builder {
    uses fetch
}
workflow release {
    orchestrator ci
    ordered
    step builder uses fetch
}
"#;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9u8; 32])
}

fn policy() -> &'static CheckedPolicy {
    static CELL: OnceLock<CheckedPolicy> = OnceLock::new();
    CELL.get_or_init(|| {
        let text = POLICY.replace("KEY", &exception::public_key_text(&key().verifying_key()));
        let result = egress_check::check_sources(&[("policy.egress", text.as_str())]);
        match result.policy {
            Some(policy) => policy,
            None => panic!("the fuzz policy does not check: {:#?}", result.diagnostics),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let public = key().verifying_key();
    match mode % 4 {
        0 => {
            let (manifest_text, signature) = text.split_once('\n').unwrap_or((&text, ""));
            let _ = manifest::open(manifest_text, signature, &public);
            let _ = manifest::parse_public_key(&text);
        }
        1 => {
            let signature = manifest::sign(&text, &key());
            if let Ok(intent) = manifest::open(&text, &signature, &public) {
                let canonical = intent.to_canonical_json();
                let again = manifest::open(&canonical, &manifest::sign(&canonical, &key()), &public)
                    .unwrap_or_else(|e| panic!("a canonical manifest does not open: {e}"));
                assert_eq!(again, intent, "the canonical form changed the manifest");
            }
        }
        2 => {
            let _ = steps::peek(&text);
            let _ = steps::verify(policy(), &text, NOW);
        }
        _ => {
            let signature = key().sign(rest);
            let token = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(rest),
                URL_SAFE_NO_PAD.encode(signature.to_bytes())
            );
            if let Ok(claims) = steps::verify(policy(), &token, NOW) {
                assert!(claims.expires_at > NOW, "an expired step token verified");
                assert_eq!(claims.agent, "policy.builder", "a step token for another agent verified");
                assert_eq!(claims.step, 1, "a step the workflow does not have verified");
            }
        }
    }
});
