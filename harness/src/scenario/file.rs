//! The scenario file as written: TOML shapes with spans, before any meaning is checked.
//!
//! `[[fault]]` and `[[infra]]` entries are read in two parts: the fields every entry has (here)
//! and the fields of its kind (declared by the kind itself, see [`crate::kind`]).

use super::diagnostic::Diagnostics;
use crate::kind::duration_schema;
use schemars::JsonSchema;
use serde::{Deserialize, de::IgnoredAny};
use std::{collections::BTreeMap, ops::Range};
use toml::{
    Spanned,
    de::{DeTable, DeValue, ValueDeserializer},
};

/// A whole scenario file. Unknown keys anywhere are errors, each named with the keys its table
/// takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScenarioFile {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub workflow: Spanned<String>,
    pub task_queue: Option<Spanned<String>>,
    pub args: Option<Spanned<Vec<toml::Value>>>,
    pub worker: Option<Spanned<WorkerSection>>,
    pub seed: Option<u64>,
    pub weight: Option<Spanned<f64>>,
    /// How many worker processes the harness starts for the scenario.
    pub workers: Option<Spanned<i64>>,
    /// The workflow task timeout the workflow is started with.
    pub workflow_task_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub input: InputSection,
    #[serde(default)]
    pub activity: ActivitySection,
    #[serde(default)]
    pub fallback: FallbackSection,
    pub expect: Spanned<ExpectSection>,
    /// `[[fault]]`, declared here so that the keys a file takes are listed in one place (and an
    /// unknown key's error names it); its entries are taken out of the document before it is
    /// read, and read through their kinds' own declarations (`entry.rs`).
    #[serde(rename = "fault")]
    _fault: Option<IgnoredAny>,
    /// `[[infra]]`, like `[[fault]]`.
    #[serde(rename = "infra")]
    _infra: Option<IgnoredAny>,
}

impl ScenarioFile {
    /// Reads the document (its `[[fault]]` and `[[infra]]` entries taken out) spanning `span`.
    /// serde stops at the first unknown key, so each one is taken out in turn until the file reads
    /// or has another problem; they are reported in the file's order, then that problem. `None`
    /// when it has any.
    pub(super) fn read(mut document: DeTable<'_>, span: Range<usize>, d: &mut Diagnostics<'_>) -> Option<Self> {
        let mut unknown = Vec::new();
        let result = loop {
            let value = Spanned::new(span.clone(), DeValue::Table(document.clone()));
            let e = match Self::deserialize(ValueDeserializer::from(value)) {
                Ok(file) => break Ok(file),
                Err(e) => e,
            };
            let at = e.span().unwrap_or(0..0);
            if !(e.message().starts_with("unknown field") && remove_key(&mut document, &at)) {
                break Err((at, e.message().trim().to_owned()));
            }
            unknown.push((at, e.message().trim().to_owned()));
        };
        unknown.sort_by_key(|(at, _)| at.start);
        let clean = unknown.is_empty();
        for (at, message) in unknown.into_iter().chain(result.as_ref().err().cloned()) {
            d.error(at, message);
        }
        result.ok().filter(|_| clean)
    }
}

/// Removes the key written at `at`, from `table` or a table within it; whether it was there.
fn remove_key(table: &mut DeTable<'_>, at: &Range<usize>) -> bool {
    let found = table
        .keys()
        .find(|key| key.span() == *at)
        .map(|key| key.get_ref().to_string());
    found.is_some_and(|key| table.remove(key.as_str()).is_some())
        || table.iter_mut().any(|(_, value)| match value.get_mut() {
            DeValue::Table(inner) => remove_key(inner, at),
            _ => false,
        })
}

/// `[worker]`: how the harness starts a worker of the user's own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkerSection {
    pub command: Spanned<Vec<String>>,
    pub cwd: Option<Spanned<String>>,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    pub ready_timeout: Option<Spanned<String>>,
    pub dials: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InputSection {
    pub numbers: Option<Spanned<Vec<toml::Value>>>,
    pub value: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActivitySection {
    pub start_to_close: Option<Spanned<String>>,
    pub schedule_to_close: Option<Spanned<String>>,
    pub heartbeat_timeout: Option<Spanned<String>>,
    pub retry: Option<Spanned<RetrySection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetrySection {
    pub initial_interval: Option<Spanned<String>>,
    pub backoff: Option<Spanned<f64>>,
    pub maximum_interval: Option<Spanned<String>>,
    pub maximum_attempts: Option<Spanned<u32>>,
    #[serde(default)]
    pub non_retryable_types: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FallbackSection {
    pub b_error_types: Option<Spanned<Vec<String>>>,
}

/// The fields every `[[fault]]` entry has, whatever its kind.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FaultCommon {
    /// Activity type the fault targets, or "*" for any.
    #[schemars(with = "String")]
    pub activity: Spanned<String>,
    /// Attempts it targets: "all" (the default), a number, a list like [1, 2], "2..4" or "from 3".
    #[schemars(with = "Option<String>")]
    pub attempts: Option<Spanned<AttemptsField>>,
    /// The fault kind, one of those below.
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    /// Chance to fire on a targeted attempt, in (0, 1]; always when absent. Decisions are seeded
    /// by the scenario's `seed`, so a seed replays the same faults.
    #[schemars(with = "Option<f64>")]
    pub probability: Option<Spanned<f64>>,
}

/// `attempts = [1, 2]`, `attempts = 3` or `attempts = "2..4"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum AttemptsField {
    One(u32),
    List(Vec<u32>),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExpectSection {
    pub outcome: Option<Spanned<String>>,
    pub result: Option<Spanned<toml::Value>>,
    pub attempts: Option<BTreeMap<Spanned<String>, Spanned<u32>>>,
    pub failure: Option<Spanned<String>>,
    pub error_contains: Option<Spanned<String>>,
    pub time_budget: Option<Spanned<String>>,
    pub workflow_task_failures: Option<Spanned<TaskFailuresField>>,
    pub workflow_task_timeouts: Option<Spanned<u32>>,
    pub drain_within: Option<Spanned<String>>,
}

/// `workflow_task_failures = 2` or `workflow_task_failures = { non_deterministic_error = 1 }`,
/// the causes with their positions.
#[derive(Debug)]
pub(super) enum TaskFailuresField {
    Total(i64),
    ByCause(BTreeMap<Spanned<String>, Spanned<u32>>),
}

impl<'de> Deserialize<'de> for TaskFailuresField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Field;
        impl<'de> serde::de::Visitor<'de> for Field {
            type Value = TaskFailuresField;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of workflow task failures, or a table of them by cause")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(TaskFailuresField::Total(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                BTreeMap::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(TaskFailuresField::ByCause)
            }
        }
        d.deserialize_any(Field)
    }
}

/// The fields every `[[infra]]` entry has, whatever its kind.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct InfraCommon {
    /// The infrastructure fault kind, one of those below.
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    /// Trigger: start when this activity's attempt (`attempt`) starts.
    #[schemars(with = "Option<String>")]
    pub activity: Option<Spanned<String>>,
    /// With `activity`: the attempt whose start triggers the fault (default 1).
    #[schemars(with = "Option<u32>")]
    pub attempt: Option<Spanned<u32>>,
    /// Trigger: start this long after the workflow started, e.g. "2s".
    #[schemars(schema_with = "duration_schema")]
    pub after: Option<Spanned<String>>,
    /// How long the fault lasts, e.g. "3s".
    #[schemars(schema_with = "duration_schema")]
    pub duration: Spanned<String>,
}
