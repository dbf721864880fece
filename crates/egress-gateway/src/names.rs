//! Which names the agent may resolve, and for which ports.
//!
//! Guarantees:
//! - A name is allowed iff some *live* rule's pattern matches it
//!   ([`HostPattern::matches`]: case-insensitive, a trailing dot ignored). A rule is live
//!   until its `until` instant (exclusive); a lapsed rule matches nothing.
//! - [`valid_query_name`] accepts only host names: at most 253 characters (without the
//!   trailing dot), labels of 1 to 63 letters, digits, `-` or `_`. The DNS gateway checks
//!   it before any rule, so a name with escaped dots or binary labels never reaches a
//!   pattern (where `a\.b` could otherwise be read as two labels).

use egress_check::{HostPattern, PortRange, Protocol};

use crate::server::LearnedGrant;

/// One host destination of the agent (or an open host exception).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRule {
    pub pattern: HostPattern,
    /// The destination's qualified name.
    pub destination: String,
    pub protocols: Vec<Protocol>,
    pub ports: Vec<PortRange>,
    /// The rule lapses at this instant (seconds since the Unix epoch): host exceptions.
    pub until: Option<u64>,
    /// The destination accepts connections without SNI / Host (`sni optional`).
    pub sni_optional: bool,
    /// 0: a host destination of the policy; otherwise the exception slot of the token
    /// that opened this name (its grants carry the slot, so the kernel also enforces the
    /// token's expiry and use limit).
    pub exception_slot: u16,
    /// Audit mode only: the question name of a query no rule allows, admitted so that its
    /// connections pass through the gate and are reported with their names. Never counts
    /// as a name the policy allows.
    pub audit_only: bool,
}

impl NameRule {
    /// Is the rule in force at `now` (seconds since the Unix epoch)?
    pub fn is_live(&self, now: u64) -> bool {
        self.until.is_none_or(|until| now < until)
    }

    /// The grants an address answered for a name this rule matches gets: every protocol
    /// with every port range of the rule.
    pub fn grants(&self) -> Vec<LearnedGrant> {
        let mut out = Vec::with_capacity(self.protocols.len() * self.ports.len());
        for &protocol in &self.protocols {
            for range in &self.ports {
                out.push(LearnedGrant {
                    protocol,
                    port_lo: range.start,
                    port_hi: range.end,
                    exception_slot: self.exception_slot,
                });
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Does the rule admit `protocol` on `port`?
    pub fn admits(&self, protocol: Protocol, port: u16) -> bool {
        self.protocols.contains(&protocol) && self.ports.iter().any(|r| r.contains(port))
    }
}

/// The rules, with lookups by name.
#[derive(Clone, Debug, Default)]
pub struct NameTable {
    pub rules: Vec<NameRule>,
}

impl NameTable {
    pub fn new(rules: Vec<NameRule>) -> NameTable {
        NameTable { rules }
    }

    /// The live rules whose pattern matches `name`, in table order.
    pub fn matching(&self, name: &str, now: u64) -> Vec<&NameRule> {
        self.rules
            .iter()
            .filter(|r| r.is_live(now) && r.pattern.matches(name))
            .collect()
    }

    /// Does some live rule match `name`?
    pub fn allows(&self, name: &str, now: u64) -> bool {
        self.rules
            .iter()
            .any(|r| r.is_live(now) && r.pattern.matches(name))
    }

    /// Adds `rule` unless an identical rule is already there.
    pub fn add(&mut self, rule: NameRule) {
        if !self.rules.contains(&rule) {
            self.rules.push(rule);
        }
    }

    /// Drops the rules that lapsed before `now`.
    pub fn prune(&mut self, now: u64) {
        self.rules.retain(|r| r.is_live(now));
    }
}

/// The longest name, in presentation form without the trailing dot.
pub const MAX_NAME_LEN: usize = 253;
/// The longest label.
pub const MAX_LABEL_LEN: usize = 63;

/// Checks that `name` (presentation form, an optional trailing dot) is a host name the
/// gateway will look at. The error is the event reason: `name-too-long` or
/// `malformed-query` (empty name, empty label, a character other than a letter, digit,
/// `-` or `_`).
pub fn valid_query_name(name: &str) -> Result<(), &'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > MAX_NAME_LEN {
        return Err(crate::event::reason::NAME_TOO_LONG);
    }
    if name.is_empty() {
        return Err(crate::event::reason::MALFORMED_QUERY);
    }
    for label in name.split('.') {
        if label.len() > MAX_LABEL_LEN {
            return Err(crate::event::reason::NAME_TOO_LONG);
        }
        if label.is_empty()
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(crate::event::reason::MALFORMED_QUERY);
        }
    }
    Ok(())
}

/// The pattern that matches exactly `name` (a valid query name), if it is one.
pub fn exact_pattern(name: &str) -> Option<HostPattern> {
    let name = normalize(name);
    if valid_query_name(&name).is_err() {
        return None;
    }
    Some(HostPattern {
        labels: name
            .split('.')
            .map(|l| egress_check::HostLabel::Exact(l.to_string()))
            .collect(),
    })
}

/// `name` lower-cased without a trailing dot: the form events and suggestions use.
pub fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use egress_check::HostLabel;

    fn rule(pattern: &[&str], until: Option<u64>) -> NameRule {
        NameRule {
            pattern: HostPattern {
                labels: pattern
                    .iter()
                    .map(|l| match *l {
                        "*" => HostLabel::One,
                        "**" => HostLabel::OneOrMore,
                        s => HostLabel::Exact(s.to_string()),
                    })
                    .collect(),
            },
            destination: "d".into(),
            protocols: vec![Protocol::Tcp],
            ports: vec![PortRange {
                start: 443,
                end: 443,
            }],
            until,
            sni_optional: false,
            exception_slot: 0,
            audit_only: false,
        }
    }

    #[test]
    fn matching_respects_until() {
        let t = NameTable::new(vec![
            rule(&["api", "corp", "test"], None),
            rule(&["*", "corp", "test"], Some(100)),
        ]);
        assert_eq!(t.matching("API.corp.test.", 50).len(), 2);
        assert_eq!(t.matching("api.corp.test", 100).len(), 1);
        assert!(t.allows("x.corp.test", 99));
        assert!(!t.allows("x.corp.test", 100));
        assert!(!t.allows("corp.test", 0));
    }

    #[test]
    fn query_name_validation() {
        assert_eq!(valid_query_name("api.corp.test."), Ok(()));
        assert_eq!(valid_query_name("_dns._udp.x-y.test"), Ok(()));
        assert_eq!(valid_query_name(""), Err("malformed-query"));
        assert_eq!(valid_query_name("."), Err("malformed-query"));
        assert_eq!(valid_query_name("a..b"), Err("malformed-query"));
        assert_eq!(valid_query_name("a\\.corp.test"), Err("malformed-query"));
        assert_eq!(valid_query_name("*.corp.test"), Err("malformed-query"));
        assert_eq!(valid_query_name(&"a".repeat(64)), Err("name-too-long"));
        assert_eq!(valid_query_name(&"a".repeat(63)), Ok(()));
        let long = vec!["abcdefghi"; 26].join("."); // 259 characters
        assert_eq!(valid_query_name(&long), Err("name-too-long"));
        let ok = format!("{}.", vec!["a".repeat(62); 4].join(".")); // 251 + dot
        assert_eq!(valid_query_name(&ok), Ok(()));
    }

    #[test]
    fn grants_cross_protocols_and_ports() {
        let mut r = rule(&["a"], None);
        r.protocols = vec![Protocol::Udp, Protocol::Tcp];
        r.ports = vec![
            PortRange { start: 80, end: 80 },
            PortRange {
                start: 443,
                end: 444,
            },
        ];
        let g = r.grants();
        assert_eq!(g.len(), 4);
        assert!(r.admits(Protocol::Tcp, 444));
        assert!(!r.admits(Protocol::Tcp, 81));
    }
}
