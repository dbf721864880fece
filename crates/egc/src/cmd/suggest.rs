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

/// One `egc-event/1` line, with the fields `egc suggest` reads.
#[derive(serde::Deserialize)]
struct Event {
    format: String,
    agent: String,
    name: Option<String>,
    address: Option<String>,
    port: Option<u16>,
    protocol: String,
    layer: String,
    reason: String,
}

const FORMAT: &str = "egc-event/1";

/// Gate reasons for a connection that named no host: `sni optional` lets them through.
const NAMELESS_REASONS: &[&str] = &["no-sni", "no-host", "encrypted-client-hello"];

/// DNS reasons a destination can answer: the name (or a name of its CNAME chain) matched
/// no rule.
const DNS_NAME_REASONS: &[&str] = &["name-not-allowed", "cname-not-allowed"];

/// What the denials of one agent ask for.
#[derive(Default)]
struct Wants {
    /// (host, protocol) → ports (`None`: refused at DNS, no port known).
    hosts: BTreeMap<(String, Protocol), BTreeSet<Option<u16>>>,
    /// (address, protocol) → ports.
    addresses: BTreeMap<(IpAddr, Protocol), BTreeSet<u16>>,
    /// Gate refusals of connections that named no host: the host that admitted the
    /// address → ports.
    nameless: BTreeMap<String, BTreeSet<u16>>,
}

/// Per (target, `sni optional`), per protocol: the ports, and whether they are assumed.
type Pending = BTreeMap<(Target, bool), BTreeMap<Protocol, (BTreeSet<u16>, bool)>>;

/// A destination to add.
struct NewDest {
    name: String,
    target: Target,
    ports: BTreeSet<u16>,
    /// No port was observed (refused at DNS): [`ASSUMED_PORT`] is assumed.
    assumed: bool,
    protocols: BTreeSet<Protocol>,
    sni_optional: bool,
}

/// One text edit: replace `start..end` of a file with `text`.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// A lower-case host name of letters, digits, `-` and `_` labels, or `None`.
fn host_name(name: &str) -> Option<String> {
    let lower = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let valid = !lower.is_empty()
        && lower.len() <= 253
        && lower.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    valid.then_some(lower)
}

fn protocol_of(text: &str) -> Option<Protocol> {
    match text {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        _ => None,
    }
}

/// The agent an event names: its qualified name, a qualified name ending in `.NAME` (the
/// run may have had another project root), or its local name, when exactly one matches.
fn find_agent(policy: &CheckedPolicy, name: &str) -> Option<AgentId> {
    if let Some(a) = policy.agents.iter().find(|a| a.name.qualified == name) {
        return Some(a.id);
    }
    let suffix = format!(".{name}");
    let by_suffix: Vec<AgentId> = policy
        .agents
        .iter()
        .filter(|a| a.name.qualified.ends_with(&suffix))
        .map(|a| a.id)
        .collect();
    if let [one] = by_suffix.as_slice() {
        return Some(*one);
    }
    let by_local: Vec<AgentId> = policy
        .agents
        .iter()
        .filter(|a| a.name.local == name)
        .map(|a| a.id)
        .collect();
    match by_local.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// The events read: wants per agent, the lines ignored (not `egc-event/1`), the events
/// no policy change allows (by agent, layer and reason), and the agents the policy lacks
/// (with the first line naming each).
struct EventsRead {
    wants: BTreeMap<AgentId, Wants>,
    ignored: Vec<usize>,
    not_expressible: BTreeMap<(String, String, String), usize>,
    unknown_agents: BTreeMap<String, usize>,
    events: usize,
}

fn parse_events(text: &str, policy: &CheckedPolicy) -> EventsRead {
    let mut parsed = EventsRead {
        wants: BTreeMap::new(),
        ignored: Vec::new(),
        not_expressible: BTreeMap::new(),
        unknown_agents: BTreeMap::new(),
        events: 0,
    };
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let event = match serde_json::from_str::<Event>(line) {
            Ok(e) if e.format == FORMAT => e,
            _ => {
                parsed.ignored.push(index + 1);
                continue;
            }
        };
        parsed.events += 1;
        let Some(agent) = find_agent(policy, &event.agent) else {
            parsed
                .unknown_agents
                .entry(event.agent.clone())
                .or_insert(index + 1);
            continue;
        };
        let qualified = policy
            .agent(agent)
            .map_or_else(|| event.agent.clone(), |a| a.name.qualified.clone());
        let mut not_expressible = || {
            *parsed
                .not_expressible
                .entry((qualified.clone(), event.layer.clone(), event.reason.clone()))
                .or_insert(0) += 1;
        };
        let Some(protocol) = protocol_of(&event.protocol) else {
            not_expressible();
            continue;
        };
        let name_target = event
            .name
            .as_deref()
            .and_then(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Some(Target::Ip(ip)),
                Err(_) => host_name(n).map(Target::Host),
            });
        let address = event
            .address
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok());
        // Port 0 is no port a connection can use: the event names none.
        let port = event.port.filter(|p| *p != 0);
        let wants = parsed.wants.entry(agent).or_default();
        match (event.layer.as_str(), name_target, address, port) {
            // The query's own protocol says nothing of the connection that would have
            // followed: TCP is assumed, as the port is.
            ("dns", Some(Target::Host(host)), _, port)
                if DNS_NAME_REASONS.contains(&event.reason.as_str()) =>
            {
                wants
                    .hosts
                    .entry((host, Protocol::Tcp))
                    .or_default()
                    .insert(port);
            }
            ("gate", Some(Target::Host(host)), _, Some(port))
                if NAMELESS_REASONS.contains(&event.reason.as_str()) =>
            {
                wants.nameless.entry(host).or_default().insert(port);
            }
            ("gate", Some(Target::Host(host)), _, Some(port))
                if matches!(event.reason.as_str(), "sni-mismatch" | "host-mismatch") =>
            {
                wants
                    .hosts
                    .entry((host, protocol))
                    .or_default()
                    .insert(Some(port));
            }
            ("connect", Some(Target::Host(host)), _, Some(port)) => {
                wants
                    .hosts
                    .entry((host, protocol))
                    .or_default()
                    .insert(Some(port));
            }
            ("connect", Some(Target::Ip(ip)), _, Some(port))
            | ("connect", None, Some(ip), Some(port)) => {
                wants
                    .addresses
                    .entry((ip, protocol))
                    .or_default()
                    .insert(port);
            }
            _ => not_expressible(),
        }
    }
    parsed
}

/// The base of a destination name for a target: `other.corp.test` is `other_corp_test`.
fn base_name(target: &Target) -> String {
    let base = match target {
        Target::Host(h) => h.replace('.', "_"),
        Target::Ip(IpAddr::V4(a)) => format!("ip_{}", a.to_string().replace('.', "_")),
        Target::Ip(IpAddr::V6(a)) => {
            let groups: Vec<String> = a.segments().iter().map(|s| format!("{s:x}")).collect();
            format!("ip6_{}", groups.join("_"))
        }
        Target::Workload { namespace, .. } => format!("workload_{namespace}"),
    };
    if base.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        base
    } else {
        format!("h_{base}")
    }
}

/// A name not in `taken` (`base`, else `base_2`, `base_3`, ...), then taken.
fn unique(base: &str, taken: &mut BTreeSet<String>) -> String {
    let mut candidate = base.to_string();
    let mut n = 2;
    while taken.contains(&candidate) || egress_syntax::lexer::is_keyword(&candidate) {
        candidate = format!("{base}_{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// Every name a file declares or imports (names are unique in a module, whatever their kind).
fn names_in(parsed: &egress_syntax::Parsed) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for item in &parsed.ast.items {
        if let Some(name) = item.name() {
            out.insert(name.text.clone());
        }
        match &item.kind {
            ItemKind::Import(import) => {
                out.insert(import_alias(import));
            }
            ItemKind::Data(d) => out.extend(d.names.iter().map(|n| n.text.clone())),
            _ => {}
        }
    }
    out
}

fn import_alias(import: &egress_syntax::ast::Import) -> String {
    if let Some(alias) = &import.alias {
        return alias.text.clone();
    }
    match &import.path {
        ImportPath::Module(ident) => ident.text.rsplit('.').next().unwrap_or("").to_string(),
        ImportPath::File(lit) => lit
            .value
            .rsplit('/')
            .next()
            .unwrap_or("")
            .trim_end_matches(".egress")
            .replace(['.', ' '], "_"),
    }
}

/// `relative` joined to the directory `dir`, `.` and `..` resolved.
fn join_path(dir: &str, relative: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// How the file `from` writes the name `local` declared in the file `to`: bare in the same
/// file, `alias.local` through the import of `to`, else the module-qualified name.
fn spelling(result: &CheckResult, from: FileId, to: FileId, local: &str, module: &str) -> String {
    if from == to {
        return local.to_string();
    }
    let (Some(from_file), Some(to_file)) = (result.file(from), result.file(to)) else {
        return format!("{module}.{local}");
    };
    let dir = from_file
        .path
        .rsplit_once('/')
        .map(|(d, _)| d)
        .unwrap_or("");
    let parsed = egress_syntax::parse(from, &from_file.text);
    for item in &parsed.ast.items {
        if let ItemKind::Import(import) = &item.kind {
            if let ImportPath::File(lit) = &import.path {
                if join_path(dir, &lit.value) == to_file.path {
                    return format!("{}.{local}", import_alias(import));
                }
            }
        }
    }
    format!("{module}.{local}")
}

/// Where to insert a new entry line in the block that closes at `close` (the offset of
/// its `}`): the start of the `}` line when the `}` stands alone on it, else just before
/// the `}` on a new line. Returns the edit for `line` (an entry without indentation).
fn entry_insertion(text: &str, open: usize, close: usize, line: &str) -> Edit {
    let inside = text.get(open + 1..close).unwrap_or("");
    if inside.trim().is_empty() {
        return Edit {
            start: open + 1,
            end: close,
            text: format!("\n    {line}\n"),
        };
    }
    let line_start = text
        .get(..close)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let before = text.get(line_start..close).unwrap_or("");
    if before.trim().is_empty() {
        Edit {
            start: line_start,
            end: line_start,
            text: format!("    {line}\n"),
        }
    } else {
        Edit {
            start: close,
            end: close,
            text: format!("\n    {line}\n"),
        }
    }
}

/// The offsets of the `{` and `}` of the item declared at `span`.
fn braces(text: &str, span: Span) -> Option<(usize, usize)> {
    let (start, end) = (span.start as usize, span.end as usize);
    let item = text.get(start..end)?;
    let open = start + item.find('{')?;
    let close = start + item.rfind('}')?;
    (open < close).then_some((open, close))
}

fn render_dest(dest: &NewDest, out: &mut String) {
    let _ = writeln!(out, "destination {} {{", dest.name);
    match &dest.target {
        Target::Host(h) => {
            let _ = writeln!(out, "    host \"{h}\"");
        }
        Target::Ip(ip) => {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            let _ = writeln!(out, "    cidr {ip}/{bits}");
        }
        Target::Workload { .. } => {}
    }
    let ports: Vec<String> = dest.ports.iter().map(u16::to_string).collect();
    if dest.assumed {
        let _ = writeln!(
            out,
            "    port {} // port not observed (refused at DNS); {ASSUMED_PORT} assumed",
            ports.join(", ")
        );
    } else {
        let _ = writeln!(out, "    port {}", ports.join(", "));
    }
    if dest.protocols.iter().any(|p| *p != Protocol::Tcp) {
        let protocols: Vec<&str> = dest.protocols.iter().map(|p| p.as_str()).collect();
        let _ = writeln!(out, "    protocol {}", protocols.join(", "));
    }
    if dest.sni_optional {
        let _ = writeln!(out, "    sni optional");
    }
    out.push('}');
}

/// The connections a new destination stands for.
fn connections(dest: &NewDest) -> Vec<Connection> {
    let mut out = Vec::new();
    for port in &dest.ports {
        for protocol in &dest.protocols {
            out.push(Connection {
                target: dest.target.clone(),
                port: *port,
                protocol: *protocol,
            });
        }
    }
    out
}

/// Is `connection` already allowed for `agent`?
fn allowed(policy: &CheckedPolicy, agent: AgentId, connection: &Connection) -> bool {
    egress_verify::query(policy, agent, connection).allowed
}

/// The agent's plan: new destinations, and existing destinations to mark `sni optional`.
struct Plan {
    agent: AgentId,
    dests: Vec<NewDest>,
    capability: String,
}

/// Applies edits to a text (they do not overlap).
fn apply(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| std::cmp::Reverse((e.start, e.end)));
    let mut out = text.to_string();
    for edit in edits {
        if edit.start <= edit.end && edit.end <= out.len() {
            out.replace_range(edit.start..edit.end, &edit.text);
        }
    }
    out
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

/// What planning shares across agents: the files' syntax trees and the names taken in
/// each, the edits, the destinations already marked `sni optional`, and lines for people.
struct Work<'a> {
    result: &'a CheckResult,
    policy: &'a CheckedPolicy,
    parsed_files: BTreeMap<FileId, egress_syntax::Parsed>,
    taken: BTreeMap<FileId, BTreeSet<String>>,
    edits: BTreeMap<FileId, Vec<Edit>>,
    sni_marked: BTreeSet<DestId>,
    lines: Vec<String>,
}

impl Work<'_> {
    /// The syntax tree of a policy file (parsed once) and its text.
    fn parsed(&mut self, file: FileId) -> Option<(&egress_syntax::Parsed, &str)> {
        let f = self.result.file(file)?;
        let parsed = self
            .parsed_files
            .entry(file)
            .or_insert_with(|| egress_syntax::parse(file, &f.text));
        Some((parsed, &f.text))
    }

    /// Drops what the policy already allows (with a note), and marks `sni optional` the
    /// destinations that admitted nameless connections; the rest is to be added.
    fn pending(&mut self, agent: AgentId, wants: &Wants) -> Pending {
        let policy = self.policy;
        let name = policy
            .agent(agent)
            .map_or(String::new(), |a| a.name.qualified.clone());
        let mut pending = Pending::new();
        let mut want = |target: Target, sni: bool, protocol: Protocol, port: u16, assumed: bool| {
            let entry = pending
                .entry((target, sni))
                .or_default()
                .entry(protocol)
                .or_default();
            entry.0.insert(port);
            entry.1 |= assumed;
        };
        let mut observed: Vec<(Connection, bool)> = Vec::new();
        for ((host, protocol), ports) in &wants.hosts {
            let known: BTreeSet<u16> = ports.iter().flatten().copied().collect();
            let assumed = known.is_empty();
            let ports = if assumed {
                [ASSUMED_PORT].into_iter().collect()
            } else {
                known
            };
            for port in ports {
                let target = Target::Host(host.clone());
                observed.push((
                    Connection {
                        target,
                        port,
                        protocol: *protocol,
                    },
                    assumed,
                ));
            }
        }
        for ((ip, protocol), ports) in &wants.addresses {
            for port in ports {
                let target = Target::Ip(*ip);
                observed.push((
                    Connection {
                        target,
                        port: *port,
                        protocol: *protocol,
                    },
                    false,
                ));
            }
        }
        for (connection, assumed) in observed {
            if allowed(policy, agent, &connection) {
                self.lines.push(format!(
                    "note: agent `{name}` may already open {connection} (the events predate the policy?)"
                ));
            } else {
                let (port, protocol) = (connection.port, connection.protocol);
                want(connection.target, false, protocol, port, assumed);
            }
        }
        for (host, ports) in &wants.nameless {
            for port in ports {
                let connection = Connection {
                    target: Target::Host(host.clone()),
                    port: *port,
                    protocol: Protocol::Tcp,
                };
                let answer = egress_verify::query(policy, agent, &connection);
                if !answer.allowed {
                    want(connection.target, true, Protocol::Tcp, *port, false);
                    continue;
                }
                for route in &answer.routes {
                    self.mark_sni_optional(&name, route.dest, &connection);
                }
            }
        }
        pending
    }

    /// Adds `sni optional` to a destination that admitted a connection that named no host.
    fn mark_sni_optional(&mut self, agent: &str, dest: DestId, connection: &Connection) {
        let Some(dest) = self.policy.destination(dest) else {
            return;
        };
        let file = dest.name.span.file;
        let editable = !dest.inline && self.result.file(file).is_some_and(|f| !f.is_stdlib);
        if dest.sni_optional {
            self.lines.push(format!(
                "note: `{}` is already `sni optional`; agent `{agent}` was refused {connection} without a name by an older policy?",
                dest.name.qualified
            ));
            return;
        }
        if !editable {
            self.lines.push(format!(
                "note: agent `{agent}` reaches {connection} through `{}`, which egc cannot edit (inline or standard library): mark it `sni optional` by hand",
                dest.name.qualified
            ));
            return;
        }
        if !self.sni_marked.insert(dest.id) {
            return;
        }
        let Some((parsed, text)) = self.parsed(file) else {
            return;
        };
        let edit = parsed
            .ast
            .items
            .iter()
            .find(|i| matches!(&i.kind, ItemKind::Destination(d) if d.name.text == dest.name.local))
            .and_then(|i| braces(text, i.span))
            .map(|(open, close)| entry_insertion(text, open, close, "sni optional"));
        if let Some(edit) = edit {
            self.edits.entry(file).or_default().push(edit);
            self.lines.push(format!(
                "agent `{agent}`: `{}` becomes `sni optional` ({connection} named no host)",
                dest.name.qualified
            ));
        }
    }

    /// The destinations and the capability to add for an agent, named uniquely in the
    /// agent's module; `None` when there is nothing to add.
    fn plan(&mut self, agent: AgentId, pending: Pending) -> Option<Plan> {
        if pending.is_empty() {
            return None;
        }
        let declared = self.policy.agent(agent)?;
        let file = declared.name.span.file;
        let mut names = match self.taken.get(&file) {
            Some(names) => names.clone(),
            None => names_in(self.parsed(file)?.0),
        };
        let mut dests = Vec::new();
        for ((target, sni), by_protocol) in pending {
            // One destination when TCP and UDP saw the same ports, else one per protocol.
            let mut groups: Vec<(BTreeSet<Protocol>, BTreeSet<u16>, bool)> = Vec::new();
            for (protocol, (ports, assumed)) in by_protocol {
                match groups
                    .iter_mut()
                    .find(|(_, p, a)| *p == ports && *a == assumed)
                {
                    Some(group) => {
                        group.0.insert(protocol);
                    }
                    None => groups.push(([protocol].into_iter().collect(), ports, assumed)),
                }
            }
            for (protocols, ports, assumed) in groups {
                let mut base = base_name(&target);
                if !protocols.contains(&Protocol::Tcp) {
                    base.push_str("_udp");
                }
                dests.push(NewDest {
                    name: unique(&base, &mut names),
                    target: target.clone(),
                    ports,
                    assumed,
                    protocols,
                    sni_optional: sni,
                });
            }
        }
        let capability = unique(&format!("suggested_{}", declared.name.local), &mut names);
        self.taken.insert(file, names);
        Some(Plan {
            agent,
            dests,
            capability,
        })
    }

    /// The plan's text, right after the agent's declaration, and its capability in the
    /// agent's `uses`.
    fn write(&mut self, plan: &Plan) {
        let Some(agent) = self.policy.agent(plan.agent) else {
            return;
        };
        let file = agent.name.span.file;
        let Some((parsed, source)) = self.parsed(file) else {
            return;
        };
        let Some(item) = parsed
            .ast
            .items
            .iter()
            .find(|i| matches!(&i.kind, ItemKind::Agent(a) if a.name.text == agent.name.local))
        else {
            return;
        };
        let ItemKind::Agent(decl) = &item.kind else {
            return;
        };
        let mut text = String::new();
        for (i, dest) in plan.dests.iter().enumerate() {
            text.push_str("\n\n");
            if i == 0 {
                let _ = writeln!(
                    text,
                    "/// Suggested by `egc suggest` from the denials of `{}`: review before merging.",
                    agent.name.local
                );
            }
            render_dest(dest, &mut text);
        }
        let names: Vec<&str> = plan.dests.iter().map(|d| d.name.as_str()).collect();
        let _ = write!(
            text,
            "\n\n/// What `{}` was denied at run time (`egc suggest`).\ncapability {} {{\n    connect {}\n}}",
            agent.name.local,
            plan.capability,
            names.join(", ")
        );
        let end = item.span.end as usize;
        let mut edits = vec![Edit {
            start: end,
            end,
            text,
        }];
        let last_uses = decl.entries.iter().rev().find_map(|e| match e {
            AgentEntry::Uses { span, .. } => Some(*span),
            _ => None,
        });
        match last_uses {
            Some(span) => edits.push(Edit {
                start: span.end as usize,
                end: span.end as usize,
                text: format!(", {}", plan.capability),
            }),
            None => {
                if let Some((open, close)) = braces(source, item.span) {
                    let line = format!("uses {}", plan.capability);
                    edits.push(entry_insertion(source, open, close, &line));
                }
            }
        }
        self.edits.entry(file).or_default().extend(edits);
        for dest in &plan.dests {
            self.lines
                .push(describe(&agent.name.qualified, dest, &plan.capability));
        }
    }
}

/// One line for people about a destination to add.
fn describe(agent: &str, dest: &NewDest, capability: &str) -> String {
    let what = match &dest.target {
        Target::Host(h) => format!("host \"{h}\""),
        Target::Ip(ip) => format!("address {ip}"),
        Target::Workload { .. } => String::new(),
    };
    let ports: Vec<String> = dest.ports.iter().map(u16::to_string).collect();
    let protocols: Vec<&str> = dest.protocols.iter().map(|p| p.as_str()).collect();
    format!(
        "agent `{agent}`: destination `{}` ({what}, port {}{}, {}{}) through capability `{capability}`",
        dest.name,
        ports.join(", "),
        if dest.assumed { " (assumed)" } else { "" },
        protocols.join(", "),
        if dest.sni_optional { ", sni optional" } else { "" },
    )
}

/// The changed files (by path) and their unified diff; each formatted as `egc fmt` would
/// when it was formatted before.
fn changed_files(
    result: &CheckResult,
    edits: BTreeMap<FileId, Vec<Edit>>,
) -> (BTreeMap<String, String>, String) {
    let mut overlay: BTreeMap<String, String> = BTreeMap::new();
    let mut diff = String::new();
    for (file, file_edits) in edits {
        let Some(f) = result.file(file) else {
            continue;
        };
        let old: &str = &f.text;
        let mut new = apply(old, file_edits);
        if egress_syntax::format::format_source(old).is_ok_and(|formatted| formatted == old) {
            if let Ok(formatted) = egress_syntax::format::format_source(&new) {
                new = formatted;
            }
        }
        diff.push_str(&egress_sbom::unified_diff(old, &new, &f.path));
        overlay.insert(f.path.clone(), new);
    }
    (overlay, diff)
}

/// The zones that must approve each new destination an agent cannot reach approved.
fn approvals(
    plans: &[Plan],
    old: &CheckedPolicy,
    new: &CheckedPolicy,
    result: &CheckResult,
    report: &mut String,
) {
    let mut needs: BTreeSet<String> = BTreeSet::new();
    for plan in plans {
        let Some(agent) = old.agent(plan.agent) else {
            continue;
        };
        // Ids may shift in the changed policy: find the agent by name.
        let Some(new_agent) = new
            .agents
            .iter()
            .find(|a| a.name.qualified == agent.name.qualified)
        else {
            continue;
        };
        let zones: Vec<&egress_check::Zone> = new.zones_of(new_agent.id).collect();
        for dest in &plan.dests {
            let unapproved = connections(dest)
                .iter()
                .any(|c| !egress_verify::query(new, new_agent.id, c).approved);
            if !unapproved {
                continue;
            }
            let Some(declared) = new.destinations.iter().find(|d| {
                !d.inline && d.name.local == dest.name && d.name.span.file == agent.name.span.file
            }) else {
                continue;
            };
            let module = declared
                .name
                .qualified
                .rsplit_once('.')
                .map_or("", |(m, _)| m);
            match zones.as_slice() {
                [] => {
                    needs.insert(format!(
                        "no zone lists agent `{}`: a zone must list it and approve `{}`",
                        agent.name.qualified, declared.name.qualified
                    ));
                }
                [zone] => {
                    needs.insert(format!(
                        "zone `{}`{} must approve `{}` ({})",
                        zone.name.local,
                        zone_owner(zone, result),
                        spelling(
                            result,
                            zone.name.span.file,
                            declared.name.span.file,
                            &dest.name,
                            module
                        ),
                        agent.name.qualified
                    ));
                }
                several => {
                    let names: Vec<String> = several
                        .iter()
                        .map(|z| format!("`{}`{}", z.name.local, zone_owner(z, result)))
                        .collect();
                    needs.insert(format!(
                        "one of the zones {} must approve `{}` ({})",
                        names.join(", "),
                        declared.name.qualified,
                        agent.name.qualified
                    ));
                }
            }
        }
    }
    if needs.is_empty() {
        let _ = writeln!(
            report,
            "\nthe zones already approve every suggested destination"
        );
        return;
    }
    let _ = writeln!(
        report,
        "\napprovals this change needs (zones are owned apart from agents; this diff does not edit them):"
    );
    for need in needs {
        let _ = writeln!(report, "  {need}");
    }
}

fn zone_owner(zone: &egress_check::Zone, result: &CheckResult) -> String {
    let file = common::file_path(result, zone.name.span);
    match &zone.owner {
        Some(owner) => format!(" (owner \"{owner}\", {file})"),
        None => format!(" ({file})"),
    }
}

/// The verifier's findings on the changed policy that the policy before did not have, and
/// the properties whose status the change moves.
fn findings(
    dir: &str,
    result: &CheckResult,
    before: &Report,
    after: &Report,
    color: bool,
    report: &mut String,
) {
    let seen: BTreeSet<(&Property, &str, &str)> = before
        .violations
        .iter()
        .map(|v| (&v.property, v.agent.as_str(), v.message.as_str()))
        .collect();
    let seen_warnings: BTreeSet<(&str, &str)> = before
        .warnings
        .iter()
        .map(|w| (w.code, w.message.as_str()))
        .collect();
    let mut fresh = after.clone();
    fresh
        .violations
        .retain(|v| !seen.contains(&(&v.property, v.agent.as_str(), v.message.as_str())));
    fresh
        .warnings
        .retain(|w| !seen_warnings.contains(&(w.code, w.message.as_str())));
    let _ = writeln!(
        report,
        "\nverification of the policy with this change ({} new finding(s)):",
        fresh.violations.len() + fresh.warnings.len()
    );
    let mut buffer = Vec::new();
    crate::render::human::report(dir, result, &fresh, color, &mut buffer);
    report.push_str(&String::from_utf8_lossy(&buffer));
    for property in &after.properties {
        let was = before.property(&property.id).map(|p| p.status);
        if was.is_some_and(|w| w != property.status) {
            let _ = writeln!(
                report,
                "  {} was {} before this change",
                property.id,
                was.map_or("absent", |w| w.as_str())
            );
        }
    }
}
