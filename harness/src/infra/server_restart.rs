//! `server_restart`: the server is stopped, stays down for the duration, and starts again with its
//! state (a database file on tmpfs for the embedded server, a volume for a container).

use super::{Capability, InfraControl, InfraFault};
use futures::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Restarts the server; in-flight workflows must carry on afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRestart {}

impl InfraFault for ServerRestart {
    fn needs(&self) -> Capability {
        Capability::RestartServer
    }

    fn apply<'a>(&'a self, ctl: &'a InfraControl<'a>, duration: Duration) -> BoxFuture<'a, Result<String, String>> {
        async move {
            let server = ctl.server.ok_or("this target cannot restart the server")?;
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
