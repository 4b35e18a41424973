//! `worker_restart`: rolling restarts, a share of the workers at a time, every interval.

use super::{Capability, InfraControl, InfraError, InfraFault, Stop};
use crate::{error::FieldError, kind::duration_schema};
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How long a worker stopped gracefully gets to finish before it is killed.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(5);

/// Restarts a share of the worker processes every interval for the duration, in turn (a
/// Kubernetes rollout, a spot-instance reclaim): each restarted worker loses its sticky cache,
/// so its workflows replay elsewhere, and an activity it was running runs again (at least once,
/// made visible). Run the scenario with several workers (`workers = 3`) so that the others keep
/// the work flowing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerRestart {
    /// Share of the workers restarted each round, above 0 and at most 1 (at least one worker),
    /// e.g. 0.3.
    #[serde(default = "default_share")]
    pub share: f64,
    /// Time between the starts of two rounds, e.g. "3s".
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "duration_schema")]
    pub every: Duration,
    /// Stop each worker with SIGTERM (its SDK's graceful shutdown, up to 5 s) rather than
    /// SIGKILL.
    #[serde(default = "default_graceful")]
    pub graceful: bool,
}

fn default_share() -> f64 {
    0.34
}

fn default_graceful() -> bool {
    true
}

impl InfraFault for WorkerRestart {
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
            let count = workers.count();
            let per_round = ((self.share * count as f64).round() as usize).clamp(1, count);
            let how = match self.graceful {
                true => Stop::Graceful(STOP_GRACE),
                false => Stop::Kill,
            };
            let began = Instant::now();
            let (mut rounds, mut restarts, mut next) = (0, 0, 0);
            while began.elapsed() < duration {
                let round = Instant::now();
                for _ in 0..per_round {
                    let index = next % count;
                    next += 1;
                    workers.stop(index, how).await?;
                    workers.start(index).await?;
                    restarts += 1;
                }
                rounds += 1;
                let wait = self.every.saturating_sub(round.elapsed());
                let left = duration.saturating_sub(began.elapsed());
                tokio::time::sleep(wait.min(left)).await;
            }
            let verb = if self.graceful { "stopped (SIGTERM)" } else { "killed" };
            let asked = duration.as_millis().div_ceil(self.every.as_millis().max(1));
            let fewer = match (rounds as u128) < asked {
                true => format!(" ({asked} asked: a restart took longer than `every`)"),
                false => String::new(),
            };
            Ok(format!(
                "{rounds} round(s) over {:.1} s{fewer}: {restarts} worker restart(s) of {count} worker(s), {per_round} at a time, each {verb} and started afresh",
                began.elapsed().as_secs_f64()
            ))
        }
        .boxed()
    }

    fn describe(&self) -> String {
        format!(
            "worker_restart {:.0}% every {}",
            self.share * 100.0,
            humantime::format_duration(self.every)
        )
    }

    fn validate(&self) -> Result<(), FieldError> {
        if !(self.share > 0.0 && self.share <= 1.0) {
            return Err(FieldError::new(
                "share",
                "`share` is the share of the workers restarted each round: above 0, at most 1 (e.g. 0.3)",
            ));
        }
        if self.every.is_zero() {
            return Err(FieldError::new("every", "`every` must be longer than 0, e.g. \"3s\""));
        }
        Ok(())
    }
}
