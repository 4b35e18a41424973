//! What the embedded and testcontainers targets share: both run `temporal server start-dev`.

use std::{
    net::{Ipv4Addr, TcpListener},
    path::PathBuf,
    time::{Duration, Instant},
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

impl DevPorts {
    /// Ports that were free a moment ago on 127.0.0.1.
    pub fn free() -> std::io::Result<Self> {
        let port = || -> std::io::Result<u16> { Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port()) };
        Ok(Self {
            grpc: port()?,
            ui: port()?,
            http: port()?,
            metrics: port()?,
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

/// Runs `start` on fresh ports until it succeeds, a few times at most. Free ports are picked and
/// released, so another process (another dev server starting at the same moment, say) can take
/// one before this server binds it; the server then exits at once and a retry fixes it.
pub(super) async fn on_fresh_ports<T, F, Fut>(mut start: F) -> Result<T, String>
where
    F: FnMut(DevPorts) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    const ATTEMPTS: u32 = 3;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let ports = DevPorts::free().map_err(|e| format!("no free port: {e}"))?;
        match start(ports).await {
            Ok(server) => return Ok(server),
            Err(e) => {
                tracing::warn!(attempt, "the dev server did not start: {e}; trying fresh ports");
                last = e;
            }
        }
    }
    Err(format!("{last} (after {ATTEMPTS} attempts on fresh ports)"))
}

/// Waits until the frontend and the UI accept connections; `alive` reports a server that died.
pub(super) async fn wait_ready<F, Fut>(ports: &DevPorts, mut alive: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    loop {
        alive().await?;
        let grpc = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, ports.grpc))
            .await
            .is_ok();
        let ui = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, ports.ui))
            .await
            .is_ok();
        if grpc && ui {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(format!("not ready after {} s", READY_TIMEOUT.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
