//! Runs plans on a cluster: start each workflow with its fault plan, wait, read history, verify.

use crate::{
    faults::HEADER_KEY,
    history::HistoryFacts,
    infra::{self, Capability, InfraControl, InfraEvent, InfraRule, Trigger, WorkerProcess, proxy::FaultProxy},
    inject::plan_header,
    plan::{Plan, WorkflowSpec},
    report::{CheckReport, ScenarioReport, event_link},
    target::{Cluster, ui_link},
    verify::{Histories, verify},
    workflows::{Orchestration, ResilientCall},
};
use futures::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};
use temporalio_client::{
    Client, UntypedWorkflow, WorkflowFetchHistoryOptions, WorkflowGetResultOptions, WorkflowStartOptions,
    WorkflowTerminateOptions, errors::WorkflowGetResultError, tonic::IntoRequest,
};
use temporalio_common::{
    HasWorkflowDefinition,
    protos::temporal::api::{
        common::v1::{Header, WorkflowExecution},
        enums::v1::PendingActivityState,
        workflowservice::v1::DescribeWorkflowExecutionRequest,
    },
};
use tokio::sync::Notify;
use tracing::warn;

/// Server-side deadline of a scenario workflow without a time budget.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);

/// Extra time the client waits past the server-side deadline before giving up on the server.
const CLIENT_SLACK: Duration = Duration::from_secs(15);

/// How often the server is asked whether a triggering attempt has started.
const TRIGGER_POLL: Duration = Duration::from_millis(100);

/// How a run behaves, independent of the scenarios.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Unique id of this run; suffixes workflow ids.
    pub run_id: String,
    /// Task queue the workflows go to.
    pub task_queue: String,
    /// Overrides every scenario's seed.
    pub seed: Option<u64>,
    /// Scenarios in flight at once.
    pub jobs: usize,
    /// Folder for per-scenario logs (worker processes).
    pub log_dir: PathBuf,
}

/// Runs every plan and returns one report per plan, in plan order. Plans without infrastructure
/// faults run concurrently (up to `jobs`); the others run one at a time afterwards, since they
/// pause, restart or cut off parts of the cluster that every scenario shares.
pub async fn run_plans(cluster: &Cluster, plans: &[Plan], settings: &RunSettings) -> Vec<ScenarioReport> {
    let bar = ProgressBar::new(plans.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let run = |(index, plan)| run_shown(cluster, plan, settings, &bar, index);
    let (shared, exclusive): (Vec<_>, Vec<_>) = plans.iter().enumerate().partition(|(_, p)| p.infra.is_empty());
    let mut reports: Vec<(usize, ScenarioReport)> = stream::iter(shared.into_iter().map(run))
        .buffer_unordered(settings.jobs.max(1))
        .collect()
        .await;
    reports.extend(
        stream::iter(exclusive.into_iter().map(run))
            .buffered(1)
            .collect::<Vec<_>>()
            .await,
    );
    bar.finish_and_clear();
    reports.sort_by_key(|(i, _)| *i);
    reports.into_iter().map(|(_, r)| r).collect()
}

/// [`run_one`], with a line on the progress display when done.
async fn run_shown(
    cluster: &Cluster,
    plan: &Plan,
    settings: &RunSettings,
    bar: &ProgressBar,
    index: usize,
) -> (usize, ScenarioReport) {
    let report = run_one(cluster, plan, settings).await;
    let mark = if report.passed { "ok  " } else { "FAIL" };
    bar.println(format!(
        "{mark} {} ({}, {})",
        report.name,
        report.outcome.map_or_else(|| "no outcome".into(), |o| o.to_string()),
        report.duration_ms.map_or_else(|| "-".into(), |d| format!("{d} ms"))
    ));
    bar.inc(1);
    (index, report)
}

/// Runs and verifies one plan. Never fails: problems become the report's `error`.
///
/// Plans with infrastructure faults get their own worker process (behind a fault proxy) and task
/// queue, so that the worker can be killed or cut off without touching other scenarios.
pub async fn run_one(cluster: &Cluster, plan: &Plan, settings: &RunSettings) -> ScenarioReport {
    if plan.infra.is_empty() {
        return execute(cluster, plan, settings, &settings.task_queue, None).await;
    }
    let task_queue = format!("{}-{}", settings.task_queue, plan.name);
    let proxy = match FaultProxy::start(cluster.address.clone()).await {
        Ok(p) => p,
        Err(e) => return failed_to_start(plan, settings, format!("cannot start the fault proxy: {e}")),
    };
    let log = settings.log_dir.join(format!("worker-{}.log", plan.name));
    let worker = WorkerProcess::new(
        cluster.client.clone(),
        proxy.address(),
        cluster.namespace.clone(),
        task_queue.clone(),
        log,
    );
    if let Err(e) = worker.start().await {
        return failed_to_start(plan, settings, e);
    }
    let ctl = InfraControl {
        server: cluster.server(),
        worker: Some(&worker),
        proxy: Some(&proxy),
    };
    let report = execute(cluster, plan, settings, &task_queue, Some(&ctl)).await;
    let _ = worker.kill().await;
    report
}

fn new_report(plan: &Plan, settings: &RunSettings) -> ScenarioReport {
    ScenarioReport {
        name: plan.name.clone(),
        description: plan.description.clone(),
        source: plan.source.clone(),
        workflow: plan.workflow.kind().into(),
        workflow_id: format!("{}-{}", plan.name, settings.run_id),
        run_id: None,
        outcome: None,
        result: None,
        attempts: Default::default(),
        duration_ms: None,
        passed: false,
        error: None,
        link: None,
        faults: plan
            .faults
            .rules
            .iter()
            .map(|r| r.describe())
            .chain(plan.infra.iter().map(|r| r.describe()))
            .collect(),
        fault_rules: plan.faults.rules.clone(),
        infra_events: Vec::new(),
        checks: Vec::new(),
        history: None,
    }
}

fn failed_to_start(plan: &Plan, settings: &RunSettings, error: String) -> ScenarioReport {
    ScenarioReport {
        error: Some(error),
        ..new_report(plan, settings)
    }
}

async fn execute(
    cluster: &Cluster,
    plan: &Plan,
    settings: &RunSettings,
    task_queue: &str,
    infra: Option<&InfraControl<'_>>,
) -> ScenarioReport {
    let mut report = new_report(plan, settings);
    let workflow_id = report.workflow_id.clone();
    let mut faults = plan.faults.clone();
    if let Some(seed) = settings.seed {
        faults.seed = seed;
    }
    faults.run_tag = settings.run_id.clone();
    // Verification must see the plan as the worker does (seed override, run tag).
    let plan = &Plan {
        faults: faults.clone(),
        ..plan.clone()
    };
    let deadline = plan
        .expect
        .time_budget
        .map_or(DEFAULT_DEADLINE, |b| (b * 3).max(Duration::from_secs(30)));
    let options = WorkflowStartOptions::new(task_queue.to_owned(), workflow_id.clone())
        .execution_timeout(deadline)
        .header(Header {
            fields: HashMap::from([(HEADER_KEY.to_owned(), plan_header(&faults))]),
        })
        .static_summary(format!("temporal-chaos scenario {}", plan.name))
        .build();
    let client = &cluster.client;
    let started = match &plan.workflow {
        WorkflowSpec::Orchestration(input) => start(client, Orchestration::run, input.clone(), options).await,
        WorkflowSpec::Resilient(input) => start(client, ResilientCall::run, input.clone(), options).await,
    };
    let run_id = match started {
        Ok(run_id) => run_id,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    report.link = cluster
        .ui_url
        .as_deref()
        .map(|ui| ui_link(ui, &cluster.namespace, &workflow_id, &run_id));
    report.run_id = Some(run_id);
    let began = Instant::now();
    let closed = Notify::new();
    let waiting = async {
        wait_closed(client, &workflow_id, deadline + CLIENT_SLACK).await;
        closed.notify_waiters();
    };
    let driving = async {
        match infra {
            Some(ctl) => {
                let drivers = plan
                    .infra
                    .iter()
                    .map(|rule| drive(rule, ctl, client, &cluster.namespace, &workflow_id, began, &closed));
                futures::future::join_all(drivers).await
            }
            None => Vec::new(),
        }
    };
    let ((), events) = futures::join!(waiting, driving);
    let histories = match read_histories(client, &workflow_id).await {
        Ok(h) => h,
        Err(e) => {
            report.error = Some(format!("cannot read the history of {workflow_id}: {e}"));
            return report;
        }
    };
    let mut checks = verify(plan, &histories);
    checks.extend(events.iter().map(InfraEvent::check));
    report.infra_events = events;
    report.outcome = Some(histories.outcome());
    report.result = histories.result_value();
    report.duration_ms = histories.root.duration().map(|d| d.as_millis() as u64);
    for act in histories.activities() {
        *report.attempts.entry(act.activity_type.clone()).or_default() += act.attempts;
    }
    report.passed = !checks.is_empty() && checks.iter().all(|c| c.passed);
    report.checks = checks
        .into_iter()
        .map(|check| {
            let link = check.evidence.as_ref().and_then(|ev| {
                let run = histories.all().find(|h| h.workflow_id == ev.workflow_id)?;
                let ui = cluster.ui_url.as_deref()?;
                Some(event_link(
                    &ui_link(ui, &cluster.namespace, &run.workflow_id, &run.run_id),
                    ev.event_id,
                ))
            });
            CheckReport { check, link }
        })
        .collect();
    report.history = Some(histories);
    report
}

/// Waits for the rule's trigger, then applies it; gives up if the workflow closes first.
async fn drive(
    rule: &InfraRule,
    ctl: &InfraControl<'_>,
    client: &Client,
    namespace: &str,
    workflow_id: &str,
    began: Instant,
    closed: &Notify,
) -> InfraEvent {
    let not_fired = |why: String| InfraEvent {
        id: rule.id,
        rule: rule.describe(),
        started_ms: None,
        ended_ms: None,
        outcome: Err(why),
    };
    let triggered = tokio::select! {
        fired = wait_trigger(&rule.trigger, client, namespace, workflow_id, began) => fired,
        _ = closed.notified() => {
            return not_fired(format!("the workflow closed before the trigger ({}) fired", rule.trigger));
        }
    };
    match triggered {
        Ok(()) => infra::apply(rule, ctl, began).await,
        Err(e) => not_fired(e),
    }
}

/// Resolves when the trigger fires: at a time, or when the server reports the attempt started.
async fn wait_trigger(
    trigger: &Trigger,
    client: &Client,
    namespace: &str,
    workflow_id: &str,
    began: Instant,
) -> Result<(), String> {
    match trigger {
        Trigger::After(d) => {
            tokio::time::sleep_until((began + *d).into()).await;
            Ok(())
        }
        Trigger::AttemptStarted { activity, attempt } => {
            let mut svc = client.connection().workflow_service();
            loop {
                let request = DescribeWorkflowExecutionRequest {
                    namespace: namespace.to_owned(),
                    execution: Some(WorkflowExecution {
                        workflow_id: workflow_id.to_owned(),
                        run_id: String::new(),
                    }),
                };
                if let Ok(resp) = svc.describe_workflow_execution(request.into_request()).await {
                    let started = resp.into_inner().pending_activities.iter().any(|p| {
                        p.activity_type.as_ref().is_some_and(|t| &t.name == activity)
                            && (p.attempt as u32 > *attempt
                                || (p.attempt as u32 == *attempt && p.state == PendingActivityState::Started as i32))
                    });
                    if started {
                        return Ok(());
                    }
                }
                tokio::time::sleep(TRIGGER_POLL).await;
            }
        }
    }
}

/// Starts the workflow; returns its run id.
pub(crate) async fn start<W>(
    client: &Client,
    workflow: W,
    input: W::Input,
    options: WorkflowStartOptions,
) -> Result<String, String>
where
    W: HasWorkflowDefinition,
    W::Input: Send,
{
    let id = options.workflow_id.clone();
    let handle = client
        .start_workflow(workflow, input, options)
        .await
        .map_err(|e| format!("cannot start workflow {id}: {e}"))?;
    Ok(handle.info().run_id.clone().unwrap_or_default())
}

/// Waits until the workflow closes, riding out server restarts and pauses; terminates it if it is
/// still open after `wait` (the server-side execution timeout should have closed it by then).
pub(crate) async fn wait_closed(client: &Client, workflow_id: &str, wait: Duration) {
    let handle = client.get_workflow_handle::<UntypedWorkflow>(workflow_id.to_owned());
    let give_up = Instant::now() + wait;
    loop {
        let left = give_up.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, handle.get_result(WorkflowGetResultOptions::default())).await {
            // Any close counts (the result itself is read from history).
            Ok(Ok(_) | Err(WorkflowGetResultError::Failed(_) | WorkflowGetResultError::Terminated { .. }))
            | Ok(Err(WorkflowGetResultError::Cancelled { .. } | WorkflowGetResultError::TimedOut))
            | Ok(Err(WorkflowGetResultError::ContinuedAsNew)) => return,
            Ok(Err(e)) => {
                warn!(workflow_id, error = %e, "waiting for the result failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(_) => break,
        }
    }
    warn!(workflow_id, "workflow still open after {wait:?}; terminating it");
    let reason = WorkflowTerminateOptions::builder()
        .reason("temporal-chaos: scenario deadline passed")
        .build();
    if let Err(e) = handle.terminate(reason).await {
        warn!(workflow_id, error = %e, "could not terminate");
    }
}

/// Reads the workflow's history and its children's.
pub(crate) async fn read_histories(client: &Client, workflow_id: &str) -> Result<Histories, String> {
    let root = read_history(client, workflow_id).await?;
    let mut children = Vec::new();
    for child in &root.children {
        children.push(read_history(client, &child.workflow_id).await?);
    }
    Ok(Histories { root, children })
}

async fn read_history(client: &Client, workflow_id: &str) -> Result<HistoryFacts, String> {
    let handle = client.get_workflow_handle::<UntypedWorkflow>(workflow_id.to_owned());
    let events = handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .map_err(|e| e.to_string())?;
    Ok(HistoryFacts::from_events(workflow_id, &events))
}

/// Whether any plan restarts the server (the embedded server then keeps its state in a file).
pub fn needs_persistent_server(plans: &[Plan]) -> bool {
    plans
        .iter()
        .flat_map(|p| &p.infra)
        .any(|r| r.action.fault().needs() == Capability::RestartServer)
}

/// One line per infrastructure fault the target cannot inject; checked before anything runs.
pub fn unsupported(plans: &[Plan], capabilities: &[Capability], target: &str) -> Vec<String> {
    plans
        .iter()
        .flat_map(|p| p.infra.iter().map(move |r| (p, r)))
        .filter(|(_, r)| !capabilities.contains(&r.action.fault().needs()))
        .map(|(p, r)| {
            format!(
                "{}: scenario `{}` needs {} (infra #{}), which the {target} target cannot do",
                p.source.display(),
                p.name,
                r.action.fault().needs(),
                r.id
            )
        })
        .collect()
}
