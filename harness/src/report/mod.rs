//! Run reports: one model, several formats, each in its own file.
//!
//! Every scenario row carries the workflow id, run id and a link to the Temporal Web UI; failed
//! checks link to the history event that shows the problem.

mod html;
mod json;
mod junit;
mod markdown;
mod observations;
pub mod webhook;

pub use observations::{
    BacklogCount, DuplicateExecution, InjectedTasks, Latencies, Observations, RpcErrors, ScheduleToStart, nearest_rank,
};

use crate::{
    faults::FaultRule,
    fleet::WorkerEvent,
    history::{Histories, RAW_HISTORIES_DIR, USER_HISTORIES_DIR},
    infra::{CallEvent, InfraEvent},
    plan::Outcome,
    runner::Execution,
    target::{Cluster, ui_link},
    verify::{self, Check},
    wire::AttemptRecord,
};
use serde::{Deserialize, Serialize};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// Which run, when, where and by which harness: the head of `report.json` and of `load.json`
/// (flattened into both), which the run store reads from either.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunHead {
    /// Unique id of the run; names the report folder and suffixes workflow ids.
    pub run_id: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// `embedded`, `testcontainers` or `remote`.
    pub target: String,
    /// Frontend address.
    pub address: String,
    /// Namespace.
    pub namespace: String,
    /// Web UI base URL, when known.
    pub ui_url: Option<String>,
    /// Server version reported by the frontend.
    pub server_version: String,
    /// The temporal-chaos version that ran it (`unknown` in reports written before it was kept).
    #[serde(default = "unknown_version")]
    pub harness_version: String,
}

fn unknown_version() -> String {
    "unknown".into()
}

impl RunHead {
    /// The head of run `run_id` on `cluster`, started `started_at`.
    pub fn new(run_id: &str, started_at: chrono::DateTime<chrono::Utc>, cluster: &Cluster) -> Self {
        Self {
            run_id: run_id.to_owned(),
            started_at: started_at.to_rfc3339(),
            target: cluster.target.name().into(),
            address: cluster.address.clone(),
            namespace: cluster.namespace.clone(),
            ui_url: cluster.ui_url.clone(),
            server_version: cluster.server_version.clone(),
            harness_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Which run, when, where.
    #[serde(flatten)]
    pub head: RunHead,
    /// Wall time of the whole run, cluster start-up included.
    pub duration_ms: u64,
    /// Task queue the scenarios ran on.
    pub task_queue: String,
    /// Seed override (`--seed`), if any; otherwise each scenario's own seed applies.
    pub seed: Option<u64>,
    /// The signal that interrupted the run (`SIGINT`, `SIGTERM`), if one did.
    pub interrupted_by: Option<String>,
    /// How the run's wall time compares with its critical path.
    pub timing: Timing,
    /// What the harness noticed about the run as a whole that may have bent its verdicts (e.g.
    /// the machine could not keep up with `--jobs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Counts.
    pub summary: Summary,
    /// One entry per scenario, in file order.
    pub scenarios: Vec<ScenarioReport>,
}

/// Pass/fail counts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default)]
pub struct Summary {
    /// Scenarios run.
    pub total: usize,
    /// Scenarios whose every check held.
    pub passed: usize,
    /// Scenarios that ran and did not pass.
    pub failed: usize,
    /// Scenarios an interruption kept from finishing.
    pub interrupted: usize,
    /// The resilience score, 0 to 100 (see [`score`]); `None` when no scenario finished.
    #[serde(default)]
    pub score: Option<f64>,
}

impl Summary {
    /// Whether there were scenarios and every one passed.
    pub fn all_passed(&self) -> bool {
        self.passed == self.total && self.total > 0
    }

    /// The run's verdict: `INTERRUPTED` (a signal stopped it), `PASSED` or `FAILED`.
    pub fn verdict(&self, interrupted: bool) -> &'static str {
        if interrupted {
            "INTERRUPTED"
        } else if self.all_passed() {
            "PASSED"
        } else {
            "FAILED"
        }
    }

    /// Counts the scenarios by verdict.
    pub fn of(scenarios: &[ScenarioReport]) -> Self {
        let count = |v: Verdict| scenarios.iter().filter(|s| s.verdict == v).count();
        Self {
            total: scenarios.len(),
            passed: count(Verdict::Passed),
            failed: count(Verdict::Failed),
            interrupted: count(Verdict::Interrupted),
            score: score(scenarios.iter().map(|s| (s.verdict, s.weight))),
        }
    }
}

/// The resilience score of a run, 0 to 100: of the scenarios that finished (passed or failed;
/// interrupted ones are left out), the share by weight that passed. `None` when none finished.
pub fn score(scenarios: impl IntoIterator<Item = (Verdict, f64)>) -> Option<f64> {
    let (mut passed, mut finished) = (0.0, 0.0);
    for (verdict, weight) in scenarios {
        match verdict {
            Verdict::Passed => {
                passed += weight;
                finished += weight;
            }
            Verdict::Failed => finished += weight,
            Verdict::Interrupted => {}
        }
    }
    (finished > 0.0).then(|| 100.0 * passed / finished)
}

/// The run's wall time against its critical path: the longest scenario plus the shared
/// server's start. Scenarios that wait for each other make the ratio grow. A run in which no
/// scenario's workflow started (each failed before it could) has no critical path to compare
/// with.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Timing {
    /// Wall time of the whole run, cluster start-up included.
    pub wall_ms: u64,
    /// Time to start (or reach) the shared cluster.
    pub server_start_ms: u64,
    /// The longest scenario's wall time.
    pub longest_scenario_ms: u64,
    /// `server_start_ms + longest_scenario_ms`; `None` when no scenario's workflow started.
    pub critical_path_ms: Option<u64>,
    /// `wall_ms / critical_path_ms`; `None` when no scenario's workflow started.
    pub ratio: Option<f64>,
    /// The longest time a scenario waited for its turn (on a fixed task queue or a dialed
    /// address another scenario had to itself, or on the harness's worker): wall time that is
    /// waiting, in no scenario's own time.
    pub longest_wait_ms: u64,
}

impl Timing {
    /// The timing of a run that took `wall` after a cluster start of `server_start`.
    pub fn of(wall: std::time::Duration, server_start: std::time::Duration, scenarios: &[ScenarioReport]) -> Self {
        let longest = scenarios.iter().filter_map(|s| s.wall_ms).max().unwrap_or(0);
        let longest_wait = scenarios.iter().filter_map(|s| s.waited_ms).max().unwrap_or(0);
        let started = scenarios.iter().any(|s| s.run_id.is_some());
        let critical = Some(server_start.as_millis() as u64 + longest).filter(|c| started && *c > 0);
        let wall = wall.as_millis() as u64;
        Self {
            wall_ms: wall,
            server_start_ms: server_start.as_millis() as u64,
            longest_scenario_ms: longest,
            critical_path_ms: critical,
            ratio: critical.map(|c| wall as f64 / c as f64),
            longest_wait_ms: longest_wait,
        }
    }
}

/// The warning for a run whose `--jobs` asked for more scenarios at once than the harness's own
/// worker takes here ([`crate::runner::default_jobs`]): those scenarios took turns.
/// `on_the_harness` is how many of the run's scenarios ran on that worker.
pub fn jobs_warning(on_the_harness: usize, jobs: usize) -> Option<String> {
    let most = crate::runner::default_jobs();
    (jobs > most && on_the_harness > most).then(|| {
        format!(
            "--jobs {jobs}: the scenarios on the harness's own worker ran at most {most} at a time (16 per core), \
             so that its worker keeps up with their tasks and their verdicts measure the workflows, not the harness; \
             their waits for a turn are counted apart (waited_ms)"
        )
    })
}

/// A first workflow task that waits this long for a worker means something could not keep up.
const SLOW_FIRST_TASK_MS: u64 = 2000;

/// The warning for a run whose first workflow tasks waited long for a worker: the harness's worker,
/// the user's worker or the server could not keep up with `jobs` scenarios at once here.
pub fn overload_warning(scenarios: &[ScenarioReport], jobs: usize) -> Option<String> {
    let waits: Vec<u64> = scenarios
        .iter()
        .filter_map(|s| s.first_task_wait_ms)
        .filter(|w| *w >= SLOW_FIRST_TASK_MS)
        .collect();
    let longest = waits.iter().max()?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    Some(format!(
        "the first workflow tasks of {} of {} scenarios waited {} s or more for a worker (up to {:.1} s): the worker, \
         the harness or the server could not keep up with {jobs} scenarios at once on this machine ({cores} cores). \
         Time budgets leave out the time workflows waited for a worker to take their first task, but the \
         server's timeouts do not: lower --jobs (default {})",
        waits.len(),
        scenarios.len(),
        SLOW_FIRST_TASK_MS / 1000,
        *longest as f64 / 1000.0,
        crate::runner::default_jobs()
    ))
}

/// A scenario's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check held.
    Passed,
    /// It ran, and a check did not hold or something went wrong.
    Failed,
    /// A signal stopped the run before this scenario finished; nothing was verified.
    Interrupted,
}

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub name: String,
    /// Scenario description.
    pub description: String,
    /// File it came from.
    pub source: PathBuf,
    /// How much it counts in the run's resilience score (the scenario's `weight`, default 1).
    pub weight: f64,
    /// `orchestration` or `resilient` (the demo workflows), or the user's workflow type.
    pub workflow: String,
    /// For a workflow of the user's own: which worker ran it and how (shared by the scenarios
    /// on its task queue, one of its own, or one the harness did not start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Workflow id.
    pub workflow_id: String,
    /// Run id, once started.
    pub run_id: Option<String>,
    /// Outcome read from history.
    pub outcome: Option<Outcome>,
    /// Result value, when completed.
    pub result: Option<serde_json::Value>,
    /// Attempts per activity type, from history (and the wire proxy's log where history cannot
    /// count them).
    pub attempts: BTreeMap<String, u32>,
    /// Activity types whose count in `attempts` is only a lower bound: one timed out waiting for
    /// a retry that never started, where no proxy saw the attempts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts_at_least: Vec<String>,
    /// Workflow start to close, from history.
    pub duration_ms: Option<u64>,
    /// Wall time the scenario took in the harness (its private server's start included, its
    /// wait for a turn left out: `waited_ms`).
    pub wall_ms: Option<u64>,
    /// Time it waited for its turn: on a fixed task queue or a dialed address another scenario had
    /// to itself, or on the harness's worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
    /// How long its workflow and child workflows waited for a worker to take their first
    /// workflow task (overlapping waits counted once; from history).
    pub first_task_wait_ms: Option<u64>,
    /// Every activity attempt as the wire proxy saw it (`--inject wire`): evidence for the
    /// attempts history does not keep, with real start and answer times.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wire_attempts: Vec<AttemptRecord>,
    /// Why the wire proxy's log is missing for faults that went on the wire (a deployed proxy
    /// dropped or could not give it): its checks rest on history alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wire_gap: Option<String>,
    /// Passed, failed or interrupted.
    pub verdict: Verdict,
    /// True when every check held and nothing went wrong (the verdict is `passed`).
    pub passed: bool,
    /// A problem that kept the scenario from running or being verified.
    pub error: Option<String>,
    /// Web UI link to the workflow's history.
    pub link: Option<String>,
    /// The faults of the plan, described.
    pub faults: Vec<String>,
    /// The activity fault rules, for placing them on the timeline.
    pub fault_rules: Vec<FaultRule>,
    /// What each infrastructure fault did and when.
    pub infra_events: Vec<InfraEvent>,
    /// Verified expectations.
    pub checks: Vec<CheckReport>,
    /// What the run went through beyond its checks (workflow task failures, replays, latencies,
    /// a backlog's drain, ...); left out when there is nothing.
    #[serde(skip_serializing_if = "Observations::is_empty")]
    pub observations: Observations,
    /// What happened to the scenario's own worker processes, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub worker_events: Vec<WorkerEvent>,
    /// What the faults on the workers' calls did, and the replays the wire proxy saw.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub call_events: Vec<CallEvent>,
    /// The facts read from the histories (root and children).
    pub history: Option<Histories>,
    /// The workflows a `workers_down` started while the workers were down, with their histories.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backlog: Vec<Histories>,
}

impl ScenarioReport {
    /// The report of one execution and its verified checks, with links to the workflow and to
    /// the events that checks point at in the Web UI of the server (and namespace) it ran on.
    pub fn new(execution: Execution, checks: Vec<Check>) -> Self {
        let Execution {
            plan,
            workflow_id,
            run_id,
            histories,
            infra_events,
            error,
            ui_url,
            namespace,
            wall,
            waited,
            wire_attempts,
            wire_gap,
            worker,
            call_events,
            worker_events,
            backlog,
        } = execution;
        let observations = Observations::of(&observations::Observed {
            rules: &plan.infra,
            histories: histories.as_ref(),
            infra: &infra_events,
            calls: &call_events,
            wire: &wire_attempts,
            backlog: &backlog,
        });
        let link_to =
            |workflow_id: &str, run_id: &str| ui_url.as_deref().map(|ui| ui_link(ui, &namespace, workflow_id, run_id));
        let mut attempts = BTreeMap::new();
        let mut attempts_at_least = Vec::new();
        for act in histories.iter().flat_map(Histories::activities) {
            *attempts.entry(act.activity_type.clone()).or_default() += act.attempts;
            if !act.attempts_exact && !attempts_at_least.contains(&act.activity_type) {
                attempts_at_least.push(act.activity_type.clone());
            }
        }
        let checks: Vec<CheckReport> = checks
            .into_iter()
            .map(|check| {
                let link = check.evidence.as_ref().and_then(|ev| {
                    let run = histories
                        .iter()
                        .chain(&backlog)
                        .flat_map(Histories::all)
                        .find(|h| h.workflow_id == ev.workflow_id)?;
                    Some(event_link(&link_to(&run.workflow_id, &run.run_id)?, ev.event_id))
                });
                CheckReport { check, link }
            })
            .collect();
        let passed = error.is_none() && !checks.is_empty() && checks.iter().all(|c| c.check.passed);
        Self {
            name: plan.name.clone(),
            description: plan.description.clone(),
            source: plan.source.clone(),
            weight: plan.weight,
            workflow: plan.workflow.kind().into(),
            worker,
            link: run_id.as_deref().and_then(|r| link_to(&workflow_id, r)),
            workflow_id,
            run_id,
            outcome: histories.as_ref().map(|h| verify::outcome(&plan.workflow, h)),
            result: histories.as_ref().and_then(|h| verify::result_value(&plan.workflow, h)),
            attempts,
            attempts_at_least,
            duration_ms: histories
                .as_ref()
                .and_then(|h| h.root.duration())
                .map(|d| d.as_millis() as u64),
            verdict: if passed { Verdict::Passed } else { Verdict::Failed },
            wall_ms: Some(wall.as_millis() as u64),
            waited_ms: (!waited.is_zero()).then_some(waited.as_millis() as u64),
            first_task_wait_ms: histories
                .as_ref()
                .map(|h| h.first_task_waits(&verify::fault_windows(&infra_events)).as_millis() as u64),
            wire_attempts,
            wire_gap,
            passed,
            error: error.map(|e| e.to_string()),
            faults: plan.fault_descriptions(),
            fault_rules: plan.faults.rules,
            infra_events,
            checks,
            observations,
            worker_events,
            call_events,
            history: histories,
            backlog,
        }
    }
}

impl ScenarioReport {
    /// Whether its histories are of the harness's own workflows, which `chaos replay` replays
    /// (a user's workflow runs in a worker the report names).
    pub fn replayable(&self) -> bool {
        self.worker.is_none()
    }

    /// The report of a plan that an interruption kept from finishing (or from starting);
    /// `workflow_id` is the id it has or would have had.
    pub fn interrupted(plan: &crate::plan::Plan, workflow_id: String) -> Self {
        Self {
            name: plan.name.clone(),
            description: plan.description.clone(),
            source: plan.source.clone(),
            weight: plan.weight,
            workflow: plan.workflow.kind().into(),
            worker: None,
            workflow_id,
            run_id: None,
            outcome: None,
            result: None,
            attempts: BTreeMap::new(),
            attempts_at_least: Vec::new(),
            duration_ms: None,
            verdict: Verdict::Interrupted,
            wall_ms: None,
            waited_ms: None,
            first_task_wait_ms: None,
            wire_attempts: Vec::new(),
            wire_gap: None,
            passed: false,
            error: Some("interrupted before it finished; not verified".into()),
            link: None,
            faults: plan.fault_descriptions(),
            fault_rules: plan.faults.rules.clone(),
            infra_events: Vec::new(),
            checks: Vec::new(),
            observations: Observations::default(),
            worker_events: Vec::new(),
            call_events: Vec::new(),
            history: None,
            backlog: Vec::new(),
        }
    }
}

/// A check with its UI link.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The check.
    #[serde(flatten)]
    pub check: Check,
    /// Link to the event in the Web UI, when there is evidence and a UI.
    pub link: Option<String>,
}

/// The formats a report is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// `report.json`, machine-readable.
    Json,
    /// `report.md`, for people and logs.
    Markdown,
    /// `junit.xml`, for CI systems.
    Junit,
    /// `index.html`, a self-contained page with a timeline per scenario.
    Html,
}

impl ReportFormat {
    /// Every format, in the order they are written.
    pub const ALL: [ReportFormat; 4] = [
        ReportFormat::Json,
        ReportFormat::Markdown,
        ReportFormat::Junit,
        ReportFormat::Html,
    ];

    /// File name inside the run's folder.
    pub fn file_name(self) -> &'static str {
        match self {
            ReportFormat::Json => "report.json",
            ReportFormat::Markdown => "report.md",
            ReportFormat::Junit => "junit.xml",
            ReportFormat::Html => "index.html",
        }
    }

    /// Renders the report.
    pub fn render(self, report: &RunReport) -> String {
        match self {
            ReportFormat::Json => json::render(report),
            ReportFormat::Markdown => markdown::render(report),
            ReportFormat::Junit => junit::render(report),
            ReportFormat::Html => html::render(report),
        }
    }
}

/// Writes every format under `<root>/<run-id>/`, each scenario's raw histories (root, children
/// and backlog, for `chaos replay`) under `<root>/<run-id>/histories/`, and points `<root>/latest`
/// at the folder.
pub fn write_all(root: &Path, report: &RunReport) -> std::io::Result<PathBuf> {
    let dir = root.join(&report.head.run_id);
    std::fs::create_dir_all(&dir)?;
    for format in ReportFormat::ALL {
        std::fs::write(dir.join(format.file_name()), format.render(report))?;
    }
    // The harness's own workflows' histories, which `chaos replay` replays; those of the user's
    // workflows beside them, for the user's own SDK's replayer.
    let raw = dir.join(RAW_HISTORIES_DIR);
    for s in &report.scenarios {
        let folder = if s.replayable() {
            raw.clone()
        } else {
            raw.join(USER_HISTORIES_DIR)
        };
        for facts in s.history.iter().chain(&s.backlog).flat_map(Histories::all) {
            facts.write_raw(&folder)?;
        }
    }
    let latest = root.join("latest");
    let _ = std::fs::remove_file(&latest);
    #[cfg(unix)]
    std::os::unix::fs::symlink(&report.head.run_id, &latest)?;
    Ok(dir)
}

impl RunReport {
    /// Whether every scenario passed.
    pub fn passed(&self) -> bool {
        self.summary.all_passed()
    }

    /// `PASSED`, `FAILED` or `INTERRUPTED`, for titles.
    pub fn verdict(&self) -> &'static str {
        self.summary.verdict(self.interrupted_by.is_some())
    }
}

/// Link to one event of a workflow run's history in the Web UI.
pub fn event_link(workflow_link: &str, event_id: i64) -> String {
    format!("{workflow_link}/events/{event_id}")
}

/// The runs as a Markdown list of execution links, like the original project's README.
pub fn demo_links(report: &RunReport) -> String {
    let mut out = String::from("## Demo executions\n\n");
    for s in &report.scenarios {
        let verdict = match s.verdict {
            Verdict::Passed => "",
            Verdict::Failed => " — **FAILED**",
            Verdict::Interrupted => " — **INTERRUPTED**",
        };
        let title = format!(
            "{} ({})",
            s.name,
            s.outcome.map_or_else(|| "not run".into(), |o| o.to_string())
        );
        match &s.link {
            Some(link) => out.push_str(&format!("- [{title}]({link}) — {}{verdict}\n", s.description)),
            None => out.push_str(&format!("- {title} `{}` — {}{verdict}\n", s.workflow_id, s.description)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Verdict, score};

    #[test]
    fn the_score_is_the_weighted_share_of_finished_scenarios_that_passed() {
        use Verdict::{Failed, Interrupted, Passed};
        assert_eq!(score([(Passed, 1.0), (Failed, 1.0)]), Some(50.0));
        assert_eq!(score([(Passed, 3.0), (Failed, 1.0), (Interrupted, 5.0)]), Some(75.0));
        assert_eq!(score([(Interrupted, 1.0)]), None);
        assert_eq!(score([]), None);
    }
}
