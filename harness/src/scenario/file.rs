//! The scenario file as written: TOML shapes with spans, before any meaning is checked.
//!
//! `[[fault]]` and `[[infra]]` entries are read in two parts: the fields every entry has (here)
//! and the fields of its kind (declared by the kind itself, see [`crate::kind`]).

use crate::kind::duration_schema;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A whole scenario file. Unknown keys anywhere are errors.
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
