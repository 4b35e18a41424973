//! Finding an activity's fault plan on the server: the memo of its workflow's root.
//!
//! The runner puts the scenario's [`FaultPlan`] into the root workflow's memo under
//! [`HEADER_KEY`]. Usually the proxy has seen it already, for nothing: the first workflow task of
//! every run the worker behind it polls holds the run's `WorkflowExecutionStarted` event, with its
//! memo and its root ([`PlanLookup::learn`]), and a root's first task comes before its children's.
//! Otherwise (a run whose workflow tasks went to another worker) it asks the frontend: W's
//! `root_execution` (empty when W is its own root), then the root's memo. Answers are cached per
//! run and one lookup serves every attempt that waits for it (single flight), so such a run costs
//! one or two lookups; a lookup that fails on a transient error is retried, and one that fails for
//! good is not cached, so the next attempt asks again.

use super::{
    protobuf::{WireFormatError, first_field},
    upstream::{Upstream, UpstreamError, retrying},
};
use crate::faults::{FaultPlan, HEADER_KEY};
use prost::Message;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use temporalio_common::protos::temporal::api::{
    common::v1::{Memo, WorkflowExecution},
    history::v1::{HistoryEvent, history_event::Attributes},
    workflowservice::v1::{DescribeWorkflowExecutionRequest, DescribeWorkflowExecutionResponse},
};
use tokio::{sync::OnceCell, time::Instant};
use tracing::warn;

/// Runs remembered at most; past it the cache starts over (a long-running sidecar stays small).
const MAX_CACHED_RUNS: usize = 10_000;

/// `PollWorkflowTaskQueueResponse.workflow_execution`, `.history`, and `History.events`.
const TASK_EXECUTION_FIELD: u32 = 2;
const TASK_HISTORY_FIELD: u32 = 8;
const HISTORY_EVENTS_FIELD: u32 = 1;

/// A workflow run: (workflow id, run id).
type RunKey = (String, String);

/// A run's plan (`None`: it has none), once known; attempts that need it meanwhile wait on the
/// one lookup under way.
type Slot = Arc<OnceCell<Option<Arc<FaultPlan>>>>;

/// Fault plans by workflow run, looked up on the server.
pub struct PlanLookup {
    upstream: Upstream,
    cache: Mutex<HashMap<RunKey, Slot>>,
}

impl PlanLookup {
    /// Looks plans up through `upstream`.
    pub fn new(upstream: Upstream) -> Self {
        Self {
            upstream,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Learns the plan of the run a `PollWorkflowTaskQueue` response (`message`, its encoded
    /// bytes) is about, when it holds the run's first event and the plan is known: the run's own
    /// memo for a root, its root's cached plan for a child. Reads only what it needs: the
    /// execution, and the first event of the history when the run is not cached yet.
    pub fn learn(&self, message: &[u8]) -> Result<(), LearnError> {
        let Some(execution) = first_field(message, TASK_EXECUTION_FIELD)? else {
            return Ok(());
        };
        let execution = WorkflowExecution::decode(execution)?;
        let key = (execution.workflow_id, execution.run_id);
        if self.cached(&key).is_some() {
            return Ok(());
        }
        let first = match first_field(message, TASK_HISTORY_FIELD)? {
            Some(history) => first_field(history, HISTORY_EVENTS_FIELD)?,
            None => None,
        };
        let Some(first) = first else {
            return Ok(());
        };
        let event = HistoryEvent::decode(first)?;
        let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) = event.attributes else {
            return Ok(());
        };
        let plan = match started.root_workflow_execution.filter(|r| !r.workflow_id.is_empty()) {
            None => plan_in(started.memo.as_ref(), &key.0, &key.1).map(Arc::new),
            Some(root) => match self.cached(&(root.workflow_id, root.run_id)) {
                Some(plan) => plan,
                // The root ran elsewhere: ask the frontend when an activity needs it.
                None => return Ok(()),
            },
        };
        self.remember(key, plan);
        Ok(())
    }

    fn cached(&self, key: &RunKey) -> Option<Option<Arc<FaultPlan>>> {
        self.cache
            .lock()
            .expect("plan cache lock")
            .get(key)
            .and_then(|slot| slot.get().cloned())
    }

    /// The slot of a run, made empty if new.
    fn slot(&self, key: &RunKey) -> Slot {
        let mut cache = self.cache.lock().expect("plan cache lock");
        if cache.len() >= MAX_CACHED_RUNS && !cache.contains_key(key) {
            cache.clear();
        }
        cache.entry(key.clone()).or_default().clone()
    }

    fn remember(&self, key: RunKey, plan: Option<Arc<FaultPlan>>) {
        // Already known (learnt, or looked up meanwhile): the same plan.
        let _ = self.slot(&key).set(plan);
    }

    /// The plan of the root of `execution` in `namespace`, `None` when it has none. Attempts of
    /// one run share one lookup; transient failures are retried until `until`; a lookup that
    /// fails is not cached, so the next attempt asks again.
    pub async fn plan_for(
        &self,
        namespace: &str,
        execution: &WorkflowExecution,
        until: Instant,
    ) -> Result<Option<Arc<FaultPlan>>, UpstreamError> {
        let key = (execution.workflow_id.clone(), execution.run_id.clone());
        let slot = self.slot(&key);
        let found = slot.get_or_try_init(|| self.look_up(namespace, execution, until));
        let deadline = || UpstreamError::Deadline {
            address: self.upstream.address(),
        };
        tokio::time::timeout_at(until, found)
            .await
            .map_err(|_| deadline())?
            .cloned()
    }

    /// Asks the frontend for the plan of `execution`'s root.
    async fn look_up(
        &self,
        namespace: &str,
        execution: &WorkflowExecution,
        until: Instant,
    ) -> Result<Option<Arc<FaultPlan>>, UpstreamError> {
        let described = self.describe(namespace, execution, until).await?;
        let root = described
            .workflow_execution_info
            .as_ref()
            .and_then(|i| i.root_execution.clone())
            .filter(|r| !r.workflow_id.is_empty() && r != execution);
        let memo = |d: DescribeWorkflowExecutionResponse| d.workflow_execution_info.and_then(|i| i.memo);
        Ok(match root {
            Some(root) => {
                let memo = memo(self.describe(namespace, &root, until).await?);
                let plan = plan_in(memo.as_ref(), &root.workflow_id, &root.run_id).map(Arc::new);
                self.remember((root.workflow_id, root.run_id), plan.clone());
                plan
            }
            None => plan_in(memo(described).as_ref(), &execution.workflow_id, &execution.run_id).map(Arc::new),
        })
    }

    async fn describe(
        &self,
        namespace: &str,
        execution: &WorkflowExecution,
        until: Instant,
    ) -> Result<DescribeWorkflowExecutionResponse, UpstreamError> {
        let request = DescribeWorkflowExecutionRequest {
            namespace: namespace.to_owned(),
            execution: Some(execution.clone()),
        };
        let address = self.upstream.address();
        let (described, _) = retrying(&address, until, || {
            self.upstream.unary("DescribeWorkflowExecution", &request)
        })
        .await;
        described
    }
}

/// The plan in a workflow's memo; a malformed one is ignored with a warning.
fn plan_in(memo: Option<&Memo>, workflow_id: &str, run_id: &str) -> Option<FaultPlan> {
    let payload = memo?.fields.get(HEADER_KEY)?;
    match serde_json::from_slice(&payload.data) {
        Ok(plan) => Some(plan),
        Err(e) => {
            warn!(
                workflow_id,
                run_id,
                error = %e,
                "ignoring the malformed `{HEADER_KEY}` memo (a harness version mismatch?)"
            );
            None
        }
    }
}

/// A workflow task the proxy could not read for plans (it is forwarded untouched all the same).
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// Not well-formed protobuf.
    #[error(transparent)]
    Format(#[from] WireFormatError),
    /// A part that does not decode as what it should be.
    #[error("does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{faults::FaultRule, target::Endpoint, wire::UpstreamEndpoint};
    use temporalio_common::protos::temporal::api::{
        common::v1::Payload,
        history::v1::{History, WorkflowExecutionStartedEventAttributes},
        workflowservice::v1::PollWorkflowTaskQueueResponse,
    };

    fn run(id: &str) -> WorkflowExecution {
        WorkflowExecution {
            workflow_id: id.into(),
            run_id: format!("{id}-run"),
        }
    }

    /// A workflow task of `execution` whose history starts with its started event.
    fn first_task(execution: &WorkflowExecution, root: Option<WorkflowExecution>, memo: Option<Memo>) -> Vec<u8> {
        let started = WorkflowExecutionStartedEventAttributes {
            root_workflow_execution: root,
            memo,
            ..Default::default()
        };
        PollWorkflowTaskQueueResponse {
            task_token: b"token".to_vec(),
            workflow_execution: Some(execution.clone()),
            history: Some(History {
                events: vec![HistoryEvent {
                    event_id: 1,
                    attributes: Some(Attributes::WorkflowExecutionStartedEventAttributes(started)),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn memo(plan: &FaultPlan) -> Memo {
        let payload = Payload {
            data: serde_json::to_vec(plan).unwrap(),
            ..Default::default()
        };
        Memo {
            fields: [(HEADER_KEY.to_owned(), payload)].into(),
        }
    }

    fn cached(lookup: &PlanLookup, execution: &WorkflowExecution) -> Option<Option<Arc<FaultPlan>>> {
        lookup.cached(&(execution.workflow_id.clone(), execution.run_id.clone()))
    }

    #[test]
    fn plans_are_learnt_from_the_first_workflow_task_of_roots_and_their_children() {
        // Nothing is sent upstream: every answer here comes from the workflow tasks.
        let endpoint = Endpoint::local("127.0.0.1:9".into(), "default".into());
        let lookup = PlanLookup::new(Upstream::new(UpstreamEndpoint::new(&endpoint, None).unwrap()));
        let rule: FaultRule = serde_json::from_value(serde_json::json!({
            "id": 1, "activity": "charge", "attempts": "all", "probability": null,
            "action": {"kind": "hang"}
        }))
        .unwrap();
        let plan = FaultPlan {
            seed: 3,
            rules: vec![rule],
            run_tag: String::new(),
        };
        let (root, child, orphan, plain) = (run("root"), run("child"), run("orphan"), run("plain"));
        lookup.learn(&first_task(&root, None, Some(memo(&plan)))).unwrap();
        assert_eq!(cached(&lookup, &root), Some(Some(Arc::new(plan.clone()))));
        lookup.learn(&first_task(&child, Some(root.clone()), None)).unwrap();
        assert_eq!(
            cached(&lookup, &child),
            Some(Some(Arc::new(plan))),
            "a child gets its root's plan"
        );
        // A child whose root ran on another worker is left to the frontend lookup.
        lookup
            .learn(&first_task(&orphan, Some(run("elsewhere")), None))
            .unwrap();
        assert_eq!(cached(&lookup, &orphan), None);
        // A root without a plan is remembered as such: no lookup for its activities either.
        lookup.learn(&first_task(&plain, None, None)).unwrap();
        assert_eq!(cached(&lookup, &plain), Some(None));
        // A task without the first event (a sticky one) teaches nothing; garbage is an error.
        let sticky = PollWorkflowTaskQueueResponse {
            workflow_execution: Some(run("sticky")),
            ..Default::default()
        };
        lookup.learn(&sticky.encode_to_vec()).unwrap();
        assert_eq!(cached(&lookup, &run("sticky")), None);
        assert!(lookup.learn(&[0x12, 0x05, 0x01]).is_err());
    }
}
