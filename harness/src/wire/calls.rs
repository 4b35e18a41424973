//! The faults on the workers' own calls ([`crate::infra::CallFault`]) installed in a proxy, and
//! the log of what they did and of the replays the proxy saw.
//!
//! Workflow tasks are read through small views of the messages (only the fields needed, the
//! history's events reduced to their ids), so a large history costs little to look at.

use crate::infra::{CallEffect, CallEvent, CallFault, TaskAction, WorkflowTaskSeen};
use bytes::Bytes;
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

/// The fields of a `PollWorkflowTaskQueueResponse` the proxy reads.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkflowTaskHead {
    /// Field 1.
    #[prost(bytes = "bytes", tag = "1")]
    pub task_token: Bytes,
    /// Field 2.
    #[prost(message, optional, tag = "2")]
    pub workflow_execution: Option<temporalio_common::protos::temporal::api::common::v1::WorkflowExecution>,
    /// Field 4: the run's previous started event, 0 for its first task.
    #[prost(int64, tag = "4")]
    pub previous_started_event_id: i64,
    /// Field 6.
    #[prost(int32, tag = "6")]
    pub attempt: i32,
    /// Field 8.
    #[prost(message, optional, tag = "8")]
    pub history: Option<HistoryHead>,
}

/// A history's events, each reduced to its id.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryHead {
    /// Field 1.
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<EventHead>,
}

/// An event's id.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventHead {
    /// Field 1.
    #[prost(int64, tag = "1")]
    pub event_id: i64,
}

/// The first field of a request: the namespace of a poll, the task token of a task's answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FirstString {
    /// Field 1.
    #[prost(bytes = "bytes", tag = "1")]
    pub value: Bytes,
}

/// A run whose stickiness is dropped once its task completes.
#[derive(Clone)]
struct Unstick {
    rule: usize,
    workflow_id: String,
    run_id: String,
    namespace: String,
}

/// What the proxy does to the workers' calls, and what it saw.
pub struct CallFaults {
    faults: Mutex<Vec<(usize, Arc<dyn CallFault>)>>,
    log: Mutex<CallLog>,
    /// Task tokens of workflow tasks whose run is unstuck once the worker completes them.
    unstick: Mutex<HashMap<Bytes, Unstick>>,
    /// Runs to unstick at their next task's completion (the last one's answer carried more
    /// tasks, which the worker must get).
    unstick_next: Mutex<HashMap<(String, String), Unstick>>,
}

struct CallLog {
    events: VecDeque<CallEvent>,
    /// Kept at most (the oldest go first).
    max: usize,
    /// Refusals waiting for the next call of their method to go through, by method: positions
    /// counted from the first event ever logged.
    pending: HashMap<String, Vec<u64>>,
    /// Events ever dropped from the front.
    dropped: u64,
}

/// What the proxy must do about a workflow task.
pub struct TaskDecision {
    /// The task as the faults saw it.
    pub task: WorkflowTaskSeen,
    /// Its token.
    pub token: Bytes,
    /// The action, and the rule whose fault chose it.
    pub action: Option<(usize, TaskAction)>,
}

impl CallFaults {
    /// No faults; a log of at most `max` events.
    pub fn new(max: usize) -> Self {
        Self {
            faults: Mutex::default(),
            log: Mutex::new(CallLog {
                events: VecDeque::new(),
                max: max.max(1),
                pending: HashMap::new(),
                dropped: 0,
            }),
            unstick: Mutex::default(),
            unstick_next: Mutex::default(),
        }
    }

    /// Installs rule `rule`'s fault.
    pub fn install(&self, rule: usize, fault: Arc<dyn CallFault>) {
        lock(&self.faults).push((rule, fault));
    }

    /// Removes rule `rule`'s fault; its events so far.
    pub fn remove(&self, rule: usize) -> Vec<CallEvent> {
        lock(&self.faults).retain(|(r, _)| *r != rule);
        lock(&self.log)
            .events
            .iter()
            .filter(|e| e.rule == Some(rule))
            .cloned()
            .collect()
    }

    /// Every event kept, oldest first.
    pub fn events(&self) -> Vec<CallEvent> {
        lock(&self.log).events.iter().cloned().collect()
    }

    fn installed(&self) -> Vec<(usize, Arc<dyn CallFault>)> {
        lock(&self.faults).clone()
    }

    /// The status to answer a call to `method` with, if a fault refuses it (logged); otherwise
    /// notes that a call of `method` went through (what earlier refusals cost).
    pub fn refusal(&self, method: &str) -> Option<(i32, String)> {
        let refused = self
            .installed()
            .into_iter()
            .find_map(|(rule, f)| f.refuse(method).map(|r| (rule, r)));
        let mut log = lock(&self.log);
        let now = super::attempts::now_ms();
        let Some((rule, (code, message))) = refused else {
            if let Some(waiting) = log.pending.remove(method) {
                for position in waiting {
                    let at = position.checked_sub(log.dropped).map(|i| i as usize);
                    if let Some(CallEvent {
                        at_unix_ms,
                        what: CallEffect::Refused { retried_after_ms, .. },
                        ..
                    }) = at.and_then(|i| log.events.get_mut(i))
                    {
                        *retried_after_ms = Some(now.saturating_sub(*at_unix_ms));
                    }
                }
            }
            return None;
        };
        let position = log.push(CallEvent {
            rule: Some(rule),
            at_unix_ms: now,
            workflow_id: None,
            what: CallEffect::Refused {
                method: method.to_owned(),
                code,
                retried_after_ms: None,
            },
        });
        log.pending.entry(method.to_owned()).or_default().push(position);
        Some((code, message))
    }

    /// Reads a workflow task handed out (the first message of a poll's answer), logs a replay,
    /// and asks the faults what to do with it; `None` for an empty poll or one it cannot read.
    pub fn workflow_task(&self, message: &[u8]) -> Option<TaskDecision> {
        let head = <WorkflowTaskHead as prost::Message>::decode(message).ok()?;
        if head.task_token.is_empty() {
            return None;
        }
        let execution = head.workflow_execution.unwrap_or_default();
        let task = WorkflowTaskSeen {
            workflow_id: execution.workflow_id,
            run_id: execution.run_id,
            attempt: head.attempt.max(1) as u32,
        };
        let events = head.history.as_ref().map_or(0, |h| h.events.len());
        let from_start = head
            .history
            .as_ref()
            .and_then(|h| h.events.first())
            .is_some_and(|e| e.event_id == 1);
        if from_start && head.previous_started_event_id > 0 {
            self.note(
                None,
                Some(&task.workflow_id),
                CallEffect::Replay { events: events as u64 },
            );
        }
        let waiting = lock(&self.unstick_next).remove(&(task.workflow_id.clone(), task.run_id.clone()));
        if let Some(unstick) = waiting {
            lock(&self.unstick).insert(head.task_token.clone(), unstick);
        }
        let action = self
            .installed()
            .into_iter()
            .find_map(|(rule, f)| match f.workflow_task(&task) {
                TaskAction::Deliver => None,
                action => Some((rule, action)),
            });
        Some(TaskDecision {
            task,
            token: head.task_token,
            action,
        })
    }

    /// Logs what the proxy did (`rule`) or saw (`None`).
    pub fn note(&self, rule: Option<usize>, workflow_id: Option<&str>, what: CallEffect) {
        lock(&self.log).push(CallEvent {
            rule,
            at_unix_ms: super::attempts::now_ms(),
            workflow_id: workflow_id.map(str::to_owned),
            what,
        });
    }

    /// Marks the run of the task with `token` to be unstuck once the worker completes it.
    pub fn unstick_after(&self, token: Bytes, rule: usize, task: &WorkflowTaskSeen, namespace: &str) {
        lock(&self.unstick).insert(
            token,
            Unstick {
                rule,
                workflow_id: task.workflow_id.clone(),
                run_id: task.run_id.clone(),
                namespace: namespace.to_owned(),
            },
        );
    }

    /// Whether any run waits to be unstuck (only then are completions read).
    pub fn unsticking(&self) -> bool {
        !lock(&self.unstick).is_empty()
    }

    /// Whether the run of the task with `token` is to be unstuck once it completes.
    pub fn unsticks(&self, token: &[u8]) -> bool {
        lock(&self.unstick).contains_key(token)
    }

    /// The run to unstick now that the task with `token` completed: (rule, workflow id, run id,
    /// namespace).
    pub fn take_unstick(&self, token: &[u8]) -> Option<(usize, String, String, String)> {
        lock(&self.unstick)
            .remove(token)
            .map(|u| (u.rule, u.workflow_id, u.run_id, u.namespace))
    }

    /// Puts off unsticking a run to its next task's completion.
    pub fn unstick_later(&self, rule: usize, workflow_id: String, run_id: String, namespace: String) {
        let unstick = Unstick {
            rule,
            workflow_id: workflow_id.clone(),
            run_id: run_id.clone(),
            namespace,
        };
        lock(&self.unstick_next).insert((workflow_id, run_id), unstick);
    }
}

/// The fields of a `RespondWorkflowTaskCompletedResponse` that hand the worker more tasks.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompletedHead {
    /// Field 1: the next workflow task, when the worker asked for it.
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub workflow_task: Option<Bytes>,
    /// Field 2: eagerly dispatched activity tasks.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub activity_tasks: Vec<Bytes>,
}

impl CompletedHead {
    /// Whether the answer hands the worker any task.
    pub fn hands_out_tasks(&self) -> bool {
        self.workflow_task.as_ref().is_some_and(|t| !t.is_empty()) || !self.activity_tasks.is_empty()
    }
}

impl CallLog {
    /// Appends `event`; returns its position counted from the first event ever logged.
    fn push(&mut self, event: CallEvent) -> u64 {
        if self.events.len() == self.max {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(event);
        self.dropped + self.events.len() as u64 - 1
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use temporalio_common::protos::temporal::api::{
        common::v1::WorkflowExecution,
        history::v1::{History, HistoryEvent},
        workflowservice::v1::PollWorkflowTaskQueueResponse,
    };

    fn task(previous: i64, first_event: i64) -> Vec<u8> {
        PollWorkflowTaskQueueResponse {
            task_token: b"token".to_vec(),
            workflow_execution: Some(WorkflowExecution {
                workflow_id: "wf".into(),
                run_id: "run".into(),
            }),
            previous_started_event_id: previous,
            attempt: 1,
            history: Some(History {
                events: (first_event..first_event + 3)
                    .map(|id| HistoryEvent {
                        event_id: id,
                        ..Default::default()
                    })
                    .collect(),
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn a_whole_history_for_a_later_task_is_a_replay_and_a_first_task_is_not() {
        let faults = CallFaults::new(10);
        let first = faults.workflow_task(&task(0, 1)).expect("a task");
        assert_eq!(first.task.workflow_id, "wf");
        assert!(first.action.is_none());
        faults.workflow_task(&task(3, 4));
        assert!(faults.events().is_empty(), "{:?}", faults.events());
        faults.workflow_task(&task(7, 1));
        assert_eq!(faults.events().len(), 1);
        assert_eq!(faults.events()[0].what, CallEffect::Replay { events: 3 });
    }

    struct RefuseAll;
    impl CallFault for RefuseAll {
        fn refuse(&self, method: &str) -> Option<(i32, String)> {
            (method == "PollActivityTaskQueue").then(|| (8, "no".into()))
        }
    }

    #[test]
    fn a_refusal_is_logged_and_priced_by_the_next_call_that_goes_through() {
        let faults = CallFaults::new(10);
        faults.install(2, Arc::new(RefuseAll));
        assert_eq!(faults.refusal("PollActivityTaskQueue"), Some((8, "no".into())));
        assert_eq!(faults.refusal("PollWorkflowTaskQueue"), None);
        let events = faults.remove(2);
        assert_eq!(events.len(), 1);
        assert!(matches!(
            &events[0].what,
            CallEffect::Refused {
                retried_after_ms: None,
                ..
            }
        ));
        assert_eq!(faults.refusal("PollActivityTaskQueue"), None);
        assert!(matches!(
            &faults.events()[0].what,
            CallEffect::Refused {
                retried_after_ms: Some(_),
                code: 8,
                ..
            }
        ));
    }

    #[test]
    fn the_log_keeps_its_bound() {
        let faults = CallFaults::new(2);
        for _ in 0..5 {
            faults.note(None, None, CallEffect::CacheDropped);
        }
        assert_eq!(faults.events().len(), 2);
    }
}
