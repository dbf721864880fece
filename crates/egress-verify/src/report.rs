//! What the verifier answers: plain data, with spans (the CLI and the language server turn
//! spans into lines and columns with the file texts they hold).

use egress_check::Diagnostic;
use std::borrow::Cow;

use serde::{Serialize, Serializer};

use crate::sets::Connection;

/// A property the verifier checks. Its id is stable: it appears in JSON, SARIF, baselines
/// and the book, and is serialized as that id string. Ordered by id, as text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Property {
    EgressApproved,
    DataClearance,
    ExceptionGated,
    LayersConsistent,
    NoMetadata,
    NoUnspecified,
    /// Checked only against a boundary policy (`egc verify --within BOUNDARY`).
    WithinBoundary,
    /// Checked only against an SBOM (`egc verify --sbom BOM`), by [`crate::sbom`].
    SbomJustified,
    /// A user assertion, by its name: id `assert:NAME`.
    Assert(String),
}

impl Property {
    /// The built-in properties, in report order.
    pub const BUILTIN: &'static [Property] = &[
        Property::EgressApproved,
        Property::DataClearance,
        Property::ExceptionGated,
        Property::LayersConsistent,
        Property::NoMetadata,
        Property::NoUnspecified,
    ];

    /// The id as a fixed prefix and a name (empty but for assertions), so ids compare
    /// without being built.
    fn id_parts(&self) -> (&'static str, &str) {
        match self {
            Property::EgressApproved => ("egress-approved", ""),
            Property::DataClearance => ("data-clearance", ""),
            Property::ExceptionGated => ("exception-gated", ""),
            Property::LayersConsistent => ("layers-consistent", ""),
            Property::NoMetadata => ("no-metadata", ""),
            Property::NoUnspecified => ("no-unspecified", ""),
            Property::WithinBoundary => ("within-boundary", ""),
            Property::SbomJustified => ("sbom-justified", ""),
            Property::Assert(name) => ("assert:", name.as_str()),
        }
    }

    /// The stable id: `egress-approved`, ..., `assert:NAME`.
    pub fn id(&self) -> Cow<'static, str> {
        match self {
            Property::Assert(name) => Cow::Owned(format!("assert:{name}")),
            other => Cow::Borrowed(other.id_parts().0),
        }
    }

    /// The property of an id, if it names one.
    pub fn from_id(id: &str) -> Option<Property> {
        if let Some(name) = id.strip_prefix("assert:") {
            return Some(Property::Assert(name.to_string()));
        }
        [Property::WithinBoundary, Property::SbomJustified]
            .iter()
            .chain(Property::BUILTIN)
            .find(|p| p.id_parts().0 == id)
            .cloned()
    }

    /// Whether this is the property of `id`, without building the id.
    pub fn is(&self, id: &str) -> bool {
        let (prefix, name) = self.id_parts();
        id.strip_prefix(prefix) == Some(name)
    }

    /// A one-line statement of what the property says.
    pub fn title(&self) -> &'static str {
        match self {
            Property::EgressApproved => "Everything an agent can reach lies in its approvals",
            Property::DataClearance => "A data class reaches only destinations cleared for it",
            Property::ExceptionGated => {
                "Exceptions are approved, time-bound, audited and within approvals"
            }
            Property::LayersConsistent => {
                "Syscalls, Linux capabilities and DNS agree with the network policy"
            }
            Property::NoMetadata => "Link-local and cloud metadata addresses are unreachable",
            Property::NoUnspecified => {
                "Unspecified and this-network addresses (0.0.0.0/8, ::) are unreachable"
            }
            Property::WithinBoundary => {
                "Everything every agent can reach lies inside the organisation's boundary"
            }
            Property::SbomJustified => "Fetchers reach exactly what the SBOM declares",
            Property::Assert(_) => "A user assertion holds",
        }
    }

    /// The page of the book (`book/src/verify/PAGE.md`) that documents the property.
    pub fn book_page(&self) -> &'static str {
        match self {
            Property::Assert(_) => "assertions",
            other => other.id_parts().0,
        }
    }
}

impl std::fmt::Display for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (prefix, name) = self.id_parts();
        write!(f, "{prefix}{name}")
    }
}

impl Ord for Property {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (self.id_parts(), other.id_parts());
        a.0.bytes()
            .chain(a.1.bytes())
            .cmp(b.0.bytes().chain(b.1.bytes()))
    }
}

impl PartialOrd for Property {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for Property {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
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
    pub id: Property,
    pub status: Status,
}

/// One step of a counterexample path (the same type as a route's steps).
pub use egress_sets::PathNode;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub property: Property,
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
    /// Agents not checked again: an earlier run proved them on the same inputs
    /// ([`crate::verify_incremental`]).
    pub remembered: usize,
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
    pub fn property(&self, property: &Property) -> Option<&PropertyResult> {
        self.properties.iter().find(|p| &p.id == property)
    }
}
