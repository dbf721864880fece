//! Parse → format → parse keeps the syntax tree (modulo spans) over examples/ and stdlib/;
//! formatting is idempotent, also on randomly re-spaced and commented inputs (proptest).

use egc_tests::{egress_files, repo_root};
use egress_syntax::format::format_source;
use egress_syntax::lexer::{tokenize, TokenKind};
use egress_syntax::{parse, FileId};
use proptest::prelude::*;

/// The syntax tree as JSON without spans, for comparisons across layouts.
fn shape(source: &str) -> serde_json::Value {
    let parsed = parse(FileId(0), source);
    assert!(
        !parsed.has_errors(),
        "does not parse: {:?}",
        parsed.diagnostics
    );
    let mut value = serde_json::to_value(&parsed.ast).unwrap();
    strip_spans(&mut value);
    value
}

fn is_span(value: &serde_json::Value) -> bool {
    value.as_object().is_some_and(|map| {
        map.len() == 3
            && map.contains_key("file")
            && map.contains_key("start")
            && map.contains_key("end")
    })
}

fn strip_spans(value: &mut serde_json::Value) {
    // A bare span (as in `AgentRef::All(span)`) becomes null.
    if is_span(value) {
        *value = serde_json::Value::Null;
        return;
    }
    match value {
        serde_json::Value::Object(map) => {
            map.remove("span");
            for v in map.values_mut() {
                strip_spans(v);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_spans),
        _ => {}
    }
}

fn corpus() -> Vec<(String, String)> {
    let root = repo_root();
    let mut files = egress_files(&root.join("examples"));
    files.extend(egress_files(&root.join("stdlib")));
    files.extend(egress_files(&root.join("crates/egc/src/cmd/init")));
    files
        .into_iter()
        .map(|f| {
            (
                f.display().to_string(),
                std::fs::read_to_string(&f).unwrap(),
            )
        })
        .collect()
}

#[test]
fn examples_and_stdlib_round_trip_and_are_formatted() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 10,
        "expected examples and stdlib files, found {}",
        corpus.len()
    );
    for (path, source) in corpus {
        let formatted = format_source(&source).unwrap_or_else(|d| panic!("{path}: {d:?}"));
        assert_eq!(
            shape(&source),
            shape(&formatted),
            "{path}: formatting changed the tree"
        );
        assert_eq!(
            format_source(&formatted).unwrap(),
            formatted,
            "{path}: not idempotent"
        );
        assert_eq!(formatted, source, "{path}: not formatted; run `egc fmt`");
    }
}

/// Re-joins the tokens of `source` with the given separators (cycled), inserting only
/// whitespace and plain comments, never between a doc comment and its item.
fn respace(source: &str, separators: &[u8]) -> String {
    let tokens = tokenize(source);
    let mut out = String::new();
    for (i, token) in tokens.iter().enumerate() {
        let text = token.text(source);
        if i > 0 {
            let previous = tokens[i - 1].kind;
            let choice = separators[i % separators.len().max(1)] % 5;
            let separator = match (previous, choice) {
                (TokenKind::DocComment, _) | (TokenKind::Comment, _) => "\n",
                (_, 0) => " ",
                (_, 1) => "\n",
                (_, 2) => "\n\n\n",
                (_, 3) => "   \t",
                _ => " // note\n",
            };
            out.push_str(separator);
        }
        out.push_str(text);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn formatting_is_idempotent_and_keeps_the_tree(
        index in 0usize..64,
        separators in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let corpus = corpus();
        let (_, source) = &corpus[index % corpus.len()];
        let messy = respace(source, &separators);
        let once = format_source(&messy).unwrap();
        let twice = format_source(&once).unwrap();
        prop_assert_eq!(&once, &twice);
        prop_assert_eq!(shape(source), shape(&once));
        // Every comment survives.
        let comments = |s: &str| tokenize(s).iter().filter(|t| t.kind.is_trivia()).count();
        prop_assert_eq!(comments(&messy), comments(&once));
    }
}
