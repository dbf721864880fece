//! A resolver for trying run-time name enforcement locally (book/src/runtime/names.md):
//! it answers the names it is given with loopback addresses and refuses the rest.
//! Not for production; never run it where a real resolver is expected.
//!
//! ```sh
//! test-resolver --listen 127.0.0.53:53 --name api.corp.test --name other.corp.test=127.0.0.2
//! ```
//!
//! `--name NAME` answers `127.0.0.1` (A) and `::1` (AAAA); `--name NAME=IP` answers `IP`.
//! `--ttl SECONDS` sets the answers' TTL (default 60). Every query is printed to stdout.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};

fn answer(zone: &BTreeMap<String, Vec<IpAddr>>, ttl: u32, query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let question = request.queries().first()?.clone();
    let name = question
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    println!("query {name} {}", question.query_type());
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .add_query(question.clone());
    match zone.get(&name) {
        None => {
            response.set_response_code(ResponseCode::NXDomain);
        }
        Some(addrs) => {
            for addr in addrs {
                let rdata = match (addr, question.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
                    _ => continue,
                };
                response.add_answer(Record::from_rdata(question.name().clone(), ttl, rdata));
            }
        }
    }
    response.to_vec().ok()
}

fn main() {
    let mut listen: SocketAddr = "127.0.0.53:53".parse().unwrap();
    let mut zone: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    let mut ttl = 60;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value.parse().expect("--listen ADDR:PORT"),
            "--ttl" => ttl = value.parse().expect("--ttl SECONDS"),
            "--name" => {
                let (name, addrs) = match value.split_once('=') {
                    Some((name, ip)) => (name, vec![ip.parse::<IpAddr>().expect("--name NAME=IP")]),
                    None => (
                        value.as_str(),
                        vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
                    ),
                };
                zone.entry(name.to_ascii_lowercase())
                    .or_default()
                    .extend(addrs);
            }
            other => panic!("unknown option {other}"),
        }
    }
    let udp = UdpSocket::bind(listen).expect("bind UDP");
    let tcp = TcpListener::bind(listen).expect("bind TCP");
    println!("test-resolver on {listen}: {} name(s)", zone.len());
    let tcp_zone = zone.clone();
    std::thread::spawn(move || {
        for stream in tcp.incoming().flatten() {
            let mut stream = stream;
            let mut len = [0u8; 2];
            if stream.read_exact(&mut len).is_err() {
                continue;
            }
            let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if stream.read_exact(&mut query).is_err() {
                continue;
            }
            if let Some(reply) = answer(&tcp_zone, ttl, &query) {
                let n = u16::try_from(reply.len()).unwrap_or(u16::MAX);
                let _ = stream.write_all(&n.to_be_bytes());
                let _ = stream.write_all(&reply);
            }
        }
    });
    let mut buf = [0u8; 4096];
    loop {
        let Ok((n, peer)) = udp.recv_from(&mut buf) else {
            continue;
        };
        if let Some(reply) = answer(&zone, ttl, &buf[..n]) {
            let _ = udp.send_to(&reply, peer);
        }
    }
}
