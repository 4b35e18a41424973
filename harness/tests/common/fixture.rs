//! A fixed history of the resilient workflow and the scenario that goes with it, shared by the
//! verification and rendering tests.

use std::path::Path;
use temporal_chaos::{history::HistoryFacts, plan::Plan, scenario};
use temporalio_common::protos::temporal::api::{
    common::v1::{ActivityType, Payload, Payloads},
    enums::v1::RetryState,
    failure::v1::{ApplicationFailureInfo, Failure, failure::FailureInfo},
    history::v1::{
        ActivityTaskCompletedEventAttributes, ActivityTaskFailedEventAttributes, ActivityTaskScheduledEventAttributes,
        ActivityTaskStartedEventAttributes, HistoryEvent, WorkflowExecutionCompletedEventAttributes,
        WorkflowExecutionStartedEventAttributes, history_event::Attributes,
    },
};

/// The fault that explains [`fallback_b_history`].
pub const FAULT: &str = "[[fault]]\nactivity = \"risky\"\nkind = \"error\"\ntype = \"ServiceUnavailable\"\n";

/// Risky failed three times with ServiceUnavailable (the marker of fault #1), then fallback B
/// answered 0; one event a second.
pub fn fallback_b_history(workflow_id: &str) -> HistoryFacts {
    let failure = || Failure {
        message: "[chaos fault #1] 503".into(),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo {
            r#type: "ServiceUnavailable".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let scheduled = |name: &str, id: &str| {
        Attributes::ActivityTaskScheduledEventAttributes(ActivityTaskScheduledEventAttributes {
            activity_id: id.into(),
            activity_type: Some(ActivityType { name: name.into() }),
            ..Default::default()
        })
    };
    let attrs = vec![
        Attributes::WorkflowExecutionStartedEventAttributes(WorkflowExecutionStartedEventAttributes {
            original_execution_run_id: format!("run-of-{workflow_id}"),
            ..Default::default()
        }),
        scheduled("risky", "1"),
        Attributes::ActivityTaskStartedEventAttributes(ActivityTaskStartedEventAttributes {
            scheduled_event_id: 2,
            attempt: 3,
            last_failure: Some(failure()),
            ..Default::default()
        }),
        Attributes::ActivityTaskFailedEventAttributes(ActivityTaskFailedEventAttributes {
            scheduled_event_id: 2,
            failure: Some(failure()),
            retry_state: RetryState::MaximumAttemptsReached as i32,
            ..Default::default()
        }),
        scheduled("fallback_b", "2"),
        Attributes::ActivityTaskStartedEventAttributes(ActivityTaskStartedEventAttributes {
            scheduled_event_id: 5,
            attempt: 1,
            ..Default::default()
        }),
        Attributes::ActivityTaskCompletedEventAttributes(ActivityTaskCompletedEventAttributes {
            scheduled_event_id: 5,
            ..Default::default()
        }),
        Attributes::WorkflowExecutionCompletedEventAttributes(WorkflowExecutionCompletedEventAttributes {
            result: Some(Payloads {
                payloads: vec![Payload {
                    data: br#"{"path":"fallback-B","value":0,"reason":"ServiceUnavailable"}"#.to_vec(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
    ];
    let events: Vec<HistoryEvent> = attrs
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let mut event = HistoryEvent {
                event_id: i as i64 + 1,
                event_time: Some(Default::default()),
                attributes: Some(a),
                ..Default::default()
            };
            if let Some(t) = event.event_time.as_mut() {
                t.seconds = 1_800_000_000 + i as i64;
            }
            event
        })
        .collect();
    HistoryFacts::from_events(workflow_id, &events)
}

/// The resilient scenario `name` (3 attempts, fallback B on ServiceUnavailable) with `faults` and
/// `expect` (the `[expect]` lines).
pub fn fallback_b_plan(name: &str, expect: &str, faults: &str) -> Plan {
    let text = format!(
        "name = \"{name}\"\ndescription = \"Risky fails; fallback B answers.\"\nworkflow = \"resilient\"\n\
         [input]\nvalue = 21\n[activity]\nstart_to_close = \"2s\"\n[activity.retry]\nmaximum_attempts = 3\n\
         [fallback]\nb_error_types = [\"ServiceUnavailable\"]\n{faults}\n[expect]\n{expect}\n"
    );
    scenario::parse(Path::new(&format!("scenarios/{name}.toml")), &text).unwrap_or_else(|d| panic!("{d:?}"))
}
