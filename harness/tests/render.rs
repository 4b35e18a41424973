//! Snapshot tests of every report format, rendered from a fixed run that a SIGINT stopped: one
//! scenario that passed, one whose expectation and infrastructure fault did not hold, and one the
//! interruption kept from finishing. `cargo insta review` (or
//! `INSTA_UPDATE=always cargo test --test render`) updates the snapshots after a deliberate change.

mod common;

use common::fixture::{FAULT, fallback_b_history, fallback_b_plan};
use std::time::Duration;
use temporal_chaos::{
    history::Histories,
    infra::{InfraEvent, InfraOutcome},
    report::{ReportFormat, RunHead, RunReport, ScenarioReport, Summary, Timing},
    runner::Execution,
    verify,
    wire::{AttemptRecord, Injection, WireEffect},
};

const UI: &str = "http://127.0.0.1:8233";

fn scenario_report(name: &str, expect: &str, infra_events: Vec<InfraEvent>) -> ScenarioReport {
    let plan = fallback_b_plan(name, expect, FAULT);
    let workflow_id = format!("{name}-20261127-000000-abcd");
    let histories = Histories {
        root: fallback_b_history(&workflow_id),
        children: vec![],
    };
    let wire_attempts = wire_log(&workflow_id);
    let checks = verify::verify(&plan, &histories, &infra_events, &wire_attempts, None);
    let execution = Execution {
        plan,
        run_id: Some(format!("run-of-{workflow_id}")),
        workflow_id: workflow_id.clone(),
        histories: Some(histories),
        infra_events,
        error: None,
        ui_url: Some(UI.into()),
        wall: Duration::from_millis(7400),
        waited: Duration::from_millis(1200),
        wire_attempts,
        wire_gap: None,
        worker: None,
    };
    ScenarioReport::new(execution, checks, "default")
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
