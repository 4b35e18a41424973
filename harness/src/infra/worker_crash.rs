//! `worker_crash`: every worker process is killed (SIGKILL) and fresh ones start after the
//! duration.

use super::{Capability, InfraControl, InfraError, InfraFault, Stop, pids};
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Kills the worker processes (SIGKILL) mid-activity and starts fresh ones after the duration;
/// the server times the attempt out and retries it on a new worker. Aimed at an attempt, its
/// `infra #N applied` check passes only if that attempt did not complete on the killed worker
/// (aim it at an attempt that is still running when the server reports it started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerCrash {}

impl InfraFault for WorkerCrash {
    fn needs(&self) -> Capability {
        Capability::CrashWorker
    }

    fn apply<'a>(
        &'a self,
        ctl: &'a InfraControl<'a>,
        _rule: usize,
        duration: Duration,
    ) -> BoxFuture<'a, Result<String, InfraError>> {
        async move {
            let killed = ctl.workers()?.stop_all(Stop::Kill).await?;
            tokio::time::sleep(duration).await;
            let started = ctl.workers()?.start_all().await?;
            let (s, fresh) = match started.len() {
                1 => ("", "fresh worker"),
                _ => ("s", "fresh workers"),
            };
            Ok(format!(
                "killed worker{s} pid {}; {fresh} pid {} polling",
                pids(&killed),
                pids(&started)
            ))
        }
        .boxed()
    }

    fn describe(&self) -> String {
        "worker_crash".into()
    }
}
