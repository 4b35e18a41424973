//! The validated plan: what a scenario file means once every field has been checked.
//!
//! A [`Plan`] is the only thing the runner sees. It never holds an invalid combination
//! (those are rejected by [`crate::scenario`] with positions), so later stages can trust it.

use crate::{
    failure::FailureKind,
    faults::FaultPlan,
    infra::{InfraRule, WorkerSpec},
};
use serde::{Deserialize, Serialize};
use std::{path::PathBuf, time::Duration};

/// One scenario, validated and ready to run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Scenario name, unique within a run; used in workflow ids.
    pub name: String,
    /// Free text shown in reports.
    pub description: String,
    /// The file the plan came from.
    pub source: PathBuf,
    /// Which workflow runs and with what input.
    pub workflow: WorkflowSpec,
    /// The task queue a worker of the user's own polls, fixed in its code (`None`: the harness
    /// picks one per run, passed to a `[worker]` as `{task_queue}`).
    pub task_queue: Option<String>,
    /// How the harness starts the user's worker (`None`: the harness's own worker for the demo
    /// workflows, or a user worker already running behind `chaos proxy`).
    pub worker: Option<WorkerSpec>,
    /// Faults injected into activities; travels with the workflow in a header.
    pub faults: FaultPlan,
    /// Faults injected into the infrastructure while the workflow runs.
    pub infra: Vec<InfraRule>,
    /// What the workflow's history must show.
    pub expect: Expectations,
    /// How much the scenario counts in a run's resilience score (`weight`, default 1).
    pub weight: f64,
    /// How many worker processes poll the scenario's task queue when the harness starts them
    /// for it (`workers`, default 1).
    pub workers: usize,
    /// The workflow task timeout the workflow is started with (`None`: the server's 10 s).
    #[serde(with = "humantime_serde")]
    pub workflow_task_timeout: Option<Duration>,
}

impl Plan {
    /// Every fault of the plan, activity and infrastructure, described for reports.
    pub fn fault_descriptions(&self) -> Vec<String> {
        self.faults
            .rules
            .iter()
            .map(|r| r.describe())
            .chain(self.infra.iter().map(|r| r.describe()))
            .collect()
    }
}

/// The workflow under test with its input.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkflowSpec {
    /// Demo: validated input, two child workflows in parallel, results summed.
    Orchestration(OrchestrationInput),
    /// Demo: one risky activity under a retry policy, with fallbacks chosen by failure kind.
    Resilient(ResilientInput),
    /// A workflow of the user's own, run by a worker in any language; faults enter on the wire.
    User(UserWorkflow),
}

impl WorkflowSpec {
    /// Activity type names this workflow (and its children) can schedule; `None` when unknown
    /// (a workflow of the user's own).
    pub fn activity_types(&self) -> Option<&'static [&'static str]> {
        match self {
            WorkflowSpec::Orchestration(_) => Some(&["add", "multiply", "sum"]),
            WorkflowSpec::Resilient(_) => Some(&["risky", "fallback_a", "fallback_b"]),
            WorkflowSpec::User(_) => None,
        }
    }

    /// The workflow as written in scenario files: a demo kind or the user's workflow type.
    pub fn kind(&self) -> &str {
        match self {
            WorkflowSpec::Orchestration(_) => "orchestration",
            WorkflowSpec::Resilient(_) => "resilient",
            WorkflowSpec::User(u) => &u.workflow_type,
        }
    }

    /// Activity settings the scenario applies to its activities (a user's workflow sets its own).
    pub fn activity(&self) -> Option<&ActivitySettings> {
        match self {
            WorkflowSpec::Orchestration(i) => Some(&i.activity),
            WorkflowSpec::Resilient(i) => Some(&i.activity),
            WorkflowSpec::User(_) => None,
        }
    }
}

/// A workflow of the user's own.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserWorkflow {
    /// The workflow type its worker registers.
    pub workflow_type: String,
    /// Its arguments, one JSON value each.
    pub args: Vec<serde_json::Value>,
}

/// Input of the orchestration workflow. Numbers are raw JSON values and not validated here on
/// purpose: rejecting bad input is the workflow's job, and a scenario may test exactly that.
/// (Non-finite floats have no JSON form and arrive as `null`.)
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrchestrationInput {
    /// Numbers to add and multiply.
    pub numbers: Vec<serde_json::Value>,
    /// Options for every activity of the workflow and its children.
    pub activity: ActivitySettings,
}

/// Input of the resilient-call workflow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResilientInput {
    /// Value handed to the risky activity (the primary path doubles it).
    pub value: i64,
    /// Options for the risky activity.
    pub activity: ActivitySettings,
    /// Application error types that lead to fallback B instead of failing the workflow.
    pub fallback_b_error_types: Vec<String>,
}

/// Timeouts and retry policy for an activity, as the scenario states them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ActivitySettings {
    /// Limit of one attempt.
    #[serde(with = "humantime_serde")]
    pub start_to_close: Option<Duration>,
    /// Limit of all attempts together, retries included.
    #[serde(with = "humantime_serde")]
    pub schedule_to_close: Option<Duration>,
    /// Longest gap allowed between heartbeats.
    #[serde(with = "humantime_serde")]
    pub heartbeat_timeout: Option<Duration>,
    /// Retry policy; `None` uses the server's default policy.
    pub retry: Option<RetrySettings>,
}

/// A Temporal retry policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RetrySettings {
    /// Delay before the first retry.
    #[serde(with = "humantime_serde")]
    pub initial_interval: Duration,
    /// Multiplier applied to the delay after each retry.
    pub backoff: f64,
    /// Upper bound of the delay.
    #[serde(with = "humantime_serde")]
    pub maximum_interval: Option<Duration>,
    /// Attempts in all, the first one included; 0 means unlimited.
    pub maximum_attempts: u32,
    /// Application error types that are never retried.
    pub non_retryable_types: Vec<String>,
}

/// How a scenario's workflow ended, as read from its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Completed through its primary path.
    #[serde(rename = "completed")]
    Completed,
    /// Completed through fallback A (the activity timed out).
    #[serde(rename = "fallback-A")]
    FallbackA,
    /// Completed through fallback B (a configured application error type).
    #[serde(rename = "fallback-B")]
    FallbackB,
    /// The workflow failed.
    #[serde(rename = "failed")]
    Failed,
    /// The workflow hit its execution timeout.
    #[serde(rename = "timed_out")]
    TimedOut,
    /// The workflow was cancelled.
    #[serde(rename = "canceled")]
    Canceled,
    /// The workflow was terminated (by the harness when it outlived its deadline, or by someone).
    #[serde(rename = "terminated")]
    Terminated,
    /// Still running when last read, or continued as new.
    #[serde(rename = "stuck")]
    Stuck,
}

impl Outcome {
    /// The outcomes any workflow can have, as written in scenario files.
    pub const GENERIC: [Outcome; 5] = [
        Outcome::Completed,
        Outcome::Failed,
        Outcome::TimedOut,
        Outcome::Canceled,
        Outcome::Terminated,
    ];
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Completed => "completed",
            Outcome::FallbackA => "fallback-A",
            Outcome::FallbackB => "fallback-B",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Canceled => "canceled",
            Outcome::Terminated => "terminated",
            Outcome::Stuck => "stuck",
        })
    }
}

/// What the history must show for the scenario to pass.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Expectations {
    /// How the workflow ended.
    pub outcome: Option<Outcome>,
    /// The workflow's result value (the `value` field for the resilient workflow, the whole
    /// result otherwise).
    pub result: Option<serde_json::Value>,
    /// Attempts per activity type (summed over its executions; 0 = never scheduled).
    pub attempts: Vec<(String, u32)>,
    /// A failure kind that must appear among the activity failures in history.
    pub failure: Option<FailureKind>,
    /// Text the workflow's failure message must contain.
    pub error_contains: Option<String>,
    /// Longest allowed time from workflow start to close.
    #[serde(with = "humantime_serde")]
    pub time_budget: Option<Duration>,
    /// `WorkflowTaskFailed` events the workflow and its children must show.
    pub workflow_task_failures: Option<TaskFailureCount>,
    /// `WorkflowTaskTimedOut` events the workflow and its children must show.
    pub workflow_task_timeouts: Option<u32>,
    /// Longest allowed time for the backlog of a `workers_down` to drain once the workers are
    /// back (see [`crate::history::Drain`]).
    #[serde(with = "humantime_serde")]
    pub drain_within: Option<Duration>,
}

/// How many workflow task failures a scenario expects: in all, or by cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TaskFailureCount {
    /// `WorkflowTaskFailed` events in all.
    Total(u32),
    /// `WorkflowTaskFailed` events per cause (e.g. `non_deterministic_error`), by cause name.
    ByCause(Vec<(String, u32)>),
}
