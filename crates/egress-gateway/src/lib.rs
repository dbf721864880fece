//! Run-time name enforcement (`egc run`, `egc enforce`): see `book/src/runtime/names.md`.
//!
//! - [`dns`]: the DNS gateway. The eBPF connect/sendmsg hooks send every DNS query of the
//!   agent's cgroup (port 53, any address, UDP and TCP) here. It answers only names one of
//!   the agent's host destinations (or an open host exception) allows, forwards them to
//!   the upstream resolver, and puts each answered address into the kernel's `learned`
//!   map for that destination's ports and protocols, for the record's TTL (clamped).
//! - [`gate`]: connections to learned addresses are redirected here by the connect hook.
//!   The gate reads the TLS ClientHello SNI (or the HTTP Host header), and splices the
//!   connection to its original destination only when the name matches a destination
//!   that admitted the address. It never terminates TLS.
//! - [`event`]: the one JSON denial event every layer emits.
//!
//! The kernel side (maps, original destinations, socket owners) is behind [`Kernel`],
//! implemented by `egress-enforce`; this crate has no privileged or `unsafe` code.

pub mod dns;
pub mod event;
pub mod gate;
mod learned;
pub mod names;
pub mod server;
#[cfg(feature = "testing")]
pub mod testing;

pub use event::{Event, Layer};
pub use gate::{client_name, NameParse};
pub use names::{valid_query_name, NameRule, NameTable};
pub use server::{start, Gateway, GatewayConfig, Kernel, LearnedGrant};
