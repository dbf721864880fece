//! Diagnostics as you type: the checker's, for the files of the edited file's policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use egress_syntax::Diagnostic;

use crate::db::{span_range, FileContext, Project};
use crate::{normalize, Analysis, FileRange, TextEdit, TextRange};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// A secondary location of a diagnostic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelatedInfo {
    pub location: FileRange,
    pub message: String,
}

/// A diagnostic in one file, in plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDiagnostic {
    pub range: TextRange,
    pub severity: Severity,
    /// A stable code such as `E0010` (`egc explain CODE`), or a verifier property id.
    pub code: String,
    /// The message, with the label and the help line when there are any.
    pub message: String,
    pub related: Vec<RelatedInfo>,
    /// A machine-applicable fix in this file.
    pub fix: Option<(String, TextEdit)>,
}

impl Analysis {
    /// Diagnostics of one file: parse and check problems of its policy located in it.
    pub fn diagnostics(&self, path: &Path) -> Vec<FileDiagnostic> {
        let path = normalize(path);
        self.policy_diagnostics(&path)
            .remove(&path)
            .unwrap_or_default()
    }

    /// Diagnostics of every file of the policy `path` belongs to (its directory's
    /// `.egress` files), every file present (possibly with an empty list), so a client can
    /// publish them all and clear fixed ones.
    pub fn policy_diagnostics(&self, path: &Path) -> BTreeMap<PathBuf, Vec<FileDiagnostic>> {
        let path = normalize(path);
        let project = self.project_of(&path);
        let result = self.check_project(&project);
        let mut out: BTreeMap<PathBuf, Vec<FileDiagnostic>> = BTreeMap::new();
        for rel in crate::db::policy_roots(self, &project) {
            let abs = project.root.join(&rel);
            let loaded = result.files.iter().find(|f| !f.is_stdlib && f.path == rel);
            let diagnostics: Vec<FileDiagnostic> = match loaded {
                Some(file) => result
                    .diagnostics
                    .iter()
                    .filter(|d| d.span.file == file.id)
                    .map(|d| self.convert(&project, &result, d))
                    .collect(),
                None => {
                    // The checker did not load this file (it could not get that far):
                    // report the parse problems at least.
                    let Some(text) = self.file_text(&abs) else {
                        continue;
                    };
                    let parsed = self.parse_cached(&text);
                    parsed
                        .diagnostics
                        .iter()
                        .map(|d| convert_local(d, &abs))
                        .collect()
                }
            };
            out.insert(abs, diagnostics);
        }
        out
    }

    fn convert(
        &self,
        project: &Project,
        result: &egress_check::CheckResult,
        diagnostic: &Diagnostic,
    ) -> FileDiagnostic {
        let related = diagnostic
            .labels
            .iter()
            .filter_map(|label| {
                Some(RelatedInfo {
                    location: self.span_location(project, result, label.span)?,
                    message: label.message.clone(),
                })
            })
            .collect();
        FileDiagnostic {
            range: span_range(diagnostic.span),
            severity: severity(diagnostic),
            code: diagnostic.code.to_string(),
            message: message(diagnostic),
            related,
            fix: fix(diagnostic),
        }
    }
}

fn convert_local(diagnostic: &Diagnostic, path: &Path) -> FileDiagnostic {
    let related = diagnostic
        .labels
        .iter()
        .map(|label| RelatedInfo {
            location: FileRange {
                file: crate::FileRef::Path(path.to_path_buf()),
                range: span_range(label.span),
            },
            message: label.message.clone(),
        })
        .collect();
    FileDiagnostic {
        range: span_range(diagnostic.span),
        severity: severity(diagnostic),
        code: diagnostic.code.to_string(),
        message: message(diagnostic),
        related,
        fix: fix(diagnostic),
    }
}

fn severity(diagnostic: &Diagnostic) -> Severity {
    if diagnostic.is_error() {
        Severity::Error
    } else {
        Severity::Warning
    }
}

fn message(diagnostic: &Diagnostic) -> String {
    let mut message = diagnostic.message.clone();
    if !diagnostic.label.is_empty() && diagnostic.label != diagnostic.message {
        message.push_str(": ");
        message.push_str(&diagnostic.label);
    }
    if let Some(help) = &diagnostic.help {
        message.push_str("\nhelp: ");
        message.push_str(help);
    }
    message
}

fn fix(diagnostic: &Diagnostic) -> Option<(String, TextEdit)> {
    let suggestion = diagnostic.suggestion.as_ref()?;
    if suggestion.span.file != diagnostic.span.file {
        return None;
    }
    Some((
        suggestion.title.clone(),
        TextEdit {
            range: span_range(suggestion.span),
            new_text: suggestion.replacement.clone(),
        },
    ))
}

impl FileContext {
    /// The diagnostics of this file (for code actions).
    pub(crate) fn own_diagnostics(&self) -> Vec<&Diagnostic> {
        match self.file_id {
            Some(id) => self
                .result
                .diagnostics
                .iter()
                .filter(|d| d.span.file == id)
                .collect(),
            None => self.parsed.diagnostics.iter().collect(),
        }
    }
}
