//! `workers_down`: every worker stopped for the duration while workflows keep arriving, then
//! started again; the backlog drains.

use super::{Capability, InfraControl, InfraError, InfraFault, Stop, pids, worker_restart::STOP_GRACE};
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Stops every worker of the scenario's task queue (SIGTERM, then SIGKILL after 5 s) for the
/// duration, while `backlog` more workflows like the scenario's are started, spread over the
/// outage; then starts the workers again. Every workflow must still complete; the report gives
/// the backlog, the schedule-to-start latency of workflow and activity tasks, and how long the
/// backlog took to drain, which `drain_within` in `[expect]` bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkersDown {
    /// Workflows like the scenario's started while the workers are down.
    #[serde(default)]
    pub backlog: u32,
}

impl InfraFault for WorkersDown {
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
            let began = Instant::now();
            let stopped = ctl.workers()?.stop_all(Stop::Graceful(STOP_GRACE)).await?;
            let mut started = Vec::new();
            if self.backlog > 0 {
                let starter = ctl.workflows.ok_or(InfraError::Unsupported(Capability::CrashWorker))?;
                let spacing = duration / (self.backlog + 1);
                for n in 1..=self.backlog {
                    tokio::time::sleep_until((began + spacing * n).into()).await;
                    started.push(starter.start_another().await?);
                }
            }
            tokio::time::sleep_until((began + duration).into()).await;
            let back = ctl.workers()?.start_all().await?;
            Ok(format!(
                "workers down for {:.1} s (pid {} stopped; pid {} polling again); {} workflow(s) started meanwhile{}",
                began.elapsed().as_secs_f64(),
                pids(&stopped),
                pids(&back),
                started.len(),
                match started.is_empty() {
                    true => String::new(),
                    false => format!(": {}", started.join(", ")),
                }
            ))
        }
        .boxed()
    }

    fn describe(&self) -> String {
        match self.backlog {
            0 => "workers_down".into(),
            n => format!("workers_down with a backlog of {n}"),
        }
    }
}
