//! Run reports: one model, several formats, each in its own file.
//!
//! Every scenario row carries the workflow id, run id and a link to the Temporal Web UI; failed
//! checks link to the history event that shows the problem.

mod html;
mod json;
mod junit;
mod markdown;
pub mod webhook;

use crate::{
    faults::FaultRule,
    history::{Histories, RAW_HISTORIES_DIR},
    infra::InfraEvent,
    plan::Outcome,
    runner::Execution,
    target::ui_link,
    verify::{self, Check},
};
use serde::Serialize;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Unique id of the run; names the report folder and suffixes workflow ids.
    pub run_id: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// Wall time of the whole run, cluster start-up included.
    pub duration_ms: u64,
    /// `embedded` or `remote`.
    pub target: String,
    /// Frontend address.
    pub address: String,
    /// Namespace.
    pub namespace: String,
    /// Web UI base URL, when known.
    pub ui_url: Option<String>,
    /// Server version reported by the frontend.
    pub server_version: String,
    /// Task queue the scenarios ran on.
    pub task_queue: String,
    /// Seed override (`--seed`), if any; otherwise each scenario's own seed applies.
    pub seed: Option<u64>,
    /// Counts.
    pub summary: Summary,
    /// One entry per scenario, in file order.
    pub scenarios: Vec<ScenarioReport>,
}

/// Pass/fail counts.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Summary {
    /// Scenarios run.
    pub total: usize,
    /// Scenarios whose every check held.
    pub passed: usize,
    /// The others.
    pub failed: usize,
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
    /// `orchestration` or `resilient`.
    pub workflow: String,
    /// Workflow id.
    pub workflow_id: String,
    /// Run id, once started.
    pub run_id: Option<String>,
    /// Outcome read from history.
    pub outcome: Option<Outcome>,
    /// Result value, when completed.
    pub result: Option<serde_json::Value>,
    /// Attempts per activity type, from history.
    pub attempts: BTreeMap<String, u32>,
    /// Workflow start to close, from history.
    pub duration_ms: Option<u64>,
    /// True when every check held and nothing went wrong.
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
    /// The facts read from the histories (root and children).
    pub history: Option<Histories>,
}

impl ScenarioReport {
    /// The report of one execution and its verified checks; `ui` is the Web UI base URL, for
    /// links to the workflow and to the events that checks point at.
    pub fn new(execution: Execution, checks: Vec<Check>, ui: Option<&str>, namespace: &str) -> Self {
        let Execution {
            plan,
            workflow_id,
            run_id,
            histories,
            infra_events,
            error,
        } = execution;
        let link_to = |workflow_id: &str, run_id: &str| ui.map(|ui| ui_link(ui, namespace, workflow_id, run_id));
        let mut attempts = BTreeMap::new();
        for act in histories.iter().flat_map(Histories::activities) {
            *attempts.entry(act.activity_type.clone()).or_default() += act.attempts;
        }
        let checks: Vec<CheckReport> = checks
            .into_iter()
            .map(|check| {
                let link = check.evidence.as_ref().and_then(|ev| {
                    let run = histories.as_ref()?.all().find(|h| h.workflow_id == ev.workflow_id)?;
                    Some(event_link(&link_to(&run.workflow_id, &run.run_id)?, ev.event_id))
                });
                CheckReport { check, link }
            })
            .collect();
        Self {
            name: plan.name.clone(),
            description: plan.description.clone(),
            source: plan.source.clone(),
            workflow: plan.workflow.kind().into(),
            link: run_id.as_deref().and_then(|r| link_to(&workflow_id, r)),
            workflow_id,
            run_id,
            outcome: histories.as_ref().map(verify::outcome),
            result: histories.as_ref().and_then(verify::result_value),
            attempts,
            duration_ms: histories
                .as_ref()
                .and_then(|h| h.root.duration())
                .map(|d| d.as_millis() as u64),
            passed: error.is_none() && !checks.is_empty() && checks.iter().all(|c| c.check.passed),
            error: error.map(|e| e.to_string()),
            faults: plan
                .faults
                .rules
                .iter()
                .map(|r| r.describe())
                .chain(plan.infra.iter().map(|r| r.describe()))
                .collect(),
            fault_rules: plan.faults.rules,
            infra_events,
            checks,
            history: histories,
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

/// Writes every format under `<root>/<run-id>/`, each scenario's raw histories (root and
/// children, for `chaos replay`) under `<root>/<run-id>/histories/`, and points `<root>/latest`
/// at the folder.
pub fn write_all(root: &Path, report: &RunReport) -> std::io::Result<PathBuf> {
    let dir = root.join(&report.run_id);
    std::fs::create_dir_all(&dir)?;
    for format in ReportFormat::ALL {
        std::fs::write(dir.join(format.file_name()), format.render(report))?;
    }
    let raw = dir.join(RAW_HISTORIES_DIR);
    for facts in report
        .scenarios
        .iter()
        .flat_map(|s| &s.history)
        .flat_map(Histories::all)
    {
        facts.write_raw(&raw)?;
    }
    let latest = root.join("latest");
    let _ = std::fs::remove_file(&latest);
    #[cfg(unix)]
    std::os::unix::fs::symlink(&report.run_id, &latest)?;
    Ok(dir)
}

impl RunReport {
    /// Whether every scenario passed.
    pub fn passed(&self) -> bool {
        self.summary.failed == 0 && self.summary.total > 0
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
        let verdict = if s.passed { "" } else { " — **FAILED**" };
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
