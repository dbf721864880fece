//! Verifier results as diagnostics: each violation at the step where it happens, with the
//! whole counterexample path as related information.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use egress_check::CheckResult;
use egress_verify::{Report, Verdict, VerifyConfig};

use crate::db::{span_range, Project};
use crate::diagnostics::{FileDiagnostic, RelatedInfo, Severity};
use crate::{normalize, Analysis, FileRef, TextRange};

/// Z3's time limit per question in the editor, in milliseconds.
const EDITOR_TIMEOUT_MS: u64 = 5_000;

impl Analysis {
    /// Runs the verifier on the policy `path` belongs to (when it checks without errors)
    /// and returns its findings per file of the policy, every file present. The report is
    /// cached with the check result it was computed from.
    pub fn verify_policy(&self, path: &Path) -> BTreeMap<PathBuf, Vec<FileDiagnostic>> {
        let path = normalize(path);
        let project = self.project_of(&path);
        let result = self.check_project(&project);
        let report = self.verification(&project, &result, true);
        self.verification_diagnostics(&project, &result, report.as_deref())
    }

    /// The findings of the last verification of `path`'s policy, if its inputs have not
    /// changed since (no verifier run).
    pub fn cached_verification(&self, path: &Path) -> BTreeMap<PathBuf, Vec<FileDiagnostic>> {
        let path = normalize(path);
        let project = self.project_of(&path);
        let result = self.check_project(&project);
        let report = self.verification(&project, &result, false);
        self.verification_diagnostics(&project, &result, report.as_deref())
    }

    fn verification(
        &self,
        project: &Project,
        result: &Arc<CheckResult>,
        run: bool,
    ) -> Option<Arc<Report>> {
        let key = (project.root.clone(), project.dir.clone());
        if let Some((checked, report)) = self.state.verification(&key) {
            if Arc::ptr_eq(&checked, result) {
                return Some(report);
            }
        }
        if !run {
            return None;
        }
        let policy = result.policy.as_ref()?;
        let config = VerifyConfig {
            timeout_ms: EDITOR_TIMEOUT_MS,
            ..VerifyConfig::default()
        };
        // Only the agents an edit touched are verified again.
        let memo = self.state.memo(&key);
        let (report, memo) = egress_verify::verify_incremental(policy, None, &config, &memo);
        let report = Arc::new(report);
        self.state
            .store_verification(key, result.clone(), report.clone(), memo);
        Some(report)
    }

    fn verification_diagnostics(
        &self,
        project: &Project,
        result: &CheckResult,
        report: Option<&Report>,
    ) -> BTreeMap<PathBuf, Vec<FileDiagnostic>> {
        let mut out: BTreeMap<PathBuf, Vec<FileDiagnostic>> =
            crate::db::policy_roots(self, project)
                .into_iter()
                .map(|rel| (project.root.join(rel), Vec::new()))
                .collect();
        let Some(report) = report else {
            return out;
        };
        for violation in &report.violations {
            let steps: Vec<(crate::FileRange, String)> = violation
                .path
                .iter()
                .enumerate()
                .filter_map(|(i, node)| {
                    let location = self.span_location(project, result, node.span)?;
                    Some((location, format!("{}. {}", i + 1, node.note)))
                })
                .collect();
            // Shown where it happens: the last step in a file of this policy.
            let primary = steps
                .iter()
                .rev()
                .find_map(|(location, _)| match &location.file {
                    FileRef::Path(p) if out.contains_key(p) => Some((p.clone(), location.range)),
                    _ => None,
                });
            let (file, range) = match primary {
                Some(primary) => primary,
                None => match out.keys().next() {
                    Some(first) => (first.clone(), TextRange::new(0, 0)),
                    None => continue,
                },
            };
            let mut message = violation.message.clone();
            if !violation.conditions.is_empty() {
                message.push_str(&format!("\nwhen: {}", violation.conditions.join("; ")));
            }
            let related = steps
                .into_iter()
                .map(|(location, message)| RelatedInfo { location, message })
                .collect();
            if let Some(list) = out.get_mut(&file) {
                list.push(FileDiagnostic {
                    range,
                    severity: Severity::Error,
                    code: violation.property.to_string(),
                    message,
                    related,
                    fix: None,
                });
            }
        }
        // A property the verifier could not decide is never a pass: say so.
        for property in &report.properties {
            if property.status != Verdict::Unknown {
                continue;
            }
            if let Some(list) = out.values_mut().next() {
                list.push(FileDiagnostic {
                    range: TextRange::new(0, 0),
                    severity: Severity::Warning,
                    code: property.id.to_string(),
                    message: format!(
                        "the verifier could not decide `{}` within its time limit: it is unknown, not verified",
                        property.id
                    ),
                    related: Vec::new(),
                    fix: None,
                });
            }
        }
        for warning in &report.warnings {
            let Some(location) = self.span_location(project, result, warning.span) else {
                continue;
            };
            let FileRef::Path(file) = &location.file else {
                continue;
            };
            if let Some(list) = out.get_mut(file) {
                list.push(FileDiagnostic {
                    range: span_range(warning.span),
                    severity: Severity::Warning,
                    code: warning.code.to_string(),
                    message: warning.message.clone(),
                    related: Vec::new(),
                    fix: None,
                });
            }
        }
        out
    }
}
