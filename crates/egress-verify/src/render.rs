//! The machine-readable forms of a report: JSON (the `egc verify --format json` contract)
//! and SARIF 2.1.0 (code scanning). Pure: file texts come from the [`CheckResult`].

use std::collections::BTreeMap;

use egress_check::{CheckResult, Diagnostic, Span};
use serde_json::{json, Value};

use crate::report::{Report, Verdict, Violation, BUILTIN_PROPERTIES};
use crate::sets::{Connection, Target};

/// Where the book documents each property.
pub const BOOK_URI: &str = "https://example.com/egc/verify";

/// 1-based (line, column) of a byte offset in the span's file.
pub fn line_col(result: &CheckResult, span: Span, offset: u32) -> (usize, usize) {
    let text = result.file(span.file).map(|f| &*f.text).unwrap_or("");
    let (l, c) = egress_syntax::line_col(text, offset as usize);
    (l + 1, c + 1)
}

fn file_of(result: &CheckResult, span: Span) -> String {
    result
        .file(span.file)
        .map(|f| f.path.clone())
        .unwrap_or_default()
}

/// The JSON form of a witness: `{"host"?, "ip"?, "workload"?, "port", "protocol"}`.
pub fn witness_json(w: &Connection) -> Value {
    let mut object = serde_json::Map::new();
    match &w.target {
        Target::Host(h) => {
            object.insert("host".into(), json!(h));
        }
        Target::Ip(ip) => {
            object.insert("ip".into(), json!(ip.to_string()));
        }
        Target::Workload { namespace, labels } => {
            object.insert(
                "workload".into(),
                json!({ "namespace": namespace, "labels": labels }),
            );
        }
    }
    object.insert("port".into(), json!(w.port));
    object.insert("protocol".into(), json!(w.protocol.as_str()));
    Value::Object(object)
}

fn span_json(result: &CheckResult, span: Span) -> (Value, Value) {
    let (sl, sc) = line_col(result, span, span.start);
    let (el, ec) = line_col(result, span, span.end);
    (
        json!({ "line": sl, "column": sc }),
        json!({ "line": el, "column": ec }),
    )
}

/// One violation as JSON.
pub fn violation_json(result: &CheckResult, v: &Violation) -> Value {
    let path: Vec<Value> = v
        .path
        .iter()
        .map(|n| {
            let (start, end) = span_json(result, n.span);
            json!({ "kind": n.kind, "name": n.name, "file": file_of(result, n.span), "start": start, "end": end })
        })
        .collect();
    json!({
        "property": v.property,
        "agent": v.agent,
        "path": path,
        "witness": v.witness.as_ref().map(witness_json),
        "conditions": v.conditions,
    })
}

fn worst(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::Violated, _) | (_, Verdict::Violated) => Verdict::Violated,
        (Verdict::Unknown, _) | (_, Verdict::Unknown) => Verdict::Unknown,
        _ => Verdict::Verified,
    }
}

/// The verdict over several policies.
pub fn overall(reports: &[(&CheckResult, &Report)]) -> Verdict {
    reports
        .iter()
        .fold(Verdict::Verified, |acc, (_, r)| worst(acc, r.verdict))
}

/// The JSON report over one or more policies: properties merged by id (the worst status
/// wins), violations in policy order.
pub fn json(reports: &[(&CheckResult, &Report)]) -> Value {
    let mut statuses: BTreeMap<String, Verdict> = BTreeMap::new();
    let mut order: Vec<String> = BUILTIN_PROPERTIES.iter().map(|s| s.to_string()).collect();
    for (_, r) in reports {
        for p in &r.properties {
            if !order.contains(&p.id) {
                order.push(p.id.clone());
            }
            let entry = statuses.entry(p.id.clone()).or_insert(Verdict::Verified);
            *entry = worst(*entry, p.status);
        }
    }
    let properties: Vec<Value> = order
        .iter()
        .filter_map(|id| {
            statuses
                .get(id)
                .map(|s| json!({ "id": id, "status": s.as_str() }))
        })
        .collect();
    let violations: Vec<Value> = reports
        .iter()
        .flat_map(|(result, r)| r.violations.iter().map(move |v| violation_json(result, v)))
        .collect();
    json!({
        "verdict": overall(reports).as_str(),
        "properties": properties,
        "violations": violations,
    })
}

fn sarif_location(result: &CheckResult, span: Span, message: Option<&str>) -> Value {
    let (sl, sc) = line_col(result, span, span.start);
    let (el, ec) = line_col(result, span, span.end);
    let mut location = json!({
        "physicalLocation": {
            "artifactLocation": { "uri": file_of(result, span) },
            "region": { "startLine": sl, "startColumn": sc, "endLine": el, "endColumn": ec }
        }
    });
    if let (Some(m), Some(object)) = (message, location.as_object_mut()) {
        object.insert("message".into(), json!({ "text": m }));
    }
    location
}

fn property_title(id: &str) -> &'static str {
    match id {
        "egress-approved" => "Everything an agent can reach lies in its approvals",
        "data-clearance" => "A data class reaches only destinations cleared for it",
        "exception-gated" => "Exceptions are approved, time-bound, audited and within approvals",
        "layers-consistent" => "Syscalls, Linux capabilities and DNS agree with the network policy",
        "no-metadata" => "Link-local and cloud metadata addresses are unreachable",
        "no-unspecified" => {
            "Unspecified and this-network addresses (0.0.0.0/8, ::) are unreachable"
        }
        "within-boundary" => {
            "Everything every agent can reach lies inside the organisation's boundary"
        }
        _ => "A user assertion holds",
    }
}

fn diagnostic_result(result: &CheckResult, d: &Diagnostic) -> Value {
    json!({
        "ruleId": d.code,
        "level": if d.is_error() { "error" } else { "warning" },
        "message": { "text": match &d.help { Some(h) => format!("{} ({h})", d.message), None => d.message.clone() } },
        "locations": [sarif_location(result, d.span, None)],
    })
}

/// SARIF 2.1.0: one result per violation (its path as a code flow), one per warning.
pub fn sarif(reports: &[(&CheckResult, &Report)]) -> Value {
    let mut rule_ids: Vec<String> = BUILTIN_PROPERTIES.iter().map(|s| s.to_string()).collect();
    let mut results = Vec::new();
    for (result, report) in reports {
        for p in &report.properties {
            if !rule_ids.contains(&p.id) {
                rule_ids.push(p.id.clone());
            }
        }
        for v in &report.violations {
            let primary = v.path.last().map(|n| n.span).unwrap_or_default();
            let flow: Vec<Value> = v
                .path
                .iter()
                .map(|n| json!({ "location": sarif_location(result, n.span, Some(&n.note)) }))
                .collect();
            let related: Vec<Value> = v
                .path
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let mut l = sarif_location(result, n.span, Some(&n.note));
                    if let Some(object) = l.as_object_mut() {
                        object.insert("id".into(), json!(i));
                    }
                    l
                })
                .collect();
            let mut properties = serde_json::Map::new();
            properties.insert("agent".into(), json!(v.agent));
            properties.insert("conditions".into(), json!(v.conditions));
            if let Some(w) = &v.witness {
                properties.insert("witness".into(), witness_json(w));
            }
            results.push(json!({
                "ruleId": v.property,
                "level": "error",
                "message": { "text": v.message },
                "locations": [sarif_location(result, primary, None)],
                "relatedLocations": related,
                "codeFlows": [{ "threadFlows": [{ "locations": flow }] }],
                "properties": properties,
            }));
        }
        for d in &report.warnings {
            if !rule_ids.iter().any(|r| r == d.code) {
                rule_ids.push(d.code.to_string());
            }
            results.push(diagnostic_result(result, d));
        }
    }
    let rules: Vec<Value> = rule_ids
        .iter()
        .map(|id| {
            let title = if id.starts_with('W') {
                crate::verify::warning_title(id)
            } else {
                property_title(id)
            };
            json!({
                "id": id,
                "shortDescription": { "text": title },
                "helpUri": format!("{BOOK_URI}/{}.html", if id.starts_with("assert:") { "assertions" } else { id.as_str() }),
            })
        })
        .collect();
    json!({
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "egc",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.com/egc",
                "rules": rules,
            } },
            "results": results,
            "properties": { "verdict": overall(reports).as_str() },
        }]
    })
}
