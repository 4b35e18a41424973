//! No fault outlives its attempt: a `hang` or `delay` ends at the attempt's real deadline, whatever
//! close and heartbeat timeouts the scenario sets, so `chaos run` exits soon after its last
//! workflow closes (before, a hang under a lone start-to-close timeout held the run ~600 s).
//!
//! The bound below is a correctness bound (released at the deadline, not 10 minutes later), set
//! wide enough for a loaded CI machine; the measured gap is printed.

mod common;

use common::{chaos, text};
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// Longest acceptable time from the workflow's close to the process's exit: the worker's
/// shutdown grace (2 s), stopping the server, and slack for a busy machine.
const EXIT_AFTER_CLOSE: Duration = Duration::from_secs(12);

/// Runs one resilient scenario with `activity` settings and `fault`; checks it passed and
/// returns how long after its workflow closed the run exited.
fn exit_gap(name: &str, activity: &str, fault: &str, expect: &str) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.toml"));
    std::fs::write(
        &file,
        format!(
            "name = \"{name}\"\nworkflow = \"resilient\"\n[input]\nvalue = 21\n[activity]\n{activity}\n\
             [activity.retry]\ninitial_interval = \"200ms\"\nmaximum_interval = \"1s\"\nmaximum_attempts = 2\n\
             [[fault]]\nactivity = \"risky\"\nattempts = [1]\n{fault}\n[expect]\n{expect}\n"
        ),
    )
    .unwrap();
    let reports = dir.path().join("reports");
    let out = chaos(&["run", file.to_str().unwrap(), "--reports", reports.to_str().unwrap()]);
    let exited = SystemTime::now();
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("latest/report.json")).unwrap()).unwrap();
    let closed = report["scenarios"][0]["history"]["root"]["closed_at"]
        .as_str()
        .expect("the workflow closed");
    let closed = humantime::parse_rfc3339(closed).unwrap();
    let gap = exited.duration_since(closed).unwrap_or_default();
    eprintln!(
        "{name}: chaos run exited {} ms after the workflow closed",
        gap.as_millis()
    );
    assert!(
        gap < EXIT_AFTER_CLOSE,
        "{name}: chaos run exited {gap:?} after its workflow closed: a held fault outlived its attempt"
    );
    gap
}

const HANG: &str = "kind = \"hang\"";
const RETRIED: &str = "outcome = \"completed\"\nresult = 42\nattempts = { risky = 2 }";

#[test]
fn hang_under_start_to_close_alone() {
    exit_gap("hang-start-to-close", "start_to_close = \"2s\"", HANG, RETRIED);
}

#[test]
fn hang_under_schedule_to_close_alone() {
    exit_gap(
        "hang-schedule-to-close",
        "schedule_to_close = \"3s\"",
        HANG,
        "outcome = \"fallback-A\"\nresult = 21\nattempts = { risky = 1 }",
    );
}

#[test]
fn hang_under_a_heartbeat_timeout_and_a_long_start_to_close() {
    exit_gap(
        "hang-heartbeat",
        "start_to_close = \"60s\"\nheartbeat_timeout = \"1s\"",
        HANG,
        &format!("{RETRIED}\nfailure = \"timeout:heartbeat\""),
    );
}

#[test]
fn hang_under_start_to_close_and_schedule_to_close() {
    exit_gap(
        "hang-both-close-timeouts",
        "start_to_close = \"2s\"\nschedule_to_close = \"30s\"",
        HANG,
        RETRIED,
    );
}

#[test]
fn delay_longer_than_its_attempt() {
    exit_gap(
        "delay-past-start-to-close",
        "start_to_close = \"2s\"",
        "kind = \"delay\"\nduration = \"60s\"",
        &format!("{RETRIED}\nfailure = \"timeout:start_to_close\""),
    );
}
