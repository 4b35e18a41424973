//! `chaos load`: many workflows at a rate or concurrency, faults drawn per activity attempt from
//! seeded probabilities, and an account of every workflow started: none may be lost or stuck.

mod report;

pub use report::{Latency, LoadReport};

use crate::{
    faults::{AttemptSelector, ErrorFault, FaultAction, FaultPlan, FaultRule, HEADER_KEY},
    history::{ActivityClose, Histories, HistoryError, read_histories},
    infra::{self, Capability, InfraControl, InfraOutcome, InfraRule, TimedRuleError, Trigger},
    inject::plan_header,
    plan::{ActivitySettings, OrchestrationInput, ResilientInput, RetrySettings},
    report::RunHead,
    runner::{Inject, RunError, start, wait_closed, wire_settings},
    session::{Session, SessionError, SessionOptions},
    store::{NotRecorded, RunStore, StoreError, StoreOptions},
    target::{Cluster, Endpoint, connect},
    wait::poll,
    wire::{WireError, WireProxy},
    workflows::{Orchestration, ResilientCall},
};
use futures::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};
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
    /// Workflows to start.
    #[arg(long, default_value_t = 100)]
    pub workflows: usize,
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
    /// An infrastructure fault during the run, as `KIND after D for D2` (server_pause or
    /// server_restart), e.g. "server_pause after 5s for 3s". Repeatable.
    #[arg(long)]
    pub infra: Vec<String>,
    /// Where the faults enter: `sdk` (the worker's interceptors) or `wire` (the wire proxy in
    /// front of the worker; compare the two to measure the proxy's cost).
    #[arg(long, value_enum, default_value = "sdk")]
    pub inject: Inject,
    /// Where the run is recorded.
    #[command(flatten)]
    pub store: StoreOptions,
}

/// Why a load run could not run or report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `--fault-rate` outside [0, 1].
    #[error("--fault-rate must be between 0 and 1")]
    FaultRate,
    /// An `--infra` that does not parse.
    #[error("--infra {0}")]
    Infra(#[from] TimedRuleError),
    /// An `--infra` kind that needs a worker process, which a load run does not have.
    #[error("--infra `{0}`: chaos load takes server_pause or server_restart (its worker is in-process)")]
    InProcessWorker(String),
    /// The session could not be opened or was interrupted.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The wire proxy did not start.
    #[error(transparent)]
    Wire(#[from] WireError),
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
        if rule.action.fault().needs().on_own_workers() {
            return Err(LoadError::InProcessWorker(text.clone()));
        }
        infra.push(rule);
    }
    let restarts = infra
        .iter()
        .any(|r| r.action.fault().needs() == Capability::RestartServer);
    let mut store = RunStore::prepare(&options.store, &options.session.reports).await?;
    let session = Session::open(&options.session, "chaos-load", restarts).await?;
    let settings = LoadSettings {
        workflows: options.workflows,
        rate: options.rate,
        concurrency: options.concurrency,
        fault_rate: options.fault_rate,
        seed: options.seed,
        mix: options.mix,
        task_queue: session.task_queue.clone(),
        run_id: session.run_id.clone(),
        infra,
        inject: options.inject,
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
        Ok(()) => run_with_worker(&session, &settings).await,
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

/// Runs the load next to the session's worker, connected straight to the frontend or (with
/// `--inject wire`) through a wire proxy; SIGINT or SIGTERM interrupts it.
async fn run_with_worker(session: &Session, settings: &LoadSettings) -> Result<LoadReport, LoadError> {
    let cluster = &session.cluster;
    let wire = match settings.inject {
        Inject::Sdk => None,
        Inject::Wire => Some(WireProxy::start(wire_settings(cluster)).await?),
    };
    let client = match &wire {
        Some(w) => {
            let endpoint = Endpoint::local(w.address(), cluster.namespace.clone());
            connect(&endpoint).await.map_err(SessionError::from)?.0
        }
        None => cluster.client.clone(),
    };
    Ok(session.run_until_signal(client, run(cluster, settings)).await?)
}

/// A load run's shape.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadSettings {
    /// Workflows to start.
    pub workflows: usize,
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
    /// Where the faults enter.
    pub inject: Inject,
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

/// What one started workflow came to.
struct Started {
    workflow_id: String,
    began: Instant,
    latency: Duration,
}

/// Starts the workflows, waits for them, and accounts for every one of them.
pub async fn run(cluster: &Cluster, settings: &LoadSettings) -> LoadReport {
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
    let bar = ProgressBar::new(settings.workflows as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} closed {msg}")
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
    let ctl = InfraControl {
        server: cluster.server(),
        ..InfraControl::default()
    };
    let infra = futures::future::join_all(settings.infra.iter().map(|rule| async {
        if let Trigger::After(d) = rule.trigger {
            tokio::time::sleep(d).await;
        }
        infra::apply(rule, &ctl, began).await
    }));
    let starting = stream::iter(0..settings.workflows)
        .map(|i| {
            let (plan, pacer, bar) = (plan.clone(), pacer.clone(), bar.clone());
            async move {
                if let Some(interval) = pacer.lock().await.as_mut() {
                    interval.tick().await;
                }
                let result = start_one(cluster, settings, i, plan).await;
                bar.inc(1);
                result
            }
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect::<Vec<Result<Started, RunError>>>();
    let (outcomes, infra_events) = futures::join!(starting, infra);
    let wall = began.elapsed();
    bar.finish_and_clear();
    let cpu_after = (process_cpu(), cluster.server().and_then(|s| s.cpu_time()));
    let (started, start_errors): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(Result::is_ok);
    let started: Vec<Started> = started.into_iter().filter_map(Result::ok).collect();
    let start_errors: Vec<String> = start_errors
        .into_iter()
        .filter_map(Result::err)
        .map(|e| e.to_string())
        .collect();
    let visibility = count_by_status(cluster, &settings.task_queue, started.len()).await;
    let histories: Vec<Result<Histories, HistoryError>> = stream::iter(&started)
        .map(|s| read_histories(&cluster.client, &s.workflow_id))
        .buffer_unordered(16)
        .collect()
        .await;
    let mut report = report::build(head, settings, wall, &started, &start_errors, visibility, &histories);
    report.passed &= infra_events
        .iter()
        .all(|e| matches!(e.outcome, InfraOutcome::Applied(_)));
    report.infra_events = infra_events;
    let spent = |a: Option<Duration>, b: Option<Duration>| a.zip(b).map(|(a, b)| b.saturating_sub(a).as_secs_f64());
    report.harness_cpu_s = spent(cpu_before.0, cpu_after.0);
    report.server_cpu_s = spent(cpu_before.1, cpu_after.1);
    report
}

/// CPU time of this process (the runner and the in-process worker), user + system.
fn process_cpu() -> Option<Duration> {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).ok()?;
    let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec().max(0) as u64, (t.tv_usec().max(0) * 1000) as u32);
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

async fn start_one(cluster: &Cluster, settings: &LoadSettings, i: usize, plan: Plan) -> Result<Started, RunError> {
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
    if orchestration {
        let numbers = (1..=4).map(|n| serde_json::json!(n + i % 3)).collect();
        let input = OrchestrationInput {
            numbers,
            activity: activity_settings(),
        };
        start(client, Orchestration::run, input, options).await?;
    } else {
        let input = ResilientInput {
            value: i as i64,
            activity: activity_settings(),
            fallback_b_error_types: vec![],
        };
        start(client, ResilientCall::run, input, options).await?;
    }
    wait_closed(client, &workflow_id, WORKFLOW_DEADLINE + Duration::from_secs(15)).await;
    Ok(Started {
        workflow_id,
        began,
        latency: began.elapsed(),
    })
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

/// Faults the seed says fired on the attempts a history shows, and whether the history agrees:
/// every fired attempt must have failed, and a completed last attempt must not have fired.
pub fn account_faults(plan: &FaultPlan, h: &Histories) -> (u64, Vec<String>) {
    let mut fired = 0;
    let mut mismatches = Vec::new();
    for act in h.activities() {
        for key in act.attempt_keys() {
            let attempt = key.attempt;
            let fires = plan.firing(&key).next().is_some();
            fired += u64::from(fires);
            let last = attempt == act.attempts;
            let completed = matches!(act.close, Some(ActivityClose::Completed));
            // Attempts before the last one failed (that is why there was a next one).
            let consistent = if last { fires != completed } else { fires };
            if !consistent {
                mismatches.push(format!(
                    "{} {} attempt {attempt}: seed says {}, history says {}",
                    act.workflow_id,
                    act.activity_type,
                    if fires { "fault" } else { "no fault" },
                    if last && completed { "completed" } else { "failed" }
                ));
            }
        }
    }
    (fired, mismatches)
}
