//! The vocabulary of activity failures: what a scenario expects and what a history shows.
//!
//! Both [`crate::plan`] (expectations) and [`crate::history`] (observations) speak it, and fault
//! kinds use it to say which trace they leave, so it sits below all of them.

use serde::{Deserialize, Serialize};

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
