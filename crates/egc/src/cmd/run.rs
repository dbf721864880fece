//! `egc run PATH --agent A -- CMD ARGS...`: run a command confined by one agent's policy
//! (its own cgroup with the eBPF program attached, the agent's seccomp profile, Linux
//! capabilities not granted dropped, Landlock TCP-connect port rules where the kernel
//! has Landlock ABI >= 4).
//!
//! Exit codes: the command's own exit code (128 + signal when killed by one); 1 when the
//! policy has errors or cannot be enforced; 2 for usage, I/O or kernel errors. Denials are
//! printed to stderr as they happen.

use std::ffi::OsString;
use std::process::ExitCode;

use std::path::PathBuf;

use egress_enforce::run::{run_with as run_confined, LandlockMode, RunConfig, RunUser};

use crate::cmd::enforce::{absolute, agent_maps, describe_denial, require_root, PolicyArgs};
use crate::common::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Refuse to run unless the kernel supports Landlock network rules (ABI >= 4).
    #[arg(long, conflicts_with = "no_landlock")]
    pub require_landlock: bool,
    /// Do not use Landlock (only with --dynamic-user: without Landlock a command running
    /// as a user that has other processes could take them over).
    #[arg(long)]
    pub no_landlock: bool,
    /// Use at most this Landlock ABI, as on an older kernel (to see what a weaker host
    /// enforces).
    #[arg(long, value_name = "N")]
    pub landlock_abi: Option<i64>,
    /// Run the command as a fresh uid that no process and no account uses (with a new,
    /// empty home directory). It cannot touch the invoking user's processes or files,
    /// and cannot write the work directory unless it is writable by everyone.
    #[arg(long, conflicts_with_all = ["uid", "allow_root"])]
    pub dynamic_user: bool,
    /// Let the command also write beneath PATH (repeatable). By default it may write
    /// the work directory (unless that is the home directory), /tmp, /var/tmp and /dev/shm.
    #[arg(long, value_name = "PATH")]
    pub allow_write: Vec<PathBuf>,
    /// Keep the work directory read-only.
    #[arg(long)]
    pub read_only_work_dir: bool,
    /// Open one workflow step for the run (a token from `egc workflow grant`); it ends
    /// when the command exits or the token expires.
    #[arg(long, value_name = "TOKEN")]
    pub step_token: Option<String>,
    /// Do not install the agent's seccomp profile (loudly weaker; for debugging).
    #[arg(long)]
    pub no_seccomp: bool,
    /// Run the command as this uid (default: the agent's `uid`, else the user who ran
    /// sudo). Granted Linux capabilities are kept as ambient capabilities.
    #[arg(long)]
    pub uid: Option<u32>,
    /// Allow running the command as root. A root command owns the cgroup and bpffs files
    /// and could leave its cgroup or remove the program's pins, so this is refused
    /// unless asked for.
    #[arg(long)]
    pub allow_root: bool,
    /// `json` prints a summary object (denials, counters) to stderr at exit.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

pub fn run(args: Args) -> ExitCode {
    if let Err(code) = require_root("egc run") {
        return code;
    }
    let (_, policy, maps) = match agent_maps(&args.policy, args.format) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(agent) = policy.agent_by_name(&args.policy.agent) else {
        return common::usage_error(format!("no agent `{}`", args.policy.agent));
    };
    if let Err(message) = crate::cmd::enforce::runtime_approvals(&policy, agent) {
        eprintln!("error[E0152]: {message}; nothing was run (egc explain E0152)");
        return ExitCode::from(1);
    }
    let seccomp = if args.no_seccomp {
        eprintln!("egc: warning: --no-seccomp: running without the agent's seccomp profile");
        None
    } else {
        match egress_enforce::seccomp::for_agent(&policy, agent) {
            Ok(filter) => {
                if !filter.not_on_this_arch.is_empty() && args.format == Format::Human {
                    eprintln!(
                        "egc: note: not system calls on this architecture (left out): {}",
                        filter.not_on_this_arch.join(", ")
                    );
                }
                Some(filter.program)
            }
            Err(e) => {
                eprintln!(
                    "error: agent `{}`: seccomp: {e}; nothing was run",
                    args.policy.agent
                );
                return ExitCode::from(1);
            }
        }
    };
    let user = if args.dynamic_user {
        RunUser::Dynamic
    } else {
        let uid = args
            .uid
            .or(agent.identity.uid)
            .or_else(|| std::env::var("SUDO_UID").ok().and_then(|u| u.parse().ok()));
        match uid {
            Some(0) | None if !args.allow_root => {
                return common::usage_error(
                    "egc run would run the command as root, which could leave its cgroup; give the agent a `uid`, pass --uid or --dynamic-user, run through sudo from a user account, or pass --allow-root",
                )
            }
            Some(0) | None => {
                eprintln!("egc: warning: --allow-root: the command runs as root; Landlock keeps it away from egc's state, audit log and ledger, but root owns the files it may write");
                RunUser::Root
            }
            Some(uid) => RunUser::Uid(uid),
        }
    };
    let landlock = if args.no_landlock {
        LandlockMode::Off
    } else if args.require_landlock {
        LandlockMode::Require
    } else {
        LandlockMode::Auto
    };
    let mut command = args.command.into_iter();
    let Some(program) = command.next() else {
        return common::usage_error("no command given after `--`");
    };
    let agent_name = maps.agent_name.clone();
    let mut extra_tcp_ports = egress_enforce::run::exception_tcp_ports(&policy, agent);
    if args.step_token.is_some() {
        extra_tcp_ports.extend(egress_enforce::run::capability_tcp_ports(&policy, agent));
    }
    let config = RunConfig {
        maps,
        policy: Some(absolute(&args.policy.path)),
        seccomp,
        landlock,
        landlock_max_abi: args.landlock_abi,
        extra_tcp_ports,
        writable: args.allow_write.clone(),
        write_work_dir: !args.read_only_work_dir,
        unix_sockets: policy.unix_sockets_of(agent),
        program,
        args: command.collect(),
        user,
        executables: agent.identity.executables.clone(),
        before_start: None,
    };
    let step_config = egress_enforce::exception::ApplyConfig {
        audit: egress_enforce::exception::AuditLog {
            path: egress_enforce::exception::AuditLog::default_path(),
        },
        ledger: egress_enforce::exception::Ledger {
            dir: egress_enforce::exception::Ledger::default_dir(),
        },
        attachment: None,
    };
    type StepSlot = std::sync::Arc<std::sync::Mutex<Option<egress_enforce::exception::Installed>>>;
    let step_installed: StepSlot = std::sync::Arc::new(std::sync::Mutex::new(None));
    let mut config = config;
    if let Some(arg) = &args.step_token {
        let token = match crate::cmd::exception::read_token(arg) {
            Ok(t) => t,
            Err(code) => return code,
        };
        let policy = policy.clone();
        let slot = step_installed.clone();
        let step_config = step_config.clone();
        config.before_start = Some(Box::new(move |attachment: &str| {
            let mut at = step_config.clone();
            at.attachment = Some(attachment.to_string());
            let installed = egress_enforce::steps::apply(
                &policy,
                &token,
                &at,
                egress_enforce::state::now_unix(),
            )
            .map_err(|e| format!("step token: {e}"))?;
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(installed);
            }
            Ok(())
        }));
    }
    let human = args.format == Format::Human;
    let mut on_denial = |d: &egress_enforce::loader::Denial| {
        if human {
            eprintln!("{}", describe_denial(&agent_name, d));
        }
    };
    let mut on_start = |landlock: &egress_enforce::run::LandlockReport| {
        for missing in &landlock.missing {
            eprintln!("egc: warning: weaker confinement: {missing}");
        }
    };
    let outcome = run_confined(config, &mut on_start, &mut on_denial);
    let ended = step_installed.lock().ok().and_then(|mut s| s.take());
    if let Some(installed) = ended {
        let _ = egress_enforce::exception::remove(&installed, &step_config, "end");
    }
    match outcome {
        Ok(report) => {
            if !human {
                eprintln!("{}", serde_json::to_string(&report).unwrap_or_default());
            }
            use std::os::unix::process::ExitStatusExt;
            let code = match report.status {
                Some(status) => status
                    .code()
                    .or_else(|| status.signal().map(|s| 128 + s))
                    .unwrap_or(1),
                None => 1,
            };
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Err(e @ egress_enforce::run::RunError::CodeIdentity(_)) => {
            eprintln!("error[E0154]: {e}; nothing was run (egc explain E0154)");
            ExitCode::from(1)
        }
        Err(e @ egress_enforce::run::RunError::SharedUserWithoutLandlock(_)) => {
            eprintln!("error[E0153]: {e}; nothing was run (egc explain E0153)");
            ExitCode::from(2)
        }
        Err(e) => common::usage_error(format!("egc run: {e}; nothing was run")),
    }
}
