//! Finding an activity's fault plan on the server: the memo of its workflow's root.
//!
//! The runner puts the scenario's [`FaultPlan`] into the root workflow's memo under
//! [`HEADER_KEY`]. For an activity of workflow W the proxy asks the frontend for W's
//! `root_execution` (empty when W is its own root), then for the root's memo. Answers are cached
//! per run of W, so each run costs one or two lookups.

use super::upstream::{Upstream, UpstreamError};
use crate::faults::{FaultPlan, HEADER_KEY};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use temporalio_common::protos::temporal::api::{
    common::v1::WorkflowExecution,
    workflowservice::v1::{DescribeWorkflowExecutionRequest, DescribeWorkflowExecutionResponse},
};
use tracing::warn;

/// Runs remembered at most; past it the cache starts over (a long-running sidecar stays small).
const MAX_CACHED_RUNS: usize = 10_000;

/// A workflow run: (workflow id, run id).
type RunKey = (String, String);

/// Fault plans by workflow run, looked up on the server.
pub struct PlanLookup {
    upstream: Upstream,
    cache: Mutex<HashMap<RunKey, Option<Arc<FaultPlan>>>>,
}

impl PlanLookup {
    /// Looks plans up through `upstream`.
    pub fn new(upstream: Upstream) -> Self {
        Self {
            upstream,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The plan of the root of `execution` in `namespace`, `None` when it has none. Lookup
    /// failures are not cached, so the next attempt asks again.
    pub async fn plan_for(
        &self,
        namespace: &str,
        execution: &WorkflowExecution,
    ) -> Result<Option<Arc<FaultPlan>>, UpstreamError> {
        let key = (execution.workflow_id.clone(), execution.run_id.clone());
        if let Some(hit) = self.cache.lock().expect("plan cache lock").get(&key) {
            return Ok(hit.clone());
        }
        let described = self.describe(namespace, execution).await?;
        let root = described
            .workflow_execution_info
            .as_ref()
            .and_then(|i| i.root_execution.clone())
            .filter(|r| !r.workflow_id.is_empty() && r != execution);
        let plan = match root {
            Some(root) => plan_in(&self.describe(namespace, &root).await?, &root),
            None => plan_in(&described, execution),
        }
        .map(Arc::new);
        let mut cache = self.cache.lock().expect("plan cache lock");
        if cache.len() >= MAX_CACHED_RUNS {
            cache.clear();
        }
        cache.insert(key, plan.clone());
        Ok(plan)
    }

    async fn describe(
        &self,
        namespace: &str,
        execution: &WorkflowExecution,
    ) -> Result<DescribeWorkflowExecutionResponse, UpstreamError> {
        let request = DescribeWorkflowExecutionRequest {
            namespace: namespace.to_owned(),
            execution: Some(execution.clone()),
        };
        self.upstream.unary("DescribeWorkflowExecution", &request).await
    }
}

/// The plan in a described workflow's memo; a malformed one is ignored with a warning.
fn plan_in(described: &DescribeWorkflowExecutionResponse, execution: &WorkflowExecution) -> Option<FaultPlan> {
    let payload = described
        .workflow_execution_info
        .as_ref()?
        .memo
        .as_ref()?
        .fields
        .get(HEADER_KEY)?;
    match serde_json::from_slice(&payload.data) {
        Ok(plan) => Some(plan),
        Err(e) => {
            warn!(
                workflow_id = execution.workflow_id,
                run_id = execution.run_id,
                error = %e,
                "ignoring the malformed `{HEADER_KEY}` memo (a harness version mismatch?)"
            );
            None
        }
    }
}
