//! The wire proxy's tests' shared pieces: an in-process proxy in front of a dev server, clients,
//! fault plans carried in the memo, and the histories that show what happened.

use std::time::Duration;
use temporal_chaos::{
    faults::{AttemptSelector, ErrorFault, FaultAction, FaultPlan, FaultRule, HEADER_KEY},
    history::HistoryFacts,
    plan::{ActivitySettings, ResilientInput, RetrySettings},
    target::{Endpoint, connect},
    wire::{WireProxy, WireSettings},
};
use temporalio_client::{Client, UntypedWorkflow, WorkflowFetchHistoryOptions, WorkflowStartOptions};
use temporalio_common::{MemoValues, protos::temporal::api::history::v1::HistoryEvent};

/// How long any one workflow of these tests may take.
pub const WAIT: Duration = Duration::from_secs(90);

/// An in-process wire proxy on a free loopback port in front of the frontend at `upstream`.
pub async fn start_proxy(upstream: &str) -> WireProxy {
    WireProxy::start(WireSettings::new(
        vec!["127.0.0.1:0".parse().unwrap()],
        Endpoint::local(upstream.to_owned(), "default".into()),
    ))
    .await
    .expect("the proxy starts")
}

/// A client of the frontend (or proxy) at `address`, in the `default` namespace.
pub async fn client(address: String) -> Client {
    connect(&Endpoint::local(address, "default".into()))
        .await
        .expect("connect")
        .0
}

/// A retryable error of `error_type` with `message`, as a fault.
pub fn retryable_error(message: &str, error_type: &str) -> FaultAction {
    FaultAction::Error(ErrorFault {
        message: message.into(),
        error_type: error_type.into(),
        non_retryable: false,
    })
}

/// Rule `id` of a fault plan: `action` on the `attempts` of `activity`.
pub fn rule(id: usize, activity: &str, attempts: &str, action: FaultAction) -> FaultRule {
    FaultRule {
        id,
        activity: activity.into(),
        attempts: AttemptSelector::parse(attempts).unwrap(),
        probability: None,
        action,
    }
}

/// A fault plan of `rules`, seed 1.
pub fn plan(rules: Vec<FaultRule>) -> FaultPlan {
    FaultPlan {
        seed: 1,
        rules,
        run_tag: String::new(),
    }
}

/// Activity settings: `start_to_close`, up to `maximum_attempts` tries 100 ms apart.
pub fn settings(start_to_close: Duration, maximum_attempts: u32) -> ActivitySettings {
    ActivitySettings {
        start_to_close: Some(start_to_close),
        retry: Some(RetrySettings {
            initial_interval: Duration::from_millis(100),
            backoff: 1.0,
            maximum_interval: None,
            maximum_attempts,
            non_retryable_types: Vec::new(),
        }),
        ..Default::default()
    }
}

/// The resilient workflow's input (21) with `activity` settings.
pub fn resilient(activity: ActivitySettings) -> ResilientInput {
    ResilientInput {
        value: 21,
        activity,
        fallback_b_error_types: Vec::new(),
    }
}

/// Start options with the plan in the memo and no plan header, so the SDK interceptor injects
/// nothing: whatever happens to an attempt, the proxy did it.
pub fn options(task_queue: &str, workflow_id: &str, plan: Option<&FaultPlan>) -> WorkflowStartOptions {
    let mut memo = MemoValues::new();
    if let Some(plan) = plan {
        memo.insert(HEADER_KEY, plan.clone());
    }
    WorkflowStartOptions::new(task_queue.to_owned(), workflow_id.to_owned())
        .execution_timeout(WAIT)
        .memo(memo)
        .build()
}

/// The history events of `workflow_id`.
pub async fn events(client: &Client, workflow_id: &str) -> Vec<HistoryEvent> {
    client
        .get_workflow_handle::<UntypedWorkflow>(workflow_id.to_owned())
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .expect("history")
}

/// What the history of `workflow_id` shows.
pub async fn history(client: &Client, workflow_id: &str) -> HistoryFacts {
    HistoryFacts::from_events(workflow_id, &events(client, workflow_id).await)
}
