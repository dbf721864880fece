//! Shared helpers: loading a policy directory and rendering builds for snapshots.

use std::path::{Path, PathBuf};

use egress_check::{CheckResult, CheckedPolicy, FileSource, ReadError};
use egress_lower::{Build, Diagnostic, Target};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The schemas vendored in the repository (`tests/schemas/`, see its README).
pub fn vendored_schemas() -> PathBuf {
    repo_root().join("tests/schemas")
}

struct Disk(PathBuf);

impl FileSource for Disk {
    fn read(&self, path: &str) -> Result<String, ReadError> {
        std::fs::read_to_string(self.0.join(path)).map_err(|_| ReadError::NotFound)
    }
}

/// Checks the policy made of the `.egress` files directly in `dir`.
pub fn load_case(dir: &Path) -> (CheckResult, Option<CheckedPolicy>) {
    let root = repo_root();
    let mut roots: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "egress"))
        .map(|p| {
            p.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    roots.sort();
    let result = egress_check::check(&Disk(root), &roots);
    let policy = result.policy.clone();
    (result, policy)
}

fn location(result: &CheckResult, d: &Diagnostic) -> String {
    let Some(file) = result.file(d.span.file) else {
        return "?".into();
    };
    let start = (d.span.start as usize).min(file.text.len());
    let line = file.text[..start].matches('\n').count() + 1;
    let path = file.path.rsplit('/').next().unwrap_or(&file.path);
    format!("{path}:{line}")
}

pub fn render_diagnostics(result: &CheckResult, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&format!(
            "{} {} {}: {}\n",
            d.severity.as_str(),
            d.code,
            location(result, d),
            d.message
        ));
    }
    out
}

pub fn render_build(
    result: &CheckResult,
    target: Target,
    build: &Result<Build, Vec<Diagnostic>>,
) -> String {
    match build {
        Err(diags) => format!(
            "=== {target}: refused ===\n{}\n",
            render_diagnostics(result, diags)
        ),
        Ok(build) => {
            let mut out = format!("=== {target}: ok ===\n");
            out.push_str(&render_diagnostics(result, &build.warnings));
            for (name, text) in &build.files {
                out.push_str(&format!("--- {name} ---\n{text}"));
            }
            out.push('\n');
            out
        }
    }
}
