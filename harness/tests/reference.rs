//! The scenario reference is derived from the kinds' declarations: every registered kind appears
//! with every one of its fields, and the copy in `docs/` is current.

mod common;

use common::repo;
use temporal_chaos::{faults::FaultAction, infra::InfraAction, kind::Kinds, scenario};

#[test]
fn every_kind_is_listed_with_its_fields() {
    let reference = scenario::reference();
    let kinds: Vec<_> = FaultAction::docs().into_iter().chain(InfraAction::docs()).collect();
    assert_eq!(
        kinds.iter().map(|k| k.name).collect::<Vec<_>>(),
        FaultAction::NAMES
            .iter()
            .chain(InfraAction::NAMES)
            .copied()
            .collect::<Vec<_>>(),
        "each registered kind has a reference entry, in registration order"
    );
    for kind in &kinds {
        let heading = format!("### `kind = \"{}\"`", kind.name);
        let section = reference
            .split(&heading)
            .nth(1)
            .unwrap_or_else(|| panic!("{heading} missing from the reference"));
        let section = section.split("\n### ").next().unwrap_or_default();
        assert!(!kind.doc.is_empty(), "kind {} has no doc comment", kind.name);
        for field in &kind.fields {
            assert!(!field.doc.is_empty(), "{}.{} has no doc comment", kind.name, field.name);
            assert!(
                section.contains(&format!("| `{}` |", field.name)),
                "{}.{} missing from its section:\n{section}",
                kind.name,
                field.name
            );
        }
    }
}

#[test]
fn the_docs_copy_is_current() {
    let path = repo().join("docs/scenario-reference.md");
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        written == scenario::reference(),
        "{} is out of date: run `cargo run -q --bin chaos -- kinds > docs/scenario-reference.md`",
        path.display()
    );
}
