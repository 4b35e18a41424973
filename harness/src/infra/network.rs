//! `network`: faults on the worker's connection to the frontend, through the harness's proxy.

use super::{Capability, InfraControl, InfraFault, InfraFields, proxy::ProxyMode};
use crate::faults::FieldError;
use futures::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What happens to the worker's traffic while the fault lasts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum NetworkMode {
    /// Every chunk waits `latency` ± `jitter`.
    Latency {
        /// Base delay.
        #[serde(with = "humantime_serde")]
        latency: Duration,
        /// Random spread around it.
        #[serde(with = "humantime_serde")]
        jitter: Duration,
    },
    /// Open connections are reset and new ones refused.
    Reset,
    /// Connections stay open but nothing gets through.
    Blackhole,
}

/// A network fault between the worker and the frontend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkFault {
    /// The fault.
    #[serde(flatten)]
    pub mode: NetworkMode,
}

impl NetworkFault {
    pub(super) fn from_fields(f: &InfraFields) -> Result<Self, FieldError> {
        let mode = match f.mode.as_deref() {
            Some("latency") => NetworkMode::Latency {
                latency: f
                    .latency
                    .ok_or_else(|| FieldError::new("mode", "mode `latency` needs `latency`, e.g. \"300ms\""))?,
                jitter: f.jitter.unwrap_or_default(),
            },
            Some(other @ ("reset" | "blackhole")) => {
                if let Some(field) = [("latency", f.latency.is_some()), ("jitter", f.jitter.is_some())]
                    .into_iter()
                    .find_map(|(n, set)| set.then_some(n))
                {
                    return Err(FieldError::new(
                        field,
                        format!("`{field}` applies to mode `latency` only"),
                    ));
                }
                if other == "reset" {
                    NetworkMode::Reset
                } else {
                    NetworkMode::Blackhole
                }
            }
            Some(other) => {
                return Err(FieldError::new(
                    "mode",
                    format!("unknown network mode `{other}`, expected latency, reset or blackhole"),
                ));
            }
            None => {
                return Err(FieldError::new(
                    "kind",
                    "kind `network` needs a `mode`: latency, reset or blackhole",
                ));
            }
        };
        Ok(Self { mode })
    }
}

impl InfraFault for NetworkFault {
    fn needs(&self) -> Capability {
        Capability::NetworkProxy
    }

    fn apply<'a>(&'a self, ctl: &'a InfraControl<'a>, duration: Duration) -> BoxFuture<'a, Result<String, String>> {
        async move {
            let mode = match self.mode {
                NetworkMode::Latency { latency, jitter } => ProxyMode::Latency { latency, jitter },
                NetworkMode::Reset => ProxyMode::Reset,
                NetworkMode::Blackhole => ProxyMode::Blackhole,
            };
            let proxy = ctl
                .proxy
                .ok_or("there is no proxy in front of the worker here (the worker is in-process)")?;
            let before = proxy.stats();
            proxy.set_mode(mode);
            tokio::time::sleep(duration).await;
            proxy.set_mode(ProxyMode::Pass);
            let after = proxy.stats();
            let (delayed, reset, dropped) = (
                after.delayed - before.delayed,
                after.reset - before.reset,
                after.dropped - before.dropped,
            );
            // Evidence that the fault touched real traffic, not just that a switch was flipped.
            let affected = match self.mode {
                NetworkMode::Latency { .. } => delayed,
                NetworkMode::Reset => reset,
                NetworkMode::Blackhole => dropped,
            };
            let summary = format!("{delayed} chunks delayed, {reset} connections reset, {dropped} chunks dropped");
            if affected == 0 {
                return Err(format!(
                    "no worker traffic crossed the proxy during the fault ({summary})"
                ));
            }
            Ok(format!("{}: {summary}", self.describe()))
        }
        .boxed()
    }

    fn describe(&self) -> String {
        match self.mode {
            NetworkMode::Latency { latency, jitter } => format!(
                "network latency {}±{}",
                humantime::format_duration(latency),
                humantime::format_duration(jitter)
            ),
            NetworkMode::Reset => "network reset".into(),
            NetworkMode::Blackhole => "network blackhole".into(),
        }
    }
}
