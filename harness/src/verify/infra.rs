//! Checks of infrastructure faults: each one was applied, and where history can say whether it
//! mattered, that it did. A worker crash aimed at an attempt must have cost that attempt: a crash
//! after the attempt had already answered changes nothing, and such a scenario proves nothing.

use super::{Check, Evidence};
use crate::{
    failure::FailureKind,
    history::{ActivityClose, ActivityExecution, Histories},
    infra::{InfraAction, InfraEvent, InfraOutcome, InfraRule, Trigger},
    wire::{Answer, AttemptRecord, Sent},
};

/// An infrastructure fault as a check: it passes when it was applied and undone without error
/// and, for a worker crash aimed at an attempt, when that attempt did not complete on the
/// killed worker.
pub(super) fn infra_check(event: &InfraEvent, rules: &[InfraRule], h: &Histories, wire: &[AttemptRecord]) -> Check {
    let (mut passed, mut observed) = match (&event.outcome, event.started_ms, event.ended_ms) {
        (InfraOutcome::Applied(what), Some(from), Some(to)) => {
            (true, format!("{what} (from {from} ms to {to} ms after start)"))
        }
        (InfraOutcome::Applied(what), ..) => (true, what.clone()),
        (InfraOutcome::NotTriggered(why) | InfraOutcome::Failed(why), ..) => (false, why.clone()),
    };
    let mut evidence = None;
    let mut expected = event.rule.clone();
    let rule = rules.iter().find(|r| r.id == event.id);
    if let Some(InfraRule {
        action: InfraAction::WorkerCrash(_),
        trigger: Trigger::AttemptStarted { activity, attempt },
        ..
    }) = rule
    {
        expected = format!("{expected}: {activity} attempt {attempt} does not complete on the killed worker");
        if let (true, Some(killed_ms)) = (passed, event.at_unix_ms) {
            let cost = crash_cost(activity, *attempt, killed_ms, h, wire);
            passed = cost.changed_nothing.is_none();
            observed = format!("{observed}; {}", cost.changed_nothing.unwrap_or(cost.lost));
            evidence = cost.evidence;
        }
    }
    Check {
        name: format!("infra #{} applied", event.id),
        passed,
        expected,
        observed,
        evidence,
    }
}

/// What a worker crash did to the attempt it was aimed at.
struct CrashCost {
    /// Why the crash changed nothing, if it did not: the attempt had answered, and the answer
    /// reached the server.
    changed_nothing: Option<String>,
    /// What the attempt lost, as history and the wire log show it.
    lost: String,
    /// The history event that shows it.
    evidence: Option<Evidence>,
}

/// Reads what became of `activity` attempt `attempt`, killed at `killed_ms` (unix ms), from the
/// wire proxy's log (when it saw the attempt) and from history.
fn crash_cost(activity: &str, attempt: u32, killed_ms: u64, h: &Histories, wire: &[AttemptRecord]) -> CrashCost {
    let mut changed_nothing = None;
    let mut lost = Vec::new();
    let mut evidence = None;
    let label = format!("{activity} attempt {attempt}");
    for record in wire
        .iter()
        .filter(|r| r.activity_type == activity && r.attempt == attempt)
    {
        if !record.delivered {
            changed_nothing.get_or_insert(format!(
                "{label} never reached the worker: the wire proxy failed it itself, so the crash cost it nothing"
            ));
            continue;
        }
        let answered_before = record
            .answered_ms
            .filter(|&at| at <= killed_ms)
            .zip(record.answer.as_ref());
        let Some((at, answer)) = answered_before else {
            lost.push(format!(
                "{label} had not answered when its worker was killed (the wire proxy's log)"
            ));
            continue;
        };
        let delivered = record
            .upstream
            .iter()
            .any(|e| matches!(e.sent, Sent::Forwarded { .. }) && e.status == "ok");
        if delivered {
            changed_nothing.get_or_insert(format!(
                "{label} had already answered ({}) {} ms before the kill and the answer reached the server: \
                 the crash changed nothing (aim it at an attempt that is still running, e.g. one the activity \
                 spends longer on)",
                describe(answer),
                killed_ms - at
            ));
        } else if record
            .upstream
            .iter()
            .any(|e| matches!(e.sent, Sent::DroppedWorkerGone { .. }))
        {
            lost.push(format!(
                "{label} had answered ({}), but the wire proxy still held the answer: it was lost with the \
                 dead worker's connection",
                describe(answer)
            ));
        }
    }
    for act in h.activities().filter(|a| a.activity_type == activity) {
        match history_cost(act, attempt) {
            Some(Ok(why)) => lost.push(why),
            Some(Err((why, event))) if changed_nothing.is_none() => {
                evidence = Evidence::at(&act.workflow_id, Some(event));
                changed_nothing = Some(why);
            }
            _ => {}
        }
    }
    if lost.is_empty() {
        lost.push(format!(
            "{label} had started when its worker was killed; neither history nor a wire log can say whether it \
             had answered"
        ));
    }
    CrashCost {
        changed_nothing,
        lost: lost.join("; "),
        evidence,
    }
}

/// What history says became of attempt `attempt` of `act`: `Ok` with what it lost, `Err` with
/// why it had finished before the kill (and the event that shows it), `None` when history cannot
/// tell (it keeps only the last two attempts' failures).
fn history_cost(act: &ActivityExecution, attempt: u32) -> Option<Result<String, (String, i64)>> {
    let label = format!("{} attempt {attempt}", act.activity_type);
    let closing = act.close_event_id.unwrap_or(act.scheduled_event_id);
    let answered = |kind: &FailureKind| {
        format!(
            "{label} failed with {kind} (history) before the kill: its worker had answered, so the crash changed nothing"
        )
    };
    if act.retry_never_started {
        // The last attempt that ran ended with `last_failure`; its retry never started.
        let failure = act
            .last_failure
            .as_ref()
            .filter(|_| act.attempts_exact && act.attempts == attempt)?;
        return Some(match &failure.kind {
            FailureKind::Timeout(kind) => Ok(format!("{label} timed out ({kind}) in history")),
            kind @ FailureKind::Error(_) => Err((answered(kind), failure.event_id)),
        });
    }
    if act.attempts == attempt {
        return match &act.close {
            Some(ActivityClose::Completed) => Some(Err((
                format!(
                    "{label} completed (history): its worker answered before the kill, so the crash changed nothing"
                ),
                closing,
            ))),
            Some(ActivityClose::Failed { failure, .. }) => Some(Err((answered(&failure.kind), closing))),
            Some(ActivityClose::TimedOut { failure, .. }) => {
                Some(Ok(format!("{label} timed out ({}) in history", failure.kind)))
            }
            _ => None,
        };
    }
    if act.attempts == attempt + 1 {
        let failure = act.last_failure.as_ref()?;
        return Some(match &failure.kind {
            FailureKind::Timeout(kind) => Ok(format!(
                "{label} timed out ({kind}) and attempt {} ran (history)",
                attempt + 1
            )),
            kind @ FailureKind::Error(_) => Err((answered(kind), failure.event_id)),
        });
    }
    None
}

fn describe(answer: &Answer) -> String {
    match answer {
        Answer::Completed => "completed".into(),
        Answer::Failed { failure_type, .. } if failure_type.is_empty() => "failed".into(),
        Answer::Failed { failure_type, .. } => format!("failed with {failure_type}"),
        Answer::Canceled => "canceled".into(),
    }
}
