//! `hang`: the attempt never finishes and never heartbeats, so the server times it out.

use super::{ActivityFault, AttemptContext, WireEffect};
use super::{released, released_message};
use crate::failure::FailureKind;
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_sdk::activities::ActivityError;

/// Blocks the attempt, without heartbeating, until the server has given up on it: a stuck
/// dependency or a deadlock. The server times the attempt out (heartbeat or start-to-close).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HangFault {}

impl ActivityFault for HangFault {
    fn inject<'a>(&'a self, at: &'a AttemptContext) -> BoxFuture<'a, Result<(), ActivityError>> {
        async move {
            at.over().await;
            Err(released(&at.marker, "hang"))
        }
        .boxed()
    }

    fn describe(&self) -> String {
        "hang".into()
    }

    fn on_the_wire(&self, _marker: &str) -> Option<WireEffect> {
        Some(WireEffect::Hang)
    }

    fn explains(&self, kind: &FailureKind, message: &str, marker: &str) -> bool {
        matches!(kind, FailureKind::Timeout(_)) || message.contains(&released_message(marker, "hang"))
    }
}
