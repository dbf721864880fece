//! `tests/ui/`: each case (a `.egress` file, or a directory of them) must produce the codes
//! named in its `// expect:` lines, at least one error, and match its snapshot of rendered
//! diagnostics. Adding a case is adding a file.

use egc_tests::{check_case, expected_codes, render, repo_root};

#[test]
fn ui_cases() {
    let dir = repo_root().join("tests/ui");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir() && p.file_name().unwrap() != "snapshots"
                || p.extension().is_some_and(|e| e == "egress")
        })
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 30,
        "expected at least 30 ui cases, found {}",
        cases.len()
    );
    let mut seen_codes = std::collections::BTreeSet::new();
    for case in cases {
        let name = case.file_stem().unwrap().to_string_lossy().into_owned();
        let result = check_case(&case);
        let text = if case.is_dir() {
            egc_tests::egress_files(&case)
                .iter()
                .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            String::from_utf8_lossy(&std::fs::read(&case).unwrap()).into_owned()
        };
        let expected = expected_codes(&text);
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
        seen_codes.extend(result.diagnostics.iter().map(|d| d.code));
        insta::with_settings!({
            snapshot_path => dir.join("snapshots"),
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name, render(&result));
        });
    }
    // Every checker and parser code has at least one case.
    for (code, _) in egress_syntax::diagnostic::CODES {
        // Codes from E0100 on belong to later stages (backends, verifier).
        if code
            .get(1..)
            .and_then(|n| n.parse::<u32>().ok())
            .is_none_or(|n| n >= 100)
        {
            continue;
        }
        assert!(
            seen_codes.contains(code),
            "no tests/ui case produces {code}"
        );
    }
}
