//! `egc run PATH --agent A -- CMD ARGS...`: run a command confined by one agent's policy
//! (its own cgroup with the eBPF program attached, the agent's seccomp profile, Linux
//! capabilities not granted dropped, Landlock TCP-connect port rules where the kernel
//! has Landlock ABI >= 4).
//!
//! Host-name destinations are enforced through egc's DNS gateway and name gate (see
//! `book/src/runtime/names.md`): every DNS query goes to the gateway, which answers only
//! the agent's names; connections to their addresses pass only with a matching SNI/Host.
//!
//! Exit codes: the command's own exit code (128 + signal when killed by one); 1 when the
//! policy has errors or cannot be enforced; 2 for usage, I/O or kernel errors. Denials are
//! printed to stderr as they happen, written as JSON lines with `--events`, and
//! summarised at exit.

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
    /// Audit mode: allow what the policy denies, but report each would-be denial (never
    /// a default; the banner, every event and the audit log say so).
    #[arg(long)]
    pub audit: bool,
    /// Write every denial (kernel, DNS gateway, name gate) as one JSON line to PATH
    /// (`egc suggest PATH POLICY` proposes a policy change from it).
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,
    /// The resolver the DNS gateway forwards the agent's allowed names to (`ADDR` or
    /// `ADDR:PORT`, port 53 by default). Default: the agent's own resolver destination
    /// (a single address on UDP port 53).
    #[arg(long, value_name = "ADDR")]
    pub resolver: Option<String>,
    /// A learned address stays open for its DNS answer's TTL, but at least this many
    /// seconds (default 5)...
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub dns_ttl_min: u64,
    /// ...and at most this many (default 300).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub dns_ttl_max: u64,
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
    let (_, policy, maps) = match agent_maps(&args.policy, args.format, true) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let names = if maps.names.is_empty() {
        None
    } else {
        match upstream_resolver(args.resolver.as_deref(), &maps.resolvers) {
            Ok(Some(upstream)) => {
                if args.dns_ttl_min > args.dns_ttl_max {
                    return common::usage_error("--dns-ttl-min is larger than --dns-ttl-max");
                }
                let mut names = egress_enforce::run::NamesConfig::new(upstream);
                names.ttl_min = std::time::Duration::from_secs(args.dns_ttl_min);
                names.ttl_max = std::time::Duration::from_secs(args.dns_ttl_max.max(1));
                Some(names)
            }
            Ok(None) => {
                let hosts: Vec<String> = maps.names.iter().map(|n| n.pattern.clone()).collect();
                eprintln!(
                    "error[E0155]: agent `{}` has host-name destinations ({}) but no resolver for the DNS gateway; nothing was run\n  help: let a capability of the agent connect to its resolver (a single address on UDP port 53, e.g. `dns.systemd_resolved` from `import std.dns`), or pass --resolver ADDR (egc explain E0155)",
                    args.policy.agent,
                    hosts.join(", ")
                );
                return ExitCode::from(1);
            }
            Err(message) => return common::usage_error(message),
        }
    };
    let mut events_file = match &args.events {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Some(std::io::BufWriter::new(file)),
            Err(e) => return common::usage_error(format!("--events {}: {e}", path.display())),
        },
        None => None,
    };
    if args.audit {
        eprintln!("egc: AUDIT MODE: agent `{}`: what the policy denies is let through and reported, not enforced", args.policy.agent);
        crate::cmd::enforce::audit_mode_record("run", &args.policy.agent);
    }
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
        names,
        audit: args.audit,
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
    let audit = args.audit;
    let mut on_event = |event: &egress_enforce::names::Event,
                        denial: Option<&egress_enforce::loader::Denial>| {
        if let Some(out) = events_file.as_mut() {
            use std::io::Write;
            let _ = writeln!(out, "{}", egress_enforce::names::event_line(event, denial));
            let _ = out.flush();
        }
        if human {
            let text = match denial {
                Some(d) => describe_denial(&agent_name, d),
                None => describe_event(event),
            };
            if audit {
                eprintln!(
                    "{} [audit mode: let through]",
                    text.replacen("egc: denied", "egc: would deny", 1)
                );
            } else {
                eprintln!("{text}");
            }
        }
    };
    let mut on_start = |landlock: &egress_enforce::run::LandlockReport| {
        for missing in &landlock.missing {
            eprintln!("egc: warning: weaker confinement: {missing}");
        }
    };
    let outcome = run_confined(config, &mut on_start, &mut on_event);
    let ended = step_installed.lock().ok().and_then(|mut s| s.take());
    if let Some(installed) = ended {
        let _ = egress_enforce::exception::remove(&installed, &step_config, "end");
    }
    match outcome {
        Ok(report) => {
            if !human {
                eprintln!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                for line in summary(&report.events, report.audit, args.events.as_deref()) {
                    eprintln!("{line}");
                }
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

/// `ADDR` or `ADDR:PORT` (port 53 by default); otherwise the agent's first resolver.
pub(crate) fn upstream_resolver(
    given: Option<&str>,
    declared: &[String],
) -> Result<Option<std::net::SocketAddr>, String> {
    if let Some(text) = given {
        if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
            return Ok(Some(addr));
        }
        return text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .map(|ip| Some(std::net::SocketAddr::new(ip, 53)))
            .map_err(|_| format!("--resolver {text:?}: expected an address, e.g. 192.0.2.53 or [2001:db8::53]:5353"));
    }
    Ok(declared.first().and_then(|r| r.parse().ok()))
}

/// `text` with every control character (newlines included) and bidirectional-override
/// character escaped: names, process names and messages come from the agent, and must not
/// write lines or escape sequences to the operator's terminal in egc's voice.
pub(crate) fn terminal_safe(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let dangerous = c.is_control()
                || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            let escaped: Vec<char> = if dangerous {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// A gateway event for people (every field from the agent made terminal-safe).
pub(crate) fn describe_event(event: &egress_enforce::names::Event) -> String {
    let who = match (event.pid, &event.comm) {
        (Some(pid), Some(comm)) => format!(" (pid {pid} {})", terminal_safe(comm)),
        _ => String::new(),
    };
    let what = match (&event.name, &event.address, event.port) {
        (Some(name), Some(addr), Some(port)) => {
            format!("{} at {addr} port {port}", terminal_safe(name))
        }
        (Some(name), _, _) => terminal_safe(name),
        (None, Some(addr), Some(port)) => format!("{addr} port {port}"),
        _ => String::new(),
    };
    let layer = serde_json::to_value(event.layer)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let hint = event
        .suggestion
        .as_ref()
        .map(|s| format!("\n  to allow it, a reviewed policy change such as a destination with `{}`, used by a capability of `{}` and approved in its zone", terminal_safe(s), event.agent))
        .unwrap_or_default();
    format!(
        "egc: denied {what} at the {layer} layer{who}: {}: {}{hint}",
        terminal_safe(&event.reason),
        terminal_safe(&event.message)
    )
}

/// The lines printed at exit: how many denials, by layer, and the most frequent targets.
fn summary(
    events: &[egress_enforce::names::Event],
    audit: bool,
    file: Option<&std::path::Path>,
) -> Vec<String> {
    if events.is_empty() {
        return Vec::new();
    }
    let mut by_layer: std::collections::BTreeMap<String, usize> = Default::default();
    let mut by_target: std::collections::BTreeMap<String, usize> = Default::default();
    for event in events {
        let layer = serde_json::to_value(event.layer)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *by_layer.entry(layer).or_default() += 1;
        let target = match (&event.name, &event.address, event.port) {
            (Some(name), _, Some(port)) => format!("{name}:{port}"),
            (Some(name), _, None) => name.clone(),
            (None, Some(addr), Some(port)) => format!("{addr}:{port}"),
            _ => event.reason.clone(),
        };
        *by_target.entry(target).or_default() += 1;
    }
    let layers: Vec<String> = by_layer.iter().map(|(l, n)| format!("{n} {l}")).collect();
    let mut targets: Vec<(&String, &usize)> = by_target.iter().collect();
    targets.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = targets
        .iter()
        .take(5)
        .map(|(t, n)| format!("{} ({n})", terminal_safe(t)))
        .collect();
    let mut lines = vec![format!(
        "egc: {} {} ({}): {}",
        events.len(),
        if audit {
            "would-be denials, let through (audit mode)"
        } else {
            "denials"
        },
        layers.join(", "),
        top.join(", ")
    )];
    if let Some(path) = file {
        lines.push(format!(
            "egc: events in {}; `egc suggest {} POLICY` proposes a policy change",
            path.display(),
            path.display()
        ));
    }
    lines
}
