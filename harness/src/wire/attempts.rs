//! The attempt log: every activity attempt the proxy handed to (or kept from) a worker, what the
//! worker answered, what was injected and what went upstream. History keeps only the last
//! attempt of an activity; this log has them all.

use super::{
    effect::{Behaviour, Injection},
    upstream::UpstreamError,
};
use bytes::Bytes;
use serde::Serialize;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};
use temporalio_common::protos::temporal::api::failure::v1::{Failure, failure::FailureInfo};
use tokio::time::Instant;

/// One activity attempt as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// Workflow that scheduled the activity.
    pub workflow_id: String,
    /// Its run.
    pub run_id: String,
    /// Activity id within the workflow.
    pub activity_id: String,
    /// Activity type.
    pub activity_type: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// When the frontend handed out the task (unix ms); the worker got it then, unless
    /// `delivered` is false.
    pub task_ms: u64,
    /// Whether the task came eagerly, in the answer to the worker's workflow task completion,
    /// rather than from a poll.
    pub eager: bool,
    /// Whether the worker was given the task (an injected failure keeps it from the worker).
    pub delivered: bool,
    /// When the server gives up on the attempt (unix ms), if the task says.
    pub deadline_ms: Option<u64>,
    /// Faults applied, in rule order.
    pub injected: Vec<Injection>,
    /// Why the attempt got no faults although its run may have a plan: the plan could not be
    /// read from the frontend (the lookup's last error).
    pub plan_error: Option<String>,
    /// When the worker answered (unix ms).
    pub answered_ms: Option<u64>,
    /// What the worker answered; `None` while it has not.
    pub answer: Option<Answer>,
    /// Heartbeats of this attempt that reached the frontend.
    pub heartbeats_forwarded: u32,
    /// Heartbeats the proxy swallowed (answered OK itself).
    pub heartbeats_swallowed: u32,
    /// What the proxy sent upstream for this attempt, in order.
    pub upstream: Vec<UpstreamEvent>,
}

/// What the worker answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// `RespondActivityTaskCompleted[ById]`.
    Completed,
    /// `RespondActivityTaskFailed[ById]`.
    Failed {
        /// Application failure type (empty for other failure kinds).
        failure_type: String,
        /// Failure message.
        message: String,
    },
    /// `RespondActivityTaskCanceled[ById]`.
    Canceled,
}

impl Answer {
    /// A failed answer with the failure's type and message.
    pub fn failed(failure: Option<&Failure>) -> Self {
        let failure_type = match failure.and_then(|f| f.failure_info.as_ref()) {
            Some(FailureInfo::ApplicationFailureInfo(a)) => a.r#type.clone(),
            _ => String::new(),
        };
        Self::Failed {
            failure_type,
            message: failure.map(|f| f.message.clone()).unwrap_or_default(),
        }
    }
}

/// Something the proxy sent (or chose not to send) upstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamEvent {
    /// When (unix ms).
    pub at_ms: u64,
    /// What.
    pub sent: Sent,
    /// `ok`, or the error the frontend (or the connection) gave last.
    pub status: String,
    /// How many times the proxy sent it (it retries while the frontend is unreachable or
    /// unavailable, up to the attempt's deadline); 0 for a call it did not send.
    pub tries: u32,
    /// Whether the frontend answered it (with any status): `false` when the call never reached
    /// the server, or was not sent at all.
    pub answered: bool,
}

/// How a call the proxy made for an attempt went: the parts of an [`UpstreamEvent`] other than
/// what was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// `ok`, the error, or why it was not sent.
    pub status: String,
    /// Times sent.
    pub tries: u32,
    /// Whether the frontend answered.
    pub answered: bool,
}

impl Delivery {
    /// A call the proxy chose not to send, and why.
    pub fn not_sent(why: &str) -> Self {
        Self {
            status: why.to_owned(),
            tries: 0,
            answered: false,
        }
    }

    /// A call sent `tries` times, with its last result.
    pub fn of<T>(result: &Result<T, UpstreamError>, tries: u32) -> Self {
        Self {
            status: result.as_ref().map_or_else(ToString::to_string, |_| "ok".to_owned()),
            tries,
            // UNAVAILABLE says the frontend did not take the call up.
            answered: match result {
                Ok(_) => true,
                Err(e) => matches!(e, UpstreamError::Status { .. }) && !e.retryable(),
            },
        }
    }
}

/// What went upstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sent {
    /// The worker's call, byte for byte (possibly late).
    Forwarded {
        /// gRPC method.
        call: String,
    },
    /// A `RespondActivityTaskFailed` the proxy made itself.
    InjectedFailure {
        /// Application failure type.
        error_type: String,
        /// Failure message, with the marker.
        message: String,
    },
    /// The worker's call was swallowed.
    Withheld {
        /// gRPC method.
        call: String,
    },
    /// The worker's call was held past the attempt's deadline and dropped there.
    DroppedAtDeadline {
        /// gRPC method.
        call: String,
    },
    /// The call was held when the worker's connection to the proxy closed (the worker died or
    /// was cut off) and was dropped with it, as the network would drop a dead worker's unsent
    /// answer.
    DroppedWorkerGone {
        /// gRPC method.
        call: String,
    },
}

impl Sent {
    /// The gRPC method this is about.
    pub fn call(&self) -> String {
        match self {
            Sent::Forwarded { call }
            | Sent::Withheld { call }
            | Sent::DroppedAtDeadline { call }
            | Sent::DroppedWorkerGone { call } => call.clone(),
            Sent::InjectedFailure { .. } => "RespondActivityTaskFailed".into(),
        }
    }
}

/// Now, in unix milliseconds.
pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// `at` in unix milliseconds.
fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// An attempt the worker may still answer or heartbeat for.
#[derive(Debug, Clone)]
pub(super) struct Live {
    /// Index of its record.
    pub(super) index: usize,
    /// What the proxy does to it.
    pub(super) behaviour: Behaviour,
    /// When the server gives up on it; the proxy forgets it then.
    pub(super) deadline: Instant,
    token: Bytes,
}

/// Which attempt a worker's call is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// By task token.
    Token(Bytes),
    /// By workflow and activity id (the `...ById` calls).
    Activity {
        /// Workflow id.
        workflow_id: String,
        /// Activity id.
        activity_id: String,
    },
}

#[derive(Default)]
struct Inner {
    log: Vec<AttemptRecord>,
    live: HashMap<Bytes, Live>,
    by_activity: HashMap<(String, String), Bytes>,
}

/// The shared attempt log and the live attempts behind it.
#[derive(Clone, Default)]
pub struct AttemptLog {
    inner: Arc<Mutex<Inner>>,
}

impl AttemptLog {
    /// Every attempt so far, in the order the tasks arrived.
    pub fn records(&self) -> Vec<AttemptRecord> {
        self.lock().log.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("attempt log lock")
    }

    /// Records a new attempt and keeps it live until `deadline`; forgets attempts whose deadline
    /// has passed. Returns the live attempt.
    pub(super) fn begin(&self, record: AttemptRecord, token: Bytes, behaviour: Behaviour, deadline: Instant) -> Live {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let now = Instant::now();
        inner.live.retain(|_, l| l.deadline > now);
        inner.by_activity.retain(|_, t| inner.live.contains_key(t));
        let live = Live {
            index: inner.log.len(),
            behaviour,
            deadline,
            token: token.clone(),
        };
        inner
            .by_activity
            .insert((record.workflow_id.clone(), record.activity_id.clone()), token.clone());
        inner.live.insert(token, live.clone());
        inner.log.push(record);
        live
    }

    /// The live attempt a call is about, unless its deadline has passed.
    pub(super) fn find(&self, target: &Target) -> Option<Live> {
        let inner = self.lock();
        let token = match target {
            Target::Token(t) => t,
            Target::Activity {
                workflow_id,
                activity_id,
            } => inner.by_activity.get(&(workflow_id.clone(), activity_id.clone()))?,
        };
        inner.live.get(token).filter(|l| l.deadline > Instant::now()).cloned()
    }

    /// Changes the record of `live`.
    pub(super) fn update(&self, live: &Live, change: impl FnOnce(&mut AttemptRecord)) {
        if let Some(record) = self.lock().log.get_mut(live.index) {
            change(record);
        }
    }

    /// Records the worker's answer; the attempt is no longer live.
    pub(super) fn answered(&self, live: &Live, answer: Answer) {
        let mut inner = self.lock();
        inner.live.remove(&live.token);
        inner.by_activity.retain(|_, t| *t != live.token);
        if let Some(record) = inner.log.get_mut(live.index) {
            record.answered_ms = Some(now_ms());
            record.answer = Some(answer);
        }
    }

    /// Adds an upstream event to the record of `live`: `sent`, and how it went.
    pub(super) fn sent(&self, live: &Live, sent: Sent, delivery: Delivery) {
        let Delivery {
            status,
            tries,
            answered,
        } = delivery;
        self.update(live, |r| {
            r.upstream.push(UpstreamEvent {
                at_ms: now_ms(),
                sent,
                status,
                tries,
                answered,
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(activity_id: &str) -> AttemptRecord {
        AttemptRecord {
            workflow_id: "wf".into(),
            run_id: "run".into(),
            activity_id: activity_id.into(),
            activity_type: "risky".into(),
            attempt: 1,
            task_ms: now_ms(),
            eager: false,
            delivered: true,
            deadline_ms: None,
            injected: Vec::new(),
            plan_error: None,
            answered_ms: None,
            answer: None,
            heartbeats_forwarded: 0,
            heartbeats_swallowed: 0,
            upstream: Vec::new(),
        }
    }

    #[tokio::test]
    async fn attempts_are_forgotten_at_their_deadline_but_stay_in_the_log() {
        let log = AttemptLog::default();
        let second = Duration::from_millis(100);
        let token = Bytes::from_static(b"t1");
        log.begin(
            record("1"),
            token.clone(),
            Behaviour::default(),
            Instant::now() + second,
        );
        let by_id = Target::Activity {
            workflow_id: "wf".into(),
            activity_id: "1".into(),
        };
        assert_eq!(log.find(&Target::Token(token.clone())).unwrap().index, 0);
        assert_eq!(log.find(&by_id).unwrap().index, 0);
        tokio::time::sleep(second * 2).await;
        assert!(log.find(&Target::Token(token)).is_none(), "past its deadline");
        let minute = Duration::from_secs(60);
        log.begin(
            record("2"),
            Bytes::from_static(b"t2"),
            Behaviour::default(),
            Instant::now() + minute,
        );
        assert_eq!(log.lock().live.len(), 1, "the expired attempt was dropped");
        assert_eq!(log.lock().by_activity.len(), 1);
        let live = log.find(&Target::Token(Bytes::from_static(b"t2"))).unwrap();
        log.answered(&live, Answer::Completed);
        assert!(
            log.find(&Target::Token(Bytes::from_static(b"t2"))).is_none(),
            "answered"
        );
        let records = log.records();
        assert_eq!(records.len(), 2, "the log keeps both");
        assert_eq!(records[1].answer, Some(Answer::Completed));
    }
}
