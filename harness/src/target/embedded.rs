//! The embedded target: `temporal server start-dev` on free loopback ports, owned by the harness.

use super::{TargetError, TargetSettings};
use crate::infra::{Capability, ServerControl};
use futures::future::{BoxFuture, FutureExt};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use std::{
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};
use tokio::{
    process::{Child, Command},
    sync::Mutex,
};
use tracing::{debug, info};

/// Environment variable naming the `temporal` CLI binary explicitly.
pub const BIN_ENV: &str = "CHAOS_TEMPORAL_BIN";

/// How long the server may take to answer before the start counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running dev server; killed when stopped or dropped.
pub struct EmbeddedServer {
    command: std::sync::Mutex<Command>,
    child: Mutex<Option<Child>>,
    grpc_port: u16,
    ui_port: u16,
    log: PathBuf,
    /// The state file when state must survive restarts (on tmpfs: fsync there is cheap).
    db_file: Option<PathBuf>,
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
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

impl EmbeddedServer {
    /// Starts the server and waits until its frontend and UI accept connections. With `persist`,
    /// state goes to a database file so that [`ServerControl::restart`] keeps it.
    pub async fn start(settings: &TargetSettings, persist: bool) -> Result<Self, TargetError> {
        let bin = find_temporal_binary(settings.temporal_bin.as_deref())?;
        let log = settings.log_dir.join("temporal-server.log");
        let fail = |reason: String| TargetError::ServerStart {
            reason,
            log: log.display().to_string(),
        };
        std::fs::create_dir_all(&settings.log_dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", settings.log_dir.display())))?;
        let log_file = std::fs::File::create(&log).map_err(|e| fail(format!("cannot create the log file: {e}")))?;
        let err_file = log_file.try_clone().map_err(|e| fail(e.to_string()))?;
        let ports: Vec<u16> = (0..4)
            .map(|_| free_port())
            .collect::<Result<_, _>>()
            .map_err(|e| fail(format!("no free port: {e}")))?;
        let (grpc_port, ui_port, http_port, metrics_port) = (ports[0], ports[1], ports[2], ports[3]);
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
        let db_file = persist.then(|| {
            let dir = Path::new("/dev/shm");
            let dir = if dir.is_dir() {
                dir.to_owned()
            } else {
                std::env::temp_dir()
            };
            dir.join(format!("temporal-chaos-{}-{grpc_port}.db", std::process::id()))
        });
        if let Some(db) = &db_file {
            cmd.arg("--db-filename").arg(db);
        }
        debug!(?cmd, "starting embedded server");
        let server = Self {
            command: std::sync::Mutex::new(cmd),
            child: Mutex::new(None),
            grpc_port,
            ui_port,
            log: log.clone(),
            db_file,
        };
        server.spawn().await.map_err(fail)?;
        info!(address = %server.address(), ui = %server.ui_url(), "embedded Temporal server ready");
        Ok(server)
    }

    /// Starts the process and waits until it is ready.
    async fn spawn(&self) -> Result<(), String> {
        let child = {
            let mut cmd = self.command.lock().map_err(|e| e.to_string())?;
            cmd.spawn()
                .map_err(|e| format!("cannot run {:?}: {e}", cmd.as_std().get_program()))?
        };
        *self.child.lock().await = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.lock().await.as_mut()
                && let Some(status) = child.try_wait().map_err(|e| e.to_string())?
            {
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

    /// Kills the server, waits for it to exit, and removes its state file.
    pub async fn stop(self) {
        if let Some(mut child) = self.child.lock().await.take() {
            let _ = child.kill().await;
        }
        if let Some(db) = &self.db_file {
            let _ = std::fs::remove_file(db);
        }
    }

    async fn signal(&self, signal: Signal) -> Result<(), String> {
        let guard = self.child.lock().await;
        let pid = guard.as_ref().and_then(Child::id).ok_or("the server is not running")?;
        kill(Pid::from_raw(pid as i32), signal).map_err(|e| format!("cannot send {signal} to the server: {e}"))
    }
}

impl ServerControl for EmbeddedServer {
    fn pause(&self) -> BoxFuture<'_, Result<(), String>> {
        self.signal(Signal::SIGSTOP).boxed()
    }

    fn resume(&self) -> BoxFuture<'_, Result<(), String>> {
        self.signal(Signal::SIGCONT).boxed()
    }

    fn restart(&self, down: Duration) -> BoxFuture<'_, Result<(), String>> {
        async move {
            if self.db_file.is_none() {
                return Err("the server was started without a state file, so a restart would lose its state".into());
            }
            if let Some(mut child) = self.child.lock().await.take() {
                // SIGTERM lets the server flush its state; then make sure it is gone.
                if let Some(pid) = child.id() {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
                }
                if tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            }
            tokio::time::sleep(down).await;
            self.spawn().await
        }
        .boxed()
    }

    fn capabilities(&self) -> &'static [Capability] {
        if self.db_file.is_some() {
            &[
                Capability::PauseServer,
                Capability::RestartServer,
                Capability::CrashWorker,
                Capability::NetworkProxy,
            ]
        } else {
            &[
                Capability::PauseServer,
                Capability::CrashWorker,
                Capability::NetworkProxy,
            ]
        }
    }
}

/// Last lines of the server log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}
