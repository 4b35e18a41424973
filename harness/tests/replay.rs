//! `chaos replay`: histories recorded on a real dev server replay against the workflow code, and a
//! deliberately nondeterministic change is caught, naming the workflow and the event.

mod common;

use common::{chaos, dev_server, temporal_bin, text};
use std::{path::Path, time::Duration};
use temporal_chaos::{
    history::{RAW_HISTORIES_DIR, read_histories},
    replay::{self, EventRef, ReplaySummary},
    target::{Endpoint, connect},
    workflows::DemoActivities,
};
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_sdk::{
    Runtime, Worker, WorkerOptions, workflow_replayer::WorkflowReplayFailure, workflows::WorkflowImplementation,
};

/// The options of the probe's one activity.
fn probe_activity() -> temporalio_sdk::ActivityOptions {
    temporalio_sdk::ActivityOptions::start_to_close_timeout(Duration::from_secs(5))
}

/// The test-only workflow as it was when its history was recorded: one `risky` activity.
mod recorded {
    use temporal_chaos::workflows::DemoActivities;
    use temporalio_macros::{workflow, workflow_methods};
    use temporalio_sdk::{WorkflowContext, WorkflowResult};

    /// Doubles its input in an activity.
    #[workflow]
    #[derive(Default)]
    pub struct ReplayProbe;

    #[workflow_methods]
    impl ReplayProbe {
        /// Runs it.
        #[run]
        pub async fn run(ctx: &mut WorkflowContext<Self>, value: i64) -> WorkflowResult<i64> {
            Ok(ctx
                .execute_activity(DemoActivities::risky, value, super::probe_activity())
                .await?)
        }
    }
}

/// The same workflow type, changed nondeterministically: a timer where the activity was.
mod timer_instead {
    use std::time::Duration;
    use temporalio_macros::{workflow, workflow_methods};
    use temporalio_sdk::{WorkflowContext, WorkflowResult};

    /// Waits, then doubles its input itself.
    #[workflow]
    #[derive(Default)]
    pub struct ReplayProbe;

    #[workflow_methods]
    impl ReplayProbe {
        /// Runs it.
        #[run]
        pub async fn run(ctx: &mut WorkflowContext<Self>, value: i64) -> WorkflowResult<i64> {
            ctx.timer(Duration::from_millis(100)).await;
            Ok(value * 2)
        }
    }
}

/// The same workflow type, changed nondeterministically: another activity in the same place.
mod other_activity {
    use temporal_chaos::workflows::DemoActivities;
    use temporalio_macros::{workflow, workflow_methods};
    use temporalio_sdk::{WorkflowContext, WorkflowResult};

    /// Asks fallback A instead of the risky call.
    #[workflow]
    #[derive(Default)]
    pub struct ReplayProbe;

    #[workflow_methods]
    impl ReplayProbe {
        /// Runs it.
        #[run]
        pub async fn run(ctx: &mut WorkflowContext<Self>, value: i64) -> WorkflowResult<i64> {
            Ok(ctx
                .execute_activity(DemoActivities::fallback_a, value, super::probe_activity())
                .await?)
        }
    }
}

/// Replays the histories of `dir` against the workflow `W` alone.
async fn replay_against<W>(dir: &Path) -> ReplaySummary
where
    W: WorkflowImplementation,
    <W::Run as temporalio_common::WorkflowDefinition>::Input: Send,
{
    replay::check_report_with(dir, |options| options.register_workflow::<W>().map(drop))
        .await
        .expect("the replayer runs")
}

#[tokio::test]
async fn a_nondeterministic_change_is_caught_naming_the_workflow_and_event() {
    let server = dev_server();
    let (client, _) = connect(&Endpoint::local(server.address.clone(), "default".into()))
        .await
        .expect("connect to the dev server");
    let (task_queue, workflow_id) = ("replay-probe", "replay-probe-1");

    // Record a real history with the original version.
    let runtime = Runtime::from_current_tokio(Default::default()).unwrap();
    let mut options = WorkerOptions::new(task_queue)
        .register_activities(DemoActivities)
        .build();
    options.register_workflow::<recorded::ReplayProbe>().unwrap();
    let mut worker = Worker::new(&runtime, client.clone(), options).unwrap();
    let shutdown = worker.shutdown_handle();
    let start = WorkflowStartOptions::new(task_queue.to_owned(), workflow_id.to_owned())
        .execution_timeout(Duration::from_secs(60))
        .build();
    let recording = async {
        let handle = client
            .start_workflow(recorded::ReplayProbe::run, 21, start)
            .await
            .expect("start the probe");
        let result = handle.get_result(WorkflowGetResultOptions::default()).await;
        shutdown();
        result.expect("the probe completes")
    };
    let (ran, result) = tokio::join!(worker.run(), recording);
    ran.expect("the worker ran");
    assert_eq!(result, 42);

    let histories = read_histories(&client, workflow_id).await.expect("read the history");
    let scheduled = histories.root.activities[0].scheduled_event_id;
    let reports = tempfile::tempdir().unwrap();
    let written = histories
        .root
        .write_raw(&reports.path().join(RAW_HISTORIES_DIR))
        .unwrap()
        .expect("the raw events were kept");
    assert!(
        written.ends_with("histories/replay-probe-1.json"),
        "{}",
        written.display()
    );

    // The code that recorded it replays it faithfully.
    let same = replay_against::<recorded::ReplayProbe>(reports.path()).await;
    assert!(same.passed(), "{same}");
    assert_eq!(same.histories.len(), 1);
    assert_eq!(same.histories[0].events, histories.root.event_count);

    // A timer where the activity was: core names the recorded event it cannot match.
    let expected = EventRef {
        id: scheduled,
        event_type: "ActivityTaskScheduled".into(),
    };
    for changed in [
        replay_against::<timer_instead::ReplayProbe>(reports.path()).await,
        replay_against::<other_activity::ReplayProbe>(reports.path()).await,
    ] {
        assert!(!changed.passed(), "{changed}");
        let replayed = &changed.histories[0];
        assert_eq!(replayed.workflow_id, workflow_id);
        assert_eq!(replayed.workflow_type, "ReplayProbe");
        let divergence = replayed.divergence.as_ref().unwrap();
        assert!(
            matches!(divergence.failure, WorkflowReplayFailure::Nondeterminism { .. }),
            "{changed}"
        );
        assert_eq!(divergence.event.as_ref(), Some(&expected), "{changed}");
        let printed = changed.to_string();
        assert!(
            printed.contains(&format!(
                "FAIL replay-probe-1 (ReplayProbe) at event {scheduled} (ActivityTaskScheduled)"
            )),
            "{printed}"
        );
        assert!(printed.contains("1 diverged"), "{printed}");
    }
}

#[test]
fn a_real_run_replays_in_temporals_json_and_a_changed_history_fails_naming_workflow_and_event() {
    let server = dev_server();
    let reports = tempfile::tempdir().unwrap();
    let root = reports.path().to_str().unwrap();
    let run = chaos(&[
        "run",
        "scenarios/activity",
        "--address",
        &server.address,
        "--reports",
        root,
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let dir = reports.path().join("latest");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();

    // Every history of every scenario, root and children, was written and replays.
    let workflow_ids: Vec<String> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            let h = &s["history"];
            std::iter::once(&h["root"]).chain(h["children"].as_array().unwrap())
        })
        .map(|h| h["workflow_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(workflow_ids.len() > report["scenarios"].as_array().unwrap().len());
    let replayed = chaos(&["replay", dir.to_str().unwrap()]);
    let out = text(&replayed.stdout);
    assert!(replayed.status.success(), "{out}{}", text(&replayed.stderr));
    for id in &workflow_ids {
        assert!(out.contains(&format!("ok   {id} (")), "{id} not replayed:\n{out}");
    }
    assert!(
        !out.contains(" 0 workflow tasks)"),
        "a history with no workflow task:\n{out}"
    );
    assert!(
        out.contains(&format!("replayed {} histories", workflow_ids.len())),
        "{out}"
    );
    assert!(
        !serde_json::to_string(&report).unwrap().contains("\"events\""),
        "raw events leaked into report.json"
    );

    // Each history is written exactly as the `temporal` CLI shows it (Temporal's JSON, which
    // every SDK's replayer reads).
    let workflow_id = workflow_ids.iter().find(|id| id.starts_with("plain-success-")).unwrap();
    let file = dir.join(RAW_HISTORIES_DIR).join(format!("{workflow_id}.json"));
    let mut history: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let shown = std::process::Command::new(temporal_bin())
        .args([
            "workflow",
            "show",
            "--output",
            "json",
            "--address",
            &server.address,
            "-w",
            workflow_id,
        ])
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        numbers_as_floats(history.clone()),
        numbers_as_floats(shown),
        "the recorded history differs from `temporal workflow show --output json`"
    );

    // The recorded history says another activity ran than the current code schedules.
    let scheduled = history["events"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["activityTaskScheduledEventAttributes"].is_object())
        .unwrap();
    scheduled["activityTaskScheduledEventAttributes"]["activityType"]["name"] = "renamed".into();
    let event_id: i64 = scheduled["eventId"].as_str().unwrap().parse().unwrap();
    std::fs::write(&file, serde_json::to_vec(&history).unwrap()).unwrap();
    let replayed = chaos(&["replay", dir.to_str().unwrap()]);
    let out = text(&replayed.stdout);
    assert_eq!(replayed.status.code(), Some(1), "{out}{}", text(&replayed.stderr));
    assert!(
        out.contains(&format!(
            "FAIL {workflow_id} (ResilientCall) at event {event_id} (ActivityTaskScheduled): nondeterministic: \
             Activity type of scheduled event 'renamed' does not match activity type of activity command 'risky'"
        )),
        "{out}"
    );
    assert!(out.contains("1 diverged"), "{out}");

    // A history that does not begin with its start event is refused, naming the file (the SDK's
    // replayer would panic and wait forever on it).
    let headless = tempfile::tempdir().unwrap();
    std::fs::create_dir(headless.path().join(RAW_HISTORIES_DIR)).unwrap();
    history["events"].as_array_mut().unwrap().remove(0);
    let file = headless.path().join(RAW_HISTORIES_DIR).join("headless.json");
    std::fs::write(&file, serde_json::to_vec(&history).unwrap()).unwrap();
    let replayed = chaos(&["replay", headless.path().to_str().unwrap()]);
    assert_eq!(replayed.status.code(), Some(2));
    let err = text(&replayed.stderr);
    assert!(
        err.contains(&format!(
            "{} cannot be replayed: its first event is WorkflowTaskScheduled, not WorkflowExecutionStarted",
            file.display()
        )),
        "{err}"
    );
}

/// `value` with every number as a float: JSON says nothing of `2` against `2.0` (the CLI writes
/// whole doubles without a fraction, the recorded histories with one).
fn numbers_as_floats(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => n.as_f64().map_or(Value::Number(n), Value::from),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
        Value::Object(fields) => Value::Object(fields.into_iter().map(|(k, v)| (k, numbers_as_floats(v))).collect()),
        other => other,
    }
}

#[test]
fn a_folder_without_histories_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let out = chaos(&["replay", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{} holds no recorded histories", empty.path().display())),
        "{err}"
    );

    // A run of the user's own workflows only: their histories are for the user's SDK.
    let histories = empty.path().join(RAW_HISTORIES_DIR);
    std::fs::create_dir_all(histories.join("user")).unwrap();
    let out = chaos(&["replay", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("histories of your own workflows are in histories/user/") && err.contains("your SDK's replayer"),
        "{err}"
    );

    // A history file that is not one names the file.
    std::fs::write(histories.join("broken.json"), "{\"events\": 3}").unwrap();
    let out = chaos(&["replay", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("broken.json is not a workflow history"), "{err}");

    // So does a history with no events (the SDK's replayer would wait forever on it).
    std::fs::write(histories.join("broken.json"), "{\"events\": []}").unwrap();
    let out = chaos(&["replay", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("broken.json cannot be replayed: it has no events"),
        "{err}"
    );
}
