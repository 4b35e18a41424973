//! What the embedded and testcontainers targets share: both run `temporal server start-dev`.

use crate::wait::poll;
use std::{
    net::{Ipv4Addr, TcpListener},
    path::PathBuf,
    time::Duration,
};

/// How long the server may take to answer before the start counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Loopback ports of one dev server.
#[derive(Debug, Clone, Copy)]
pub(super) struct DevPorts {
    pub grpc: u16,
    pub ui: u16,
    http: u16,
    metrics: u16,
}

/// A loopback port that was free a moment ago, for a process that binds it later: below the
/// kernel's ephemeral range (on Linux 32768-60999 by default), which `bind(0)` and outgoing
/// connections draw from (the harness's proxies, a dev server's own internal and HTTP ports, every
/// client), so none of them takes it first, and a server restarted on it finds it free again. A port
/// picked the same way by another process still can be: a server that then exits at once is
/// started again on fresh ports (as the embedded and container targets do).
pub fn free_port() -> std::io::Result<u16> {
    let outside_ephemeral = (0..200).map(|_| rand::random_range(20_000..32_000));
    match outside_ephemeral
        .into_iter()
        .find(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).is_ok())
    {
        Some(p) => Ok(p),
        None => Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port()),
    }
}

impl DevPorts {
    /// Ports that were free a moment ago on 127.0.0.1, outside the ephemeral range
    /// ([`free_port`]).
    pub fn free() -> std::io::Result<Self> {
        Ok(Self {
            grpc: free_port()?,
            ui: free_port()?,
            http: free_port()?,
            metrics: free_port()?,
        })
    }

    /// Frontend `host:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.grpc)
    }

    /// Web UI base URL.
    pub fn ui_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ui)
    }
}

/// Arguments of `temporal server start-dev` on loopback, with `db_file` when state must persist.
pub(super) fn start_dev_args(ports: &DevPorts, namespace: &str, db_file: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--log-level",
        "warn",
        "--ui-disable-news-fetch",
    ]
    .map(String::from)
    .into();
    for (flag, value) in [
        ("--namespace", namespace.to_owned()),
        ("--port", ports.grpc.to_string()),
        ("--ui-port", ports.ui.to_string()),
        ("--http-port", ports.http.to_string()),
        ("--metrics-port", ports.metrics.to_string()),
    ] {
        args.extend([flag.to_owned(), value]);
    }
    if let Some(db) = db_file {
        args.extend(["--db-filename".to_owned(), db.to_owned()]);
    }
    args
}

/// A folder for server state that survives restarts; on tmpfs where there is one, since the dev
/// server fsyncs and a disk makes it several times slower.
pub(super) fn state_dir(ports: &DevPorts) -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() { shm } else { std::env::temp_dir() };
    base.join(format!("temporal-chaos-{}-{}", std::process::id(), ports.grpc))
}

/// What went wrong with a dev server the harness runs (process or container).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No free loopback port could be found.
    #[error("no free loopback port: {0}")]
    NoPort(#[source] std::io::Error),
    /// A file or folder for the server could not be made.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server process could not be run.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The executable.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server exited while starting.
    #[error("it exited with {status}: {tail}")]
    Exited {
        /// Exit status.
        status: String,
        /// The last lines of its log.
        tail: String,
    },
    /// The container stopped while starting.
    #[error("the container exited; see `docker logs` of a rerun")]
    ContainerExited,
    /// Ports did not open in time.
    #[error("not ready after {0} s")]
    NotReady(u64),
    /// Docker refused an operation.
    #[error("docker {action} failed: {source}")]
    Docker {
        /// What was asked (`pause`, `start`, ...).
        action: &'static str,
        /// Why.
        #[source]
        source: testcontainers::TestcontainersError,
    },
    /// A signal could not be sent to the server process.
    #[error("cannot send {signal} to the server: {source}")]
    Signal {
        /// The signal.
        signal: nix::sys::signal::Signal,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// The server is not running.
    #[error("the server is not running")]
    NotRunning,
    /// A restart was asked of a server without kept state.
    #[error("the server was started without a state file, so a restart would lose its state")]
    NoState,
    /// Every start attempt failed.
    #[error("{last} (after {attempts} attempts on fresh ports)")]
    Attempts {
        /// The last attempt's error.
        last: Box<ServerError>,
        /// Attempts made.
        attempts: u32,
    },
}

impl From<ServerError> for crate::infra::InfraError {
    fn from(e: ServerError) -> Self {
        crate::infra::InfraError::Server(Box::new(e))
    }
}

/// Runs `start` on fresh ports until it succeeds, a few times at most. Free ports are picked and
/// released, so another process (another dev server starting at the same moment, say) can take
/// one before this server binds it; the server then exits at once and a retry fixes it.
pub(super) async fn on_fresh_ports<T, F, Fut>(mut start: F) -> Result<T, ServerError>
where
    F: FnMut(DevPorts) -> Fut,
    Fut: Future<Output = Result<T, ServerError>>,
{
    const ATTEMPTS: u32 = 3;
    let mut attempt = 1;
    loop {
        let ports = DevPorts::free().map_err(ServerError::NoPort)?;
        match start(ports).await {
            Ok(server) => return Ok(server),
            Err(e) if attempt == ATTEMPTS => {
                return Err(ServerError::Attempts {
                    last: Box::new(e),
                    attempts: ATTEMPTS,
                });
            }
            Err(e) => tracing::warn!(attempt, "the dev server did not start: {e}; trying fresh ports"),
        }
        attempt += 1;
    }
}

/// Waits until the frontend and the UI accept connections; `alive` reports a server that died.
pub(super) async fn wait_ready<F, Fut>(ports: &DevPorts, mut alive: F) -> Result<(), ServerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ServerError>>,
{
    let open = |port| async move {
        tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_ok()
    };
    poll(
        Duration::from_millis(100),
        Some(READY_TIMEOUT),
        || ServerError::NotReady(READY_TIMEOUT.as_secs()),
        || {
            let alive = alive();
            async move {
                alive.await?;
                Ok((open(ports.grpc).await && open(ports.ui).await).then_some(()))
            }
        },
    )
    .await
}
