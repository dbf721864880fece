//! A resolver for tests, benchmarks and trying things locally (feature `testing`): it
//! answers from a zone function over UDP and TCP and records every name it is asked.
//! Not part of egc's run-time; never point an agent at it outside a test.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::Record;

/// What the resolver answers for a question: a response code and the answer records.
pub type Zone = Arc<dyn Fn(&Query) -> (ResponseCode, Vec<Record>) + Send + Sync>;

/// A running test resolver.
pub struct TestResolver {
    pub addr: SocketAddr,
    /// Every question name received, lower-cased, without the trailing dot, in order.
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl TestResolver {
    /// Listens on `ip:port` (port 0: any free port, the same for UDP and TCP) and answers
    /// from `zone` until the process ends. UDP answers larger than the client's EDNS size
    /// (512 without EDNS) are truncated.
    pub fn start(ip: IpAddr, port: u16, zone: Zone) -> std::io::Result<TestResolver> {
        let (udp, tcp) = bind_pair(ip, port)?;
        let addr = udp.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        {
            let (seen, zone) = (Arc::clone(&seen), Arc::clone(&zone));
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65535];
                while let Ok((n, from)) = udp.recv_from(&mut buf) {
                    if let Some((reply, name)) =
                        buf.get(..n).and_then(|q| answer(&zone, q, Some(512)))
                    {
                        record(&seen, name);
                        let _ = udp.send_to(&reply, from);
                    }
                }
            });
        }
        {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                for stream in tcp.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let (seen, zone) = (Arc::clone(&seen), Arc::clone(&zone));
                    std::thread::spawn(move || {
                        while let Some(query) = read_framed(&mut stream) {
                            if let Some((reply, name)) = answer(&zone, &query, None) {
                                record(&seen, name);
                                if write_framed(&mut stream, &reply).is_err() {
                                    return;
                                }
                            }
                        }
                    });
                }
            });
        }
        Ok(TestResolver { addr, seen })
    }

    /// A resolver on 127.0.0.1 (any free port) that answers every A question with
    /// 127.0.0.1 for `ttl` seconds, and every other question with no records.
    pub fn loopback(ttl: u32) -> std::io::Result<TestResolver> {
        use hickory_proto::rr::rdata::A;
        use hickory_proto::rr::{RData, RecordType};
        TestResolver::start(
            IpAddr::from([127, 0, 0, 1]),
            0,
            Arc::new(move |q| {
                let records = if q.query_type() == RecordType::A {
                    vec![Record::from_rdata(
                        q.name().clone(),
                        ttl,
                        RData::A(A([127, 0, 0, 1].into())),
                    )]
                } else {
                    Vec::new()
                };
                (ResponseCode::NoError, records)
            }),
        )
    }

    /// Was `name` asked for?
    pub fn saw(&self, name: &str) -> bool {
        self.names().iter().any(|n| n == name)
    }

    /// Was a name containing `part` asked for?
    pub fn saw_containing(&self, part: &str) -> bool {
        self.names().iter().any(|n| n.contains(part))
    }

    /// The names asked for so far.
    pub fn names(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn record(seen: &Mutex<Vec<String>>, name: String) {
    if let Ok(mut seen) = seen.lock() {
        seen.push(name);
    }
}

fn bind_pair(ip: IpAddr, port: u16) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(SocketAddr::new(ip, port))?;
        let bound = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(ip, bound)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if port == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

/// The answer to `query` from `zone`, and the question name; `max`: the UDP size limit
/// without EDNS (the answer is truncated beyond the client's size).
pub fn answer(zone: &Zone, query: &[u8], max: Option<usize>) -> Option<(Vec<u8>, String)> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries().first()?.clone();
    let seen = question
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let (code, records) = zone(&question);
    let mut m = Message::new();
    m.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(q.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(code);
    m.add_query(question);
    m.add_answers(records);
    let mut bytes = m.to_vec().ok()?;
    if let Some(max) = max {
        let max = q
            .extensions()
            .as_ref()
            .map_or(max, |e| usize::from(e.max_payload()).max(max));
        if bytes.len() > max {
            bytes = m.truncate().to_vec().ok()?;
        }
    }
    Some((bytes, seen))
}

/// One length-prefixed DNS message from a TCP stream.
pub fn read_framed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut msg).ok()?;
    Some(msg)
}

/// Writes one length-prefixed DNS message.
pub fn write_framed(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::Error::other("message too long"))?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    stream.write_all(&out)
}
