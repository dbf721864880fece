//! The forms for people: diagnostics and verify reports as ariadne reports, with a label on
//! every step of a violation's path, then the property table.

use std::io::Write;

use egress_check::CheckResult;
use egress_syntax::{Diagnostic, Severity, Span};
use egress_verify::{Property, Report, Verdict};

use crate::common::{file_path, MAX_RENDERED};

/// Renders diagnostics of one check with ariadne into `out`.
pub fn diagnostics<W: Write + ?Sized>(
    result: &CheckResult,
    diagnostics: &[Diagnostic],
    color: bool,
    out: &mut W,
) {
    use ariadne::{Config, Label, Report, ReportKind};
    let shown = diagnostics.iter().take(MAX_RENDERED);
    let mut sources = sources_of(
        result,
        shown
            .clone()
            .flat_map(|d| std::iter::once(d.span).chain(d.labels.iter().map(|l| l.span))),
    );
    for d in shown {
        let path = file_path(result, d.span);
        let kind = match d.severity {
            Severity::Error => ReportKind::Error,
            Severity::Warning => ReportKind::Warning,
        };
        let primary = char_range(result, d.span);
        let mut report = Report::build(kind, (path.clone(), primary.clone()))
            .with_config(Config::default().with_color(color))
            .with_code(d.code)
            .with_message(&d.message)
            .with_label(
                Label::new((path.clone(), primary))
                    .with_message(&d.label)
                    .with_order(0),
            );
        for (i, label) in d.labels.iter().enumerate() {
            let label_path = file_path(result, label.span);
            report = report.with_label(
                Label::new((label_path, char_range(result, label.span)))
                    .with_message(&label.message)
                    .with_order(i32::try_from(i + 1).unwrap_or(i32::MAX)),
            );
        }
        if let Some(help) = &d.help {
            report = report.with_help(help);
        }
        if let Some(suggestion) = &d.suggestion {
            let mentioned = d
                .help
                .as_ref()
                .is_some_and(|h| h.contains(&suggestion.replacement));
            if !mentioned {
                report = report.with_note(format!("suggestion: {}", suggestion.title));
            }
        }
        let _ = report.finish().write(&mut sources, &mut *out);
    }
    if diagnostics.len() > MAX_RENDERED {
        let _ = writeln!(
            out,
            "... and {} more diagnostic(s) not shown (use --format json for all of them)",
            diagnostics.len() - MAX_RENDERED
        );
    }
}

/// The ariadne sources of the files `spans` point into: copying and indexing every file
/// of a policy costs as much as checking it, and a clean run shows none.
fn sources_of(
    result: &CheckResult,
    spans: impl Iterator<Item = Span>,
) -> impl ariadne::Cache<String> {
    let files: std::collections::BTreeSet<egress_check::FileId> = spans.map(|s| s.file).collect();
    let owned: Vec<(String, String)> = files
        .into_iter()
        .filter_map(|id| result.file(id))
        .map(|f| (f.path.clone(), f.text.to_string()))
        .collect();
    ariadne::sources(owned)
}

/// ariadne counts characters, spans count bytes.
pub fn char_range(result: &CheckResult, span: Span) -> std::ops::Range<usize> {
    let Some(file) = result.file(span.file) else {
        return 0..0;
    };
    let start = file.lines().char_offset(&file.text, span.start as usize);
    let end = file
        .lines()
        .char_offset(&file.text, span.end as usize)
        .max(start);
    start..end
}

/// One policy's report for people: each violation as an ariadne report with a label on
/// every step of its path, then warnings, then the property table.
pub fn report<W: Write + ?Sized>(
    dir: &str,
    result: &CheckResult,
    report: &Report,
    color: bool,
    out: &mut W,
) {
    report_with(dir, result, report, &[], color, out);
}

/// [`report`], with the properties whose every finding a baseline accepted shown
/// as `accepted`.
pub fn report_with<W: Write + ?Sized>(
    dir: &str,
    result: &CheckResult,
    report: &Report,
    accepted: &[&Property],
    color: bool,
    out: &mut W,
) {
    use ariadne::{Config, Label, Report as AReport, ReportKind};
    // The sources once per policy (ariadne indexes each one's lines once), not per
    // finding, and only those the findings point into.
    let mut sources = sources_of(
        result,
        report
            .violations
            .iter()
            .flat_map(|v| v.path.iter().map(|n| n.span)),
    );
    for v in &report.violations {
        let Some(primary) = v.path.last() else {
            continue;
        };
        let path = file_path(result, primary.span);
        let mut builder = AReport::build(
            ReportKind::Error,
            (path.clone(), char_range(result, primary.span)),
        )
        .with_config(Config::default().with_color(color))
        .with_code(&v.property)
        .with_message(&v.message);
        for (i, node) in v.path.iter().enumerate() {
            builder = builder.with_label(
                Label::new((file_path(result, node.span), char_range(result, node.span)))
                    .with_message(format!("{}. {}", i + 1, node.note))
                    .with_order(i32::try_from(i).unwrap_or(i32::MAX)),
            );
        }
        let mut notes = Vec::new();
        if let Some(w) = &v.witness {
            notes.push(format!("witness: {w}"));
        }
        if !v.conditions.is_empty() {
            notes.push(format!("when: {}", v.conditions.join("; ")));
        }
        if !notes.is_empty() {
            builder = builder.with_note(notes.join("\n"));
        }
        let _ = builder.finish().write(&mut sources, &mut *out);
    }
    diagnostics(result, &report.warnings, color, out);
    let verdict = if report.verdict == Verdict::Verified && !accepted.is_empty() {
        "accepted"
    } else {
        report.verdict.as_str()
    };
    let _ = writeln!(out, "policy {dir}: {verdict}");
    for p in &report.properties {
        let status = if accepted.contains(&&p.id) {
            "accepted"
        } else {
            p.status.as_str()
        };
        let _ = writeln!(out, "  {:<10} {}", status, p.id);
    }
}
