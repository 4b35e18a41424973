//! `deploy`: the workers replaced by another version of the app, and rolled back.

use super::{Capability, InfraControl, InfraError, InfraFault, Stop, WorkerVersion, pids, worker_restart::STOP_GRACE};
use crate::error::FieldError;
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, time::Duration};

/// Replaces the workers by another version of the app (this `command`, run like the `[worker]`:
/// its directory, its environment with `env` on top, the same placeholders), and after the
/// duration rolls back to the `[worker]`'s. A version that is not deterministic against the
/// histories in flight fails their workflow tasks (`workflow_task_failures` in `[expect]`); one
/// that patches its change replays them cleanly. The old workers stop with SIGTERM (up to 5 s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// The new version's program and arguments, e.g. [".venv/bin/python", "worker.py"].
    pub command: Vec<String>,
    /// Variables set on top of the `[worker]`'s, e.g. { APP_VERSION = "v2" }.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Roll back to the `[worker]`'s version when the duration is over; `false` keeps the new
    /// one.
    #[serde(default = "default_rollback")]
    pub rollback: bool,
}

fn default_rollback() -> bool {
    true
}

impl Deploy {
    fn version(&self) -> WorkerVersion {
        WorkerVersion {
            command: self.command.clone(),
            env: self.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

impl InfraFault for Deploy {
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
            let workers = ctl.workers()?;
            let version = self.version();
            workers.switch(Some(&version));
            let old = workers.stop_all(Stop::Graceful(STOP_GRACE)).await?;
            let new = match workers.start_all().await {
                Ok(new) => new,
                Err(e) => {
                    // Back to what ran, so the scenario's workflows are not left without workers.
                    workers.switch(None);
                    let _ = workers.stop_all(Stop::Kill).await;
                    let _ = workers.start_all().await;
                    return Err(e);
                }
            };
            let deployed = format!(
                "deployed `{version}` (pid {} stopped, pid {} polling)",
                pids(&old),
                pids(&new)
            );
            if !self.rollback {
                return Ok(deployed);
            }
            tokio::time::sleep(duration).await;
            workers.switch(None);
            let replaced = workers.stop_all(Stop::Graceful(STOP_GRACE)).await?;
            let back = workers.start_all().await?;
            Ok(format!(
                "{deployed}; rolled back after {} (pid {} stopped, pid {} polling)",
                humantime::format_duration(duration),
                pids(&replaced),
                pids(&back)
            ))
        }
        .boxed()
    }

    fn describe(&self) -> String {
        let rollback = if self.rollback { " and roll back" } else { "" };
        format!("deploy `{}`{rollback}", self.version())
    }

    fn validate(&self) -> Result<(), FieldError> {
        if self.command.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(FieldError::new(
                "command",
                "`command` needs the new version's program and its arguments, e.g. [\".venv/bin/python\", \"worker.py\"]",
            ));
        }
        Ok(())
    }
}
