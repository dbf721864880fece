//! Code blocks in `spec/` and `book/` tagged `egress` must parse: documentation cannot rot.
//! A block tagged `egress,ignore` is skipped; one tagged `egress,fail` must NOT check clean.

use egc_tests::repo_root;

fn markdown_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            markdown_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// (info string, code, line) of each fenced block.
fn blocks(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String, usize)> = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match current.take() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    current = Some((info.trim().to_string(), String::new(), number + 1));
                }
            }
            Some((info, mut code, start)) => {
                if trimmed.starts_with("```") {
                    out.push((info, code, start));
                } else {
                    code.push_str(line);
                    code.push('\n');
                    current = Some((info, code, start));
                }
            }
        }
    }
    out
}

#[test]
fn egress_blocks_in_docs_parse() {
    let root = repo_root();
    let mut files = Vec::new();
    markdown_files(&root.join("spec"), &mut files);
    markdown_files(&root.join("book/src"), &mut files);
    files.push(root.join("README.md"));
    files.sort();
    let mut checked = 0;
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (info, code, line) in blocks(&text) {
            let tags: Vec<&str> = info.split(',').map(str::trim).collect();
            if tags.first() != Some(&"egress") || tags.contains(&"ignore") {
                continue;
            }
            let result = egress_check::check_sources(&[("block.egress", &code)]);
            let parse_errors: Vec<_> = result
                .diagnostics
                .iter()
                .filter(|d| matches!(d.code, "E0001" | "E0002" | "E0003"))
                .collect();
            if tags.contains(&"fail") {
                assert!(
                    result.has_errors(),
                    "{}:{line}: block marked `fail` checks clean",
                    file.display()
                );
            } else {
                assert!(
                    parse_errors.is_empty(),
                    "{}:{line}: {:?}",
                    file.display(),
                    parse_errors
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no egress blocks found in the docs");
}
