//! SBOMs to destinations and back.
//!
//! - `tests/sbom/import/NAME.json`: each SBOM validates against its official schema
//!   (vendored in `tests/schemas/`); `egc sbom import` writes exactly `NAME.egress` and
//!   finds exactly `NAME.findings`; the module is formatted (formatting it again changes
//!   nothing), checks, and verifies with `sbom-justified` beside a fetcher that uses it.
//! - `tests/sbom/verify/NAME/`: a policy and its `bom.json`; `expect.txt` holds the status
//!   of `sbom-justified` and the message of each of its violations.
//! - `tests/sbom/diff/`: `egc sbom diff old.json new.json old.egress` prints `bump.diff`.
//! - `examples/sbom-registries`: its `sbom.egress` is what importing its SBOM writes, byte
//!   for byte, and it verifies with `--sbom`.
//!
//! Expected files are rewritten with `EGC_BLESS=1`; review the diff before committing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use egc::render;
use egc_tests::{check_case, repo_root};
use egress_sbom::{Declared, Format, ImportConfig};
use egress_verify::{Property, Verdict, VerifyConfig};
use jsonschema::{Draft, Registry, Validator};
use libtest_mimic::Trial;
use serde_json::Value;

use crate::case_files;

pub fn trials() -> Vec<Trial> {
    let root = repo_root().join("tests/sbom");
    let mut out: Vec<Trial> = case_files(&root.join("import"), "json")
        .into_iter()
        .map(|case| {
            let name = case.file_stem().unwrap().to_string_lossy().into_owned();
            Trial::test(format!("sbom::import::{name}"), move || {
                import_case(&case);
                Ok(())
            })
        })
        .collect();
    let mut verify_dirs: Vec<PathBuf> = std::fs::read_dir(root.join("verify"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    verify_dirs.sort();
    out.extend(verify_dirs.into_iter().map(|dir| {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        Trial::test(format!("sbom::verify::{name}"), move || {
            verify_case(&dir);
            Ok(())
        })
    }));
    out.push(Trial::test("sbom::diff", || {
        diff_case(&repo_root().join("tests/sbom/diff"));
        Ok(())
    }));
    out.push(Trial::test("sbom::example::sbom-registries", || {
        example();
        Ok(())
    }));
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn schemas() -> PathBuf {
    repo_root().join("tests/schemas")
}

fn cyclonedx(version: &str) -> Validator {
    let dir = schemas().join("cyclonedx");
    let mut registry = Registry::new();
    for file in ["spdx.schema.json", "jsf-0.82.schema.json"] {
        registry = registry
            .add(
                format!("http://cyclonedx.org/schema/{file}"),
                read_json(&dir.join(file)),
            )
            .unwrap();
    }
    let registry = registry.prepare().unwrap();
    jsonschema::options()
        .with_draft(Draft::Draft7)
        .with_registry(&registry)
        .build(&read_json(&dir.join(format!("bom-{version}.schema.json"))))
        .unwrap()
}

fn validator(format: Format) -> &'static Validator {
    static V15: OnceLock<Validator> = OnceLock::new();
    static V16: OnceLock<Validator> = OnceLock::new();
    static SPDX: OnceLock<Validator> = OnceLock::new();
    match format {
        Format::CycloneDx15 => V15.get_or_init(|| cyclonedx("1.5")),
        Format::CycloneDx16 => V16.get_or_init(|| cyclonedx("1.6")),
        Format::Spdx23 => SPDX.get_or_init(|| {
            jsonschema::options()
                .with_draft(Draft::Draft7)
                .build(&read_json(&schemas().join("spdx-2.3.json")))
                .unwrap()
        }),
    }
}

/// Parses an SBOM after validating it against its official schema.
fn load(path: &Path) -> (Format, Declared) {
    let text = std::fs::read_to_string(path).unwrap();
    let sbom = egress_sbom::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let errors: Vec<String> = validator(sbom.format)
        .iter_errors(&read_json(path))
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{} is not valid {}: {errors:#?}",
        path.display(),
        sbom.format.as_str()
    );
    (sbom.format, egress_sbom::declared(&sbom))
}

/// Compares `actual` with the file at `path`, or rewrites it with `EGC_BLESS=1`.
fn expect_file(path: &Path, actual: &str) {
    if std::env::var_os("EGC_BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs (rerun with EGC_BLESS=1 and review):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

fn import_case(case: &Path) {
    let (format, declared) = load(case);
    let module = egress_sbom::import_module(format, &declared, &ImportConfig::default()).unwrap();
    expect_file(&case.with_extension("egress"), &module);
    let findings: String = declared.findings.iter().map(|f| format!("{f}\n")).collect();
    expect_file(&case.with_extension("findings"), &findings);
    // Deterministic and formatted.
    let again = egress_sbom::import_module(format, &declared, &ImportConfig::default()).unwrap();
    assert_eq!(module, again);
    assert_eq!(
        egress_syntax::format::format_source(&module).unwrap(),
        module,
        "formatting the module changes it"
    );
    // It checks and verifies beside a fetcher that uses it, approved for all of it.
    let names: Vec<String> = declared
        .sources
        .keys()
        .map(|s| format!("sbom.{}", egress_sbom::destination_name(s)))
        .collect();
    let main = format!(
        "import \"sbom.egress\" as sbom\n\nimport std.dns\n\n\
         capability resolve {{\n    connect dns.kube_dns\n}}\n\n\
         agent fetcher {{\n    uses sbom.fetch_sbom_sources, resolve\n}}\n\n\
         zone ci {{\n    owner \"security-team\"\n    agents fetcher\n    approve {}, dns.kube_dns\n}}\n",
        names.join(", ")
    );
    let result = egress_check::check_sources(&[("sbom.egress", &module), ("main.egress", &main)]);
    let policy = result.policy.as_ref().unwrap_or_else(|| {
        panic!(
            "{}: the module does not check: {:#?}",
            case.display(),
            result.diagnostics
        )
    });
    let mut report = egress_verify::verify(policy, &VerifyConfig::default());
    egress_verify::sbom::add_sbom_justified(
        &mut report,
        policy,
        &egc::cmd::sbom::verifier_sources(&declared),
    );
    assert_eq!(
        report.verdict,
        Verdict::Verified,
        "{}: {:#}",
        case.display(),
        render::json::report(&[(&result, &report)])
    );
}

fn verify_case(dir: &Path) {
    let (_, declared) = load(&dir.join("bom.json"));
    let result = check_case(dir);
    let policy = result
        .policy
        .as_ref()
        .unwrap_or_else(|| panic!("{}: {:#?}", dir.display(), result.diagnostics));
    let mut report = egress_verify::verify(policy, &VerifyConfig::default());
    egress_verify::sbom::add_sbom_justified(
        &mut report,
        policy,
        &egc::cmd::sbom::verifier_sources(&declared),
    );
    let status = report
        .property(&Property::SbomJustified)
        .map(|p| p.status.as_str())
        .unwrap_or("missing");
    let mut actual = format!("sbom-justified: {status}\n");
    for v in report
        .violations
        .iter()
        .filter(|v| v.property == Property::SbomJustified)
    {
        let path: Vec<String> = v
            .path
            .iter()
            .map(|n| format!("{} {}", n.kind, n.name))
            .collect();
        actual.push_str(&format!("- {}\n  path: {}\n", v.message, path.join(" -> ")));
    }
    // The other properties hold: each case is about `sbom-justified` alone.
    for p in &report.properties {
        if p.id != Property::SbomJustified {
            assert_eq!(p.status, Verdict::Verified, "{}: {}", dir.display(), p.id);
        }
    }
    expect_file(&dir.join("expect.txt"), &actual);
}

fn diff_case(dir: &Path) {
    let old = load(&dir.join("old.json"));
    let new = load(&dir.join("new.json"));
    let current = std::fs::read_to_string(dir.join("old.egress")).unwrap_or_default();
    let config = ImportConfig::default();
    if std::env::var_os("EGC_BLESS").is_some() {
        let module = egress_sbom::import_module(old.0, &old.1, &config).unwrap();
        std::fs::write(dir.join("old.egress"), &module).unwrap();
    }
    let current = if std::env::var_os("EGC_BLESS").is_some() {
        std::fs::read_to_string(dir.join("old.egress")).unwrap()
    } else {
        current
    };
    let change = egress_sbom::diff_module(
        (old.0, &old.1),
        (new.0, &new.1),
        &current,
        "sbom.egress",
        &config,
    )
    .unwrap();
    let mut actual = String::new();
    for (s, n) in &change.added {
        actual.push_str(&format!("# adds {n} ({s})\n"));
    }
    for (s, n) in &change.removed {
        actual.push_str(&format!("# removes {n} ({s})\n"));
    }
    for (s, n) in &change.rejustified {
        actual.push_str(&format!("# rejustifies {n} ({s})\n"));
    }
    actual.push_str(&change.unified);
    expect_file(&dir.join("bump.diff"), &actual);
    // The diff is exactly the change: the new module is what importing the new SBOM writes.
    assert_eq!(
        change.new_module,
        egress_sbom::import_module(new.0, &new.1, &config).unwrap()
    );
    // A hand-edited module is refused, not silently rewritten.
    let edited = format!("{current}// edited\n");
    assert!(
        egress_sbom::diff_module((old.0, &old.1), (new.0, &new.1), &edited, "x", &config).is_err()
    );
}

fn example() {
    let dir = repo_root().join("examples/sbom-registries");
    let (format, declared) = load(&dir.join("sbom.cdx.json"));
    let module = egress_sbom::import_module(format, &declared, &ImportConfig::default()).unwrap();
    let committed = std::fs::read_to_string(dir.join("sbom.egress")).unwrap();
    assert!(
        module == committed,
        "examples/sbom-registries/sbom.egress is not what `egc sbom import sbom.cdx.json` writes; regenerate it"
    );
    let result = check_case(&dir);
    let policy = result.policy.as_ref().unwrap();
    let mut report = egress_verify::verify(policy, &VerifyConfig::default());
    egress_verify::sbom::add_sbom_justified(
        &mut report,
        policy,
        &egc::cmd::sbom::verifier_sources(&declared),
    );
    assert_eq!(
        report.verdict,
        Verdict::Verified,
        "{:#}",
        render::json::report(&[(&result, &report)])
    );
    assert_eq!(
        report.property(&Property::SbomJustified).map(|p| p.status),
        Some(Verdict::Verified)
    );
}
