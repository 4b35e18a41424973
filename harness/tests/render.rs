//! Snapshot tests of every report format, rendered from a fixed run: one scenario that passed and
//! one whose expectation and infrastructure fault did not hold. `cargo insta review` (or
//! `INSTA_UPDATE=always cargo test --test render`) updates the snapshots after a deliberate change.

use std::path::Path;
use temporal_chaos::{
    history::{Histories, HistoryFacts},
    infra::{InfraEvent, InfraOutcome},
    report::{ReportFormat, RunReport, ScenarioReport, Summary},
    runner::Execution,
    scenario, verify,
};
use temporalio_common::protos::temporal::api::{
    common::v1::{ActivityType, Payload, Payloads},
    enums::v1::RetryState,
    failure::v1::{ApplicationFailureInfo, Failure, failure::FailureInfo},
    history::v1::{
        ActivityTaskCompletedEventAttributes, ActivityTaskFailedEventAttributes, ActivityTaskScheduledEventAttributes,
        ActivityTaskStartedEventAttributes, HistoryEvent, WorkflowExecutionCompletedEventAttributes,
        WorkflowExecutionStartedEventAttributes, history_event::Attributes,
    },
};

const UI: &str = "http://127.0.0.1:8233";

/// Risky failed three times with ServiceUnavailable (the marker of fault #1), then fallback B
/// answered 0; one event a second.
fn history(workflow_id: &str) -> HistoryFacts {
    let failure = || Failure {
        message: "[chaos fault #1] 503".into(),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo {
            r#type: "ServiceUnavailable".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let scheduled = |name: &str, id: &str| {
        Attributes::ActivityTaskScheduledEventAttributes(ActivityTaskScheduledEventAttributes {
            activity_id: id.into(),
            activity_type: Some(ActivityType { name: name.into() }),
            ..Default::default()
        })
    };
    let attrs = vec![
        Attributes::WorkflowExecutionStartedEventAttributes(WorkflowExecutionStartedEventAttributes {
            original_execution_run_id: format!("run-of-{workflow_id}"),
            ..Default::default()
        }),
        scheduled("risky", "1"),
        Attributes::ActivityTaskStartedEventAttributes(ActivityTaskStartedEventAttributes {
            scheduled_event_id: 2,
            attempt: 3,
            last_failure: Some(failure()),
            ..Default::default()
        }),
        Attributes::ActivityTaskFailedEventAttributes(ActivityTaskFailedEventAttributes {
            scheduled_event_id: 2,
            failure: Some(failure()),
            retry_state: RetryState::MaximumAttemptsReached as i32,
            ..Default::default()
        }),
        scheduled("fallback_b", "2"),
        Attributes::ActivityTaskStartedEventAttributes(ActivityTaskStartedEventAttributes {
            scheduled_event_id: 5,
            attempt: 1,
            ..Default::default()
        }),
        Attributes::ActivityTaskCompletedEventAttributes(ActivityTaskCompletedEventAttributes {
            scheduled_event_id: 5,
            ..Default::default()
        }),
        Attributes::WorkflowExecutionCompletedEventAttributes(WorkflowExecutionCompletedEventAttributes {
            result: Some(Payloads {
                payloads: vec![Payload {
                    data: br#"{"path":"fallback-B","value":0,"reason":"ServiceUnavailable"}"#.to_vec(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
    ];
    let events: Vec<HistoryEvent> = attrs
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let mut event = HistoryEvent {
                event_id: i as i64 + 1,
                event_time: Some(Default::default()),
                attributes: Some(a),
                ..Default::default()
            };
            if let Some(t) = event.event_time.as_mut() {
                t.seconds = 1_800_000_000 + i as i64;
            }
            event
        })
        .collect();
    HistoryFacts::from_events(workflow_id, &events)
}

fn scenario_report(name: &str, expect: &str, infra_events: Vec<InfraEvent>) -> ScenarioReport {
    let text = format!(
        "name = \"{name}\"\ndescription = \"Risky fails; fallback B answers.\"\nworkflow = \"resilient\"\n\
         [input]\nvalue = 21\n[activity]\nstart_to_close = \"2s\"\n[activity.retry]\nmaximum_attempts = 3\n\
         [fallback]\nb_error_types = [\"ServiceUnavailable\"]\n\
         [[fault]]\nactivity = \"risky\"\nkind = \"error\"\ntype = \"ServiceUnavailable\"\n[expect]\n{expect}\n"
    );
    let plan = scenario::parse(Path::new(&format!("scenarios/{name}.toml")), &text).unwrap();
    let workflow_id = format!("{name}-20261127-000000-abcd");
    let histories = Histories {
        root: history(&workflow_id),
        children: vec![],
    };
    let checks = verify::verify(&plan, &histories, &infra_events);
    let execution = Execution {
        plan,
        run_id: Some(format!("run-of-{workflow_id}")),
        workflow_id,
        histories: Some(histories),
        infra_events,
        error: None,
    };
    ScenarioReport::new(execution, checks, Some(UI), "default")
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
                outcome: InfraOutcome::NotTriggered("the workflow closed before the trigger fired".into()),
            }],
        ),
    ];
    let passed = scenarios.iter().filter(|s| s.passed).count();
    RunReport {
        run_id: "20261127-000000-abcd".into(),
        started_at: "2026-11-27T00:00:00+00:00".into(),
        duration_ms: 9000,
        target: "embedded".into(),
        address: "127.0.0.1:7233".into(),
        namespace: "default".into(),
        ui_url: Some(UI.into()),
        server_version: "1.32.0".into(),
        task_queue: "chaos-20261127-000000-abcd".into(),
        seed: None,
        summary: Summary {
            total: scenarios.len(),
            passed,
            failed: scenarios.len() - passed,
        },
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
