//! The DNS gateway and the gate end to end, on loopback, against a fake upstream resolver
//! and a fake kernel.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use egress_gateway::{Event, Layer};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};

const LOCAL4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(8);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- DNS ----

#[test]
fn allowed_name_is_answered_and_learned_for_every_matching_rule() {
    let f = fixture(|_| {});
    let reply = udp_query(f.dns(), "API.corp.test.", RecordType::A);
    assert_eq!(reply.response_code(), ResponseCode::NoError);
    assert_eq!(addresses(&reply), vec![LOCAL4]);
    assert!(f.upstream.saw("api.corp.test"));
    // Both rules match the question: the union of their grants, set before the reply.
    assert_eq!(
        f.kernel.calls_for(LOCAL4),
        vec![vec![grant(1, 65535), grant(443, 443)]]
    );
    assert_eq!(
        f.gateway.learned(),
        vec![(LOCAL4, vec![grant(1, 65535), grant(443, 443)])]
    );

    let reply = udp_query(f.dns(), "api.corp.test", RecordType::AAAA);
    assert_eq!(addresses(&reply), vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
    // Asking again does not call the kernel again: the set did not change.
    udp_query(f.dns(), "api.corp.test", RecordType::A);
    assert_eq!(f.kernel.calls_for(LOCAL4).len(), 1);
    assert!(f.drain().is_empty(), "no event for allowed names");
}

#[test]
fn disallowed_name_is_refused_locally_with_a_suggestion() {
    let f = fixture(|_| {});
    let reply = udp_query(f.dns(), "EVIL.test.", RecordType::A);
    assert_eq!(reply.response_code(), ResponseCode::Refused);
    assert!(reply.answers().is_empty());
    let e = f.event("name-not-allowed");
    assert_eq!(e.layer, Layer::Dns);
    assert_eq!(e.format, Event::FORMAT);
    assert_eq!(e.name.as_deref(), Some("evil.test"));
    assert_eq!(e.suggestion.as_deref(), Some("host \"evil.test\""));
    assert_eq!(e.protocol, "udp");
    assert_eq!((e.pid, e.comm.as_deref()), (Some(4242), Some("agent")));
    assert_eq!(e.agent, "team.agent");
    assert_eq!(e.attachment, "run-team.agent-1");
    assert!(!e.audit);
    assert!(e.time > 1.6e9);
    // `*.corp.test` does not match `corp.test` itself.
    let reply = udp_query(f.dns(), "corp.test", RecordType::A);
    assert_eq!(reply.response_code(), ResponseCode::Refused);
    assert!(
        f.upstream.seen.lock().unwrap().is_empty(),
        "nothing left the machine"
    );
    assert!(f.kernel.calls.lock().unwrap().is_empty());
}

#[test]
fn exfiltration_labels_never_reach_the_upstream() {
    let f = fixture(|_| {});
    let secret = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b";
    assert_eq!(secret.len(), 63);
    for qname in [
        format!("{secret}.evil.test"),
        format!("{secret}.{secret}.{secret}.evil.test"),
    ] {
        let reply = udp_query(f.dns(), &qname, RecordType::TXT);
        assert_eq!(reply.response_code(), ResponseCode::Refused);
    }
    // One label holding a dot, `x.api.corp` + `test`, must not pass as `x.api.corp.test`.
    let tricky = Name::from_labels(vec![b"x.corp".to_vec(), b"test".to_vec()]).unwrap();
    let mut m = hickory_proto::op::Message::new();
    m.set_id(7).set_recursion_desired(true);
    m.add_query(hickory_proto::op::Query::query(tricky, RecordType::A));
    let reply = udp_exchange(f.dns(), &m.to_vec().unwrap());
    assert_eq!(reply.response_code(), ResponseCode::Refused);
    assert_eq!(f.event("malformed-query").layer, Layer::Dns);
    assert!(!f.upstream.saw_containing(&secret[..20]));
    assert!(f.upstream.seen.lock().unwrap().is_empty());
}

#[test]
fn malformed_queries_are_refused() {
    let f = fixture(|_| {});
    // Garbage after a valid-looking header.
    let mut junk = query_message("api.corp.test", RecordType::A);
    junk.truncate(20);
    let reply = udp_exchange(f.dns(), &junk);
    assert_eq!(reply.response_code(), ResponseCode::FormErr);
    assert_eq!(f.event("malformed-query").layer, Layer::Dns);
    // Two questions.
    let mut m = hickory_proto::op::Message::new();
    m.set_id(9);
    for n in ["api.corp.test.", "evil.test."] {
        m.add_query(hickory_proto::op::Query::query(
            n.parse().unwrap(),
            RecordType::A,
        ));
    }
    let reply = udp_exchange(f.dns(), &m.to_vec().unwrap());
    assert_eq!(reply.response_code(), ResponseCode::FormErr);
    // Class CH.
    let mut q = hickory_proto::op::Query::query("api.corp.test.".parse().unwrap(), RecordType::TXT);
    q.set_query_class(hickory_proto::rr::DNSClass::CH);
    let mut m = hickory_proto::op::Message::new();
    m.set_id(10);
    m.add_query(q);
    let reply = udp_exchange(f.dns(), &m.to_vec().unwrap());
    assert_eq!(reply.response_code(), ResponseCode::Refused);
    assert!(f.upstream.seen.lock().unwrap().is_empty());
}

#[test]
fn cname_to_a_disallowed_name_drops_the_answer() {
    let f = fixture(|_| {});
    let reply = udp_query(f.dns(), "alias.corp.test", RecordType::A);
    assert_eq!(reply.response_code(), ResponseCode::Refused);
    assert!(reply.answers().is_empty());
    let e = f.event("cname-not-allowed");
    assert_eq!(e.name.as_deref(), Some("evil.test"));
    assert_eq!(e.suggestion.as_deref(), Some("host \"evil.test\""));
    assert!(f.kernel.calls.lock().unwrap().is_empty(), "nothing learned");
}

#[test]
fn allowed_cname_chain_is_learned_and_strays_are_dropped() {
    let f = fixture(|_| {});
    let reply = udp_query(f.dns(), "good-alias.corp.test", RecordType::A);
    assert_eq!(reply.response_code(), ResponseCode::NoError);
    assert_eq!(
        reply.answers().len(),
        2,
        "the CNAME and the A, not the stray A"
    );
    assert_eq!(addresses(&reply), vec![LOCAL4]);
    // Only `*.corp.test` matches the question name: port 443 only.
    assert_eq!(f.kernel.calls_for(LOCAL4), vec![vec![grant(443, 443)]]);
    assert!(f.kernel.calls_for("10.0.0.99".parse().unwrap()).is_empty());
}

#[test]
fn ttls_are_capped_and_expired_addresses_removed() {
    let f = fixture(|c| {
        c.ttl_min = Duration::from_secs(1);
        c.ttl_max = Duration::from_secs(1);
    });
    let addr: IpAddr = "127.0.0.2".parse().unwrap();
    let reply = udp_query(f.dns(), "long-ttl.corp.test", RecordType::A);
    assert_eq!(addresses(&reply), vec![addr]);
    assert!(
        reply.answers().iter().all(|r| r.ttl() <= 1),
        "TTL capped at ttl_max"
    );
    assert_eq!(f.kernel.calls_for(addr), vec![vec![grant(443, 443)]]);
    let start = Instant::now();
    wait_until("the learned address to expire", || {
        f.kernel.calls_for(addr).last() == Some(&vec![])
    });
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "expired too early: {waited:?}"
    );
    assert!(f.gateway.learned().is_empty());
}

#[test]
fn short_ttls_are_raised_to_ttl_min() {
    let f = fixture(|c| {
        c.ttl_min = Duration::from_secs(4);
        c.ttl_max = Duration::from_secs(10);
    });
    // api.corp.test has TTL 2: learned for 4 s.
    udp_query(f.dns(), "api.corp.test", RecordType::A);
    std::thread::sleep(Duration::from_millis(2600));
    assert_eq!(
        f.kernel.calls_for(LOCAL4).len(),
        1,
        "still learned after the TTL"
    );
    wait_until("expiry at ttl_min", || {
        f.kernel.calls_for(LOCAL4).last() == Some(&vec![])
    });
}

#[test]
fn queries_over_the_rate_are_refused_with_one_event() {
    let f = fixture(|c| {
        c.query_rate = 1;
        c.query_burst = 3;
    });
    let codes: Vec<ResponseCode> = (0..8)
        .map(|_| udp_query(f.dns(), "api.corp.test", RecordType::A).response_code())
        .collect();
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == ResponseCode::NoError)
            .count(),
        3,
        "{codes:?}"
    );
    assert!(codes[3..].iter().all(|c| *c == ResponseCode::Refused));
    let e = f.event("rate-limited");
    assert_eq!(e.layer, Layer::Dns);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        f.drain().iter().all(|e| e.reason != "rate-limited"),
        "at most one rate-limited event a second"
    );
}

#[test]
fn dns_over_tcp_and_truncated_udp_answers() {
    let f = fixture(|_| {});
    let reply = tcp_query(f.dns(), "api.corp.test", RecordType::A);
    assert_eq!(addresses(&reply), vec![LOCAL4]);
    let refused = tcp_query(f.dns(), "evil.test", RecordType::A);
    assert_eq!(refused.response_code(), ResponseCode::Refused);
    assert_eq!(f.event("name-not-allowed").protocol, "tcp");

    // 100 addresses do not fit 512 bytes: TC over UDP, everything over TCP.
    let udp = udp_query(f.dns(), "big.corp.test", RecordType::A);
    assert!(udp.truncated());
    let tcp = tcp_query(f.dns(), "big.corp.test", RecordType::A);
    assert!(!tcp.truncated());
    assert_eq!(addresses(&tcp).len(), 100);
    wait_until("100 learned addresses", || {
        f.gateway.learned().len() == 1 + 100
    });

    // Several queries on one TCP connection.
    let mut stream = TcpStream::connect(f.dns()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    for _ in 0..3 {
        write_framed(
            &mut stream,
            &query_message("api.corp.test", RecordType::AAAA),
        )
        .unwrap();
        let m = hickory_proto::op::Message::from_vec(&read_framed(&mut stream).unwrap()).unwrap();
        assert_eq!(addresses(&m), vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
    }
}

#[test]
fn ipv6_loopback_listens_on_the_same_port() {
    let f = fixture(|_| {});
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, f.gateway.dns_port));
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        return; // no ::1 on this host: the gateway runs IPv4 only
    }
    let socket = std::net::UdpSocket::bind("[::1]:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    socket
        .send_to(&query_message("api.corp.test", RecordType::A), v6)
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    let reply = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(addresses(&reply), vec![LOCAL4]);
    let reply = tcp_query(v6, "api.corp.test", RecordType::A);
    assert_eq!(addresses(&reply), vec![LOCAL4]);
    TcpStream::connect(SocketAddr::from((Ipv6Addr::LOCALHOST, f.gateway.gate_port))).unwrap();
}

#[test]
fn audit_mode_forwards_disallowed_names_and_sends_their_connections_through_the_gate() {
    let f = fixture(|c| c.audit = true);
    let reply = udp_query(f.dns(), "evil.test", RecordType::A);
    assert_eq!(reply.response_code(), ResponseCode::NoError);
    assert!(f.upstream.saw("evil.test"));
    let e = f.event("name-not-allowed");
    assert!(e.audit);
    // Learned for every TCP port, so the gate reports the name its connections send
    // (the kernel lets them through in audit mode anyway).
    let calls = f.kernel.calls.lock().unwrap().clone();
    assert!(!calls.is_empty());
    for (_, grants) in &calls {
        assert_eq!(grants, &vec![grant(1, u16::MAX)]);
    }
    f.kernel.calls.lock().unwrap().clear();
    // A CNAME to a disallowed name: relayed, flagged, and learned for the question's rules.
    let reply = udp_query(f.dns(), "alias.corp.test", RecordType::A);
    assert_eq!(reply.answers().len(), 2);
    assert!(f.event("cname-not-allowed").audit);
    // (evil.test's address was learned for every port by the audit above.)
    assert_eq!(
        f.kernel.calls_for("10.0.0.66".parse().unwrap()),
        vec![vec![grant(1, u16::MAX), grant(443, 443)]]
    );
}

#[test]
fn host_exceptions_open_a_name_until_they_end() {
    let f = fixture(|c| c.ttl_max = Duration::from_secs(300));
    let addr: IpAddr = "127.0.0.9".parse().unwrap();
    assert_eq!(
        udp_query(f.dns(), "extra.test", RecordType::A).response_code(),
        ResponseCode::Refused
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut exception = rule("extra.test", "exception-1", (8443, 8443));
    exception.until = Some(now + 2);
    f.gateway.add_rule(exception.clone());
    f.gateway.add_rule(exception.clone());
    assert_eq!(f.gateway.rules().len(), 3);
    let reply = udp_query(f.dns(), "extra.test", RecordType::A);
    assert_eq!(addresses(&reply), vec![addr]);
    assert_eq!(f.kernel.calls_for(addr), vec![vec![grant(8443, 8443)]]);
    // The TTL is 300 s, but the exception ends in at most 2 s.
    wait_until("the exception's address to be removed", || {
        f.kernel.calls_for(addr).last() == Some(&vec![])
    });
    assert_eq!(
        udp_query(f.dns(), "extra.test", RecordType::A).response_code(),
        ResponseCode::Refused
    );
}

#[test]
fn set_rules_removes_grants_of_removed_rules_at_once() {
    let f = fixture(|_| {});
    udp_query(f.dns(), "api.corp.test", RecordType::A);
    f.gateway
        .set_rules(vec![rule("*.corp.test", "corp-all", (443, 443))]);
    assert_eq!(
        f.kernel.calls_for(LOCAL4).last(),
        Some(&vec![grant(443, 443)])
    );
    f.gateway.set_rules(vec![]);
    assert_eq!(f.kernel.calls_for(LOCAL4).last(), Some(&vec![]));
}

#[test]
fn shutdown_removes_every_learned_address() {
    let f = fixture(|_| {});
    udp_query(f.dns(), "api.corp.test", RecordType::A);
    udp_query(f.dns(), "api.corp.test", RecordType::AAAA);
    let kernel = std::sync::Arc::clone(&f.kernel);
    let dns = f.dns();
    f.gateway.shutdown();
    assert_eq!(kernel.calls_for(LOCAL4).last(), Some(&vec![]));
    assert_eq!(
        kernel.calls_for(IpAddr::V6(Ipv6Addr::LOCALHOST)).last(),
        Some(&vec![])
    );
    // The sockets are closed.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket
        .send_to(&query_message("api.corp.test", RecordType::A), dns)
        .unwrap();
    assert!(socket.recv_from(&mut [0u8; 512]).is_err());
}

#[test]
fn invalid_configs_are_refused() {
    let up = upstream();
    let (tx, _rx) = std::sync::mpsc::channel();
    let kernel: std::sync::Arc<dyn egress_gateway::Kernel> =
        std::sync::Arc::new(FakeKernel::default());
    let mut c = config(up.addr);
    c.ttl_min = Duration::from_secs(10);
    c.ttl_max = Duration::from_secs(5);
    assert!(egress_gateway::start(c, std::sync::Arc::clone(&kernel), tx.clone()).is_err());
    let mut c = config(up.addr);
    c.query_rate = 0;
    assert!(egress_gateway::start(c, kernel, tx).is_err());
}

// ---- The gate ----

/// A gateway whose kernel sends every gate connection to `origin`, with 127.0.0.1
/// learned (by asking for api.corp.test) unless `learn` is false.
fn gate_fixture(origin_addr: SocketAddr, audit: bool, learn: bool) -> Fixture {
    let f = fixture(|c| c.audit = audit);
    *f.kernel.origin.lock().unwrap() = Some(origin_addr);
    if learn {
        udp_query(f.dns(), "api.corp.test", RecordType::A);
    }
    f
}

#[test]
fn gate_splices_a_matching_sni() {
    let o = origin(b"server-hello", 1);
    let f = gate_fixture(o.addr, false, true);
    let hello = client_hello(Some("API.corp.test"), false);
    let mut c = TcpStream::connect(f.gate()).unwrap();
    c.write_all(&hello).unwrap();
    c.write_all(b"more").unwrap();
    let mut answer = [0u8; 12];
    c.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"server-hello", "the server's bytes come back");
    c.shutdown(Shutdown::Write).unwrap();
    let got = o.got.recv_timeout(Duration::from_secs(8)).unwrap();
    let mut want = hello.clone();
    want.extend_from_slice(b"more");
    assert_eq!(got, want, "the ClientHello is passed on unchanged");
    assert_eq!(f.kernel.origin_asked.lock().unwrap().len(), 1);
    assert!(f.drain().is_empty());
}

#[test]
fn gate_reassembles_a_client_hello_split_across_segments_and_records() {
    let o = origin(b"", 1);
    let f = gate_fixture(o.addr, false, true);
    let hello = records(&client_hello_message(Some("api.corp.test"), false), 50);
    let mut c = TcpStream::connect(f.gate()).unwrap();
    c.set_nodelay(true).unwrap();
    for piece in hello.chunks(37) {
        c.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    c.shutdown(Shutdown::Write).unwrap();
    let got = o.got.recv_timeout(Duration::from_secs(8)).unwrap();
    assert_eq!(got, hello);
}

#[test]
fn gate_closes_a_wrong_sni_and_reports_it() {
    let o = origin(b"", 1);
    let f = gate_fixture(o.addr, false, true);
    let mut c = TcpStream::connect(f.gate()).unwrap();
    c.write_all(&client_hello(Some("evil.test"), false))
        .unwrap();
    assert!(read_all(&mut c).is_empty(), "closed without a byte");
    let e = f.event("sni-mismatch");
    assert_eq!(e.layer, Layer::Gate);
    assert_eq!(e.name.as_deref(), Some("evil.test"));
    assert_eq!(e.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(e.port, Some(o.addr.port()));
    assert_eq!(e.protocol, "tcp");
    assert_eq!(
        e.suggestion,
        Some(format!("host \"evil.test\" port {}", o.addr.port()))
    );
    assert!(!e.audit);
    assert!(
        o.got.recv_timeout(Duration::from_millis(300)).is_err(),
        "the origin never saw a connection"
    );
}

#[test]
fn gate_checks_the_port_the_rule_admitted() {
    // Only `*.corp.test` (port 443) admitted 127.0.0.1 for this name; the origin's port
    // is not 443, so even a matching SNI is refused.
    let o = origin(b"", 1);
    let f = fixture(|_| {});
    *f.kernel.origin.lock().unwrap() = Some(o.addr);
    udp_query(f.dns(), "good-alias.corp.test", RecordType::A);
    let mut c = TcpStream::connect(f.gate()).unwrap();
    c.write_all(&client_hello(Some("good-alias.corp.test"), false))
        .unwrap();
    assert!(read_all(&mut c).is_empty());
    assert!(f
        .event("sni-mismatch")
        .message
        .contains("no host destination admits"));
}

#[test]
fn gate_refuses_no_sni_and_ech() {
    let o = origin(b"", 1);
    let f = gate_fixture(o.addr, false, true);
    let mut c = TcpStream::connect(f.gate()).unwrap();
    c.write_all(&client_hello(None, false)).unwrap();
    assert!(read_all(&mut c).is_empty());
    assert_eq!(f.event("no-sni").name, None);

    let mut c = TcpStream::connect(f.gate()).unwrap();
    c.write_all(&client_hello(Some("api.corp.test"), true))
        .unwrap();
    assert!(read_all(&mut c).is_empty());
    let e = f.event("encrypted-client-hello");
    assert_eq!(e.name.as_deref(), Some("api.corp.test"));
    assert!(o.got.recv_timeout(Duration::from_millis(300)).is_err());
}

#[test]
fn gate_answers_a_wrong_http_host_with_403_json() {
    let o = origin(b"", 1);
    let f = gate_fixture(o.addr, false, true);
    let mut c = TcpStream::connect(f.gate()).unwrap();
    c.write_all(b"GET /x HTTP/1.1\r\nHost: evil.test:8080\r\nUser-Agent: t\r\n\r\n")
        .unwrap();
    let reply = String::from_utf8(read_all(&mut c)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{reply}");
    assert!(reply.contains("Content-Type: application/json\r\n"));
    let body = reply.split("\r\n\r\n").nth(1).unwrap();
    let e: Event = serde_json::from_str(body).unwrap();
    assert_eq!(e.reason, "host-mismatch");
    assert_eq!(e.name.as_deref(), Some("evil.test"));
    assert_eq!(e.layer, Layer::Gate);
    assert_eq!(f.event("host-mismatch").name.as_deref(), Some("evil.test"));
}

#[test]
fn gate_splices_a_matching_http_host_both_ways() {
    let request: &[u8] = b"GET / HTTP/1.1\r\nHost: api.corp.test\r\n\r\n";
    let o = origin(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        request.len(),
    );
    let f = gate_fixture(o.addr, false, true);
    let mut c = TcpStream::connect(f.gate()).unwrap();
    c.write_all(request).unwrap();
    let mut reply = vec![0u8; 40];
    c.read_exact(&mut reply).unwrap();
    assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
    drop(c);
    assert_eq!(o.got.recv_timeout(Duration::from_secs(8)).unwrap(), request);
}

#[test]
fn gate_refuses_addresses_nobody_learned_and_unknown_origins() {
    let o = origin(b"", 1);
    let f = gate_fixture(o.addr, false, false);
    let mut c = TcpStream::connect(f.gate()).unwrap();
    c.write_all(&client_hello(Some("api.corp.test"), false))
        .unwrap();
    assert!(read_all(&mut c).is_empty());
    assert!(f
        .event("sni-mismatch")
        .message
        .contains("no host destination admits"));

    *f.kernel.origin.lock().unwrap() = None;
    let mut c = TcpStream::connect(f.gate()).unwrap();
    let _ = c.write_all(&client_hello(Some("api.corp.test"), false));
    assert!(read_all(&mut c).is_empty());
    assert_eq!(f.event("no-origin").layer, Layer::Gate);
}

#[test]
fn gate_refuses_other_protocols() {
    let o = origin(b"", 1);
    let f = gate_fixture(o.addr, false, true);
    let mut c = TcpStream::connect(f.gate()).unwrap();
    c.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").unwrap();
    assert!(read_all(&mut c).is_empty());
    f.event("not-tls-or-http");
}

#[test]
fn gate_in_audit_mode_splices_and_flags() {
    let o = origin(b"", 1);
    let f = gate_fixture(o.addr, true, true);
    let hello = client_hello(Some("evil.test"), false);
    let mut c = TcpStream::connect(f.gate()).unwrap();
    c.write_all(&hello).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(o.got.recv_timeout(Duration::from_secs(8)).unwrap(), hello);
    let e = f.event("sni-mismatch");
    assert!(e.audit);
    assert!(e.message.contains("audit"));
}

#[test]
fn gate_splices_sni_optional_destinations_without_reading() {
    let o = origin(b"220 server speaks first\r\n", 0);
    let f = fixture(|c| {
        let mut legacy = rule("legacy.test", "legacy", (1, 65535));
        legacy.sni_optional = true;
        c.rules.push(legacy);
    });
    *f.kernel.origin.lock().unwrap() = Some(o.addr);
    udp_query(f.dns(), "legacy.test", RecordType::A);
    let mut c = TcpStream::connect(f.gate()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server speaks first; the client has sent nothing.
    let mut greeting = [0u8; 25];
    c.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"220 server speaks first\r\n");
    assert!(f.drain().is_empty());
}

#[test]
fn the_gateway_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<egress_gateway::Gateway>();
}
