//! The proxy's request handling: route by gRPC method, forward untouched, and apply faults to the
//! activity-task calls.

use super::{
    attempts::{Answer, AttemptLog, AttemptRecord, Delivery, Live, LogLimits, Sent, Target, now_ms},
    calls::{CallFaults, CompletedHead, FirstString},
    effect::{Behaviour, Injection, WireEffect, wire_effect},
    grpc::{self, BoxError, Code, FrameError, ProxyBody},
    plans::PlanLookup,
    pollers::{PollerSeen, Pollers},
    protobuf,
    upstream::{Credentials, Upstream, UpstreamError, WORKFLOW_SERVICE, collect, retrying},
};
use crate::{
    faults::AttemptKey,
    infra::{CallEffect, TaskAction},
};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, request::Parts};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use prost::Message;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use temporalio_common::protos::temporal::api::{
    common::v1::WorkflowExecution,
    enums::v1::WorkflowTaskFailedCause,
    failure::v1::{ApplicationFailureInfo, Failure, failure::FailureInfo},
    workflowservice::v1::{
        PollActivityTaskQueueResponse, RecordActivityTaskHeartbeatByIdRequest, RecordActivityTaskHeartbeatRequest,
        ResetStickyTaskQueueRequest, ResetStickyTaskQueueResponse, RespondActivityTaskCanceledByIdRequest,
        RespondActivityTaskCanceledRequest, RespondActivityTaskCompletedByIdRequest,
        RespondActivityTaskCompletedRequest, RespondActivityTaskFailedByIdRequest, RespondActivityTaskFailedRequest,
        RespondActivityTaskFailedResponse, RespondWorkflowTaskCompletedRequest, RespondWorkflowTaskCompletedResponse,
        RespondWorkflowTaskFailedRequest, RespondWorkflowTaskFailedResponse,
    },
};
use tokio::{sync::watch, task::JoinSet, time::Instant};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};

/// Identity of the calls the proxy makes itself.
const IDENTITY: &str = "temporal-chaos-wire-proxy";

/// How long the proxy remembers an attempt whose task names no deadline.
const MAX_ATTEMPT: Duration = Duration::from_secs(600);

/// The longest budget the proxy counts an attempt with. A task may carry any timeout up to the
/// largest a `Duration` message holds (`i64::MAX` seconds), which would overflow the clock
/// arithmetic of its deadline (a panic that cost the worker the task).
const LONGEST_BUDGET: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How long a task waits at most for its run's fault plan to be read from the frontend (the
/// worker gets the task only then).
const PLAN_LOOKUP_LIMIT: Duration = Duration::from_secs(5);

/// Worker calls about a running attempt, whose requests the proxy reads.
pub(super) const INSPECTED: &[&str] = &[
    "RespondActivityTaskCompleted",
    "RespondActivityTaskCompletedById",
    "RespondActivityTaskFailed",
    "RespondActivityTaskFailedById",
    "RespondActivityTaskCanceled",
    "RespondActivityTaskCanceledById",
    "RecordActivityTaskHeartbeat",
    "RecordActivityTaskHeartbeatById",
];

/// Calls whose responses hand out activity tasks: polls, and workflow-task completions that
/// carry eagerly dispatched activities (field 2 of the response).
const POLL: &str = "PollActivityTaskQueue";
/// Workflow tasks, read for the fault plans of their runs.
const WORKFLOW_POLL: &str = "PollWorkflowTaskQueue";
const WORKFLOW_TASK_COMPLETED: &str = "RespondWorkflowTaskCompleted";
const EAGER_TASKS_FIELD: u32 = 2;

/// A call the proxy could not carry out; the worker gets it as a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The frontend is unreachable or the connection broke.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The worker's request body broke off.
    #[error("the worker's request broke off: {0}")]
    Request(BoxError),
    /// The frontend's response body broke off.
    #[error("the response from the Temporal frontend at {address} broke off: {reason}")]
    Response {
        /// `host:port`.
        address: String,
        /// The transport error.
        reason: String,
    },
}

impl CallError {
    fn code(&self) -> Code {
        match self {
            CallError::Request(_) => Code::Internal,
            _ => Code::Unavailable,
        }
    }

    /// As an error of a call the proxy sends on a worker's behalf (whose request it holds whole).
    fn into_upstream(self, upstream: &Upstream) -> UpstreamError {
        match self {
            CallError::Upstream(e) => e,
            CallError::Request(e) => UpstreamError::Unreachable {
                address: upstream.address(),
                reason: e.to_string(),
            },
            CallError::Response { address, reason } => UpstreamError::Unreachable { address, reason },
        }
    }
}

/// The gRPC status of the frontend's answer to a forwarded call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CallStatus {
    /// `OK`.
    Ok,
    /// Another code, with its message.
    Code(i32, String),
    /// No `grpc-status` at all, with the HTTP status.
    Missing(StatusCode),
}

impl CallStatus {
    /// `Ok(())` for OK, else the status as the error of a call to `method`.
    fn into_result(self, method: &str, upstream: &Upstream) -> Result<(), UpstreamError> {
        let (code, message) = match self {
            CallStatus::Ok => return Ok(()),
            CallStatus::Code(code, message) => (code, message),
            CallStatus::Missing(http) => (code_of_http(http), format!("HTTP {http} without a gRPC status")),
        };
        Err(UpstreamError::Status {
            method: method.to_owned(),
            address: upstream.address(),
            code,
            message,
        })
    }
}

/// The gRPC code a client reads from an HTTP status without a gRPC one (gRPC's HTTP-to-gRPC
/// status mapping): a proxy or load balancer in the way that is down or busy is `UNAVAILABLE`,
/// which the proxy retries.
fn code_of_http(http: StatusCode) -> i32 {
    match http.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

impl std::fmt::Display for CallStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallStatus::Ok => f.write_str("ok"),
            CallStatus::Code(code, message) => write!(f, "gRPC status {code}: {message}"),
            CallStatus::Missing(http) => write!(f, "HTTP {http} without a gRPC status"),
        }
    }
}

/// A response read whole (`Ok((parts, body, trailers))`), or one to pass on as it is (`Err`).
type Collected = Result<(http::response::Parts, Bytes, Option<HeaderMap>), Response<ProxyBody>>;

/// State shared by all connections of one proxy.
pub struct Proxy {
    upstream: Upstream,
    plans: PlanLookup,
    log: AttemptLog,
    namespace: String,
    held: Mutex<JoinSet<()>>,
    closing: watch::Sender<bool>,
    polls: watch::Sender<u64>,
    pollers: Arc<Pollers>,
    calls: CallFaults,
}

/// The worker's answer to a call the proxy could not carry out. Expected while the frontend is
/// down (a restart scenario); the worker retries.
fn error_response(method: &str, e: &CallError) -> Response<ProxyBody> {
    debug!(method, error = %e, "answering the worker with an error status");
    grpc::status_response(e.code(), &format!("temporal-chaos wire proxy: {e}"))
}

fn incoming(body: Incoming) -> ProxyBody {
    body.map_err(Into::into).boxed_unsync()
}

impl Proxy {
    /// A proxy to `upstream`; `namespace` is used when a task does not name its own. Its
    /// attempt log keeps what `limits` allow.
    pub fn new(upstream: Upstream, namespace: String, limits: LogLimits) -> Self {
        Self {
            plans: PlanLookup::new(upstream.clone()),
            upstream,
            log: AttemptLog::new(limits),
            namespace,
            held: Mutex::new(JoinSet::new()),
            closing: watch::Sender::new(false),
            polls: watch::Sender::new(0),
            pollers: Arc::default(),
            calls: CallFaults::new(limits.max_attempts),
        }
    }

    /// The faults on the workers' calls, and what they did.
    pub fn calls(&self) -> &CallFaults {
        &self.calls
    }

    /// The workers polling through the proxy lately.
    pub fn pollers(&self) -> Vec<PollerSeen> {
        self.pollers.list()
    }

    /// The frontend it forwards to.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// How many task polls (workflow or activity) workers have sent through the proxy so far.
    pub fn polls(&self) -> watch::Receiver<u64> {
        self.polls.subscribe()
    }

    /// The attempt log.
    pub fn log(&self) -> &AttemptLog {
        &self.log
    }

    /// Shuts down: drops every held call and ends the calls in flight, which cancels their
    /// upstream half (a poll left running upstream could take a task that no worker gets).
    pub fn close(&self) {
        self.closing.send_replace(true);
        self.held.lock().expect("held calls lock").abort_all();
    }

    /// Becomes `true` when the proxy closes.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Handles one call from a worker on `worker`'s connection, unless the proxy closes first.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>, worker: WorkerConnection) -> Response<ProxyBody> {
        let mut closing = self.closing();
        tokio::select! {
            response = self.route(request, &worker) => response,
            _ = closing.wait_for(|closed| *closed) => {
                grpc::status_response(Code::Unavailable, "temporal-chaos wire proxy: shutting down")
            }
        }
    }

    async fn route(self: &Arc<Self>, request: Request<Incoming>, worker: &WorkerConnection) -> Response<ProxyBody> {
        let method = request
            .uri()
            .path()
            .strip_prefix(WORKFLOW_SERVICE)
            .unwrap_or_default()
            .to_owned();
        let (parts, body) = request.into_parts();
        // A poll's request is read (it is small) to note which queue the worker polls; the poll
        // counts as open until its answer goes back.
        let (body, _open, namespace) = if method.starts_with("Poll") && method.ends_with("TaskQueue") {
            self.polls.send_modify(|n| *n += 1);
            let (data, trailers) = match collect(body).await {
                Ok(collected) => collected,
                Err(e) => return error_response(&method, &CallError::Request(e)),
            };
            let open = self.pollers.poll(&method, &data, &parts.headers);
            let namespace = grpc::decode::<FirstString>(&data, &parts.headers)
                .ok()
                .and_then(|n| String::from_utf8(n.value.to_vec()).ok())
                .filter(|n| !n.is_empty());
            (grpc::body(data, trailers), open, namespace)
        } else {
            (incoming(body), None, None)
        };
        if let Some((code, message)) = self.calls.refusal(&method) {
            return grpc::status_response_of(code as u16, &message);
        }
        let namespace = namespace.unwrap_or_else(|| self.namespace.clone());
        let result = match method.as_str() {
            WORKFLOW_TASK_COMPLETED if self.calls.unsticking() => self.complete_then_unstick(parts, body, worker).await,
            POLL | WORKFLOW_TASK_COMPLETED => self.hand_out(&method, parts, body, worker).await,
            WORKFLOW_POLL => self.workflow_task(parts, body, &namespace).await,
            m if INSPECTED.contains(&m) => self.respond(&method, parts, body, worker).await,
            _ => self.upstream.send(parts, body).await.map_err(CallError::from),
        };
        result.unwrap_or_else(|e| error_response(&method, &e))
    }

    /// Sends the worker's call upstream as it is and collects the answer, with its status.
    async fn forward(
        upstream: &Upstream,
        parts: Parts,
        data: Bytes,
        trailers: Option<HeaderMap>,
    ) -> Result<(Response<ProxyBody>, CallStatus), CallError> {
        let response = upstream.send(parts, grpc::body(data, trailers)).await?;
        let (parts, body) = response.into_parts();
        let (data, trailers) = collect(body).await.map_err(|e| CallError::Response {
            address: upstream.address(),
            reason: e.to_string(),
        })?;
        let status = match grpc::status_of(&parts.headers, trailers.as_ref()) {
            Some((0, _)) => CallStatus::Ok,
            Some((code, message)) => CallStatus::Code(code, message),
            None => CallStatus::Missing(parts.status),
        };
        Ok((Response::from_parts(parts, grpc::body(data, trailers)), status))
    }

    /// A call whose response may hand activity tasks to the worker: each task is recorded, and
    /// those an injected failure ends are taken out of the response.
    async fn hand_out(
        self: &Arc<Self>,
        method: &str,
        parts: Parts,
        body: ProxyBody,
        worker: &WorkerConnection,
    ) -> Result<Response<ProxyBody>, CallError> {
        let credentials = Credentials::of(&parts.headers);
        let response = self.upstream.send(parts, body).await?;
        // The server has handed out what the response holds: record it (and apply its faults)
        // even if the worker goes away now, e.g. killed by a worker-crash fault, so that the log
        // still accounts for every attempt history counts.
        let proxy = Arc::clone(self);
        let (method, worker) = (method.to_owned(), worker.clone());
        tokio::spawn(async move { proxy.read_handed_out(&method, response, &worker, &credentials).await })
            .await
            .unwrap_or_else(|e| {
                Err(CallError::Response {
                    address: self.upstream.address(),
                    reason: format!("reading the response failed: {e}"),
                })
            })
    }

    /// The rest of [`Self::hand_out`] once the response headers are in.
    async fn read_handed_out(
        self: &Arc<Self>,
        method: &str,
        response: Response<ProxyBody>,
        worker: &WorkerConnection,
        credentials: &Credentials,
    ) -> Result<Response<ProxyBody>, CallError> {
        let (mut parts, data, trailers) = match self.collect_ok(response).await? {
            Ok(collected) => collected,
            Err(not_ok) => return Ok(not_ok),
        };
        let data = match self
            .take_out_injected(method, &data, &parts.headers, worker, credentials)
            .await
        {
            Some(message) => {
                parts.headers.remove(http::header::CONTENT_LENGTH);
                grpc::frame_bytes(&message)
            }
            None => data,
        };
        Ok(Response::from_parts(parts, grpc::body(data, trailers)))
    }

    /// A workflow task handed to the worker: the proxy learns the run's fault plan from it (see
    /// [`PlanLookup::learn`]), notes a replay, and does what a fault on the workers' calls says:
    /// forward it untouched, fail it on the worker's behalf, or keep it from the worker (which
    /// then gets an empty poll).
    async fn workflow_task(
        self: &Arc<Self>,
        parts: Parts,
        body: ProxyBody,
        namespace: &str,
    ) -> Result<Response<ProxyBody>, CallError> {
        let credentials = Credentials::of(&parts.headers);
        let response = self.upstream.send(parts, body).await?;
        let (mut parts, data, trailers) = match self.collect_ok(response).await? {
            Ok(collected) => collected,
            Err(not_ok) => return Ok(not_ok),
        };
        let encoding = parts.headers.get("grpc-encoding").and_then(|v| v.to_str().ok());
        let message = match grpc::first_message(&data, encoding) {
            Ok(message) => message,
            Err(e) => {
                debug!(error = %e, "cannot read a workflow task; forwarding it untouched");
                return Ok(Response::from_parts(parts, grpc::body(data, trailers)));
            }
        };
        if let Err(e) = self.plans.learn(&message) {
            debug!(error = %e, "cannot read a workflow task for fault plans; forwarding it untouched");
        }
        let Some(decision) = self.calls.workflow_task(&message) else {
            return Ok(Response::from_parts(parts, grpc::body(data, trailers)));
        };
        let (rule, withheld) = match decision.action {
            None => return Ok(Response::from_parts(parts, grpc::body(data, trailers))),
            Some((rule, TaskAction::DeliverThenUnstick)) => {
                self.calls
                    .unstick_after(decision.token, rule, &decision.task, namespace);
                return Ok(Response::from_parts(parts, grpc::body(data, trailers)));
            }
            Some((_, TaskAction::Deliver)) => return Ok(Response::from_parts(parts, grpc::body(data, trailers))),
            Some((rule, TaskAction::Withhold)) => (
                rule,
                CallEffect::TaskWithheld {
                    attempt: decision.task.attempt,
                },
            ),
            Some((rule, TaskAction::Fail(text))) => {
                let request = RespondWorkflowTaskFailedRequest {
                    task_token: decision.token.to_vec(),
                    cause: WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure as i32,
                    failure: Some(Failure {
                        message: text,
                        source: "temporal-chaos".into(),
                        failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo {
                            r#type: "ChaosWorkflowTaskFailure".into(),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }),
                    identity: IDENTITY.into(),
                    namespace: namespace.to_owned(),
                    ..Default::default()
                };
                let failed = self
                    .upstream
                    .unary::<_, RespondWorkflowTaskFailedResponse>(
                        "RespondWorkflowTaskFailed",
                        &request,
                        Some(namespace),
                        &credentials,
                    )
                    .await;
                if let Err(e) = failed {
                    warn!(error = %e, workflow_id = decision.task.workflow_id, "cannot fail the workflow task; handing it to the worker");
                    return Ok(Response::from_parts(parts, grpc::body(data, trailers)));
                }
                (
                    rule,
                    CallEffect::TaskFailed {
                        attempt: decision.task.attempt,
                    },
                )
            }
        };
        self.calls.note(Some(rule), Some(&decision.task.workflow_id), withheld);
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Ok(Response::from_parts(
            parts,
            grpc::body(grpc::frame_bytes(&no_task()), trailers),
        ))
    }

    /// A workflow task's completion while some run waits to be unstuck: forwarded, and once it
    /// went through, the run of that task is unstuck (`ResetStickyTaskQueue`) and the worker is
    /// told the task was not found, on which the SDKs evict the run from their cache: its next
    /// task comes with the whole history and is replayed. An answer that hands the worker more
    /// tasks is passed on as it is, and the run unstuck at its next completion.
    async fn complete_then_unstick(
        self: &Arc<Self>,
        parts: Parts,
        body: ProxyBody,
        worker: &WorkerConnection,
    ) -> Result<Response<ProxyBody>, CallError> {
        let (data, trailers) = collect(body).await.map_err(CallError::Request)?;
        let mut parts = parts;
        let credentials = Credentials::of(&parts.headers);
        let token = grpc::decode::<FirstString>(&data, &parts.headers)
            .map(|t| t.value)
            .unwrap_or_default();
        // Activities dispatched eagerly with this answer would be lost with it: they go through
        // the activity queue instead.
        let data = match self
            .calls
            .unsticks(&token)
            .then(|| without_eager_activities(&data, &parts.headers))
        {
            Some(Some(rewritten)) => {
                parts.headers.remove(http::header::CONTENT_LENGTH);
                rewritten
            }
            _ => data,
        };
        let response = self
            .hand_out(WORKFLOW_TASK_COMPLETED, parts, grpc::body(data, trailers), worker)
            .await?;
        let Some((rule, workflow_id, run_id, namespace)) = self.calls.take_unstick(&token) else {
            return Ok(response);
        };
        let (parts, body) = response.into_parts();
        let (data, trailers) = collect(body).await.map_err(|e| CallError::Response {
            address: self.upstream.address(),
            reason: e.to_string(),
        })?;
        let ok = grpc::status_of(&parts.headers, trailers.as_ref()).is_none_or(|(code, _)| code == 0);
        let more = grpc::decode::<CompletedHead>(&data, &parts.headers).map_or(true, |h| h.hands_out_tasks());
        let response = Response::from_parts(parts, grpc::body(data, trailers));
        if !ok {
            return Ok(response);
        }
        if more {
            self.calls.unstick_later(rule, workflow_id, run_id, namespace);
            return Ok(response);
        }
        let request = ResetStickyTaskQueueRequest {
            namespace: namespace.clone(),
            execution: Some(WorkflowExecution {
                workflow_id: workflow_id.clone(),
                run_id,
            }),
        };
        let reset = self
            .upstream
            .unary::<_, ResetStickyTaskQueueResponse>("ResetStickyTaskQueue", &request, Some(&namespace), &credentials)
            .await;
        if let Err(e) = reset {
            debug!(error = %e, workflow_id, "cannot reset the run's sticky queue; its cache stays");
            return Ok(response);
        }
        self.calls
            .note(Some(rule), Some(&workflow_id), CallEffect::CacheDropped);
        Ok(grpc::status_response_of(
            5,
            &format!(
                "[chaos infra #{rule}] temporal-chaos dropped this run from the worker's cache (the task completed)"
            ),
        ))
    }

    /// The whole body of an OK response with its parts and trailers; an error status (in the
    /// headers, or in the trailers) is handed back as a response to pass on as it is.
    async fn collect_ok(&self, response: Response<ProxyBody>) -> Result<Collected, CallError> {
        if response.status() != StatusCode::OK || response.headers().contains_key("grpc-status") {
            return Ok(Err(response));
        }
        let (parts, body) = response.into_parts();
        let (data, trailers) = collect(body).await.map_err(|e| CallError::Response {
            address: self.upstream.address(),
            reason: e.to_string(),
        })?;
        if grpc::status_of(&parts.headers, trailers.as_ref()).is_some_and(|(code, _)| code != 0) {
            return Ok(Err(Response::from_parts(parts, grpc::body(data, trailers))));
        }
        Ok(Ok((parts, data, trailers)))
    }

    /// Begins an attempt for every task in a response; when an injected failure keeps any of
    /// them from the worker, the response's message without them.
    async fn take_out_injected(
        self: &Arc<Self>,
        method: &str,
        data: &Bytes,
        headers: &HeaderMap,
        worker: &WorkerConnection,
        credentials: &Credentials,
    ) -> Option<Bytes> {
        let encoding = headers.get("grpc-encoding").and_then(|v| v.to_str().ok());
        let tasks = grpc::first_message(data, encoding).and_then(|message| {
            let tasks = if method == POLL {
                vec![PollActivityTaskQueueResponse::decode(message.clone())?]
            } else {
                RespondWorkflowTaskCompletedResponse::decode(message.clone())?.activity_tasks
            };
            Ok((message, tasks))
        });
        let (message, tasks) = tasks
            .inspect_err(
                |e| warn!(method, error = %e, "cannot read the activity tasks in a response; passing it on untouched"),
            )
            .ok()?;
        let mut kept = Vec::with_capacity(tasks.len());
        for task in tasks {
            let real = !task.task_token.is_empty();
            kept.push(real && self.begin(task, method != POLL, worker, credentials).await);
        }
        if !kept.contains(&true) {
            return None;
        }
        if method == POLL {
            return Some(no_task());
        }
        protobuf::drop_repeated(&message, EAGER_TASKS_FIELD, |i| kept.get(i).copied().unwrap_or(false))
            .inspect_err(
                |e| warn!(method, error = %e, "cannot take injected tasks out of a response; passing it on untouched"),
            )
            .ok()
    }

    /// Records a task handed out and decides its faults; sends the injected failure, if any.
    /// Returns whether the worker must not get the task.
    async fn begin(
        self: &Arc<Self>,
        task: PollActivityTaskQueueResponse,
        eager: bool,
        worker: &WorkerConnection,
        credentials: &Credentials,
    ) -> bool {
        // The attempt's time runs from here, by the proxy's own clock: the server's timestamps
        // only say how long it has (see `budget_of`), never when it ends.
        let arrived = Instant::now();
        let task_ms = now_ms();
        let budget = budget_of(&task);
        let deadline = arrived + budget.unwrap_or(MAX_ATTEMPT);
        let execution = task.workflow_execution.clone().unwrap_or_default();
        let namespace = if task.workflow_namespace.is_empty() {
            self.namespace.clone()
        } else {
            task.workflow_namespace.clone()
        };
        let activity_type = task.activity_type.as_ref().map(|t| t.name.clone()).unwrap_or_default();
        let attempt = u32::try_from(task.attempt).unwrap_or(1).max(1);
        let lookup_until = deadline.min(arrived + PLAN_LOOKUP_LIMIT);
        let (plan, plan_error) = match self
            .plans
            .plan_for(&namespace, &execution, lookup_until, credentials)
            .await
        {
            Ok(plan) => (plan, None),
            Err(e) => {
                warn!(workflow_id = execution.workflow_id, error = %e, "no faults for this attempt: its fault plan cannot be read");
                (None, Some(e.to_string()))
            }
        };
        let key = AttemptKey {
            workflow_id: &execution.workflow_id,
            activity_id: &task.activity_id,
            activity_type: &activity_type,
            attempt,
        };
        let effects: Vec<Injection> = plan
            .iter()
            .flat_map(|p| p.firing(&key))
            .filter_map(|rule| wire_effect(rule).map(|effect| Injection { rule: rule.id, effect }))
            .collect();
        let (behaviour, injected) = Behaviour::of(effects);
        if !behaviour.is_pass() {
            info!(
                workflow_id = key.workflow_id,
                activity = key.activity_type,
                attempt,
                "injecting on the wire: {injected:?}"
            );
        }
        let record = AttemptRecord {
            workflow_id: execution.workflow_id.clone(),
            run_id: execution.run_id.clone(),
            activity_id: task.activity_id.clone(),
            activity_type,
            attempt,
            task_ms,
            eager,
            delivered: behaviour.fail.is_none(),
            deadline_ms: budget.map(|b| task_ms + b.as_millis() as u64),
            injected,
            plan_error,
            answered_ms: None,
            answer: None,
            heartbeats_forwarded: 0,
            heartbeats_swallowed: 0,
            upstream: Vec::new(),
        };
        let live = self
            .log
            .begin(record, task.task_token.clone().into(), behaviour.clone(), deadline);
        let Some(WireEffect::Fail {
            error_type,
            message,
            non_retryable,
        }) = behaviour.fail
        else {
            return false;
        };
        let request = RespondActivityTaskFailedRequest {
            task_token: task.task_token,
            failure: Some(Failure {
                message: message.clone(),
                source: IDENTITY.into(),
                failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo {
                    r#type: error_type.clone(),
                    non_retryable,
                    ..Default::default()
                })),
                ..Default::default()
            }),
            identity: IDENTITY.into(),
            namespace,
            ..Default::default()
        };
        let upstream = self.upstream.clone();
        let credentials = credentials.clone();
        let send: Resend = Box::new(move || {
            let (upstream, request, credentials) = (upstream.clone(), request.clone(), credentials.clone());
            Box::pin(async move {
                let namespace = Some(request.namespace.as_str());
                upstream
                    .unary::<_, RespondActivityTaskFailedResponse>(
                        "RespondActivityTaskFailed",
                        &request,
                        namespace,
                        &credentials,
                    )
                    .await
                    .map(drop)
            })
        });
        let sent = Sent::InjectedFailure { error_type, message };
        self.deliver(live, behaviour.delay, sent, send, worker);
        true
    }

    /// A worker's answer or heartbeat for an attempt: forwarded, held or swallowed.
    async fn respond(
        self: &Arc<Self>,
        method: &str,
        parts: Parts,
        body: ProxyBody,
        worker: &WorkerConnection,
    ) -> Result<Response<ProxyBody>, CallError> {
        let (data, trailers) = collect(body).await.map_err(CallError::Request)?;
        let found = match read_call(method, &data, &parts.headers) {
            Ok(Some((target, answer))) => self.log.find(&target).map(|live| (live, answer)),
            Ok(None) => None,
            Err(e) => {
                warn!(method, error = %e, "cannot read the worker's call; forwarding it untouched");
                None
            }
        };
        let Some((live, answer)) = found else {
            return Self::forward(&self.upstream, parts, data, trailers)
                .await
                .map(|(r, _)| r);
        };
        let behaviour = &live.behaviour;
        let Some(answer) = answer else {
            if behaviour.swallow_heartbeats {
                self.log.update(&live, |r| r.heartbeats_swallowed += 1);
                return Ok(grpc::ok_response(&()));
            }
            self.log.update(&live, |r| r.heartbeats_forwarded += 1);
            return Self::forward(&self.upstream, parts, data, trailers)
                .await
                .map(|(r, _)| r);
        };
        self.log.answered(&live, answer);
        let call = method.to_owned();
        if behaviour.swallow_answer {
            let status = Delivery::not_sent("not sent: the proxy answered the worker OK itself");
            self.log.sent(&live, Sent::Withheld { call }, status);
            return Ok(grpc::ok_response(&()));
        }
        if !behaviour.delay.is_zero() {
            // The worker is told OK now; the proxy sends its answer when the delay ends, and
            // retries it there, since the worker will not.
            let upstream = self.upstream.clone();
            let method = call.clone();
            let send: Resend = Box::new(move || {
                let (upstream, method) = (upstream.clone(), method.clone());
                let (parts, data, trailers) = (copy_parts(&parts), data.clone(), trailers.clone());
                Box::pin(async move {
                    let (_, status) = Self::forward(&upstream, parts, data, trailers)
                        .await
                        .map_err(|e| e.into_upstream(&upstream))?;
                    status.into_result(&method, &upstream)
                })
            });
            let delay = live.behaviour.delay;
            self.deliver(live, delay, Sent::Forwarded { call }, send, worker);
            return Ok(grpc::ok_response(&()));
        }
        let forwarded = Self::forward(&self.upstream, parts, data, trailers).await;
        let delivery = match &forwarded {
            Ok((_, status)) => Delivery {
                status: status.to_string(),
                tries: 1,
                answered: true,
            },
            Err(e) => Delivery {
                status: e.to_string(),
                tries: 1,
                answered: false,
            },
        };
        self.log.sent(&live, Sent::Forwarded { call }, delivery);
        forwarded.map(|(r, _)| r)
    }

    /// Sends `send` upstream in the background after `hold` (at once when zero), retrying it up
    /// to the attempt's deadline, and records it as `sent`. A call held past the deadline is
    /// dropped there; one held when the worker's connection closes is dropped with it.
    fn deliver(&self, live: Live, hold: Duration, sent: Sent, mut send: Resend, worker: &WorkerConnection) {
        let log = self.log.clone();
        let address = self.upstream.address();
        let release = Instant::now() + hold;
        let gone = worker.gone.clone();
        let held = async move {
            if !hold.is_zero() {
                let call = sent.call();
                let dropped = tokio::select! {
                    () = gone.cancelled() => Some((
                        Sent::DroppedWorkerGone { call },
                        "dropped: the worker's connection closed while the proxy held the call",
                    )),
                    () = tokio::time::sleep_until(release.min(live.deadline)) => (release >= live.deadline).then_some((
                        Sent::DroppedAtDeadline { call },
                        "dropped: the attempt's deadline passed while the call was held",
                    )),
                };
                if let Some((sent, status)) = dropped {
                    log.sent(&live, sent, Delivery::not_sent(status));
                    return;
                }
            }
            let (result, tries) = retrying(&address, live.deadline, &mut send).await;
            if let Err(e) = &result {
                warn!(call = sent.call(), tries, error = %e, "the proxy could not deliver a call it made on a worker's behalf");
            }
            log.sent(&live, sent, Delivery::of(&result, tries));
        };
        let mut tasks = self.held.lock().expect("held calls lock");
        while tasks.try_join_next().is_some() {}
        tasks.spawn(held);
    }
}

/// A call the proxy makes on a worker's behalf, made anew for every try.
type Resend = Box<dyn FnMut() -> futures::future::BoxFuture<'static, Result<(), UpstreamError>> + Send>;

/// The message of a poll's answer whose task the proxy keeps from the worker: the empty message,
/// exactly the frontend's answer to a long poll that ends without a task. None of the real
/// answer's fields is kept, `poller_scaling_decision` and `backlog_count_hint` included: sdk-core
/// (under the Python, TypeScript, .NET and Rust SDKs) takes an answer for "no task" only when it
/// equals the default message, and reads one with any field set as a task without a token, an
/// invalid task (an error from an activity poll, an error logged for a workflow poll); the Go SDK
/// reads an answer without a task token as empty and uses neither field of it.
fn no_task() -> Bytes {
    Bytes::new()
}

/// A copy of a request's method, URI, version and headers (its extensions are left out).
fn copy_parts(parts: &Parts) -> Parts {
    let mut request = Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request.into_parts().0
}

/// One worker's HTTP/2 connection to the proxy. What the proxy holds for it (an answer sent on
/// late, an injected failure) is dropped when it closes, as a dead worker's unsent answer is.
#[derive(Debug, Clone, Default)]
pub struct WorkerConnection {
    gone: CancellationToken,
}

impl WorkerConnection {
    /// Marks the connection closed when the guard drops: everything held for it is dropped.
    pub fn closed_on_drop(&self) -> DropGuard {
        self.gone.clone().drop_guard()
    }
}

/// A workflow task's completion with none of its activities asked to be dispatched eagerly,
/// reframed; `None` when it asks for none (or cannot be read).
fn without_eager_activities(data: &Bytes, headers: &HeaderMap) -> Option<Bytes> {
    use temporalio_common::protos::temporal::api::command::v1::command::Attributes as Command;
    let mut request: RespondWorkflowTaskCompletedRequest = grpc::decode(data, headers).ok()?;
    let mut changed = false;
    for command in &mut request.commands {
        if let Some(Command::ScheduleActivityTaskCommandAttributes(a)) = &mut command.attributes
            && a.request_eager_execution
        {
            a.request_eager_execution = false;
            changed = true;
        }
    }
    changed.then(|| grpc::frame(&request))
}

/// Which attempt an inspected call is about, and the worker's answer (`None` for heartbeats).
/// `Ok(None)` for calls the proxy does not inspect.
pub(super) fn read_call(
    method: &str,
    data: &Bytes,
    headers: &HeaderMap,
) -> Result<Option<(Target, Option<Answer>)>, FrameError> {
    let token = |t: Vec<u8>| Target::Token(t.into());
    let by_id = |workflow_id, activity_id| Target::Activity {
        workflow_id,
        activity_id,
    };
    Ok(Some(match method {
        "RespondActivityTaskCompleted" => {
            let r: RespondActivityTaskCompletedRequest = grpc::decode(data, headers)?;
            (token(r.task_token), Some(Answer::Completed))
        }
        "RespondActivityTaskCompletedById" => {
            let r: RespondActivityTaskCompletedByIdRequest = grpc::decode(data, headers)?;
            (by_id(r.workflow_id, r.activity_id), Some(Answer::Completed))
        }
        "RespondActivityTaskFailed" => {
            let r: RespondActivityTaskFailedRequest = grpc::decode(data, headers)?;
            (token(r.task_token), Some(Answer::failed(r.failure.as_ref())))
        }
        "RespondActivityTaskFailedById" => {
            let r: RespondActivityTaskFailedByIdRequest = grpc::decode(data, headers)?;
            let answer = Answer::failed(r.failure.as_ref());
            (by_id(r.workflow_id, r.activity_id), Some(answer))
        }
        "RespondActivityTaskCanceled" => {
            let r: RespondActivityTaskCanceledRequest = grpc::decode(data, headers)?;
            (token(r.task_token), Some(Answer::Canceled))
        }
        "RespondActivityTaskCanceledById" => {
            let r: RespondActivityTaskCanceledByIdRequest = grpc::decode(data, headers)?;
            (by_id(r.workflow_id, r.activity_id), Some(Answer::Canceled))
        }
        "RecordActivityTaskHeartbeat" => {
            let r: RecordActivityTaskHeartbeatRequest = grpc::decode(data, headers)?;
            (token(r.task_token), None)
        }
        "RecordActivityTaskHeartbeatById" => {
            let r: RecordActivityTaskHeartbeatByIdRequest = grpc::decode(data, headers)?;
            (by_id(r.workflow_id, r.activity_id), None)
        }
        _ => return Ok(None),
    }))
}

/// How long the attempt has from its start: the nearer of start-to-close and what is left of
/// schedule-to-close (which runs from the first schedule). Worked out from the task's own
/// timestamps and timeouts, all of the server's clock, never against the proxy's clock, which may
/// be seconds off (a sidecar on another host): the proxy counts the budget from when the task
/// reached it. At most [`LONGEST_BUDGET`].
pub(super) fn budget_of(task: &PollActivityTaskQueueResponse) -> Option<Duration> {
    let span = |d: &Option<prost_wkt_types::Duration>| {
        let d = d.as_ref()?;
        let d = Duration::new(u64::try_from(d.seconds).ok()?, u32::try_from(d.nanos).ok()?);
        (!d.is_zero()).then_some(d)
    };
    let nanos = |t: &Option<prost_wkt_types::Timestamp>| {
        t.as_ref()
            .map(|t| i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos))
    };
    let schedule_left = span(&task.schedule_to_close_timeout).map(|total| {
        let used = match (nanos(&task.scheduled_time), nanos(&task.started_time)) {
            (Some(scheduled), Some(started)) => {
                u64::try_from(started - scheduled).map_or(Duration::ZERO, Duration::from_nanos)
            }
            _ => Duration::ZERO,
        };
        total.saturating_sub(used)
    });
    [span(&task.start_to_close_timeout), schedule_left]
        .into_iter()
        .flatten()
        .min()
        .map(|budget| budget.min(LONGEST_BUDGET))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn a_task_kept_from_the_worker_is_answered_as_a_poll_that_found_none() {
        use temporalio_common::protos::temporal::api::workflowservice::v1::PollWorkflowTaskQueueResponse;
        // What the SDKs compare an answer with to tell a poll that found no task (sdk-core:
        // `wft == PollWorkflowTaskQueueResponse::default()`, `task == Default::default()`).
        let workflow = PollWorkflowTaskQueueResponse::decode(no_task()).unwrap();
        assert_eq!(workflow, PollWorkflowTaskQueueResponse::default());
        let activity = PollActivityTaskQueueResponse::decode(no_task()).unwrap();
        assert_eq!(activity, PollActivityTaskQueueResponse::default());
    }

    #[test]
    fn every_inspected_call_is_read() {
        let empty = HeaderMap::new();
        for method in INSPECTED {
            let read = read_call(method, &Bytes::new(), &empty).unwrap();
            assert!(read.is_some(), "{method} is listed but not read");
        }
        assert!(
            read_call("PollWorkflowTaskQueue", &Bytes::new(), &empty)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_budget_is_the_nearer_close_timeout_whatever_the_proxy_clock() {
        let secs = |s: i64| Some(prost_wkt_types::Duration { seconds: s, nanos: 0 });
        // The server's clock: ten minutes ahead of, and then behind, the proxy's.
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        for skew in [600, -600, 5] {
            let at = |s: i64| {
                Some(prost_wkt_types::Timestamp {
                    seconds: now + skew + s,
                    nanos: 0,
                })
            };
            let task = PollActivityTaskQueueResponse {
                scheduled_time: at(0),
                started_time: at(30),
                start_to_close_timeout: secs(10),
                schedule_to_close_timeout: secs(35),
                ..Default::default()
            };
            assert_eq!(
                budget_of(&task),
                Some(Duration::from_secs(5)),
                "skew {skew}s: 35 s less the 30 s used"
            );
            let roomy = PollActivityTaskQueueResponse {
                schedule_to_close_timeout: secs(100),
                ..task
            };
            assert_eq!(
                budget_of(&roomy),
                Some(Duration::from_secs(10)),
                "skew {skew}s: start-to-close"
            );
        }
        let no_timeouts = PollActivityTaskQueueResponse::default();
        assert_eq!(budget_of(&no_timeouts), None);
    }
}
