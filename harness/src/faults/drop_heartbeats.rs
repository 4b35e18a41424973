//! `drop_heartbeats`: the attempt keeps working, but none of its heartbeats reach the server.

use super::{ActivityFault, AttemptContext, WireEffect};
use crate::failure::{FailureKind, TimeoutKind};
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_sdk::activities::ActivityError;

/// Swallows the attempt's heartbeats on their way to the server while the activity keeps working
/// and answers as usual: a heartbeat path that breaks while the work goes on. Under a heartbeat
/// timeout the server times the attempt out (`timeout:heartbeat`) and ignores its late answer.
/// Injected on the wire only (the proxy answers each heartbeat OK itself), so it needs
/// `--inject wire` for the demo workflows; their activities do not heartbeat anyway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropHeartbeatsFault {}

impl ActivityFault for DropHeartbeatsFault {
    /// The SDK interceptors have no hold on an activity's heartbeats: nothing to do there (the
    /// run refuses this kind without the wire proxy, see [`ActivityFault::in_the_sdk`]).
    fn inject<'a>(&'a self, _at: &'a AttemptContext) -> BoxFuture<'a, Result<(), ActivityError>> {
        futures::future::ready(Ok(())).boxed()
    }

    fn in_the_sdk(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        "drop heartbeats".into()
    }

    fn on_the_wire(&self, _marker: &str) -> Option<WireEffect> {
        Some(WireEffect::DropHeartbeats)
    }

    fn explains(&self, kind: &FailureKind, _message: &str, _marker: &str) -> bool {
        *kind == FailureKind::Timeout(TimeoutKind::Heartbeat)
    }
}
