//! Accepted risks (`egc verify --baseline FILE`): findings a reviewer has accepted, each
//! with an owner, a reason and an expiry.
//!
//! The file is TOML, one `[[accepted]]` table per finding:
//!
//! ```toml
//! [[accepted]]
//! property = "data-clearance"
//! agent = "invoice-bot"
//! witness = "a.telemetry.internal:4317/tcp"
//! owner = "security@example.com"
//! reason = "Telemetry is pseudonymised at the collector (DPIA-17)."
//! expires = 2026-09-30
//! ```
//!
//! A finding matches an entry when its property, its agent and its witness (as printed,
//! absent for findings without a connection) are equal. A matched entry that has not
//! expired turns its finding into an accepted one: it no longer fails the run. An expired
//! entry fails the run, whether or not it still matches. An entry that matches no finding
//! is stale: reported, so it can be removed, but not a failure.
//!
//! Everything here is pure: the file's text and today's date come in as values, so tests
//! fix "now".

use std::collections::BTreeSet;

use egress_verify::{Report, Verdict};
use serde::Deserialize;

/// A calendar date (UTC), ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i64,
    pub month: u32,
    pub day: u32,
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Date {
    /// Parses `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Result<Date, String> {
        let bad = || format!("`{text}` is not a date (write YYYY-MM-DD)");
        let mut parts = text.split('-');
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let year: i64 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        let day: u32 = d.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(bad());
        }
        Ok(Date { year, month, day })
    }

    /// The date `days` days after 1970-01-01 (the civil-from-days algorithm).
    pub fn from_unix_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date {
            year,
            month: u32::try_from(month).unwrap_or(1),
            day: u32::try_from(day).unwrap_or(1),
        }
    }

    /// Today in UTC, from the system clock.
    pub fn today() -> Date {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Date::from_unix_days(i64::try_from(seconds / 86_400).unwrap_or(0))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    accepted: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    property: String,
    agent: String,
    #[serde(default)]
    witness: Option<String>,
    owner: String,
    reason: String,
    expires: toml::Value,
}

/// One accepted finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub property: String,
    pub agent: String,
    pub witness: Option<String>,
    pub owner: String,
    pub reason: String,
    /// The last day the acceptance holds.
    pub expires: Date,
}

impl Entry {
    /// `property `P`, agent `A`, witness `W`` for messages.
    pub fn describe(&self) -> String {
        match &self.witness {
            Some(w) => format!(
                "property `{}`, agent `{}`, witness `{w}`",
                self.property, self.agent
            ),
            None => format!("property `{}`, agent `{}`", self.property, self.agent),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "property": self.property,
            "agent": self.agent,
            "witness": self.witness,
            "owner": self.owner,
            "reason": self.reason,
            "expires": self.expires.to_string(),
        })
    }
}

/// Parses a baseline file. Every entry needs a non-empty owner and reason and a date.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let raw: RawFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (index, entry) in raw.accepted.into_iter().enumerate() {
        let at = format!(
            "entry {} (`{}`, `{}`)",
            index + 1,
            entry.property,
            entry.agent
        );
        let expires = match &entry.expires {
            toml::Value::String(s) => Date::parse(s),
            toml::Value::Datetime(d) => Date::parse(&d.to_string()),
            _ => Err("`expires` must be a date (YYYY-MM-DD)".to_string()),
        }
        .map_err(|e| format!("{at}: {e}"))?;
        for (field, value) in [
            ("owner", &entry.owner),
            ("reason", &entry.reason),
            ("property", &entry.property),
            ("agent", &entry.agent),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{at}: `{field}` is empty"));
            }
        }
        out.push(Entry {
            property: entry.property,
            agent: entry.agent,
            witness: entry.witness,
            owner: entry.owner,
            reason: entry.reason,
            expires,
        });
    }
    Ok(out)
}

/// A finding the baseline accepted: which report, the finding, and the entry.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub report: usize,
    pub violation: egress_verify::Violation,
    pub entry: Entry,
}

/// What applying a baseline did.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub accepted: Vec<Accepted>,
    /// Entries past their expiry: each fails the run.
    pub expired: Vec<Entry>,
    /// Entries (not expired) that match no finding.
    pub stale: Vec<Entry>,
    /// (report index, property id) whose every finding was accepted.
    pub accepted_properties: BTreeSet<(usize, egress_verify::Property)>,
}

impl Applied {
    /// Whether the baseline itself fails the run (an expired entry).
    pub fn fails(&self) -> bool {
        !self.expired.is_empty()
    }
}

fn matches(entry: &Entry, v: &egress_verify::Violation) -> bool {
    v.property.is(&entry.property)
        && entry.agent == v.agent
        && entry.witness == v.witness.as_ref().map(ToString::to_string)
}

/// Moves the findings the baseline accepts out of `reports`, and recomputes each
/// property's status and each report's verdict from what is left. A property that was
/// unknown stays unknown: an unknown is never accepted.
pub fn apply(entries: &[Entry], reports: &mut [Report], today: Date) -> Applied {
    let mut applied = Applied::default();
    let mut used = vec![false; entries.len()];
    for (index, report) in reports.iter_mut().enumerate() {
        let mut kept = Vec::new();
        let mut accepted_ids = BTreeSet::new();
        for v in std::mem::take(&mut report.violations) {
            let found = entries.iter().enumerate().find(|(_, e)| matches(e, &v));
            match found {
                Some((i, entry)) => {
                    if let Some(u) = used.get_mut(i) {
                        *u = true;
                    }
                    if entry.expires < today {
                        kept.push(v);
                    } else {
                        accepted_ids.insert(v.property.clone());
                        applied.accepted.push(Accepted {
                            report: index,
                            violation: v,
                            entry: entry.clone(),
                        });
                    }
                }
                None => kept.push(v),
            }
        }
        report.violations = kept;
        for p in &mut report.properties {
            if p.status == Verdict::Violated
                && accepted_ids.contains(&p.id)
                && !report.violations.iter().any(|v| v.property == p.id)
            {
                p.status = Verdict::Verified;
                applied.accepted_properties.insert((index, p.id.clone()));
            }
        }
        report.verdict =
            report
                .properties
                .iter()
                .map(|p| p.status)
                .fold(Verdict::Verified, |acc, s| match (acc, s) {
                    (Verdict::Violated, _) | (_, Verdict::Violated) => Verdict::Violated,
                    (Verdict::Unknown, _) | (_, Verdict::Unknown) => Verdict::Unknown,
                    _ => Verdict::Verified,
                });
    }
    for (entry, used) in entries.iter().zip(used) {
        if entry.expires < today {
            applied.expired.push(entry.clone());
        } else if !used {
            applied.stale.push(entry.clone());
        }
    }
    applied
}

/// The lines `egc verify` prints for people after the policies' reports.
pub fn human_lines(applied: &Applied) -> Vec<String> {
    let mut out = Vec::new();
    for a in &applied.accepted {
        out.push(format!(
            "accepted: {} (owner {}, until {}): {}",
            a.entry.describe(),
            a.entry.owner,
            a.entry.expires,
            a.entry.reason
        ));
    }
    for e in &applied.expired {
        out.push(format!(
            "error: baseline entry expired on {}: {} (owner {}); renew it or fix the finding",
            e.expires,
            e.describe(),
            e.owner
        ));
    }
    for e in &applied.stale {
        out.push(format!(
            "stale: baseline entry {} (owner {}) matches no finding; remove it",
            e.describe(),
            e.owner
        ));
    }
    out
}

/// The baseline's part of `egc verify --format json`.
pub fn json(applied: &Applied) -> serde_json::Value {
    let accepted: Vec<serde_json::Value> = applied
        .accepted
        .iter()
        .map(|a| {
            let mut v = a.entry.json();
            if let Some(o) = v.as_object_mut() {
                o.insert("message".into(), a.violation.message.clone().into());
            }
            v
        })
        .collect();
    serde_json::json!({
        "accepted": accepted,
        "expired": applied.expired.iter().map(Entry::json).collect::<Vec<_>>(),
        "stale": applied.stale.iter().map(Entry::json).collect::<Vec<_>>(),
    })
}

/// Adds each accepted finding to a SARIF log as a result with an external suppression
/// (status `accepted`, the owner and reason as justification), so code scanning shows it
/// as dismissed rather than dropping it. `results[i]` is the check result of report `i`.
pub fn add_to_sarif(
    sarif: &mut serde_json::Value,
    applied: &Applied,
    results: &[&egress_check::CheckResult],
) {
    let mut extra = Vec::new();
    for a in &applied.accepted {
        let Some(result) = results.get(a.report) else {
            continue;
        };
        let alone = Report {
            verdict: Verdict::Violated,
            properties: Vec::new(),
            violations: vec![a.violation.clone()],
            warnings: Vec::new(),
            stats: egress_verify::Stats::default(),
        };
        let one = crate::render::sarif::report(&[(result, &alone)]);
        let Some(mut finding) = one.pointer("/runs/0/results/0").cloned() else {
            continue;
        };
        if let Some(object) = finding.as_object_mut() {
            object.insert(
                "suppressions".into(),
                serde_json::json!([{
                    "kind": "external",
                    "status": "accepted",
                    "justification": format!(
                        "{} (owner {}, until {})",
                        a.entry.reason, a.entry.owner, a.entry.expires
                    ),
                }]),
            );
        }
        extra.push(finding);
    }
    if let Some(list) = sarif
        .pointer_mut("/runs/0/results")
        .and_then(|r| r.as_array_mut())
    {
        list.extend(extra);
    }
}

/// The run's verdict after a baseline: `violated` when an entry expired, `accepted` when
/// everything else holds and some finding was accepted, else the verifier's verdict.
pub fn verdict_text(verdict: Verdict, applied: Option<&Applied>) -> &'static str {
    match (verdict, applied) {
        (Verdict::Verified, Some(a)) if a.fails() => "violated",
        (Verdict::Verified, Some(a)) if !a.accepted.is_empty() => "accepted",
        (v, _) => v.as_str(),
    }
}
