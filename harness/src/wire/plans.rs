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
//! good is not cached, so the next attempt asks again. Runs started with the same plan (every run
//! of a load, every workflow of a scenario) share one decoded copy of it, so a cached run costs its
//! key and a pointer.

use super::{
    protobuf::{WireFormatError, first_field},
    upstream::{Credentials, Upstream, UpstreamError, retrying},
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

/// Distinct plans kept decoded at most (a plan per scenario at a time); past it they start over.
const MAX_DECODED_PLANS: usize = 64;

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
    /// Plans by the memo bytes they were decoded from.
    decoded: Mutex<HashMap<Vec<u8>, Arc<FaultPlan>>>,
}

impl PlanLookup {
    /// Looks plans up through `upstream`.
    pub fn new(upstream: Upstream) -> Self {
        Self {
            upstream,
            cache: Mutex::new(HashMap::new()),
            decoded: Mutex::new(HashMap::new()),
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
            None => self.plan_in(started.memo.as_ref(), &key.0, &key.1),
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

    /// The plan of the root of `execution` in `namespace`, `None` when it has none, looked up
    /// with `credentials` (the worker's whose call handed out the task). Attempts of one run
    /// share one lookup; transient failures are retried until `until`; a lookup that fails is not
    /// cached, so the next attempt asks again.
    pub async fn plan_for(
        &self,
        namespace: &str,
        execution: &WorkflowExecution,
        until: Instant,
        credentials: &Credentials,
    ) -> Result<Option<Arc<FaultPlan>>, UpstreamError> {
        let key = (execution.workflow_id.clone(), execution.run_id.clone());
        let slot = self.slot(&key);
        let found = slot.get_or_try_init(|| self.look_up(namespace, execution, until, credentials));
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
        credentials: &Credentials,
    ) -> Result<Option<Arc<FaultPlan>>, UpstreamError> {
        let described = self.describe(namespace, execution, until, credentials).await?;
        let root = described
            .workflow_execution_info
            .as_ref()
            .and_then(|i| i.root_execution.clone())
            .filter(|r| !r.workflow_id.is_empty() && r != execution);
        let memo = |d: DescribeWorkflowExecutionResponse| d.workflow_execution_info.and_then(|i| i.memo);
        Ok(match root {
            Some(root) => {
                let memo = memo(self.describe(namespace, &root, until, credentials).await?);
                let plan = self.plan_in(memo.as_ref(), &root.workflow_id, &root.run_id);
                self.remember((root.workflow_id, root.run_id), plan.clone());
                plan
            }
            None => self.plan_in(memo(described).as_ref(), &execution.workflow_id, &execution.run_id),
        })
    }

    async fn describe(
        &self,
        namespace: &str,
        execution: &WorkflowExecution,
        until: Instant,
        credentials: &Credentials,
    ) -> Result<DescribeWorkflowExecutionResponse, UpstreamError> {
        let request = DescribeWorkflowExecutionRequest {
            namespace: namespace.to_owned(),
            execution: Some(execution.clone()),
        };
        let address = self.upstream.address();
        let (described, _) = retrying(&address, until, || {
            self.upstream
                .unary("DescribeWorkflowExecution", &request, Some(namespace), credentials)
        })
        .await;
        described
    }

    /// The plan in a workflow's memo, shared with the runs whose memo holds the same bytes; a
    /// malformed one is ignored with a warning.
    fn plan_in(&self, memo: Option<&Memo>, workflow_id: &str, run_id: &str) -> Option<Arc<FaultPlan>> {
        let data = &memo?.fields.get(HEADER_KEY)?.data;
        if let Some(plan) = self.decoded.lock().expect("decoded plans lock").get(data.as_slice()) {
            return Some(plan.clone());
        }
        let plan: Arc<FaultPlan> = match serde_json::from_slice(data) {
            Ok(plan) => Arc::new(plan),
            Err(e) => {
                warn!(
                    workflow_id,
                    run_id,
                    error = %e,
                    "ignoring the malformed `{HEADER_KEY}` memo (a harness version mismatch?)"
                );
                return None;
            }
        };
        let mut decoded = self.decoded.lock().expect("decoded plans lock");
        if decoded.len() >= MAX_DECODED_PLANS {
            decoded.clear();
        }
        decoded.insert(data.clone(), plan.clone());
        Some(plan)
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
        // Another root started with the same plan shares its decoded copy; another plan does not.
        let (twin, other) = (run("twin"), run("other"));
        lookup.learn(&first_task(&twin, None, Some(memo(&plan)))).unwrap();
        let other_plan = FaultPlan {
            seed: 4,
            ..plan.clone()
        };
        lookup
            .learn(&first_task(&other, None, Some(memo(&other_plan))))
            .unwrap();
        let shared = |a: &WorkflowExecution, b: &WorkflowExecution| {
            Arc::ptr_eq(
                &cached(&lookup, a).flatten().unwrap(),
                &cached(&lookup, b).flatten().unwrap(),
            )
        };
        assert!(shared(&root, &twin), "one decoded plan for runs with the same memo");
        assert!(!shared(&root, &other));
        assert_eq!(cached(&lookup, &other), Some(Some(Arc::new(other_plan))));
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

    /// A frontend on a free loopback port that answers `DescribeWorkflowExecution` after 200 ms
    /// with a memo holding `plan`: `UNAVAILABLE` to the first `shed` calls, `NOT_FOUND` for
    /// workflow ids starting with `gone`. Returns its address and its call counter.
    async fn frontend(plan: FaultPlan, shed: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use crate::wire::grpc::{self, Code};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use temporalio_common::protos::temporal::api::workflow::v1::WorkflowExecutionInfo;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (plan, counted) = (plan.clone(), counted.clone());
                let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let (plan, n) = (plan.clone(), counted.fetch_add(1, Ordering::SeqCst));
                    async move {
                        let body = http_body_util::BodyExt::collect(request.into_body())
                            .await
                            .unwrap()
                            .to_bytes();
                        let asked: DescribeWorkflowExecutionRequest =
                            grpc::decode(&body, &http::HeaderMap::new()).unwrap();
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        let response = if n < shed {
                            grpc::status_response(Code::Unavailable, "shedding")
                        } else if asked.execution.unwrap_or_default().workflow_id.starts_with("gone") {
                            let mut gone = grpc::status_response(Code::Unavailable, "not found");
                            gone.headers_mut().insert("grpc-status", http::HeaderValue::from(5u16));
                            gone
                        } else {
                            grpc::ok_response(&DescribeWorkflowExecutionResponse {
                                workflow_execution_info: Some(WorkflowExecutionInfo {
                                    memo: Some(memo(&plan)),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            })
                        };
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        (address, calls)
    }

    #[tokio::test]
    async fn attempts_of_a_run_share_one_lookup_which_is_retried_and_never_caches_a_failure() {
        use std::sync::atomic::Ordering;
        let plan = FaultPlan {
            seed: 9,
            rules: Vec::new(),
            run_tag: "t".into(),
        };
        // Two calls shed: the first lookup is retried twice.
        let (address, calls) = frontend(plan.clone(), 2).await;
        let endpoint = Endpoint::local(address, "default".into());
        let lookup = PlanLookup::new(Upstream::new(UpstreamEndpoint::new(&endpoint, None).unwrap()));
        let until = Instant::now() + std::time::Duration::from_secs(10);
        let root = run("root");
        let none = Credentials::default();
        let five = futures::future::join_all((0..5).map(|_| lookup.plan_for("default", &root, until, &none))).await;
        for found in five {
            assert_eq!(found.unwrap(), Some(Arc::new(plan.clone())));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "one lookup for five attempts, tried three times"
        );
        lookup.plan_for("default", &root, until, &none).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3, "cached");

        // A lookup that fails for good (not retried: NOT_FOUND) is asked again next time.
        let gone = run("gone");
        let err = lookup.plan_for("default", &gone, until, &none).await.unwrap_err();
        assert!(err.to_string().contains("gRPC status 5"), "{err}");
        lookup.plan_for("default", &gone, until, &none).await.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 5, "a failure is not cached");

        // A lookup that cannot finish by the attempt's deadline ends there.
        let soon = Instant::now() + std::time::Duration::from_millis(50);
        let late = lookup.plan_for("default", &run("slow"), soon, &none).await.unwrap_err();
        assert!(late.to_string().contains("before the attempt's deadline"), "{late}");
    }
}
