//! Workflow tasks as history shows them: when each was scheduled and taken, and the ones that
//! failed or timed out.
//!
//! Temporal writes only the first of a run of failed (or timed out) attempts of a workflow task:
//! the attempts after it are transient and leave no events until one completes, whose
//! `WorkflowTaskScheduled` then carries its attempt number. So each failure or timeout stands for
//! the attempts up to the next scheduled task ([`count_attempts`]).

use super::ActivityExecution;
use crate::failure::TimeoutKind;
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// One workflow task that history records (`WorkflowTaskScheduled`, and its start if it had one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowTask {
    /// The `WorkflowTaskScheduled` event.
    pub scheduled_event_id: i64,
    /// When it was scheduled.
    #[serde(with = "humantime_serde")]
    pub scheduled_at: SystemTime,
    /// Its attempt (above 1 after attempts that failed or timed out and left no events).
    pub attempt: u32,
    /// The `WorkflowTaskStarted` event, if a worker took it.
    pub started_event_id: Option<i64>,
    /// When a worker took it.
    #[serde(with = "humantime_serde")]
    pub started_at: Option<SystemTime>,
}

impl WorkflowTask {
    /// How long it waited for a worker (schedule-to-start), if one took it.
    pub fn schedule_to_start(&self) -> Option<Duration> {
        Some(self.started_at?.duration_since(self.scheduled_at).unwrap_or_default())
    }
}

/// A `WorkflowTaskFailed` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowTaskFailure {
    /// Why, as a scenario names it (see [`crate::failure::workflow_task_failed_cause`]), e.g.
    /// `non_deterministic_error`.
    pub cause: String,
    /// The failure's message and its causes', joined by ": ".
    pub message: String,
    /// The event.
    pub event_id: i64,
    /// The attempts it stands for: this one and the transient ones after it that failed or timed
    /// out too (the next scheduled task's attempt less one); 1 when no task was scheduled after
    /// it (the workflow ended while its task kept failing: a lower bound then).
    pub attempts: u32,
}

/// A `WorkflowTaskTimedOut` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowTaskTimeout {
    /// `start_to_close` (a worker took the task and did not answer in time) or
    /// `schedule_to_start` (nobody took it: e.g. a sticky queue whose worker is gone).
    pub timeout: TimeoutKind,
    /// The event.
    pub event_id: i64,
    /// The attempts it stands for, as for [`WorkflowTaskFailure::attempts`].
    pub attempts: u32,
}

/// The attempts a failure or timeout at `event_id` stands for: up to the attempt of the next
/// workflow task scheduled after it, at least 1.
pub(super) fn count_attempts(tasks: &[WorkflowTask], event_id: i64) -> u32 {
    tasks
        .iter()
        .find(|t| t.scheduled_event_id > event_id)
        .map_or(1, |next| next.attempt.saturating_sub(1).max(1))
}

impl ActivityExecution {
    /// How long its first attempt waited for a worker (schedule-to-start), if history can say:
    /// only for an activity whose last attempt is its first (`ActivityTaskStarted`, written at the
    /// attempt's close, has the real start time, but for a retried activity the schedule time is
    /// the first attempt's, so the difference would hold the earlier attempts and their backoff).
    pub fn schedule_to_start(&self) -> Option<Duration> {
        let started = self.last_started_at.filter(|_| self.attempts == 1)?;
        Some(started.duration_since(self.scheduled_at).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::super::HistoryFacts;
    use crate::failure::TimeoutKind;
    use std::time::{Duration, SystemTime};
    use temporalio_common::protos::temporal::api::{
        enums::v1::{TimeoutType, WorkflowTaskFailedCause},
        failure::v1::Failure,
        history::v1::{
            HistoryEvent, WorkflowTaskCompletedEventAttributes, WorkflowTaskFailedEventAttributes,
            WorkflowTaskScheduledEventAttributes, WorkflowTaskStartedEventAttributes,
            WorkflowTaskTimedOutEventAttributes, history_event::Attributes,
        },
    };

    /// Events 1, 2, ... one `ms` apart each as given.
    fn history(events: Vec<(u64, Attributes)>) -> HistoryFacts {
        let events: Vec<HistoryEvent> = events
            .into_iter()
            .enumerate()
            .map(|(i, (ms, a))| HistoryEvent {
                event_id: i as i64 + 1,
                event_time: Some(prost_wkt_types::Timestamp {
                    seconds: (ms / 1000) as i64,
                    nanos: ((ms % 1000) * 1_000_000) as i32,
                }),
                attributes: Some(a),
                ..Default::default()
            })
            .collect();
        HistoryFacts::from_events("wf", &events)
    }

    fn scheduled(attempt: i32) -> Attributes {
        Attributes::WorkflowTaskScheduledEventAttributes(WorkflowTaskScheduledEventAttributes {
            attempt,
            ..Default::default()
        })
    }

    fn started(scheduled_event_id: i64) -> Attributes {
        Attributes::WorkflowTaskStartedEventAttributes(WorkflowTaskStartedEventAttributes {
            scheduled_event_id,
            ..Default::default()
        })
    }

    #[test]
    fn workflow_task_failures_and_timeouts_count_their_transient_attempts() {
        let facts = history(vec![
            (1_000, scheduled(1)),
            (1_250, started(1)),
            (
                1_300,
                Attributes::WorkflowTaskFailedEventAttributes(WorkflowTaskFailedEventAttributes {
                    scheduled_event_id: 1,
                    started_event_id: 2,
                    cause: WorkflowTaskFailedCause::NonDeterministicError as i32,
                    failure: Some(Failure {
                        message: "nondeterminism".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            ),
            // Attempts 2 and 3 failed too, leaving no events; attempt 4 completed.
            (5_000, scheduled(4)),
            (5_040, started(4)),
            (
                5_100,
                Attributes::WorkflowTaskCompletedEventAttributes(WorkflowTaskCompletedEventAttributes::default()),
            ),
            // A sticky task nobody took, then the same task on the normal queue.
            (6_000, scheduled(1)),
            (
                11_000,
                Attributes::WorkflowTaskTimedOutEventAttributes(WorkflowTaskTimedOutEventAttributes {
                    scheduled_event_id: 7,
                    timeout_type: TimeoutType::ScheduleToStart as i32,
                    ..Default::default()
                }),
            ),
            (11_000, scheduled(1)),
            (11_500, started(9)),
        ]);
        let f = &facts.workflow_task_failures;
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].cause.as_str(), f[0].message.as_str(), f[0].event_id, f[0].attempts),
            ("non_deterministic_error", "nondeterminism", 3, 3)
        );
        let t = &facts.workflow_task_timeouts;
        assert_eq!(
            (t[0].timeout, t[0].event_id, t[0].attempts),
            (TimeoutKind::ScheduleToStart, 8, 1)
        );
        let waits: Vec<Option<Duration>> = facts.workflow_tasks.iter().map(|t| t.schedule_to_start()).collect();
        let ms = |ms| Some(Duration::from_millis(ms));
        assert_eq!(waits, [ms(250), ms(40), None, ms(500)]);
        assert_eq!(
            facts.first_task_started_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_250))
        );
    }
}
