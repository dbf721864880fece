//! Diagnostics latency after an edit, through the whole language server (in-process, over
//! the same message channels stdio uses), on generated 5,000-line workspaces:
//!
//! - `one policy`: one directory of 10 files, 500 lines each (every edit re-checks all
//!   5,000 lines: the worst case);
//! - `ten policies`: ten directories of 500 lines (an edit re-checks its directory only).
//!
//! Each edit alternates between introducing an unknown name and fixing it, so every edit
//! changes what is published. Latency is from sending `didChange` to receiving the
//! `publishDiagnostics` of that version. Run: `cargo bench -p egress-lsp --bench latency`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egress_lsp::{run, ServerConfig};
use lsp_server::{Connection, Message, Notification, Request, RequestId};
use serde_json::{json, Value};

const EDITS: usize = 60;

fn unit(prefix: &str, i: usize) -> String {
    format!(
        r#"/// Service {i} of {prefix}.
destination {prefix}_svc_{i} {{
    host "svc{i}.{prefix}.example.internal"
    port 443, 8443
}}

destination {prefix}_db_{i} {{
    cidr 10.{a}.{b}.0/24
    port 5432
}}

capability {prefix}_cap_{i} {{
    connect {prefix}_svc_{i}, {prefix}_db_{i}, dns.kube_dns
}}

agent {prefix}_agent_{i} {{
    workload namespace "ns-{i}" labels {{ app = "agent-{i}" }}
    uses {prefix}_cap_{i}
    handles {prefix}_data
}}

zone {prefix}_zone_{i} {{
    owner "security-team"
    agents {prefix}_agent_{i}
    approve {prefix}_svc_{i}, {prefix}_db_{i}, dns.kube_dns
    clear {prefix}_data to {prefix}_svc_{i}
}}
"#,
        a = i / 200,
        b = i % 200,
    )
}

/// A policy file of about `lines` lines.
fn file(prefix: &str, lines: usize) -> String {
    let mut text = format!("import std.dns\n\ndata {prefix}_data\n");
    let mut i = 0;
    while text.lines().count() + 30 <= lines {
        text.push('\n');
        text.push_str(&unit(prefix, i));
        i += 1;
    }
    while text.lines().count() < lines {
        text.push_str("// padding\n");
    }
    text
}

struct Workspace {
    root: PathBuf,
    files: Vec<PathBuf>,
}

fn workspace(name: &str, directories: usize, files_per_directory: usize) -> Workspace {
    let root = std::env::temp_dir().join(format!("egc-lsp-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let lines_per_file = 5_000 / (directories * files_per_directory);
    let mut files = Vec::new();
    for d in 0..directories {
        for f in 0..files_per_directory {
            let path = root
                .join(format!("policy{d}"))
                .join(format!("part{f}.egress"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, file(&format!("p{d}f{f}"), lines_per_file)).unwrap();
            files.push(path);
        }
    }
    Workspace { root, files }
}

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn notify(connection: &Connection, method: &str, params: Value) {
    connection
        .sender
        .send(Message::Notification(Notification::new(
            method.to_string(),
            params,
        )))
        .unwrap();
}

fn wait_for_version(connection: &Connection, uri: &str, version: i64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let message = connection
            .receiver
            .recv_timeout(remaining)
            .expect("diagnostics arrive");
        if let Message::Notification(n) = message {
            if n.method == "textDocument/publishDiagnostics"
                && n.params["uri"] == uri
                && n.params["version"] == version
            {
                return n.params["diagnostics"]
                    .as_array()
                    .map(Vec::len)
                    .unwrap_or(0);
            }
        }
    }
}

fn measure(name: &str, workspace: &Workspace) -> Vec<Duration> {
    let (server, client) = Connection::memory();
    let thread = std::thread::spawn(move || run(server, ServerConfig::default()));
    client
        .sender
        .send(Message::Request(Request::new(
            RequestId::from(1),
            "initialize".to_string(),
            json!({ "processId": null, "rootUri": uri(&workspace.root), "capabilities": {} }),
        )))
        .unwrap();
    let _ = client.receiver.recv().unwrap();
    notify(&client, "initialized", json!({}));

    let edited = &workspace.files[0];
    let edited_uri = uri(edited);
    let original = std::fs::read_to_string(edited).unwrap();
    notify(
        &client,
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": edited_uri, "languageId": "egress", "version": 1, "text": original } }),
    );
    wait_for_version(&client, &edited_uri, 1);

    // The line to edit: the first `uses` entry.
    let line = original
        .lines()
        .position(|l| l.trim_start().starts_with("uses "))
        .unwrap();
    let column = original.lines().nth(line).unwrap().find("uses ").unwrap() + 5;
    let mut latencies = Vec::new();
    let mut broken = false;
    for version in 2..(2 + EDITS as i64) {
        // Insert or remove an `x` at the start of the capability name: a typo, then its fix.
        let change = if broken {
            json!({ "range": { "start": { "line": line, "character": column }, "end": { "line": line, "character": column + 1 } }, "text": "" })
        } else {
            json!({ "range": { "start": { "line": line, "character": column }, "end": { "line": line, "character": column } }, "text": "x" })
        };
        broken = !broken;
        let started = Instant::now();
        notify(
            &client,
            "textDocument/didChange",
            json!({ "textDocument": { "uri": edited_uri, "version": version }, "contentChanges": [change] }),
        );
        let count = wait_for_version(&client, &edited_uri, version);
        latencies.push(started.elapsed());
        assert_eq!(
            count > 0,
            broken,
            "{name}: version {version} published {count} diagnostics"
        );
    }
    client
        .sender
        .send(Message::Request(Request::new(
            RequestId::from(2),
            "shutdown".to_string(),
            Value::Null,
        )))
        .unwrap();
    loop {
        if let Message::Response(_) = client.receiver.recv().unwrap() {
            break;
        }
    }
    notify(&client, "exit", Value::Null);
    thread.join().unwrap().unwrap();
    latencies
}

fn report(name: &str, workspace: &Workspace, mut latencies: Vec<Duration>) {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let total_lines: usize = workspace
        .files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .sum();
    let median = latencies[latencies.len() / 2];
    let p95 = latencies[latencies.len() * 95 / 100];
    let max = *latencies.last().unwrap();
    println!(
        "{name:<14} {total_lines:>6} lines in {:>2} files: edit -> diagnostics median {:>6.1} ms, p95 {:>6.1} ms, max {:>6.1} ms ({} edits){}",
        workspace.files.len(),
        ms(median),
        ms(p95),
        ms(max),
        latencies.len(),
        if ms(p95) <= 50.0 { "" } else { "  ** over the 50 ms budget **" }
    );
}

/// The same edits without the server: the checker alone, and the IDE layer (cache
/// validation, check, conversion to plain diagnostics).
fn layers(workspace: &Workspace, rounds: usize) {
    use std::sync::Arc;
    let texts: Vec<(String, String)> = workspace
        .files
        .iter()
        .map(|f| {
            let rel = f
                .strip_prefix(&workspace.root)
                .unwrap()
                .display()
                .to_string();
            (rel, std::fs::read_to_string(f).unwrap())
        })
        .collect();
    let mut checker = Vec::new();
    for round in 0..rounds {
        let mut source = egress_check::MemorySource::default();
        for (i, (rel, text)) in texts.iter().enumerate() {
            let text = if i == 0 {
                format!("// {round}\n{text}")
            } else {
                text.clone()
            };
            source.files.insert(rel.clone(), text);
        }
        let roots: Vec<String> = texts.iter().map(|(r, _)| r.clone()).collect();
        let started = Instant::now();
        let result = egress_check::check(&source, &roots);
        checker.push(started.elapsed());
        assert!(!result.has_errors());
    }
    let vfs = egress_ide::MemoryVfs::new();
    for f in &workspace.files {
        vfs.write(f.clone(), std::fs::read_to_string(f).unwrap());
    }
    let mut host = egress_ide::AnalysisHost::new(Arc::new(vfs), vec![workspace.root.clone()]);
    let mut ide = Vec::new();
    for round in 0..rounds {
        let text = format!("// {round}\n{}", texts[0].1);
        let started = Instant::now();
        host.set_file_text(&workspace.files[0], text.as_str());
        let diagnostics = host.snapshot().policy_diagnostics(&workspace.files[0]);
        ide.push(started.elapsed());
        assert!(diagnostics.values().all(Vec::is_empty));
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1000.0
    };
    println!(
        "  of which: checker on the whole workspace at once median {:.1} ms; IDE layer (cache check + check + diagnostics) median {:.1} ms",
        median(checker),
        median(ide)
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--test`: a quick smoke run.
    let quick = std::env::args().any(|a| a == "--test");
    for (name, directories, files) in [("one policy", 1, 10), ("ten policies", 10, 1)] {
        let workspace = workspace(&name.replace(' ', "-"), directories, files);
        let mut latencies = measure(name, &workspace);
        if quick {
            latencies.truncate(4);
        }
        report(name, &workspace, latencies);
        layers(&workspace, if quick { 2 } else { 20 });
        let _ = std::fs::remove_dir_all(&workspace.root);
    }
}
