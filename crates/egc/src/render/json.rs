//! The JSON forms: of check diagnostics, of a verify report (the `egc verify --format
//! json` contract, also streamed as [`JsonReport`]) and of a witness. Pure: file texts come
//! from the [`CheckResult`].

use std::collections::BTreeMap;

use egress_check::{CheckResult, Diagnostic, Span};
use egress_verify::sets::{Connection, Target};
use egress_verify::{PathNode, Property, Report, Verdict, Violation};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};

use crate::common::{file_path, line_col};

fn position_json((line, column): (usize, usize)) -> serde_json::Value {
    serde_json::json!({ "line": line, "column": column })
}

/// The JSON form of one diagnostic.
pub fn diagnostic(result: &CheckResult, d: &Diagnostic) -> serde_json::Value {
    let (start, end) = line_col(result, d.span);
    let mut labels = vec![serde_json::json!({
        "message": d.label,
        "file": file_path(result, d.span),
        "start": position_json(start),
        "end": position_json(end),
        "primary": true,
    })];
    for label in &d.labels {
        let (s, e) = line_col(result, label.span);
        labels.push(serde_json::json!({
            "message": label.message,
            "file": file_path(result, label.span),
            "start": position_json(s),
            "end": position_json(e),
            "primary": false,
        }));
    }
    let mut value = serde_json::json!({
        "code": d.code,
        "severity": d.severity.as_str(),
        "message": d.message,
        "file": file_path(result, d.span),
        "start": position_json(start),
        "end": position_json(end),
        "labels": labels,
        "help": d.help,
    });
    if let (Some(s), Some(object)) = (&d.suggestion, value.as_object_mut()) {
        let (fs, fe) = line_col(result, s.span);
        object.insert(
            "suggestion".into(),
            serde_json::json!({
                "title": s.title,
                "replacement": s.replacement,
                "start": position_json(fs),
                "end": position_json(fe),
            }),
        );
    }
    value
}

/// The JSON form of every policy's diagnostics, `{"diagnostics": [...]}`, serialized one
/// diagnostic at a time: the same bytes as building the whole value first, without holding
/// it (10 MB of broken items, 552,000 diagnostics: 2.5 GB of values).
pub struct Diagnostics<'a>(pub &'a [crate::common::LoadedPolicy]);

impl Serialize for Diagnostics<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("diagnostics", &DiagnosticList(self.0))?;
        map.end()
    }
}

struct DiagnosticList<'a>(&'a [crate::common::LoadedPolicy]);

impl Serialize for DiagnosticList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let count = self.0.iter().map(|p| p.result.diagnostics.len()).sum();
        let mut seq = serializer.serialize_seq(Some(count))?;
        for policy in self.0 {
            for d in &policy.result.diagnostics {
                seq.serialize_element(&diagnostic(&policy.result, d))?;
            }
        }
        seq.end()
    }
}

/// 1-based (line, column) of a byte offset in the span's file, from the file's line
/// index (built once per file), never by rescanning the text.
pub(crate) fn position(result: &CheckResult, span: Span, offset: u32) -> (usize, usize) {
    let (l, c) = result
        .file(span.file)
        .map(|f| f.line_col(offset as usize))
        .unwrap_or((0, 0));
    (l + 1, c + 1)
}

pub(crate) fn file_of(result: &CheckResult, span: Span) -> String {
    result
        .file(span.file)
        .map(|f| f.path.clone())
        .unwrap_or_default()
}

/// The JSON form of a witness: `{"host"?, "ip"?, "workload"?, "port", "protocol"}`.
pub fn witness(w: &Connection) -> Value {
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
    let (sl, sc) = position(result, span, span.start);
    let (el, ec) = position(result, span, span.end);
    (
        json!({ "line": sl, "column": sc }),
        json!({ "line": el, "column": ec }),
    )
}

/// One violation as JSON.
pub fn violation(result: &CheckResult, v: &Violation) -> Value {
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
        "witness": v.witness.as_ref().map(witness),
        "conditions": v.conditions,
    })
}

pub(crate) fn worst(a: Verdict, b: Verdict) -> Verdict {
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

/// The properties of [`report`]: merged by id (the worst status wins), built-in ones first.
fn properties_json(reports: &[(&CheckResult, &Report)]) -> Value {
    let mut statuses: BTreeMap<&Property, Verdict> = BTreeMap::new();
    let mut order: Vec<&Property> = Property::BUILTIN.iter().collect();
    for (_, r) in reports {
        for p in &r.properties {
            if !order.contains(&&p.id) {
                order.push(&p.id);
            }
            let entry = statuses.entry(&p.id).or_insert(Verdict::Verified);
            *entry = worst(*entry, p.status);
        }
    }
    Value::Array(
        order
            .iter()
            .filter_map(|id| {
                statuses
                    .get(id)
                    .map(|s| json!({ "id": id.id(), "status": s.as_str() }))
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

/// One step of a violation's path, serialized as [`violation`] writes it.
struct NodeJson<'a>(&'a CheckResult, &'a PathNode);

impl Serialize for NodeJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (result, n) = (self.0, self.1);
        let file = result.file(n.span.file).map_or("", |f| f.path.as_str());
        // Keys in serde_json's (sorted) order, so the bytes equal the `Value` form's.
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("end", &Position(position(result, n.span, n.span.end)))?;
        map.serialize_entry("file", file)?;
        map.serialize_entry("kind", n.kind)?;
        map.serialize_entry("name", &n.name)?;
        map.serialize_entry("start", &Position(position(result, n.span, n.span.start)))?;
        map.end()
    }
}

/// One violation, serialized exactly as [`violation`] would be, without building it.
struct ViolationJson<'a>(&'a CheckResult, &'a Violation);

impl Serialize for ViolationJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (result, v) = (self.0, self.1);
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("agent", &v.agent)?;
        map.serialize_entry("conditions", &v.conditions)?;
        map.serialize_entry("path", &Seq(v.path.iter().map(|n| NodeJson(result, n))))?;
        map.serialize_entry("property", &v.property)?;
        map.serialize_entry("witness", &v.witness.as_ref().map(witness))?;
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

/// The JSON report of [`report`], serialized without building it as one [`Value`] (whose
/// size grows with every violation): `extra` fields are added at the top level, replacing
/// any of the same name. The bytes equal those of serializing [`report`] with `extra`
/// inserted into it.
pub struct JsonReport<'a> {
    reports: &'a [(&'a CheckResult, &'a Report)],
    properties: Value,
    verdict: Value,
    warnings: Value,
    extra: BTreeMap<String, Value>,
}

impl<'a> JsonReport<'a> {
    pub fn new(reports: &'a [(&'a CheckResult, &'a Report)]) -> JsonReport<'a> {
        JsonReport {
            reports,
            properties: properties_json(reports),
            verdict: json!(overall(reports).as_str()),
            warnings: warnings_json(reports),
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
        fields.insert("warnings", Field::Value(&self.warnings));
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
pub fn report(reports: &[(&CheckResult, &Report)]) -> Value {
    let violations: Vec<Value> = reports
        .iter()
        .flat_map(|(result, r)| r.violations.iter().map(move |v| violation(result, v)))
        .collect();
    json!({
        "verdict": overall(reports).as_str(),
        "properties": properties_json(reports),
        "violations": violations,
        "warnings": warnings_json(reports),
    })
}

/// The verifier's warnings of every report, in policy order, each as a diagnostic.
fn warnings_json(reports: &[(&CheckResult, &Report)]) -> Value {
    Value::Array(
        reports
            .iter()
            .flat_map(|(result, r)| r.warnings.iter().map(move |w| diagnostic(result, w)))
            .collect(),
    )
}
