//! `egc enforce apply|status|detach|events`: socket-level enforcement of one agent's
//! policy on a cgroup v2, with the eBPF program pinned under `/sys/fs/bpf/egc/`.
//!
//! Exit codes: 0 done, 1 the policy has errors or cannot be enforced at the socket,
//! 2 usage, I/O or kernel errors (including "not root"). Nothing fails open: if the
//! program cannot be attached, the command fails and leaves nothing half-attached.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use egress_check::CheckedPolicy;
use egress_enforce::control::{self, ApplyRequest, Kind};
use egress_enforce::loader::{self, Denial};
use egress_enforce::maps::{file_stem, lower_with, EbpfMaps, LowerConfig};
use egress_syntax::Diagnostic;

use crate::common::{self, Format, LoadedPolicy};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: EnforceCommand,
}

#[derive(clap::Subcommand)]
pub enum EnforceCommand {
    /// Load the agent's rules and attach them to a cgroup (updates in place if attached).
    Apply(ApplyArgs),
    /// Show what is attached, with per-agent allowed and denied counters.
    Status(StatusArgs),
    /// Detach an attachment (or every attachment of an agent) and remove its pins.
    Detach(DetachArgs),
    /// Print denials as they happen (agent, destination, reason), one per line.
    Events(EventsArgs),
    /// Open (`apply`) or close (`end`) one workflow step granted by the orchestrator.
    #[command(subcommand)]
    Step(StepCommand),
}

/// Policy options shared by `egc enforce apply` and `egc run`.
#[derive(clap::Args, Clone)]
pub struct PolicyArgs {
    /// The policy: a directory of `.egress` files (or files).
    pub path: PathBuf,
    /// The agent whose policy to enforce.
    #[arg(long)]
    pub agent: String,
    /// Also open capabilities usable only within this workflow, for the whole run, on
    /// your word alone: an unsigned debugging aid. Steps granted by the orchestrator
    /// (`egc workflow grant`, `--step-token`) are the way to open them for real.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Keep host-name and workload destinations closed (a declared narrowing) instead
    /// of refusing the policy: the socket sees addresses, not names.
    #[arg(long)]
    pub deny_unenforceable: bool,
    /// The project root; imports may not leave it.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// A signed build directory (`egc build --sign`): refuse unless the policy's sources
    /// and the agent's connection set are the ones signed there.
    #[arg(long, value_name = "DIR", requires = "key")]
    pub manifest: Option<PathBuf>,
    /// The public key the manifest must be signed with (`ed25519:...` or a file).
    #[arg(long, value_name = "PUB", requires = "manifest")]
    pub key: Option<String>,
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The cgroup v2 to enforce on: a path relative to the cgroup2 root (`/agents/bot`)
    /// or an absolute path inside it. Defaults to the agent's `cgroup` identity. Created
    /// if missing.
    #[arg(long)]
    pub cgroup: Option<String>,
    /// The attachment name (default: the agent's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Audit mode: allow what the policy denies, but report each would-be denial (never
    /// a default; recorded in the audit log; `egc enforce status` shows it).
    #[arg(long)]
    pub audit: bool,
    /// Enforce the agent's host-name destinations: stay in the foreground serving the
    /// attachment's DNS gateway and name gate, printing events, until interrupted (then
    /// the names are closed again). Without it, host destinations are refused (E0100).
    #[arg(long)]
    pub serve_names: bool,
    /// With --serve-names: the resolver allowed names are forwarded to (default: the
    /// agent's own resolver destination).
    #[arg(long, value_name = "ADDR", requires = "serve_names")]
    pub resolver: Option<String>,
    /// With --serve-names: also write events as JSON lines to PATH.
    #[arg(long, value_name = "PATH", requires = "serve_names")]
    pub events: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(clap::Subcommand)]
pub enum StepCommand {
    /// Open a step's destinations for its agent until it ends or its token expires.
    Apply(crate::cmd::workflow::StepApplyArgs),
    /// End an applied step: close its destinations and the connections it opened.
    End(crate::cmd::workflow::StepEndArgs),
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(clap::Args)]
pub struct DetachArgs {
    /// Attachment names (see `egc enforce status`).
    pub names: Vec<String>,
    /// Detach every attachment of this agent.
    #[arg(long)]
    pub agent: Option<String>,
}

#[derive(clap::Args)]
pub struct EventsArgs {
    /// Attachment name (see `egc enforce status`).
    pub name: String,
    /// Keep waiting for denials (until interrupted).
    #[arg(long)]
    pub follow: bool,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

pub fn run(args: Args) -> ExitCode {
    match args.command {
        EnforceCommand::Apply(a) => apply(a),
        EnforceCommand::Status(a) => status(a),
        EnforceCommand::Detach(a) => detach(a),
        EnforceCommand::Events(a) => events(a),
        EnforceCommand::Step(StepCommand::Apply(a)) => crate::cmd::workflow::apply(a),
        EnforceCommand::Step(StepCommand::End(a)) => crate::cmd::workflow::end(a),
    }
}

/// Refuses early when not root: loading eBPF needs CAP_BPF/CAP_SYS_ADMIN.
pub(crate) fn require_root(what: &str) -> Result<(), ExitCode> {
    if std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|r| r.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
    {
        Ok(())
    } else {
        Err(common::usage_error(format!(
            "{what} needs root (it loads eBPF programs and manages cgroups)"
        )))
    }
}

/// Loads the policy that declares `agent`; prints diagnostics on errors.
pub(crate) fn load_agent_policy(
    path: &Path,
    root: Option<&Path>,
    agent: &str,
    format: Format,
) -> Result<(LoadedPolicy, CheckedPolicy), ExitCode> {
    let policies = common::load_policies(&[path.to_path_buf()], root)?;
    if policies.iter().any(|p| p.result.policy.is_none()) {
        common::print_diagnostics(&policies, format);
        eprintln!("error: the policy has errors; nothing was enforced");
        return Err(ExitCode::from(1));
    }
    let mut found: Vec<LoadedPolicy> = policies
        .into_iter()
        .filter(|p| {
            p.result
                .policy
                .as_ref()
                .is_some_and(|pol| pol.agent_by_name(agent).is_some())
        })
        .collect();
    match found.len() {
        0 => Err(common::usage_error(format!(
            "no agent `{agent}` in {}",
            path.display()
        ))),
        1 => {
            let loaded = found.remove(0);
            match loaded.result.policy.clone() {
                Some(policy) => Ok((loaded, policy)),
                None => Err(ExitCode::from(1)),
            }
        }
        _ => Err(common::usage_error(format!(
            "agent `{agent}` is declared in several policies under {}; pass one directory",
            path.display()
        ))),
    }
}

/// Prints lowering diagnostics (errors or warnings) the way `egc check` does.
pub(crate) fn print_lowering(loaded: &LoadedPolicy, diagnostics: &[Diagnostic], format: Format) {
    if diagnostics.is_empty() {
        return;
    }
    match format {
        Format::Human => {
            let mut buffer = Vec::new();
            crate::render::human::diagnostics(
                &loaded.result,
                diagnostics,
                common::use_color(),
                &mut buffer,
            );
            let _ = std::io::stderr().write_all(&buffer);
        }
        Format::Json | Format::Sarif => {
            let list: Vec<serde_json::Value> = diagnostics
                .iter()
                .map(|d| crate::render::json::diagnostic(&loaded.result, d))
                .collect();
            eprintln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "diagnostics": list }))
                    .unwrap_or_default()
            );
        }
    }
}

/// Loads, checks and lowers the agent; prints diagnostics.
/// With `names`, host-name destinations become name rules for the DNS gateway and name
/// gate instead of errors.
pub(crate) fn agent_maps(
    args: &PolicyArgs,
    format: Format,
    names: bool,
) -> Result<(LoadedPolicy, CheckedPolicy, EbpfMaps), ExitCode> {
    let (loaded, policy) =
        load_agent_policy(&args.path, args.root.as_deref(), &args.agent, format)?;
    if let (Some(dir), Some(key)) = (&args.manifest, &args.key) {
        check_manifest(dir, key, &loaded, &policy, &args.agent)?;
    }
    if let Some(workflow) = &args.workflow {
        eprintln!(
            "egc: warning: --workflow {workflow}: opening every capability of this workflow for the whole run, unsigned (a debugging aid); use a step token from `egc workflow grant` to open one step for real"
        );
    }
    let config = LowerConfig {
        workflow: args.workflow.clone(),
        deny_unenforceable: args.deny_unenforceable,
        names,
    };
    match lower_with(&policy, &args.agent, &config) {
        Ok((maps, warnings)) => {
            // What is about to be loaded is checked against the policy, as `egc build`
            // validates what it writes: never wider than the agent's own routes.
            let checked = policy
                .agent_by_name(&args.agent)
                .map(|agent| egress_lower::ebpf::check_loaded(&policy, agent, &maps));
            if let Some(Err(refused)) = checked {
                let mut all = warnings;
                all.push(refused);
                print_lowering(&loaded, &all, format);
                eprintln!(
                    "error: the maps lowered for agent `{}` are wider than the policy; nothing was enforced",
                    args.agent
                );
                return Err(ExitCode::from(1));
            }
            print_lowering(&loaded, &warnings, format);
            Ok((loaded, policy, maps))
        }
        Err(errors) => {
            print_lowering(&loaded, &errors, format);
            eprintln!(
                "error: agent `{}` cannot be enforced at the socket; nothing was enforced",
                args.agent
            );
            Err(ExitCode::from(1))
        }
    }
}

/// Refuses (exit 2, audited) a policy or agent that differs from the signed manifest.
fn check_manifest(
    dir: &Path,
    key: &str,
    loaded: &LoadedPolicy,
    policy: &CheckedPolicy,
    agent: &str,
) -> Result<(), ExitCode> {
    // The signature, the policy's sources and the agent's connection set, and every
    // artifact in the signed directory: a byte changed anywhere refuses.
    let problems = match crate::cmd::manifest::open_manifest(dir, key) {
        Ok(intent) => {
            let mut problems =
                crate::cmd::manifest::policy_differences(&intent, loaded, policy, Some(agent));
            match crate::cmd::manifest::files_in(dir) {
                Ok(here) => problems.extend(egress_enforce::manifest::compare(
                    "artifact",
                    &intent.artifacts,
                    &here,
                )),
                Err(e) => problems.push(e),
            }
            problems
        }
        Err(e) => vec![e],
    };
    let audit = egress_enforce::exception::AuditLog {
        path: egress_enforce::exception::AuditLog::default_path(),
    };
    let time = egress_enforce::state::now_unix();
    if problems.is_empty() {
        let _ = audit.append(&serde_json::json!({
            "event": "manifest-accept",
            "agent": agent,
            "manifest": dir.display().to_string(),
            "time": time,
        }));
        return Ok(());
    }
    let _ = audit.append(&serde_json::json!({
        "event": "refuse",
        "stage": "manifest",
        "agent": agent,
        "manifest": dir.display().to_string(),
        "reason": problems.join("; "),
        "time": time,
    }));
    for line in &problems {
        eprintln!("error: {line}");
    }
    eprintln!(
        "error: the policy is not the one signed in {}; nothing was enforced",
        dir.display()
    );
    Err(ExitCode::from(2))
}

/// What the runtime refuses to enforce without a zone's approval, even when the policy
/// was not verified: Linux capabilities that bypass the socket hooks (raw sockets, network
/// administration, ...) and local unix sockets. The verifier reports the same cases as
/// `layers-consistent` and `egress-approved` findings.
pub(crate) fn runtime_approvals(
    policy: &CheckedPolicy,
    agent: &egress_check::Agent,
) -> Result<(), String> {
    let approved_caps = policy.approved_linux_caps(agent.id);
    let unapproved: Vec<String> = policy
        .linux_caps_of(agent)
        .into_iter()
        .filter(|c| c.bypasses_enforcement() && !approved_caps.contains(c))
        .map(|c| c.name().to_string())
        .collect();
    if !unapproved.is_empty() {
        return Err(format!(
            "agent `{}` is granted {} without a zone's approval; these capabilities bypass the socket hooks (add `approve grant {}` to a zone that lists the agent, after review)",
            agent.name.local,
            unapproved.join(", "),
            unapproved.join(", ")
        ));
    }
    let approved_sockets = policy.approved_unix_sockets(agent.id);
    let unapproved: Vec<String> = policy
        .unix_sockets_of(agent)
        .into_iter()
        .filter(|s| !approved_sockets.contains(s))
        .collect();
    if !unapproved.is_empty() {
        return Err(format!(
            "agent `{}` names unix sockets without a zone's approval: {} (add `approve unix \"PATH\"` to a zone that lists the agent, after review)",
            agent.name.local,
            unapproved.join(", ")
        ));
    }
    Ok(())
}

pub(crate) fn absolute(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

fn apply(args: ApplyArgs) -> ExitCode {
    if let Err(code) = require_root("egc enforce apply") {
        return code;
    }
    let (_, policy, maps) = match agent_maps(&args.policy, args.format, args.serve_names) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let names = if args.serve_names {
        if maps.names.is_empty() {
            return common::usage_error(format!(
                "--serve-names: agent `{}` has no host-name destinations",
                args.policy.agent
            ));
        }
        match crate::cmd::run::upstream_resolver(args.resolver.as_deref(), &maps.resolvers) {
            Ok(Some(upstream)) => Some(egress_enforce::names::NamesConfig::new(upstream)),
            Ok(None) => {
                eprintln!(
                    "error[E0155]: agent `{}` has host-name destinations but no resolver for the DNS gateway; nothing was enforced\n  help: let a capability of the agent connect to its resolver (a single address on UDP port 53), or pass --resolver ADDR (egc explain E0155)",
                    args.policy.agent
                );
                return ExitCode::from(1);
            }
            Err(message) => return common::usage_error(message),
        }
    } else {
        None
    };
    if let Some(agent) = policy.agent_by_name(&args.policy.agent) {
        if let Err(message) = runtime_approvals(&policy, agent) {
            eprintln!("error[E0152]: {message}; nothing was enforced (egc explain E0152)");
            return ExitCode::from(1);
        }
    }
    let cgroup_spec = match args.cgroup.clone().or_else(|| {
        policy
            .agent_by_name(&args.policy.agent)
            .and_then(|a| a.identity.cgroup.clone())
    }) {
        Some(c) => c,
        None => {
            return common::usage_error(format!(
                "agent `{}` declares no `cgroup`; pass --cgroup",
                args.policy.agent
            ))
        }
    };
    let cgroup = match egress_enforce::cgroup::resolve(&cgroup_spec) {
        Ok(c) => c,
        Err(e) => return common::usage_error(format!("cgroup {cgroup_spec:?}: {e}")),
    };
    if let Err(e) = egress_enforce::cgroup::create(&cgroup) {
        return common::usage_error(format!("create cgroup {}: {e}", cgroup.display()));
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| file_stem(&maps.agent_name));
    let applied = control::apply(&ApplyRequest {
        name: &name,
        maps: &maps,
        cgroup: &cgroup,
        policy: Some(absolute(&args.policy.path)),
        kind: Kind::Enforce,
    });
    match applied {
        Ok(how) => {
            match args.format {
                Format::Human => println!(
                    "{} agent `{}` on {} as `{name}`: {} allow rule(s), {} trie entr(ies)",
                    match how {
                        control::Applied::Attached => "attached",
                        control::Applied::Updated => "updated",
                    },
                    maps.agent_name,
                    cgroup.display(),
                    maps.rules.len(),
                    maps.entries.len()
                ),
                _ => println!(
                    "{}",
                    serde_json::json!({
                        "result": how,
                        "attachment": name,
                        "agent": maps.agent,
                        "cgroup": cgroup.display().to_string(),
                        "rules": maps.rules.len(),
                        "entries": maps.entries.len(),
                        "audit": args.audit,
                    })
                ),
            }
            let mut attachment = match loader::open(&name) {
                Ok(a) => a,
                Err(e) => return common::usage_error(format!("cannot enforce: {e}")),
            };
            if let Err(e) = attachment.set_names(0, 0, args.audit) {
                return common::usage_error(format!("cannot enforce: {e}"));
            }
            if args.audit {
                eprintln!("egc: AUDIT MODE: attachment `{name}`: what the policy denies is let through and reported, not enforced");
                audit_mode_record("enforce apply", &maps.agent);
            }
            match names {
                Some(names) => serve_names(&mut attachment, &cgroup, &maps, &names, &args),
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => common::usage_error(format!("cannot enforce: {e}")),
    }
}

fn status(args: StatusArgs) -> ExitCode {
    if let Err(code) = require_root("egc enforce status") {
        return code;
    }
    let all = control::status();
    match args.format {
        Format::Human => {
            if all.is_empty() {
                println!("nothing attached");
            }
            for s in &all {
                let attached = s.links.iter().filter(|l| l.attached).count();
                println!(
                    "{}  agent {}  cgroup {}  ({}, {}/{} hooks attached, {} trie entries){}",
                    s.name,
                    s.agent.as_deref().unwrap_or("?"),
                    s.cgroup.as_deref().unwrap_or("?"),
                    s.kind.as_deref().unwrap_or("?"),
                    attached,
                    s.links.len(),
                    s.rule_entries,
                    if s.audit {
                        "  AUDIT MODE: nothing enforced, would-be denials reported"
                    } else {
                        ""
                    }
                );
                if let Some((dns, gate)) = s.names {
                    println!(
                        "    names served: DNS gateway port {dns}, name gate port {gate}; {} learned address(es){}{}",
                        s.learned.len(),
                        if s.learned.is_empty() { "" } else { ": " },
                        s.learned.join("; ")
                    );
                }
                println!(
                    "    allowed {}  denied {} (no rule for address {}, port/protocol {}, other protocol {}, exception expired {}, exception exhausted {})  via exceptions {}",
                    s.counters.get("allowed").unwrap_or(&0),
                    s.counters.get("denied").unwrap_or(&0),
                    s.counters.get("denied_no_prefix").unwrap_or(&0),
                    s.counters.get("denied_port").unwrap_or(&0),
                    s.counters.get("denied_protocol").unwrap_or(&0),
                    s.counters.get("denied_exception_expired").unwrap_or(&0),
                    s.counters.get("denied_exception_exhausted").unwrap_or(&0),
                    s.counters.get("allowed_via_exception").unwrap_or(&0),
                );
                for e in &s.exceptions {
                    println!(
                        "    exception {} (token {}) until {} : {}",
                        e.exception,
                        e.token_id,
                        e.expires_unix,
                        e.rules
                            .iter()
                            .map(|r| format!("{} {} {}", r.network, r.protocol, r.ports))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
        }
        _ => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "attachments": all }))
                .unwrap_or_default()
        ),
    }
    ExitCode::SUCCESS
}

fn detach(args: DetachArgs) -> ExitCode {
    if let Err(code) = require_root("egc enforce detach") {
        return code;
    }
    let mut names = args.names.clone();
    if let Some(agent) = &args.agent {
        names.extend(control::attachments_of(agent));
    }
    if names.is_empty() {
        return common::usage_error(
            "name an attachment or pass --agent (see `egc enforce status`)",
        );
    }
    names.sort();
    names.dedup();
    let mut failed = false;
    for name in names {
        match control::detach(&name) {
            Ok(()) => println!("detached `{name}`"),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// One denial, for people: what, where, why, and the policy line that would allow it.
pub(crate) fn describe_denial(agent: &str, denial: &Denial) -> String {
    // The process name is the agent's to choose (PR_SET_NAME): terminal-safe.
    let who = format!(
        "for agent `{agent}` (pid {} {})",
        denial.pid,
        crate::cmd::run::terminal_safe(&denial.comm)
    );
    match denial.hook {
        // The socket hooks report the socket type in `port` and the protocol number.
        "sock_create" => {
            return format!(
                "egc: denied a socket of type {} ({}) {who}: {}; only TCP and UDP inet sockets pass the connect hooks (raw and ping sockets need an approved CAP_NET_RAW)",
                denial.port, denial.protocol, denial.reason
            )
        }
        // The setsockopt hook reports the level in the protocol field and the option in `port`.
        "setsockopt" => {
            return format!(
                "egc: denied setsockopt(level {}, option {}) {who}: {}; routing headers and IP options would send packets through addresses the policy never judged",
                denial.protocol.trim_start_matches("ipproto-"),
                denial.port,
                denial.reason
            )
        }
        _ => {}
    }
    let dest = if denial.destination.contains(':') {
        format!("[{}]:{}", denial.destination, denial.port)
    } else {
        format!("{}:{}", denial.destination, denial.port)
    };
    let prefix = if denial.destination.contains(':') {
        128
    } else {
        32
    };
    let suggestion = if denial.hook != "egress"
        && denial.reason != "unspecified-address"
        && (denial.protocol == "tcp" || denial.protocol == "udp")
    {
        format!(
            "\n  to allow it, a reviewed policy change such as:\n    destination NAME {{ cidr {}/{prefix} port {}{} }}\n  used by a capability of `{agent}` and approved in its zone",
            denial.destination,
            denial.port,
            if denial.protocol == "udp" { " protocol udp" } else { "" }
        )
    } else {
        String::new()
    };
    format!(
        "egc: denied {} {} to {dest} {who}: {}{suggestion}",
        denial.protocol, denial.hook, denial.reason
    )
}

fn events(args: EventsArgs) -> ExitCode {
    if let Err(code) = require_root("egc enforce events") {
        return code;
    }
    let attachment = match loader::open(&args.name) {
        Ok(a) => a,
        Err(e) => return common::usage_error(e),
    };
    let (agent, qualified) = egress_enforce::state::load(&args.name)
        .map(|s| (s.maps.agent_name, s.maps.agent))
        .unwrap_or_else(|_| (args.name.clone(), args.name.clone()));
    let audit = attachment
        .config()
        .map(|c| c.flags & loader::FLAG_AUDIT != 0)
        .unwrap_or(false);
    let stop = egress_enforce::exception::stop_on_signals();
    // An attachment served by a running process (`egc run`, `--serve-names`): that
    // process reads the kernel's denials and writes every event to the log.
    let log_path = egress_enforce::names::EventLog::path_for(&args.name);
    if log_path.exists() {
        return follow_log(&log_path, &args, stop);
    }
    let mut reader = match attachment.events() {
        Ok(r) => r,
        Err(e) => return common::usage_error(e),
    };
    loop {
        let batch = if args.follow {
            reader.wait(200)
        } else {
            reader.drain()
        };
        for denial in &batch {
            match args.format {
                Format::Human => eprintln!("{}", describe_denial(&agent, denial)),
                _ => println!(
                    "{}",
                    egress_enforce::names::event_line(
                        &egress_enforce::names::denial_event(&qualified, denial, audit),
                        Some(denial)
                    )
                ),
            }
        }
        if !args.follow || stop.load(std::sync::atomic::Ordering::SeqCst) {
            return ExitCode::SUCCESS;
        }
    }
}

/// Records in the audit log that an agent runs in audit mode (nothing enforced).
pub(crate) fn audit_mode_record(command: &str, agent: &str) {
    let audit = egress_enforce::exception::AuditLog {
        path: egress_enforce::exception::AuditLog::default_path(),
    };
    let _ = audit.append(&serde_json::json!({
        "event": "audit-mode",
        "command": command,
        "agent": agent,
        "time": egress_enforce::state::now_unix(),
    }));
}

/// `egc enforce apply --serve-names`: the attachment's DNS gateway and name gate, in the
/// foreground until SIGINT/SIGTERM; then names are closed again.
fn serve_names(
    attachment: &mut loader::Attachment,
    cgroup: &Path,
    maps: &EbpfMaps,
    names: &egress_enforce::names::NamesConfig,
    args: &ApplyArgs,
) -> ExitCode {
    let mut file = match &args.events {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some(std::io::BufWriter::new(f)),
            Err(e) => return common::usage_error(format!("--events {}: {e}", path.display())),
        },
        None => None,
    };
    let stop = egress_enforce::exception::stop_on_signals();
    let (gateway, receiver) =
        match egress_enforce::names::start_gateway(attachment, cgroup, maps, names, args.audit) {
            Ok(x) => x,
            Err(e) => return common::usage_error(format!("--serve-names: {e}")),
        };
    let mut reader = match attachment.events() {
        Ok(r) => r,
        Err(e) => return common::usage_error(e),
    };
    eprintln!(
        "egc: serving names for `{}` (DNS gateway port {}, name gate port {}, upstream {}); Ctrl-C stops and closes them",
        attachment.name, gateway.dns_port(), gateway.gate_port(), names.upstream
    );
    let mut log = egress_enforce::names::EventLog::create(&attachment.name).ok();
    let mut emit = |event: &egress_enforce::names::Event, denial: Option<&Denial>| {
        if let Some(log) = log.as_mut() {
            log.append(event, denial);
        }
        let line = egress_enforce::names::event_line(event, denial);
        if let Some(out) = file.as_mut() {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        match args.format {
            Format::Human => match denial {
                Some(d) => eprintln!("{}", describe_denial(&maps.agent_name, d)),
                None => eprintln!("{line}"),
            },
            _ => println!("{line}"),
        }
    };
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        for denial in reader.wait(200) {
            let event = egress_enforce::names::denial_event(&maps.agent, &denial, args.audit);
            emit(&event, Some(&denial));
        }
        while let Ok(event) = receiver.try_recv() {
            emit(&event, None);
        }
    }
    let _ = attachment.set_names(0, 0, args.audit);
    drop(gateway);
    egress_enforce::names::EventLog::remove(&attachment.name);
    eprintln!(
        "egc: stopped serving names for `{}`: its host-name destinations are closed",
        attachment.name
    );
    ExitCode::SUCCESS
}

/// Prints the events of an attachment's log (and, with `--follow`, those appended later).
fn follow_log(path: &Path, args: &EventsArgs, stop: &std::sync::atomic::AtomicBool) -> ExitCode {
    use std::io::BufRead;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return common::usage_error(format!("{}: {e}", path.display())),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut line = String::new();
    loop {
        // `line` keeps a partial line (being written) until its newline arrives.
        if line.ends_with('\n') {
            line.clear();
        }
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => {
                if !args.follow || stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return ExitCode::SUCCESS;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Ok(_) if !line.ends_with('\n') => {
                // A line being written: wait for the rest.
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Ok(_) => match args.format {
                Format::Human => {
                    match serde_json::from_str::<egress_enforce::names::Event>(line.trim_end()) {
                        Ok(event) => eprintln!("{}", crate::cmd::run::describe_event(&event)),
                        Err(_) => eprint!("{line}"),
                    }
                }
                _ => print!("{line}"),
            },
        }
    }
}
