//! The worker processes the harness owns: one scenario's (or the scenarios' sharing a user's
//! fixed task queue), the harness's own `chaos worker` and users' workers alike. Here they are
//! started, stopped, restarted and replaced by another version; the infrastructure kinds act on
//! them through [`WorkerControl`], and every change lands in a timeline ([`WorkerEvent`]) for the
//! report.

mod process;

pub use process::{Readiness, WorkerCommand, WorkerProcess};

use crate::{
    infra::{InfraError, Stop, WorkerControl, WorkerSpec, WorkerVersion},
    target::Cluster,
    wire::WireProxy,
};
use futures::future::{BoxFuture, FutureExt};
use serde::Serialize;
use std::{path::Path, sync::Mutex};

/// What the workers of a fleet run, and where they connect.
pub struct FleetSpec<'a> {
    /// The cluster they work for.
    pub cluster: &'a Cluster,
    /// The user's `[worker]`; `None`: the harness's own `chaos worker`.
    pub user: Option<&'a WorkerSpec>,
    /// The address they connect to (a proxy of the harness's).
    pub address: &'a str,
    /// The wire proxy they poll through, if any: a user's worker is seen ready there.
    pub wire: Option<&'a WireProxy>,
    /// The task queue they poll.
    pub task_queue: &'a str,
    /// Their log files: `<log>.log` for the first, `<log>-2.log` and on for the others.
    pub log: &'a Path,
    /// How many.
    pub count: usize,
}

/// One change to a fleet, for the report's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerEvent {
    /// When, in unix milliseconds by the harness's clock.
    pub at_unix_ms: u64,
    /// Which worker (1-based).
    pub worker: usize,
    /// What: `started pid 412`, `killed pid 412`, ...
    pub what: String,
}

/// The worker processes of one scenario or one shared task queue.
pub struct Fleet {
    workers: Vec<WorkerProcess>,
    /// The user's `[worker]`, to build another version's command from, with the values of its
    /// placeholders.
    user: Option<(WorkerSpec, Vec<(&'static str, String)>)>,
    address: String,
    namespace: String,
    /// The version in force, by name (`None`: the scenario's own).
    version: Mutex<Option<String>>,
    events: Mutex<Vec<WorkerEvent>>,
}

impl Fleet {
    /// Prepares (does not start) the fleet `spec` describes.
    pub fn new(spec: &FleetSpec<'_>) -> Result<Self, InfraError> {
        let FleetSpec {
            cluster,
            address,
            task_queue,
            ..
        } = *spec;
        let namespace = &cluster.namespace;
        let (host, port) = address.rsplit_once(':').unwrap_or((address, ""));
        let values: Vec<(&'static str, String)> = [
            ("address", address),
            ("host", host),
            ("port", port),
            ("namespace", namespace.as_str()),
            ("task_queue", task_queue),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
        let user = spec.user.map(|user| (user.clone(), values));
        let expanded = user.as_ref().map(|(user, values)| expand(user, values));
        let base = spec.log.display().to_string();
        let workers = (0..spec.count.max(1))
            .map(|i| {
                let log = match i {
                    0 => format!("{base}.log"),
                    i => format!("{base}-{}.log", i + 1),
                };
                let (command, readiness) = match (&expanded, spec.wire) {
                    (Some(user), Some(wire)) => (
                        WorkerCommand::user(user, address, namespace),
                        Readiness::Proxied(wire.pollers_seen()),
                    ),
                    (Some(user), None) => (WorkerCommand::user(user, address, namespace), Readiness::PollerIdentity),
                    (None, wire) => {
                        let readiness = match wire {
                            Some(wire) => Readiness::Proxied(wire.pollers_seen()),
                            None => Readiness::PollerIdentity,
                        };
                        // Behind a wire proxy (plaintext on loopback, the proxy does the TLS) or
                        // straight through the network fault proxy (TLS end to end, as the
                        // cluster's endpoint says).
                        let env = match wire {
                            Some(_) => vec![("TEMPORAL_TLS".to_owned(), "false".to_owned())],
                            None => cluster.endpoint().child_env(),
                        };
                        let command = WorkerCommand::harness(address, namespace, task_queue, env).map_err(|e| {
                            InfraError::Worker {
                                what: format!("cannot find the chaos binary: {e}"),
                                log: log.clone(),
                            }
                        })?;
                        (command, readiness)
                    }
                };
                Ok(WorkerProcess::new(
                    cluster.client.clone(),
                    command,
                    readiness,
                    namespace.clone(),
                    task_queue.to_owned(),
                    log.into(),
                ))
            })
            .collect::<Result<Vec<_>, InfraError>>()?;
        Ok(Self {
            workers,
            user,
            address: address.to_owned(),
            namespace: namespace.clone(),
            version: Mutex::new(None),
            events: Mutex::new(Vec::new()),
        })
    }

    /// Kills every worker still running (the end of a scenario).
    pub async fn kill_all(&self) {
        for worker in &self.workers {
            let _ = worker.kill().await;
        }
    }

    /// The pids of the workers running now.
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().filter_map(WorkerProcess::pid).collect()
    }

    /// The changes so far, in order.
    pub fn events(&self) -> Vec<WorkerEvent> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn note(&self, index: usize, what: String) {
        tracing::info!(worker = index + 1, "{what}");
        let at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(WorkerEvent {
                at_unix_ms,
                worker: index + 1,
                what,
            });
    }

    fn worker(&self, index: usize) -> Result<&WorkerProcess, InfraError> {
        self.workers.get(index).ok_or_else(|| InfraError::Worker {
            what: format!(
                "there is no worker {} (the scenario runs {})",
                index + 1,
                self.workers.len()
            ),
            log: String::new(),
        })
    }
}

impl WorkerControl for Fleet {
    fn count(&self) -> usize {
        self.workers.len()
    }

    fn stop(&self, index: usize, how: Stop) -> BoxFuture<'_, Result<u32, InfraError>> {
        async move {
            let pid = self.worker(index)?.stop(how).await?;
            let verb = match how {
                Stop::Kill => "killed",
                Stop::Graceful(_) => "stopped",
            };
            self.note(index, format!("{verb} pid {pid}"));
            Ok(pid)
        }
        .boxed()
    }

    fn start(&self, index: usize) -> BoxFuture<'_, Result<u32, InfraError>> {
        async move {
            let worker = self.worker(index)?;
            let version = self
                .version
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let pid = worker.start().await?;
            let version = version.map(|v| format!(" as `{v}`")).unwrap_or_default();
            self.note(index, format!("started pid {pid}{version}"));
            Ok(pid)
        }
        .boxed()
    }

    fn switch(&self, version: Option<&WorkerVersion>) {
        let Some((user, values)) = &self.user else {
            return;
        };
        let spec = match version {
            Some(v) => expand(&user.as_version(v), values),
            None => expand(user, values),
        };
        for worker in &self.workers {
            worker.set_command(WorkerCommand::user(&spec, &self.address, &self.namespace));
        }
        *self.version.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = version.map(|v| v.command.join(" "));
    }
}

/// `spec` with its placeholders filled in from `values`.
fn expand(spec: &WorkerSpec, values: &[(&'static str, String)]) -> WorkerSpec {
    let values: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spec.expand(&values)
}
