//! `chaos load` on the embedded server: every workflow accounted for, and the seeded fault
//! schedule matches the histories, run after run.

mod common;

use common::repo;
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::Command,
};
use temporal_chaos::store::{Location, ReportFile, Store};

/// `chaos load` with 100 workflows (or `extra`'s count or duration) at fault rate 0.2 and `seed`
/// into a fresh report folder; the command's status and the folder it wrote.
fn load_command(seed: &str, extra: &[&str], reports: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chaos"));
    command.args(["load", "--fault-rate", "0.2", "--seed", seed]);
    if !extra.iter().any(|a| *a == "--workflows" || *a == "--duration") {
        command.args(["--workflows", "100"]);
    }
    command
        .args(extra)
        .arg("--reports")
        .arg(reports)
        .current_dir(repo())
        .env_remove("TEMPORAL_ADDRESS");
    command
}

/// The one run folder under `reports`.
fn run_folder(reports: &Path) -> PathBuf {
    std::fs::read_dir(reports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap()
}

fn load(seed: &str, extra: &[&str]) -> Value {
    let reports = tempfile::tempdir().unwrap();
    let out = load_command(seed, extra, reports.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "load failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = run_folder(reports.path());
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
            runs[0]
                .summary
                .headline
                .starts_with(&format!("{} workflows · ", report["started"])),
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
        first["fault_mismatches"]["count"], 0,
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
    assert_eq!(wire["fault_mismatches"]["count"], 0, "{:#}", wire["fault_mismatches"]);
    assert_eq!(wire["faults_injected"], sdk["faults_injected"]);
    assert_eq!(wire["attempts"], sdk["attempts"]);
}

#[test]
fn worker_processes_killed_cut_off_and_restarted_mid_load_lose_nothing() {
    let report = load(
        "7",
        &[
            "--duration",
            "12s",
            "--rate",
            "5",
            "--workers",
            "2",
            "--sample-every",
            "500ms",
            "--infra",
            "worker_crash after 2s for 1s",
            "--infra",
            r#"network after 5s for 2s { mode = "blackhole" }"#,
            "--infra",
            r#"worker_restart after 8s for 4s { every = "2s", share = 0.5 }"#,
        ],
    );
    let started = report["started"].as_u64().unwrap();
    assert!(started > 10, "{started} started");
    assert_eq!((report["lost"].as_u64(), report["stuck"].as_u64()), (Some(0), Some(0)));
    assert_eq!(
        report["outcomes"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        started
    );
    assert_eq!(
        report["fault_mismatches"]["count"], 0,
        "{:#}",
        report["fault_mismatches"]
    );
    assert_eq!(report["settings"]["workers"], 2);
    for (i, done) in [
        "killed workers pid",
        "network blackhole",
        "worker restart(s) of 2 worker(s)",
    ]
    .iter()
    .enumerate()
    {
        let event = &report["infra_events"][i];
        assert_eq!(event["outcome"]["status"], "applied", "{event:#}");
        assert!(event["outcome"]["detail"].as_str().unwrap().contains(done), "{event:#}");
    }
    let worker_events: Vec<&str> = report["worker_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert!(
        worker_events.iter().filter(|w| w.starts_with("killed pid")).count() == 2,
        "{worker_events:?}"
    );
    assert!(
        worker_events.iter().any(|w| w.starts_with("stopped pid")),
        "{worker_events:?}"
    );
    // Sampled as it went: the harness's memory and the workers' memory.
    let samples = report["samples"]["samples"].as_array().unwrap();
    assert!(samples.len() > 5, "{} samples", samples.len());
    assert!(samples.iter().all(|s| s["rss_bytes"].as_u64().is_some_and(|b| b > 0)));
    assert!(
        samples
            .iter()
            .any(|s| s["workers_rss_bytes"].as_u64().is_some_and(|b| b > 0))
    );
    assert!(
        report["rss_growth"]["percent"].is_number(),
        "{:#}",
        report["rss_growth"]
    );
}

#[test]
fn a_soak_stopped_by_a_signal_reports_on_every_workflow_it_started() {
    let reports = tempfile::tempdir().unwrap();
    let mut child = load_command("3", &["--duration", "10m", "--rate", "4"], reports.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once its report folder is there (the session is opening), give it time to start some.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_dir(reports.path()).unwrap().next().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the load never opened its session"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(10));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("INTERRUPTED by SIGINT"), "{stdout}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(run_folder(reports.path()).join("load.json")).unwrap()).unwrap();
    assert_eq!(report["interrupted"], "SIGINT");
    assert_eq!(report["passed"], false);
    let started = report["started"].as_u64().unwrap();
    assert!(started > 0);
    assert_eq!((report["lost"].as_u64(), report["stuck"].as_u64()), (Some(0), Some(0)));
    assert_eq!(
        report["outcomes"]["completed"].as_u64(),
        Some(started),
        "{:#}",
        report["outcomes"]
    );
}

#[test]
fn a_paced_load_starts_nothing_after_its_duration() {
    // At 2 starts a second for 3 s, at most 7 starts (the first one at once), however many may
    // be in flight: the starts waiting for their turn when the time is up start nothing.
    let report = load("5", &["--duration", "3s", "--rate", "2", "--concurrency", "50"]);
    let started = report["started"].as_u64().unwrap();
    assert!((1..=7).contains(&started), "{started} started in 3 s at 2/s");
    assert_eq!((report["lost"].as_u64(), report["stuck"].as_u64()), (Some(0), Some(0)));
}

#[test]
fn an_infra_fault_after_the_duration_is_refused_before_anything_runs() {
    let reports = tempfile::tempdir().unwrap();
    let out = load_command(
        "1",
        &["--duration", "5s", "--infra", "worker_crash after 10s for 1s"],
        reports.path(),
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("starts 10s in, when the load has stopped starting workflows (--duration 5s)"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(reports.path()).unwrap().next().is_none(),
        "nothing was run"
    );
}
