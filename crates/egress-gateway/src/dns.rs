//! The DNS gateway: the only resolver the agent can reach.
//!
//! Guarantees, for every query (UDP or TCP):
//! - A message that is a response, or whose 12-byte header does not parse, is dropped.
//! - Over the rate (`query_rate` per second, burst `query_burst`, for the whole agent):
//!   REFUSED, reason `rate-limited` (at most one such event a second).
//! - A message that does not parse, or has other than exactly one question: FORMERR,
//!   reason `malformed-query`. An opcode other than QUERY: NOTIMP, `malformed-query`. A
//!   class other than IN, or a name that is not a host name ([`valid_query_name`]):
//!   REFUSED, `malformed-query` or `name-too-long`.
//! - A name no live rule matches: REFUSED, reason `name-not-allowed`, with a suggestion.
//!   REFUSED and not NXDOMAIN, so that no resolver caches a negative answer that would
//!   outlive a policy change or a host exception. The query never leaves the machine
//!   (except in audit mode, where it is forwarded and the event says `audit`).
//! - Otherwise the query is forwarded to the upstream, rebuilt from its parsed question
//!   and flags (RD, CD, AD, and EDNS with the payload size clamped to 512..=1232 and the
//!   DO bit, no EDNS options): nothing else the agent put in the message leaves. UDP
//!   queries go over UDP (2 s timeout, one retry; replies whose id or question differ are
//!   ignored), TCP queries over TCP.
//! - The answer's CNAME chain from the question name (through the answer section, at
//!   most 16 links) must be allowed name by name (by any live rule); otherwise the
//!   answer is dropped: REFUSED, reason `cname-not-allowed` naming the first disallowed
//!   target (REFUSED rather than SERVFAIL, which resolvers may cache as a failure).
//! - The A and AAAA records owned by a name of the chain are the answered addresses.
//!   Before the answer is sent, each is learned for the grants of the live rules that
//!   match the question name, until now + clamp(TTL, ttl_min, ttl_max) (the TTL being
//!   the least of the record's and the chain's CNAMEs'), capped at the rule's `until`.
//!   If the kernel refuses them: SERVFAIL, reason `learn-failed`. In audit mode the
//!   addresses of a question name no rule matches are learned too, for every TCP port,
//!   by an `audit_only` rule that never counts as allowing a name: their connections go
//!   through the gate, whose (audit) events then name the host. A v4-mapped AAAA is
//!   learned as its IPv4 address; an unspecified address (`0.0.0.0`, `::`) is never
//!   learned.
//! - The answer the agent gets keeps only the answer records owned by chain names, keeps
//!   the authority section, drops the additional section (but EDNS), and has every TTL
//!   capped at `ttl_max`, so no client caches an address longer than the kernel admits
//!   it. A truncated (TC) upstream answer is passed on: the client retries over TCP. A
//!   UDP answer too large for the client is sent truncated.
//! - An upstream failure (timeout, bad answer): SERVFAIL, no event.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use egress_check::Protocol;
use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::event::{reason, Layer};
use crate::names::{normalize, valid_query_name};
use crate::server::{lock, now_ms, Shared};

/// UDP timeout per attempt to the upstream (one retry).
const UDP_TIMEOUT: Duration = Duration::from_secs(2);
/// Whole exchange with the upstream over TCP.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle TCP client connection is closed after this.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Queries in flight at once (UDP), and TCP client connections at once.
const MAX_UDP_IN_FLIGHT: usize = 256;
const MAX_TCP_CONNECTIONS: usize = 64;
/// The pause after a failed receive or accept.
pub(crate) const ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Longest CNAME chain followed.
const MAX_CHAIN: usize = 16;
/// The EDNS payload size asked of the upstream is clamped to this.
const MAX_UDP_PAYLOAD: u16 = 1232;

/// Answers the UDP queries arriving on `socket`.
pub(crate) async fn serve_udp(shared: Arc<Shared>, socket: UdpSocket) {
    let socket = Arc::new(socket);
    let in_flight = Arc::new(Semaphore::new(MAX_UDP_IN_FLIGHT));
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(ERROR_PAUSE).await;
            continue;
        };
        // Over the limit: drop (the rate limit refuses long before this).
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            continue;
        };
        let query = buf.get(..n).map(<[u8]>::to_vec).unwrap_or_default();
        let shared = Arc::clone(&shared);
        let socket = Arc::clone(&socket);
        tokio::spawn(async move {
            if let Some(reply) = handle(&shared, &query, client, Protocol::Udp).await {
                let _ = socket.send_to(&reply, client).await;
            }
            drop(permit);
        });
    }
}

/// Answers the TCP connections arriving on `listener` (2-byte length framing, several
/// queries per connection, one at a time).
pub(crate) async fn serve_tcp(shared: Arc<Shared>, listener: TcpListener) {
    let connections = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let Ok((stream, client)) = listener.accept().await else {
            // Out of descriptors, say: do not spin.
            tokio::time::sleep(ERROR_PAUSE).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            tcp_connection(&shared, stream, client).await;
            drop(permit);
        });
    }
}

async fn tcp_connection(shared: &Shared, mut stream: TcpStream, client: SocketAddr) {
    loop {
        let Some(query) = read_framed(&mut stream, TCP_IDLE).await else {
            return;
        };
        let Some(reply) = handle(shared, &query, client, Protocol::Tcp).await else {
            return;
        };
        let Ok(written) = tokio::time::timeout(TCP_IDLE, write_framed(&mut stream, &reply)).await
        else {
            return;
        };
        if written.is_err() {
            return;
        }
    }
}

/// Reads one length-prefixed DNS message (RFC 1035 4.2.2); `None` on EOF, error or timeout.
async fn read_framed(stream: &mut TcpStream, timeout: Duration) -> Option<Vec<u8>> {
    let read = async {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut msg).await?;
        Ok::<_, std::io::Error>(msg)
    };
    tokio::time::timeout(timeout, read).await.ok()?.ok()
}

/// Writes one length-prefixed DNS message.
async fn write_framed(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len())
        .map_err(|_| std::io::Error::other("DNS message longer than 65535 bytes"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    stream.write_all(&out).await
}

/// Handles one query from `client`; the reply to send, or `None` to send nothing.
pub(crate) async fn handle(
    shared: &Shared,
    query: &[u8],
    client: SocketAddr,
    protocol: Protocol,
) -> Option<Vec<u8>> {
    let header = Header::from_bytes(query).ok()?;
    if header.message_type() != MessageType::Query {
        return None;
    }
    let audit = shared.audit;

    if let Err(report) = lock(&shared.rate).take() {
        if report {
            shared.emit(
                Layer::Dns,
                reason::RATE_LIMITED,
                false,
                client,
                protocol,
                |e| {
                    e.message = "DNS queries refused: over the agent's query rate".into();
                },
            );
        }
        return error_reply(header.id(), header.op_code(), ResponseCode::Refused, None);
    }

    let refuse_malformed = |why: &str, code: ResponseCode, question: Option<&Query>| {
        shared.emit(
            Layer::Dns,
            reason::MALFORMED_QUERY,
            false,
            client,
            protocol,
            |e| {
                e.message = format!("DNS query refused: {why}");
            },
        );
        error_reply(header.id(), header.op_code(), code, question)
    };
    let Ok(msg) = Message::from_vec(query) else {
        return refuse_malformed("the message does not parse", ResponseCode::FormErr, None);
    };
    if msg.op_code() != OpCode::Query {
        return refuse_malformed("not a standard query", ResponseCode::NotImp, None);
    }
    let question = match msg.queries() {
        [q] => q.clone(),
        _ => return refuse_malformed("not exactly one question", ResponseCode::FormErr, None),
    };
    if question.query_class() != DNSClass::IN {
        return refuse_malformed("class is not IN", ResponseCode::Refused, Some(&question));
    }
    let ascii = question.name().to_ascii();
    if let Err(why) = valid_query_name(&ascii) {
        let printable: String = ascii.chars().take(80).collect();
        shared.emit(Layer::Dns, why, false, client, protocol, |e| {
            e.message = if why == reason::NAME_TOO_LONG {
                format!("DNS query refused: the name is longer than 253 characters or has a label longer than 63 ({printable}...)")
            } else {
                format!("DNS query refused: \"{printable}\" is not a host name")
            };
        });
        return error_reply(
            msg.id(),
            msg.op_code(),
            ResponseCode::Refused,
            Some(&question),
        );
    }
    let name = normalize(&ascii);

    let matched = shared.matches(&name);
    if !matched {
        shared.emit(
            Layer::Dns,
            reason::NAME_NOT_ALLOWED,
            audit,
            client,
            protocol,
            |e| {
                e.name = Some(name.clone());
                e.message = format!(
                    "DNS query for \"{name}\" {}: no host destination of {} matches it",
                    if audit {
                        "would be refused (audit)"
                    } else {
                        "refused"
                    },
                    shared.agent
                );
                e.suggestion = Some(format!("host \"{name}\""));
            },
        );
        if !audit {
            return error_reply(
                msg.id(),
                msg.op_code(),
                ResponseCode::Refused,
                Some(&question),
            );
        }
    }

    let servfail = || {
        error_reply(
            msg.id(),
            msg.op_code(),
            ResponseCode::ServFail,
            Some(&question),
        )
    };
    let Ok(upstream_query) = upstream_query(&msg, &question) else {
        return servfail();
    };
    let answer = match protocol {
        Protocol::Udp => forward_udp(shared.upstream, &upstream_query, msg.id(), &question).await,
        Protocol::Tcp => forward_tcp(shared.upstream, &upstream_query, msg.id(), &question).await,
    };
    let Ok(mut answer) = answer else {
        return servfail();
    };

    let (chain, chain_ttl) = cname_chain(&answer, question.name());
    let denied = chain
        .iter()
        .skip(1)
        .map(|n| n.to_ascii())
        .find(|n| valid_query_name(n).is_err() || !shared.matches(&normalize(n)));
    if let Some(target) = denied {
        let target = normalize(&target);
        shared.emit(Layer::Dns, reason::CNAME_NOT_ALLOWED, audit, client, protocol, |e| {
            e.name = Some(target.clone());
            e.message = format!(
                "DNS answer for \"{name}\" {}: its CNAME chain goes through \"{target}\", which no host destination of {} matches",
                if audit { "would be dropped (audit)" } else { "dropped" },
                shared.agent
            );
            e.suggestion = Some(format!("host \"{target}\""));
        });
        if !audit {
            return error_reply(
                msg.id(),
                msg.op_code(),
                ResponseCode::Refused,
                Some(&question),
            );
        }
    }

    if matched {
        let now = now_ms();
        let addrs: Vec<(IpAddr, u64)> = answer
            .answers()
            .iter()
            .filter(|r| chain.contains(r.name()))
            .filter_map(|r| {
                let ip = match r.data() {
                    RData::A(a) => IpAddr::V4(a.0),
                    // A v4-mapped AAAA is the IPv4 address (as the gate looks it up).
                    RData::AAAA(a) => IpAddr::V6(a.0).to_canonical(),
                    _ => return None,
                };
                if ip.is_unspecified() {
                    return None; // never opened, whatever the answer says
                }
                Some((ip, shared.expiry_ms(r.ttl().min(chain_ttl), now)))
            })
            .collect();
        if !addrs.is_empty() {
            if let Err(err) = shared.learn(&name, &addrs, now) {
                shared.emit(Layer::Dns, reason::LEARN_FAILED, false, client, protocol, |e| {
                    e.name = Some(name.clone());
                    e.message =
                        format!("DNS answer for \"{name}\" dropped: the kernel refused its addresses: {err}");
                });
                return servfail();
            }
        }
    } else if audit {
        // Audit mode: the kernel lets the connection through anyway; learning the
        // address sends it through the gate, whose event then names the host.
        let now = now_ms();
        let addrs: Vec<(IpAddr, u64)> = answer
            .answers()
            .iter()
            .filter(|r| chain.contains(r.name()))
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0).to_canonical()),
                _ => None,
            })
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| (ip, shared.expiry_ms(chain_ttl, now)))
            .collect();
        if let Some(pattern) = crate::names::exact_pattern(&name) {
            let rule = crate::names::NameRule {
                pattern,
                destination: "(audit: not in the policy)".to_string(),
                protocols: vec![Protocol::Tcp],
                ports: vec![egress_check::PortRange {
                    start: 1,
                    end: u16::MAX,
                }],
                until: None,
                sni_optional: false,
                exception_slot: 0,
                audit_only: true,
            };
            let _ = lock(&shared.learned).learn(shared.kernel.as_ref(), &addrs, &[rule], now);
        }
    }

    // What the agent gets: the chain's records only, TTLs capped.
    let cap = shared.ttl_cap();
    let answers: Vec<_> = answer
        .take_answers()
        .into_iter()
        .filter(|r| chain.contains(r.name()))
        .map(|mut r| {
            if r.ttl() > cap {
                r.set_ttl(cap);
            }
            r
        })
        .collect();
    answer.insert_answers(answers);
    for r in answer.name_servers_mut() {
        if r.ttl() > cap {
            r.set_ttl(cap);
        }
    }
    answer.take_additionals();
    answer.set_id(msg.id());
    *answer.queries_mut() = vec![question.clone()];

    let limit = match protocol {
        Protocol::Tcp => usize::from(u16::MAX),
        Protocol::Udp => usize::from(
            msg.extensions()
                .as_ref()
                .map_or(512, |e| e.max_payload().max(512)),
        ),
    };
    let bytes = answer.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    answer.truncate().to_vec().ok()
}

impl Shared {
    /// Does a live rule match `name`?
    fn matches(&self, name: &str) -> bool {
        lock(&self.rules).allows(name, now_ms() / 1000)
    }

    /// Learns `addrs` for the live rules matching `name` now.
    fn learn(&self, name: &str, addrs: &[(IpAddr, u64)], now: u64) -> Result<(), String> {
        // Rules, then the learned table: the order every holder of both takes.
        let rules = lock(&self.rules);
        let matching: Vec<_> = rules
            .matching(name, now / 1000)
            .into_iter()
            .cloned()
            .collect();
        lock(&self.learned).learn(self.kernel.as_ref(), addrs, &matching, now)
    }
}

/// An error reply echoing `question`.
fn error_reply(
    id: u16,
    op_code: OpCode,
    code: ResponseCode,
    question: Option<&Query>,
) -> Option<Vec<u8>> {
    let mut reply = Message::error_msg(id, op_code, code);
    reply.set_recursion_available(true);
    if let Some(q) = question {
        reply.add_query(q.clone());
    }
    reply.to_vec().ok()
}

/// The query sent upstream: the question and flags of the agent's, nothing else.
fn upstream_query(msg: &Message, question: &Query) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let mut q = Message::new();
    q.set_id(msg.id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(msg.recursion_desired())
        .set_checking_disabled(msg.checking_disabled())
        .set_authentic_data(msg.authentic_data());
    q.add_query(question.clone());
    if let Some(edns) = msg.extensions() {
        let mut e = Edns::new();
        e.set_max_payload(edns.max_payload().clamp(512, MAX_UDP_PAYLOAD));
        e.set_dnssec_ok(edns.flags().dnssec_ok);
        q.set_edns(e);
    }
    q.to_vec()
}

/// Is `answer` the upstream's answer to our query `id` for `question`?
fn answers(answer: &Message, id: u16, question: &Query) -> bool {
    answer.id() == id
        && answer.message_type() == MessageType::Response
        && answer.queries() == std::slice::from_ref(question)
}

async fn forward_udp(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    question: &Query,
) -> std::io::Result<Message> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    let mut buf = vec![0u8; 65535];
    for _attempt in 0..2 {
        socket.send(query).await?;
        let deadline = tokio::time::Instant::now() + UDP_TIMEOUT;
        loop {
            let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => break, // timed out: retry
                Ok(Err(e)) => return Err(e),
                Ok(Ok(n)) => n,
            };
            let Some(bytes) = buf.get(..n) else { continue };
            if let Ok(answer) = Message::from_vec(bytes) {
                if answers(&answer, id, question) {
                    return Ok(answer);
                }
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer from the upstream resolver",
    ))
}

async fn forward_tcp(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    question: &Query,
) -> std::io::Result<Message> {
    let exchange = async {
        let mut stream = TcpStream::connect(upstream).await?;
        write_framed(&mut stream, query).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut msg).await?;
        Ok::<_, std::io::Error>(msg)
    };
    let bytes = tokio::time::timeout(TCP_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream timeout"))??;
    let answer = Message::from_vec(&bytes).map_err(std::io::Error::other)?;
    if !answers(&answer, id, question) {
        return Err(std::io::Error::other("the upstream answered another query"));
    }
    Ok(answer)
}

/// The CNAME chain from `qname` through the answer section (`qname` first), and the least
/// TTL of its CNAME records (`u32::MAX` without any).
fn cname_chain(answer: &Message, qname: &Name) -> (Vec<Name>, u32) {
    let mut chain = vec![qname.clone()];
    let mut ttl = u32::MAX;
    let mut current = qname.clone();
    while chain.len() <= MAX_CHAIN {
        let next = answer.answers().iter().find_map(|r| match r.data() {
            RData::CNAME(target)
                if r.record_type() == RecordType::CNAME && *r.name() == current =>
            {
                Some((target.0.clone(), r.ttl()))
            }
            _ => None,
        });
        let Some((target, t)) = next else { break };
        if chain.contains(&target) {
            break;
        }
        ttl = ttl.min(t);
        chain.push(target.clone());
        current = target;
    }
    (chain, ttl)
}
