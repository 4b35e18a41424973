//! `hang`: the attempt never finishes and never heartbeats, so the server times it out.

use super::{ActivityFault, AttemptContext};
use crate::failure::FailureKind;
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};
use temporalio_sdk::{ApplicationFailure, activities::ActivityError};

/// How long past the attempt's deadline the hang is released. By then the server has timed the
/// attempt out and discards whatever it returns; releasing at all keeps worker shutdown bounded,
/// since an activity interceptor cannot observe the SDK's cancellation token.
const RELEASE_AFTER_DEADLINE: Duration = Duration::from_secs(1);

/// Upper bound when the attempt has no known deadline.
const MAX_HANG: Duration = Duration::from_secs(600);

/// Blocks the attempt, without heartbeating, until the server has given up on it: a stuck
/// dependency or a deadlock. The server times the attempt out (heartbeat or start-to-close).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HangFault {}

impl ActivityFault for HangFault {
    fn inject<'a>(&'a self, at: &'a AttemptContext) -> BoxFuture<'a, Result<(), ActivityError>> {
        let wait = at
            .deadline
            .and_then(|d| d.duration_since(SystemTime::now()).ok())
            .map_or(MAX_HANG, |left| left + RELEASE_AFTER_DEADLINE);
        let marker = at.marker.clone();
        async move {
            tokio::time::sleep(wait).await;
            Err(ApplicationFailure::new(anyhow::anyhow!("{marker} hang released after the attempt's deadline")).into())
        }
        .boxed()
    }

    fn describe(&self) -> String {
        "hang".into()
    }

    fn explains(&self, kind: &FailureKind, _message: &str, _marker: &str) -> bool {
        matches!(kind, FailureKind::Timeout(_))
    }
}
