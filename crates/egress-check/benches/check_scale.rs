//! Whole-process throughput and memory of `egc check`:
//! `cargo bench -p egress-check --bench check_scale`.
//!
//! Generates valid policies (deterministically, as `.egress` text) of about 1 MB and
//! 10 MB in two shapes, writes them to a temporary directory and runs the release
//! `egc check` on each, the way a user runs it, measuring the whole process:
//!
//! - `one-file`: the whole policy in one file (one core does all the work);
//! - `files`: the same items in files of about 1 MB, imported by one `main.egress`.
//!
//! Per run: wall time, CPU time (user + system), peak RSS of the `egc` process (each run
//! is waited for by a fresh copy of this program, whose `getrusage(RUSAGE_CHILDREN)` then
//! covers that one process), throughput (policy bytes per wall second) and peak RSS per
//! policy byte. Each size is run `--runs` times (default 3) and the fastest run is shown.
//!
//! Arguments: `--egc PATH` (default `target/release/egc`; build it first with
//! `cargo build --release -p egc`), `--sizes 1,10` (MB), `--shapes one-file,files`,
//! `--runs N`, `--keep` (leave the policies on disk).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Bytes per file in the `files` shape.
const FILE_BYTES: usize = 1_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    OneFile,
    Files,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::OneFile => "one-file",
            Shape::Files => "files",
        }
    }
    fn parse(s: &str) -> Shape {
        match s {
            "one-file" => Shape::OneFile,
            "files" => Shape::Files,
            other => panic!("unknown shape `{other}`"),
        }
    }
}

/// One team's items: destinations, capabilities, agents, a workflow and a zone.
fn team(out: &mut String, t: usize) {
    let (b, c) = (t / 256 % 256, t % 256);
    let _ = writeln!(
        out,
        "/// The services of team {t}.\ndestination t{t}_svc {{\n    host \"*.t{t}.svc.internal\", \"api.t{t}.corp.internal\"\n    port 443, 8443\n}}\n"
    );
    let _ = writeln!(
        out,
        "destination t{t}_net {{\n    cidr 10.{b}.{c}.0/24 except 10.{b}.{c}.128/28\n    cidr fd00:{t:x}::/64\n    port 8000-8100\n}}\n"
    );
    let _ = writeln!(
        out,
        "destination t{t}_db {{\n    workload namespace \"team{t}\" labels {{ app = \"db\" }}\n    port 5432\n}}\n"
    );
    let _ = writeln!(
        out,
        "capability t{t}_work {{\n    connect t{t}_svc, t{t}_db, dns.kube_dns // the usual\n    syscalls sys.process_base, sys.network_client\n}}\n"
    );
    let _ = writeln!(
        out,
        "capability t{t}_batch {{\n    connect t{t}_net, t{t}_db, dns.kube_dns\n    syscalls sys.process_base, sys.network_client\n}}\n"
    );
    for a in 0..4 {
        let cap = if a % 2 == 0 { "work" } else { "batch" };
        let _ = writeln!(
            out,
            "agent t{t}_a{a} {{\n    workload namespace \"team{t}\" labels {{ app = \"a{a}\" }}\n    uses t{t}_{cap}\n    handles financial\n}}\n"
        );
    }
    let _ = writeln!(
        out,
        "zone t{t}_zone {{\n    owner \"team{t}\"\n    agents t{t}_a0, t{t}_a1, t{t}_a2, t{t}_a3\n    approve t{t}_svc, t{t}_net, t{t}_db, dns.kube_dns\n    clear financial to t{t}_svc, t{t}_db, dns.kube_dns\n}}\n"
    );
}

const HEADER: &str = "import std.dns\nimport std.sys\n\ndata pii, financial\n\n";

/// The files of one generated policy of about `bytes` bytes: (file name, text). The
/// first file is the root.
fn generate(shape: Shape, bytes: usize) -> Vec<(String, String)> {
    match shape {
        Shape::OneFile => {
            let mut text = String::from(HEADER);
            let mut t = 0;
            while text.len() < bytes {
                team(&mut text, t);
                t += 1;
            }
            vec![("main.egress".to_string(), text)]
        }
        Shape::Files => {
            let mut files = Vec::new();
            let mut total = 0;
            let mut t = 0;
            while total < bytes {
                let mut text = String::from(HEADER);
                while text.len() < FILE_BYTES && total + text.len() < bytes {
                    team(&mut text, t);
                    t += 1;
                }
                total += text.len();
                files.push((format!("part{}.egress", files.len()), text));
            }
            let mut main = String::new();
            for (name, _) in &files {
                let _ = writeln!(main, "import \"{name}\"");
            }
            let mut out = vec![("main.egress".to_string(), main)];
            out.extend(files);
            out
        }
    }
}

#[path = "support/child.rs"]
mod child;

fn measure(egc: &Path, root: &Path) -> child::Cost {
    let out = std::env::temp_dir().join(format!("egc-check-scale-{}.out", std::process::id()));
    let cost = child::measure(
        egc,
        &[
            "check".as_ref(),
            root.as_os_str(),
            "--root".as_ref(),
            root.parent().unwrap().as_os_str(),
        ],
        &[],
        3600.0,
        &out,
    );
    let _ = std::fs::remove_file(&out);
    cost
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if child::child_mode(&args) {
        return;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut egc = workspace.join("target/release/egc");
    let mut sizes = vec![1usize, 10];
    let mut shapes = vec![Shape::OneFile, Shape::Files];
    let mut runs = 3usize;
    let mut keep = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--egc" => egc = PathBuf::from(it.next().unwrap()),
            "--sizes" => {
                sizes = it
                    .next()
                    .unwrap()
                    .split(',')
                    .map(|s| s.trim().parse().unwrap())
                    .collect()
            }
            "--shapes" => {
                shapes = it
                    .next()
                    .unwrap()
                    .split(',')
                    .map(|s| Shape::parse(s.trim()))
                    .collect()
            }
            "--runs" => runs = it.next().unwrap().parse().unwrap(),
            "--keep" => keep = true,
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => panic!("unknown argument `{other}`"),
        }
    }
    assert!(
        egc.is_file(),
        "no egc binary at {} (cargo build --release -p egc, or --egc PATH)",
        egc.display()
    );
    let tmp = std::env::temp_dir().join(format!("egc-check-scale-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    println!(
        "egc check, whole process ({}), fastest of {runs} runs",
        egc.display()
    );
    println!(
        "| shape | policy text | files | exit | wall | CPU | MB/s | peak RSS | RSS / input byte |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut failed = false;
    for shape in &shapes {
        for &mb in &sizes {
            let dir = tmp.join(format!("{}-{mb}", shape.name()));
            std::fs::create_dir_all(&dir).unwrap();
            let files = generate(*shape, mb * 1_000_000);
            let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
            for (name, text) in &files {
                std::fs::write(dir.join(name), text).unwrap();
            }
            let root = dir.join("main.egress");
            let cost = (0..runs.max(1))
                .map(|_| measure(&egc, &root))
                .min_by(|a, b| a.wall.total_cmp(&b.wall))
                .unwrap();
            if cost.exit != 0 {
                failed = true;
            }
            println!(
                "| {} | {:.1} MB | {} | {} | {:.2} s | {:.2} s | {:.1} | {:.0} MiB | {:.1} B |",
                shape.name(),
                bytes as f64 / 1e6,
                files.len(),
                cost.exit,
                cost.wall,
                cost.cpu,
                bytes as f64 / 1e6 / cost.wall,
                cost.rss_bytes / (1024.0 * 1024.0),
                cost.rss_bytes / bytes as f64,
            );
            if !keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    if keep {
        println!("policies kept in {}", tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if failed {
        println!("ERROR: a generated policy did not check cleanly (exit not 0)");
        std::process::exit(1);
    }
}
