//! Helpers for the kernel tests: a test cgroup, loopback listeners, the probe.
//!
//! These tests need root, cgroup v2 and a kernel with cgroup BPF; they fail (never skip)
//! when those are missing. Traffic goes only to 127.0.0.0/8 and ::1.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use egress_check::{PortRange, Protocol};
use egress_enforce::cgroup;
use egress_enforce::loader::{self, AttachConfig, Attachment};
use egress_enforce::rules::{compile, AllowRule};
use egress_enforce::sandbox::{CgroupJoin, Confinement};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn unique(prefix: &str) -> String {
    format!(
        "test-{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn assert_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the kernel tests must run as root (they load eBPF and create cgroups)"
    );
}

/// A cgroup under `<cgroup2 root>/egc-test/`, removed on drop.
pub struct TestCgroup {
    pub path: PathBuf,
}

impl TestCgroup {
    pub fn new(name: &str) -> TestCgroup {
        assert_root();
        let path = cgroup::resolve(&format!("egc-test/{name}")).expect("cgroup2 root");
        cgroup::create(&path).expect("create test cgroup");
        TestCgroup { path }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = cgroup::remove(&self.path);
    }
}

/// An attachment, detached on drop.
pub struct TestAttachment {
    pub name: String,
    pub attachment: Option<Attachment>,
}

impl TestAttachment {
    pub fn new(name: &str, cgroup: &TestCgroup, rules: &[AllowRule]) -> TestAttachment {
        let contents = compile(rules).expect("compile rules");
        let attachment = loader::attach(
            &AttachConfig {
                name: name.to_string(),
                agent_id: 7,
                cgroup: cgroup.path.clone(),
                flags: 0,
            },
            &contents,
        )
        .expect("attach the eBPF program");
        TestAttachment {
            name: name.to_string(),
            attachment: Some(attachment),
        }
    }

    pub fn get(&mut self) -> &mut Attachment {
        self.attachment.as_mut().unwrap()
    }
}

impl Drop for TestAttachment {
    fn drop(&mut self) {
        self.attachment = None;
        let _ = loader::detach(&self.name);
    }
}

/// Loopback listeners on ephemeral ports.
pub struct Listeners {
    pub tcp: Vec<TcpListener>,
    pub udp: Vec<UdpSocket>,
}

impl Listeners {
    pub fn tcp(&mut self, addr: &str) -> SocketAddr {
        let l = TcpListener::bind(addr).expect("bind tcp listener");
        let a = l.local_addr().unwrap();
        self.tcp.push(l);
        a
    }
    pub fn udp(&mut self, addr: &str) -> SocketAddr {
        let s = UdpSocket::bind(addr).expect("bind udp socket");
        let a = s.local_addr().unwrap();
        self.udp.push(s);
        a
    }
}

pub fn listeners() -> Listeners {
    Listeners {
        tcp: Vec::new(),
        udp: Vec::new(),
    }
}

pub fn allow(addr: SocketAddr, prefix: u8, protocol: Protocol) -> AllowRule {
    AllowRule {
        network: ipnet::IpNet::new(addr.ip(), prefix).unwrap().trunc(),
        protocol,
        ports: PortRange {
            start: addr.port(),
            end: addr.port(),
        },
        exception_slot: 0,
    }
}

pub fn probe_bin() -> &'static str {
    env!("CARGO_BIN_EXE_egc-netprobe")
}

/// Runs the probe (optionally inside a cgroup) and returns target → result.
pub fn probe(cgroup: Option<&TestCgroup>, targets: &[String]) -> BTreeMap<String, String> {
    let mut command = Command::new(probe_bin());
    command.args(targets);
    if let Some(cg) = cgroup {
        let confinement = Confinement {
            cgroup: Some(CgroupJoin::open(&cg.path).unwrap()),
            ..Confinement::default()
        };
        confinement.apply_to(&mut command);
    }
    let output = command.output().expect("run egc-netprobe");
    parse_probe(&String::from_utf8_lossy(&output.stdout))
}

pub fn parse_probe(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|v| {
            (
                v["target"].as_str().unwrap_or("").to_string(),
                v["result"].as_str().unwrap_or("missing").to_string(),
            )
        })
        .collect()
}

pub fn target(kind: &str, addr: SocketAddr) -> String {
    format!("{kind}:{addr}")
}

/// `[::ffff:a.b.c.d]:port` for an IPv4 socket address.
pub fn mapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
        v6 => v6,
    }
}

/// Asserts each target's result, printing all results on failure.
pub fn expect(results: &BTreeMap<String, String>, expected: &[(String, &str)]) {
    for (target, want) in expected {
        let got = results.get(target).map(String::as_str).unwrap_or("missing");
        assert_eq!(
            got, *want,
            "target {target}: expected {want}, got {got}; all results: {results:#?}"
        );
    }
}

pub fn tempfile_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("egc-run-test-{}", unique("out")))
}

/// Runs `f` with the process's stdout redirected to `file` (the child inherits it).
pub fn with_stdout<T>(file: std::fs::File, f: impl FnOnce() -> T) -> T {
    use std::os::fd::AsRawFd;
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    // SAFETY: dup/dup2 on valid descriptors; stdout is restored before returning.
    unsafe {
        let saved = libc::dup(1);
        libc::dup2(file.as_raw_fd(), 1);
        let out = f();
        libc::dup2(saved, 1);
        libc::close(saved);
        out
    }
}

/// Waits (up to 5 s) for the attachment of an `egc run` of `agent` started by this process,
/// with its state saved (the pins appear before the state), and returns its name.
pub fn wait_for_run_attachment(agent: &str) -> String {
    let mine = format!("run-{agent}-{}", std::process::id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if egress_enforce::loader::list()
            .into_iter()
            .any(|n| n == mine && egress_enforce::state::load(&n).is_ok())
        {
            return mine;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no attachment appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
