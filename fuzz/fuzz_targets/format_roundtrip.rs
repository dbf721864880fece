//! Formatter round trip: for every input that parses without errors, formatting is
//! idempotent, keeps every comment (same texts, same order), and reparses to the same
//! syntax tree, spans aside.
#![no_main]

use egress_syntax::format::format_source;
use egress_syntax::lexer::tokenize;
use egress_syntax::{parse, FileId};
use libfuzzer_sys::fuzz_target;

fn comments(source: &str) -> Vec<&str> {
    tokenize(source)
        .into_iter()
        .filter(|t| t.kind.is_trivia())
        .map(|t| t.text(source).trim_end())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse(FileId(0), source);
    if parsed.has_errors() {
        assert!(
            format_source(source).is_err(),
            "formatted a file with errors"
        );
        return;
    }
    let once = match format_source(source) {
        Ok(text) => text,
        Err(d) => panic!("parses, but the formatter refused: {d:?}"),
    };
    let reparsed = parse(FileId(0), &once);
    assert!(
        !reparsed.has_errors(),
        "formatted text does not parse:\n{once}\n{:?}",
        reparsed.diagnostics
    );
    assert_eq!(
        egc_fuzz::shape(&parsed),
        egc_fuzz::shape(&reparsed),
        "formatting changed the tree:\n{once}"
    );
    assert_eq!(
        comments(source),
        comments(&once),
        "formatting lost or changed a comment:\n{once}"
    );
    let twice = format_source(&once).unwrap_or_default();
    assert_eq!(once, twice, "formatting is not idempotent");
});
