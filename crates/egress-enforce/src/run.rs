//! `egc run`: start a command confined by one agent's policy.
//!
//! 1. A fresh cgroup `<cgroup2>/egc/run-<agent>-<pid>` with the eBPF program attached
//!    (pinned as attachment `run-<agent>-<pid>`, so `egc enforce status` shows it and
//!    `egc exception apply` can open exceptions in it).
//! 2. The child marks every inherited descriptor above stdio close-on-exec, starts a new
//!    session (no controlling terminal: no `TIOCSTI` into the caller's shell), moves itself
//!    into the cgroup and a new cgroup namespace, sets `no_new_privs`, drops every Linux
//!    capability the agent is not granted (bounding set included), switches to its user,
//!    enforces Landlock at the kernel's ABI (ptrace scoping and file-system write rules
//!    from ABI 1, TCP-connect ports from 4, signal and abstract-socket scoping from 6),
//!    connects the unix sockets the policy names, and installs the agent's seccomp filter
//!    and the terminal-ioctl filter last; then it executes the command.
//! 3. Denials are printed while the command runs; signals the launcher receives are
//!    forwarded to the command's process group; at exit the cgroup's remaining processes
//!    are killed, the program detached and the cgroup removed.
//!
//! Nothing fails open: if any layer that was asked for cannot be applied, the command
//! is not started.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use egress_check::LinuxCap;
use serde::Serialize;

use crate::cgroup;
use crate::control::{self, ApplyRequest, Kind};
use crate::landlock;
use crate::loader::{self, Denial, EnforceError};
use crate::maps::{file_stem, EbpfMaps};
use crate::sandbox::{CgroupJoin, Confinement, UnixSocketPass};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LandlockMode {
    /// Use every Landlock feature the kernel has; report the missing ones.
    Auto,
    /// Refuse to run without Landlock network rules (ABI >= 4).
    Require,
    /// Do not use Landlock (only with a dedicated user: see [`RunUser`]).
    Off,
}

/// Whom the command runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunUser {
    /// A given uid (the invoking user's, the agent's `uid`, or `--uid`). Other processes
    /// of that uid may exist, so Landlock must keep the command away from them.
    Uid(u32),
    /// A fresh uid from the dynamic range that no process and no account uses: nothing
    /// else runs as it, and it owns none of the invoking user's files.
    Dynamic,
    /// Root (`--allow-root`): Landlock must keep it away from egc's own files.
    Root,
}

/// A hook called with the attachment's name before the command starts.
pub type BeforeStart = Box<dyn FnOnce(&str) -> Result<(), String> + Send>;

/// The uids `--dynamic-user` picks from (systemd's dynamic-user range).
pub const DYNAMIC_UIDS: std::ops::RangeInclusive<u32> = 61184..=65519;

pub struct RunConfig {
    pub maps: EbpfMaps,
    pub policy: Option<String>,
    /// The compiled seccomp filter (`None` only when the user turned seccomp off).
    pub seccomp: Option<seccompiler::BpfProgram>,
    pub landlock: LandlockMode,
    /// Use at most this Landlock ABI (behave as on an older kernel; for tests and for
    /// reproducing a weaker host).
    pub landlock_max_abi: Option<i64>,
    /// TCP ports beyond the policy's own that Landlock must allow (the exceptions the
    /// agent may be granted at run time; the eBPF program still gates their addresses).
    pub extra_tcp_ports: Vec<(u16, u16)>,
    /// Paths the command may write beneath, beyond the defaults (see [`writable_paths`]).
    pub writable: Vec<PathBuf>,
    /// The work directory is writable unless it is the user's home, an ancestor of it,
    /// or holds egc's own state; `false` keeps it read-only.
    pub write_work_dir: bool,
    /// Pathname unix sockets the policy names: connected by the launcher (as the
    /// command's user) and passed in; listed in `EGC_UNIX_SOCKETS`.
    pub unix_sockets: Vec<String>,
    pub program: OsString,
    pub args: Vec<OsString>,
    pub user: RunUser,
    /// The agent's `executable` digests: the program (and, for an interpreter, its
    /// script) must hash to one of them (empty: not checked).
    pub executables: Vec<String>,
    /// Called with the attachment's name once the program is attached and before the
    /// command starts (to open a workflow step in it); an error stops the run.
    pub before_start: Option<BeforeStart>,
    /// Enforce the agent's host-name destinations (`maps.names`) through egc's DNS
    /// gateway and name gate. Required when `maps.names` is not empty.
    pub names: Option<NamesConfig>,
    /// Audit mode: every layer reports what it would deny and lets it through.
    pub audit: bool,
}

pub use crate::names::NamesConfig;

#[derive(Debug)]
pub enum RunError {
    Enforce(EnforceError),
    Landlock(String),
    Spawn(std::io::Error),
    Cgroup(std::io::Error),
    User(String),
    /// Without Landlock, the command would run as a user that may have other
    /// processes it could take over (E0153).
    SharedUserWithoutLandlock(String),
    /// The program or its script is not one the agent's `executable` digests allow (E0154).
    CodeIdentity(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Enforce(e) => write!(f, "{e}"),
            RunError::Landlock(e) => write!(f, "{e}"),
            RunError::Spawn(e) => write!(f, "cannot start the command: {e}"),
            RunError::Cgroup(e) => write!(f, "cgroup: {e}"),
            RunError::User(e) => write!(f, "{e}"),
            RunError::SharedUserWithoutLandlock(e) => write!(f, "{e}"),
            RunError::CodeIdentity(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<EnforceError> for RunError {
    fn from(e: EnforceError) -> Self {
        RunError::Enforce(e)
    }
}

/// What Landlock enforced.
#[derive(Debug, Default, Serialize)]
pub struct LandlockReport {
    /// The kernel's ABI.
    pub kernel_abi: i64,
    /// The ABI the ruleset was built for (0: Landlock not used).
    pub abi: i64,
    /// TCP ports allowed, when ports are handled (ABI >= 4).
    pub ports: Option<usize>,
    pub writable: Vec<String>,
    /// Signals and abstract unix sockets scoped (ABI >= 6).
    pub scoped: bool,
    /// Features this run lacks, for people.
    pub missing: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    #[serde(skip)]
    pub status: Option<ExitStatus>,
    pub exit_code: Option<i32>,
    pub attachment: String,
    pub cgroup: String,
    pub uid: u32,
    pub denials: Vec<Denial>,
    /// Landlock ABI of the kernel, and the number of TCP ports allowed when used.
    pub landlock_abi: i64,
    pub landlock_ports: Option<usize>,
    pub landlock: LandlockReport,
    pub unix_sockets: Vec<String>,
    pub counters: std::collections::BTreeMap<&'static str, u64>,
    /// Audit mode: the events are would-be denials.
    pub audit: bool,
    /// Every denial (kernel, DNS gateway, name gate) as one event shape.
    pub events: Vec<egress_gateway::Event>,
    /// DNS gateway and name gate ports (names enforced), else `None`.
    pub gateway: Option<(u16, u16)>,
}

/// Removes the attachment and cgroup when dropped (also on early return).
struct Cleanup {
    name: String,
    cgroup: PathBuf,
    home: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.cgroup.join("cgroup.kill"), "1");
        let _ = control::detach(&self.name);
        let _ = cgroup::remove(&self.cgroup);
        if let Some(home) = &self.home {
            let _ = std::fs::remove_dir_all(home);
        }
    }
}

static PENDING_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn record_signal(signal: libc::c_int) {
    PENDING_SIGNAL.store(signal, Ordering::SeqCst);
}

const FORWARDED_SIGNALS: [libc::c_int; 4] =
    [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP];

/// While the command runs, the launcher records the signals it receives (Ctrl-C on the
/// terminal reaches the launcher only: the command has its own session) and forwards
/// them to the command's process group.
fn catch_signals(catch: bool) {
    for signal in FORWARDED_SIGNALS {
        let handler = if catch {
            record_signal as *const () as libc::sighandler_t
        } else {
            libc::SIG_DFL
        };
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe {
            libc::signal(signal, handler);
        }
    }
}

/// The directories egc keeps its own state in: never writable by a confined command.
pub fn protected_paths() -> Vec<PathBuf> {
    let mut paths = vec![
        PathBuf::from("/var/lib/egc"),
        PathBuf::from("/var/log/egc"),
        PathBuf::from("/run/egc"),
        PathBuf::from(loader::BPFFS),
        crate::state::state_dir(),
    ];
    if let Some(log) = crate::exception::AuditLog::default_path().parent() {
        paths.push(log.to_path_buf());
    }
    if let Ok(root) = cgroup::resolve("") {
        paths.push(root);
    }
    paths
}

fn is_ancestor_or_same(ancestor: &Path, path: &Path) -> bool {
    path.starts_with(ancestor)
}

/// The paths a confined command may write: `/tmp`, `/var/tmp`, `/dev/shm`, the null
/// devices, the work directory (unless it is `home`, an ancestor of `home`, or holds or
/// lies inside egc's own state) and `extra`. Returns the paths and a note for each
/// path left out.
pub fn writable_paths(
    work_dir: Option<&Path>,
    home: Option<&Path>,
    extra: &[PathBuf],
) -> (Vec<PathBuf>, Vec<String>) {
    let mut paths: Vec<PathBuf> = [
        "/tmp",
        "/var/tmp",
        "/dev/shm",
        "/dev/null",
        "/dev/zero",
        "/dev/full",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    let mut notes = Vec::new();
    let protected = protected_paths();
    if let Some(dir) = work_dir {
        let touches_home = home.is_some_and(|h| is_ancestor_or_same(dir, h));
        let touches_state = protected
            .iter()
            .any(|p| is_ancestor_or_same(dir, p) || is_ancestor_or_same(p, dir));
        if touches_home {
            notes.push(format!(
                "the work directory {} is the user's home or holds it: it stays read-only so the command cannot edit startup files (~/.bashrc, ~/.profile, ~/.config/autostart); run from a project directory or pass --allow-write",
                dir.display()
            ));
        } else if touches_state {
            notes.push(format!(
                "the work directory {} holds or lies inside egc's own state: it stays read-only",
                dir.display()
            ));
        } else {
            paths.push(dir.to_path_buf());
        }
    }
    paths.extend(extra.iter().cloned());
    (paths, notes)
}

/// The home directory of `uid` in the user database.
pub fn home_of(uid: u32) -> Option<PathBuf> {
    crate::sandbox::passwd_entry(uid)
        .map(|(_, home)| home)
        .filter(|h| !h.as_os_str().is_empty())
}

fn uid_has_account(uid: u32) -> bool {
    crate::sandbox::passwd_entry(uid).is_some()
}

/// Every uid some process runs as (real, effective, saved or file-system uid).
pub fn uids_in_use() -> std::collections::BTreeSet<u32> {
    let mut uids = std::collections::BTreeSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return uids;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(rest) = line.strip_prefix("Uid:") {
                uids.extend(
                    rest.split_whitespace()
                        .filter_map(|u| u.parse::<u32>().ok()),
                );
            }
        }
    }
    uids
}

/// A uid from [`DYNAMIC_UIDS`] that no process and no account uses.
pub fn pick_dynamic_uid() -> Option<u32> {
    let used = uids_in_use();
    let start = *DYNAMIC_UIDS.start();
    let span = DYNAMIC_UIDS.end() - start + 1;
    // Start at a point derived from the pid, so concurrent runs rarely collide.
    let offset = std::process::id() % span;
    (0..span)
        .map(|i| start + (offset + i) % span)
        .find(|uid| !used.contains(uid) && !uid_has_account(*uid))
}

/// The TCP port ranges of every capability `agent` uses, workflow-limited ones included:
/// Landlock must allow them from the start, since a workflow step token opens them while
/// the command runs (the eBPF program still gates their addresses).
pub fn capability_tcp_ports(
    policy: &egress_check::CheckedPolicy,
    agent: &egress_check::Agent,
) -> Vec<(u16, u16)> {
    let mut ports = Vec::new();
    for cap in &agent.capabilities {
        let Some(capability) = policy.capability(cap.id) else {
            continue;
        };
        for connect in &capability.connects {
            let Some(dest) = policy.destination(connect.dest) else {
                continue;
            };
            if dest.protocols.contains(&egress_check::Protocol::Tcp) {
                ports.extend(dest.ports.iter().map(|p| (p.start, p.end)));
            }
        }
    }
    ports.sort();
    ports.dedup();
    ports
}

/// The TCP port ranges of every exception that names `agent`: Landlock must allow them
/// from the start, since a token is applied while the command runs.
pub fn exception_tcp_ports(
    policy: &egress_check::CheckedPolicy,
    agent: &egress_check::Agent,
) -> Vec<(u16, u16)> {
    let mut ports = Vec::new();
    for exception in &policy.exceptions {
        if !exception.agents.iter().any(|a| a.id == agent.id) {
            continue;
        }
        let Some(dest) = policy.destination(exception.to.id) else {
            continue;
        };
        if !dest.protocols.contains(&egress_check::Protocol::Tcp) {
            continue;
        }
        ports.extend(dest.ports.iter().map(|p| (p.start, p.end)));
    }
    ports.sort();
    ports.dedup();
    ports
}

/// Runs the command confined; calls `on_event` for each denial as it happens.
pub fn run(
    config: RunConfig,
    on_event: &mut dyn FnMut(&egress_gateway::Event, Option<&Denial>),
) -> Result<RunReport, RunError> {
    run_with(config, &mut |_| {}, on_event)
}

/// [`run`], calling `on_start` with what Landlock will enforce just before the command
/// starts (so a weaker confinement is reported before, not after, the command runs).
/// `on_event` gets every denial as an event, with the kernel's record for kernel ones.
pub fn run_with(
    config: RunConfig,
    on_start: &mut dyn FnMut(&LandlockReport),
    on_event: &mut dyn FnMut(&egress_gateway::Event, Option<&Denial>),
) -> Result<RunReport, RunError> {
    if !config.maps.names.is_empty() && config.names.is_none() {
        return Err(RunError::User(format!(
            "agent `{}` has host-name destinations but no resolver for the DNS gateway",
            config.maps.agent_name
        )));
    }
    // The code that starts must be the reviewed code, when the agent pins it.
    crate::identity::check(&config.executables, &config.program, &config.args)
        .map_err(RunError::CodeIdentity)?;
    // Whom the command runs as.
    let (uid, dedicated) = match config.user {
        RunUser::Uid(0) | RunUser::Root => (0, false),
        RunUser::Uid(uid) => (uid, false),
        RunUser::Dynamic => match pick_dynamic_uid() {
            Some(uid) => (uid, true),
            None => {
                return Err(RunError::User(format!(
                    "--dynamic-user: every uid in {}-{} is in use",
                    DYNAMIC_UIDS.start(),
                    DYNAMIC_UIDS.end()
                )))
            }
        },
    };

    // Landlock: every feature the kernel (or `landlock_max_abi`) has.
    let kernel_abi = landlock::abi_version();
    let abi = config
        .landlock_max_abi
        .map_or(kernel_abi, |m| m.min(kernel_abi))
        .max(0);
    let without_landlock_risk = |why: &str| {
        RunError::SharedUserWithoutLandlock(format!(
            "{why}: a command running as uid {uid} without Landlock could take over that user's other processes (ptrace, /proc/PID/mem) or edit its startup files (~/.bashrc); run it as a dedicated user (--dynamic-user) or on a kernel with Landlock"
        ))
    };
    let use_landlock = match config.landlock {
        LandlockMode::Off if dedicated => false,
        LandlockMode::Off => return Err(without_landlock_risk("--no-landlock")),
        LandlockMode::Require if abi < landlock::NET_ABI => {
            return Err(RunError::Landlock(format!(
                "--require-landlock: this kernel has Landlock ABI {abi}; TCP-connect rules need ABI {}",
                landlock::NET_ABI
            )))
        }
        LandlockMode::Auto if abi < landlock::FS_ABI && dedicated => false,
        LandlockMode::Auto if abi < landlock::FS_ABI => {
            return Err(without_landlock_risk(&format!(
                "this kernel has no Landlock (ABI {abi})"
            )))
        }
        LandlockMode::Auto | LandlockMode::Require => true,
    };

    // A dedicated user gets a fresh home directory it owns.
    let dynamic_home = if dedicated {
        let home = std::env::temp_dir().join(format!("egc-home-{uid}-{}", std::process::id()));
        make_home(&home, uid).map_err(RunError::Cgroup)?;
        Some(home)
    } else {
        None
    };
    let home = match &dynamic_home {
        Some(home) => Some(home.clone()),
        None => home_of(uid),
    };
    let work_dir = std::env::current_dir().ok();
    let (mut writable, mut notes) = if config.write_work_dir {
        writable_paths(work_dir.as_deref(), home.as_deref(), &config.writable)
    } else {
        writable_paths(None, home.as_deref(), &config.writable)
    };
    if let Some(home) = &dynamic_home {
        writable.push(home.clone());
    }
    let mut tcp_ports = config.maps.landlock_tcp_ports.clone();
    tcp_ports.extend(config.extra_tcp_ports.iter().copied());
    tcp_ports.sort();
    tcp_ports.dedup();
    let mut landlock_report = LandlockReport {
        kernel_abi,
        ..LandlockReport::default()
    };
    let landlock_ruleset = if use_landlock {
        let ruleset = landlock::prepare(&landlock::LandlockRequest {
            max_abi: Some(abi),
            writable,
            tcp_ports,
        })
        .map_err(|e| RunError::Landlock(format!("Landlock: {e}")))?;
        landlock_report.abi = ruleset.abi;
        landlock_report.ports = ruleset.ports;
        landlock_report.scoped = ruleset.scoped;
        landlock_report.writable = ruleset
            .writable
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        Some(ruleset)
    } else {
        notes.push(format!(
            "Landlock is not used (ABI {abi}); the command runs as the dedicated uid {uid}"
        ));
        None
    };
    if landlock_report.abi < landlock::NET_ABI {
        landlock_report.missing.push(format!(
            "TCP-connect port rules (Landlock ABI {}): the eBPF program alone enforces ports",
            landlock::NET_ABI
        ));
    }
    if landlock_report.abi < landlock::SCOPE_ABI {
        landlock_report.missing.push(format!(
            "signal and abstract-socket scoping (Landlock ABI {}): the command can signal other processes of uid {uid}",
            landlock::SCOPE_ABI
        ));
    }
    landlock_report.missing.extend(notes);

    // Unix sockets the policy names: descriptors reserved now, connected in the child.
    let unix_sockets = config
        .unix_sockets
        .iter()
        .map(|path| UnixSocketPass::new(path))
        .collect::<Result<Vec<_>, _>>()
        .map_err(RunError::Spawn)?;
    let unix_env: Vec<String> = unix_sockets
        .iter()
        .map(|s| format!("{}:{}", s.path, s.fd()))
        .collect();

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
        home: dynamic_home.clone(),
    };
    control::apply(&ApplyRequest {
        name: &name,
        maps: &config.maps,
        cgroup: &cgroup_path,
        policy: config.policy.clone(),
        kind: Kind::Run,
    })?;
    let mut attachment = loader::open(&name)?;
    // Names: the DNS gateway and the name gate, then the program's flags point at them.
    let (gateway, gateway_events) = match (&config.names, config.maps.names.is_empty()) {
        (Some(names), false) => {
            let (gateway, receiver) = crate::names::start_gateway(
                &mut attachment,
                &cgroup_path,
                &config.maps,
                names,
                config.audit,
            )
            .map_err(RunError::User)?;
            (Some(gateway), Some(receiver))
        }
        _ => {
            if config.audit {
                attachment.set_names(0, 0, true)?;
            }
            (None, None)
        }
    };
    let gateway_ports = gateway.as_ref().map(|g| (g.dns_port(), g.gate_port()));
    if let Some(hook) = config.before_start {
        hook(&name).map_err(RunError::User)?;
    }
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
    let terminal_filter = crate::seccomp::terminal_filter()
        .map_err(|e| RunError::Landlock(format!("seccomp: {e}")))?;
    let confinement = Confinement {
        cgroup: Some(CgroupJoin::open(&cgroup_path).map_err(RunError::Cgroup)?),
        keep_caps: Some(keep_caps),
        landlock: landlock_ruleset,
        seccomp: config.seccomp,
        cgroup_namespace: true,
        user: match config.user {
            RunUser::Root => None,
            _ => Some((
                uid,
                if dedicated {
                    uid
                } else {
                    crate::sandbox::primary_gid(uid)
                },
            )),
        },
        new_session: true,
        close_inherited: true,
        unix_sockets,
        extra_seccomp: vec![terminal_filter],
    };
    let mut command = Command::new(&config.program);
    command.args(&config.args);
    if !unix_env.is_empty() {
        command.env("EGC_UNIX_SOCKETS", unix_env.join(","));
    }
    if let Some(home) = &dynamic_home {
        command.env("HOME", home);
        if let Some(dir) = work_dir.as_deref().filter(|d| !d.as_os_str().is_empty()) {
            // The dedicated user may not be able to enter the caller's directory.
            if std::fs::metadata(dir).is_err() {
                command.current_dir(home);
            }
        }
    }
    confinement.apply_to(&mut command);

    on_start(&landlock_report);
    PENDING_SIGNAL.store(0, Ordering::SeqCst);
    catch_signals(true);
    let child = command.spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            catch_signals(false);
            return Err(RunError::Spawn(e));
        }
    };
    let child_group = i32::try_from(child.id()).unwrap_or(0);
    let mut denials = Vec::new();
    let mut all_events = Vec::new();
    let agent = config.maps.agent.clone();
    let audit = config.audit;
    // Every event also goes to the attachment's log, for `egc enforce events`.
    let mut log = crate::names::EventLog::create(&name).ok();
    let take = |denial: Denial,
                denials: &mut Vec<Denial>,
                all: &mut Vec<egress_gateway::Event>,
                log: &mut Option<crate::names::EventLog>,
                on_event: &mut dyn FnMut(&egress_gateway::Event, Option<&Denial>)| {
        let event = crate::names::denial_event(&agent, &denial, audit);
        on_event(&event, Some(&denial));
        if let Some(log) = log.as_mut() {
            log.append(&event, Some(&denial));
        }
        all.push(event);
        denials.push(denial);
    };
    let forward =
        |receiver: &std::sync::mpsc::Receiver<egress_gateway::Event>,
         all: &mut Vec<egress_gateway::Event>,
         log: &mut Option<crate::names::EventLog>,
         on_event: &mut dyn FnMut(&egress_gateway::Event, Option<&Denial>)| {
            while let Ok(event) = receiver.try_recv() {
                on_event(&event, None);
                if let Some(log) = log.as_mut() {
                    log.append(&event, None);
                }
                all.push(event);
            }
        };
    let status = loop {
        for denial in events.wait(100) {
            take(denial, &mut denials, &mut all_events, &mut log, on_event);
        }
        if let Some(receiver) = &gateway_events {
            forward(receiver, &mut all_events, &mut log, on_event);
        }
        let signal = PENDING_SIGNAL.swap(0, Ordering::SeqCst);
        if signal != 0 && child_group > 0 {
            // SAFETY: kill with integer arguments; the child leads its own group.
            unsafe {
                libc::kill(-child_group, signal);
            }
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
    catch_signals(false);
    for denial in events.drain() {
        take(denial, &mut denials, &mut all_events, &mut log, on_event);
    }
    drop(gateway);
    if let Some(receiver) = &gateway_events {
        forward(receiver, &mut all_events, &mut log, on_event);
    }
    drop(log);
    let counters = attachment.counters();
    drop(events);
    drop(attachment);
    drop(cleanup);
    Ok(RunReport {
        exit_code: status.and_then(|s| s.code()),
        status,
        attachment: name,
        cgroup: cgroup_path.display().to_string(),
        uid,
        denials,
        landlock_abi: kernel_abi,
        landlock_ports: landlock_report.ports,
        landlock: landlock_report,
        unix_sockets: config.unix_sockets.clone(),
        counters,
        audit,
        events: all_events,
        gateway: gateway_ports,
    })
}

/// Creates `home` (mode 0700) owned by `uid`.
fn make_home(home: &Path, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(home)?;
    std::os::unix::fs::chown(home, Some(uid), Some(uid))
}
