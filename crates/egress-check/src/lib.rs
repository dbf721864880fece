//! Modules and imports over a file-source trait, name resolution, types, and the checked
//! policy model. No I/O: files come in through [`FileSource`].
//!
//! **API boundary:** [`check`] (and [`check_sources`] for tests) is the only way to build a
//! [`CheckedPolicy`]. The policy is `Some` exactly when there is no error diagnostic.

mod checker;
pub mod model;
pub mod stdlib;
mod suggest;
pub mod syscalls;
mod values;

pub use suggest::closest;
pub use values::{base64_decode, format_duration, host_pattern_of};

use std::collections::BTreeMap;
use std::sync::Arc;

pub use egress_syntax::{Diagnostic, FileId, Severity, Span};
pub use model::*;

/// Where the checker reads project files from. Paths are project-relative, `/`-separated
/// and normalised (no `.` or `..` components).
pub trait FileSource {
    fn read(&self, path: &str) -> Result<String, ReadError>;
}

/// Why a file could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    NotFound,
    NotUtf8,
    TooLarge(u64),
    Io(String),
}

/// An in-memory file source, for tests and the language server.
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    pub files: BTreeMap<String, String>,
}

impl FileSource for MemorySource {
    fn read(&self, path: &str) -> Result<String, ReadError> {
        self.files.get(path).cloned().ok_or(ReadError::NotFound)
    }
}

/// A file that took part in a check, with its text (for rendering diagnostics).
#[derive(Clone, Debug)]
pub struct LoadedFile {
    pub id: FileId,
    /// Project-relative path, or `std/NAME.egress` for a stdlib module.
    pub path: String,
    pub text: Arc<str>,
    pub is_stdlib: bool,
    /// Line starts of `text`, for position conversions: built the first time a
    /// position is asked for (a run that reports nothing never needs them).
    lines: Arc<std::sync::OnceLock<egress_syntax::LineIndex>>,
}

impl LoadedFile {
    pub fn new(id: FileId, path: String, text: Arc<str>, is_stdlib: bool) -> LoadedFile {
        LoadedFile {
            id,
            path,
            text,
            is_stdlib,
            lines: Arc::default(),
        }
    }

    /// The line index of `text`.
    pub fn lines(&self) -> &egress_syntax::LineIndex {
        self.lines
            .get_or_init(|| egress_syntax::LineIndex::new(&self.text))
    }

    /// Zero-based (line, column in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        self.lines().line_col(&self.text, offset)
    }
}

#[derive(Clone, Debug)]
pub struct CheckResult {
    /// Indexed by `FileId`.
    pub files: Vec<LoadedFile>,
    /// Sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// `Some` exactly when no diagnostic is an error.
    pub policy: Option<CheckedPolicy>,
    /// Every declared name (also when there are errors), for editors.
    pub symbols: Vec<Symbol>,
    /// Every resolved reference from a use to a declaration, for editors.
    pub references: Vec<Reference>,
}

/// A declaration, as editors see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// `destination`, `agent`, `capability`, `workflow`, `exception`, `authority`, `zone`,
    /// `assert`, `data`, `syscalls`, `capset` or `import`.
    pub kind: &'static str,
    pub local: String,
    pub qualified: String,
    /// The span of the name.
    pub name_span: Span,
    /// The span of the whole item.
    pub item_span: Span,
    pub doc: Option<String>,
}

/// A name used at `span` that resolves to the declaration whose name is at `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub span: Span,
    pub target: Span,
    pub kind: &'static str,
    pub qualified: String,
}

impl CheckResult {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.is_error())
    }
    pub fn file(&self, id: FileId) -> Option<&LoadedFile> {
        self.files.get(id.0 as usize)
    }
}

/// Checks the policy made of `roots` (project-relative paths) and everything they import.
/// The result has the editor data (`symbols`, `references`).
pub fn check(source: &dyn FileSource, roots: &[String]) -> CheckResult {
    check_with(source, roots, true)
}

/// [`check`] without the editor data when `editor_data` is false: `symbols` and
/// `references` stay empty (a name and a qualified name per declaration and per use that
/// the command line never reads). Diagnostics and the policy are the same.
pub fn check_without_editor_data(source: &dyn FileSource, roots: &[String]) -> CheckResult {
    check_with(source, roots, false)
}

/// The diagnostics of [`check`] without building a policy: `policy` is always `None`
/// (also when there is no error), and `symbols` and `references` stay empty. The model is
/// dropped as it is built, keeping only what the whole-policy checks read, so a large
/// policy is checked in far less memory. What `egc check` calls.
pub fn check_diagnostics(source: &dyn FileSource, roots: &[String]) -> CheckResult {
    let mut checker = checker::Checker::new(source, false);
    checker.keep_model = false;
    checker.load_roots(roots);
    checker.collect();
    checker.build();
    checker.finish()
}

fn check_with(source: &dyn FileSource, roots: &[String], editor_data: bool) -> CheckResult {
    let mut checker = checker::Checker::new(source, editor_data);
    checker.load_roots(roots);
    checker.collect();
    checker.build();
    checker.finish()
}

/// [`check`] with the large kinds built in runs of at most `run` items; without the
/// model ([`check_diagnostics`]) when `keep_model` is false.
#[cfg(test)]
fn check_in_runs(
    source: &dyn FileSource,
    roots: &[String],
    run: usize,
    keep_model: bool,
    editor_data: bool,
) -> CheckResult {
    let mut checker = checker::Checker::new(source, editor_data);
    checker.keep_model = keep_model;
    checker.load_roots(roots);
    checker.collect();
    checker.build_in_runs(run);
    checker.finish()
}

/// Checks in-memory files; every file is a root. For tests.
pub fn check_sources(files: &[(&str, &str)]) -> CheckResult {
    let source = MemorySource {
        files: files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect(),
    };
    let roots: Vec<String> = files.iter().map(|(p, _)| p.to_string()).collect();
    check(&source, &roots)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Building the large kinds in runs, each run by its own builder on any core, gives
    /// what one builder gives: the same model (ids, order), diagnostics (order included)
    /// and editor data, with and without errors in every kind, for runs of every size.
    #[test]
    fn runs_change_nothing() {
        use std::fmt::Write as _;
        let policy = |errors: bool| {
            let mut text = String::from(
                "import std.dns\nimport std.caps\ndata pii, financial\n\
                 authority dpo {\n    key \"ed25519:HB1xxhfBQOeXKjqOEIIYtKAPVQPROCNyS7Su0ATE4MA=\"\n    max_ttl 1h\n}\n",
            );
            for i in 0..300 {
                // Capability sets read by the capabilities of every run.
                let _ = writeln!(text, "capset s{i} {{ CAP_CHOWN }}");
                if i % 3 == 0 {
                    // Doc comments (kept whole with the editor data and no model).
                    let _ = writeln!(text, "/// Destination {i}.");
                }
                let _ = writeln!(
                    text,
                    "destination d{i} {{ host \"h{i}.example.com\" port 443 }}\n\
                     capability c{i} {{ connect d{i}, dns.kube_dns grant s{i}, caps.bind_low_ports }}\n\
                     agent a{i} {{ workload namespace \"n\" labels {{ app = \"a{i}\" }} uses c{i} handles pii invokes a{} }}\n\
                     zone z{i} {{ owner \"s\" agents a{i} approve d{i}, dns.kube_dns clear pii to d{i}, dns.kube_dns }}",
                    (i + 1) % 300
                );
                // Inline destinations (numbered after the named ones) in exceptions and
                // assertions.
                if i % 50 == 0 {
                    let _ = writeln!(
                        text,
                        "exception e{i} {{\n    agents {}\n    to {{ host \"x{i}.example.com\" port 443 }}\n    approver dpo\n    max_ttl 15m\n    audit d{i}\n    legal_basis \"a law\"\n}}\n\
                         assert t{i} {{\n    agent a{i} cannot reach {{ host \"y{i}.example.com\" port 80 }}\n}}",
                        // Every agent once (the ids and name spans of all of them).
                        if i == 50 { "*".to_string() } else { format!("a{i}") }
                    );
                }
                if !errors {
                    continue;
                }
                // Unknown names, a zone without agents (built as nothing), a duplicate,
                // a bad port, a capability named where a destination is expected.
                let _ = match i % 37 {
                    3 => writeln!(text, "agent bad{i} {{ uses nothing{i} }}"),
                    5 => writeln!(text, "zone empty{i} {{ owner \"s\" approve d{i} }}"),
                    7 => writeln!(text, "destination d{i} {{ host \"x.example\" port 1 }}"),
                    11 => writeln!(text, "destination p{i} {{ host \"x.example\" port 70000 }}"),
                    13 => writeln!(text, "capability k{i} {{ connect c{i} }}"),
                    _ => Ok(()),
                };
                // What the checks after the runs read of the items a check without the
                // model drops: allowlists too broad (E0026, E0027, W0002, W0003), a
                // capability limited to a workflow that never uses it (W0004), a step
                // using a capability its agent does not have (E0037).
                let _ = match i % 41 {
                    2 => writeln!(
                        text,
                        "destination wide{i} {{ host \"*.com\" cidr 0.0.0.0/0 cidr fd00::/8 port 1-65535 }}\n\
                         capability wc{i} {{ connect wide{i} }}"
                    ),
                    4 => writeln!(
                        text,
                        "capability lim{i} {{ connect d{i} workflows wf{i} }}\n\
                         agent lu{i} {{ uses lim{i}, c{i} }}\n\
                         workflow wf{i} {{ step a{i} uses c{n} step lu{i} uses c{i} \
                         step a{i} invokes a{n} step a{i} invokes lu{i} }}",
                        n = (i + 1) % 300
                    ),
                    _ => Ok(()),
                };
            }
            MemorySource {
                files: [("main.egress".to_string(), text)].into_iter().collect(),
            }
        };
        let roots = vec!["main.egress".to_string()];
        let show = |r: &CheckResult| {
            format!(
                "{:?}\n{:?}\n{:?}\n{:?}",
                r.diagnostics, r.policy, r.symbols, r.references
            )
        };
        for errors in [false, true] {
            let source = policy(errors);
            let whole = check_in_runs(&source, &roots, usize::MAX, true, true);
            assert_eq!(
                whole.policy.is_none(),
                errors,
                "{:?}",
                whole.diagnostics.first()
            );
            if let Some(policy) = &whole.policy {
                // What the runs must agree on is there: grants through capability sets,
                // inline destinations.
                let granted = policy
                    .capabilities
                    .iter()
                    .filter(|c| c.linux_caps.iter().any(|g| g.via.is_some()));
                assert_eq!(granted.count(), 300);
                assert_eq!(policy.destinations.iter().filter(|d| d.inline).count(), 12);
            }
            if errors {
                for code in [
                    "E0010", "E0011", "E0012", "E0017", "E0026", "E0027", "E0037", "E0038",
                    "W0002", "W0003", "W0004",
                ] {
                    assert!(whole.diagnostics.iter().any(|d| d.code == code), "{code}");
                }
            }
            let diagnostics = format!("{:?}", whole.diagnostics);
            let whole = show(&whole);
            for run in [1, 2, 7, 64, 299, 300, usize::MAX] {
                assert_eq!(
                    show(&check_in_runs(&source, &roots, run, true, true)),
                    whole,
                    "runs of {run}, errors: {errors}"
                );
                // Without the model (with and without the editor data, which keeps items
                // with doc comments whole): the same diagnostics, no policy.
                for editor_data in [false, true] {
                    let lean = check_in_runs(&source, &roots, run, false, editor_data);
                    assert!(lean.policy.is_none());
                    assert_eq!(
                        format!("{:?}", lean.diagnostics),
                        diagnostics,
                        "no model, runs of {run}, errors: {errors}, editor data: {editor_data}"
                    );
                }
            }
        }
    }

    /// Without the editor data, a check reports the same diagnostics and builds the same
    /// policy; only `symbols` and `references` are left empty.
    #[test]
    fn editor_data_changes_nothing_else() {
        let valid = "import std.dns\n\ndestination api {\n    host \"api.example.internal\"\n    port 443\n}\n\ncapability call {\n    connect api, dns.kube_dns\n}\n\nagent bot {\n    workload namespace \"n\" labels { app = \"bot\" }\n    uses call\n}\n\nzone z {\n    owner \"security\"\n    agents bot\n    approve api, dns.kube_dns\n}\n";
        let broken = "agent bot {\n    uses missing\n}\ndestination api {\n    host \"api.example.internal\"\n    port 443\n}\ndestination api {\n    port 80\n}\n";
        for text in [valid, broken] {
            let source = MemorySource {
                files: [("p.egress".to_string(), text.to_string())]
                    .into_iter()
                    .collect(),
            };
            let roots = vec!["p.egress".to_string()];
            let full = check(&source, &roots);
            let lean = check_without_editor_data(&source, &roots);
            assert_eq!(full.diagnostics, lean.diagnostics);
            assert_eq!(
                serde_json::to_string(&full.policy).unwrap(),
                serde_json::to_string(&lean.policy).unwrap()
            );
            assert!(!full.symbols.is_empty());
            assert!(lean.symbols.is_empty() && lean.references.is_empty());
        }
    }
}
