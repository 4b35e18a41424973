//! `sticky_cache_drop`: the worker's cached copy of a run bypassed; the next task replays.

use super::{
    Capability, InfraControl, InfraError, InfraFault, TaskAction,
    calls::{on_tasks, one_task},
};
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// After each of the next `tasks` workflow tasks completed during the duration, the wire proxy
/// drops the run's stickiness (`ResetStickyTaskQueue`, what the server does when a worker's
/// cache is gone): the run's next task goes to the normal queue with the whole history, and the
/// worker replays the workflow from the start, as after a cache eviction or on another worker.
/// The report counts the replays; the outcome must not change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StickyCacheDrop {
    /// How many times it drops the cache.
    #[serde(default = "one_task")]
    pub tasks: std::num::NonZeroU32,
}

impl InfraFault for StickyCacheDrop {
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
            let none = "no workflow task completed with more of the workflow to come: one that closes in its first \
                        task leaves nothing to replay";
            let done = "completed, then the run dropped from the worker's cache";
            on_tasks(
                ctl,
                rule,
                duration,
                (self.tasks, TaskAction::DeliverThenUnstick),
                done,
                none,
            )
            .await
        }
        .boxed()
    }

    fn describe(&self) -> String {
        format!("sticky_cache_drop ×{}", self.tasks)
    }
}
