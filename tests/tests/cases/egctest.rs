//! `tests/egctest/tests/*.egtest`: each file is run on the policy `tests/egctest/` as
//! `egc test` runs it. Its `// summary:` line is the exact summary line expected; the
//! human output and the JUnit XML are snapshot, and the XML is validated against the
//! schema kept in `tests/junit/junit.xsd`. Each example's own tests must pass.

use std::collections::BTreeMap;

use egc::cmd::test::{human, junit, run_file};
use egc_tests::{check_case, repo_root};
use libtest_mimic::Trial;

use crate::{case_files, examples, snapshot};

pub fn trials() -> Vec<Trial> {
    let dir = repo_root().join("tests/egctest/tests");
    let mut out: Vec<Trial> = case_files(&dir, "egtest")
        .into_iter()
        .map(|file| {
            let name = file.file_stem().unwrap().to_string_lossy().into_owned();
            Trial::test(format!("egctest::{name}"), move || {
                let text = std::fs::read_to_string(&file).unwrap();
                let expected = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("// summary:"))
                    .expect("a `// summary:` line")
                    .trim()
                    .to_string();
                let policy = check_case(&repo_root().join("tests/egctest"));
                let shown = format!("tests/{name}.egtest");
                let results = run_file(policy.policy.as_ref().unwrap(), &shown, &text).unwrap();
                let failed = results.iter().filter(|r| r.failure.is_some()).count();
                let printed = human(&results, results.len() - failed, failed);
                assert_eq!(printed.lines().last(), Some(expected.as_str()));
                let xml = junit(&results);
                validate(&xml);
                snapshot("egctest", &name, &format!("{printed}\n{xml}"));
                Ok(())
            })
        })
        .collect();
    // The schema check is not vacuous: reports that break the schema are refused.
    out.push(Trial::test("egctest::junit-schema-refuses-invalid", || {
        for bad in [
            "<testsuites><testcase name=\"a\" classname=\"b\"/></testsuites>",
            "<testsuites><testsuite name=\"a\"/></testsuites>",
            "<testsuites><testsuite name=\"a\" tests=\"x\"/></testsuites>",
            "<testsuites><testsuite name=\"a\" tests=\"1\"><testcase name=\"c\" classname=\"d\"><failure/><error/></testcase></testsuite></testsuites>",
        ] {
            assert!(std::panic::catch_unwind(|| validate(bad)).is_err(), "accepted {bad}");
        }
        Ok(())
    }));
    out.extend(examples().into_iter().map(|example| {
        let name = example.file_name().unwrap().to_string_lossy().into_owned();
        Trial::test(format!("egctest::example::{name}"), move || {
            let policy = check_case(&example);
            let files = case_files(&example.join("tests"), "egtest");
            assert!(!files.is_empty(), "{name} has no tests/*.egtest");
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                let results = run_file(policy.policy.as_ref().unwrap(), "t", &text).unwrap();
                assert!(!results.is_empty());
                let failing: Vec<_> = results.iter().filter_map(|r| r.failure.as_ref()).collect();
                assert!(failing.is_empty(), "{name}: {failing:#?}");
                validate(&junit(&results));
            }
            Ok(())
        })
    }));
    out
}

/// What the schema says of one element: its attributes (name → (type, required)), the
/// elements it may hold with their occurrence bounds, whether they form a `choice`, and
/// whether text may appear (`mixed`).
#[derive(Default)]
struct ElementRule {
    attributes: BTreeMap<String, (String, bool)>,
    children: Vec<(String, usize, Option<usize>)>,
    choice: Option<(usize, Option<usize>)>,
    mixed: bool,
}

fn occurs(node: roxmltree::Node<'_, '_>, attr: &str) -> Option<usize> {
    match node.attribute(attr) {
        None => Some(1),
        Some("unbounded") => None,
        Some(n) => Some(n.parse().unwrap()),
    }
}

/// Reads the subset of XML Schema that `tests/junit/junit.xsd` uses: global elements
/// with a complex type of a `sequence` or `choice` of element references, attributes
/// with a type and `use`, and `mixed` content. Anything else in the schema fails here,
/// so the schema cannot grow past what this check understands.
fn schema() -> BTreeMap<String, ElementRule> {
    let text = std::fs::read_to_string(repo_root().join("tests/junit/junit.xsd")).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let mut rules = BTreeMap::new();
    for element in doc.root_element().children().filter(|n| n.is_element()) {
        assert_eq!(element.tag_name().name(), "element");
        let mut rule = ElementRule::default();
        let ty = element.children().find(|n| n.is_element()).unwrap();
        assert_eq!(ty.tag_name().name(), "complexType");
        rule.mixed = ty.attribute("mixed") == Some("true");
        for part in ty.children().filter(|n| n.is_element()) {
            match part.tag_name().name() {
                "attribute" => {
                    rule.attributes.insert(
                        part.attribute("name").unwrap().to_string(),
                        (
                            part.attribute("type").unwrap().to_string(),
                            part.attribute("use") == Some("required"),
                        ),
                    );
                }
                group @ ("sequence" | "choice") => {
                    if group == "choice" {
                        rule.choice = Some((
                            occurs(part, "minOccurs").unwrap(),
                            occurs(part, "maxOccurs"),
                        ));
                    }
                    for child in part.children().filter(|n| n.is_element()) {
                        assert_eq!(child.tag_name().name(), "element");
                        rule.children.push((
                            child.attribute("ref").unwrap().to_string(),
                            occurs(child, "minOccurs").unwrap(),
                            occurs(child, "maxOccurs"),
                        ));
                    }
                }
                other => panic!("junit.xsd uses `{other}`, which this check does not read"),
            }
        }
        rules.insert(element.attribute("name").unwrap().to_string(), rule);
    }
    rules
}

fn check_value(ty: &str, value: &str) -> bool {
    match ty {
        "xs:string" => true,
        "xs:nonNegativeInteger" => !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
        "xs:decimal" => value.parse::<f64>().is_ok(),
        other => panic!("type {other} not understood"),
    }
}

fn validate_element(rules: &BTreeMap<String, ElementRule>, node: roxmltree::Node<'_, '_>) {
    let name = node.tag_name().name();
    let rule = rules
        .get(name)
        .unwrap_or_else(|| panic!("<{name}> is not in the schema"));
    for a in node.attributes() {
        let (ty, _) = rule
            .attributes
            .get(a.name())
            .unwrap_or_else(|| panic!("<{name}> has an undeclared attribute `{}`", a.name()));
        assert!(
            check_value(ty, a.value()),
            "<{name} {}> is not a {ty}",
            a.name()
        );
    }
    for (attr, (_, required)) in &rule.attributes {
        assert!(
            !required || node.attribute(attr.as_str()).is_some(),
            "<{name}> lacks `{attr}`"
        );
    }
    let children: Vec<_> = node.children().filter(|n| n.is_element()).collect();
    if !rule.mixed {
        assert!(
            node.children()
                .filter(|n| n.is_text())
                .all(|t| t.text().unwrap().trim().is_empty()),
            "<{name}> may not hold text"
        );
    }
    if let Some((min, max)) = rule.choice {
        assert!(children.len() >= min && max.is_none_or(|m| children.len() <= m));
    }
    // Sequence: children appear in the declared order, each within its bounds.
    let mut rest = children.as_slice();
    for (child, min, max) in &rule.children {
        let count = if rule.choice.is_some() {
            children
                .iter()
                .filter(|c| c.tag_name().name() == child)
                .count()
        } else {
            let n = rest
                .iter()
                .take_while(|c| c.tag_name().name() == child)
                .count();
            rest = &rest[n..];
            n
        };
        if rule.choice.is_none() {
            assert!(count >= *min, "<{name}> needs at least {min} <{child}>");
        }
        assert!(
            max.is_none_or(|m| count <= m),
            "<{name}> has too many <{child}>"
        );
    }
    if rule.choice.is_none() {
        assert!(
            rest.is_empty(),
            "<{name}> holds an element the schema does not allow there"
        );
    } else {
        assert!(children.iter().all(|c| rule
            .children
            .iter()
            .any(|(n, _, _)| n == c.tag_name().name())));
    }
    for child in children {
        validate_element(rules, child);
    }
}

/// Validates a JUnit report against `tests/junit/junit.xsd`.
pub fn validate(xml: &str) {
    let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "testsuites");
    validate_element(&schema(), doc.root_element());
}
