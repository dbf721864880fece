//! The IDE layer on small in-memory workspaces written as fixtures with cursor markers
//! (`fixture.rs`): one trial per case file of `tests/ide/` (`cases.rs` says what a case
//! can ask), and the flows a case file cannot express (edits applied and re-checked,
//! caching, cancellation, formatting, garbage input) as trials below, on the fixture
//! `WORKSPACE`. libtest-mimic with `harness = false`: `cargo test -p egress-ide --test
//! ide -- case::NAME` runs one case.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "ide/cases.rs"]
mod cases;
#[path = "ide/fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use egress_ide::{AnalysisHost, FileRef, MemoryVfs, TextRange};
use fixture::Fixture;
use libtest_mimic::{Arguments, Trial};

/// The workspace of the trials below: a policy in `app/` importing a file of `shared/`,
/// which another policy in `other/` imports under another alias. Markers: `$1` on
/// `dns.kube_dns`, `$2` on the zone's `common.telemetry`, `$3` on its alias, `$4` on the
/// alias `dns`, `$5` on a use of `control_plane`.
const WORKSPACE: &str = r#"//- /ws/app/main.egress
import std.dns
import "../shared/common.egress" as common

data pii

/// The control plane agents report to.
destination control_plane {
    host "cp.corp.internal"
    port 443
}

capability report {
    connect c$5ontrol_plane, d$4ns.k$1ube_dns, common.telemetry
}

agent invoice_bot {
    workload namespace "billing" labels { app = "invoice-bot" }
    uses report
    handles pii
}

zone billing {
    owner "security-team"
    agents invoice_bot
    approve control_plane, dns.kube_dns, co$3mmon.telem$2etry
    clear pii to control_plane
}
//- /ws/shared/common.egress
/// Where traces go.
destination telemetry {
    host "otel.example.internal"
    port 4317
}
//- /ws/other/other.egress
import "../shared/common.egress" as c

capability trace {
    connect c.telemetry
}
"#;

fn fixture() -> Fixture {
    Fixture::parse(WORKSPACE)
}

fn workspace() -> (AnalysisHost, MemoryVfs) {
    fixture().host()
}

fn main_path() -> &'static Path {
    Path::new("/ws/app/main.egress")
}

fn main_text() -> String {
    fixture().text("/ws/app/main.egress").to_string()
}

fn common_text() -> String {
    fixture().text("/ws/shared/common.egress").to_string()
}

/// Applies a workspace edit's edits of `path` to `text`.
fn apply(text: &str, edits: &[egress_ide::TextEdit]) -> String {
    let mut text = text.to_string();
    for e in edits.iter().rev() {
        text.replace_range(e.range.start..e.range.end, &e.new_text);
    }
    text
}

fn clean_policy_has_no_diagnostics() {
    let (host, _) = workspace();
    let analysis = host.snapshot();
    let diagnostics = analysis.diagnostics(main_path());
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
}

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

fn check_results_are_reused_until_an_input_changes() {
    let (mut host, vfs) = workspace();
    let first = host.snapshot().check_result(main_path()).result;
    let again = host.snapshot().check_result(main_path()).result;
    assert!(
        Arc::ptr_eq(&first, &again),
        "unchanged inputs are not re-checked"
    );
    // Editing an imported file in another directory invalidates the result.
    vfs.write(
        "/ws/shared/common.egress",
        common_text().replace("4317", "4318"),
    );
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

/// With `stdlib/dns.egress` in the workspace, definition goes to the real file (found by
/// name even when the copy differs from the embedded one).
fn definition_prefers_a_workspace_copy_of_the_stdlib() {
    let fixture = fixture();
    let (host, vfs) = fixture.host();
    let (_, embedded) = egress_check::stdlib::MODULES
        .iter()
        .find(|(n, _)| *n == "dns")
        .unwrap();
    let copy = format!("// local copy\n{embedded}");
    vfs.write("/ws/stdlib/dns.egress", copy.as_str());
    let analysis = host.snapshot();
    let kube_dns = analysis.definition(main_path(), fixture.at(1)).unwrap();
    assert_eq!(
        kube_dns.file,
        FileRef::Path(PathBuf::from("/ws/stdlib/dns.egress"))
    );
    assert_eq!(&copy[kube_dns.range.start..kube_dns.range.end], "kube_dns");
}

fn rename_keeps_module_prefixes_across_files() {
    let fixture = fixture();
    let (mut host, _) = fixture.host();
    let analysis = host.snapshot();
    let edit = analysis
        .rename(main_path(), fixture.at(2), "traces")
        .unwrap();
    let mut applied = Vec::new();
    for (path, edits) in &edit {
        applied.push((
            path.clone(),
            apply(&analysis.file_text(path).unwrap(), edits),
        ));
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
}

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

fn formatting() {
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
}

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

fn renaming_an_import_alias_rewrites_its_qualified_uses() {
    let fixture = fixture();
    let main = main_text();
    let (host, _) = fixture.host();
    let analysis = host.snapshot();
    // On the alias part of `common.telemetry`.
    let edit = analysis
        .rename(main_path(), fixture.at(3), "shared")
        .unwrap();
    let text = apply(&main, &edit[&PathBuf::from("/ws/app/main.egress")]);
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
        .rename(main_path(), fixture.at(4), "resolvers")
        .unwrap();
    let text = apply(&main, &edit[&PathBuf::from("/ws/app/main.egress")]);
    assert!(text.starts_with("import std.dns as resolvers\n"), "{text}");
    assert_eq!(text.matches("resolvers.kube_dns").count(), 2, "{text}");
    let mut host = host;
    host.set_file_text(main_path(), text.as_str());
    let diagnostics = host.snapshot().diagnostics(main_path());
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
}

fn an_edit_rechecks_only_the_policies_that_read_the_edited_file() {
    let (mut host, _) = workspace();
    let other = Path::new("/ws/other/other.egress");
    let main_before = host.snapshot().check_result(main_path()).result;
    let other_before = host.snapshot().check_result(other).result;
    host.set_file_text(main_path(), format!("// edited\n{}", main_text()).as_str());
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

fn a_cancelled_snapshot_skips_the_check_and_does_not_poison_the_cache() {
    let fixture = fixture();
    let (host, _) = fixture.host();
    let cancelled = host.snapshot().with_cancellation(Arc::new(|| true));
    assert!(cancelled.is_cancelled());
    assert!(cancelled.check_result(main_path()).result.files.is_empty());
    let live = host.snapshot();
    assert!(!live.is_cancelled());
    assert!(!live.check_result(main_path()).result.files.is_empty());
    assert!(live.hover(main_path(), fixture.at(5)).is_some());
}

/// The editor keeps what the verifier proved: after an edit only the touched agents are
/// verified again, and what it shows is what a fresh editor shows.
fn verification_after_an_edit_matches_a_fresh_editor() {
    let policy = |approve: &str| {
        let mut text = String::from("import std.dns\n\n");
        for i in 0..20 {
            text.push_str(&format!(
                "destination d{i} {{\n    host \"svc{i}.example.internal\"\n    port 443\n}}\n\
                 capability c{i} {{\n    connect d{i}, dns.kube_dns\n}}\n\
                 agent a{i} {{\n    workload namespace \"n\" labels {{ app = \"a{i}\" }}\n    uses c{i}\n}}\n\
                 zone z{i} {{\n    owner \"security-team\"\n    agents a{i}\n    approve {}dns.kube_dns\n}}\n",
                if i == 7 { approve.to_string() } else { format!("d{i}, ") }
            ));
        }
        text
    };
    let path = Path::new("/ws/p/main.egress");
    let vfs = MemoryVfs::new();
    vfs.write(path, policy("d7, "));
    let mut host = AnalysisHost::new(Arc::new(vfs.clone()), vec![PathBuf::from("/ws")]);
    let before = host.snapshot().verify_policy(path);
    assert!(
        before
            .values()
            .flatten()
            .all(|d| d.severity != egress_ide::Severity::Error),
        "{before:#?}"
    );
    // Agent a7 loses its approval: the editor must show the violation, though every
    // other agent is remembered.
    host.set_file_text(path, policy(""));
    let after = host.snapshot().verify_policy(path);
    let fresh_vfs = MemoryVfs::new();
    fresh_vfs.write(path, policy(""));
    let fresh = AnalysisHost::new(Arc::new(fresh_vfs), vec![PathBuf::from("/ws")])
        .snapshot()
        .verify_policy(path);
    assert_eq!(format!("{after:?}"), format!("{fresh:?}"));
    assert!(
        after
            .values()
            .flatten()
            .any(|d| d.severity == egress_ide::Severity::Error && d.code == "egress-approved"),
        "{after:#?}"
    );
}

/// The case files of `tests/ide/`, sorted.
fn case_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/ide");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ide"))
        .collect();
    files.sort();
    files
}

fn main() {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = case_files()
        .into_iter()
        .map(|file| {
            let name = file.file_stem().unwrap().to_string_lossy().into_owned();
            Trial::test(format!("case::{name}"), move || {
                let text = std::fs::read_to_string(&file).unwrap();
                cases::run(&Fixture::parse(&text));
                Ok(())
            })
        })
        .collect();
    let tests: [(&str, fn()); 12] = [
        (
            "verification_after_an_edit_matches_a_fresh_editor",
            verification_after_an_edit_matches_a_fresh_editor,
        ),
        (
            "clean_policy_has_no_diagnostics",
            clean_policy_has_no_diagnostics,
        ),
        (
            "syntax_errors_are_reported_and_other_files_of_the_policy_are_listed",
            syntax_errors_are_reported_and_other_files_of_the_policy_are_listed,
        ),
        (
            "check_results_are_reused_until_an_input_changes",
            check_results_are_reused_until_an_input_changes,
        ),
        (
            "definition_prefers_a_workspace_copy_of_the_stdlib",
            definition_prefers_a_workspace_copy_of_the_stdlib,
        ),
        (
            "rename_keeps_module_prefixes_across_files",
            rename_keeps_module_prefixes_across_files,
        ),
        (
            "document_and_workspace_symbols",
            document_and_workspace_symbols,
        ),
        ("formatting", formatting),
        (
            "queries_on_garbage_never_panic",
            queries_on_garbage_never_panic,
        ),
        (
            "renaming_an_import_alias_rewrites_its_qualified_uses",
            renaming_an_import_alias_rewrites_its_qualified_uses,
        ),
        (
            "an_edit_rechecks_only_the_policies_that_read_the_edited_file",
            an_edit_rechecks_only_the_policies_that_read_the_edited_file,
        ),
        (
            "a_cancelled_snapshot_skips_the_check_and_does_not_poison_the_cache",
            a_cancelled_snapshot_skips_the_check_and_does_not_poison_the_cache,
        ),
    ];
    trials.extend(tests.into_iter().map(|(name, test)| {
        Trial::test(name, move || {
            test();
            Ok(())
        })
    }));
    libtest_mimic::run(&args, trials).exit();
}
