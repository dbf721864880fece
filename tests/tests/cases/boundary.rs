//! `tests/boundary/*.egress`: each case is verified within the boundary
//! `tests/boundary/boundary/`. A case with `// expect: PROPERTY` lines must violate
//! exactly those properties; a case without must verify. Every report is snapshot as JSON.
//! Each example `examples/NAME` must verify within its boundary `examples/boundaries/NAME`.

use egc::render;
use egc_tests::{check_case, repo_root};
use egress_verify::{Property, Verdict, VerifyConfig};
use libtest_mimic::Trial;

use crate::{case_files, examples, snapshot};

pub fn trials() -> Vec<Trial> {
    let dir = repo_root().join("tests/boundary");
    let mut out: Vec<Trial> = case_files(&dir, "egress")
        .into_iter()
        .map(|case| {
            let name = case.file_stem().unwrap().to_string_lossy().into_owned();
            Trial::test(format!("boundary::{name}"), move || {
                check(&case, &name);
                Ok(())
            })
        })
        .collect();
    out.extend(examples().into_iter().map(|example| {
        let name = example.file_name().unwrap().to_string_lossy().into_owned();
        Trial::test(format!("boundary::example::{name}"), move || {
            let policy = check_case(&example);
            let boundary = check_case(&example.join("../boundaries").join(&name));
            let report = egress_verify::verify_within(
                policy.policy.as_ref().expect("the example checks"),
                boundary.policy.as_ref().expect("its boundary checks"),
                &VerifyConfig::default(),
            );
            assert_eq!(
                report.verdict,
                Verdict::Verified,
                "{name}: {:#}",
                render::json::report(&[(&policy, &report)])
            );
            assert_eq!(
                report.property(&Property::WithinBoundary).map(|p| p.status),
                Some(Verdict::Verified)
            );
            Ok(())
        })
    }));
    out
}

fn check(case: &std::path::Path, name: &str) {
    let text = std::fs::read_to_string(case).unwrap();
    let expected: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("// expect:"))
        .map(str::trim)
        .collect();
    let result = check_case(case);
    let boundary = check_case(&repo_root().join("tests/boundary/boundary"));
    let policy = result.policy.as_ref().expect("the case checks");
    let report = egress_verify::verify_within(
        policy,
        boundary.policy.as_ref().expect("the boundary checks"),
        &VerifyConfig::default(),
    );
    let json = render::json::report(&[(&result, &report)]);
    let violated: Vec<String> = report
        .properties
        .iter()
        .filter(|p| p.status != Verdict::Verified)
        .map(|p| p.id.to_string())
        .collect();
    assert_eq!(violated, expected, "{name}: {json:#}");
    for v in &report.violations {
        assert!(!v.path.is_empty(), "{name}: a violation without a path");
        if v.property == Property::WithinBoundary && v.witness.is_none() {
            // Lifetimes, Linux capabilities and sockets have no connection to replay.
            assert!(!v.conditions.is_empty());
        }
    }
    // The report as `egc verify` prints it, then as JSON.
    let mut human = Vec::new();
    render::human::report(name, &result, &report, false, &mut human);
    snapshot(
        "boundary",
        name,
        &format!(
            "{}\n{}",
            String::from_utf8_lossy(&human),
            serde_json::to_string_pretty(&json).unwrap()
        ),
    );
}
