//! The machine-readable forms of a report: JSON (the `egc verify --format json` contract)
//! and SARIF 2.1.0 (code scanning). Pure: file texts come from the [`CheckResult`].

use std::collections::BTreeMap;

use egress_check::{CheckResult, Diagnostic, Span};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};

use crate::report::{Report, Verdict, Violation, BUILTIN_PROPERTIES};
use crate::sets::{Connection, Target};

/// Where the book documents each property.
pub const BOOK_URI: &str = "https://example.com/egc/verify";

/// 1-based (line, column) of a byte offset in the span's file, from the file's line
/// index (built once per file), never by rescanning the text.
pub fn line_col(result: &CheckResult, span: Span, offset: u32) -> (usize, usize) {
    let (l, c) = result
        .file(span.file)
        .map(|f| f.line_col(offset as usize))
        .unwrap_or((0, 0));
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

/// The properties of [`json`]: merged by id (the worst status wins), built-in ones first.
fn properties_json(reports: &[(&CheckResult, &Report)]) -> Value {
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
    Value::Array(
        order
            .iter()
            .filter_map(|id| {
                statuses
                    .get(id)
                    .map(|s| json!({ "id": id, "status": s.as_str() }))
            })
            .collect(),
    )
}

/// A (line, column) position, serialized as [`span_json`] writes it.
struct Position((usize, usize));

impl Serialize for Position {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("column", &self.0 .1)?;
        map.serialize_entry("line", &self.0 .0)?;
        map.end()
    }
}

/// One step of a violation's path, serialized as [`violation_json`] writes it.
struct NodeJson<'a>(&'a CheckResult, &'a crate::report::PathNode);

impl Serialize for NodeJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (result, n) = (self.0, self.1);
        let file = result.file(n.span.file).map_or("", |f| f.path.as_str());
        // Keys in serde_json's (sorted) order, so the bytes equal the `Value` form's.
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("end", &Position(line_col(result, n.span, n.span.end)))?;
        map.serialize_entry("file", file)?;
        map.serialize_entry("kind", n.kind)?;
        map.serialize_entry("name", &n.name)?;
        map.serialize_entry("start", &Position(line_col(result, n.span, n.span.start)))?;
        map.end()
    }
}

/// One violation, serialized exactly as [`violation_json`] would be, without building it.
struct ViolationJson<'a>(&'a CheckResult, &'a Violation);

impl Serialize for ViolationJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (result, v) = (self.0, self.1);
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("agent", &v.agent)?;
        map.serialize_entry("conditions", &v.conditions)?;
        map.serialize_entry("path", &Seq(v.path.iter().map(|n| NodeJson(result, n))))?;
        map.serialize_entry("property", &v.property)?;
        map.serialize_entry("witness", &v.witness.as_ref().map(witness_json))?;
        map.end()
    }
}

/// A sequence serialized from an iterator, once.
struct Seq<I>(I);

impl<I: Iterator + Clone> Serialize for Seq<I>
where
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.clone())
    }
}

/// A top-level field of the streamed report.
enum Field<'a> {
    Value(&'a Value),
    Violations,
}

/// The JSON report of [`json`], serialized without building it as one [`Value`] (whose
/// size grows with every violation): `extra` fields are added at the top level, replacing
/// any of the same name. The bytes equal those of serializing [`json`] with `extra`
/// inserted into it.
pub struct JsonReport<'a> {
    reports: &'a [(&'a CheckResult, &'a Report)],
    properties: Value,
    verdict: Value,
    extra: BTreeMap<String, Value>,
}

impl<'a> JsonReport<'a> {
    pub fn new(reports: &'a [(&'a CheckResult, &'a Report)]) -> JsonReport<'a> {
        JsonReport {
            reports,
            properties: properties_json(reports),
            verdict: json!(overall(reports).as_str()),
            extra: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a top-level field.
    pub fn insert(&mut self, key: &str, value: Value) {
        self.extra.insert(key.to_string(), value);
    }
}

impl Serialize for JsonReport<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields: BTreeMap<&str, Field<'_>> = BTreeMap::new();
        fields.insert("properties", Field::Value(&self.properties));
        fields.insert("verdict", Field::Value(&self.verdict));
        fields.insert("violations", Field::Violations);
        for (k, v) in &self.extra {
            fields.insert(k.as_str(), Field::Value(v));
        }
        let mut map = serializer.serialize_map(Some(fields.len()))?;
        for (k, field) in fields {
            match field {
                Field::Value(v) => map.serialize_entry(k, v)?,
                Field::Violations => map.serialize_entry(
                    k,
                    &Seq(self.reports.iter().flat_map(|(result, r)| {
                        r.violations.iter().map(move |v| ViolationJson(result, v))
                    })),
                )?,
            }
        }
        map.end()
    }
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
