//! Overload is named, not blamed on the worker. 400 copies of the shipped activity scenarios with
//! `--jobs 400` would saturate the harness's own worker on a small machine (first workflow tasks
//! waited up to 13 s for it on 2 cores, and time budgets failed): the harness runs at most 16
//! scenarios per core on its own worker, whatever `--jobs` says, and says so; time budgets leave
//! out any wait for first workflow tasks, and no workflow is terminated while a worker is polling
//! but behind. No verdict may turn on the load.

mod common;

use common::{chaos_run, repo};

#[test]
fn four_hundred_scenarios_at_once_give_no_false_verdict_and_say_the_run_was_overloaded() {
    let dir = tempfile::tempdir().unwrap();
    let shipped: Vec<_> = std::fs::read_dir(repo().join("scenarios/activity"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut copies = 0;
    for copy in 0..400 / shipped.len() {
        for file in &shipped {
            let text = std::fs::read_to_string(file).unwrap();
            let renamed = text.replacen("name = \"", &format!("name = \"copy{copy}-"), 1);
            let name = format!("{copy:02}-{}", file.file_name().unwrap().to_string_lossy());
            std::fs::write(dir.path().join(name), renamed).unwrap();
            copies += 1;
        }
    }
    assert_eq!(copies, 400);
    let run = chaos_run(&["--jobs", "400", dir.path().to_str().unwrap()]);
    let failed: Vec<String> = run.report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["verdict"] != "passed")
        .map(|s| {
            let checks: Vec<String> = s["checks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["passed"] == false)
                .map(|c| format!("{}: {}", c["name"], c["observed"]))
                .collect();
            format!("{} {} {}", s["name"], s["error"], checks.join("; "))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} false verdicts:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(run.passed, "{}", run.stdout);
    let cap = format!(
        "**Warning**: --jobs 400: the scenarios on the harness's own worker ran at most {} at a time",
        16 * std::thread::available_parallelism().map_or(1, usize::from)
    );
    assert!(run.stdout.contains(&cap), "{}", run.stdout);
    // Whether this machine was saturated depends on the machine; when it was, the run says so.
    let waits: Vec<u64> = run.report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["first_task_wait_ms"].as_u64())
        .collect();
    let slowest = waits.iter().max().copied().unwrap_or(0);
    eprintln!("slowest first workflow task: {slowest} ms");
    let warned = run.stdout.contains("**Warning**: the first workflow tasks of ");
    assert_eq!(warned, slowest >= 2000, "{}", run.stdout);
    if warned {
        assert!(run.stdout.contains("lower --jobs"), "{}", run.stdout);
    }
}
