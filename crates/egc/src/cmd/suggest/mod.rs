//! `egc suggest EVENTS POLICY`: the smallest change to the policy's `.egress` files that
//! would allow the connections run-time enforcement denied, as a unified diff. Nothing is
//! written to the policy; the diff goes to stdout (or `--output FILE`).
//!
//! The events are JSON lines of `egc-event/1` (`egc run`, `egc enforce events`); other
//! lines are counted and ignored. Per agent, each name (or address, when the event has no
//! name), port and protocol that was denied becomes an exact destination (never a
//! wildcard: a wildcard allows more than was observed, so widening is the reviewer's
//! call), all connected by one new capability `suggested_AGENT` that the agent `uses`.
//! A gate refusal of a connection that named no host (no SNI, no `Host`, an encrypted
//! ClientHello) to a destination the agent already reaches becomes `sni optional` on that
//! destination. Socket kinds, socket options and packets have no destination that allows
//! them: they are listed as not expressible.
//!
//! The changed files are then checked and verified in memory; the approvals the change
//! needs (zones are owned apart from agents, so the diff never edits them) and the
//! verifier's new findings are printed to stderr.
//!
//! Exit codes: 0 a diff was produced (whatever the verifier says: that is information);
//! 1 nothing to suggest; 2 usage or I/O errors, a policy with check errors, or events
//! that name an agent the policy does not declare (E0151).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use egress_check::{AgentId, CheckResult, CheckedPolicy, DestId, FileId, Protocol};
use egress_sets::{Connection, Target};
use egress_syntax::ast::{AgentEntry, ImportPath, ItemKind};
use egress_syntax::Span;
use egress_verify::{Property, Report, VerifyConfig};

use crate::common;

mod edits;
mod events;
mod plan;

use edits::*;
use events::*;
use plan::*;

/// The largest events file read, in bytes.
const MAX_EVENTS_BYTES: u64 = 256 * 1024 * 1024;

/// The port assumed for a name refused at DNS, before any connection.
const ASSUMED_PORT: u16 = 443;

#[derive(clap::Args)]
pub struct Args {
    /// The denial events: JSON lines of `egc-event/1` (other lines are ignored).
    pub events: PathBuf,
    /// The policy the events came from: a directory of `.egress` files or one file.
    pub policy: PathBuf,
    /// Write the diff to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The project root; imports may not leave it.
    #[arg(long)]
    pub root: Option<PathBuf>,
}

/// What `egc suggest` produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The unified diff over every changed file (sorted by path); empty: nothing to suggest.
    pub diff: String,
    /// For people: notes, what was suggested, the approvals the change needs and the
    /// verifier's findings on the changed policy.
    pub report: String,
    /// The changed files' new texts, by path relative to the project root.
    pub changed: BTreeMap<String, String>,
}

/// Why `egc suggest` stopped: the exit code, and the message (empty when it was printed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    fn printed(_: ExitCode) -> Failure {
        Failure {
            code: 2,
            message: String::new(),
        }
    }
}

pub fn run(args: Args) -> ExitCode {
    let events = match read_events(&args.events) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let name = args.events.display().to_string();
    let outcome = match suggest(
        &events,
        &name,
        std::slice::from_ref(&args.policy),
        args.root.as_deref(),
        common::use_color(),
    ) {
        Ok(o) => o,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprint!("{}", failure.message);
            }
            return ExitCode::from(failure.code);
        }
    };
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(outcome.report.as_bytes());
    if outcome.diff.is_empty() {
        return ExitCode::from(1);
    }
    match &args.output {
        Some(path) => {
            if let Err(e) = common::write_atomic(path, outcome.diff.as_bytes()) {
                return common::usage_error(format!("cannot write {}: {e}", path.display()));
            }
            let _ = writeln!(stderr, "wrote the suggested change to {}", path.display());
        }
        None => {
            let _ = std::io::stdout().lock().write_all(outcome.diff.as_bytes());
        }
    }
    ExitCode::SUCCESS
}

fn read_events(path: &Path) -> Result<String, ExitCode> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| common::usage_error(format!("cannot read {}: {e}", path.display())))?;
    if metadata.len() > MAX_EVENTS_BYTES {
        return Err(common::usage_error(format!(
            "{} is {} bytes, over the {MAX_EVENTS_BYTES}-byte limit",
            path.display(),
            metadata.len()
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| common::usage_error(format!("cannot read {}: {e}", path.display())))?;
    String::from_utf8(bytes)
        .map_err(|_| common::usage_error(format!("{} is not UTF-8 text", path.display())))
}

/// Suggests the change for `events` (the text of the events file, named `events_name` in
/// messages) to the policy under `paths`.
pub fn suggest(
    events: &str,
    events_name: &str,
    paths: &[PathBuf],
    root: Option<&Path>,
    color: bool,
) -> Result<Outcome, Failure> {
    let loaded = load_one(paths, root)?;
    let result = &loaded.result;
    let Some(policy) = result.policy.as_ref() else {
        return Err(Failure::printed(ExitCode::from(2)));
    };
    let read = parse_events(events, policy);
    if !read.unknown_agents.is_empty() {
        return Err(unknown_agents(&read, policy, events_name));
    }
    let mut report = String::new();
    input_notes(&read, events_name, &mut report);

    // Plan per agent, in the order of agent ids (declaration order, deterministic).
    let mut work = Work {
        result,
        policy,
        parsed_files: BTreeMap::new(),
        taken: BTreeMap::new(),
        edits: BTreeMap::new(),
        sni_marked: BTreeSet::new(),
        lines: Vec::new(),
    };
    let mut plans: Vec<Plan> = Vec::new();
    for (agent, wants) in &read.wants {
        let pending = work.pending(*agent, wants);
        if let Some(plan) = work.plan(*agent, pending) {
            work.write(&plan);
            plans.push(plan);
        }
    }
    for line in &work.lines {
        let _ = writeln!(report, "{line}");
    }
    let (overlay, diff) = changed_files(result, work.edits);
    let mut outcome = Outcome {
        diff,
        report,
        changed: overlay,
    };
    if outcome.diff.is_empty() {
        let _ = writeln!(
            outcome.report,
            "nothing to suggest: {} event(s) read, none that a change to the policy would allow",
            read.events
        );
        return Ok(outcome);
    }

    // The changed policy, checked and verified in memory.
    let changed =
        common::load_policies_over(paths, root, &outcome.changed).map_err(Failure::printed)?;
    let Some(new_result) = changed.first().map(|p| &p.result) else {
        return Ok(outcome);
    };
    let Some(new_policy) = new_result.policy.as_ref() else {
        let _ = writeln!(
            outcome.report,
            "\nerror: the suggested change does not check (a bug in `egc suggest`; please report it):"
        );
        let mut buffer = Vec::new();
        crate::render::human::diagnostics(new_result, &new_result.diagnostics, color, &mut buffer);
        outcome.report.push_str(&String::from_utf8_lossy(&buffer));
        return Ok(outcome);
    };
    approvals(&plans, policy, new_policy, new_result, &mut outcome.report);
    let config = VerifyConfig::default();
    let before = egress_verify::verify(policy, &config);
    let after = egress_verify::verify(new_policy, &config);
    findings(
        &loaded.dir,
        new_result,
        &before,
        &after,
        color,
        &mut outcome.report,
    );
    Ok(outcome)
}

/// Loads exactly one policy, without check errors.
fn load_one(paths: &[PathBuf], root: Option<&Path>) -> Result<common::LoadedPolicy, Failure> {
    let mut policies = common::load_policies(paths, root).map_err(Failure::printed)?;
    if policies.iter().any(|p| p.result.policy.is_none()) {
        common::print_diagnostics(&policies, common::Format::Human);
        return Err(Failure {
            code: 2,
            message: "error: the policy has check errors; fix them and run `egc suggest` again\n"
                .into(),
        });
    }
    let found = policies.len();
    match (policies.pop(), found) {
        (Some(one), 1) => Ok(one),
        _ => Err(Failure {
            code: 2,
            message: format!(
                "error: `egc suggest` takes one policy (the `.egress` files of one directory), found {found}\n"
            ),
        }),
    }
}

/// E0151 for each agent the events name and the policy lacks, at its first line.
fn unknown_agents(read: &EventsRead, policy: &CheckedPolicy, events_name: &str) -> Failure {
    let mut message = String::new();
    let known: Vec<&str> = policy
        .agents
        .iter()
        .map(|a| a.name.qualified.as_str())
        .collect();
    let listed = if known.is_empty() {
        "none".to_string()
    } else {
        known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (agent, line) in &read.unknown_agents {
        let _ = writeln!(
            message,
            "error[E0151]: the events name agent `{agent}`, which the policy does not declare"
        );
        let _ = writeln!(message, "  --> {events_name}:{line}");
        let hint = match egress_check::closest(agent, known.iter().copied()) {
            Some(best) => format!("did you mean `{best}`? "),
            None => String::new(),
        };
        let _ = writeln!(
            message,
            "  = help: {hint}give the policy the events were enforced from; its agents are {listed}"
        );
    }
    Failure { code: 2, message }
}

/// The lines ignored and the events no policy change allows.
fn input_notes(read: &EventsRead, events_name: &str, report: &mut String) {
    if !read.ignored.is_empty() {
        let shown: Vec<String> = read.ignored.iter().take(5).map(usize::to_string).collect();
        let more = if read.ignored.len() > 5 { ", ..." } else { "" };
        let _ = writeln!(
            report,
            "warning: {} line(s) of {events_name} are not {FORMAT} events and were ignored (line {}{more})",
            read.ignored.len(),
            shown.join(", ")
        );
    }
    if !read.not_expressible.is_empty() {
        let _ = writeln!(
            report,
            "note: not expressible in a policy (no destination allows them):"
        );
        for ((agent, layer, reason), count) in &read.not_expressible {
            let _ = writeln!(
                report,
                "  agent `{agent}`: layer `{layer}`, reason `{reason}` ({count} event(s))"
            );
        }
    }
}
