//! The vocabulary of failures: what a scenario expects and what a history shows (activity
//! failures, and the causes of workflow task failures).
//!
//! Both [`crate::plan`] (expectations) and [`crate::history`] (observations) speak it, and fault
//! kinds use it to say which trace they leave, so it sits below all of them.

use serde::{Deserialize, Serialize};
use temporalio_common::protos::temporal::api::enums::v1::WorkflowTaskFailedCause;

/// A failure kind: a timeout of some type or an application error type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// An activity timeout.
    Timeout(TimeoutKind),
    /// An application error of the given type ("" when untyped).
    Error(String),
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKind::Timeout(t) => write!(f, "{t} timeout"),
            FailureKind::Error(t) if t.is_empty() => f.write_str("untyped application error"),
            FailureKind::Error(t) => write!(f, "application error {t}"),
        }
    }
}

/// Activity timeout types, as Temporal names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutKind {
    /// One attempt ran longer than start-to-close.
    StartToClose,
    /// All attempts together ran longer than schedule-to-close.
    ScheduleToClose,
    /// No heartbeat arrived within the heartbeat timeout.
    Heartbeat,
    /// No worker picked the task up in time.
    ScheduleToStart,
}

impl std::fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutKind::StartToClose => "start_to_close",
            TimeoutKind::ScheduleToClose => "schedule_to_close",
            TimeoutKind::Heartbeat => "heartbeat",
            TimeoutKind::ScheduleToStart => "schedule_to_start",
        })
    }
}

/// The prefix of every `WorkflowTaskFailedCause` name, which cause names leave out.
const CAUSE_PREFIX: &str = "WORKFLOW_TASK_FAILED_CAUSE_";

/// Why a workflow task failed, as a scenario names it: Temporal's `WorkflowTaskFailedCause`
/// without its prefix, in snake case (`non_deterministic_error`,
/// `workflow_worker_unhandled_failure`, `reset_sticky_task_queue`, ...); `cause_<n>` for a value
/// this build does not know.
pub fn workflow_task_failed_cause(cause: i32) -> String {
    match WorkflowTaskFailedCause::try_from(cause) {
        Ok(c) => c
            .as_str_name()
            .strip_prefix(CAUSE_PREFIX)
            .unwrap_or(c.as_str_name())
            .to_ascii_lowercase(),
        Err(_) => format!("cause_{cause}"),
    }
}

/// Every workflow task failure cause name (see [`workflow_task_failed_cause`]), `unspecified`
/// left out.
pub fn workflow_task_failed_causes() -> Vec<String> {
    (1..)
        .map_while(|n| WorkflowTaskFailedCause::try_from(n).ok().map(|c| c as i32))
        .map(workflow_task_failed_cause)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_task_failure_causes_are_named_without_their_prefix() {
        let nondeterminism = WorkflowTaskFailedCause::NonDeterministicError as i32;
        assert_eq!(workflow_task_failed_cause(nondeterminism), "non_deterministic_error");
        assert_eq!(workflow_task_failed_cause(10_000), "cause_10000");
        let known = workflow_task_failed_causes();
        for cause in [
            "unhandled_command",
            "reset_sticky_task_queue",
            "workflow_worker_unhandled_failure",
            "non_deterministic_error",
        ] {
            assert!(known.iter().any(|k| k == cause), "{cause}: {known:?}");
        }
        assert!(!known.iter().any(|k| k == "unspecified"));
    }
}
