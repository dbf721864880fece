//! `egc graph PATH --format dot|mermaid|svg [--agent A]`: a picture of who can reach what.
//!
//! Nodes are agents, capabilities, destinations and exceptions; edges are `uses`,
//! `connect`, `invokes` (with the classes passed), workflow steps (`uses` in workflow W)
//! and exceptions (listed, `to`). Every step of a counterexample of `egc verify` is drawn
//! in red. SVG is laid out in-process (agents, then capabilities and exceptions, then
//! destinations, left to right), so it needs no Graphviz.
//!
//! Exit codes: 0 written; 1 the policy has check errors; 2 usage or I/O errors.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use egress_check::{CheckedPolicy, StepAction};
use egress_verify::{Report, VerifyConfig};

use crate::common::{self, Format};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
    Svg,
}

#[derive(clap::Args)]
pub struct Args {
    /// A policy: a file or a directory of `.egress` files.
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
    /// Only this agent and what it reaches (its capabilities, exceptions, destinations
    /// and the agents it invokes, transitively).
    #[arg(long)]
    pub agent: Option<String>,
    /// The project root; imports may not leave it.
    #[arg(long)]
    pub root: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Agent,
    Capability,
    Exception,
    Destination,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub kind: Kind,
    pub label: String,
    pub red: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub label: String,
    pub red: bool,
}

/// The picture as plain data, before rendering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// Builds the graph of a policy, with the paths of the report's violations in red.
pub fn build(policy: &CheckedPolicy, report: &Report, agent: Option<&str>) -> Graph {
    let mut g = Graph::default();
    let agent_id = |i: usize| format!("a{i}");
    for a in &policy.agents {
        g.nodes.push(Node {
            id: agent_id(a.id.index()),
            kind: Kind::Agent,
            label: a.name.local.clone(),
            red: false,
        });
        for used in &a.capabilities {
            g.edges.push(Edge {
                from: agent_id(a.id.index()),
                to: format!("c{}", used.id.index()),
                label: "uses".into(),
                red: false,
            });
        }
        for inv in &a.invokes {
            let passing = inv.passing.as_ref().map(|p| {
                p.iter()
                    .filter_map(|c| policy.data_class(c.id))
                    .map(|c| c.name.local.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            g.edges.push(Edge {
                from: agent_id(a.id.index()),
                to: agent_id(inv.callee.index()),
                label: match passing {
                    Some(p) => format!("invokes, passing {p}"),
                    None => "invokes".into(),
                },
                red: false,
            });
        }
    }
    for w in &policy.workflows {
        for step in &w.steps {
            let (to, what) = match &step.action {
                StepAction::Uses(c) => (format!("c{}", c.id.index()), "uses"),
                StepAction::Invokes { callee, .. } => (agent_id(callee.id.index()), "invokes"),
            };
            g.edges.push(Edge {
                from: agent_id(step.agent.index()),
                to,
                label: format!("{what} in workflow {}", w.name.local),
                red: false,
            });
        }
    }
    for c in &policy.capabilities {
        g.nodes.push(Node {
            id: format!("c{}", c.id.index()),
            kind: Kind::Capability,
            label: c.name.local.clone(),
            red: false,
        });
        for connect in &c.connects {
            g.edges.push(Edge {
                from: format!("c{}", c.id.index()),
                to: format!("d{}", connect.dest.index()),
                label: "connect".into(),
                red: false,
            });
        }
    }
    for e in &policy.exceptions {
        g.nodes.push(Node {
            id: format!("e{}", e.id.index()),
            kind: Kind::Exception,
            label: format!("exception {}", e.name.local),
            red: false,
        });
        for a in &e.agents {
            g.edges.push(Edge {
                from: agent_id(a.id.index()),
                to: format!("e{}", e.id.index()),
                label: "listed".into(),
                red: false,
            });
        }
        g.edges.push(Edge {
            from: format!("e{}", e.id.index()),
            to: format!("d{}", e.to.id.index()),
            label: "to".into(),
            red: false,
        });
    }
    for d in &policy.destinations {
        g.nodes.push(Node {
            id: format!("d{}", d.id.index()),
            kind: Kind::Destination,
            label: if d.inline {
                egress_verify::eval::describe_destination(d)
            } else {
                format!(
                    "{}\n{}",
                    d.name.local,
                    egress_verify::eval::describe_destination(d)
                )
            },
            red: false,
        });
    }
    g.edges
        .sort_by(|a, b| (&a.from, &a.to, &a.label).cmp(&(&b.from, &b.to, &b.label)));
    g.edges.dedup();
    // Destinations nothing reaches (such as unused standard library items) are left out.
    let targets: BTreeSet<String> = g.edges.iter().map(|e| e.to.clone()).collect();
    g.nodes
        .retain(|n| n.kind != Kind::Destination || targets.contains(&n.id));
    // Violations in red: each path node, and each edge between consecutive path nodes.
    let by_name: BTreeMap<(&str, &str), String> = g
        .nodes
        .iter()
        .map(|n| {
            let kind = match n.kind {
                Kind::Agent => "agent",
                Kind::Capability => "capability",
                Kind::Exception => "exception",
                Kind::Destination => "destination",
            };
            let name = match n.kind {
                Kind::Exception => n.label.trim_start_matches("exception "),
                _ => n.label.split('\n').next().unwrap_or_default(),
            };
            ((kind, name), n.id.clone())
        })
        .collect();
    let mut red_nodes: BTreeSet<String> = BTreeSet::new();
    let mut red_edges: BTreeSet<(String, String)> = BTreeSet::new();
    for v in &report.violations {
        let ids: Vec<String> = v
            .path
            .iter()
            .filter_map(|p| {
                let kind = if p.kind == "invokes" { "agent" } else { p.kind };
                by_name.get(&(kind, p.name.as_str())).cloned()
            })
            .collect();
        for pair in ids.windows(2) {
            if let [a, b] = pair {
                red_edges.insert((a.clone(), b.clone()));
            }
        }
        red_nodes.extend(ids);
    }
    for n in &mut g.nodes {
        n.red = red_nodes.contains(&n.id);
    }
    for e in &mut g.edges {
        e.red = red_edges.contains(&(e.from.clone(), e.to.clone()));
    }
    if let Some(name) = agent {
        restrict(&mut g, policy, name);
    }
    g
}

/// Keeps what `agent` reaches by following edges from it.
fn restrict(g: &mut Graph, policy: &CheckedPolicy, name: &str) {
    let Some(start) = policy.agent_by_name(name) else {
        g.nodes.clear();
        g.edges.clear();
        return;
    };
    let mut keep: BTreeSet<String> = BTreeSet::new();
    let mut stack = vec![format!("a{}", start.id.index())];
    while let Some(n) = stack.pop() {
        if !keep.insert(n.clone()) {
            continue;
        }
        stack.extend(g.edges.iter().filter(|e| e.from == n).map(|e| e.to.clone()));
    }
    g.nodes.retain(|n| keep.contains(&n.id));
    g.edges
        .retain(|e| keep.contains(&e.from) && keep.contains(&e.to));
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Graphviz DOT.
pub fn dot(g: &Graph) -> String {
    let mut out =
        String::from("digraph egress {\n  rankdir=LR;\n  node [fontname=\"sans-serif\"];\n");
    for n in &g.nodes {
        let shape = match n.kind {
            Kind::Agent => "box, style=rounded",
            Kind::Capability => "ellipse",
            Kind::Exception => "diamond",
            Kind::Destination => "note",
        };
        let color = if n.red {
            ", color=red, fontcolor=red"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {} [label=\"{}\", shape={shape}{color}];\n",
            n.id,
            quote(&n.label)
        ));
    }
    for e in &g.edges {
        let color = if e.red {
            ", color=red, fontcolor=red"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {} -> {} [label=\"{}\"{color}];\n",
            e.from,
            e.to,
            quote(&e.label)
        ));
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart.
pub fn mermaid(g: &Graph) -> String {
    let mut out = String::from("flowchart LR\n");
    let text = |s: &str| s.replace('"', "#quot;").replace('\n', "<br/>");
    for n in &g.nodes {
        let label = text(&n.label);
        let shape = match n.kind {
            Kind::Agent => format!("(\"{label}\")"),
            Kind::Capability => format!("([\"{label}\"])"),
            Kind::Exception => format!("{{\"{label}\"}}"),
            Kind::Destination => format!("[\"{label}\"]"),
        };
        out.push_str(&format!("  {}{shape}\n", n.id));
    }
    let mut red_links = Vec::new();
    for (i, e) in g.edges.iter().enumerate() {
        out.push_str(&format!(
            "  {} -->|\"{}\"| {}\n",
            e.from,
            text(&e.label),
            e.to
        ));
        if e.red {
            red_links.push(i.to_string());
        }
    }
    for n in g.nodes.iter().filter(|n| n.red) {
        out.push_str(&format!("  style {} stroke:red,color:red\n", n.id));
    }
    if !red_links.is_empty() {
        out.push_str(&format!(
            "  linkStyle {} stroke:red,color:red\n",
            red_links.join(",")
        ));
    }
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// SVG, laid out in columns by kind: agents, capabilities and exceptions, destinations.
pub fn svg(g: &Graph) -> String {
    const ROW: i64 = 70;
    const COLUMN: i64 = 300;
    const WIDTH: i64 = 240;
    const HEIGHT: i64 = 44;
    let column = |k: Kind| match k {
        Kind::Agent => 0,
        Kind::Capability | Kind::Exception => 1,
        Kind::Destination => 2,
    };
    let mut rows = [0i64; 3];
    let mut at: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for n in &g.nodes {
        let c = column(n.kind);
        let row = rows.get_mut(c).map_or(0, |r| {
            *r += 1;
            *r - 1
        });
        let c = i64::try_from(c).unwrap_or(0);
        at.insert(n.id.as_str(), (80 + c * COLUMN, 20 + row * ROW));
    }
    let height = 40 + rows.iter().max().copied().unwrap_or(0) * ROW;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n",
        100 + 2 * COLUMN + WIDTH,
        100 + 2 * COLUMN + WIDTH
    );
    out.push_str("  <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"context-stroke\"/></marker></defs>\n");
    for e in &g.edges {
        let (Some((x1, y1)), Some((x2, y2))) = (at.get(e.from.as_str()), at.get(e.to.as_str()))
        else {
            continue;
        };
        let color = if e.red { "red" } else { "#555" };
        let (sx, sy, tx, ty) = if x1 == x2 {
            // Same column (an agent invoking an agent): a curve on the left.
            (*x1, y1 + HEIGHT / 2, *x2, y2 + HEIGHT / 2)
        } else {
            (x1 + WIDTH, y1 + HEIGHT / 2, *x2, y2 + HEIGHT / 2)
        };
        let bend = if x1 == x2 { sx - 60 } else { (sx + tx) / 2 };
        out.push_str(&format!(
            "  <path d=\"M{sx},{sy} C{bend},{sy} {bend},{ty} {tx},{ty}\" fill=\"none\" stroke=\"{color}\" marker-end=\"url(#arrow)\"><title>{}</title></path>\n",
            xml(&e.label)
        ));
    }
    for n in &g.nodes {
        let Some((x, y)) = at.get(n.id.as_str()) else {
            continue;
        };
        let color = if n.red { "red" } else { "#333" };
        let (rx, fill) = match n.kind {
            Kind::Agent => (12, "#eef4ff"),
            Kind::Capability => (22, "#f4f4f4"),
            Kind::Exception => (4, "#fff4e0"),
            Kind::Destination => (0, "#f0fff0"),
        };
        out.push_str(&format!(
            "  <rect x=\"{x}\" y=\"{y}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" rx=\"{rx}\" fill=\"{fill}\" stroke=\"{color}\"/>\n"
        ));
        for (i, line) in n.label.split('\n').take(2).enumerate() {
            let line: String = line.chars().take(38).collect();
            let ty = y + 18 + i64::try_from(i).unwrap_or(0) * 16;
            out.push_str(&format!(
                "  <text x=\"{}\" y=\"{ty}\" fill=\"{color}\">{}</text>\n",
                x + 8,
                xml(&line)
            ));
        }
    }
    out.push_str("</svg>\n");
    out
}

pub fn run(args: Args) -> ExitCode {
    let policies =
        match common::load_policies(std::slice::from_ref(&args.path), args.root.as_deref()) {
            Ok(p) => p,
            Err(code) => return code,
        };
    let [loaded] = policies.as_slice() else {
        return common::usage_error(format!(
            "`{}` holds {} policies; give one policy directory or file",
            args.path.display(),
            policies.len()
        ));
    };
    let Some(policy) = loaded.result.policy.as_ref() else {
        common::print_diagnostics(std::slice::from_ref(loaded), Format::Human);
        eprintln!("error: the policy has check errors; nothing drawn");
        return ExitCode::from(1);
    };
    if let Some(a) = &args.agent {
        if policy.agent_by_name(a).is_none() {
            return common::usage_error(format!("no agent `{a}` in the policy"));
        }
    }
    let report = egress_verify::verify(policy, &VerifyConfig::default());
    let graph = build(policy, &report, args.agent.as_deref());
    let text = match args.format {
        GraphFormat::Dot => dot(&graph),
        GraphFormat::Mermaid => mermaid(&graph),
        GraphFormat::Svg => svg(&graph),
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}
