//! What a scenario's run showed beyond its checks: how its workflow tasks fared, what the faults
//! on the workers' calls did, how long tasks waited for a worker, and how a backlog drained.

use crate::{
    history::{ActivityExecution, Histories},
    infra::{CallEffect, CallEvent, Capability, InfraEvent, InfraRule},
    verify,
    wire::{Answer, AttemptRecord, Sent},
};
use serde::Serialize;
use std::{collections::BTreeMap, time::Duration};

/// The `observations` of a scenario in `report.json`; every part is left out when empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Observations {
    /// `WorkflowTaskFailed` events of the workflow and its children, by cause.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub workflow_task_failures: BTreeMap<String, u32>,
    /// `WorkflowTaskTimedOut` events of the workflow and its children, by timeout type
    /// (`start_to_close`, `schedule_to_start`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub workflow_task_timeouts: BTreeMap<String, u32>,
    /// Workflow tasks the wire proxy saw delivered with the whole history though not a run's
    /// first: the worker replayed the run (a sticky cache miss).
    #[serde(skip_serializing_if = "is_zero")]
    pub replays: u32,
    /// Activities that ran again after an attempt was lost to a worker that was killed, stopped
    /// or replaced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicate_executions: Vec<DuplicateExecution>,
    /// How long tasks waited for a worker, over the workflow, its children and the backlog.
    #[serde(skip_serializing_if = "ScheduleToStart::is_empty")]
    pub schedule_to_start: ScheduleToStart,
    /// The workflows a `workers_down` started while the workers were down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<BacklogCount>,
    /// How long the backlog of the `workers_down` took to drain once the workers were back (see
    /// [`crate::history::Drain`]); absent while a waiting task never started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_ms: Option<u64>,
    /// The workers' calls the wire proxy refused (`rpc_error`), by method and status code.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rpc_errors: Vec<RpcErrors>,
    /// What the workflow-task kinds did to workflow tasks on the wire.
    #[serde(skip_serializing_if = "InjectedTasks::is_empty")]
    pub injected_workflow_tasks: InjectedTasks,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An activity that ran again after an attempt was lost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DuplicateExecution {
    /// The workflow that scheduled it.
    pub workflow_id: String,
    /// Its activity id.
    pub activity_id: String,
    /// Its type.
    pub activity_type: String,
    /// The attempt that was lost.
    pub lost_attempt: u32,
    /// The attempt that ran it again.
    pub rerun_attempt: u32,
    /// `wire`: the wire proxy handed the lost attempt to a worker that never answered (or whose
    /// answer died with its connection, or that failed it as it shut down), and handed out a later
    /// attempt. `history`: the attempt before the last one timed out or was failed by a worker
    /// shutting down, and a fault that kills, stops, restarts or replaces the
    /// workers began between the activity's schedule and its last attempt's start (history keeps
    /// only the last two attempts, so this finds at most one per activity).
    pub source: &'static str,
}

/// Schedule-to-start latencies of workflow tasks and of activities' first attempts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScheduleToStart {
    /// Of every workflow task a worker took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Latencies>,
    /// Of every activity whose only attempt started (see
    /// [`ActivityExecution::schedule_to_start`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<Latencies>,
}

impl ScheduleToStart {
    fn is_empty(&self) -> bool {
        self.workflow.is_none() && self.activity.is_none()
    }
}

/// A set of latencies summed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latencies {
    /// How many.
    pub count: usize,
    /// The median (the lower one of an even count), in milliseconds.
    pub p50_ms: u64,
    /// The longest, in milliseconds.
    pub max_ms: u64,
}

impl Latencies {
    /// The summary of `latencies`; `None` when there are none.
    pub fn of(latencies: Vec<Duration>) -> Option<Self> {
        let mut ms: Vec<u64> = latencies.iter().map(|d| d.as_millis() as u64).collect();
        ms.sort_unstable();
        Some(Self {
            count: ms.len(),
            p50_ms: nearest_rank(&ms, 0.5)?,
            max_ms: *ms.last()?,
        })
    }
}

/// The `q` quantile (0 to 1) of `sorted` by the nearest-rank method (the median of an even count
/// is the lower one); `None` when empty.
pub fn nearest_rank(sorted: &[u64], q: f64) -> Option<u64> {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

/// The backlog of a `workers_down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BacklogCount {
    /// Workflows started while the workers were down.
    pub count: usize,
    /// Those that completed.
    pub completed: usize,
}

/// The refusals of one method with one status code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpcErrors {
    /// The gRPC method.
    pub method: String,
    /// The status code.
    pub code: i32,
    /// Calls refused.
    pub count: u32,
    /// What the refusals cost the workers: the time each took to make its next call of the
    /// method that went through, summed, in milliseconds.
    pub cost_ms_total: u64,
    /// The longest of those times.
    pub cost_ms_max: u64,
}

/// Workflow tasks the wire proxy acted on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InjectedTasks {
    /// Failed on the worker's behalf (`workflow_task_failure`).
    pub failed: u32,
    /// Kept from the worker until they timed out (`workflow_task_timeout`).
    pub withheld: u32,
    /// Runs dropped from the worker's cache (`sticky_cache_drop`).
    pub cache_dropped: u32,
}

impl InjectedTasks {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What a scenario's run went through, besides its own workflow's.
pub struct Observed<'a> {
    /// The infrastructure rules of the plan.
    pub rules: &'a [InfraRule],
    /// The workflow's histories and its children's.
    pub histories: Option<&'a Histories>,
    /// What the infrastructure faults did.
    pub infra: &'a [InfraEvent],
    /// What the wire proxy did on the workers' calls, and the replays it saw.
    pub calls: &'a [CallEvent],
    /// Every activity attempt the wire proxy saw.
    pub wire: &'a [AttemptRecord],
    /// The workflows started while the workers were down.
    pub backlog: &'a [Histories],
}

impl Observations {
    /// Reads them from what the run went through.
    pub fn of(o: &Observed<'_>) -> Self {
        let mut out = Self::default();
        let histories = o.histories.into_iter().chain(o.backlog);
        let all: Vec<&crate::history::HistoryFacts> = histories.clone().flat_map(Histories::all).collect();
        for h in o.histories.iter().flat_map(|h| h.all()) {
            for f in &h.workflow_task_failures {
                *out.workflow_task_failures.entry(f.cause.clone()).or_default() += 1;
            }
            for t in &h.workflow_task_timeouts {
                *out.workflow_task_timeouts.entry(t.timeout.to_string()).or_default() += 1;
            }
        }
        out.schedule_to_start = ScheduleToStart {
            workflow: Latencies::of(
                all.iter()
                    .flat_map(|h| h.workflow_tasks.iter().filter_map(|t| t.schedule_to_start()))
                    .collect(),
            ),
            activity: Latencies::of(
                histories
                    .clone()
                    .flat_map(Histories::activities)
                    .filter_map(ActivityExecution::schedule_to_start)
                    .collect(),
            ),
        };
        if !o.backlog.is_empty() {
            out.backlog = Some(BacklogCount {
                count: o.backlog.len(),
                completed: o
                    .backlog
                    .iter()
                    .filter(|b| matches!(b.root.close, Some(crate::history::WorkflowClose::Completed { .. })))
                    .count(),
            });
        }
        out.drain_ms = o
            .histories
            .and_then(|h| verify::drain(o.rules, o.infra, h, o.backlog))
            .and_then(|d| d.duration())
            .map(|d| d.as_millis() as u64);
        let mut refused: BTreeMap<(String, i32), RpcErrors> = BTreeMap::new();
        for event in o.calls {
            match &event.what {
                CallEffect::Refused {
                    method,
                    code,
                    retried_after_ms,
                } => {
                    let e = refused.entry((method.clone(), *code)).or_insert_with(|| RpcErrors {
                        method: method.clone(),
                        code: *code,
                        count: 0,
                        cost_ms_total: 0,
                        cost_ms_max: 0,
                    });
                    let cost = retried_after_ms.unwrap_or_default();
                    e.count += 1;
                    e.cost_ms_total += cost;
                    e.cost_ms_max = e.cost_ms_max.max(cost);
                }
                CallEffect::TaskFailed { .. } => out.injected_workflow_tasks.failed += 1,
                CallEffect::TaskWithheld { .. } => out.injected_workflow_tasks.withheld += 1,
                CallEffect::CacheDropped => out.injected_workflow_tasks.cache_dropped += 1,
                CallEffect::Replay { .. } => out.replays += 1,
            }
        }
        out.rpc_errors = refused.into_values().collect();
        out.duplicate_executions = match o.wire.is_empty() {
            false => duplicates_on_the_wire(o.wire),
            true => duplicates_in_history(histories.flat_map(Histories::activities), o.rules, o.infra),
        };
        out
    }

    /// Whether there is nothing to say.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// One short phrase per part, for the Markdown and HTML reports; schedule-to-start only
    /// alongside something else (every scenario has it).
    pub fn phrases(&self) -> Vec<String> {
        let counts =
            |m: &BTreeMap<String, u32>| m.iter().map(|(k, n)| format!("{k}×{n}")).collect::<Vec<_>>().join(", ");
        let mut out = Vec::new();
        if !self.workflow_task_failures.is_empty() {
            out.push(format!(
                "workflow task failures {}",
                counts(&self.workflow_task_failures)
            ));
        }
        if !self.workflow_task_timeouts.is_empty() {
            out.push(format!(
                "workflow task timeouts {}",
                counts(&self.workflow_task_timeouts)
            ));
        }
        let t = &self.injected_workflow_tasks;
        if !t.is_empty() {
            out.push(format!(
                "workflow tasks on the wire: {} failed, {} withheld, {} dropped from the worker's cache",
                t.failed, t.withheld, t.cache_dropped
            ));
        }
        if self.replays > 0 {
            out.push(format!("{} replay(s)", self.replays));
        }
        if !self.duplicate_executions.is_empty() {
            out.push(format!("{} duplicate execution(s)", self.duplicate_executions.len()));
        }
        for e in &self.rpc_errors {
            out.push(format!(
                "{} refused {}× (code {}; cost {} ms, at most {} ms)",
                e.method, e.count, e.code, e.cost_ms_total, e.cost_ms_max
            ));
        }
        if let Some(b) = self.backlog {
            let drained = self
                .drain_ms
                .map_or_else(|| ", not drained".into(), |ms| format!(", drained in {ms} ms"));
            out.push(format!("backlog {}/{} completed{drained}", b.completed, b.count));
        }
        if !out.is_empty() {
            let s = &self.schedule_to_start;
            let latency = |name: &str, l: Option<Latencies>| {
                l.map(|l| format!("{name} p50 {} ms, max {} ms", l.p50_ms, l.max_ms))
            };
            let parts: Vec<String> = [latency("workflow", s.workflow), latency("activity", s.activity)]
                .into_iter()
                .flatten()
                .collect();
            if !parts.is_empty() {
                out.push(format!("schedule-to-start {}", parts.join("; ")));
            }
        }
        out
    }
}

/// Whether an attempt's failure says its worker shut down under it: the message of the SDKs built
/// on Temporal's core (Rust, Python, TypeScript, .NET, Ruby) when the shutdown grace ran out, or
/// of a fault the harness's worker held when it stopped.
fn cut_by_shutdown(message: &str) -> bool {
    message.contains("Worker is shutting down") || message.contains("released: the attempt is over")
}

/// Attempts the wire proxy handed to a worker that never answered (or whose answer died with its
/// connection, or that failed them as it shut down), each followed by a later attempt of the same
/// activity.
fn duplicates_on_the_wire(wire: &[AttemptRecord]) -> Vec<DuplicateExecution> {
    let lost = |r: &AttemptRecord| {
        r.delivered
            && (r.answer.is_none()
                || matches!(&r.answer, Some(Answer::Failed { message, .. }) if cut_by_shutdown(message))
                || r.upstream
                    .iter()
                    .any(|e| matches!(e.sent, Sent::DroppedWorkerGone { .. })))
    };
    wire.iter()
        .filter(|r| lost(r))
        .filter_map(|r| {
            let rerun = wire
                .iter()
                .filter(|n| n.workflow_id == r.workflow_id && n.run_id == r.run_id && n.activity_id == r.activity_id)
                .filter(|n| n.attempt > r.attempt)
                .map(|n| n.attempt)
                .min()?;
            Some(DuplicateExecution {
                workflow_id: r.workflow_id.clone(),
                activity_id: r.activity_id.clone(),
                activity_type: r.activity_type.clone(),
                lost_attempt: r.attempt,
                rerun_attempt: rerun,
                source: "wire",
            })
        })
        .collect()
}

/// Activities whose attempt before the last timed out while a fault killed, stopped, restarted
/// or replaced the workers (see [`DuplicateExecution::source`]).
fn duplicates_in_history<'a>(
    activities: impl Iterator<Item = &'a ActivityExecution>,
    rules: &[InfraRule],
    infra: &[InfraEvent],
) -> Vec<DuplicateExecution> {
    let on_workers: Vec<InfraEvent> = infra
        .iter()
        .filter(|e| {
            rules
                .iter()
                .any(|r| r.id == e.id && r.action.fault().needs() == Capability::CrashWorker)
        })
        .cloned()
        .collect();
    let windows = verify::fault_windows(&on_workers);
    activities
        .filter(|a| a.attempts >= 2 && !a.retry_never_started)
        .filter(|a| {
            a.last_failure.as_ref().is_some_and(|f| {
                matches!(f.kind, crate::failure::FailureKind::Timeout(_)) || cut_by_shutdown(&f.message)
            })
        })
        .filter(|a| {
            let last = a.last_started_at.unwrap_or(a.scheduled_at);
            windows.iter().any(|(from, _)| a.scheduled_at <= *from && *from <= last)
        })
        .map(|a| DuplicateExecution {
            workflow_id: a.workflow_id.clone(),
            activity_id: a.activity_id.clone(),
            activity_type: a.activity_type.clone(),
            lost_attempt: a.attempts - 1,
            rerun_attempt: a.attempts,
            source: "history",
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::UpstreamEvent;

    fn attempt(n: u32, answer: Option<Answer>, upstream: Vec<UpstreamEvent>) -> AttemptRecord {
        AttemptRecord {
            workflow_id: "wf".into(),
            run_id: "run".into(),
            activity_id: "1".into(),
            activity_type: "charge".into(),
            attempt: n,
            task_ms: u64::from(n) * 1000,
            eager: false,
            delivered: true,
            deadline_ms: None,
            injected: vec![],
            plan_error: None,
            answered_ms: None,
            answer,
            heartbeats_forwarded: 0,
            heartbeats_swallowed: 0,
            upstream,
        }
    }

    #[test]
    fn an_attempt_failed_by_its_worker_shutting_down_and_run_again_is_a_duplicate() {
        let shutdown = Answer::Failed {
            failure_type: "WorkerShutdown".into(),
            message: "Worker is shutting down and this activity did not complete in time".into(),
        };
        let declined = Answer::Failed {
            failure_type: "CardDeclined".into(),
            message: "declined".into(),
        };
        let wire = [
            attempt(1, Some(shutdown), vec![]),
            attempt(2, Some(declined), vec![]),
            attempt(3, Some(Answer::Completed), vec![]),
        ];
        let found: Vec<(u32, u32)> = duplicates_on_the_wire(&wire)
            .iter()
            .map(|d| (d.lost_attempt, d.rerun_attempt))
            .collect();
        assert_eq!(found, [(1, 2)]);
    }

    #[test]
    fn an_attempt_lost_with_its_worker_and_run_again_is_a_duplicate() {
        let gone = UpstreamEvent {
            at_ms: 1_500,
            sent: Sent::DroppedWorkerGone {
                call: "RespondActivityTaskCompleted".into(),
            },
            status: "dropped".into(),
            tries: 0,
            answered: false,
        };
        // Attempt 1 never answered, attempt 2's answer died with its worker, attempt 3 completed.
        let wire = [
            attempt(1, None, vec![]),
            attempt(2, Some(Answer::Completed), vec![gone]),
            attempt(3, Some(Answer::Completed), vec![]),
        ];
        let found: Vec<(u32, u32)> = duplicates_on_the_wire(&wire)
            .iter()
            .map(|d| (d.lost_attempt, d.rerun_attempt))
            .collect();
        assert_eq!(found, [(1, 2), (2, 3)]);
        // The last attempt, never answered, was not run again.
        assert!(
            duplicates_on_the_wire(
                &wire[2..]
                    .iter()
                    .cloned()
                    .chain([attempt(4, None, vec![])])
                    .collect::<Vec<_>>()
            )
            .is_empty()
        );
    }

    #[test]
    fn latencies_are_summed_up_by_median_and_maximum() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect();
        assert_eq!(
            Latencies::of(ms(&[40, 10, 30, 20])),
            Some(Latencies {
                count: 4,
                p50_ms: 20,
                max_ms: 40
            })
        );
        assert_eq!(Latencies::of(vec![]), None);
    }

    #[test]
    fn refusals_are_grouped_by_method_and_code_with_their_cost() {
        let refused = |method: &str, cost: Option<u64>| CallEvent {
            rule: Some(1),
            at_unix_ms: 0,
            workflow_id: None,
            what: CallEffect::Refused {
                method: method.into(),
                code: 8,
                retried_after_ms: cost,
            },
        };
        let replay = CallEvent {
            rule: None,
            at_unix_ms: 0,
            workflow_id: Some("wf".into()),
            what: CallEffect::Replay { events: 12 },
        };
        let calls = [
            refused("PollActivityTaskQueue", Some(100)),
            refused("PollActivityTaskQueue", Some(300)),
            refused("PollWorkflowTaskQueue", None),
            replay,
        ];
        let o = Observations::of(&Observed {
            rules: &[],
            histories: None,
            infra: &[],
            calls: &calls,
            wire: &[],
            backlog: &[],
        });
        assert_eq!(o.replays, 1);
        let grouped: Vec<(&str, u32, u64, u64)> = o
            .rpc_errors
            .iter()
            .map(|e| (e.method.as_str(), e.count, e.cost_ms_total, e.cost_ms_max))
            .collect();
        assert_eq!(
            grouped,
            [
                ("PollActivityTaskQueue", 2, 400, 300),
                ("PollWorkflowTaskQueue", 1, 0, 0)
            ]
        );
        assert_eq!(
            o.phrases(),
            [
                "1 replay(s)",
                "PollActivityTaskQueue refused 2× (code 8; cost 400 ms, at most 300 ms)",
                "PollWorkflowTaskQueue refused 1× (code 8; cost 0 ms, at most 0 ms)"
            ]
        );
    }
}
