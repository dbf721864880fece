//! The one exact set algebra of egc, and the one route computation.
//!
//! **API boundary:** free of Z3 and of I/O, so every crate that asks "what may this agent
//! reach" answers it here: the verifier, every backend's translation validation, `egc
//! diff`, `egc query` and the editor's hover.
//!
//! - [`routes`]: every way an agent may open connections (its capabilities, the workflow
//!   steps it runs, the exceptions that list it), each with its path through the policy.
//!   [`routes::unconditional`] is the part a static artifact enforces.
//! - The algebra. A connection is a target (a host name, an IP address or an in-cluster
//!   workload), a port and a protocol. A [`ConnBox`] is a product
//!   `targets × ports × protocols`, and a [`ConnectionSet`] is a finite union of boxes.
//!   Every question about sets is one of two: is `box \ union` empty (and if not, which
//!   concrete connection is in it), and is `box ∩ box` empty (and if not, which connection
//!   is in both). Both are decided exactly:
//!   - IP addresses and ports are unions of inclusive intervals ([`IntervalSet`]); IPv4 as
//!     `u32`, IPv6 as `u128` ([`IpSet`]); [`ConnectionSet::ip_rectangles`] gives the
//!     canonical disjoint address × port rectangles a packet filter is lowered from, and
//!     [`interval_to_prefixes`] the CIDR prefixes of an interval.
//!   - Host patterns are compared label by label from the right. Labels only matter by
//!     equality with the constants of the patterns involved, so a search over "each
//!     constant, or one fresh label that no pattern uses" is exact ([`host_search`]).
//!   - A workload selector matches workloads whose labels include the selector's; the
//!     workload whose labels are exactly a selector's is the one hardest to cover, so it
//!     is the witness.
//!
//!   Searches are bounded ([`DEFAULT_BUDGET`]); a search that runs out says so
//!   ([`Budget`]) and is never read as an answer.

mod conn;
mod decide;
mod host;
mod index;
mod interval;
mod ip;
pub mod routes;
#[cfg(test)]
mod tests;

pub use conn::*;
pub use decide::*;
pub use host::*;
pub use index::*;
pub use interval::*;
pub use ip::*;
pub use routes::{PathNode, Route, RouteIndex, Via};
