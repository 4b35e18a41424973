//! `chaos`: the temporal-chaos command line.

use clap::{Args, Parser, Subcommand};
use std::{path::PathBuf, process::ExitCode, time::Instant};
use temporal_chaos::{
    report::{self, ReportFormat, RunReport, Summary},
    runner::{self, RunSettings},
    scenario,
    target::{Cluster, IMAGE_ENV, TargetKind, TargetSettings, connect},
    worker::run_worker_until,
};
use tracing_subscriber::EnvFilter;

/// Exit code when a scenario's expectations do not hold.
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
    Run(RunArgs),
    /// Validate scenario files without a server; prints `file:line:col: message` per problem.
    Check {
        /// Scenario files or folders.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
    /// Run only the chaos worker (demo workflows with fault injection) on a task queue.
    Worker {
        #[command(flatten)]
        conn: ConnArgs,
        /// Task queue to poll.
        #[arg(long, env = "CHAOS_TASK_QUEUE")]
        task_queue: String,
    },
}

#[derive(Args)]
struct ConnArgs {
    /// Frontend of an existing cluster (HOST:PORT); without it an embedded dev server is started.
    #[arg(long, env = "TEMPORAL_ADDRESS")]
    address: Option<String>,
    /// Namespace.
    #[arg(long, env = "TEMPORAL_NAMESPACE", default_value = "default")]
    namespace: String,
}

#[derive(Args)]
struct RunArgs {
    /// Scenario files or folders.
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    conn: ConnArgs,
    /// Where to run: `embedded` (default; `remote` when --address is given), `testcontainers`, `remote`.
    #[arg(long, value_enum)]
    target: Option<TargetKind>,
    /// Image for the testcontainers target (default: the official Temporal CLI image, pinned).
    #[arg(long, env = IMAGE_ENV)]
    image: Option<String>,
    /// Base URL of the Temporal Web UI for report links (defaults to the embedded server's UI).
    #[arg(long, env = "CHAOS_UI_URL")]
    ui_url: Option<String>,
    /// Seed for probabilistic faults, overriding each scenario's own.
    #[arg(long)]
    seed: Option<u64>,
    /// Scenarios in flight at once.
    #[arg(long, default_value_t = 16)]
    jobs: usize,
    /// Folder for reports; each run writes `<folder>/<run-id>/` and updates `<folder>/latest`.
    #[arg(long, default_value = "reports")]
    reports: PathBuf,
    /// Keep the embedded server (and so the report links) up until Ctrl-C.
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
        Command::Run(args) => runtime.block_on(run(args)),
        Command::Worker { conn, task_queue } => runtime.block_on(worker(conn, task_queue)),
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

async fn run(args: RunArgs) -> ExitCode {
    let began = Instant::now();
    let plans = match scenario::load_all(&args.paths) {
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
        address: args.conn.address.clone(),
        image: args.image.clone(),
        namespace: args.conn.namespace.clone(),
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
    let unsupported = runner::unsupported(&plans, &cluster.capabilities(), cluster.target.name());
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
        task_queue: format!("chaos-{run_id}"),
        run_id: run_id.clone(),
        seed: args.seed,
        jobs: args.jobs,
        log_dir: settings.log_dir.clone(),
    };
    let scenarios = tokio::select! {
        done = run_worker_until(cluster.client.clone(), &run.task_queue, runner::run_plans(&cluster, &plans, &run)) => match done {
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
    match report::write_all(&args.reports, &report) {
        Ok(dir) => eprintln!("reports written to {}", dir.display()),
        Err(e) => {
            eprintln!("error: cannot write reports under {}: {e}", args.reports.display());
            cluster.stop().await;
            return ExitCode::from(EXIT_ERROR);
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
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

async fn worker(conn: ConnArgs, task_queue: String) -> ExitCode {
    let Some(address) = conn.address else {
        eprintln!("error: `chaos worker` needs --address HOST:PORT (or TEMPORAL_ADDRESS)");
        return ExitCode::from(EXIT_ERROR);
    };
    let client = match connect(&address, &conn.namespace).await {
        Ok((client, _)) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    eprintln!("chaos worker polling task queue `{task_queue}` on {address}; Ctrl-C to stop");
    match run_worker_until(client, &task_queue, tokio::signal::ctrl_c()).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
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
