//! `report.md`: a summary table and the failed checks, for people, logs and CI summaries.

use super::{RunReport, Verdict};
use std::fmt::Write;

pub(super) fn render(r: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# temporal-chaos run `{}`: {}\n", r.head.run_id, r.verdict());
    if let Some(signal) = &r.interrupted_by {
        let _ = writeln!(
            out,
            "Stopped by {signal}: finished scenarios are verified, the others are marked interrupted.\n"
        );
    }
    let interrupted = match r.summary.interrupted {
        0 => String::new(),
        n => format!(", {n} interrupted"),
    };
    let _ = writeln!(
        out,
        "{} passed, {} failed{interrupted} of {}{} · target {} ({}, namespace `{}`, server {}) · {:.1} s\n",
        r.summary.passed,
        r.summary.failed,
        r.summary.total,
        r.summary.score.map(|s| format!(" (score {s:.1})")).unwrap_or_default(),
        r.head.target,
        r.head.address,
        r.head.namespace,
        if r.head.server_version.is_empty() {
            "?"
        } else {
            &r.head.server_version
        },
        r.duration_ms as f64 / 1000.0
    );
    for warning in &r.warnings {
        let _ = writeln!(out, "**Warning**: {warning}\n");
    }
    let t = &r.timing;
    let waiting = match t.longest_wait_ms {
        0 => String::new(),
        ms => format!(
            " (up to {:.1} s of it a scenario waited for its turn: on a fixed task queue, a dialed address or the harness's worker)",
            ms as f64 / 1000.0
        ),
    };
    let seconds = |ms: u64| ms as f64 / 1000.0;
    let path = match (t.critical_path_ms, t.ratio) {
        (Some(critical), Some(ratio)) => format!(
            "critical path {:.1} s (server start {:.1} s + longest scenario {:.1} s) · ratio {ratio:.2}",
            seconds(critical),
            seconds(t.server_start_ms),
            seconds(t.longest_scenario_ms),
        ),
        _ => format!(
            "server start {:.1} s · no scenario's workflow started, so there is no critical path",
            seconds(t.server_start_ms)
        ),
    };
    let _ = writeln!(out, "wall {:.1} s · {path}{waiting}\n", seconds(t.wall_ms));
    out.push_str("| | scenario | outcome | attempts | duration | workflow |\n|---|---|---|---|---|---|\n");
    for s in &r.scenarios {
        let attempts: Vec<String> = s
            .attempts
            .iter()
            .map(|(k, v)| match s.attempts_at_least.contains(k) {
                true => format!("{k}×≥{v}"),
                false => format!("{k}×{v}"),
            })
            .collect();
        let id = match &s.link {
            Some(link) => format!("[{}]({link})", s.workflow_id),
            None => format!("`{}`", s.workflow_id),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {id} |",
            mark(s.verdict),
            s.name,
            s.outcome.map_or_else(|| "-".into(), |o| o.to_string()),
            attempts.join(", "),
            s.duration_ms.map_or_else(|| "-".into(), |d| format!("{d} ms")),
        );
    }
    let placed: Vec<String> = r
        .scenarios
        .iter()
        .filter_map(|s| Some(format!("- {}: {}", s.name, s.worker.as_ref()?)))
        .collect();
    if !placed.is_empty() {
        let _ = write!(out, "\nWorkers of your own workflows:\n{}\n", placed.join("\n"));
    }
    let observed: Vec<String> = r
        .scenarios
        .iter()
        .map(|s| (s, s.observations.phrases()))
        .filter(|(_, phrases)| !phrases.is_empty())
        .map(|(s, phrases)| format!("- {}: {}", s.name, phrases.join("; ")))
        .collect();
    if !observed.is_empty() {
        let _ = write!(out, "\nObserved:\n{}\n", observed.join("\n"));
    }
    for s in r.scenarios.iter().filter(|s| s.verdict != Verdict::Passed) {
        let _ = writeln!(out, "\n## {} {}\n", mark(s.verdict), s.name);
        if let Some(e) = &s.error {
            let _ = writeln!(out, "- error: {e}");
        }
        for c in s.checks.iter().filter(|c| !c.check.passed) {
            let at = match (&c.link, &c.check.evidence) {
                (Some(link), Some(ev)) => format!(" ([event {}]({link}))", ev.event_id),
                (None, Some(ev)) => format!(" (event {} of `{}`)", ev.event_id, ev.workflow_id),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "- **{}**: expected {}, history shows {}{at}",
                c.check.name, c.check.expected, c.check.observed
            );
        }
    }
    out
}

fn mark(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Passed => "✅",
        Verdict::Failed => "❌",
        Verdict::Interrupted => "⏹",
    }
}
