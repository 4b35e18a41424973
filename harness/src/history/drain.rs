//! How a backlog drained: the tasks that waited out an outage of every worker (`workers_down`),
//! and how long the workers took to work through them once they were back.

use super::{Histories, HistoryFacts};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// One task that waited for the workers during an outage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrainTask {
    /// The workflow whose history holds it.
    pub workflow_id: String,
    /// What it is: `first workflow task`, `workflow task`, or `activity <type>`.
    pub what: String,
    /// The event that shows it: its start (a workflow task's), else its schedule.
    pub event_id: i64,
    /// When a worker took it, if one did.
    #[serde(with = "humantime_serde")]
    pub started_at: Option<SystemTime>,
}

/// The backlog of an outage of every worker and how it drained.
///
/// The outage is the window `[from, to]` on the server's clock: from the `workers_down` fault's
/// start to the moment the harness began to start the workers again (placed from the root
/// workflow's start). The tasks that waited for the workers are the first workflow task of each
/// backlog workflow (started during the outage), and every workflow task and every first activity
/// attempt (in the scenario's histories and the backlog's) that was scheduled within the window,
/// unless a worker took it before `to` (a worker still shutting down gracefully takes a task or
/// two: that task did not wait out the outage). A workflow task that was never taken but replaced
/// by a later one (a sticky queue's schedule-to-start timeout moves the task to the normal queue)
/// is left out, and so is an activity whose last attempt is not its first (history keeps only the
/// first schedule time and the last start).
///
/// The workers were back at the first task start (workflow or activity, in any of those
/// histories) at or after `to`. The backlog drained at the last start of a waiting task; the drain
/// time is from the one to the other, and there is none while a waiting task never started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drain {
    /// The tasks that waited, in history order (the scenario's, then the backlog's).
    pub tasks: Vec<DrainTask>,
    /// When the workers were back.
    #[serde(with = "humantime_serde")]
    pub back_at: Option<SystemTime>,
}

impl Drain {
    /// The backlog of the outage `[from, to]` over the scenario's histories and the backlog
    /// workflows' (see [`Drain`]).
    pub fn of(scenario: &Histories, backlog: &[Histories], (from, to): (SystemTime, SystemTime)) -> Self {
        let all: Vec<&HistoryFacts> = scenario.all().chain(backlog.iter().flat_map(Histories::all)).collect();
        let firsts: Vec<(&str, i64)> = backlog
            .iter()
            .filter_map(|b| {
                Some((
                    b.root.workflow_id.as_str(),
                    b.root.workflow_tasks.first()?.scheduled_event_id,
                ))
            })
            .collect();
        let during = |at: SystemTime| from <= at && at <= to;
        let waited = |started: Option<SystemTime>| started.is_none_or(|s| s >= to);
        let mut tasks = Vec::new();
        for h in &all {
            let last = h.workflow_tasks.last().map(|t| t.scheduled_event_id);
            for t in &h.workflow_tasks {
                let first = firsts.contains(&(h.workflow_id.as_str(), t.scheduled_event_id));
                let replaced = t.started_at.is_none() && Some(t.scheduled_event_id) != last;
                if (first || during(t.scheduled_at)) && !replaced && waited(t.started_at) {
                    tasks.push(DrainTask {
                        workflow_id: h.workflow_id.clone(),
                        what: if first { "first workflow task" } else { "workflow task" }.into(),
                        event_id: t.started_event_id.unwrap_or(t.scheduled_event_id),
                        started_at: t.started_at,
                    });
                }
            }
            for a in h
                .activities
                .iter()
                .filter(|a| during(a.scheduled_at) && a.attempts <= 1 && waited(a.last_started_at))
            {
                tasks.push(DrainTask {
                    workflow_id: h.workflow_id.clone(),
                    what: format!("activity {}", a.activity_type),
                    event_id: a.scheduled_event_id,
                    started_at: a.last_started_at,
                });
            }
        }
        let back_at = all
            .iter()
            .flat_map(|h| {
                let workflow = h.workflow_tasks.iter().filter_map(|t| t.started_at);
                workflow.chain(h.activities.iter().filter_map(|a| a.last_started_at))
            })
            .filter(|at| *at >= to)
            .min();
        Self { tasks, back_at }
    }

    /// The waiting task taken last, if every one was taken.
    pub fn last(&self) -> Option<&DrainTask> {
        if self.never_started().next().is_some() {
            return None;
        }
        self.tasks.iter().max_by_key(|t| t.started_at)
    }

    /// From the workers' return to the last waiting task's start; `None` when nothing waited or
    /// a waiting task never started.
    pub fn duration(&self) -> Option<Duration> {
        let last = self.last()?.started_at?;
        Some(last.duration_since(self.back_at?).unwrap_or_default())
    }

    /// The waiting tasks no worker ever took.
    pub fn never_started(&self) -> impl Iterator<Item = &DrainTask> {
        self.tasks.iter().filter(|t| t.started_at.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{ActivityExecution, WorkflowTask};

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    /// A workflow task scheduled at `scheduled` s (event `id`), taken at `started` s.
    fn task(id: i64, scheduled: u64, started: Option<u64>) -> WorkflowTask {
        WorkflowTask {
            scheduled_event_id: id,
            scheduled_at: at(scheduled),
            attempt: 1,
            started_event_id: started.map(|_| id + 1),
            started_at: started.map(at),
        }
    }

    fn history(id: &str, workflow_tasks: Vec<WorkflowTask>, activities: Vec<ActivityExecution>) -> Histories {
        Histories {
            root: HistoryFacts {
                workflow_tasks,
                activities,
                ..HistoryFacts::from_events(id, &[])
            },
            children: vec![],
        }
    }

    /// `risky`, scheduled at `scheduled` s, whose last attempt `attempts` started at `started` s.
    fn activity(scheduled: u64, attempts: u32, started: Option<u64>) -> ActivityExecution {
        ActivityExecution {
            workflow_id: "root".into(),
            activity_id: "1".into(),
            activity_type: "risky".into(),
            scheduled_event_id: 5,
            scheduled_at: at(scheduled),
            attempts,
            attempts_exact: true,
            retry_never_started: false,
            last_failure: None,
            start_to_close: None,
            last_started_at: started.map(at),
            close: None,
            close_event_id: None,
            closed_at: None,
        }
    }

    #[test]
    fn the_drain_runs_from_the_workers_return_to_the_last_waiting_task() {
        // Workers down from 10 s to 20 s. The root's activity, scheduled at 12 s, is taken at
        // 21 s; its workflow task at 4 s is no part of the backlog. Backlog workflows started at
        // 13 s and 16 s are taken at 22 s and 25 s; the first of them also lost a sticky task.
        let root = history("root", vec![task(2, 4, Some(4))], vec![activity(12, 1, Some(21))]);
        let backlog = [
            history(
                "b1",
                vec![task(2, 13, Some(22)), task(8, 15, None), task(9, 23, Some(23))],
                vec![],
            ),
            history("b2", vec![task(2, 16, Some(25))], vec![]),
        ];
        let drain = Drain::of(&root, &backlog, (at(10), at(20)));
        let waiting: Vec<(&str, &str)> = drain
            .tasks
            .iter()
            .map(|t| (t.workflow_id.as_str(), t.what.as_str()))
            .collect();
        assert_eq!(
            waiting,
            [
                ("root", "activity risky"),
                ("b1", "first workflow task"),
                ("b2", "first workflow task")
            ]
        );
        assert_eq!(drain.back_at, Some(at(21)));
        assert_eq!(drain.duration(), Some(Duration::from_secs(4)));
        assert_eq!(drain.last().map(|t| t.workflow_id.as_str()), Some("b2"));
        // A worker still shutting down took the root's first task at 10 s: it did not wait.
        let root = history("root", vec![task(2, 10, Some(10)), task(5, 21, Some(21))], vec![]);
        let drain = Drain::of(&root, &backlog[1..], (at(10), at(20)));
        assert_eq!(drain.tasks.len(), 1, "{:?}", drain.tasks);
        assert_eq!(
            (drain.back_at, drain.duration()),
            (Some(at(21)), Some(Duration::from_secs(4)))
        );
        // A retried activity says nothing of its first attempt's wait; a waiting task never taken
        // means no drain.
        let root = history("root", vec![], vec![activity(12, 2, Some(30))]);
        let stuck = [history("b1", vec![task(2, 13, None)], vec![])];
        let drain = Drain::of(&root, &stuck, (at(10), at(20)));
        assert_eq!(drain.tasks.len(), 1);
        assert_eq!(drain.never_started().count(), 1);
        assert_eq!(drain.duration(), None);
    }
}
