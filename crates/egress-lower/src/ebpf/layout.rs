//! The part of the eBPF map layout the lowering produces (pure): the port rules of a
//! trie entry. The kernel-facing structs that hold them (`RuleSet`, the trie key, the
//! exception slots) live in `egress-enforce`'s `layout` module with the rest of the byte
//! layout shared with `bpf/egress.bpf.c`, which re-exports these.

/// The most port rules one trie entry holds (after push-down). Lowering refuses a policy
/// that needs more for one prefix rather than dropping rules.
pub const MAX_RULES: usize = 32;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// One allowed (protocol, port range), optionally owned by an exception slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRule {
    pub port_lo: u16,
    pub port_hi: u16,
    pub protocol: u8,
    pub pad: u8,
    /// 0 for a policy rule, otherwise the index of an exception slot (`ExceptionSlot` in `egress-enforce`).
    pub exception_slot: u16,
}
