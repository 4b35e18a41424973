//! Temporal's pre-production experiments (`scenarios/pre-production/`, and the Python example
//! app's): each shipped scenario passes in `tests/cli.rs` and `tests/python_example.rs`; here each
//! one with a wrong expectation fails naming that check, and bad input is refused before anything
//! runs or said plainly.

mod common;

use common::{chaos, chaos_run, check, python_venv_ready, repo, text};
use std::path::Path;

/// A shipped scenario, one line of it changed into a wrong expectation, and the check that must
/// then fail.
struct Wrong {
    file: &'static str,
    from: &'static str,
    to: &'static str,
    check: &'static str,
}

const WRONG: [Wrong; 14] = [
    Wrong {
        file: "scenarios/pre-production/17-workflow-task-failure.toml",
        from: "workflow_task_failures = { workflow_worker_unhandled_failure = 1 }",
        to: "workflow_task_failures = { workflow_worker_unhandled_failure = 2 }",
        check: "workflow_task_failures[workflow_worker_unhandled_failure]",
    },
    Wrong {
        file: "scenarios/pre-production/18-workflow-task-timeout.toml",
        from: "workflow_task_timeouts = 1",
        to: "workflow_task_timeouts = 0",
        check: "workflow_task_timeouts",
    },
    Wrong {
        file: "scenarios/pre-production/19-sticky-cache-drop.toml",
        from: "result = 34",
        to: "result = 35",
        check: "result",
    },
    Wrong {
        file: "scenarios/pre-production/20-rolling-restarts.toml",
        from: "result = 42",
        to: "result = 43",
        check: "result",
    },
    Wrong {
        file: "scenarios/pre-production/21-workers-down.toml",
        from: "drain_within = \"5s\"",
        to: "drain_within = \"1ms\"",
        check: "drain_within",
    },
    Wrong {
        file: "scenarios/pre-production/22-rpc-throttling.toml",
        from: "attempts = { risky = 1 }",
        to: "attempts = { risky = 2 }",
        check: "attempts[risky]",
    },
    Wrong {
        file: "examples/python-worker/scenarios/pre-production/10-workflow-task-failure.toml",
        from: "workflow_task_failures = { workflow_worker_unhandled_failure = 1 }",
        to: "workflow_task_failures = { workflow_worker_unhandled_failure = 0 }",
        check: "workflow_task_failures[workflow_worker_unhandled_failure]",
    },
    Wrong {
        file: "examples/python-worker/scenarios/pre-production/11-workflow-task-timeout.toml",
        from: "workflow_task_timeouts = 1",
        to: "workflow_task_timeouts = 2",
        check: "workflow_task_timeouts",
    },
    Wrong {
        file: "examples/python-worker/scenarios/pre-production/12-sticky-cache-drop.toml",
        from: "total = 34",
        to: "total = 35",
        check: "result",
    },
    Wrong {
        file: "examples/python-worker/scenarios/pre-production/13-rolling-restarts.toml",
        from: "via = \"card\"",
        to: "via = \"backup\"",
        check: "result",
    },
    Wrong {
        file: "examples/python-worker/scenarios/pre-production/14-workers-down.toml",
        from: "drain_within = \"5s\"",
        to: "drain_within = \"1ms\"",
        check: "drain_within",
    },
    Wrong {
        file: "examples/python-worker/scenarios/pre-production/15-rpc-throttling.toml",
        from: "attempts = { charge = 1 }",
        to: "attempts = { charge = 2 }",
        check: "attempts[charge]",
    },
    Wrong {
        file: "examples/python-worker/scenarios/pre-production/16-deploy-breaking-rollback.toml",
        from: "workflow_task_failures = { non_deterministic_error = 1 }",
        to: "workflow_task_failures = { non_deterministic_error = 0 }",
        check: "workflow_task_failures[non_deterministic_error]",
    },
    Wrong {
        file: "examples/python-worker/scenarios/pre-production/17-deploy-patched.toml",
        from: "workflow_task_failures = 0",
        to: "workflow_task_failures = 1",
        check: "workflow_task_failures",
    },
];

/// Copies `file` (relative to the repository) into `dir` with `from` replaced by `to`, and its
/// worker's `cwd` made absolute; returns the scenario's name.
fn copy_changed(dir: &Path, file: &str, from: &str, to: &str) -> String {
    let original = repo().join(file);
    let body = std::fs::read_to_string(&original).unwrap();
    assert!(body.contains(from), "{file} no longer holds `{from}`");
    let folder = original.parent().unwrap();
    let body = body.replace(from, to).replace(
        "cwd = \"../..\"",
        &format!("cwd = \"{}\"", folder.join("../..").display()),
    );
    let name = body
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap()
        .to_owned();
    std::fs::write(dir.join(Path::new(file).file_name().unwrap()), body).unwrap();
    name
}

#[test]
fn each_experiment_with_a_wrong_expectation_fails_naming_the_check() {
    if !python_venv_ready("each_experiment_with_a_wrong_expectation_fails_naming_the_check") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = WRONG
        .iter()
        .map(|w| copy_changed(dir.path(), w.file, w.from, w.to))
        .collect();
    let run = chaos_run(&[dir.path().to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    for (wrong, name) in WRONG.iter().zip(&names) {
        let scenario = run.scenario(name);
        assert_eq!(scenario["verdict"], "failed", "{name}: {scenario:#}");
        assert!(
            scenario["error"].is_null(),
            "{name} did not run to its verdict: {scenario:#}"
        );
        assert_eq!(common::failed_checks(scenario), [wrong.check], "{name}: {scenario:#}");
        assert!(
            run.stdout.contains(&format!("- **{}**: expected ", wrong.check)),
            "{name}: the summary names the check:\n{}",
            run.stdout
        );
        // The experiment itself took place.
        assert_eq!(
            check(scenario, "infra #1 applied")["passed"],
            true,
            "{name}: {scenario:#}"
        );
    }
}

#[test]
fn a_kind_the_target_cannot_do_is_refused_before_anything_runs() {
    let reports = tempfile::tempdir().unwrap();
    let out = chaos(&[
        "run",
        "scenarios/pre-production/20-rolling-restarts.toml",
        "--external-worker",
        "--task-queue",
        "someone-elses",
        "--reports",
        reports.path().to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "scenario `rolling-restarts`: infra #1 `worker_restart` needs killing, stopping, restarting or replacing \
             the workers, which the embedded (with --external-worker, which starts no worker) target cannot do"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was run"), "{stderr}");
}

#[test]
fn contradictions_and_impossible_kinds_are_positioned_errors() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &file,
            format!("name = \"{name}\"\nworkflow = \"resilient\"\n[input]\nvalue = 21\n{body}"),
        )
        .unwrap();
        file.display().to_string()
    };
    let cases = [
        (
            write(
                "drain-without-outage",
                "[[infra]]\nkind = \"worker_crash\"\nafter = \"0s\"\nduration = \"1s\"\n[expect]\noutcome = \"completed\"\ndrain_within = \"5s\"\n",
            ),
            ":11:16:",
            "workers_down",
        ),
        (
            write(
                "deploy-without-worker",
                "[[infra]]\nkind = \"deploy\"\ncommand = [\"./v2\"]\nafter = \"0s\"\nduration = \"1s\"\n[expect]\noutcome = \"completed\"\n",
            ),
            ":6:8:",
            "`deploy` replaces the workers of a `[worker]` table",
        ),
        (
            write(
                "no-such-call",
                "[[infra]]\nkind = \"rpc_error\"\ncode = \"unavailable\"\nmethods = [\"PollEverything\"]\nafter = \"0s\"\nduration = \"1s\"\n[expect]\noutcome = \"completed\"\n",
            ),
            ":8:11:",
            "`PollEverything` is not a call workers make; use any of: PollWorkflowTaskQueue",
        ),
        (
            write(
                "held-past-budget",
                "[[infra]]\nkind = \"workflow_task_timeout\"\nafter = \"0s\"\nduration = \"1s\"\n[expect]\noutcome = \"completed\"\ntime_budget = \"5s\"\n",
            ),
            ":11:15:",
            "holds a workflow task until it times out, after 10s (the server's default",
        ),
        (
            write(
                "no-share",
                "[[infra]]\nkind = \"worker_restart\"\nshare = 0\nevery = \"1s\"\nafter = \"0s\"\nduration = \"3s\"\n[expect]\noutcome = \"completed\"\n",
            ),
            ":7:9:",
            "`share` is the share of the workers restarted each round",
        ),
    ];
    for (file, position, says) in cases {
        let out = chaos(&["check", &file]);
        let stderr = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("{file}{position}")),
            "{position} in:\n{stderr}"
        );
        assert!(stderr.contains(says), "{says} in:\n{stderr}");
    }
}

#[test]
fn a_deploy_whose_command_exits_at_once_shows_its_log_and_restores_the_workers() {
    if !python_venv_ready("a_deploy_whose_command_exits_at_once_shows_its_log_and_restores_the_workers") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = copy_changed(
        dir.path(),
        "examples/python-worker/scenarios/pre-production/17-deploy-patched.toml",
        "command = [\".venv/bin/python\", \"worker.py\"]\nenv = { APP_VERSION",
        "command = [\"sh\", \"-c\", \"echo 'v2: MIGRATION_DONE is not set' >&2; exit 4\"]\nenv = { APP_VERSION",
    );
    let run = chaos_run(&[dir.path().to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let scenario = run.scenario(&name);
    let applied = check(scenario, "infra #1 applied");
    let observed = applied["observed"].as_str().unwrap();
    assert_eq!(applied["passed"], false, "{applied:#}");
    assert!(
        observed.contains("exited with exit status: 4 before it polled task queue `python-example`")
            && observed.contains("| v2: MIGRATION_DONE is not set"),
        "{observed}"
    );
    // The version that ran before took the workflow over again.
    assert_eq!(check(scenario, "outcome")["passed"], true, "{scenario:#}");
}
