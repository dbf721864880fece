//! The overhead benchmark behind `book/src/runtime/overhead.md` (root; loopback only).
//!
//! `cargo run --release -p egress-enforce --example overhead -- [CONNECTS] [ROUNDS]`
//!
//! For each configuration (no program; the program with 10, 10,000 and 100,000 trie
//! entries) it runs `egc-netprobe bench:127.0.0.1:PORT:CONNECTS` inside a fresh cgroup,
//! ROUNDS times interleaved, and reports connect() latency (median of the rounds' means,
//! pooled p50/p99) and connects per second. With `kernel.bpf_stats_enabled` on, it also
//! reads the program's own average run time per invocation from the kernel.
//! Prints a Markdown table.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use egress_check::{PortRange, Protocol};
use egress_enforce::cgroup;
use egress_enforce::loader::{self, AttachConfig};
use egress_enforce::rules::{compile, AllowRule};
use egress_enforce::sandbox::{CgroupJoin, Confinement};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let connects: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // A deep accept queue, so a busy machine's slow acceptor never drops SYNs (which
    // would add 1 s retransmissions that have nothing to do with the program).
    {
        use std::os::fd::AsRawFd;
        // SAFETY: listen(2) on our own listening socket.
        unsafe { libc::listen(listener.as_raw_fd(), 4096) };
    }
    for _ in 0..2 {
        let listener = listener.try_clone().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                drop(stream);
            }
        });
    }

    let probe = probe_path();
    let configs: Vec<Option<usize>> = vec![None, Some(10), Some(10_000), Some(100_000)];
    let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1");

    let mut groups = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let name = format!("bench-{}-{i}", std::process::id());
        let path = cgroup::resolve(&format!("egc-bench/{name}")).unwrap();
        cgroup::create(&path).unwrap();
        if let Some(entries) = config {
            let rules = rules_with(*entries, port);
            let trie = compile(&rules).unwrap();
            assert_eq!(trie.len(), *entries);
            loader::attach(
                &AttachConfig {
                    name: name.clone(),
                    agent_id: 1,
                    cgroup: path.clone(),
                    flags: 0,
                },
                &trie,
            )
            .unwrap();
        }
        groups.push((name, path, *config));
    }

    type Samples = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);
    let mut results: Vec<Samples> = vec![(vec![], vec![], vec![], vec![]); groups.len()];
    for _ in 0..rounds {
        for (i, (_, path, _)) in groups.iter().enumerate() {
            let line = run_bench(&probe, path, port, connects);
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["failures"], 0, "{line}");
            results[i].0.push(v["mean_ns"].as_f64().unwrap());
            results[i].1.push(v["p50_ns"].as_f64().unwrap());
            results[i].2.push(v["p99_ns"].as_f64().unwrap());
            results[i].3.push(v["connects_per_sec"].as_f64().unwrap());
        }
    }

    println!("| configuration | trie entries | mean connect() | p50 | p99 | connects/s | program run time (kernel) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, (name, _, config)) in groups.iter().enumerate() {
        let prog_ns = config.and_then(|_| program_ns(name));
        println!(
            "| {} | {} | {:.1} µs | {:.1} µs | {:.1} µs | {:.0} | {} |",
            if config.is_some() {
                "eBPF program attached"
            } else {
                "no program"
            },
            config.map(|n| n.to_string()).unwrap_or_else(|| "–".into()),
            median(&results[i].0) / 1000.0,
            median(&results[i].1) / 1000.0,
            median(&results[i].2) / 1000.0,
            median(&results[i].3),
            prog_ns
                .map(|n| format!("{n:.0} ns"))
                .unwrap_or_else(|| "–".into()),
        );
    }
    println!();
    println!("{connects} connects per round, {rounds} rounds interleaved; medians over rounds.");

    for (name, path, config) in groups {
        if config.is_some() {
            let _ = loader::detach(&name);
        }
        let _ = cgroup::remove(&path);
    }
}

/// `n` distinct trie entries: the allowed 127.0.0.1/32 plus /32s and /24s in 10.0.0.0/8
/// (never contacted; they only fill the trie).
fn rules_with(n: usize, port: u16) -> Vec<AllowRule> {
    let mut rules = vec![AllowRule {
        network: "127.0.0.1/32".parse().unwrap(),
        protocol: Protocol::Tcp,
        ports: PortRange {
            start: port,
            end: port,
        },
        exception_slot: 0,
    }];
    for i in 1..n {
        let i = i as u32;
        let addr = std::net::Ipv4Addr::from(0x0a00_0000u32 | (i * 7919 % 0x00ff_ffff));
        let len = if i % 10 == 0 { 24 } else { 32 };
        let network = ipnet::Ipv4Net::new(addr, len).unwrap().trunc();
        rules.push(AllowRule {
            network: ipnet::IpNet::V4(network),
            protocol: if i % 3 == 0 {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            ports: PortRange {
                start: 443,
                end: 443,
            },
            exception_slot: 0,
        });
    }
    // Deduplicate networks so the trie has exactly `n` entries.
    let mut seen = std::collections::BTreeSet::new();
    rules.retain(|r| seen.insert(r.network.trunc()));
    let mut extra = 0u32;
    while rules.len() < n {
        let addr = std::net::Ipv4Addr::from(0x0b00_0000u32 + extra);
        extra += 1;
        let network = ipnet::IpNet::V4(ipnet::Ipv4Net::new(addr, 32).unwrap());
        if seen.insert(network) {
            rules.push(AllowRule {
                network,
                protocol: Protocol::Tcp,
                ports: PortRange {
                    start: 443,
                    end: 443,
                },
                exception_slot: 0,
            });
        }
    }
    rules
}

fn run_bench(probe: &Path, cgroup: &Path, port: u16, connects: usize) -> String {
    let mut command = Command::new(probe);
    command.arg(format!("bench:127.0.0.1:{port}:{connects}"));
    Confinement {
        cgroup: Some(CgroupJoin::open(cgroup).unwrap()),
        ..Confinement::default()
    }
    .apply_to(&mut command);
    let out = command.output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn probe_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/examples/overhead -> target/<profile>/egc-netprobe
    let dir = exe.parent().and_then(|p| p.parent()).unwrap();
    let probe = dir.join("egc-netprobe");
    assert!(
        probe.exists(),
        "build egc-netprobe first: cargo build --release -p egress-enforce"
    );
    probe
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Average run time of the attachment's connect4 program, from `bpftool prog show`.
fn program_ns(name: &str) -> Option<f64> {
    let attachment = loader::open(name).ok()?;
    let link = attachment
        .links()
        .into_iter()
        .find(|l| l.hook == "connect4")?;
    let out = Command::new("bpftool")
        .args(["prog", "show", "id", &link.prog_id.to_string(), "--json"])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let time = v["run_time_ns"].as_f64()?;
    let count = v["run_cnt"].as_f64()?;
    (count > 0.0).then(|| time / count)
}
