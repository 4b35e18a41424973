//! The load report: throughput, latency percentiles, attempts, faults, the account of every
//! workflow (lost or stuck ones fail the run), and the harness's resources over the run. Written
//! as `load.json`, `load.md`, `load.html`.

use super::{
    LoadSettings,
    samples::{Growth, Samples},
    tally::{Latency, Problems, Tally},
};
use crate::{
    fleet::WorkerEvent,
    history::CloseStatus,
    infra::{InfraEvent, InfraOutcome},
    report::RunHead,
    wait::StopSignal,
};
use minijinja::{Environment, context};
use serde::Serialize;
use std::{collections::BTreeMap, fmt::Write, path::Path, time::Duration};

const TEMPLATE: &str = include_str!("load.html");

/// Everything a load run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Which run, when, where.
    #[serde(flatten)]
    pub head: RunHead,
    /// The run's shape.
    pub settings: LoadSettings,
    /// Wall time of the load, from its start to the last workflow accounted for.
    pub duration_ms: u64,
    /// Workflows started.
    pub started: u64,
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
    /// The first stuck workflows, by id.
    pub stuck_workflows: Vec<String>,
    /// Attempts per activity type, from history.
    pub attempts: BTreeMap<String, u64>,
    /// Faults injected (attempts the seed fired on), by kind.
    pub faults_injected: BTreeMap<String, u64>,
    /// Attempts that failed without a seeded fault while infrastructure faults ran (a worker
    /// killed, cut off or restarted under them); without infrastructure faults these are
    /// mismatches.
    pub attempts_failed_by_infra: u64,
    /// Attempts where the seed's schedule and the history disagree (should be none).
    pub fault_mismatches: Problems,
    /// Problems starting or reading workflows.
    pub errors: Problems,
    /// What each infrastructure fault did during the run.
    pub infra_events: Vec<InfraEvent>,
    /// The load's worker processes started and stopped (with --workers or faults on workers).
    pub worker_events: Vec<WorkerEvent>,
    /// CPU seconds of the harness process (runner, proxies and in-process worker) during the run.
    pub harness_cpu_s: Option<f64>,
    /// CPU seconds of the server process during the run, when the harness owns it.
    pub server_cpu_s: Option<f64>,
    /// The harness's peak resident memory (`VmHWM`), in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// The harness's resident memory after warm-up against at the end of the starting.
    pub rss_growth: Option<Growth>,
    /// The harness's resources over the run.
    pub samples: Samples,
    /// The signal that ended the starting early, if one did.
    pub interrupted: Option<StopSignal>,
    /// True when nothing was lost or stuck, every fault is accounted for, and the load was not
    /// interrupted.
    pub passed: bool,
}

pub(super) fn build(
    head: RunHead,
    settings: &LoadSettings,
    wall: Duration,
    started: u64,
    tally: Tally,
    visibility: Result<BTreeMap<String, u64>, temporalio_client::errors::ClientError>,
    samples: Samples,
) -> LoadReport {
    let mut errors = tally.errors.clone();
    let (visibility, lost) = match visibility {
        Ok(v) => {
            let seen: u64 = v.values().sum();
            (v, started.saturating_sub(seen))
        }
        Err(e) => {
            errors.push(format!("visibility count failed: {e}"));
            (BTreeMap::new(), started)
        }
    };
    let stuck = tally.stuck_count();
    // The span the workflows were being started over: the warm-up and the end are read within it.
    let starting = samples
        .samples
        .iter()
        .rev()
        .find(|s| s.started < started)
        .map_or(wall.as_secs_f64(), |s| s.at_s);
    let passed = lost == 0 && stuck == 0 && tally.mismatches.is_empty() && errors.is_empty() && started > 0;
    LoadReport {
        head,
        settings: settings.clone(),
        duration_ms: wall.as_millis() as u64,
        started,
        throughput_per_s: tally.closed() as f64 / wall.as_secs_f64().max(0.001),
        latency_ms: tally.latency(),
        visibility,
        outcomes: tally.outcomes.clone(),
        lost,
        stuck,
        stuck_workflows: tally.stuck.first.clone(),
        attempts: tally.attempts.clone(),
        faults_injected: BTreeMap::from([("error LoadFault".to_owned(), tally.fired)]),
        attempts_failed_by_infra: tally.failed_by_infra,
        fault_mismatches: tally.mismatches,
        errors,
        infra_events: Vec::new(),
        worker_events: Vec::new(),
        harness_cpu_s: None,
        server_cpu_s: None,
        peak_rss_bytes: None,
        rss_growth: samples.growth_after_warmup(starting),
        samples,
        interrupted: None,
        passed,
    }
}

impl LoadReport {
    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let verdict = match (self.passed, self.interrupted) {
            (_, Some(signal)) => format!("INTERRUPTED by {signal}"),
            (true, None) => "PASSED".into(),
            (false, None) => "FAILED".into(),
        };
        let s = &self.settings;
        let _ = writeln!(out, "# temporal-chaos load `{}`: {verdict}\n", s.run_id);
        let _ = writeln!(
            out,
            "{} workflows ({:?} mix){}, fault rate {}, seed {}, concurrency {}{}, {}\n",
            self.started,
            s.mix,
            match (s.duration, self.interrupted) {
                (Some(d), None) => format!(" over {}", humantime::format_duration(d)),
                (Some(d), Some(_)) => format!(" (of a planned {}, stopped early)", humantime::format_duration(d)),
                (None, _) => String::new(),
            },
            s.fault_rate,
            s.seed,
            s.concurrency,
            s.rate.map(|r| format!(", rate {r}/s")).unwrap_or_default(),
            match s.workers {
                Some(n) => format!("{n} worker process(es) behind the proxies"),
                None => "in-process worker".into(),
            }
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
                "attempts failed by infrastructure faults",
                self.attempts_failed_by_infra.to_string(),
            ),
            (
                "fault schedule vs history mismatches",
                self.fault_mismatches.count.to_string(),
            ),
            ("harness peak memory", mib(self.peak_rss_bytes)),
            (
                "harness memory after warm-up / at the end",
                match &self.rss_growth {
                    Some(g) => format!(
                        "{} / {} ({:+.1}%)",
                        mib(Some(g.warm_rss_bytes)),
                        mib(Some(g.end_rss_bytes)),
                        g.percent
                    ),
                    None => "- (too few samples)".into(),
                },
            ),
            ("harness file descriptors / tasks (max)", {
                let samples = &self.samples.samples;
                let fds = samples.iter().filter_map(|s| s.open_fds).max();
                let tasks = samples.iter().map(|s| s.tasks).max();
                format!("{} / {}", fds.map_or("-".into(), |n| n.to_string()), tasks.unwrap_or(0))
            }),
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
        for e in &self.worker_events {
            let _ = writeln!(out, "- worker {}: {}", e.worker, e.what);
        }
        for (what, problems) in [("mismatch", &self.fault_mismatches), ("error", &self.errors)] {
            for line in &problems.first {
                let _ = writeln!(out, "- {what}: {line}");
            }
            if problems.count > problems.first.len() as u64 {
                let _ = writeln!(out, "- ... {} {what}s in all", problems.count);
            }
        }
        for id in &self.stuck_workflows {
            let _ = writeln!(out, "- stuck: {id}");
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
                t.render(context! { r => self, table => self.markdown(), faults => faults, charts => self.charts() })
            })
            .unwrap_or_else(|e| format!("<!doctype html><p>cannot render: {e}</p>"));
        std::fs::write(dir.join("load.html"), html)
    }
}

/// An infrastructure fault's window on a chart.
#[derive(Debug, Serialize)]
struct Mark {
    x: f64,
    width: f64,
    title: String,
}

/// One line chart of the load page: a figure over the run.
#[derive(Debug, Serialize)]
struct Chart {
    title: &'static str,
    width: u32,
    height: u32,
    /// SVG polyline points.
    points: String,
    /// The infrastructure faults' windows, shaded.
    marks: Vec<Mark>,
    /// Seconds the chart spans.
    span_s: f64,
    min: String,
    max: String,
    last: String,
}

impl Chart {
    const WIDTH: u32 = 900;
    const HEIGHT: u32 = 90;

    /// A chart of `values` (seconds into the run, value), labelled by `label`, with `windows`
    /// (from, to in seconds, what) shaded; `None` with fewer than two values.
    fn of(
        title: &'static str,
        values: &[(f64, f64)],
        windows: &[(f64, f64, String)],
        label: impl Fn(f64) -> String,
    ) -> Option<Self> {
        if values.len() < 2 {
            return None;
        }
        let span = values.last()?.0.max(f64::EPSILON);
        let (min, max) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &(_, v)| (lo.min(v), hi.max(v)));
        // From zero, so that a flat line looks flat rather than magnified noise.
        let top = max.max(f64::EPSILON);
        let (w, h) = (f64::from(Self::WIDTH), f64::from(Self::HEIGHT) - 4.0);
        let points = values
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", t / span * w, 2.0 + h - v / top * h))
            .collect::<Vec<_>>()
            .join(" ");
        let marks = windows
            .iter()
            .filter(|(from, _, _)| *from <= span)
            .map(|(from, to, what)| Mark {
                x: from / span * w,
                width: ((to.min(span) - from) / span * w).max(1.0),
                title: what.clone(),
            })
            .collect();
        Some(Self {
            title,
            width: Self::WIDTH,
            height: Self::HEIGHT,
            points,
            marks,
            span_s: span,
            min: label(min),
            max: label(max),
            last: label(values.last()?.1),
        })
    }
}

impl LoadReport {
    /// The charts of the load page: the harness's memory, descriptors and tasks, the workers'
    /// memory, and workflows closed per second.
    fn charts(&self) -> Vec<Chart> {
        let samples = &self.samples.samples;
        let series = |f: &dyn Fn(&super::Sample) -> Option<f64>| -> Vec<(f64, f64)> {
            samples.iter().filter_map(|s| Some((s.at_s, f(s)?))).collect()
        };
        let mib = |v: f64| format!("{:.1} MiB", v / 1_048_576.0);
        let count = |v: f64| format!("{v:.0}");
        // A last sample taken moments after the one before says nothing about a rate.
        let closed_per_s: Vec<(f64, f64)> = samples
            .windows(2)
            .filter(|w| w[1].at_s - w[0].at_s >= self.samples.every_s / 2.0)
            .map(|w| {
                let dt = (w[1].at_s - w[0].at_s).max(f64::EPSILON);
                (w[1].at_s, w[1].closed.saturating_sub(w[0].closed) as f64 / dt)
            })
            .collect();
        let windows: Vec<(f64, f64, String)> = self
            .infra_events
            .iter()
            .filter_map(|e| {
                let ms = |v: u64| v as f64 / 1000.0;
                Some((ms(e.started_ms?), ms(e.ended_ms?), e.rule.clone()))
            })
            .collect();
        let w = &windows;
        [
            Chart::of("workflows closed per second", &closed_per_s, w, |v| format!("{v:.1}")),
            Chart::of(
                "harness resident memory",
                &series(&|s| Some(s.rss_bytes? as f64)),
                w,
                mib,
            ),
            Chart::of(
                "harness open file descriptors",
                &series(&|s| Some(s.open_fds? as f64)),
                w,
                count,
            ),
            Chart::of("harness tasks", &series(&|s| Some(s.tasks as f64)), w, count),
            Chart::of(
                "worker processes' resident memory",
                &series(&|s| Some(s.workers_rss_bytes? as f64)),
                w,
                mib,
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Bytes in MiB, one decimal.
fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-".into(), |b| format!("{:.1} MiB", b as f64 / 1_048_576.0))
}

fn fmt_map<K: std::fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}
