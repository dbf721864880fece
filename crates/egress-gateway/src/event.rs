//! The denial event: one JSON object per line, the same shape for every layer.

use serde::{Deserialize, Serialize};

/// Where a connection was stopped (or, in audit mode, would have been).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// The DNS gateway refused a name or dropped an answer.
    Dns,
    /// The eBPF connect/sendmsg hook refused an address, port or protocol.
    Connect,
    /// The name gate refused a connection to a learned address (SNI / Host mismatch).
    Gate,
    /// `sock_create`: a socket kind other than TCP/UDP.
    Socket,
    /// `setsockopt`: a routing header or IP options.
    Sockopt,
    /// The egress packet gate.
    Packet,
}

/// One denial (or, with `audit`, one would-be denial).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Always `"egc-event/1"`.
    pub format: String,
    /// Seconds since the Unix epoch (with milliseconds).
    pub time: f64,
    /// `true`: audit mode let this through; it would be denied.
    pub audit: bool,
    /// The agent's qualified name.
    pub agent: String,
    /// The attachment (`run-<agent>-<pid>` or the `egc enforce apply` name).
    pub attachment: String,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// The host name asked for (DNS), sent (SNI / Host) or that admitted the address.
    pub name: Option<String>,
    /// The destination address (none for a refused name).
    pub address: Option<String>,
    pub port: Option<u16>,
    /// `tcp`, `udp`, or `ipproto-N`.
    pub protocol: String,
    pub layer: Layer,
    /// A stable reason code, kebab-case (`name-not-allowed`, `no-prefix`, `sni-mismatch`, ...).
    pub reason: String,
    /// Human explanation.
    pub message: String,
    /// The `.egress` change that would allow it (a destination line), when there is one.
    pub suggestion: Option<String>,
}

impl Event {
    pub const FORMAT: &'static str = "egc-event/1";
}

/// The reason codes this crate emits (stable, kebab-case).
pub mod reason {
    /// DNS: a query that does not parse, is not a plain `QUERY` for one `IN` question,
    /// or whose name is not a host name (labels of letters, digits, `-` and `_`).
    pub const MALFORMED_QUERY: &str = "malformed-query";
    /// DNS: a name longer than 253 characters or with a label longer than 63.
    pub const NAME_TOO_LONG: &str = "name-too-long";
    /// DNS: more queries than `query_rate` / `query_burst` allow.
    pub const RATE_LIMITED: &str = "rate-limited";
    /// DNS: no rule matches the name asked for.
    pub const NAME_NOT_ALLOWED: &str = "name-not-allowed";
    /// DNS: the answer's CNAME chain goes through a name no rule matches.
    pub const CNAME_NOT_ALLOWED: &str = "cname-not-allowed";
    /// DNS: the kernel refused the answered addresses (`Kernel::set_learned` failed).
    pub const LEARN_FAILED: &str = "learn-failed";
    /// Gate: the kernel knows no original destination for the connection.
    pub const NO_ORIGIN: &str = "no-origin";
    /// Gate: the TLS SNI matches no rule that admitted the address and port.
    pub const SNI_MISMATCH: &str = "sni-mismatch";
    /// Gate: the HTTP Host matches no rule that admitted the address and port.
    pub const HOST_MISMATCH: &str = "host-mismatch";
    /// Gate: a TLS ClientHello without SNI.
    pub const NO_SNI: &str = "no-sni";
    /// Gate: an HTTP request without a Host (nor an absolute request target).
    pub const NO_HOST: &str = "no-host";
    /// Gate: a TLS ClientHello with an Encrypted Client Hello extension.
    pub const ENCRYPTED_CLIENT_HELLO: &str = "encrypted-client-hello";
    /// Gate: the first bytes are neither a TLS ClientHello nor an HTTP/1.x request head
    /// (or they did not complete within 10 s and 16 KiB).
    pub const NOT_TLS_OR_HTTP: &str = "not-tls-or-http";
    /// A datagram from a UDP socket connected to a learned address (no name can be
    /// checked in a datagram; the connect hook sends such sockets to the gate's sink).
    pub const UDP_TO_LEARNED: &str = "udp-to-learned-address";
    /// Gate: an HTTP request head naming more than one host (two Host headers, or a Host
    /// and an absolute request target that disagree).
    pub const AMBIGUOUS_HOST: &str = "ambiguous-host";
}
