//! `delay`: the attempt sleeps before the activity runs; longer than a timeout, it times out.

use super::{ActivityFault, AttemptContext, FaultFields, FieldError};
use crate::{history::ObservedFailure, plan::FailureKind};
use futures::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use temporalio_sdk::activities::ActivityError;

/// Sleeps `duration`, without heartbeating, then lets the activity run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayFault {
    /// How long to sleep.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

impl DelayFault {
    pub(super) const FIELDS: &'static [&'static str] = &["duration"];

    pub(super) fn from_fields(f: &FaultFields) -> Result<Self, FieldError> {
        let duration = f
            .duration
            .ok_or_else(|| FieldError::new("kind", "kind `delay` needs a `duration`, e.g. \"2s\""))?;
        Ok(Self { duration })
    }
}

impl ActivityFault for DelayFault {
    fn inject<'a>(&'a self, _: &'a AttemptContext) -> BoxFuture<'a, Result<(), ActivityError>> {
        tokio::time::sleep(self.duration).map(Ok).boxed()
    }

    fn describe(&self) -> String {
        format!("delay {}", humantime::format_duration(self.duration))
    }

    /// A delay leaves a trace only when it pushed the attempt past a timeout.
    fn explains(&self, failure: &ObservedFailure, _marker: &str) -> bool {
        matches!(failure.kind, FailureKind::Timeout(_))
    }

    fn explains_completed_attempt(&self, took: Duration) -> bool {
        took >= self.duration
    }
}
