//! A worker child process the harness can kill for real: its own `chaos worker`, or the user's
//! worker command from a scenario's `[worker]` table.

use super::InfraError;
use crate::wait::poll;
use nix::{sys::signal::Signal, unistd::Pid};
use serde::Serialize;
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
use tokio::{
    process::Child,
    sync::{Mutex, watch},
};

/// How long a fresh worker may take to start polling, unless its `[worker]` says otherwise.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

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

/// How to start a worker of the user's own. `command`, `cwd` and `env` values may hold the
/// placeholders of [`PLACEHOLDERS`], filled in by [`WorkerSpec::expand`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerSpec {
    /// Program and arguments; a relative program path is relative to `cwd`.
    pub command: Vec<String>,
    /// Working directory (relative paths in the scenario are relative to the scenario file).
    pub cwd: PathBuf,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// How long the worker may take to poll its task queue once started.
    #[serde(with = "humantime_serde")]
    pub ready_timeout: Duration,
    /// The fixed address the worker dials (its code names it), where the harness puts its proxy
    /// instead of on a free port.
    pub dials: Option<Dials>,
}

/// A loopback `host:port` a worker dials whatever it is told, e.g. `localhost:7233` in the
/// official samples: the harness listens there, so the worker needs no change.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
#[serde(into = "String")]
pub struct Dials {
    /// `localhost`, or a loopback address (`127.0.0.1`, `::1`).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl Dials {
    /// Parses `host:port` (`[::1]:port` for IPv6) on this machine's loopback; the error says
    /// what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let form = "write HOST:PORT on this machine's loopback, e.g. \"localhost:7233\" or \"127.0.0.1:7233\"";
        let (host, port) = text.rsplit_once(':').ok_or_else(|| format!("`{text}`: {form}"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{text}`: `{port}` is not a port number (1-65535)"))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback =
            bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(format!(
                "`{text}`: the harness can only listen on this machine's loopback (localhost, 127.0.0.1, [::1]), \
                 where it puts the worker's proxy"
            ));
        }
        Ok(Self {
            host: bare.to_owned(),
            port,
        })
    }

    /// The socket addresses it names: each address of `localhost`, or the one given.
    pub async fn addresses(&self) -> std::io::Result<Vec<std::net::SocketAddr>> {
        let mut found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .filter(|a| a.ip().is_loopback())
            .collect();
        found.sort();
        found.dedup();
        Ok(found)
    }
}

impl std::fmt::Display for Dials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl From<Dials> for String {
    fn from(dials: Dials) -> String {
        dials.to_string()
    }
}

/// What a `[worker]` may refer to, each written `{name}`: the address the worker must connect to
/// (the harness's proxy in front of the server), its host and port, the namespace, the task queue.
pub const PLACEHOLDERS: [&str; 5] = ["address", "host", "port", "namespace", "task_queue"];

impl WorkerSpec {
    /// The spec with every `{placeholder}` replaced by its value from `values` (pairs of a
    /// [`PLACEHOLDERS`] name and its value).
    pub fn expand(&self, values: &[(&str, &str)]) -> WorkerSpec {
        let fill = |text: &str| {
            values.iter().fold(text.to_owned(), |t, (name, value)| {
                t.replace(&format!("{{{name}}}"), value)
            })
        };
        WorkerSpec {
            command: self.command.iter().map(|a| fill(a)).collect(),
            cwd: self.cwd.clone(),
            env: self.env.iter().map(|(k, v)| (k.clone(), fill(v))).collect(),
            ready_timeout: self.ready_timeout,
            dials: self.dials.clone(),
        }
    }

    /// Placeholder names used in `text` that are not in [`PLACEHOLDERS`].
    pub fn unknown_placeholders(text: &str) -> Vec<String> {
        text.split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .filter(|name| !PLACEHOLDERS.contains(name))
            .map(str::to_owned)
            .collect()
    }
}

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
    /// The wire proxy in front of it saw it poll: the count of polls rose.
    PollsSeen(watch::Receiver<u64>),
}

/// The worker process of one scenario (or of the scenarios sharing a task queue); its whole
/// process group is killed when dropped.
pub struct WorkerProcess {
    /// The running child and its pid (which is also its process group's id).
    child: Mutex<Option<(Child, u32)>>,
    command: WorkerCommand,
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
            command,
            readiness,
            namespace,
            task_queue,
            log,
            client,
        }
    }

    /// The worker's log file.
    pub fn log(&self) -> &std::path::Path {
        &self.log
    }

    /// Starts the process (in a process group of its own) and waits until it polls the task
    /// queue; returns its pid.
    pub async fn start(&self) -> Result<u32, InfraError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| self.error(format!("cannot open the worker log: {e}")))?;
        let err = log
            .try_clone()
            .map_err(|e| self.error(format!("cannot open the worker log: {e}")))?;
        let c = &self.command;
        let mut command = tokio::process::Command::new(&c.argv[0]);
        if let Some(dir) = &c.cwd {
            command.current_dir(dir);
        }
        for name in c.env_remove {
            command.env_remove(name);
        }
        let polls_before = match &self.readiness {
            Readiness::PollsSeen(polls) => Some(*polls.borrow()),
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
        self.wait_polling(pid, polls_before).await?;
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
    async fn exited(&self, pid: u32) -> Option<InfraError> {
        let mut slot = self.child.lock().await;
        let status = slot.as_mut()?.0.try_wait().ok()??;
        let tail = log_tail(&self.log);
        // A worker that dials its own fixed address finds nothing there (the proxy is elsewhere).
        let refused = tail.contains("onnection refused") || tail.contains("ConnectionRefused");
        let hint = match refused && self.command.user {
            true => {
                "; if the worker dials a fixed address instead of TEMPORAL_ADDRESS or `{address}`, say which \
                 with `dials = \"HOST:PORT\"` in its [worker], and the harness puts its proxy there"
            }
            false => "",
        };
        Some(InfraError::WorkerExited {
            what: format!(
                "worker `{}` (pid {pid}) exited with {status} before it polled task queue `{}`{hint}",
                self.command.display(),
                self.task_queue,
            ),
            log: self.log.display().to_string(),
            tail,
        })
    }

    async fn wait_polling(&self, pid: u32, polls_before: Option<u64>) -> Result<(), InfraError> {
        let identity_suffix = format!(":{pid}");
        let svc = self.client.connection().workflow_service();
        let timed_out = || {
            self.error(format!(
                "worker `{}` (pid {pid}) did not poll task queue `{}` within {}: does it connect to the \
                 address it is given and poll that task queue?",
                self.command.display(),
                self.task_queue,
                humantime::format_duration(self.command.ready_timeout)
            ))
        };
        poll(
            Duration::from_millis(100),
            Some(self.command.ready_timeout),
            timed_out,
            || {
                let (mut svc, identity_suffix) = (svc.clone(), &identity_suffix);
                async move {
                    if let Some(exited) = self.exited(pid).await {
                        return Err(exited);
                    }
                    let polling = match (&self.readiness, polls_before) {
                        (Readiness::PollsSeen(polls), Some(before)) => *polls.borrow() > before,
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
