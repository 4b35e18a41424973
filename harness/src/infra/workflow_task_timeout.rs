//! `workflow_task_timeout`: workflow tasks kept from the worker until they time out.

use super::{
    Capability, InfraControl, InfraError, InfraFault, TaskAction,
    calls::{on_tasks, one_task},
};
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The wire proxy keeps the next `tasks` workflow tasks handed out during the duration from the
/// worker (which gets an empty poll), as a worker that took a task and stalled would: the
/// server times the task out after the workflow task timeout (10 s unless the workflow's start
/// says otherwise), history shows a `WorkflowTaskTimedOut`, and the task is taken again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowTaskTimeout {
    /// How many workflow tasks it holds.
    #[serde(default = "one_task")]
    pub tasks: std::num::NonZeroU32,
}

impl InfraFault for WorkflowTaskTimeout {
    fn needs(&self) -> Capability {
        Capability::WorkerCalls
    }

    fn apply<'a>(
        &'a self,
        ctl: &'a InfraControl<'a>,
        rule: usize,
        duration: Duration,
    ) -> BoxFuture<'a, Result<String, InfraError>> {
        async move {
            let none = "no workflow task was handed out through the wire proxy meanwhile";
            let held = "held until they timed out";
            on_tasks(ctl, rule, duration, (self.tasks, TaskAction::Withhold), held, none).await
        }
        .boxed()
    }

    fn describe(&self) -> String {
        format!("workflow_task_timeout ×{}", self.tasks)
    }
}
