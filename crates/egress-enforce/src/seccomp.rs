//! A seccomp allowlist built from an agent's syscall groups.
//!
//! [`for_agent`] installs the profile `egc build --target seccomp` writes
//! (`egress_lower::seccomp`), narrowed for `egc run`: the agent's syscalls allowed, `socket`
//! filtered by its arguments (never AF_UNIX, since named unix sockets are passed in;
//! AF_INET/AF_INET6 only for the socket types of the
//! protocols the agent uses; raw and packet sockets only with a literal
//! `grant CAP_NET_RAW`), io_uring never, and every other syscall failing with `EPERM`
//! (`SCMP_ACT_ERRNO`), so a blocked call is visible to the agent instead of killing it.
//! Names that are not system calls on this architecture cannot be called here, so they
//! are left out (which narrows nothing) and reported to the caller.

use std::collections::BTreeMap;
use std::str::FromStr;

use egress_check::{Agent, CheckedPolicy};
use egress_lower::seccomp::{socket_table, ArgCondition, Expectation, AF_UNIX};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
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

fn condition(index: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value)
        .map_err(|e| SeccompError::Compile(e.to_string()))
}

fn socket_rule(conditions: &[ArgCondition]) -> Result<SeccompRule, SeccompError> {
    let conditions = conditions
        .iter()
        .map(|c| match c.mask {
            Some(mask) => condition(c.index, SeccompCmpOp::MaskedEq(mask), c.value),
            None => condition(c.index, SeccompCmpOp::Eq, c.value),
        })
        .collect::<Result<Vec<_>, _>>()?;
    SeccompRule::new(conditions).map_err(|e| SeccompError::Compile(e.to_string()))
}

/// The `socket(2)` argument rules of an expectation (any one allows the call).
///
/// Unlike the static profile, `egc run` never lets the command create an `AF_UNIX`
/// socket: the pathname sockets a policy names are connected by the launcher and passed
/// in, so a local proxy, resolver or container runtime socket that the policy does not
/// name is out of reach, and so are abstract sockets.
fn socket_rules(exp: &Expectation) -> Result<Vec<SeccompRule>, SeccompError> {
    socket_table(exp)
        .iter()
        .filter(|conditions| {
            !conditions
                .iter()
                .any(|c| c.index == 0 && c.mask.is_none() && c.value == AF_UNIX)
        })
        .map(|conditions| socket_rule(conditions))
        .collect()
}

/// Terminal ioctls a confined command may never use, whatever its syscall groups say:
/// `TIOCSTI` pushes input into a terminal (the caller's shell would run it, unconfined,
/// after the command exits) and `TIOCLINUX` can paste the console selection the same way.
/// The same table the static profile uses.
pub use egress_lower::seccomp::DENIED_IOCTLS as TERMINAL_IOCTLS;

/// A second filter, installed before the agent's: `ioctl` with a request in
/// [`TERMINAL_IOCTLS`] fails with `EPERM`, every other call is left to the agent's filter.
/// The request is compared on its low 32 bits, as the kernel reads it (an `unsigned int`),
/// so high bits set by a caller do not slip past.
pub fn terminal_filter() -> Result<BpfProgram, SeccompError> {
    let rules = TERMINAL_IOCTLS
        .iter()
        .map(|(request, _)| {
            SeccompRule::new(vec![condition(1, SeccompCmpOp::Eq, *request)?])
                .map_err(|e| SeccompError::Compile(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut map = BTreeMap::new();
    map.insert(i64::from(Sysno::ioctl.id()), rules);
    let filter = SeccompFilter::new(
        map,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        target_arch()?,
    )
    .map_err(|e| SeccompError::Compile(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| SeccompError::Compile(e.to_string()))
}

/// A compiled filter and the syscall names this architecture does not have.
pub struct AgentFilter {
    pub program: BpfProgram,
    pub not_on_this_arch: Vec<String>,
}

/// The agent's seccomp filter, equal in meaning to its `--target seccomp` profile.
pub fn for_agent(policy: &CheckedPolicy, agent: &Agent) -> Result<AgentFilter, SeccompError> {
    let all = policy.syscalls_of(agent);
    if all.is_empty() {
        return Err(SeccompError::Empty);
    }
    let exp = Expectation::of(policy, agent);
    let names: Vec<String> = exp.syscalls.iter().cloned().collect();
    if !names.iter().any(|n| n == "execve" || n == "execveat") {
        return Err(SeccompError::NoExecve);
    }
    let (known, not_on_this_arch): (Vec<String>, Vec<String>) =
        names.into_iter().partition(|n| Sysno::from_str(n).is_ok());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = syscall_numbers(&known)?
        .values()
        .map(|n| (*n, Vec::new()))
        .collect();
    rules.insert(i64::from(Sysno::socket.id()), socket_rules(&exp)?);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        target_arch()?,
    )
    .map_err(|e| SeccompError::Compile(e.to_string()))?;
    let program = BpfProgram::try_from(filter).map_err(|e| SeccompError::Compile(e.to_string()))?;
    Ok(AgentFilter {
        program,
        not_on_this_arch,
    })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
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
