//! The dashboard page as data: the runs list, the resilience score's trend, and per scenario a
//! strip of its latest verdicts with a duration sparkline and a flaky mark. Pure functions of
//! the rows the store gives, so they are tested without a server.

use crate::store::{ResultRow, RunRow, RunSummary};
use serde::Serialize;
use std::collections::BTreeMap;

/// Sparkline and trend geometry, in pixels.
const SPARK_WIDTH: f64 = 120.0;
const SPARK_HEIGHT: f64 = 22.0;
const TREND_WIDTH: f64 = 520.0;
const TREND_HEIGHT: f64 = 90.0;

/// Everything the page shows.
#[derive(Debug, Serialize)]
pub struct Dashboard {
    /// The store, as people read it.
    pub store: String,
    /// Runs the store holds.
    pub run_count: i64,
    /// This page of runs, newest first.
    pub runs: Vec<RunView>,
    /// Page number, from 1.
    pub page: i64,
    /// Whether older runs exist beyond this page.
    pub has_older: bool,
    /// The scenario runs the strips cover, oldest first.
    pub columns: Vec<Column>,
    /// Each scenario's strip: failing and flaky ones first.
    pub scenarios: Vec<Strip>,
    /// The score of the newest scenario runs, when any has one.
    pub trend: Option<Trend>,
}

/// A run in the list.
#[derive(Debug, Serialize)]
pub struct RunView {
    /// The stored row.
    #[serde(flatten)]
    pub row: RunRow,
    /// Start, as `YYYY-MM-DD HH:MM:SS UTC`.
    pub started: String,
    /// Wall time, e.g. `13.6 s`.
    pub duration: String,
}

/// A scenario run the strips have a cell for.
#[derive(Debug, Serialize)]
pub struct Column {
    /// Run id.
    pub run_id: String,
    /// Start.
    pub started: String,
}

/// One scenario across the latest runs.
#[derive(Debug, Serialize)]
pub struct Strip {
    /// Scenario name.
    pub name: String,
    /// One cell per column: its verdict there, or `absent`.
    pub cells: Vec<Cell>,
    /// Why it is marked flaky (its verdict flipped between runs of one temporal-chaos version).
    pub flaky: Option<String>,
    /// The duration sparkline, when it has durations.
    pub sparkline: Option<Sparkline>,
    /// Its latest verdict.
    pub latest: String,
    /// Its latest outcome.
    pub outcome: Option<String>,
    /// Its latest execution in the Temporal Web UI.
    pub link: Option<String>,
}

/// One scenario in one run.
#[derive(Debug, Serialize)]
pub struct Cell {
    /// Run id (empty when absent).
    pub run_id: String,
    /// `passed`, `failed`, `interrupted` or `absent`.
    pub verdict: String,
    /// Hover text: run, verdict, duration, failed checks.
    pub title: String,
}

/// A small line chart.
#[derive(Debug, Serialize)]
pub struct Sparkline {
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
    /// SVG polyline points.
    pub points: String,
    /// Smallest and largest value shown, e.g. `1.2 s – 5.0 s`.
    pub range: String,
    /// Where the newest point is (marked, so that one point shows).
    pub last: Option<(f64, f64)>,
}

/// The resilience score over the newest scenario runs.
#[derive(Debug, Serialize)]
pub struct Trend {
    /// The chart.
    pub line: Sparkline,
    /// One dot per run: position and hover text.
    pub dots: Vec<Dot>,
    /// The newest score.
    pub latest: f64,
    /// Change from the run before it.
    pub change: Option<f64>,
}

/// A run on the trend chart.
#[derive(Debug, Serialize)]
pub struct Dot {
    /// Position.
    pub x: f64,
    /// Position.
    pub y: f64,
    /// The run.
    pub run_id: String,
    /// Hover text.
    pub title: String,
}

/// `ms` (Unix) as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A duration for people, as the reports write it: milliseconds under a second, else seconds.
fn seconds(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// The runs list of a page.
pub fn run_views(rows: Vec<RunRow>) -> Vec<RunView> {
    rows.into_iter()
        .map(|row| RunView {
            started: utc(row.summary.started_at_ms),
            duration: seconds(row.summary.duration_ms),
            row,
        })
        .collect()
}

/// The strips of `results` (the scenario results of the newest runs, oldest run first).
pub fn strips(results: &[ResultRow]) -> (Vec<Column>, Vec<Strip>) {
    let mut columns: Vec<Column> = Vec::new();
    for r in results {
        if columns.last().is_none_or(|c| c.run_id != r.run_id) {
            columns.push(Column {
                run_id: r.run_id.clone(),
                started: utc(r.started_at_ms),
            });
        }
    }
    let column_of: BTreeMap<&str, usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.run_id.as_str(), i))
        .collect();
    let mut by_name: BTreeMap<&str, Vec<&ResultRow>> = BTreeMap::new();
    for r in results {
        by_name.entry(&r.name).or_default().push(r);
    }
    let mut strips: Vec<Strip> = by_name
        .into_iter()
        .map(|(name, rows)| {
            let mut cells: Vec<Cell> = columns
                .iter()
                .map(|_| Cell {
                    run_id: String::new(),
                    verdict: "absent".into(),
                    title: "not in this run".into(),
                })
                .collect();
            for r in &rows {
                cells[column_of[r.run_id.as_str()]] = cell(r);
            }
            let last = rows.last().expect("a name has a result");
            Strip {
                name: name.to_owned(),
                cells,
                flaky: flaky(&rows),
                sparkline: sparkline(
                    rows.iter()
                        .filter_map(|r| Some((column_of[r.run_id.as_str()], r.duration_ms? as f64)))
                        .collect(),
                    columns.len(),
                ),
                latest: last.verdict.clone(),
                outcome: last.outcome.clone(),
                link: rows.iter().rev().find_map(|r| r.link.clone()),
            }
        })
        .collect();
    // Failing now first, then flaky, then by name.
    strips.sort_by_key(|s| (s.latest != "failed", s.flaky.is_none(), s.name.clone()));
    (columns, strips)
}

fn cell(r: &ResultRow) -> Cell {
    let mut title = format!("{} · {}", r.run_id, r.verdict);
    if let Some(d) = r.duration_ms {
        title.push_str(&format!(" · {}", seconds(d)));
    }
    if let Some(o) = &r.outcome {
        title.push_str(&format!(" · {o}"));
    }
    let failed: Vec<serde_json::Value> = serde_json::from_str(&r.failed_checks).unwrap_or_default();
    for c in failed {
        title.push_str(&format!(
            "\n✘ {}: expected {}, observed {}",
            c["name"].as_str().unwrap_or("?"),
            c["expected"].as_str().unwrap_or("?"),
            c["observed"].as_str().unwrap_or("?")
        ));
    }
    if let Some(e) = &r.error {
        title.push_str(&format!("\n{e}"));
    }
    Cell {
        run_id: r.run_id.clone(),
        verdict: r.verdict.clone(),
        title,
    }
}

/// Why a scenario is flaky: its verdict flipped between passed and failed at least twice
/// (passed, failed, passed, or the reverse) among the runs of one temporal-chaos version (`rows`
/// oldest first; interrupted runs left out). A single flip is a change (a regression, or a fix),
/// not flakiness. `None` when it did not.
pub fn flaky(rows: &[&ResultRow]) -> Option<String> {
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    let mut flips: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.verdict == "passed" || r.verdict == "failed") {
        let version = r.harness_version.as_str();
        let entry = flips.entry(version).or_default();
        entry.1 += 1;
        if last.insert(version, &r.verdict).is_some_and(|v| v != r.verdict) {
            entry.0 += 1;
        }
    }
    let (version, (count, runs)) = flips
        .into_iter()
        .filter(|(_, (f, _))| *f >= 2)
        .max_by_key(|(_, (f, _))| *f)?;
    Some(format!(
        "flaky: its verdict flipped {count} times in its last {runs} runs of temporal-chaos {version}"
    ))
}

/// Where the `i`th of `n` points goes on an axis from `from` to `to` (the middle for one).
fn spread(i: usize, n: usize, from: f64, to: f64) -> f64 {
    if n <= 1 {
        (from + to) / 2.0
    } else {
        from + i as f64 * (to - from) / (n - 1) as f64
    }
}

/// A sparkline of `(column, value)` points over `columns` columns.
fn sparkline(points: Vec<(usize, f64)>, columns: usize) -> Option<Sparkline> {
    let (min, max) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), (_, v)| (lo.min(*v), hi.max(*v)));
    if points.is_empty() {
        return None;
    }
    let x = |c: usize| spread(c, columns, 2.0, SPARK_WIDTH - 2.0);
    let y = |v: f64| {
        let span = (max - min).max(1.0);
        SPARK_HEIGHT - 2.0 - (v - min) / span * (SPARK_HEIGHT - 4.0)
    };
    Some(Sparkline {
        width: SPARK_WIDTH,
        height: SPARK_HEIGHT,
        points: points
            .iter()
            .map(|(c, v)| format!("{:.1},{:.1}", x(*c), y(*v)))
            .collect::<Vec<_>>()
            .join(" "),
        range: if min == max {
            seconds(min as i64)
        } else {
            format!("{} – {}", seconds(min as i64), seconds(max as i64))
        },
        last: points.last().map(|(c, v)| (x(*c), y(*v))),
    })
}

/// The score trend of `runs` (newest first, as listed): the scenario runs with a score, oldest
/// on the left.
pub fn trend(runs: &[RunRow]) -> Option<Trend> {
    let scored: Vec<(&RunSummary, f64)> = runs
        .iter()
        .rev()
        .filter_map(|r| Some((&r.summary, r.summary.score?)))
        .collect();
    let latest = scored.last()?.1;
    let n = scored.len();
    let x = |i: usize| spread(i, n, 30.0, TREND_WIDTH - 6.0);
    let y = |s: f64| TREND_HEIGHT - 6.0 - s / 100.0 * (TREND_HEIGHT - 12.0);
    let dots: Vec<Dot> = scored
        .iter()
        .enumerate()
        .map(|(i, (r, s))| Dot {
            x: x(i),
            y: y(*s),
            run_id: r.run_id.clone(),
            title: format!(
                "{} · {} · score {s:.1} of {} scenario(s)",
                r.run_id,
                utc(r.started_at_ms),
                r.passed + r.failed
            ),
        })
        .collect();
    Some(Trend {
        line: Sparkline {
            width: TREND_WIDTH,
            height: TREND_HEIGHT,
            points: dots
                .iter()
                .map(|d| format!("{:.1},{:.1}", d.x, d.y))
                .collect::<Vec<_>>()
                .join(" "),
            range: "0 – 100".into(),
            last: None,
        },
        dots,
        latest,
        change: (n > 1).then(|| latest - scored[n - 2].1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(run: &str, at: i64, name: &str, verdict: &str, version: &str) -> ResultRow {
        ResultRow {
            run_id: run.into(),
            started_at_ms: at,
            harness_version: version.into(),
            name: name.into(),
            verdict: verdict.into(),
            outcome: Some("completed".into()),
            duration_ms: Some(at),
            failed_checks: if verdict == "failed" {
                r#"[{"name":"outcome","expected":"completed","observed":"failed","link":null}]"#.into()
            } else {
                "[]".into()
            },
            error: None,
            link: Some(format!("http://ui/{run}/{name}")),
        }
    }

    #[test]
    fn a_verdict_that_flips_within_one_version_is_flaky_and_across_versions_is_not() {
        let rows = [
            result("r1", 1, "a", "passed", "0.1.0"),
            result("r2", 2, "a", "failed", "0.1.0"),
            result("r3", 3, "a", "passed", "0.1.0"),
        ];
        let why = flaky(&rows.iter().collect::<Vec<_>>()).unwrap();
        assert!(
            why.contains("flipped 2 times in its last 3 runs of temporal-chaos 0.1.0"),
            "{why}"
        );
        let fixed = [
            result("r1", 1, "a", "failed", "0.1.0"),
            result("r2", 2, "a", "failed", "0.1.0"),
            result("r3", 3, "a", "passed", "0.1.0"),
        ];
        assert_eq!(flaky(&fixed.iter().collect::<Vec<_>>()), None, "a fix is not flaky");
        let upgraded = [
            result("r1", 1, "a", "failed", "0.1.0"),
            result("r2", 2, "a", "passed", "0.2.0"),
            result("r3", 3, "a", "interrupted", "0.2.0"),
            result("r4", 4, "a", "passed", "0.2.0"),
        ];
        assert_eq!(flaky(&upgraded.iter().collect::<Vec<_>>()), None);
    }

    #[test]
    fn strips_line_up_by_run_with_absent_cells_and_failing_scenarios_first() {
        let rows = [
            result("r1", 1000, "a", "passed", "v"),
            result("r1", 1000, "b", "passed", "v"),
            result("r2", 2000, "a", "passed", "v"),
            result("r2", 2000, "b", "failed", "v"),
            result("r3", 3000, "b", "failed", "v"),
        ];
        let (columns, strips) = strips(&rows);
        assert_eq!(
            columns.iter().map(|c| c.run_id.as_str()).collect::<Vec<_>>(),
            ["r1", "r2", "r3"]
        );
        assert_eq!(strips[0].name, "b", "failing now comes first");
        let verdicts = |s: &Strip| s.cells.iter().map(|c| c.verdict.clone()).collect::<Vec<_>>();
        assert_eq!(verdicts(&strips[0]), ["passed", "failed", "failed"]);
        assert_eq!(verdicts(&strips[1]), ["passed", "passed", "absent"]);
        assert!(
            strips[0].cells[1]
                .title
                .contains("✘ outcome: expected completed, observed failed")
        );
        assert_eq!(strips[0].link.as_deref(), Some("http://ui/r3/b"));
        assert!(
            strips.iter().all(|s| s.flaky.is_none()),
            "one flip is a change, not flakiness"
        );
        assert_eq!(strips[1].sparkline.as_ref().unwrap().range, "1.0 s – 2.0 s");
    }
}
