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

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use egress_gateway::testing::TestResolver;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};

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
    let names = zone.len();
    let resolver = TestResolver::start(
        listen.ip(),
        listen.port(),
        Arc::new(move |q| {
            let name = q
                .name()
                .to_ascii()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            println!("query {name} {}", q.query_type());
            let Some(addrs) = zone.get(&name) else {
                return (ResponseCode::NXDomain, Vec::new());
            };
            let records = addrs
                .iter()
                .filter_map(|addr| match (addr, q.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(*v4))),
                    (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(*v6))),
                    _ => None,
                })
                .map(|rdata| Record::from_rdata(q.name().clone(), ttl, rdata))
                .collect();
            (ResponseCode::NoError, records)
        }),
    )
    .expect("bind the resolver");
    println!("test-resolver on {}: {names} name(s)", resolver.addr);
    loop {
        std::thread::park();
    }
}
