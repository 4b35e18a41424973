//! Snapshot tests of every report format, rendered from a fixed run that a SIGINT stopped: one
//! scenario that passed, one whose expectation and infrastructure fault did not hold, one whose
//! workers all went down while a backlog arrived (with workflow task failures, faults on the
//! workers' calls and their observations), and one the interruption kept from finishing. `cargo insta review` (or
//! `INSTA_UPDATE=always cargo test --test render`) updates the snapshots after a deliberate change.

mod common;

use common::fixture::{FAULT, fallback_b_history, fallback_b_plan};
use std::time::Duration;
use temporal_chaos::{
    fleet::WorkerEvent,
    history::{Histories, HistoryFacts, WorkflowTask, WorkflowTaskFailure},
    infra::{CallEffect, CallEvent, InfraError, InfraEvent, InfraOutcome},
    report::{ReportFormat, RunHead, RunReport, ScenarioReport, Summary, Timing},
    runner::{Execution, RunError},
    verify,
    wire::{AttemptRecord, Injection, WireEffect},
};

const UI: &str = "http://127.0.0.1:8233";

fn scenario_report(name: &str, expect: &str, infra_events: Vec<InfraEvent>) -> ScenarioReport {
    let workflow_id = format!("{name}-20261127-000000-abcd");
    let execution = Execution {
        infra_events,
        ..execution(
            fallback_b_plan(name, expect, FAULT),
            &workflow_id,
            fallback_b_history(&workflow_id),
        )
    };
    report_of(execution)
}

/// The report of `execution`, verified.
fn report_of(execution: Execution) -> ScenarioReport {
    let e = &execution;
    let histories = e.histories.as_ref().expect("the fixtures have histories");
    let checks = verify::verify(&e.plan, histories, &e.infra_events, &e.wire_attempts, None, &e.backlog);
    ScenarioReport::new(execution, checks)
}

/// The execution of `plan` as `workflow_id` with `root` as its history and the wire log of
/// [`wire_log`].
fn execution(plan: temporal_chaos::plan::Plan, workflow_id: &str, root: HistoryFacts) -> Execution {
    Execution {
        plan,
        run_id: Some(format!("run-of-{workflow_id}")),
        workflow_id: workflow_id.into(),
        histories: Some(Histories { root, children: vec![] }),
        infra_events: vec![],
        error: None,
        ui_url: Some(UI.into()),
        namespace: "default".into(),
        wall: Duration::from_millis(7400),
        waited: Duration::from_millis(1200),
        wire_attempts: wire_log(workflow_id),
        wire_gap: None,
        worker: None,
        call_events: vec![],
        worker_events: vec![],
        backlog: vec![],
    }
}

/// Millisecond `ms` of the fixtures' clock (whose histories start at 1 800 000 000 s), in unix
/// milliseconds.
fn unix_ms(ms: u64) -> u64 {
    1_800_000_000_000 + ms
}

/// A workflow task scheduled at `scheduled` ms (event `id`) and taken at `started` ms.
fn task(id: i64, scheduled: u64, started: u64) -> WorkflowTask {
    let at = |ms: u64| std::time::UNIX_EPOCH + Duration::from_millis(unix_ms(ms));
    WorkflowTask {
        scheduled_event_id: id,
        scheduled_at: at(scheduled),
        attempt: 1,
        started_event_id: Some(id + 1),
        started_at: Some(at(started)),
    }
}

/// Every worker stopped from 1 s to 3 s while two backlog workflows arrived (taken at 3.5 s and
/// 4.2 s: a drain of 700 ms); a workflow task failed on the wire (and shows in history), a poll
/// was refused, and one task was replayed.
fn workers_down_report() -> ScenarioReport {
    let infra = "[[infra]]\nkind = \"workers_down\"\nbacklog = 2\nafter = \"1s\"\nduration = \"2s\"\n";
    let expect = "outcome = \"fallback-B\"\nworkflow_task_failures = { workflow_worker_unhandled_failure = 1 }\n\
                  workflow_task_timeouts = 1\ndrain_within = \"10s\"";
    let plan = fallback_b_plan("workers-down", expect, &format!("{FAULT}{infra}"));
    let workflow_id = "workers-down-20261127-000000-abcd";
    let root = HistoryFacts {
        workflow_tasks: vec![task(9, 0, 20), task(12, 500, 550)],
        workflow_task_failures: vec![WorkflowTaskFailure {
            cause: "workflow_worker_unhandled_failure".into(),
            message: "[chaos infra #1] workflow task failed on the wire".into(),
            event_id: 11,
            attempts: 2,
        }],
        ..fallback_b_history(workflow_id)
    };
    let backlog = |n: u32, scheduled: u64, started: u64| {
        let id = format!("{workflow_id}-backlog-{n}");
        Histories {
            root: HistoryFacts {
                workflow_tasks: vec![task(2, scheduled, started)],
                ..fallback_b_history(&id)
            },
            children: vec![],
        }
    };
    let call = |at: u64, rule: Option<usize>, what: CallEffect| CallEvent {
        rule,
        at_unix_ms: unix_ms(at),
        workflow_id: Some(workflow_id.into()),
        what,
    };
    let worker = |at: u64, what: &str| WorkerEvent {
        at_unix_ms: unix_ms(at),
        worker: 1,
        what: what.into(),
    };
    report_of(Execution {
        infra_events: vec![InfraEvent {
            id: 1,
            rule: "#1 workers_down with a backlog of 2 1s after start, for 2s".into(),
            started_ms: Some(1000),
            ended_ms: Some(3000),
            at_unix_ms: Some(unix_ms(1000)),
            outcome: InfraOutcome::Applied(
                "workers down for 2.0 s (pid 12 stopped; pid 13 polling again); 2 workflow(s) started meanwhile".into(),
            ),
        }],
        call_events: vec![
            call(500, Some(1), CallEffect::TaskFailed { attempt: 1 }),
            call(
                600,
                Some(1),
                CallEffect::Refused {
                    method: "PollActivityTaskQueue".into(),
                    code: 8,
                    retried_after_ms: Some(250),
                },
            ),
            call(3500, None, CallEffect::Replay { events: 14 }),
        ],
        worker_events: vec![
            worker(0, "started pid 12"),
            worker(1200, "stopped pid 12"),
            worker(3000, "started pid 13"),
        ],
        backlog: vec![backlog(1, 1600, 3500), backlog(2, 2300, 4200)],
        ..execution(plan, workflow_id, root)
    })
}

/// The attempts of `risky` as the wire proxy saw them: all three failed upstream by fault #1
/// (which targets every attempt; history keeps only the last one's failure).
fn wire_log(workflow_id: &str) -> Vec<AttemptRecord> {
    let at = |s: u64| (1_800_000_000 + s) * 1000;
    (1..=3)
        .map(|attempt| AttemptRecord {
            workflow_id: workflow_id.into(),
            run_id: format!("run-of-{workflow_id}"),
            activity_id: "1".into(),
            activity_type: "risky".into(),
            attempt,
            task_ms: at(u64::from(attempt)),
            eager: attempt == 1,
            delivered: false,
            deadline_ms: Some(at(u64::from(attempt) + 2)),
            injected: vec![Injection {
                rule: 1,
                effect: WireEffect::Fail {
                    error_type: "ServiceUnavailable".into(),
                    message: "[chaos fault #1] 503".into(),
                    non_retryable: false,
                },
            }],
            plan_error: None,
            answered_ms: None,
            answer: None,
            heartbeats_forwarded: 0,
            heartbeats_swallowed: 0,
            upstream: vec![],
        })
        .collect()
}

fn run_report() -> RunReport {
    let scenarios = vec![
        scenario_report(
            "fallback-b",
            "outcome = \"fallback-B\"\nresult = 0\nattempts = { risky = 3 }\ntime_budget = \"10s\"",
            vec![],
        ),
        scenario_report(
            "wrong-expectation",
            "outcome = \"fallback-B\"\nattempts = { risky = 2 }",
            vec![InfraEvent {
                id: 1,
                rule: "#1 server_pause when risky attempt 1 starts, for 3s".into(),
                started_ms: None,
                ended_ms: None,
                at_unix_ms: None,
                outcome: InfraOutcome::NotTriggered("the workflow closed before the trigger fired".into()),
            }],
        ),
        workers_down_report(),
        ScenarioReport::interrupted(
            &fallback_b_plan("cut-short", "outcome = \"fallback-B\"", FAULT),
            "cut-short-20261127-000000-abcd".into(),
        ),
    ];
    RunReport {
        head: RunHead {
            run_id: "20261127-000000-abcd".into(),
            started_at: "2026-11-27T00:00:00+00:00".into(),
            target: "embedded".into(),
            address: "127.0.0.1:7233".into(),
            namespace: "default".into(),
            ui_url: Some(UI.into()),
            server_version: "1.32.0".into(),
            harness_version: "0.1.0".into(),
        },
        duration_ms: 9000,
        task_queue: "chaos-20261127-000000-abcd".into(),
        seed: None,
        interrupted_by: Some("SIGINT".into()),
        warnings: vec![
            "the first workflow tasks of 1 of 3 scenarios waited 2 s or more for a worker (a sample)".into(),
        ],
        timing: Timing::of(Duration::from_millis(9000), Duration::from_millis(800), &scenarios),
        summary: Summary::of(&scenarios),
        scenarios,
    }
}

#[test]
fn markdown() {
    insta::assert_snapshot!(ReportFormat::Markdown.render(&run_report()));
}

#[test]
fn junit() {
    insta::assert_snapshot!(ReportFormat::Junit.render(&run_report()));
}

#[test]
fn json() {
    insta::assert_snapshot!(ReportFormat::Json.render(&run_report()));
}

#[test]
fn html() {
    insta::assert_snapshot!(ReportFormat::Html.render(&run_report()));
}

#[test]
fn a_run_in_which_no_workflow_started_shows_no_ratio() {
    // Its only scenario's worker never started, so its workflow did not either.
    let workflow_id = "no-worker-20261127-000000-abcd";
    let never = Execution {
        run_id: None,
        histories: None,
        wire_attempts: vec![],
        wall: Duration::from_millis(40),
        waited: Duration::ZERO,
        error: Some(RunError::Worker(InfraError::Worker {
            what: "cannot start worker command `no-such-worker`: No such file or directory (os error 2)".into(),
            log: "worker-no-worker.log".into(),
        })),
        ..execution(
            fallback_b_plan("no-worker", "outcome = \"fallback-B\"", FAULT),
            workflow_id,
            fallback_b_history(workflow_id),
        )
    };
    let scenarios = vec![ScenarioReport::new(never, vec![])];
    let report = RunReport {
        timing: Timing::of(Duration::from_millis(900), Duration::from_millis(800), &scenarios),
        summary: Summary::of(&scenarios),
        scenarios,
        ..run_report()
    };
    let markdown = ReportFormat::Markdown.render(&report);
    assert!(
        markdown
            .contains("wall 0.9 s · server start 0.8 s · no scenario's workflow started, so there is no critical path")
            && !markdown.contains("· ratio"),
        "{markdown}"
    );
    let json: serde_json::Value = serde_json::from_str(&ReportFormat::Json.render(&report)).unwrap();
    let timing = &json["timing"];
    assert!(
        timing["ratio"].is_null() && timing["critical_path_ms"].is_null(),
        "{timing}"
    );
    assert_eq!(timing["longest_scenario_ms"], 40, "{timing}");
    assert!(
        json["scenarios"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no-such-worker"),
        "{json}"
    );
}
