//! The IDE layer on a small in-memory workspace: one `check` helper per feature.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

use std::path::{Path, PathBuf};
use std::sync::Arc;

use egress_ide::{AnalysisHost, CompletionKind, FileRef, MemoryVfs, Severity, TextRange};

const MAIN: &str = r#"import std.dns
import "../shared/common.egress" as common

data pii

/// The control plane agents report to.
destination control_plane {
    host "cp.corp.internal"
    port 443
}

capability report {
    connect control_plane, dns.kube_dns, common.telemetry
}

agent invoice_bot {
    workload namespace "billing" labels { app = "invoice-bot" }
    uses report
    handles pii
}

zone billing {
    owner "security-team"
    agents invoice_bot
    approve control_plane, dns.kube_dns, common.telemetry
    clear pii to control_plane
}
"#;

const COMMON: &str = r#"/// Where traces go.
destination telemetry {
    host "otel.example.internal"
    port 4317
}
"#;

const OTHER: &str = r#"import "../shared/common.egress" as c

capability trace {
    connect c.telemetry
}
"#;

fn workspace() -> (AnalysisHost, MemoryVfs) {
    let vfs = MemoryVfs::new();
    vfs.write("/ws/app/main.egress", MAIN);
    vfs.write("/ws/shared/common.egress", COMMON);
    vfs.write("/ws/other/other.egress", OTHER);
    let host = AnalysisHost::new(Arc::new(vfs.clone()), vec![PathBuf::from("/ws")]);
    (host, vfs)
}

fn main_path() -> &'static Path {
    Path::new("/ws/app/main.egress")
}

/// The offset of the `n`th occurrence of `needle` in `text`, plus `delta`.
fn at(text: &str, needle: &str, n: usize, delta: usize) -> usize {
    text.match_indices(needle)
        .nth(n)
        .map(|(i, _)| i + delta)
        .unwrap()
}

#[test]
fn clean_policy_has_no_diagnostics() {
    let (host, _) = workspace();
    let analysis = host.snapshot();
    let diagnostics = analysis.diagnostics(main_path());
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
}

#[test]
fn diagnostics_as_you_type_with_a_did_you_mean_fix() {
    let (mut host, _) = workspace();
    let broken = MAIN.replace("uses report", "uses reprot");
    host.set_file_text(main_path(), broken.as_str());
    let analysis = host.snapshot();
    let diagnostics = analysis.diagnostics(main_path());
    let unknown = diagnostics
        .iter()
        .find(|d| d.code == "E0010")
        .unwrap_or_else(|| panic!("no E0010 in {diagnostics:#?}"));
    assert_eq!(unknown.severity, Severity::Error);
    let start = at(&broken, "reprot", 0, 0);
    assert_eq!(unknown.range, TextRange::new(start, start + 6));
    let (_, fix) = unknown.fix.clone().expect("a did-you-mean fix");
    assert_eq!(fix.new_text, "report");

    let actions = analysis.code_actions(main_path(), TextRange::new(start, start));
    assert_eq!(actions.len(), 1, "{actions:#?}");
    let edits = &actions[0].edit[&PathBuf::from("/ws/app/main.egress")];
    assert_eq!(edits[0].new_text, "report");
    assert_eq!(edits[0].range, TextRange::new(start, start + 6));
}

#[test]
fn syntax_errors_are_reported_and_other_files_of_the_policy_are_listed() {
    let (mut host, vfs) = workspace();
    vfs.write("/ws/app/extra.egress", "data secrets\n");
    host.set_file_text(main_path(), "destination broken {\n    port\n}\n");
    let analysis = host.snapshot();
    let per_file = analysis.policy_diagnostics(main_path());
    let files: Vec<&PathBuf> = per_file.keys().collect();
    assert_eq!(
        files,
        [
            &PathBuf::from("/ws/app/extra.egress"),
            &PathBuf::from("/ws/app/main.egress")
        ]
    );
    assert!(per_file[&PathBuf::from("/ws/app/extra.egress")].is_empty());
    let main = &per_file[&PathBuf::from("/ws/app/main.egress")];
    assert!(main.iter().any(|d| d.code == "E0001"), "{main:#?}");
}

#[test]
fn check_results_are_reused_until_an_input_changes() {
    let (mut host, vfs) = workspace();
    let first = host.snapshot().check_result(main_path()).result;
    let again = host.snapshot().check_result(main_path()).result;
    assert!(
        Arc::ptr_eq(&first, &again),
        "unchanged inputs are not re-checked"
    );
    // Editing an imported file in another directory invalidates the result.
    vfs.write("/ws/shared/common.egress", COMMON.replace("4317", "4318"));
    let changed = host.snapshot().check_result(main_path()).result;
    assert!(!Arc::ptr_eq(&first, &changed));
    // An open buffer shadows the disk.
    host.set_file_text(
        Path::new("/ws/shared/common.egress"),
        "destination telemetry {\n    host \"otel.example.internal\"\n}\n",
    );
    let diagnostics = host
        .snapshot()
        .diagnostics(Path::new("/ws/shared/common.egress"));
    assert!(
        diagnostics
            .iter()
            .any(|d| d.code == "E0029" || d.code == "E0017"),
        "{diagnostics:#?}"
    );
}

#[test]
fn hover_shows_doc_resolution_and_who_reaches_a_destination() {
    let (host, _) = workspace();
    let analysis = host.snapshot();
    let offset = at(MAIN, "control_plane", 1, 2);
    let hover = analysis.hover(main_path(), offset).unwrap();
    let start = at(MAIN, "control_plane", 1, 0);
    assert_eq!(
        hover.range,
        TextRange::new(start, start + "control_plane".len())
    );
    let md = &hover.markdown;
    assert!(md.contains("destination app.main.control_plane"), "{md}");
    assert!(md.contains("The control plane agents report to."), "{md}");
    assert!(md.contains("host `cp.corp.internal`"), "{md}");
    assert!(md.contains("port 443 over tcp"), "{md}");
    assert!(md.contains("`invoice_bot` via capability `report`"), "{md}");
    assert!(md.contains("`invoice_bot` (zone `billing`)"), "{md}");

    let agent = analysis
        .hover(main_path(), at(MAIN, "invoice_bot", 0, 1))
        .unwrap();
    assert!(
        agent.markdown.contains("**Uses** `report`"),
        "{}",
        agent.markdown
    );
    assert!(agent.markdown.contains("- kube_dns"), "{}", agent.markdown);
}

#[test]
fn definition_across_files_and_into_the_stdlib() {
    let (host, vfs) = workspace();
    let analysis = host.snapshot();
    let telemetry = analysis
        .definition(main_path(), at(MAIN, "common.telemetry", 0, 9))
        .unwrap();
    let start = at(COMMON, "telemetry", 0, 0);
    assert_eq!(
        telemetry.file,
        FileRef::Path(PathBuf::from("/ws/shared/common.egress"))
    );
    assert_eq!(telemetry.range, TextRange::new(start, start + 9));

    // No copy of the stdlib in the workspace: the embedded module.
    let kube_dns = analysis
        .definition(main_path(), at(MAIN, "dns.kube_dns", 0, 5))
        .unwrap();
    let FileRef::Stdlib { name, text } = &kube_dns.file else {
        panic!("{kube_dns:?}")
    };
    assert_eq!(name, "dns");
    assert_eq!(&text[kube_dns.range.start..kube_dns.range.end], "kube_dns");

    // With `stdlib/dns.egress` in the workspace, the real file (found by name even when
    // the copy differs from the embedded one).
    let (_, embedded) = egress_check::stdlib::MODULES
        .iter()
        .find(|(n, _)| *n == "dns")
        .unwrap();
    let copy = format!("// local copy\n{embedded}");
    vfs.write("/ws/stdlib/dns.egress", copy.as_str());
    let analysis = host.snapshot();
    let kube_dns = analysis
        .definition(main_path(), at(MAIN, "dns.kube_dns", 0, 5))
        .unwrap();
    assert_eq!(
        kube_dns.file,
        FileRef::Path(PathBuf::from("/ws/stdlib/dns.egress"))
    );
    assert_eq!(&copy[kube_dns.range.start..kube_dns.range.end], "kube_dns");
}

#[test]
fn references_span_policies_and_include_the_declaration() {
    let (host, _) = workspace();
    let analysis = host.snapshot();
    let references = analysis.references(
        Path::new("/ws/shared/common.egress"),
        at(COMMON, "telemetry", 0, 1),
        true,
    );
    let found: Vec<(String, String)> = references
        .iter()
        .map(|r| {
            let path = r.file.path().unwrap().to_path_buf();
            let text = analysis.file_text(&path).unwrap();
            (
                path.display().to_string(),
                text[r.range.start..r.range.end].to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "/ws/app/main.egress".to_string(),
                "common.telemetry".to_string()
            ),
            (
                "/ws/app/main.egress".to_string(),
                "common.telemetry".to_string()
            ),
            (
                "/ws/other/other.egress".to_string(),
                "c.telemetry".to_string()
            ),
            (
                "/ws/shared/common.egress".to_string(),
                "telemetry".to_string()
            ),
        ]
    );
    let without = analysis.references(main_path(), at(MAIN, "common.telemetry", 0, 10), false);
    assert_eq!(without.len(), 3);
}

#[test]
fn rename_keeps_module_prefixes_and_refuses_what_would_break() {
    let (mut host, _) = workspace();
    let analysis = host.snapshot();
    let edit = analysis
        .rename(main_path(), at(MAIN, "common.telemetry", 1, 12), "traces")
        .unwrap();
    let mut applied = Vec::new();
    for (path, edits) in &edit {
        let mut text = analysis.file_text(path).unwrap().to_string();
        for e in edits.iter().rev() {
            text.replace_range(e.range.start..e.range.end, &e.new_text);
        }
        applied.push((path.clone(), text));
    }
    assert_eq!(applied.len(), 3);
    for (path, text) in &applied {
        host.set_file_text(path, text.as_str());
    }
    let after = host.snapshot();
    assert!(after
        .file_text(main_path())
        .unwrap()
        .contains("connect control_plane, dns.kube_dns, common.traces"));
    assert!(after
        .file_text(Path::new("/ws/other/other.egress"))
        .unwrap()
        .contains("connect c.traces"));
    assert!(after
        .file_text(Path::new("/ws/shared/common.egress"))
        .unwrap()
        .contains("destination traces {"));
    for path in [
        "/ws/app/main.egress",
        "/ws/other/other.egress",
        "/ws/shared/common.egress",
    ] {
        let diagnostics = after.diagnostics(Path::new(path));
        assert!(diagnostics.is_empty(), "{path}: {diagnostics:#?}");
    }

    let (range, placeholder) = analysis
        .prepare_rename(main_path(), at(MAIN, "common.telemetry", 0, 10))
        .unwrap();
    assert_eq!(placeholder, "telemetry");
    assert_eq!(&MAIN[range.start..range.end], "telemetry");

    let stdlib = analysis.rename(main_path(), at(MAIN, "dns.kube_dns", 0, 6), "dns2");
    assert!(stdlib.unwrap_err().0.contains("stdlib"));
    let keyword = analysis.rename(main_path(), at(MAIN, "report {", 0, 1), "agent");
    assert!(keyword.unwrap_err().0.contains("not a valid name"));
    let clash = analysis.rename(main_path(), at(MAIN, "report {", 0, 1), "control_plane");
    assert!(clash.unwrap_err().0.contains("already declared"));
}

#[test]
fn completion_of_keywords_names_and_stdlib_modules() {
    let (mut host, _) = workspace();
    let labels = |host: &AnalysisHost, _text: &str, offset: usize| {
        host.snapshot()
            .completions(main_path(), offset)
            .into_iter()
            .map(|c| (c.label, c.kind))
            .collect::<Vec<_>>()
    };
    // After `connect `: destinations, spelled as this file must write them.
    let offset = at(MAIN, "connect ", 0, 8);
    let items = labels(&host, MAIN, offset);
    for name in ["control_plane", "dns.kube_dns", "common.telemetry"] {
        assert!(
            items.contains(&(name.to_string(), CompletionKind::Name("destination"))),
            "{name} missing from {items:?}"
        );
    }
    assert!(!items.iter().any(|(l, _)| l == "report"), "{items:?}");

    // At the top level: item keywords.
    let items = labels(&host, MAIN, MAIN.len());
    assert!(items.contains(&("destination".to_string(), CompletionKind::Keyword)));
    assert!(!items.iter().any(|(l, _)| l == "port"));

    // Inside an agent, at the start of an entry: the agent's entry keywords.
    let offset = at(MAIN, "    uses report", 0, 4);
    let items = labels(&host, MAIN, offset);
    assert!(
        items.contains(&("handles".to_string(), CompletionKind::Keyword)),
        "{items:?}"
    );
    assert!(
        !items.contains(&("approver".to_string(), CompletionKind::Keyword)),
        "{items:?}"
    );

    // `import std.`: the stdlib modules.
    let text = format!("{MAIN}\nimport std.");
    host.set_file_text(main_path(), text.as_str());
    let items = labels(&host, &text, text.len());
    for module in ["std.dns", "std.caps", "std.classes"] {
        assert!(
            items.contains(&(module.to_string(), CompletionKind::Module)),
            "{items:?}"
        );
    }
    let completion = host.snapshot().completions(main_path(), text.len());
    assert_eq!(
        completion[0].replace,
        TextRange::new(text.len() - 4, text.len())
    );
}

#[test]
fn document_and_workspace_symbols() {
    let (host, _) = workspace();
    let analysis = host.snapshot();
    let symbols: Vec<(String, &str)> = analysis
        .document_symbols(main_path())
        .into_iter()
        .map(|s| (s.name, s.kind))
        .collect();
    assert_eq!(
        symbols,
        [
            ("std.dns".to_string(), "import"),
            ("common".to_string(), "import"),
            ("pii".to_string(), "data"),
            ("control_plane".to_string(), "destination"),
            ("report".to_string(), "capability"),
            ("invoice_bot".to_string(), "agent"),
            ("billing".to_string(), "zone"),
        ]
    );
    let found = analysis.workspace_symbols("tele", 10);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, PathBuf::from("/ws/shared/common.egress"));
    assert_eq!(found[0].container, "shared/common.egress");
    assert_eq!(
        analysis.workspace_symbols("cplane", 10)[0].name,
        "control_plane"
    );
}

#[test]
fn formatting_and_highlighting() {
    let (mut host, _) = workspace();
    let messy = "data  pii\ndestination d{host \"a.example\" port 443}\n";
    host.set_file_text(main_path(), messy);
    let analysis = host.snapshot();
    let formatted = analysis.format(main_path()).unwrap();
    assert_eq!(
        formatted,
        "data pii\n\ndestination d {\n    host \"a.example\"\n    port 443\n}\n"
    );
    host.set_file_text(main_path(), formatted.as_str());
    assert_eq!(
        host.snapshot().format(main_path()),
        None,
        "already formatted"
    );
    host.set_file_text(main_path(), "destination {");
    assert_eq!(
        host.snapshot().format(main_path()),
        None,
        "broken input is left alone"
    );

    let (host, _) = workspace();
    let highlights = host.snapshot().highlight(main_path());
    let tag_of = |needle: &str, n: usize| {
        let start = at(MAIN, needle, n, 0);
        highlights
            .iter()
            .find(|h| h.range.start == start)
            .map(|h| (h.tag, h.declaration))
    };
    use egress_ide::HighlightTag::*;
    assert_eq!(tag_of("import", 0), Some((Keyword, false)));
    assert_eq!(tag_of("/// The control", 0), Some((DocComment, false)));
    assert_eq!(
        tag_of("control_plane", 0),
        Some((Name("destination"), true))
    );
    assert_eq!(
        tag_of("control_plane", 1),
        Some((Name("destination"), false))
    );
    assert_eq!(tag_of("\"cp.corp", 0), Some((String, false)));
    assert_eq!(tag_of("443", 0), Some((Number, false)));
    assert_eq!(tag_of("report", 1), Some((Name("capability"), true)));
    assert_eq!(tag_of("report", 2), Some((Name("capability"), false)));
}

#[test]
fn queries_on_garbage_never_panic() {
    let (mut host, _) = workspace();
    let inputs = [
        "",
        "§§§",
        "agent {",
        "\"unterminated",
        "import",
        "destination x { port 99999999999999999999 }",
        "zone z { clear }",
    ];
    for input in inputs {
        host.set_file_text(main_path(), input);
        let analysis = host.snapshot();
        for offset in 0..=input.len() + 2 {
            let _ = analysis.hover(main_path(), offset);
            let _ = analysis.definition(main_path(), offset);
            let _ = analysis.references(main_path(), offset, true);
            let _ = analysis.completions(main_path(), offset);
            let _ = analysis.rename(main_path(), offset, "x");
            let _ = analysis.code_actions(main_path(), TextRange::new(offset, offset + 1));
        }
        let _ = analysis.diagnostics(main_path());
        let _ = analysis.highlight(main_path());
        let _ = analysis.document_symbols(main_path());
        let _ = analysis.format(main_path());
    }
    assert!(host
        .snapshot()
        .diagnostics(Path::new("/ws/nowhere.egress"))
        .is_empty());
}

#[test]
fn renaming_an_import_alias_rewrites_its_qualified_uses() {
    let (host, _) = workspace();
    let analysis = host.snapshot();
    // On the alias part of `common.telemetry`.
    let offset = at(MAIN, "common.telemetry", 1, 2);
    let (range, name) = analysis.prepare_rename(main_path(), offset).unwrap();
    assert_eq!(name, "common");
    assert_eq!(&MAIN[range.start..range.end], "common");
    let edit = analysis.rename(main_path(), offset, "shared").unwrap();
    let edits = &edit[&PathBuf::from("/ws/app/main.egress")];
    let mut text = MAIN.to_string();
    for e in edits.iter().rev() {
        text.replace_range(e.range.start..e.range.end, &e.new_text);
    }
    assert!(
        text.contains("import \"../shared/common.egress\" as shared\n"),
        "{text}"
    );
    assert!(
        text.contains("connect control_plane, dns.kube_dns, shared.telemetry"),
        "{text}"
    );
    assert!(
        text.contains("approve control_plane, dns.kube_dns, shared.telemetry"),
        "{text}"
    );

    // An implicit alias (`import std.dns`) gets an explicit `as`.
    let edit = analysis
        .rename(main_path(), at(MAIN, "dns.kube_dns", 0, 1), "resolvers")
        .unwrap();
    let mut text = MAIN.to_string();
    for e in edit[&PathBuf::from("/ws/app/main.egress")].iter().rev() {
        text.replace_range(e.range.start..e.range.end, &e.new_text);
    }
    assert!(text.starts_with("import std.dns as resolvers\n"), "{text}");
    assert_eq!(text.matches("resolvers.kube_dns").count(), 2, "{text}");
    let mut host = host;
    host.set_file_text(main_path(), text.as_str());
    let diagnostics = host.snapshot().diagnostics(main_path());
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");

    // Hover on an alias lists what the module declares.
    let hover = analysis
        .hover(main_path(), at(MAIN, "dns.kube_dns", 0, 1))
        .unwrap();
    assert!(
        hover.markdown.contains("import std.dns as dns"),
        "{}",
        hover.markdown
    );
    assert!(
        hover.markdown.contains("`dns.kube_dns` (destination)"),
        "{}",
        hover.markdown
    );
}

#[test]
fn an_edit_rechecks_only_the_policies_that_read_the_edited_file() {
    let (mut host, _) = workspace();
    let other = Path::new("/ws/other/other.egress");
    let main_before = host.snapshot().check_result(main_path()).result;
    let other_before = host.snapshot().check_result(other).result;
    host.set_file_text(main_path(), format!("// edited\n{MAIN}").as_str());
    let analysis = host.snapshot();
    assert!(!Arc::ptr_eq(
        &main_before,
        &analysis.check_result(main_path()).result
    ));
    assert!(
        Arc::ptr_eq(&other_before, &analysis.check_result(other).result),
        "a policy that does not read the edited file is not re-checked"
    );
}

#[test]
fn a_cancelled_snapshot_skips_the_check_and_does_not_poison_the_cache() {
    let (host, _) = workspace();
    let cancelled = host.snapshot().with_cancellation(Arc::new(|| true));
    assert!(cancelled.is_cancelled());
    assert!(cancelled.check_result(main_path()).result.files.is_empty());
    let live = host.snapshot();
    assert!(!live.is_cancelled());
    assert!(!live.check_result(main_path()).result.files.is_empty());
    assert!(live
        .hover(main_path(), at(MAIN, "control_plane", 1, 1))
        .is_some());
}

#[test]
fn hover_explains_keywords() {
    let (host, _) = workspace();
    let hover = host
        .snapshot()
        .hover(main_path(), at(MAIN, "connect", 0, 2))
        .unwrap();
    assert!(
        hover.markdown.contains("may connect to"),
        "{}",
        hover.markdown
    );
    let start = at(MAIN, "connect", 0, 0);
    assert_eq!(hover.range, TextRange::new(start, start + 7));
}

#[test]
fn hover_on_a_destination_names_agents_that_reach_it_through_a_wider_one() {
    let text = r#"destination control_plane {
    host "cp.corp.internal"
    port 443
}

destination everything_internal {
    host "**.corp.internal"
    port 1-1024
}

capability wide {
    connect everything_internal
}

agent crawler {
    uses wide
}

zone z {
    agents crawler
    approve everything_internal
}
"#;
    let vfs = MemoryVfs::new();
    vfs.write("/ws/p/main.egress", text);
    let host = AnalysisHost::new(Arc::new(vfs), vec![PathBuf::from("/ws")]);
    let path = Path::new("/ws/p/main.egress");
    let analysis = host.snapshot();
    assert!(
        analysis.diagnostics(path).is_empty(),
        "{:#?}",
        analysis.diagnostics(path)
    );
    let hover = analysis
        .hover(path, at(text, "control_plane", 0, 1))
        .unwrap();
    assert!(
        hover.markdown.contains(
            "`crawler` via capability `wide` to `everything_internal`, which overlaps it (e.g. `cp.corp.internal:443/tcp`)"
        ),
        "{}",
        hover.markdown
    );
}
