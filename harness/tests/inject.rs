//! Both injection paths, one verdict: the shipped scenarios give the same verdicts whether faults
//! enter through the harness worker's SDK interceptors (`--inject sdk`) or through the wire proxy
//! between the worker and the frontend (`--inject wire`); the activity scenarios give the same
//! attempt counts too, and the wire proxy's attempt log accounts for every attempt history counts.
//! (Infrastructure scenarios that expect no attempt count may differ there: a reset or a restart
//! under the proxy can cost a retry.)

mod common;

use common::{chaos, repo, text};
use serde_json::Value;
use std::{collections::BTreeMap, path::PathBuf};

/// Every shipped scenario but those with a fault only the SDK can inject (`panic`).
fn scenarios() -> Vec<String> {
    let mut files: Vec<PathBuf> = ["activity", "infrastructure"]
        .iter()
        .flat_map(|d| std::fs::read_dir(repo().join("scenarios").join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| !std::fs::read_to_string(p).unwrap().contains("kind = \"panic\""))
        .collect();
    files.sort();
    files.iter().map(|p| p.display().to_string()).collect()
}

fn run(inject: &str) -> Value {
    let reports = tempfile::tempdir().unwrap();
    let mut args = vec!["run", "--inject", inject, "--reports", reports.path().to_str().unwrap()];
    let files = scenarios();
    args.extend(files.iter().map(String::as_str));
    let out = chaos(&args);
    assert!(
        out.status.success(),
        "--inject {inject}:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(reports.path().join("latest/report.json")).unwrap()).unwrap()
}

/// Per scenario: its verdict, and for activity scenarios its attempts per activity type.
fn verdicts(report: &Value) -> BTreeMap<String, (String, Value)> {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap().to_owned();
            let activity = s["source"].as_str().unwrap().contains("scenarios/activity/");
            let attempts = if activity { s["attempts"].clone() } else { Value::Null };
            (name, (s["verdict"].as_str().unwrap().to_owned(), attempts))
        })
        .collect()
}

#[test]
fn sdk_and_wire_injection_give_the_same_verdicts_and_attempts() {
    let (sdk, wire) = (run("sdk"), run("wire"));
    assert_eq!(verdicts(&sdk), verdicts(&wire));
    assert!(verdicts(&wire).values().all(|(v, _)| v == "passed"));
    for s in wire["scenarios"].as_array().unwrap() {
        // The wire log saw at least every attempt history counts (a worker crash can add one
        // the dead worker took that history never shows).
        let mut logged: BTreeMap<String, u64> = BTreeMap::new();
        for a in s["wire_attempts"].as_array().into_iter().flatten() {
            *logged
                .entry(a["activity_type"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        for (activity, attempts) in s["attempts"].as_object().unwrap() {
            let seen = logged.get(activity).copied().unwrap_or(0);
            assert!(
                seen >= attempts.as_u64().unwrap(),
                "{}: history counts {attempts} {activity} attempts, the wire log {seen}",
                s["name"]
            );
        }
    }
    assert!(
        sdk["scenarios"][0].get("wire_attempts").is_none(),
        "no wire log without the wire proxy"
    );
}

#[test]
fn a_fault_only_the_sdk_can_inject_is_refused_on_the_wire() {
    let out = chaos(&[
        "run",
        "--inject",
        "wire",
        "scenarios/activity/10-panic-then-success.toml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "scenarios/activity/10-panic-then-success.toml: fault #1 (panic) can only be injected inside the harness's own worker"
        ) && stderr.contains("nothing was run"),
        "{stderr}"
    );
}

#[test]
fn a_fault_only_the_wire_can_inject_is_refused_in_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("drop.toml");
    let source = std::fs::read_to_string(repo().join("scenarios/activity/07-heartbeat-timeout.toml")).unwrap();
    let start = source.find("[[fault]]").unwrap();
    let end = source.find("[expect]").unwrap();
    let scenario = format!(
        "{}[[fault]]\nactivity = \"risky\"\nkind = \"drop_heartbeats\"\n\n{}",
        &source[..start],
        &source[end..]
    );
    std::fs::write(&file, scenario).unwrap();
    let out = chaos(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("fault #1 (drop_heartbeats) can only be injected by the wire proxy: run with `--inject wire`")
            && stderr.contains("nothing was run"),
        "{stderr}"
    );
}
