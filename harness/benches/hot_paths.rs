//! The harness's own hot paths: scenario parsing and validation, verification of a large
//! history, report rendering, and the run store (recording, the dashboard).
//! `cargo bench -p temporal-chaos --bench hot_paths` (`scripts/bench-store.sh` adds PostgreSQL).

use criterion::{Criterion, criterion_group, criterion_main};
use std::{hint::black_box, path::Path};
use temporal_chaos::{
    history::Histories,
    history::HistoryFacts,
    report::{ReportFormat, RunHead, RunReport, ScenarioReport, Summary},
    runner::Execution,
    scenario,
    serve::dashboard_page,
    store::{Location, RunRecord, Store},
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
    let checks = verify(&plan, histories, &[], &[], None, &[]);
    let execution = Execution {
        workflow_id: "bench-1".into(),
        run_id: Some("run".into()),
        histories: Some(histories.clone()),
        infra_events: vec![],
        error: None,
        ui_url: Some("http://127.0.0.1:8233".into()),
        namespace: "default".into(),
        wall: std::time::Duration::from_secs(1),
        waited: std::time::Duration::ZERO,
        wire_attempts: vec![],
        wire_gap: None,
        worker: None,
        call_events: vec![],
        worker_events: vec![],
        backlog: vec![],
        plan,
    };
    let one = ScenarioReport::new(execution, checks);
    let scenarios = vec![one; scenarios];
    RunReport {
        head: RunHead {
            run_id: "bench".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            target: "embedded".into(),
            address: "127.0.0.1:7233".into(),
            namespace: "default".into(),
            ui_url: Some("http://127.0.0.1:8233".into()),
            server_version: "1.32.0".into(),
            harness_version: "0.1.0".into(),
        },
        duration_ms: 1,
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
            black_box(verify(&plan, &h, &[], &[], None, &[]))
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

/// The run store: recording a 25-scenario run (its report files parsed, compressed and written in
/// one transaction) and the dashboard's main page over 1,000 stored runs of 25 scenarios, in
/// SQLite and, when `CHAOS_BENCH_POSTGRES_URL` names a server (`scripts/bench-store.sh` starts
/// one), in PostgreSQL.
fn store_benches(c: &mut Criterion) {
    let small = Histories {
        root: HistoryFacts::from_events("bench-1", &big_history(5)),
        children: vec![],
    };
    let run = report(25, &small);
    let (json, html) = (ReportFormat::Json.render(&run), ReportFormat::Html.render(&run));
    eprintln!(
        "the recorded run: 25 scenarios, report.json {} KB, index.html {} KB",
        json.len() / 1024,
        html.len() / 1024
    );
    let path = Path::new("report.json");
    let one = |i: i64| {
        let mut record = RunRecord::of_run(path, json.as_bytes(), Some(html.as_bytes())).unwrap();
        record.summary.run_id = format!("bench-{i}");
        record.summary.started_at_ms += i * 60_000;
        record
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec![(
        "sqlite",
        Location::Sqlite(dir.path().join("record.sqlite")),
        Location::Sqlite(dir.path().join("page.sqlite")),
    )];
    if let Ok(url) = std::env::var("CHAOS_BENCH_POSTGRES_URL") {
        let on = |db: &str| Location::parse(Some(&url), Some(db), dir.path()).unwrap().unwrap();
        stores.push(("postgres", on("chaos_bench_record"), on("chaos_bench_page")));
    }
    for (name, record_in, page_of) in stores {
        let store = rt.block_on(Store::open(&record_in)).unwrap();
        let mut i = 0;
        c.bench_function(&format!("record a 25-scenario run ({name})"), |b| {
            b.iter(|| {
                i += 1;
                let mut record = RunRecord::of_run(path, black_box(json.as_bytes()), Some(html.as_bytes())).unwrap();
                record.summary.run_id = format!("bench-{i}");
                rt.block_on(store.record(&record, None)).unwrap()
            })
        });
        let store = rt.block_on(Store::open(&page_of)).unwrap();
        let stored = rt.block_on(store.run_count()).unwrap();
        for i in stored..1000 {
            rt.block_on(store.record(&one(i), None)).unwrap();
        }
        c.bench_function(
            &format!("dashboard page over 1000 runs of 25 scenarios ({name})"),
            |b| b.iter(|| black_box(rt.block_on(dashboard_page(&store, 1, 20)).unwrap())),
        );
    }
}

criterion_group!(hot_paths, benches, store_benches);
criterion_main!(hot_paths);
