//! The machine-readable outputs: the JSON report has exactly the documented shape, and the
//! SARIF log validates against the vendored SARIF 2.1.0 schema (draft-04), for a verified
//! policy and for every violation case. One trial per case and format (libtest-mimic,
//! `harness = false`): `json::NAME`, `sarif::NAME`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use std::sync::OnceLock;

use egc::render;
use egress_verify::VerifyConfig;
use jsonschema::Validator;
use libtest_mimic::{Arguments, Trial};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sarif_schema() -> Value {
    let path = repo().join("tests/schemas/sarif-2.1.0.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the vendored SARIF schema at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn cases() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["tests/verify", "tests/verify/violations"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "egress") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn verify_file(path: &Path) -> (egress_check::CheckResult, egress_verify::Report) {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let result = egress_check::check_sources(&[(name.as_str(), text.as_str())]);
    let report = egress_verify::verify(result.policy.as_ref().unwrap(), &VerifyConfig::default());
    (result, report)
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

fn json_has_the_documented_shape(file: &Path) {
    let (result, report) = verify_file(file);
    let json = render::json::report(&[(&result, &report)]);
    // What `egc verify --format json` streams is this value.
    let pairs = [(&result, &report)];
    let streamed = serde_json::to_value(render::json::JsonReport::new(&pairs)).unwrap();
    assert_eq!(streamed, json);
    assert_eq!(
        keys(&json),
        ["properties", "verdict", "violations", "warnings"]
    );
    // The report's warnings, each as `egc check --format json` writes a diagnostic.
    let warnings = json["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), report.warnings.len());
    for w in warnings {
        for key in [
            "code", "severity", "message", "file", "start", "end", "labels", "help",
        ] {
            assert!(w.get(key).is_some(), "warning without `{key}`: {w}");
        }
        assert_eq!(w["severity"], "warning");
    }
    assert!(["verified", "violated", "unknown"].contains(&json["verdict"].as_str().unwrap()));
    for p in json["properties"].as_array().unwrap() {
        assert_eq!(keys(p), ["id", "status"]);
    }
    for v in json["violations"].as_array().unwrap() {
        assert_eq!(
            keys(v),
            ["agent", "conditions", "path", "property", "witness"]
        );
        for node in v["path"].as_array().unwrap() {
            assert_eq!(keys(node), ["end", "file", "kind", "name", "start"]);
            for pos in [&node["start"], &node["end"]] {
                assert!(pos["line"].as_u64().unwrap() >= 1);
                assert!(pos["column"].as_u64().unwrap() >= 1);
            }
        }
        if let Some(w) = v["witness"].as_object() {
            assert!(w.contains_key("port") && w.contains_key("protocol"));
            assert_eq!(
                ["host", "ip", "workload"]
                    .iter()
                    .filter(|k| w.contains_key(**k))
                    .count(),
                1,
                "{w:?}"
            );
        }
    }
}

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(&sarif_schema())
            .unwrap()
    })
}

/// The case's SARIF log validates; returns its number of results.
fn sarif_is_valid(file: &Path) -> usize {
    let (result, report) = verify_file(file);
    let sarif = render::sarif::report(&[(&result, &report)]);
    let errors: Vec<String> = validator()
        .iter_errors(&sarif)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    sarif["runs"][0]["results"].as_array().unwrap().len()
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for file in cases() {
        let kind = if file.parent().is_some_and(|p| p.ends_with("violations")) {
            "violation"
        } else {
            "pass"
        };
        let name = format!("{kind}-{}", file.file_stem().unwrap().to_string_lossy());
        let f = file.clone();
        trials.push(Trial::test(format!("json::{name}"), move || {
            json_has_the_documented_shape(&f);
            Ok(())
        }));
        trials.push(Trial::test(format!("sarif::{name}"), move || {
            let results = sarif_is_valid(&file);
            if kind == "violation" {
                assert!(results > 0, "a violation case produces SARIF results");
            }
            Ok(())
        }));
    }
    // The validator is not vacuous: a log without its required version is rejected.
    trials.push(Trial::test(
        "sarif::schema-rejects-a-log-without-version",
        || {
            let (result, report) = verify_file(&cases()[0]);
            let mut broken = render::sarif::report(&[(&result, &report)]);
            broken.as_object_mut().unwrap().remove("version");
            assert!(!validator().is_valid(&broken));
            Ok(())
        },
    ));
    // Warnings reach JSON as they reach SARIF: an approval no agent uses (W0103).
    trials.push(Trial::test("json::warnings-are-listed", || {
        let text = "destination api {\n    cidr 10.1.0.0/16\n    port 443\n}\n\ndestination legacy {\n    cidr 10.2.0.0/16\n    port 443\n}\n\ncapability call {\n    connect api\n}\n\nagent bot {\n    workload namespace \"n\" labels { app = \"bot\" }\n    uses call\n}\n\nzone z {\n    owner \"security\"\n    agents bot\n    approve api, legacy\n}\n";
        let result = egress_check::check_sources(&[("main.egress", text)]);
        let report =
            egress_verify::verify(result.policy.as_ref().unwrap(), &VerifyConfig::default());
        let json = render::json::report(&[(&result, &report)]);
        let codes: Vec<&str> = json["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["code"].as_str().unwrap())
            .collect();
        assert!(codes.contains(&"W0103"), "{json}");
        let pairs = [(&result, &report)];
        let streamed = serde_json::to_value(render::json::JsonReport::new(&pairs)).unwrap();
        assert_eq!(streamed, json);
        let sarif = render::sarif::report(&[(&result, &report)]);
        let sarif_warnings = sarif["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["level"] == "warning")
            .count();
        assert_eq!(codes.len(), sarif_warnings, "{sarif}");
        Ok(())
    }));
    libtest_mimic::run(&args, trials).exit();
}
