//! Which worker runs a scenario's workflow: the harness's own worker, a worker process of the
//! scenario's own (to crash it or cut it off), a user's worker shared by the scenarios on its fixed
//! task queue, or a user's worker the harness does not run at all.

use super::{Execution, RunError, RunSettings, default_jobs, execute, faults_on_the_wire, wire_settings};
use crate::{
    fleet::{Fleet, FleetSpec, WorkerEvent},
    history::Histories,
    infra::{CallEvent, Dials, InfraControl, WorkerControl, WorkerSpec, proxy::FaultProxy},
    plan::{Plan, WorkflowSpec},
    target::{Cluster, task_queue_pollers},
    wire::{AttemptRecord, LogLimits, ProxyAdmin, WireError, WireProxy},
};
use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};
use temporalio_client::Client;
use temporalio_common::protos::temporal::api::{enums::v1::TaskQueueType, taskqueue::v1::PollerInfo};
use tokio::sync::{Mutex, OwnedMutexGuard, OwnedRwLockWriteGuard, RwLock, Semaphore, SemaphorePermit};

/// Where a plan's workflow runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Placement {
    /// The harness's own worker on the run's task queue.
    Harness,
    /// A worker process of the scenario's own, behind its own proxies, so that infrastructure
    /// faults touch nothing else; on the user's fixed task queue, if any, which the scenario then
    /// has to itself; with its wire proxy on the fixed address the worker dials, if any, which
    /// the scenario then has to itself too.
    Own {
        /// The user worker's fixed task queue.
        fixed_queue: Option<String>,
        /// The fixed address the user's worker dials.
        dials: Option<Dials>,
    },
    /// The user's worker shared by the scenarios on its fixed task queue.
    Shared {
        /// That queue.
        task_queue: String,
    },
    /// A worker the user runs (behind `chaos proxy`); the harness only starts the workflow.
    External {
        /// The queue it polls (the run's, if the scenario fixes none).
        task_queue: Option<String>,
    },
}

impl Placement {
    /// Where `plan` runs; with `external_worker`, a workflow of the user's own always runs on
    /// the worker already polling its queue, whatever its `[worker]` says.
    pub(super) fn of(plan: &Plan, external_worker: bool) -> Self {
        let user = matches!(plan.workflow, WorkflowSpec::User(_));
        match (user, &plan.worker, &plan.task_queue) {
            (true, None, queue) => Placement::External {
                task_queue: queue.clone(),
            },
            (true, Some(_), queue) if external_worker => Placement::External {
                task_queue: queue.clone(),
            },
            (true, Some(worker), Some(queue)) if plan.infra.is_empty() && worker.dials.is_none() => Placement::Shared {
                task_queue: queue.clone(),
            },
            (true, Some(worker), queue) => Placement::Own {
                fixed_queue: queue.clone(),
                dials: worker.dials.clone(),
            },
            (false, ..) if plan.infra.is_empty() => Placement::Harness,
            (false, ..) => Placement::Own {
                fixed_queue: None,
                dials: None,
            },
        }
    }

    /// How the report says a workflow of the user's own ran (`None` for the demo workflows).
    /// `restarted`: whether a worker crash killed its worker and started a fresh one.
    /// `own_namespace`: the namespace of its own it ran in instead of waiting for its queue.
    pub(super) fn describe(
        &self,
        plan: &Plan,
        settings: &RunSettings,
        restarted: bool,
        own_namespace: Option<&str>,
    ) -> Option<String> {
        if !matches!(plan.workflow, WorkflowSpec::User(_)) {
            return None;
        }
        // Once the scenario has run: its log, if a worker was started at all.
        let log = |name: String| match settings.log_dir.join(&name).exists() {
            true => format!("; log {name}"),
            false => "; no worker was started".to_owned(),
        };
        Some(match self {
            Placement::Harness => return None,
            Placement::Own { fixed_queue, dials } => {
                let queue = match (fixed_queue, own_namespace) {
                    (Some(q), Some(ns)) => format!(
                        "task queue `{q}` in namespace `{ns}` of its own (so it ran beside the other scenarios on that \
                         queue instead of waiting for them)"
                    ),
                    (Some(q), None) => {
                        let hint = match settings.private_server.is_some()
                            && plan.worker.as_ref().is_some_and(|w| !w.uses_placeholder("namespace"))
                        {
                            true => {
                                " (with `TEMPORAL_NAMESPACE = \"{namespace}\"` in its [worker]'s env, or `{namespace}` \
                                 in its command, it would get a namespace of its own and run beside the others)"
                            }
                            false => "",
                        };
                        format!("task queue `{q}`, which it had to itself{hint}")
                    }
                    (None, _) => format!("task queue `{}-{}`", settings.task_queue, plan.name),
                };
                let why = match (dials, plan.infra.is_empty()) {
                    (Some(d), _) => {
                        format!(" (the worker dials {d}, where the harness put its proxy: one such scenario at a time)")
                    }
                    (None, false) => " (its infrastructure faults would disturb other scenarios)".into(),
                    (None, true) => String::new(),
                };
                let crash = if restarted {
                    ", killed and started afresh by its worker_crash"
                } else {
                    ""
                };
                format!(
                    "a worker process of its own on {queue}{why}{crash}{}",
                    log(format!("worker-{}.log", plan.name))
                )
            }
            Placement::Shared { task_queue } => format!(
                "the worker process shared by the scenarios on task queue `{task_queue}`{}",
                log(format!("worker-{task_queue}.log"))
            ),
            Placement::External { task_queue } => {
                let queue = task_queue.as_ref().unwrap_or(&settings.task_queue);
                let proxy = match &settings.proxy_admin {
                    Some(admin) => format!(", through the chaos proxy at {}", admin.url()),
                    None => String::new(),
                };
                format!("a worker the harness does not start, polling task queue `{queue}`{proxy}")
            }
        })
    }
}

/// Whether any worker polls `task_queue` for workflow tasks.
async fn has_pollers(cluster: &Cluster, task_queue: &str) -> bool {
    workflow_pollers(&cluster.client, &cluster.namespace, task_queue)
        .await
        .is_some_and(|p| !p.is_empty())
}

/// Runs the plan on a worker the harness does not start, already polling `task_queue`. When the
/// run reads a deployed proxy's log (`--proxy-admin`) and the faults go on the wire, a worker
/// must poll through that proxy, and the scenario's attempts are read from it afterwards.
pub(super) async fn on_external(
    cluster: &Cluster,
    execution: &mut Execution,
    settings: &RunSettings,
    task_queue: &str,
) -> Result<(), RunError> {
    // A worker started alongside the run gets a moment to poll.
    let polling = crate::wait::poll(
        Duration::from_millis(250),
        Some(super::watch::NOT_PICKED_UP),
        || (),
        || async { Ok(has_pollers(cluster, task_queue).await.then_some(())) },
    );
    if polling.await.is_err() {
        return Err(RunError::NoWorker {
            task_queue: task_queue.to_owned(),
            address: cluster.address.clone(),
            external: settings.external_worker,
        });
    }
    let admin = settings
        .proxy_admin
        .as_ref()
        .filter(|_| faults_on_the_wire(&execution.plan, settings.inject));
    if let Some(admin) = admin
        && !execution.plan.faults.rules.is_empty()
    {
        // An admin that does not answer now is noted with the attempts below.
        if let Ok(pollers) = admin.pollers().await {
            let behind = |p: &&crate::wire::PollerSeen| {
                p.namespace == cluster.namespace && p.task_queue == task_queue && p.polling()
            };
            if !pollers.iter().any(|p| behind(&p)) {
                let mut queues: Vec<String> = pollers
                    .iter()
                    .filter(|p| p.polling())
                    .map(|p| format!("`{}` in `{}`", p.task_queue, p.namespace))
                    .collect();
                queues.dedup();
                return Err(RunError::NotThroughProxy {
                    task_queue: task_queue.to_owned(),
                    admin: admin.url().to_owned(),
                    seen: match queues.is_empty() {
                        true => "it sees no worker polling at all".into(),
                        false => format!("it sees workers on {}", queues.join(", ")),
                    },
                });
            }
        }
    }
    let result = execute(cluster, execution, settings, task_queue, None).await;
    if let (Some(admin), Some(histories)) = (admin, &execution.histories) {
        match attempts_from(admin, histories).await {
            Ok(attempts) => execution.wire_attempts = attempts,
            Err(gap) => execution.wire_gap = Some(gap),
        }
    }
    result
}

/// The attempts of every workflow of `histories` in a deployed proxy's log; why not, when the
/// log cannot be read or may have dropped some of them.
async fn attempts_from(admin: &ProxyAdmin, histories: &Histories) -> Result<Vec<AttemptRecord>, String> {
    let mut attempts = Vec::new();
    for h in histories.all() {
        let got = admin
            .attempts(&h.workflow_id, &h.run_id)
            .await
            .map_err(|e| format!("the wire proxy's log cannot be read ({e})"))?;
        let started_ms = h
            .started_at
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        let log = &got.log;
        let at = |ms: u64| {
            chrono::DateTime::from_timestamp_millis(ms as i64).map_or_else(|| ms.to_string(), |t| t.to_rfc3339())
        };
        // A log that began even a moment before the workflow holds all of it (a worker polls
        // through the proxy before a task of the workflow can reach it).
        if log.since_ms > started_ms {
            return Err(format!(
                "the wire proxy's log at {} began at {}, after {} started (the proxy restarted, or the worker polled through another \
                 one), so it lacks that workflow's earlier attempts",
                admin.url(),
                at(log.since_ms),
                h.workflow_id
            ));
        }
        // The clocks of two machines: a second's leeway, erring towards "may be gone".
        if let Some(dropped) = log.dropped_through_ms.filter(|d| d + 1000 >= started_ms) {
            return Err(format!(
                "the wire proxy's log at {} has dropped attempts up to {} to stay within its limits ({} attempts, {}), which may include \
                 those of {}: raise `chaos proxy --keep-attempts` / `--keep-for`",
                admin.url(),
                at(dropped),
                log.limits.max_attempts,
                humantime::format_duration(log.limits.max_age),
                h.workflow_id
            ));
        }
        attempts.extend(got.attempts);
    }
    Ok(attempts)
}

/// The workers that polled `task_queue` for workflow tasks in the last few minutes, as the
/// server lists them; `None` when the server does not answer.
pub(super) async fn workflow_pollers(client: &Client, namespace: &str, task_queue: &str) -> Option<Vec<PollerInfo>> {
    task_queue_pollers(client, namespace, task_queue, TaskQueueType::Workflow)
        .await
        .ok()
}

/// Worker processes of their own, behind a network fault proxy and a wire proxy of their own in
/// front of that (worker -> wire proxy -> network fault proxy -> frontend: the wire proxy sits
/// beside the workers, as a sidecar would, so a network fault cuts off what it forwards too).
/// Faults on the workers, their calls and their network act through [`Self::control`].
pub struct OwnWorkers {
    proxy: FaultProxy,
    wire: WireProxy,
    fleet: Fleet,
}

/// Which workers [`OwnWorkers`] runs.
#[derive(Clone, Copy)]
pub struct OwnWorkersSpec<'a> {
    /// The user's `[worker]`; `None`: the harness's own `chaos worker`.
    pub user: Option<&'a WorkerSpec>,
    /// The task queue they poll.
    pub task_queue: &'a str,
    /// The fixed address the user's worker dials, where the wire proxy then listens.
    pub dials: Option<&'a Dials>,
    /// Their logs: `<log>.log`, `<log>-2.log` and on.
    pub log: &'a Path,
    /// How many.
    pub count: usize,
    /// What the wire proxy's attempt log keeps.
    pub limits: LogLimits,
}

/// What the workers' proxies and processes saw, once they are shut down.
pub struct OwnWorkersSeen {
    /// The wire proxy's attempt log.
    pub attempts: Vec<AttemptRecord>,
    /// What the faults on the workers' calls did.
    pub call_events: Vec<CallEvent>,
    /// The workers' starts and stops.
    pub worker_events: Vec<WorkerEvent>,
}

impl OwnWorkers {
    /// Starts the proxies and the workers `spec` describes, polling through them.
    pub async fn start(cluster: &Cluster, spec: &OwnWorkersSpec<'_>) -> Result<Self, RunError> {
        let OwnWorkersSpec {
            user,
            task_queue,
            dials,
            log,
            count,
            limits,
        } = *spec;
        let proxy = FaultProxy::start(cluster.address.clone())
            .await
            .map_err(RunError::Proxy)?;
        let wire = start_wire(cluster, Some(proxy.address()), dials, limits).await?;
        let worker_address = match dials {
            Some(dials) => dials.to_string(),
            None => wire.address(),
        };
        let fleet = Fleet::new(&FleetSpec {
            cluster,
            user,
            address: &worker_address,
            wire: Some(&wire),
            task_queue,
            log,
            count,
        });
        let fleet = match fleet {
            Ok(fleet) => fleet,
            Err(e) => {
                wire.shutdown().await;
                return Err(e.into());
            }
        };
        let own = Self { proxy, wire, fleet };
        match own.fleet.start_all().await {
            Ok(_) => Ok(own),
            Err(e) => {
                own.stop().await;
                Err(e.into())
            }
        }
    }

    /// The workers, their calls, their network and the cluster's server, for the faults.
    pub fn control<'a>(&'a self, cluster: &'a Cluster) -> InfraControl<'a> {
        InfraControl {
            server: cluster.server(),
            workers: Some(&self.fleet),
            proxy: Some(&self.proxy),
            wire: Some(&self.wire),
            workflows: None,
        }
    }

    /// The worker processes.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Kills the workers and shuts the wire proxy down (its address is free again when this
    /// returns); returns what they saw.
    pub async fn stop(self) -> OwnWorkersSeen {
        self.fleet.kill_all().await;
        let seen = OwnWorkersSeen {
            attempts: self.wire.attempts(),
            call_events: self.wire.call_events(),
            worker_events: self.fleet.events(),
        };
        self.wire.shutdown().await;
        seen
    }
}

/// Runs the plan with worker processes of its own on `task_queue` ([`OwnWorkers`]).
pub(super) async fn with_own_worker(
    cluster: &Cluster,
    execution: &mut Execution,
    settings: &RunSettings,
    task_queue: &str,
    dials: Option<&Dials>,
) -> Result<(), RunError> {
    let plan = execution.plan.clone();
    let log = settings.log_dir.join(format!("worker-{}", plan.name));
    let spec = OwnWorkersSpec {
        user: plan.worker.as_ref(),
        task_queue,
        dials,
        log: &log,
        count: plan.workers,
        limits: LogLimits::UNBOUNDED,
    };
    let own = OwnWorkers::start(cluster, &spec).await?;
    let result = execute(cluster, execution, settings, task_queue, Some(&own.control(cluster))).await;
    // Shut down on every path, so the address is free again before the next scenario's turn.
    let seen = own.stop().await;
    // Its attempts are evidence only where it injected the activity faults.
    if faults_on_the_wire(&plan, settings.inject) {
        execution.wire_attempts = seen.attempts;
    }
    execution.call_events = seen.call_events;
    execution.worker_events = seen.worker_events;
    result
}

/// A wire proxy in front of `cluster` (through `via`, if given) on a free loopback port, or on
/// the fixed address a user's worker dials, its attempt log kept within `limits`.
async fn start_wire(
    cluster: &Cluster,
    via: Option<String>,
    dials: Option<&Dials>,
    limits: LogLimits,
) -> Result<WireProxy, RunError> {
    let Some(dials) = dials else {
        return Ok(WireProxy::start(crate::wire::WireSettings {
            via,
            limits,
            ..wire_settings(cluster)
        })
        .await?);
    };
    let taken = |reason: String| RunError::Dials {
        dials: dials.to_string(),
        reason,
    };
    let listen = dials
        .addresses()
        .await
        .map_err(|e| taken(format!("it does not resolve here ({e})")))?;
    if listen.is_empty() {
        return Err(taken("it resolves to no loopback address here".into()));
    }
    let settings = crate::wire::WireSettings {
        listen,
        via,
        limits,
        ..wire_settings(cluster)
    };
    WireProxy::start(settings).await.map_err(|e| match e {
        WireError::Listen { listen, source } if source.kind() == std::io::ErrorKind::AddrInUse => {
            taken(format!("{listen} is taken"))
        }
        WireError::Listen { listen, source } => taken(format!("it cannot listen on {listen} ({source})")),
        other => other.into(),
    })
}

/// The workers a run shares between scenarios. The user workers shared by the scenarios on one
/// fixed task queue, each started when the first such scenario needs it; a scenario that would
/// disturb it (an infrastructure fault, another `[worker]`) waits for the others, stops it and
/// runs with its own. The fixed addresses users' workers dial, one scenario at a time each. And
/// the harness's own worker, which takes at most [`default_jobs`] scenarios at a time.
pub struct SharedWorkers {
    queues: std::sync::Mutex<HashMap<String, Arc<Queue>>>,
    /// The fixed addresses users' workers dial, by port (they are all on loopback, so
    /// `localhost:7233` and `127.0.0.1:7233` are one), each taken by one scenario at a time.
    addresses: std::sync::Mutex<HashMap<u16, Arc<Mutex<()>>>>,
    /// Scenarios the harness's own worker may run at once.
    harness: Semaphore,
}

impl Default for SharedWorkers {
    fn default() -> Self {
        Self {
            queues: Default::default(),
            addresses: Default::default(),
            harness: Semaphore::new(default_jobs()),
        }
    }
}

/// One fixed task queue: who may use it now, and its shared worker if running.
#[derive(Default)]
struct Queue {
    turn: Arc<RwLock<()>>,
    running: Mutex<Option<Arc<Running>>>,
}

impl Queue {
    /// Stops the shared worker, if running. Only with the queue to oneself (or at the end of the
    /// run), when no scenario holds on to the worker any more.
    async fn stop_running(&self) {
        let running = self.running.lock().await.take();
        if let Some(running) = running.and_then(Arc::into_inner) {
            running.stop().await;
        }
    }
}

/// The caller's exclusive use of a fixed task queue, until dropped.
pub(super) type QueueTurn = OwnedRwLockWriteGuard<()>;

/// A shared worker process and the wire proxy in front of it.
struct Running {
    /// The `[worker]` it was started from.
    spec: Option<WorkerSpec>,
    workers: Fleet,
    wire: WireProxy,
}

impl Running {
    async fn stop(self) {
        self.workers.kill_all().await;
        self.wire.shutdown().await;
    }
}

impl SharedWorkers {
    /// The fixed task queue `task_queue` of `cluster`'s server and namespace (the same name
    /// on a scenario's own server or in its own namespace is another queue).
    fn queue(&self, cluster: &Cluster, task_queue: &str) -> Arc<Queue> {
        let mut queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = format!("{}/{}/{task_queue}", cluster.address, cluster.namespace);
        queues.entry(key).or_default().clone()
    }

    /// Runs the plan on the shared worker of `task_queue`, started first if needed; when the
    /// running one was started from another `[worker]`, runs it on its own instead.
    pub(super) async fn run(
        &self,
        cluster: &Cluster,
        execution: &mut Execution,
        settings: &RunSettings,
        task_queue: &str,
    ) -> Result<(), RunError> {
        let queue = self.queue(cluster, task_queue);
        let spec = &execution.plan.worker;
        let asked = std::time::Instant::now();
        let turn = queue.turn.read().await;
        execution.waited += asked.elapsed();
        let running = {
            let mut slot = queue.running.lock().await;
            match slot.as_ref() {
                Some(r) if r.spec == *spec => Some(r.clone()),
                Some(_) => None,
                None => {
                    let started = start_shared(cluster, &execution.plan, settings, task_queue).await?;
                    Some(slot.insert(Arc::new(started)).clone())
                }
            }
        };
        let Some(running) = running else {
            drop(turn);
            let asked = std::time::Instant::now();
            let _turn = self.exclusive(cluster, task_queue).await;
            execution.waited += asked.elapsed();
            return with_own_worker(cluster, execution, settings, task_queue, None).await;
        };
        let result = execute(cluster, execution, settings, task_queue, None).await;
        let ids: HashSet<&str> = execution
            .histories
            .iter()
            .flat_map(|h| h.all())
            .map(|h| h.workflow_id.as_str())
            .collect();
        let attempts = running.wire.attempts();
        execution.wire_attempts = attempts
            .into_iter()
            .filter(|a| ids.contains(a.workflow_id.as_str()))
            .collect();
        result
    }

    /// Waits until no other scenario uses `task_queue`, then stops its shared worker; the queue
    /// is the caller's until the guard drops.
    pub(super) async fn exclusive(&self, cluster: &Cluster, task_queue: &str) -> QueueTurn {
        let queue = self.queue(cluster, task_queue);
        let turn = queue.turn.clone().write_owned().await;
        queue.stop_running().await;
        turn
    }

    /// Waits until no other scenario's worker dials `dials`; the address is the caller's until
    /// the guard drops.
    pub(super) async fn address_turn(&self, dials: &Dials) -> OwnedMutexGuard<()> {
        let turn = {
            let mut addresses = self.addresses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            addresses.entry(dials.port).or_default().clone()
        };
        turn.lock_owned().await
    }

    /// Waits until the harness's own worker can take one more scenario; it is the caller's
    /// until the permit drops.
    pub(super) async fn harness_slot(&self) -> SemaphorePermit<'_> {
        self.harness
            .acquire()
            .await
            .expect("the harness's slots are never closed")
    }

    /// Stops every shared worker.
    pub async fn stop(&self) {
        let queues: Vec<Arc<Queue>> = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
            .map(|(_, q)| q)
            .collect();
        for queue in queues {
            queue.stop_running().await;
        }
    }
}

/// Starts the shared worker of `task_queue` from `plan`'s `[worker]`, behind a wire proxy.
async fn start_shared(
    cluster: &Cluster,
    plan: &Plan,
    settings: &RunSettings,
    task_queue: &str,
) -> Result<Running, RunError> {
    let wire = start_wire(cluster, None, None, LogLimits::UNBOUNDED).await?;
    let log = settings.log_dir.join(format!("worker-{task_queue}"));
    let workers = Fleet::new(&FleetSpec {
        cluster,
        user: plan.worker.as_ref(),
        address: &wire.address(),
        wire: Some(&wire),
        task_queue,
        log: &log,
        count: plan.workers,
    })?;
    workers.start_all().await?;
    Ok(Running {
        spec: plan.worker.clone(),
        workers,
        wire,
    })
}
