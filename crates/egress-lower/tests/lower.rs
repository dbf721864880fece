//! Data-driven lowering tests.
//!
//! Every directory `tests/lower/<case>/` and every `examples/<name>/` of the repository is
//! one policy. For each, every target is lowered; a success must pass translation
//! validation, validate against the vendored schema of its format, and lower to the same
//! bytes twice; a refusal must carry codes from E0100–E0149. The artifacts (or the
//! refusal) are snapshotted with insta in `tests/lower/snapshots/`.
//!
//! Kernel tests (`kernel` module) install the generated seccomp profiles and nftables
//! rulesets for real. They need root, libseccomp, `nft` and `ip`; they fail when those are
//! missing.

// Tests may unwrap, index and panic: a failure is the test's report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod kernel;
mod schema;

use std::path::PathBuf;

use common::{load_case, render_build, repo_root};
use egress_lower::{Target, TargetConfig};

fn case_dirs() -> Vec<(String, PathBuf)> {
    let root = repo_root();
    let mut out = Vec::new();
    for (prefix, dir) in [
        ("case", root.join("tests/lower")),
        ("example", root.join("examples")),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let has_policy = path.is_dir()
                && std::fs::read_dir(&path)
                    .map(|d| {
                        d.flatten()
                            .any(|e| e.path().extension().is_some_and(|x| x == "egress"))
                    })
                    .unwrap_or(false);
            if has_policy {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                out.push((format!("{prefix}-{name}"), path));
            }
        }
    }
    out.sort();
    out
}

/// The one entry point the tests use: lower (and validate) a case for every target.
fn check_case(name: &str, dir: &std::path::Path) -> String {
    let (result, policy) = load_case(dir);
    let policy = policy.unwrap_or_else(|| {
        panic!(
            "case {name} does not check: {:#?}",
            result
                .diagnostics
                .iter()
                .map(|d| (d.code, &d.message))
                .collect::<Vec<_>>()
        )
    });
    let config = TargetConfig::default();
    let mut report = String::new();
    for target in Target::ALL {
        let first = egress_lower::build(&policy, &[target], &config, true);
        let second = egress_lower::build(&policy, &[target], &config, true);
        assert_eq!(first, second, "{name}/{target}: two builds differ");
        match &first {
            Ok(build) => {
                for (file, text) in &build.files {
                    schema::validate_artifact(target, file, text);
                }
            }
            Err(diags) => {
                assert!(diags.iter().any(|d| d.is_error()));
                for d in diags {
                    let n: u32 = d.code[1..].parse().unwrap();
                    assert!(
                        (100..150).contains(&n),
                        "{name}/{target}: unexpected code {}",
                        d.code
                    );
                    // Validation errors mean the lowering is wrong, never the policy.
                    assert!(
                        !["E0111", "E0120", "E0121", "E0122"].contains(&d.code),
                        "{name}/{target}: translation validation failed: {}",
                        d.message
                    );
                }
            }
        }
        report.push_str(&render_build(&result, target, &first));
    }
    report
}

#[test]
fn every_case_and_example_lowers_or_refuses_with_a_code() {
    let cases = case_dirs();
    assert!(
        cases.len() >= 8,
        "expected the lowering cases and the examples, found {cases:?}"
    );
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(repo_root().join("tests/lower/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for (name, dir) in &cases {
            let report = check_case(name, dir);
            insta::assert_snapshot!(name.as_str(), report);
        }
    });
}

#[test]
fn cilium_multi_label_wildcard_depends_on_version() {
    let dir = repo_root().join("tests/lower/cilium-wildcards");
    let (_, policy) = load_case(&dir);
    let policy = policy.unwrap();
    let old = TargetConfig::default();
    let err = egress_lower::build(&policy, &[Target::Cilium], &old, true).unwrap_err();
    assert!(err.iter().any(|d| d.code == "E0102"), "{err:?}");
    let mut new = TargetConfig::default();
    new.cilium.version = (1, 19);
    let build = egress_lower::build(&policy, &[Target::Cilium], &new, true).unwrap();
    assert!(build
        .files
        .values()
        .any(|t| t.contains("\"matchPattern\": \"**.")));
}
