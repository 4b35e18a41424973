//! `chaos`: the temporal-chaos command line.

use clap::{Args, Parser, Subcommand};
use std::{path::PathBuf, process::ExitCode, time::Instant};
use temporal_chaos::{
    doctor::{self, DoctorSettings},
    infra::{Capability, Trigger},
    load::{LoadSettings, Mix},
    report::{self, ReportFormat, RunReport, Summary, webhook},
    runner::{self, RunSettings},
    scenario,
    target::{Cluster, ConnectionSettings, IMAGE_ENV, TargetKind, TargetSettings, connect},
    worker::run_worker_until,
};
use tracing_subscriber::EnvFilter;

/// Exit code when a scenario's expectations do not hold (or a doctor check fails).
const EXIT_FAILED: u8 = 1;
/// Exit code for bad input or an unusable cluster.
const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "chaos",
    version,
    about = "Chaos and failure-injection tests for Temporal workflows"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios, verify them against workflow histories, and write reports.
    Run(Box<RunArgs>),
    /// Run the original project's demo set and print (and write) Markdown links to each execution.
    Demo {
        /// Folder holding the demo scenarios.
        #[arg(long, default_value = "scenarios/activity")]
        scenarios: PathBuf,
        #[command(flatten)]
        options: Box<RunOptions>,
    },
    /// Validate scenario files without a server; prints `file:line:col: message` per problem.
    Check {
        /// Scenario files or folders.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
    /// Run only the chaos worker (demo workflows with fault injection) on a task queue.
    Worker {
        #[command(flatten)]
        conn: ConnectionSettings,
        /// Task queue to poll.
        #[arg(long, env = "CHAOS_TASK_QUEUE")]
        task_queue: String,
    },
    /// Start many workflows under seeded faults; report throughput, latency, faults, and any
    /// workflow lost or stuck (which fails the run).
    Load(Box<LoadArgs>),
    /// Check that a cluster is fit to run scenarios: health, version, namespace, visibility,
    /// pollers, Web UI. Exits non-zero when a check fails.
    Doctor {
        #[command(flatten)]
        conn: ConnectionSettings,
        /// Task queue whose pollers to look for (the deployed chaos worker's).
        #[arg(long, env = "CHAOS_TASK_QUEUE")]
        task_queue: Option<String>,
        /// Web UI base URL to fetch.
        #[arg(long, env = "CHAOS_UI_URL")]
        ui_url: Option<String>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Scenario files or folders (searched recursively).
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    options: RunOptions,
}

/// The original project's demo set, in its README's order.
const DEMO_SCENARIOS: [&str; 5] = [
    "01-orchestration-success.toml",
    "02-retries-exhausted-fallback.toml",
    "03-plain-success.toml",
    "04-timeout-then-success.toml",
    "05-timeout-fallback.toml",
];

/// Which cluster to use and how to reach it; shared by `run`, `demo` and `load`.
#[derive(Args)]
struct TargetArgs {
    #[command(flatten)]
    conn: ConnectionSettings,
    /// Where to run: `embedded` (default; `remote` when --address is given), `testcontainers`, `remote`.
    #[arg(long, value_enum)]
    target: Option<TargetKind>,
    /// Image for the testcontainers target (default: the official Temporal CLI image, pinned).
    #[arg(long, env = IMAGE_ENV)]
    image: Option<String>,
    /// Base URL of the Temporal Web UI for report links (defaults to the started server's UI).
    #[arg(long, env = "CHAOS_UI_URL")]
    ui_url: Option<String>,
    /// Path of the `temporal` CLI for the embedded server.
    #[arg(long, env = "CHAOS_TEMPORAL_BIN")]
    temporal_bin: Option<PathBuf>,
    /// Task queue for the workflows (default: a fresh one per run).
    #[arg(long, env = "CHAOS_TASK_QUEUE")]
    task_queue: Option<String>,
    /// Do not start a worker: rely on one already polling --task-queue (e.g. the deployed one).
    #[arg(long, requires = "task_queue")]
    external_worker: bool,
    /// Folder for reports; each run writes `<folder>/<run-id>/` and updates `<folder>/latest`.
    #[arg(long, default_value = "reports")]
    reports: PathBuf,
}

impl TargetArgs {
    fn settings(&self, run_id: &str, persist: bool) -> TargetSettings {
        TargetSettings {
            kind: self.target.unwrap_or(if self.conn.address.is_some() {
                TargetKind::Remote
            } else {
                TargetKind::Embedded
            }),
            connection: self.conn.clone(),
            image: self.image.clone(),
            ui_url: self.ui_url.clone(),
            temporal_bin: self.temporal_bin.clone(),
            log_dir: self.reports.join(run_id),
            persist,
        }
    }

    /// Creates the log folder and starts (or reaches) the cluster; prints the error otherwise.
    async fn cluster(&self, settings: &TargetSettings) -> Option<Cluster> {
        if let Err(e) = std::fs::create_dir_all(&settings.log_dir) {
            eprintln!("error: cannot create {}: {e}", settings.log_dir.display());
            return None;
        }
        Cluster::start(settings).await.map_err(|e| eprintln!("error: {e}")).ok()
    }
}

#[derive(Args)]
struct RunOptions {
    #[command(flatten)]
    target: TargetArgs,
    /// POST the JSON report to this URL when the run ends.
    #[arg(long, env = "CHAOS_WEBHOOK_URL", hide_env_values = true)]
    webhook: Option<String>,
    /// Seed for probabilistic faults, overriding each scenario's own.
    #[arg(long)]
    seed: Option<u64>,
    /// Scenarios in flight at once.
    #[arg(long, default_value_t = 16)]
    jobs: usize,
    /// Keep the started server (and so the report links) up until Ctrl-C.
    #[arg(long)]
    keep_server: bool,
}

#[derive(Args)]
struct LoadArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Workflows to start.
    #[arg(long, default_value_t = 100)]
    workflows: usize,
    /// Chance that any activity attempt fails with a retryable `LoadFault` error.
    #[arg(long, default_value_t = 0.2)]
    fault_rate: f64,
    /// Starts per second at most (default: as fast as --concurrency allows).
    #[arg(long)]
    rate: Option<f64>,
    /// Workflows in flight at most.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Seed of the fault schedule; the same seed replays the same faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Which workflows to start.
    #[arg(long, value_enum, default_value = "both")]
    mix: Mix,
    /// An infrastructure fault during the run, as `KIND after D for D2` (server_pause or
    /// server_restart), e.g. "server_pause after 5s for 3s". Repeatable.
    #[arg(long)]
    infra: Vec<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error,temporal_chaos=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match cli.command {
        Command::Check { paths } => check(&paths),
        Command::Run(args) => {
            let RunArgs { paths, options } = *args;
            runtime.block_on(run(&paths, options, |_, _| {}))
        }
        Command::Demo { scenarios, options } => {
            let paths: Vec<PathBuf> = DEMO_SCENARIOS.iter().map(|f| scenarios.join(f)).collect();
            runtime.block_on(run(&paths, *options, write_demo_links))
        }
        Command::Load(args) => runtime.block_on(load(*args)),
        Command::Worker { conn, task_queue } => runtime.block_on(worker(conn, task_queue)),
        Command::Doctor {
            conn,
            task_queue,
            ui_url,
        } => runtime.block_on(doctor(conn, task_queue, ui_url)),
    }
}

fn check(paths: &[PathBuf]) -> ExitCode {
    match scenario::load_all(paths) {
        Ok(plans) => {
            println!("{} scenario(s) OK", plans.len());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                println!("{p}");
            }
            eprintln!("{} problem(s)", problems.len());
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Runs the scenarios under `paths`; `published` sees the report once it is written (and before
/// `--keep-server` waits), for extra outputs such as the demo links.
async fn run(paths: &[PathBuf], args: RunOptions, published: impl FnOnce(&RunReport, &std::path::Path)) -> ExitCode {
    let began = Instant::now();
    let plans = match scenario::load_all(paths) {
        Ok(plans) => plans,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "error: {} problem(s) in scenario files; nothing was run",
                problems.len()
            );
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let run_id = new_run_id();
    let settings = args.target.settings(&run_id, runner::needs_persistent_server(&plans));
    let Some(cluster) = args.target.cluster(&settings).await else {
        return ExitCode::from(EXIT_ERROR);
    };
    let mut capabilities = cluster.capabilities();
    if args.target.external_worker {
        // Someone else's worker can be neither killed nor put behind the proxy.
        capabilities.retain(|c| !matches!(c, Capability::CrashWorker | Capability::NetworkProxy));
    }
    let unsupported = runner::unsupported(&plans, &capabilities, cluster.target.name());
    if !unsupported.is_empty() {
        for line in &unsupported {
            eprintln!("{line}");
        }
        eprintln!(
            "error: {} infrastructure fault(s) cannot run on this target; nothing was run",
            unsupported.len()
        );
        cluster.stop().await;
        return ExitCode::from(EXIT_ERROR);
    }
    let run = RunSettings {
        task_queue: args
            .target
            .task_queue
            .clone()
            .unwrap_or_else(|| format!("chaos-{run_id}")),
        run_id: run_id.clone(),
        seed: args.seed,
        jobs: args.jobs,
        log_dir: settings.log_dir.clone(),
    };
    let scenarios = tokio::select! {
        done = with_worker(&cluster, &run.task_queue, args.target.external_worker, runner::run_plans(&cluster, &plans, &run)) => match done {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                cluster.stop().await;
                return ExitCode::from(EXIT_ERROR);
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted; stopping the cluster");
            cluster.stop().await;
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let passed = scenarios.iter().filter(|s| s.passed).count();
    let report = RunReport {
        run_id,
        started_at: chrono::Utc::now().to_rfc3339(),
        duration_ms: began.elapsed().as_millis() as u64,
        target: cluster.target.name().into(),
        address: cluster.address.clone(),
        namespace: cluster.namespace.clone(),
        ui_url: cluster.ui_url.clone(),
        server_version: cluster.server_version.clone(),
        task_queue: run.task_queue.clone(),
        seed: args.seed,
        summary: Summary {
            total: scenarios.len(),
            passed,
            failed: scenarios.len() - passed,
        },
        scenarios,
    };
    print!("{}", ReportFormat::Markdown.render(&report));
    let mut delivered = true;
    match report::write_all(&args.target.reports, &report) {
        Ok(dir) => {
            eprintln!("reports written to {}", dir.display());
            published(&report, &dir);
        }
        Err(e) => {
            eprintln!(
                "error: cannot write reports under {}: {e}",
                args.target.reports.display()
            );
            delivered = false;
        }
    }
    // An empty value (an unset platform variable) means no webhook.
    if let Some(url) = args.webhook.as_deref().filter(|u| !u.trim().is_empty()) {
        match webhook::post(url, &report).await {
            Ok(()) => eprintln!("report posted to the webhook"),
            Err(e) => {
                eprintln!("error: {e}");
                delivered = false;
            }
        }
    }
    if args.keep_server && cluster.server().is_some() {
        eprintln!(
            "keeping the server up: UI at {}; press Ctrl-C to stop",
            cluster.ui_url.as_deref().unwrap_or("-")
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    cluster.stop().await;
    if !delivered {
        ExitCode::from(EXIT_ERROR)
    } else if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// Runs `work` next to the harness's own worker on `task_queue`, or alone when an external
/// worker polls it.
async fn with_worker<F: Future>(
    cluster: &Cluster,
    task_queue: &str,
    external: bool,
    work: F,
) -> Result<F::Output, temporal_chaos::worker::WorkerError> {
    if external {
        return Ok(work.await);
    }
    run_worker_until(cluster.client.clone(), task_queue, work).await
}

async fn load(args: LoadArgs) -> ExitCode {
    if !(0.0..=1.0).contains(&args.fault_rate) {
        eprintln!("error: --fault-rate must be between 0 and 1");
        return ExitCode::from(EXIT_ERROR);
    }
    let mut infra = Vec::new();
    for (i, text) in args.infra.iter().enumerate() {
        match Trigger::parse_timed(text, i + 1) {
            // The load's worker runs in-process: there is no process to kill or proxy to break.
            Ok(rule)
                if matches!(
                    rule.action.fault().needs(),
                    Capability::CrashWorker | Capability::NetworkProxy
                ) =>
            {
                eprintln!("error: --infra `{text}`: chaos load takes server_pause or server_restart");
                return ExitCode::from(EXIT_ERROR);
            }
            Ok(rule) => infra.push(rule),
            Err(e) => {
                eprintln!("error: --infra {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        }
    }
    let run_id = new_run_id();
    let restarts = infra
        .iter()
        .any(|r| r.action.fault().needs() == Capability::RestartServer);
    let settings = args.target.settings(&run_id, restarts);
    let Some(cluster) = args.target.cluster(&settings).await else {
        return ExitCode::from(EXIT_ERROR);
    };
    let capabilities = cluster.capabilities();
    if let Some(rule) = infra.iter().find(|r| !capabilities.contains(&r.action.fault().needs())) {
        eprintln!(
            "error: --infra `{}` needs {}, which the {} target cannot do; nothing was run",
            rule.describe(),
            rule.action.fault().needs(),
            cluster.target.name()
        );
        cluster.stop().await;
        return ExitCode::from(EXIT_ERROR);
    }
    let load = LoadSettings {
        workflows: args.workflows,
        rate: args.rate,
        concurrency: args.concurrency,
        fault_rate: args.fault_rate,
        seed: args.seed,
        mix: args.mix,
        task_queue: args
            .target
            .task_queue
            .clone()
            .unwrap_or_else(|| format!("chaos-load-{run_id}")),
        run_id: run_id.clone(),
        infra,
    };
    let outcome = tokio::select! {
        r = with_worker(&cluster, &load.task_queue, args.target.external_worker, temporal_chaos::load::run(&cluster, &load)) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted; stopping the cluster");
            cluster.stop().await;
            return ExitCode::from(EXIT_ERROR);
        }
    };
    cluster.stop().await;
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    print!("{}", report.markdown());
    let dir = args.target.reports.join(&run_id);
    if let Err(e) = report.write(&dir) {
        eprintln!("error: cannot write the load report under {}: {e}", dir.display());
        return ExitCode::from(EXIT_ERROR);
    }
    eprintln!("load report written to {}", dir.display());
    if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

async fn worker(conn: ConnectionSettings, task_queue: String) -> ExitCode {
    let endpoint = match conn.resolve() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let client = match connect(&endpoint).await {
        Ok((client, _)) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    eprintln!(
        "chaos worker polling task queue `{task_queue}` on {}; Ctrl-C to stop",
        endpoint.address
    );
    let stop = async {
        // SIGTERM is how platforms (Render, Docker) stop a service.
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    match run_worker_until(client, &task_queue, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn doctor(conn: ConnectionSettings, task_queue: Option<String>, ui_url: Option<String>) -> ExitCode {
    let endpoint = match conn.resolve() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let checks = doctor::examine(&DoctorSettings {
        endpoint,
        task_queue,
        ui_url,
    })
    .await;
    print!("{}", doctor::table(&checks));
    if checks.iter().all(|c| c.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// Prints the demo executions as a Markdown list of UI links and writes it to `demo-links.md`.
fn write_demo_links(report: &RunReport, dir: &std::path::Path) {
    let list = report::demo_links(report);
    println!("\n{list}");
    if let Err(e) = std::fs::write(dir.join("demo-links.md"), &list) {
        eprintln!("error: cannot write {}: {e}", dir.join("demo-links.md").display());
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
