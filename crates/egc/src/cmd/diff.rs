//! `egc diff OLD NEW`: which agent can now reach what it could not before (and what it
//! no longer reaches), each with a concrete witness connection and the route that grants it.
//!
//! Reachability counts every path of the agent's own: its capabilities (workflow-limited
//! ones with their condition) and the exceptions that list it. Agents are matched by
//! name (the old and new trees may live in different directories).
//!
//! Exit codes: 0 compared (with `--fail-on-gain`: 1 when an agent gained reach); 1 check
//! errors; 2 usage or I/O errors.

use std::path::PathBuf;
use std::process::ExitCode;

use egress_check::{Agent, CheckedPolicy};
use egress_lower::expected::destination_set;
use egress_lower::sets::ConnSet;

use crate::common::{self, Format};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Human,
    Json,
    /// A short summary for a pull request.
    Markdown,
}

#[derive(clap::Args)]
pub struct Args {
    /// The policy before the change (a directory of `.egress` files or one file).
    pub old: PathBuf,
    /// The policy after the change.
    pub new: PathBuf,
    #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
    pub format: DiffFormat,
    /// Exit with 1 when any agent can reach something it could not before.
    #[arg(long)]
    pub fail_on_gain: bool,
    /// The project root; imports may not leave it.
    #[arg(long)]
    pub root: Option<PathBuf>,
}

/// One way an agent reaches a destination.
struct Route {
    destination: String,
    via: String,
    set: ConnSet,
}

fn routes(policy: &CheckedPolicy, agent: &Agent) -> Vec<Route> {
    let mut out = Vec::new();
    for granted in &agent.capabilities {
        let Some(cap) = policy.capability(granted.id) else {
            continue;
        };
        let condition = if cap.workflows.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = cap
                .workflows
                .iter()
                .filter_map(|w| policy.workflow(w.id))
                .map(|w| format!("`{}`", w.name.local))
                .collect();
            format!(", in workflow {}", names.join(", "))
        };
        for connect in &cap.connects {
            if let Some(dest) = policy.destination(connect.dest) {
                out.push(Route {
                    destination: dest.name.local.clone(),
                    via: format!("capability `{}`{condition}", cap.name.local),
                    set: destination_set(dest),
                });
            }
        }
    }
    for exception in &policy.exceptions {
        if exception.agents.iter().any(|a| a.id == agent.id) {
            if let Some(dest) = policy.destination(exception.to.id) {
                out.push(Route {
                    destination: dest.name.local.clone(),
                    via: format!("exception `{}`", exception.name.local),
                    set: destination_set(dest),
                });
            }
        }
    }
    out
}

fn union(routes: &[Route]) -> ConnSet {
    let mut all = ConnSet::new();
    for r in routes {
        all.extend(&r.set);
    }
    all
}

struct Change {
    agent: String,
    gained: bool,
    witness: String,
    destination: String,
    via: String,
}

fn compare(old: &CheckedPolicy, new: &CheckedPolicy) -> Result<Vec<Change>, String> {
    let mut changes = Vec::new();
    let mut names: Vec<&str> = new
        .agents
        .iter()
        .chain(old.agents.iter())
        .map(|a| a.name.local.as_str())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let find = |p: &'_ CheckedPolicy| -> Vec<Route> {
            p.agents
                .iter()
                .find(|a| a.name.local == name)
                .map(|a| routes(p, a))
                .unwrap_or_default()
        };
        let (before, after) = (find(old), find(new));
        let (all_before, all_after) = (union(&before), union(&after));
        for (gained, routes, other) in [(true, &after, &all_before), (false, &before, &all_after)] {
            for route in routes.iter() {
                let witness = route
                    .set
                    .first_not_in(other)
                    .map_err(|_| format!("comparing agent `{name}` is too large to decide"))?;
                if let Some(w) = witness {
                    changes.push(Change {
                        agent: name.to_string(),
                        gained,
                        witness: w.to_string(),
                        destination: route.destination.clone(),
                        via: route.via.clone(),
                    });
                }
            }
        }
    }
    Ok(changes)
}

fn load_one(
    path: &PathBuf,
    root: Option<&std::path::Path>,
) -> Result<common::LoadedPolicy, ExitCode> {
    let mut policies = common::load_policies(std::slice::from_ref(path), root)?;
    if policies.len() != 1 {
        return Err(common::usage_error(format!(
            "`{}` holds {} policies; give one policy directory",
            path.display(),
            policies.len()
        )));
    }
    policies.pop().ok_or(ExitCode::from(2))
}

pub fn run(args: Args) -> ExitCode {
    let old = match load_one(&args.old, args.root.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let new = match load_one(&args.new, args.root.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if old.result.policy.is_none() || new.result.policy.is_none() {
        common::print_diagnostics(&[old, new], Format::Human);
        eprintln!("error: not compared: a policy has check errors");
        return ExitCode::from(1);
    }
    let (Some(old_policy), Some(new_policy)) = (&old.result.policy, &new.result.policy) else {
        return ExitCode::from(1);
    };
    let changes = match compare(old_policy, new_policy) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let gains = changes.iter().filter(|c| c.gained).count();
    match args.format {
        DiffFormat::Json => {
            let items: Vec<serde_json::Value> = changes
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "agent": c.agent,
                        "change": if c.gained { "gained" } else { "lost" },
                        "witness": c.witness,
                        "destination": c.destination,
                        "via": c.via,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "changes": items }))
                    .unwrap_or_default()
            );
        }
        DiffFormat::Human | DiffFormat::Markdown => {
            let markdown = args.format == DiffFormat::Markdown;
            if markdown {
                println!("### Egress changes\n");
            }
            if changes.is_empty() {
                println!("No agent can reach anything new, and none lost reach.");
            }
            for c in &changes {
                let verb = if c.gained {
                    "can now reach"
                } else {
                    "can no longer reach"
                };
                let bullet = if markdown { "- " } else { "" };
                let mark = if markdown && c.gained { "**" } else { "" };
                println!(
                    "{bullet}{mark}agent `{}` {verb}{mark} `{}` (destination `{}`, via {})",
                    c.agent, c.witness, c.destination, c.via
                );
            }
        }
    }
    if args.fail_on_gain && gains > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
