//! Lowering of checked policies to enforcement artifacts, and translation validation.
//!
//! Each target module exposes a pure `lower(&CheckedPolicy, &TargetConfig) ->
//! Result<Artifacts, Vec<Diagnostic>>` and a `decode(&CheckedPolicy, &Artifacts)` that reads
//! the emitted files back with that target's own semantics. [`validate`] compares what an
//! artifact allows with what the policy allows, agent by agent, with exact set algebra
//! ([`sets`]): equal passes, narrower passes only when every narrowing was declared by
//! the lowering (as a warning), wider is an error.
//!
//! **API boundary:** [`lower`], [`validate`], [`build`], [`Target`], [`TargetConfig`],
//! [`Artifacts`]; codes are registered in `egress_syntax::diagnostic::CODES`. No I/O: artifacts are returned as file names and bytes.
//!
//! **Architecture invariant:** nothing here widens silently. What a target cannot express
//! exactly is refused with a coded diagnostic or narrowed with a coded warning.

pub mod backend;
pub mod cilium;
pub mod ebpf;
pub mod expected;
pub mod k8s;
pub mod nftables;
pub mod seccomp;

use std::collections::BTreeMap;
use std::fmt;

use egress_check::{CheckedPolicy, Span};
pub use egress_syntax::{Diagnostic, Severity};

/// An enforcement target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    K8s,
    Cilium,
    Seccomp,
    Nftables,
    /// The eBPF map contents `egc enforce` and `egc run` load ([`ebpf`]).
    Ebpf,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::K8s,
        Target::Cilium,
        Target::Seccomp,
        Target::Nftables,
        Target::Ebpf,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::K8s => "k8s",
            Target::Cilium => "cilium",
            Target::Seccomp => "seccomp",
            Target::Nftables => "nftables",
            Target::Ebpf => "ebpf",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-target settings. The defaults are the safe ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetConfig {
    pub k8s: K8sConfig,
    pub cilium: CiliumConfig,
    pub seccomp: SeccompConfig,
    pub nftables: NftablesConfig,
    pub validation: ValidationConfig,
}

/// How hard translation validation may search before it gives up (E0122, never a pass).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationConfig {
    /// Search steps per box of a set difference ([`egress_sets::DEFAULT_BUDGET`]).
    pub budget: usize,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            budget: egress_sets::DEFAULT_BUDGET,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sConfig {
    /// The label every emitted object carries, so `kubectl get -l` finds them.
    pub managed_by: String,
}

impl Default for K8sConfig {
    fn default() -> Self {
        K8sConfig {
            managed_by: "egc".to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiliumConfig {
    /// The Cilium version of the cluster, `(major, minor)`. Multi-label wildcards
    /// (`**.`) in `matchPattern` are emitted only for 1.19 and later (earlier versions read `**` as `*`).
    pub version: (u32, u32),
}

impl Default for CiliumConfig {
    fn default() -> Self {
        CiliumConfig { version: (1, 18) }
    }
}

impl CiliumConfig {
    pub fn supports_multi_label_wildcard(&self) -> bool {
        self.version >= (1, 19)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeccompConfig {
    /// Native architectures to emit one profile each for.
    pub architectures: Vec<seccomp::Arch>,
}

impl Default for SeccompConfig {
    fn default() -> Self {
        SeccompConfig {
            architectures: vec![seccomp::Arch::X86_64, seccomp::Arch::Aarch64],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftablesConfig {
    /// The `inet` table the ruleset owns (replaced atomically on load).
    pub table: String,
}

impl Default for NftablesConfig {
    fn default() -> Self {
        NftablesConfig {
            table: "egc_egress".to_string(),
        }
    }
}

/// The files a target emits (relative paths, `/`-separated, under `<target>/`), with the
/// warnings that declare every narrowing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Artifacts {
    pub files: BTreeMap<String, String>,
    /// Warnings: each narrowing of the policy this artifact makes, and why.
    pub notes: Vec<Diagnostic>,
}

/// Lowers a checked policy for one target.
pub fn lower(
    target: Target,
    policy: &CheckedPolicy,
    config: &TargetConfig,
) -> Result<Artifacts, Vec<Diagnostic>> {
    backend::backend(target).lower(policy, config)
}

/// What translation validation found for one target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidationReport {
    /// Agents whose artifact allows exactly what the policy allows (after declared narrowings).
    pub agents_checked: usize,
    /// Warnings declaring narrowings that validation confirmed.
    pub narrowings: Vec<Diagnostic>,
}

/// Decodes the artifacts with the target's semantics and proves them faithful: for every
/// agent, the decoded allowed set must be a subset of the policy's set (else E0120) and
/// must contain the policy's set minus the declared narrowings (else E0121).
pub fn validate(
    target: Target,
    policy: &CheckedPolicy,
    config: &TargetConfig,
    artifacts: &Artifacts,
) -> Result<ValidationReport, Vec<Diagnostic>> {
    backend::validate(backend::backend(target), policy, config, artifacts)
}

/// The result of [`build`]: every file under `<target>/...`, plus warnings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Build {
    pub files: BTreeMap<String, String>,
    pub warnings: Vec<Diagnostic>,
    pub reports: BTreeMap<Target, ValidationReport>,
}

/// Lowers for every target in `targets` and, when `validate_artifacts`, validates each.
/// Fails when any target refuses or any validation fails; collects every error.
pub fn build(
    policy: &CheckedPolicy,
    targets: &[Target],
    config: &TargetConfig,
    validate_artifacts: bool,
) -> Result<Build, Vec<Diagnostic>> {
    let mut out = Build::default();
    let mut errors = Vec::new();
    for &target in targets {
        match lower(target, policy, config) {
            Err(mut diags) => errors.append(&mut diags),
            Ok(artifacts) => {
                if validate_artifacts {
                    match validate(target, policy, config, &artifacts) {
                        Ok(report) => {
                            out.reports.insert(target, report);
                        }
                        Err(mut diags) => errors.append(&mut diags),
                    }
                }
                for (name, text) in &artifacts.files {
                    out.files
                        .insert(format!("{}/{}", target.as_str(), name), text.clone());
                }
                out.warnings.extend(artifacts.notes.iter().cloned());
            }
        }
    }
    if errors.iter().any(|d| d.is_error()) {
        errors.extend(out.warnings);
        egress_syntax::diagnostic::sort_diagnostics(&mut errors);
        return Err(errors);
    }
    egress_syntax::diagnostic::sort_diagnostics(&mut out.warnings);
    Ok(out)
}

/// Titles of this crate's codes live in the one registry every stage shares.
pub use egress_syntax::diagnostic::code_title;

/// A span for diagnostics about the policy as a whole: the first file's start.
pub(crate) fn policy_span(policy: &CheckedPolicy) -> Span {
    policy
        .agents
        .first()
        .map(|a| a.span)
        .or_else(|| policy.files.first().map(|f| Span::new(f.id, 0, 0)))
        .unwrap_or_else(|| Span::new(egress_check::FileId(0), 0, 0))
}

/// A file-name-safe spelling of an agent's qualified name (`a.b_c` → `a-b-c`).
pub(crate) fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}
