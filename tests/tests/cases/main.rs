//! Data-driven suites with one trial per case file (libtest-mimic): adding a case is
//! adding a file, and `cargo test -p egc-tests --test cases -- NAME` runs one case.
//!
//! - `baseline`: `tests/baseline/*.toml`, accepted risks with a fixed "now" applied to
//!   `tests/baseline/policy/`.
//! - `boundary`: `tests/boundary/*.egress` verified within `tests/boundary/boundary/`, and
//!   each example within `examples/boundaries/NAME`.
//! - `egctest`: `egc test` on `tests/egctest/tests/*.egtest`, JUnit validated against
//!   `tests/junit/junit.xsd`; each example's `tests/*.egtest` pass.
//! - `graph`: `egc graph` DOT and Mermaid snapshots, SVG parsed as XML.
//! - `sbom`: `egc sbom import` on `tests/sbom/import/*.json` (each validated against its
//!   vendored schema in `tests/schemas/`), `sbom-justified` on `tests/sbom/verify/*/`,
//!   `egc sbom diff` on `tests/sbom/diff/`, and the `sbom-registries` example.
//! - `suggest`: `egc suggest` on `tests/suggest/NAME/` (`events.jsonl`, `policy/`).
//! - `ui`: `tests/ui/*.egress` and `tests/ui/*/`, checked against their `// expect:` codes
//!   and their snapshots in `tests/ui/snapshots/`.
//! - `codes`: the guard that every registered diagnostic code has a case.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod baseline;
mod boundary;
mod codes;
mod egctest;
mod graph;
mod sbom;
mod suggest;
mod ui;

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Trial};

/// The files of `dir` with extension `ext`, sorted.
pub fn case_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// The example policies: each directory of `examples/` but `boundaries/`.
pub fn examples() -> Vec<PathBuf> {
    let dir = egc_tests::repo_root().join("examples");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.ends_with("boundaries"))
        .collect();
    out.sort();
    out
}

/// Snapshots of the suites live in `tests/snapshots/<suite>/`.
pub fn snapshot(suite: &str, name: &str, value: &str) {
    insta::with_settings!({
        snapshot_path => egc_tests::repo_root().join("tests/snapshots").join(suite),
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name.to_string(), value);
    });
}

fn main() {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = Vec::new();
    trials.extend(baseline::trials());
    trials.extend(boundary::trials());
    trials.extend(egctest::trials());
    trials.extend(graph::trials());
    trials.extend(sbom::trials());
    trials.extend(suggest::trials());
    trials.extend(ui::trials());
    trials.extend(codes::trials());
    libtest_mimic::run(&args, trials).exit();
}
