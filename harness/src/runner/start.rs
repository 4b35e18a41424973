//! Starting a scenario's workflow (the demo types, or the user's type with JSON `args`) with its
//! fault plan, and more like it for a backlog.

use super::{RunError, RunSettings, faults_on_the_wire};
use crate::{
    faults::HEADER_KEY,
    infra::{InfraError, WorkflowStarter},
    inject::plan_header,
    plan::{Plan, WorkflowSpec},
    workflows::{Orchestration, ResilientCall},
};
use futures::future::{BoxFuture, FutureExt};
use std::{collections::HashMap, time::Duration};
use temporalio_client::{Client, UntypedWorkflow, WorkflowStartOptions};
use temporalio_common::{
    HasWorkflowDefinition, MemoValues,
    data_converters::RawValue,
    protos::temporal::api::common::v1::{Header, Payload},
};

/// Starts `plan`'s workflow as `workflow_id` on `task_queue`, with its fault plan (in the memo
/// for the wire proxy, or in the header for the SDK interceptors: never both, so that a harness
/// worker behind a proxy does not get its faults twice); returns its run id.
pub(super) async fn start_plan(
    client: &Client,
    plan: &Plan,
    settings: &RunSettings,
    task_queue: &str,
    workflow_id: &str,
    deadline: Duration,
) -> Result<String, RunError> {
    let mut memo = MemoValues::new();
    let mut header = HashMap::new();
    if faults_on_the_wire(plan, settings.inject) {
        memo.insert(HEADER_KEY, plan.faults.clone());
    } else {
        header.insert(HEADER_KEY.to_owned(), plan_header(&plan.faults));
    }
    let mut options = WorkflowStartOptions::new(task_queue.to_owned(), workflow_id.to_owned())
        .execution_timeout(deadline)
        .header(Header { fields: header })
        .memo(memo)
        .static_summary(format!("temporal-chaos scenario {}", plan.name))
        .build();
    options.task_timeout = plan.workflow_task_timeout;
    match &plan.workflow {
        WorkflowSpec::Orchestration(input) => start(client, Orchestration::run, input.clone(), options).await,
        WorkflowSpec::Resilient(input) => start(client, ResilientCall::run, input.clone(), options).await,
        WorkflowSpec::User(user) => {
            let args = RawValue::new(user.args.iter().map(json_payload).collect());
            start(client, UntypedWorkflow::new(&user.workflow_type), args, options).await
        }
    }
}

/// More workflows like the scenario's, started by a kind that needs a backlog
/// (`workflows_down`): `<workflow id>-backlog-<n>`.
pub(super) struct Backlog<'a> {
    /// The scenario's client.
    pub client: &'a Client,
    /// The scenario's plan, as run.
    pub plan: &'a Plan,
    /// The run's settings.
    pub settings: &'a RunSettings,
    /// The scenario's task queue.
    pub task_queue: &'a str,
    /// The scenario's workflow id, which theirs extend.
    pub workflow_id: &'a str,
    /// Their server-side deadline.
    pub deadline: Duration,
    /// Their ids, in order.
    pub started: std::sync::Mutex<Vec<String>>,
}

impl WorkflowStarter for Backlog<'_> {
    fn start_another(&self) -> BoxFuture<'_, Result<String, InfraError>> {
        async move {
            let n = self
                .started
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len()
                + 1;
            let id = format!("{}-backlog-{n}", self.workflow_id);
            start_plan(
                self.client,
                self.plan,
                self.settings,
                self.task_queue,
                &id,
                self.deadline,
            )
            .await
            .map_err(|e| InfraError::Start {
                workflow_id: id.clone(),
                reason: e.to_string(),
            })?;
            self.started
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(id.clone());
            Ok(id)
        }
        .boxed()
    }
}

/// A JSON value as a `json/plain` payload, as every SDK's default converter reads it.
fn json_payload(value: &serde_json::Value) -> Payload {
    Payload {
        metadata: HashMap::from([("encoding".to_owned(), b"json/plain".to_vec())]),
        data: serde_json::to_vec(value).unwrap_or_default(),
        ..Default::default()
    }
}

/// Starts the workflow; returns its run id.
pub(crate) async fn start<W>(
    client: &Client,
    workflow: W,
    input: W::Input,
    options: WorkflowStartOptions,
) -> Result<String, RunError>
where
    W: HasWorkflowDefinition,
    W::Input: Send,
{
    let workflow_id = options.workflow_id.clone();
    let handle = client
        .start_workflow(workflow, input, options)
        .await
        .map_err(|source| RunError::Start { workflow_id, source })?;
    Ok(handle.info().run_id.clone().unwrap_or_default())
}
