//! `chaos load`: many workflows at a rate or concurrency, for a number of workflows or a
//! duration (a soak), faults drawn per activity attempt from seeded probabilities, infrastructure
//! faults on the server or on the load's worker processes, and an account of every workflow
//! started: none may be lost or stuck. Each workflow is accounted for as it closes
//! (`tally.rs`) and the harness's resources are sampled as it goes (`samples.rs`), so memory
//! stays flat whatever the number of workflows.

mod report;
mod samples;
mod tally;

pub use report::LoadReport;
pub use samples::{Growth, Sample, Samples};
pub use tally::{Latency, Problems};

use crate::{
    faults::{AttemptSelector, ErrorFault, FaultAction, FaultPlan, FaultRule, HEADER_KEY},
    fleet::Fleet,
    history::{Histories, read_histories},
    infra::{self, Capability, InfraAction, InfraControl, InfraOutcome, InfraRule, TimedRuleError, Trigger},
    inject::plan_header,
    plan::{ActivitySettings, OrchestrationInput, ResilientInput, RetrySettings},
    report::RunHead,
    runner::{Inject, OwnWorkers, OwnWorkersSpec, RunError, start, wait_closed, wire_settings},
    session::{Session, SessionError, SessionOptions},
    store::{NotRecorded, RunStore, StoreError, StoreOptions},
    target::{Cluster, Endpoint, connect},
    wait::{poll, stop_signal},
    wire::{LogLimits, WireError, WireProxy},
    workflows::{Orchestration, ResilientCall},
};
use futures::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use samples::Progress;
use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};
use tally::Tally;
use temporalio_client::{WorkflowCountOptions, WorkflowStartOptions, errors::ClientError};
use temporalio_common::{MemoValues, protos::temporal::api::common::v1::Header};
use tokio::sync::Mutex;

/// Server-side deadline of each load workflow; past it a workflow counts as stuck.
const WORKFLOW_DEADLINE: Duration = Duration::from_secs(120);

/// Which workflows a load run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mix {
    /// Alternate orchestration and resilient workflows.
    Both,
    /// Only the orchestration workflow (two children, three activities).
    Orchestration,
    /// Only the resilient workflow (one risky activity).
    Resilient,
}

/// `chaos load`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadOptions {
    /// The cluster and where reports go.
    #[command(flatten)]
    pub session: SessionOptions,
    /// Workflows to start (default 100; with --duration, at most this many).
    #[arg(long)]
    pub workflows: Option<usize>,
    /// Keep starting workflows for this long (a soak), e.g. "10m" or "1h"; then wait for the
    /// last ones to close.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Chance that any activity attempt fails with a retryable `LoadFault` error.
    #[arg(long, default_value_t = 0.2)]
    pub fault_rate: f64,
    /// Starts per second at most (default: as fast as --concurrency allows).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Workflows in flight at most.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Seed of the fault schedule; the same seed replays the same faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Which workflows to start.
    #[arg(long, value_enum, default_value = "both")]
    pub mix: Mix,
    /// An infrastructure fault during the run, as `KIND after D for D2 [{ FIELD = VALUE, ... }]`,
    /// e.g. "server_pause after 5s for 3s", "worker_crash after 10s for 2s" or "worker_restart
    /// after 5s for 30s { every = \"5s\", share = 0.5 }" (see `chaos kinds`). Repeatable.
    #[arg(long)]
    pub infra: Vec<String>,
    /// Run the workflows on this many `chaos worker` processes behind a wire proxy and a network
    /// fault proxy (1 to 64), instead of the in-process worker; 2 when an --infra fault acts on the
    /// workers and this is not given.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: Option<u16>,
    /// Where the faults enter: `sdk` (the worker's interceptors) or `wire` (the wire proxy in
    /// front of the worker; compare the two to measure the proxy's cost).
    #[arg(long, value_enum, default_value = "sdk")]
    pub inject: Inject,
    /// Time between two samples of the harness's memory, file descriptors and tasks.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub sample_every: Duration,
    /// Where the run is recorded.
    #[command(flatten)]
    pub store: StoreOptions,
}

/// Workflows a load starts when neither --workflows nor --duration says.
const DEFAULT_WORKFLOWS: usize = 100;

/// Worker processes of a load whose infrastructure faults act on workers, unless --workers says.
const DEFAULT_WORKER_PROCESSES: u16 = 2;

/// Why a load run could not run or report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `--fault-rate` outside [0, 1].
    #[error("--fault-rate must be between 0 and 1")]
    FaultRate,
    /// An `--infra` that does not parse.
    #[error("--infra {0}")]
    Infra(#[from] TimedRuleError),
    /// An `--infra` kind a load cannot run.
    #[error("--infra `{rule}`: {why}")]
    NotInLoad {
        /// The rule as given.
        rule: String,
        /// Why not.
        why: &'static str,
    },
    /// An `--infra` fault timed after the load stops starting workflows.
    #[error(
        "--infra `{rule}` starts {after} in, when the load has stopped starting workflows (--duration {duration}): it \
         would hit idle workers"
    )]
    AfterTheLoad {
        /// The rule as given.
        rule: String,
        /// When it starts.
        after: humantime::FormattedDuration,
        /// The load's duration.
        duration: humantime::FormattedDuration,
    },
    /// `--workers` or a fault on the workers with `--external-worker`.
    #[error(
        "--workers (or an --infra fault on the workers) starts worker processes, which --external-worker rules out"
    )]
    ExternalWorkers,
    /// The session could not be opened or was interrupted.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The wire proxy did not start.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The worker processes or their proxies did not start.
    #[error("the load's workers did not start: {0}")]
    Workers(#[from] RunError),
    /// The report could not be written.
    #[error("cannot write the load report under {path}: {source}")]
    Write {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The run store is malformed, newer than this binary, or its database cannot be created;
    /// nothing was run.
    #[error("{0}; nothing was run")]
    Store(#[from] StoreError),
    /// The load ran and its report was written, but it did not get into the run store.
    #[error(transparent)]
    NotRecorded(#[from] NotRecorded),
}

/// Why an infrastructure fault cannot run in a load, if it cannot.
fn not_in_load(action: &InfraAction) -> Option<&'static str> {
    match action {
        InfraAction::Deploy(_) => Some(
            "a deploy switches a user's [worker] to another version; chaos load runs the harness's own worker (use a \
             scenario file)",
        ),
        InfraAction::WorkersDown(down) if down.backlog > 0 => {
            Some("a load keeps starting workflows while the workers are down: leave out `backlog`")
        }
        _ => None,
    }
}

/// Runs a load: opens a session, starts the workflows, accounts for every one, prints the
/// summary and writes the report; returns it and its folder.
pub async fn execute(options: &LoadOptions) -> Result<(LoadReport, PathBuf), LoadError> {
    if !(0.0..=1.0).contains(&options.fault_rate) {
        return Err(LoadError::FaultRate);
    }
    options
        .session
        .require_queue_for_external_worker(|| "the load's workflows".into())?;
    let mut infra = Vec::new();
    for (i, text) in options.infra.iter().enumerate() {
        let rule = Trigger::parse_timed(text, i + 1)?;
        if let Some(why) = not_in_load(&rule.action) {
            return Err(LoadError::NotInLoad {
                rule: text.clone(),
                why,
            });
        }
        if let (Trigger::After(after), Some(duration)) = (&rule.trigger, options.duration)
            && *after >= duration
        {
            return Err(LoadError::AfterTheLoad {
                rule: text.clone(),
                after: humantime::format_duration(*after),
                duration: humantime::format_duration(duration),
            });
        }
        infra.push(rule);
    }
    let on_workers = infra.iter().any(|r| r.action.fault().needs().on_own_workers());
    let workers = options
        .workers
        .or(on_workers.then_some(DEFAULT_WORKER_PROCESSES))
        .map(usize::from);
    if workers.is_some() && options.session.external_worker {
        return Err(LoadError::ExternalWorkers);
    }
    let restarts = infra
        .iter()
        .any(|r| r.action.fault().needs() == Capability::RestartServer);
    let mut store = RunStore::prepare(&options.store, &options.session.reports).await?;
    let session = Session::open(&options.session, "chaos-load", restarts).await?;
    let settings = LoadSettings {
        workflows: match (options.workflows, options.duration) {
            (Some(n), _) => Some(n),
            (None, None) => Some(DEFAULT_WORKFLOWS),
            (None, Some(_)) => None,
        },
        duration: options.duration,
        rate: options.rate,
        concurrency: options.concurrency,
        fault_rate: options.fault_rate,
        seed: options.seed,
        mix: options.mix,
        task_queue: session.task_queue.clone(),
        run_id: session.run_id.clone(),
        infra,
        workers,
        inject: options.inject,
        sample_every: options.sample_every,
    };
    let outcome = match session.require(
        &settings.infra,
        |r| r.action.fault().needs(),
        |r, target| {
            format!(
                "--infra `{}` needs {}, which the {target} target cannot do",
                r.describe(),
                r.action.fault().needs()
            )
        },
    ) {
        Ok(()) => run_with_workers(&session, &settings).await,
        Err(e) => Err(e.into()),
    };
    let dir = session.log_dir.clone();
    session.close().await;
    let report = outcome?;
    print!("{}", report.markdown());
    report.write(&dir).map_err(|source| LoadError::Write {
        path: dir.clone(),
        source,
    })?;
    eprintln!("load report written to {}", dir.display());
    if let Some(store) = store.as_mut() {
        store.record(&dir).await?;
    }
    Ok((report, dir))
}

/// What the load's wire proxy keeps of its attempt log: the load accounts from histories, so a
/// little is enough, and a soak's proxy stays small.
const LOAD_LOG_LIMITS: LogLimits = LogLimits {
    max_attempts: 1_000,
    max_age: Duration::from_secs(600),
};

/// Runs the load next to the session's worker, connected straight to the frontend or (with
/// `--inject wire`) through a wire proxy; or on worker processes of its own behind the proxies
/// (`--workers`). The first SIGINT or SIGTERM stops the starting, and the load reports on what
/// it started; a second one interrupts it.
async fn run_with_workers(session: &Session, settings: &LoadSettings) -> Result<LoadReport, LoadError> {
    let cluster = &session.cluster;
    let server_only = InfraControl {
        server: cluster.server(),
        ..InfraControl::default()
    };
    let Some(count) = settings.workers else {
        let wire = match settings.inject {
            Inject::Sdk => None,
            Inject::Wire => Some(
                WireProxy::start(crate::wire::WireSettings {
                    limits: LOAD_LOG_LIMITS,
                    ..wire_settings(cluster)
                })
                .await?,
            ),
        };
        let client = match &wire {
            Some(w) => {
                let endpoint = Endpoint::local(w.address(), cluster.namespace.clone());
                connect(&endpoint).await.map_err(SessionError::from)?.0
            }
            None => cluster.client.clone(),
        };
        let load = session.run_with(client, run(cluster, settings, &server_only, None));
        return until_second_signal(load).await;
    };
    let log = session.log_dir.join("load-worker");
    let spec = OwnWorkersSpec {
        user: None,
        task_queue: &settings.task_queue,
        dials: None,
        log: &log,
        count,
        limits: LOAD_LOG_LIMITS,
    };
    let own = OwnWorkers::start(cluster, &spec).await?;
    let ctl = InfraControl {
        server: cluster.server(),
        ..own.control(cluster)
    };
    let report = until_second_signal(async { Ok(run(cluster, settings, &ctl, Some(own.fleet())).await) }).await;
    let seen = own.stop().await;
    let mut report = report?;
    report.worker_events = seen.worker_events;
    Ok(report)
}

/// `load`, unless a second stop signal comes (the first one ends the starting, in [`run`]).
async fn until_second_signal<T>(load: impl Future<Output = Result<T, SessionError>>) -> Result<T, LoadError> {
    let second = async {
        // The first signal is [`run`]'s; it resolves every waiter at once, so wait for the next.
        stop_signal().await;
        stop_signal().await
    };
    tokio::select! {
        done = load => Ok(done?),
        signal = second => Err(SessionError::Interrupted(signal).into()),
    }
}

/// A load run's shape.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadSettings {
    /// Workflows to start (with a duration, at most; `None`: as many as the duration allows).
    pub workflows: Option<usize>,
    /// How long to keep starting workflows.
    #[serde(with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// Starts per second at most (`None`: as fast as concurrency allows).
    pub rate: Option<f64>,
    /// Workflows in flight at most.
    pub concurrency: usize,
    /// Chance that an activity attempt gets a retryable error.
    pub fault_rate: f64,
    /// Seed of the fault schedule.
    pub seed: u64,
    /// Which workflows.
    pub mix: Mix,
    /// Task queue of the worker.
    pub task_queue: String,
    /// Prefix of workflow ids.
    pub run_id: String,
    /// Infrastructure faults during the run (timed from its start).
    pub infra: Vec<InfraRule>,
    /// Worker processes behind the proxies (`None`: the in-process worker).
    pub workers: Option<usize>,
    /// Where the faults enter.
    pub inject: Inject,
    /// Time between two resource samples.
    #[serde(with = "humantime_serde")]
    pub sample_every: Duration,
}

/// The fault plan of a load run: a retryable `LoadFault` error on any activity attempt, with the
/// configured probability.
pub fn load_faults(settings: &LoadSettings) -> FaultPlan {
    FaultPlan {
        seed: settings.seed,
        rules: vec![FaultRule {
            id: 1,
            activity: "*".into(),
            attempts: AttemptSelector::All,
            probability: Some(settings.fault_rate),
            action: FaultAction::Error(ErrorFault {
                message: "load fault".into(),
                error_type: "LoadFault".into(),
                non_retryable: false,
            }),
        }],
        run_tag: settings.run_id.clone(),
    }
}

/// Activity options of load workflows: quick retries, bounded attempts.
fn activity_settings() -> ActivitySettings {
    ActivitySettings {
        start_to_close: Some(Duration::from_secs(5)),
        schedule_to_close: None,
        heartbeat_timeout: None,
        retry: Some(RetrySettings {
            initial_interval: Duration::from_millis(100),
            backoff: 1.0,
            maximum_interval: Some(Duration::from_millis(100)),
            maximum_attempts: 5,
            non_retryable_types: vec![],
        }),
    }
}

/// Starts the workflows until their number or the duration is reached (or a stop signal comes),
/// with the infrastructure faults acting through `ctl`; accounts for each workflow as it closes
/// and samples the harness's resources (and `workers`') meanwhile; then accounts for every one.
pub async fn run(
    cluster: &Cluster,
    settings: &LoadSettings,
    ctl: &InfraControl<'_>,
    workers: Option<&Fleet>,
) -> LoadReport {
    let faults = load_faults(settings);
    // The plan travels in a header for the SDK interceptors, or in the memo for the wire proxy.
    let plan = match settings.inject {
        Inject::Sdk => Plan::Header(Header {
            fields: HashMap::from([(HEADER_KEY.to_owned(), plan_header(&faults))]),
        }),
        Inject::Wire => {
            let mut memo = MemoValues::new();
            memo.insert(HEADER_KEY, faults.clone());
            Plan::Memo(memo)
        }
    };
    let bar = match settings.workflows {
        Some(n) if settings.duration.is_none() => ProgressBar::new(n as u64),
        _ => ProgressBar::no_length(),
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos} started {msg}")
            .expect("static template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let pacer = Arc::new(Mutex::new(settings.rate.map(|r| {
        let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(0.001)));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    })));
    let cpu_before = (process_cpu(), cluster.server().and_then(|s| s.cpu_time()));
    let head = RunHead::new(&settings.run_id, chrono::Utc::now(), cluster);
    let began = Instant::now();
    let infra = futures::future::join_all(settings.infra.iter().map(|rule| async {
        if let Trigger::After(d) = rule.trigger {
            tokio::time::sleep(d).await;
        }
        infra::apply(rule, ctl, began).await
    }));
    let progress = Progress::default();
    let tally = std::sync::Mutex::new(Tally::new(faults, !settings.infra.is_empty()));
    // Starting ends at the count, at the end of the duration, or at the first stop signal; a
    // start waiting for its turn (the rate) then starts nothing.
    let stopping = tokio_util::sync::CancellationToken::new();
    let ended = tokio_util::sync::CancellationToken::new();
    let stop_starting = async {
        let deadline = async {
            match settings.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let stopped_by = tokio::select! {
            _ = deadline => None,
            signal = stop_signal() => Some(signal),
            _ = ended.cancelled() => return None,
        };
        if let Some(signal) = stopped_by {
            bar.suspend(|| {
                eprintln!(
                    "{signal}: no more workflows are started; waiting for the {} in flight (again to stop at once)",
                    progress.started.load(Ordering::Relaxed) - progress.closed.load(Ordering::Relaxed)
                )
            });
        }
        stopping.cancel();
        stopped_by
    };
    let starting = async {
        let limit = settings.workflows.unwrap_or(usize::MAX);
        stream::iter(0..limit)
            .take_until(stopping.cancelled())
            .map(|i| {
                let (plan, pacer, bar) = (plan.clone(), pacer.clone(), bar.clone());
                let (progress, tally, stopping) = (&progress, &tally, &stopping);
                async move {
                    let turn = async {
                        if let Some(interval) = pacer.lock().await.as_mut() {
                            interval.tick().await;
                        }
                    };
                    tokio::select! {
                        _ = turn => {}
                        _ = stopping.cancelled() => return,
                    }
                    if stopping.is_cancelled() {
                        return;
                    }
                    progress.started.fetch_add(1, Ordering::Relaxed);
                    bar.inc(1);
                    let outcome = start_one(cluster, settings, i, plan).await;
                    let mut tally = tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match outcome {
                        Ok((histories, waited)) => tally.add(&histories, waited),
                        Err(e) => tally.errors.push(e),
                    }
                    let closed = progress.closed.fetch_add(1, Ordering::Relaxed) + 1;
                    bar.set_message(format!("{closed} closed"));
                }
            })
            .buffer_unordered(settings.concurrency.max(1))
            .collect::<()>()
            .await;
        ended.cancel();
    };
    let sampling = Samples::take(settings.sample_every, began, &progress, workers, ended.cancelled());
    let ((), stopped_by, infra_events, samples) = futures::join!(starting, stop_starting, infra, sampling);
    let wall = began.elapsed();
    bar.finish_and_clear();
    let cpu_after = (process_cpu(), cluster.server().and_then(|s| s.cpu_time()));
    let started = progress.started.load(Ordering::Relaxed);
    let visibility = count_by_status(cluster, &settings.task_queue, started as usize).await;
    let tally = tally.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut report = report::build(head, settings, wall, started, tally, visibility, samples);
    report.interrupted = stopped_by;
    report.passed &= report.interrupted.is_none();
    report.passed &= infra_events
        .iter()
        .all(|e| matches!(e.outcome, InfraOutcome::Applied(_)));
    report.infra_events = infra_events;
    let spent = |a: Option<Duration>, b: Option<Duration>| a.zip(b).map(|(a, b)| b.saturating_sub(a).as_secs_f64());
    report.harness_cpu_s = spent(cpu_before.0, cpu_after.0);
    report.server_cpu_s = spent(cpu_before.1, cpu_after.1);
    report.peak_rss_bytes = crate::resources::Proc::Own.peak_resident_bytes();
    report
}

/// CPU time of this process (the runner, the proxies and the in-process worker, not worker
/// processes), user + system.
fn process_cpu() -> Option<Duration> {
    use nix::sys::resource::{UsageWho, getrusage};
    let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec().max(0) as u64, (t.tv_usec().max(0) * 1000) as u32);
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    Some(tv(usage.user_time()) + tv(usage.system_time()))
}

/// How a load workflow carries its fault plan.
#[derive(Clone)]
enum Plan {
    /// In a workflow header, for the SDK interceptors.
    Header(Header),
    /// In the memo, for the wire proxy.
    Memo(MemoValues),
}

/// Starts load workflow `i`, waits for it to close and reads its history; returns the history
/// and how long the starter saw it run, or why it could not.
async fn start_one(
    cluster: &Cluster,
    settings: &LoadSettings,
    i: usize,
    plan: Plan,
) -> Result<(Histories, Duration), String> {
    let orchestration = match settings.mix {
        Mix::Both => i.is_multiple_of(2),
        Mix::Orchestration => true,
        Mix::Resilient => false,
    };
    let workflow_id = format!("load-{}-{i:05}", settings.run_id);
    let options = WorkflowStartOptions::new(settings.task_queue.clone(), workflow_id.clone())
        .execution_timeout(WORKFLOW_DEADLINE);
    let options = match plan {
        Plan::Header(header) => options.header(header).build(),
        Plan::Memo(memo) => options.memo(memo).build(),
    };
    let began = Instant::now();
    let client = &cluster.client;
    let started: Result<_, RunError> = if orchestration {
        let numbers = (1..=4).map(|n| serde_json::json!(n + i % 3)).collect();
        let input = OrchestrationInput {
            numbers,
            activity: activity_settings(),
        };
        start(client, Orchestration::run, input, options).await
    } else {
        let input = ResilientInput {
            value: i as i64,
            activity: activity_settings(),
            fallback_b_error_types: vec![],
        };
        start(client, ResilientCall::run, input, options).await
    };
    started.map_err(|e| e.to_string())?;
    wait_closed(client, &workflow_id, WORKFLOW_DEADLINE + Duration::from_secs(15)).await;
    let waited = began.elapsed();
    let histories = read_histories(client, &workflow_id).await.map_err(|e| e.to_string())?;
    Ok((histories, waited))
}

/// Visibility's count of the run's workflows by status; waits (bounded) for it to catch up.
async fn count_by_status(
    cluster: &Cluster,
    task_queue: &str,
    expected: usize,
) -> Result<BTreeMap<String, u64>, ClientError> {
    // Only the workflows the run started, not their children.
    let query = format!(
        "TaskQueue = '{task_queue}' AND (WorkflowType = 'Orchestration' OR WorkflowType = 'ResilientCall') \
         GROUP BY ExecutionStatus"
    );
    let count = || async {
        let counted = cluster
            .client
            .count_workflows(query.clone(), WorkflowCountOptions::default())
            .await?;
        Ok::<BTreeMap<String, u64>, ClientError>(
            counted
                .groups()
                .iter()
                .map(|g| (g.get::<String>(0).unwrap_or_else(|| "?".into()), g.count() as u64))
                .collect(),
        )
    };
    let settled = |groups: &BTreeMap<String, u64>| {
        let total: u64 = groups.values().sum();
        total as usize >= expected && groups.get("Running").copied().unwrap_or(0) == 0
    };
    let waited = poll(
        Duration::from_millis(500),
        Some(Duration::from_secs(20)),
        || None,
        || async {
            let groups = count().await.map_err(Some)?;
            Ok(settled(&groups).then_some(groups))
        },
    )
    .await;
    match waited {
        Ok(groups) => Ok(groups),
        Err(Some(e)) => Err(e),
        // Visibility did not catch up: what it shows now is the answer (missing ones count as lost).
        Err(None) => count().await,
    }
}
