//! `delay`: the attempt sleeps before the activity runs; longer than a timeout, it times out.

use super::{ActivityFault, AttemptContext, WireEffect, released, released_message};
use crate::{error::FieldError, failure::FailureKind, kind::duration_schema};
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use temporalio_sdk::activities::ActivityError;

/// Sleeps, without heartbeating, before the activity runs: a slow dependency. Longer than the
/// attempt's timeout, the server times the attempt out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelayFault {
    /// How long to sleep, e.g. "2s".
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "duration_schema")]
    pub duration: Duration,
}

impl ActivityFault for DelayFault {
    /// Ends early, failing the attempt, if the attempt is over first.
    fn inject<'a>(&'a self, at: &'a AttemptContext) -> BoxFuture<'a, Result<(), ActivityError>> {
        async move {
            tokio::select! {
                () = tokio::time::sleep(self.duration) => Ok(()),
                () = at.over() => Err(released(&at.marker, "delay")),
            }
        }
        .boxed()
    }

    fn describe(&self) -> String {
        format!("delay {}", humantime::format_duration(self.duration))
    }

    /// A delay leaves a trace when it pushed the attempt past a timeout, or when the worker shut
    /// down while it held the attempt.
    fn explains(&self, kind: &FailureKind, message: &str, marker: &str) -> bool {
        matches!(kind, FailureKind::Timeout(_)) || message.contains(&released_message(marker, "delay"))
    }

    fn on_the_wire(&self, _marker: &str) -> Option<WireEffect> {
        Some(WireEffect::Delay {
            duration: self.duration,
        })
    }

    fn explains_completed_attempt(&self, took: Duration) -> bool {
        took >= self.duration
    }

    fn validate(&self) -> Result<(), FieldError> {
        if self.duration.is_zero() {
            return Err(FieldError::new("duration", "duration must be greater than zero"));
        }
        Ok(())
    }
}
