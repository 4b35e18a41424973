//! The embedded target: `temporal server start-dev` on free loopback ports, owned by the harness.

use super::{
    TargetError, TargetSettings,
    dev_server::{DevPorts, ServerError, on_fresh_ports, start_dev_args, state_dir, wait_ready},
};
use crate::infra::{Capability, InfraError, ServerControl};
use futures::future::{BoxFuture, FutureExt};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};
use tokio::{
    process::{Child, Command},
    sync::Mutex,
};
use tracing::{debug, info};

/// Environment variable naming the `temporal` CLI binary explicitly.
pub const BIN_ENV: &str = "CHAOS_TEMPORAL_BIN";

/// A running dev server; killed when stopped or dropped.
pub struct EmbeddedServer {
    command: std::sync::Mutex<Command>,
    child: Mutex<Option<Child>>,
    pub(super) ports: DevPorts,
    log: PathBuf,
    /// Holds the state file when state must survive restarts.
    state_dir: Option<PathBuf>,
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

impl EmbeddedServer {
    /// Starts the server and waits until its frontend and UI accept connections. With `persist`,
    /// state goes to a database file so that [`ServerControl::restart`] keeps it.
    pub async fn start(settings: &TargetSettings, namespace: &str, persist: bool) -> Result<Self, TargetError> {
        let bin = find_temporal_binary(settings.temporal_bin.as_deref())?;
        let log = settings.log_dir.join("temporal-server.log");
        let fail = |reason: ServerError| TargetError::ServerStart {
            reason: Box::new(reason),
            log: log.display().to_string(),
        };
        std::fs::File::create(&log).map_err(|source| {
            fail(ServerError::Io {
                path: log.clone(),
                source,
            })
        })?;
        let server = on_fresh_ports(|ports| Self::start_on(&bin, &log, ports, namespace, persist))
            .await
            .map_err(fail)?;
        info!(address = %server.ports.address(), ui = %server.ports.ui_url(), "embedded Temporal server ready");
        Ok(server)
    }

    /// One start attempt on `ports`; the log file is appended to.
    async fn start_on(
        bin: &Path,
        log: &Path,
        ports: DevPorts,
        namespace: &str,
        persist: bool,
    ) -> Result<Self, ServerError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ServerError::Io { path, source }
        };
        let open = || std::fs::OpenOptions::new().append(true).open(log).map_err(io(log));
        let state_dir = persist.then(|| state_dir(&ports));
        if let Some(dir) = &state_dir {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let db_file = state_dir.as_ref().map(|d| d.join("temporal.db").display().to_string());
        let mut cmd = Command::new(bin);
        cmd.args(start_dev_args(&ports, namespace, db_file.as_deref()))
            .stdin(Stdio::null())
            .stdout(open()?)
            .stderr(open()?)
            .kill_on_drop(true);
        debug!(?cmd, "starting embedded server");
        let server = Self {
            command: std::sync::Mutex::new(cmd),
            child: Mutex::new(None),
            ports,
            log: log.to_owned(),
            state_dir,
        };
        match server.spawn().await {
            Ok(()) => Ok(server),
            Err(e) => {
                server.stop().await;
                Err(e)
            }
        }
    }

    /// Starts the process and waits until it is ready.
    async fn spawn(&self) -> Result<(), ServerError> {
        let child = {
            let mut cmd = self.command.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            cmd.spawn().map_err(|source| ServerError::Spawn {
                program: cmd.as_std().get_program().to_string_lossy().into_owned(),
                source,
            })?
        };
        *self.child.lock().await = Some(child);
        wait_ready(&self.ports, || async {
            match self.child.lock().await.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Err(ServerError::Exited {
                    status: status.to_string(),
                    tail: tail(&self.log),
                }),
                _ => Ok(()),
            }
        })
        .await
    }

    /// Kills the server, waits for it to exit, and removes its state.
    pub async fn stop(self) {
        if let Some(mut child) = self.child.lock().await.take() {
            let _ = child.kill().await;
        }
        if let Some(dir) = &self.state_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    async fn signal(&self, signal: Signal) -> Result<(), InfraError> {
        let guard = self.child.lock().await;
        let pid = guard.as_ref().and_then(Child::id).ok_or(ServerError::NotRunning)?;
        Ok(kill(Pid::from_raw(pid as i32), signal).map_err(|source| ServerError::Signal { signal, source })?)
    }
}

impl ServerControl for EmbeddedServer {
    fn pause(&self) -> BoxFuture<'_, Result<(), InfraError>> {
        self.signal(Signal::SIGSTOP).boxed()
    }

    fn resume(&self) -> BoxFuture<'_, Result<(), InfraError>> {
        self.signal(Signal::SIGCONT).boxed()
    }

    fn restart(&self, down: Duration) -> BoxFuture<'_, Result<(), InfraError>> {
        async move {
            if self.state_dir.is_none() {
                return Err(ServerError::NoState.into());
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
            Ok(self.spawn().await?)
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

    /// utime + stime from `/proc/<pid>/stat`.
    fn cpu_time(&self) -> Option<Duration> {
        let pid = self.child.try_lock().ok()?.as_ref()?.id()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??.max(1) as u64;
        Some(Duration::from_millis(ticks * 1000 / per_second))
    }
}

/// Last lines of the server log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}
