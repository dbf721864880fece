//! Verifier differential: a structured policy (agents, wildcard hosts, CIDRs with
//! exclusions, port ranges, protocols, workloads, delegation with and without data,
//! zones, exceptions, assertions) built from the input with `arbitrary`, rendered as text
//! and checked; the fast engine (exact set algebra) and the brute-force oracle must agree
//! on every property, and every `egress-approved` witness must replay as a connection the
//! agent may open and its zones do not approve. Z3 is left out to keep each run fast.
#![no_main]

use arbitrary::Unstructured;
use egress_verify::{oracle, Verdict, VerifyConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(spec) = egc_fuzz::policy(&mut u) else {
        return;
    };
    let text = spec.render();
    let result = egress_check::check_sources(&[("policy.egress", text.as_str())]);
    let errors: Vec<_> = result.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(
        errors.is_empty(),
        "generated policy does not check:\n{text}\n{errors:#?}"
    );
    let Some(policy) = result.policy.as_ref() else {
        return;
    };
    let fast = egress_verify::verify(
        policy,
        &VerifyConfig {
            warnings: false,
            ..VerifyConfig::default()
        },
    );
    assert!(
        fast.verdict != Verdict::Unknown,
        "fast path unknown:\n{text}\n{:#?}",
        fast.warnings
    );
    let mut fast_statuses: Vec<(egress_verify::Property, Verdict)> = fast
        .properties
        .iter()
        .map(|p| (p.id.clone(), p.status))
        .collect();
    fast_statuses.sort();
    let oracle_statuses: Vec<(egress_verify::Property, Verdict)> =
        oracle::statuses(policy).into_iter().collect();
    assert_eq!(
        fast_statuses, oracle_statuses,
        "fast path vs oracle on:\n{text}\n{:#?}",
        fast.violations
    );
    for v in &fast.violations {
        if let (Some(w), egress_verify::Property::EgressApproved) = (&v.witness, &v.property) {
            let agent = policy
                .agent_by_name(&v.agent)
                .expect("violation names an agent");
            assert!(
                egress_verify::allowed(policy, agent.id, w).is_some(),
                "witness {w:?} is not allowed for {}:\n{text}",
                v.agent
            );
            assert!(
                !egress_verify::eval::approved(policy, agent.id, w),
                "witness {w:?} is approved for {}:\n{text}",
                v.agent
            );
        }
    }
});
