//! The Python example app (`examples/python-worker/`, the Python SDK from PyPI) broken by
//! `chaos run` with no chaos code in it: the faults enter on the wire, every fault is proven by the
//! proxy's attempt log and by history, and bad workers get errors that say what to fix.
//! `scripts/test.sh` creates the app's virtualenv (`examples/python-worker/setup.sh`).

mod common;

use common::{chaos, chaos_run, output_within, python_venv_ready, repo, text};
use serde_json::Value;
use std::path::PathBuf;

fn example() -> PathBuf {
    repo().join("examples/python-worker")
}

/// Runs `chaos run` on `paths`; returns whether it passed, its stdout and its `report.json`.
fn run(paths: &[&str]) -> (bool, String, Value) {
    let run = chaos_run(paths);
    (run.passed, run.stdout, run.report)
}

fn scenarios(report: &Value) -> &Vec<Value> {
    report["scenarios"].as_array().unwrap()
}

#[test]
fn the_python_app_passes_with_every_fault_proven_on_the_wire_and_in_history() {
    if !python_venv_ready("the_python_app_passes_with_every_fault_proven_on_the_wire_and_in_history") {
        return;
    }
    let run = chaos_run(&["examples/python-worker/scenarios"]);
    let (stdout, report) = (&run.stdout, &run.report);
    assert!(run.passed, "{stdout}");
    assert_eq!(scenarios(report).len(), 17);
    // Every history recorded (roots and children) replays with the Python SDK's own replayer.
    let histories = run.latest().join("histories/user");
    let replayed = output_within(
        std::process::Command::new(example().join(".venv/bin/python"))
            .arg("replay.py")
            .arg(&histories)
            .current_dir(example()),
        std::time::Duration::from_secs(120),
    );
    let said = text(&replayed.stdout);
    assert!(replayed.status.success(), "{said}\n{}", text(&replayed.stderr));
    let files = std::fs::read_dir(&histories).unwrap().count();
    assert!(files > 9, "roots and children: {files}");
    assert_eq!(said.matches(": replays (").count(), files, "{said}");
    for s in scenarios(report) {
        let name = s["name"].as_str().unwrap();
        let fault_checks: Vec<&Value> = s["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"].as_str().unwrap().starts_with("fault #"))
            .collect();
        for c in &fault_checks {
            let observed = c["observed"].as_str().unwrap();
            assert!(
                c["passed"] == true && observed.contains("the wire proxy's log shows it injected on"),
                "{name}: {c}"
            );
            assert!(
                c["link"].is_string(),
                "{name}: the history evidence links to its event: {c}"
            );
        }
        // The proxy saw every attempt history counts, with its real times.
        let attempts = s["wire_attempts"].as_array().cloned().unwrap_or_default();
        for (activity, count) in s["attempts"].as_object().unwrap() {
            let seen: Vec<&Value> = attempts.iter().filter(|a| a["activity_type"] == *activity).collect();
            assert!(
                seen.len() as u64 >= count.as_u64().unwrap(),
                "{name}: history counts {count} {activity} attempts, the proxy saw {}",
                seen.len()
            );
            assert!(
                seen.iter().all(|a| a["task_ms"].as_u64().unwrap() > 0),
                "{name}: {seen:?}"
            );
        }
        let worker = s["worker"].as_str().unwrap();
        let shared = worker.starts_with("the worker process shared by the scenarios on task queue `python-example`");
        let crashes = !s["infra_events"].as_array().unwrap().is_empty();
        assert_eq!(shared, !crashes, "{name}: {worker}");
    }
    // The crash scenario's worker was really killed and replaced, and attempt 1 lost to it.
    let crash = scenarios(report)
        .iter()
        .find(|s| s["name"] == "py-worker-crash")
        .unwrap();
    assert_eq!(crash["infra_events"][0]["outcome"]["status"], "applied", "{crash}");
    // Every attempt is its own bar on the timeline, and each worker kept its log in the report.
    let html = std::fs::read_to_string(run.latest().join("index.html")).unwrap();
    assert!(html.contains("attempt 1 (seen on the wire)"), "no wire attempt bars");
    let logs: Vec<String> = std::fs::read_dir(run.latest())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let logs = logs.join(" ");
    assert!(
        logs.contains("worker-python-example.log") && logs.contains("worker-py-worker-crash.log"),
        "{logs}"
    );
}

#[test]
fn a_wrong_expectation_fails_with_a_precise_message() {
    if !python_venv_ready("a_wrong_expectation_fails_with_a_precise_message") {
        return;
    }
    let (passed, stdout, report) = run(&["examples/python-worker/wrong-expectation"]);
    assert!(!passed, "{stdout}");
    assert!(
        stdout.contains("- **attempts[charge]**: expected 1, history shows 2 ([event "),
        "{stdout}"
    );
    assert_eq!(scenarios(&report)[0]["verdict"], "failed");
}

#[test]
fn bad_workers_get_errors_that_say_what_to_fix() {
    if !python_venv_ready("bad_workers_get_errors_that_say_what_to_fix") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = example().display().to_string();
    let scenario = |name: &str, head: &str, worker: &str| {
        let body = format!("name = \"{name}\"\n{head}\n{worker}\n[expect]\noutcome = \"completed\"\n");
        std::fs::write(dir.path().join(format!("{name}.toml")), body).unwrap();
    };
    let python_worker = format!(
        "[worker]\ncommand = [\".venv/bin/python\", \"worker.py\"]\ncwd = \"{app}\"\n\
         env = {{ TEMPORAL_HOST = \"{{host}}\", TEMPORAL_PORT = \"{{port}}\" }}"
    );
    scenario(
        "unknown-type",
        "workflow = \"NoSuchWorkflow\"\ntask_queue = \"python-example\"",
        &python_worker,
    );
    scenario(
        "exits-at-once",
        "workflow = \"PaymentWorkflow\"",
        "[worker]\ncommand = [\"sh\", \"-c\", \"echo 'DATABASE_URL is not set' >&2; exit 3\"]",
    );
    scenario(
        "never-polls",
        "workflow = \"PaymentWorkflow\"",
        "[worker]\ncommand = [\"sleep\", \"600\"]\nready_timeout = \"2s\"",
    );
    scenario(
        "nobody-polls",
        "workflow = \"PaymentWorkflow\"\ntask_queue = \"no-worker-polls-this\"",
        "",
    );
    let (passed, stdout, report) = run(&[dir.path().to_str().unwrap()]);
    assert!(!passed, "{stdout}");
    let error = |name: &str| {
        scenarios(&report)
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["error"].as_str())
            .unwrap_or_else(|| panic!("{name} has no error:\n{stdout}"))
            .to_owned()
    };
    let unknown = error("unknown-type");
    assert!(
        unknown.contains("the worker keeps failing the workflow task")
            && unknown.contains("NoSuchWorkflow is not registered on this worker")
            && unknown.contains("OrderTotalWorkflow"),
        "{unknown}"
    );
    let exits = error("exits-at-once");
    assert!(
        exits.contains("exited with exit status: 3 before it polled task queue")
            && exits.contains("| DATABASE_URL is not set"),
        "{exits}"
    );
    let never = error("never-polls");
    assert!(
        never.contains("`sleep 600`")
            && never.contains("did not poll task queue `chaos-")
            && never.contains("within 2s"),
        "{never}"
    );
    let nobody = error("nobody-polls");
    assert!(
        nobody.contains("no worker polls task queue `no-worker-polls-this`")
            && nobody.contains("chaos proxy --upstream"),
        "{nobody}"
    );
}

#[test]
fn a_worker_that_went_away_is_named_not_waited_for() {
    if !python_venv_ready("a_worker_that_went_away_is_named_not_waited_for") {
        return;
    }
    let server = common::dev_server();
    // The app's worker polls the server for a moment and is killed: the server still lists it
    // as a poller of `python-example` for a while.
    let (host, port) = server.address.rsplit_once(':').unwrap();
    let mut worker = common::Guard(
        std::process::Command::new(example().join(".venv/bin/python"))
            .arg("worker.py")
            .current_dir(example())
            .env("TEMPORAL_HOST", host)
            .env("TEMPORAL_PORT", port)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(worker.0.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("polling task queue `python-example`"), "{line}");
    let listed = || {
        let out = std::process::Command::new(std::env::var("CHAOS_TEMPORAL_BIN").unwrap_or("temporal".into()))
            .args(["task-queue", "describe", "--task-queue", "python-example", "--address"])
            .arg(&server.address)
            .args(["--output", "json"])
            .output()
            .unwrap();
        text(&out.stdout).contains("\"identity\"")
    };
    let began = std::time::Instant::now();
    while !listed() {
        assert!(
            began.elapsed() < std::time::Duration::from_secs(30),
            "the worker never showed as a poller"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(worker);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gone.toml");
    let scenario = "name = \"gone\"\nworkflow = \"PaymentWorkflow\"\ntask_queue = \"python-example\"\n\
                    args = [{ amount = 1 }]\n[expect]\noutcome = \"completed\"\n";
    std::fs::write(&file, scenario).unwrap();
    let reports = dir.path().join("reports");
    let out = chaos(&[
        "run",
        "--address",
        &server.address,
        "--reports",
        reports.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("no worker took the first workflow task of gone-")
            && stdout.contains("from task queue `python-example` within ")
            && stdout.contains("none polled that task queue in the last 10 s, so it was terminated"),
        "{stdout}"
    );
}

/// A scenario for the example app's worker told to dial `127.0.0.1:{port}` as if it were written
/// into its code (no placeholder), with `dials` saying so; fault #1 declines `charge` attempt 1.
fn dialing(dir: &std::path::Path, name: &str, port: u16) -> String {
    let file = dir.join(format!("{name}.toml"));
    let cwd = example();
    std::fs::write(
        &file,
        format!(
            "name = \"{name}\"\nworkflow = \"PaymentWorkflow\"\ntask_queue = \"python-example\"\n\
             args = [{{ amount = 40 }}]\n[worker]\ncommand = [\".venv/bin/python\", \"worker.py\"]\n\
             cwd = \"{}\"\nenv = {{ TEMPORAL_HOST = \"127.0.0.1\", TEMPORAL_PORT = \"{port}\" }}\n\
             dials = \"127.0.0.1:{port}\"\n[[fault]]\nactivity = \"charge\"\nattempts = [1]\nkind = \"error\"\n\
             type = \"Flaky\"\n[expect]\noutcome = \"completed\"\nattempts = {{ charge = 2 }}\n",
            cwd.display()
        ),
    )
    .unwrap();
    file.display().to_string()
}

#[test]
fn a_worker_that_dials_a_fixed_address_finds_the_proxy_there() {
    if !python_venv_ready("a_worker_that_dials_a_fixed_address_finds_the_proxy_there") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let (first, second) = (
        dialing(dir.path(), "dials-1", port),
        dialing(dir.path(), "dials-2", port),
    );
    let run = chaos_run(&[&first, &second]);
    assert!(run.passed, "{}\n{}", run.stdout, run.stderr);
    for name in ["dials-1", "dials-2"] {
        let scenario = run.scenario(name);
        let worker = scenario["worker"].as_str().unwrap();
        assert!(
            worker.contains(&format!(
                "the worker dials 127.0.0.1:{port}, where the harness put its proxy"
            )),
            "{worker}"
        );
        let fired = common::check(scenario, "fault #1 fired");
        assert!(
            fired["observed"]
                .as_str()
                .unwrap()
                .contains("the wire proxy's log shows it injected on charge attempt 1"),
            "{fired:#}"
        );
    }
    // Without `dials`, the worker finds nothing at its address: the error says what to add.
    let undeclared = std::fs::read_to_string(&first)
        .unwrap()
        .replace(&format!("dials = \"127.0.0.1:{port}\"\n"), "");
    std::fs::write(&first, undeclared).unwrap();
    let run = chaos_run(&[&first]);
    let error = run.scenario("dials-1")["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("before it polled task queue `python-example`; if the worker dials a fixed address")
            && error.contains("`dials = \"HOST:PORT\"` in its [worker]"),
        "{error}"
    );
    let first = dialing(dir.path(), "dials-1", port);

    // The address is taken: the scenario says so and what to do.
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let run = chaos_run(&[&first]);
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    let error = run.scenario("dials-1")["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains(&format!("the worker dials 127.0.0.1:{port} (`dials` in its [worker])"))
            && error.contains(&format!("127.0.0.1:{port} is taken"))
            && error.contains("stop what listens there"),
        "{error}"
    );
}
