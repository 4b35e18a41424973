//! Runs plans on a cluster: start each workflow with its fault plan, wait, read history, verify.

use crate::{
    faults::HEADER_KEY,
    history::HistoryFacts,
    inject::plan_header,
    plan::{Plan, WorkflowSpec},
    report::{CheckReport, ScenarioReport, event_link},
    target::{Cluster, ui_link},
    verify::{Histories, verify},
    workflows::{Orchestration, ResilientCall},
};
use futures::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use std::{collections::HashMap, time::Duration};
use temporalio_client::{
    Client, UntypedWorkflow, WorkflowFetchHistoryOptions, WorkflowGetResultOptions,
    WorkflowStartOptions, WorkflowTerminateOptions,
};
use temporalio_common::{HasWorkflowDefinition, protos::temporal::api::common::v1::Header};
use tracing::warn;

/// Server-side deadline of a scenario workflow without a time budget.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);

/// Extra time the client waits past the server-side deadline before giving up on the server.
const CLIENT_SLACK: Duration = Duration::from_secs(15);

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
}

/// Runs every plan (concurrently, up to `jobs`) and returns one report per plan, in plan order.
pub async fn run_plans(
    cluster: &Cluster,
    plans: &[Plan],
    settings: &RunSettings,
) -> Vec<ScenarioReport> {
    let bar = ProgressBar::new(plans.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let reports = stream::iter(plans.iter().map(|plan| {
        let bar = bar.clone();
        async move {
            let report = run_one(cluster, plan, settings).await;
            let mark = if report.passed { "ok  " } else { "FAIL" };
            bar.println(format!(
                "{mark} {} ({}, {})",
                report.name,
                report
                    .outcome
                    .map_or_else(|| "no outcome".into(), |o| o.to_string()),
                report
                    .duration_ms
                    .map_or_else(|| "-".into(), |d| format!("{d} ms"))
            ));
            bar.inc(1);
            report
        }
    }))
    .buffered(settings.jobs.max(1))
    .collect::<Vec<_>>()
    .await;
    bar.finish_and_clear();
    reports
}

/// Runs and verifies one plan. Never fails: problems become the report's `error`.
pub async fn run_one(cluster: &Cluster, plan: &Plan, settings: &RunSettings) -> ScenarioReport {
    let workflow_id = format!("{}-{}", plan.name, settings.run_id);
    let mut report = ScenarioReport {
        name: plan.name.clone(),
        description: plan.description.clone(),
        source: plan.source.clone(),
        workflow: plan.workflow.kind().into(),
        workflow_id: workflow_id.clone(),
        run_id: None,
        outcome: None,
        result: None,
        attempts: Default::default(),
        duration_ms: None,
        passed: false,
        error: None,
        link: None,
        faults: plan.faults.rules.iter().map(|r| r.describe()).collect(),
        checks: Vec::new(),
        history: None,
    };
    let mut faults = plan.faults.clone();
    if let Some(seed) = settings.seed {
        faults.seed = seed;
    }
    let deadline = plan
        .expect
        .time_budget
        .map_or(DEFAULT_DEADLINE, |b| (b * 3).max(Duration::from_secs(30)));
    let options = WorkflowStartOptions::new(settings.task_queue.clone(), workflow_id.clone())
        .execution_timeout(deadline)
        .header(Header {
            fields: HashMap::from([(HEADER_KEY.to_owned(), plan_header(&faults))]),
        })
        .static_summary(format!("temporal-chaos scenario {}", plan.name))
        .build();
    let client = &cluster.client;
    let started = match &plan.workflow {
        WorkflowSpec::Orchestration(input) => {
            start_and_wait(
                client,
                Orchestration::run,
                input.clone(),
                options,
                deadline + CLIENT_SLACK,
            )
            .await
        }
        WorkflowSpec::Resilient(input) => {
            start_and_wait(
                client,
                ResilientCall::run,
                input.clone(),
                options,
                deadline + CLIENT_SLACK,
            )
            .await
        }
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
    let histories = match read_histories(client, &workflow_id).await {
        Ok(h) => h,
        Err(e) => {
            report.error = Some(format!("cannot read the history of {workflow_id}: {e}"));
            return report;
        }
    };
    let checks = verify(plan, &histories);
    report.outcome = Some(histories.outcome());
    report.result = histories.result_value();
    report.duration_ms = histories.root.duration().map(|d| d.as_millis() as u64);
    for act in histories.activities() {
        *report
            .attempts
            .entry(act.activity_type.clone())
            .or_default() += act.attempts;
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

/// Starts the workflow and waits for it to close; terminates it if the server never closes it.
async fn start_and_wait<W>(
    client: &Client,
    workflow: W,
    input: W::Input,
    options: WorkflowStartOptions,
    wait: Duration,
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
    let run_id = handle.info().run_id.clone().unwrap_or_default();
    // The result's type does not matter: verification reads the history.
    if tokio::time::timeout(wait, handle.get_result(WorkflowGetResultOptions::default()))
        .await
        .is_err()
    {
        warn!(workflow_id = %id, "workflow still open after {wait:?}; terminating it");
        let reason = WorkflowTerminateOptions::builder()
            .reason("temporal-chaos: scenario deadline passed")
            .build();
        if let Err(e) = handle.terminate(reason).await {
            warn!(workflow_id = %id, error = %e, "could not terminate");
        }
    }
    Ok(run_id)
}

/// Reads the workflow's history and its children's.
async fn read_histories(client: &Client, workflow_id: &str) -> Result<Histories, String> {
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
