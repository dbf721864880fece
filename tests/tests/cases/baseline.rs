//! `tests/baseline/*.toml`: each case is a baseline for the policy `tests/baseline/policy/`
//! with a fixed "now" (`# now: YYYY-MM-DD`) and the run's verdict (`# expect: accepted`,
//! `violated`, or `error` for a file `egc verify --baseline` refuses). The report, as
//! `egc verify` prints it, is snapshot.

use egc::baseline::{self, Date};
use egc::render;
use egc_tests::{check_case, repo_root};
use egress_verify::VerifyConfig;
use libtest_mimic::Trial;

use crate::{case_files, snapshot};

pub fn trials() -> Vec<Trial> {
    let dir = repo_root().join("tests/baseline");
    case_files(&dir, "toml")
        .into_iter()
        .map(|case| {
            let name = case.file_stem().unwrap().to_string_lossy().into_owned();
            Trial::test(format!("baseline::{name}"), move || {
                check(&case, &name);
                Ok(())
            })
        })
        .collect()
}

fn header<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("# {key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("the case has no `# {key}:` line"))
}

fn check(case: &std::path::Path, name: &str) {
    let text = std::fs::read_to_string(case).unwrap();
    let now = Date::parse(header(&text, "now")).unwrap();
    let expect = header(&text, "expect");
    let entries = match baseline::parse(&text) {
        Ok(entries) => entries,
        Err(error) => {
            assert_eq!(expect, "error", "{name}: the baseline was refused: {error}");
            snapshot("baseline", name, &format!("error: {error}\n"));
            return;
        }
    };
    let result = check_case(&repo_root().join("tests/baseline/policy"));
    let policy = result.policy.as_ref().expect("the policy checks");
    let mut reports = vec![egress_verify::verify(policy, &VerifyConfig::default())];
    let applied = baseline::apply(&entries, &mut reports, now);
    let report = reports.pop().unwrap();
    let verdict = render::json::overall(&[(&result, &report)]);
    let verdict = baseline::verdict_text(verdict, Some(&applied));
    assert_eq!(verdict, expect, "{name}");
    let accepted: Vec<&egress_verify::Property> = applied
        .accepted_properties
        .iter()
        .map(|(_, id)| id)
        .collect();
    let mut human = Vec::new();
    render::human::report_with(
        "tests/baseline/policy",
        &result,
        &report,
        &accepted,
        false,
        &mut human,
    );
    let mut out = String::from_utf8_lossy(&human).into_owned();
    for line in baseline::human_lines(&applied) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!("verdict: {verdict}\n"));
    out.push_str(&serde_json::to_string_pretty(&baseline::json(&applied)).unwrap());
    snapshot("baseline", name, &out);
}
