//! Parsing and validation, without a server.

use super::{load_all, parse};
use crate::{
    failure::{FailureKind, TimeoutKind},
    faults::{AttemptSelector, FaultAction},
    plan::{Outcome, WorkflowSpec},
};
use std::{path::Path, time::Duration};

const VALID: &str = r#"
name = "timeout-then-success"
workflow = "resilient"
seed = 9

[input]
value = 21

[activity]
start_to_close = "1s"
schedule_to_close = "8s"
heartbeat_timeout = "500ms"

[activity.retry]
initial_interval = "200ms"
backoff = 3.0
maximum_interval = "2s"
maximum_attempts = 5
non_retryable_types = ["InvalidInput"]

[fallback]
b_error_types = ["InvalidInput"]

[[fault]]
activity = "risky"
attempts = "2..3"
kind = "delay"
duration = "2s"
probability = 0.5

[[fault]]
activity = "*"
attempts = "from 4"
kind = "panic"

[expect]
outcome = "completed"
result = 42
attempts = { risky = 2 }
failure = "timeout:start_to_close"
time_budget = "8s"
"#;

fn problems(source: &str) -> Vec<String> {
    match parse(Path::new("s.toml"), source) {
        Ok(_) => vec![],
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_valid_file_becomes_a_plan() {
    let plan = parse(Path::new("s.toml"), VALID).expect("valid");
    let WorkflowSpec::Resilient(input) = &plan.workflow else {
        panic!("resilient")
    };
    assert_eq!(input.value, 21);
    assert_eq!(input.fallback_b_error_types, ["InvalidInput"]);
    let a = &input.activity;
    assert_eq!(a.start_to_close, Some(Duration::from_secs(1)));
    assert_eq!(a.heartbeat_timeout, Some(Duration::from_millis(500)));
    let retry = a.retry.as_ref().unwrap();
    assert_eq!((retry.backoff, retry.maximum_attempts), (3.0, 5));
    assert_eq!(plan.faults.seed, 9);
    let rules = &plan.faults.rules;
    assert_eq!(rules[0].attempts, AttemptSelector::Range { from: 2, to: Some(3) });
    assert_eq!(rules[0].probability, Some(0.5));
    assert!(matches!(&rules[0].action, FaultAction::Delay(d) if d.duration == Duration::from_secs(2)));
    assert_eq!((rules[1].id, rules[1].activity.as_str()), (2, "*"));
    assert_eq!(plan.expect.outcome, Some(Outcome::Completed));
    assert_eq!(
        plan.expect.failure,
        Some(FailureKind::Timeout(TimeoutKind::StartToClose))
    );
    assert_eq!(plan.expect.attempts, [("risky".to_owned(), 2)]);
}

#[test]
fn the_shipped_scenarios_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let plans = load_all(&[dir]).unwrap_or_else(|d| panic!("{d:?}"));
    assert!(plans.len() >= 9);
}

#[test]
fn syntax_errors_have_positions() {
    assert_eq!(
        problems("name = \"x\"\nworkflow = [\n"),
        ["s.toml:2:13: unclosed array, expected `]`"]
    );
}

#[test]
fn every_unknown_key_is_named_at_its_position() {
    // Two at the top, one in a table, two in a subtable: all five, in the file's order.
    let typos = VALID
        .replace("seed = 9\n", "seed = 9\nsed = 1\nfaults = 2\n")
        .replace("value = 21\n", "value = 21\nvalu = 3\n")
        .replace("backoff = 3.0\n", "backoff = 3.0\nbackof = 2.0\nmax_attempts = 4\n");
    let p = problems(&typos);
    let at: Vec<&str> = p.iter().map(|p| p.split(": ").next().unwrap()).collect();
    assert_eq!(
        at,
        ["s.toml:5:1", "s.toml:6:1", "s.toml:10:1", "s.toml:20:1", "s.toml:21:1"],
        "{p:?}"
    );
    for (problem, key) in p.iter().zip(["sed", "faults", "valu", "backof", "max_attempts"]) {
        assert!(problem.contains(&format!("unknown field `{key}`, expected")), "{p:?}");
    }
    // Each is named with the keys of its own table.
    assert!(p[2].contains("expected `numbers` or `value`"), "{p:?}");
    assert!(
        p[3].contains("`initial_interval`") && p[3].contains("`non_retryable_types`"),
        "{p:?}"
    );
    // A file with unknown keys and a missing field: both.
    let p = problems(&typos.replace("workflow = \"resilient\"\n", ""));
    assert_eq!(p.len(), 6, "{p:?}");
    assert!(p[5].contains("missing field `workflow`"), "{p:?}");
}

#[test]
fn the_keys_a_file_takes_include_its_arrays_of_tables() {
    let p = problems(&VALID.replace("seed = 9", "faults = 1"));
    assert_eq!(p.len(), 1, "{p:?}");
    let expected = p[0].split("expected one of ").nth(1).unwrap_or_default();
    let keys: Vec<&str> = expected.split(", ").map(|k| k.trim_matches('`')).collect();
    for key in ["name", "workflow", "worker", "expect", "fault", "infra"] {
        assert!(keys.contains(&key), "{key} in {p:?}");
    }
    // Every key listed is one a file may have: none of them is unknown.
    for key in keys {
        let p = problems(&VALID.replace("seed = 9", &format!("{key} = 1")));
        assert!(p.iter().all(|p| !p.contains("unknown field")), "{key}: {p:?}");
    }
}

#[test]
fn contradictions_are_errors() {
    let with = |extra: &str| VALID.replace("[expect]", &format!("{extra}\n[expect]"));
    // Expecting more attempts than a non-retryable fault allows.
    let nonretry = with("[[fault]]\nactivity = \"risky\"\nattempts = [1]\nkind = \"error\"\ntype = \"InvalidInput\"\n");
    let p = problems(&nonretry);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("expects 2 attempts, but fault #3 raises a non-retryable error at attempt 1"),
        "{p:?}"
    );
    // A fault beyond maximum_attempts can never fire.
    let never = with("[[fault]]\nactivity = \"risky\"\nattempts = \"from 6\"\nkind = \"hang\"\n");
    assert!(problems(&never)[0].contains("can never fire"), "{:?}", problems(&never));
    // Heartbeat timeout expected without a heartbeat timeout configured.
    let hb = VALID
        .replace("heartbeat_timeout = \"500ms\"\n", "")
        .replace("timeout:start_to_close", "timeout:heartbeat");
    assert!(
        problems(&hb)[0].contains("`activity.heartbeat_timeout` is not set"),
        "{:?}",
        problems(&hb)
    );
    // schedule_to_close shorter than start_to_close.
    let short = VALID.replace("schedule_to_close = \"8s\"", "schedule_to_close = \"500ms\"");
    assert!(problems(&short)[0].contains("shorter than start_to_close"));
    // Orchestration has no fallbacks.
    let orch =
        "name = \"o\"\nworkflow = \"orchestration\"\n[input]\nnumbers = [1]\n[expect]\noutcome = \"fallback-A\"\n";
    assert_eq!(
        problems(orch),
        [
            "s.toml:6:11: `fallback-A` is an outcome of the demo `resilient` workflow only; expect one of: completed, failed, timed_out, canceled, terminated"
        ]
    );
}

/// A workflow of the user's own, run by a worker the harness starts.
const USER: &str = r#"name = "pay"
workflow = "PaymentWorkflow"
task_queue = "payments"
args = [{ amount = 40 }, "eur"]

[worker]
command = [".venv/bin/python", "worker.py", "--queue", "{task_queue}"]
env = { TEMPORAL_HOST = "{host}", TEMPORAL_PORT = "{port}" }
ready_timeout = "5s"

[[fault]]
activity = "charge"
attempts = [1]
kind = "drop_heartbeats"

[[infra]]
kind = "worker_crash"
activity = "charge"
duration = "500ms"

[expect]
outcome = "timed_out"
result = { charged = 40 }
attempts = { charge = 2, refund = 0 }
failure = "timeout:heartbeat"
"#;

#[test]
fn a_workflow_of_your_own_takes_args_a_worker_and_generic_expectations() {
    let plan = parse(Path::new("/work/app/scenarios/s.toml"), USER).unwrap();
    let WorkflowSpec::User(user) = &plan.workflow else {
        panic!("{:?}", plan.workflow)
    };
    assert_eq!(user.workflow_type, "PaymentWorkflow");
    assert_eq!(user.args, [serde_json::json!({"amount": 40}), serde_json::json!("eur")]);
    assert_eq!(plan.task_queue.as_deref(), Some("payments"));
    let worker = plan.worker.as_ref().unwrap();
    assert_eq!(worker.cwd, Path::new("/work/app/scenarios"));
    assert_eq!(worker.ready_timeout, Duration::from_secs(5));
    let filled = worker.expand(&[("host", "127.0.0.1"), ("port", "7234"), ("task_queue", "payments")]);
    assert_eq!(filled.command[3], "payments");
    assert_eq!(
        filled.env,
        [
            ("TEMPORAL_HOST".to_owned(), "127.0.0.1".to_owned()),
            ("TEMPORAL_PORT".to_owned(), "7234".to_owned())
        ]
    );
    assert_eq!(plan.expect.outcome, Some(Outcome::TimedOut));
    assert_eq!(
        plan.expect.attempts,
        [("charge".to_owned(), 2), ("refund".to_owned(), 0)]
    );
}

#[test]
fn a_worker_may_dial_a_fixed_loopback_address() {
    let with = |dials: &str| USER.replace("ready_timeout = \"5s\"", &format!("dials = \"{dials}\""));
    let plan = parse(Path::new("/work/app/scenarios/s.toml"), &with("localhost:7233")).unwrap();
    let dials = plan.worker.unwrap().dials.unwrap();
    assert_eq!(
        (dials.host.as_str(), dials.port, dials.to_string()),
        ("localhost", 7233, "localhost:7233".into())
    );
    let v6 = parse(Path::new("s.toml"), &with("[::1]:7233"))
        .unwrap()
        .worker
        .unwrap()
        .dials
        .unwrap();
    assert_eq!(v6.to_string(), "[::1]:7233");
    for (bad, says) in [
        ("temporal.internal:7233", "only listen on this machine's loopback"),
        ("10.0.0.5:7233", "only listen on this machine's loopback"),
        ("localhost:0", "is not a port number"),
        ("localhost", "write HOST:PORT"),
    ] {
        let p = problems(&with(bad));
        assert!(p[0].contains("`dials`") && p[0].contains(says), "{bad}: {p:?}");
        assert!(p[0].starts_with("s.toml:9:"), "names the line: {p:?}");
    }
}

#[test]
fn demo_and_user_fields_do_not_mix() {
    let p = problems(&USER.replace("[[fault]]", "[activity]\nstart_to_close = \"1s\"\n\n[[fault]]"));
    assert!(
        p[0].contains("`[activity]` and `[fallback]` belong to the demo workflows"),
        "{p:?}"
    );
    let p = problems(&VALID.replace("[input]", "args = [1]\n[input]"));
    assert!(
        p[0].contains("are for a workflow of your own; the demo workflow `resilient`"),
        "{p:?}"
    );
    let p = problems(&USER.replace("kind = \"drop_heartbeats\"", "kind = \"panic\"\nmessage = \"x\""));
    assert!(
        p[0].contains("fault kind `panic` needs code inside the worker"),
        "{p:?}"
    );
    let p = problems(&USER.replace("\"{task_queue}\"", "\"{queue}\""));
    assert!(
        p[0].contains("s.toml:7:11: unknown placeholder `{queue}`; known: {address}"),
        "{p:?}"
    );
    let p = problems(&USER.replace("outcome = \"timed_out\"", "outcome = \"fallback-B\""));
    assert!(
        p[0].contains("`fallback-B` is an outcome of the demo `resilient` workflow only"),
        "{p:?}"
    );
}

#[test]
fn a_worker_the_harness_does_not_start_cannot_be_crashed() {
    let start = USER.find("[worker]").unwrap();
    let end = USER.find("[[fault]]").unwrap();
    let external = format!("{}{}", &USER[..start], &USER[end..]);
    let p = problems(&external);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("`worker_crash` needs a worker the harness starts"),
        "{p:?}"
    );
    let neither = external.replace("task_queue = \"payments\"\n", "");
    assert!(
        problems(&neither)[0]
            .contains("not a demo workflow (`orchestration`, `resilient`); for a workflow of your own"),
        "{:?}",
        problems(&neither)
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let bad = VALID
        .replace("\"1s\"", "\"1 parsec\"")
        .replace("backoff = 3.0", "backoff = 0.5")
        .replace("probability = 0.5", "probability = 1.5")
        .replace("kind = \"panic\"", "kind = \"explode\"");
    let p = problems(&bad);
    assert_eq!(p.len(), 4, "{p:#?}");
    assert!(p[0].starts_with("s.toml:10:18: `1 parsec` is not a duration"), "{p:?}");
    assert!(
        p[1].starts_with("s.toml:16:11: backoff must be a number >= 1.0"),
        "{p:?}"
    );
    assert!(p[2].starts_with("s.toml:29:15: probability must be in (0, 1]"), "{p:?}");
    assert!(p[3].starts_with("s.toml:34:8: unknown fault kind `explode`"), "{p:?}");
}

#[test]
fn missing_input_and_wrong_types_name_the_field() {
    let p = problems("name = \"r\"\nworkflow = \"resilient\"\n[expect]\noutcome = \"completed\"\n");
    assert_eq!(
        p,
        ["s.toml:2:12: workflow `resilient` needs `input.value`, e.g. [input] value = 21"]
    );
    let p = problems(
        "name = \"r\"\nworkflow = \"resilient\"\n[input]\nvalue = \"ten\"\n[expect]\noutcome = \"completed\"\n",
    );
    assert!(
        p[0].starts_with("s.toml:4:9: invalid type: string \"ten\", expected i64"),
        "{p:?}"
    );
}

#[test]
fn duplicate_names_across_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), VALID).unwrap();
    std::fs::write(dir.path().join("b.toml"), VALID).unwrap();
    let d = load_all(&[dir.path().to_owned()]).unwrap_err();
    assert!(d[0].message.contains("already used by"), "{d:?}");
}

#[test]
fn infra_faults_are_validated() {
    use crate::infra::{InfraAction, NetworkFault, Trigger};
    let base = "name = \"i\"\nworkflow = \"resilient\"\n[input]\nvalue = 1\n[expect]\noutcome = \"completed\"\n";
    let ok = format!(
        "{base}[[infra]]\nkind = \"network\"\nmode = \"latency\"\nlatency = \"200ms\"\nafter = \"0s\"\nduration = \"1s\"\n"
    );
    let plan = parse(Path::new("s.toml"), &ok).unwrap_or_else(|d| panic!("{d:?}"));
    let rule = &plan.infra[0];
    assert_eq!(rule.trigger, Trigger::After(Duration::ZERO));
    assert!(matches!(
        &rule.action,
        InfraAction::Network(n) if *n == NetworkFault::Latency { latency: Duration::from_millis(200), jitter: Duration::ZERO }
    ));
    let crash =
        format!("{base}[[infra]]\nkind = \"worker_crash\"\nactivity = \"risky\"\nattempt = 2\nduration = \"1s\"\n");
    let plan = parse(Path::new("s.toml"), &crash).unwrap();
    assert_eq!(
        plan.infra[0].trigger,
        Trigger::AttemptStarted {
            activity: "risky".into(),
            attempt: 2
        }
    );

    let problems = |extra: &str| super::tests::problems(&format!("{base}[[infra]]\n{extra}"));
    assert!(problems("kind = \"server_pause\"\nduration = \"1s\"\n")[0].contains("needs a trigger"));
    assert!(
        problems("kind = \"server_pause\"\nafter = \"1s\"\nactivity = \"risky\"\nduration = \"1s\"\n")[0]
            .contains("not both")
    );
    assert!(
        problems("kind = \"worker_crash\"\nafter = \"1s\"\nmode = \"reset\"\nduration = \"1s\"\n")[0]
            .contains("`mode` does not apply to infrastructure fault kind `worker_crash`")
    );
    assert!(
        problems("kind = \"network\"\nafter = \"1s\"\nduration = \"1s\"\n")[0].contains("kind `network` needs `mode`")
    );
    assert!(
        problems("kind = \"network\"\nmode = \"reset\"\nlatency = \"1s\"\nafter = \"1s\"\nduration = \"1s\"\n")[0]
            .contains("`latency` applies to mode `latency` only")
    );
    assert!(
        problems("kind = \"meteor\"\nafter = \"1s\"\nduration = \"1s\"\n")[0]
            .contains("unknown infrastructure fault kind")
    );
    assert!(
        problems("kind = \"server_pause\"\nactivity = \"charge\"\nduration = \"1s\"\n")[0]
            .contains("no activity `charge`")
    );
}

#[test]
fn a_weight_counts_in_the_score_and_must_be_positive() {
    let plan = parse(
        Path::new("s.toml"),
        &VALID.replace("seed = 9", "seed = 9\nweight = 2.5"),
    )
    .unwrap();
    assert_eq!(plan.weight, 2.5);
    assert_eq!(parse(Path::new("s.toml"), VALID).unwrap().weight, 1.0, "default 1");
    let e = problems(&VALID.replace("seed = 9", "seed = 9\nweight = 0.0"));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("s.toml:5:10: `weight` must be a positive number"),
        "{e:?}"
    );
}

#[test]
fn workflow_task_and_drain_expectations_are_validated() {
    use crate::plan::TaskFailureCount;
    let base = "name = \"w\"\nworkflow = \"resilient\"\n[input]\nvalue = 1\n";
    let down = "[[infra]]\nkind = \"workers_down\"\nbacklog = 2\nafter = \"1s\"\nduration = \"3s\"\n";
    let expect = |infra: &str, lines: &str| format!("{base}{infra}[expect]\noutcome = \"completed\"\n{lines}");
    let plan = parse(
        Path::new("s.toml"),
        &expect(
            down,
            "workflow_task_failures = { non_deterministic_error = 1 }\nworkflow_task_timeouts = 2\ndrain_within = \"10s\"\n",
        ),
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    let e = &plan.expect;
    assert_eq!(
        e.workflow_task_failures,
        Some(TaskFailureCount::ByCause(vec![("non_deterministic_error".into(), 1)]))
    );
    assert_eq!(
        (e.workflow_task_timeouts, e.drain_within),
        (Some(2), Some(Duration::from_secs(10)))
    );
    let total = parse(Path::new("s.toml"), &expect("", "workflow_task_failures = 3\n")).unwrap();
    assert_eq!(total.expect.workflow_task_failures, Some(TaskFailureCount::Total(3)));

    // An unknown cause, at its position, with the known ones listed.
    let p = problems(&expect("", "workflow_task_failures = { nondeterminism = 1 }\n"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with(
            "s.toml:7:28: unknown workflow task failure cause `nondeterminism`; known: unhandled_command,"
        ),
        "{p:?}"
    );
    assert!(p[0].contains("non_deterministic_error"), "{p:?}");
    let p = problems(&expect("", "workflow_task_failures = -1\n"));
    assert!(
        p[0].starts_with("s.toml:7:26: `workflow_task_failures` is a count"),
        "{p:?}"
    );
    // A drain needs an outage with a backlog.
    let p = problems(&expect("", "drain_within = \"10s\"\n"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("s.toml:7:16: `drain_within` bounds how long the backlog of a `workers_down` takes"),
        "{p:?}"
    );
}
