//! Verdicts that must not depend on the server's way of recording things: a retry that never
//! started (history then records no attempt number) still counts the attempts that ran, and a
//! start-to-close cut that the server records as a schedule-to-close timeout is explained.

mod common;

use common::{chaos_run, check, resilient_scenario as scenario};
use std::path::Path;

/// Attempt 1 fails at once with an injected error; its retry is due 3 s later, but the worker is
/// killed at 1.5 s and back only after the 5 s schedule-to-close timeout, so the retry never
/// starts. History then has no `ActivityTaskStarted` for `risky` at all.
fn retry_never_started(dir: &Path) -> String {
    scenario(
        dir,
        "retry-never-started",
        "start_to_close = \"2s\"\nschedule_to_close = \"5s\"\n\
         [activity.retry]\ninitial_interval = \"3s\"\nmaximum_attempts = 5",
        "[[fault]]\nactivity = \"risky\"\nattempts = [1]\nkind = \"error\"\ntype = \"Declined\"\n\
         [[infra]]\nkind = \"worker_crash\"\nafter = \"1500ms\"\nduration = \"6s\"\n\
         [expect]\noutcome = \"fallback-A\"\nfailure = \"error:Declined\"\n",
    )
}

#[test]
fn a_retry_that_never_started_still_counts_the_attempts_that_ran() {
    let dir = tempfile::tempdir().unwrap();
    let file = retry_never_started(dir.path());

    // The wire proxy saw attempt 1 and injected the fault: the count is exact, the fault fired.
    let wire = chaos_run(&["--inject", "wire", &file]);
    let scenario = wire.scenario("retry-never-started");
    assert_eq!(scenario["verdict"], "passed", "{}", wire.stdout);
    assert_eq!(scenario["attempts"]["risky"], 1, "{scenario:#}");
    assert!(scenario.get("attempts_at_least").is_none(), "{scenario:#}");
    let fired = check(scenario, "fault #1 fired");
    let observed = fired["observed"].as_str().unwrap();
    assert!(
        observed.starts_with("attempt 1: [chaos fault #1]")
            && observed.contains("the wire proxy's log shows it injected on risky attempt 1"),
        "{observed}"
    );

    // With the harness's own worker and no proxy, history alone says at least one attempt ran
    // (the timeout's cause is its failure), and the fault that fired on it is not "never fired".
    let sdk = chaos_run(&[&file]);
    let scenario = sdk.scenario("retry-never-started");
    assert_eq!(scenario["verdict"], "passed", "{}", sdk.stdout);
    assert_eq!(scenario["attempts"]["risky"], 1, "{scenario:#}");
    assert_eq!(
        scenario["attempts_at_least"],
        serde_json::json!(["risky"]),
        "{scenario:#}"
    );
    assert!(sdk.stdout.contains("risky×≥1"), "{}", sdk.stdout);
    let fired = check(scenario, "fault #1 fired");
    assert_eq!(fired["passed"], true, "{fired:#}");
    assert!(
        !fired["observed"].as_str().unwrap().contains("never fired"),
        "{fired:#}"
    );
    let failure = check(scenario, "failure");
    assert!(
        failure["observed"]
            .as_str()
            .unwrap()
            .contains("risky the last attempt that ran: application error Declined"),
        "{failure:#}"
    );
}

#[test]
fn an_attempt_cut_by_start_to_close_is_explained_when_history_says_schedule_to_close() {
    let dir = tempfile::tempdir().unwrap();
    // The 2 s retry does not fit in what is left of the 3 s schedule-to-close when attempt 1 is
    // cut off after its 2 s start-to-close: the server records SCHEDULE_TO_CLOSE.
    let file = scenario(
        dir.path(),
        "cut-by-start-to-close",
        "start_to_close = \"2s\"\nschedule_to_close = \"3s\"\n\
         [activity.retry]\ninitial_interval = \"2s\"\nmaximum_attempts = 3",
        "[[fault]]\nactivity = \"risky\"\nattempts = [1]\nkind = \"hang\"\n\
         [expect]\noutcome = \"fallback-A\"\nattempts = { risky = 1 }\nfailure = \"timeout:start_to_close\"\n",
    );
    let run = chaos_run(&[&file]);
    let scenario = run.scenario("cut-by-start-to-close");
    assert_eq!(scenario["verdict"], "passed", "{}", run.stdout);
    let failure = check(scenario, "failure");
    let observed = failure["observed"].as_str().unwrap();
    assert!(
        observed.contains("risky attempt 1: schedule_to_close timeout")
            && observed.contains("risky attempt 1 was cut off by its start-to-close timeout (2s, after ")
            && observed.contains("no retry fitted in what was left of the schedule-to-close timeout"),
        "{observed}"
    );
    assert!(
        failure["link"].is_string(),
        "the evidence links to the timeout event: {failure:#}"
    );
}
