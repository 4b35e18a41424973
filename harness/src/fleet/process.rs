//! A worker child process the harness can kill for real: its own `chaos worker`, or the user's
//! worker command from a scenario's `[worker]` table.

use crate::infra::{InfraError, READY_TIMEOUT, Stop, WorkerSpec};
use crate::wait::poll;
use crate::wire::PollerSeen;
use nix::{sys::signal::Signal, unistd::Pid};
use std::sync::Arc;
use std::{
    io::Read,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};
use temporalio_client::{Client, tonic::IntoRequest};
use temporalio_common::protos::temporal::api::{
    enums::v1::TaskQueueType, taskqueue::v1::TaskQueue, workflowservice::v1::DescribeTaskQueueRequest,
};
use tokio::{process::Child, sync::Mutex};

/// Worker processes starting at once, at most: one per core.
static STARTING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, usize::from))
});

/// Lines of its log shown when a worker process exits before it polls.
const LOG_TAIL_LINES: usize = 20;

/// Connection variables a user's worker must not inherit: it talks plaintext to the harness's
/// proxy, which holds the real connection settings (TLS, API key) towards the server. (The
/// environment-configuration names every Temporal SDK reads.)
const CONNECTION_VARS: [&str; 10] = [
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_CERT_DATA",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_CLIENT_KEY_DATA",
    "TEMPORAL_TLS_SERVER_NAME",
    "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION",
    "TEMPORAL_PROFILE",
];

/// What to run as a worker process.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// Program and arguments.
    argv: Vec<String>,
    /// Working directory (`None`: the harness's own).
    cwd: Option<PathBuf>,
    /// Variables set on top of the harness's environment.
    env: Vec<(String, String)>,
    /// Variables removed from the harness's environment.
    env_remove: &'static [&'static str],
    /// Whether it is a worker of the user's own (not the harness's `chaos worker`).
    user: bool,
    /// How long it may take to poll once started.
    ready_timeout: Duration,
}

impl WorkerCommand {
    /// The harness's own worker (`chaos worker`), connecting to `address` with the connection
    /// variables `env` (TLS, API key) on top of the harness's environment.
    pub fn harness(
        address: &str,
        namespace: &str,
        task_queue: &str,
        env: Vec<(String, String)>,
    ) -> Result<Self, std::io::Error> {
        let exe = std::env::current_exe()?.display().to_string();
        let argv = [&exe, "worker", "--address", address, "--namespace", namespace];
        Ok(Self {
            argv: argv
                .iter()
                .chain(&["--task-queue", task_queue])
                .map(|a| a.to_string())
                .collect(),
            cwd: None,
            env,
            env_remove: &[],
            user: false,
            ready_timeout: READY_TIMEOUT,
        })
    }

    /// A user's worker from its `[worker]` table, placeholders already filled in, connecting to
    /// `address` in `namespace`: `TEMPORAL_ADDRESS` and `TEMPORAL_NAMESPACE` are set, and
    /// `TEMPORAL_TLS=false` (the proxy listens in plaintext; the table's `env` may override any of
    /// them), and the harness's own connection secrets and TLS files are not passed on.
    pub fn user(spec: &WorkerSpec, address: &str, namespace: &str) -> Self {
        let mut argv = spec.command.clone();
        // `./worker` or `.venv/bin/python`: relative to the worker's directory, not the harness's.
        if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
            argv[0] = spec.cwd.join(&argv[0]).display().to_string();
        }
        let defaults = [
            ("TEMPORAL_ADDRESS", address),
            ("TEMPORAL_NAMESPACE", namespace),
            ("TEMPORAL_TLS", "false"),
            // A killed Python worker's log would otherwise lose what it had buffered.
            ("PYTHONUNBUFFERED", "1"),
        ];
        Self {
            argv,
            cwd: Some(spec.cwd.clone()),
            env: defaults
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .chain(spec.env.iter().cloned())
                .collect(),
            env_remove: &CONNECTION_VARS,
            user: true,
            ready_timeout: spec.ready_timeout,
        }
    }

    /// The command line as shown in errors.
    fn display(&self) -> String {
        self.argv.join(" ")
    }
}

/// How the harness knows a fresh worker process is ready.
pub enum Readiness {
    /// Its pollers show on the task queue with an identity ending in `:<pid>` (as the harness's
    /// own worker names itself).
    PollerIdentity,
    /// The wire proxy in front of it saw it poll (the proxy's pollers): a poll since its start
    /// from an identity that had no poll open then (each SDK's default identity names its
    /// process, and the workers already running hold their long polls open).
    Proxied(Arc<dyn Fn() -> Vec<PollerSeen> + Send + Sync>),
}

/// What the proxy's pollers were when a worker started.
struct Before {
    /// When, in unix milliseconds.
    since_ms: u64,
    /// The identities with a poll open.
    open: std::collections::HashSet<String>,
}

/// The worker process of one scenario (or of the scenarios sharing a task queue); its whole
/// process group is killed when dropped.
pub struct WorkerProcess {
    /// The running child and its pid (which is also its process group's id).
    child: Mutex<Option<(Child, u32)>>,
    /// What it runs at its next start.
    command: std::sync::Mutex<WorkerCommand>,
    /// Whether it has been started before.
    started: std::sync::atomic::AtomicBool,
    readiness: Readiness,
    namespace: String,
    task_queue: String,
    log: PathBuf,
    /// Used to see the worker's pollers arrive.
    client: Client,
}

impl WorkerProcess {
    /// Prepares (does not start) `command` as a worker on `task_queue`, logging to `log`.
    pub fn new(
        client: Client,
        command: WorkerCommand,
        readiness: Readiness,
        namespace: String,
        task_queue: String,
        log: PathBuf,
    ) -> Self {
        Self {
            child: Mutex::new(None),
            command: std::sync::Mutex::new(command),
            started: false.into(),
            readiness,
            namespace,
            task_queue,
            log,
            client,
        }
    }

    /// What it runs at its next start.
    fn command(&self) -> WorkerCommand {
        self.command
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Its pid while it runs (`None` while it is being started or stopped, or not running).
    pub fn pid(&self) -> Option<u32> {
        self.child.try_lock().ok()?.as_ref().map(|(_, pid)| *pid)
    }

    /// Runs `command` from its next start on (another version of the app).
    pub fn set_command(&self, command: WorkerCommand) {
        *self.command.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = command;
    }

    /// Stops the process group `how`: SIGKILL at once, or SIGTERM and SIGKILL after the grace
    /// if it is still there; returns its pid.
    pub async fn stop(&self, how: Stop) -> Result<u32, InfraError> {
        let grace = match how {
            Stop::Kill => return self.kill().await,
            Stop::Graceful(grace) => grace,
        };
        let mut slot = self.child.lock().await;
        let (child, pid) = slot
            .as_mut()
            .ok_or_else(|| self.error("no worker process is running".into()))?;
        let pid = *pid;
        if let Ok(group) = i32::try_from(pid)
            && group > 1
        {
            let _ = nix::sys::signal::killpg(Pid::from_raw(group), Signal::SIGTERM);
        }
        let exited = tokio::time::timeout(grace, child.wait()).await.is_ok();
        drop(slot);
        if exited {
            // What it started may still be there: its group goes too.
            let taken = self.child.lock().await.take();
            kill_group(pid);
            drop(taken);
            return Ok(pid);
        }
        self.kill().await
    }

    /// Starts the process (in a process group of its own) and waits until it polls the task
    /// queue; returns its pid.
    ///
    /// At most one worker per core makes its first start at a time in the whole run (a start, an
    /// SDK's imports and its first connection, is the costly part of a worker's life; many at
    /// once starve the workers already running, whose scenarios' timings would then measure the
    /// machine). A restart, part of an experiment's timing, does not queue.
    pub async fn start(&self) -> Result<u32, InfraError> {
        let first = !self.started.swap(true, std::sync::atomic::Ordering::SeqCst);
        let _turn = match first {
            true => Some(STARTING.acquire().await.expect("the worker starts are never closed")),
            false => None,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| self.error(format!("cannot open the worker log: {e}")))?;
        let err = log
            .try_clone()
            .map_err(|e| self.error(format!("cannot open the worker log: {e}")))?;
        let c = &self.command();
        {
            use std::io::Write;
            let mut marker = &log;
            let _ = writeln!(marker, "--- temporal-chaos: starting `{}` ---", c.display());
        }
        let mut command = tokio::process::Command::new(&c.argv[0]);
        if let Some(dir) = &c.cwd {
            command.current_dir(dir);
        }
        for name in c.env_remove {
            command.env_remove(name);
        }
        let before = match &self.readiness {
            Readiness::Proxied(pollers) => Some(Before {
                since_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                open: pollers()
                    .into_iter()
                    .filter(|p| p.open > 0)
                    .map(|p| p.identity)
                    .collect(),
            }),
            Readiness::PollerIdentity => None,
        };
        let child = command
            .args(&c.argv[1..])
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                let dir = c
                    .cwd
                    .as_ref()
                    .map_or_else(String::new, |d| format!(" in {}", d.display()));
                self.error(format!("cannot start worker command `{}`{dir}: {e}", c.display()))
            })?;
        let pid = child.id().unwrap_or_default();
        *self.child.lock().await = Some((child, pid));
        self.wait_polling(c, pid, before).await?;
        Ok(pid)
    }

    /// Kills the process group with SIGKILL (no graceful shutdown: a crash); returns its pid.
    pub async fn kill(&self) -> Result<u32, InfraError> {
        let mut slot = self.child.lock().await;
        let (mut child, pid) = slot
            .take()
            .ok_or_else(|| self.error("no worker process is running".into()))?;
        kill_group(pid);
        child
            .kill()
            .await
            .map_err(|e| self.error(format!("cannot kill worker {pid}: {e}")))?;
        Ok(pid)
    }

    fn error(&self, what: String) -> InfraError {
        InfraError::Worker {
            what,
            log: self.log.display().to_string(),
        }
    }

    /// Whether the worker process has exited, and how (with the end of its log).
    async fn exited(&self, command: &WorkerCommand, pid: u32) -> Option<InfraError> {
        let mut slot = self.child.lock().await;
        let status = slot.as_mut()?.0.try_wait().ok()??;
        let tail = log_tail(&self.log);
        // A worker that dials its own fixed address finds nothing there (the proxy is elsewhere).
        let refused = tail.contains("onnection refused") || tail.contains("ConnectionRefused");
        let hint = match refused && command.user {
            true => {
                "; if the worker dials a fixed address instead of TEMPORAL_ADDRESS or `{address}`, say which \
                 with `dials = \"HOST:PORT\"` in its [worker], and the harness puts its proxy there"
            }
            false => "",
        };
        Some(InfraError::WorkerExited {
            what: format!(
                "worker `{}` (pid {pid}) exited with {status} before it polled task queue `{}`{hint}",
                command.display(),
                self.task_queue,
            ),
            log: self.log.display().to_string(),
            tail,
        })
    }

    async fn wait_polling(&self, command: &WorkerCommand, pid: u32, before: Option<Before>) -> Result<(), InfraError> {
        let identity_suffix = format!(":{pid}");
        let svc = self.client.connection().workflow_service();
        let timed_out = || {
            self.error(format!(
                "worker `{}` (pid {pid}) did not poll task queue `{}` within {}: does it connect to the \
                 address it is given and poll that task queue?",
                command.display(),
                self.task_queue,
                humantime::format_duration(command.ready_timeout)
            ))
        };
        poll(
            Duration::from_millis(100),
            Some(command.ready_timeout),
            timed_out,
            || {
                let (mut svc, identity_suffix, before) = (svc.clone(), &identity_suffix, &before);
                async move {
                    if let Some(exited) = self.exited(command, pid).await {
                        return Err(exited);
                    }
                    let polling = match (&self.readiness, before) {
                        (Readiness::Proxied(pollers), Some(before)) => pollers()
                            .iter()
                            .any(|p| p.last_poll_ms >= before.since_ms && !before.open.contains(&p.identity)),
                        _ => {
                            let request = DescribeTaskQueueRequest {
                                namespace: self.namespace.clone(),
                                task_queue: Some(TaskQueue {
                                    name: self.task_queue.clone(),
                                    ..Default::default()
                                }),
                                task_queue_type: TaskQueueType::Activity as i32,
                                ..Default::default()
                            };
                            svc.describe_task_queue(request.into_request()).await.is_ok_and(|r| {
                                r.into_inner()
                                    .pollers
                                    .iter()
                                    .any(|p| p.identity.ends_with(identity_suffix))
                            })
                        }
                    };
                    Ok(polling.then_some(()))
                }
            },
        )
        .await
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // The child itself dies with `kill_on_drop`; what it started (a wrapper's children) with
        // its process group.
        if let Some((_, pid)) = self.child.get_mut() {
            kill_group(*pid);
        }
    }
}

/// SIGKILL to the process group led by `pid` (each worker is started as a group leader). Never
/// to group 0 or 1, which would be the harness's own group or init's.
fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 1
    {
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The last lines of a log file, or why it cannot be read.
fn log_tail(path: &std::path::Path) -> String {
    let mut text = String::new();
    if let Err(e) = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text)) {
        return format!("(cannot read {}: {e})", path.display());
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    if tail.is_empty() {
        "(the log is empty)".into()
    } else {
        tail.iter().map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n")
    }
}
