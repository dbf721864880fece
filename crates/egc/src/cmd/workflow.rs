//! `egc workflow grant POLICY WORKFLOW STEP --agent A --key KEY --ttl T [--run ID]`: issue a
//! signed step token (the orchestrator's key); and `egc enforce step apply|end`, which
//! open and close a step's destinations at run time.
//!
//! Exit codes: 0 done; 1 refused (wrong key, agent, order, replay, expiry); 2 usage or
//! I/O errors.

use std::path::PathBuf;
use std::process::ExitCode;

use egress_enforce::exception::{
    self, parse_duration, parse_secret_key, ApplyConfig, AuditLog, ExceptionError, Ledger,
};
use egress_enforce::steps::{self, StepGrant};

use crate::cmd::enforce::load_agent_policy;
use crate::cmd::exception::{fail, read_token, AuditArgs};
use crate::common::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: WorkflowCommand,
}

#[derive(clap::Subcommand)]
pub enum WorkflowCommand {
    /// Issue a signed token that opens one step of a workflow for its agent.
    Grant(GrantArgs),
}

#[derive(clap::Args)]
pub struct GrantArgs {
    /// The policy: a directory of `.egress` files (or files).
    pub path: PathBuf,
    /// The workflow's name.
    pub workflow: String,
    /// The step, counted from 1.
    pub step: u32,
    /// The agent that performs the step.
    #[arg(long)]
    pub agent: String,
    /// The orchestrator's secret key file (from `egc exception keygen`).
    #[arg(long)]
    pub key: PathBuf,
    /// Token lifetime: `90s`, `15m`, `1h` (at most the orchestrator's `max_ttl`).
    #[arg(long)]
    pub ttl: String,
    /// The workflow run the step belongs to (ordering and replay are per run).
    #[arg(long, default_value = "default")]
    pub run: String,
    #[command(flatten)]
    pub audit: AuditArgs,
    #[arg(long)]
    pub root: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct StepApplyArgs {
    /// The step token (`-` reads it from stdin, `@FILE` from a file).
    pub token: String,
    /// The policy to verify against.
    #[arg(long)]
    pub policy: PathBuf,
    /// The attachment to open the step in (needed when the agent has several).
    #[arg(long)]
    pub attachment: Option<String>,
    #[command(flatten)]
    pub audit: AuditArgs,
    /// Where use records and workflow-run progress are kept.
    #[arg(long, default_value_os_t = Ledger::default_dir())]
    pub ledger: PathBuf,
    #[arg(long)]
    pub root: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct StepEndArgs {
    /// The step token that was applied (`-` reads it from stdin, `@FILE` from a file).
    pub token: String,
    #[command(flatten)]
    pub audit: AuditArgs,
    #[arg(long, default_value_os_t = Ledger::default_dir())]
    pub ledger: PathBuf,
}

pub fn run(args: Args) -> ExitCode {
    match args.command {
        WorkflowCommand::Grant(a) => grant(a),
    }
}

fn apply_config(
    audit: &AuditArgs,
    ledger: &std::path::Path,
    attachment: Option<String>,
) -> ApplyConfig {
    ApplyConfig {
        audit: AuditLog {
            path: audit.audit_log.clone(),
        },
        ledger: Ledger {
            dir: ledger.to_path_buf(),
        },
        attachment,
    }
}

fn grant(args: GrantArgs) -> ExitCode {
    let audit = AuditLog {
        path: args.audit.audit_log.clone(),
    };
    let Some(ttl_secs) = parse_duration(&args.ttl) else {
        return common::usage_error(format!("--ttl {:?}: expected e.g. 90s, 15m, 1h", args.ttl));
    };
    let key = match std::fs::read_to_string(&args.key) {
        Ok(text) => match parse_secret_key(&text) {
            Ok(k) => k,
            Err(e) => return fail(e),
        },
        Err(e) => return common::usage_error(format!("{}: {e}", args.key.display())),
    };
    let (_, policy) =
        match load_agent_policy(&args.path, args.root.as_deref(), &args.agent, Format::Human) {
            Ok(x) => x,
            Err(code) => return code,
        };
    let request = StepGrant {
        workflow: &args.workflow,
        step: args.step,
        agent: &args.agent,
        key: &key,
        ttl_secs,
        run: &args.run,
        now: egress_enforce::state::now_unix(),
    };
    match steps::grant(&policy, &request) {
        Ok((token, claims)) => {
            let _ = audit.append(&serde_json::json!({
                "event": "grant",
                "stage": "step",
                "workflow": claims.workflow,
                "step": claims.step,
                "agent": claims.agent,
                "run": claims.run,
                "token_id": claims.id,
                "expires_at": claims.expires_at,
                "time": claims.issued_at,
            }));
            eprintln!(
                "granted step {} of `{}` (run `{}`) to {} until {} (unix)",
                claims.step, claims.workflow, claims.run, claims.agent, claims.expires_at
            );
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = audit.append(&serde_json::json!({
                "event": "refuse",
                "stage": "step-grant",
                "workflow": args.workflow,
                "step": args.step,
                "reason": e.to_string(),
                "time": egress_enforce::state::now_unix(),
            }));
            fail(e)
        }
    }
}

/// `egc enforce step apply`: opens the step and waits until it ends or expires (Ctrl-C
/// ends it).
pub fn apply(args: StepApplyArgs) -> ExitCode {
    if let Err(code) = crate::cmd::enforce::require_root("egc enforce step apply") {
        return code;
    }
    let token = match read_token(&args.token) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let config = apply_config(&args.audit, &args.ledger, args.attachment.clone());
    let Some(claims) = steps::peek(&token) else {
        return fail(ExceptionError::Refused("malformed step token".into()));
    };
    let (_, policy) = match load_agent_policy(
        &args.policy,
        args.root.as_deref(),
        &claims.agent,
        Format::Human,
    ) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let stop = exception::stop_on_signals();
    let installed = match steps::apply(&policy, &token, &config, egress_enforce::state::now_unix())
    {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    eprintln!(
        "opened step {} of `{}` for {} in `{}` until {} (unix); waiting (Ctrl-C or `egc enforce step end` ends it)",
        claims.step, claims.workflow, claims.agent, installed.attachment, claims.expires_at
    );
    match exception::wait_and_expire(&installed, &config, stop) {
        Ok(_) => {
            eprintln!("closed step {} of `{}`", claims.step, claims.workflow);
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `egc enforce step end`: closes an applied step and the connections it opened.
pub fn end(args: StepEndArgs) -> ExitCode {
    if let Err(code) = crate::cmd::enforce::require_root("egc enforce step end") {
        return code;
    }
    let token = match read_token(&args.token) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let config = apply_config(&args.audit, &args.ledger, None);
    match steps::end(&token, &config) {
        Ok(used) => {
            eprintln!("ended the step: {used} connection(s) were opened through it");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
