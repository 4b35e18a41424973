//! The scenario reference of `[[fault]]` and `[[infra]]` entries, derived from their declarations
//! (`chaos kinds` prints it; `docs/scenario-reference.md` keeps a copy that a test compares).

use super::file::{FaultCommon, InfraCommon};
use crate::{
    faults::FaultAction,
    infra::InfraAction,
    kind::{KindDoc, Kinds, fields_table, kinds_markdown},
};

/// The reference as Markdown.
pub fn reference() -> String {
    format!(
        "# Scenario reference: fault kinds\n\n\
         <!-- Generated from the kinds' declarations by `chaos kinds`; do not edit by hand. -->\n\n\
         ## `[[fault]]`: faults in activities\n\n\
         Every entry has these fields, then the fields of its kind.\n\n{}{}\n\
         ## `[[infra]]`: faults in the infrastructure\n\n\
         Every entry has these fields (a trigger: `activity` + `attempt`, or `after`), then the \
         fields of its kind.\n\n{}{}",
        fields_table(&KindDoc::of::<FaultCommon>("fault").fields),
        kinds_markdown(&FaultAction::docs()),
        fields_table(&KindDoc::of::<InfraCommon>("infra").fields),
        kinds_markdown(&InfraAction::docs()),
    )
}
