//! `egc diff OLD NEW` and `egc diff BASE..HEAD [PATH]`: which agent can now reach what it
//! could not before (and what it no longer reaches), each with a concrete witness
//! connection and the route that grants it; per agent a verdict (equivalent, narrower,
//! wider, incomparable); and the exceptions, clearances and capabilities added, removed
//! or changed.
//!
//! With `BASE..HEAD` both sides are read from git (`git ls-tree`, `git show REV:PATH`)
//! without touching the work tree; every policy directory under PATH is compared with the
//! same directory on the other side.
//!
//! Reachability counts every route of the agent (`egress_sets::routes`, the computation
//! the verifier uses): its capabilities, the workflow steps it runs, the exceptions that
//! list it. A connection that was reachable only under a condition (a workflow running,
//! an exception token) and is now reachable without one counts as gained, and the
//! reverse as lost. Agents are matched by name (the old and new trees may live in
//! different directories).
//!
//! Exit codes: 0 compared (with `--fail-on-gain`: 1 when an agent gained reach); 1 check
//! errors; 2 usage or I/O errors.

use std::path::PathBuf;
use std::process::ExitCode;

use egress_check::{Agent, CheckedPolicy};
use egress_sets::{unspecified_addresses, ConnectionSet};

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
    /// The policy before the change (a directory of `.egress` files or one file), or
    /// `BASE..HEAD`: two git revisions.
    pub old: String,
    /// The policy after the change; with `BASE..HEAD`, the path inside the repository to
    /// compare (default: the current directory).
    pub new: Option<PathBuf>,
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
    set: ConnectionSet,
    /// Open without a workflow or an exception token.
    unconditional: bool,
}

/// The agent's routes ([`egress_sets::routes`], the computation every other command
/// uses), each with the connections it opens as the backends enforce them (never the
/// unspecified addresses).
fn routes(policy: &CheckedPolicy, agent: &Agent) -> Vec<Route> {
    let unspecified = unspecified_addresses();
    egress_sets::routes::route_sets(policy, agent.id)
        .into_iter()
        .map(|(route, set)| {
            let via = egress_sets::routes::describe_via(policy, route.via);
            Route {
                destination: dest_name(policy, route.dest),
                via,
                set: set.without_addresses(&unspecified),
                unconditional: egress_sets::routes::is_unconditional(&route),
            }
        })
        .collect()
}

fn union(routes: &[Route]) -> ConnectionSet {
    let mut all = ConnectionSet::default();
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

fn compare(
    old: Option<&CheckedPolicy>,
    new: Option<&CheckedPolicy>,
) -> Result<Vec<Change>, String> {
    let mut changes = Vec::new();
    let mut names: Vec<&str> = new
        .iter()
        .chain(old.iter())
        .flat_map(|p| p.agents.iter())
        .map(|a| a.name.local.as_str())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let find = |p: Option<&CheckedPolicy>| -> Vec<Route> {
            p.and_then(|p| {
                p.agents
                    .iter()
                    .find(|a| a.name.local == name)
                    .map(|a| routes(p, a))
            })
            .unwrap_or_default()
        };
        let (before, after) = (find(old), find(new));
        let (all_before, all_after) = (union(&before), union(&after));
        let free = |routes: &[Route]| -> ConnectionSet {
            let mut all = ConnectionSet::default();
            for r in routes.iter().filter(|r| r.unconditional) {
                all.extend(&r.set);
            }
            all
        };
        let (free_before, free_after) = (free(&before), free(&after));
        let too_large = |_| format!("comparing agent `{name}` is too large to decide");
        for (gained, routes, other, other_free) in [
            (true, &after, &all_before, &free_before),
            (false, &before, &all_after, &free_after),
        ] {
            for route in routes.iter() {
                // Reach gained (or lost) outright; or, for an unconditional route, reach
                // that the other side had only under a condition (a workflow running, an
                // exception token): dropping the condition is a widening too.
                let mut via = route.via.clone();
                let mut witness = route.set.difference_witness(other).map_err(too_large)?;
                if witness.is_none() && route.unconditional {
                    witness = route
                        .set
                        .difference_witness(other_free)
                        .map_err(too_large)?;
                    if witness.is_some() {
                        via.push_str(if gained {
                            ", which before was only under a condition (a workflow or an exception)"
                        } else {
                            ", which now is only under a condition (a workflow or an exception)"
                        });
                    }
                }
                if let Some(w) = witness {
                    changes.push(Change {
                        agent: name.to_string(),
                        gained,
                        witness: w.to_string(),
                        destination: route.destination.clone(),
                        via,
                    });
                }
            }
        }
    }
    Ok(changes)
}

/// Each agent's verdict: what it reaches after against before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentVerdict {
    Equivalent,
    Narrower,
    Wider,
    Incomparable,
}

impl AgentVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentVerdict::Equivalent => "equivalent",
            AgentVerdict::Narrower => "narrower",
            AgentVerdict::Wider => "wider",
            AgentVerdict::Incomparable => "incomparable",
        }
    }
}

/// Every agent of either side with its verdict, sorted by name.
fn agent_verdicts(
    old: Option<&CheckedPolicy>,
    new: Option<&CheckedPolicy>,
    changes: &[Change],
) -> Vec<(String, AgentVerdict)> {
    let mut names: Vec<String> = new
        .iter()
        .chain(old.iter())
        .flat_map(|p| p.agents.iter())
        .map(|a| a.name.local.clone())
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let gained = changes.iter().any(|c| c.agent == name && c.gained);
            let lost = changes.iter().any(|c| c.agent == name && !c.gained);
            let verdict = match (gained, lost) {
                (false, false) => AgentVerdict::Equivalent,
                (true, false) => AgentVerdict::Wider,
                (false, true) => AgentVerdict::Narrower,
                (true, true) => AgentVerdict::Incomparable,
            };
            (name, verdict)
        })
        .collect()
}

/// An exception, clearance or capability added, removed or changed.
struct ItemChange {
    kind: &'static str,
    name: String,
    /// `added`, `removed` or `changed`.
    change: &'static str,
    /// What it says after (or before, when removed).
    summary: String,
}

fn dest_name(p: &CheckedPolicy, id: egress_check::DestId) -> String {
    p.destination(id)
        .map(|d| d.name.local.clone())
        .unwrap_or_default()
}

/// The reviewable items of a policy, by (kind, name), each with a summary that does not
/// depend on formatting or declaration order.
fn items(p: Option<&CheckedPolicy>) -> std::collections::BTreeMap<(&'static str, String), String> {
    let mut out = std::collections::BTreeMap::new();
    let Some(p) = p else {
        return out;
    };
    let agent_name = |id| {
        p.agent(id)
            .map(|a| a.name.local.clone())
            .unwrap_or_default()
    };
    for e in &p.exceptions {
        let mut agents: Vec<String> = e.agents.iter().map(|a| agent_name(a.id)).collect();
        agents.sort();
        let approver = p
            .authority(e.approver.id)
            .map(|a| a.name.local.clone())
            .unwrap_or_default();
        let uses = e
            .max_uses
            .map(|u| format!(", at most {u} uses"))
            .unwrap_or_default();
        out.insert(
            ("exception", e.name.local.clone()),
            format!(
                "agents {} to `{}`, approved by `{approver}`, at most {}s{uses}, audited to `{}`, legal basis \"{}\"",
                agents.join(", "),
                dest_name(p, e.to.id),
                e.max_ttl_secs,
                dest_name(p, e.audit.id),
                e.legal_basis
            ),
        );
    }
    for c in &p.capabilities {
        if p.files
            .iter()
            .any(|f| f.is_stdlib && c.name.qualified.starts_with(&format!("{}.", f.module)))
        {
            continue;
        }
        let mut connects: Vec<String> = c.connects.iter().map(|x| dest_name(p, x.dest)).collect();
        connects.sort();
        let mut caps: Vec<String> = c.linux_caps.iter().map(|g| g.cap.to_string()).collect();
        caps.sort();
        let mut sockets: Vec<String> = c.unix_sockets.iter().map(|u| u.path.clone()).collect();
        sockets.sort();
        let mut summary = format!("connects {}", connects.join(", "));
        if !caps.is_empty() {
            summary.push_str(&format!("; Linux capabilities {}", caps.join(", ")));
        }
        if !sockets.is_empty() {
            summary.push_str(&format!("; sockets {}", sockets.join(", ")));
        }
        out.insert(("capability", c.name.local.clone()), summary);
    }
    for z in &p.zones {
        for clearance in &z.clearances {
            let class = p
                .data_class(clearance.class.id)
                .map(|c| c.name.local.clone())
                .unwrap_or_default();
            let mut to: Vec<String> = clearance.to.iter().map(|d| dest_name(p, d.id)).collect();
            to.sort();
            out.insert(
                ("clearance", format!("{}: {class}", z.name.local)),
                format!(
                    "zone `{}` clears `{class}` to {}",
                    z.name.local,
                    to.join(", ")
                ),
            );
        }
    }
    out
}

fn item_changes(old: Option<&CheckedPolicy>, new: Option<&CheckedPolicy>) -> Vec<ItemChange> {
    let (before, after) = (items(old), items(new));
    let mut out = Vec::new();
    for ((kind, name), summary) in &after {
        match before.get(&(*kind, name.clone())) {
            None => out.push(ItemChange {
                kind,
                name: name.clone(),
                change: "added",
                summary: summary.clone(),
            }),
            Some(old) if old != summary => out.push(ItemChange {
                kind,
                name: name.clone(),
                change: "changed",
                summary: summary.clone(),
            }),
            Some(_) => {}
        }
    }
    for ((kind, name), summary) in &before {
        if !after.contains_key(&(*kind, name.clone())) {
            out.push(ItemChange {
                kind,
                name: name.clone(),
                change: "removed",
                summary: summary.clone(),
            });
        }
    }
    out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    out
}

/// One compared policy directory.
struct PolicyDiff {
    dir: String,
    agents: Vec<(String, AgentVerdict)>,
    changes: Vec<Change>,
    items: Vec<ItemChange>,
}

fn diff_policy(
    dir: &str,
    old: Option<&CheckedPolicy>,
    new: Option<&CheckedPolicy>,
) -> Result<PolicyDiff, String> {
    let changes = compare(old, new)?;
    Ok(PolicyDiff {
        dir: dir.to_string(),
        agents: agent_verdicts(old, new, &changes),
        items: item_changes(old, new),
        changes,
    })
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

/// `BASE..HEAD` split, when `text` is not a path on disk and names two revisions.
fn revisions(text: &str) -> Option<(&str, &str)> {
    if std::path::Path::new(text).exists() {
        return None;
    }
    let (base, head) = text.split_once("..")?;
    let head = head.strip_prefix('.').unwrap_or(head);
    (!base.is_empty() && !head.is_empty()).then_some((base, head))
}

/// Both sides' policies: from two directories, or from two git revisions.
type Sides = (Vec<common::LoadedPolicy>, Vec<common::LoadedPolicy>);

fn load_sides(args: &Args) -> Result<Sides, ExitCode> {
    if let Some((base, head)) = revisions(&args.old) {
        let cwd = std::env::current_dir()
            .map_err(|e| common::usage_error(format!("cannot read the current directory: {e}")))?;
        let (top, prefix) = crate::gitsource::repository_of(&cwd).map_err(common::usage_error)?;
        // The path given, else the policies `egc.toml` names, else the current directory.
        let paths = match &args.new {
            Some(path) => vec![path.clone()],
            None => crate::config::paths_or_config(&[], Some("."))?,
        };
        let (mut old, mut new) = (Vec::new(), Vec::new());
        for path in &paths {
            let path = crate::gitsource::repo_path(&prefix, path).map_err(common::usage_error)?;
            old.extend(
                crate::gitsource::load_revision(&top, base, &path).map_err(common::usage_error)?,
            );
            new.extend(
                crate::gitsource::load_revision(&top, head, &path).map_err(common::usage_error)?,
            );
        }
        if old.is_empty() && new.is_empty() {
            return Err(common::usage_error(format!(
                "no `.egress` files in `{base}` or `{head}` under the paths compared"
            )));
        }
        return Ok((old, new));
    }
    let Some(new) = &args.new else {
        return Err(common::usage_error(
            "give two policies (`egc diff OLD NEW`) or two revisions (`egc diff BASE..HEAD`)",
        ));
    };
    let old = load_one(&PathBuf::from(&args.old), args.root.as_deref())?;
    let mut new = load_one(new, args.root.as_deref())?;
    // Directories are matched by name; two directories compared directly are one pair.
    new.dir.clone_from(&old.dir);
    Ok((vec![old], vec![new]))
}

pub fn run(args: Args) -> ExitCode {
    let (old, new) = match load_sides(&args) {
        Ok(sides) => sides,
        Err(code) => return code,
    };
    if old.iter().chain(&new).any(|p| p.result.policy.is_none()) {
        let failing: Vec<common::LoadedPolicy> = old
            .into_iter()
            .chain(new)
            .filter(|p| p.result.policy.is_none())
            .collect();
        common::print_diagnostics(&failing, Format::Human);
        eprintln!("error: not compared: a policy has check errors");
        return ExitCode::from(1);
    }
    let mut dirs: Vec<&str> = old.iter().chain(&new).map(|p| p.dir.as_str()).collect();
    dirs.sort();
    dirs.dedup();
    let mut diffs = Vec::new();
    for dir in dirs {
        match diff_policy(dir, side(&old, dir), side(&new, dir)) {
            Ok(d) => diffs.push(d),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let gains = diffs
        .iter()
        .flat_map(|d| &d.changes)
        .filter(|c| c.gained)
        .count();
    let text = match args.format {
        DiffFormat::Json => serde_json::to_string_pretty(&json(&diffs)).unwrap_or_default(),
        DiffFormat::Human => human(&diffs),
        DiffFormat::Markdown => markdown(&diffs),
    };
    println!("{}", text.trim_end());
    if args.fail_on_gain && gains > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn side<'a>(list: &'a [common::LoadedPolicy], dir: &str) -> Option<&'a CheckedPolicy> {
    list.iter()
        .find(|p| p.dir == dir)
        .and_then(|p| p.result.policy.as_ref())
}

fn change_json(c: &Change) -> serde_json::Value {
    serde_json::json!({
        "agent": c.agent,
        "change": if c.gained { "gained" } else { "lost" },
        "witness": c.witness,
        "destination": c.destination,
        "via": c.via,
    })
}

fn json(diffs: &[PolicyDiff]) -> serde_json::Value {
    let policies: Vec<serde_json::Value> = diffs
        .iter()
        .map(|d| {
            serde_json::json!({
                "policy": d.dir,
                "agents": d.agents.iter().map(|(name, v)| {
                    let witness = d.changes.iter().find(|c| &c.agent == name).map(|c| c.witness.clone());
                    serde_json::json!({ "agent": name, "verdict": v.as_str(), "witness": witness })
                }).collect::<Vec<_>>(),
                "changes": d.changes.iter().map(change_json).collect::<Vec<_>>(),
                "items": d.items.iter().map(|i| serde_json::json!({
                    "kind": i.kind, "name": i.name, "change": i.change, "summary": i.summary,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let changes: Vec<serde_json::Value> = diffs
        .iter()
        .flat_map(|d| &d.changes)
        .map(change_json)
        .collect();
    serde_json::json!({ "policies": policies, "changes": changes })
}

fn change_line(c: &Change) -> String {
    let verb = if c.gained {
        "can now reach"
    } else {
        "can no longer reach"
    };
    format!(
        "agent `{}` {verb} `{}` (destination `{}`, via {})",
        c.agent, c.witness, c.destination, c.via
    )
}

fn is_quiet(d: &PolicyDiff) -> bool {
    d.changes.is_empty() && d.items.is_empty()
}

fn human(diffs: &[PolicyDiff]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if diffs.iter().all(is_quiet) {
        out.push_str("No agent can reach anything new, and none lost reach.\n");
        return out;
    }
    for d in diffs.iter().filter(|d| !is_quiet(d)) {
        let _ = writeln!(out, "policy {}:", d.dir);
        for (name, verdict) in &d.agents {
            let witness = d
                .changes
                .iter()
                .find(|c| &c.agent == name)
                .map(|c| format!(", e.g. `{}`", c.witness))
                .unwrap_or_default();
            let _ = writeln!(out, "  agent `{name}`: {}{witness}", verdict.as_str());
        }
        for c in &d.changes {
            let _ = writeln!(out, "  {}", change_line(c));
        }
        for i in &d.items {
            let _ = writeln!(out, "  {} {} `{}`: {}", i.kind, i.change, i.name, i.summary);
        }
    }
    out
}

/// A pull request comment: a table of the agents whose reach changed that fits on a
/// screen, every change and item in collapsed `<details>`.
fn markdown(diffs: &[PolicyDiff]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("### Egress changes\n\n");
    if diffs.iter().all(is_quiet) {
        out.push_str("No agent can reach anything new, and none lost reach.\n");
        return out;
    }
    let wider = diffs
        .iter()
        .flat_map(|d| &d.agents)
        .filter(|(_, v)| matches!(v, AgentVerdict::Wider | AgentVerdict::Incomparable))
        .count();
    let _ = writeln!(
        out,
        "{} reach more than before.\n",
        match wider {
            0 => "No agent can".to_string(),
            1 => "**1 agent** can".to_string(),
            n => format!("**{n} agents** can"),
        }
    );
    out.push_str("| policy | agent | reach | witness |\n|---|---|---|---|\n");
    for d in diffs {
        for (name, verdict) in d
            .agents
            .iter()
            .filter(|(_, v)| *v != AgentVerdict::Equivalent)
        {
            let witness = d
                .changes
                .iter()
                .find(|c| &c.agent == name && (c.gained || *verdict == AgentVerdict::Narrower))
                .map(|c| format!("`{}`", c.witness))
                .unwrap_or_default();
            let shown = match verdict {
                AgentVerdict::Wider | AgentVerdict::Incomparable => {
                    format!("**{}**", verdict.as_str())
                }
                _ => verdict.as_str().to_string(),
            };
            let _ = writeln!(out, "| `{}` | `{name}` | {shown} | {witness} |", d.dir);
        }
    }
    let changes: Vec<&Change> = diffs.iter().flat_map(|d| &d.changes).collect();
    if !changes.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>{} reach changes</summary>\n",
            changes.len()
        );
        for c in changes {
            let _ = writeln!(out, "- {}", change_line(c));
        }
        out.push_str("\n</details>\n");
    }
    let items: Vec<&ItemChange> = diffs.iter().flat_map(|d| &d.items).collect();
    if !items.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>{} exceptions, clearances and capabilities changed</summary>\n",
            items.len()
        );
        for i in items {
            let _ = writeln!(out, "- {} `{}` {}: {}", i.kind, i.name, i.change, i.summary);
        }
        out.push_str("\n</details>\n");
    }
    out
}
