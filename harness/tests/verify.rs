//! Verification against a fixed history: every expectation, the evidence of each failed check,
//! and faults that did not fire.

mod common;

use common::fixture::{FAULT, fallback_b_history, fallback_b_plan};
use temporal_chaos::{
    history::Histories,
    verify::{Check, Evidence, verify},
};

fn run(expect: &str, faults: &str) -> Vec<Check> {
    let h = Histories {
        root: fallback_b_history("wf-1"),
        children: vec![],
    };
    verify(&fallback_b_plan("p", expect, faults), &h, &[], &[], None, &[])
}

#[test]
fn history_facts_are_read() {
    let h = fallback_b_history("wf-1");
    assert_eq!(h.activities.len(), 2);
    assert_eq!(h.activities[0].attempts, 3);
    assert_eq!(h.activities[0].close_event_id, Some(4));
    assert_eq!(h.duration(), Some(std::time::Duration::from_secs(7)));
}

#[test]
fn matching_expectations_all_pass() {
    let checks = run(
        "outcome = \"fallback-B\"\nresult = 0\nattempts = { risky = 3 }\nfailure = \"error:ServiceUnavailable\"\ntime_budget = \"10s\"",
        FAULT,
    );
    assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "outcome",
            "fallback after retries ended",
            "result",
            "attempts[risky]",
            "failure",
            "time_budget",
            "fault #1 fired"
        ]
    );
}

#[test]
fn a_wrong_expectation_names_expected_observed_and_event() {
    let checks = run(
        "outcome = \"fallback-B\"\nattempts = { risky = 2 }\ntime_budget = \"5s\"",
        FAULT,
    );
    let bad: Vec<&Check> = checks.iter().filter(|c| !c.passed).collect();
    assert_eq!(bad.len(), 2, "{checks:#?}");
    assert_eq!((bad[0].expected.as_str(), bad[0].observed.as_str()), ("2", "3"));
    assert_eq!(
        bad[0].evidence,
        Some(Evidence {
            workflow_id: "wf-1".into(),
            event_id: 4
        })
    );
    assert_eq!(bad[1].name, "time_budget");
    assert_eq!(bad[1].observed, "took 7000 ms");
}

#[test]
fn a_fault_that_never_fired_fails() {
    let late = "[[fault]]\nactivity = \"risky\"\nattempts = [3]\nkind = \"hang\"\n";
    let checks = run("outcome = \"fallback-B\"", &format!("{FAULT}{late}"));
    let fired: Vec<&Check> = checks.iter().filter(|c| c.name.starts_with("fault")).collect();
    assert!(fired[0].passed);
    // Fault #2 targets attempt 3, which did run, but history shows an application error there.
    assert!(
        !fired[1].passed && fired[1].observed.contains("not this fault"),
        "{:?}",
        fired[1]
    );
    let never = "[[fault]]\nactivity = \"fallback_a\"\nkind = \"hang\"\n";
    let checks = run("outcome = \"fallback-B\"", never);
    let c = checks.iter().find(|c| c.name == "fault #1 fired").unwrap();
    assert!(!c.passed && c.observed.starts_with("never fired"), "{c:?}");
}

#[test]
fn a_probabilistic_fault_that_was_never_drawn_says_so() {
    // At probability 0.01 the scenario's seed (0) draws the fault on none of the three attempts.
    let rare = "[[fault]]\nactivity = \"risky\"\nkind = \"hang\"\nprobability = 0.01\n";
    let checks = run("outcome = \"fallback-B\"", rare);
    let c = checks.iter().find(|c| c.name == "fault #1 fired").unwrap();
    assert!(!c.passed, "{c:?}");
    assert!(
        c.observed.contains("the draw missed every targeted attempt")
            && c.observed.contains("try another `seed`")
            && c.observed.contains("higher `probability`"),
        "{c:?}"
    );
}

/// The wire proxy's record of `risky` attempt `attempt` of workflow `wf-1`, with fault #1
/// injected or not.
fn seen_on_the_wire(attempt: u32, injected: bool) -> temporal_chaos::wire::AttemptRecord {
    use temporal_chaos::wire::{AttemptRecord, Injection, WireEffect};
    AttemptRecord {
        workflow_id: "wf-1".into(),
        run_id: "run-1".into(),
        activity_id: "1".into(),
        activity_type: "risky".into(),
        attempt,
        task_ms: 1_000 * u64::from(attempt),
        eager: false,
        delivered: !injected,
        deadline_ms: None,
        injected: injected
            .then(|| Injection {
                rule: 1,
                effect: WireEffect::Fail {
                    error_type: "ServiceUnavailable".into(),
                    message: "[chaos fault #1] 503".into(),
                    non_retryable: false,
                },
            })
            .into_iter()
            .collect(),
        plan_error: None,
        answered_ms: None,
        answer: None,
        heartbeats_forwarded: 0,
        heartbeats_swallowed: 0,
        upstream: vec![],
    }
}

#[test]
fn with_the_wire_proxy_a_fault_must_be_in_its_log_for_every_targeted_attempt() {
    let h = Histories {
        root: fallback_b_history("wf-1"),
        children: vec![],
    };
    let plan = fallback_b_plan("p", "outcome = \"fallback-B\"", FAULT);
    let fired = |wire: &[temporal_chaos::wire::AttemptRecord]| {
        verify(&plan, &h, &[], wire, None, &[])
            .into_iter()
            .find(|c| c.name == "fault #1 fired")
            .unwrap()
    };
    let all: Vec<_> = (1..=3).map(|a| seen_on_the_wire(a, true)).collect();
    let proven = fired(&all);
    assert!(proven.passed, "{proven:?}");
    assert!(
        proven
            .observed
            .ends_with("the wire proxy's log shows it injected on risky attempt 1, risky attempt 2, risky attempt 3"),
        "{proven:?}"
    );
    let gaps = [seen_on_the_wire(1, true), seen_on_the_wire(2, false)];
    let contradicted = fired(&gaps);
    assert!(!contradicted.passed);
    assert!(
        contradicted.observed.ends_with(
            "the wire proxy's log: risky attempt 2 went through the proxy without this fault; risky attempt 3 is not in the proxy's log"
        ),
        "{contradicted:?}"
    );
}

#[test]
fn an_error_type_of_an_earlier_attempt_is_found_in_the_wire_log() {
    let h = Histories {
        root: fallback_b_history("wf-1"),
        children: vec![],
    };
    let plan = fallback_b_plan("p", "outcome = \"fallback-B\"\nfailure = \"error:CardDeclined\"", FAULT);
    let failure = |wire: &[temporal_chaos::wire::AttemptRecord]| {
        verify(&plan, &h, &[], wire, None, &[])
            .into_iter()
            .find(|c| c.name == "failure")
            .unwrap()
    };
    assert!(!failure(&[]).passed, "history keeps only ServiceUnavailable");
    let mut declined = seen_on_the_wire(1, false);
    declined.answer = Some(temporal_chaos::wire::Answer::Failed {
        failure_type: "CardDeclined".into(),
        message: "declined".into(),
    });
    let found = failure(&[declined]);
    assert!(found.passed, "{found:?}");
    assert!(
        found.observed.ends_with(
            "the wire proxy's log shows risky attempt 1 failed with it (history keeps only the last failure)"
        ),
        "{found:?}"
    );
}

/// A history the Python SDK (1.35) wrote against server 1.32, as `temporal workflow show --output
/// json` prints it: a workflow that ran `my_local_act` as a local activity.
#[test]
fn a_fault_on_a_local_activity_says_it_ran_as_one() {
    use temporal_chaos::history::{HistoryFacts, json};
    let path = common::repo().join("harness/tests/fixtures/local-activity-history.json");
    let events = json::from_json(&std::fs::read(path).unwrap()).unwrap();
    let facts = HistoryFacts::from_events("la-wf", &events);
    assert_eq!(facts.local_activities, ["my_local_act"]);
    assert!(facts.activities.is_empty(), "no activity task of its own");
    let plan = temporal_chaos::scenario::parse(
        std::path::Path::new("local.toml"),
        "name = \"local\"\nworkflow = \"LocalActWorkflow\"\ntask_queue = \"la-q\"\n\
         [[fault]]\nactivity = \"my_local_act\"\nkind = \"error\"\ntype = \"Flaky\"\n\
         [expect]\noutcome = \"completed\"\n",
    )
    .unwrap();
    let h = Histories {
        root: facts,
        children: vec![],
    };
    let checks = verify(&plan, &h, &[], &[], None, &[]);
    let fired = checks.iter().find(|c| c.name == "fault #1 fired").unwrap();
    assert!(!fired.passed);
    assert!(
        fired.observed.contains("my_local_act ran as a local activity")
            && fired.observed.contains("never reach the wire"),
        "{fired:?}"
    );
}
