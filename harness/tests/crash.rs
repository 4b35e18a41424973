//! A worker crash must matter to pass. The shipped crash scenarios pass with their crash and fail
//! without it (no fault stands in for the crash); a crash kills what the wire proxy still held for
//! the dead worker (its delayed answer), as the network would; and a crash after the attempt had
//! already answered fails its `infra #N applied` check, saying so.

mod common;

use common::{chaos_run, check, repo, resilient_scenario};
use std::path::{Path, PathBuf};

/// Every shipped scenario with a `worker_crash`.
fn shipped_crash_scenarios() -> Vec<PathBuf> {
    let folders = [
        repo().join("scenarios/infrastructure"),
        repo().join("examples/python-worker/scenarios/infrastructure"),
    ];
    let mut files: Vec<PathBuf> = folders
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::read_to_string(p).unwrap().contains("kind = \"worker_crash\""))
        .collect();
    files.sort();
    files
}

/// `scenario` without its `[[infra]]` tables, renamed `<name>-without-crash`, written into `into`
/// (a worker's relative `cwd` made absolute, so that it still names the same folder).
fn without_infra(scenario: &Path, into: &Path) -> (String, PathBuf) {
    let folder = scenario.parent().unwrap();
    let mut kept = Vec::new();
    let mut in_infra = false;
    let mut name = String::new();
    for line in std::fs::read_to_string(scenario).unwrap().lines() {
        if line.starts_with('[') {
            in_infra = line.trim() == "[[infra]]";
        }
        if in_infra {
            continue;
        }
        let value = |key: &str| line.strip_prefix(key)?.strip_prefix(" = \"")?.strip_suffix('"');
        if let Some(original) = value("name") {
            name = format!("{original}-without-crash");
            kept.push(format!("name = \"{name}\""));
        } else if let Some(cwd) = value("cwd") {
            kept.push(format!("cwd = \"{}\"", folder.join(cwd).display()));
        } else {
            kept.push(line.to_owned());
        }
    }
    let file = into.join(scenario.file_name().unwrap());
    std::fs::write(&file, kept.join("\n")).unwrap();
    (name, file)
}

#[test]
fn shipped_crash_scenarios_pass_with_their_crash_and_fail_without_it() {
    let shipped = shipped_crash_scenarios();
    assert!(shipped.len() >= 2, "{shipped:?}");
    let copies = tempfile::tempdir().unwrap();
    let stripped: Vec<(String, PathBuf)> = shipped.iter().map(|f| without_infra(f, copies.path())).collect();
    let mut args: Vec<String> = shipped.iter().map(|p| p.display().to_string()).collect();
    args.extend(stripped.iter().map(|(_, p)| p.display().to_string()));
    let run = chaos_run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for file in &shipped {
        let name = std::fs::read_to_string(file).unwrap();
        let name = name
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .unwrap()
            .trim_end_matches('"');
        let scenario = run.scenario(name);
        assert_eq!(scenario["verdict"], "passed", "{name} with its crash:\n{}", run.stdout);
        let crash = check(scenario, "infra #1 applied");
        assert!(
            crash["observed"].as_str().unwrap().contains("attempt 1"),
            "the crash check says what the attempt lost: {crash:#}"
        );
    }
    for (name, _) in &stripped {
        let scenario = run.scenario(name);
        assert_eq!(
            scenario["verdict"], "failed",
            "{name} passed without its crash:\n{}",
            run.stdout
        );
        let attempts = scenario["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().unwrap().starts_with("attempts["))
            .unwrap();
        assert_eq!(attempts["passed"], false, "{name}: attempt 1 completed: {attempts:#}");
        assert_eq!(attempts["observed"], "1", "{attempts:#}");
    }
}

/// A resilient scenario with a 4 s start-to-close and up to 3 attempts 200 ms apart.
fn resilient(dir: &Path, name: &str, rest: &str) -> String {
    let activity = "start_to_close = \"4s\"\n[activity.retry]\ninitial_interval = \"200ms\"\nmaximum_attempts = 3";
    resilient_scenario(dir, name, activity, rest)
}

#[test]
fn a_crash_loses_the_answer_the_wire_proxy_held_and_a_crash_after_the_answer_fails() {
    let dir = tempfile::tempdir().unwrap();
    // The worker answers at once; the proxy holds the answer 3 s; the worker dies meanwhile.
    let held = resilient(
        dir.path(),
        "held-answer-crash",
        "[[fault]]\nactivity = \"risky\"\nattempts = [1]\nkind = \"delay\"\nduration = \"3s\"\n\
         [[infra]]\nkind = \"worker_crash\"\nactivity = \"risky\"\nattempt = 1\nduration = \"500ms\"\n\
         [expect]\noutcome = \"completed\"\nattempts = { risky = 2 }\nfailure = \"timeout:start_to_close\"\n",
    );
    // The proxy fails attempt 1 itself: the worker never has it, so killing it costs nothing.
    let pointless = resilient(
        dir.path(),
        "pointless-crash",
        "[[fault]]\nactivity = \"risky\"\nattempts = [1]\nkind = \"error\"\ntype = \"Declined\"\n\
         [[infra]]\nkind = \"worker_crash\"\nactivity = \"risky\"\nattempt = 1\nduration = \"500ms\"\n\
         [expect]\noutcome = \"completed\"\nattempts = { risky = 2 }\n",
    );
    let run = chaos_run(&["--inject", "wire", &held, &pointless]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);

    let scenario = run.scenario("held-answer-crash");
    assert_eq!(scenario["verdict"], "passed", "{}", run.stdout);
    let attempt_1 = scenario["wire_attempts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["activity_type"] == "risky" && a["attempt"] == 1)
        .expect("attempt 1 in the wire log");
    assert_eq!(attempt_1["answer"]["kind"], "completed", "{attempt_1:#}");
    assert_eq!(
        attempt_1["upstream"][0]["sent"]["kind"], "dropped_worker_gone",
        "{attempt_1:#}"
    );
    let crash = check(scenario, "infra #1 applied");
    let observed = crash["observed"].as_str().unwrap();
    assert!(
        observed.contains("lost with the dead worker's connection"),
        "{observed}"
    );

    let scenario = run.scenario("pointless-crash");
    assert_eq!(scenario["verdict"], "failed", "{}", run.stdout);
    let crash = check(scenario, "infra #1 applied");
    assert_eq!(crash["passed"], false);
    let observed = crash["observed"].as_str().unwrap();
    assert!(
        observed.contains("never reached the worker") && observed.contains("cost it nothing"),
        "{observed}"
    );
    assert_eq!(common::failed_checks(scenario), ["infra #1 applied"], "{scenario:#}");
}
