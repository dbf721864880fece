//! `egc suggest` on arbitrary denial events against the names suite's policy
//! (tests/names/policy): it must never panic, and a change it proposes must check (its
//! report says so otherwise).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct FuzzEvent {
    agent: u8,
    name: Option<String>,
    v6: bool,
    address: Option<[u8; 16]>,
    port: Option<u16>,
    udp: bool,
    layer: u8,
    reason: u8,
    junk: bool,
}

const LAYERS: &[&str] = &["dns", "connect", "gate", "socket", "sockopt", "packet", "other"];
const REASONS: &[&str] = &[
    "name-not-allowed",
    "no-rule-for-address",
    "sni-mismatch",
    "host-mismatch",
    "no-sni",
    "no-host",
    "encrypted-client-hello",
    "ambiguous-host",
    "cname-not-allowed",
    "udp-to-learned-address",
    "port-or-protocol-not-allowed",
    "unknown",
];
const AGENTS: &[&str] = &["main.bot", "bot", "policy.bot", "nobody"];

fn line(e: &FuzzEvent) -> String {
    if e.junk {
        return format!("{{\"format\":\"egc-event/1\",\"name\":{:?}", e.name);
    }
    let address = e.address.map(|a| {
        if e.v6 {
            std::net::Ipv6Addr::from(a).to_string()
        } else {
            std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
        }
    });
    serde_json::json!({
        "format": "egc-event/1",
        "time": 1.0,
        "audit": false,
        "agent": AGENTS[usize::from(e.agent) % AGENTS.len()],
        "attachment": "run-bot-1",
        "pid": 1,
        "comm": "fuzz",
        "name": e.name,
        "address": address,
        "port": e.port,
        "protocol": if e.udp { "udp" } else { "tcp" },
        "layer": LAYERS[usize::from(e.layer) % LAYERS.len()],
        "reason": REASONS[usize::from(e.reason) % REASONS.len()],
        "message": "",
        "suggestion": null,
    })
    .to_string()
}

fuzz_target!(|events: Vec<FuzzEvent>| {
    if events.len() > 16 {
        return;
    }
    let text: String = events.iter().map(|e| line(e) + "\n").collect();
    let policy = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/names/policy"));
    if let Ok(outcome) = egc::cmd::suggest::suggest(&text, "events.jsonl", &[policy], None, false) {
        assert!(
            !outcome.report.contains("does not check"),
            "a suggested change does not check:\n{}\n{}\nevents:\n{text}",
            outcome.diff,
            outcome.report
        );
    }
});
