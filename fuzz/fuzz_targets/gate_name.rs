//! The name gate's parser and the DNS gateway's name checks on arbitrary bytes: the first
//! bytes an agent sends on a connection to a learned address, and the names it asks for.
//! `client_name` must never panic, must be deterministic, and a name it returns is in the
//! form the gate compares (lower case, one trailing dot removed). A query name the gateway accepts
//! is a host name whose exact pattern matches it, and nothing else of a different length.
#![no_main]

use egress_gateway::gate::{client_name, NameParse};
use egress_gateway::names::{exact_pattern, normalize, valid_query_name};
use libfuzzer_sys::fuzz_target;

fn clean(name: &str) -> bool {
    name == name.to_ascii_lowercase()
}

fuzz_target!(|data: &[u8]| {
    let parse = client_name(data);
    assert_eq!(parse, client_name(data), "client_name is not deterministic");
    match &parse {
        NameParse::Tls { sni: Some(n), .. } | NameParse::Http { host: Some(n) } => {
            assert!(clean(n), "name not normalised: {n:?}");
        }
        NameParse::HttpAmbiguous { hosts } => {
            assert!(hosts.len() >= 2 || hosts.iter().all(|h| clean(h)));
        }
        _ => {}
    }
    // A complete parse stays complete (and the same) when more bytes follow.
    if !matches!(parse, NameParse::Incomplete) && !data.is_empty() {
        let mut longer = data.to_vec();
        longer.extend_from_slice(b"\r\n\r\nmore");
        let again = client_name(&longer);
        if matches!(parse, NameParse::Tls { .. }) {
            assert_eq!(again, parse, "trailing bytes changed a complete ClientHello");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if valid_query_name(text).is_ok() {
            let pattern = exact_pattern(text).expect("a valid name has an exact pattern");
            assert!(pattern.matches(text), "{text:?} does not match its own pattern");
            assert!(pattern.matches(&normalize(text)));
            assert!(!pattern.matches(&format!("x.{}", normalize(text))));
        }
    }
});
