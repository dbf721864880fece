//! The code guard: every registered diagnostic code (`egress_syntax::diagnostic::CODES`)
//! has at least one case, so a new code cannot be added without one. A code is covered
//! when
//!
//! - a `tests/ui` case produces it (required for the parser's and checker's codes,
//!   E0001-E0099 and W0001-W0099);
//! - a snapshot that a data-driven suite asserts shows it (`tests/lower/snapshots/`, the
//!   verifier's `tests/tests/snapshots/`, `tests/snapshots/`);
//! - a test in [`ASSERTED`] asserts it (the file must spell the code and the test); or
//! - it is a run-time code listed in [`RUNTIME`], tested where a kernel is available.
//!
//! Besides, E0150 (the eBPF program's rule limit, pure map computation) has its trial here.

use std::collections::BTreeSet;
use std::path::Path;

use egc_tests::repo_root;
use libtest_mimic::Trial;

/// Codes asserted by a test rather than a case file: (code, file, test). The guard checks
/// that the file names both the code (quoted) and the test.
const ASSERTED: &[(&str, &str, &str)] = &[
    (
        "E0102",
        "crates/egress-lower/tests/lower.rs",
        "cilium_multi_label_wildcard_depends_on_version",
    ),
    (
        "E0111",
        "crates/egress-lower/tests/lower.rs",
        "nftables_validation_catches_tampered_rulesets",
    ),
    (
        "E0120",
        "crates/egress-lower/tests/lower.rs",
        "validation_catches_tampered_artifacts",
    ),
    (
        "E0121",
        "crates/egress-lower/tests/lower.rs",
        "validation_catches_tampered_artifacts",
    ),
    (
        "E0122",
        "crates/egress-lower/tests/lower.rs",
        "undecidable_validation_is_e0122",
    ),
    (
        "E0150",
        "tests/tests/cases/codes.rs",
        "codes::E0150-too-many-port-ranges",
    ),
    (
        "W0104",
        "tests/tests/verify_cases.rs",
        "a_solver_timeout_is_unknown_never_verified",
    ),
];

/// Run-time codes of `egc run` that need a kernel (root, cgroup v2, eBPF, Landlock) to
/// happen at all: (code, file, trial, why). They are asserted by the attack suite, which
/// runs as root; the guard checks that the file names the code and the trial.
const RUNTIME: &[(&str, &str, &str, &str)] = &[
    (
        "E0152",
        "crates/egc/tests/attacks.rs",
        "unapproved-net-raw",
        "`egc run` refuses an unapproved bypass capability after it needs root",
    ),
    (
        "E0153",
        "crates/egc/tests/attacks.rs",
        "no-landlock-shared-uid",
        "raised by the runtime when Landlock is off for a user with other processes",
    ),
    (
        "E0154",
        "crates/egc/tests/attacks.rs",
        "changed-script-refused",
        "raised by the runtime when the program's digest is checked before exec",
    ),
    (
        "E0155",
        "crates/egc/tests/attacks.rs",
        "names-without-resolver",
        "`egc run` decides it after `require_root` and the agent's maps",
    ),
];

/// Whether `text` names `code` as a whole word (not as part of a longer code or number).
fn mentions(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// The text of every `.snap` file below `dir`.
fn snapshots(dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            snapshots(&path, out);
        } else if path.extension().is_some_and(|e| e == "snap") {
            out.push(std::fs::read_to_string(&path).unwrap());
        }
    }
}

fn guard() -> Result<(), String> {
    let root = repo_root();
    let produced = crate::ui::codes_produced();
    let mut snaps = Vec::new();
    for dir in [
        "tests/lower/snapshots",
        "tests/tests/snapshots",
        "tests/snapshots",
    ] {
        snapshots(&root.join(dir), &mut snaps);
    }
    let mut problems = Vec::new();
    for (file, test, code) in ASSERTED
        .iter()
        .map(|(c, f, t)| (f, t, c))
        .chain(RUNTIME.iter().map(|(c, f, t, _)| (f, t, c)))
    {
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        if !text.contains(&format!("{code}\"")) && !text.contains(&format!("[{code}]")) {
            problems.push(format!("{file} does not assert {code}"));
        }
        if !text.contains(*test) {
            problems.push(format!("{file} has no test `{test}` (listed for {code})"));
        }
    }
    let listed: BTreeSet<&str> = ASSERTED
        .iter()
        .map(|(c, _, _)| *c)
        .chain(RUNTIME.iter().map(|(c, _, _, _)| *c))
        .collect();
    for (code, title) in egress_syntax::diagnostic::CODES {
        // The parser's and checker's codes (E0001-E0099, W0001-W0099) each need a ui case.
        let checker = code
            .get(1..)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n < 100);
        if checker && !produced.contains(code) {
            problems.push(format!("no tests/ui case produces {code} ({title})"));
            continue;
        }
        let covered = produced.contains(code)
            || snaps.iter().any(|s| mentions(s, code))
            || listed.contains(code);
        if !covered {
            problems.push(format!(
                "{code} ({title}) has no case: add a tests/ui or tests/lower case, or a test \
                 listed in tests/tests/cases/codes.rs"
            ));
        }
    }
    for code in &listed {
        if !egress_syntax::diagnostic::CODES
            .iter()
            .any(|(c, _)| c == code)
        {
            problems.push(format!("{code} is listed but not registered"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// E0150: more distinct port ranges for one address prefix than the eBPF program's entry
/// holds (32) is refused, never truncated.
fn too_many_port_ranges() {
    let ports: Vec<String> = (0..33).map(|i| (1000 + 2 * i).to_string()).collect();
    let text = format!(
        "import std.sys\n\ndestination many {{\n    cidr 10.1.2.0/24\n    port {}\n}}\n\n\
         capability call {{\n    connect many\n    syscalls sys.process_base, sys.network_client\n}}\n\n\
         agent bot {{\n    uses call\n}}\n",
        ports.join(", ")
    );
    let result = egress_check::check_sources(&[("many.egress", text.as_str())]);
    let policy = result
        .policy
        .as_ref()
        .unwrap_or_else(|| panic!("{:#?}", result.diagnostics));
    let errors = egress_enforce::maps::lower(policy, "bot").unwrap_err();
    assert!(
        errors.iter().any(|d| d.code == "E0150"),
        "{:?}",
        errors.iter().map(|d| d.code).collect::<Vec<_>>()
    );
    // 32 ranges fit.
    let fits = text.replace(", 1064\n", "\n");
    assert_ne!(fits, text);
    let result = egress_check::check_sources(&[("many.egress", fits.as_str())]);
    egress_enforce::maps::lower(result.policy.as_ref().unwrap(), "bot").unwrap();
}

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("codes::every-code-has-a-case", || {
            guard().map_err(Into::into)
        }),
        Trial::test("codes::E0150-too-many-port-ranges", || {
            too_many_port_ranges();
            Ok(())
        }),
    ]
}
