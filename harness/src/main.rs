//! `chaos`: the temporal-chaos command line.

use clap::{Args, Parser, Subcommand};
use std::{path::PathBuf, process::ExitCode, time::Instant};
use temporal_chaos::{
    doctor::{self, DoctorSettings},
    infra::Capability,
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

#[derive(Args)]
struct RunOptions {
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
    /// Task queue for the workflows (default: a fresh one per run).
    #[arg(long, env = "CHAOS_TASK_QUEUE")]
    task_queue: Option<String>,
    /// Do not start a worker: rely on one already polling --task-queue (e.g. the deployed one).
    #[arg(long, requires = "task_queue")]
    external_worker: bool,
    /// POST the JSON report to this URL when the run ends.
    #[arg(long, env = "CHAOS_WEBHOOK_URL", hide_env_values = true)]
    webhook: Option<String>,
    /// Seed for probabilistic faults, overriding each scenario's own.
    #[arg(long)]
    seed: Option<u64>,
    /// Scenarios in flight at once.
    #[arg(long, default_value_t = 16)]
    jobs: usize,
    /// Folder for reports; each run writes `<folder>/<run-id>/` and updates `<folder>/latest`.
    #[arg(long, default_value = "reports")]
    reports: PathBuf,
    /// Keep the started server (and so the report links) up until Ctrl-C.
    #[arg(long)]
    keep_server: bool,
    /// Path of the `temporal` CLI for the embedded server.
    #[arg(long, env = "CHAOS_TEMPORAL_BIN")]
    temporal_bin: Option<PathBuf>,
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
    let kind = args.target.unwrap_or(if args.conn.address.is_some() {
        TargetKind::Remote
    } else {
        TargetKind::Embedded
    });
    let settings = TargetSettings {
        kind,
        connection: args.conn.clone(),
        image: args.image.clone(),
        ui_url: args.ui_url.clone(),
        temporal_bin: args.temporal_bin.clone(),
        log_dir: args.reports.join(&run_id),
        persist: runner::needs_persistent_server(&plans),
    };
    if let Err(e) = std::fs::create_dir_all(&settings.log_dir) {
        eprintln!("error: cannot create {}: {e}", settings.log_dir.display());
        return ExitCode::from(EXIT_ERROR);
    }
    let cluster = match Cluster::start(&settings).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let mut capabilities = cluster.capabilities();
    if args.external_worker {
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
        task_queue: args.task_queue.clone().unwrap_or_else(|| format!("chaos-{run_id}")),
        run_id: run_id.clone(),
        seed: args.seed,
        jobs: args.jobs,
        log_dir: settings.log_dir.clone(),
    };
    let scenarios = tokio::select! {
        done = run_with_worker(&cluster, &plans, &run, args.external_worker) => match done {
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
    match report::write_all(&args.reports, &report) {
        Ok(dir) => {
            eprintln!("reports written to {}", dir.display());
            published(&report, &dir);
        }
        Err(e) => {
            eprintln!("error: cannot write reports under {}: {e}", args.reports.display());
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

/// Runs the plans with the harness's own worker, or with the external one already polling.
async fn run_with_worker(
    cluster: &Cluster,
    plans: &[temporal_chaos::plan::Plan],
    run: &RunSettings,
    external: bool,
) -> Result<Vec<report::ScenarioReport>, temporal_chaos::worker::WorkerError> {
    if external {
        return Ok(runner::run_plans(cluster, plans, run).await);
    }
    run_worker_until(
        cluster.client.clone(),
        &run.task_queue,
        runner::run_plans(cluster, plans, run),
    )
    .await
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
