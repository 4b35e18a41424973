//! Checks a plan's expectations against the histories of its workflow and child workflows.
//!
//! Every check says what was expected, what history shows, and the event that shows it.

use crate::{
    failure::{FailureKind, TimeoutKind},
    faults::{FaultPlan, FaultRule},
    history::{ActivityClose, ActivityExecution, Histories, RetryState, WorkflowClose},
    infra::InfraEvent,
    plan::{Outcome, Plan, WorkflowSpec},
    wire::{Answer, AttemptRecord, Sent, WireEffect},
};
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

mod infra;
mod tasks;

pub use tasks::{drain, outage};

/// One verified expectation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    /// What was checked, e.g. `outcome` or `attempts[risky]`.
    pub name: String,
    /// Whether history agrees.
    pub passed: bool,
    /// The expectation.
    pub expected: String,
    /// What history shows.
    pub observed: String,
    /// Where history shows it: workflow id and event id.
    pub evidence: Option<Evidence>,
}

/// A pointer into a workflow history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evidence {
    /// Workflow whose history holds the event.
    pub workflow_id: String,
    /// The event.
    pub event_id: i64,
}

impl Evidence {
    fn at(workflow_id: &str, event_id: Option<i64>) -> Option<Self> {
        event_id.map(|event_id| Self {
            workflow_id: workflow_id.to_owned(),
            event_id,
        })
    }
}

/// How the scenario's workflow ended, read from history. For the demo `resilient` workflow a
/// completion tells which path it took (its fallbacks are its own activities).
pub fn outcome(workflow: &WorkflowSpec, h: &Histories) -> Outcome {
    match &h.root.close {
        Some(WorkflowClose::Completed { .. }) => {
            let ran = |t: &str| h.root.activities.iter().any(|a| a.activity_type == t);
            let resilient = matches!(workflow, WorkflowSpec::Resilient(_));
            if resilient && ran("fallback_b") {
                Outcome::FallbackB
            } else if resilient && ran("fallback_a") {
                Outcome::FallbackA
            } else {
                Outcome::Completed
            }
        }
        Some(WorkflowClose::Failed { .. }) => Outcome::Failed,
        Some(WorkflowClose::TimedOut) => Outcome::TimedOut,
        Some(WorkflowClose::Canceled) => Outcome::Canceled,
        Some(WorkflowClose::Terminated) => Outcome::Terminated,
        Some(WorkflowClose::ContinuedAsNew) | None => Outcome::Stuck,
    }
}

/// The workflow's result value: the `value` field for the demo `resilient` workflow, the whole
/// result otherwise.
pub fn result_value(workflow: &WorkflowSpec, h: &Histories) -> Option<serde_json::Value> {
    match &h.root.close {
        Some(WorkflowClose::Completed { result }) => match workflow {
            WorkflowSpec::Resilient(_) => Some(result.get("value").cloned().unwrap_or(result.clone())),
            _ => Some(result.clone()),
        },
        _ => None,
    }
}

/// Verifies every expectation, that every fault left evidence of firing (in history and, when the
/// wire proxy injected the faults, in its attempt log `wire`), and that every infrastructure
/// fault was applied. `wire_gap` says why the proxy's log is missing for faults that went on the
/// wire (a deployed proxy dropped or could not give it): the fault checks then rest on history
/// and say so. `backlog` holds the workflows a `workers_down` started while the workers were
/// down: each must complete (the `backlog` check, whenever there are any).
pub fn verify(
    plan: &Plan,
    h: &Histories,
    infra: &[InfraEvent],
    wire: &[AttemptRecord],
    wire_gap: Option<&str>,
    backlog: &[Histories],
) -> Vec<Check> {
    let root = &h.root;
    let close_evidence = Evidence::at(&root.workflow_id, root.close_event_id);
    let mut checks = Vec::new();
    let e = &plan.expect;
    if let Some(expected) = e.outcome {
        let observed = outcome(&plan.workflow, h);
        checks.push(Check {
            name: "outcome".into(),
            passed: observed == expected,
            expected: expected.to_string(),
            observed: describe_close(&plan.workflow, h),
            evidence: close_evidence.clone(),
        });
        if matches!(observed, Outcome::FallbackA | Outcome::FallbackB) {
            checks.push(fallback_after_exhaustion(h, observed));
        }
    }
    if let Some(expected) = &e.result {
        let observed = result_value(&plan.workflow, h);
        checks.push(Check {
            name: "result".into(),
            passed: observed.as_ref().is_some_and(|o| json_equal(o, expected)),
            expected: expected.to_string(),
            observed: observed.map_or_else(|| "no result".into(), |o| o.to_string()),
            evidence: close_evidence.clone(),
        });
    }
    for (activity, expected) in &e.attempts {
        let last = h.activities().filter(|a| &a.activity_type == activity).last();
        let observed = h.attempts_of(activity);
        let exact = h.attempts_exact_of(activity);
        checks.push(Check {
            name: format!("attempts[{activity}]"),
            passed: exact && observed == *expected,
            expected: expected.to_string(),
            observed: match (last, exact) {
                (None, _) => format!("{activity} {}", never_scheduled(h)),
                (Some(_), true) => observed.to_string(),
                (Some(_), false) => format!(
                    "at least {observed}: {activity} timed out waiting for a retry that never started, and history \
                     records no attempt number then (only the last failure); run the worker behind the wire proxy \
                     for the exact count"
                ),
            },
            evidence: last.and_then(|a| Evidence::at(&a.workflow_id, a.close_event_id.or(Some(a.scheduled_event_id)))),
        });
    }
    if let Some(expected) = &e.failure {
        checks.push(failure_seen(h, expected, wire));
    }
    if let Some(text) = &e.error_contains {
        let message = match &root.close {
            Some(WorkflowClose::Failed { message, .. }) => message.clone(),
            _ => String::new(),
        };
        checks.push(Check {
            name: "error_contains".into(),
            passed: message.contains(text.as_str()),
            expected: format!("failure message containing {text:?}"),
            observed: if message.is_empty() {
                "no workflow failure".into()
            } else {
                message
            },
            evidence: close_evidence.clone(),
        });
    }
    if let Some(budget) = e.time_budget {
        // The workflow's own time: a first task that waited for a busy worker (or harness, or
        // server) is not the workflow being slow.
        let faults = fault_windows(infra);
        let took = h.own_duration(&faults);
        let waited = h.first_task_waits(&faults);
        let waited = match (waited >= std::time::Duration::from_millis(500), root.duration()) {
            (true, Some(all)) => format!(
                " of its own ({} in all, less {} it and its children waited for a worker to take their first \
                 workflow task)",
                fmt_ms(all),
                fmt_ms(waited)
            ),
            _ => String::new(),
        };
        checks.push(Check {
            name: "time_budget".into(),
            passed: took.is_some_and(|t| t <= budget),
            expected: format!("closed within {}", humantime::format_duration(budget)),
            observed: took.map_or_else(|| "not closed".into(), |t| format!("took {}{waited}", fmt_ms(t))),
            evidence: close_evidence,
        });
    }
    if let Some(expected) = &e.workflow_task_failures {
        checks.extend(tasks::task_failures(expected, h));
    }
    if let Some(expected) = e.workflow_task_timeouts {
        checks.push(tasks::task_timeouts(expected, h));
    }
    if let Some(within) = e.drain_within {
        let drain = drain(&plan.infra, infra, h, backlog);
        checks.push(tasks::drain_within(within, drain.as_ref(), root.started_at));
    }
    if !backlog.is_empty() {
        checks.push(tasks::backlog(backlog));
    }
    for rule in &plan.faults.rules {
        let mut check = fault_fired(rule, &plan.faults, h);
        if let Some(gap) = wire_gap {
            check.observed = format!("{}; {gap}, so this rests on history alone", check.observed);
        } else if !wire.is_empty() {
            wire_evidence(&mut check, rule, &plan.faults, h, wire);
        } else if matches!(plan.workflow, WorkflowSpec::User(_)) && !check.passed {
            check.observed.push_str(
                " (the harness saw none of the worker's calls: faults reach your worker only when it \
                 connects through the harness's proxy, `{address}` of a `[worker]` or `chaos proxy`)",
            );
        }
        checks.push(check);
    }
    checks.extend(
        infra
            .iter()
            .map(|event| infra::infra_check(event, &plan.infra, h, wire)),
    );
    checks
}

/// When each applied infrastructure fault was on, by the harness's clock.
pub fn fault_windows(infra: &[InfraEvent]) -> Vec<(SystemTime, SystemTime)> {
    infra
        .iter()
        .filter_map(|e| {
            let from = UNIX_EPOCH + std::time::Duration::from_millis(e.at_unix_ms?);
            let lasted = e.ended_ms?.saturating_sub(e.started_ms?);
            Some((from, from + std::time::Duration::from_millis(lasted)))
        })
        .collect()
}

fn fmt_ms(d: std::time::Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn describe_close(workflow: &WorkflowSpec, h: &Histories) -> String {
    match &h.root.close {
        None => "still running (stuck)".into(),
        Some(WorkflowClose::Failed { message, .. }) => format!("failed: {message}"),
        Some(WorkflowClose::ContinuedAsNew) => "stuck: continued as new".into(),
        Some(_) => outcome(workflow, h).to_string(),
    }
}

fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

/// A fallback must run only once the risky activity was closed for good.
fn fallback_after_exhaustion(h: &Histories, outcome: Outcome) -> Check {
    let fallback_type = if outcome == Outcome::FallbackA {
        "fallback_a"
    } else {
        "fallback_b"
    };
    let risky = h.root.activities.iter().find(|a| a.activity_type == "risky");
    let fallback = h.root.activities.iter().find(|a| a.activity_type == fallback_type);
    let (passed, observed, event) = match (risky, fallback) {
        (Some(r), Some(f)) => match (&r.close, r.close_event_id) {
            (
                Some(ActivityClose::Failed { retry_state, .. } | ActivityClose::TimedOut { retry_state, .. }),
                Some(closed),
            ) => (
                closed < f.scheduled_event_id,
                format!(
                    "risky closed at event {closed} ({retry_state}, {} attempts); {fallback_type} scheduled at event {}",
                    r.attempts, f.scheduled_event_id
                ),
                Some(f.scheduled_event_id),
            ),
            _ => (
                false,
                format!("{fallback_type} ran but risky did not fail"),
                Some(f.scheduled_event_id),
            ),
        },
        _ => (false, format!("risky or {fallback_type} missing from history"), None),
    };
    Check {
        name: "fallback after retries ended".into(),
        passed,
        expected: format!("{fallback_type} scheduled only after risky's final failure"),
        observed,
        evidence: Evidence::at(&h.root.workflow_id, event),
    }
}

/// A failure kind among the activity failures history keeps (the last ones of each activity) or,
/// for an application error, among the attempts the wire proxy saw fail (injected or answered).
fn failure_seen(h: &Histories, expected: &FailureKind, wire: &[AttemptRecord]) -> Check {
    let mut seen = Vec::new();
    let mut hit = None;
    for act in h.activities() {
        for (attempt, f) in act.failures() {
            if &f.kind == expected && hit.is_none() {
                hit = Evidence::at(&act.workflow_id, Some(f.event_id));
            }
            seen.push(format!("{} {attempt}: {}", act.activity_type, f.kind));
        }
    }
    let on_the_wire = match (expected, &hit) {
        (FailureKind::Error(wanted), None) => wire.iter().find(|r| wire_error_types(r).any(|t| t == wanted)),
        _ => None,
    };
    let cut = match (expected, &hit) {
        (FailureKind::Timeout(TimeoutKind::StartToClose), None) => h.activities().find_map(cut_at_start_to_close),
        _ => None,
    };
    let mut observed = if seen.is_empty() {
        "no activity failures".to_owned()
    } else {
        seen.join("; ")
    };
    if let Some(r) = on_the_wire {
        observed = format!(
            "{observed}; the wire proxy's log shows {} attempt {} failed with it (history keeps only the last failure)",
            r.activity_type, r.attempt
        );
    }
    if let Some((_, why)) = &cut {
        observed = format!("{observed}; {why}");
    }
    Check {
        name: "failure".into(),
        passed: hit.is_some() || on_the_wire.is_some() || cut.is_some(),
        expected: expected.to_string(),
        observed,
        evidence: hit.or_else(|| cut.and_then(|(evidence, _)| evidence)),
    }
}

/// An attempt cut off by its start-to-close timeout that the server recorded as a
/// schedule-to-close timeout, as it does when no retry fits in what is left of schedule-to-close:
/// the timeout came exactly one start-to-close after the attempt started. With the event that
/// shows it and what to say.
fn cut_at_start_to_close(act: &ActivityExecution) -> Option<(Option<Evidence>, String)> {
    let Some(ActivityClose::TimedOut { failure, retry_state }) = &act.close else {
        return None;
    };
    let start_to_close = act.start_to_close?;
    let took = act.closed_at?.duration_since(act.last_started_at?).ok()?;
    // The server's timer fires on time; a schedule-to-close cut would come sooner.
    let on_time = took + std::time::Duration::from_millis(100) >= start_to_close;
    let cut = failure.kind == FailureKind::Timeout(TimeoutKind::ScheduleToClose)
        && *retry_state == RetryState::Timeout
        && on_time;
    cut.then(|| {
        let why = format!(
            "{} attempt {} was cut off by its start-to-close timeout ({}, after {}), which the server records as \
             timeout:schedule_to_close because no retry fitted in what was left of the schedule-to-close timeout",
            act.activity_type,
            act.attempts,
            humantime::format_duration(start_to_close),
            fmt_ms(took)
        );
        (Evidence::at(&act.workflow_id, act.close_event_id), why)
    })
}

/// The application error types an attempt failed with on the wire: injected upstream, or the
/// worker's own answer.
fn wire_error_types(r: &AttemptRecord) -> impl Iterator<Item = &str> {
    let injected = r.injected.iter().filter_map(|i| match &i.effect {
        WireEffect::Fail { error_type, .. } => Some(error_type.as_str()),
        _ => None,
    });
    let answered = match &r.answer {
        Some(Answer::Failed { failure_type, .. }) => Some(failure_type.as_str()),
        _ => None,
    };
    injected.chain(answered)
}

/// Proves from history that a fault fired: the attempts it targets ran, and where history keeps
/// the failure of such an attempt, that failure is the one the fault produces.
fn fault_fired(rule: &FaultRule, plan: &FaultPlan, h: &Histories) -> Check {
    let name = format!("fault #{} fired", rule.id);
    let expected = rule.describe();
    let marker = rule.marker();
    let mut fired_somewhere = false;
    let mut contradiction = None;
    let mut proof = None;
    let mut notes = Vec::new();
    let mut selected_but_not_drawn = false;
    for act in h.activities().filter(|a| rule.targets(&a.activity_type)) {
        let fired: Vec<u32> = act
            .attempt_keys()
            .filter(|key| plan.fires(rule, key))
            .map(|key| key.attempt)
            .collect();
        selected_but_not_drawn |= fired.is_empty() && (1..=act.attempts).any(|a| rule.attempts.matches(a));
        if fired.is_empty() {
            notes.push(format!(
                "{} ran {} attempt(s), none targeted",
                act.activity_type, act.attempts
            ));
            continue;
        }
        fired_somewhere = true;
        let fault = rule.action.fault();
        for (attempt, failure) in act.failures() {
            let Some(attempt) = attempt.attempt().filter(|a| fired.contains(a)) else {
                continue;
            };
            if fault.explains(&failure.kind, &failure.message, &marker) {
                proof.get_or_insert((act, failure.event_id, format!("attempt {attempt}: {}", failure.message)));
            } else {
                contradiction.get_or_insert((
                    act,
                    failure.event_id,
                    format!(
                        "attempt {attempt} shows {} ({}), not this fault",
                        failure.kind, failure.message
                    ),
                ));
            }
        }
        if matches!(act.close, Some(ActivityClose::Completed)) && fired.contains(&act.attempts) {
            let took = act
                .closed_at
                .zip(act.last_started_at)
                .and_then(|(c, s)| c.duration_since(s).ok());
            if took.is_some_and(|t| fault.explains_completed_attempt(t)) {
                proof.get_or_insert((
                    act,
                    act.close_event_id.unwrap_or_default(),
                    format!(
                        "attempt {} completed after {}",
                        act.attempts,
                        fmt_ms(took.unwrap_or_default())
                    ),
                ));
            } else {
                contradiction.get_or_insert((
                    act,
                    act.close_event_id.unwrap_or_default(),
                    format!(
                        "attempt {} completed normally, though the fault should have fired on it",
                        act.attempts
                    ),
                ));
            }
        }
        notes.push(format!(
            "{} attempts {:?} targeted of {}",
            act.activity_type, fired, act.attempts
        ));
    }
    let (passed, observed, evidence) = match (fired_somewhere, contradiction, proof) {
        (false, ..) => {
            let why = match rule.probability {
                Some(p) if selected_but_not_drawn => format!(
                    "; with probability {p} and seed {} the draw missed every targeted attempt: \
                     try another `seed` (or `--seed`) or a higher `probability`",
                    plan.seed
                ),
                _ => String::new(),
            };
            (false, format!("never fired: {}{why}", or_none(rule, &notes, h)), None)
        }
        (true, Some((act, event, why)), _) => (false, why, Evidence::at(&act.workflow_id, Some(event))),
        (true, None, Some((act, event, why))) => (true, why, Evidence::at(&act.workflow_id, Some(event))),
        // History keeps only the last two attempts' failures; earlier ones show in the count.
        (true, None, None) => (
            true,
            format!(
                "{} (failures of earlier attempts are not kept in history)",
                or_none(rule, &notes, h)
            ),
            None,
        ),
    };
    Check {
        name,
        passed,
        expected,
        observed,
        evidence,
    }
}

/// Adds the wire proxy's evidence to a fault's check: every attempt history counts that the
/// rule targets must be in the proxy's log with this rule among its injections.
fn wire_evidence(check: &mut Check, rule: &FaultRule, plan: &FaultPlan, h: &Histories, wire: &[AttemptRecord]) {
    let mut injected = Vec::new();
    let mut missing = Vec::new();
    let mut notes = Vec::new();
    for act in h.activities().filter(|a| rule.targets(&a.activity_type)) {
        for key in act.attempt_keys().filter(|key| plan.fires(rule, key)) {
            let attempt = key.attempt;
            let record = wire
                .iter()
                .find(|r| r.workflow_id == act.workflow_id && r.activity_id == act.activity_id && r.attempt == attempt);
            let label = format!("{} attempt {attempt}", act.activity_type);
            match record {
                Some(r) if r.injected.iter().any(|i| i.rule == rule.id) => {
                    match undelivered(r) {
                        Some(Undelivered::Failure(why)) => {
                            missing.push(format!("{label}: the fault was injected, but {why}"));
                            continue;
                        }
                        Some(Undelivered::HeldAnswer(why)) => notes.push(format!("on {label} {why}")),
                        None => {}
                    }
                    injected.push(label);
                }
                Some(r) => match &r.plan_error {
                    Some(e) => missing.push(format!(
                        "{label} went through the proxy without faults: its fault plan could not be read ({e})"
                    )),
                    None => missing.push(format!("{label} went through the proxy without this fault")),
                },
                None => missing.push(format!("{label} is not in the proxy's log")),
            }
        }
    }
    if !missing.is_empty() {
        check.passed = false;
        check.observed = format!("{}; the wire proxy's log: {}", check.observed, missing.join("; "));
    } else if !injected.is_empty() {
        check.observed = format!(
            "{}; the wire proxy's log shows it injected on {}",
            check.observed,
            injected.join(", ")
        );
    }
    if !notes.is_empty() {
        check.observed = format!("{}; {}", check.observed, notes.join("; "));
    }
}

/// A call the proxy made for an attempt that never reached the server.
enum Undelivered {
    /// The injected failure: the fault did not take effect (the attempt ended some other way).
    Failure(String),
    /// The worker's answer a `delay` held: the delay did its part, and the attempt timed out.
    HeldAnswer(String),
}

/// What went wrong with a call the proxy made for an attempt (its injected failure, or an answer
/// it held and sent on late), if one failed for good.
fn undelivered(record: &AttemptRecord) -> Option<Undelivered> {
    // The worker's own calls go up as it sends them, and it retries them itself; the proxy holds
    // (and sends on late, retrying) only a delayed answer.
    let held = record
        .injected
        .iter()
        .any(|i| matches!(i.effect, WireEffect::Delay { .. }));
    record.upstream.iter().find_map(|event| {
        let tries = match event.tries {
            1 => String::new(),
            n => format!(" after {n} tries"),
        };
        match &event.sent {
            Sent::InjectedFailure { .. } if event.status != "ok" => Some(Undelivered::Failure(format!(
                "the proxy's RespondActivityTaskFailed never reached the server{tries} ({}), so the attempt \
                 ended some other way",
                event.status
            ))),
            Sent::Forwarded { call } if !event.answered && held => Some(Undelivered::HeldAnswer(format!(
                "the worker's {call}, held by the proxy, never reached the server{tries} ({}), so the \
                 attempt ended by its timeout",
                event.status
            ))),
            _ => None,
        }
    })
}

/// The notes, or that the targeted activity never ran, naming those that did (a typo shows), or
/// that it ran as a local activity.
fn or_none(rule: &FaultRule, notes: &[String], h: &Histories) -> String {
    if !notes.is_empty() {
        return notes.join("; ");
    }
    if let Some(local) = h.all().flat_map(|f| &f.local_activities).find(|t| rule.targets(t)) {
        return format!(
            "{local} ran as a local activity: local activities run inside the workflow task, with no task of \
             their own, so they never reach the wire; aim the fault at a regular activity"
        );
    }
    format!("the targeted activity {}", never_scheduled(h))
}

/// "was never scheduled", naming the activity types that were (a typo shows).
fn never_scheduled(h: &Histories) -> String {
    let mut ran: Vec<&str> = h.activities().map(|a| a.activity_type.as_str()).collect();
    ran.sort_unstable();
    ran.dedup();
    match ran.is_empty() {
        true => "was never scheduled (no activity was)".into(),
        false => format!("was never scheduled (these were: {})", ran.join(", ")),
    }
}
