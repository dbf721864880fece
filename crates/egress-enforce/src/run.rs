//! `egc run`: start a command confined by one agent's policy.
//!
//! 1. A fresh cgroup `<cgroup2>/egc/run-<agent>-<pid>` with the eBPF program attached
//!    (pinned as attachment `run-<agent>-<pid>`, so `egc enforce status` shows it and
//!    `egc exception apply` can open exceptions in it).
//! 2. The child moves itself into the cgroup, sets `no_new_privs`, drops every Linux
//!    capability the agent is not granted (bounding set included), enforces Landlock
//!    TCP-connect port rules when the kernel has Landlock ABI >= 4, and installs the
//!    agent's seccomp filter last; then it executes the command.
//! 3. Denials are printed while the command runs; at exit the cgroup's remaining
//!    processes are killed, the program detached and the cgroup removed.
//!
//! Nothing fails open: if any layer that was asked for cannot be applied, the command
//! is not started.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use egress_check::LinuxCap;
use serde::Serialize;

use crate::cgroup;
use crate::control::{self, ApplyRequest, Kind};
use crate::landlock;
use crate::loader::{self, Denial, EnforceError};
use crate::maps::{file_stem, EbpfMaps};
use crate::sandbox::{CgroupJoin, Confinement};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LandlockMode {
    /// Use Landlock network rules when the kernel has them.
    Auto,
    /// Refuse to run without them.
    Require,
    /// Do not use Landlock.
    Off,
}

pub struct RunConfig {
    pub maps: EbpfMaps,
    pub policy: Option<String>,
    /// The compiled seccomp filter (`None` only when the user turned seccomp off).
    pub seccomp: Option<seccompiler::BpfProgram>,
    pub landlock: LandlockMode,
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Run the command as this uid (its primary group from the user database); granted
    /// Linux capabilities are kept as ambient capabilities. `None`: keep the caller's
    /// uid (root keeps DAC ownership of files; see the book's limits).
    pub uid: Option<u32>,
}

#[derive(Debug)]
pub enum RunError {
    Enforce(EnforceError),
    Landlock(String),
    Spawn(std::io::Error),
    Cgroup(std::io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Enforce(e) => write!(f, "{e}"),
            RunError::Landlock(e) => write!(f, "{e}"),
            RunError::Spawn(e) => write!(f, "cannot start the command: {e}"),
            RunError::Cgroup(e) => write!(f, "cgroup: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<EnforceError> for RunError {
    fn from(e: EnforceError) -> Self {
        RunError::Enforce(e)
    }
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    #[serde(skip)]
    pub status: Option<ExitStatus>,
    pub exit_code: Option<i32>,
    pub attachment: String,
    pub cgroup: String,
    pub denials: Vec<Denial>,
    /// Landlock ABI of the kernel, and the number of TCP ports allowed when used.
    pub landlock_abi: i64,
    pub landlock_ports: Option<usize>,
    pub counters: std::collections::BTreeMap<&'static str, u64>,
}

/// Removes the attachment and cgroup when dropped (also on early return).
struct Cleanup {
    name: String,
    cgroup: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.cgroup.join("cgroup.kill"), "1");
        let _ = control::detach(&self.name);
        let _ = cgroup::remove(&self.cgroup);
    }
}

fn set_interactive_signals(ignore: bool) {
    let handler = if ignore { libc::SIG_IGN } else { libc::SIG_DFL };
    for signal in [libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: installing SIG_IGN/SIG_DFL has no memory-safety preconditions.
        unsafe {
            libc::signal(signal, handler);
        }
    }
}

/// Runs the command confined; calls `on_denial` for each denial as it happens.
pub fn run(config: RunConfig, on_denial: &mut dyn FnMut(&Denial)) -> Result<RunReport, RunError> {
    let abi = landlock::abi_version();
    let landlock_ruleset = match config.landlock {
        LandlockMode::Off => None,
        LandlockMode::Auto if abi < landlock::NET_ABI => None,
        LandlockMode::Require if abi < landlock::NET_ABI => {
            return Err(RunError::Landlock(format!(
                "--require-landlock: this kernel has Landlock ABI {abi}; TCP-connect rules need ABI {}",
                landlock::NET_ABI
            )))
        }
        LandlockMode::Auto | LandlockMode::Require => Some(
            landlock::tcp_connect_ruleset(&config.maps.landlock_tcp_ports)
                .map_err(|e| RunError::Landlock(format!("Landlock: {e}")))?,
        ),
    };
    let landlock_ports = landlock_ruleset.as_ref().map(|r| r.ports);

    let name = format!(
        "run-{}-{}",
        file_stem(&config.maps.agent_name),
        std::process::id()
    );
    let cgroup_path = cgroup::resolve(&format!("egc/{name}")).map_err(RunError::Cgroup)?;
    cgroup::create(&cgroup_path).map_err(RunError::Cgroup)?;
    let cleanup = Cleanup {
        name: name.clone(),
        cgroup: cgroup_path.clone(),
    };
    control::apply(&ApplyRequest {
        name: &name,
        maps: &config.maps,
        cgroup: &cgroup_path,
        policy: config.policy.clone(),
        kind: Kind::Run,
    })?;
    let attachment = loader::open(&name)?;
    let mut events = attachment.events()?;
    // Hold the links open for the whole run: removing their pins (which a root child
    // could do) then does not detach the program.
    let _links = attachment.hold_links()?;

    let keep_caps: Vec<LinuxCap> = config
        .maps
        .linux_caps
        .iter()
        .filter_map(|c| LinuxCap::from_name(c))
        .collect();
    let confinement = Confinement {
        cgroup: Some(CgroupJoin::open(&cgroup_path).map_err(RunError::Cgroup)?),
        keep_caps: Some(keep_caps),
        landlock: landlock_ruleset,
        seccomp: config.seccomp,
        cgroup_namespace: true,
        user: config
            .uid
            .map(|uid| (uid, crate::sandbox::primary_gid(uid))),
    };
    let mut command = Command::new(&config.program);
    command.args(&config.args);
    confinement.apply_to(&mut command);

    set_interactive_signals(true);
    let child = command.spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            set_interactive_signals(false);
            return Err(RunError::Spawn(e));
        }
    };
    let mut denials = Vec::new();
    let status = loop {
        for denial in events.wait(100) {
            on_denial(&denial);
            denials.push(denial);
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => continue,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(50));
                break child.wait().ok();
            }
        }
    };
    set_interactive_signals(false);
    for denial in events.drain() {
        on_denial(&denial);
        denials.push(denial);
    }
    let counters = attachment.counters();
    drop(events);
    drop(attachment);
    drop(cleanup);
    Ok(RunReport {
        exit_code: status.and_then(|s| s.code()),
        status,
        attachment: name,
        cgroup: cgroup_path.display().to_string(),
        denials,
        landlock_abi: abi,
        landlock_ports,
        counters,
    })
}
