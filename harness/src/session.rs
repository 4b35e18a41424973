//! A session: the cluster one job runs on (started or reached), checked for what the job needs,
//! with the harness's worker polling the job's task queue, until the job ends or a signal comes.
//! `chaos run` ([`crate::suite`]) and `chaos load` ([`crate::load`]) both run inside one.

use crate::{
    infra::Capability,
    target::{Cluster, ConnectionSettings, IMAGE_ENV, TargetError, TargetKind, TargetSettings},
    wait::{StopSignal, stop_signal},
    worker::{WorkerError, run_worker_until},
};
use std::{fmt, path::PathBuf};
use temporalio_client::Client;

/// Which cluster to use and how to reach it; shared by `run`, `demo` and `load`.
#[derive(Debug, Clone, clap::Args)]
pub struct SessionOptions {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnectionSettings,
    /// Where to run: `embedded` (default; `remote` when --address is given), `testcontainers`, `remote`.
    #[arg(long, value_enum)]
    pub target: Option<TargetKind>,
    /// Image for the testcontainers target (default: the official Temporal CLI image, pinned).
    #[arg(long, env = IMAGE_ENV)]
    pub image: Option<String>,
    /// Base URL of the Temporal Web UI for report links (defaults to the started server's UI).
    #[arg(long, env = "CHAOS_UI_URL")]
    pub ui_url: Option<String>,
    /// Path of the `temporal` CLI for the embedded server.
    #[arg(long, env = "CHAOS_TEMPORAL_BIN")]
    pub temporal_bin: Option<PathBuf>,
    /// Task queue for the workflows (default: a fresh one per run).
    #[arg(long, env = "CHAOS_TASK_QUEUE")]
    pub task_queue: Option<String>,
    /// Start no worker at all: rely on the ones already polling (e.g. deployed): --task-queue
    /// for the demo workflows, and each scenario's own task queue instead of its `[worker]`.
    #[arg(long)]
    pub external_worker: bool,
    /// Folder for reports; each run writes `<folder>/<run-id>/` and updates `<folder>/latest`.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
}

impl SessionOptions {
    /// Fails when `--external-worker` leaves `workflows` (which go to the run's task queue) no
    /// queue to go to.
    pub fn require_queue_for_external_worker(&self, workflows: impl FnOnce() -> String) -> Result<(), SessionError> {
        match self.external_worker && self.task_queue.is_none() {
            true => Err(SessionError::ExternalWorkerQueue(workflows())),
            false => Ok(()),
        }
    }
}

/// Errors opening or running a session; each says what to try.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The run's folder could not be created.
    #[error("cannot create {path}: {source}")]
    LogDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The cluster could not be started or reached.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The job needs faults this target cannot inject; one line per fault.
    #[error("{}", Unsupported(.0))]
    Unsupported(Vec<String>),
    /// The harness's worker could not start or died.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// `--external-worker` without `--task-queue`, for workflows that go to the run's queue.
    #[error("--external-worker needs --task-queue (or CHAOS_TASK_QUEUE), the task queue your worker polls, for {0}")]
    ExternalWorkerQueue(String),
    /// A signal stopped the session.
    #[error("interrupted by {0}; the cluster was stopped")]
    Interrupted(StopSignal),
}

struct Unsupported<'a>(&'a [String]);

impl fmt::Display for Unsupported<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in self.0 {
            writeln!(f, "{line}")?;
        }
        write!(
            f,
            "{} infrastructure fault(s) cannot run on this target; nothing was run",
            self.0.len()
        )
    }
}

/// A started (or reached) cluster, with the id and task queue of the job running on it.
pub struct Session {
    /// The cluster.
    pub cluster: Cluster,
    /// Unique id of the job (`YYYYmmdd-HHMMSS-xxxx`); names the report folder.
    pub run_id: String,
    /// Task queue the job's workflows go to.
    pub task_queue: String,
    /// Folder of the job's reports and logs.
    pub log_dir: PathBuf,
    /// How long starting (or reaching) the cluster took.
    pub started_in: std::time::Duration,
    target: TargetSettings,
    external_worker: bool,
}

impl Session {
    /// Starts or reaches the cluster. `queue_prefix` names the fresh task queue when none is
    /// given; `persist` keeps a started server's state across restarts.
    pub async fn open(options: &SessionOptions, queue_prefix: &str, persist: bool) -> Result<Self, SessionError> {
        let run_id = new_run_id();
        let log_dir = options.reports.join(&run_id);
        std::fs::create_dir_all(&log_dir).map_err(|source| SessionError::LogDir {
            path: log_dir.clone(),
            source,
        })?;
        let settings = TargetSettings {
            kind: options.target.unwrap_or(if options.conn.address.is_some() {
                TargetKind::Remote
            } else {
                TargetKind::Embedded
            }),
            connection: options.conn.clone(),
            image: options.image.clone(),
            ui_url: options.ui_url.clone(),
            temporal_bin: options.temporal_bin.clone(),
            log_dir: log_dir.clone(),
            persist,
        };
        let began = std::time::Instant::now();
        let cluster = Cluster::start(&settings).await?;
        Ok(Self {
            cluster,
            started_in: began.elapsed(),
            target: settings,
            task_queue: options
                .task_queue
                .clone()
                .unwrap_or_else(|| format!("{queue_prefix}-{run_id}")),
            run_id,
            log_dir,
            external_worker: options.external_worker,
        })
    }

    /// How to start another server like the session's, when the target starts servers.
    pub fn another_server(&self) -> Option<TargetSettings> {
        (self.cluster.server().is_some()).then(|| self.target.clone())
    }

    /// What this session can inject. Someone else's worker can be neither killed nor put behind
    /// the proxy.
    pub fn capabilities(&self) -> Vec<Capability> {
        let mut capabilities = self.cluster.capabilities();
        if self.external_worker {
            capabilities.retain(|c| !c.on_own_workers());
        }
        capabilities
    }

    /// Fails when any of `needs` is missing, with the line `explain` gives for each missing
    /// one (it is handed the need and the target's name).
    pub fn require<T>(
        &self,
        needs: impl IntoIterator<Item = T>,
        capability: impl Fn(&T) -> Capability,
        explain: impl Fn(&T, &str) -> String,
    ) -> Result<(), SessionError> {
        let capabilities = self.capabilities();
        let target = match self.external_worker {
            true => format!(
                "{} (with --external-worker, which starts no worker)",
                self.cluster.target.name()
            ),
            false => self.cluster.target.name().to_owned(),
        };
        let missing: Vec<String> = needs
            .into_iter()
            .filter(|n| !capabilities.contains(&capability(n)))
            .map(|n| explain(&n, &target))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(SessionError::Unsupported(missing))
        }
    }

    /// Runs `job` next to the harness's own worker on the session's task queue (or alone when
    /// an external worker polls it).
    pub async fn run<F: Future>(&self, job: F) -> Result<F::Output, SessionError> {
        self.run_with(self.cluster.client.clone(), job).await
    }

    /// [`Self::run`], with the worker connected through `worker_client` (e.g. to a wire proxy).
    pub async fn run_with<F: Future>(&self, worker_client: Client, job: F) -> Result<F::Output, SessionError> {
        if self.external_worker {
            Ok(job.await)
        } else {
            Ok(run_worker_until(worker_client, &self.task_queue, job).await?)
        }
    }

    /// [`Self::run_with`], ended by SIGINT or SIGTERM with [`SessionError::Interrupted`].
    pub async fn run_until_signal<F: Future>(&self, worker_client: Client, job: F) -> Result<F::Output, SessionError> {
        tokio::select! {
            done = self.run_with(worker_client, job) => done,
            signal = stop_signal() => Err(SessionError::Interrupted(signal)),
        }
    }

    /// Stops the cluster, if the harness started it.
    pub async fn close(self) {
        self.cluster.stop().await;
    }
}

/// `YYYYmmdd-HHMMSS-xxxx`: sortable, and unique enough for concurrent runs.
fn new_run_id() -> String {
    format!(
        "{}-{:04x}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        rand::random::<u16>()
    )
}
