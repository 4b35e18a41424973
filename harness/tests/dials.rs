//! Workers that dial a fixed address take turns on it: two scenarios whose workers dial the same
//! port (one as `localhost`, one as `127.0.0.1`: the same socket) on task queues of their own run
//! one after the other, each finding the harness's proxy where its worker dials. The worker here
//! is the harness's own `chaos worker` run as a worker of the user's, its address given on its
//! command line as if it were written into its code.

mod common;

use common::{chaos_run, check, free_port};

/// A scenario whose worker dials `host:port` and says so; `risky` attempt 1 fails on the wire.
fn dialing(dir: &std::path::Path, name: &str, host: &str, port: u16) -> String {
    let file = dir.join(format!("{name}.toml"));
    // The workflow's input as its JSON has it (TOML has no null: every timeout is set).
    let args = r#"{ value = 21, activity = { start_to_close = "5s", schedule_to_close = "60s", heartbeat_timeout = "60s", retry = { initial_interval = "200ms", backoff = 2.0, maximum_interval = "1s", maximum_attempts = 3, non_retryable_types = [] } }, fallback_b_error_types = [] }"#;
    std::fs::write(
        &file,
        format!(
            "name = \"{name}\"\nworkflow = \"ResilientCall\"\nargs = [{args}]\n[worker]\n\
             command = [\"{chaos}\", \"worker\", \"--address\", \"{host}:{port}\", \"--task-queue\", \"{{task_queue}}\"]\n\
             dials = \"{host}:{port}\"\n[[fault]]\nactivity = \"risky\"\nattempts = [1]\nkind = \"error\"\n\
             type = \"Flaky\"\n[expect]\noutcome = \"completed\"\nattempts = {{ risky = 2 }}\n",
            chaos = env!("CARGO_BIN_EXE_chaos"),
        ),
    )
    .unwrap();
    file.display().to_string()
}

#[test]
fn workers_dialing_one_address_take_turns_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let first = dialing(dir.path(), "dials-localhost", "localhost", port);
    let second = dialing(dir.path(), "dials-127", "127.0.0.1", port);
    let run = chaos_run(&[&first, &second]);
    assert!(run.passed, "{}\n{}", run.stdout, run.stderr);
    for name in ["dials-localhost", "dials-127"] {
        let fired = check(run.scenario(name), "fault #1 fired");
        let observed = fired["observed"].as_str().unwrap();
        assert!(
            observed.contains("the wire proxy's log shows it injected on risky attempt 1"),
            "{observed}"
        );
    }
    let waited = |name: &str| run.scenario(name)["waited_ms"].as_u64().unwrap_or(0);
    assert!(
        waited("dials-localhost") > 0 || waited("dials-127") > 0,
        "one waited for the other's turn: {:#}",
        run.report["scenarios"]
    );
}
