//! `egc graph`: for each case in `tests/graph/*.egress` and each example, the DOT and
//! Mermaid output is snapshot, and the SVG is parsed as XML and checked to draw every
//! node and edge. A case with violations must draw red. Each example's SVG is the
//! picture the book shows (`book/src/pictures/NAME.svg`).

use egc::cmd::graph::{build, dot, mermaid, svg};
use egc_tests::{check_case, repo_root};
use egress_verify::VerifyConfig;
use libtest_mimic::Trial;

use crate::{case_files, examples, snapshot};

pub fn trials() -> Vec<Trial> {
    let mut cases = case_files(&repo_root().join("tests/graph"), "egress");
    cases.extend(examples());
    cases
        .into_iter()
        .map(|case| {
            let name = case.file_stem().unwrap().to_string_lossy().into_owned();
            Trial::test(format!("graph::{name}"), move || {
                let result = check_case(&case);
                let policy = result.policy.as_ref().expect("the case checks");
                let report = egress_verify::verify(policy, &VerifyConfig::default());
                let graph = build(policy, &report, None);
                assert!(!graph.nodes.is_empty());
                let dot = dot(&graph);
                let mermaid = mermaid(&graph);
                assert_eq!(
                    report.violations.is_empty(),
                    !dot.contains("color=red"),
                    "red exactly when there are violations"
                );
                snapshot("graph", &format!("{name}.dot"), &dot);
                snapshot("graph", &format!("{name}.mermaid"), &mermaid);
                let svg = svg(&graph);
                if !case.is_file() {
                    // The book shows each example's picture: `book/src/pictures/NAME.svg`,
                    // regenerated with `EGC_BLESS=1`.
                    let picture = repo_root().join(format!("book/src/pictures/{name}.svg"));
                    if std::env::var_os("EGC_BLESS").is_some() {
                        std::fs::create_dir_all(picture.parent().unwrap()).unwrap();
                        std::fs::write(&picture, &svg).unwrap();
                    }
                    assert_eq!(
                        std::fs::read_to_string(&picture).unwrap_or_default(),
                        svg,
                        "{} is stale: run the suite with EGC_BLESS=1",
                        picture.display()
                    );
                }
                let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
                let root = doc.root_element();
                assert_eq!(root.tag_name().name(), "svg");
                assert_eq!(
                    root.tag_name().namespace(),
                    Some("http://www.w3.org/2000/svg")
                );
                let count = |tag: &str| root.descendants().filter(|n| n.has_tag_name(tag)).count();
                assert_eq!(count("rect"), graph.nodes.len());
                assert_eq!(
                    count("path"),
                    graph.edges.len() + 1,
                    "one path per edge and the arrow"
                );
                // One agent's view holds only what it reaches.
                if let Some(first) = policy.agents.first() {
                    let one = build(policy, &report, Some(&first.name.local));
                    assert!(one.nodes.len() <= graph.nodes.len());
                    assert!(one.nodes.iter().any(|n| n.label == first.name.local));
                }
                Ok(())
            })
        })
        .collect()
}
