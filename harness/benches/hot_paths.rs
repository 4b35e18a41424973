//! The harness's own hot paths: scenario parsing and validation, verification of a large
//! history, and report rendering. `cargo bench -p temporal-chaos`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::{hint::black_box, path::Path};
use temporal_chaos::{
    history::Histories,
    history::HistoryFacts,
    report::{ReportFormat, RunReport, ScenarioReport, Summary},
    runner::Execution,
    scenario,
    verify::verify,
};
use temporalio_common::protos::temporal::api::{
    common::v1::{ActivityType, Payload, Payloads},
    history::v1::{
        ActivityTaskCompletedEventAttributes, ActivityTaskScheduledEventAttributes, ActivityTaskStartedEventAttributes,
        HistoryEvent, WorkflowExecutionCompletedEventAttributes, WorkflowExecutionStartedEventAttributes,
        history_event::Attributes,
    },
};

fn scenario_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    scenario::discover(&[root])
        .unwrap()
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect()
}

/// A history of `activities` risky activities, each scheduled, started (attempt 2) and completed:
/// 3 events each, plus start and completion of the workflow.
fn big_history(activities: usize) -> Vec<HistoryEvent> {
    let mut attrs = vec![Attributes::WorkflowExecutionStartedEventAttributes(Default::default())];
    for i in 0..activities {
        let scheduled = attrs.len() as i64 + 1;
        attrs.push(Attributes::ActivityTaskScheduledEventAttributes(
            ActivityTaskScheduledEventAttributes {
                activity_id: i.to_string(),
                activity_type: Some(ActivityType { name: "risky".into() }),
                ..Default::default()
            },
        ));
        attrs.push(Attributes::ActivityTaskStartedEventAttributes(
            ActivityTaskStartedEventAttributes {
                scheduled_event_id: scheduled,
                attempt: 2,
                ..Default::default()
            },
        ));
        attrs.push(Attributes::ActivityTaskCompletedEventAttributes(
            ActivityTaskCompletedEventAttributes {
                scheduled_event_id: scheduled,
                ..Default::default()
            },
        ));
    }
    attrs.push(Attributes::WorkflowExecutionCompletedEventAttributes(
        WorkflowExecutionCompletedEventAttributes {
            result: Some(Payloads {
                payloads: vec![Payload {
                    data: br#"{"path":"primary","value":42,"reason":""}"#.to_vec(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        },
    ));
    let _ = WorkflowExecutionStartedEventAttributes::default();
    attrs
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let mut ev = HistoryEvent {
                event_id: i as i64 + 1,
                event_time: Some(Default::default()),
                attributes: Some(a),
                ..Default::default()
            };
            if let Some(t) = ev.event_time.as_mut() {
                t.seconds = 1_700_000_000 + i as i64 / 100;
            }
            ev
        })
        .collect()
}

const PLAN: &str = r#"
name = "bench"
workflow = "resilient"
[input]
value = 21
[activity]
start_to_close = "1s"
[activity.retry]
maximum_attempts = 0
[[fault]]
activity = "risky"
attempts = [1]
kind = "error"
type = "Flaky"
[expect]
outcome = "completed"
result = 42
attempts = { risky = 6666 }
failure = "error:Flaky"
time_budget = "1h"
"#;

fn report(scenarios: usize, histories: &Histories) -> RunReport {
    let plan = scenario::parse(Path::new("bench.toml"), PLAN).unwrap();
    let checks = verify(&plan, histories, &[], &[], None);
    let execution = Execution {
        workflow_id: "bench-1".into(),
        run_id: Some("run".into()),
        histories: Some(histories.clone()),
        infra_events: vec![],
        error: None,
        ui_url: Some("http://127.0.0.1:8233".into()),
        wall: std::time::Duration::from_secs(1),
        waited: std::time::Duration::ZERO,
        wire_attempts: vec![],
        wire_gap: None,
        worker: None,
        plan,
    };
    let one = ScenarioReport::new(execution, checks, "default");
    let scenarios = vec![one; scenarios];
    RunReport {
        run_id: "bench".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        duration_ms: 1,
        target: "embedded".into(),
        address: "127.0.0.1:7233".into(),
        namespace: "default".into(),
        ui_url: Some("http://127.0.0.1:8233".into()),
        server_version: "1.32.0".into(),
        task_queue: "q".into(),
        seed: None,
        interrupted_by: None,
        warnings: vec![],
        timing: Default::default(),
        summary: Summary::of(&scenarios),
        scenarios,
    }
}

fn benches(c: &mut Criterion) {
    let files = scenario_files();
    c.bench_function("parse and validate every shipped scenario", |b| {
        b.iter(|| {
            for (path, text) in &files {
                black_box(scenario::parse(Path::new(path), text).unwrap());
            }
        })
    });

    let events = big_history(3333);
    assert!(events.len() >= 10_000);
    let plan = scenario::parse(Path::new("bench.toml"), PLAN).unwrap();
    c.bench_function("read and verify a 10k-event history", |b| {
        b.iter(|| {
            let h = Histories {
                root: HistoryFacts::from_events("bench-1", black_box(&events)),
                children: vec![],
            };
            black_box(verify(&plan, &h, &[], &[], None))
        })
    });

    let small = Histories {
        root: HistoryFacts::from_events("bench-1", &big_history(5)),
        children: vec![],
    };
    let run = report(100, &small);
    for format in ReportFormat::ALL {
        c.bench_function(&format!("render {} for 100 scenarios", format.file_name()), |b| {
            b.iter(|| black_box(format.render(black_box(&run))))
        });
    }
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);
