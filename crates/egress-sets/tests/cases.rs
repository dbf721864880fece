//! Data-driven set-algebra cases (`tests/sets/*.egress`): one trial per file. Each case
//! declares destinations `a` and `b`; the trial answers `a \ b`, `b \ a` and `a ∩ b`,
//! replays every witness through the concrete evaluator, and compares with the snapshot.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use egress_check::Destination;
use egress_sets::routes::dest_contains;
use egress_sets::ConnectionSet;
use libtest_mimic::{Arguments, Failed, Trial};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sets")
}

fn answer(name: &str, text: &str) -> Result<String, Failed> {
    let result = egress_check::check_sources(&[(&format!("{name}.egress"), text)]);
    let policy = result
        .policy
        .ok_or_else(|| format!("{name}: check errors: {:#?}", result.diagnostics))?;
    let find = |n: &str| -> Result<&Destination, Failed> {
        policy
            .destinations
            .iter()
            .find(|d| d.name.local == n)
            .ok_or_else(|| format!("{name}: no destination `{n}`").into())
    };
    let (a, b) = (find("a")?, find("b")?);
    let (sa, sb) = (
        ConnectionSet::from_destination(a),
        ConnectionSet::from_destination(b),
    );
    let mut out = String::new();
    for (label, left, right, l, r) in [("a \\ b", &sa, &sb, a, b), ("b \\ a", &sb, &sa, b, a)] {
        match left.difference_witness(right) {
            Err(_) => writeln!(out, "{label}: undecided (budget)").unwrap(),
            Ok(None) => writeln!(out, "{label}: empty").unwrap(),
            Ok(Some(w)) => {
                if !dest_contains(l, &w) || dest_contains(r, &w) {
                    return Err(format!("{name}: {label} witness {w} does not replay").into());
                }
                writeln!(out, "{label}: {w}").unwrap();
            }
        }
    }
    match sa.intersection_witness(&sb) {
        Err(_) => writeln!(out, "a ∩ b: undecided (budget)").unwrap(),
        Ok(None) => writeln!(out, "a ∩ b: empty").unwrap(),
        Ok(Some(w)) => {
            if !dest_contains(a, &w) || !dest_contains(b, &w) {
                return Err(format!("{name}: a ∩ b witness {w} does not replay").into());
            }
            writeln!(out, "a ∩ b: {w}").unwrap();
        }
    }
    Ok(out)
}

fn main() {
    let args = Arguments::from_args();
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "egress"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in tests/sets");
    let trials = files
        .into_iter()
        .map(|file| {
            let name = file.file_stem().unwrap().to_string_lossy().into_owned();
            Trial::test(name.clone(), move || {
                let text = std::fs::read_to_string(&file)?;
                let out = answer(&name, &text)?;
                let mut settings = insta::Settings::clone_current();
                settings.set_snapshot_path(
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots"),
                );
                settings.set_prepend_module_to_snapshot(false);
                settings.bind(|| insta::assert_snapshot!(name.clone(), out));
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
