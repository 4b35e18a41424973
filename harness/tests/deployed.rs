//! The deployed topology of `render.yaml`, with real processes on this machine: a dev server (the
//! cluster), `chaos proxy` with its admin listener in front of it, the Python example worker and
//! the harness's own `chaos worker` polling through that proxy, and `chaos run --target remote
//! --external-worker --proxy-admin` (the cron job) breaking them: every fault check of a scenario
//! whose faults go on the wire cites the proxy's log. And what goes wrong around it: an admin
//! address that is not a proxy's, a worker that polls around the proxy, a proxy that has dropped
//! a run's attempts.

mod common;

use common::{
    Guard, chaos_command, dev_server, free_port,
    proxy::{get, proxy_on, wait_polling},
    python_venv_ready, repo, text,
};
use serde_json::Value;
use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

/// One test at a time: each starts a dev server and proxies on ports picked free a moment before
/// they bind, which two tests at once could pick alike.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `chaos proxy` on free loopback ports in front of `upstream`, with `extra` flags; its gRPC and
/// admin addresses, once its admin answers.
fn start_proxy(upstream: &str, extra: &[&str], log: &Path) -> (Guard, String, String) {
    let (listen, admin) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let proxy = proxy_on(upstream, &listen, &admin, extra, log);
    (proxy, listen, admin)
}

/// The Python example worker, connected to `address`, once it says it polls.
fn python_worker(address: &str, log: &Path) -> Guard {
    let (host, port) = address.rsplit_once(':').unwrap();
    let example = repo().join("examples/python-worker");
    let child = Command::new(example.join(".venv/bin/python"))
        .arg("worker.py")
        .current_dir(&example)
        .envs([("TEMPORAL_HOST", host), ("TEMPORAL_PORT", port)])
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let worker = Guard(child);
    let began = Instant::now();
    while !std::fs::read_to_string(log).is_ok_and(|l| l.contains("worker polling task queue")) {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the Python worker does not poll"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    worker
}

/// `chaos run --target remote --external-worker` on `paths`, reports under `reports`.
fn run_external(server: &str, reports: &Path, extra: &[&str], paths: &[&str]) -> (Output, Option<Value>) {
    let mut cmd = chaos_command(&["run", "--target", "remote", "--address", server, "--external-worker"]);
    cmd.args(["--reports", reports.to_str().unwrap()])
        .args(extra)
        .args(paths);
    cmd.current_dir(repo());
    let out = common::output_within(&mut cmd, Duration::from_secs(240));
    let report = std::fs::read_to_string(reports.join("latest/report.json"))
        .ok()
        .map(|r| serde_json::from_str(&r).unwrap());
    (out, report)
}

fn scenario<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

fn fault_checks(s: &Value) -> Vec<&Value> {
    s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("fault #"))
        .collect()
}

#[test]
fn the_scheduled_run_breaks_the_deployed_workers_behind_the_proxy_with_its_log_as_evidence() {
    if !python_venv_ready("the_scheduled_run_breaks_the_deployed_workers_behind_the_proxy_with_its_log_as_evidence") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let server = dev_server();
    let (_proxy, listen, admin) = start_proxy(&server.address, &[], &dir.path().join("proxy.log"));
    // Both deployed workers poll through the proxy: the Python app, and the harness's own demo
    // worker (whose faults its SDK interceptors inject, from the workflow header).
    let _python = python_worker(&listen, &dir.path().join("python.log"));
    let queue = "chaos-remote";
    let _demo = Guard(
        chaos_command(&["worker", "--address", &listen, "--task-queue", queue])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_polling(&admin, "python-example");
    wait_polling(&admin, queue);

    // `chaos doctor` sees the proxy, its frontend, and both queues' workers polling through it.
    let doctor = chaos_command(&[
        "doctor",
        "--address",
        &server.address,
        "--task-queue",
        queue,
        "--task-queue",
        "python-example",
        "--proxy-admin",
        &admin,
    ])
    .output()
    .unwrap();
    let table = text(&doctor.stdout);
    assert!(doctor.status.success(), "{table}{}", text(&doctor.stderr));
    assert!(table.contains("| proxy | ok | temporal-chaos proxy "), "{table}");
    assert!(table.contains("| proxy upstream | ok | the proxy reaches "), "{table}");
    for q in [queue, "python-example"] {
        assert!(
            table.contains(&format!("| through the proxy | ok | `{q}`: ")),
            "{q}: {table}"
        );
    }

    // The cron job's run.
    let reports = dir.path().join("reports");
    let (out, report) = run_external(
        &server.address,
        &reports,
        &[
            "--task-queue",
            queue,
            "--proxy-admin",
            &admin,
            "--ui-url",
            &server.ui_url,
        ],
        &["scenarios/activity", "examples/python-worker/scenarios/activity"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    let report = report.unwrap();
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 18, "10 demo and 8 Python scenarios");
    let (mut cited, mut demo_attempts_seen) = (0, 0);
    for s in scenarios {
        let name = s["name"].as_str().unwrap();
        assert_eq!(s["verdict"], "passed", "{name}: {s}");
        assert!(s["link"].is_string(), "{name}: every execution is linked");
        // A workflow of the user's own names the worker that ran it; its faults went on the wire.
        let user = s["worker"].is_string();
        if !user {
            // The demo workflows: SDK injection in the deployed `chaos worker`; nothing read from
            // the proxy for them, and the proxy they went through injected nothing (the plan was
            // in the header only, not also in the memo: no fault twice).
            assert!(s.get("wire_attempts").is_none(), "{name}");
            let path = format!(
                "/attempts?workflow_id={}&run_id={}",
                s["workflow_id"].as_str().unwrap(),
                s["run_id"].as_str().unwrap()
            );
            let seen: Value = serde_json::from_str(&get(&admin, &path).unwrap()).unwrap();
            let seen = seen["attempts"].as_array().unwrap();
            if s["attempts"]
                .as_object()
                .unwrap()
                .values()
                .any(|n| n.as_u64() > Some(0))
            {
                demo_attempts_seen += seen.len();
            }
            assert!(
                seen.iter().all(|a| a["injected"].as_array().unwrap().is_empty()),
                "{name}: {seen:?}"
            );
            continue;
        }
        assert!(
            s["worker"]
                .as_str()
                .unwrap()
                .contains(&format!("through the chaos proxy at http://{admin}")),
            "{name}: {}",
            s["worker"]
        );
        assert!(s.get("wire_gap").is_none(), "{name}: {s}");
        let attempts = s["wire_attempts"].as_array().map_or(0, Vec::len);
        let counted: u64 = s["attempts"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(
            attempts as u64, counted,
            "{name}: the proxy's log holds every attempt history counts"
        );
        for c in fault_checks(s) {
            assert!(
                c["passed"] == true
                    && c["observed"]
                        .as_str()
                        .unwrap()
                        .contains("the wire proxy's log shows it injected on"),
                "{name}: {c}"
            );
            cited += 1;
        }
    }
    assert!(cited >= 6, "the Python scenarios' faults cite the proxy's log: {cited}");
    assert!(
        demo_attempts_seen > 0,
        "the demo worker's attempts went through the proxy"
    );
}

#[test]
fn a_wrong_admin_a_worker_around_the_proxy_and_a_dropped_log_each_say_so() {
    if !python_venv_ready("a_wrong_admin_a_worker_around_the_proxy_and_a_dropped_log_each_say_so") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let server = dev_server();
    // A proxy that keeps a single attempt: a four-attempt scenario's are gone by its end.
    let (proxy, listen, admin) = start_proxy(
        &server.address,
        &["--keep-attempts", "1"],
        &dir.path().join("proxy.log"),
    );
    let fault = "examples/python-worker/scenarios/activity/02-orchestration-child-fault.toml";
    let plain = "examples/python-worker/scenarios/activity/01-orchestration-success.toml";
    let reports = dir.path().join("reports");

    // Not a proxy's admin: the dev server's Web UI (HTTP, but not this), and nothing at all.
    for (wrong, says) in [
        (server.ui_url.as_str(), "is not a temporal-chaos proxy's admin listener"),
        (&format!("127.0.0.1:{}", free_port()), "does not answer"),
    ] {
        let (out, _) = run_external(&server.address, &reports, &["--proxy-admin", wrong], &[plain]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{wrong}: {stderr}");
        assert!(
            stderr.contains(says) && stderr.contains("nothing was run"),
            "{wrong}: {stderr}"
        );
    }

    // The worker reaches the frontend directly: the scenario with a fault is refused, naming the
    // fix; the one without runs as usual.
    let direct = python_worker(&server.address, &dir.path().join("direct.log"));
    let (out, report) = run_external(&server.address, &reports, &["--proxy-admin", &admin], &[plain, fault]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report = report.unwrap();
    assert_eq!(scenario(&report, "py-orchestration-success")["verdict"], "passed");
    let refused = scenario(&report, "py-orchestration-child-fault");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("workers poll task queue `python-example`, but none through the chaos proxy at")
            && error.contains("point the worker's Temporal address at the proxy"),
        "{error}"
    );
    drop(direct);

    // Behind the proxy now, whose log has dropped the run's first attempts by the time it is read:
    // the check says so and rests on history.
    let _behind = python_worker(&listen, &dir.path().join("behind.log"));
    wait_polling(&admin, "python-example");
    let (out, report) = run_external(&server.address, &reports, &["--proxy-admin", &admin], &[fault]);
    passed_on_history_alone(
        &out,
        report,
        "py-orchestration-child-fault",
        &["has dropped attempts", "--keep-attempts"],
    );

    // The proxy restarted (a redeploy) while a workflow ran: its new log began after the
    // workflow did, which the check says instead of failing on attempts it never saw.
    let slow = dir.path().join("slow.toml");
    std::fs::write(
        &slow,
        r#"
name = "py-slow-charge"
workflow = "PaymentWorkflow"
task_queue = "python-example"
args = [{ amount = 40, processing_ms = 4000, policy = { start_to_close_ms = 15000, heartbeat_timeout_ms = 0 } }]

[[fault]]
activity = "charge"
attempts = [1]
kind = "error"
type = "ProcessorBusy"

[expect]
outcome = "completed"
attempts = { charge = 2 }
"#,
    )
    .unwrap();
    let restart = std::thread::spawn({
        let (upstream, listen, admin, log) = (
            server.address.clone(),
            listen.clone(),
            admin.clone(),
            dir.path().join("proxy-2.log"),
        );
        move || {
            std::thread::sleep(Duration::from_millis(2500));
            drop(proxy);
            proxy_on(&upstream, &listen, &admin, &[], &log)
        }
    });
    let (out, report) = run_external(
        &server.address,
        &reports,
        &["--proxy-admin", &admin],
        &[slow.to_str().unwrap()],
    );
    let _restarted = restart.join().unwrap();
    passed_on_history_alone(&out, report, "py-slow-charge", &["began at", "after py-slow-charge-"]);
}

/// The run passed, and scenario `name`'s fault checks rest on history alone for the reason its
/// `wire_gap` gives, which says each of `gap_says`.
fn passed_on_history_alone(out: &Output, report: Option<Value>, name: &str, gap_says: &[&str]) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report = report.unwrap();
    let s = scenario(&report, name);
    let gap = s["wire_gap"].as_str().unwrap_or_default();
    assert!(gap_says.iter().all(|says| gap.contains(says)), "{s}");
    for c in fault_checks(s) {
        let observed = c["observed"].as_str().unwrap();
        assert!(
            c["passed"] == true && observed.contains("rests on history alone"),
            "{c}"
        );
    }
}
