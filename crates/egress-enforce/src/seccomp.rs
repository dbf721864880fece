//! A seccomp allowlist built from an agent's syscall groups.
//!
//! Every syscall named in the agent's groups is allowed; every other syscall fails with
//! `EPERM` (the OCI `SCMP_ACT_ERRNO` default), so a blocked call is visible to the agent
//! instead of killing it. Names unknown on this architecture are an error, not skipped.

use std::collections::BTreeMap;
use std::str::FromStr;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use syscalls::Sysno;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompError {
    UnknownSyscalls(Vec<String>),
    NoExecve,
    Empty,
    Compile(String),
}

impl std::fmt::Display for SeccompError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeccompError::UnknownSyscalls(names) => write!(
                f,
                "unknown system calls on this architecture: {}",
                names.join(", ")
            ),
            SeccompError::NoExecve => write!(
                f,
                "the agent's syscall groups do not allow `execve`, so no command could start under its seccomp profile"
            ),
            SeccompError::Empty => write!(
                f,
                "the agent has no syscall groups; a seccomp allowlist would block everything"
            ),
            SeccompError::Compile(e) => write!(f, "cannot compile the seccomp filter: {e}"),
        }
    }
}

impl std::error::Error for SeccompError {}

fn target_arch() -> Result<TargetArch, SeccompError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(TargetArch::x86_64),
        "aarch64" => Ok(TargetArch::aarch64),
        "riscv64" => Ok(TargetArch::riscv64),
        other => Err(SeccompError::Compile(format!(
            "unsupported architecture {other}"
        ))),
    }
}

/// Resolves names to numbers; unknown names are collected into an error.
pub fn syscall_numbers(names: &[String]) -> Result<BTreeMap<String, i64>, SeccompError> {
    let mut out = BTreeMap::new();
    let mut unknown = Vec::new();
    for name in names {
        match Sysno::from_str(name) {
            Ok(sysno) => {
                out.insert(name.clone(), i64::from(sysno.id()));
            }
            Err(_) => unknown.push(name.clone()),
        }
    }
    if unknown.is_empty() {
        Ok(out)
    } else {
        unknown.sort();
        Err(SeccompError::UnknownSyscalls(unknown))
    }
}

/// Compiles an allowlist filter: listed syscalls allowed, everything else `EPERM`.
pub fn allowlist(names: &[String]) -> Result<BpfProgram, SeccompError> {
    if names.is_empty() {
        return Err(SeccompError::Empty);
    }
    if !names.iter().any(|n| n == "execve" || n == "execveat") {
        return Err(SeccompError::NoExecve);
    }
    let numbers = syscall_numbers(names)?;
    let rules = numbers.values().map(|n| (*n, Vec::new())).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        target_arch()?,
    )
    .map_err(|e| SeccompError::Compile(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| SeccompError::Compile(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_reported() {
        let names = vec!["execve".to_string(), "no_such_call".to_string()];
        assert_eq!(
            allowlist(&names).unwrap_err(),
            SeccompError::UnknownSyscalls(vec!["no_such_call".into()])
        );
    }

    #[test]
    fn execve_is_required() {
        assert_eq!(
            allowlist(&["read".to_string()]).unwrap_err(),
            SeccompError::NoExecve
        );
        assert!(allowlist(&["read".to_string(), "execve".to_string()]).is_ok());
    }
}
