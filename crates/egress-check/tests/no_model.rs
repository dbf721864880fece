//! A check that keeps no model (`check_diagnostics`, what `egc check` runs) reports
//! exactly what a check that builds the policy reports, on every policy of the
//! repository: each `.egress` file under `examples/`, `tests/`, `stdlib/` and `book/`
//! alone (as the UI cases are checked) and each directory of them together (as
//! `egc check DIR` groups them), with imports read from disk.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use egress_check::{check_diagnostics, check_without_editor_data, FileSource, ReadError};

struct Disk(PathBuf);

impl FileSource for Disk {
    fn read(&self, path: &str) -> Result<String, ReadError> {
        match std::fs::read(self.0.join(path)) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ReadError::NotFound),
            Err(e) => Err(ReadError::Io(e.to_string())),
        }
    }
}

/// Every directory under `dir` that holds `.egress` files, with those files (paths
/// relative to `root`).
fn policies(root: &Path, dir: &Path, out: &mut Vec<Vec<String>>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut files = Vec::new();
    for path in entries {
        if path.is_dir() {
            policies(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "egress") {
            let relative = path.strip_prefix(root).unwrap();
            files.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    if files.len() > 1 {
        out.extend(files.iter().map(|f| vec![f.clone()]));
    }
    if !files.is_empty() {
        out.push(files);
    }
}

#[test]
fn no_model_reports_what_a_full_check_reports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap();
    let mut all = Vec::new();
    for dir in ["examples", "tests", "stdlib", "book"] {
        if root.join(dir).is_dir() {
            policies(&root, &root.join(dir), &mut all);
        }
    }
    assert!(all.len() > 150, "found {} policies", all.len());
    let source = Disk(root.clone());
    let mut with_errors = 0;
    for roots in &all {
        let full = check_without_editor_data(&source, roots);
        let lean = check_diagnostics(&source, roots);
        assert_eq!(
            format!("{:?}", lean.diagnostics),
            format!("{:?}", full.diagnostics),
            "{roots:?}"
        );
        assert!(lean.policy.is_none(), "{roots:?}");
        let paths = |r: &egress_check::CheckResult| -> Vec<String> {
            r.files.iter().map(|f| f.path.clone()).collect()
        };
        assert_eq!(paths(&lean), paths(&full), "{roots:?}");
        with_errors += usize::from(full.has_errors());
    }
    // Both kinds are covered.
    assert!(
        with_errors > 20 && with_errors < all.len(),
        "{with_errors} of {}",
        all.len()
    );
}
