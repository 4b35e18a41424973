//! `worker_crash`: the worker process is killed (SIGKILL) and a fresh one starts after the duration.

use super::{Capability, InfraControl, InfraError, InfraFault};
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Kills the worker process (SIGKILL) mid-activity and starts a fresh one after the duration;
/// the server times the attempt out and retries it on the new worker. Aimed at an attempt, its
/// `infra #N applied` check passes only if that attempt did not complete on the killed worker
/// (aim it at an attempt that is still running when the server reports it started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerCrash {}

impl InfraFault for WorkerCrash {
    fn needs(&self) -> Capability {
        Capability::CrashWorker
    }

    fn apply<'a>(&'a self, ctl: &'a InfraControl<'a>, duration: Duration) -> BoxFuture<'a, Result<String, InfraError>> {
        async move {
            let worker = ctl.worker.ok_or(InfraError::Unsupported(Capability::CrashWorker))?;
            let killed = worker.kill().await?;
            tokio::time::sleep(duration).await;
            let started = worker.start().await?;
            Ok(format!(
                "killed worker pid {killed}; fresh worker pid {started} polling"
            ))
        }
        .boxed()
    }

    fn describe(&self) -> String {
        "worker_crash".into()
    }
}
