//! The attempt log: every activity attempt the proxy handed to (or kept from) a worker, what the
//! worker answered, what was injected and what went upstream. History keeps only the last
//! attempt of an activity; this log has them all.

use super::{
    effect::{Behaviour, Injection},
    upstream::UpstreamError,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use temporalio_common::protos::temporal::api::failure::v1::{Failure, failure::FailureInfo};
use tokio::time::Instant;

/// One activity attempt as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Sequence number of its record.
    pub(super) seq: u64,
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

/// How much of the attempt log a proxy keeps: the oldest records go first once there are more
/// than `max_attempts`, or once they are older than `max_age`, so that a proxy deployed for
/// months keeps a flat memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLimits {
    /// Records kept at most.
    pub max_attempts: usize,
    /// How long a record is kept after its task was handed out.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl LogLimits {
    /// No limit: the proxies the harness starts for one run keep every attempt of it.
    pub const UNBOUNDED: Self = Self {
        max_attempts: usize::MAX,
        max_age: Duration::MAX,
    };
}

impl Default for LogLimits {
    /// 50,000 attempts (some 30 MB) or a day, whichever comes first: far more than a scheduled
    /// run needs between a scenario's end and its report.
    fn default() -> Self {
        Self {
            max_attempts: 50_000,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// What the log holds and has let go of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    /// When the log began (unix ms): the proxy's start. Attempts of a workflow started before
    /// then went through another proxy, or this one before a restart, and are not here.
    pub since_ms: u64,
    /// Records kept now.
    pub kept: usize,
    /// Records dropped so far to stay within the limits.
    pub dropped: u64,
    /// When the task of the newest dropped record was handed out (unix ms): attempts of a
    /// workflow started before then may be gone.
    pub dropped_through_ms: Option<u64>,
    /// The limits.
    pub limits: LogLimits,
}

struct Inner {
    since_ms: u64,
    /// Records in the order their tasks arrived; `log[0]` has sequence number `first`.
    log: VecDeque<AttemptRecord>,
    first: u64,
    dropped: u64,
    dropped_through_ms: Option<u64>,
    limits: LogLimits,
    live: HashMap<Bytes, Live>,
    by_activity: HashMap<(String, String), Bytes>,
}

impl Inner {
    fn record(&mut self, seq: u64) -> Option<&mut AttemptRecord> {
        let index = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        self.log.get_mut(index)
    }

    /// Drops the oldest records beyond the limits, leaving room for `room` more.
    fn trim(&mut self, room: usize) {
        let oldest_kept = now_ms().saturating_sub(u64::try_from(self.limits.max_age.as_millis()).unwrap_or(u64::MAX));
        while let Some(front) = self.log.front() {
            let too_many = self.log.len() + room > self.limits.max_attempts;
            if !too_many && front.task_ms >= oldest_kept {
                break;
            }
            let task_ms = front.task_ms;
            self.log.pop_front();
            self.first += 1;
            self.dropped += 1;
            self.dropped_through_ms = Some(self.dropped_through_ms.map_or(task_ms, |d| d.max(task_ms)));
        }
    }
}

/// The shared attempt log and the live attempts behind it.
#[derive(Clone)]
pub struct AttemptLog {
    inner: Arc<Mutex<Inner>>,
}

impl Default for AttemptLog {
    fn default() -> Self {
        Self::new(LogLimits::UNBOUNDED)
    }
}

impl AttemptLog {
    /// An empty log that keeps what `limits` allow.
    pub fn new(limits: LogLimits) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                since_ms: now_ms(),
                log: VecDeque::new(),
                first: 0,
                dropped: 0,
                dropped_through_ms: None,
                limits,
                live: HashMap::new(),
                by_activity: HashMap::new(),
            })),
        }
    }

    /// Every attempt kept, in the order the tasks arrived.
    pub fn records(&self) -> Vec<AttemptRecord> {
        let mut inner = self.lock();
        inner.trim(0);
        inner.log.iter().cloned().collect()
    }

    /// The attempts kept of one workflow execution (any run of it without `run_id`).
    pub fn of_execution(&self, workflow_id: &str, run_id: Option<&str>) -> Vec<AttemptRecord> {
        let mut inner = self.lock();
        inner.trim(0);
        inner
            .log
            .iter()
            .filter(|r| r.workflow_id == workflow_id && run_id.is_none_or(|id| r.run_id == id))
            .cloned()
            .collect()
    }

    /// What the log holds and has dropped.
    pub fn state(&self) -> LogState {
        let mut inner = self.lock();
        inner.trim(0);
        LogState {
            since_ms: inner.since_ms,
            kept: inner.log.len(),
            dropped: inner.dropped,
            dropped_through_ms: inner.dropped_through_ms,
            limits: inner.limits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a new attempt and keeps it live until `deadline`; forgets attempts whose deadline
    /// has passed, and the oldest records beyond the log's limits. Returns the live attempt.
    pub(super) fn begin(&self, record: AttemptRecord, token: Bytes, behaviour: Behaviour, deadline: Instant) -> Live {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let now = Instant::now();
        inner.live.retain(|_, l| l.deadline > now);
        inner.by_activity.retain(|_, t| inner.live.contains_key(t));
        inner.trim(1);
        let live = Live {
            seq: inner.first + inner.log.len() as u64,
            behaviour,
            deadline,
            token: token.clone(),
        };
        inner
            .by_activity
            .insert((record.workflow_id.clone(), record.activity_id.clone()), token.clone());
        inner.live.insert(token, live.clone());
        inner.log.push_back(record);
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

    /// Changes the record of `live`, if it is still kept.
    pub(super) fn update(&self, live: &Live, change: impl FnOnce(&mut AttemptRecord)) {
        if let Some(record) = self.lock().record(live.seq) {
            change(record);
        }
    }

    /// Records the worker's answer; the attempt is no longer live.
    pub(super) fn answered(&self, live: &Live, answer: Answer) {
        let mut inner = self.lock();
        inner.live.remove(&live.token);
        inner.by_activity.retain(|_, t| *t != live.token);
        if let Some(record) = inner.record(live.seq) {
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
        assert_eq!(log.find(&Target::Token(token.clone())).unwrap().seq, 0);
        assert_eq!(log.find(&by_id).unwrap().seq, 0);
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

    #[tokio::test]
    async fn the_log_keeps_at_most_its_limits_and_says_what_it_dropped() {
        let limits = LogLimits {
            max_attempts: 3,
            max_age: Duration::from_secs(3600),
        };
        let log = AttemptLog::new(limits);
        let minute = Instant::now() + Duration::from_secs(60);
        let mut lives = Vec::new();
        let base = now_ms() - 10_000;
        for (i, task_ms) in [1_000, 2_000, 3_000, 4_000, 5_000].into_iter().enumerate() {
            let mut r = record(&i.to_string());
            r.task_ms = base + task_ms;
            r.workflow_id = format!("wf{}", i % 2);
            lives.push(log.begin(r, Bytes::from(format!("t{i}")), Behaviour::default(), minute));
        }
        let state = log.state();
        assert_eq!((state.kept, state.dropped), (3, 2));
        assert_eq!(state.dropped_through_ms, Some(base + 2_000), "the newest dropped task");
        let kept: Vec<String> = log.records().into_iter().map(|r| r.activity_id).collect();
        assert_eq!(kept, ["2", "3", "4"], "the oldest go first");
        // A dropped record's live attempt can still be answered; a kept one's answer lands.
        log.answered(&lives[0], Answer::Completed);
        log.answered(&lives[3], Answer::Completed);
        let of_wf1 = log.of_execution("wf1", Some("run"));
        assert_eq!(of_wf1.len(), 1, "wf1's attempt 1 was dropped, 3 is kept");
        assert_eq!(of_wf1[0].answer, Some(Answer::Completed));
        assert!(log.of_execution("wf1", Some("other run")).is_empty());

        // By age: records whose task is older than the limit go, even without new attempts.
        let log = AttemptLog::new(LogLimits {
            max_attempts: 100,
            max_age: Duration::from_millis(200),
        });
        log.begin(record("old"), Bytes::from_static(b"o"), Behaviour::default(), minute);
        assert_eq!(log.state().kept, 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let state = log.state();
        assert_eq!((state.kept, state.dropped), (0, 1));
        assert!(state.dropped_through_ms.is_some());
    }
}
