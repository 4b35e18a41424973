//! Watching a started workflow: its infrastructure faults' triggers, a workflow that gets
//! nowhere (its tasks keep failing, or no worker takes it), and its close.

use super::workers;
use crate::{
    infra::{self, InfraControl, InfraEvent, InfraOutcome, InfraRule, Trigger},
    wait::poll,
};
use std::time::{Duration, Instant};
use temporalio_client::{
    Client, UntypedWorkflow, WorkflowGetResultOptions, WorkflowTerminateOptions, errors::WorkflowGetResultError,
    tonic::IntoRequest,
};
use temporalio_common::protos::temporal::api::{
    common::v1::WorkflowExecution,
    enums::v1::{PendingActivityState, PendingWorkflowTaskState},
    history::v1::history_event::Attributes,
    workflowservice::v1::{DescribeWorkflowExecutionRequest, DescribeWorkflowExecutionResponse},
};
use tokio::sync::Notify;
use tracing::warn;

/// How often the server is asked whether a triggering attempt has started.
const TRIGGER_POLL: Duration = Duration::from_millis(100);

/// Why a workflow's tasks get nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stuck {
    /// The worker failed its workflow task and failed it again, with this message.
    Failing(String),
    /// No worker took its first workflow task in this long, and none had polled its task queue
    /// for [`NOT_PICKED_UP`].
    NotPickedUp(Duration),
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stuck::Failing(message) => write!(f, "the workflow task keeps failing: {message}"),
            Stuck::NotPickedUp(_) => write!(f, "no worker took its first workflow task"),
        }
    }
}

/// How long a workflow's first task may wait for a worker when no worker polls its task queue
/// meanwhile. A worker whose poll is open takes a task at once; one that is busy polls again as
/// soon as it can, so a task it is behind on waits, but its poll times stay recent.
pub(super) const NOT_PICKED_UP: Duration = Duration::from_secs(10);

/// Resolves once the workflow's tasks get nowhere: its task has failed on the worker and failed
/// again (the server shows its third attempt, the last closed one a failure, and two attempts
/// more than when the watch began: a task that failed during a fault, e.g. a breaking deploy, gets
/// two more tries once the fault is over), or its first task
/// was not taken for [`NOT_PICKED_UP`] while no worker polled `task_queue` (the server's last
/// access time of every poller older than that). Never resolves for a healthy workflow, nor for
/// one whose worker is polling but behind. `began` is when the workflow was started.
pub(super) async fn stuck_workflow_task(
    client: &Client,
    namespace: &str,
    workflow_id: &str,
    task_queue: &str,
    began: Instant,
) -> Stuck {
    let waiting_since = std::cell::Cell::new(None::<Instant>);
    let first_attempt = std::cell::Cell::new(None::<i32>);
    let stuck = poll(
        Duration::from_millis(500),
        None,
        || (),
        || async {
            let Some(described) = describe(client, namespace, workflow_id).await else {
                return Ok(None);
            };
            let first_task_waits = described
                .workflow_execution_info
                .as_ref()
                .is_some_and(|i| i.history_length <= 2)
                && described
                    .pending_workflow_task
                    .as_ref()
                    .is_some_and(|t| t.state == PendingWorkflowTaskState::Scheduled as i32);
            let since = first_task_waits.then(|| waiting_since.get().unwrap_or_else(Instant::now));
            waiting_since.set(since);
            if let Some(since) = since.filter(|s| s.elapsed() >= NOT_PICKED_UP) {
                // The server's clock now, without comparing clocks: its start time plus ours since.
                let started = described
                    .workflow_execution_info
                    .as_ref()
                    .and_then(|i| i.start_time.as_ref())
                    .map(|t| (t.seconds, t.nanos));
                // A server that does not answer says nothing about the workers: ask again.
                let Some(pollers) = workers::workflow_pollers(client, namespace, task_queue).await else {
                    return Ok(None);
                };
                let recent = started.is_none_or(|(seconds, nanos)| {
                    let now = Duration::new(seconds.max(0) as u64, nanos.max(0) as u32) + began.elapsed();
                    let quiet_since = now.saturating_sub(NOT_PICKED_UP);
                    pollers.iter().any(|p| {
                        p.last_access_time.as_ref().is_some_and(|t| {
                            Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32) >= quiet_since
                        })
                    })
                });
                if !recent {
                    return Ok(Some(Stuck::NotPickedUp(since.elapsed())));
                }
            }
            let attempt = described.pending_workflow_task.map_or(0, |t| t.attempt);
            let first = first_attempt.get().unwrap_or(attempt);
            first_attempt.set(Some(first));
            if attempt < 3.max(first + 2) {
                return Ok(None);
            }
            // Retried workflow tasks are transient: history keeps the first failure only.
            let Ok(events) = crate::history::read_events(client, workflow_id).await else {
                return Ok(None);
            };
            let last_closed = events.iter().rev().find_map(|e| match &e.attributes {
                Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => {
                    Some(Some(a.failure.as_ref().map(|f| f.message.clone()).unwrap_or_default()))
                }
                Some(
                    Attributes::WorkflowTaskCompletedEventAttributes(_)
                    | Attributes::WorkflowTaskTimedOutEventAttributes(_),
                ) => Some(None),
                _ => None,
            });
            Ok(last_closed.flatten().map(Stuck::Failing))
        },
    );
    let stuck: Result<Stuck, ()> = stuck.await;
    stuck.unwrap_or(Stuck::NotPickedUp(NOT_PICKED_UP))
}

/// Terminates the workflow, saying `why`; a failure to do so is only logged.
pub(super) async fn terminate(client: &Client, workflow_id: &str, why: &str) {
    let handle = client.get_workflow_handle::<UntypedWorkflow>(workflow_id.to_owned());
    let reason = WorkflowTerminateOptions::builder()
        .reason(format!("temporal-chaos: {why}"))
        .build();
    if let Err(e) = handle.terminate(reason).await {
        warn!(workflow_id, error = %e, "could not terminate");
    }
}

/// Waits for the rule's trigger, then applies it; gives up if the workflow closes first.
pub(super) async fn drive(
    rule: &InfraRule,
    ctl: &InfraControl<'_>,
    client: &Client,
    namespace: &str,
    workflow_id: &str,
    began: Instant,
    closed: &Notify,
) -> InfraEvent {
    let not_fired = |why: String| InfraEvent {
        id: rule.id,
        rule: rule.describe(),
        started_ms: None,
        ended_ms: None,
        at_unix_ms: None,
        outcome: InfraOutcome::NotTriggered(why),
    };
    tokio::select! {
        () = wait_trigger(&rule.trigger, client, namespace, workflow_id, began) => {}
        _ = closed.notified() => {
            return not_fired(format!("the workflow closed before the trigger ({}) fired", rule.trigger));
        }
    };
    infra::apply(rule, ctl, began).await
}

/// Resolves when the trigger fires: at a time, or when the server reports the attempt started.
async fn wait_trigger(trigger: &Trigger, client: &Client, namespace: &str, workflow_id: &str, began: Instant) {
    match trigger {
        Trigger::After(d) => {
            tokio::time::sleep_until((began + *d).into()).await;
        }
        Trigger::AttemptStarted { activity, attempt } => {
            let started = poll(
                TRIGGER_POLL,
                None,
                || (),
                || async move {
                    let Some(described) = describe(client, namespace, workflow_id).await else {
                        return Ok(None);
                    };
                    let pending = described.pending_activities;
                    let started = pending.iter().any(|p| {
                        p.activity_type.as_ref().is_some_and(|t| &t.name == activity)
                            && (p.attempt as u32 > *attempt
                                || (p.attempt as u32 == *attempt && p.state == PendingActivityState::Started as i32))
                    });
                    Ok(started.then_some(()))
                },
            );
            // Without a time limit, polling only ends with the answer.
            let _: Result<(), ()> = started.await;
        }
    }
}

/// The workflow's latest run as the server describes it; `None` while the server does not answer
/// (it may be paused or restarting).
async fn describe(client: &Client, namespace: &str, workflow_id: &str) -> Option<DescribeWorkflowExecutionResponse> {
    let request = DescribeWorkflowExecutionRequest {
        namespace: namespace.to_owned(),
        execution: Some(WorkflowExecution {
            workflow_id: workflow_id.to_owned(),
            run_id: String::new(),
        }),
    };
    let mut svc = client.connection().workflow_service();
    let described = svc.describe_workflow_execution(request.into_request()).await;
    described.ok().map(|r| r.into_inner())
}

/// Waits until the workflow closes, riding out server restarts and pauses; terminates it if it is
/// still open after `wait` (the server-side execution timeout should have closed it by then).
pub(crate) async fn wait_closed(client: &Client, workflow_id: &str, wait: Duration) {
    let handle = client.get_workflow_handle::<UntypedWorkflow>(workflow_id.to_owned());
    let give_up = Instant::now() + wait;
    loop {
        let left = give_up.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, handle.get_result(WorkflowGetResultOptions::default())).await {
            // Any close counts (the result itself is read from history).
            Ok(Ok(_) | Err(WorkflowGetResultError::Failed(_) | WorkflowGetResultError::Terminated { .. }))
            | Ok(Err(WorkflowGetResultError::Cancelled { .. } | WorkflowGetResultError::TimedOut))
            | Ok(Err(WorkflowGetResultError::ContinuedAsNew)) => return,
            Ok(Err(e)) => {
                warn!(workflow_id, error = %e, "waiting for the result failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(_) => break,
        }
    }
    warn!(workflow_id, "workflow still open after {wait:?}; terminating it");
    terminate(client, workflow_id, "scenario deadline passed").await;
}
