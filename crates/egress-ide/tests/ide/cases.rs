//! `tests/ide/*.ide`: one trial per case file. A case is a fixture (see `fixture.rs`)
//! followed by `//- expect` and queries, each followed by indented assertions:
//!
//! ```text
//! diagnostics PATH            code CODE [$a $b] | severity CODE SEVERITY | fix CODE TEXT
//!                             | none
//! code-actions $a $b          count N | edit PATH $x $y TEXT
//! hover $n                    range $a $b | contains TEXT | none
//! definition $n               file PATH | stdlib NAME | range $a $b | text TEXT
//! references $n [no-decl]     ref PATH TEXT (the whole list, in order) | count N
//! completions $n              has LABEL KIND | lacks LABEL [KIND] | first-replace $a $b
//! highlight PATH              at $n TAG [decl]
//! prepare-rename $n           range $a $b | placeholder NAME
//! rename $n NEW               refused TEXT
//! ```
//!
//! `$n` names a marker of the fixture; KIND and TAG are spelled as their `Debug` form
//! (`Keyword`, `Name("destination")`). Comment lines (`#`) and blank lines are skipped.

use std::path::{Path, PathBuf};

use egress_ide::{Analysis, FileRef, TextRange};

use crate::fixture::Fixture;

fn marker(fixture: &Fixture, word: &str) -> usize {
    let n = word
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected a marker, got `{word}`"));
    fixture.at(n)
}

fn range(fixture: &Fixture, a: &str, b: &str) -> TextRange {
    TextRange::new(marker(fixture, a), marker(fixture, b))
}

/// Splits `line` into its first `n` words and the rest (trimmed).
fn words(line: &str, n: usize) -> (Vec<&str>, &str) {
    let mut out = Vec::new();
    let mut rest = line.trim();
    for _ in 0..n {
        let (w, r) = rest.split_once(' ').unwrap_or((rest, ""));
        out.push(w);
        rest = r.trim_start();
    }
    (out, rest)
}

fn text_of(analysis: &Analysis, file: &FileRef, r: TextRange) -> String {
    let text = match file {
        FileRef::Path(p) => analysis.file_text(p).unwrap().to_string(),
        FileRef::Stdlib { text, .. } => text.to_string(),
    };
    text[r.start..r.end].to_string()
}

pub fn run(fixture: &Fixture) {
    let (host, _) = fixture.host();
    let analysis = host.snapshot();
    let mut lines = fixture
        .expect
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .peekable();
    let mut queries = 0;
    while let Some(query) = lines.next() {
        assert!(
            !query.starts_with(' '),
            "an assertion without a query: `{query}`"
        );
        let mut checks = Vec::new();
        while let Some(l) = lines.next_if(|l| l.starts_with(' ')) {
            checks.push(l.trim());
        }
        assert!(!checks.is_empty(), "`{query}` asserts nothing");
        queries += 1;
        let (q, _) = words(query, 1);
        let cursor = |i: usize| -> (PathBuf, usize) {
            let (w, _) = words(query, i + 1);
            let n: usize = w[i].trim_start_matches('$').parse().unwrap();
            let (p, o) = fixture.marker(n);
            (p.to_path_buf(), o)
        };
        match q[0] {
            "diagnostics" => {
                let (w, _) = words(query, 2);
                let diags = analysis.diagnostics(Path::new(w[1]));
                for check in checks {
                    let (c, rest) = words(check, 1);
                    match c[0] {
                        "none" => assert!(diags.is_empty(), "{diags:#?}"),
                        "code" => {
                            let (a, _) = words(rest, 3);
                            let found = diags.iter().any(|d| {
                                d.code == a[0]
                                    && (a[1].is_empty() || d.range == range(fixture, a[1], a[2]))
                            });
                            assert!(found, "no {check} in {diags:#?}");
                        }
                        "severity" => {
                            let (a, severity) = words(rest, 1);
                            let d = diags.iter().find(|d| d.code == a[0]).unwrap();
                            assert_eq!(format!("{:?}", d.severity), severity, "{d:#?}");
                        }
                        "fix" => {
                            let (a, text) = words(rest, 1);
                            let d = diags.iter().find(|d| d.code == a[0]).unwrap();
                            let (_, edit) = d.fix.clone().expect("a fix");
                            assert_eq!(edit.new_text, text, "{d:#?}");
                            assert_eq!(edit.range, d.range);
                        }
                        other => panic!("unknown diagnostics check `{other}`"),
                    }
                }
            }
            "code-actions" => {
                let (w, _) = words(query, 3);
                let (path, _) = cursor(1);
                let actions = analysis.code_actions(&path, range(fixture, w[1], w[2]));
                for check in checks {
                    let (c, rest) = words(check, 1);
                    match c[0] {
                        "count" => assert_eq!(actions.len(), rest.parse::<usize>().unwrap()),
                        "edit" => {
                            let (a, text) = words(rest, 3);
                            let found = actions.iter().any(|action| {
                                action.edit.get(Path::new(a[0])).is_some_and(|edits| {
                                    edits.iter().any(|e| {
                                        e.new_text == text && e.range == range(fixture, a[1], a[2])
                                    })
                                })
                            });
                            assert!(found, "no {check} in {actions:#?}");
                        }
                        other => panic!("unknown code-actions check `{other}`"),
                    }
                }
            }
            "hover" => {
                let (path, offset) = cursor(1);
                let hover = analysis.hover(&path, offset);
                for check in checks {
                    let (c, rest) = words(check, 1);
                    if c[0] == "none" {
                        assert!(hover.is_none(), "{hover:#?}");
                        continue;
                    }
                    let hover = hover
                        .as_ref()
                        .unwrap_or_else(|| panic!("no hover: {query}"));
                    match c[0] {
                        "range" => {
                            let (a, _) = words(rest, 2);
                            assert_eq!(hover.range, range(fixture, a[0], a[1]));
                        }
                        "contains" => assert!(
                            hover.markdown.contains(rest),
                            "`{rest}` not in:\n{}",
                            hover.markdown
                        ),
                        other => panic!("unknown hover check `{other}`"),
                    }
                }
            }
            "definition" => {
                let (path, offset) = cursor(1);
                let target = analysis
                    .definition(&path, offset)
                    .unwrap_or_else(|| panic!("no definition: {query}"));
                for check in checks {
                    let (c, rest) = words(check, 1);
                    match c[0] {
                        "file" => {
                            assert_eq!(target.file, FileRef::Path(PathBuf::from(rest)))
                        }
                        "stdlib" => {
                            let FileRef::Stdlib { name, .. } = &target.file else {
                                panic!("not in the stdlib: {target:?}")
                            };
                            assert_eq!(name, rest);
                        }
                        "range" => {
                            let (a, _) = words(rest, 2);
                            assert_eq!(target.range, range(fixture, a[0], a[1]));
                        }
                        "text" => {
                            assert_eq!(text_of(&analysis, &target.file, target.range), rest)
                        }
                        other => panic!("unknown definition check `{other}`"),
                    }
                }
            }
            "references" => {
                let (path, offset) = cursor(1);
                let (w, _) = words(query, 3);
                let found: Vec<String> = analysis
                    .references(&path, offset, w[2] != "no-decl")
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {}",
                            r.file.path().unwrap().display(),
                            text_of(&analysis, &r.file, r.range)
                        )
                    })
                    .collect();
                let mut expected = Vec::new();
                for check in checks {
                    let (c, rest) = words(check, 1);
                    match c[0] {
                        "ref" => expected.push(rest.to_string()),
                        "count" => assert_eq!(found.len(), rest.parse::<usize>().unwrap()),
                        other => panic!("unknown references check `{other}`"),
                    }
                }
                if !expected.is_empty() {
                    assert_eq!(found, expected);
                }
            }
            "completions" => {
                let (path, offset) = cursor(1);
                let items = analysis.completions(&path, offset);
                let labels: Vec<(String, String)> = items
                    .iter()
                    .map(|c| (c.label.clone(), format!("{:?}", c.kind)))
                    .collect();
                for check in checks {
                    let (c, rest) = words(check, 2);
                    match c[0] {
                        "has" => assert!(
                            labels.contains(&(c[1].to_string(), rest.to_string())),
                            "{check}: not in {labels:?}"
                        ),
                        "lacks" => assert!(
                            !labels
                                .iter()
                                .any(|(l, k)| l == c[1] && (rest.is_empty() || k == rest)),
                            "{check}: in {labels:?}"
                        ),
                        "first-replace" => {
                            let (a, _) = words(&check["first-replace".len()..], 2);
                            assert_eq!(items[0].replace, range(fixture, a[0], a[1]));
                        }
                        other => panic!("unknown completions check `{other}`"),
                    }
                }
            }
            "highlight" => {
                let (w, _) = words(query, 2);
                let highlights = analysis.highlight(Path::new(w[1]));
                for check in checks {
                    let (c, rest) = words(check, 2);
                    assert_eq!(c[0], "at", "unknown highlight check `{check}`");
                    let start = marker(fixture, c[1]);
                    let (tag, decl) = match rest.strip_suffix(" decl") {
                        Some(tag) => (tag, true),
                        None => (rest, false),
                    };
                    let found = highlights
                        .iter()
                        .find(|h| h.range.start == start)
                        .map(|h| (format!("{:?}", h.tag), h.declaration));
                    assert_eq!(found, Some((tag.to_string(), decl)), "{check}");
                }
            }
            "prepare-rename" => {
                let (path, offset) = cursor(1);
                let (r, placeholder) = analysis.prepare_rename(&path, offset).unwrap();
                for check in checks {
                    let (c, rest) = words(check, 1);
                    match c[0] {
                        "placeholder" => assert_eq!(placeholder, rest),
                        "range" => {
                            let (a, _) = words(rest, 2);
                            assert_eq!(r, range(fixture, a[0], a[1]));
                        }
                        other => panic!("unknown prepare-rename check `{other}`"),
                    }
                }
            }
            "rename" => {
                let (path, offset) = cursor(1);
                let (w, _) = words(query, 3);
                let result = analysis.rename(&path, offset, w[2]);
                for check in checks {
                    let (c, rest) = words(check, 1);
                    assert_eq!(c[0], "refused", "unknown rename check `{check}`");
                    let error = result.as_ref().unwrap_err();
                    assert!(error.0.contains(rest), "`{rest}` not in `{}`", error.0);
                }
            }
            other => panic!("unknown query `{other}`"),
        }
    }
    assert!(queries > 0, "the case has no `//- expect` queries");
}
