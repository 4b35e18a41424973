//! What the store keeps of a run, read from the run's report folder: `report.json` and
//! `index.html` (`chaos run`) or `load.json` and `load.html` (`chaos load`). The live run and
//! `chaos store push` record a folder the same way, so a run pushed later is the run recorded.

use crate::{
    plan::Outcome,
    report::{self, ReportFormat, RunHead, Summary, Verdict},
};
use flate2::{Compression, write::GzEncoder};
use serde::{Deserialize, Serialize};
use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
};

/// The load report's files (written by `chaos load`).
const LOAD_JSON: &str = "load.json";
const LOAD_HTML: &str = "load.html";

/// Why a folder could not be read as a run.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The folder does not exist.
    #[error("{}: no such folder", .0.display())]
    Missing(PathBuf),
    /// The folder holds neither report.
    #[error(
        "{}: not a run's report folder: it has no report.json (written by chaos run) or load.json (written by chaos load)",
        .0.display()
    )]
    NotARun(PathBuf),
    /// A report file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A report file is not one temporal-chaos wrote.
    #[error("{}: not a temporal-chaos report: {source}", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its line and column.
        #[source]
        source: serde_json::Error,
    },
    /// `started_at` is not a time.
    #[error("{}: `started_at` is not an RFC 3339 time: `{value}`", .path.display())]
    StartedAt {
        /// The file.
        path: PathBuf,
        /// The value.
        value: String,
    },
}

/// Whether a recorded run was a scenario run or a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunKind {
    /// `chaos run` or `chaos demo`.
    Run,
    /// `chaos load`.
    Load,
}

impl RunKind {
    /// Its name in the store.
    fn name(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Load => "load",
        }
    }
}

/// A run's own row in the store: what the runs list shows of it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunSummary {
    /// The run's id (its report folder's name).
    pub run_id: String,
    /// `run` (chaos run or chaos demo) or `load` (chaos load).
    pub kind: String,
    /// When it started, Unix milliseconds.
    pub started_at_ms: i64,
    /// Its wall time.
    pub duration_ms: i64,
    /// `PASSED`, `FAILED` or `INTERRUPTED`.
    pub verdict: String,
    /// Scenarios (a load: workflows started).
    pub total: i32,
    /// Scenarios passed (a load: workflows neither lost nor stuck).
    pub passed: i32,
    /// Scenarios failed (a load: workflows lost or stuck).
    pub failed: i32,
    /// Scenarios interrupted.
    pub interrupted: i32,
    /// The resilience score: see [`report::score`].
    pub score: Option<f64>,
    /// Target kind.
    pub target: String,
    /// Frontend address.
    pub address: String,
    /// Namespace.
    pub namespace: String,
    /// Web UI base URL.
    pub ui_url: Option<String>,
    /// Server version.
    pub server_version: String,
    /// The temporal-chaos version that ran it (`unknown` for reports older than the store).
    pub harness_version: String,
    /// One line for the runs list.
    pub headline: String,
}

/// One run as the store keeps it.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// Its row.
    pub summary: RunSummary,
    /// The JSON report, gzip.
    pub report_json_gz: Vec<u8>,
    /// The HTML report, gzip.
    pub report_html_gz: Option<Vec<u8>>,
    /// The scenarios, in the run's order.
    pub scenarios: Vec<ScenarioRecord>,
}

/// One scenario's result as the store keeps it.
#[derive(Debug, Clone)]
pub struct ScenarioRecord {
    /// Scenario name: what its results across runs share.
    pub name: String,
    /// Its file.
    pub source: String,
    /// Workflow type.
    pub workflow: String,
    /// `passed`, `failed` or `interrupted`.
    pub verdict: &'static str,
    /// Its weight in the score.
    pub weight: f64,
    /// How the workflow ended.
    pub outcome: Option<String>,
    /// Attempts per activity type, as JSON.
    pub attempts: String,
    /// Workflow start to close.
    pub duration_ms: Option<i64>,
    /// Its wall time in the harness.
    pub wall_ms: Option<i64>,
    /// The checks that did not hold, as a JSON array of `{name, expected, observed, link}`.
    pub failed_checks: String,
    /// What kept it from running or being verified.
    pub error: Option<String>,
    /// Workflow id.
    pub workflow_id: String,
    /// Run id of the workflow.
    pub workflow_run_id: Option<String>,
    /// The execution in the Temporal Web UI.
    pub link: Option<String>,
}

/// What the store reads of `report.json`.
#[derive(Deserialize)]
struct RunJson {
    #[serde(flatten)]
    head: RunHead,
    duration_ms: u64,
    interrupted_by: Option<String>,
    summary: Summary,
    scenarios: Vec<ScenarioJson>,
}

#[derive(Deserialize)]
struct ScenarioJson {
    name: String,
    source: String,
    workflow: String,
    #[serde(default = "one")]
    weight: f64,
    verdict: Verdict,
    outcome: Option<Outcome>,
    attempts: BTreeMap<String, u32>,
    duration_ms: Option<u64>,
    wall_ms: Option<u64>,
    error: Option<String>,
    workflow_id: String,
    run_id: Option<String>,
    link: Option<String>,
    checks: Vec<serde_json::Value>,
}

fn one() -> f64 {
    1.0
}

/// What the store reads of `load.json`.
#[derive(Deserialize)]
struct LoadJson {
    #[serde(flatten)]
    head: RunHead,
    duration_ms: u64,
    started: u64,
    throughput_per_s: f64,
    latency_ms: LatencyJson,
    lost: u64,
    stuck: u64,
    passed: bool,
}

#[derive(Deserialize)]
struct LatencyJson {
    p50: u64,
    p99: u64,
}

impl RunRecord {
    /// Reads the run whose report folder is `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self, RecordError> {
        let run_json = dir.join(ReportFormat::Json.file_name());
        let load_json = dir.join(LOAD_JSON);
        if !dir.is_dir() {
            Err(RecordError::Missing(dir.to_owned()))
        } else if run_json.is_file() {
            let html = read_optional(&dir.join(ReportFormat::Html.file_name()))?;
            Self::of_run(&run_json, &read(&run_json)?, html.as_deref())
        } else if load_json.is_file() {
            let html = read_optional(&dir.join(LOAD_HTML))?;
            Self::of_load(&load_json, &read(&load_json)?, html.as_deref())
        } else {
            Err(RecordError::NotARun(dir.to_owned()))
        }
    }

    /// The run of `report.json` (its text `json`, read from `path`) and its `index.html`.
    pub fn of_run(path: &Path, json: &[u8], html: Option<&[u8]>) -> Result<Self, RecordError> {
        let run: RunJson = parse(path, json)?;
        let summary = run.summary;
        // Reports written before the score was kept get it worked out the same way.
        let score = summary
            .score
            .or_else(|| report::score(run.scenarios.iter().map(|s| (s.verdict, s.weight))));
        let scenarios: Vec<ScenarioRecord> = run.scenarios.into_iter().map(ScenarioRecord::from).collect();
        Ok(Self {
            summary: RunSummary {
                kind: RunKind::Run.name().into(),
                started_at_ms: started_at_ms(path, &run.head.started_at)?,
                duration_ms: run.duration_ms as i64,
                verdict: summary.verdict(run.interrupted_by.is_some()).into(),
                total: summary.total as i32,
                passed: summary.passed as i32,
                failed: summary.failed as i32,
                interrupted: summary.interrupted as i32,
                score,
                headline: format!("{} of {} scenarios passed", summary.passed, summary.total),
                ..RunSummary::headed(run.head)
            },
            report_json_gz: gzip(json),
            report_html_gz: html.map(gzip),
            scenarios,
        })
    }

    /// The load of `load.json` (its text `json`, read from `path`) and its `load.html`.
    pub fn of_load(path: &Path, json: &[u8], html: Option<&[u8]>) -> Result<Self, RecordError> {
        let load: LoadJson = parse(path, json)?;
        let unaccounted = load.lost + load.stuck;
        Ok(Self {
            summary: RunSummary {
                kind: RunKind::Load.name().into(),
                started_at_ms: started_at_ms(path, &load.head.started_at)?,
                duration_ms: load.duration_ms as i64,
                verdict: if load.passed { "PASSED" } else { "FAILED" }.into(),
                total: load.started as i32,
                passed: load.started.saturating_sub(unaccounted) as i32,
                failed: unaccounted as i32,
                headline: format!(
                    "{} workflows · {:.1}/s · p50 {} ms · p99 {} ms · {} lost · {} stuck",
                    load.started,
                    load.throughput_per_s,
                    load.latency_ms.p50,
                    load.latency_ms.p99,
                    load.lost,
                    load.stuck
                ),
                ..RunSummary::headed(load.head)
            },
            report_json_gz: gzip(json),
            report_html_gz: html.map(gzip),
            scenarios: Vec::new(),
        })
    }
}

impl RunSummary {
    /// A summary with `head`'s fields and nothing else yet.
    fn headed(head: RunHead) -> Self {
        Self {
            run_id: head.run_id,
            kind: String::new(),
            started_at_ms: 0,
            duration_ms: 0,
            verdict: String::new(),
            total: 0,
            passed: 0,
            failed: 0,
            interrupted: 0,
            score: None,
            target: head.target,
            address: head.address,
            namespace: head.namespace,
            ui_url: head.ui_url,
            server_version: head.server_version,
            harness_version: head.harness_version,
            headline: String::new(),
        }
    }
}

impl From<ScenarioJson> for ScenarioRecord {
    fn from(s: ScenarioJson) -> Self {
        let failed_checks: Vec<serde_json::Value> = s
            .checks
            .into_iter()
            .filter(|c| c["passed"] == false)
            .map(|c| {
                serde_json::json!({
                    "name": c["name"], "expected": c["expected"], "observed": c["observed"], "link": c["link"],
                })
            })
            .collect();
        Self {
            name: s.name,
            source: s.source,
            workflow: s.workflow,
            verdict: verdict_name(s.verdict),
            weight: s.weight,
            outcome: s.outcome.map(|o| o.to_string()),
            attempts: serde_json::to_string(&s.attempts).unwrap_or_default(),
            duration_ms: s.duration_ms.map(|d| d as i64),
            wall_ms: s.wall_ms.map(|d| d as i64),
            failed_checks: serde_json::Value::from(failed_checks).to_string(),
            error: s.error,
            workflow_id: s.workflow_id,
            workflow_run_id: s.run_id,
            link: s.link,
        }
    }
}

/// A scenario verdict's name in the store (as in `report.json`).
fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Passed => "passed",
        Verdict::Failed => "failed",
        Verdict::Interrupted => "interrupted",
    }
}

fn read(path: &Path) -> Result<Vec<u8>, RecordError> {
    std::fs::read(path).map_err(|source| RecordError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, RecordError> {
    if path.is_file() { read(path).map(Some) } else { Ok(None) }
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, json: &[u8]) -> Result<T, RecordError> {
    serde_json::from_slice(json).map_err(|source| RecordError::Malformed {
        path: path.to_owned(),
        source,
    })
}

fn started_at_ms(path: &Path, value: &str) -> Result<i64, RecordError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| RecordError::StartedAt {
            path: path.to_owned(),
            value: value.to_owned(),
        })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 6), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_report_names_the_file_line_and_field() {
        let path = Path::new("reports/x/report.json");
        let e = RunRecord::of_run(path, br#"{"run_id": "x", "started_at": 5}"#, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("reports/x/report.json: not a temporal-chaos report: "),
            "{e}"
        );
        assert!(e.contains("line 1"), "{e}");
        let e = RunRecord::from_dir(Path::new("/nonexistent-run"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "/nonexistent-run: no such folder");
        let e = RunRecord::from_dir(Path::new("/")).unwrap_err().to_string();
        assert!(e.contains("not a run's report folder"), "{e}");
    }
}
