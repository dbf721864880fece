//! Test fixtures: a fake kernel, a fake upstream resolver, DNS and TLS client helpers.
//! Everything runs on loopback; nothing needs root.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::str::FromStr;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egress_check::{HostLabel, HostPattern, PortRange, Protocol};
use egress_gateway::{Event, Gateway, GatewayConfig, Kernel, LearnedGrant, NameRule};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// Records every `set_learned` call; `origin` answers what the test set.
#[derive(Default)]
pub struct FakeKernel {
    pub calls: Mutex<Vec<(IpAddr, Vec<LearnedGrant>)>>,
    pub origin: Mutex<Option<SocketAddr>>,
    pub origin_asked: Mutex<Vec<SocketAddr>>,
}

impl Kernel for FakeKernel {
    fn set_learned(&self, addr: IpAddr, grants: &[LearnedGrant]) -> Result<(), String> {
        self.calls.lock().unwrap().push((addr, grants.to_vec()));
        Ok(())
    }
    fn origin(&self, client: SocketAddr) -> Option<SocketAddr> {
        self.origin_asked.lock().unwrap().push(client);
        *self.origin.lock().unwrap()
    }
    fn owner(&self, _client: SocketAddr, _protocol: Protocol) -> Option<(u32, String)> {
        Some((4242, "agent".into()))
    }
}

impl FakeKernel {
    pub fn calls_for(&self, addr: IpAddr) -> Vec<Vec<LearnedGrant>> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, _)| *a == addr)
            .map(|(_, g)| g.clone())
            .collect()
    }
}

/// A fake upstream resolver on 127.0.0.1 (UDP and TCP, one port) with a fixed zone.
/// Every question it receives is recorded (lower-cased, no trailing dot).
pub use egress_gateway::testing::{read_framed, write_framed, TestResolver as Upstream};

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn rec(owner: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(name(owner), ttl, data)
}

/// The zone: see the test file for what each name is for.
fn zone(q: &Query) -> (ResponseCode, Vec<Record>) {
    let qname = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let a = |owner: &str, ttl, ip: [u8; 4]| rec(owner, ttl, RData::A(A(Ipv4Addr::from(ip))));
    let cname = |owner: &str, target: &str| rec(owner, 60, RData::CNAME(CNAME(name(target))));
    let want_a = q.query_type() == RecordType::A;
    let want_aaaa = q.query_type() == RecordType::AAAA;
    let records = match qname.as_str() {
        "api.corp.test" if want_a => vec![a("api.corp.test.", 2, [127, 0, 0, 1])],
        "api.corp.test" if want_aaaa => vec![rec(
            "api.corp.test.",
            2,
            RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
        )],
        "alias.corp.test" => vec![
            cname("alias.corp.test.", "evil.test."),
            a("evil.test.", 60, [10, 0, 0, 66]),
        ],
        "good-alias.corp.test" => vec![
            cname("good-alias.corp.test.", "api.corp.test."),
            a("api.corp.test.", 30, [127, 0, 0, 1]),
            // Not in the chain: must be neither learned nor relayed.
            a("stray.test.", 30, [10, 0, 0, 99]),
        ],
        "long-ttl.corp.test" => vec![a("long-ttl.corp.test.", 86400, [127, 0, 0, 2])],
        "big.corp.test" => (0..100u8)
            .map(|i| a("big.corp.test.", 60, [10, 1, 0, i]))
            .collect(),
        "evil.test" => vec![a("evil.test.", 60, [10, 0, 0, 66])],
        "extra.test" => vec![a("extra.test.", 300, [127, 0, 0, 9])],
        "legacy.test" => vec![a("legacy.test.", 300, [127, 0, 0, 1])],
        _ => return (ResponseCode::NXDomain, vec![]),
    };
    (ResponseCode::NoError, records)
}

pub fn upstream() -> Upstream {
    Upstream::start(
        std::net::IpAddr::V4(Ipv4Addr::LOCALHOST),
        0,
        std::sync::Arc::new(zone),
    )
    .unwrap()
}

/// A host pattern from its text (`*`, `**`, exact labels).
pub fn pattern(text: &str) -> HostPattern {
    HostPattern {
        labels: text
            .split('.')
            .map(|l| match l {
                "*" => HostLabel::One,
                "**" => HostLabel::OneOrMore,
                s => HostLabel::Exact(s.to_string()),
            })
            .collect(),
    }
}

pub fn rule(text: &str, destination: &str, ports: (u16, u16)) -> NameRule {
    NameRule {
        pattern: pattern(text),
        destination: destination.into(),
        protocols: vec![Protocol::Tcp],
        ports: vec![PortRange {
            start: ports.0,
            end: ports.1,
        }],
        until: None,
        sni_optional: false,
        exception_slot: 0,
        audit_only: false,
    }
}

pub fn grant(lo: u16, hi: u16) -> LearnedGrant {
    LearnedGrant {
        protocol: Protocol::Tcp,
        port_lo: lo,
        port_hi: hi,
        exception_slot: 0,
    }
}

/// The default rules: `api.corp.test` on every TCP port, `*.corp.test` on 443.
pub fn rules() -> Vec<NameRule> {
    vec![
        rule("api.corp.test", "corp-api", (1, 65535)),
        rule("*.corp.test", "corp-all", (443, 443)),
    ]
}

pub fn config(upstream: SocketAddr) -> GatewayConfig {
    GatewayConfig {
        agent: "team.agent".into(),
        attachment: "run-team.agent-1".into(),
        rules: rules(),
        upstream,
        audit: false,
        ttl_min: Duration::from_secs(1),
        ttl_max: Duration::from_secs(60),
        query_rate: 1000,
        query_burst: 1000,
    }
}

pub struct Fixture {
    pub gateway: Gateway,
    pub kernel: Arc<FakeKernel>,
    pub events: Receiver<Event>,
    pub upstream: Upstream,
}

pub fn fixture(edit: impl FnOnce(&mut GatewayConfig)) -> Fixture {
    let upstream = upstream();
    let mut config = config(upstream.addr);
    edit(&mut config);
    let kernel = Arc::new(FakeKernel::default());
    let (tx, rx): (Sender<Event>, Receiver<Event>) = std::sync::mpsc::channel();
    let gateway =
        egress_gateway::start(config, Arc::clone(&kernel) as Arc<dyn Kernel>, tx).unwrap();
    Fixture {
        gateway,
        kernel,
        events: rx,
        upstream,
    }
}

impl Fixture {
    pub fn dns(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.gateway.dns_port))
    }
    pub fn gate(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.gateway.gate_port))
    }

    /// Waits for the next event with `reason` (other events are skipped).
    pub fn event(&self, reason: &str) -> Event {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if e.reason == reason => return e,
                Ok(_) => continue,
                Err(_) => panic!("no {reason} event"),
            }
        }
    }

    /// Every event received so far (without waiting).
    pub fn drain(&self) -> Vec<Event> {
        self.events.try_iter().collect()
    }
}

pub fn query_message(qname: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(rand_id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    m.add_query(Query::query(name(qname), qtype));
    m.to_vec().unwrap()
}

fn rand_id() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        & 0xffff) as u16
}

/// Sends raw `query` over UDP; the reply.
pub fn udp_exchange(server: SocketAddr, query: &[u8]) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    socket.send_to(query, server).unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = socket.recv_from(&mut buf).expect("a DNS reply");
    Message::from_vec(&buf[..n]).unwrap()
}

pub fn udp_query(server: SocketAddr, qname: &str, qtype: RecordType) -> Message {
    udp_exchange(server, &query_message(qname, qtype))
}

pub fn tcp_query(server: SocketAddr, qname: &str, qtype: RecordType) -> Message {
    let mut stream = TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    write_framed(&mut stream, &query_message(qname, qtype)).unwrap();
    Message::from_vec(&read_framed(&mut stream).expect("a DNS reply")).unwrap()
}

pub fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn u16be(v: usize) -> [u8; 2] {
    (v as u16).to_be_bytes()
}

fn ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&u16be(data.len()));
    out.extend_from_slice(data);
}

/// A TLS 1.3-style ClientHello handshake message (not a record).
pub fn client_hello_message(sni: Option<&str>, ech: bool) -> Vec<u8> {
    let mut exts = Vec::new();
    // A GREASE extension first, as browsers send.
    ext(&mut exts, 0x0a0a, &[]);
    if let Some(n) = sni {
        let mut data = Vec::new();
        data.extend_from_slice(&u16be(n.len() + 3));
        data.push(0); // host_name
        data.extend_from_slice(&u16be(n.len()));
        data.extend_from_slice(n.as_bytes());
        ext(&mut exts, 0, &data);
    }
    ext(&mut exts, 43, &[2, 3, 4]); // supported_versions: TLS 1.3
    ext(&mut exts, 16, &[0, 3, 2, b'h', b'2']); // ALPN h2
    if ech {
        ext(&mut exts, 0xfe0d, &[0, 0, 1, 0, 1, 7, 0, 0, 0, 0]);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(32);
    body.extend_from_slice(&[9u8; 32]); // session id
    body.extend_from_slice(&u16be(4));
    body.extend_from_slice(&[0x13, 0x01, 0x13, 0x02]);
    body.extend_from_slice(&[1, 0]); // compression: null
    body.extend_from_slice(&u16be(exts.len()));
    body.extend_from_slice(&exts);
    let mut msg = vec![1, 0];
    msg.extend_from_slice(&u16be(body.len()));
    msg.extend_from_slice(&body);
    msg
}

/// Wraps handshake bytes in TLS records of at most `fragment` bytes each.
pub fn records(handshake: &[u8], fragment: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in handshake.chunks(fragment) {
        out.extend_from_slice(&[0x16, 3, 1]);
        out.extend_from_slice(&u16be(chunk.len()));
        out.extend_from_slice(chunk);
    }
    out
}

pub fn client_hello(sni: Option<&str>, ech: bool) -> Vec<u8> {
    records(&client_hello_message(sni, ech), 16384)
}

/// A listener standing in for the real server: it keeps every byte it receives (per
/// connection, sent on `got` when the client closes) and answers `reply` once it has
/// `expect` bytes.
pub struct Origin {
    pub addr: SocketAddr,
    pub got: Receiver<Vec<u8>>,
}

pub fn origin(reply: &'static [u8], expect: usize) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut all = Vec::new();
                let mut buf = [0u8; 4096];
                let mut replied = expect == 0;
                if replied {
                    let _ = stream.write_all(reply);
                }
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => all.extend_from_slice(&buf[..n]),
                    }
                    if !replied && all.len() >= expect {
                        replied = true;
                        let _ = stream.write_all(reply);
                        let _ = stream.flush();
                    }
                }
                let _ = tx.send(all);
            });
        }
    });
    Origin { addr, got: rx }
}

/// Reads until EOF (or 10 s).
pub fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}
