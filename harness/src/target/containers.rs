//! The testcontainers target: `temporal server start-dev` inside a container, on host networking.
//!
//! Containers use the host network on free loopback ports (no bridge networks, no private
//! addresses). State that must survive a restart lives in a bind-mounted folder on tmpfs.

use super::{
    TargetError, TargetSettings,
    dev_server::{DevPorts, ServerError, on_fresh_ports, start_dev_args, state_dir, wait_ready},
};
use crate::infra::{Capability, InfraError, ServerControl};
use futures::future::{BoxFuture, FutureExt};
use std::{path::PathBuf, time::Duration};
use testcontainers::{
    ContainerAsync, GenericImage, ImageExt,
    core::{Mount, WaitFor},
    runners::AsyncRunner,
};
use tracing::info;

/// Default image: the official Temporal CLI image, pinned.
pub const DEFAULT_IMAGE: &str = "temporalio/temporal:1.9.1";

/// Environment variable overriding the image (`name:tag`).
pub const IMAGE_ENV: &str = "CHAOS_TEMPORAL_IMAGE";

/// Where the state file lives inside the container.
const STATE_MOUNT: &str = "/var/lib/temporal-chaos";

/// A dev server in a container; removed when stopped or dropped.
pub struct ContainerServer {
    container: ContainerAsync<GenericImage>,
    pub(super) ports: DevPorts,
    state_dir: Option<PathBuf>,
}

impl ContainerServer {
    /// Starts the container and waits until the frontend and UI answer.
    pub async fn start(settings: &TargetSettings, namespace: &str, persist: bool) -> Result<Self, TargetError> {
        let image = settings.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
        let fail = |reason: ServerError| TargetError::ServerStart {
            reason: Box::new(reason),
            log: format!("the container's output (`docker logs`) while it runs; image {image}"),
        };
        let (name, tag) = image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
        let server = on_fresh_ports(|ports| Self::start_on(name, tag, ports, namespace, persist))
            .await
            .map_err(fail)?;
        info!(address = %server.ports.address(), image, "Temporal server container ready");
        Ok(server)
    }

    /// One start attempt on `ports`.
    async fn start_on(
        name: &str,
        tag: &str,
        ports: DevPorts,
        namespace: &str,
        persist: bool,
    ) -> Result<Self, ServerError> {
        let state_dir = persist.then(|| state_dir(&ports));
        let db_file = state_dir.as_ref().map(|_| format!("{STATE_MOUNT}/temporal.db"));
        let mut request = GenericImage::new(name, tag)
            .with_wait_for(WaitFor::Nothing)
            .with_cmd(start_dev_args(&ports, namespace, db_file.as_deref()))
            .with_network("host")
            .with_env_var("USER", "temporal");
        if let Some(dir) = &state_dir {
            std::fs::create_dir_all(dir).map_err(|source| ServerError::Io {
                path: dir.clone(),
                source,
            })?;
            request = request.with_mount(Mount::bind_mount(dir.display().to_string(), STATE_MOUNT));
        }
        let container = request.start().await.map_err(|source| ServerError::Docker {
            action: "run (is a Docker daemon running, and is the image available? Without network access, build a \
                     local one with compose/dev/build-image.sh and pass it with --image or CHAOS_TEMPORAL_IMAGE)",
            source,
        })?;
        let server = Self {
            container,
            ports,
            state_dir,
        };
        match server.wait().await {
            Ok(()) => Ok(server),
            Err(e) => {
                server.stop().await;
                Err(e)
            }
        }
    }

    async fn wait(&self) -> Result<(), ServerError> {
        wait_ready(&self.ports, || async {
            match self.container.is_running().await {
                Ok(false) => Err(ServerError::ContainerExited),
                _ => Ok(()),
            }
        })
        .await
    }

    /// Removes the container and its state.
    pub async fn stop(self) {
        let _ = self.container.rm().await;
        if let Some(dir) = &self.state_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl ServerControl for ContainerServer {
    fn pause(&self) -> BoxFuture<'_, Result<(), InfraError>> {
        async move { Ok(self.container.pause().await.map_err(docker("pause"))?) }.boxed()
    }

    fn resume(&self) -> BoxFuture<'_, Result<(), InfraError>> {
        async move { Ok(self.container.unpause().await.map_err(docker("unpause"))?) }.boxed()
    }

    fn restart(&self, down: Duration) -> BoxFuture<'_, Result<(), InfraError>> {
        async move {
            if self.state_dir.is_none() {
                return Err(ServerError::NoState.into());
            }
            self.container
                .stop_with_timeout(Some(10))
                .await
                .map_err(docker("stop"))?;
            tokio::time::sleep(down).await;
            self.container.start().await.map_err(docker("start"))?;
            Ok(self.wait().await?)
        }
        .boxed()
    }

    fn capabilities(&self) -> &'static [Capability] {
        if self.state_dir.is_some() {
            &Capability::ALL
        } else {
            &Capability::ALL_BUT_RESTART
        }
    }
}

/// Maps a testcontainers error of `action` to a [`ServerError`].
fn docker(action: &'static str) -> impl FnOnce(testcontainers::TestcontainersError) -> ServerError {
    move |source| ServerError::Docker { action, source }
}
