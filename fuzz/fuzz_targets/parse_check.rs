//! Parser and checker on arbitrary bytes, as `egc check` sees them: the input is split at
//! NUL bytes into up to three files (`main.egress`, the root, and `lib.egress` and
//! `sub/mod.egress`, which it may import), so imports, cycles and non-UTF-8 files are
//! reached too. Every diagnostic must have a registered code and a span inside its file;
//! the diagnostics must render (human, JSON, SARIF); a policy that checks is verified.
//! Each file also parses the same with the fast parser, with pest alone, and as the
//! checker parses it (items and diagnostics; layout too for the first two); the check
//! `egc check` runs (no syntax tree or model kept) reports what the full check does.
#![no_main]

use std::collections::BTreeMap;

use egress_check::{FileSource, ReadError};
use libfuzzer_sys::fuzz_target;

struct Files(BTreeMap<&'static str, Vec<u8>>);

impl FileSource for Files {
    fn read(&self, path: &str) -> Result<String, ReadError> {
        let bytes = self.0.get(path).ok_or(ReadError::NotFound)?;
        String::from_utf8(bytes.clone()).map_err(|_| ReadError::NotUtf8)
    }
}

/// Diagnostics rendered for people per input.
const RENDERED: usize = 8;

const NAMES: [&str; 3] = ["main.egress", "lib.egress", "sub/mod.egress"];

fuzz_target!(|data: &[u8]| {
    let files = Files(
        NAMES
            .iter()
            .copied()
            .zip(data.splitn(NAMES.len(), |b| *b == 0).map(<[u8]>::to_vec))
            .collect(),
    );
    for bytes in files.0.values() {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let file = egress_syntax::FileId(0);
            let fast = egress_syntax::parse(file, text);
            let pest = egress_syntax::parse_with_pest_only(file, text);
            let items = egress_syntax::parse_items(file, text);
            assert_eq!(fast.ast, pest.ast, "fast parser and pest disagree");
            assert_eq!(fast.diagnostics, pest.diagnostics);
            assert_eq!(format!("{:?}", fast.layout), format!("{:?}", pest.layout));
            assert_eq!(items.ast, pest.ast, "the checker's parse and pest disagree");
            assert_eq!(items.diagnostics, pest.diagnostics);
        }
    }
    let roots = ["main.egress".to_string()];
    let result = egress_check::check(&files, &roots);
    egc_fuzz::check_diagnostics(&result);
    // `egc check`'s check, which keeps neither the syntax tree nor the model, reports the
    // same.
    let lean = egress_check::check_diagnostics(&files, &roots);
    assert_eq!(lean.diagnostics, result.diagnostics, "check without the model differs");
    assert!(lean.policy.is_none());

    // Rendering, as `egc check` does for people (the first few: ariadne is slow, and the
    // span checks above already hold for every diagnostic) and machines.
    let mut out = Vec::new();
    let shown = result.diagnostics.len().min(RENDERED);
    egc::render::human::diagnostics(&result, &result.diagnostics[..shown], false, &mut out);
    for d in &result.diagnostics {
        let _ = egc::render::json::diagnostic(&result, d);
    }
    let policies = [egc::common::LoadedPolicy {
        dir: ".".to_string(),
        result,
    }];
    let _ = egc::render::sarif::diagnostics(&policies);

    // A policy that checks goes on to the verifier (Z3 only where the exact search gives up,
    // with a short time limit).
    let result = &policies[0].result;
    if let Some(policy) = &result.policy {
        let config = egress_verify::VerifyConfig {
            timeout_ms: 2_000,
            ..egress_verify::VerifyConfig::default()
        };
        let report = egress_verify::verify(policy, &config);
        let _ = egc::render::json::report(&[(result, &report)]);
        let _ = egc::render::sarif::report(&[(result, &report)]);
    }
});
