//! `index.html`: one self-contained page (no network fetches) that shows at a glance which
//! scenarios passed and why, with an SVG timeline per scenario drawn from its history.

use super::{RunReport, ScenarioReport};
use crate::{
    failure::FailureKind,
    history::{ActivityClose, ActivityExecution, HistoryFacts, WorkflowClose},
    infra::{CallEffect, CallEvent},
    wire::{Answer, AttemptRecord, Sent, WireEffect},
};
use minijinja::{Environment, context};
use serde::Serialize;
use std::time::{Duration, SystemTime};

const TEMPLATE: &str = include_str!("templates/report.html");

/// Timeline geometry, in pixels.
const WIDTH: f64 = 960.0;
const LABEL_WIDTH: f64 = 170.0;
const ROW_HEIGHT: f64 = 26.0;
const TOP: f64 = 24.0;

pub(super) fn render(report: &RunReport) -> String {
    let mut env = Environment::new();
    env.add_template("report.html", TEMPLATE)
        .expect("the bundled template parses");
    let cards: Vec<Card> = report.scenarios.iter().map(Card::from).collect();
    env.get_template("report.html")
        .and_then(|t| t.render(context! { run => report, cards => cards, verdict => report.verdict() }))
        .unwrap_or_else(|e| format!("<!doctype html><p>cannot render the report: {e}</p>"))
}

/// A scenario as the template shows it.
#[derive(Serialize)]
struct Card<'a> {
    s: &'a ScenarioReport,
    failed_checks: usize,
    timeline: Option<Timeline>,
    /// The scenario's observations, one phrase each.
    observed: Vec<String>,
}

impl<'a> From<&'a ScenarioReport> for Card<'a> {
    fn from(s: &'a ScenarioReport) -> Self {
        Self {
            s,
            failed_checks: s.checks.iter().filter(|c| !c.check.passed).count(),
            timeline: Timeline::of(s),
            observed: s.observations.phrases(),
        }
    }
}

#[derive(Serialize)]
struct Timeline {
    width: f64,
    height: f64,
    axis_y: f64,
    ticks: Vec<Tick>,
    rows: Vec<Row>,
    bands: Vec<Band>,
    close_x: Option<f64>,
}

#[derive(Serialize)]
struct Tick {
    x: f64,
    label: String,
}

#[derive(Serialize)]
struct Row {
    y: f64,
    label: String,
    fallback: bool,
    segments: Vec<Segment>,
    faults: Vec<Marker>,
    /// Instants: a worker started or stopped, a call refused, a workflow task acted on.
    marks: Vec<Mark>,
}

#[derive(Serialize)]
struct Mark {
    x: f64,
    class: &'static str,
    title: String,
}

#[derive(Serialize)]
struct Segment {
    x: f64,
    width: f64,
    class: &'static str,
    title: String,
}

#[derive(Serialize)]
struct Marker {
    x: f64,
    title: String,
}

#[derive(Serialize)]
struct Band {
    x: f64,
    width: f64,
    title: String,
}

impl Timeline {
    fn of(s: &ScenarioReport) -> Option<Self> {
        let h = s.history.as_ref()?;
        let start = h.root.started_at?;
        let mut acts: Vec<(&ActivityExecution, bool)> = h
            .all()
            .flat_map(|w| {
                w.activities
                    .iter()
                    .map(move |a| (a, w.workflow_id != h.root.workflow_id))
            })
            .collect();
        acts.sort_by_key(|(a, _)| a.scheduled_at);
        let end = h
            .root
            .closed_at
            .into_iter()
            .chain(acts.iter().filter_map(|(a, _)| a.closed_at))
            .max()
            .unwrap_or(start);
        let at_ms = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let end = s
            .backlog
            .iter()
            .filter_map(|b| b.root.closed_at)
            .chain(s.worker_events.iter().map(|e| at_ms(e.at_unix_ms)))
            .chain(s.call_events.iter().map(|e| at_ms(e.at_unix_ms)))
            .fold(end, SystemTime::max);
        let infra_end = s.infra_events.iter().filter_map(|e| e.ended_ms).max().unwrap_or(0);
        let total_ms = (ms_between(start, end).max(infra_end)).max(1) as f64;
        let plot = WIDTH - LABEL_WIDTH - 20.0;
        let x_ms = |ms: f64| LABEL_WIDTH + ms / total_ms * plot;
        let x = |t: SystemTime| x_ms(ms_between(start, t) as f64);
        let mut rows: Vec<Row> = acts
            .iter()
            .enumerate()
            .map(|(i, (a, child))| {
                let y = TOP + i as f64 * ROW_HEIGHT;
                let label = if *child {
                    format!(
                        "{} (child {})",
                        a.activity_type,
                        child_suffix(&a.workflow_id, &h.root.workflow_id)
                    )
                } else {
                    a.activity_type.clone()
                };
                Row {
                    y,
                    label,
                    fallback: a.activity_type.starts_with("fallback"),
                    segments: {
                        let seen: Vec<&AttemptRecord> = s
                            .wire_attempts
                            .iter()
                            .filter(|r| r.workflow_id == a.workflow_id && r.activity_id == a.activity_id)
                            .collect();
                        if seen.is_empty() {
                            segments(a, &x, h.root.closed_at.unwrap_or(end))
                        } else {
                            wire_segments(&seen, &x, a.closed_at.unwrap_or(end))
                        }
                    },
                    faults: s
                        .fault_rules
                        .iter()
                        .filter(|r| r.targets(&a.activity_type))
                        .map(|r| Marker {
                            x: x(a.scheduled_at),
                            title: r.describe(),
                        })
                        .collect(),
                    marks: Vec::new(),
                }
            })
            .collect();
        let mut row = |label: String, segments: Vec<Segment>, marks: Vec<Mark>| {
            let y = TOP + rows.len() as f64 * ROW_HEIGHT;
            rows.push(Row {
                y,
                label,
                fallback: false,
                segments,
                faults: Vec::new(),
                marks,
            });
        };
        for b in &s.backlog {
            let label = child_suffix(&b.root.workflow_id, &h.root.workflow_id).to_owned();
            let (segments, marks) = backlog_row(&b.root, &x, end);
            row(label, segments, marks);
        }
        if !s.worker_events.is_empty() {
            let marks = s
                .worker_events
                .iter()
                .map(|e| Mark {
                    x: x(at_ms(e.at_unix_ms)),
                    class: if e.what.starts_with("started") {
                        "mark-start"
                    } else {
                        "mark-stop"
                    },
                    title: format!("worker {}: {}", e.worker, e.what),
                })
                .collect();
            row("workers".into(), Vec::new(), marks);
        }
        if !s.call_events.is_empty() {
            let marks = s
                .call_events
                .iter()
                .map(|e| call_mark(e, x(at_ms(e.at_unix_ms))))
                .collect();
            row("workers' calls".into(), Vec::new(), marks);
        }
        let height = TOP + rows.len().max(1) as f64 * ROW_HEIGHT + 22.0;
        let step = nice_step(total_ms);
        let ticks = (0..)
            .map(|i| i as f64 * step)
            .take_while(|ms| *ms <= total_ms)
            .map(|ms| Tick {
                x: x_ms(ms),
                label: if step >= 1000.0 {
                    format!("{:.0}s", ms / 1000.0)
                } else {
                    format!("{ms:.0}ms")
                },
            })
            .collect();
        let bands = s
            .infra_events
            .iter()
            .filter_map(|e| {
                let (from, to) = (e.started_ms?, e.ended_ms?);
                Some(Band {
                    x: x_ms(from as f64),
                    width: (x_ms(to as f64) - x_ms(from as f64)).max(2.0),
                    title: e.rule.clone(),
                })
            })
            .collect();
        Some(Self {
            width: WIDTH,
            height,
            axis_y: height - 16.0,
            ticks,
            rows,
            bands,
            close_x: h.root.closed_at.map(x),
        })
    }
}

/// A backlog workflow: a bar from its start to its close, and a mark where a worker took its
/// first workflow task.
fn backlog_row(w: &HistoryFacts, x: &impl Fn(SystemTime) -> f64, end: SystemTime) -> (Vec<Segment>, Vec<Mark>) {
    let Some(start) = w.started_at else {
        return (Vec::new(), Vec::new());
    };
    let closed = w.closed_at.unwrap_or(end);
    let (class, what) = match &w.close {
        Some(WorkflowClose::Completed { .. }) => ("ok", "completed".to_owned()),
        Some(close) => ("failed", close.status().to_string()),
        None => ("open", "still running".to_owned()),
    };
    let segment = Segment {
        x: x(start),
        width: (x(closed) - x(start)).max(3.0),
        class,
        title: format!("{}: started while the workers were down; {what}", w.workflow_id),
    };
    let taken = w.first_task_started_at.map(|at| Mark {
        x: x(at),
        class: "mark-start",
        title: format!("first workflow task taken {} ms after the start", ms_between(start, at)),
    });
    (vec![segment], taken.into_iter().collect())
}

/// A call event as a mark: what the wire proxy did (refused a call, failed or withheld a workflow
/// task, dropped a run from the worker's cache) or saw (a replay).
fn call_mark(e: &CallEvent, x: f64) -> Mark {
    let what = match &e.what {
        CallEffect::Refused {
            method,
            code,
            retried_after_ms,
        } => {
            let cost = retried_after_ms.map_or_else(
                || "; the worker never called it again".to_owned(),
                |ms| format!("; called again {ms} ms later"),
            );
            format!("refused {method} with code {code}{cost}")
        }
        CallEffect::TaskFailed { attempt } => format!("workflow task attempt {attempt} failed"),
        CallEffect::TaskWithheld { attempt } => format!("workflow task attempt {attempt} withheld"),
        CallEffect::CacheDropped => "dropped from the worker's cache".to_owned(),
        CallEffect::Replay { events } => format!("replay of {events} events"),
    };
    let rule = e.rule.map(|r| format!("#{r} ")).unwrap_or_default();
    let of = e.workflow_id.as_ref().map(|w| format!(" ({w})")).unwrap_or_default();
    Mark {
        x,
        class: match e.what {
            CallEffect::Replay { .. } => "mark-replay",
            _ => "mark-call",
        },
        title: format!("{rule}{what}{of}"),
    }
}

/// Every attempt as the wire proxy saw it, with its real times: from when the worker got the
/// task (or the proxy failed it upstream) to the worker's answer, or to the attempt's deadline
/// when no answer came in time (a hang, a crash).
fn wire_segments(records: &[&AttemptRecord], x: &impl Fn(SystemTime) -> f64, close: SystemTime) -> Vec<Segment> {
    let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
    let close_ms = ms_between(SystemTime::UNIX_EPOCH, close);
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            // The next attempt's start (or the close) bounds this one, whatever its own deadline.
            let bound = records.get(i + 1).map_or(close_ms, |next| next.task_ms);
            let injected: Vec<String> = r
                .injected
                .iter()
                .map(|i| format!("#{} {}", i.rule, i.effect.describe()))
                .collect();
            let deadline = r.deadline_ms.unwrap_or(bound).min(bound);
            let timed_out = |why: &str| ("timeout", format!("{why}; timed out"), deadline);
            // What reached the server decides the bar: the worker's answer as the proxy passed
            // it on (late, for a delay), or what the proxy did instead.
            let sent = r.upstream.last();
            let (class, what, end) = match (&r.answer, sent.map(|e| (&e.sent, e))) {
                (_, Some((Sent::InjectedFailure { .. }, e))) if e.status == "ok" => {
                    ("failed", "failed upstream by the proxy".to_owned(), e.at_ms)
                }
                (_, Some((Sent::InjectedFailure { .. }, _))) => {
                    timed_out("the proxy's injected failure never reached the server")
                }
                (_, Some((Sent::Withheld { .. }, _))) => timed_out("answer swallowed"),
                (_, Some((Sent::DroppedAtDeadline { .. }, _))) => timed_out("answer held past the deadline"),
                (_, Some((Sent::DroppedWorkerGone { .. }, _))) => {
                    timed_out("answer held, then lost with the dead worker's connection")
                }
                (Some(answer), Some((Sent::Forwarded { .. }, e))) if e.status == "ok" => {
                    let held = match r.injected.iter().any(|i| matches!(i.effect, WireEffect::Delay { .. })) {
                        true => ", answer held",
                        false => "",
                    };
                    match answer {
                        Answer::Completed => ("ok", format!("completed{held}"), e.at_ms),
                        Answer::Failed { failure_type, message } => {
                            ("failed", format!("failed: {failure_type} {message}{held}"), e.at_ms)
                        }
                        Answer::Canceled => ("cancel", format!("cancelled{held}"), e.at_ms),
                    }
                }
                (Some(_), Some((Sent::Forwarded { .. }, e))) => {
                    timed_out(&format!("the answer did not count ({})", e.status))
                }
                (_, _) if !r.delivered => ("failed", "failed upstream by the proxy".to_owned(), r.task_ms),
                (_, _) => timed_out("no answer in time"),
            };
            let injected = if injected.is_empty() {
                String::new()
            } else {
                format!("; injected {}", injected.join(", "))
            };
            Segment {
                x: x(at(r.task_ms)),
                width: (x(at(end)) - x(at(r.task_ms))).max(3.0),
                class,
                title: format!("attempt {} (seen on the wire): {what}{injected}", r.attempt),
            }
        })
        .collect()
}

/// The attempts before the last leave no events, only the last one's start and the previous
/// failure; the timeline says so rather than invent per-attempt bars.
fn segments(a: &ActivityExecution, x: &impl Fn(SystemTime) -> f64, fallback_end: SystemTime) -> Vec<Segment> {
    let mut out = Vec::new();
    if a.retry_never_started {
        let end = a.closed_at.unwrap_or(fallback_end);
        let ran = match a.attempts_exact {
            true => format!("{} attempt(s)", a.attempts),
            false => format!("at least {} attempt(s)", a.attempts),
        };
        let last = a.last_failure.as_ref().map(|f| f.message.as_str()).unwrap_or_default();
        out.push(Segment {
            x: x(a.scheduled_at),
            width: (x(end) - x(a.scheduled_at)).max(3.0),
            class: "timeout",
            title: format!(
                "{ran} (the last one ended with: {last}), then a retry that never started before the activity \
                 timed out (history records no attempt start)"
            ),
        });
        return out;
    }
    let Some(last_start) = a.last_started_at else {
        return out;
    };
    if a.attempts > 1 {
        let (class, why) = match a.last_failure.as_ref().map(|f| &f.kind) {
            Some(FailureKind::Timeout(t)) => ("timeout", format!("{t} timeout")),
            Some(FailureKind::Error(t)) => ("failed", format!("error {t}")),
            None => ("failed", "failure".into()),
        };
        let message = a.last_failure.as_ref().map(|f| f.message.as_str()).unwrap_or_default();
        out.push(Segment {
            x: x(a.scheduled_at),
            width: (x(last_start) - x(a.scheduled_at)).max(2.0),
            class: if class == "timeout" { "retry-timeout" } else { "retry-failed" },
            title: format!(
                "attempts 1–{} and their backoff gaps (history keeps only the last one's start); attempt {} ended with {why}: {message}",
                a.attempts - 1,
                a.attempts - 1
            ),
        });
    }
    let end = a.closed_at.unwrap_or(fallback_end);
    let (class, what) = match &a.close {
        Some(ActivityClose::Completed) => ("ok", "completed".to_owned()),
        Some(ActivityClose::Failed { failure, retry_state }) => (
            "failed",
            format!("failed with {} ({retry_state}): {}", failure.kind, failure.message),
        ),
        Some(ActivityClose::TimedOut { failure, retry_state }) => {
            ("timeout", format!("timed out: {} ({retry_state})", failure.kind))
        }
        Some(ActivityClose::Canceled) => ("cancel", "cancelled".to_owned()),
        None => ("open", "still open".to_owned()),
    };
    out.push(Segment {
        x: x(last_start),
        width: (x(end) - x(last_start)).max(3.0),
        class,
        title: format!("attempt {}: {what}", a.attempts),
    });
    out
}

fn child_suffix<'a>(child: &'a str, root: &str) -> &'a str {
    child
        .strip_prefix(root)
        .map(|s| s.trim_start_matches('-'))
        .unwrap_or(child)
}

fn ms_between(from: SystemTime, to: SystemTime) -> u64 {
    to.duration_since(from).unwrap_or(Duration::ZERO).as_millis() as u64
}

/// A round tick step giving about 6–10 ticks.
fn nice_step(total_ms: f64) -> f64 {
    [
        50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 30000.0, 60000.0,
    ]
    .into_iter()
    .find(|s| total_ms / s <= 10.0)
    .unwrap_or(120_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Injection, UpstreamEvent};

    /// Attempt 1 of `risky` with a delay injected, answered `completed` by the worker, and
    /// `upstream` as what the proxy then did with the answer.
    fn held(sent: Sent, status: &str) -> AttemptRecord {
        AttemptRecord {
            workflow_id: "wf".into(),
            run_id: "run".into(),
            activity_id: "1".into(),
            activity_type: "risky".into(),
            attempt: 1,
            task_ms: 1_000,
            eager: false,
            delivered: true,
            deadline_ms: Some(6_000),
            injected: vec![Injection {
                rule: 1,
                effect: WireEffect::Delay {
                    duration: Duration::from_secs(3),
                },
            }],
            plan_error: None,
            answered_ms: Some(1_010),
            answer: Some(Answer::Completed),
            heartbeats_forwarded: 0,
            heartbeats_swallowed: 0,
            upstream: vec![UpstreamEvent {
                at_ms: 4_010,
                sent,
                status: status.into(),
                tries: 1,
                answered: status == "ok" || status.starts_with("gRPC status 5"),
            }],
        }
    }

    #[test]
    fn a_wire_attempt_is_drawn_by_what_reached_the_server() {
        let x = |t: SystemTime| ms_between(SystemTime::UNIX_EPOCH, t) as f64;
        let close = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let call = || "RespondActivityTaskCompleted".to_owned();
        let drawn = |record: AttemptRecord| {
            let segment = wire_segments(&[&record], &x, close).remove(0);
            (segment.class, segment.title, segment.width as u64)
        };
        let (class, title, width) = drawn(held(Sent::Forwarded { call: call() }, "ok"));
        assert_eq!((class, width), ("ok", 3_010), "{title}");
        // The worker answered, but the answer was lost with its connection: the attempt timed out.
        let (class, title, width) = drawn(held(Sent::DroppedWorkerGone { call: call() }, "dropped"));
        assert_eq!((class, width), ("timeout", 5_000), "{title}");
        assert!(title.contains("lost with the dead worker's connection"), "{title}");
        // Sent on, but the server had already given up on the attempt.
        let too_late = "gRPC status 5: workflow execution already completed";
        let (class, title, _) = drawn(held(Sent::Forwarded { call: call() }, too_late));
        assert_eq!(class, "timeout", "{title}");
        assert!(title.contains(too_late), "{title}");
    }
}
