//! The load report: throughput, latency percentiles, attempts, faults, and the account of every
//! workflow (lost or stuck ones fail the run). Written as `load.json`, `load.md`, `load.html`.

use super::{LoadSettings, Started, account_faults, load_faults};
use crate::{
    history::{CloseStatus, Histories, HistoryError},
    infra::{InfraEvent, InfraOutcome},
    report::{RunHead, nearest_rank},
};
use minijinja::{Environment, context};
use serde::Serialize;
use std::{collections::BTreeMap, fmt::Write, path::Path, time::Duration};

const TEMPLATE: &str = include_str!("load.html");

/// Latency percentiles in milliseconds, workflow start to close (server time).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Slowest.
    pub max: u64,
}

/// Everything a load run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Which run, when, where.
    #[serde(flatten)]
    pub head: RunHead,
    /// The run's shape.
    pub settings: LoadSettings,
    /// Wall time from the first start to the last close.
    pub duration_ms: u64,
    /// Workflows started.
    pub started: usize,
    /// Closed workflows per second over the run.
    pub throughput_per_s: f64,
    /// Start-to-close latency.
    pub latency_ms: Latency,
    /// Workflows by status, as visibility counts them.
    pub visibility: BTreeMap<String, u64>,
    /// Workflows by how their history ends.
    pub outcomes: BTreeMap<CloseStatus, u64>,
    /// Started but unknown to visibility.
    pub lost: u64,
    /// Not closed as completed or failed by their deadline (running, timed out, terminated).
    pub stuck: u64,
    /// Attempts per activity type, from history.
    pub attempts: BTreeMap<String, u64>,
    /// Faults injected (attempts the seed fired on), by kind.
    pub faults_injected: BTreeMap<String, u64>,
    /// Attempts where the seed's schedule and the history disagree (should be none).
    pub fault_mismatches: Vec<String>,
    /// Problems starting or reading workflows.
    pub errors: Vec<String>,
    /// What each infrastructure fault did during the run.
    pub infra_events: Vec<InfraEvent>,
    /// CPU seconds of the harness process (runner and in-process worker) during the run.
    pub harness_cpu_s: Option<f64>,
    /// CPU seconds of the server process during the run, when the harness owns it.
    pub server_cpu_s: Option<f64>,
    /// True when nothing was lost or stuck and every fault is accounted for.
    pub passed: bool,
}

pub(super) fn build(
    head: RunHead,
    settings: &LoadSettings,
    wall: Duration,
    started: &[Started],
    start_errors: &[String],
    visibility: Result<BTreeMap<String, u64>, temporalio_client::errors::ClientError>,
    histories: &[Result<Histories, HistoryError>],
) -> LoadReport {
    let faults = &load_faults(settings);
    let mut errors: Vec<String> = start_errors.to_vec();
    let (mut outcomes, mut attempts) = (BTreeMap::new(), BTreeMap::new());
    let (mut fired, mut mismatches, mut latencies) = (0, Vec::new(), Vec::new());
    for h in histories {
        let h = match h {
            Ok(h) => h,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let status = h.root.close.as_ref().map_or(CloseStatus::Running, |c| c.status());
        *outcomes.entry(status).or_insert(0u64) += 1;
        for act in h.activities() {
            *attempts.entry(act.activity_type.clone()).or_insert(0u64) += u64::from(act.attempts);
        }
        let (n, mut m) = account_faults(faults, h);
        fired += n;
        mismatches.append(&mut m);
        if let Some(d) = h.root.duration() {
            latencies.push(d.as_millis() as u64);
        }
    }
    if latencies.is_empty() {
        latencies = started.iter().map(|s| s.latency.as_millis() as u64).collect();
    }
    let (visibility, lost) = match visibility {
        Ok(v) => {
            let seen: u64 = v.values().sum();
            let lost = (started.len() as u64).saturating_sub(seen);
            (v, lost)
        }
        Err(e) => {
            errors.push(format!("visibility count failed: {e}"));
            (BTreeMap::new(), started.len() as u64)
        }
    };
    let stuck = outcomes
        .iter()
        .filter(|(k, _)| !matches!(k, CloseStatus::Completed | CloseStatus::Failed))
        .map(|(_, n)| n)
        .sum();
    let first_start = started.iter().map(|s| s.began).min();
    let last_close = started.iter().map(|s| s.began + s.latency).max();
    let span = first_start.zip(last_close).map_or(wall, |(a, b)| b - a);
    let passed = lost == 0 && stuck == 0 && mismatches.is_empty() && errors.is_empty() && !started.is_empty();
    LoadReport {
        head,
        settings: settings.clone(),
        duration_ms: span.as_millis() as u64,
        started: started.len(),
        throughput_per_s: started.len() as f64 / span.as_secs_f64().max(0.001),
        latency_ms: percentiles(latencies),
        visibility,
        outcomes,
        lost,
        stuck,
        attempts,
        faults_injected: BTreeMap::from([("error LoadFault".to_owned(), fired)]),
        fault_mismatches: mismatches.into_iter().take(20).collect(),
        errors: errors.into_iter().take(20).collect(),
        infra_events: Vec::new(),
        harness_cpu_s: None,
        server_cpu_s: None,
        passed,
    }
}

fn percentiles(mut ms: Vec<u64>) -> Latency {
    ms.sort_unstable();
    let at = |q: f64| nearest_rank(&ms, q).unwrap_or(0);
    Latency {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: *ms.last().unwrap_or(&0),
    }
}

impl LoadReport {
    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let s = &self.settings;
        let _ = writeln!(out, "# temporal-chaos load `{}`: {verdict}\n", s.run_id);
        let _ = writeln!(
            out,
            "{} workflows ({:?} mix), fault rate {}, seed {}, concurrency {}{}\n",
            self.started,
            s.mix,
            s.fault_rate,
            s.seed,
            s.concurrency,
            s.rate.map(|r| format!(", rate {r}/s")).unwrap_or_default()
        );
        let _ = writeln!(out, "| figure | value |\n|---|---|");
        let cpu = |c: Option<f64>| c.map_or_else(|| "-".into(), |c| format!("{c:.1} s"));
        let per_1000 = |c: Option<f64>| {
            c.map_or_else(
                || "-".into(),
                |c| format!("{:.1} s", c * 1000.0 / self.started.max(1) as f64),
            )
        };
        for (k, v) in [
            ("throughput", format!("{:.1} workflows/s", self.throughput_per_s)),
            ("duration", format!("{:.1} s", self.duration_ms as f64 / 1000.0)),
            ("latency p50 / p90 / p99 / max", {
                let l = &self.latency_ms;
                format!("{} / {} / {} / {} ms", l.p50, l.p90, l.p99, l.max)
            }),
            ("lost", self.lost.to_string()),
            ("stuck", self.stuck.to_string()),
            ("outcomes", fmt_map(&self.outcomes)),
            ("visibility", fmt_map(&self.visibility)),
            ("attempts", fmt_map(&self.attempts)),
            ("faults injected", fmt_map(&self.faults_injected)),
            (
                "fault schedule vs history mismatches",
                self.fault_mismatches.len().to_string(),
            ),
            (
                "harness CPU (per 1000 workflows)",
                format!("{} ({})", cpu(self.harness_cpu_s), per_1000(self.harness_cpu_s)),
            ),
            (
                "server CPU (per 1000 workflows)",
                format!("{} ({})", cpu(self.server_cpu_s), per_1000(self.server_cpu_s)),
            ),
        ] {
            let _ = writeln!(out, "| {k} | {v} |");
        }
        for e in &self.infra_events {
            let what = match &e.outcome {
                InfraOutcome::Applied(done) => format!(
                    "{done} (from {} ms to {} ms)",
                    e.started_ms.unwrap_or(0),
                    e.ended_ms.unwrap_or(0)
                ),
                InfraOutcome::NotTriggered(why) | InfraOutcome::Failed(why) => format!("FAILED: {why}"),
            };
            let _ = writeln!(out, "- infra {}: {what}", e.rule);
        }
        for line in self.fault_mismatches.iter().chain(&self.errors) {
            let _ = writeln!(out, "- {line}");
        }
        out
    }

    /// Writes `load.json`, `load.md` and `load.html` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("load.json"),
            serde_json::to_string_pretty(self).expect("serialisable"),
        )?;
        std::fs::write(dir.join("load.md"), self.markdown())?;
        let mut env = Environment::new();
        env.add_template("load.html", TEMPLATE)
            .expect("the bundled template parses");
        let html = env
            .get_template("load.html")
            .and_then(|t| {
                let faults: u64 = self.faults_injected.values().sum();
                t.render(context! { r => self, table => self.markdown(), faults => faults })
            })
            .unwrap_or_else(|e| format!("<!doctype html><p>cannot render: {e}</p>"));
        std::fs::write(dir.join("load.html"), html)
    }
}

fn fmt_map<K: std::fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}
