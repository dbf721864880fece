//! `client_name` on real-shaped and hostile input (it is also fuzzed: it must be total).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::{client_hello, client_hello_message, records};
use egress_gateway::{client_name, NameParse};

fn tls(sni: Option<&str>, ech: bool) -> NameParse {
    NameParse::Tls {
        sni: sni.map(str::to_string),
        ech,
    }
}

#[test]
fn complete_client_hellos() {
    assert_eq!(
        client_name(&client_hello(Some("API.Corp.Test."), false)),
        tls(Some("api.corp.test"), false)
    );
    assert_eq!(client_name(&client_hello(None, false)), tls(None, false));
    assert_eq!(
        client_name(&client_hello(Some("x.test"), true)),
        tls(Some("x.test"), true)
    );
    // Bytes after the ClientHello (early data) do not matter.
    let mut more = client_hello(Some("x.test"), false);
    more.extend_from_slice(&[0x17, 3, 3, 0, 1, 0]);
    assert_eq!(client_name(&more), tls(Some("x.test"), false));
}

#[test]
fn every_prefix_is_incomplete_across_records() {
    for fragment in [16384, 100, 7, 1] {
        let hello = records(&client_hello_message(Some("api.corp.test"), true), fragment);
        for end in 0..hello.len() {
            assert_eq!(
                client_name(&hello[..end]),
                NameParse::Incomplete,
                "fragment {fragment}, prefix {end}"
            );
        }
        assert_eq!(client_name(&hello), tls(Some("api.corp.test"), true));
    }
}

/// Splices one extension (type, data) in front of the ClientHello's extensions.
fn with_extension_first(kind: u16, data: &[u8], sni: &str, ech: bool) -> Vec<u8> {
    let msg = client_hello_message(Some(sni), ech);
    // Layout: 4 header, 2 version, 32 random, 1+32 session id, 2+4 ciphers, 2 compression.
    let ext_len_at = 4 + 2 + 32 + 33 + 6 + 2;
    let old = usize::from(u16::from_be_bytes([msg[ext_len_at], msg[ext_len_at + 1]]));
    let mut ext = kind.to_be_bytes().to_vec();
    ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
    ext.extend_from_slice(data);
    let mut body = msg[4..ext_len_at].to_vec();
    body.extend_from_slice(&((old + ext.len()) as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    body.extend_from_slice(&msg[ext_len_at + 2..]);
    let mut out = vec![1, 0];
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    records(&out, 16384)
}

#[test]
fn an_extension_the_parser_cannot_read_does_not_hide_ech() {
    // A status_request (5) with a body tls-parser rejects, then SNI and ECH.
    let hello = with_extension_first(5, &[0xff], "api.corp.test", true);
    assert_eq!(client_name(&hello), tls(Some("api.corp.test"), true));
}

#[test]
fn ambiguous_client_hellos_are_other() {
    // A second SNI extension.
    let sni = {
        let n = b"evil.test";
        let mut d = ((n.len() + 3) as u16).to_be_bytes().to_vec();
        d.push(0);
        d.extend_from_slice(&(n.len() as u16).to_be_bytes());
        d.extend_from_slice(n);
        d
    };
    let hello = with_extension_first(0, &sni, "api.corp.test", false);
    assert_eq!(client_name(&hello), NameParse::Other);
    // Extension lengths that overrun the list.
    let mut bad = client_hello_message(Some("api.corp.test"), false);
    let last = bad.len() - 1;
    bad.truncate(last);
    let len = bad.len() - 4;
    bad[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    assert_eq!(client_name(&records(&bad, 16384)), NameParse::Other);
    // A handshake that is not a ClientHello.
    let mut server_hello = client_hello_message(Some("a.test"), false);
    server_hello[0] = 2;
    assert_eq!(
        client_name(&records(&server_hello, 16384)),
        NameParse::Other
    );
}

#[test]
fn truncations_and_bit_flips_never_panic() {
    let hello = records(&client_hello_message(Some("api.corp.test"), true), 60);
    for i in 0..hello.len() {
        for bit in 0..8 {
            let mut b = hello.clone();
            b[i] ^= 1 << bit;
            let _ = client_name(&b);
            let _ = client_name(&b[..i]);
        }
    }
    let http = b"GET http://a.test:80/ HTTP/1.1\r\nHost: a.test\r\n\r\n".to_vec();
    for i in 0..http.len() {
        for v in [0u8, b':', b'[', b']', b'@', 0xff] {
            let mut b = http.clone();
            b[i] = v;
            let _ = client_name(&b);
        }
    }
}
