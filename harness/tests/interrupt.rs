//! An interrupted run still reports: on SIGINT or SIGTERM `chaos run` starts no new scenario, gives
//! running ones a short grace, then writes every report format with the finished scenarios
//! verified and the rest marked `interrupted`, stops its cluster and exits 130 or 143. A second
//! signal ends the grace at once.

mod common;

use common::{chaos_command, repo, text};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::Value;
use std::{
    net::TcpStream,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

/// Two quick scenarios and one that a 60 s delay keeps running long past any grace.
fn scenarios(dir: &Path) {
    for quick in ["01-orchestration-success.toml", "03-plain-success.toml"] {
        std::fs::copy(repo().join("scenarios/activity").join(quick), dir.join(quick)).unwrap();
    }
    std::fs::write(
        dir.join("slow.toml"),
        "name = \"slow\"\nworkflow = \"resilient\"\n[input]\nvalue = 21\n[activity]\nstart_to_close = \"90s\"\n\
         [[fault]]\nactivity = \"risky\"\nkind = \"delay\"\nduration = \"60s\"\n\
         [expect]\noutcome = \"completed\"\nresult = 42\n",
    )
    .unwrap();
}

/// Runs the three scenarios, sends `signals` (the first after the quick ones have had time to
/// finish, the next ones a second apart), and returns the exit code, the report, and how long
/// the process took after the last signal.
fn interrupted_run(signals: &[Signal]) -> (Option<i32>, Value, std::path::PathBuf, Duration) {
    let dir = tempfile::tempdir().unwrap().keep();
    let files = dir.join("scenarios");
    std::fs::create_dir_all(&files).unwrap();
    scenarios(&files);
    let reports = dir.join("reports");
    let child = chaos_command(&["run", files.to_str().unwrap(), "--reports", reports.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(10));
    let pid = Pid::from_raw(child.id() as i32);
    for (i, signal) in signals.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        kill(pid, *signal).unwrap();
    }
    let last = Instant::now();
    let out = child.wait_with_output().unwrap();
    let took = last.elapsed();
    let report_file = reports.join("latest/report.json");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\n{}\n{}",
            report_file.display(),
            text(&out.stdout),
            text(&out.stderr)
        )
    }))
    .unwrap();
    (out.status.code(), report, reports.join("latest"), took)
}

fn verdicts(report: &Value) -> Vec<(String, String)> {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Nothing listens on the run's frontend any more: the cluster was stopped.
fn cluster_stopped(report: &Value) {
    let address = report["address"].as_str().unwrap();
    assert!(
        TcpStream::connect(address).is_err(),
        "the server at {address} still answers"
    );
}

#[test]
fn sigint_reports_the_finished_scenarios_and_marks_the_rest_interrupted() {
    let (code, report, dir, _) = interrupted_run(&[Signal::SIGINT]);
    assert_eq!(code, Some(130));
    assert_eq!(report["interrupted_by"], "SIGINT");
    assert_eq!(
        verdicts(&report),
        [
            ("orchestration-success".to_owned(), "passed".to_owned()),
            ("plain-success".to_owned(), "passed".to_owned()),
            ("slow".to_owned(), "interrupted".to_owned()),
        ]
    );
    assert_eq!(report["summary"]["interrupted"], 1);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains(": INTERRUPTED") && md.contains("| ⏹ | slow |"), "{md}");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<skipped message=\"interrupted by SIGINT\"/>"),
        "{junit}"
    );
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("data-verdict=\"interrupted\"") && html.contains("id=\"run-verdict\">INTERRUPTED"));
    cluster_stopped(&report);
}

#[test]
fn a_second_sigterm_ends_the_grace_at_once() {
    let (code, report, _, took) = interrupted_run(&[Signal::SIGTERM, Signal::SIGTERM]);
    assert_eq!(code, Some(143));
    assert_eq!(report["interrupted_by"], "SIGTERM");
    assert!(verdicts(&report).contains(&("slow".to_owned(), "interrupted".to_owned())));
    // Without the second signal the slow scenario would hold the run for the whole grace (10 s).
    assert!(
        took < Duration::from_secs(6),
        "exited {took:?} after the second SIGTERM"
    );
    cluster_stopped(&report);
}
