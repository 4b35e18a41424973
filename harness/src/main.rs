//! `chaos`: the temporal-chaos command line. Argument parsing and exit codes only; the library
//! does the work.

use clap::{Parser, Subcommand};
use std::{path::PathBuf, process::ExitCode};
use temporal_chaos::{
    doctor,
    load::{self, LoadError, LoadOptions},
    replay, scenario,
    serve::{self, ServeOptions},
    session::SessionError,
    store::{Recorded, Store, StoreOptions},
    suite::{self, DEMO_SCENARIOS, SuiteError, SuiteOptions, SuiteOutcome},
    target::ConnectionSettings,
    wait::{StopSignal, stop_signal},
    wire::{self, ProxyOptions},
    worker,
};
use tracing_subscriber::EnvFilter;

/// Exit code when a scenario's expectations do not hold (or a doctor check fails).
const EXIT_FAILED: u8 = 1;
/// Exit code for bad input (a scenario whose worker cannot be set up, too), an unusable cluster,
/// or a report that was not delivered.
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
    Run {
        /// Scenario files or folders (searched recursively).
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        options: Box<SuiteOptions>,
    },
    /// Run the original project's demo set and print (and write) Markdown links to each execution.
    Demo {
        /// Folder holding the demo scenarios.
        #[arg(long, default_value = "scenarios/activity")]
        scenarios: PathBuf,
        #[command(flatten)]
        options: Box<SuiteOptions>,
    },
    /// Validate scenario files without a server; prints `file:line:col: message` per problem.
    Check {
        /// Scenario files or folders.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
    /// Replay every history a run recorded against the current workflow code; fails on any
    /// nondeterminism, naming the workflow and the event.
    Replay {
        /// The run's report folder.
        #[arg(default_value = "reports/latest")]
        dir: PathBuf,
    },
    /// Print the reference of fault kinds and their fields (Markdown), derived from the code.
    Kinds,
    /// Run the wire fault proxy on its own, between a worker (any language) and the frontend.
    Proxy(ProxyOptions),
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
    Load(Box<LoadOptions>),
    /// Serve the dashboard of the run store: runs, score trend, per-scenario strips, flaky marks,
    /// each run's report.
    Serve(Box<ServeOptions>),
    /// Work with the run store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Check that a cluster is fit to run scenarios: health, version, namespace, visibility,
    /// pollers, Web UI. Exits non-zero when a check fails.
    Doctor {
        #[command(flatten)]
        conn: ConnectionSettings,
        /// Task queue whose pollers to look for (the deployed workers'); repeat it for several.
        #[arg(long, env = "CHAOS_TASK_QUEUE")]
        task_queue: Vec<String>,
        /// Web UI base URL to fetch.
        #[arg(long, env = "CHAOS_UI_URL")]
        ui_url: Option<String>,
        /// Admin listener of the `chaos proxy` the workers poll through (`HOST[:PORT]` or URL):
        /// checks that it answers, reaches its frontend, and that the workers of each
        /// --task-queue poll through it.
        #[arg(long, env = "CHAOS_PROXY_ADMIN", value_name = "URL")]
        proxy_admin: Option<String>,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Record report folders (`reports/<run-id>`, written by chaos run or chaos load) that are not
    /// in the store yet: a run whose store could not be reached, or one recorded elsewhere.
    Push {
        /// Report folders.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[command(flatten)]
        store: StoreOptions,
        /// Reports folder whose `runs.sqlite` is the default store.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
    },
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
        Err(e) => return error(format!("cannot start the async runtime: {e}")),
    };
    match cli.command {
        Command::Check { paths } => match scenario::load_all(&paths) {
            Ok(plans) => {
                println!("{} scenario(s) OK", plans.len());
                ExitCode::SUCCESS
            }
            Err(problems) => {
                problems.iter().for_each(|p| println!("{p}"));
                error(format!("{} problem(s)", problems.len()))
            }
        },
        Command::Kinds => {
            print!("{}", scenario::reference());
            ExitCode::SUCCESS
        }
        Command::Replay { dir } => match runtime.block_on(replay::check_report(&dir)) {
            Ok(summary) => {
                print!("{summary}");
                verdict(summary.passed())
            }
            Err(e) => error(e),
        },
        Command::Run { paths, options } => runtime.block_on(run(&paths, &options, false)),
        Command::Demo { scenarios, options } => {
            let paths: Vec<PathBuf> = DEMO_SCENARIOS.iter().map(|f| scenarios.join(f)).collect();
            runtime.block_on(run(&paths, &options, true))
        }
        Command::Load(options) => match runtime.block_on(load::execute(&options)) {
            Ok((report, _)) => match report.interrupted {
                Some(signal) => stopped(signal),
                None => verdict(report.passed),
            },
            Err(LoadError::Session(SessionError::Interrupted(signal))) => stopped(signal),
            Err(e) => error(e),
        },
        Command::Proxy(options) => match runtime.block_on(wire::run_proxy(&options)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => error(e),
        },
        Command::Serve(options) => match runtime.block_on(serve::serve(&options, async {
            stop_signal().await;
        })) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => error(e),
        },
        Command::Store(StoreCommand::Push { dirs, store, reports }) => runtime.block_on(push(&dirs, &store, &reports)),
        Command::Worker { conn, task_queue } => match runtime.block_on(worker::serve(&conn, &task_queue)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => error(e),
        },
        Command::Doctor {
            conn,
            task_queue,
            ui_url,
            proxy_admin,
        } => match runtime.block_on(doctor::run(&conn, task_queue, ui_url, proxy_admin)) {
            Ok(passed) => verdict(passed),
            Err(e) => error(e),
        },
    }
}

/// `chaos run` and `chaos demo` (which also prints and writes the demo links).
async fn run(paths: &[PathBuf], options: &SuiteOptions, demo: bool) -> ExitCode {
    match suite::run(paths, options, demo).await {
        Ok(outcome) if !outcome.undelivered.is_empty() => {
            outcome.undelivered.iter().for_each(|e| eprintln!("error: {e}"));
            ExitCode::from(EXIT_ERROR)
        }
        Ok(SuiteOutcome {
            interrupted: Some(signal),
            ..
        }) => stopped(signal),
        Ok(outcome) if !outcome.worker_not_set_up.is_empty() => error(format!(
            "the worker of {} cannot be set up (its error is above and in the report): fix its [worker] \
             before the run's verdicts can mean anything",
            outcome.worker_not_set_up.join(", ")
        )),
        Ok(outcome) => verdict(outcome.passed()),
        Err(SuiteError::Scenarios(problems)) => {
            problems.iter().for_each(|p| eprintln!("{p}"));
            error(format!(
                "{} problem(s) in scenario files; nothing was run",
                problems.len()
            ))
        }
        Err(SuiteError::Session(SessionError::Interrupted(signal))) => stopped(signal),
        Err(e) => error(e),
    }
}

/// `chaos store push`: records each folder; exit 0 when each is in the store (now or already), 2
/// when one is not.
async fn push(dirs: &[PathBuf], options: &StoreOptions, reports: &std::path::Path) -> ExitCode {
    let location = match options.location(reports) {
        Ok(Some(location)) => location,
        Ok(None) => return error("--store off: there is no store to push to"),
        Err(e) => return error(e),
    };
    let store = match Store::open(&location).await {
        Ok(store) => store,
        Err(e) => return error(e),
    };
    let mut failed = 0;
    for (dir, recorded) in store.push(dirs, options.keep).await {
        match recorded {
            Ok(Recorded::Added { .. }) => println!("{}: recorded in {}", dir.display(), store.shown()),
            Ok(Recorded::Already) => println!("{}: already in {}; nothing changed", dir.display(), store.shown()),
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        error(format!("{failed} of {} folder(s) not recorded", dirs.len()))
    }
}

/// Exit code of a run a signal stopped: 130 (SIGINT) or 143 (SIGTERM).
fn stopped(signal: StopSignal) -> ExitCode {
    eprintln!("stopped by {signal}");
    ExitCode::from(signal.exit_code())
}

fn verdict(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

fn error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_ERROR)
}
