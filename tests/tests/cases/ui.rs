//! `tests/ui/`: each case (a `.egress` file, or a directory of them) must produce the codes
//! named in its `// expect:` lines, at least one error, and match its snapshot of rendered
//! diagnostics (`tests/ui/snapshots/NAME.snap`). One trial per case, `ui::NAME`; adding a
//! case is adding a file.

use std::path::PathBuf;

use egc_tests::{check_case, expected_codes, render, repo_root};
use libtest_mimic::Trial;

/// The ui cases: each `.egress` file and each directory but `snapshots/`, sorted.
pub fn cases() -> Vec<PathBuf> {
    let dir = repo_root().join("tests/ui");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir() && p.file_name().unwrap() != "snapshots"
                || p.extension().is_some_and(|e| e == "egress")
        })
        .collect();
    cases.sort();
    cases
}

/// The text of a case: its file, or its directory's files joined.
fn case_text(case: &std::path::Path) -> String {
    if case.is_dir() {
        egc_tests::egress_files(case)
            .iter()
            .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        String::from_utf8_lossy(&std::fs::read(case).unwrap()).into_owned()
    }
}

fn run_case(case: &std::path::Path) {
    let name = case.file_stem().unwrap().to_string_lossy().into_owned();
    let result = check_case(case);
    let expected = expected_codes(&case_text(case));
    assert!(!expected.is_empty(), "{name}: add a `// expect: CODE` line");
    for code in &expected {
        assert!(
            result.diagnostics.iter().any(|d| d.code == code),
            "{name}: expected {code}, got {:?}",
            result
                .diagnostics
                .iter()
                .map(|d| d.code)
                .collect::<Vec<_>>()
        );
    }
    assert!(
        result.has_errors(),
        "{name}: every ui case must fail the check"
    );
    assert!(
        result.policy.is_none(),
        "{name}: no policy may be built with errors"
    );
    insta::with_settings!({
        snapshot_path => repo_root().join("tests/ui/snapshots"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, render(&result));
    });
}

pub fn trials() -> Vec<Trial> {
    let cases = cases();
    let mut trials = vec![Trial::test("ui::at-least-30-cases", {
        let n = cases.len();
        move || {
            assert!(n >= 30, "expected at least 30 ui cases, found {n}");
            Ok(())
        }
    })];
    trials.extend(cases.into_iter().map(|case| {
        let name = case.file_stem().unwrap().to_string_lossy().into_owned();
        Trial::test(format!("ui::{name}"), move || {
            run_case(&case);
            Ok(())
        })
    }));
    trials
}

/// The codes the ui cases produce (for the code guard).
pub fn codes_produced() -> std::collections::BTreeSet<&'static str> {
    cases()
        .iter()
        .flat_map(|case| {
            check_case(case)
                .diagnostics
                .iter()
                .map(|d| d.code)
                .collect::<Vec<_>>()
        })
        .collect()
}
