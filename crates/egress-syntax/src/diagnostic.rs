//! Diagnostics shared by every stage: a stable code, a message, labelled spans and help.
//!
//! **API boundary:** codes are stable. A code is never reused for a different problem;
//! each has a page `book/src/diagnostics/CODE.md` that `egc explain CODE` prints.

use serde::Serialize;

use crate::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// A machine-applicable fix: replace `span` with `replacement`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    pub span: Span,
    pub replacement: String,
    pub title: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// The primary location.
    pub span: Span,
    /// The message shown at the primary location.
    pub label: String,
    /// Secondary locations.
    pub labels: Vec<Label>,
    pub help: Option<String>,
    pub suggestion: Option<Suggestion>,
}

impl Diagnostic {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            span,
            label: String::new(),
            labels: Vec::new(),
            help: None,
            suggestion: None,
        }
    }

    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_suggestion(
        mut self,
        span: Span,
        replacement: impl Into<String>,
        title: impl Into<String>,
    ) -> Diagnostic {
        self.suggestion = Some(Suggestion {
            span,
            replacement: replacement.into(),
            title: title.into(),
        });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Sort key for deterministic output: file, position, code, message.
    pub fn sort_key(&self) -> (u32, u32, u32, &'static str, &str) {
        (
            self.span.file.0,
            self.span.start,
            self.span.end,
            self.code,
            self.message.as_str(),
        )
    }
}

/// Sorts diagnostics by (file, span, code, message) and removes exact duplicates.
pub fn sort_diagnostics(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    diagnostics.dedup();
}

/// Every diagnostic code with a one-line title. `book/src/diagnostics/CODE.md` holds the
/// long explanation of each.
pub const CODES: &[(&str, &str)] = &[
    ("E0001", "syntax error"),
    ("E0002", "invalid token"),
    ("E0003", "unterminated string"),
    ("E0004", "input too large or not UTF-8"),
    ("E0010", "unknown name"),
    ("E0011", "duplicate name"),
    ("E0012", "name refers to the wrong kind of item"),
    ("E0013", "module not found"),
    ("E0014", "import cycle"),
    ("E0015", "import outside the project root"),
    ("E0016", "duplicate or conflicting entry"),
    ("E0017", "missing required entry"),
    ("E0020", "port out of range"),
    ("E0021", "invalid port range"),
    ("E0022", "CIDR with host bits set"),
    ("E0023", "IPv4 and IPv6 mixed in one CIDR entry"),
    ("E0024", "invalid CIDR or exclusion"),
    ("E0025", "invalid host name or pattern"),
    ("E0026", "wildcard so broad it means anything"),
    ("E0027", "CIDR so broad it means anything"),
    ("E0028", "a denylist used as an allowlist"),
    ("E0029", "destination without ports"),
    ("E0030", "invalid duration"),
    ("E0031", "exception without an audit sink"),
    ("E0032", "exception lifetime over the allowed maximum"),
    ("E0033", "unknown protocol"),
    ("E0034", "unknown Linux capability"),
    ("E0035", "invalid image digest or cgroup path"),
    ("E0036", "invalid authority key"),
    (
        "E0037",
        "workflow step uses a capability its agent does not have",
    ),
    (
        "E0038",
        "workflow step invokes an agent its agent may not invoke",
    ),
    ("E0039", "invalid escape or string value"),
    ("E0040", "invalid workload selector"),
    ("E0041", "unknown syscall"),
    ("E0042", "invalid number"),
    ("E0043", "invalid local socket path"),
    ("E0044", "abstract Unix socket named in a policy"),
    ("W0001", "unused import"),
    ("W0002", "very broad port range"),
    ("W0003", "very broad CIDR"),
    ("W0004", "capability limited to workflows that never use it"),
    (
        "W0005",
        "`sni optional` on a destination without host names",
    ),
    // Backends (egress-lower).
    ("E0100", "host-name destination the target cannot express"),
    ("E0101", "workload destination the target cannot express"),
    (
        "E0102",
        "wildcard host pattern Cilium cannot express exactly",
    ),
    (
        "E0103",
        "agent left out of a target that cannot identify it",
    ),
    (
        "E0104",
        "workflow-only capability left out of a static artifact",
    ),
    ("E0105", "exception path left out of a static artifact"),
    (
        "E0106",
        "agents whose selectors overlap would add up to a wider set",
    ),
    (
        "E0107",
        "host-name destinations without a DNS rule the target can inspect",
    ),
    ("E0108", "agent without syscall groups"),
    ("E0109", "io_uring syscalls removed from a seccomp profile"),
    (
        "E0110",
        "raw or packet sockets not granted explicitly stay closed",
    ),
    ("E0111", "artifact cannot be decoded for validation"),
    ("E0112", "nftables cgroup path or uid cannot be expressed"),
    (
        "E0113",
        "IPv4-mapped IPv6 addresses left to the eBPF maps' IPv4 rules",
    ),
    ("E0120", "artifact allows more than the policy"),
    (
        "E0121",
        "artifact allows less than the policy without saying so",
    ),
    ("E0122", "translation validation too large to decide"),
    // Runtime enforcement (egress-enforce).
    (
        "E0150",
        "too many port rules for one address prefix in the eBPF program",
    ),
    ("E0151", "unknown agent for runtime enforcement"),
    (
        "E0152",
        "bypass capability or unix socket without a zone's approval at run time",
    ),
    (
        "E0153",
        "command would run without Landlock as a user that has other processes",
    ),
    (
        "E0154",
        "program or script not among the agent's `executable` digests",
    ),
    (
        "E0155",
        "host-name destinations at run time without a resolver for the DNS gateway",
    ),
    // Verifier warnings (egress-verify).
    ("W0101", "capability not used by any agent or workflow step"),
    (
        "W0102",
        "destination shadowed by another in the same capability",
    ),
    ("W0103", "approval that no agent of the zone uses"),
    ("W0104", "property could not be decided"),
];

/// The title of a code, if it exists.
pub fn code_title(code: &str) -> Option<&'static str> {
    CODES
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(code))
        .map(|(_, title)| *title)
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for (code, title) in super::CODES {
            assert!(seen.insert(*code), "{code} is registered twice");
            assert!(code.len() == 5 && code.starts_with(['E', 'W']), "{code}");
            assert!(!title.is_empty(), "{code} has no title");
        }
    }
}
