//! The scenario file as written: TOML shapes with spans, before any meaning is checked.

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
    pub seed: Option<u64>,
    #[serde(default)]
    pub input: InputSection,
    #[serde(default)]
    pub activity: ActivitySection,
    #[serde(default)]
    pub fallback: FallbackSection,
    #[serde(default, rename = "fault")]
    pub faults: Vec<Spanned<FaultSection>>,
    #[serde(default)]
    pub infra: Vec<Spanned<InfraSection>>,
    pub expect: Spanned<ExpectSection>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FaultSection {
    pub activity: Spanned<String>,
    pub attempts: Option<Spanned<AttemptsField>>,
    pub kind: Spanned<String>,
    pub probability: Option<Spanned<f64>>,
    pub message: Option<Spanned<String>>,
    #[serde(rename = "type")]
    pub error_type: Option<Spanned<String>>,
    pub non_retryable: Option<Spanned<bool>>,
    pub duration: Option<Spanned<String>>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InfraSection {
    pub kind: Spanned<String>,
    pub activity: Option<Spanned<String>>,
    pub attempt: Option<Spanned<u32>>,
    pub after: Option<Spanned<String>>,
    pub duration: Spanned<String>,
    pub mode: Option<Spanned<String>>,
    pub latency: Option<Spanned<String>>,
    pub jitter: Option<Spanned<String>>,
}
