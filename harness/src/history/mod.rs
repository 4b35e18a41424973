//! Facts read from a workflow's event history: what verification trusts. The observation types
//! live here, and so does reading the histories of a scenario's workflows from the server.
//!
//! The history holds one `ActivityTaskStarted` per scheduled activity, written when the activity
//! closes, for its *last* attempt; its `attempt` field is the attempt count and its
//! `last_failure` the previous attempt's failure. Earlier attempts leave no events of their own.
//! An activity that times out while it waits for a retry (schedule-to-close) has no
//! `ActivityTaskStarted` at all: only the timeout's cause, the last attempt's failure, says any
//! attempt ran. Its count is then a lower bound, which the wire proxy's log can make exact
//! ([`Histories::count_attempts_from`]).

use crate::{
    failure::{FailureKind, TimeoutKind, workflow_task_failed_cause},
    faults::AttemptKey,
    wire::AttemptRecord,
};
use serde::Serialize;
use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};
use temporalio_client::{Client, UntypedWorkflow, WorkflowFetchHistoryOptions};
use temporalio_common::protos::temporal::api::{
    common::v1::Payloads,
    enums::v1::{RetryState as ProtoRetryState, TimeoutType},
    failure::v1::{Failure, failure::FailureInfo},
    history::v1::{HistoryEvent, history_event::Attributes},
};

mod drain;
pub mod json;
mod tasks;

pub use drain::{Drain, DrainTask};
pub use tasks::{WorkflowTask, WorkflowTaskFailure, WorkflowTaskTimeout};

/// Folder of a run's report directory holding its raw histories, one `<workflow-id>.json` each
/// (see [`HistoryFacts::write_raw`]).
pub const RAW_HISTORIES_DIR: &str = "histories";

/// Where, under [`RAW_HISTORIES_DIR`], the histories of the user's own workflows go (for the
/// user's SDK's replayer; `chaos replay` replays the harness's own).
pub const USER_HISTORIES_DIR: &str = "user";

/// A failure as recorded in history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedFailure {
    /// Timeout type or application error type.
    pub kind: FailureKind,
    /// The failure message.
    pub message: String,
    /// Event that recorded it.
    pub event_id: i64,
}

impl ObservedFailure {
    fn from_proto(f: &Failure, event_id: i64) -> Self {
        let kind = match &f.failure_info {
            Some(FailureInfo::TimeoutFailureInfo(t)) => FailureKind::Timeout(timeout_kind(t.timeout_type)),
            Some(FailureInfo::ApplicationFailureInfo(a)) => FailureKind::Error(a.r#type.clone()),
            _ => FailureKind::Error(String::new()),
        };
        Self {
            kind,
            message: f.message.clone(),
            event_id,
        }
    }
}

/// A timeout type as history writes it (start-to-close when unspecified).
fn timeout_kind(timeout_type: i32) -> TimeoutKind {
    match TimeoutType::try_from(timeout_type).unwrap_or(TimeoutType::Unspecified) {
        TimeoutType::Heartbeat => TimeoutKind::Heartbeat,
        TimeoutType::ScheduleToClose => TimeoutKind::ScheduleToClose,
        TimeoutType::ScheduleToStart => TimeoutKind::ScheduleToStart,
        _ => TimeoutKind::StartToClose,
    }
}

/// How one scheduled activity closed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ActivityClose {
    /// Returned a result.
    Completed,
    /// Failed and was not retried any further.
    Failed {
        /// The final failure.
        failure: ObservedFailure,
        /// Why it was not retried.
        retry_state: RetryState,
    },
    /// Timed out and was not retried any further.
    TimedOut {
        /// The timeout (its cause, for schedule-to-close, is the last attempt's failure).
        failure: ObservedFailure,
        /// Why it was not retried.
        retry_state: RetryState,
    },
    /// Cancelled by the workflow.
    Canceled,
}

/// One scheduled activity and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct ActivityExecution {
    /// Workflow whose history holds it.
    pub workflow_id: String,
    /// Activity id within that workflow.
    pub activity_id: String,
    /// Registered activity type.
    pub activity_type: String,
    /// `ActivityTaskScheduled` event id.
    pub scheduled_event_id: i64,
    /// When it was scheduled.
    #[serde(with = "humantime_serde")]
    pub scheduled_at: SystemTime,
    /// Attempts that ran (the last attempt's number); 0 when none did. A lower bound when
    /// `attempts_exact` is false.
    pub attempts: u32,
    /// Whether `attempts` is the exact count. It is not when the activity timed out waiting for a
    /// retry that never started: history then records no attempt number, only that at least one
    /// attempt ran (the timeout's cause is its failure).
    pub attempts_exact: bool,
    /// Whether the activity closed while waiting for a retry that never started (the failure of
    /// the last attempt that ran is then `last_failure`).
    pub retry_never_started: bool,
    /// The failure of the attempt before the last one (of the last one that ran, when the retry
    /// never started), if any.
    pub last_failure: Option<ObservedFailure>,
    /// The start-to-close timeout of each attempt, if set.
    #[serde(with = "humantime_serde")]
    pub start_to_close: Option<Duration>,
    /// When the last attempt started, if it did.
    #[serde(with = "humantime_serde")]
    pub last_started_at: Option<SystemTime>,
    /// How it closed, if it did.
    pub close: Option<ActivityClose>,
    /// Id of the closing event.
    pub close_event_id: Option<i64>,
    /// When it closed.
    #[serde(with = "humantime_serde")]
    pub closed_at: Option<SystemTime>,
}

impl ActivityExecution {
    /// The key of each of its attempts history counts (1 to `attempts`), as fault decisions see
    /// them.
    pub fn attempt_keys(&self) -> impl Iterator<Item = AttemptKey<'_>> {
        (1..=self.attempts).map(|attempt| AttemptKey {
            workflow_id: &self.workflow_id,
            activity_id: &self.activity_id,
            activity_type: &self.activity_type,
            attempt,
        })
    }

    /// Failures history shows for this activity, with the attempt each belongs to. When the
    /// retry never started, the last failure is the last attempt's that ran, and the closing
    /// timeout is the activity's own.
    pub fn failures(&self) -> Vec<(FailureOf, &ObservedFailure)> {
        let (last, closing) = match (self.retry_never_started, self.attempts_exact) {
            (true, true) => (FailureOf::Attempt(self.attempts), FailureOf::RetryNeverStarted),
            (true, false) => (FailureOf::LastAttempt, FailureOf::RetryNeverStarted),
            (false, _) => (
                FailureOf::Attempt(self.attempts.saturating_sub(1)),
                FailureOf::Attempt(self.attempts),
            ),
        };
        let mut out = Vec::new();
        if let Some(f) = &self.last_failure {
            out.push((last, f));
        }
        if let Some(ActivityClose::Failed { failure, .. } | ActivityClose::TimedOut { failure, .. }) = &self.close {
            out.push((closing, failure));
        }
        out
    }
}

/// Which attempt a failure in history belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOf {
    /// This attempt, which ran.
    Attempt(u32),
    /// The last attempt that ran, whose number history does not record.
    LastAttempt,
    /// No attempt: the activity timed out waiting for a retry that never started.
    RetryNeverStarted,
}

impl FailureOf {
    /// The attempt's number, where known.
    pub fn attempt(self) -> Option<u32> {
        match self {
            FailureOf::Attempt(n) => Some(n),
            _ => None,
        }
    }
}

impl std::fmt::Display for FailureOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureOf::Attempt(n) => write!(f, "attempt {n}"),
            FailureOf::LastAttempt => f.write_str("the last attempt that ran"),
            FailureOf::RetryNeverStarted => f.write_str("the retry that never started"),
        }
    }
}

/// How the workflow execution ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum WorkflowClose {
    /// Completed with this result.
    Completed {
        /// The first result payload, decoded as JSON.
        result: serde_json::Value,
    },
    /// Failed with this failure.
    Failed {
        /// Message of the failure and of its causes, joined by ": ".
        message: String,
        /// Application error type of the failure, if any.
        error_type: String,
    },
    /// Hit its execution or run timeout.
    TimedOut,
    /// Terminated from outside.
    Terminated,
    /// Cancelled.
    Canceled,
    /// Continued as new.
    ContinuedAsNew,
}

/// How a workflow ended, without the details: a key for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseStatus {
    /// Completed.
    Completed,
    /// Failed.
    Failed,
    /// Hit its execution or run timeout.
    TimedOut,
    /// Terminated from outside.
    Terminated,
    /// Cancelled.
    Canceled,
    /// Continued as new.
    ContinuedAsNew,
    /// Not closed.
    Running,
}

impl std::fmt::Display for CloseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_value(self).ok();
        f.write_str(text.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

impl WorkflowClose {
    /// The status alone.
    pub fn status(&self) -> CloseStatus {
        match self {
            WorkflowClose::Completed { .. } => CloseStatus::Completed,
            WorkflowClose::Failed { .. } => CloseStatus::Failed,
            WorkflowClose::TimedOut => CloseStatus::TimedOut,
            WorkflowClose::Terminated => CloseStatus::Terminated,
            WorkflowClose::Canceled => CloseStatus::Canceled,
            WorkflowClose::ContinuedAsNew => CloseStatus::ContinuedAsNew,
        }
    }
}

/// A child workflow started by this workflow.
#[derive(Debug, Clone, Serialize)]
pub struct ChildRef {
    /// Child workflow id.
    pub workflow_id: String,
    /// Child run id.
    pub run_id: String,
}

/// Everything verification needs from one workflow's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryFacts {
    /// Workflow id.
    pub workflow_id: String,
    /// Run id (the first run's, from the start event).
    pub run_id: String,
    /// Workflow type name.
    pub workflow_type: String,
    /// When `WorkflowExecutionStarted` was written.
    #[serde(with = "humantime_serde")]
    pub started_at: Option<SystemTime>,
    /// When a worker took its first workflow task (the first `WorkflowTaskStarted`).
    #[serde(with = "humantime_serde")]
    pub first_task_started_at: Option<SystemTime>,
    /// When the closing event was written.
    #[serde(with = "humantime_serde")]
    pub closed_at: Option<SystemTime>,
    /// How it ended; `None` while still running.
    pub close: Option<WorkflowClose>,
    /// Id of the closing event.
    pub close_event_id: Option<i64>,
    /// Scheduled activities in schedule order.
    pub activities: Vec<ActivityExecution>,
    /// Child workflows that started.
    pub children: Vec<ChildRef>,
    /// Types of the local activities it ran (from their markers): they run inside a workflow
    /// task, never as tasks of their own, so they are not in `activities` and never reach the
    /// wire.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub local_activities: Vec<String>,
    /// Its `WorkflowTaskFailed` events (each with the attempts it stands for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workflow_task_failures: Vec<WorkflowTaskFailure>,
    /// Its `WorkflowTaskTimedOut` events.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workflow_task_timeouts: Vec<WorkflowTaskTimeout>,
    /// Every workflow task history records, in order: what their schedule-to-start latencies
    /// are read from. Not part of `report.json` (the report sums them up).
    #[serde(skip)]
    pub workflow_tasks: Vec<WorkflowTask>,
    /// Number of events.
    pub event_count: usize,
    /// The raw events, kept by [`HistoryFacts::read`] so the history can be written out and
    /// replayed (`chaos replay`); empty when built with [`HistoryFacts::from_events`]. Not part of
    /// `report.json`.
    #[serde(skip)]
    pub events: Vec<HistoryEvent>,
}

impl HistoryFacts {
    /// Reads the facts from a complete history of workflow `workflow_id` and keeps its events.
    pub fn read(workflow_id: &str, events: Vec<HistoryEvent>) -> Self {
        let facts = Self::from_events(workflow_id, &events);
        Self { events, ..facts }
    }

    /// Reads the facts from a complete history of workflow `workflow_id`, without keeping the events.
    pub fn from_events(workflow_id: &str, events: &[HistoryEvent]) -> Self {
        let mut facts = HistoryFacts {
            workflow_id: workflow_id.to_owned(),
            run_id: String::new(),
            workflow_type: String::new(),
            started_at: None,
            first_task_started_at: None,
            closed_at: None,
            close: None,
            close_event_id: None,
            activities: Vec::new(),
            children: Vec::new(),
            local_activities: Vec::new(),
            workflow_task_failures: Vec::new(),
            workflow_task_timeouts: Vec::new(),
            workflow_tasks: Vec::new(),
            event_count: events.len(),
            events: Vec::new(),
        };
        for ev in events {
            let at = ev
                .event_time
                .as_ref()
                .map(|t| SystemTime::UNIX_EPOCH + Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32));
            let Some(attrs) = &ev.attributes else {
                continue;
            };
            let closed = |facts: &mut HistoryFacts, close: WorkflowClose| {
                facts.close = Some(close);
                facts.close_event_id = Some(ev.event_id);
                facts.closed_at = at;
            };
            match attrs {
                Attributes::WorkflowExecutionStartedEventAttributes(a) => {
                    facts.started_at = at;
                    facts.run_id = a.original_execution_run_id.clone();
                    facts.workflow_type = a.workflow_type.as_ref().map(|t| t.name.clone()).unwrap_or_default();
                }
                Attributes::WorkflowTaskScheduledEventAttributes(a) => facts.workflow_tasks.push(WorkflowTask {
                    scheduled_event_id: ev.event_id,
                    scheduled_at: at.unwrap_or(SystemTime::UNIX_EPOCH),
                    attempt: a.attempt.max(1) as u32,
                    started_event_id: None,
                    started_at: None,
                }),
                Attributes::WorkflowTaskStartedEventAttributes(a) => {
                    facts.first_task_started_at = facts.first_task_started_at.or(at);
                    if let Some(task) = facts
                        .workflow_tasks
                        .iter_mut()
                        .find(|t| t.scheduled_event_id == a.scheduled_event_id)
                    {
                        task.started_event_id = Some(ev.event_id);
                        task.started_at = at;
                    }
                }
                Attributes::WorkflowTaskFailedEventAttributes(a) => {
                    facts.workflow_task_failures.push(WorkflowTaskFailure {
                        cause: workflow_task_failed_cause(a.cause),
                        message: a.failure.as_ref().map(failure_chain).unwrap_or_default(),
                        event_id: ev.event_id,
                        attempts: 1,
                    });
                }
                Attributes::WorkflowTaskTimedOutEventAttributes(a) => {
                    facts.workflow_task_timeouts.push(WorkflowTaskTimeout {
                        timeout: timeout_kind(a.timeout_type),
                        event_id: ev.event_id,
                        attempts: 1,
                    });
                }
                Attributes::ActivityTaskScheduledEventAttributes(a) => facts.activities.push(ActivityExecution {
                    workflow_id: workflow_id.to_owned(),
                    activity_id: a.activity_id.clone(),
                    activity_type: a.activity_type.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
                    scheduled_event_id: ev.event_id,
                    scheduled_at: at.unwrap_or(SystemTime::UNIX_EPOCH),
                    attempts: 0,
                    attempts_exact: true,
                    retry_never_started: false,
                    last_failure: None,
                    start_to_close: a.start_to_close_timeout.as_ref().and_then(duration),
                    last_started_at: None,
                    close: None,
                    close_event_id: None,
                    closed_at: None,
                }),
                Attributes::ActivityTaskStartedEventAttributes(a) => {
                    if let Some(act) = facts.activity_mut(a.scheduled_event_id) {
                        act.attempts = a.attempt.max(0) as u32;
                        act.last_failure = a
                            .last_failure
                            .as_ref()
                            .map(|f| ObservedFailure::from_proto(f, ev.event_id));
                        act.last_started_at = at;
                    }
                }
                Attributes::ActivityTaskCompletedEventAttributes(a) => {
                    facts.close_activity(a.scheduled_event_id, ActivityClose::Completed, ev.event_id, at);
                }
                Attributes::ActivityTaskFailedEventAttributes(a) => {
                    let close = ActivityClose::Failed {
                        failure: failure_or_unknown(a.failure.as_ref(), ev.event_id),
                        retry_state: RetryState::from_proto(a.retry_state),
                    };
                    facts.close_activity(a.scheduled_event_id, close, ev.event_id, at);
                }
                Attributes::ActivityTaskTimedOutEventAttributes(a) => {
                    let close = ActivityClose::TimedOut {
                        failure: failure_or_unknown(a.failure.as_ref(), ev.event_id),
                        retry_state: RetryState::from_proto(a.retry_state),
                    };
                    // Timed out waiting for a retry: the cause is the last attempt's failure.
                    let cause = a.failure.as_ref().and_then(|f| f.cause.as_deref());
                    if let (0, Some(cause), Some(act)) =
                        (a.started_event_id, cause, facts.activity_mut(a.scheduled_event_id))
                    {
                        act.retry_never_started = true;
                        act.attempts = act.attempts.max(1);
                        act.attempts_exact = false;
                        act.last_failure = Some(ObservedFailure::from_proto(cause, ev.event_id));
                    }
                    facts.close_activity(a.scheduled_event_id, close, ev.event_id, at);
                }
                Attributes::ActivityTaskCanceledEventAttributes(a) => {
                    facts.close_activity(a.scheduled_event_id, ActivityClose::Canceled, ev.event_id, at);
                }
                Attributes::MarkerRecordedEventAttributes(a) => {
                    if let Some(activity) = local_activity_type(a)
                        && !facts.local_activities.contains(&activity)
                    {
                        facts.local_activities.push(activity);
                    }
                }
                Attributes::ChildWorkflowExecutionStartedEventAttributes(a) => {
                    if let Some(we) = &a.workflow_execution {
                        facts.children.push(ChildRef {
                            workflow_id: we.workflow_id.clone(),
                            run_id: we.run_id.clone(),
                        });
                    }
                }
                Attributes::WorkflowExecutionCompletedEventAttributes(a) => {
                    closed(
                        &mut facts,
                        WorkflowClose::Completed {
                            result: first_json(a.result.as_ref()),
                        },
                    );
                }
                Attributes::WorkflowExecutionFailedEventAttributes(a) => {
                    let f = a.failure.as_ref();
                    let error_type = match f.and_then(|f| f.failure_info.as_ref()) {
                        Some(FailureInfo::ApplicationFailureInfo(i)) => i.r#type.clone(),
                        _ => String::new(),
                    };
                    closed(
                        &mut facts,
                        WorkflowClose::Failed {
                            message: f.map(failure_chain).unwrap_or_default(),
                            error_type,
                        },
                    );
                }
                Attributes::WorkflowExecutionTimedOutEventAttributes(_) => closed(&mut facts, WorkflowClose::TimedOut),
                Attributes::WorkflowExecutionTerminatedEventAttributes(_) => {
                    closed(&mut facts, WorkflowClose::Terminated)
                }
                Attributes::WorkflowExecutionCanceledEventAttributes(_) => closed(&mut facts, WorkflowClose::Canceled),
                Attributes::WorkflowExecutionContinuedAsNewEventAttributes(_) => {
                    closed(&mut facts, WorkflowClose::ContinuedAsNew);
                }
                _ => {}
            }
        }
        for f in &mut facts.workflow_task_failures {
            f.attempts = tasks::count_attempts(&facts.workflow_tasks, f.event_id);
        }
        for t in &mut facts.workflow_task_timeouts {
            t.attempts = tasks::count_attempts(&facts.workflow_tasks, t.event_id);
        }
        facts
    }

    /// Writes the kept events to `<dir>/<workflow-id>.json` (see [`raw_file_name`]) in
    /// Temporal's standard JSON ([`json`]), which `chaos replay` and every SDK's replayer read.
    /// Returns the file, or `None` when no events were kept.
    pub fn write_raw(&self, dir: &Path) -> std::io::Result<Option<PathBuf>> {
        if self.events.is_empty() {
            return Ok(None);
        }
        std::fs::create_dir_all(dir)?;
        let path = dir.join(raw_file_name(&self.workflow_id));
        std::fs::write(&path, json::to_json(&self.events).map_err(std::io::Error::other)?)?;
        Ok(Some(path))
    }

    /// Time from start to close, if closed.
    pub fn duration(&self) -> Option<Duration> {
        self.closed_at?.duration_since(self.started_at?).ok()
    }

    /// From its start to when a worker took its first workflow task, if one did.
    fn first_task_wait_span(&self) -> Option<(SystemTime, SystemTime)> {
        let start = self.started_at?;
        Some((start, self.first_task_started_at?.max(start)))
    }

    fn activity_mut(&mut self, scheduled_event_id: i64) -> Option<&mut ActivityExecution> {
        self.activities
            .iter_mut()
            .find(|a| a.scheduled_event_id == scheduled_event_id)
    }

    fn close_activity(&mut self, scheduled: i64, close: ActivityClose, event_id: i64, at: Option<SystemTime>) {
        if let Some(act) = self.activity_mut(scheduled) {
            act.close = Some(close);
            act.close_event_id = Some(event_id);
            act.closed_at = at;
        }
    }
}

/// File name of a workflow's raw history: `<workflow-id>.json`, with every character other than
/// ASCII letters, digits, `-`, `_` and `.` replaced by `_`.
pub fn raw_file_name(workflow_id: &str) -> String {
    let safe: String = workflow_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.json")
}

/// The parts of `span` outside every window of `windows`.
fn outside(span: (SystemTime, SystemTime), windows: &[(SystemTime, SystemTime)]) -> Vec<(SystemTime, SystemTime)> {
    windows.iter().fold(vec![span], |parts, &(cut_from, cut_to)| {
        parts
            .into_iter()
            .flat_map(|(from, to)| [(from, to.min(cut_from)), (from.max(cut_to), to)])
            .filter(|(from, to)| from < to)
            .collect()
    })
}

/// The activity type of a local activity's marker, as the SDKs write it: core-based SDKs (Rust,
/// Python, TypeScript, .NET) a `core_local_activity` marker whose `data` is JSON with
/// `activity_type`; Go a `LocalActivity` marker whose `data` has `ActivityType`; Java a
/// `LocalActivity` marker with the type as its own `type` payload.
fn local_activity_type(
    marker: &temporalio_common::protos::temporal::api::history::v1::MarkerRecordedEventAttributes,
) -> Option<String> {
    let first = |key: &str| -> Option<serde_json::Value> {
        let payload = marker.details.get(key)?.payloads.first()?;
        serde_json::from_slice(&payload.data).ok()
    };
    let named = |value: serde_json::Value, field: &str| value.get(field)?.as_str().map(str::to_owned);
    match marker.marker_name.as_str() {
        "core_local_activity" => named(first("data")?, "activity_type"),
        "LocalActivity" => first("type")
            .and_then(|t| t.as_str().map(str::to_owned))
            .or_else(|| named(first("data")?, "ActivityType")),
        _ => None,
    }
}

/// A protobuf duration; `None` when zero (unset) or negative.
fn duration(d: &prost_wkt_types::Duration) -> Option<Duration> {
    let d = Duration::new(u64::try_from(d.seconds).ok()?, u32::try_from(d.nanos).ok()?);
    (!d.is_zero()).then_some(d)
}

fn failure_or_unknown(f: Option<&Failure>, event_id: i64) -> ObservedFailure {
    f.map(|f| ObservedFailure::from_proto(f, event_id))
        .unwrap_or(ObservedFailure {
            kind: FailureKind::Error(String::new()),
            message: "(no failure recorded)".into(),
            event_id,
        })
}

/// Why an activity was not retried any further, as the server records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RetryState {
    /// The retry policy's attempts ran out.
    MaximumAttemptsReached,
    /// The failure was non-retryable (flag or policy type).
    NonRetryableFailure,
    /// A timeout (schedule-to-close) left no time to retry.
    Timeout,
    /// No retry policy applies.
    RetryPolicyNotSet,
    /// Cancellation was requested.
    CancelRequested,
    /// Still retrying.
    InProgress,
    /// The server failed internally.
    InternalServerError,
    /// The server did not say.
    Unspecified,
}

impl RetryState {
    fn from_proto(state: i32) -> Self {
        match ProtoRetryState::try_from(state).unwrap_or(ProtoRetryState::Unspecified) {
            ProtoRetryState::MaximumAttemptsReached => Self::MaximumAttemptsReached,
            ProtoRetryState::NonRetryableFailure => Self::NonRetryableFailure,
            ProtoRetryState::Timeout => Self::Timeout,
            ProtoRetryState::RetryPolicyNotSet => Self::RetryPolicyNotSet,
            ProtoRetryState::CancelRequested => Self::CancelRequested,
            ProtoRetryState::InProgress => Self::InProgress,
            ProtoRetryState::InternalServerError => Self::InternalServerError,
            ProtoRetryState::Unspecified => Self::Unspecified,
        }
    }
}

impl std::fmt::Display for RetryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_value(self).ok();
        f.write_str(text.as_ref().and_then(|v| v.as_str()).unwrap_or("UNSPECIFIED"))
    }
}

/// "outer: cause: cause" — a workflow failing on an activity error says little on its own.
fn failure_chain(f: &Failure) -> String {
    let mut parts = vec![f.message.clone()];
    let mut cause = f.cause.as_deref();
    while let Some(c) = cause {
        parts.push(c.message.clone());
        cause = c.cause.as_deref();
    }
    parts.retain(|p| !p.is_empty());
    parts.join(": ")
}

fn first_json(p: Option<&Payloads>) -> serde_json::Value {
    p.and_then(|p| p.payloads.first())
        .and_then(|p| serde_json::from_slice(&p.data).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The scenario workflow's history and its children's.
#[derive(Debug, Clone, Serialize)]
pub struct Histories {
    /// The workflow the runner started.
    pub root: HistoryFacts,
    /// Its child workflows.
    pub children: Vec<HistoryFacts>,
}

impl Histories {
    /// Every history, root first.
    pub fn all(&self) -> impl Iterator<Item = &HistoryFacts> {
        std::iter::once(&self.root).chain(&self.children)
    }

    /// How long the workflow and its children waited for a worker to take their first workflow
    /// task, overlapping waits counted once, within the workflow's own span and outside the
    /// `faults` windows (a wait a fault caused, e.g. a child starting while its worker is down, is
    /// the fault's effect, not waiting): time spent waiting for a busy worker (or for a saturated
    /// harness or server), not the workflow's own.
    pub fn first_task_waits(&self, faults: &[(SystemTime, SystemTime)]) -> Duration {
        let (Some(start), Some(close)) = (self.root.started_at, self.root.closed_at) else {
            return Duration::ZERO;
        };
        let mut spans: Vec<(SystemTime, SystemTime)> = self
            .all()
            .filter_map(HistoryFacts::first_task_wait_span)
            .map(|(from, to)| (from.max(start), to.min(close)))
            .filter(|(from, to)| from < to)
            .flat_map(|span| outside(span, faults))
            .collect();
        spans.sort();
        let mut total = Duration::ZERO;
        let mut covered: Option<(SystemTime, SystemTime)> = None;
        for (from, to) in spans {
            covered = match covered {
                Some((start, end)) if from <= end => Some((start, end.max(to))),
                Some((start, end)) => {
                    total += end.duration_since(start).unwrap_or_default();
                    Some((from, to))
                }
                None => Some((from, to)),
            };
        }
        total
            + covered.map_or(Duration::ZERO, |(start, end)| {
                end.duration_since(start).unwrap_or_default()
            })
    }

    /// The workflow's own time: start to close, less [`Self::first_task_waits`] outside `faults`.
    pub fn own_duration(&self, faults: &[(SystemTime, SystemTime)]) -> Option<Duration> {
        Some(self.root.duration()?.saturating_sub(self.first_task_waits(faults)))
    }

    /// Every scheduled activity of every history.
    pub fn activities(&self) -> impl Iterator<Item = &ActivityExecution> {
        self.all().flat_map(|h| &h.activities)
    }

    /// Makes the attempt counts that history leaves open exact where the wire proxy saw the
    /// attempts: an activity that timed out waiting for a retry ran as many attempts as the
    /// proxy handed out (`wire`: its attempt log).
    pub fn count_attempts_from(&mut self, wire: &[AttemptRecord]) {
        for facts in std::iter::once(&mut self.root).chain(&mut self.children) {
            // Activity ids start again in every run of a workflow id.
            let run = facts.run_id.as_str();
            for act in facts.activities.iter_mut().filter(|a| !a.attempts_exact) {
                let seen = wire
                    .iter()
                    .filter(|r| r.workflow_id == act.workflow_id && r.activity_id == act.activity_id)
                    .filter(|r| run.is_empty() || r.run_id == run)
                    .map(|r| r.attempt)
                    .max();
                if let Some(seen) = seen {
                    act.attempts = act.attempts.max(seen);
                    act.attempts_exact = true;
                }
            }
        }
    }

    /// Whether every activity's attempt count is exact (see
    /// [`ActivityExecution::attempts_exact`]).
    pub fn attempts_exact_of(&self, activity_type: &str) -> bool {
        self.activities()
            .filter(|a| a.activity_type == activity_type)
            .all(|a| a.attempts_exact)
    }

    /// Attempts per activity type, summed over executions.
    pub fn attempts_of(&self, activity_type: &str) -> u32 {
        self.activities()
            .filter(|a| a.activity_type == activity_type)
            .map(|a| a.attempts)
            .sum()
    }
}

/// A history that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the history of {workflow_id}: {source}")]
pub struct HistoryError {
    /// The workflow.
    pub workflow_id: String,
    /// The client's error.
    #[source]
    pub source: temporalio_client::errors::WorkflowInteractionError,
}

/// Reads the workflow's history and its children's.
pub async fn read_histories(client: &Client, workflow_id: &str) -> Result<Histories, HistoryError> {
    let root = read_history(client, workflow_id).await?;
    let mut children = Vec::new();
    for child in &root.children {
        children.push(read_history(client, &child.workflow_id).await?);
    }
    Ok(Histories { root, children })
}

async fn read_history(client: &Client, workflow_id: &str) -> Result<HistoryFacts, HistoryError> {
    Ok(HistoryFacts::read(workflow_id, read_events(client, workflow_id).await?))
}

/// The events of the latest run of `workflow_id` so far.
pub async fn read_events(client: &Client, workflow_id: &str) -> Result<Vec<HistoryEvent>, HistoryError> {
    let handle = client.get_workflow_handle::<UntypedWorkflow>(workflow_id.to_owned());
    handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .map_err(|source| HistoryError {
            workflow_id: workflow_id.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history started at `start` s whose first workflow task started at `taken` s.
    fn facts(id: &str, start: u64, taken: Option<u64>, closed: u64) -> HistoryFacts {
        let at = |s: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        HistoryFacts {
            started_at: at(start),
            first_task_started_at: taken.and_then(at),
            closed_at: at(closed),
            ..HistoryFacts::from_events(id, &[])
        }
    }

    #[test]
    fn first_task_waits_of_parallel_children_count_once() {
        let h = Histories {
            // The root waited 1 s; its two children, started together, 5 s and 3 s.
            root: facts("root", 100, Some(101), 120),
            children: vec![
                facts("a", 102, Some(107), 110),
                facts("b", 102, Some(105), 111),
                // A child no worker ever took adds nothing.
                facts("c", 112, None, 118),
            ],
        };
        assert_eq!(h.first_task_waits(&[]), Duration::from_secs(6));
        assert_eq!(h.own_duration(&[]), Some(Duration::from_secs(14)));
        // A fault from 104 s to 106 s caused 2 s of child a's wait: that is no busy worker's.
        let fault = |from: u64, to: u64| {
            let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
            (at(from), at(to))
        };
        assert_eq!(h.first_task_waits(&[fault(104, 106)]), Duration::from_secs(4));
        // A child that waits past the root's close counts only up to it.
        let late = Histories {
            root: facts("root", 100, Some(100), 110),
            children: vec![facts("late", 108, Some(115), 120)],
        };
        assert_eq!(late.first_task_waits(&[]), Duration::from_secs(2));
    }
}
