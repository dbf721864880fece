//! SARIF 2.1.0 (code scanning), the one place egc writes it: for check diagnostics and for
//! verify reports (one result per violation, its path as a code flow, and one per
//! warning). Pure: file texts come from the [`CheckResult`].

use std::collections::BTreeMap;

use egress_check::{CheckResult, Diagnostic, Span};
use egress_verify::{Property, Report};
use serde_json::{json, Value};

use super::json::{file_of, overall, position, witness};
use crate::common::{file_path, line_col, LoadedPolicy};

/// Where the book documents each property.
pub const BOOK_URI: &str = "https://example.com/egc/verify";

/// A rule of a verify report's SARIF log: a property, or a verifier warning code.
enum Rule {
    Property(Property),
    Warning(&'static str),
}

/// SARIF 2.1.0 for check diagnostics (code scanning).
pub fn diagnostics(policies: &[LoadedPolicy]) -> serde_json::Value {
    let mut rules: BTreeMap<&str, &str> = BTreeMap::new();
    let mut results = Vec::new();
    for policy in policies {
        for d in &policy.result.diagnostics {
            rules.insert(
                d.code,
                egress_syntax::diagnostic::code_title(d.code).unwrap_or(""),
            );
            let ((sl, sc), (el, ec)) = line_col(&policy.result, d.span);
            results.push(serde_json::json!({
                "ruleId": d.code,
                "level": if d.is_error() { "error" } else { "warning" },
                "message": { "text": match &d.help { Some(h) => format!("{} ({h})", d.message), None => d.message.clone() } },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": file_path(&policy.result, d.span) },
                        "region": { "startLine": sl, "startColumn": sc, "endLine": el, "endColumn": ec }
                    }
                }]
            }));
        }
    }
    let rules: Vec<serde_json::Value> = rules
        .into_iter()
        .map(|(id, title)| serde_json::json!({ "id": id, "shortDescription": { "text": title }, "helpUri": format!("https://example.com/egc/diagnostics/{id}") }))
        .collect();
    serde_json::json!({
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": { "name": "egc", "version": env!("CARGO_PKG_VERSION"), "informationUri": "https://example.com/egc", "rules": rules } },
            "results": results
        }]
    })
}

fn location(result: &CheckResult, span: Span, message: Option<&str>) -> Value {
    let (sl, sc) = position(result, span, span.start);
    let (el, ec) = position(result, span, span.end);
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

fn warning_result(result: &CheckResult, d: &Diagnostic) -> Value {
    json!({
        "ruleId": d.code,
        "level": if d.is_error() { "error" } else { "warning" },
        "message": { "text": match &d.help { Some(h) => format!("{} ({h})", d.message), None => d.message.clone() } },
        "locations": [location(result, d.span, None)],
    })
}

/// SARIF 2.1.0: one result per violation (its path as a code flow), one per warning.
pub fn report(reports: &[(&CheckResult, &Report)]) -> Value {
    let mut rules: Vec<Rule> = Property::BUILTIN
        .iter()
        .cloned()
        .map(Rule::Property)
        .collect();
    let mut results = Vec::new();
    for (result, report) in reports {
        for p in &report.properties {
            if !rules
                .iter()
                .any(|r| matches!(r, Rule::Property(q) if q == &p.id))
            {
                rules.push(Rule::Property(p.id.clone()));
            }
        }
        for v in &report.violations {
            let primary = v.path.last().map(|n| n.span).unwrap_or_default();
            let flow: Vec<Value> = v
                .path
                .iter()
                .map(|n| json!({ "location": location(result, n.span, Some(&n.note)) }))
                .collect();
            let related: Vec<Value> = v
                .path
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let mut l = location(result, n.span, Some(&n.note));
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
                properties.insert("witness".into(), witness(w));
            }
            results.push(json!({
                "ruleId": v.property,
                "level": "error",
                "message": { "text": v.message },
                "locations": [location(result, primary, None)],
                "relatedLocations": related,
                "codeFlows": [{ "threadFlows": [{ "locations": flow }] }],
                "properties": properties,
            }));
        }
        for d in &report.warnings {
            if !rules
                .iter()
                .any(|r| matches!(r, Rule::Warning(c) if *c == d.code))
            {
                rules.push(Rule::Warning(d.code));
            }
            results.push(warning_result(result, d));
        }
    }
    let rules: Vec<Value> = rules
        .iter()
        .map(|rule| {
            let (id, title, page) = match rule {
                Rule::Property(p) => (p.id(), p.title(), p.book_page()),
                Rule::Warning(code) => ((*code).into(), egress_verify::warning_title(code), *code),
            };
            json!({
                "id": id,
                "shortDescription": { "text": title },
                "helpUri": format!("{BOOK_URI}/{page}.html"),
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
