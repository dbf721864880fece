//! What the verifier answers: plain data, with spans (the CLI and the language server turn
//! spans into lines and columns with the file texts they hold).

use egress_check::Diagnostic;
use serde::Serialize;

use crate::sets::Connection;

/// Property ids, stable: they appear in JSON, SARIF and the book.
pub const EGRESS_APPROVED: &str = "egress-approved";
pub const DATA_CLEARANCE: &str = "data-clearance";
pub const EXCEPTION_GATED: &str = "exception-gated";
pub const LAYERS_CONSISTENT: &str = "layers-consistent";
pub const NO_METADATA: &str = "no-metadata";
pub const NO_UNSPECIFIED: &str = "no-unspecified";
/// Checked only against a boundary policy (`egc verify --within BOUNDARY`).
pub const WITHIN_BOUNDARY: &str = "within-boundary";
/// Checked only against an SBOM (`egc verify --sbom BOM`), by [`crate::sbom`].
pub const SBOM_JUSTIFIED: &str = "sbom-justified";

/// The built-in properties, in report order.
pub const BUILTIN_PROPERTIES: &[&str] = &[
    EGRESS_APPROVED,
    DATA_CLEARANCE,
    EXCEPTION_GATED,
    LAYERS_CONSISTENT,
    NO_METADATA,
    NO_UNSPECIFIED,
];

/// The id of a user assertion: `assert:NAME`.
pub fn assert_property_id(name: &str) -> String {
    format!("assert:{name}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Verified,
    Violated,
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::Violated => "violated",
            Verdict::Unknown => "unknown",
        }
    }
}

/// The status of one property: the same three values as the verdict.
pub type Status = Verdict;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PropertyResult {
    pub id: String,
    pub status: Status,
}

/// One step of a counterexample path (the same type as a route's steps).
pub use egress_sets::PathNode;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub property: String,
    /// The agent the path starts from.
    pub agent: String,
    pub path: Vec<PathNode>,
    /// A concrete connection, replayed through the concrete evaluator; `None` for
    /// properties about something other than a connection (a syscall, a lifetime).
    pub witness: Option<Connection>,
    /// Conditions under which the path is open ("in workflow `month_end`", "token signed
    /// by `dpo`").
    pub conditions: Vec<String>,
    /// The whole story in one sentence.
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub agents: usize,
    /// Set questions decided by exact set algebra.
    pub fast_decisions: usize,
    /// Set questions decided by Z3.
    pub smt_decisions: usize,
    /// Counterexamples replayed through the concrete evaluator.
    pub replayed: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub properties: Vec<PropertyResult>,
    pub violations: Vec<Violation>,
    /// Findings that do not fail verification (unused capabilities, redundant rules,
    /// approvals no agent uses) and notes on unknown results.
    pub warnings: Vec<Diagnostic>,
    pub stats: Stats,
}

impl Report {
    pub fn property(&self, id: &str) -> Option<&PropertyResult> {
        self.properties.iter().find(|p| p.id == id)
    }
}
