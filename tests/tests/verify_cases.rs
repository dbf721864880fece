//! Data-driven verifier tests. A case is a file:
//! - `tests/verify/*.egress` must verify, with a snapshot of its JSON report;
//! - `tests/verify/violations/*.egress` must be violated; the file's `// expect: ID` lines
//!   name the properties that must fail, and every witness is replayed here again;
//! - every policy directory in `examples/` must verify.
//!
//! Adding a case is adding a file. One trial per case (libtest-mimic, `harness = false`):
//! `pass::NAME`, `violation::NAME` and `example::NAME`, so `cargo test -p egc-tests
//! --test verify_cases -- violation::NAME` runs one case and a failure never hides the next.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use egc::render;
use egress_verify::{Engine, Property, Verdict, VerifyConfig};
use libtest_mimic::{Arguments, Trial};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn egress_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "egress"))
        .collect();
    files.sort();
    files
}

/// Checks and verifies the given files (paths relative to `base`).
fn run(
    base: &Path,
    files: &[PathBuf],
    config: &VerifyConfig,
) -> (egress_check::CheckResult, egress_verify::Report) {
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                f.strip_prefix(base).unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(f).unwrap(),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let result = egress_check::check_sources(&refs);
    let errors: Vec<_> = result.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{files:?} has check errors: {errors:#?}");
    let report = egress_verify::verify(result.policy.as_ref().unwrap(), config);
    (result, report)
}

fn expected_properties(text: &str) -> Vec<Property> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("// expect:"))
        .map(|s| Property::from_id(s.trim()).unwrap_or_else(|| panic!("`{s}` names no property")))
        .collect()
}

fn passing_case(dir: &Path, file: &Path) {
    let (result, report) = run(dir, &[file.to_path_buf()], &VerifyConfig::default());
    let json = render::json::report(&[(&result, &report)]);
    assert_eq!(
        report.verdict,
        Verdict::Verified,
        "{}: {json:#}",
        file.display()
    );
    let name = file.file_stem().unwrap().to_string_lossy().into_owned();
    insta::assert_json_snapshot!(format!("pass-{name}"), json);
}

fn violation_case(dir: &Path, file: &Path) {
    let text = std::fs::read_to_string(file).unwrap();
    let expected = expected_properties(&text);
    assert!(
        !expected.is_empty(),
        "{} has no `// expect:` line",
        file.display()
    );
    let (result, report) = run(dir, &[file.to_path_buf()], &VerifyConfig::default());
    let json = render::json::report(&[(&result, &report)]);
    assert_eq!(
        report.verdict,
        Verdict::Violated,
        "{}: {json:#}",
        file.display()
    );
    for id in &expected {
        assert!(
            report.violations.iter().any(|v| &v.property == id),
            "{}: expected a violation of `{id}`: {json:#}",
            file.display()
        );
        assert_eq!(report.property(id).unwrap().status, Verdict::Violated);
    }
    let policy = result.policy.as_ref().unwrap();
    for v in &report.violations {
        assert!(!v.path.is_empty());
        // Route-based witnesses: the concrete evaluator lets the first agent of the path
        // open the connection.
        if let (
            Some(w),
            Property::EgressApproved | Property::NoMetadata | Property::NoUnspecified,
        ) = (&v.witness, &v.property)
        {
            let agent = policy.agent_by_name(&v.agent).unwrap();
            assert!(
                egress_verify::allowed(policy, agent.id, w).is_some(),
                "{w} not allowed for {}",
                v.agent
            );
            assert!(
                !egress_verify::eval::approved(policy, agent.id, w)
                    || v.property == Property::NoMetadata
                    || v.property == Property::NoUnspecified
            );
        }
    }
    // The SMT path finds the same violated properties.
    let smt = egress_verify::verify(
        policy,
        &VerifyConfig {
            engine: egress_verify::Engine::Smt,
            ..VerifyConfig::default()
        },
    );
    assert_eq!(smt.properties, report.properties, "{}", file.display());
    let name = file.file_stem().unwrap().to_string_lossy().into_owned();
    insta::assert_json_snapshot!(format!("violation-{name}"), json);
}

/// The example policy directories (those holding `.egress` files), sorted.
fn example_dirs() -> Vec<PathBuf> {
    let examples = repo().join("examples");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !egress_files(p).is_empty())
        .collect();
    dirs.sort();
    dirs
}

fn example_verifies(dir: &Path) {
    let files = egress_files(dir);
    let (result, report) = run(dir, &files, &VerifyConfig::default());
    let json = render::json::report(&[(&result, &report)]);
    assert_eq!(
        report.verdict,
        Verdict::Verified,
        "{}: {json:#}",
        dir.display()
    );
    let smt = egress_verify::verify(
        result.policy.as_ref().unwrap(),
        &VerifyConfig {
            engine: egress_verify::Engine::Both,
            ..VerifyConfig::default()
        },
    );
    assert_eq!(smt.verdict, Verdict::Verified, "{}", dir.display());
}

fn main() {
    let args = Arguments::from_args();
    let stem = |p: &Path| p.file_stem().unwrap().to_string_lossy().into_owned();
    let mut trials = Vec::new();
    let pass_dir = repo().join("tests/verify");
    let passing = egress_files(&pass_dir);
    let violations_dir = repo().join("tests/verify/violations");
    let violations = egress_files(&violations_dir);
    let examples = example_dirs();
    let counts = (passing.len(), violations.len(), examples.len());
    trials.push(Trial::test("cases-found", move || {
        let (passing, violations, examples) = counts;
        assert!(passing > 0, "no passing cases");
        assert!(violations >= 6, "one realistic mistake per property");
        assert!(examples > 0, "no examples");
        Ok(())
    }));
    for file in passing {
        let dir = pass_dir.clone();
        trials.push(Trial::test(format!("pass::{}", stem(&file)), move || {
            passing_case(&dir, &file);
            Ok(())
        }));
    }
    for file in violations {
        let dir = violations_dir.clone();
        trials.push(Trial::test(
            format!("violation::{}", stem(&file)),
            move || {
                violation_case(&dir, &file);
                Ok(())
            },
        ));
    }
    for dir in examples {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        trials.push(Trial::test(format!("example::{name}"), move || {
            example_verifies(&dir);
            Ok(())
        }));
    }
    trials.push(Trial::test("warnings_are_reported", || {
        warnings_are_reported();
        Ok(())
    }));
    trials.push(Trial::test(
        "a_solver_timeout_is_unknown_never_verified",
        || {
            a_solver_timeout_is_unknown_never_verified();
            Ok(())
        },
    ));
    libtest_mimic::run(&args, trials).exit();
}

fn warnings_are_reported() {
    let text = r#"
import std.dns
destination api { host "api.example.com" port 443 }
destination api_any { host "*.example.com" port 443 }
destination spare { host "spare.example.com" port 443 }
capability call { connect api, api_any, dns.kube_dns }
capability unused_cap { connect api }
agent bot { uses call }
destination unused_db { cidr 10.9.9.0/24 port 5432 }
zone z { agents bot approve api_any, spare, unused_db, dns.kube_dns }
"#;
    let result = egress_check::check_sources(&[("w.egress", text)]);
    let policy = result
        .policy
        .as_ref()
        .unwrap_or_else(|| panic!("{:#?}", result.diagnostics));
    let report = egress_verify::verify(policy, &VerifyConfig::default());
    assert_eq!(report.verdict, Verdict::Verified);
    let codes: Vec<(&str, &str)> = report
        .warnings
        .iter()
        .map(|w| (w.code, w.message.as_str()))
        .collect();
    insta::assert_debug_snapshot!("warnings", codes);
}

fn a_solver_timeout_is_unknown_never_verified() {
    // The route `**.corp.example` is covered by `*.corp.example` and `**.*.corp.example` together, among
    // 2,000 other approvals. The set algebra proves it; Z3 needs far more than 1 ms, and
    // giving up must make the verdict `unknown`, never `verified`.
    let mut text =
        String::from("import std.dns\ndestination wide { host \"**.corp.example\" port 443 }\n");
    text.push_str("destination one { host \"*.corp.example\" port 443 }\ndestination deeper { host \"**.*.corp.example\" port 443 }\n");
    let mut names = vec![
        "one".to_string(),
        "deeper".to_string(),
        "dns.kube_dns".to_string(),
    ];
    for i in 0..2000 {
        text.push_str(&format!(
            "destination s{i} {{ host \"*.s{i}.corp.example\" port 443 }}\n"
        ));
        names.push(format!("s{i}"));
    }
    text.push_str("capability call { connect wide, dns.kube_dns }\nagent bot { uses call }\n");
    text.push_str(&format!(
        "zone z {{ agents bot approve {} }}\n",
        names.join(", ")
    ));
    let result = egress_check::check_sources(&[("t.egress", text.as_str())]);
    let policy = result
        .policy
        .as_ref()
        .unwrap_or_else(|| panic!("{:#?}", result.diagnostics));
    let fast = egress_verify::verify(
        policy,
        &VerifyConfig {
            warnings: false,
            ..VerifyConfig::default()
        },
    );
    assert_eq!(fast.verdict, Verdict::Verified, "{:#?}", fast.violations);
    let smt = egress_verify::verify(
        policy,
        &VerifyConfig {
            engine: Engine::Smt,
            timeout_ms: 1,
            warnings: false,
            ..VerifyConfig::default()
        },
    );
    assert_eq!(smt.verdict, Verdict::Unknown, "{:#?}", smt.properties);
    assert_eq!(
        smt.property(&Property::EgressApproved).unwrap().status,
        Verdict::Unknown
    );
    assert!(smt.warnings.iter().any(|w| w.code == "W0104"));
}
