//! `server_restart`: the server is stopped, stays down for the duration, and starts again with its
//! state (a database file on tmpfs for the embedded server, a volume for a container).

use super::{Capability, InfraControl, InfraError, InfraFault};
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Stops the server, keeps it down for the duration, and starts it again with its state (a
/// database file on tmpfs, or a volume for a container); in-flight workflows must carry on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerRestart {}

impl InfraFault for ServerRestart {
    fn needs(&self) -> Capability {
        Capability::RestartServer
    }

    fn apply<'a>(
        &'a self,
        ctl: &'a InfraControl<'a>,
        _rule: usize,
        duration: Duration,
    ) -> BoxFuture<'a, Result<String, InfraError>> {
        async move {
            let server = ctl.server.ok_or(InfraError::Unsupported(Capability::RestartServer))?;
            let began = Instant::now();
            server.restart(duration).await?;
            Ok(format!(
                "server down {} ms, ready again after {} ms",
                duration.as_millis(),
                began.elapsed().as_millis()
            ))
        }
        .boxed()
    }

    fn describe(&self) -> String {
        "server_restart".into()
    }
}
