//! Text edits to the policy files: names for new items, where entries go, destinations
//! written out, edits applied.

use super::*;

/// The base of a destination name for a target: `other.corp.test` is `other_corp_test`.
pub(super) fn base_name(target: &Target) -> String {
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
pub(super) fn unique(base: &str, taken: &mut BTreeSet<String>) -> String {
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
pub(super) fn names_in(parsed: &egress_syntax::Parsed) -> BTreeSet<String> {
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

pub(super) fn import_alias(import: &egress_syntax::ast::Import) -> String {
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
pub(super) fn join_path(dir: &str, relative: &str) -> String {
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
pub(super) fn spelling(
    result: &CheckResult,
    from: FileId,
    to: FileId,
    local: &str,
    module: &str,
) -> String {
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
pub(super) fn entry_insertion(text: &str, open: usize, close: usize, line: &str) -> Edit {
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
pub(super) fn braces(text: &str, span: Span) -> Option<(usize, usize)> {
    let (start, end) = (span.start as usize, span.end as usize);
    let item = text.get(start..end)?;
    let open = start + item.find('{')?;
    let close = start + item.rfind('}')?;
    (open < close).then_some((open, close))
}

pub(super) fn render_dest(dest: &NewDest, out: &mut String) {
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
pub(super) fn connections(dest: &NewDest) -> Vec<Connection> {
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
pub(super) fn allowed(policy: &CheckedPolicy, agent: AgentId, connection: &Connection) -> bool {
    egress_verify::query(policy, agent, connection).allowed
}

/// The agent's plan: new destinations, and existing destinations to mark `sni optional`.
pub(super) struct Plan {
    pub(super) agent: AgentId,
    pub(super) dests: Vec<NewDest>,
    pub(super) capability: String,
}

/// Applies edits to a text (they do not overlap).
pub(super) fn apply(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| std::cmp::Reverse((e.start, e.end)));
    let mut out = text.to_string();
    for edit in edits {
        if edit.start <= edit.end && edit.end <= out.len() {
            out.replace_range(edit.start..edit.end, &edit.text);
        }
    }
    out
}
