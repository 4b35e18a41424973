//! `server_pause`: the server is frozen for the duration, then thawed.

use super::{Capability, InfraControl, InfraError, InfraFault};
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Freezes the whole server (SIGSTOP, or `docker pause`) for the duration, then thaws it;
/// clients see it hang, not fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerPause {}

impl InfraFault for ServerPause {
    fn needs(&self) -> Capability {
        Capability::PauseServer
    }

    fn apply<'a>(
        &'a self,
        ctl: &'a InfraControl<'a>,
        _rule: usize,
        duration: Duration,
    ) -> BoxFuture<'a, Result<String, InfraError>> {
        async move {
            let server = ctl.server.ok_or(InfraError::Unsupported(Capability::PauseServer))?;
            server.pause().await?;
            tokio::time::sleep(duration).await;
            server.resume().await?;
            Ok(format!("server frozen for {}", humantime::format_duration(duration)))
        }
        .boxed()
    }

    fn describe(&self) -> String {
        "server_pause".into()
    }
}
