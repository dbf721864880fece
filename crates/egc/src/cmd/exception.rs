//! `egc exception keygen|grant|apply|log`: time-bound, signed exceptions at run time.
//!
//! `grant` issues an ed25519-signed token for one exception of the policy (checked like
//! `apply` will check it); `apply` verifies a token against the policy (signature by the
//! exception's approver key, lifetime within `max_ttl`, destination inside the pattern,
//! use limit and replay ledger), installs its destination into the agent's attached eBPF
//! maps, waits until expiry and removes it. Every grant, use, refusal, expiry and
//! revocation is one JSON line in the append-only audit log.
//!
//! Exit codes: 0 done, 1 refused (the token or request is not acceptable), 2 usage, I/O
//! or kernel errors.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use egress_enforce::exception::{
    self, parse_duration, parse_secret_key, parse_target, ApplyConfig, AuditLog, ExceptionError,
    GrantRequest, Ledger,
};

use crate::cmd::enforce::{load_agent_policy, require_root};
use crate::common::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ExceptionCommand,
}

#[derive(clap::Subcommand)]
pub enum ExceptionCommand {
    /// Make an ed25519 keypair: writes the secret key file and prints the policy's `key` line.
    Keygen(KeygenArgs),
    /// Issue a signed token for an exception of the policy.
    Grant(GrantArgs),
    /// Verify a token and open its destination until it expires (runs until then).
    Apply(ApplyArgs),
    /// Print the audit log.
    Log(LogArgs),
}

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Where to write the secret key (created with mode 0600; never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct AuditArgs {
    /// The append-only audit log.
    #[arg(long, default_value_os_t = AuditLog::default_path())]
    pub audit_log: PathBuf,
}

#[derive(clap::Args)]
pub struct GrantArgs {
    /// The policy: a directory of `.egress` files (or files).
    pub path: PathBuf,
    /// The exception's name.
    pub exception: String,
    /// The approver's secret key file (from `egc exception keygen`).
    #[arg(long)]
    pub key: PathBuf,
    /// Token lifetime: `90s`, `15m`, `1h` (at most the exception's `max_ttl`).
    #[arg(long)]
    pub ttl: String,
    /// One destination inside the exception's pattern: `HOST_OR_IP:PORT[/tcp|udp]`.
    #[arg(long)]
    pub to: Option<String>,
    /// Limit the token to one of the exception's agents.
    #[arg(long)]
    pub agent: Option<String>,
    #[command(flatten)]
    pub audit: AuditArgs,
    #[arg(long)]
    pub root: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The token (`-` reads it from stdin, `@FILE` from a file).
    pub token: String,
    /// The policy to verify against (default: the policy the agent's attachment was
    /// applied from).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The attachment to open the exception in (needed when the agent has several).
    #[arg(long)]
    pub attachment: Option<String>,
    #[command(flatten)]
    pub audit: AuditArgs,
    /// Where used-token records are kept (replay protection).
    #[arg(long, default_value_os_t = Ledger::default_dir())]
    pub ledger: PathBuf,
    #[arg(long)]
    pub root: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(clap::Args)]
pub struct LogArgs {
    #[command(flatten)]
    pub audit: AuditArgs,
}

pub fn run(args: Args) -> ExitCode {
    match args.command {
        ExceptionCommand::Keygen(a) => keygen(a),
        ExceptionCommand::Grant(a) => grant(a),
        ExceptionCommand::Apply(a) => apply(a),
        ExceptionCommand::Log(a) => log(a),
    }
}

pub(crate) fn fail(e: ExceptionError) -> ExitCode {
    match e {
        ExceptionError::Refused(_) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        ExceptionError::Failed(_) => common::usage_error(e),
    }
}

fn keygen(args: KeygenArgs) -> ExitCode {
    let (secret, public) = match exception::keygen() {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    if let Err(e) = exception::write_secret_key(&args.out, &secret) {
        return fail(e);
    }
    eprintln!("wrote the secret key to {} (mode 0600)", args.out.display());
    println!("key \"{public}\"");
    ExitCode::SUCCESS
}

fn grant(args: GrantArgs) -> ExitCode {
    let audit = AuditLog {
        path: args.audit.audit_log.clone(),
    };
    let Some(ttl_secs) = parse_duration(&args.ttl) else {
        return common::usage_error(format!("--ttl {:?}: expected e.g. 90s, 15m, 1h", args.ttl));
    };
    let to = match args.to.as_deref().map(parse_target).transpose() {
        Ok(t) => t,
        Err(e) => return common::usage_error(format!("--to: {e}")),
    };
    let key_text = match std::fs::read_to_string(&args.key) {
        Ok(t) => t,
        Err(e) => return common::usage_error(format!("{}: {e}", args.key.display())),
    };
    let key = match parse_secret_key(&key_text) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let policies =
        match common::load_policies(std::slice::from_ref(&args.path), args.root.as_deref()) {
            Ok(p) => p,
            Err(code) => return code,
        };
    if policies.iter().any(|p| p.result.policy.is_none()) {
        common::print_diagnostics(&policies, args.format);
        eprintln!("error: the policy has errors; no token issued");
        return ExitCode::from(1);
    }
    let Some(policy) = policies
        .iter()
        .filter_map(|p| p.result.policy.as_ref())
        .find(|p| p.exception_by_name(&args.exception).is_some())
    else {
        return common::usage_error(format!(
            "no exception `{}` in {}",
            args.exception,
            args.path.display()
        ));
    };
    let request = GrantRequest {
        exception: &args.exception,
        key: &key,
        ttl_secs,
        to,
        agent: args.agent.as_deref(),
        now: egress_enforce::state::now_unix(),
    };
    match exception::grant(policy, &request) {
        Ok((token, claims)) => {
            if let Err(e) = exception::audit_grant(&audit, &claims, policy) {
                return fail(e);
            }
            match args.format {
                Format::Human => {
                    eprintln!(
                        "granted exception `{}` for {} until {} (unix), destination {}",
                        claims.exception,
                        claims.agents.join(", "),
                        claims.expires_at,
                        claims
                            .to
                            .as_ref()
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "the whole pattern".into())
                    );
                    println!("{token}");
                }
                _ => println!(
                    "{}",
                    serde_json::json!({ "token": token, "claims": claims })
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = exception::audit_refused_grant(&audit, &args.exception, &e.to_string());
            fail(e)
        }
    }
}

pub(crate) fn read_token(arg: &str) -> Result<String, ExitCode> {
    if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| common::usage_error(format!("stdin: {e}")))?;
        return Ok(text.trim().to_string());
    }
    if let Some(path) = arg.strip_prefix('@') {
        return std::fs::read_to_string(path)
            .map(|t| t.trim().to_string())
            .map_err(|e| common::usage_error(format!("{path}: {e}")));
    }
    Ok(arg.trim().to_string())
}

fn apply(args: ApplyArgs) -> ExitCode {
    if let Err(code) = require_root("egc exception apply") {
        return code;
    }
    let token = match read_token(&args.token) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let config = ApplyConfig {
        audit: AuditLog {
            path: args.audit.audit_log.clone(),
        },
        ledger: Ledger {
            dir: args.ledger.clone(),
        },
        attachment: args.attachment.clone(),
    };
    let Some(claims) = exception::peek_claims(&token) else {
        let e = ExceptionError::Refused("malformed token".into());
        let _ = config.audit.append(&serde_json::json!({
            "time": egress_enforce::state::now_unix(),
            "event": "refuse",
            "reason": e.to_string(),
        }));
        return fail(e);
    };
    // The policy to verify against: given, or the one the agent's attachment came from.
    let policy_path = match &args.policy {
        Some(p) => p.clone(),
        None => {
            let recorded = claims
                .agents
                .iter()
                .flat_map(|a| egress_enforce::control::attachments_of(a))
                .filter_map(|n| egress_enforce::state::load(&n).ok())
                .find_map(|s| s.policy);
            match recorded {
                Some(p) => PathBuf::from(p),
                None => {
                    return common::usage_error(
                        "no attachment records its policy; pass --policy PATH",
                    )
                }
            }
        }
    };
    let Some(agent) = claims.agents.first() else {
        return fail(ExceptionError::Refused("token names no agent".into()));
    };
    let (_, policy) =
        match load_agent_policy(&policy_path, args.root.as_deref(), agent, args.format) {
            Ok(x) => x,
            Err(code) => return code,
        };
    let stop = exception::stop_on_signals();
    let installed = match exception::apply(&policy, &token, &config) {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    let opened: Vec<String> = installed
        .rules
        .iter()
        .map(|r| format!("{} {} {}", r.network, r.protocol, r.ports))
        .collect();
    match args.format {
        Format::Human => eprintln!(
            "opened exception `{}` in `{}`: {} until {} (unix); waiting for expiry (Ctrl-C revokes)",
            installed.claims.exception,
            installed.attachment,
            opened.join(", "),
            installed.claims.expires_at
        ),
        _ => println!(
            "{}",
            serde_json::json!({ "event": "use", "attachment": installed.attachment, "rules": opened, "expires_at": installed.claims.expires_at })
        ),
    }
    match exception::wait_and_expire(&installed, &config, stop) {
        Ok(used) => {
            match args.format {
                Format::Human => eprintln!(
                    "closed exception `{}`: {used} connection(s) opened through it",
                    installed.claims.exception
                ),
                _ => println!(
                    "{}",
                    serde_json::json!({ "event": "closed", "connections": used })
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn log(args: LogArgs) -> ExitCode {
    let audit = AuditLog {
        path: args.audit.audit_log,
    };
    for record in audit.read() {
        println!("{}", serde_json::to_string(&record).unwrap_or_default());
    }
    ExitCode::SUCCESS
}
