//! `egc suggest` on `tests/suggest/NAME/`: `events.jsonl` against the policy in `policy/`
//! (its own project root). The snapshot `tests/snapshots/suggest/NAME.snap` holds the exit
//! code, the diff (stdout) and the report (stderr); the changed files are formatted
//! (`egc fmt` changes nothing) and check.

use std::path::{Path, PathBuf};

use egc::cmd::suggest::{suggest, Failure, Outcome};
use libtest_mimic::Trial;

use crate::snapshot;

pub fn trials() -> Vec<Trial> {
    let root = egc_tests::repo_root().join("tests/suggest");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            Trial::test(format!("suggest::{name}"), move || {
                case(&dir, &name);
                Ok(())
            })
        })
        .collect()
}

fn case(dir: &Path, name: &str) {
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let policy = dir.join("policy");
    let text = match suggest(
        &events,
        "events.jsonl",
        std::slice::from_ref(&policy),
        Some(&policy),
        false,
    ) {
        Ok(outcome) => {
            changed_files_check(&policy, &outcome);
            let code = if outcome.diff.is_empty() { 1 } else { 0 };
            format!(
                "exit: {code}\n--- stdout ---\n{}--- stderr ---\n{}",
                outcome.diff, outcome.report
            )
        }
        Err(Failure { code, message }) => {
            format!("exit: {code}\n--- stdout ---\n--- stderr ---\n{message}")
        }
    };
    snapshot("suggest", name, &text);
}

fn changed_files_check(policy: &Path, outcome: &Outcome) {
    for (path, text) in &outcome.changed {
        let formatted = egress_syntax::format::format_source(text)
            .unwrap_or_else(|e| panic!("{path} does not parse: {e:?}"));
        assert_eq!(&formatted, text, "{path} is not formatted");
    }
    if outcome.changed.is_empty() {
        return;
    }
    // The changed policy checks: every file of the policy, the changed ones replaced.
    let mut files: Vec<(String, String)> = std::fs::read_dir(policy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "egress"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = outcome
                .changed
                .get(&name)
                .cloned()
                .unwrap_or_else(|| std::fs::read_to_string(&p).unwrap());
            (name, text)
        })
        .collect();
    files.sort();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let result = egress_check::check_sources(&borrowed);
    assert!(
        result.policy.is_some(),
        "the changed policy does not check: {:?}",
        result.diagnostics
    );
}
