//! `egc test [PATH...]`: run the policy tests in `tests/*.egtest` beside each policy.
//!
//! Prints one line per failing case, with the path that contradicts it, and closes with
//! `N passed, M failed`; `--format junit` writes JUnit XML instead.
//!
//! Exit codes: 0 every case passed; 1 a case failed, or a policy has check errors;
//! 2 usage or I/O errors, a test file that does not parse, or no test file at all.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use egress_verify::expect::{self, Outcome};

use crate::common::{self, Format};
use crate::testfile;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    Human,
    Junit,
}

#[derive(clap::Args)]
pub struct Args {
    /// Policy directories (or files); each policy's tests are `tests/*.egtest` beside it.
    /// None: the policies the nearest `egc.toml` names, else the current directory.
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TestFormat::Human)]
    pub format: TestFormat,
    /// The project root; imports may not leave it.
    #[arg(long)]
    pub root: Option<PathBuf>,
}

/// The result of one case.
pub struct CaseResult {
    pub file: String,
    pub case: testfile::Case,
    /// `None` when the case passed; otherwise why it failed.
    pub failure: Option<String>,
}

/// Every `.egtest` file in `dir/tests`, sorted.
fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("tests"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "egtest"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

pub fn run(args: Args) -> ExitCode {
    let paths = match crate::config::paths_or_config(&args.paths, Some(".")) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let policies = match common::load_policies(&paths, args.root.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let inputs: Vec<PathBuf> = match paths.iter().map(|p| common::absolute_path(p)).collect() {
        Ok(i) => i,
        Err(code) => return code,
    };
    let root = match common::project_root(&inputs, args.root.as_deref()) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut results: Vec<CaseResult> = Vec::new();
    let mut files_seen = 0usize;
    let mut check_errors = false;
    for loaded in &policies {
        let files = test_files(&root.join(&loaded.dir));
        if files.is_empty() {
            continue;
        }
        files_seen += files.len();
        let Some(policy) = loaded.result.policy.as_ref() else {
            common::print_diagnostics(std::slice::from_ref(loaded), Format::Human);
            eprintln!(
                "error: policy {} has check errors; its tests were not run",
                loaded.dir
            );
            check_errors = true;
            continue;
        };
        for file in files {
            let shown = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            let text = match common::read_policy_file(&file) {
                Ok(t) => t,
                Err(code) => return code,
            };
            match run_file(policy, &shown, &text) {
                Ok(mut r) => results.append(&mut r),
                Err(errors) => {
                    for e in errors {
                        eprintln!("error: {shown}:{}: {}", e.line, e.message);
                    }
                    return ExitCode::from(2);
                }
            }
        }
    }
    if files_seen == 0 && !check_errors {
        return common::usage_error(
            "no test files: write `tests/NAME.egtest` beside a policy (see `egc test --help`)",
        );
    }
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    let passed = results.len() - failed;
    let mut out = std::io::stdout().lock();
    let text = match args.format {
        TestFormat::Human => human(&results, passed, failed),
        TestFormat::Junit => junit(&results),
    };
    let _ = out.write_all(text.as_bytes());
    if failed == 0 && !check_errors {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Runs the cases of one test file (`shown` is its path as reported) on a policy.
pub fn run_file(
    policy: &egress_check::CheckedPolicy,
    shown: &str,
    text: &str,
) -> Result<Vec<CaseResult>, Vec<testfile::ParseError>> {
    Ok(testfile::parse(text)?
        .into_iter()
        .map(|case| {
            let failure = match testfile::resolve(policy, &case.expectation) {
                Err(message) => Some(message),
                Ok(expectation) => match expect::check(policy, &expectation) {
                    Outcome::Pass => None,
                    Outcome::Fail { message, .. } => Some(message),
                },
            };
            CaseResult {
                file: shown.to_string(),
                case,
                failure,
            }
        })
        .collect())
}

/// One line per failing case, then the summary.
pub fn human(results: &[CaseResult], passed: usize, failed: usize) -> String {
    let mut out = String::new();
    for r in results {
        if let Some(why) = &r.failure {
            out.push_str(&format!(
                "FAIL {}:{} [{}] {}: {why}\n",
                r.file, r.case.line, r.case.test, r.case.text
            ));
        }
    }
    out.push_str(&format!("{passed} passed, {failed} failed\n"));
    out
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one `testsuite` per test file, one `testcase` per expectation, with the
/// test block's name as `classname`. Valid against `tests/junit/junit.xsd`.
pub fn junit(results: &[CaseResult]) -> String {
    let mut files: Vec<&str> = results.iter().map(|r| r.file.as_str()).collect();
    files.dedup();
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"egc test\" tests=\"{}\" failures=\"{failed}\" errors=\"0\">\n",
        results.len()
    ));
    for file in files {
        let cases: Vec<&CaseResult> = results.iter().filter(|r| r.file == file).collect();
        let file_failed = cases.iter().filter(|r| r.failure.is_some()).count();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{file_failed}\" errors=\"0\" skipped=\"0\">\n",
            xml_escape(file),
            cases.len()
        ));
        for r in cases {
            let open = format!(
                "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" line=\"{}\"",
                xml_escape(&r.case.text),
                xml_escape(&r.case.test),
                xml_escape(&r.file),
                r.case.line
            );
            match &r.failure {
                None => out.push_str(&format!("{open}/>\n")),
                Some(why) => out.push_str(&format!(
                    "{open}>\n      <failure message=\"{}\" type=\"expectation\">{}</failure>\n    </testcase>\n",
                    xml_escape(why),
                    xml_escape(why)
                )),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
