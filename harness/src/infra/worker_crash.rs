//! `worker_crash`: the worker process is killed (SIGKILL) and a fresh one starts after the duration.

use super::{Capability, InfraControl, InfraFault};
use futures::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Kills the worker mid-activity; the server times the attempt out and retries it elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerCrash {}

impl InfraFault for WorkerCrash {
    fn needs(&self) -> Capability {
        Capability::CrashWorker
    }

    fn apply<'a>(&'a self, ctl: &'a InfraControl<'a>, duration: Duration) -> BoxFuture<'a, Result<String, String>> {
        async move {
            let worker = ctl
                .worker
                .ok_or("there is no worker process to crash here (the worker is in-process)")?;
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
