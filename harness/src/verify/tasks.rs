//! Checks of what the workers went through: workflow task failures and timeouts, and for an
//! outage of every worker (`workers_down`), that its backlog was not lost and how fast it drained.

use super::{Check, Evidence, fmt_ms};
use crate::{
    history::{Drain, Histories, HistoryFacts, WorkflowClose},
    infra::{InfraAction, InfraEvent, InfraOutcome, InfraRule},
    plan::TaskFailureCount,
};
use std::time::{Duration, SystemTime};

/// The `workflow_task_failures` checks: the `WorkflowTaskFailed` events of the workflow and its
/// children, in all (`workflow_task_failures`) or by cause (`workflow_task_failures[<cause>]`).
pub(super) fn task_failures(expected: &TaskFailureCount, h: &Histories) -> Vec<Check> {
    let failures: Vec<(&HistoryFacts, &crate::history::WorkflowTaskFailure)> = h
        .all()
        .flat_map(|f| f.workflow_task_failures.iter().map(move |w| (f, w)))
        .collect();
    let check = |name: String, cause: Option<&str>, expected: u32| {
        let seen: Vec<_> = failures
            .iter()
            .filter(|(_, w)| cause.is_none_or(|c| w.cause == c))
            .collect();
        let listed: Vec<String> = seen
            .iter()
            .map(|(f, w)| {
                let attempts = match w.attempts {
                    1 => String::new(),
                    n => format!(", {n} attempts in a row"),
                };
                format!(
                    "event {} of {}: {}{attempts}: {}",
                    w.event_id, f.workflow_id, w.cause, w.message
                )
            })
            .collect();
        let what = match cause {
            Some(c) => format!("WorkflowTaskFailed event(s) with cause {c}"),
            None => "WorkflowTaskFailed event(s)".into(),
        };
        Check {
            name,
            passed: seen.len() == expected as usize,
            expected: format!("{expected} {what}"),
            observed: match listed.is_empty() {
                true => format!("none{}", others(&failures, cause)),
                false => format!("{}: {}", listed.len(), listed.join("; ")),
            },
            evidence: seen
                .first()
                .and_then(|(f, w)| Evidence::at(&f.workflow_id, Some(w.event_id))),
        }
    };
    match expected {
        TaskFailureCount::Total(n) => vec![check("workflow_task_failures".into(), None, *n)],
        TaskFailureCount::ByCause(causes) => causes
            .iter()
            .map(|(cause, n)| check(format!("workflow_task_failures[{cause}]"), Some(cause), *n))
            .collect(),
    }
}

/// ", though N failed with other causes: ...", when a cause was asked for and others were seen.
fn others(failures: &[(&HistoryFacts, &crate::history::WorkflowTaskFailure)], cause: Option<&str>) -> String {
    let mut causes: Vec<&str> = failures.iter().map(|(_, w)| w.cause.as_str()).collect();
    causes.dedup();
    match (cause, causes.is_empty()) {
        (Some(_), false) => format!(" (the causes seen: {})", causes.join(", ")),
        _ => String::new(),
    }
}

/// The `workflow_task_timeouts` check: the `WorkflowTaskTimedOut` events of the workflow and its
/// children.
pub(super) fn task_timeouts(expected: u32, h: &Histories) -> Check {
    let seen: Vec<(&HistoryFacts, &crate::history::WorkflowTaskTimeout)> = h
        .all()
        .flat_map(|f| f.workflow_task_timeouts.iter().map(move |t| (f, t)))
        .collect();
    let listed: Vec<String> = seen
        .iter()
        .map(|(f, t)| format!("event {} of {}: {}", t.event_id, f.workflow_id, t.timeout))
        .collect();
    Check {
        name: "workflow_task_timeouts".into(),
        passed: seen.len() == expected as usize,
        expected: format!("{expected} WorkflowTaskTimedOut event(s)"),
        observed: match listed.is_empty() {
            true => "none".into(),
            false => format!("{}: {}", listed.len(), listed.join("; ")),
        },
        evidence: seen
            .first()
            .and_then(|(f, t)| Evidence::at(&f.workflow_id, Some(t.event_id))),
    }
}

/// The window of the first applied `workers_down` on the server's clock: from its start to the
/// moment the harness began to start the workers again (its start plus its duration; both
/// milliseconds after the root workflow started, by the harness), placed from the root's start
/// in history.
pub fn outage(rules: &[InfraRule], infra: &[InfraEvent], h: &Histories) -> Option<(SystemTime, SystemTime)> {
    let start = h.root.started_at?;
    infra
        .iter()
        .filter(|e| matches!(e.outcome, InfraOutcome::Applied(_)))
        .find_map(|e| {
            let rule = rules
                .iter()
                .find(|r| r.id == e.id && matches!(r.action, InfraAction::WorkersDown(_)))?;
            let from = start + Duration::from_millis(e.started_ms?);
            Some((from, from + rule.duration))
        })
}

/// How the backlog of the scenario's `workers_down` drained, if one was applied.
pub fn drain(rules: &[InfraRule], infra: &[InfraEvent], h: &Histories, backlog: &[Histories]) -> Option<Drain> {
    outage(rules, infra, h).map(|window| Drain::of(h, backlog, window))
}

/// The `drain_within` check: the backlog of the `workers_down` drained within `within` of the
/// workers' return (see [`Drain`]).
pub(super) fn drain_within(within: Duration, drain: Option<&Drain>, start: Option<SystemTime>) -> Check {
    let expected = format!(
        "the tasks that waited out the workers_down all taken within {} of the workers' return",
        humantime::format_duration(within)
    );
    let since = |at: Option<SystemTime>| {
        at.zip(start)
            .and_then(|(at, start)| at.duration_since(start).ok())
            .map_or_else(|| "?".into(), |d| format!("{} ms", d.as_millis()))
    };
    let (passed, observed, evidence) = match drain {
        None => (
            false,
            "no workers_down was applied, so nothing drained".to_owned(),
            None,
        ),
        Some(d) if d.tasks.is_empty() => (true, "no task waited for the workers".to_owned(), None),
        Some(d) => match (d.duration(), d.last()) {
            (Some(took), Some(last)) => (
                took <= within,
                format!(
                    "drained in {}: {} task(s) waited; the workers were back {} after the workflow started, and \
                     the last of them ({} of {}) was taken {} after it",
                    fmt_ms(took),
                    d.tasks.len(),
                    since(d.back_at),
                    last.what,
                    last.workflow_id,
                    since(last.started_at)
                ),
                Evidence::at(&last.workflow_id, Some(last.event_id)),
            ),
            _ => {
                let never: Vec<String> = d
                    .never_started()
                    .map(|t| format!("{} of {}", t.what, t.workflow_id))
                    .collect();
                let first = d.never_started().next();
                (
                    false,
                    format!(
                        "never drained: {} of {} waiting task(s) never taken: {}",
                        never.len(),
                        d.tasks.len(),
                        never.join(", ")
                    ),
                    first.and_then(|t| Evidence::at(&t.workflow_id, Some(t.event_id))),
                )
            }
        },
    };
    Check {
        name: "drain_within".into(),
        passed,
        expected,
        observed,
        evidence,
    }
}

/// The `backlog` check: every workflow started while the workers were down completed.
pub(super) fn backlog(backlog: &[Histories]) -> Check {
    let lost: Vec<&HistoryFacts> = backlog
        .iter()
        .map(|b| &b.root)
        .filter(|f| !matches!(f.close, Some(WorkflowClose::Completed { .. })))
        .collect();
    let named: Vec<String> = lost
        .iter()
        .map(|f| {
            let how = match &f.close {
                None => "still running".to_owned(),
                Some(WorkflowClose::Failed { message, .. }) => format!("failed: {message}"),
                Some(close) => close.status().to_string(),
            };
            format!("{} ({how})", f.workflow_id)
        })
        .collect();
    Check {
        name: "backlog".into(),
        passed: lost.is_empty(),
        expected: format!(
            "all {} workflow(s) started while the workers were down completed",
            backlog.len()
        ),
        observed: match named.is_empty() {
            true => format!("{0} of {0} completed", backlog.len()),
            false => format!(
                "{} of {} completed; not: {}",
                backlog.len() - lost.len(),
                backlog.len(),
                named.join(", ")
            ),
        },
        evidence: lost
            .first()
            .and_then(|f| Evidence::at(&f.workflow_id, f.close_event_id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        failure::TimeoutKind,
        history::{WorkflowTaskFailure, WorkflowTaskTimeout},
    };

    fn facts(id: &str) -> HistoryFacts {
        HistoryFacts::from_events(id, &[])
    }

    fn failure(cause: &str, event_id: i64, attempts: u32) -> WorkflowTaskFailure {
        WorkflowTaskFailure {
            cause: cause.into(),
            message: "boom".into(),
            event_id,
            attempts,
        }
    }

    #[test]
    fn workflow_task_failures_are_counted_in_all_and_by_cause_over_the_children() {
        let h = Histories {
            root: HistoryFacts {
                workflow_task_failures: vec![failure("non_deterministic_error", 5, 3)],
                workflow_task_timeouts: vec![WorkflowTaskTimeout {
                    timeout: TimeoutKind::StartToClose,
                    event_id: 9,
                    attempts: 1,
                }],
                ..facts("root")
            },
            children: vec![HistoryFacts {
                workflow_task_failures: vec![failure("workflow_worker_unhandled_failure", 7, 1)],
                ..facts("child")
            }],
        };
        let [total] = task_failures(&TaskFailureCount::Total(2), &h).try_into().unwrap();
        assert!(total.passed, "{total:?}");
        assert_eq!(
            total.observed,
            "2: event 5 of root: non_deterministic_error, 3 attempts in a row: boom; event 7 of child: \
             workflow_worker_unhandled_failure: boom"
        );
        let by_cause = TaskFailureCount::ByCause(vec![
            ("non_deterministic_error".into(), 1),
            ("unhandled_command".into(), 1),
        ]);
        let [found, missing] = task_failures(&by_cause, &h).try_into().unwrap();
        assert_eq!(found.name, "workflow_task_failures[non_deterministic_error]");
        assert!(found.passed);
        assert_eq!(found.evidence, Evidence::at("root", Some(5)));
        assert!(!missing.passed);
        assert_eq!(
            missing.observed,
            "none (the causes seen: non_deterministic_error, workflow_worker_unhandled_failure)"
        );
        let timeouts = task_timeouts(2, &h);
        assert!(!timeouts.passed);
        assert_eq!(timeouts.observed, "1: event 9 of root: start_to_close");
    }

    #[test]
    fn a_backlog_workflow_that_did_not_complete_is_named() {
        let done = |id: &str| Histories {
            root: HistoryFacts {
                close: Some(WorkflowClose::Completed {
                    result: serde_json::Value::Null,
                }),
                ..facts(id)
            },
            children: vec![],
        };
        let running = Histories {
            root: facts("b2"),
            children: vec![],
        };
        assert!(backlog(&[done("b1")]).passed);
        let check = backlog(&[done("b1"), running]);
        assert!(!check.passed);
        assert_eq!(check.observed, "1 of 2 completed; not: b2 (still running)");
        let none = drain_within(Duration::from_secs(1), None, None);
        assert!(!none.passed);
        assert_eq!(none.observed, "no workers_down was applied, so nothing drained");
    }
}
