//! Lowering: for every generated policy that verifies, each target of egress-lower either
//! refuses with registered error codes (when lowering, or when validation finds what the
//! target cannot express, such as overlapping identities) or emits artifacts that
//! translation validation accepts, never wider, narrower unannounced or unreadable ones; the eBPF map lowering (egress-enforce) refuses with codes or succeeds. Agents
//! get a workload, a cgroup, a uid, or a mix, so every target's identity rules are reached.
#![no_main]

use arbitrary::Unstructured;
use egress_lower::{Target, TargetConfig};
use egress_verify::{Verdict, VerifyConfig};
use libfuzzer_sys::fuzz_target;

/// Codes that mean a lowering emitted something other than the policy: a bug in egc.
const BUG_CODES: [&str; 3] = ["E0111", "E0120", "E0121"];

fn assert_coded(what: &str, diagnostics: &[egress_syntax::Diagnostic], text: &str) {
    assert!(
        diagnostics.iter().any(|d| d.is_error()),
        "{what} refused without an error:\n{text}\n{diagnostics:#?}"
    );
    for d in diagnostics {
        assert!(
            egress_syntax::diagnostic::code_title(d.code).is_some(),
            "{what}: unregistered code {}",
            d.code
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(spec) = egc_fuzz::policy(&mut u) else {
        return;
    };
    let mut text = spec.render();
    for i in 0..spec.agents.len() {
        let workload = format!("    workload namespace \"agents\" labels {{ app = \"a{i}\" }}\n");
        let identity = match u.int_in_range(0u8..=3).unwrap_or(0) {
            0 => workload.clone(),
            1 => format!("    cgroup \"/agents/a{i}\"\n"),
            2 => format!("{workload}    uid {}\n", 1000 + i),
            _ => format!(
                "{workload}    cgroup \"/agents/a{i}\"\n    uid {}\n",
                1000 + i
            ),
        };
        text = text.replace(&workload, &identity);
    }
    let result = egress_check::check_sources(&[("policy.egress", text.as_str())]);
    let Some(policy) = result.policy.as_ref() else {
        let errors: Vec<_> = result.diagnostics.iter().filter(|d| d.is_error()).collect();
        panic!("generated policy does not check:\n{text}\n{errors:#?}");
    };
    let report = egress_verify::verify(
        policy,
        &VerifyConfig {
            warnings: false,
            ..VerifyConfig::default()
        },
    );
    if report.verdict != Verdict::Verified {
        return;
    }
    let mut config = TargetConfig::default();
    if u.arbitrary::<bool>().unwrap_or(false) {
        config.cilium.version = (1, 19);
    }
    for target in Target::ALL {
        match egress_lower::lower(target, policy, &config) {
            Err(diagnostics) => assert_coded(target.as_str(), &diagnostics, &text),
            Ok(artifacts) => {
                if let Err(diagnostics) =
                    egress_lower::validate(target, policy, &config, &artifacts)
                {
                    // Validation may refuse what the artifacts cannot express (E0106:
                    // identities that overlap on this target); it must never find them
                    // wider (E0120), narrower unannounced (E0121), or unreadable (E0111).
                    if diagnostics.iter().all(|d| !BUG_CODES.contains(&d.code)) {
                        assert_coded(target.as_str(), &diagnostics, &text);
                        continue;
                    }
                    panic!(
                        "{target}: translation validation rejects the artifacts of a verified policy:\n{text}\n{diagnostics:#?}\n{:#?}",
                        artifacts.files
                    );
                }
            }
        }
    }
    let maps_config = egress_enforce::maps::LowerConfig {
        deny_unenforceable: u.arbitrary().unwrap_or(false),
        ..Default::default()
    };
    match egress_enforce::maps::lower_all(policy, &maps_config) {
        Err(diagnostics) => assert_coded("ebpf", &diagnostics, &text),
        Ok((files, _)) => {
            for json in files.values() {
                assert!(
                    egress_enforce::maps::from_json(json).is_ok(),
                    "ebpf maps do not read back:\n{json}"
                );
            }
        }
    }
});
