//! Run what the book shows: every `egress` block in `book/src/verify/` tagged
//! `violates=ID` must be violated with a violation of ID, and one tagged `verifies` must
//! verify. The pages cannot drift from what `egc verify` does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use egress_verify::{Verdict, VerifyConfig};

fn blocks(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String, usize)> = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match current.take() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    current = Some((info.trim().to_string(), String::new(), number + 1));
                }
            }
            Some((info, mut code, start)) => {
                if trimmed.starts_with("```") {
                    out.push((info, code, start));
                } else {
                    code.push_str(line);
                    code.push('\n');
                    current = Some((info, code, start));
                }
            }
        }
    }
    out
}

#[test]
fn verify_pages_show_what_egc_verify_does() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../book/src/verify");
    let mut pages: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    let mut checked = 0;
    for page in pages
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(page).unwrap();
        for (info, code, line) in blocks(&text) {
            let tags: Vec<&str> = info.split(',').map(str::trim).collect();
            if tags.first() != Some(&"egress") {
                continue;
            }
            let expect_violation = tags.iter().find_map(|t| t.strip_prefix("violates="));
            let expect_verified = tags.contains(&"verifies");
            if expect_violation.is_none() && !expect_verified {
                continue;
            }
            let result = egress_check::check_sources(&[("block.egress", code.as_str())]);
            let policy = result
                .policy
                .as_ref()
                .unwrap_or_else(|| panic!("{}:{line}: {:#?}", page.display(), result.diagnostics));
            let report = egress_verify::verify(policy, &VerifyConfig::default());
            match expect_violation {
                Some(id) => {
                    assert_eq!(
                        report.verdict,
                        Verdict::Violated,
                        "{}:{line}",
                        page.display()
                    );
                    assert!(
                        report.violations.iter().any(|v| v.property.is(id)),
                        "{}:{line}: no `{id}` violation",
                        page.display()
                    );
                }
                None => assert_eq!(
                    report.verdict,
                    Verdict::Verified,
                    "{}:{line}: {:#?}",
                    page.display(),
                    report.violations
                ),
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 7,
        "the verify pages show their cases ({checked} checked)"
    );
}
