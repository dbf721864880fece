//! `egc query PATH --agent A --to HOST_OR_IP:PORT[/tcp|udp]`: may this agent open this
//! connection, and by which path? Answers from the concrete evaluator.
//!
//! Exit codes: 0 answered (allowed or denied), 1 the policy has check errors, 2 usage
//! errors (unknown agent, malformed target).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use egress_sets::Connection;

use crate::common::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    /// The policy: files or one directory of `.egress` files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The agent that opens the connection.
    #[arg(long)]
    pub agent: String,
    /// The connection: `HOST_OR_IP:PORT[/tcp|udp]` (IPv6 in brackets: `[2001:db8::1]:443`).
    #[arg(long = "to")]
    pub to: String,
    /// Output format (`sarif` is not offered for queries).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// The project root; imports may not leave it.
    #[arg(long)]
    pub root: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    if args.format == Format::Sarif {
        return common::usage_error("`egc query` answers in `human` or `json`, not `sarif`");
    }
    let connection = match Connection::parse(&args.to) {
        Ok(c) => c,
        Err(why) => return common::usage_error(format!("--to: {why}")),
    };
    let policies = match common::load_policies(&args.paths, args.root.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if policies.iter().any(|p| p.result.policy.is_none()) {
        common::print_diagnostics(&policies, args.format);
        eprintln!("error: cannot answer: the policy has check errors");
        return ExitCode::from(1);
    }
    let found: Vec<_> = policies
        .iter()
        .filter_map(|p| {
            let policy = p.result.policy.as_ref()?;
            let agent = policy.agent_by_name(&args.agent)?;
            Some((p, policy, agent.id))
        })
        .collect();
    let (loaded, policy, agent) = match found.as_slice() {
        [one] => *one,
        [] => {
            return common::usage_error(format!("no agent `{}` in the given policies", args.agent))
        }
        _ => {
            return common::usage_error(format!(
                "agent `{}` is in several policies; give one policy directory",
                args.agent
            ))
        }
    };
    let answer = egress_verify::query(policy, agent, &connection);
    let result = &loaded.result;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let routes: Vec<serde_json::Value> = answer
                .routes
                .iter()
                .map(|r| {
                    let path: Vec<serde_json::Value> = r
                        .path
                        .iter()
                        .map(|n| {
                            let ((sl, sc), (el, ec)) = common::line_col(result, n.span);
                            serde_json::json!({
                                "kind": n.kind,
                                "name": n.name,
                                "file": common::file_path(result, n.span),
                                "start": { "line": sl, "column": sc },
                                "end": { "line": el, "column": ec },
                            })
                        })
                        .collect();
                    serde_json::json!({ "path": path, "conditions": r.conditions })
                })
                .collect();
            let value = serde_json::json!({
                "agent": args.agent,
                "connection": crate::render::json::witness(&connection),
                "decision": if answer.allowed { "allowed" } else { "denied" },
                "approved": answer.approved,
                "routes": routes,
            });
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        }
        _ => {
            if answer.allowed {
                let _ = writeln!(out, "allowed: `{}` may open {connection}", args.agent);
                for r in &answer.routes {
                    let steps: Vec<String> = r
                        .path
                        .iter()
                        .map(|n| {
                            let ((line, column), _) = common::line_col(result, n.span);
                            format!(
                                "{} ({}:{line}:{column})",
                                n.note,
                                common::file_path(result, n.span)
                            )
                        })
                        .collect();
                    let _ = writeln!(out, "  by {}", steps.join(" → "));
                    if !r.conditions.is_empty() {
                        let _ = writeln!(out, "  when {}", r.conditions.join("; "));
                    }
                }
                if !answer.approved {
                    let _ = writeln!(out, "note: this connection is not in the agent's approvals (`egc verify` reports it)");
                }
            } else {
                let _ = writeln!(
                    out,
                    "denied: no capability, workflow step or exception of `{}` allows {connection} (default deny)",
                    args.agent
                );
            }
        }
    }
    ExitCode::SUCCESS
}
