//! The byte layout shared with `bpf/egress.bpf.c`.
//!
//! **Architecture invariant:** every struct here is `#[repr(C)]` and matches the C struct
//! of the same name field for field; `layout_sizes_match_c` in the tests pins the sizes.
//! The layout is documented in `book/src/runtime/maps.md`. The port rules the lowering
//! produces are defined in `egress-lower` (`egress_lower::ebpf::layout`) and re-exported.

pub use egress_lower::ebpf::layout::{PortRule, IPPROTO_TCP, IPPROTO_UDP, MAX_RULES};

/// Exception slots (slot 0 is never used: it means "policy rule").
pub const MAX_EXCEPTION_SLOTS: u32 = 256;
/// Capacity of the rules trie.
pub const RULES_MAX_ENTRIES: u32 = 131_072;

/// Indices into the per-CPU `counters` array.
pub mod counter {
    pub const ALLOWED: u32 = 0;
    pub const DENIED: u32 = 1;
    pub const DENIED_NO_PREFIX: u32 = 2;
    pub const DENIED_PORT: u32 = 3;
    pub const DENIED_PROTOCOL: u32 = 4;
    pub const DENIED_EXCEPTION_EXPIRED: u32 = 5;
    pub const DENIED_EXCEPTION_EXHAUSTED: u32 = 6;
    pub const EVENTS_DROPPED: u32 = 7;
    pub const ALLOWED_VIA_EXCEPTION: u32 = 8;
    pub const DENIED_SOCKET: u32 = 9;
    pub const DENIED_SOCKOPT: u32 = 10;
    pub const DROPPED_PACKETS: u32 = 11;
    pub const DENIED_UNSPECIFIED: u32 = 12;
    pub const DNS_REDIRECTED: u32 = 13;
    pub const GATE_REDIRECTED: u32 = 14;
    pub const AUDITED: u32 = 15;
    /// Number of slots in the array.
    pub const MAX: u32 = 16;
    /// Names in index order, as shown by `egc enforce status`.
    pub const NAMES: &[(u32, &str)] = &[
        (ALLOWED, "allowed"),
        (DENIED, "denied"),
        (DENIED_NO_PREFIX, "denied_no_prefix"),
        (DENIED_PORT, "denied_port"),
        (DENIED_PROTOCOL, "denied_protocol"),
        (DENIED_EXCEPTION_EXPIRED, "denied_exception_expired"),
        (DENIED_EXCEPTION_EXHAUSTED, "denied_exception_exhausted"),
        (EVENTS_DROPPED, "events_dropped"),
        (ALLOWED_VIA_EXCEPTION, "allowed_via_exception"),
        (DENIED_SOCKET, "denied_socket_kind"),
        (DENIED_SOCKOPT, "denied_socket_option"),
        (DROPPED_PACKETS, "dropped_packets"),
        (DENIED_UNSPECIFIED, "denied_unspecified_address"),
        (DNS_REDIRECTED, "dns_to_gateway"),
        (GATE_REDIRECTED, "connects_to_name_gate"),
        (AUDITED, "audited_would_deny"),
    ];
}

/// LPM trie key: prefix length in bits over a 16-byte address (IPv4 is IPv4-mapped).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LpmAddr {
    pub addr: [u8; 16],
}

/// The value of a trie entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleSet {
    pub count: u32,
    pub pad: u32,
    pub rules: [PortRule; MAX_RULES],
}

impl RuleSet {
    /// Packs rules; `None` when there are more than [`MAX_RULES`].
    pub fn from_rules(rules: &[PortRule]) -> Option<RuleSet> {
        if rules.len() > MAX_RULES {
            return None;
        }
        let mut set = RuleSet {
            count: u32::try_from(rules.len()).ok()?,
            pad: 0,
            rules: [PortRule::default(); MAX_RULES],
        };
        for (slot, rule) in set.rules.iter_mut().zip(rules) {
            *slot = *rule;
        }
        Some(set)
    }

    pub fn active(&self) -> &[PortRule] {
        let n = (self.count as usize).min(MAX_RULES);
        self.rules.get(..n).unwrap_or(&[])
    }
}

/// Run-time state of one granted exception token.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExceptionSlot {
    /// `CLOCK_BOOTTIME` nanoseconds from which the slot's rules no longer allow anything.
    pub expires_boot_ns: u64,
    /// 0: unbounded within the lifetime.
    pub max_uses: u64,
    /// Connections opened through this slot (incremented by the program).
    pub used: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub agent_id: u32,
    pub flags: u32,
    /// The DNS gateway's port at 127.0.0.1 and ::1 (0: no gateway).
    pub dns_port: u16,
    /// The name gate's port at 127.0.0.1 and ::1 (0: no gate).
    pub gate_port: u16,
    pub pad: u32,
}

/// `learned` map key: an address the DNS gateway learned (IPv4-mapped).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LearnedKey {
    pub addr: [u8; 16],
}

/// `origin.kind`: a socket redirected to the DNS gateway.
pub const ORIGIN_DNS: u8 = 1;
/// `origin.kind`: a socket redirected to the name gate.
pub const ORIGIN_GATE: u8 = 2;

/// Where a redirected socket was going (`origins` by cookie, `gate_clients` by local port).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub addr: [u8; 16],
    /// Host byte order.
    pub port: u16,
    pub kind: u8,
    /// `AF_INET` (2) or `AF_INET6` (10): the socket's family.
    pub family: u8,
    pub pad: u32,
}

/// A denial as written to the `events` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DenyEvent {
    pub boot_ns: u64,
    pub agent_id: u32,
    pub pid: u32,
    pub uid: u32,
    pub port: u16,
    pub protocol: u8,
    pub reason: u8,
    pub hook: u8,
    /// 1: audit mode let it through.
    pub audit: u8,
    pub pad: [u8; 2],
    pub addr: [u8; 16],
    pub comm: [u8; 16],
}

impl DenyEvent {
    /// Decodes an event from ring-buffer bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<DenyEvent> {
        if bytes.len() < std::mem::size_of::<DenyEvent>() {
            return None;
        }
        // SAFETY: the length is checked above, DenyEvent is repr(C) plain data for which
        // every bit pattern is valid, and read_unaligned has no alignment requirement.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<DenyEvent>()) })
    }
}

pub mod reason {
    pub const NO_PREFIX: u8 = 1;
    pub const PORT: u8 = 2;
    pub const PROTOCOL: u8 = 3;
    pub const EXCEPTION_EXPIRED: u8 = 4;
    pub const EXCEPTION_EXHAUSTED: u8 = 5;
    pub const SOCKET_KIND: u8 = 6;
    pub const SOCKOPT: u8 = 7;
    pub const PACKET_OPTIONS: u8 = 8;
    pub const UNSPECIFIED: u8 = 9;
    pub const EXCEPTION_ENDED: u8 = 10;
    pub const LEARNED_UDP: u8 = 11;
    pub const ORIGINS_FULL: u8 = 12;

    pub fn name(reason: u8) -> &'static str {
        match reason {
            NO_PREFIX => "no-rule-for-address",
            PORT => "port-or-protocol-not-allowed",
            PROTOCOL => "protocol-not-tcp-or-udp",
            EXCEPTION_EXPIRED => "exception-expired",
            EXCEPTION_EXHAUSTED => "exception-uses-exhausted",
            SOCKET_KIND => "socket-not-tcp-or-udp",
            SOCKOPT => "routing-socket-option",
            PACKET_OPTIONS => "packet-with-ip-options-or-routing-header",
            UNSPECIFIED => "unspecified-address",
            EXCEPTION_ENDED => "exception-ended-connection-cut",
            LEARNED_UDP => "udp-to-learned-address",
            ORIGINS_FULL => "redirect-table-full",
            _ => "unknown",
        }
    }
}

pub mod hook {
    pub fn name(hook: u8) -> &'static str {
        match hook {
            1 => "connect4",
            2 => "connect6",
            3 => "sendmsg4",
            4 => "sendmsg6",
            5 => "sock_create",
            6 => "setsockopt",
            7 => "egress",
            8 => "sockops",
            _ => "unknown",
        }
    }
}

/// A socket connected through an exception (`sockets` map, keyed by socket cookie).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockState {
    pub exception_slot: u16,
    pub reported: u8,
    pub pad: [u8; 5],
}

// SAFETY: all of these are repr(C) structs of integers and byte arrays with no padding
// the kernel could leave uninitialised in a way that matters (explicit pad fields), so
// any bit pattern is a valid value.
unsafe impl aya::Pod for LpmAddr {}
// SAFETY: see above.
unsafe impl aya::Pod for RuleSet {}
// SAFETY: see above.
unsafe impl aya::Pod for ExceptionSlot {}
// SAFETY: see above.
unsafe impl aya::Pod for Config {}
// SAFETY: see above.
unsafe impl aya::Pod for SockState {}
// SAFETY: see above.
unsafe impl aya::Pod for LearnedKey {}
// SAFETY: see above.
unsafe impl aya::Pod for Origin {}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[test]
    fn layout_sizes_match_c() {
        // Sizes of the C structs in bpf/egress.bpf.c (x86_64 and aarch64 alike).
        assert_eq!(std::mem::size_of::<LpmAddr>(), 16);
        assert_eq!(std::mem::size_of::<PortRule>(), 8);
        assert_eq!(std::mem::size_of::<RuleSet>(), 8 + 8 * MAX_RULES);
        assert_eq!(std::mem::size_of::<ExceptionSlot>(), 24);
        assert_eq!(std::mem::size_of::<Config>(), 16);
        assert_eq!(std::mem::size_of::<LearnedKey>(), 16);
        assert_eq!(std::mem::size_of::<Origin>(), 24);
        assert_eq!(std::mem::size_of::<DenyEvent>(), 64);
        assert_eq!(std::mem::size_of::<SockState>(), 8);
    }
}
