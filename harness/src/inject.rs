//! The one place where faults enter: SDK interceptors, so any workflow and activity can be wrapped.
//!
//! * [`PlanPropagator`] (workflow interceptor) copies the fault-plan header of the workflow onto
//!   every activity it schedules and every child workflow it starts.
//! * [`FaultInjector`] (activity inbound interceptor) reads that header in whichever worker process
//!   runs the activity, and applies the rules that fire for the attempt.

use crate::faults::{AttemptContext, AttemptKey, FaultPlan, HEADER_KEY};
use std::{cell::RefCell, collections::HashMap, time::SystemTime};
use temporalio_common::protos::temporal::api::common::v1::Payload;
use temporalio_sdk::activities::ActivityInfo;
use temporalio_sdk::{
    interceptors::{ActivityInboundInterceptor, ExecuteActivityInput, ExecuteActivityOutput, Next},
    workflow_interceptors::{
        CancellableWorkflowOutboundFuture, ExecuteWorkflowInput, ExecuteWorkflowResult, ScheduleActivityInput,
        ScheduleActivityResult, StartChildWorkflowInput, StartChildWorkflowResult, WorkflowInterceptor,
        WorkflowInterceptorConstructor, WorkflowInterceptorContext, WorkflowInterceptorFuture, WorkflowNext,
    },
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Encodes a plan as a JSON header payload.
pub fn plan_header(plan: &FaultPlan) -> Payload {
    Payload {
        metadata: HashMap::from([("encoding".to_owned(), b"json/plain".to_vec())]),
        data: serde_json::to_vec(plan).expect("a fault plan always serialises"),
        ..Default::default()
    }
}

/// Decodes a plan header; `None` when absent, with a warning when malformed.
fn read_plan(headers: &HashMap<String, Payload>) -> Option<FaultPlan> {
    let payload = headers.get(HEADER_KEY)?;
    match serde_json::from_slice(&payload.data) {
        Ok(plan) => Some(plan),
        Err(e) => {
            warn!(error = %e, "ignoring malformed {HEADER_KEY} header (harness version mismatch?)");
            None
        }
    }
}

/// Workflow interceptor that passes the fault-plan header down to activities and children.
#[derive(Default)]
pub struct PlanPropagator {
    header: RefCell<Option<Payload>>,
}

impl PlanPropagator {
    /// Constructor to register on a worker; one propagator per workflow instance.
    pub fn constructor() -> WorkflowInterceptorConstructor {
        WorkflowInterceptorConstructor::new(|_| PlanPropagator::default())
    }

    fn stamp(&self, headers: &mut HashMap<String, Payload>) {
        if let Some(h) = self.header.borrow().as_ref() {
            headers.insert(HEADER_KEY.to_owned(), h.clone());
        }
    }
}

impl WorkflowInterceptor for PlanPropagator {
    fn execute<'a>(
        &'a self,
        _ctx: WorkflowInterceptorContext,
        input: ExecuteWorkflowInput,
        next: WorkflowNext<'a, ExecuteWorkflowInput, WorkflowInterceptorFuture<'a, ExecuteWorkflowResult>>,
    ) -> WorkflowInterceptorFuture<'a, ExecuteWorkflowResult> {
        // Headers come from history, so this is deterministic on replay.
        *self.header.borrow_mut() = input.headers().get(HEADER_KEY).cloned();
        next.run(input)
    }

    fn schedule_activity(
        &self,
        _ctx: WorkflowInterceptorContext,
        mut input: ScheduleActivityInput,
        next: WorkflowNext<'static, ScheduleActivityInput, CancellableWorkflowOutboundFuture<ScheduleActivityResult>>,
    ) -> CancellableWorkflowOutboundFuture<ScheduleActivityResult> {
        self.stamp(input.headers_mut());
        next.run(input)
    }

    fn start_child_workflow(
        &self,
        _ctx: WorkflowInterceptorContext,
        mut input: StartChildWorkflowInput,
        next: WorkflowNext<
            'static,
            StartChildWorkflowInput,
            CancellableWorkflowOutboundFuture<StartChildWorkflowResult>,
        >,
    ) -> CancellableWorkflowOutboundFuture<StartChildWorkflowResult> {
        self.stamp(input.headers_mut());
        next.run(input)
    }
}

/// Activity interceptor that applies the fault rules firing on the current attempt.
pub struct FaultInjector {
    /// Cancelled when the worker shuts down; held attempts end then.
    shutdown: CancellationToken,
}

impl FaultInjector {
    /// An injector whose held faults end when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self { shutdown }
    }
}

/// When the server gives up on this attempt: the first of its close deadline (start-to-close
/// from its start, schedule-to-close from its scheduling, as the SDK computes it; the runner
/// always sets an execution timeout, so the server always gives the activity a
/// schedule-to-close) and its heartbeat deadline, when it has a heartbeat timeout.
fn deadline(info: &ActivityInfo) -> Option<SystemTime> {
    let heartbeat = info
        .started_time
        .zip(info.heartbeat_timeout.filter(|h| !h.is_zero()))
        .map(|(s, h)| s + h);
    [info.deadline, heartbeat].into_iter().flatten().min()
}

impl ActivityInboundInterceptor for FaultInjector {
    fn execute_activity<'a>(
        &'a self,
        input: ExecuteActivityInput,
        next: Next<'a, ExecuteActivityInput, ExecuteActivityOutput<'a>>,
    ) -> ExecuteActivityOutput<'a> {
        Box::pin(async move {
            if let Some(plan) = read_plan(input.headers()) {
                let info = input.activity_info();
                let key = AttemptKey {
                    workflow_id: info.workflow_id.as_deref().unwrap_or_default(),
                    activity_id: &info.activity_id,
                    activity_type: &info.activity_type,
                    attempt: info.attempt,
                };
                let deadline = deadline(info);
                for rule in plan.firing(&key) {
                    let fault = rule.action.fault();
                    info!(
                        workflow_id = key.workflow_id,
                        activity = key.activity_type,
                        attempt = key.attempt,
                        "injecting fault {}",
                        rule.describe()
                    );
                    let at = AttemptContext {
                        marker: rule.marker(),
                        attempt: key.attempt,
                        deadline,
                        shutdown: self.shutdown.clone(),
                    };
                    fault.inject(&at).await?;
                }
            }
            next.run(input).await
        })
    }
}
