//! The one place where faults enter: SDK interceptors, so any workflow and activity can be wrapped.
//!
//! * [`PlanPropagator`] (workflow interceptor) copies the fault-plan header of the workflow onto
//!   every activity it schedules and every child workflow it starts.
//! * [`FaultInjector`] (activity inbound interceptor) reads that header in whichever worker process
//!   runs the activity, and applies the rules that fire for the attempt.

use crate::faults::{AttemptContext, AttemptKey, FaultPlan, HEADER_KEY};
use std::{cell::RefCell, collections::HashMap};
use temporalio_common::protos::temporal::api::common::v1::Payload;
use temporalio_sdk::{
    interceptors::{ActivityInboundInterceptor, ExecuteActivityInput, ExecuteActivityOutput, Next},
    workflow_interceptors::{
        CancellableWorkflowOutboundFuture, ExecuteWorkflowInput, ExecuteWorkflowResult, ScheduleActivityInput,
        ScheduleActivityResult, StartChildWorkflowInput, StartChildWorkflowResult, WorkflowInterceptor,
        WorkflowInterceptorConstructor, WorkflowInterceptorContext, WorkflowInterceptorFuture, WorkflowNext,
    },
};
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
pub struct FaultInjector;

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
                // The server gives up at the first of the close deadline and a missed heartbeat.
                let heartbeat_deadline = info.started_time.zip(info.heartbeat_timeout).map(|(s, h)| s + h);
                let deadline = match (info.deadline, heartbeat_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
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
                    };
                    fault.inject(&at).await?;
                }
            }
            next.run(input).await
        })
    }
}
