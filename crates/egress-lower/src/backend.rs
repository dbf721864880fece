//! One backend shape. Every target implements [`Backend`]: it lowers a checked policy to
//! artifacts (declaring each narrowing as a warning in [`Artifacts::notes`]), decodes
//! artifacts back to what they allow, and says which agents its artifacts can tell
//! apart. [`crate::lower`] and [`crate::validate`] dispatch through [`backend`], an
//! exhaustive match: a new target that does not implement the trait does not compile.

use std::collections::BTreeMap;

use egress_check::{Agent, AgentId, CheckedPolicy};

use crate::expected::{self, Decoded};
use crate::{Artifacts, Diagnostic, Target, TargetConfig, ValidationReport};

/// What decoding an artifact gives back.
pub enum Decoding {
    /// Per agent, the exact connections the artifact allows; compared with the policy's
    /// unconditional set (minus what [`Backend::never_expresses`] says) in both
    /// directions, so a wider artifact is E0120 (or E0106) and a narrower one E0121.
    Connections(BTreeMap<AgentId, Decoded>),
    /// Seccomp profiles are decoded and judged call by call against the one socket
    /// table (`seccomp::socket_table`), not as connection sets: the verdict itself.
    Judged(Result<ValidationReport, Vec<Diagnostic>>),
}

/// The parts of a policy a target leaves closed by design.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inexpressible {
    /// Host-name destinations (E0100, a warning when kept closed).
    pub hosts: bool,
    /// Workload destinations (E0101, a warning when kept closed).
    pub workloads: bool,
    /// Addresses the target governs by other rules (the eBPF maps: IPv4-mapped IPv6
    /// addresses, which the IPv4 rules govern).
    pub addresses: egress_sets::IpSet,
}

/// A lowering target.
pub trait Backend: Sync {
    /// The target this backend lowers to.
    fn target(&self) -> Target;

    /// Lowers the policy; refuses (errors) what it cannot express without widening, and
    /// declares every narrowing as a warning in the artifacts' notes.
    fn lower(
        &self,
        policy: &CheckedPolicy,
        config: &TargetConfig,
    ) -> Result<Artifacts, Vec<Diagnostic>>;

    /// Reads the artifacts back with the target's own semantics.
    fn decode(
        &self,
        policy: &CheckedPolicy,
        config: &TargetConfig,
        artifacts: &Artifacts,
    ) -> Result<Decoding, Vec<Diagnostic>>;

    /// Can the artifacts tell this agent apart from the others (a workload selector, a
    /// cgroup or uid, one file per agent)? Agents that cannot be identified are left out
    /// with a warning (E0103) and not compared.
    fn identifies(&self, agent: &Agent) -> bool;

    /// What this target never expresses by design, each part declared by a warning when
    /// lowering: removed from the policy's set before the comparison. Nothing, for the
    /// targets that refuse (rather than close) what they cannot express.
    fn never_expresses(&self) -> Inexpressible {
        Inexpressible::default()
    }
}

/// The backend of a target.
pub fn backend(target: Target) -> &'static dyn Backend {
    match target {
        Target::K8s => &crate::k8s::K8s,
        Target::Cilium => &crate::cilium::Cilium,
        Target::Seccomp => &crate::seccomp::Seccomp,
        Target::Nftables => &crate::nftables::Nftables,
        Target::Ebpf => &crate::ebpf::Ebpf,
    }
}

/// Decodes and compares: the translation validation of one target.
pub fn validate(
    backend: &dyn Backend,
    policy: &CheckedPolicy,
    config: &TargetConfig,
    artifacts: &Artifacts,
) -> Result<ValidationReport, Vec<Diagnostic>> {
    match backend.decode(policy, config, artifacts)? {
        Decoding::Judged(verdict) => verdict,
        Decoding::Connections(decoded) => expected::compare_connection_sets(
            backend.target(),
            policy,
            &decoded,
            artifacts,
            config.validation.budget,
            |agent| backend.identifies(agent),
            &backend.never_expresses(),
        ),
    }
}
