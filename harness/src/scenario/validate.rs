//! Meaning checks: from the raw file to a [`Plan`], collecting every problem with its position.

use super::{
    diagnostic::Diagnostics,
    entry::{self, Entry, Parsed},
    file::{
        ActivitySection, AttemptsField, ExpectSection, FaultCommon, InfraCommon, RetrySection, ScenarioFile,
        TaskFailuresField, WorkerSection,
    },
};
use crate::{
    failure::{FailureKind, TimeoutKind, workflow_task_failed_causes},
    faults::{AttemptSelector, FaultAction, FaultPlan, FaultRule},
    infra::{Dials, InfraAction, InfraRule, PLACEHOLDERS, READY_TIMEOUT, Trigger, WorkerSpec},
    plan::{
        ActivitySettings, Expectations, OrchestrationInput, Outcome, Plan, ResilientInput, RetrySettings,
        TaskFailureCount, UserWorkflow, WorkflowSpec,
    },
};
use std::{path::Path, time::Duration};
use toml::Spanned;

/// Builds the plan, or records problems and returns what it could (`None` when unusable).
pub(super) fn validate(
    path: &Path,
    raw: ScenarioFile,
    fault_entries: &[Entry<'_>],
    infra_entries: &[Entry<'_>],
    d: &mut Diagnostics<'_>,
) -> Option<Plan> {
    let name = raw.name.get_ref().clone();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        d.error(
            raw.name.span(),
            "`name` must be non-empty and use only letters, digits, `-` and `_` (it becomes part of workflow ids)",
        );
    }
    let activity = activity_settings(&raw, d);
    let workflow = workflow_spec(&raw, activity, d)?;
    let worker = raw.worker.as_ref().and_then(|w| worker_spec(path, w.get_ref(), d));
    let faults = fault_plan(&raw, fault_entries, &workflow, d);
    let infra: Vec<InfraRule> = infra_entries
        .iter()
        .enumerate()
        .filter_map(|(i, r)| infra_rule(i + 1, r, &workflow, worker.as_ref(), d))
        .collect();
    let expect = expectations(&raw, &workflow, &faults, &infra, d);
    let weight = raw.weight.as_ref().map_or(1.0, |w| *w.get_ref());
    if let Some(w) = &raw.weight
        && !(w.get_ref().is_finite() && *w.get_ref() > 0.0)
    {
        d.error(
            w.span(),
            "`weight` must be a positive number (how much the scenario counts in the run's resilience score; default 1)",
        );
    }
    let workers = match &raw.workers {
        None => 1,
        Some(w) => match usize::try_from(*w.get_ref()) {
            Ok(n @ 1..=64) => n,
            _ => {
                d.error(
                    w.span(),
                    "`workers` is how many worker processes the harness starts for the scenario: 1 to 64",
                );
                1
            }
        },
    };
    if let Some(w) = raw.workers.as_ref().filter(|_| workers > 1) {
        let own = !infra.is_empty() && !matches!(&workflow, WorkflowSpec::User(_)) || worker.is_some();
        if !own {
            d.error(
                w.span(),
                "`workers` needs workers the harness starts: a `[worker]` table, or infrastructure faults for the demo workflows",
            );
        }
    }
    let workflow_task_timeout = duration(&raw.workflow_task_timeout, d);
    held_task_within_budget(raw.expect.get_ref(), &infra, &expect, workflow_task_timeout, d);
    Some(Plan {
        workers,
        workflow_task_timeout,
        name,
        description: raw.description.clone(),
        source: path.to_owned(),
        workflow,
        task_queue: raw.task_queue.as_ref().map(|q| q.get_ref().clone()),
        worker,
        faults,
        infra,
        expect,
        weight,
    })
}

/// `[worker]`: a command, its directory (relative to the scenario file) and its environment,
/// with only known placeholders.
fn worker_spec(path: &Path, w: &WorkerSection, d: &mut Diagnostics<'_>) -> Option<WorkerSpec> {
    let known = PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ");
    let check = |text: &Spanned<String>, d: &mut Diagnostics<'_>| {
        for name in WorkerSpec::unknown_placeholders(text.get_ref()) {
            d.error(text.span(), format!("unknown placeholder `{{{name}}}`; known: {known}"));
        }
    };
    if w.command.get_ref().is_empty() || w.command.get_ref()[0].trim().is_empty() {
        d.error(
            w.command.span(),
            "`command` needs the program and its arguments, e.g. [\"python\", \"worker.py\"]",
        );
        return None;
    }
    for arg in w.command.get_ref() {
        check(&Spanned::new(w.command.span(), arg.clone()), d);
    }
    for value in w.env.values() {
        check(value, d);
    }
    // Absolute, so that errors and the worker's own view of its directory are unambiguous.
    let folder = path
        .parent()
        .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
        .and_then(|p| std::path::absolute(p).ok())
        .unwrap_or_default();
    let cwd = match &w.cwd {
        Some(c) => {
            let dir = folder.join(c.get_ref());
            if !dir.is_dir() {
                d.error(
                    c.span(),
                    format!(
                        "`cwd` {} is not a directory (relative paths start at the scenario file's folder)",
                        dir.display()
                    ),
                );
            }
            dir
        }
        None => folder,
    };
    Some(WorkerSpec {
        command: w.command.get_ref().clone(),
        cwd,
        env: w
            .env
            .iter()
            .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
            .collect(),
        ready_timeout: duration(&w.ready_timeout, d).unwrap_or(READY_TIMEOUT),
        dials: w.dials.as_ref().and_then(|text| {
            Dials::parse(text.get_ref())
                .map_err(|e| d.error(text.span(), format!("`dials`: {e}")))
                .ok()
        }),
    })
}

/// A duration field, zero allowed.
fn any_duration(field: &Option<Spanned<String>>, d: &mut Diagnostics<'_>) -> Option<Duration> {
    let f = field.as_ref()?;
    humantime::parse_duration(f.get_ref())
        .map_err(|e| {
            d.error(
                f.span(),
                format!(
                    "`{}` is not a duration ({e}); write e.g. \"500ms\" or \"2s\"",
                    f.get_ref()
                ),
            )
        })
        .ok()
}

/// A duration field that must be greater than zero.
fn duration(field: &Option<Spanned<String>>, d: &mut Diagnostics<'_>) -> Option<Duration> {
    let v = any_duration(field, d)?;
    if v.is_zero() {
        d.error(field.as_ref()?.span(), "duration must be greater than zero");
        return None;
    }
    Some(v)
}

fn activity_settings(raw: &ScenarioFile, d: &mut Diagnostics<'_>) -> ActivitySettings {
    let a = &raw.activity;
    let settings = ActivitySettings {
        start_to_close: duration(&a.start_to_close, d),
        schedule_to_close: duration(&a.schedule_to_close, d),
        heartbeat_timeout: duration(&a.heartbeat_timeout, d),
        retry: a.retry.as_ref().map(|r| retry_settings(r.get_ref(), d)),
    };
    if let (Some(start), Some(sched), Some(span)) = (
        settings.start_to_close,
        settings.schedule_to_close,
        a.schedule_to_close.as_ref(),
    ) && sched < start
    {
        d.error(span.span(), format!(
            "schedule_to_close ({}) is shorter than start_to_close ({}): not even one attempt could use its full time",
            humantime::format_duration(sched),
            humantime::format_duration(start)
        ));
    }
    settings
}

fn retry_settings(r: &RetrySection, d: &mut Diagnostics<'_>) -> RetrySettings {
    let initial_interval = duration(&r.initial_interval, d).unwrap_or(Duration::from_secs(1));
    let maximum_interval = duration(&r.maximum_interval, d);
    if let (Some(max), Some(span)) = (maximum_interval, &r.maximum_interval)
        && max < initial_interval
    {
        d.error(span.span(), "maximum_interval is shorter than initial_interval");
    }
    let backoff = r.backoff.as_ref().map_or(2.0, |b| {
        if *b.get_ref() < 1.0 || !b.get_ref().is_finite() {
            d.error(b.span(), "backoff must be a number >= 1.0");
        }
        *b.get_ref()
    });
    RetrySettings {
        initial_interval,
        backoff,
        maximum_interval,
        maximum_attempts: r.maximum_attempts.as_ref().map_or(0, |m| *m.get_ref()),
        non_retryable_types: r.non_retryable_types.clone(),
    }
}

fn workflow_spec(raw: &ScenarioFile, activity: ActivitySettings, d: &mut Diagnostics<'_>) -> Option<WorkflowSpec> {
    let span = raw.workflow.span();
    let input = &raw.input;
    let b_types = raw.fallback.b_error_types.as_ref();
    let name = raw.workflow.get_ref().as_str();
    if matches!(name, "orchestration" | "resilient") {
        let user_only = [
            raw.args.as_ref().map(Spanned::span),
            raw.task_queue.as_ref().map(Spanned::span),
            raw.worker.as_ref().map(Spanned::span),
        ];
        for span in user_only.into_iter().flatten() {
            d.error(
                span,
                format!(
                    "`args`, `task_queue` and `[worker]` are for a workflow of your own; the demo workflow \
                     `{name}` runs in the harness's own worker and takes `[input]`"
                ),
            );
        }
    }
    match name {
        "orchestration" => {
            if let Some(v) = &input.value {
                d.error(
                    v.span(),
                    "`input.value` belongs to the resilient workflow; orchestration takes `input.numbers`",
                );
            }
            if let Some(b) = b_types {
                d.error(b.span(), "`fallback` applies to the resilient workflow only");
            }
            let Some(numbers) = &input.numbers else {
                d.error(
                    span,
                    "workflow `orchestration` needs `input.numbers`, e.g. [input] numbers = [1, 2, 3]",
                );
                return None;
            };
            // Kept as given (even non-numbers): validating them is the workflow's job under test.
            let numbers = numbers
                .get_ref()
                .iter()
                .map(|n| serde_json::to_value(n).unwrap_or_default())
                .collect();
            Some(WorkflowSpec::Orchestration(OrchestrationInput { numbers, activity }))
        }
        "resilient" => {
            if let Some(n) = &input.numbers {
                d.error(
                    n.span(),
                    "`input.numbers` belongs to the orchestration workflow; resilient takes `input.value`",
                );
            }
            let Some(value) = &input.value else {
                d.error(
                    span,
                    "workflow `resilient` needs `input.value`, e.g. [input] value = 21",
                );
                return None;
            };
            Some(WorkflowSpec::Resilient(ResilientInput {
                value: *value.get_ref(),
                activity,
                fallback_b_error_types: b_types.map(|b| b.get_ref().clone()).unwrap_or_default(),
            }))
        }
        other => user_workflow(raw, other, d),
    }
}

/// A workflow of the user's own: its type, arguments and where its worker polls; none of the
/// demo workflows' sections apply.
fn user_workflow(raw: &ScenarioFile, workflow_type: &str, d: &mut Diagnostics<'_>) -> Option<WorkflowSpec> {
    if raw.task_queue.is_none() && raw.worker.is_none() {
        d.error(
            raw.workflow.span(),
            format!(
                "workflow `{workflow_type}` is not a demo workflow (`orchestration`, `resilient`); for a workflow of \
                 your own give a `[worker]` the harness starts, or the `task_queue` your running worker polls"
            ),
        );
        return None;
    }
    let demo_only = [
        raw.input.numbers.as_ref().map(Spanned::span),
        raw.input.value.as_ref().map(Spanned::span),
        raw.fallback.b_error_types.as_ref().map(Spanned::span),
        activity_section_span(&raw.activity),
    ];
    for span in demo_only.into_iter().flatten() {
        d.error(
            span,
            "`[input]`, `[activity]` and `[fallback]` belong to the demo workflows; your workflow takes `args` \
             and sets its own activity options",
        );
    }
    if let Some(q) = &raw.task_queue
        && q.get_ref().trim().is_empty()
    {
        d.error(q.span(), "`task_queue` must not be empty");
    }
    let args = raw.args.as_ref().map_or_else(Vec::new, |a| {
        a.get_ref()
            .iter()
            .map(|v| serde_json::to_value(v).unwrap_or_default())
            .collect()
    });
    Some(WorkflowSpec::User(UserWorkflow {
        workflow_type: workflow_type.to_owned(),
        args,
    }))
}

/// Where the `[activity]` section is, if it says anything.
fn activity_section_span(a: &ActivitySection) -> Option<std::ops::Range<usize>> {
    [&a.start_to_close, &a.schedule_to_close, &a.heartbeat_timeout]
        .into_iter()
        .flatten()
        .map(Spanned::span)
        .chain(a.retry.as_ref().map(Spanned::span))
        .next()
}

fn fault_plan(
    raw: &ScenarioFile,
    entries: &[Entry<'_>],
    workflow: &WorkflowSpec,
    d: &mut Diagnostics<'_>,
) -> FaultPlan {
    let max_attempts = max_attempts(workflow);
    let rules = entries
        .iter()
        .enumerate()
        .filter_map(|(i, f)| fault_rule(i + 1, f, workflow, max_attempts, d))
        .collect();
    FaultPlan {
        seed: raw.seed.unwrap_or(0),
        rules,
        run_tag: String::new(),
    }
}

/// The retry policy's attempt limit, if bounded.
fn max_attempts(workflow: &WorkflowSpec) -> Option<u32> {
    workflow
        .activity()?
        .retry
        .as_ref()
        .map(|r| r.maximum_attempts)
        .filter(|m| *m > 0)
}

fn fault_rule(
    id: usize,
    entry: &Entry<'_>,
    workflow: &WorkflowSpec,
    max_attempts: Option<u32>,
    d: &mut Diagnostics<'_>,
) -> Option<FaultRule> {
    let Parsed { common: f, action } = entry::parse::<FaultCommon, FaultAction>(entry, "fault kind", |c| &c.kind, d)?;
    let activity = f.activity.get_ref();
    known_activity(workflow, &f.activity, true, d);
    let attempts = match &f.attempts {
        None => AttemptSelector::All,
        Some(a) => match a.get_ref() {
            AttemptsField::One(n) => AttemptSelector::parse(&n.to_string()).map_err(|e| e.to_string()),
            AttemptsField::Text(t) => AttemptSelector::parse(t).map_err(|e| e.to_string()),
            AttemptsField::List(l) if l.is_empty() || l.contains(&0) => {
                Err("attempt lists need at least one attempt number, each 1 or more".to_owned())
            }
            AttemptsField::List(l) => Ok(AttemptSelector::List(l.clone())),
        }
        .unwrap_or_else(|e| {
            d.error(a.span(), e);
            AttemptSelector::All
        }),
    };
    if let (Some(max), Some(a)) = (max_attempts, &f.attempts)
        && uses_scenario_settings(workflow, activity)
        && attempts.first() > max
    {
        d.error(
            a.span(),
            format!(
                "this fault can never fire: it starts at attempt {} but retry.maximum_attempts is {max}",
                attempts.first()
            ),
        );
    }
    let probability = f.probability.as_ref().and_then(|p| {
        let v = *p.get_ref();
        if v > 0.0 && v <= 1.0 {
            Some(v)
        } else {
            d.error(p.span(), "probability must be in (0, 1]");
            None
        }
    });
    if let (Some(a), WorkflowSpec::User(_)) = (&action, workflow)
        && a.fault().on_the_wire("").is_none()
    {
        d.error(
            f.kind.span(),
            format!(
                "fault kind `{}` needs code inside the worker (only the harness's own demo workflows have it); \
                 into a workflow of your own faults go on the wire: error, delay, hang, drop_heartbeats",
                a.name()
            ),
        );
    }
    Some(FaultRule {
        id,
        activity: activity.clone(),
        attempts,
        probability,
        action: action?,
    })
}

fn outcome(text: &Spanned<String>, workflow: &WorkflowSpec, d: &mut Diagnostics<'_>) -> Option<Outcome> {
    let generic = Outcome::GENERIC.map(|o| o.to_string()).join(", ");
    let o = match text.get_ref().as_str() {
        "fallback-A" => Outcome::FallbackA,
        "fallback-B" => Outcome::FallbackB,
        other => match Outcome::GENERIC.into_iter().find(|o| o.to_string() == other) {
            Some(o) => o,
            None => {
                d.error(
                    text.span(),
                    format!("unknown outcome `{other}`, expected one of: {generic} (or fallback-A, fallback-B for the demo `resilient` workflow)"),
                );
                return None;
            }
        },
    };
    let fallback = matches!(o, Outcome::FallbackA | Outcome::FallbackB);
    if fallback && !matches!(workflow, WorkflowSpec::Resilient(_)) {
        d.error(
            text.span(),
            format!("`{o}` is an outcome of the demo `resilient` workflow only; expect one of: {generic}"),
        );
    }
    if o == Outcome::FallbackB
        && let WorkflowSpec::Resilient(r) = workflow
        && r.fallback_b_error_types.is_empty()
    {
        d.error(
            text.span(),
            "outcome `fallback-B` needs `fallback.b_error_types` (the error types that lead to it)",
        );
    }
    Some(o)
}

/// `settings` is the raw section: a timeout given but malformed was reported already.
/// `settings` is `None` for a workflow of the user's own, whose timeouts the harness cannot see.
fn failure_kind(
    text: &Spanned<String>,
    settings: Option<&ActivitySection>,
    d: &mut Diagnostics<'_>,
) -> Option<FailureKind> {
    let t = text.get_ref();
    let kind = if let Some(ty) = t.strip_prefix("error:") {
        FailureKind::Error(ty.to_owned())
    } else {
        let timeout = match t.strip_prefix("timeout:") {
            Some("start_to_close") => TimeoutKind::StartToClose,
            Some("schedule_to_close") => TimeoutKind::ScheduleToClose,
            Some("heartbeat") => TimeoutKind::Heartbeat,
            _ => {
                d.error(text.span(), format!(
                    "`{t}` is not a failure kind: use \"timeout:start_to_close\", \"timeout:schedule_to_close\", \"timeout:heartbeat\" or \"error:<Type>\""
                ));
                return None;
            }
        };
        let configured = settings.is_none_or(|settings| match timeout {
            TimeoutKind::Heartbeat => settings.heartbeat_timeout.is_some(),
            TimeoutKind::ScheduleToClose => settings.schedule_to_close.is_some(),
            _ => settings.start_to_close.is_some(),
        });
        if !configured {
            d.error(
                text.span(),
                format!(
                    "expects a {timeout} timeout, but `activity.{}` is not set",
                    match timeout {
                        TimeoutKind::Heartbeat => "heartbeat_timeout",
                        TimeoutKind::ScheduleToClose => "schedule_to_close",
                        _ => "start_to_close",
                    }
                ),
            );
        }
        FailureKind::Timeout(timeout)
    };
    Some(kind)
}

/// The attempt at which a rule stops all retries for sure, if it does.
fn stops_retries_at(rule: &FaultRule, non_retryable_types: &[String]) -> Option<u32> {
    (rule.probability.is_none() && rule.action.fault().stops_retries(non_retryable_types))
        .then(|| rule.attempts.first())
}

fn expectations(
    raw: &ScenarioFile,
    workflow: &WorkflowSpec,
    faults: &FaultPlan,
    infra: &[InfraRule],
    d: &mut Diagnostics<'_>,
) -> Expectations {
    let (e, section) = (raw.expect.get_ref(), raw.expect.span());
    let settings = workflow.activity();
    let outcome = match &e.outcome {
        Some(o) => outcome(o, workflow, d),
        None => {
            d.error(
                section.clone(),
                "`[expect]` needs an `outcome` (completed, failed, timed_out, canceled, terminated; fallback-A or \
                 fallback-B for the demo `resilient` workflow)",
            );
            None
        }
    };
    let max = max_attempts(workflow);
    let non_retryable = settings
        .and_then(|s| s.retry.as_ref())
        .map(|r| r.non_retryable_types.clone())
        .unwrap_or_default();
    let mut attempts = Vec::new();
    for (activity, n) in e.attempts.iter().flatten() {
        if !known_activity(workflow, activity, false, d) {
            continue;
        }
        if let Some(max) = max
            && *n.get_ref() > max
            && uses_scenario_settings(workflow, activity.get_ref())
        {
            d.error(
                n.span(),
                format!("expects {} attempts, but retry.maximum_attempts is {max}", n.get_ref()),
            );
        }
        for rule in faults.rules.iter().filter(|r| r.targets(activity.get_ref())) {
            if let Some(stop) = stops_retries_at(rule, &non_retryable)
                && *n.get_ref() > stop
            {
                d.error(
                    n.span(),
                    format!(
                        "expects {} attempts, but fault #{} raises a non-retryable error at attempt {stop}",
                        n.get_ref(),
                        rule.id
                    ),
                );
            }
        }
        attempts.push((activity.get_ref().clone(), *n.get_ref()));
    }
    let error_contains = e.error_contains.as_ref().map(|t| {
        if outcome.is_some_and(|o| o != Outcome::Failed) {
            d.error(
                t.span(),
                "`error_contains` checks the workflow's failure, but the expected outcome is not `failed`",
            );
        }
        t.get_ref().clone()
    });
    let result = e.result.as_ref().and_then(|r| match serde_json::to_value(r.get_ref()) {
        Ok(v) => Some(v),
        Err(err) => {
            d.error(r.span(), format!("cannot use this result value: {err}"));
            None
        }
    });
    if let (Some(r), Some(Outcome::Failed)) = (&e.result, outcome) {
        d.error(
            r.span(),
            "a failed workflow has no result; remove `result` or change `outcome`",
        );
    }
    Expectations {
        outcome,
        result,
        attempts,
        failure: e.failure.as_ref().and_then(|f| {
            let settings = workflow.activity().is_some().then_some(&raw.activity);
            failure_kind(f, settings, d)
        }),
        error_contains,
        time_budget: duration(&e.time_budget, d),
        workflow_task_failures: e.workflow_task_failures.as_ref().and_then(|f| task_failures(f, d)),
        workflow_task_timeouts: e.workflow_task_timeouts.as_ref().map(|t| *t.get_ref()),
        drain_within: drain_within(&e.drain_within, infra, d),
    }
}

/// `workflow_task_failures`: a count, or counts by known cause.
fn task_failures(field: &Spanned<TaskFailuresField>, d: &mut Diagnostics<'_>) -> Option<TaskFailureCount> {
    match field.get_ref() {
        TaskFailuresField::Total(n) => match u32::try_from(*n) {
            Ok(n) => Some(TaskFailureCount::Total(n)),
            Err(_) => {
                d.error(field.span(), "`workflow_task_failures` is a count: 0 or more");
                None
            }
        },
        TaskFailuresField::ByCause(causes) => {
            let known = workflow_task_failed_causes();
            let mut counts = Vec::new();
            for (cause, n) in causes {
                if known.contains(cause.get_ref()) {
                    counts.push((cause.get_ref().clone(), *n.get_ref()));
                } else {
                    d.error(
                        cause.span(),
                        format!(
                            "unknown workflow task failure cause `{}`; known: {}",
                            cause.get_ref(),
                            known.join(", ")
                        ),
                    );
                }
            }
            Some(TaskFailureCount::ByCause(counts))
        }
    }
}

/// The workflow task timeout of a workflow started without one: the server's default.
const SERVER_TASK_TIMEOUT: Duration = Duration::from_secs(10);

/// A workflow task held until it times out must time out within the time budget.
fn held_task_within_budget(
    e: &ExpectSection,
    infra: &[InfraRule],
    expect: &Expectations,
    task_timeout: Option<Duration>,
    d: &mut Diagnostics<'_>,
) {
    let holds = infra
        .iter()
        .any(|r| matches!(r.action, InfraAction::WorkflowTaskTimeout(_)));
    let timeout = task_timeout.unwrap_or(SERVER_TASK_TIMEOUT);
    if let (true, Some(budget), Some(span)) = (holds, expect.time_budget, e.time_budget.as_ref())
        && budget <= timeout
    {
        let whose = match task_timeout {
            Some(_) => "the scenario's `workflow_task_timeout`",
            None => "the server's default, as the scenario sets no `workflow_task_timeout`",
        };
        d.error(
            span.span(),
            format!(
                "a `workflow_task_timeout` fault holds a workflow task until it times out, after {} ({whose}), \
                 which leaves no time within this `time_budget`: set `workflow_task_timeout` shorter, e.g. \"1s\"",
                humantime::format_duration(timeout)
            ),
        );
    }
}

/// `drain_within`: a duration, for a scenario whose workers all go down with a backlog.
fn drain_within(field: &Option<Spanned<String>>, infra: &[InfraRule], d: &mut Diagnostics<'_>) -> Option<Duration> {
    let within = duration(field, d)?;
    if !infra.iter().any(|r| matches!(r.action, InfraAction::WorkersDown(_))) {
        d.error(
            field.as_ref()?.span(),
            "`drain_within` bounds how long the backlog of a `workers_down` takes to drain once the workers are \
             back: it needs an `[[infra]]` of kind `workers_down`",
        );
    }
    Some(within)
}

/// Whether the scenario's `[activity]` settings (and so its retry limit) govern this activity.
/// The resilient workflow's fallbacks use fixed options of their own.
fn uses_scenario_settings(workflow: &WorkflowSpec, activity: &str) -> bool {
    match workflow {
        WorkflowSpec::Orchestration(_) => true,
        WorkflowSpec::Resilient(_) => activity == "risky",
        WorkflowSpec::User(_) => false,
    }
}

fn infra_rule(
    id: usize,
    entry: &Entry<'_>,
    workflow: &WorkflowSpec,
    worker: Option<&WorkerSpec>,
    d: &mut Diagnostics<'_>,
) -> Option<InfraRule> {
    let Parsed { common: r, action } =
        entry::parse::<InfraCommon, InfraAction>(entry, "infrastructure fault kind", |c| &c.kind, d)?;
    let trigger = match (&r.activity, &r.after) {
        (Some(activity), None) => {
            known_activity(workflow, activity, false, d);
            let attempt = r.attempt.as_ref().map_or(1, |a| *a.get_ref());
            if attempt == 0 {
                d.error(
                    r.attempt.as_ref().map(Spanned::span).unwrap_or_default(),
                    "attempts start at 1",
                );
            }
            Trigger::AttemptStarted {
                activity: activity.get_ref().clone(),
                attempt,
            }
        }
        (None, Some(_)) => {
            if let Some(a) = &r.attempt {
                d.error(a.span(), "`attempt` goes with `activity`, not with `after`");
            }
            Trigger::After(any_duration(&r.after, d).unwrap_or_default())
        }
        (Some(a), Some(_)) => {
            d.error(
                a.span(),
                "give either `activity` (+ `attempt`) or `after` as the trigger, not both",
            );
            return None;
        }
        (None, None) => {
            d.error(
                r.kind.span(),
                "an infrastructure fault needs a trigger: `activity` (+ `attempt`) or `after`",
            );
            return None;
        }
    };
    if let (Some(InfraAction::Deploy(_)), None) = (&action, worker) {
        d.error(
            r.kind.span(),
            "`deploy` replaces the workers of a `[worker]` table by another version of them: it needs a workflow of \
             your own with a `[worker]` (the demo workflows' worker has no other version)",
        );
    }
    if let (Some(action), WorkflowSpec::User(_), None) = (&action, workflow, worker)
        && action.fault().needs().on_own_workers()
    {
        d.error(
            r.kind.span(),
            format!(
                "`{}` needs a worker the harness starts: add a `[worker]` table (a worker you run yourself \
                 cannot be stopped, replaced or cut off by the harness)",
                action.name()
            ),
        );
    }
    let duration = duration(&Some(r.duration.clone()), d)?;
    Some(InfraRule {
        id,
        trigger,
        duration,
        action: action?,
    })
}

/// Whether `activity` is one of the workflow's activity types (or `*` where `wildcard` allows
/// it); reports it at its position otherwise.
fn known_activity(
    workflow: &WorkflowSpec,
    activity: &Spanned<String>,
    wildcard: bool,
    d: &mut Diagnostics<'_>,
) -> bool {
    // The activity types of a workflow of the user's own are not known before it runs.
    let Some(known) = workflow.activity_types() else {
        return true;
    };
    let name = activity.get_ref().as_str();
    if known.contains(&name) || (wildcard && name == "*") {
        return true;
    }
    let or_any = if wildcard { " (or \"*\")" } else { "" };
    d.error(
        activity.span(),
        format!(
            "workflow `{}` has no activity `{name}`; its activities are: {}{or_any}",
            workflow.kind(),
            known.join(", ")
        ),
    );
    false
}
