//! The load's account, kept as it goes: each workflow's history is read once it closes, counted
//! and dropped, so memory stays the same whatever the number of workflows. Latencies go into an
//! HDR histogram; only problems (a fault mismatch, an error, a stuck workflow) are kept by name,
//! and only the first few of each.

use crate::{
    faults::FaultPlan,
    history::{ActivityClose, CloseStatus, Histories},
};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::{collections::BTreeMap, time::Duration};

/// Named problems kept of each sort; the rest are counted.
const KEPT: usize = 20;

/// The first [`KEPT`] lines of one sort of problem, and how many there were in all.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Problems {
    /// How many in all.
    pub count: u64,
    /// The first ones.
    pub first: Vec<String>,
}

impl Problems {
    /// Counts one more, keeping its line if it is among the first.
    pub fn push(&mut self, line: String) {
        self.count += 1;
        if self.first.len() < KEPT {
            self.first.push(line);
        }
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Latency percentiles in milliseconds, workflow start to close (server time).
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
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

/// Everything counted so far.
pub(super) struct Tally {
    faults: FaultPlan,
    /// Infrastructure faults ran: an attempt may fail without a seeded fault (its worker killed,
    /// cut off or restarted under it).
    infra: bool,
    /// Start-to-close latencies, in milliseconds.
    latency: Histogram<u64>,
    pub outcomes: BTreeMap<CloseStatus, u64>,
    pub attempts: BTreeMap<String, u64>,
    pub fired: u64,
    /// Attempts that failed without a seeded fault while infrastructure faults ran.
    pub failed_by_infra: u64,
    pub mismatches: Problems,
    pub errors: Problems,
    /// Workflows not closed as completed or failed, by id.
    pub stuck: Problems,
}

impl Tally {
    /// An empty account of a load run with `faults`, and with infrastructure faults or not.
    pub fn new(faults: FaultPlan, infra: bool) -> Self {
        Self {
            faults,
            infra,
            // One millisecond to a day, three significant figures: a few tens of kB whatever the count.
            latency: Histogram::new_with_bounds(1, 86_400_000, 3).expect("static bounds"),
            outcomes: BTreeMap::new(),
            attempts: BTreeMap::new(),
            fired: 0,
            failed_by_infra: 0,
            mismatches: Problems::default(),
            errors: Problems::default(),
            stuck: Problems::default(),
        }
    }

    /// Counts one closed workflow from its history; `waited` is how long the starter saw it run,
    /// the latency when the history has no close time.
    pub fn add(&mut self, h: &Histories, waited: Duration) {
        let status = h.root.close.as_ref().map_or(CloseStatus::Running, |c| c.status());
        *self.outcomes.entry(status).or_insert(0) += 1;
        if !matches!(status, CloseStatus::Completed | CloseStatus::Failed) {
            self.stuck.push(format!("{} {status}", h.root.workflow_id));
        }
        for act in h.activities() {
            *self.attempts.entry(act.activity_type.clone()).or_insert(0) += u64::from(act.attempts);
        }
        self.account_faults(h);
        let latency = h.root.duration().unwrap_or(waited);
        self.latency.saturating_record((latency.as_millis() as u64).max(1));
    }

    /// Checks the attempts a history shows against the faults the seed fired on them: every
    /// fired attempt must have failed, and a completed last attempt must not have fired. An
    /// attempt that failed without a fired fault is a mismatch, unless infrastructure faults ran
    /// (then it is counted in `failed_by_infra`).
    fn account_faults(&mut self, h: &Histories) {
        for act in h.activities() {
            for key in act.attempt_keys() {
                let attempt = key.attempt;
                let fires = self.faults.firing(&key).next().is_some();
                self.fired += u64::from(fires);
                let last = attempt == act.attempts;
                let completed = last && matches!(act.close, Some(ActivityClose::Completed));
                // Attempts before the last one failed (that is why there was a next one).
                match (fires, completed) {
                    (true, false) | (false, true) => continue,
                    (false, false) if self.infra => {
                        self.failed_by_infra += 1;
                        continue;
                    }
                    _ => {}
                }
                self.mismatches.push(format!(
                    "{} {} attempt {attempt}: seed says {}, history says {}",
                    act.workflow_id,
                    act.activity_type,
                    if fires { "fault" } else { "no fault" },
                    if completed { "completed" } else { "failed" }
                ));
            }
        }
    }

    /// Workflows counted.
    pub fn closed(&self) -> u64 {
        self.outcomes.values().sum()
    }

    /// Not closed as completed or failed.
    pub fn stuck_count(&self) -> u64 {
        self.stuck.count
    }

    /// The latency percentiles so far.
    pub fn latency(&self) -> Latency {
        if self.latency.is_empty() {
            return Latency::default();
        }
        let at = |q: f64| self.latency.value_at_quantile(q);
        Latency {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: self.latency.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_keep_the_first_and_count_all() {
        let mut p = Problems::default();
        for i in 0..100 {
            p.push(format!("problem {i}"));
        }
        assert_eq!(p.count, 100);
        assert_eq!(p.first.len(), KEPT);
        assert_eq!(p.first[0], "problem 0");
    }

    #[test]
    fn latency_percentiles_come_from_the_histogram() {
        let mut tally = Tally::new(FaultPlan::default(), false);
        assert_eq!(tally.latency(), Latency::default());
        for ms in 1..=1000u64 {
            tally.latency.record(ms).unwrap();
        }
        let l = tally.latency();
        // Three significant figures: within 0.1% of the nearest rank.
        assert!((499..=501).contains(&l.p50), "{l:?}");
        assert!((989..=991).contains(&l.p99), "{l:?}");
        assert_eq!(l.max, 1000);
    }
}
