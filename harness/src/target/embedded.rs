//! The embedded target: `temporal server start-dev` on free loopback ports, owned by the harness.

use super::{TargetError, TargetSettings};
use std::{
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};
use tokio::process::{Child, Command};
use tracing::{debug, info};

/// Environment variable naming the `temporal` CLI binary explicitly.
pub const BIN_ENV: &str = "CHAOS_TEMPORAL_BIN";

/// How long the server may take to answer before the start counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running dev server; killed when stopped or dropped.
pub struct EmbeddedServer {
    child: Child,
    grpc_port: u16,
    ui_port: u16,
    log: PathBuf,
}

/// Finds the `temporal` CLI: an explicit path, then `CHAOS_TEMPORAL_BIN`, then `PATH`.
pub fn find_temporal_binary(explicit: Option<&Path>) -> Result<PathBuf, TargetError> {
    let from_env = std::env::var_os(BIN_ENV).map(PathBuf::from);
    if let Some(path) = explicit.map(Path::to_path_buf).or(from_env) {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(TargetError::MissingBinary {
                searched: format!("{} does not exist", path.display()),
            })
        };
    }
    which::which("temporal").map_err(|_| TargetError::MissingBinary {
        searched: format!("not on PATH and {BIN_ENV} is not set"),
    })
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

impl EmbeddedServer {
    /// Starts the server and waits until its frontend and UI accept connections.
    pub async fn start(settings: &TargetSettings) -> Result<Self, TargetError> {
        let bin = find_temporal_binary(settings.temporal_bin.as_deref())?;
        let log = settings.log_dir.join("temporal-server.log");
        let fail = |reason: String| TargetError::ServerStart {
            reason,
            log: log.display().to_string(),
        };
        std::fs::create_dir_all(&settings.log_dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", settings.log_dir.display())))?;
        let log_file = std::fs::File::create(&log)
            .map_err(|e| fail(format!("cannot create the log file: {e}")))?;
        let err_file = log_file.try_clone().map_err(|e| fail(e.to_string()))?;
        let ports: Vec<u16> = (0..4)
            .map(|_| free_port())
            .collect::<Result<_, _>>()
            .map_err(|e| fail(format!("no free port: {e}")))?;
        let (grpc_port, ui_port, http_port, metrics_port) =
            (ports[0], ports[1], ports[2], ports[3]);
        let mut cmd = Command::new(&bin);
        cmd.args([
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--log-level",
            "warn",
            "--ui-disable-news-fetch",
        ])
        .args(["--namespace", &settings.namespace])
        .arg("--port")
        .arg(grpc_port.to_string())
        .arg("--ui-port")
        .arg(ui_port.to_string())
        .arg("--http-port")
        .arg(http_port.to_string())
        .arg("--metrics-port")
        .arg(metrics_port.to_string())
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(err_file)
        .kill_on_drop(true);
        debug!(?cmd, "starting embedded server");
        let child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", bin.display())))?;
        let mut server = Self {
            child,
            grpc_port,
            ui_port,
            log: log.clone(),
        };
        server.wait_ready().await.map_err(fail)?;
        info!(address = %server.address(), ui = %server.ui_url(), "embedded Temporal server ready");
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("it exited with {status}: {}", tail(&self.log)));
            }
            let grpc = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, self.grpc_port))
                .await
                .is_ok();
            let ui = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, self.ui_port))
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

    /// Frontend `host:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.grpc_port)
    }

    /// Web UI base URL.
    pub fn ui_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ui_port)
    }

    /// Kills the server and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Last lines of the server log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}
