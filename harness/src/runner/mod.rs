//! Runs plans on a cluster: start each workflow with its fault plan, drive its infrastructure
//! faults, wait for it to close, and read its histories. What the histories mean is for
//! [`crate::verify`] to say; the runner only observes.

mod start;
mod watch;
mod workers;

pub(crate) use start::start;
pub(crate) use watch::wait_closed;

pub use workers::{OwnWorkers, OwnWorkersSeen, OwnWorkersSpec, SharedWorkers};

use crate::{
    fleet::WorkerEvent,
    history::{Histories, HistoryError, read_histories},
    infra::{self, CallEvent, Capability, InfraControl, InfraError, InfraEvent, InfraOutcome},
    plan::{Plan, WorkflowSpec},
    target::{Cluster, TargetError, TargetSettings},
    wire::{AttemptRecord, ProxyAdmin, WireError, WireSettings},
};
use futures::{Stream, StreamExt, stream};
use start::{Backlog, start_plan};
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};
use temporalio_client::errors::WorkflowStartError;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use watch::{Stuck, drive, stuck_workflow_task, terminate};
use workers::Placement;

/// Scenarios in flight by default, and at most on the harness's own in-process worker: 16 per
/// core. They mostly wait on the server, so many fit on few cores; many more put the worker
/// behind its tasks (400 at once on 2 cores: first workflow tasks waited up to 13 s), and the
/// verdicts would measure the harness instead of the workflows.
pub fn default_jobs() -> usize {
    16 * std::thread::available_parallelism().map_or(1, usize::from)
}

/// How many of `plans` run on the harness's own in-process worker (which takes at most
/// [`default_jobs`] at a time).
pub fn on_the_harness_worker(plans: &[Plan], external_worker: bool) -> usize {
    plans
        .iter()
        .filter(|p| Placement::of(p, external_worker) == Placement::Harness)
        .count()
}

/// Server-side deadline of a scenario workflow without a time budget.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);

/// Extra time the client waits past the server-side deadline before giving up on the server.
const CLIENT_SLACK: Duration = Duration::from_secs(15);

/// How a run behaves, independent of the scenarios.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Unique id of this run; suffixes workflow ids.
    pub run_id: String,
    /// Task queue the workflows go to.
    pub task_queue: String,
    /// Overrides every scenario's seed.
    pub seed: Option<u64>,
    /// Scenarios in flight at once.
    pub jobs: usize,
    /// Folder for per-scenario logs (worker processes, private servers).
    pub log_dir: PathBuf,
    /// How to start a private server for a scenario that pauses or restarts the server, so that
    /// it disturbs no other scenario (`None`: the target cannot start servers).
    pub private_server: Option<TargetSettings>,
    /// Where faults enter: the harness worker's SDK interceptors, or the wire proxy.
    pub inject: Inject,
    /// Start no worker at all: every scenario uses the worker already polling its task queue
    /// (the demo workflows: the run's; a workflow of the user's own: its own, whatever its
    /// `[worker]` says).
    pub external_worker: bool,
    /// The admin listener of the `chaos proxy` those workers poll through, where the attempts of
    /// scenarios whose faults go on the wire are read.
    pub proxy_admin: Option<ProxyAdmin>,
}

/// Whether `plan`'s faults enter on the wire (through a proxy, from the root's memo) rather than
/// in the harness worker's SDK interceptors: always for a workflow of the user's own.
pub fn faults_on_the_wire(plan: &Plan, inject: Inject) -> bool {
    inject == Inject::Wire || matches!(plan.workflow, WorkflowSpec::User(_))
}

/// Where activity faults enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Inject {
    /// The SDK interceptors of the harness's own worker (the plan travels in a workflow header).
    #[default]
    Sdk,
    /// The wire proxy between the worker and the frontend (the plan is read from the root
    /// workflow's memo), as for a worker in any language.
    Wire,
}

/// What a run starts for some of its scenarios and keeps until it ends: servers of their own
/// (kept so that the report's links to their Web UI work while the shared server's do) and the
/// user workers shared by the scenarios on one fixed task queue.
#[derive(Default)]
pub struct Resources {
    servers: std::sync::Mutex<Vec<Cluster>>,
    workers: SharedWorkers,
}

impl Resources {
    /// Stops every one of them.
    pub async fn stop(self) {
        self.workers.stop().await;
        let servers = self
            .servers
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        futures::future::join_all(servers.into_iter().map(Cluster::stop)).await;
    }

    fn keep(&self, cluster: Cluster) {
        self.servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(cluster);
    }
}

/// What running one plan produced: the plan as run, its workflow, and what the server recorded.
#[derive(Debug)]
pub struct Execution {
    /// The plan as run (seed override and run tag applied, as the worker saw it).
    pub plan: Plan,
    /// Workflow id of the scenario's workflow.
    pub workflow_id: String,
    /// Its run id, once started.
    pub run_id: Option<String>,
    /// Its histories and its children's, once read.
    pub histories: Option<Histories>,
    /// What each infrastructure fault did.
    pub infra_events: Vec<InfraEvent>,
    /// A problem that kept the scenario from running or from being observed.
    pub error: Option<RunError>,
    /// Web UI of the server the scenario ran on (its own one, for server faults).
    pub ui_url: Option<String>,
    /// The namespace it ran in (one of its own when it took one instead of waiting for its
    /// fixed task queue).
    pub namespace: String,
    /// Wall time the scenario took in the harness, its private server's start included and
    /// `waited` left out.
    pub wall: Duration,
    /// Time it waited for its turn: on a fixed task queue or a dialed address that another
    /// scenario had to itself, or on the harness's own worker.
    pub waited: Duration,
    /// Every activity attempt as the wire proxy saw it (`--inject wire`, workflows of the user's
    /// own run by a worker the harness started, and those read from `--proxy-admin`).
    pub wire_attempts: Vec<AttemptRecord>,
    /// Why the wire proxy's log says nothing (or not everything) about a scenario whose faults
    /// went on the wire: read from a deployed proxy that has since dropped them, or could not be
    /// read. The checks then rest on history alone, and say so.
    pub wire_gap: Option<String>,
    /// For a workflow of the user's own: which worker ran it, and how (shared, its own, external).
    pub worker: Option<String>,
    /// What the faults on the workers' calls did, and the replays the wire proxy in front of the
    /// scenario's own workers saw.
    pub call_events: Vec<CallEvent>,
    /// What happened to the scenario's own worker processes (started, killed, stopped), in order.
    pub worker_events: Vec<WorkerEvent>,
    /// The workflows started while its workers were down (`workers_down`), with their histories.
    pub backlog: Vec<Histories>,
}

/// Why a scenario could not run or be observed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The network fault proxy did not start.
    #[error("cannot start the fault proxy: {0}")]
    Proxy(#[source] std::io::Error),
    /// The scenario's worker process did not start (or did not poll).
    #[error(transparent)]
    Worker(#[from] InfraError),
    /// The server refused to start the workflow.
    #[error("cannot start workflow {workflow_id}: {source}")]
    Start {
        /// The workflow id.
        workflow_id: String,
        /// The client's error.
        #[source]
        source: WorkflowStartError,
    },
    /// The histories could not be read.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The scenario's private server did not start.
    #[error("cannot start a server of its own: {0}")]
    PrivateServer(#[source] TargetError),
    /// The scenario's wire proxy did not start.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The scenario's own namespace could not be created.
    #[error("cannot give the scenario a namespace of its own: {0}")]
    Namespace(#[source] TargetError),
    /// The address the user's worker dials (`dials` in its `[worker]`) cannot take the
    /// harness's proxy.
    #[error(
        "the worker dials {dials} (`dials` in its [worker]), so the harness puts its proxy there, but {reason}: \
         stop what listens there (a Temporal dev server started on its default port?), or let the worker take its \
         address from the environment (TEMPORAL_ADDRESS, or `{{address}}` in [worker]) and drop `dials`"
    )]
    Dials {
        /// The address.
        dials: String,
        /// Why the proxy cannot listen there.
        reason: String,
    },
    /// No worker polls the task queue of a workflow the harness does not run a worker for.
    #[error(
        "no worker polls task queue `{task_queue}` on {address}: start your worker (connected through \
         `chaos proxy --upstream {address}`) before the run{}",
        if *.external { ", or run without --external-worker" } else { ", or give the scenario a `[worker]` for the harness to start" }
    )]
    NoWorker {
        /// The scenario's task queue.
        task_queue: String,
        /// The server's address.
        address: String,
        /// Whether `--external-worker` kept the harness from starting one.
        external: bool,
    },
    /// Workers poll the task queue, but none through the proxy whose log the run reads, so the
    /// scenario's faults would reach none of them.
    #[error(
        "workers poll task queue `{task_queue}`, but none through the chaos proxy at {admin} ({seen}), so the \
         scenario's faults would not reach them: point the worker's Temporal address at the proxy's --listen address \
         (on Render: fromService chaos-proxy), or --proxy-admin at the proxy it uses"
    )]
    NotThroughProxy {
        /// The scenario's task queue.
        task_queue: String,
        /// The proxy's admin URL.
        admin: String,
        /// What the proxy does see.
        seen: String,
    },
    /// No worker took the workflow's first task, and none polled its task queue meanwhile (a
    /// worker that stopped can still be listed as a poller for a while, but its last poll ages).
    #[error(
        "no worker took the first workflow task of {workflow_id} from task queue `{task_queue}` within {waited_s} s, \
         and none polled that task queue in the last 10 s, so it was terminated: is a worker polling it (through \
         `chaos proxy`, for faults on the wire)?"
    )]
    NotPickedUp {
        /// The workflow id.
        workflow_id: String,
        /// Its task queue.
        task_queue: String,
        /// How long it waited.
        waited_s: u64,
    },
    /// The workflow's tasks keep failing on the worker (an unregistered workflow type, a
    /// nondeterminism, a bug); the harness terminated it instead of waiting for its deadline.
    #[error("the worker keeps failing the workflow task of {workflow_id}, so it was terminated: {message}")]
    WorkflowTaskFailing {
        /// The workflow id.
        workflow_id: String,
        /// The worker's failure message (for an unknown type it names the types it registers).
        message: String,
    },
}

impl RunError {
    /// Whether the scenario's worker could not be set up: its command does not start, exits
    /// before it polls or never polls, or the address it dials cannot take the harness's proxy.
    /// Nothing of the scenario ran, through a fault of its own input rather than of the workflow.
    pub fn worker_not_set_up(&self) -> bool {
        matches!(self, Self::Worker(_) | Self::Dials { .. })
    }
}

/// Runs every plan, up to `jobs` at once; yields `(index in plans, execution)` as each finishes.
/// Scenarios stay out of each other's way instead of waiting for each other: one that pauses or
/// restarts the server gets a server of its own (kept in `resources`), one that crashes its worker
/// or breaks its network gets a worker process and proxy of its own; scenarios on a user worker's
/// fixed task queue share that worker, or take turns when they would disturb it. Once `stop` is cancelled no
/// further plan starts (those are not yielded).
pub fn run_plans<'a>(
    cluster: &'a Cluster,
    plans: &'a [Plan],
    settings: &'a RunSettings,
    resources: &'a Resources,
    stop: &'a CancellationToken,
) -> impl Stream<Item = (usize, Execution)> + 'a {
    stream::iter(plans.iter().enumerate())
        .map(move |(index, plan)| async move {
            if stop.is_cancelled() {
                return None;
            }
            Some((index, run_isolated(cluster, plan, settings, resources).await))
        })
        .buffer_unordered(settings.jobs.max(1))
        .filter_map(futures::future::ready)
}

/// Whether the plan pauses or restarts the server, and so needs one of its own.
fn needs_own_server(plan: &Plan) -> bool {
    plan.infra.iter().any(|r| {
        matches!(
            r.action.fault().needs(),
            Capability::PauseServer | Capability::RestartServer
        )
    })
}

/// [`run_one`] on the shared cluster, or on a private server when the plan needs one.
async fn run_isolated(cluster: &Cluster, plan: &Plan, settings: &RunSettings, resources: &Resources) -> Execution {
    let began = Instant::now();
    let private = match (&settings.private_server, needs_own_server(plan)) {
        (Some(target), true) => {
            let own = TargetSettings {
                log_dir: settings.log_dir.join(&plan.name),
                persist: true,
                ..target.clone()
            };
            let started = match std::fs::create_dir_all(&own.log_dir) {
                Ok(()) => Cluster::start(&own).await,
                Err(source) => Err(TargetError::ServerStart {
                    reason: Box::new(crate::target::ServerError::Io {
                        path: own.log_dir.clone(),
                        source,
                    }),
                    log: own.log_dir.display().to_string(),
                }),
            };
            match started {
                Ok(c) => Some(c),
                Err(e) => {
                    let mut execution = new_execution(cluster, plan, settings);
                    execution.error = Some(RunError::PrivateServer(e));
                    return execution;
                }
            }
        }
        _ => None,
    };
    let mut execution = run_one(private.as_ref().unwrap_or(cluster), plan, settings, &resources.workers).await;
    execution.wall = began.elapsed().saturating_sub(execution.waited);
    if let Some(own) = private {
        resources.keep(own);
    }
    execution
}

fn new_execution(cluster: &Cluster, plan: &Plan, settings: &RunSettings) -> Execution {
    Execution {
        plan: as_run(plan, settings),
        workflow_id: workflow_id(plan, settings),
        run_id: None,
        histories: None,
        infra_events: Vec::new(),
        error: None,
        ui_url: cluster.ui_url.clone(),
        namespace: cluster.namespace.clone(),
        wall: Duration::ZERO,
        waited: Duration::ZERO,
        wire_attempts: Vec::new(),
        wire_gap: None,
        worker: None,
        call_events: Vec::new(),
        worker_events: Vec::new(),
        backlog: Vec::new(),
    }
}

/// Runs one plan on `cluster`. Never fails: problems become the execution's `error`.
///
/// Plans with infrastructure faults get their own worker process (behind a fault proxy) and task
/// queue, so that the worker can be killed or cut off without touching other scenarios; a
/// workflow of the user's own runs where [`Placement`] says.
pub async fn run_one(cluster: &Cluster, plan: &Plan, settings: &RunSettings, shared: &SharedWorkers) -> Execution {
    let began = Instant::now();
    let mut execution = new_execution(cluster, plan, settings);
    let placement = Placement::of(plan, settings.external_worker);
    let result = match placement.clone() {
        Placement::Harness => {
            let asked = Instant::now();
            let _slot = shared.harness_slot().await;
            execution.waited += asked.elapsed();
            match settings.external_worker {
                true => workers::on_external(cluster, &mut execution, settings, &settings.task_queue).await,
                false => execute(cluster, &mut execution, settings, &settings.task_queue, None).await,
            }
        }
        Placement::External { task_queue } => {
            let queue = task_queue.unwrap_or_else(|| settings.task_queue.clone());
            workers::on_external(cluster, &mut execution, settings, &queue).await
        }
        Placement::Shared { task_queue } => shared.run(cluster, &mut execution, settings, &task_queue).await,
        Placement::Own { fixed_queue, dials } => {
            match own_namespace(cluster, plan, settings, fixed_queue.as_deref(), dials.as_ref()) {
                Some(namespace) => match cluster.in_new_namespace(&namespace).await {
                    Ok(own) => {
                        execution.namespace = namespace;
                        let queue = fixed_queue.unwrap_or_default();
                        workers::with_own_worker(&own, &mut execution, settings, &queue, None).await
                    }
                    Err(e) => Err(RunError::Namespace(e)),
                },
                None => {
                    // The address first, then the queue: in one order, so no two scenarios wait
                    // on each other.
                    let asked = Instant::now();
                    let _address = match &dials {
                        Some(dials) => Some(shared.address_turn(dials).await),
                        None => None,
                    };
                    let _queue = match &fixed_queue {
                        Some(queue) => Some(shared.exclusive(cluster, queue).await),
                        None => None,
                    };
                    execution.waited += asked.elapsed();
                    let queue = fixed_queue.unwrap_or_else(|| format!("{}-{}", settings.task_queue, plan.name));
                    workers::with_own_worker(cluster, &mut execution, settings, &queue, dials.as_ref()).await
                }
            }
        }
    };
    execution.error = result.err();
    let restarted = execution.infra_events.iter().any(|e| {
        matches!(e.outcome, InfraOutcome::Applied(_))
            && plan
                .infra
                .iter()
                .any(|r| r.id == e.id && matches!(r.action, infra::InfraAction::WorkerCrash(_)))
    });
    let own_namespace = (execution.namespace != cluster.namespace).then_some(execution.namespace.as_str());
    execution.worker = placement.describe(plan, settings, restarted, own_namespace);
    execution.wall = began.elapsed().saturating_sub(execution.waited);
    if let Some(histories) = &mut execution.histories {
        histories.count_attempts_from(&execution.wire_attempts);
    }
    execution
}

/// The namespace of its own a scenario gets instead of waiting for its fixed task queue: when it
/// would disturb the queue's worker (so needs its own), the worker takes its namespace from
/// `{namespace}` (so it can be pointed at another one), dials no fixed address (which would
/// still be one at a time), and the harness owns the server (so may create namespaces on it).
fn own_namespace(
    cluster: &Cluster,
    plan: &Plan,
    settings: &RunSettings,
    fixed_queue: Option<&str>,
    dials: Option<&infra::Dials>,
) -> Option<String> {
    let follows = plan.worker.as_ref().is_some_and(|w| w.uses_placeholder("namespace"));
    (fixed_queue.is_some() && dials.is_none() && follows && cluster.owned())
        .then(|| format!("chaos-{}-{}", plan.name, settings.run_id))
}

/// A wire proxy in front of `cluster` on a free loopback port.
pub fn wire_settings(cluster: &Cluster) -> WireSettings {
    WireSettings::new(
        vec![(std::net::Ipv4Addr::LOCALHOST, 0).into()],
        cluster.endpoint().clone(),
    )
}

/// The id of a plan's workflow in a run.
pub fn workflow_id(plan: &Plan, settings: &RunSettings) -> String {
    format!("{}-{}", plan.name, settings.run_id)
}

/// The plan as the worker sees it: the run's seed override and run tag applied.
fn as_run(plan: &Plan, settings: &RunSettings) -> Plan {
    let mut plan = plan.clone();
    if let Some(seed) = settings.seed {
        plan.faults.seed = seed;
    }
    plan.faults.run_tag = settings.run_id.clone();
    plan
}

pub(super) async fn execute(
    cluster: &Cluster,
    execution: &mut Execution,
    settings: &RunSettings,
    task_queue: &str,
    infra: Option<&InfraControl<'_>>,
) -> Result<(), RunError> {
    let plan = &execution.plan;
    let workflow_id = execution.workflow_id.clone();
    let deadline = plan
        .expect
        .time_budget
        .map_or(DEFAULT_DEADLINE, |b| (b * 3).max(Duration::from_secs(30)));
    let client = &cluster.client;
    let started = start_plan(client, plan, settings, task_queue, &workflow_id, deadline).await;
    execution.run_id = Some(started?);
    let began = Instant::now();
    let closed = Notify::new();
    let waiting = async {
        wait_closed(client, &workflow_id, deadline + CLIENT_SLACK).await;
        closed.notify_waiters();
    };
    let backlog = Backlog {
        client,
        plan,
        settings,
        task_queue,
        workflow_id: &workflow_id,
        deadline,
        started: std::sync::Mutex::default(),
    };
    // Its infrastructure faults may fail its tasks on purpose (a breaking deploy before its
    // rollback): the watch for a stuck workflow begins once they are all over.
    let faults_over = CancellationToken::new();
    let driving = async {
        let events = match infra {
            Some(ctl) => {
                let ctl = &InfraControl {
                    workflows: Some(&backlog),
                    ..*ctl
                };
                let drivers = plan
                    .infra
                    .iter()
                    .map(|rule| drive(rule, ctl, client, &cluster.namespace, &workflow_id, began, &closed));
                futures::future::join_all(drivers).await
            }
            None => Vec::new(),
        };
        faults_over.cancel();
        events
    };
    // A workflow whose tasks keep failing, or that no worker takes, would otherwise sit until
    // its deadline.
    let watching = async {
        let watch = async {
            if infra.is_some() && !plan.infra.is_empty() {
                faults_over.cancelled().await;
            }
            stuck_workflow_task(client, &cluster.namespace, &workflow_id, task_queue, began).await
        };
        let stuck = tokio::select! {
            stuck = watch => Some(stuck),
            _ = closed.notified() => None,
        };
        // Outside the race with `closed`, which the termination itself brings about.
        if let Some(stuck) = &stuck {
            terminate(client, &workflow_id, &stuck.to_string()).await;
        }
        stuck
    };
    let ((), events, stuck) = futures::join!(waiting, driving, watching);
    execution.infra_events = events;
    execution.histories = Some(read_histories(client, &workflow_id).await?);
    let backlog = backlog
        .started
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for id in backlog {
        wait_closed(client, &id, deadline + CLIENT_SLACK).await;
        execution.backlog.push(read_histories(client, &id).await?);
    }
    match stuck {
        Some(Stuck::Failing(message)) => Err(RunError::WorkflowTaskFailing { workflow_id, message }),
        Some(Stuck::NotPickedUp(waited)) => Err(RunError::NotPickedUp {
            workflow_id,
            task_queue: task_queue.to_owned(),
            waited_s: waited.as_secs(),
        }),
        None => Ok(()),
    }
}
