//! Shared helpers for the data-driven tests: locating the repository, loading a case (a
//! file or a directory) into an in-memory source, and rendering diagnostics exactly as
//! `egc check` does, without colour.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use egress_check::{CheckResult, FileSource, ReadError};

/// Files as bytes, so a case can hold a file that is not UTF-8.
struct BytesSource(BTreeMap<String, Vec<u8>>);

impl FileSource for BytesSource {
    fn read(&self, path: &str) -> Result<String, ReadError> {
        let bytes = self.0.get(path).ok_or(ReadError::NotFound)?;
        String::from_utf8(bytes.clone()).map_err(|_| ReadError::NotUtf8)
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Every `.egress` file below `dir`, sorted, as paths relative to `base`.
pub fn egress_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "egress") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Loads a case: a single `.egress` file, or a directory whose direct `.egress` files are
/// the roots (subdirectories may hold files they import). Returns the check result.
pub fn check_case(case: &Path) -> CheckResult {
    let mut files = BTreeMap::new();
    let mut roots = Vec::new();
    if case.is_dir() {
        for file in egress_files(case) {
            let relative = file
                .strip_prefix(case)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            let text = std::fs::read(&file).unwrap_or_default();
            if !relative.contains('/') {
                roots.push(relative.clone());
            }
            files.insert(relative, text);
        }
    } else {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.insert(name.clone(), std::fs::read(case).unwrap_or_default());
        roots.push(name);
    }
    egress_check::check(&BytesSource(files), &roots)
}

/// Renders all diagnostics of a result as `egc check` does (no colour).
pub fn render(result: &CheckResult) -> String {
    let mut out = Vec::new();
    egc::render::human::diagnostics(result, &result.diagnostics, false, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The codes a case expects, from `// expect: E0010, W0001` lines.
pub fn expected_codes(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("// expect:"))
        .flat_map(|rest| rest.split(',').map(|c| c.trim().to_string()))
        .filter(|c| !c.is_empty())
        .collect()
}
