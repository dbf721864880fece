//! The egc verifier: proves that no path lets an agent reach what its approvals do not
//! allow, and explains every failure with a path and a concrete, replayed witness.
//!
//! - [`sets`]: exact, solver-free set algebra on connections (stable; other crates may use
//!   it for translation validation).
//! - [`smt`]: the same questions encoded for Z3 (bit-vectors and finite domains).
//! - [`graph`]: the reachability graph (petgraph) and the data-class fixpoint.
//! - [`eval`]: the concrete evaluator ([`allowed`], [`query`]) every witness is replayed on.
//! - [`verify()`]: the properties, per agent in parallel.
//! - `oracle` and `generate` (feature `testing`, off by default: test support, not API):
//!   a brute-force evaluator over a finite universe and a random policy generator, for the
//!   differential tests, the benches and the fuzz crate.
//! - [`sbom`]: `sbom-justified`, checked against the sources an SBOM declares.
//!
//! **API boundary:** [`verify()`], [`query`], [`allowed`], [`Report`] and its parts (each
//! property a typed [`Property`]), [`VerifyConfig`], and the [`sets`] module. The report is
//! plain data with spans: its JSON, SARIF and human forms are written by the CLI (`egc`'s
//! `render` module).

/// The set algebra, from [`egress_sets`] (kept under this path for the verifier's modules).
pub use egress_sets as sets;

pub mod decide;
pub mod eval;
pub mod expect;
#[cfg(feature = "testing")]
pub mod generate;
pub mod graph;
pub mod incremental;
#[cfg(feature = "testing")]
pub mod oracle;
pub mod report;
pub mod sbom;
pub mod smt;
pub mod verify;

pub use decide::Engine;
pub use eval::{allowed, query, QueryAnswer, Route, Via};
pub use incremental::Memo;
pub use report::*;
pub use verify::{
    verify, verify_incremental, verify_within, warning_title, VerifyConfig, NETWORK_SYSCALLS,
};

use egress_check::{AgentId, CheckedPolicy};

/// The connections an agent may open, as boxes with the route that grants each, so
/// other crates can compare enforcement artifacts against the policy.
pub fn allowed_connections(
    policy: &CheckedPolicy,
    agent: AgentId,
) -> Vec<(Route, sets::ConnectionSet)> {
    egress_sets::routes::route_sets(policy, agent)
}
