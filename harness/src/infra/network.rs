//! `network`: faults on the worker's connection to the frontend, through the harness's proxy.

use super::{Capability, InfraControl, InfraError, InfraFault};
use crate::kind::duration_schema;
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Breaks the worker's connection to the frontend, through a TCP proxy the harness puts between
/// them: slow, reset, or silently dropping traffic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "mode", deny_unknown_fields)]
pub enum NetworkFault {
    /// Every chunk waits `latency` ± `jitter`.
    Latency {
        /// Base delay of every chunk, e.g. "300ms".
        #[serde(with = "humantime_serde")]
        #[schemars(schema_with = "duration_schema")]
        latency: Duration,
        /// Random spread around the delay.
        #[serde(default, with = "humantime_serde")]
        #[schemars(schema_with = "duration_schema")]
        jitter: Duration,
    },
    /// Open connections are reset and new ones refused.
    Reset {},
    /// Connections stay open but nothing gets through, in either direction; as in a network
    /// partition under TCP, nothing is lost either: it all flows again when the fault ends.
    Blackhole {},
}

impl InfraFault for NetworkFault {
    fn needs(&self) -> Capability {
        Capability::NetworkProxy
    }

    fn apply<'a>(
        &'a self,
        ctl: &'a InfraControl<'a>,
        _rule: usize,
        duration: Duration,
    ) -> BoxFuture<'a, Result<String, InfraError>> {
        async move {
            let proxy = ctl.proxy.ok_or(InfraError::Unsupported(Capability::NetworkProxy))?;
            let before = proxy.stats();
            proxy.set_fault(Some(*self));
            tokio::time::sleep(duration).await;
            proxy.set_fault(None);
            let after = proxy.stats();
            let (delayed, reset, held) = (
                after.delayed - before.delayed,
                after.reset - before.reset,
                after.held - before.held,
            );
            // Evidence that the fault touched real traffic, not just that a switch was flipped.
            let affected = match self {
                NetworkFault::Latency { .. } => delayed,
                NetworkFault::Reset {} => reset,
                NetworkFault::Blackhole {} => held,
            };
            let summary = format!("{delayed} chunks delayed, {reset} connections reset, {held} chunks held");
            if affected == 0 {
                return Err(InfraError::NoTraffic(summary));
            }
            Ok(format!("{}: {summary}", self.describe()))
        }
        .boxed()
    }

    fn describe(&self) -> String {
        match self {
            NetworkFault::Latency { latency, jitter } => format!(
                "network latency {}±{}",
                humantime::format_duration(*latency),
                humantime::format_duration(*jitter)
            ),
            NetworkFault::Reset {} => "network reset".into(),
            NetworkFault::Blackhole {} => "network blackhole".into(),
        }
    }
}
