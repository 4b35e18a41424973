//! `chaos run` as one library call: scenario files → plans → a [`Session`] → the [`runner`] →
//! [`verify`] → reports (and the webhook). The command line only maps the result to an exit code.

use crate::{
    infra::Capability,
    plan::Plan,
    replay::{self, ReplayError, ReplaySummary},
    report::{self, ReportFormat, RunHead, RunReport, ScenarioReport, Summary, Timing, webhook},
    runner::{self, Inject, Resources, RunError, RunSettings},
    scenario::{self, Diagnostic},
    session::{Session, SessionError, SessionOptions},
    store::{NotRecorded, RunStore, StoreError, StoreOptions},
    target::{Endpoint, TargetError, connect},
    verify,
    wait::{StopSignal, stop_signal},
    wire::{AdminError, ProxyAdmin, WireError, WireProxy},
};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use std::{
    fmt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};
use tokio_util::sync::CancellationToken;

/// How to run a suite, besides its scenario files.
#[derive(Debug, Clone, clap::Args)]
pub struct SuiteOptions {
    /// The cluster and where reports go.
    #[command(flatten)]
    pub session: SessionOptions,
    /// POST the JSON report to this URL when the run ends.
    #[arg(long, env = "CHAOS_WEBHOOK_URL", hide_env_values = true)]
    pub webhook: Option<String>,
    /// Seed for probabilistic faults, overriding each scenario's own.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Scenarios in flight at once; default 16 per core (they mostly wait on the server, so
    /// many fit on few cores, but not so many that a worker falls behind its tasks). Those on the
    /// harness's own worker run at most that many at a time whatever this says.
    #[arg(long, default_value_t = runner::default_jobs())]
    pub jobs: usize,
    /// Keep the started server (and so the report links) up until Ctrl-C.
    #[arg(long)]
    pub keep_server: bool,
    /// Where activity faults enter: `sdk` (the harness worker's interceptors) or `wire` (a
    /// proxy between the worker and the frontend, as for a worker in any language).
    #[arg(long, value_enum, default_value = "sdk")]
    pub inject: Inject,
    /// The admin listener of the `chaos proxy` that the workers of scenarios with faults on the
    /// wire poll through (`HOST`, `HOST:PORT` or `http://HOST:PORT`; port 7240 by default): each
    /// such scenario's attempts are read from its log, and a scenario whose queue no worker polls
    /// through it is refused.
    #[arg(long, env = "CHAOS_PROXY_ADMIN", value_name = "URL")]
    pub proxy_admin: Option<String>,
    /// Where the run is recorded.
    #[command(flatten)]
    pub store: StoreOptions,
}

/// The original project's demo set, in its README's order (`chaos demo`).
pub const DEMO_SCENARIOS: [&str; 5] = [
    "01-orchestration-success.toml",
    "02-retries-exhausted-fallback.toml",
    "03-plain-success.toml",
    "04-timeout-then-success.toml",
    "05-timeout-fallback.toml",
];

/// Why a suite could not run.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// Scenario files with problems; nothing was run.
    #[error("{}", Problems(.0))]
    Scenarios(Vec<Diagnostic>),
    /// The session could not be opened or was interrupted.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// Faults that `--inject wire` cannot inject; one line per fault. Nothing was run.
    #[error("{}\n{} fault(s) cannot be injected where these scenarios run; nothing was run", .0.join("\n"), .0.len())]
    Misplaced(Vec<String>),
    /// The wire proxy in front of the harness's worker did not start.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The harness's worker could not connect through the wire proxy.
    #[error("the worker cannot connect through the wire proxy: {0}")]
    WireWorker(#[source] TargetError),
    /// `--proxy-admin` is not a reachable chaos proxy's admin listener; nothing was run.
    #[error("{0}; nothing was run")]
    ProxyAdmin(#[from] AdminError),
    /// The run store is malformed, newer than this binary, or its database cannot be created;
    /// nothing was run.
    #[error("{0}; nothing was run")]
    Store(#[from] StoreError),
}

struct Problems<'a>(&'a [Diagnostic]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.0 {
            writeln!(f, "{p}")?;
        }
        write!(f, "{} problem(s) in scenario files; nothing was run", self.0.len())
    }
}

/// A report that did not reach one of its destinations.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The report files could not be written.
    #[error("cannot write reports under {path}: {source}")]
    Files {
        /// The reports folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The webhook refused the report or could not be reached.
    #[error(transparent)]
    Webhook(#[from] webhook::WebhookError),
    /// The recorded histories could not be replayed.
    #[error("cannot replay the run's histories: {0}")]
    Replay(#[from] ReplayError),
    /// The run did not get into the run store.
    #[error(transparent)]
    Store(#[from] NotRecorded),
}

impl SuiteOutcome {
    /// Whether every scenario passed and every recorded history replayed.
    pub fn passed(&self) -> bool {
        self.report.passed() && self.replay.as_ref().is_none_or(ReplaySummary::passed)
    }
}

/// Prints the demo executions as a Markdown list of UI links and writes it to `demo-links.md`.
fn write_demo_links(report: &RunReport, dir: &Path) {
    let list = report::demo_links(report);
    println!("\n{list}");
    if let Err(e) = std::fs::write(dir.join("demo-links.md"), &list) {
        eprintln!("error: cannot write {}: {e}", dir.join("demo-links.md").display());
    }
}

/// A finished suite: its report, where it was written, and what did not get delivered.
pub struct SuiteOutcome {
    /// The report.
    pub report: RunReport,
    /// The signal that interrupted the run, if one did.
    pub interrupted: Option<StopSignal>,
    /// The recorded histories replayed against the workflow code, when any were recorded.
    pub replay: Option<ReplaySummary>,
    /// The folder the report files are in, when they were written.
    pub dir: Option<PathBuf>,
    /// Destinations the report did not reach.
    pub undelivered: Vec<DeliveryError>,
    /// The scenarios whose worker could not be set up (each with its error in the report): the
    /// run's input is at fault, not the workflows.
    pub worker_not_set_up: Vec<String>,
}

/// Runs the scenarios under `paths`: prints progress and the Markdown summary, writes every
/// report format, posts the webhook, and (with `keep_server`) keeps the server up until Ctrl-C
/// (`chaos demo`: `demo_links` also prints the executions as Markdown links and writes them to
/// `demo-links.md`). The recorded histories are replayed against the workflow code at the end.
pub async fn run(paths: &[PathBuf], options: &SuiteOptions, demo_links: bool) -> Result<SuiteOutcome, SuiteError> {
    let began = Instant::now();
    let plans = scenario::load_all(paths).map_err(SuiteError::Scenarios)?;
    let misplaced = misplaced_faults(&plans, options.inject);
    if !misplaced.is_empty() {
        return Err(SuiteError::Misplaced(misplaced));
    }
    if runner::on_the_harness_worker(&plans, true) > 0 {
        options.session.require_queue_for_external_worker(|| {
            let names: Vec<&str> = plans
                .iter()
                .filter(|p| !matches!(p.workflow, crate::plan::WorkflowSpec::User(_)))
                .map(|p| p.name.as_str())
                .collect();
            format!("the demo workflows of {}", names.join(", "))
        })?;
    }
    let proxy_admin = match options.proxy_admin.as_deref().filter(|a| !a.trim().is_empty()) {
        Some(address) => {
            let (admin, health) = ProxyAdmin::connect(address).await?;
            eprintln!(
                "reading attempts from the chaos proxy at {} (forwarding to {}; it keeps {} attempts, {} so far)",
                admin.url(),
                health.upstream.address,
                health.attempts.limits.max_attempts,
                health.attempts.kept
            );
            Some(admin)
        }
        None => None,
    };
    let mut store = RunStore::prepare(&options.store, &options.session.reports).await?;
    let session = Session::open(&options.session, "chaos", restarts_server(&plans)).await?;
    let servers = Resources::default();
    let result = run_in(&session, &plans, options, proxy_admin, &servers, began).await;
    let outcome = match result {
        Ok(ran) => Ok(deliver(ran, options, demo_links, store.as_mut()).await),
        Err(e) => Err(e),
    };
    if let Ok(o) = &outcome
        && options.keep_server
        && o.interrupted.is_none()
        && o.dir.is_some()
        && session.cluster.server().is_some()
    {
        eprintln!(
            "keeping the server up: UI at {}; press Ctrl-C to stop",
            session.cluster.ui_url.as_deref().unwrap_or("-")
        );
        stop_signal().await;
    }
    servers.stop().await;
    session.close().await;
    outcome
}

/// How long running scenarios may go on after the first SIGINT or SIGTERM.
/// Faults that cannot enter where their scenario runs: through the wire proxy (`--inject wire`,
/// or a workflow of the user's own) a fault that needs code in the worker (`panic`); through the
/// SDK interceptors one that only the wire proxy can inject (`drop_heartbeats`).
fn misplaced_faults(plans: &[Plan], inject: Inject) -> Vec<String> {
    plans
        .iter()
        .flat_map(|p| p.faults.rules.iter().map(move |r| (p, r)))
        .filter_map(|(p, r)| {
            let fault = r.action.fault();
            let on_the_wire = runner::faults_on_the_wire(p, inject);
            let why = match (
                on_the_wire,
                fault.on_the_wire(&r.marker()).is_some(),
                fault.in_the_sdk(),
            ) {
                // (A workflow of the user's own with such a fault does not get past validation.)
                (true, false, _) => "can only be injected inside the harness's own worker (`--inject sdk`)",
                (false, _, false) => "can only be injected by the wire proxy: run with `--inject wire`",
                _ => return None,
            };
            Some(format!(
                "{}: fault #{} ({}) {why}",
                p.source.display(),
                r.id,
                r.action.name()
            ))
        })
        .collect()
}

const GRACE: Duration = Duration::from_secs(10);

async fn run_in(
    session: &Session,
    plans: &[Plan],
    options: &SuiteOptions,
    proxy_admin: Option<ProxyAdmin>,
    servers: &Resources,
    began: Instant,
) -> Result<Ran, SuiteError> {
    session.require(
        plans.iter().flat_map(|p| p.infra.iter().map(move |r| (p, r))),
        |(_, r)| r.action.fault().needs(),
        |(p, r), target| {
            format!(
                "{}: scenario `{}`: infra #{} `{}` needs {}, which the {target} target cannot do",
                p.source.display(),
                p.name,
                r.id,
                r.action.name(),
                r.action.fault().needs(),
            )
        },
    )?;
    let settings = RunSettings {
        task_queue: session.task_queue.clone(),
        run_id: session.run_id.clone(),
        seed: options.seed,
        jobs: options.jobs,
        log_dir: session.log_dir.clone(),
        private_server: session.another_server(),
        inject: options.inject,
        external_worker: options.session.external_worker,
        proxy_admin,
    };
    let cluster = &session.cluster;
    let bar = progress(plans.len());
    let stop = CancellationToken::new();
    let mut finished: Vec<Option<ScenarioReport>> = plans.iter().map(|_| None).collect();
    let mut not_set_up = vec![false; plans.len()];
    let interrupted = std::cell::Cell::new(None);
    // With `--inject wire` the harness's worker reaches the frontend through a wire proxy (a
    // worker the harness does not run has its own, if any).
    let wire = match (options.inject, settings.external_worker) {
        (Inject::Wire, false) => Some(WireProxy::start(runner::wire_settings(cluster)).await?),
        _ => None,
    };
    let worker_client = match &wire {
        Some(w) => {
            let endpoint = Endpoint::local(w.address(), cluster.namespace.clone());
            connect(&endpoint).await.map_err(SuiteError::WireWorker)?.0
        }
        None => cluster.client.clone(),
    };
    let running = runner::run_plans(cluster, plans, &settings, servers, &stop).for_each(|(index, mut execution)| {
        if let Some(w) = &wire
            && execution.wire_attempts.is_empty()
        {
            let root = &execution.workflow_id;
            execution.wire_attempts = w
                .attempts()
                .into_iter()
                .filter(|a| a.workflow_id == *root || a.workflow_id.starts_with(&format!("{root}-")))
                .collect();
        }
        let checks = match &execution.histories {
            Some(h) => verify::verify(
                &execution.plan,
                h,
                &execution.infra_events,
                &execution.wire_attempts,
                execution.wire_gap.as_deref(),
                &execution.backlog,
            ),
            None => Vec::new(),
        };
        not_set_up[index] = execution.error.as_ref().is_some_and(RunError::worker_not_set_up);
        let report = ScenarioReport::new(execution, checks);
        bar.println(format!(
            "{} {} ({}, {})",
            if report.passed { "ok  " } else { "FAIL" },
            report.name,
            report.outcome.map_or_else(|| "no outcome".into(), |o| o.to_string()),
            report.duration_ms.map_or_else(|| "-".into(), |d| format!("{d} ms"))
        ));
        bar.inc(1);
        finished[index] = Some(report);
        futures::future::ready(())
    });
    // The first signal stops new scenarios and gives running ones `GRACE`; a second one (or the
    // end of the grace) stops them at once. Either way the report is written.
    let signals = async {
        let first = stop_signal().await;
        interrupted.set(Some(first));
        stop.cancel();
        bar.println(format!(
            "{first}: no new scenarios; running ones get {} s to finish ({first} again stops them now)",
            GRACE.as_secs()
        ));
        tokio::select! {
            () = tokio::time::sleep(GRACE) => {}
            _ = stop_signal() => {}
        }
    };
    tokio::select! {
        ran = session.run_with(worker_client, running) => ran?,
        () = signals => {}
    }
    bar.finish_and_clear();
    let scenarios: Vec<ScenarioReport> = finished
        .into_iter()
        .zip(plans)
        .map(|(report, plan)| {
            report.unwrap_or_else(|| ScenarioReport::interrupted(plan, runner::workflow_id(plan, &settings)))
        })
        .collect();
    let timing = Timing::of(began.elapsed(), session.started_in, &scenarios);
    let started_at = chrono::Utc::now() - chrono::TimeDelta::from_std(began.elapsed()).unwrap_or_default();
    let report = RunReport {
        head: RunHead::new(&session.run_id, started_at, cluster),
        duration_ms: timing.wall_ms,
        timing,
        task_queue: session.task_queue.clone(),
        seed: options.seed,
        interrupted_by: interrupted.get().map(|s| s.to_string()),
        warnings: report::jobs_warning(
            runner::on_the_harness_worker(plans, settings.external_worker),
            options.jobs,
        )
        .into_iter()
        .chain(report::overload_warning(&scenarios, options.jobs))
        .collect(),
        summary: Summary::of(&scenarios),
        scenarios,
    };
    let worker_not_set_up = plans
        .iter()
        .zip(not_set_up)
        .filter(|(_, not)| *not)
        .map(|(plan, _)| plan.name.clone())
        .collect();
    Ok(Ran {
        report,
        interrupted: interrupted.get(),
        worker_not_set_up,
    })
}

/// The scenarios of a run, done: the report, the signal that stopped them if one did, and the
/// scenarios whose worker could not be set up.
struct Ran {
    report: RunReport,
    interrupted: Option<StopSignal>,
    worker_not_set_up: Vec<String>,
}

/// Prints the summary, writes the report files, posts the webhook and records the run.
async fn deliver(
    Ran {
        report,
        interrupted,
        worker_not_set_up,
    }: Ran,
    options: &SuiteOptions,
    demo_links: bool,
    store: Option<&mut RunStore>,
) -> SuiteOutcome {
    print!("{}", ReportFormat::Markdown.render(&report));
    let mut undelivered = Vec::new();
    let reports = &options.session.reports;
    let dir = match report::write_all(reports, &report) {
        Ok(dir) => {
            eprintln!("reports written to {}", dir.display());
            if demo_links {
                write_demo_links(&report, &dir);
            }
            Some(dir)
        }
        Err(source) => {
            undelivered.push(DeliveryError::Files {
                path: reports.clone(),
                source,
            });
            None
        }
    };
    let replay = match &dir {
        Some(d) if report.scenarios.iter().any(|s| s.replayable() && s.history.is_some()) => {
            match replay::check_report(d).await {
                Ok(summary) => {
                    if summary.passed() {
                        eprintln!("{}", summary.totals());
                    } else {
                        print!("{summary}");
                    }
                    Some(summary)
                }
                Err(e) => {
                    undelivered.push(e.into());
                    None
                }
            }
        }
        _ => None,
    };
    // An empty value (an unset platform variable) means no webhook.
    if let Some(url) = options.webhook.as_deref().filter(|u| !u.trim().is_empty()) {
        match webhook::post(url, &report).await {
            Ok(()) => eprintln!("report posted to the webhook"),
            Err(e) => undelivered.push(e.into()),
        }
    }
    if let (Some(store), Some(dir)) = (store, &dir)
        && let Err(e) = store.record(dir).await
    {
        undelivered.push(e.into());
    }
    SuiteOutcome {
        report,
        interrupted,
        replay,
        dir,
        undelivered,
        worker_not_set_up,
    }
}

/// Whether any plan restarts the server (the embedded server then keeps its state in a file).
fn restarts_server(plans: &[Plan]) -> bool {
    plans
        .iter()
        .flat_map(|p| &p.infra)
        .any(|r| r.action.fault().needs() == Capability::RestartServer)
}

fn progress(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
