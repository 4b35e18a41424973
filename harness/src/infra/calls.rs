//! Faults on the worker's own calls to the frontend, put there by the wire proxy in front of the
//! scenario's workers ([`WireControl`]): any SDK language, no code in the worker.
//!
//! A kind installs a [`CallFault`] for its window; the proxy asks it about every call and every
//! workflow task it hands out, does what it answers, and logs each thing it did as a
//! [`CallEvent`], which the verdict and the report read.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The wire proxy in front of a scenario's workers, as the kinds that act on the workers' calls
/// see it.
pub trait WireControl: Send + Sync {
    /// Puts `fault` (infrastructure rule `rule`) on the calls of the workers behind the proxy,
    /// until [`WireControl::remove`].
    fn install(&self, rule: usize, fault: Arc<dyn CallFault>);
    /// Takes rule `rule`'s fault off; returns what it did meanwhile.
    fn remove(&self, rule: usize) -> Vec<CallEvent>;
}

/// One workflow task as the server handed it to a worker through the proxy.
#[derive(Debug, Clone)]
pub struct WorkflowTaskSeen {
    /// The workflow's id.
    pub workflow_id: String,
    /// Its run id.
    pub run_id: String,
    /// The task's attempt (1 unless earlier attempts failed or timed out).
    pub attempt: u32,
}

/// What the proxy does with a workflow task handed out while a fault is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskAction {
    /// Hand it to the worker.
    Deliver,
    /// Fail it on the worker's behalf (`RespondWorkflowTaskFailed`, as if the workflow code had
    /// raised) with this message; the worker gets an empty poll.
    Fail(String),
    /// Keep it from the worker, which gets an empty poll: the task times out on the server.
    Withhold,
    /// Hand it to the worker, and once the worker has completed it, drop the run's stickiness
    /// (`ResetStickyTaskQueue`): the next task goes to the normal queue with the whole history.
    DeliverThenUnstick,
}

/// A fault on the workers' calls, asked by the proxy; each answer that does something is logged.
pub trait CallFault: Send + Sync {
    /// Before a worker's call to `method` (e.g. `PollActivityTaskQueue`) is forwarded: the gRPC
    /// status to answer it with instead, if any (code, message).
    fn refuse(&self, _method: &str) -> Option<(i32, String)> {
        None
    }

    /// A workflow task the server handed out, before the worker gets it.
    fn workflow_task(&self, _task: &WorkflowTaskSeen) -> TaskAction {
        TaskAction::Deliver
    }
}

/// Something the proxy did, or saw, on the workers' calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    /// The infrastructure rule whose fault did it (`None`: seen, not done, e.g. a replay).
    pub rule: Option<usize>,
    /// When, in unix milliseconds by the proxy's clock.
    pub at_unix_ms: u64,
    /// The workflow concerned, when the call concerns one.
    pub workflow_id: Option<String>,
    /// What.
    pub what: CallEffect,
}

/// What happened to a call or a workflow task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum CallEffect {
    /// A call answered with an error status instead of being forwarded.
    Refused {
        /// The gRPC method.
        method: String,
        /// The status code.
        code: i32,
        /// How long the worker took to make the next call of that method that went through
        /// (what the refusal cost it), in milliseconds; `None` if it never did.
        retried_after_ms: Option<u64>,
    },
    /// A workflow task failed on the worker's behalf.
    TaskFailed {
        /// Its attempt.
        attempt: u32,
    },
    /// A workflow task kept from the worker until it timed out.
    TaskWithheld {
        /// Its attempt.
        attempt: u32,
    },
    /// A run dropped from the worker's cache after its task completed (its stickiness reset,
    /// the worker told the task was not found): its next task is a replay.
    CacheDropped,
    /// A workflow task delivered with the whole history though it is not the run's first: the
    /// worker replays the run from the start (a sticky cache miss: another worker, a restart, a
    /// dropped cache).
    Replay {
        /// Events in the history the worker was given.
        events: u64,
    },
}

impl CallEffect {
    /// Short name, for counts in reports: `refused`, `task_failed`, ...
    pub fn name(&self) -> &'static str {
        match self {
            CallEffect::Refused { .. } => "refused",
            CallEffect::TaskFailed { .. } => "task_failed",
            CallEffect::TaskWithheld { .. } => "task_withheld",
            CallEffect::CacheDropped => "cache_dropped",
            CallEffect::Replay { .. } => "replay",
        }
    }
}

/// The default `tasks` of the workflow-task kinds: one.
pub(super) fn one_task() -> std::num::NonZeroU32 {
    std::num::NonZeroU32::MIN
}

/// The call fault of the workflow-task kinds: `action` on each of the next `tasks` workflow
/// tasks, then nothing.
pub(super) struct OnTasks {
    left: std::sync::atomic::AtomicU32,
    action: TaskAction,
}

impl OnTasks {
    /// `action` on the next `tasks` workflow tasks.
    pub(super) fn new(tasks: std::num::NonZeroU32, action: TaskAction) -> Arc<Self> {
        Arc::new(Self {
            left: tasks.get().into(),
            action,
        })
    }
}

impl CallFault for OnTasks {
    fn workflow_task(&self, _task: &WorkflowTaskSeen) -> TaskAction {
        use std::sync::atomic::Ordering;
        match self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        {
            Ok(_) => self.action.clone(),
            Err(_) => TaskAction::Deliver,
        }
    }
}

/// Applies a workflow-task kind: `action` on the next `tasks` workflow tasks during `duration`;
/// what it did as `"<n> workflow task(s) <done>"`, or an error if it did nothing (`none` says
/// what that can mean).
pub(super) async fn on_tasks(
    ctl: &super::InfraControl<'_>,
    rule: usize,
    duration: std::time::Duration,
    (tasks, action): (std::num::NonZeroU32, TaskAction),
    done: &str,
    none: &str,
) -> Result<String, super::InfraError> {
    let events = ctl.with_call_fault(rule, OnTasks::new(tasks, action), duration).await?;
    let mut runs: Vec<&str> = events.iter().filter_map(|e| e.workflow_id.as_deref()).collect();
    runs.dedup();
    if events.is_empty() {
        return Err(super::InfraError::NoTraffic(format!(
            "it acted on no workflow task within {} ({none})",
            humantime::format_duration(duration)
        )));
    }
    Ok(format!(
        "{} workflow task(s) {done} ({})",
        events.len(),
        runs.join(", ")
    ))
}
