//! The name-enforcement benchmark behind `book/src/runtime/overhead.md#names` (root;
//! loopback only).
//!
//! `cargo run --release -p egress-enforce --example names_overhead -- [N] [MIB]`
//!
//! Starts a test upstream resolver and an HTTP server on loopback, attaches the eBPF
//! program to a fresh cgroup with one host destination (`bench.corp.test` on the
//! server's port) and starts egc's DNS gateway and name gate for it, exactly as `egc run`
//! does. Then the same client (this binary, `--client`) runs twice: outside the cgroup,
//! talking to the resolver and the server directly, and inside it, where every query goes
//! through the gateway and every connection through the gate. It measures:
//! - DNS: N sequential A queries (UDP), round-trip time per answer;
//! - connect: N sequential connections, each `connect()` + an HTTP request with
//!   `Host: bench.corp.test` + the response's first byte;
//! - throughput: MIB MiB sent on one connection after the request head.
//!
//! Prints a Markdown table (median and p99 in microseconds; MiB/s).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use egress_enforce::cgroup;
use egress_enforce::control::{self, ApplyRequest, Kind};
use egress_enforce::maps::{lower_with, LowerConfig};
use egress_enforce::names::{start_gateway, NamesConfig};
use egress_gateway::testing::TestResolver;

const NAME: &str = "bench.corp.test";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--client") {
        client(&args[2..]);
        return;
    }
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let mib: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(512);

    let resolver = start_resolver();
    let server = start_server();
    let policy_text = format!(
        "import std.sys\n\
         destination bench {{\n    host \"{NAME}\"\n    port {port}\n}}\n\
         capability client {{\n    connect bench\n    syscalls sys.process_base, sys.network_client\n}}\n\
         agent bench_bot {{\n    uses client\n}}\n",
        port = server.port()
    );
    let checked = egress_check::check_sources(&[("bench.egress", policy_text.as_str())]);
    let policy = checked
        .policy
        .unwrap_or_else(|| panic!("{:#?}", checked.diagnostics));
    let (maps, _) = lower_with(
        &policy,
        "bench_bot",
        &LowerConfig {
            names: true,
            ..LowerConfig::default()
        },
    )
    .unwrap();

    let name = format!("bench-names-{}", std::process::id());
    let path = cgroup::resolve(&format!("egc-bench/{name}")).unwrap();
    cgroup::create(&path).unwrap();
    control::apply(&ApplyRequest {
        name: &name,
        maps: &maps,
        cgroup: &path,
        policy: None,
        kind: Kind::Run,
    })
    .unwrap();
    let mut attachment = egress_enforce::loader::open(&name).unwrap();
    let mut names = NamesConfig::new(resolver);
    // The benchmark asks faster than an agent may: lift the rate limit, and keep the
    // address learned for the whole run.
    names.query_rate = 1_000_000;
    names.query_burst = 1_000_000;
    names.ttl_min = Duration::from_secs(600);
    names.ttl_max = Duration::from_secs(600);
    let (service, _events) = start_gateway(&mut attachment, &path, &maps, &names, false).unwrap();

    let exe = std::env::current_exe().unwrap();
    let run = |inside: bool| -> Vec<f64> {
        let mut command = Command::new(&exe);
        command.arg("--client").args([
            n.to_string(),
            mib.to_string(),
            if inside {
                "192.0.2.53:53".to_string()
            } else {
                resolver.to_string()
            },
            server.port().to_string(),
            if inside {
                path.display().to_string()
            } else {
                String::new()
            },
        ]);
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let direct = run(false);
    let through = run(true);
    drop(service);
    drop(attachment);
    let _ = control::detach(&name);
    let _ = cgroup::remove(&path);

    println!("| measure ({n} samples; {mib} MiB) | direct | through egc | added |");
    println!("| --- | ---: | ---: | ---: |");
    let rows = [
        ("DNS answer, median", 0, "µs"),
        ("DNS answer, p99", 1, "µs"),
        ("connect + request + first byte, median", 2, "µs"),
        ("connect + request + first byte, p99", 3, "µs"),
    ];
    for (label, i, unit) in rows {
        println!(
            "| {label} | {:.1} {unit} | {:.1} {unit} | {:+.1} {unit} |",
            direct[i],
            through[i],
            through[i] - direct[i]
        );
    }
    println!(
        "| throughput, one connection | {:.0} MiB/s | {:.0} MiB/s | {:+.0} % |",
        direct[4],
        through[4],
        (through[4] / direct[4] - 1.0) * 100.0
    );
}

/// The measuring client: prints dns_p50 dns_p99 conn_p50 conn_p99 mib_per_s.
fn client(args: &[String]) {
    let n: usize = args[0].parse().unwrap();
    let mib: usize = args[1].parse().unwrap();
    let resolver: SocketAddr = args[2].parse().unwrap();
    let port: u16 = args[3].parse().unwrap();
    if !args[4].is_empty() {
        std::fs::write(
            Path::new(&args[4]).join("cgroup.procs"),
            std::process::id().to_string(),
        )
        .unwrap();
    }
    // DNS.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut dns = Vec::with_capacity(n);
    let mut addr: Option<IpAddr> = None;
    let mut buf = [0u8; 1500];
    for i in 0..n {
        let query = dns_query(i as u16);
        let start = Instant::now();
        socket.send_to(&query, resolver).unwrap();
        let (len, _) = socket.recv_from(&mut buf).unwrap();
        dns.push(start.elapsed().as_secs_f64() * 1e6);
        if addr.is_none() {
            addr = first_a(&buf[..len]);
        }
    }
    let target = SocketAddr::new(addr.expect("no A record in the answer"), port);
    // Connect + request + first byte.
    let request = format!("GET / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n");
    let mut conn = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let mut stream = TcpStream::connect(target).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut first = [0u8; 1];
        stream.read_exact(&mut first).unwrap();
        conn.push(start.elapsed().as_secs_f64() * 1e6);
    }
    // Throughput.
    let mut stream = TcpStream::connect(target).unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {NAME}\r\nContent-Length: {}\r\n\r\n",
        mib << 20
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    for _ in 0..mib {
        stream.write_all(&chunk).unwrap();
    }
    let mut done = [0u8; 1];
    stream.read_exact(&mut done).unwrap();
    let rate = mib as f64 / start.elapsed().as_secs_f64();
    println!(
        "{} {} {} {} {}",
        percentile(&mut dns, 0.5),
        percentile(&mut dns, 0.99),
        percentile(&mut conn, 0.5),
        percentile(&mut conn, 0.99),
        rate
    );
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

/// A query for `bench.corp.test` A with id `id`.
fn dns_query(id: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in NAME.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The first A record's address in an answer (questions skipped by their fixed form).
fn first_a(answer: &[u8]) -> Option<IpAddr> {
    let message = hickory_proto::op::Message::from_vec(answer).ok()?;
    message.answers().iter().find_map(|r| match r.data() {
        hickory_proto::rr::RData::A(a) => Some(IpAddr::V4(a.0)),
        _ => None,
    })
}

/// A resolver on 127.0.0.1 answering every A question with 127.0.0.1 (TTL 600).
fn start_resolver() -> SocketAddr {
    TestResolver::loopback(600).unwrap().addr
}

/// An HTTP server on 127.0.0.1: answers a request head at once, or, for an upload,
/// after reading its body.
fn start_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let length: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut left = length;
                let mut buf = vec![0u8; 1 << 16];
                while left > 0 {
                    let got = stream.read(&mut buf).unwrap_or(0);
                    if got == 0 {
                        return;
                    }
                    left = left.saturating_sub(got);
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            });
        }
    });
    addr
}
