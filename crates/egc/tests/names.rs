//! The names suite: `egc run` enforcing `host` destinations at run time (DNS gateway,
//! learned addresses, name gate), end to end, with real clients (`/usr/bin/python3`,
//! `/usr/bin/curl`) run as a dynamic user under the policy `tests/names/policy/`.
//!
//! Each trial creates its own network namespace (loopback only), where the test itself
//! serves, from threads that entered the namespace before binding:
//!
//! - DNS on 127.0.0.53:53 (UDP and TCP; the agent's resolver, `dns.systemd_resolved`),
//!   logging every question: api.corp.test A 127.0.0.1 + AAAA ::1 (TTL 1), other.corp.test
//!   the same addresses (shared hosting, not allowed), web.corp.test A 127.0.0.1,
//!   alias.corp.test CNAME evil.test + evil.test A 127.0.0.1, api6.corp.test AAAA ::1
//!   only; anything else NXDOMAIN;
//! - TLS on 127.0.0.1:8443 and [::1]:8443 (a certificate for api.corp.test,
//!   other.corp.test and api6.corp.test from a CA made at test time), answering
//!   `hello <sni>\n` and logging every completed handshake's SNI;
//! - plain HTTP on 127.0.0.1:8080, answering 200 and logging every `Host`.
//!
//! Cases (each checks the client's outcome and the events file, DNS or server logs):
//!
//! 1. `allowed::python`, `allowed::curl`: api.corp.test resolves and TLS to it works, SNI
//!    api.corp.test; no denial.
//! 2. `dns::name-not-allowed`: other.corp.test does not resolve; a `dns` event
//!    `name-not-allowed` with a `host "other.corp.test"` suggestion; the DNS server never
//!    saw the name.
//! 3. `gate::sni-mismatch`: TLS to api.corp.test's learned address with SNI
//!    other.corp.test is closed by the gate (`sni-mismatch`); the TLS server never
//!    completes that handshake. `gate::host-mismatch`: HTTP with `Host: other.corp.test`
//!    to web.corp.test's address gets a 403 whose body is the JSON event.
//!    `gate::ipv4-mapped`: the same through an IPv6 socket to ::ffff:127.0.0.1.
//!    `gate::split-client-hello`: a ClientHello in two writes is read whole (allowed and
//!    refused). `gate::http-request-heads`: an absolute-form target or a second `Host`
//!    naming other.corp.test does not get through; a split request head is read whole.
//!    `gate::name-on-other-port`: api.corp.test and web.corp.test share 127.0.0.1, each
//!    on its own port; each name is refused on the other's port.
//!    `connect::learned-address-only-its-ports`: a learned address is closed to other
//!    ports and to UDP.
//! 4. `ttl::address-closes`: with `--dns-ttl-min 1 --dns-ttl-max 1`, a second connection
//!    to the learned address 3 s later, without resolving again, is refused at `connect`;
//!    an answer whose upstream TTL is 60 reaches the client with TTL 1 at most.
//! 5. `dns::cname-not-allowed`: alias.corp.test (CNAME to evil.test) does not resolve; a
//!    `cname-not-allowed` event names evil.test.
//! 6. `dns::exfil-label`: a query for 60 random hex characters under exfil.test never
//!    reaches the upstream server, and gets a `dns` event.
//! 7. `dns::other-resolver`: a raw query sent to 192.0.2.53:53 is answered by the gateway,
//!    from 192.0.2.53:53, through the upstream server; over TCP too, where
//!    other.corp.test is refused and not forwarded.
//! 8. `audit::let-through-and-suggest`: with `--audit`, other.corp.test resolves and
//!    connects; its events say `audit: true`; stderr says audit mode; `egc suggest`
//!    proposes `host "other.corp.test"` and names the zone that must approve it.
//!    `audit::connection-keeps-its-name`: the audit connection to other.corp.test is
//!    reported by name and port, so that `egc suggest` proposes `host "other.corp.test"`
//!    on port 8443 and no address (cidr) destination.
//! 9. `ipv6::allowed-and-sni-mismatch`: api6.corp.test (AAAA only) over TLS on ::1 works,
//!    and SNI other.corp.test to ::1 is refused by the gate.
//!
//! 10. `attacks::*`: a compromised agent trying to get bytes past the gateway and the
//!     gate (egc's own loopback ports, crafted DNS messages, crafted ClientHellos and
//!     request heads, slowloris, learned addresses on other ports and over UDP and TCP
//!     Fast Open, timing around expiry, floods of queries and connections, names that
//!     try to break or forge events, non-host names under a `**` pattern with the policy
//!     `tests/names/wildcard/`). Besides the client's outcome, they check the servers'
//!     logs: every raw DNS message, every ClientHello the TLS server read (completed or
//!     not), every HTTP request, every datagram to UDP 8443, every TCP connection
//!     accepted. `EGC_NAMES_KNOWN_FAILING=1` adds the trials of bugs not fixed yet.
//!
//! `EGC_NAMES_VERBOSE=1` prints every run's output, events and the servers' logs.
//!
//! Every trial also fails when `egc` panics, prints an error of its own, or exits with a
//! code other than the client's expected one.
//!
//! Needs root (network namespaces, eBPF, cgroups), `ip`, `nsenter`, `/usr/bin/python3`
//! and `/usr/bin/curl`; like the attack suite, it fails, never skips, when they are
//! missing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const EGC: &str = env!("CARGO_BIN_EXE_egc");
const PYTHON: &str = "/usr/bin/python3";
const CURL: &str = "/usr/bin/curl";
const AGENT: &str = "bot";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn policy_dir() -> PathBuf {
    repo_root().join("tests/names/policy")
}

static TRIALS: AtomicU32 = AtomicU32::new(0);

// ---------------------------------------------------------------------------------------
// Certificates, and a directory the dynamic user can read

struct Pki {
    /// `/tmp/egc-names-<pid>` (0755): the CA file and every trial's files.
    dir: PathBuf,
    ca_file: PathBuf,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> Result<&'static Pki, String> {
    static PKI: OnceLock<Result<Pki, String>> = OnceLock::new();
    PKI.get_or_init(make_pki).as_ref().map_err(Clone::clone)
}

fn make_pki() -> Result<Pki, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let e = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "egc names test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).map_err(e)?;
    let key = KeyPair::generate().map_err(e)?;
    let mut params = CertificateParams::new(vec![
        "api.corp.test".to_string(),
        "other.corp.test".to_string(),
        "api6.corp.test".to_string(),
    ])
    .map_err(e)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "api.corp.test");
    params.is_ca = IsCa::NoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(e)?;

    let dir = std::env::temp_dir().join(format!("egc-names-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    let ca_file = dir.join("ca.pem");
    fs::write(&ca_file, ca.pem()).map_err(|e| e.to_string())?;
    fs::set_permissions(&ca_file, fs::Permissions::from_mode(0o644)).map_err(|e| e.to_string())?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = vec![cert.der().clone(), ca.der().clone()];
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(
        rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
    );
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| e.to_string())?;
    Ok(Pki {
        dir,
        ca_file,
        server: Arc::new(server),
    })
}

// ---------------------------------------------------------------------------------------
// The servers

/// What the servers saw.
#[derive(Default)]
struct Log {
    /// `name TYPE udp|tcp` for every DNS question (lower case, no trailing dot).
    dns: Mutex<Vec<String>>,
    /// The SNI of every completed TLS handshake.
    tls: Mutex<Vec<String>>,
    /// The `Host` of every HTTP request.
    http: Mutex<Vec<String>>,
    /// The request target of every HTTP request.
    http_targets: Mutex<Vec<String>>,
    /// The SNI of every ClientHello the TLS server read (completed handshake or not).
    tls_hello: Mutex<Vec<String>>,
    /// Every DNS message the server received, as received.
    dns_raw: Mutex<Vec<Vec<u8>>>,
    /// Every datagram the UDP listeners on 127.0.0.1:8443 and [::1]:8443 received.
    udp: Mutex<Vec<Vec<u8>>>,
    /// TCP connections the TLS and HTTP servers accepted.
    accepted: AtomicU32,
}

impl Log {
    fn dns(&self) -> Vec<String> {
        self.dns.lock().unwrap().clone()
    }
    fn tls(&self) -> Vec<String> {
        self.tls.lock().unwrap().clone()
    }
    fn http(&self) -> Vec<String> {
        self.http.lock().unwrap().clone()
    }
    fn http_targets(&self) -> Vec<String> {
        self.http_targets.lock().unwrap().clone()
    }
    fn tls_hello(&self) -> Vec<String> {
        self.tls_hello.lock().unwrap().clone()
    }
    fn dns_raw(&self) -> Vec<Vec<u8>> {
        self.dns_raw.lock().unwrap().clone()
    }
    fn udp(&self) -> Vec<Vec<u8>> {
        self.udp.lock().unwrap().clone()
    }
    fn accepted(&self) -> u32 {
        self.accepted.load(Ordering::SeqCst)
    }
    fn dns_saw(&self, name: &str) -> bool {
        self.dns().iter().any(|l| l.split(' ').next() == Some(name))
    }
    fn describe(&self) -> String {
        format!(
            "DNS server log: {:?}\nTLS handshakes (SNI): {:?}\nTLS ClientHellos read (SNI): {:?}\nHTTP hosts: {:?}\nHTTP targets: {:?}\nUDP datagrams to 8443: {}\nTCP connections accepted: {}",
            self.dns(),
            self.tls(),
            self.tls_hello(),
            self.http(),
            self.http_targets(),
            self.udp().len(),
            self.accepted()
        )
    }
}

fn dns_name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn record(owner: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(dns_name(owner), ttl, data)
}

/// The zone (see the header).
fn zone(q: &Query) -> (ResponseCode, Vec<Record>) {
    let qname = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let want_a = q.query_type() == RecordType::A;
    let want_aaaa = q.query_type() == RecordType::AAAA;
    let a = |owner: &str, ttl| record(owner, ttl, RData::A(A(Ipv4Addr::LOCALHOST)));
    let aaaa = |owner: &str, ttl| record(owner, ttl, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)));
    let mut records = Vec::new();
    match qname.as_str() {
        // The examples' names (the walkthrough trial), and api/other.
        "api.corp.test"
        | "other.corp.test"
        | "control-plane.corp.internal"
        | "registry.npm.example"
        | "pypi.mirror.internal"
        | "registry.npmjs.test" => {
            let owner = format!("{qname}.");
            let ttl = if qname.ends_with(".corp.test") { 1 } else { 60 };
            if want_a {
                records.push(a(&owner, ttl));
            }
            if want_aaaa {
                records.push(aaaa(&owner, ttl));
            }
        }
        "web.corp.test" => {
            if want_a {
                records.push(a("web.corp.test.", 60));
            }
        }
        "api6.corp.test" => {
            if want_aaaa {
                records.push(aaaa("api6.corp.test.", 60));
            }
        }
        "alias.corp.test" => {
            records.push(record(
                "alias.corp.test.",
                60,
                RData::CNAME(CNAME(dns_name("evil.test."))),
            ));
            if want_a {
                records.push(a("evil.test.", 60));
            }
        }
        "evil.test" => {
            if want_a {
                records.push(a("evil.test.", 60));
            }
        }
        // Everything under wild.test (the wildcard policy of the attack trials).
        n if n.ends_with(".wild.test") => {
            if want_a {
                records.push(a(&format!("{n}."), 60));
            }
        }
        _ => return (ResponseCode::NXDomain, records),
    }
    (ResponseCode::NoError, records)
}

fn dns_answer(query: &[u8], log: &Log, transport: &str) -> Option<Vec<u8>> {
    log.dns_raw.lock().unwrap().push(query.to_vec());
    let q = Message::from_vec(query).ok()?;
    let question = q.queries().first()?.clone();
    log.dns.lock().unwrap().push(format!(
        "{} {} {transport}",
        question
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase(),
        question.query_type()
    ));
    let (code, records) = zone(&question);
    let mut m = Message::new();
    m.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(q.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true)
        .set_response_code(code);
    m.add_query(question);
    m.add_answers(records);
    m.to_vec().ok()
}

fn read_framed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut msg).ok()?;
    Some(msg)
}

fn serve_dns_tcp(mut stream: TcpStream, log: &Log) {
    while let Some(query) = read_framed(&mut stream) {
        let Some(reply) = dns_answer(&query, log, "tcp") else {
            return;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        if stream.write_all(&len.to_be_bytes()).is_err() || stream.write_all(&reply).is_err() {
            return;
        }
    }
}

/// Reads until the end of an HTTP request head, EOF, an error or the timeout.
fn read_head(stream: &mut impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 65536 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

fn serve_tls(stream: TcpStream, config: Arc<rustls::ServerConfig>, log: &Log) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, stream);
    let mut hello_seen = false;
    while tls.conn.is_handshaking() {
        let io = tls.conn.complete_io(&mut tls.sock);
        if !hello_seen {
            if let Some(sni) = tls.conn.server_name() {
                hello_seen = true;
                log.tls_hello.lock().unwrap().push(sni.to_string());
            }
        }
        if io.is_err() {
            return;
        }
    }
    let sni = tls.conn.server_name().unwrap_or("").to_string();
    log.tls.lock().unwrap().push(sni.clone());
    // A client that sends a request first (curl) has it read, so that closing does not
    // reset the connection under the answer.
    let _ = tls.sock.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = read_head(&mut tls);
    let _ = tls.write_all(format!("hello {sni}\n").as_bytes());
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.sock.shutdown(Shutdown::Write);
    let _ = tls.sock.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 1024];
    while matches!(tls.sock.read(&mut buf), Ok(n) if n > 0) {}
}

/// Answers 200 to every request on the connection (keep-alive unless the client says
/// `Connection: close`), logging each one's `Host` values (joined by `,`) and target.
fn serve_http(mut stream: TcpStream, log: &Log) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break Some(at + 4);
            }
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break None,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let Some(end) = end else {
            return;
        };
        let head: Vec<u8> = pending.drain(..end).collect();
        let text = String::from_utf8_lossy(&head);
        let hosts: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("host").then(|| v.trim().to_string())
            })
            .collect();
        let target = text.split(' ').nth(1).unwrap_or_default().to_string();
        log.http.lock().unwrap().push(hosts.join(","));
        log.http_targets.lock().unwrap().push(target);
        let close = text.to_ascii_lowercase().contains("connection: close");
        let reply: &[u8] = if close {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
        };
        if stream.write_all(reply).is_err() {
            return;
        }
        if close {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

/// Accepts until `stop`, one thread per connection.
fn accept_loop(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    handle: impl Fn(TcpStream) + Send + Sync + Clone + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = listener.set_nonblocking(true);
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let handle = handle.clone();
                    std::thread::spawn(move || handle(stream));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

struct Sockets {
    dns_udp: UdpSocket,
    dns_tcp: TcpListener,
    tls4: TcpListener,
    tls6: TcpListener,
    http: TcpListener,
    /// Plain HTTP on 443, IPv4 and IPv6: the examples' servers (walkthrough trial).
    http443: [TcpListener; 2],
    /// UDP on 127.0.0.1:8443 and [::1]:8443, logging every datagram (attack trials).
    udp8443: [UdpSocket; 2],
}

/// Binds every server socket inside the network namespace: a thread that entered it
/// creates them (a socket stays in the namespace it was created in).
fn bind_in(netns: &str) -> Result<Sockets, String> {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || -> Result<Sockets, String> {
        let file = fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns {path}: {e}"))?;
        let bind = |addr: &str| TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"));
        Ok(Sockets {
            dns_udp: UdpSocket::bind("127.0.0.53:53")
                .map_err(|e| format!("bind udp 127.0.0.53:53: {e}"))?,
            dns_tcp: bind("127.0.0.53:53")?,
            tls4: bind("127.0.0.1:8443")?,
            tls6: bind("[::1]:8443")?,
            http: bind("127.0.0.1:8080")?,
            http443: [bind("127.0.0.1:443")?, bind("[::1]:443")?],
            udp8443: [
                UdpSocket::bind("127.0.0.1:8443").map_err(|e| format!("bind udp 8443: {e}"))?,
                UdpSocket::bind("[::1]:8443").map_err(|e| format!("bind udp [::1]:8443: {e}"))?,
            ],
        })
    })
    .join()
    .map_err(|_| "the namespace thread panicked".to_string())?
}

// ---------------------------------------------------------------------------------------
// The world a trial runs in

fn run_quiet(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A network namespace with `lo` up, the servers in it, and a directory for the trial.
struct World {
    netns: String,
    dir: PathBuf,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    runs: u32,
}

impl World {
    fn new(name: &str) -> Result<World, String> {
        let pki = pki()?;
        let n = TRIALS.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}-{n}", std::process::id());
        let netns = format!("egc-names-{id}");
        let dir = pki
            .dir
            .join(format!("trial-{}-{n}", name.replace("::", "-")));
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        run_quiet(Command::new("ip").args(["netns", "add", &netns]))?;
        let mut world = World {
            netns: netns.clone(),
            dir,
            log: Arc::new(Log::default()),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            runs: 0,
        };
        run_quiet(Command::new("ip").args(["-n", &netns, "link", "set", "lo", "up"]))?;
        let sockets = bind_in(&netns)?;

        let (log, stop) = (Arc::clone(&world.log), Arc::clone(&world.stop));
        let udp = sockets.dns_udp;
        world.threads.push(std::thread::spawn(move || {
            let _ = udp.set_read_timeout(Some(Duration::from_millis(50)));
            let mut buf = vec![0u8; 65535];
            while !stop.load(Ordering::SeqCst) {
                if let Ok((n, from)) = udp.recv_from(&mut buf) {
                    if let Some(reply) = dns_answer(&buf[..n], &log, "udp") {
                        let _ = udp.send_to(&reply, from);
                    }
                }
            }
        }));
        for udp in sockets.udp8443 {
            let (log, stop) = (Arc::clone(&world.log), Arc::clone(&world.stop));
            world.threads.push(std::thread::spawn(move || {
                let _ = udp.set_read_timeout(Some(Duration::from_millis(50)));
                let mut buf = vec![0u8; 65535];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((n, _)) = udp.recv_from(&mut buf) {
                        log.udp.lock().unwrap().push(buf[..n].to_vec());
                    }
                }
            }));
        }
        let log = Arc::clone(&world.log);
        world.threads.push(accept_loop(
            sockets.dns_tcp,
            Arc::clone(&world.stop),
            move |s| serve_dns_tcp(s, &log),
        ));
        for listener in [sockets.tls4, sockets.tls6] {
            let log = Arc::clone(&world.log);
            let config = Arc::clone(&pki.server);
            world
                .threads
                .push(accept_loop(listener, Arc::clone(&world.stop), move |s| {
                    log.accepted.fetch_add(1, Ordering::SeqCst);
                    serve_tls(s, Arc::clone(&config), &log)
                }));
        }
        let [h4, h6] = sockets.http443;
        for listener in [sockets.http, h4, h6] {
            let log = Arc::clone(&world.log);
            world
                .threads
                .push(accept_loop(listener, Arc::clone(&world.stop), move |s| {
                    log.accepted.fetch_add(1, Ordering::SeqCst);
                    serve_http(s, &log)
                }));
        }
        Ok(world)
    }

    /// `egc run tests/names/policy --agent bot --dynamic-user --events FILE EXTRA --
    /// COMMAND` inside the namespace.
    fn egc_run(&mut self, extra: &[&str], command: &[&str]) -> Result<Run, String> {
        self.egc_run_policy(&policy_dir(), AGENT, extra, command)
    }

    /// `egc run POLICY --agent AGENT --dynamic-user --events FILE EXTRA -- COMMAND`.
    fn egc_run_policy(
        &mut self,
        policy: &Path,
        agent: &str,
        extra: &[&str],
        command: &[&str],
    ) -> Result<Run, String> {
        self.runs += 1;
        let events = self.dir.join(format!("events-{}.jsonl", self.runs));
        let stdout_path = self.dir.join(format!("stdout-{}", self.runs));
        let stderr_path = self.dir.join(format!("stderr-{}", self.runs));
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.netns))
            .arg(EGC)
            .arg("run")
            .arg(policy)
            .args(["--agent", agent, "--dynamic-user", "--events"])
            .arg(&events)
            .args(extra)
            .arg("--")
            .args(command)
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout_path).map_err(|e| e.to_string())?)
            .stderr(fs::File::create(&stderr_path).map_err(|e| e.to_string())?);
        let mut child = cmd.spawn().map_err(|e| format!("{cmd:?}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = fs::read_to_string(&stdout_path).unwrap_or_default();
        let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
        let events_text = fs::read_to_string(&events).unwrap_or_default();
        let Some(status) = status else {
            return Err(format!(
                "egc run timed out after 30 s\nstdout:\n{stdout}\nstderr:\n{stderr}"
            ));
        };
        let mut parsed = Vec::new();
        let mut bad_lines = Vec::new();
        for line in events_text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Value>(line) {
                Ok(v) => parsed.push(v),
                Err(e) => bad_lines.push(format!("{line} ({e})")),
            }
        }
        Ok(Run {
            agent: agent.to_string(),
            code: status.code(),
            stdout,
            stderr,
            events_path: events,
            events: parsed,
            bad_lines,
        })
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

/// One `egc run`.
struct Run {
    /// The agent's local name.
    agent: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    events_path: PathBuf,
    events: Vec<Value>,
    bad_lines: Vec<String>,
}

impl Run {
    /// The results a Python client printed: `{"step": ..., "ok": ..., "value"|"error"}`.
    fn step(&self, name: &str) -> Option<Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["step"] == name)
    }

    fn describe(&self) -> String {
        let events: Vec<String> = self.events.iter().map(Value::to_string).collect();
        format!(
            "egc exit: {:?}\n--- stdout ---\n{}--- stderr ---\n{}--- events ({}) ---\n{}",
            self.code,
            self.stdout,
            self.stderr,
            self.events_path.display(),
            events.join("\n")
        )
    }

    /// Events matching every (key, value) pair.
    fn events_with(&self, want: &[(&str, &str)]) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| {
                want.iter()
                    .all(|(k, v)| e[*k].as_str().is_some_and(|s| s == *v))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Checks

/// Collects what is wrong with a trial.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.0.push(what.into());
        }
    }

    /// What every run must satisfy: the expected exit code, no panic, no error of egc's
    /// own, well-formed events.
    fn sane(&mut self, run: &Run, expected_code: i32, audit: bool) {
        self.check(
            run.code == Some(expected_code),
            format!(
                "egc run exited {:?}, expected {expected_code} (the client's own exit code)",
                run.code
            ),
        );
        self.check(!run.stderr.contains("panicked"), "egc panicked");
        for line in run.stderr.lines() {
            let l = line.trim_start();
            self.check(
                !(l.starts_with("error") || l.starts_with("egc: error")),
                format!("egc printed an error of its own: {line}"),
            );
        }
        self.check(
            run.bad_lines.is_empty(),
            format!("events file lines that are not JSON: {:?}", run.bad_lines),
        );
        for event in &run.events {
            let ok = event["format"] == "egc-event/1"
                && event["audit"] == Value::Bool(audit)
                && event["agent"]
                    .as_str()
                    .is_some_and(|a| a.ends_with(&format!(".{}", run.agent)))
                && event["layer"].is_string()
                && event["reason"].is_string()
                && event["message"].is_string()
                && event["time"].is_number();
            self.check(
                ok,
                format!("event not in the expected shape (audit: {audit}): {event}"),
            );
        }
    }

    fn step_ok(&mut self, run: &Run, step: &str, expect: impl FnOnce(&Value) -> bool) {
        match run.step(step) {
            Some(v) if v["ok"] == true => self.check(
                expect(&v["value"]),
                format!("step `{step}` gave an unexpected value: {}", v["value"]),
            ),
            Some(v) => self.0.push(format!("step `{step}` failed: {}", v["error"])),
            None => self.0.push(format!("step `{step}` printed no result")),
        }
    }

    /// The step must fail with an error whose text starts with one of `kinds`.
    fn step_err(&mut self, run: &Run, step: &str, kinds: &[&str]) {
        match run.step(step) {
            Some(v) if v["ok"] == false => {
                let error = v["error"].as_str().unwrap_or_default();
                self.check(
                    kinds.iter().any(|k| error.starts_with(k)),
                    format!("step `{step}` failed, but not with one of {kinds:?}: {error}"),
                );
            }
            Some(v) => self.0.push(format!(
                "step `{step}` succeeded, but must fail: {}",
                v["value"]
            )),
            None => self.0.push(format!("step `{step}` printed no result")),
        }
    }

    fn finish(self, world: &World, runs: &[&Run]) -> Result<(), Failed> {
        if std::env::var_os("EGC_NAMES_VERBOSE").is_some() {
            for run in runs {
                eprintln!("{}", run.describe());
            }
            eprintln!("{}", world.log.describe());
        }
        if self.0.is_empty() {
            return Ok(());
        }
        let mut text = format!("- {}\n", self.0.join("\n- "));
        for run in runs {
            text.push_str(&run.describe());
            text.push('\n');
        }
        text.push_str(&world.log.describe());
        Err(text.into())
    }
}

// ---------------------------------------------------------------------------------------
// The clients

/// Every Python client starts with this: `step(name, f)` prints one JSON result line.
const PY_PRELUDE: &str = r#"
import json, socket, ssl, sys, time
def step(name, f):
    try:
        value = f()
        print(json.dumps({"step": name, "ok": True, "value": value}), flush=True)
        return value
    except Exception as e:
        print(json.dumps({"step": name, "ok": False, "error": type(e).__name__ + ": " + str(e)}), flush=True)
        return None
def resolve(name, family=socket.AF_INET):
    return sorted({ai[4][0] for ai in socket.getaddrinfo(name, 8443, family, socket.SOCK_STREAM)})
def tls(ip, sni, family=socket.AF_INET, port=8443, verify=True):
    ctx = ssl.create_default_context(cafile=CA)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((ip, port))
    t = ctx.wrap_socket(s, server_hostname=sni)
    data = b""
    while not data.endswith(b"\n"):
        chunk = t.recv(100)
        if not chunk:
            break
        data += chunk
    t.close()
    return data.decode()
def http(ip, host, port=8080):
    s = socket.create_connection((ip, port), timeout=5)
    s.sendall(("GET / HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n").encode())
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return {"status": head.split(" ")[1] if " " in head else head, "body": body}
def tls_split(ip, sni, first, family=socket.AF_INET, port=8443):
    """TLS whose ClientHello goes out in two writes, `first` bytes then the rest."""
    ctx = ssl.create_default_context(cafile=CA)
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((ip, port))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    s.sendall(hello[:first])
    time.sleep(0.3)
    s.sendall(hello[first:])
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = out.read()
            if pending:
                s.sendall(pending)
            chunk = s.recv(16384)
            if not chunk:
                raise EOFError("closed during the handshake")
            inc.write(chunk)
    pending = out.read()
    if pending:
        s.sendall(pending)
    data = b""
    while not data.endswith(b"\n"):
        try:
            data += obj.read(100)
        except ssl.SSLWantReadError:
            chunk = s.recv(16384)
            if not chunk:
                break
            inc.write(chunk)
        except ssl.SSLZeroReturnError:
            break
    s.close()
    return data.decode()
def http_exchange(ip, requests, port=8080, split=None):
    """Sends each raw request on one connection and reads its response: the status codes
    (or `closed ...` when the connection ended instead)."""
    s = socket.create_connection((ip, port), timeout=5)
    out, buf = [], b""
    for req in requests:
        data = req.encode()
        try:
            if split:
                s.sendall(data[:split])
                time.sleep(0.3)
                s.sendall(data[split:])
            else:
                s.sendall(data)
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise EOFError("closed")
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            while len(rest) < length:
                chunk = s.recv(4096)
                if not chunk:
                    raise EOFError("closed in the body")
                rest += chunk
            out.append(head.split(b" ")[1].decode())
            buf = rest[length:]
        except (EOFError, OSError) as e:
            out.append("closed " + type(e).__name__)
            break
    s.close()
    return out
def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data
def skip_name(d, i):
    while True:
        if d[i] == 0:
            return i + 1
        if d[i] & 0xC0 == 0xC0:
            return i + 2
        i += 1 + d[i]
def dns_query(name, qtype=1, server=("192.0.2.53", 53), tcp=False):
    import struct
    q = struct.pack(">HHHHHH", 0x4567, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    if tcp:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(server)
        s.sendall(struct.pack(">H", len(q)) + q)
        data = recv_exact(s, struct.unpack(">H", recv_exact(s, 2))[0])
        src = s.getpeername()
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(q, server)
        data, src = s.recvfrom(65535)
    s.close()
    tid, flags, qd, an = struct.unpack(">HHHH", data[:8])
    i = 12
    for _ in range(qd):
        i = skip_name(data, i) + 4
    answers = []
    for _ in range(an):
        i = skip_name(data, i)
        t, c, ttl, rdlen = struct.unpack(">HHIH", data[i:i + 10])
        rd = data[i + 10:i + 10 + rdlen]
        i += 10 + rdlen
        if t == 1:
            answers.append(["A", socket.inet_ntop(socket.AF_INET, rd), ttl])
        elif t == 28:
            answers.append(["AAAA", socket.inet_ntop(socket.AF_INET6, rd), ttl])
        else:
            answers.append([str(t), "", ttl])
    return {"src": [src[0], src[1]], "id": tid, "rcode": flags & 15, "answers": answers}
"#;

fn python(script: &str) -> Result<Vec<String>, String> {
    let ca = pki()?.ca_file.display().to_string();
    Ok(vec![
        PYTHON.to_string(),
        "-c".to_string(),
        format!("CA = {ca:?}\n{PY_PRELUDE}\n{script}"),
    ])
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn is_list(v: &Value, want: &[&str]) -> bool {
    v.as_array().is_some_and(|a| {
        a.iter()
            .map(|x| x.as_str().unwrap_or(""))
            .eq(want.iter().copied())
    })
}

/// 60 random hex characters (std's random hash keys).
fn random_hex(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    while out.len() < len {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(TRIALS.load(Ordering::SeqCst));
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------------------
// The cases

/// 1 (Python): api.corp.test resolves to 127.0.0.1 and TLS with SNI api.corp.test works.
fn allowed_python() -> Result<(), Failed> {
    let mut world = World::new("allowed-python")?;
    let cmd = python(
        r#"
ips = step("resolve", lambda: resolve("api.corp.test"))
step("tls", lambda: tls(ips[0], "api.corp.test"))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    p.step_ok(&run, "tls", |v| v == "hello api.corp.test\n");
    p.check(
        world.log.dns_saw("api.corp.test"),
        "the DNS server never saw api.corp.test (the gateway did not forward it)",
    );
    p.check(
        world.log.tls().iter().any(|s| s == "api.corp.test"),
        "the TLS server completed no handshake with SNI api.corp.test",
    );
    p.check(
        run.events.is_empty(),
        "an allowed name and connection produced denial events",
    );
    p.finish(&world, &[&run])
}

/// 1 (curl): https://api.corp.test:8443/ with the test CA.
fn allowed_curl() -> Result<(), Failed> {
    let mut world = World::new("allowed-curl")?;
    let ca = pki()?.ca_file.display().to_string();
    let run = world.egc_run(
        &[],
        &[
            CURL,
            "-sS",
            "-m",
            "10",
            "--http0.9",
            "--cacert",
            &ca,
            "https://api.corp.test:8443/",
        ],
    )?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.check(
        run.stdout == "hello api.corp.test\n",
        "curl did not print the server's `hello api.corp.test`",
    );
    p.check(
        world.log.tls().iter().any(|s| s == "api.corp.test"),
        "the TLS server completed no handshake with SNI api.corp.test",
    );
    p.check(
        run.events.is_empty(),
        "an allowed name and connection produced denial events",
    );
    p.finish(&world, &[&run])
}

/// 2: other.corp.test is refused by the DNS gateway and never forwarded.
fn name_not_allowed() -> Result<(), Failed> {
    let mut world = World::new("name-not-allowed")?;
    let cmd = python(r#"step("resolve", lambda: resolve("other.corp.test"))"#)?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_err(&run, "resolve", &["gaierror"]);
    let events = run.events_with(&[
        ("layer", "dns"),
        ("reason", "name-not-allowed"),
        ("name", "other.corp.test"),
    ]);
    p.check(
        !events.is_empty(),
        "no dns/name-not-allowed event for other.corp.test",
    );
    p.check(
        events.iter().all(|e| {
            e["suggestion"]
                .as_str()
                .is_some_and(|s| s.contains("host \"other.corp.test\""))
        }),
        "the event's suggestion is not `host \"other.corp.test\"`",
    );
    p.check(
        !world.log.dns_saw("other.corp.test"),
        "the DNS server received other.corp.test: the gateway forwarded a name no destination allows",
    );
    p.finish(&world, &[&run])
}

/// 3 (TLS): the learned address of api.corp.test with SNI other.corp.test.
fn sni_mismatch() -> Result<(), Failed> {
    let mut world = World::new("sni-mismatch")?;
    let cmd = python(
        r#"
ips = step("resolve", lambda: resolve("api.corp.test"))
step("tls-api", lambda: tls(ips[0], "api.corp.test"))
step("tls-other", lambda: tls(ips[0], "other.corp.test"))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    p.step_ok(&run, "tls-api", |v| v == "hello api.corp.test\n");
    p.step_err(
        &run,
        "tls-other",
        &[
            "SSL",
            "ConnectionResetError",
            "ConnectionAbortedError",
            "BrokenPipeError",
            "OSError",
            "TimeoutError",
        ],
    );
    p.check(
        !run.events_with(&[
            ("layer", "gate"),
            ("reason", "sni-mismatch"),
            ("name", "other.corp.test"),
            ("address", "127.0.0.1"),
        ])
        .is_empty(),
        "no gate/sni-mismatch event for other.corp.test at 127.0.0.1",
    );
    p.check(
        !world.log.tls().iter().any(|s| s == "other.corp.test"),
        "the TLS server completed a handshake for other.corp.test: the gate let it through",
    );
    p.finish(&world, &[&run])
}

/// 3 (HTTP): `Host: other.corp.test` to web.corp.test's address gets the gate's 403.
fn host_mismatch() -> Result<(), Failed> {
    let mut world = World::new("host-mismatch")?;
    let script = format!(
        "echo '== allowed'; {CURL} -sS -m 10 -w '\\nstatus=%{{http_code}}\\n' http://web.corp.test:8080/; \
         echo '== other'; {CURL} -sS -m 10 -H 'Host: other.corp.test' -w '\\nstatus=%{{http_code}}\\n' http://web.corp.test:8080/"
    );
    let run = world.egc_run(&[], &["/bin/sh", "-c", &script])?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    let (allowed, other) = run
        .stdout
        .split_once("== other")
        .unwrap_or((run.stdout.as_str(), ""));
    p.check(
        allowed.contains("ok\n") && allowed.contains("status=200"),
        "GET http://web.corp.test:8080/ (allowed) did not get the server's 200",
    );
    p.check(
        other.contains("status=403"),
        "Host: other.corp.test did not get a 403",
    );
    let body = other
        .lines()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str::<Value>(l).ok());
    match body {
        Some(body) => p.check(
            body["format"] == "egc-event/1"
                && body["layer"] == "gate"
                && body["reason"] == "host-mismatch"
                && body["name"] == "other.corp.test",
            format!("the 403 body is not the gate's host-mismatch event: {body}"),
        ),
        None => p.0.push("the 403 body is not a JSON event".into()),
    }
    p.check(
        !run.events_with(&[
            ("layer", "gate"),
            ("reason", "host-mismatch"),
            ("name", "other.corp.test"),
        ])
        .is_empty(),
        "no gate/host-mismatch event for other.corp.test in the events file",
    );
    p.check(
        world.log.http().iter().any(|h| h == "web.corp.test:8080"),
        "the HTTP server never saw the allowed request",
    );
    p.check(
        !world
            .log
            .http()
            .iter()
            .any(|h| h.starts_with("other.corp.test")),
        "the HTTP server received the request for other.corp.test",
    );
    p.finish(&world, &[&run])
}

/// 4: with the TTL clamped to 1 s, the learned address closes, and answers tell clients
/// to cache no longer than that.
fn ttl_closes() -> Result<(), Failed> {
    let help = Command::new(EGC)
        .args(["run", "--help"])
        .output()
        .map_err(|e| e.to_string())?;
    let help = String::from_utf8_lossy(&help.stdout);
    if !help.contains("--dns-ttl-min") || !help.contains("--dns-ttl-max") {
        return Err("`egc run` has no --dns-ttl-min / --dns-ttl-max".into());
    }
    let mut world = World::new("ttl")?;
    let cmd = python(
        r#"
ips = step("resolve", lambda: resolve("api.corp.test"))
step("tls-first", lambda: tls(ips[0], "api.corp.test"))
time.sleep(3)
step("tls-after-ttl", lambda: tls(ips[0], "api.corp.test"))
step("ttl-cap", lambda: dns_query("web.corp.test", server=("127.0.0.53", 53)))
"#,
    )?;
    let run = world.egc_run(&["--dns-ttl-min", "1", "--dns-ttl-max", "1"], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    p.step_ok(&run, "tls-first", |v| v == "hello api.corp.test\n");
    p.step_err(
        &run,
        "tls-after-ttl",
        &[
            "PermissionError",
            "ConnectionRefusedError",
            "OSError",
            "ConnectionResetError",
            "SSL",
        ],
    );
    p.check(
        run.events_with(&[("layer", "connect"), ("address", "127.0.0.1")])
            .iter()
            .any(|e| e["port"] == 8443),
        "no connect-layer event for 127.0.0.1 port 8443 after the TTL",
    );
    // The upstream says 60 s; a client must not be told to cache longer than the kernel
    // keeps the address open.
    p.step_ok(&run, "ttl-cap", |v| {
        v["answers"].as_array().is_some_and(|a| {
            !a.is_empty() && a.iter().all(|r| r[2].as_u64().is_some_and(|ttl| ttl <= 1))
        })
    });
    let a_queries = world
        .log
        .dns()
        .iter()
        .filter(|l| l.starts_with("api.corp.test A "))
        .count();
    p.check(
        a_queries == 1,
        format!("expected one A query for api.corp.test (no re-resolution), saw {a_queries}"),
    );
    p.check(
        world.log.tls().iter().filter(|s| *s == "api.corp.test").count() == 1,
        "the TLS server completed more or fewer than one handshake (the second must not get through)",
    );
    p.finish(&world, &[&run])
}

/// 5: a CNAME chain through evil.test is dropped.
fn cname_not_allowed() -> Result<(), Failed> {
    let mut world = World::new("cname")?;
    let cmd = python(r#"step("resolve", lambda: resolve("alias.corp.test"))"#)?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_err(&run, "resolve", &["gaierror"]);
    let events = run.events_with(&[("layer", "dns"), ("reason", "cname-not-allowed")]);
    p.check(!events.is_empty(), "no dns/cname-not-allowed event");
    p.check(
        events.iter().any(|e| {
            e["name"] == "evil.test"
                || e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("evil.test"))
        }),
        "the cname-not-allowed event does not name evil.test",
    );
    p.check(
        world.log.dns_saw("alias.corp.test"),
        "the DNS server never saw alias.corp.test (the drop must be the gateway's)",
    );
    p.finish(&world, &[&run])
}

/// 6: a long random label under a disallowed name never leaves.
fn exfil_label() -> Result<(), Failed> {
    let mut world = World::new("exfil")?;
    let name = format!("{}.exfil.test", random_hex(60));
    let cmd = python(&format!(r#"step("resolve", lambda: resolve({name:?}))"#))?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_err(&run, "resolve", &["gaierror"]);
    p.check(
        !run.events_with(&[("layer", "dns"), ("name", &name)])
            .is_empty(),
        format!("no dns event for {name}"),
    );
    p.check(
        !world.log.dns().iter().any(|l| l.contains("exfil")),
        "the DNS server received the exfil.test query",
    );
    p.finish(&world, &[&run])
}

/// 7: raw queries to 192.0.2.53:53 (UDP and TCP) are answered by the gateway, the UDP
/// one from 192.0.2.53:53, through the upstream server; a disallowed name over TCP is
/// refused there too, and not forwarded.
fn other_resolver() -> Result<(), Failed> {
    let mut world = World::new("other-resolver")?;
    let cmd = python(
        r#"
step("udp", lambda: dns_query("api.corp.test"))
step("tcp", lambda: dns_query("api.corp.test", 28, tcp=True))
step("tcp-other", lambda: dns_query("other.corp.test", tcp=True))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "udp", |v| {
        v["src"] == serde_json::json!(["192.0.2.53", 53])
            && v["id"] == 0x4567
            && v["rcode"] == 0
            && v["answers"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r[0] == "A" && r[1] == "127.0.0.1"))
    });
    p.step_ok(&run, "tcp", |v| {
        v["id"] == 0x4567
            && v["rcode"] == 0
            && v["answers"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r[0] == "AAAA" && r[1] == "::1"))
    });
    p.step_ok(&run, "tcp-other", |v| {
        v["rcode"] != 0 && v["answers"].as_array().is_some_and(Vec::is_empty)
    });
    let dns = world.log.dns();
    p.check(
        dns.iter().any(|l| l.starts_with("api.corp.test A "))
            && dns.iter().any(|l| l.starts_with("api.corp.test AAAA ")),
        "the DNS server did not see both queries (they did not come through the gateway)",
    );
    p.check(
        !world.log.dns_saw("other.corp.test"),
        "the DNS server received other.corp.test (asked over TCP)",
    );
    p.check(
        !run.events_with(&[
            ("layer", "dns"),
            ("reason", "name-not-allowed"),
            ("name", "other.corp.test"),
            ("protocol", "tcp"),
        ])
        .is_empty(),
        "no dns/name-not-allowed event (protocol tcp) for other.corp.test",
    );
    p.check(
        run.events.iter().all(|e| e["name"] == "other.corp.test"),
        "allowed queries produced denial events",
    );
    p.finish(&world, &[&run])
}

/// 8: audit mode lets other.corp.test through and says so; `egc suggest` proposes it.
fn audit_and_suggest() -> Result<(), Failed> {
    let mut world = World::new("audit")?;
    let cmd = python(
        r#"
ips = step("resolve", lambda: resolve("other.corp.test"))
step("tls", lambda: tls(ips[0], "other.corp.test"))
"#,
    )?;
    let run = world.egc_run(&["--audit"], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, true);
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    p.step_ok(&run, "tls", |v| v == "hello other.corp.test\n");
    p.check(
        run.stderr.to_ascii_lowercase().contains("audit mode"),
        "stderr does not mention audit mode",
    );
    p.check(
        !run.events_with(&[("name", "other.corp.test")]).is_empty(),
        "no (audit) event for other.corp.test",
    );
    p.check(
        world.log.dns_saw("other.corp.test")
            && world.log.tls().iter().any(|s| s == "other.corp.test"),
        "other.corp.test did not reach the DNS and TLS servers in audit mode",
    );
    let suggest = Command::new(EGC)
        .arg("suggest")
        .arg(&run.events_path)
        .arg("tests/names/policy")
        .current_dir(repo_root())
        .env("NO_COLOR", "1")
        .output()
        .map_err(|e| e.to_string())?;
    let help = Command::new(EGC)
        .args(["suggest", "--help"])
        .output()
        .map_err(|e| e.to_string())?;
    let out = String::from_utf8_lossy(&suggest.stdout);
    let err = String::from_utf8_lossy(&suggest.stderr);
    if std::env::var_os("EGC_NAMES_VERBOSE").is_some() {
        eprintln!("--- egc suggest stdout ---\n{out}--- egc suggest stderr ---\n{err}");
    }
    if !help.status.success() {
        p.0.push(format!(
            "`egc suggest` does not exist yet: {}",
            String::from_utf8_lossy(&help.stderr)
        ));
    } else {
        p.check(
            suggest.status.code() == Some(0),
            format!("egc suggest exited {:?}", suggest.status.code()),
        );
        p.check(
            out.lines()
                .any(|l| l.starts_with('+') && l.contains("host \"other.corp.test\"")),
            "egc suggest's diff does not add `host \"other.corp.test\"`",
        );
        p.check(
            format!("{out}{err}").contains("zone `names`"),
            "egc suggest does not name the zone (`names`) that must approve the change",
        );
    }
    let mut result = p.finish(&world, &[&run]);
    if let Err(e) = &mut result {
        *e = format!(
            "{}\n--- egc suggest stdout ---\n{out}--- egc suggest stderr ---\n{err}",
            e.message().unwrap_or_default()
        )
        .into();
    }
    result
}

/// 9: IPv6: api6.corp.test (AAAA only) on ::1, and the gate over IPv6.
fn ipv6() -> Result<(), Failed> {
    let mut world = World::new("ipv6")?;
    let cmd = python(
        r#"
ips = step("resolve", lambda: resolve("api6.corp.test", socket.AF_INET6))
step("tls-api6", lambda: tls(ips[0], "api6.corp.test", socket.AF_INET6))
step("tls-other", lambda: tls(ips[0], "other.corp.test", socket.AF_INET6))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve", |v| is_list(v, &["::1"]));
    p.step_ok(&run, "tls-api6", |v| v == "hello api6.corp.test\n");
    p.step_err(
        &run,
        "tls-other",
        &[
            "SSL",
            "ConnectionResetError",
            "ConnectionAbortedError",
            "BrokenPipeError",
            "OSError",
            "TimeoutError",
        ],
    );
    p.check(
        !run.events_with(&[
            ("layer", "gate"),
            ("reason", "sni-mismatch"),
            ("name", "other.corp.test"),
            ("address", "::1"),
        ])
        .is_empty(),
        "no gate/sni-mismatch event for other.corp.test at ::1",
    );
    p.check(
        world.log.tls().iter().any(|s| s == "api6.corp.test"),
        "the TLS server completed no handshake with SNI api6.corp.test",
    );
    p.check(
        !world.log.tls().iter().any(|s| s == "other.corp.test"),
        "the TLS server completed a handshake for other.corp.test over IPv6",
    );
    p.finish(&world, &[&run])
}

/// 3 (IPv4-mapped): an IPv6 socket to ::ffff:127.0.0.1, the learned address of
/// api.corp.test, goes through the gate like an IPv4 one.
fn ipv4_mapped() -> Result<(), Failed> {
    let mut world = World::new("ipv4-mapped")?;
    let cmd = python(
        r#"
ips = step("resolve", lambda: resolve("api.corp.test"))
step("tls-api", lambda: tls("::ffff:" + ips[0], "api.corp.test", socket.AF_INET6))
step("tls-other", lambda: tls("::ffff:" + ips[0], "other.corp.test", socket.AF_INET6))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    p.step_ok(&run, "tls-api", |v| v == "hello api.corp.test\n");
    p.step_err(&run, "tls-other", CLOSED);
    p.check(
        !run.events_with(&[
            ("layer", "gate"),
            ("reason", "sni-mismatch"),
            ("name", "other.corp.test"),
        ])
        .is_empty(),
        "no gate/sni-mismatch event for other.corp.test at ::ffff:127.0.0.1",
    );
    p.check(
        !world.log.tls().iter().any(|s| s == "other.corp.test"),
        "the TLS server completed a handshake for other.corp.test through an IPv4-mapped address",
    );
    p.finish(&world, &[&run])
}

/// 3 (ports): api.corp.test admitted 127.0.0.1 on 8443 and web.corp.test on 8080; each
/// name is refused on the other's port, though the address is the same.
fn name_on_other_port() -> Result<(), Failed> {
    let mut world = World::new("name-on-other-port")?;
    let cmd = python(
        r#"
step("resolve-api", lambda: resolve("api.corp.test"))
step("resolve-web", lambda: resolve("web.corp.test"))
step("tls-web-on-8443", lambda: tls("127.0.0.1", "web.corp.test", verify=False))
step("http-api-on-8080", lambda: http("127.0.0.1", "api.corp.test"))
step("http-web-on-8080", lambda: http("127.0.0.1", "web.corp.test"))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve-api", |v| is_list(v, &["127.0.0.1"]));
    p.step_ok(&run, "resolve-web", |v| is_list(v, &["127.0.0.1"]));
    p.step_err(&run, "tls-web-on-8443", CLOSED);
    p.step_ok(&run, "http-api-on-8080", |v| v["status"] == "403");
    p.step_ok(&run, "http-web-on-8080", |v| {
        v["status"] == "200" && v["body"] == "ok\n"
    });
    p.check(
        !run.events_with(&[
            ("layer", "gate"),
            ("reason", "sni-mismatch"),
            ("name", "web.corp.test"),
        ])
        .iter()
        .all(|e| e["port"] != 8443),
        "no gate/sni-mismatch event for web.corp.test on port 8443",
    );
    p.check(
        run.events_with(&[
            ("layer", "gate"),
            ("reason", "host-mismatch"),
            ("name", "api.corp.test"),
        ])
        .iter()
        .any(|e| e["port"] == 8080),
        "no gate/host-mismatch event for api.corp.test on port 8080",
    );
    p.check(
        !world.log.tls().iter().any(|s| s == "web.corp.test"),
        "the TLS server completed a handshake for web.corp.test on port 8443",
    );
    p.check(
        world.log.http() == ["web.corp.test"],
        "the HTTP server must see exactly the web.corp.test request",
    );
    p.finish(&world, &[&run])
}

/// 3 (segments): a ClientHello split over two writes (inside the record header, inside
/// the handshake message) is read whole by the gate: allowed with SNI api.corp.test,
/// refused with other.corp.test.
fn split_client_hello() -> Result<(), Failed> {
    let mut world = World::new("split-client-hello")?;
    let cmd = python(
        r#"
ips = step("resolve", lambda: resolve("api.corp.test"))
step("api-split-3", lambda: tls_split(ips[0], "api.corp.test", 3))
step("api-split-60", lambda: tls_split(ips[0], "api.corp.test", 60))
step("other-split-60", lambda: tls_split(ips[0], "other.corp.test", 60))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    p.step_ok(&run, "api-split-3", |v| v == "hello api.corp.test\n");
    p.step_ok(&run, "api-split-60", |v| v == "hello api.corp.test\n");
    let mut closed = CLOSED.to_vec();
    closed.push("EOFError");
    p.step_err(&run, "other-split-60", &closed);
    p.check(
        !run.events_with(&[
            ("layer", "gate"),
            ("reason", "sni-mismatch"),
            ("name", "other.corp.test"),
        ])
        .is_empty(),
        "no gate/sni-mismatch event for the split ClientHello naming other.corp.test",
    );
    p.check(
        !world.log.tls().iter().any(|s| s == "other.corp.test"),
        "the TLS server completed a handshake for other.corp.test",
    );
    p.finish(&world, &[&run])
}

/// 3 (HTTP request heads): on a connection to web.corp.test's address, a request for
/// another name does not get through as an absolute-form target that overrides `Host`,
/// nor as a second `Host` header; a request head split over two writes is read whole.
/// (Later requests on a kept-alive connection are not checked: a known limit of the
/// gate, see crates/egress-gateway/src/gate.rs, like the `Host` inside TLS.)
fn http_request_heads() -> Result<(), Failed> {
    let mut world = World::new("http-request-heads")?;
    let cmd = python(
        r#"
LAST = "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
ips = step("resolve", lambda: resolve("web.corp.test"))
ip = ips[0]
step("split-head", lambda: http_exchange(ip, [LAST % "web.corp.test"], split=20))
step("absolute-form", lambda: http_exchange(ip, ["GET http://other.corp.test:8080/ HTTP/1.1\r\nHost: web.corp.test\r\nConnection: close\r\n\r\n"]))
step("two-hosts", lambda: http_exchange(ip, ["GET / HTTP/1.1\r\nHost: web.corp.test\r\nHost: other.corp.test\r\nConnection: close\r\n\r\n"]))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    p.step_ok(&run, "split-head", |v| is_list(v, &["200"]));
    p.step_ok(&run, "absolute-form", |v| {
        v.as_array()
            .is_some_and(|a| a.first() != Some(&Value::from("200")))
    });
    p.step_ok(&run, "two-hosts", |v| {
        v.as_array()
            .is_some_and(|a| a.first() != Some(&Value::from("200")))
    });
    // Both refusals are alike (same process, address, port and reason, within a second):
    // the gateway reports them as one event.
    p.check(
        run.events_with(&[("layer", "gate"), ("address", "127.0.0.1")])
            .iter()
            .any(|e| e["port"] == 8080),
        "no gate event for the refused requests to 127.0.0.1:8080",
    );
    let hosts = world.log.http();
    let targets = world.log.http_targets();
    p.check(
        !hosts.iter().any(|h| h.contains("other.corp.test")),
        format!("the HTTP server received a request with Host other.corp.test: {hosts:?}"),
    );
    p.check(
        !targets.iter().any(|t| t.contains("other.corp.test")),
        format!("the HTTP server received a request for http://other.corp.test/: {targets:?}"),
    );
    p.finish(&world, &[&run])
}

/// A learned address is open only on its destination's ports and protocol: after
/// resolving api.corp.test (TCP 8443), TCP to port 8080 and UDP to port 8443 are refused
/// by the kernel.
fn learned_address_only_its_ports() -> Result<(), Failed> {
    let mut world = World::new("learned-ports")?;
    let cmd = python(
        r#"
def tcp(ip, port):
    s = socket.create_connection((ip, port), timeout=5)
    s.close()
    return "connected"
def udp(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", (ip, port))
    s.close()
    return "sent"
ips = step("resolve", lambda: resolve("api.corp.test"))
step("tcp-8080", lambda: tcp(ips[0], 8080))
step("udp-8443", lambda: udp(ips[0], 8443))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    p.step_err(&run, "tcp-8080", &["PermissionError"]);
    p.step_err(&run, "udp-8443", &["PermissionError"]);
    let connect = run.events_with(&[("layer", "connect"), ("address", "127.0.0.1")]);
    p.check(
        connect
            .iter()
            .any(|e| e["port"] == 8080 && e["protocol"] == "tcp"),
        "no connect-layer event for TCP 127.0.0.1:8080",
    );
    p.check(
        connect
            .iter()
            .any(|e| e["port"] == 8443 && e["protocol"] == "udp"),
        "no connect-layer event for UDP 127.0.0.1:8443",
    );
    p.check(world.log.http().is_empty(), "the HTTP server was reached");
    p.finish(&world, &[&run])
}

/// 8 (names): in audit mode a connection to a name the policy lacks is still reported by
/// name and port (the gate sees it), so that `egc suggest` proposes that name on the port
/// used, not the shared address.
fn audit_keeps_names() -> Result<(), Failed> {
    let mut world = World::new("audit-names")?;
    let cmd = python(
        r#"
ips = step("resolve", lambda: resolve("other.corp.test"))
step("tls", lambda: tls(ips[0], "other.corp.test"))
"#,
    )?;
    let run = world.egc_run(&["--audit"], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, true);
    p.step_ok(&run, "tls", |v| v == "hello other.corp.test\n");
    p.check(
        run.events_with(&[("name", "other.corp.test")])
            .iter()
            .any(|e| e["port"] == 8443),
        "no audit event names other.corp.test with port 8443 (the connection's name was lost)",
    );
    p.check(
        !run
            .events
            .iter()
            .any(|e| e["name"].is_null() && e["address"] == "127.0.0.1"),
        "the connection to other.corp.test is reported by address only (no name), as if no name had been asked for",
    );
    let suggest = Command::new(EGC)
        .arg("suggest")
        .arg(&run.events_path)
        .arg("tests/names/policy")
        .current_dir(repo_root())
        .env("NO_COLOR", "1")
        .output()
        .map_err(|e| e.to_string())?;
    let out = String::from_utf8_lossy(&suggest.stdout);
    let err = String::from_utf8_lossy(&suggest.stderr);
    let added: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .collect();
    p.check(
        !added.iter().any(|l| l.contains("cidr")),
        "egc suggest proposes an address (cidr) destination for a connection made by name",
    );
    // The port line of the destination that adds other.corp.test.
    let port_line = added
        .iter()
        .skip_while(|l| !l.contains("host \"other.corp.test\""))
        .find(|l| l.trim_start_matches('+').trim_start().starts_with("port"));
    p.check(
        port_line.is_some_and(|l| l.contains("8443")),
        format!(
            "egc suggest does not propose host other.corp.test on port 8443, the port it was used on (its port line: {port_line:?})"
        ),
    );
    let mut result = p.finish(&world, &[&run]);
    if let Err(e) = &mut result {
        *e = format!(
            "{}\n--- egc suggest stdout ---\n{out}--- egc suggest stderr ---\n{err}",
            e.message().unwrap_or_default()
        )
        .into();
    }
    result
}

// ---------------------------------------------------------------------------------------

/// The book's walkthrough (book/src/runtime/names.md): the examples with host
/// destinations under `egc run` against a local resolver.
fn examples_walkthrough() -> Result<(), Failed> {
    let mut world = World::new("examples-walkthrough")?;
    let strict = repo_root().join("examples/strict-allowlist");
    let sbom = repo_root().join("examples/sbom-registries");
    let curl = |url: &'static str| -> Vec<&'static str> {
        vec![
            CURL,
            "-s",
            "-m",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}\n",
            url,
        ]
    };
    let allowed = world.egc_run_policy(
        &strict,
        "reporter",
        &["--resolver", "127.0.0.53"],
        &curl("http://control-plane.corp.internal:443/"),
    )?;
    let refused = world.egc_run_policy(
        &strict,
        "reporter",
        &["--resolver", "127.0.0.53"],
        &curl("http://registry.npmjs.test:443/"),
    )?;
    let fetched = world.egc_run_policy(
        &sbom,
        "dependency_fetcher",
        &["--resolver", "127.0.0.53"],
        &curl("http://registry.npm.example:443/"),
    )?;
    let mut p = Problems::default();
    p.sane(&allowed, 0, false);
    p.check(
        allowed.stdout.trim() == "200",
        "strict-allowlist's reporter did not reach control-plane.corp.internal:443",
    );
    p.check(
        allowed.events.is_empty(),
        "the allowed walkthrough run produced denial events",
    );
    p.sane(&refused, 6, false);
    p.check(
        !refused
            .events_with(&[("layer", "dns"), ("name", "registry.npmjs.test")])
            .is_empty(),
        "no dns event for registry.npmjs.test",
    );
    p.check(
        !world.log.dns_saw("registry.npmjs.test"),
        "registry.npmjs.test reached the resolver",
    );
    p.sane(&fetched, 0, false);
    p.check(
        fetched.stdout.trim() == "200",
        "sbom-registries' dependency fetcher did not reach registry.npm.example:443",
    );
    p.finish(&world, &[&allowed, &refused, &fetched])
}

/// `egc enforce apply --serve-names`: the same names enforced on a cgroup a process joins
/// by itself (no launcher), while the serving process runs; `egc enforce events` streams
/// the gateway's events; interrupting it closes the names again.
fn enforce_serve_names() -> Result<(), Failed> {
    let world = World::new("enforce-serve-names")?;
    let name = format!("names-serve-{}", std::process::id());
    let cgroup = format!("egc-names-test/{name}");
    let events = world.dir.join("serve-events.jsonl");
    let serve_out = world.dir.join("serve-stderr");
    let mut serve = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", world.netns))
        .arg(EGC)
        .args(["enforce", "apply"])
        .arg(policy_dir())
        .args(["--agent", AGENT, "--cgroup", &cgroup, "--name", &name])
        .args(["--serve-names", "--format", "json", "--events"])
        .arg(&events)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&serve_out).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("egc enforce apply: {e}"))?;
    let status_of = || -> String {
        Command::new(EGC)
            .args(["enforce", "status"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !status_of().contains("names served") {
        if Instant::now() > deadline || serve.try_wait().ok().flatten().is_some() {
            let _ = serve.kill();
            return Err(format!(
                "--serve-names never came up: {}",
                fs::read_to_string(&serve_out).unwrap_or_default()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // A client that joins the cgroup itself (as a workload would), as root: the eBPF
    // program and the gateway are all there is.
    let cgroup_dir = String::from_utf8_lossy(
        &Command::new("sh")
            .args(["-c", "findmnt -n -o TARGET -t cgroup2 | head -1"])
            .output()
            .map_err(|e| e.to_string())?
            .stdout,
    )
    .trim()
    .to_string();
    let procs = format!("{cgroup_dir}/{cgroup}/cgroup.procs");
    let script = format!(
        "CA = {ca:?}\n{PY_PRELUDE}\nopen({procs:?}, 'w').write(str(__import__('os').getpid()))\n{}",
        r#"
ips = step("resolve", lambda: resolve("api.corp.test"))
step("tls", lambda: tls(ips[0], "api.corp.test"))
step("other", lambda: resolve("other.corp.test"))
"#,
        ca = pki()?.ca_file.display().to_string(),
    );
    let client = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", world.netns))
        .args([PYTHON, "-c", &script])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&client.stdout).to_string();
    // The serving process passes the gateway's events on every 200 ms.
    std::thread::sleep(Duration::from_millis(600));
    let streamed = Command::new(EGC)
        .args(["enforce", "events", &name, "--format", "json"])
        .output()
        .map_err(|e| e.to_string())?;
    let streamed = String::from_utf8_lossy(&streamed.stdout).to_string();
    let status_during = status_of();
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let exit = serve.wait().map_err(|e| e.to_string())?;
    let status_after = status_of();
    let _ = Command::new(EGC)
        .args(["enforce", "detach", &name])
        .output();
    let _ = fs::remove_dir(format!("{cgroup_dir}/{cgroup}"));
    let step = |n: &str| {
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["step"] == n)
    };
    let mut p = Problems::default();
    p.check(
        step("tls").is_some_and(|v| v["value"] == "hello api.corp.test\n"),
        format!("the client did not reach api.corp.test through the gate: {stdout}"),
    );
    p.check(
        step("other").is_some_and(|v| v["ok"] == false),
        format!("other.corp.test resolved: {stdout}"),
    );
    p.check(
        !world.log.dns_saw("other.corp.test"),
        "other.corp.test reached the resolver",
    );
    p.check(
        streamed.lines().any(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| {
                v["layer"] == "dns"
                    && v["name"] == "other.corp.test"
                    && v["format"] == "egc-event/1"
            })
        }),
        format!("`egc enforce events` did not stream the gateway's event: {streamed}"),
    );
    p.check(
        fs::read_to_string(&events).is_ok_and(|t| t.contains("other.corp.test")),
        "--events did not get the gateway's event",
    );
    p.check(
        status_during.contains("learned address"),
        format!("status did not show the learned address: {status_during}"),
    );
    p.check(exit.success(), format!("--serve-names exited {exit:?}"));
    p.check(
        !status_after.contains("names served"),
        format!("names still served after the interrupt: {status_after}"),
    );
    if p.0.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n--- serve stderr ---\n{}",
            p.0.join("\n"),
            fs::read_to_string(&serve_out).unwrap_or_default()
        )
        .into())
    }
}

// ---------------------------------------------------------------------------------------
// Attacks: a compromised agent trying to get bytes past the gateway and the gate.

/// Helpers the attack clients add to [`PY_PRELUDE`]: raw DNS messages, raw ClientHellos
/// with rewritten SNI extensions, and raw TLS/TCP probes.
const ATTACK_PY: &str = r#"
import struct, select, os, random
def qname(name):
    labels = [l.encode() for l in name.split(".")] if isinstance(name, str) else name
    return b"".join(bytes([len(l)]) + l for l in labels) + b"\0"
def dns_msg(questions, tid=0x4242, flags=0x0100, additional=b"", arcount=0):
    m = struct.pack(">HHHHHH", tid, flags, len(questions), 0, 0, arcount)
    for name, qtype, qclass in questions:
        m += qname(name) + struct.pack(">HH", qtype, qclass)
    return m + additional
def framed(m):
    return struct.pack(">H", len(m)) + m
def dns_reply(data):
    tid, flags, qd, an = struct.unpack(">HHHH", data[:8])
    return {"id": tid, "rcode": flags & 15, "an": an}
def dns_raw(msg, server=("127.0.0.53", 53), tcp=False, family=socket.AF_INET, count=1):
    if tcp:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(server)
        s.sendall(msg)
        out = [dns_reply(recv_exact(s, struct.unpack(">H", recv_exact(s, 2))[0])) for _ in range(count)]
        s.close()
        return out if count > 1 else out[0]
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(msg, server)
    data, src = s.recvfrom(65535)
    s.close()
    r = dns_reply(data)
    r["src"] = [src[0], src[1]]
    return r
def client_hello(sni="api.corp.test"):
    ctx = ssl.create_default_context(cafile=CA)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()
def sni_ext(names):
    lst = b"".join(b"\x00" + struct.pack(">H", len(n)) + n for n in names)
    body = struct.pack(">H", len(lst)) + lst
    return struct.pack(">HH", 0, len(body)) + body
def rewrite_hello(exts_first):
    """A real ClientHello whose SNI extension is replaced by `exts_first` (raw extensions,
    put first), re-framed in records of at most 16 KiB."""
    hello = client_hello("api.corp.test")
    body = hello[5 + 4:]
    i = 2 + 32
    i += 1 + body[i]
    i += 2 + struct.unpack(">H", body[i:i + 2])[0]
    i += 1 + body[i]
    exts = body[i + 2:]
    kept, j = b"", 0
    while j < len(exts):
        t, l = struct.unpack(">HH", exts[j:j + 4])
        if t != 0:
            kept += exts[j:j + 4 + l]
        j += 4 + l
    new = b"".join(exts_first) + kept
    body = body[:i] + struct.pack(">H", len(new)) + new
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"".join(b"\x16\x03\x01" + struct.pack(">H", len(hs[k:k + 16384])) + hs[k:k + 16384] for k in range(0, len(hs), 16384))
def probe(ip, data, port=8443, family=socket.AF_INET, sock=None):
    """Sends raw bytes; `reached` when the server answered anything (a ServerHello or an
    alert), `closed` when the connection ended without a byte (the gate refused)."""
    s = sock or socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        if sock is None:
            s.connect((ip, port))
        s.sendall(data)
        first = s.recv(1)
    except (ConnectionResetError, BrokenPipeError) as e:
        s.close()
        return "closed " + type(e).__name__
    s.close()
    return "reached %02x" % first[0] if first else "closed eof"
def attempt(f):
    """`ok ...` or the exception's type name."""
    try:
        return "ok " + str(f())
    except Exception as e:
        return type(e).__name__
def tcp_connect(ip, port, family=socket.AF_INET, send=b""):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect((ip, port))
    if send:
        s.sendall(send)
    s.close()
    return "connected"
def udp_send(ip, port, family=socket.AF_INET, data=b"x", connect=False):
    s = socket.socket(family, socket.SOCK_DGRAM)
    if connect:
        s.connect((ip, port))
        s.send(data)
    else:
        s.sendto(data, (ip, port))
    s.close()
    return "sent"
"#;

fn attack_python(script: &str) -> Result<Vec<String>, String> {
    python(&format!("{ATTACK_PY}\n{script}"))
}

/// The string values of a step's JSON object, by key.
fn step_map(run: &Run, step: &str) -> Vec<(String, String)> {
    run.step(step)
        .and_then(|v| v["value"].as_object().cloned())
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), String::from)))
                .collect()
        })
        .unwrap_or_default()
}

/// 1: egc's own loopback ports (the DNS gateway's and the gate's, found by reading
/// /proc/net from inside) are closed to the agent, over TCP and UDP, IPv4, IPv6 and
/// IPv4-mapped, before and after 127.0.0.1 and ::1 are learned for api.corp.test and
/// api6.corp.test; a DNS query sent there for other.corp.test goes nowhere.
fn attack_gateway_ports() -> Result<(), Failed> {
    let mut world = World::new("attacks-gateway-ports")?;
    let cmd = attack_python(
        r#"
def egc_ports():
    found = set()
    for path, udp in (("/proc/net/tcp", False), ("/proc/net/tcp6", False), ("/proc/net/udp", True), ("/proc/net/udp6", True)):
        for line in open(path).read().splitlines()[1:]:
            f = line.split()
            ip, port = f[1].split(":")
            port = int(port, 16)
            if f[3] != ("07" if udp else "0A"):
                continue
            if ip not in ("0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"):
                continue
            if port in (53, 443, 8080, 8443):
                continue
            found.add(port)
    return sorted(found)
ports = step("ports", egc_ports)
q = dns_msg([("other.corp.test", 1, 1)])
def try_all(tag):
    out = {}
    for p in ports:
        out["tcp4-%d" % p] = attempt(lambda: tcp_connect("127.0.0.1", p, send=framed(q)))
        out["tcp6-%d" % p] = attempt(lambda: tcp_connect("::1", p, socket.AF_INET6, send=framed(q)))
        out["tcpmapped-%d" % p] = attempt(lambda: tcp_connect("::ffff:127.0.0.1", p, socket.AF_INET6, send=framed(q)))
        out["udp4-%d" % p] = attempt(lambda: udp_send("127.0.0.1", p, data=q))
        out["udp6-%d" % p] = attempt(lambda: udp_send("::1", p, socket.AF_INET6, data=q))
        out["udp4-connected-%d" % p] = attempt(lambda: udp_send("127.0.0.1", p, data=q, connect=True))
    return out
step("before", lambda: try_all("before"))
step("resolve", lambda: resolve("api.corp.test"))
step("resolve6", lambda: resolve("api6.corp.test", socket.AF_INET6))
step("after", lambda: try_all("after"))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    let ports: Vec<u64> = run
        .step("ports")
        .and_then(|v| v["value"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    p.check(
        ports.len() >= 2,
        format!("the scan found {ports:?}: expected the DNS gateway's and the gate's ports (the trial could not attack them)"),
    );
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    p.step_ok(&run, "resolve6", |v| is_list(v, &["::1"]));
    for phase in ["before", "after"] {
        let results = step_map(&run, phase);
        p.check(
            results.len() == ports.len() * 6,
            format!("step `{phase}` printed {} results", results.len()),
        );
        for (what, outcome) in results {
            // Once 127.0.0.1 is learned, a connected UDP socket to it goes to the gate's
            // sink whatever the port (no datagram leaves; the DNS gateway would have
            // reported the query for other.corp.test, checked below).
            let sink =
                phase == "after" && what.starts_with("udp4-connected-") && outcome == "ok sent";
            p.check(
                outcome == "PermissionError" || sink,
                format!(
                    "{phase}: {what} to egc's own port was not refused by the kernel: {outcome}"
                ),
            );
        }
    }
    p.check(
        ports.iter().all(|port| {
            run.events_with(&[("layer", "connect"), ("address", "127.0.0.1")])
                .iter()
                .any(|e| e["port"] == *port)
        }),
        "not every refused connect to egc's ports has a connect-layer event",
    );
    p.check(
        !world.log.dns_saw("other.corp.test"),
        "other.corp.test reached the DNS server",
    );
    p.check(
        run.events_with(&[("layer", "dns")]).is_empty(),
        "a query sent to egc's own ports reached the DNS gateway",
    );
    p.finish(&world, &[&run])
}

/// 2: DNS messages crafted to get a name, or data, past the gateway: two questions,
/// class CH and ANY, qtype ANY/TXT/HTTPS for an allowed name (forwarded: the question is
/// the allowed name's), two pipelined TCP queries, EDNS options carrying data, escaped
/// dots and binary labels, case and trailing-dot variants, port 53 of 0.0.0.0 and of
/// ::ffff:127.0.0.53 from an IPv6 socket, DNS over 853 and 5353 (not redirected).
fn attack_dns_tricks() -> Result<(), Failed> {
    let mut world = World::new("attacks-dns-tricks")?;
    let cmd = attack_python(
        r#"
A, TXT, HTTPS, ANY, IN, CH = 1, 16, 65, 255, 1, 3
step("two-questions", lambda: dns_raw(dns_msg([("api.corp.test", A, IN), ("other.corp.test", A, IN)])))
step("two-questions-other-first", lambda: dns_raw(dns_msg([("other.corp.test", A, IN), ("api.corp.test", A, IN)])))
step("class-ch", lambda: dns_raw(dns_msg([("other.corp.test", TXT, CH)])))
step("class-ch-allowed", lambda: dns_raw(dns_msg([("api.corp.test", A, CH)])))
step("class-any", lambda: dns_raw(dns_msg([("api.corp.test", A, ANY)])))
step("qtype-any", lambda: dns_raw(dns_msg([("api.corp.test", ANY, IN)])))
step("qtype-txt", lambda: dns_raw(dns_msg([("api.corp.test", TXT, IN)])))
step("qtype-https", lambda: dns_raw(dns_msg([("api.corp.test", HTTPS, IN)])))
step("tcp-pipelined", lambda: dns_raw(framed(dns_msg([("api.corp.test", A, IN)], tid=1)) + framed(dns_msg([("other.corp.test", A, IN)], tid=2)), tcp=True, count=2))
opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 4 + 14) + struct.pack(">HH", 65001, 14) + b"SECRET-IN-EDNS"
step("edns-option", lambda: dns_raw(dns_msg([("api.corp.test", A, IN)], additional=opt, arcount=1)))
auth = b"\xc0\x0c" + struct.pack(">HHIH", 16, 1, 0, 15) + b"\x0eSECRET-IN-AUTH"
step("authority-record", lambda: dns_raw(struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 1, 0) + qname("api.corp.test") + struct.pack(">HH", A, IN) + auth))
step("escaped-dot", lambda: dns_raw(dns_msg([([b"other.corp", b"test"], A, IN)])))
step("escaped-dot-allowed-suffix", lambda: dns_raw(dns_msg([([b"x.other", b"api", b"corp", b"test"], A, IN)])))
step("binary-label", lambda: dns_raw(dns_msg([([b"\x00\xff\x1b", b"api", b"corp", b"test"], A, IN)])))
step("space-label", lambda: dns_raw(dns_msg([([b"other corp", b"test"], A, IN)])))
step("uppercase", lambda: dns_raw(dns_msg([("API.CORP.TEST", A, IN)])))
step("uppercase-other", lambda: dns_raw(dns_msg([("OTHER.CORP.TEST", A, IN)])))
step("opcode-notify", lambda: dns_raw(dns_msg([("other.corp.test", A, IN)], flags=0x2000)))
step("opcode-update", lambda: dns_raw(dns_msg([("other.corp.test", 6, IN)], flags=0x2800)))
step("unspecified-udp", lambda: dns_raw(dns_msg([("api.corp.test", A, IN)]), server=("0.0.0.0", 53)))
step("unspecified-tcp", lambda: dns_raw(framed(dns_msg([("api.corp.test", A, IN)])), server=("0.0.0.0", 53), tcp=True))
step("unspecified6-udp", lambda: dns_raw(dns_msg([("api.corp.test", A, IN)]), server=("::", 53), family=socket.AF_INET6))
step("this-network-udp", lambda: dns_raw(dns_msg([("api.corp.test", A, IN)]), server=("0.1.2.3", 53)))
step("unspecified-mapped-udp", lambda: dns_raw(dns_msg([("api.corp.test", A, IN)]), server=("::ffff:0.0.0.0", 53), family=socket.AF_INET6))
step("mapped-allowed", lambda: dns_raw(dns_msg([("api.corp.test", A, IN)]), server=("::ffff:127.0.0.53", 53), family=socket.AF_INET6))
step("mapped-other", lambda: dns_raw(dns_msg([("other.corp.test", A, IN)]), server=("::ffff:127.0.0.53", 53), family=socket.AF_INET6))
step("mapped-other-tcp", lambda: dns_raw(framed(dns_msg([("other.corp.test", A, IN)])), server=("::ffff:127.0.0.53", 53), family=socket.AF_INET6, tcp=True))
step("v6-other", lambda: dns_raw(dns_msg([("other.corp.test", A, IN)]), server=("::1", 53), family=socket.AF_INET6))
for port in (853, 5353):
    step("udp-%d" % port, lambda: dns_raw(dns_msg([("other.corp.test", A, IN)]), server=("127.0.0.53", port)))
    step("tcp-%d" % port, lambda: dns_raw(framed(dns_msg([("other.corp.test", A, IN)])), server=("127.0.0.53", port), tcp=True))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    const FORMERR: u64 = 1;
    const NOTIMP: u64 = 4;
    const REFUSED: u64 = 5;
    let rcode = |want: u64| move |v: &Value| v["rcode"] == want && v["an"] == 0;
    p.step_ok(&run, "two-questions", rcode(FORMERR));
    p.step_ok(&run, "two-questions-other-first", rcode(FORMERR));
    p.step_ok(&run, "class-ch", rcode(REFUSED));
    p.step_ok(&run, "class-ch-allowed", rcode(REFUSED));
    p.step_ok(&run, "class-any", rcode(REFUSED));
    // Other types of an allowed name are forwarded (the question is the allowed name's);
    // the test zone has no such records.
    for step in ["qtype-any", "qtype-txt", "qtype-https"] {
        p.step_ok(&run, step, |v| v["rcode"] == 0);
    }
    p.step_ok(&run, "tcp-pipelined", |v| {
        v[0]["rcode"] == 0 && v[0]["an"] == 1 && v[1]["rcode"] == REFUSED && v[1]["id"] == 2
    });
    p.step_ok(&run, "edns-option", |v| v["rcode"] == 0 && v["an"] == 1);
    p.step_ok(&run, "authority-record", |v| {
        v["rcode"] == 0 && v["an"] == 1
    });
    for step in [
        "escaped-dot",
        "escaped-dot-allowed-suffix",
        "binary-label",
        "space-label",
        "uppercase-other",
        "mapped-other",
        "mapped-other-tcp",
        "v6-other",
    ] {
        p.step_ok(&run, step, rcode(REFUSED));
    }
    p.step_ok(&run, "uppercase", |v| v["rcode"] == 0 && v["an"] == 1);
    p.step_ok(&run, "opcode-notify", rcode(NOTIMP));
    p.step_ok(&run, "opcode-update", rcode(NOTIMP));
    p.step_err(&run, "unspecified-udp", &["PermissionError"]);
    p.step_err(&run, "unspecified-tcp", &["PermissionError"]);
    p.step_err(&run, "unspecified6-udp", &["PermissionError"]);
    p.step_err(&run, "this-network-udp", &["PermissionError"]);
    p.step_err(&run, "unspecified-mapped-udp", &["PermissionError"]);
    p.step_ok(&run, "mapped-allowed", |v| {
        v["rcode"] == 0 && v["an"] == 1 && v["src"] == serde_json::json!(["::ffff:127.0.0.53", 53])
    });
    for step in ["udp-853", "tcp-853", "udp-5353", "tcp-5353"] {
        p.step_err(&run, step, &["PermissionError"]);
    }
    let dns = world.log.dns();
    p.check(
        dns.iter().all(|l| l.starts_with("api.corp.test ")),
        format!("the DNS server saw a name other than api.corp.test: {dns:?}"),
    );
    let raw = world.log.dns_raw();
    p.check(
        !raw.iter().any(|m| {
            m.windows(6).any(|w| w == b"SECRET")
                || m.windows(5).any(|w| w.eq_ignore_ascii_case(b"other"))
        }),
        "a message reaching the DNS server carried the agent's EDNS option, authority record or another name",
    );
    p.check(
        raw.iter()
            .all(|m| m.get(4..6) == Some(&[0, 1][..]) && m.get(8..10) == Some(&[0, 0][..])),
        "a message reaching the DNS server has other than one question and no authority records",
    );
    p.finish(&world, &[&run])
}

/// 3 (TLS): ClientHellos crafted to pass the gate with a name it does not check: two
/// host names in one SNI extension, two SNI extensions, a very long SNI, case and
/// trailing-dot variants, a NUL inside the name, and an allowed SNI followed by other
/// bytes (which reach only the original destination).
fn attack_gate_tls() -> Result<(), Failed> {
    let mut world = World::new("attacks-gate-tls")?;
    let cmd = attack_python(
        r#"
ips = step("resolve", lambda: resolve("api.corp.test"))
ip = ips[0]
def hello_with(*names):
    return rewrite_hello([sni_ext(list(names))])
step("control-api", lambda: probe(ip, hello_with(b"api.corp.test")))
step("control-other", lambda: probe(ip, hello_with(b"other.corp.test")))
step("two-names-api-first", lambda: probe(ip, hello_with(b"api.corp.test", b"other.corp.test")))
step("two-names-other-first", lambda: probe(ip, hello_with(b"other.corp.test", b"api.corp.test")))
step("two-extensions", lambda: probe(ip, rewrite_hello([sni_ext([b"api.corp.test"]), sni_ext([b"other.corp.test"])])))
step("two-extensions-other-first", lambda: probe(ip, rewrite_hello([sni_ext([b"other.corp.test"]), sni_ext([b"api.corp.test"])])))
step("long-sni", lambda: probe(ip, hello_with((b"a" * 63 + b".") * 150 + b"api.corp.test")))
step("upper-dot", lambda: probe(ip, hello_with(b"API.CORP.TEST.")))
step("other-upper-dot", lambda: probe(ip, hello_with(b"OTHER.CORP.TEST.")))
step("nul-suffix", lambda: probe(ip, hello_with(b"api.corp.test\x00other.corp.test")))
step("nul-label", lambda: probe(ip, hello_with(b"other.corp.test\x00.api.corp.test")))
step("hostname-type-1", lambda: probe(ip, rewrite_hello([struct.pack(">HHH", 0, 2 + 3 + 15 + 3 + 13, 3 + 15 + 3 + 13) + b"\x01\x00\x0fother.corp.test\x00\x00\x0dapi.corp.test"])))
step("sni-then-http", lambda: probe(ip, hello_with(b"api.corp.test") + b"GET / HTTP/1.1\r\nHost: other.corp.test\r\n\r\n"))
step("still-works", lambda: tls(ip, "api.corp.test"))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    let reached = |v: &Value| v.as_str().is_some_and(|s| s.starts_with("reached"));
    let closed = |v: &Value| v.as_str().is_some_and(|s| s.starts_with("closed"));
    // The controls: the rewritten ClientHello passes with api.corp.test, not with
    // other.corp.test (so that the probes below can tell).
    p.step_ok(&run, "control-api", reached);
    p.step_ok(&run, "control-other", closed);
    for step in [
        "two-names-other-first",
        "two-extensions",
        "two-extensions-other-first",
        "long-sni",
        "other-upper-dot",
        "nul-suffix",
        "nul-label",
    ] {
        p.step_ok(&run, step, closed);
    }
    // The gate reads the first host name; the server must not see other.corp.test
    // whatever it makes of the list (rustls refuses a list with two host names).
    p.step_ok(&run, "two-names-api-first", |v| v.is_string());
    p.step_ok(&run, "upper-dot", reached);
    // A name of another type first, then api.corp.test: the gate takes the host name.
    p.step_ok(&run, "hostname-type-1", |v| v.is_string());
    p.step_ok(&run, "sni-then-http", reached);
    p.step_ok(&run, "still-works", |v| v == "hello api.corp.test\n");
    let hellos = world.log.tls_hello();
    p.check(
        !hellos
            .iter()
            .any(|s| s.to_ascii_lowercase().contains("other")),
        format!("the TLS server read a ClientHello naming other.corp.test: {hellos:?}"),
    );
    p.check(
        world.log.http().is_empty(),
        "the HTTP server got the bytes sent after an allowed ClientHello (they must go to the original destination, 8443)",
    );
    for (reason, name) in [
        ("sni-mismatch", Some("other.corp.test")),
        ("not-tls-or-http", None),
    ] {
        p.check(
            run.events_with(&[("layer", "gate"), ("reason", reason)])
                .iter()
                .any(|e| name.is_none_or(|n| e["name"] == n)),
            format!("no gate/{reason} event"),
        );
    }
    p.finish(&world, &[&run])
}

/// 3 (slowloris): a ClientHello for api.corp.test sent one byte every 0.4 s: the gate
/// gives up after 10 s, closes the connection and sends nothing on.
fn attack_gate_slowloris() -> Result<(), Failed> {
    let mut world = World::new("attacks-gate-slowloris")?;
    let cmd = attack_python(
        r#"
ips = step("resolve", lambda: resolve("api.corp.test"))
def slow(ip):
    hello = client_hello("api.corp.test")
    s = socket.create_connection((ip, 8443), timeout=5)
    t0 = time.time()
    for i, b in enumerate(hello):
        try:
            s.send(bytes([b]))
        except OSError as e:
            return {"closed_after": round(time.time() - t0, 1), "sent": i, "how": type(e).__name__}
        r, _, _ = select.select([s], [], [], 0.4)
        if r:
            try:
                data = s.recv(100)
            except OSError as e:
                data = b""
            if not data:
                return {"closed_after": round(time.time() - t0, 1), "sent": i + 1, "how": "eof"}
            return {"answered_after": round(time.time() - t0, 1), "sent": i + 1}
        if time.time() - t0 > 16:
            break
    return {"still_open_after": round(time.time() - t0, 1), "sent": len(hello)}
step("slow", lambda: slow(ips[0]))
step("re-resolve", lambda: resolve("api.corp.test"))
step("still-works", lambda: tls(ips[0], "api.corp.test"))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "slow", |v| {
        v["closed_after"]
            .as_f64()
            .is_some_and(|t| (9.0..=13.0).contains(&t))
    });
    p.step_ok(&run, "still-works", |v| v == "hello api.corp.test\n");
    p.check(
        run.events_with(&[("layer", "gate"), ("reason", "not-tls-or-http")])
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains("10 s"))),
        "no gate/not-tls-or-http event saying nothing was complete in 10 s",
    );
    p.check(
        world.log.accepted() == 1,
        format!(
            "the TLS server accepted {} connections: only the last (allowed) one may reach it",
            world.log.accepted()
        ),
    );
    p.finish(&world, &[&run])
}

/// 3 (HTTP): request heads crafted to reach another site at web.corp.test's address:
/// absolute-form targets a lenient server reads differently (`\@`, `#@`), CONNECT,
/// case and trailing-dot variants, a Host with userinfo, no Host, bare-LF heads; and a
/// second request pipelined in the same segment (a known limit: the gate checks the
/// first request only; it still reaches only the original destination).
fn attack_gate_http() -> Result<(), Failed> {
    let mut world = World::new("attacks-gate-http")?;
    let cmd = attack_python(
        r#"
ips = step("resolve", lambda: resolve("web.corp.test"))
ip = ips[0]
def req(target, *headers):
    return "GET %s HTTP/1.1\r\n%sConnection: close\r\n\r\n" % (target, "".join(h + "\r\n" for h in headers))
step("control", lambda: http_exchange(ip, [req("/", "Host: web.corp.test")]))
step("absolute-backslash", lambda: http_exchange(ip, [req("http://other.corp.test\\@web.corp.test/", "Host: web.corp.test")]))
step("absolute-backslash-nohost", lambda: http_exchange(ip, ["GET http://other.corp.test\\@web.corp.test/ HTTP/1.0\r\n\r\n"]))
step("absolute-fragment", lambda: http_exchange(ip, [req("http://other.corp.test#@web.corp.test/", "Host: web.corp.test")]))
step("absolute-query", lambda: http_exchange(ip, [req("http://other.corp.test?@web.corp.test/", "Host: web.corp.test")]))
step("absolute-userinfo", lambda: http_exchange(ip, [req("http://web.corp.test@other.corp.test/", "Host: web.corp.test")]))
step("connect-other", lambda: http_exchange(ip, ["CONNECT other.corp.test:8080 HTTP/1.1\r\nHost: other.corp.test:8080\r\n\r\n"]))
step("connect-other-host-web", lambda: http_exchange(ip, ["CONNECT other.corp.test:443 HTTP/1.1\r\nHost: web.corp.test\r\n\r\n"]))
step("host-upper-dot", lambda: http_exchange(ip, [req("/", "Host: WEB.CORP.TEST.")]))
step("host-other-upper-dot", lambda: http_exchange(ip, [req("/", "Host: OTHER.CORP.TEST.:8080")]))
step("host-userinfo", lambda: http_exchange(ip, [req("/", "Host: web.corp.test@other.corp.test")]))
step("host-list", lambda: http_exchange(ip, [req("/", "Host: web.corp.test, other.corp.test")]))
step("host-space-colon", lambda: http_exchange(ip, [req("/", "Host: web.corp.test", "Host : other.corp.test")]))
step("host-case-name", lambda: http_exchange(ip, [req("/", "host: web.corp.test", "HOST: other.corp.test")]))
step("no-host", lambda: http_exchange(ip, ["GET / HTTP/1.0\r\n\r\n"]))
step("bare-lf-two-hosts", lambda: http_exchange(ip, ["GET / HTTP/1.1\nHost: web.corp.test\nHost: other.corp.test\nConnection: close\n\n"]))
step("pipelined", lambda: http_exchange(ip, ["GET /first HTTP/1.1\r\nHost: web.corp.test\r\n\r\nGET /second HTTP/1.1\r\nHost: other.corp.test\r\nConnection: close\r\n\r\n", ""]))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "control", |v| is_list(v, &["200"]));
    let refused = |v: &Value| {
        v.as_array()
            .is_some_and(|a| a.first().is_some_and(|s| s != "200"))
    };
    for step in [
        "absolute-backslash",
        "absolute-backslash-nohost",
        "absolute-fragment",
        "absolute-query",
        "absolute-userinfo",
        "connect-other",
        "connect-other-host-web",
        "host-other-upper-dot",
        "host-userinfo",
        "host-list",
        "host-space-colon",
        "host-case-name",
        "no-host",
        "bare-lf-two-hosts",
    ] {
        p.step_ok(&run, step, refused);
    }
    p.step_ok(&run, "host-upper-dot", |v| is_list(v, &["200"]));
    // The known limit: the pipelined second request is not checked. It reaches the
    // original destination (the only server at 127.0.0.1:8080) and nothing else.
    p.step_ok(&run, "pipelined", |v| {
        v.as_array()
            .is_some_and(|a| a.first() == Some(&Value::from("200")))
    });
    let targets = world.log.http_targets();
    let hosts = world.log.http();
    p.check(
        !targets
            .iter()
            .zip(&hosts)
            .any(|(t, h)| t != "/second" && (t.contains("other") || h.contains("other"))),
        format!("a request for other.corp.test reached the HTTP server (besides the pipelined one): targets {targets:?}, hosts {hosts:?}"),
    );
    p.check(
        world.log.tls_hello().is_empty(),
        "the TLS server was reached from a plain-HTTP connection",
    );
    p.finish(&world, &[&run])
}

/// 4: a learned address is no wider than its names' TCP ports: another port (with a
/// server listening), UDP sent unconnected, connected (the sink drops it) and to a
/// connected socket with an explicit address, the IPv4-mapped form from an IPv6 socket,
/// and TCP Fast Open data in the SYN naming another host.
fn attack_learned_address() -> Result<(), Failed> {
    let mut world = World::new("attacks-learned-address")?;
    let cmd = attack_python(
        r#"
step("resolve", lambda: resolve("api.corp.test"))
step("resolve6", lambda: resolve("api6.corp.test", socket.AF_INET6))
step("tcp-443", lambda: tcp_connect("127.0.0.1", 443, send=b"GET / HTTP/1.1\r\nHost: api.corp.test\r\n\r\n"))
step("tcp6-443", lambda: tcp_connect("::1", 443, socket.AF_INET6))
step("tcp-mapped-443", lambda: tcp_connect("::ffff:127.0.0.1", 443, socket.AF_INET6))
step("udp-8443", lambda: udp_send("127.0.0.1", 8443))
step("udp6-8443", lambda: udp_send("::1", 8443, socket.AF_INET6))
step("udp-mapped-8443", lambda: udp_send("::ffff:127.0.0.1", 8443, socket.AF_INET6))
step("udp-connected-8443", lambda: udp_send("127.0.0.1", 8443, data=b"leak-connected", connect=True))
step("udp6-connected-8443", lambda: udp_send("::1", 8443, socket.AF_INET6, data=b"leak-connected6", connect=True))
def connected_then_sendto():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", 8443))
    s.sendto(b"leak-sendto", ("127.0.0.1", 8443))
    return "sent"
step("udp-connected-sendto", connected_then_sendto)
def tfo(name):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.sendto(client_hello(name), socket.MSG_FASTOPEN, ("127.0.0.1", 8443))
    s.settimeout(5)
    first = s.recv(1)
    s.close()
    return "reached" if first else "closed eof"
step("tfo-api", lambda: tfo("api.corp.test"))
step("tfo-other", lambda: attempt(lambda: tfo("other.corp.test")))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    p.step_ok(&run, "resolve6", |v| is_list(v, &["::1"]));
    for step in [
        "tcp-443",
        "tcp6-443",
        "tcp-mapped-443",
        "udp-8443",
        "udp6-8443",
        "udp-mapped-8443",
        "udp-connected-sendto",
    ] {
        p.step_err(&run, step, &["PermissionError"]);
    }
    // A connected UDP socket goes to the gate's sink: the send succeeds and goes nowhere.
    p.step_ok(&run, "udp-connected-8443", |v| v == "sent");
    p.step_ok(&run, "udp6-connected-8443", |v| v == "sent");
    p.step_ok(&run, "tfo-api", |v| v == "reached");
    p.step_ok(&run, "tfo-other", |v| {
        v.as_str().is_some_and(|s| !s.starts_with("ok reached"))
    });
    p.check(
        world.log.udp().is_empty(),
        format!("the UDP listener on 8443 received {:?}", world.log.udp()),
    );
    p.check(
        world.log.http().is_empty(),
        "the HTTP server on 443 was reached",
    );
    p.check(
        !world.log.tls_hello().iter().any(|s| s.contains("other")),
        "the TLS server read a ClientHello for other.corp.test (TCP Fast Open)",
    );
    p.check(
        !run.events_with(&[("reason", "udp-to-learned-address")])
            .is_empty(),
        "no udp-to-learned-address event for the connected UDP sockets",
    );
    p.finish(&world, &[&run])
}

/// 4 (expiry): with the TTL clamped to 2 s, TLS to the learned address works at 1.4 s
/// and not at 2.8 s; a connection opened before expiry that sends its ClientHello after
/// it is refused by the gate; resolving again opens the address again.
fn attack_ttl_timing() -> Result<(), Failed> {
    let mut world = World::new("attacks-ttl-timing")?;
    let cmd = attack_python(
        r#"
t0 = time.time()
ips = step("resolve", lambda: resolve("api.corp.test"))
ip = ips[0]
held = socket.create_connection((ip, 8443), timeout=5)
def at(t):
    time.sleep(max(0, t0 + t - time.time()))
at(1.4)
step("just-before", lambda: tls(ip, "api.corp.test"))
at(2.8)
step("just-after", lambda: tls(ip, "api.corp.test"))
step("held-hello-after-expiry", lambda: probe(ip, client_hello("api.corp.test"), sock=held))
step("re-resolve", lambda: resolve("api.corp.test"))
step("after-re-resolve", lambda: tls(ip, "api.corp.test"))
"#,
    )?;
    let run = world.egc_run(&["--dns-ttl-min", "2", "--dns-ttl-max", "2"], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    p.step_ok(&run, "just-before", |v| v == "hello api.corp.test\n");
    let mut refused = CLOSED.to_vec();
    refused.push("PermissionError");
    p.step_err(&run, "just-after", &refused);
    p.step_ok(&run, "held-hello-after-expiry", |v| {
        v.as_str().is_some_and(|s| s.starts_with("closed"))
    });
    p.step_ok(&run, "after-re-resolve", |v| v == "hello api.corp.test\n");
    p.check(
        world.log.tls_hello().len() == 2,
        format!(
            "the TLS server read {} ClientHellos: only `just-before` and `after-re-resolve` may reach it",
            world.log.tls_hello().len()
        ),
    );
    p.check(
        !run.events_with(&[("layer", "gate"), ("name", "api.corp.test")])
            .is_empty(),
        "no gate event for the held connection whose address lapsed before its ClientHello",
    );
    p.finish(&world, &[&run])
}

/// 6 (DNS): 600 queries for distinct names under flood.test and 400 for api.corp.test as
/// fast as UDP goes: the rate limit holds (no more forwarded than the bucket allows, at
/// most one rate-limited event a second, at most one event per name), nothing under
/// flood.test leaves, and after the bucket refills an allowed name resolves and connects.
fn attack_dns_flood() -> Result<(), Failed> {
    let mut world = World::new("attacks-dns-flood")?;
    let cmd = attack_python(
        r#"
def flood():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    tag = os.urandom(4).hex()
    t0 = time.time()
    for i in range(1000):
        name = "api.corp.test" if i % 5 == 0 else "f%d-%s.flood.test" % (i, tag)
        s.sendto(dns_msg([(name, 1, 1)], tid=i), ("127.0.0.53", 53))
    sent = time.time() - t0
    rcodes = {}
    s.settimeout(3)
    try:
        while True:
            data = s.recv(65535)
            r = dns_reply(data)
            rcodes[str(r["rcode"])] = rcodes.get(str(r["rcode"]), 0) + 1
    except socket.timeout:
        pass
    return {"seconds": round(sent, 2), "rcodes": rcodes}
step("flood", flood)
time.sleep(5)
ips = step("resolve", lambda: resolve("api.corp.test"))
step("tls", lambda: tls(ips[0], "api.corp.test"))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "flood", |v| {
        v["rcodes"]["5"].as_u64().is_some_and(|n| n > 0)
    });
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    p.step_ok(&run, "tls", |v| v == "hello api.corp.test\n");
    let limited: Vec<f64> = run
        .events_with(&[("layer", "dns"), ("reason", "rate-limited")])
        .iter()
        .filter_map(|e| e["time"].as_f64())
        .collect();
    p.check(!limited.is_empty(), "no rate-limited event");
    p.check(
        limited.windows(2).all(|w| w[1] - w[0] >= 0.99),
        format!("rate-limited events less than a second apart: {limited:?}"),
    );
    let names: Vec<&str> = run
        .events_with(&[("layer", "dns"), ("reason", "name-not-allowed")])
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    let mut distinct = names.clone();
    distinct.sort_unstable();
    distinct.dedup();
    p.check(
        distinct.len() == names.len(),
        "a flood name was reported more than once",
    );
    // Burst 200 plus 50/s for the few seconds the flood lasts; answered queries are a
    // subset of the admitted ones.
    let admitted = names.len()
        + world
            .log
            .dns()
            .iter()
            .filter(|l| l.starts_with("api.corp.test"))
            .count();
    p.check(
        admitted <= 200 + 50 * 4 + 5,
        format!("{admitted} queries passed the rate limit (burst 200, 50/s)"),
    );
    p.check(
        run.events.len() <= admitted + limited.len() + 2,
        format!(
            "{} events for {admitted} admitted queries",
            run.events.len()
        ),
    );
    p.check(
        !world.log.dns().iter().any(|l| l.contains("flood.test")),
        "a flood.test name reached the DNS server",
    );
    p.finish(&world, &[&run])
}

/// 6 (connections): 300 connections to the learned address held open without a byte
/// (more than the gate's 256 pending), and 80 idle TCP connections to the DNS gateway
/// (more than its 64): nothing reaches the servers, and once they close an allowed name
/// resolves (UDP and TCP) and connects.
fn attack_connection_flood() -> Result<(), Failed> {
    let mut world = World::new("attacks-connection-flood")?;
    let cmd = attack_python(
        r#"
ips = step("resolve", lambda: resolve("api.corp.test"))
ip = ips[0]
def hold(addr, n):
    socks, errors = [], {}
    for i in range(n):
        try:
            socks.append(socket.create_connection(addr, timeout=3))
        except Exception as e:
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
    return socks, errors
gate_socks, gate_errors = hold((ip, 8443), 300)
dns_socks, dns_errors = hold(("127.0.0.53", 53), 80)
time.sleep(1)
def closed_by_peer(socks):
    n = 0
    for s in socks:
        r, _, _ = select.select([s], [], [], 0)
        if r:
            try:
                if not s.recv(1):
                    n += 1
            except OSError:
                n += 1
    return n
step("held", lambda: {"gate": len(gate_socks), "gate_errors": gate_errors, "gate_closed": closed_by_peer(gate_socks), "dns": len(dns_socks), "dns_errors": dns_errors, "dns_closed": closed_by_peer(dns_socks)})
step("udp-dns-during", lambda: dns_query("api.corp.test", server=("127.0.0.53", 53))["rcode"])
for s in gate_socks + dns_socks:
    s.close()
time.sleep(1)
step("resolve-after", lambda: resolve("api.corp.test"))
step("tcp-dns-after", lambda: dns_query("api.corp.test", server=("127.0.0.53", 53), tcp=True)["rcode"])
step("tls-after", lambda: tls(ip, "api.corp.test"))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    // Beyond the gate's 256 pending connections and the DNS gateway's 64 TCP clients,
    // new connections are closed at once (the agent can only starve itself).
    p.step_ok(&run, "held", |v| {
        v["gate"] == 300
            && v["dns"] == 80
            && v["gate_closed"].as_u64().is_some_and(|n| n >= 44)
            && v["dns_closed"].as_u64().is_some_and(|n| n >= 16)
    });
    p.step_ok(&run, "udp-dns-during", |v| v == 0);
    p.step_ok(&run, "resolve-after", |v| is_list(v, &["127.0.0.1"]));
    p.step_ok(&run, "tcp-dns-after", |v| v == 0);
    p.step_ok(&run, "tls-after", |v| v == "hello api.corp.test\n");
    p.check(
        world.log.accepted() == 1,
        format!(
            "the servers accepted {} connections: only the last (allowed) one may reach them",
            world.log.accepted()
        ),
    );
    p.finish(&world, &[&run])
}

/// 7: names the agent controls (an SNI, a Host, a DNS label) with quotes, newlines,
/// escape sequences and control characters do not break or forge events: the events
/// file stays one JSON object per line, each refusal is one event with the name as sent,
/// and the 403 body is the event as valid JSON.
fn attack_event_injection() -> Result<(), Failed> {
    let mut world = World::new("attacks-event-injection")?;
    let cmd = attack_python(
        r#"
FORGE = '"},\n{"format":"egc-event/1","layer":"dns","reason":"forged","agent":"x"}\n\x1b[2K\x1b[1A\x07'
ips = step("resolve", lambda: resolve("api.corp.test"))
step("sni", lambda: probe(ips[0], rewrite_hello([sni_ext([("evil" + FORGE + "\x00.corp.test").encode()])])))
wips = step("resolve-web", lambda: resolve("web.corp.test"))
def http_forge():
    s = socket.create_connection((wips[0], 8080), timeout=5)
    s.sendall(b'GET / HTTP/1.1\r\nHost: evil\\"},{"reason":"forged","x":"\\u0000.test\r\nConnection: close\r\n\r\n')
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return {"status": head.split(b" ")[1].decode(), "body": body.decode()}
step("host", http_forge)
step("dns", lambda: dns_raw(dns_msg([(['"},\n{"reason":"forged"}\n\x1b[2K\x07'.encode(), b"corp", b"test"], 1, 1)])))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    let forge = "\"},\n{\"format\":\"egc-event/1\",\"layer\":\"dns\",\"reason\":\"forged\",\"agent\":\"x\"}\n\u{1b}[2k\u{1b}[1a\u{7}";
    p.step_ok(&run, "sni", |v| {
        v.as_str().is_some_and(|s| s.starts_with("closed"))
    });
    p.step_ok(&run, "host", |v| {
        v["status"] == "403"
            && serde_json::from_str::<Value>(v["body"].as_str().unwrap_or_default())
                .is_ok_and(|b| b["reason"] == "host-mismatch" && b["layer"] == "gate")
    });
    p.step_ok(&run, "dns", |v| v["rcode"] == 5);
    p.check(
        !run.events.iter().any(|e| e["reason"] == "forged"),
        "an event with the forged reason appeared",
    );
    p.check(
        run.events_with(&[("layer", "gate"), ("reason", "sni-mismatch")])
            .iter()
            .any(|e| e["name"] == format!("evil{forge}\u{0}.corp.test").as_str()),
        "no sni-mismatch event whose name is the SNI as sent (lower-cased)",
    );
    p.check(
        run.events_with(&[("layer", "gate"), ("reason", "host-mismatch")])
            .iter()
            .any(|e| {
                e["name"]
                    .as_str()
                    .is_some_and(|n| n.contains("\"},{\"reason\":\"forged\""))
            }),
        "no host-mismatch event whose name is the Host as sent",
    );
    p.check(
        !run.events_with(&[("layer", "dns"), ("reason", "malformed-query")])
            .is_empty(),
        "no dns/malformed-query event for the label with control characters",
    );
    p.check(
        run.events.len() == 3,
        format!(
            "expected exactly 3 events (SNI, Host, DNS), got {}",
            run.events.len()
        ),
    );
    let lines = fs::read_to_string(&run.events_path).unwrap_or_default();
    p.check(
        lines.lines().count() == run.events.len() && !lines.contains('\u{1b}'),
        "the events file has raw control characters or more lines than events",
    );
    p.finish(&world, &[&run])
}

/// 7 (stderr): egc's own human-readable denial lines print an SNI the agent chose with
/// its control characters and newlines escaped, so the agent cannot write lines (a forged
/// `egc-event/1` line) or escape sequences (erasing egc's previous line) to the
/// operator's terminal in egc's voice. (Failed before commit 160b923; the events file
/// was never affected: `attacks::event-injection`.)
fn attack_event_injection_stderr() -> Result<(), Failed> {
    let mut world = World::new("attacks-event-injection-stderr")?;
    let cmd = attack_python(
        r#"
FORGE = '\n{"format":"egc-event/1","layer":"dns","reason":"forged"}\n\x1b[2K\x1b[1A\x07'
ips = step("resolve", lambda: resolve("api.corp.test"))
step("sni", lambda: probe(ips[0], rewrite_hello([sni_ext([("evil" + FORGE + ".corp.test").encode()])])))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "sni", |v| {
        v.as_str().is_some_and(|s| s.starts_with("closed"))
    });
    p.check(
        !run.stderr
            .chars()
            .any(|c| c.is_control() && c != '\n'),
        "egc's stderr carries raw control characters from the agent's SNI (escape sequences reach the terminal in egc's voice)",
    );
    p.check(
        !run.stderr.lines().any(|l| l.starts_with("{\"format\"")),
        "egc's stderr has a line the agent wrote (a forged event) through a newline in its SNI",
    );
    p.finish(&world, &[&run])
}

/// 6 (gate events): 1000 connections to the learned address, each sending a few bytes
/// that are neither TLS nor HTTP, as fast as the agent can: every one is refused and
/// nothing reaches the server; the events stay bounded.
fn attack_gate_event_flood() -> Result<(), Failed> {
    let mut world = World::new("attacks-gate-event-flood")?;
    let cmd = attack_python(
        r#"
ips = step("resolve", lambda: resolve("api.corp.test"))
def flood(n):
    t0 = time.time()
    out = {}
    for i in range(n):
        r = attempt(lambda: probe(ips[0], b"\x00junk\r\n\r\n"))
        out[r] = out.get(r, 0) + 1
    out["seconds"] = round(time.time() - t0, 1)
    return out
step("flood", lambda: flood(1000))
step("tls", lambda: tls(ips[0], "api.corp.test"))
"#,
    )?;
    // The address stays learned for the whole flood.
    let run = world.egc_run(&["--dns-ttl-min", "60", "--dns-ttl-max", "60"], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "flood", |v| v["ok closed eof"] == 1000);
    p.step_ok(&run, "tls", |v| v == "hello api.corp.test\n");
    p.check(
        world.log.accepted() == 1,
        format!(
            "the TLS server accepted {} connections",
            world.log.accepted()
        ),
    );
    // One event per refused connection at most (each is a connection of its own): the
    // events grow with the agent's own connect rate, no faster.
    let gate = run.events_with(&[("layer", "gate")]).len();
    p.check(
        (1..=1000).contains(&gate) && run.events.len() == gate,
        format!(
            "{gate} gate events ({} in all) for 1000 refused connections",
            run.events.len()
        ),
    );
    p.finish(&world, &[&run])
}

/// 5 (wildcards): with `host "**.wild.test"`, a name the gate reads must be a host name
/// before a pattern is tried, as the DNS gateway requires: an SNI with a NUL (which a
/// C-string server reads as `other.corp.test`), a space or a colon in a label, and a
/// Host with userinfo or a bad port all match `**.wild.test` label by label, and are
/// refused.
fn attack_gate_wildcard_names() -> Result<(), Failed> {
    let mut world = World::new("attacks-gate-wildcard-names")?;
    let cmd = attack_python(
        r#"
ips = step("resolve", lambda: resolve("a.wild.test"))
ip = ips[0]
def hello_with(name):
    return rewrite_hello([sni_ext([name])])
step("control", lambda: probe(ip, hello_with(b"a.wild.test")))
step("control-deep", lambda: probe(ip, hello_with(b"x.y.wild.test")))
step("sni-nul", lambda: probe(ip, hello_with(b"other.corp.test\x00.wild.test")))
step("sni-space", lambda: probe(ip, hello_with(b"other.corp.test .wild.test")))
step("sni-colon", lambda: probe(ip, hello_with(b"other.corp.test:443.wild.test")))
step("sni-slash", lambda: probe(ip, hello_with(b"other.corp.test/.wild.test")))
def http(host):
    return probe(ip, ("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
step("host-control", lambda: http("a.wild.test"))
step("host-userinfo", lambda: http("other.corp.test:80@a.wild.test"))
step("host-bad-port", lambda: http("other.corp.test:x.wild.test"))
"#,
    )?;
    let run = world.egc_run_policy(
        &repo_root().join("tests/names/wildcard"),
        AGENT,
        &[],
        &strs(&cmd),
    )?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    let reached = |v: &Value| v.as_str().is_some_and(|s| s.starts_with("reached"));
    let closed = |v: &Value| v.as_str().is_some_and(|s| s.starts_with("closed"));
    // The TLS server answers anything on 8443 (a plain-HTTP request gets an alert): a
    // request the gate refuses gets a 403 ("reached 48") or nothing.
    let refused = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.starts_with("closed") || s == "reached 48")
    };
    p.step_ok(&run, "control", reached);
    p.step_ok(&run, "control-deep", reached);
    for step in ["sni-nul", "sni-space", "sni-colon", "sni-slash"] {
        p.step_ok(&run, step, closed);
    }
    p.step_ok(&run, "host-control", |v| reached(v) && v != "reached 48");
    p.step_ok(&run, "host-userinfo", refused);
    p.step_ok(&run, "host-bad-port", refused);
    let hellos = world.log.tls_hello();
    p.check(
        hellos.len() == 2,
        format!(
            "the TLS server read {} ClientHellos, expected the two controls: {hellos:?}",
            hellos.len()
        ),
    );
    p.check(
        world.log.accepted() == 3,
        format!(
            "the TLS server accepted {} connections, expected the three controls",
            world.log.accepted()
        ),
    );
    p.finish(&world, &[&run])
}

/// 3 (HelloRetryRequest): the gate reads the first ClientHello only. A first ClientHello
/// for api.corp.test without key shares makes the server ask for a retry; the second
/// ClientHello, naming other.corp.test, then goes to the server unchecked (a known
/// limit, like the Host inside TLS: only the servers at an allowed name's address see
/// it). The server must refuse the changed name (RFC 8446 4.1.2; rustls does): no
/// handshake for other.corp.test completes.
fn attack_gate_hello_retry() -> Result<(), Failed> {
    let mut world = World::new("attacks-gate-hello-retry")?;
    let cmd = attack_python(
        r#"
HRR = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
def without_key_shares(hello):
    body = hello[5 + 4:]
    i = 2 + 32
    i += 1 + body[i]
    i += 2 + struct.unpack(">H", body[i:i + 2])[0]
    i += 1 + body[i]
    exts = body[i + 2:]
    out, j = b"", 0
    while j < len(exts):
        t, l = struct.unpack(">HH", exts[j:j + 4])
        out += struct.pack(">HH", 51, 2) + b"\0\0" if t == 51 else exts[j:j + 4 + l]
        j += 4 + l
    body = body[:i] + struct.pack(">H", len(out)) + out
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs
def retry(ip, second):
    s = socket.create_connection((ip, 8443), timeout=5)
    s.sendall(without_key_shares(client_hello("api.corp.test")))
    head = recv_exact(s, 5)
    record = recv_exact(s, struct.unpack(">H", head[3:5])[0])
    hrr = head[0] == 0x16 and record[0] == 2 and record[6:38] == HRR
    s.settimeout(0.5)
    try:
        while s.recv(4096):  # a ChangeCipherSpec (middlebox compatibility), if any
            pass
    except socket.timeout:
        pass
    s.settimeout(5)
    s.sendall(client_hello(second))
    try:
        first = s.recv(1)
    except OSError as e:
        first = type(e).__name__.encode()
    s.close()
    return {"hrr": hrr, "second": "reached %02x" % first[0] if len(first) == 1 else "closed " + first.decode()}
ips = step("resolve", lambda: resolve("api.corp.test"))
step("retry-other", lambda: retry(ips[0], "other.corp.test"))
step("still-works", lambda: tls(ips[0], "api.corp.test"))
"#,
    )?;
    let run = world.egc_run(&[], &strs(&cmd))?;
    let mut p = Problems::default();
    p.sane(&run, 0, false);
    p.step_ok(&run, "resolve", |v| is_list(v, &["127.0.0.1"]));
    // The server must not go on with other.corp.test (a ServerHello, 0x16).
    p.step_ok(&run, "retry-other", |v| {
        v["hrr"] == true && v["second"] != "reached 16"
    });
    p.step_ok(&run, "still-works", |v| v == "hello api.corp.test\n");
    p.check(
        !world.log.tls().iter().any(|s| s.contains("other")),
        "a TLS handshake for other.corp.test completed after a HelloRetryRequest",
    );
    p.finish(&world, &[&run])
}

fn preconditions() -> Result<(), String> {
    let uid = fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(String::from))
        .unwrap_or_default();
    if uid != "0" {
        return Err(format!(
            "the names suite needs root (network namespaces, eBPF, cgroups); effective uid {uid}"
        ));
    }
    for tool in [PYTHON, CURL, "/bin/sh"] {
        if !Path::new(tool).exists() {
            return Err(format!("the names suite needs {tool}"));
        }
    }
    for tool in ["ip", "nsenter"] {
        Command::new(tool)
            .arg("-V")
            .output()
            .map_err(|e| format!("the names suite needs `{tool}`: {e}"))?;
    }
    pki().map(|_| ())
}

type Case = fn() -> Result<(), Failed>;

/// How a client sees a connection the gate closed.
const CLOSED: &[&str] = &[
    "SSL",
    "ConnectionResetError",
    "ConnectionAbortedError",
    "BrokenPipeError",
    "OSError",
    "TimeoutError",
];

fn main() {
    let mut args = Arguments::from_args();
    // Trials load eBPF programs and cgroups of their own; one at a time keeps them apart
    // and the timings clean.
    args.test_threads = Some(1);
    let cases: Vec<(&str, Case)> = vec![
        ("allowed::python", allowed_python),
        ("allowed::curl", allowed_curl),
        ("dns::name-not-allowed", name_not_allowed),
        ("gate::sni-mismatch", sni_mismatch),
        ("gate::host-mismatch", host_mismatch),
        ("gate::ipv4-mapped", ipv4_mapped),
        ("gate::split-client-hello", split_client_hello),
        ("gate::http-request-heads", http_request_heads),
        ("gate::name-on-other-port", name_on_other_port),
        (
            "connect::learned-address-only-its-ports",
            learned_address_only_its_ports,
        ),
        ("ttl::address-closes", ttl_closes),
        ("dns::cname-not-allowed", cname_not_allowed),
        ("dns::exfil-label", exfil_label),
        ("dns::other-resolver", other_resolver),
        ("audit::let-through-and-suggest", audit_and_suggest),
        ("audit::connection-keeps-its-name", audit_keeps_names),
        ("ipv6::allowed-and-sni-mismatch", ipv6),
        ("examples::walkthrough", examples_walkthrough),
        ("enforce::serve-names", enforce_serve_names),
        ("attacks::gateway-ports", attack_gateway_ports),
        ("attacks::dns-tricks", attack_dns_tricks),
        ("attacks::gate-tls", attack_gate_tls),
        ("attacks::gate-slowloris", attack_gate_slowloris),
        ("attacks::gate-http", attack_gate_http),
        ("attacks::learned-address", attack_learned_address),
        ("attacks::ttl-timing", attack_ttl_timing),
        ("attacks::dns-flood", attack_dns_flood),
        ("attacks::connection-flood", attack_connection_flood),
        ("attacks::event-injection", attack_event_injection),
        (
            "attacks::event-injection-stderr",
            attack_event_injection_stderr,
        ),
        ("attacks::gate-event-flood", attack_gate_event_flood),
        ("attacks::gate-wildcard-names", attack_gate_wildcard_names),
        ("attacks::gate-hello-retry", attack_gate_hello_retry),
    ];
    // Trials that expose a bug not fixed yet go here, run only with
    // EGC_NAMES_KNOWN_FAILING=1 so that CI passes (none at the moment).
    let known_failing: Vec<(&str, Case)> = vec![];
    let mut cases = cases;
    if std::env::var_os("EGC_NAMES_KNOWN_FAILING").is_some() {
        cases.extend(known_failing);
    }
    let ready = preconditions();
    let trials = cases
        .into_iter()
        .map(|(name, case)| {
            let ready = ready.clone();
            Trial::test(name, move || {
                ready?;
                case()
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if let Ok(pki) = pki() {
        if conclusion.num_failed == 0 {
            let _ = fs::remove_dir_all(&pki.dir);
        } else {
            eprintln!("names suite: trial files kept in {}", pki.dir.display());
        }
    }
    conclusion.exit();
}
