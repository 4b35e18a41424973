//! `workflow_task_failure`: workflow tasks failed as if the workflow code had raised.

use super::{
    Capability, InfraControl, InfraError, InfraFault, TaskAction,
    calls::{on_tasks, one_task},
};
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The wire proxy fails the next `tasks` workflow tasks handed out during the duration on the
/// worker's behalf (`RespondWorkflowTaskFailed`, cause "unhandled failure", as when the workflow
/// code raises); the worker gets an empty poll. History shows a `WorkflowTaskFailed`; the server
/// hands the task out again and the workflow goes on unaffected. Any SDK language. Failures of
/// one task in a row are one event in history (its later attempts are transient): `tasks = 3`
/// on a workflow's first task shows as one `WorkflowTaskFailed` standing for 3 attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowTaskFailure {
    /// How many workflow tasks it fails.
    #[serde(default = "one_task")]
    pub tasks: std::num::NonZeroU32,
    /// The failure's message in history (after `[chaos infra #N]`).
    #[serde(default = "default_message")]
    pub message: String,
}

fn default_message() -> String {
    "workflow task failed by temporal-chaos".into()
}

impl InfraFault for WorkflowTaskFailure {
    fn needs(&self) -> Capability {
        Capability::WorkerCalls
    }

    fn apply<'a>(
        &'a self,
        ctl: &'a InfraControl<'a>,
        rule: usize,
        duration: Duration,
    ) -> BoxFuture<'a, Result<String, InfraError>> {
        let action = TaskAction::Fail(format!("[chaos infra #{rule}] {}", self.message));
        async move {
            let none = "no workflow task was handed out through the wire proxy meanwhile";
            on_tasks(ctl, rule, duration, (self.tasks, action), "failed", none).await
        }
        .boxed()
    }

    fn describe(&self) -> String {
        format!("workflow_task_failure ×{}", self.tasks)
    }
}
