//! Policy test files (`tests/*.egtest` beside a policy) for `egc test`: parsing and name
//! resolution. Deciding each expectation is the verifier's (`egress_verify::expect`).
//!
//! ```text
//! // A comment.
//! test "the reporter reaches the control plane and nothing on port 25" {
//!     agent reporter can reach "control-plane.corp.internal:443"
//!     agent reporter cannot reach "192.0.2.10:25"
//!     agent * cannot reach "169.254.169.254:80"
//!     data financial cannot reach "collector.example:443/udp"
//!     data financial can reach control_plane
//!     exception gdpr_erasure opens only erasure_endpoints
//! }
//! ```
//!
//! A target in quotes is one connection, `HOST_OR_IP:PORT[/tcp|udp]`; a bare name is a
//! destination of the policy (its local or qualified name).

use egress_check::CheckedPolicy;
use egress_sets::Connection;
use egress_verify::expect::{Expectation, Reach};

/// What a target names before resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawTarget {
    Connection(String),
    Destination(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawExpectation {
    Agent {
        agent: Option<String>,
        can: bool,
        target: RawTarget,
    },
    Data {
        class: String,
        can: bool,
        target: RawTarget,
    },
    ExceptionOnly {
        exception: String,
        within: Vec<String>,
    },
}

/// One expectation of a test block: a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The name of the `test` block.
    pub test: String,
    /// 1-based line of the expectation.
    pub line: usize,
    /// The expectation as written, trimmed.
    pub text: String,
    pub expectation: RawExpectation,
}

/// A syntax error: line and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Splits a line into words, keeping quoted strings (without their quotes) as one word
/// and commas as their own words. Quoted words are marked with a leading `"`.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            ',' | '{' | '}' => out.push(c.to_string()),
            '"' => {
                let mut word = String::from("\"");
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated string".to_string()),
                    }
                }
                out.push(word);
            }
            c => {
                let mut word = String::from(c);
                while let Some(n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, ',' | '{' | '}' | '"') {
                        break;
                    }
                    word.push(*n);
                    chars.next();
                }
                out.push(word);
            }
        }
    }
    Ok(out)
}

fn target(word: Option<&str>) -> Result<RawTarget, String> {
    match word {
        Some(w) if w.starts_with('"') => Ok(RawTarget::Connection(
            w.get(1..).unwrap_or_default().to_string(),
        )),
        Some(w) if is_name(w) => Ok(RawTarget::Destination(w.to_string())),
        _ => Err("expected a connection in quotes (\"HOST:PORT\") or a destination name".into()),
    }
}

fn is_name(w: &str) -> bool {
    w.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn can_reach(w: &[&str]) -> Result<bool, String> {
    match w {
        ["can", "reach"] => Ok(true),
        ["cannot", "reach"] => Ok(false),
        _ => Err("expected `can reach` or `cannot reach`".to_string()),
    }
}

fn expectation(words: &[String]) -> Result<RawExpectation, String> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["agent", agent, c, r, rest @ ..] if rest.len() == 1 => Ok(RawExpectation::Agent {
            agent: match *agent {
                "*" => None,
                a if is_name(a) => Some(a.to_string()),
                _ => return Err("expected an agent name or `*`".to_string()),
            },
            can: can_reach(&[c, r])?,
            target: target(rest.first().copied())?,
        }),
        ["data", class, c, r, rest @ ..] if rest.len() == 1 && is_name(class) => {
            Ok(RawExpectation::Data {
                class: class.to_string(),
                can: can_reach(&[c, r])?,
                target: target(rest.first().copied())?,
            })
        }
        ["exception", name, "opens", "only", rest @ ..] if is_name(name) && !rest.is_empty() => {
            let mut within = Vec::new();
            for (i, word) in rest.iter().enumerate() {
                let expect_name = i % 2 == 0;
                match (expect_name, *word) {
                    (true, w) if is_name(w) => within.push(w.to_string()),
                    (false, ",") => {}
                    _ => return Err("expected destination names separated by commas".into()),
                }
            }
            if rest.len() % 2 == 0 {
                return Err("a trailing comma".into());
            }
            Ok(RawExpectation::ExceptionOnly {
                exception: name.to_string(),
                within,
            })
        }
        _ => Err(
            "expected `agent A can|cannot reach X`, `data C can|cannot reach X` or `exception E opens only D, ...`"
                .to_string(),
        ),
    }
}

/// Parses a test file: every error, or every case.
pub fn parse(text: &str) -> Result<Vec<Case>, Vec<ParseError>> {
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    let mut current: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        let ws = match words(trimmed) {
            Ok(ws) => ws,
            Err(message) => {
                errors.push(ParseError { line, message });
                continue;
            }
        };
        let w: Vec<&str> = ws.iter().map(String::as_str).collect();
        match (&current, w.as_slice()) {
            (None, ["test", name, "{"]) if name.starts_with('"') => {
                current = Some(name.get(1..).unwrap_or_default().to_string());
            }
            (None, _) => errors.push(ParseError {
                line,
                message: "expected `test \"NAME\" {`".to_string(),
            }),
            (Some(_), ["}"]) => current = None,
            (Some(test), _) => match expectation(&ws) {
                Ok(expectation) => cases.push(Case {
                    test: test.clone(),
                    line,
                    text: trimmed.to_string(),
                    expectation,
                }),
                Err(message) => errors.push(ParseError { line, message }),
            },
        }
    }
    if current.is_some() {
        errors.push(ParseError {
            line: text.lines().count(),
            message: "a `test` block is not closed with `}`".to_string(),
        });
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

/// A name as a test writes it: local (`kube_dns`), qualified (`std.dns.kube_dns`), or
/// qualified as the policy's files write it (`dns.kube_dns`).
fn names(name: &egress_check::Name, written: &str) -> bool {
    name.local == written
        || name.qualified == written
        || name
            .qualified
            .strip_suffix(written)
            .is_some_and(|prefix| prefix.ends_with('.'))
}

fn destination(policy: &CheckedPolicy, name: &str) -> Result<egress_check::DestId, String> {
    let found: Vec<egress_check::DestId> = policy
        .destinations
        .iter()
        .filter(|d| !d.inline && names(&d.name, name))
        .map(|d| d.id)
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("no destination `{name}` in the policy")),
        _ => Err(format!(
            "`{name}` names several destinations; write its qualified name"
        )),
    }
}

fn reach(policy: &CheckedPolicy, t: &RawTarget) -> Result<Reach, String> {
    match t {
        RawTarget::Connection(c) => Connection::parse(c).map(Reach::Connection),
        RawTarget::Destination(d) => destination(policy, d).map(Reach::Destination),
    }
}

/// Resolves a case's names against the policy.
pub fn resolve(policy: &CheckedPolicy, raw: &RawExpectation) -> Result<Expectation, String> {
    match raw {
        RawExpectation::Agent { agent, can, target } => Ok(Expectation::Agent {
            agent: match agent {
                None => None,
                Some(a) => Some(
                    policy
                        .agent_by_name(a)
                        .map(|a| a.id)
                        .ok_or_else(|| format!("no agent `{a}` in the policy"))?,
                ),
            },
            can: *can,
            reach: reach(policy, target)?,
        }),
        RawExpectation::Data { class, can, target } => Ok(Expectation::Data {
            class: policy
                .data_classes
                .iter()
                .find(|c| names(&c.name, class))
                .map(|c| c.id)
                .ok_or_else(|| format!("no data class `{class}` in the policy"))?,
            can: *can,
            reach: reach(policy, target)?,
        }),
        RawExpectation::ExceptionOnly { exception, within } => Ok(Expectation::ExceptionOnly {
            exception: policy
                .exception_by_name(exception)
                .map(|e| e.id)
                .ok_or_else(|| format!("no exception `{exception}` in the policy"))?,
            within: within
                .iter()
                .map(|d| destination(policy, d))
                .collect::<Result<_, _>>()?,
        }),
    }
}
