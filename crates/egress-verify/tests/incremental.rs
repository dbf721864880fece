//! Incremental verification on a realistic policy: a second run over the same policy
//! checks no agent again, an edit of one agent re-checks only what the edit touches, and
//! every report equals the one a run without a memo gives. (Exactness over many small
//! policies and every one-line deletion is in `differential.rs`.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use egress_verify::{generate::large_policy, verify, verify_incremental, Memo, VerifyConfig};

fn check(files: &[(String, String)]) -> egress_check::CheckedPolicy {
    let sources: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let result = egress_check::check_sources(&sources);
    result.policy.expect("the generated policy checks")
}

fn same(mut a: egress_verify::Report, mut b: egress_verify::Report) {
    a.stats = Default::default();
    b.stats = Default::default();
    assert_eq!(a, b);
}

/// Replaces the first line of the file that contains `needle` with `with`.
fn edit(files: &[(String, String)], needle: &str, with: &str) -> Vec<(String, String)> {
    let mut done = false;
    files
        .iter()
        .map(|(name, text)| {
            let mut out = String::new();
            for line in text.lines() {
                if !done && line.contains(needle) {
                    done = true;
                    out.push_str(with);
                } else {
                    out.push_str(line);
                }
                out.push('\n');
            }
            (name.clone(), out)
        })
        .collect()
}

#[test]
fn a_second_run_and_a_one_line_edit_recheck_only_what_changed() {
    let files = large_policy(500, 7);
    let policy = check(&files);
    let config = VerifyConfig::default();
    let agents = policy.agents.len();

    let (first, memo) = verify_incremental(&policy, None, &config, &Memo::new());
    assert_eq!(first.stats.remembered, 0);
    same(first.clone(), verify(&policy, &config));
    assert!(memo.len() >= agents, "every clean agent is remembered");

    // The same policy again: nothing is checked again.
    let (second, memo2) = verify_incremental(&policy, None, &config, &memo);
    assert_eq!(second.stats.remembered, agents);
    assert_eq!(memo2, memo);
    same(second, first.clone());

    // Memo bytes survive a round trip.
    let memo = Memo::from_bytes(&memo.to_bytes()).unwrap();

    // One agent gains a capability, on one line: the report still equals a full run, and
    // only that agent (and those its chain reaches) is checked again.
    let edited_files = files
        .iter()
        .map(|(n, t)| {
            // A blank line early in every file moves every span: keys must not care.
            (n.clone(), format!("\n{t}"))
        })
        .collect::<Vec<_>>();
    let edited = check(&edited_files);
    let (moved, _) = verify_incremental(&edited, None, &config, &memo);
    assert_eq!(moved.stats.remembered, agents, "moving text changes no key");
    same(moved, verify(&edited, &config));

    let name = &policy.agents[123].name.local;
    let needle = format!("agent {name} {{");
    let files_b = edit(
        &files,
        &needle,
        &format!("agent {name} {{\n    uses t2_private"),
    );
    let edited = check(&files_b);
    let (after, _) = verify_incremental(&edited, None, &config, &memo);
    same(after.clone(), verify(&edited, &config));
    let rechecked = agents - after.stats.remembered;
    assert!(
        (1..=5).contains(&rechecked),
        "a one-line edit of one agent re-checks {rechecked} agents"
    );
}

#[test]
fn a_changed_approval_is_never_served_from_the_memo() {
    let files = large_policy(100, 3);
    let policy = check(&files);
    let config = VerifyConfig::default();
    let (first, memo) = verify_incremental(&policy, None, &config, &Memo::new());
    assert_eq!(first.verdict, egress_verify::Verdict::Verified);
    // Drop the first approval line of the zones: some agent now reaches an unapproved
    // destination, and the memo of the verified policy must not hide it.
    let approvals = files
        .iter()
        .find(|(n, _)| n.contains("approvals"))
        .map(|(_, t)| t.clone())
        .unwrap();
    let line = approvals
        .lines()
        .find(|l| l.trim_start().starts_with("approve ") && l.contains("svc"))
        .expect("an approval line")
        .to_string();
    let edited = check(&edit(&files, &line, ""));
    let full = verify(&edited, &config);
    assert_eq!(full.verdict, egress_verify::Verdict::Violated);
    let (after, _) = verify_incremental(&edited, None, &config, &memo);
    same(after, full);
}

/// A capability limited to a workflow opens its routes only through a step: changing
/// which capability the step uses must change the agent's key, though the agent itself
/// is unchanged.
#[test]
fn a_changed_workflow_step_is_never_served_from_the_memo() {
    let policy = |step_uses: &str| {
        format!(
            r#"import std.dns
import std.sys

destination ledger {{
    host "export.ledger.internal"
    port 443
}}

destination elsewhere {{
    host "upload.elsewhere.example"
    port 443
}}

capability export_ledger {{
    connect ledger, dns.kube_dns
}}

capability upload {{
    connect elsewhere
    workflows month_end
}}

capability idle {{
    syscalls sys.process_base
}}

agent closer {{
    workload namespace "finance" labels {{ app = "closer" }}
    uses idle, export_ledger, upload
}}

workflow month_end {{
    step closer uses {step_uses}
}}

zone finance {{
    owner "security-team"
    agents closer
    approve ledger, dns.kube_dns
}}
"#
        )
    };
    let config = VerifyConfig::default();
    let approved = check(&[("main.egress".into(), policy("export_ledger"))]);
    let (first, memo) = verify_incremental(&approved, None, &config, &Memo::new());
    assert_eq!(
        first.verdict,
        egress_verify::Verdict::Verified,
        "{first:#?}"
    );
    let widened = check(&[("main.egress".into(), policy("upload"))]);
    let full = verify(&widened, &config);
    assert_eq!(full.verdict, egress_verify::Verdict::Violated);
    let (after, _) = verify_incremental(&widened, None, &config, &memo);
    same(after, full);
}
