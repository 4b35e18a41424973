//! `chaos load` on the embedded server: every workflow accounted for, and the seeded fault
//! schedule matches the histories, run after run.

mod common;

use common::repo;
use serde_json::Value;
use std::process::Command;
use temporal_chaos::store::{Location, ReportFile, Store};

fn load(seed: &str, extra: &[&str]) -> Value {
    let reports = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["load", "--workflows", "100", "--fault-rate", "0.2", "--seed", seed])
        .args(extra)
        .arg("--reports")
        .arg(reports.path())
        .current_dir(repo())
        .env_remove("TEMPORAL_ADDRESS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "load failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = std::fs::read_dir(reports.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    for file in ["load.json", "load.md", "load.html"] {
        assert!(run.join(file).is_file(), "{file} written");
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(run.join("load.json")).unwrap()).unwrap();
    // Recorded in the default store, with its own load.html.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(&Location::Sqlite(reports.path().join("runs.sqlite")))
            .await
            .unwrap();
        let runs = store.runs(10, 0).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(
            (runs[0].summary.run_id.as_str(), runs[0].summary.kind.as_str()),
            (report["run_id"].as_str().unwrap(), "load")
        );
        assert!(
            runs[0].summary.headline.starts_with("100 workflows · "),
            "{}",
            runs[0].summary.headline
        );
        let html = store
            .report(&runs[0].summary.run_id, ReportFile::Html)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(html, std::fs::read(run.join("load.html")).unwrap());
    });
    report
}

#[test]
fn a_small_load_loses_nothing_and_its_faults_match_the_history() {
    let first = load("7", &[]);
    assert_eq!(first["started"], 100);
    assert_eq!(first["lost"], 0);
    assert_eq!(first["stuck"], 0);
    assert_eq!(
        first["visibility"]["Completed"].as_u64().unwrap() + first["visibility"]["Failed"].as_u64().unwrap_or(0),
        100
    );
    assert_eq!(
        first["fault_mismatches"].as_array().unwrap().len(),
        0,
        "{:#?}",
        first["fault_mismatches"]
    );
    let injected = first["faults_injected"]["error LoadFault"].as_u64().unwrap();
    // About 20% of roughly 300 attempts: the schedule is real, not empty.
    assert!((25..=120).contains(&injected), "{injected} faults injected");
    // With seed 7 every workflow completes (no activity drew 5 faults in a row), so each of the
    // 200 activity executions (50 orchestrations x 3, 50 resilient x 1) made one successful
    // attempt, and every other attempt is an injected fault.
    assert_eq!(first["outcomes"]["completed"], 100);
    let attempts: u64 = first["attempts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(attempts, 200 + injected, "attempts vs injected faults");

    // The same seed replays the same fault schedule, and a server frozen mid-run loses nothing.
    let second = load("7", &["--infra", "server_pause after 2s for 2s"]);
    assert_eq!((second["lost"].as_u64(), second["stuck"].as_u64()), (Some(0), Some(0)));
    assert_eq!(second["faults_injected"], first["faults_injected"]);
    assert_eq!(second["attempts"], first["attempts"]);
    let pause = &second["infra_events"][0];
    assert_eq!(pause["outcome"]["status"], "applied", "{pause:#}");
    assert!(
        pause["outcome"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("server frozen for 2s")),
        "{pause:#}"
    );
}

#[test]
fn the_wire_proxy_injects_the_same_fault_schedule_and_loses_nothing() {
    let sdk = load("7", &[]);
    let wire = load("7", &["--inject", "wire"]);
    assert_eq!(wire["settings"]["inject"], "wire");
    assert_eq!((wire["lost"].as_u64(), wire["stuck"].as_u64()), (Some(0), Some(0)));
    assert_eq!(
        wire["fault_mismatches"],
        Value::Array(vec![]),
        "{:#}",
        wire["fault_mismatches"]
    );
    assert_eq!(wire["faults_injected"], sdk["faults_injected"]);
    assert_eq!(wire["attempts"], sdk["attempts"]);
}
