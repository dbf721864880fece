//! Real enforcement: generated seccomp profiles are installed with libseccomp in a child
//! process, and generated nftables rulesets are loaded in a network namespace with veth
//! peers and local listeners. Needs root, libseccomp, `nft` and `ip`: these tests fail,
//! never skip, when they cannot run.
//!
//! Children are this test binary run again with `EGC_CHILD` set: the `child_entry` test
//! does the child's work when (and only when) it is set.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use egress_check::{CheckedPolicy, Protocol};
use egress_lower::seccomp::{Expectation, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_UNIX};
use egress_lower::{Target, TargetConfig};
use egress_sets::{Connection, ConnectionSet};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};

use crate::common::{load_case, repo_root};

// ------------------------------------------------------------------------------------
// Child processes.

fn child_command(role: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "kernel::child_entry",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env("EGC_CHILD", role);
    cmd
}

/// Runs a child's work when this process was started as one; a no-op otherwise.
pub fn child_entry() {
    let Ok(role) = std::env::var("EGC_CHILD") else {
        return;
    };
    match role.as_str() {
        "seccomp" => seccomp_child(),
        "listen" => listen_child(),
        "probe" => probe_child(),
        other => panic!("unknown child role {other}"),
    }
}

fn output_lines(mut cmd: Command, what: &str) -> Vec<String> {
    let out = cmd.stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "{what} failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // libtest may print `test NAME ... ` on the same line before the child's output.
        .filter_map(|l| l.split_once("EGC ").map(|(_, rest)| rest.to_string()))
        .collect()
}

// ------------------------------------------------------------------------------------
// seccomp

/// (name, family, type) of the socket calls each profile is probed with.
const SOCKET_PROBES: &[(&str, u64, SockType)] = &[
    ("unix-stream", AF_UNIX, SockType::Stream),
    ("inet-stream", AF_INET, SockType::Stream),
    ("inet-dgram", AF_INET, SockType::Datagram),
    ("inet-raw", AF_INET, SockType::Raw),
    ("inet6-stream", AF_INET6, SockType::Stream),
    ("inet6-dgram", AF_INET6, SockType::Datagram),
    ("packet-raw", AF_PACKET, SockType::Raw),
    ("netlink-dgram", AF_NETLINK, SockType::Datagram),
];

fn family(n: u64) -> AddressFamily {
    match n {
        AF_UNIX => AddressFamily::Unix,
        AF_INET => AddressFamily::Inet,
        AF_INET6 => AddressFamily::Inet6,
        AF_PACKET => AddressFamily::Packet,
        AF_NETLINK => AddressFamily::Netlink,
        _ => unreachable!(),
    }
}

fn probe_sockets() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, fam, ty) in SOCKET_PROBES {
        let protocol = match (*fam, ty) {
            (AF_INET | AF_INET6, SockType::Raw) => Some(SockProtocol::Icmp),
            (AF_PACKET, _) => Some(SockProtocol::EthAll),
            _ => None,
        };
        let result = match socket(family(*fam), *ty, SockFlag::SOCK_CLOEXEC, protocol) {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{e:?}"),
        };
        out.insert(name.to_string(), result);
    }
    out
}

fn file_io() -> String {
    let path = std::env::var("EGC_FILE").unwrap();
    let result = (|| -> std::io::Result<()> {
        std::fs::write(&path, b"egress")?;
        let mut text = String::new();
        std::fs::File::open(&path)?.read_to_string(&mut text)?;
        if text != "egress" {
            return Err(std::io::Error::other("read back something else"));
        }
        Ok(())
    })();
    match result {
        Ok(()) => "ok".into(),
        Err(e) => format!("{:?}", e.raw_os_error()),
    }
}

fn install_profile(path: &str) {
    use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    let errno = profile["defaultErrnoRet"].as_i64().unwrap() as i32;
    let mut ctx = ScmpFilterContext::new(ScmpAction::Errno(errno)).unwrap();
    for rule in profile["syscalls"].as_array().unwrap() {
        assert_eq!(rule["action"], "SCMP_ACT_ALLOW");
        let mut conditions = Vec::new();
        for a in rule["args"].as_array().into_iter().flatten() {
            let index = a["index"].as_u64().unwrap() as u32;
            let value = a["value"].as_u64().unwrap();
            let cmp = match a["op"].as_str().unwrap() {
                "SCMP_CMP_EQ" => ScmpArgCompare::new(index, ScmpCompareOp::Equal, value),
                "SCMP_CMP_MASKED_EQ" => ScmpArgCompare::new(
                    index,
                    ScmpCompareOp::MaskedEqual(value),
                    a["valueTwo"].as_u64().unwrap(),
                ),
                other => panic!("operator {other} not emitted by egc"),
            };
            conditions.push(cmp);
        }
        for name in rule["names"].as_array().unwrap() {
            // Like runc: a name unknown on this architecture is skipped.
            let Ok(syscall) = ScmpSyscall::from_name(name.as_str().unwrap()) else {
                continue;
            };
            ctx.add_rule_conditional(ScmpAction::Allow, syscall, &conditions)
                .unwrap();
        }
    }
    ctx.load().unwrap();
}

fn seccomp_child() {
    let profile = std::env::var("EGC_PROFILE").unwrap();
    // The filter applies to the thread that installs it; results come back to this
    // (unfiltered) thread, which prints them.
    let results = std::thread::spawn(move || {
        install_profile(&profile);
        let mut results = probe_sockets();
        results.insert("file-io".into(), file_io());
        results
    })
    .join()
    .unwrap();
    for (k, v) in results {
        println!("EGC {k} {v}");
    }
}

fn native_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else {
        "x86_64"
    }
}

fn seccomp_cases() -> Vec<(String, CheckedPolicy)> {
    let root = repo_root();
    let mut out = Vec::new();
    for dir in [
        root.join("tests/lower/seccomp-layers"),
        root.join("examples/mesh-vault-telemetry"),
    ] {
        let (_, policy) = load_case(&dir);
        out.push((dir.display().to_string(), policy.unwrap()));
    }
    out
}

pub fn seccomp_profiles_are_enforced_by_the_kernel() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the kernel tests need root"
    );
    // Control: without a filter, as root, every probed socket can be created, so an EPERM
    // below comes from the profile.
    let control = probe_sockets();
    for (name, result) in &control {
        assert_eq!(result, "ok", "control probe {name} failed without a filter");
    }
    let tmp = tempdir("seccomp");
    let mut profiles_run = 0;
    let mut saw_denied_inet = false;
    let mut saw_file_io = false;
    let mut saw_unix_allowed = false;
    let mut saw_unix_denied = false;
    for (case, policy) in seccomp_cases() {
        let build =
            egress_lower::build(&policy, &[Target::Seccomp], &TargetConfig::default(), true)
                .unwrap_or_else(|e| panic!("{case}: {e:?}"));
        for agent in &policy.agents {
            let exp = Expectation::of(&policy, agent);
            let stem: String = agent
                .name
                .local
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            let file = format!("seccomp/{stem}.{}.json", native_arch());
            let text = build
                .files
                .get(&file)
                .unwrap_or_else(|| panic!("{case}: no {file}"));
            let path = tmp.join(file.replace('/', "_"));
            std::fs::write(&path, text).unwrap();
            let mut cmd = child_command("seccomp");
            cmd.env("EGC_PROFILE", &path)
                .env("EGC_FILE", tmp.join(format!("{stem}.data")));
            let lines = output_lines(cmd, &format!("seccomp child for {}", agent.name.local));
            let results: BTreeMap<String, String> = lines
                .iter()
                .filter_map(|l| l.split_once(' '))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(results.len(), SOCKET_PROBES.len() + 1, "{lines:?}");
            for (name, fam, ty) in SOCKET_PROBES {
                let raw_type = match ty {
                    SockType::Stream => 1,
                    SockType::Datagram => 2,
                    _ => 3,
                };
                let protocol = match (*fam, ty) {
                    (AF_INET | AF_INET6, SockType::Raw) => 1,
                    (AF_PACKET, _) => 0x0300,
                    _ => 0,
                };
                let want = exp.socket_allowed(*fam, raw_type | 0o2000000, protocol);
                let got = &results[*name];
                if want {
                    assert_eq!(got, "ok", "{}: {name} should be allowed", agent.name.local);
                } else {
                    assert_eq!(
                        got, "EPERM",
                        "{}: {name} should fail with EPERM",
                        agent.name.local
                    );
                    if *fam == AF_INET {
                        saw_denied_inet = true;
                    }
                }
            }
            let file_syscalls = ["openat", "read", "write", "close"];
            if file_syscalls.iter().all(|s| exp.syscalls.contains(*s)) {
                assert_eq!(results["file-io"], "ok", "{}: file I/O", agent.name.local);
                saw_file_io = true;
            }
            if exp.unix {
                saw_unix_allowed = true;
            } else {
                assert_eq!(results["unix-stream"], "EPERM", "{}", agent.name.local);
                saw_unix_denied = true;
            }
            profiles_run += 1;
        }
    }
    assert!(profiles_run >= 4, "only {profiles_run} profiles were run");
    assert!(saw_denied_inet, "no profile denied AF_INET");
    assert!(saw_file_io, "no profile exercised file I/O");
    assert!(saw_unix_allowed, "no profile allowed AF_UNIX");
    assert!(saw_unix_denied, "no profile denied AF_UNIX");
    let _ = std::fs::remove_dir_all(&tmp);
}

fn tempdir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("egc-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ------------------------------------------------------------------------------------
// nftables

const AGENT_UID: u32 = 4242;
const OTHER_UID: u32 = 4343;
const SERVER_V4: [&str; 4] = ["10.200.1.2", "10.200.1.3", "10.200.1.9", "10.200.1.20"];
const SERVER_V6: [&str; 2] = ["fd00:200::2", "fd00:200::3"];
const TCP_PORTS: [u16; 3] = [8000, 8001, 8002];
const UDP_PORT: u16 = 9000;
/// Every child and probe stops by itself after at most this long.
const LISTEN_FOR: Duration = Duration::from_secs(60);
const PROBE_TIMEOUT: Duration = Duration::from_millis(400);

fn listen_child() {
    let deadline = Instant::now() + LISTEN_FOR;
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for addr in SERVER_V4.iter().chain(SERVER_V6.iter()) {
        let ip: IpAddr = addr.parse().unwrap();
        for port in TCP_PORTS {
            let l = TcpListener::bind(SocketAddr::new(ip, port)).unwrap();
            l.set_nonblocking(true).unwrap();
            tcp.push(l);
        }
        let u = UdpSocket::bind(SocketAddr::new(ip, UDP_PORT)).unwrap();
        u.set_nonblocking(true).unwrap();
        udp.push(u);
    }
    println!("EGC ready");
    std::io::stdout().flush().unwrap();
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        for l in &tcp {
            if let Ok((mut s, _)) = l.accept() {
                let _ = s.write_all(b"hi");
            }
        }
        for u in &udp {
            if let Ok((n, from)) = u.recv_from(&mut buf) {
                let _ = u.send_to(&buf[..n], from);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn probe_one(protocol: &str, addr: SocketAddr) -> bool {
    match protocol {
        "tcp" => TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
            .and_then(|mut s| {
                s.set_read_timeout(Some(PROBE_TIMEOUT))?;
                let mut b = [0u8; 2];
                s.read_exact(&mut b)
            })
            .is_ok(),
        _ => {
            let bind: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0".parse().unwrap()
            } else {
                "[::]:0".parse().unwrap()
            };
            let Ok(u) = UdpSocket::bind(bind) else {
                return false;
            };
            let _ = u.set_read_timeout(Some(PROBE_TIMEOUT));
            let mut b = [0u8; 8];
            u.send_to(b"ping", addr).is_ok() && u.recv_from(&mut b).is_ok()
        }
    }
}

fn probe_child() {
    let probes = std::env::var("EGC_PROBES").unwrap();
    for probe in probes.split(';') {
        let (protocol, addr) = probe.split_once(' ').unwrap();
        let ok = probe_one(protocol, addr.parse().unwrap());
        println!("EGC {probe} {}", if ok { "ok" } else { "blocked" });
    }
}

fn all_probes() -> Vec<(Protocol, SocketAddr)> {
    let mut out = Vec::new();
    for addr in SERVER_V4.iter().chain(SERVER_V6.iter()) {
        let ip: IpAddr = addr.parse().unwrap();
        for port in TCP_PORTS {
            out.push((Protocol::Tcp, SocketAddr::new(ip, port)));
        }
        out.push((Protocol::Udp, SocketAddr::new(ip, UDP_PORT)));
    }
    out
}

fn allowed_by(set: &ConnectionSet, protocol: Protocol, addr: SocketAddr) -> bool {
    set.contains(&Connection {
        target: egress_sets::Target::Ip(addr.ip()),
        port: addr.port(),
        protocol,
    })
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run `ip` (apt package iproute2): {e}"));
    assert!(status.success(), "ip {args:?} failed");
}

/// Two network namespaces joined by a veth pair; removed on drop.
struct Netns {
    agent: String,
    server: String,
    children: Vec<Child>,
}

impl Netns {
    fn new() -> Netns {
        let id = std::process::id() % 100_000;
        let n = Netns {
            agent: format!("egc-a-{id}"),
            server: format!("egc-s-{id}"),
            children: Vec::new(),
        };
        ip(&["netns", "add", &n.agent]);
        ip(&["netns", "add", &n.server]);
        let (va, vs) = (format!("ega{id}"), format!("egs{id}"));
        ip(&[
            "link", "add", &va, "netns", &n.agent, "type", "veth", "peer", "name", &vs, "netns",
            &n.server,
        ]);
        let exec = |ns: &str, args: &[&str]| {
            let mut all = vec!["netns", "exec", ns, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        exec(&n.agent, &["link", "set", "lo", "up"]);
        exec(&n.server, &["link", "set", "lo", "up"]);
        exec(&n.agent, &["addr", "add", "10.200.1.1/24", "dev", &va]);
        exec(
            &n.agent,
            &["addr", "add", "fd00:200::1/64", "dev", &va, "nodad"],
        );
        for a in SERVER_V4 {
            exec(&n.server, &["addr", "add", &format!("{a}/24"), "dev", &vs]);
        }
        for a in SERVER_V6 {
            exec(
                &n.server,
                &["addr", "add", &format!("{a}/64"), "dev", &vs, "nodad"],
            );
        }
        exec(&n.agent, &["link", "set", &va, "up"]);
        exec(&n.server, &["link", "set", &vs, "up"]);
        n
    }

    fn exec(&self, ns: &str, role: &str, exe: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(exe)
            .args([
                "--exact",
                "kernel::child_entry",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("EGC_CHILD", role)
            .current_dir("/");
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.agent])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.server])
            .status();
    }
}

fn run_probes(
    net: &Netns,
    exe: &Path,
    uid: u32,
    probes: &[(Protocol, SocketAddr)],
) -> BTreeMap<String, bool> {
    let spec: Vec<String> = probes
        .iter()
        .map(|(p, a)| format!("{} {a}", p.as_str()))
        .collect();
    // `ip netns exec` needs root; the probe drops to `uid` after entering the namespace.
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &net.agent, "setpriv"])
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(exe)
        .args([
            "--exact",
            "kernel::child_entry",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("EGC_CHILD", "probe")
        .env("EGC_PROBES", spec.join(";"))
        .current_dir("/");
    output_lines(cmd, "probe child")
        .into_iter()
        .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_string(), v == "ok")))
        .collect()
}

pub fn nftables_rulesets_are_enforced_by_the_kernel() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the kernel tests need root"
    );
    let (_, policy) = load_case(&repo_root().join("tests/lower/nft-kernel"));
    let policy = policy.unwrap();
    let build = egress_lower::build(&policy, &[Target::Nftables], &TargetConfig::default(), true)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let ruleset = &build.files["nftables/egress.nft"];
    let agent = policy.agent_by_name("prober").unwrap();
    let agent_set = egress_lower::expected::agent_set(&policy, agent);

    // The test binary, copied where any uid may run it.
    let tmp = tempdir("nft");
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let exe = tmp.join("egc-probe");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let rules_path = tmp.join("egress.nft");
    std::fs::write(&rules_path, ruleset).unwrap();

    let mut net = Netns::new();
    let mut listener = net.exec(&net.server, "listen", &exe);
    listener.stdout(Stdio::piped());
    let mut child = listener.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    net.children.push(child);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let ready = lines.find(|l| l.as_ref().map_or(true, |l| l.contains("EGC ready")));
    assert!(matches!(ready, Some(Ok(_))), "the listener did not start");

    let probes = all_probes();
    // Control: with no ruleset every probe succeeds, so a failure below is the ruleset's.
    // IPv6 neighbour discovery may need a moment after the links come up: retry, bounded.
    let mut before = BTreeMap::new();
    for _ in 0..20 {
        before = run_probes(&net, &exe, AGENT_UID, &probes);
        if before.len() == probes.len() && before.values().all(|ok| *ok) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(before.len(), probes.len());
    for (probe, ok) in &before {
        assert!(ok, "control probe {probe} failed without a ruleset");
    }

    let status = Command::new("ip")
        .args(["netns", "exec", &net.agent, "nft", "-f"])
        .arg(&rules_path)
        .status()
        .unwrap_or_else(|e| panic!("cannot run nft (apt package nftables): {e}"));
    assert!(status.success(), "nft -f failed on:\n{ruleset}");

    let after = run_probes(&net, &exe, AGENT_UID, &probes);
    let (mut allowed, mut blocked) = (0, 0);
    for (protocol, addr) in &probes {
        let key = format!("{} {addr}", protocol.as_str());
        let want = allowed_by(&agent_set, *protocol, *addr);
        assert_eq!(
            after[&key], want,
            "agent probe {key}: expected allowed={want}"
        );
        if want {
            allowed += 1
        } else {
            blocked += 1
        }
    }
    assert!(
        allowed >= 3 && blocked >= 3,
        "probes must cover both outcomes ({allowed}/{blocked})"
    );
    // Another uid matches no agent: everything is dropped.
    let other = run_probes(&net, &exe, OTHER_UID, &probes);
    for (probe, ok) in &other {
        assert!(!ok, "uid {OTHER_UID} reached {probe}");
    }
    drop(net);
    let _ = std::fs::remove_dir_all(&tmp);
}
