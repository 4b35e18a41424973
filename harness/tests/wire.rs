//! The wire-level fault proxy against a real dev server: the demo worker runs behind the proxy,
//! fault plans come from the root workflow's memo, and history plus the attempt log show what
//! happened to every attempt.

mod common;

use common::wire::{WAIT, client, history, options, plan, resilient, retryable_error, rule, settings, start_proxy};
use std::time::Duration;
use temporal_chaos::{
    failure::{FailureKind, TimeoutKind},
    faults::{DelayFault, FaultAction, FaultPlan, HangFault},
    history::{ActivityExecution, HistoryFacts},
    infra::{CallEffect, CallFault, TaskAction, WireControl, WorkflowTaskSeen},
    plan::{ActivitySettings, OrchestrationInput, ResilientInput},
    target::{ConnectionSettings, Endpoint, connect},
    wire::{Answer, AttemptRecord, Sent, WireEffect, WireProxy, WireSettings, serve},
    worker::{register_workflows, run_worker_until},
    workflows::{DemoActivities, Orchestration, Path, ResilientCall},
};
use temporalio_client::{Client, UntypedWorkflow, WorkflowFetchHistoryOptions, WorkflowGetResultOptions};
use temporalio_common::{
    RetryPolicy,
    protos::temporal::api::{
        common::v1::WorkflowExecution,
        history::v1::history_event::Attributes,
        taskqueue::v1::TaskQueue,
        workflowservice::v1::{
            DescribeWorkflowExecutionRequest, GetSystemInfoRequest, PollActivityTaskQueueRequest,
            workflow_service_client::WorkflowServiceClient,
        },
    },
};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, Runtime, Worker, WorkerOptions, WorkflowContext, WorkflowResult,
    activities::{ActivityContext, ActivityError},
};

/// Runs a resilient workflow (started directly on the server) to its result.
async fn run_resilient(direct: &Client, tq: &str, id: &str, input: ResilientInput, plan: &FaultPlan) -> Path {
    let handle = direct
        .start_workflow(ResilientCall::run, input, options(tq, id, Some(plan)))
        .await
        .expect("start");
    let output = tokio::time::timeout(WAIT, handle.get_result(WorkflowGetResultOptions::default()))
        .await
        .unwrap_or_else(|_| panic!("{id} did not finish"))
        .unwrap_or_else(|e| panic!("{id} failed: {e}"));
    output.path
}

/// Starts the demo orchestration `id` on `tq` with `plan`, and waits (bounded) for its result.
async fn run_orchestration(
    direct: &Client,
    tq: &str,
    id: &str,
    input: OrchestrationInput,
    plan: &FaultPlan,
) -> serde_json::Number {
    let handle = direct
        .start_workflow(Orchestration::run, input, options(tq, id, Some(plan)))
        .await
        .expect("start");
    tokio::time::timeout(WAIT, handle.get_result(WorkflowGetResultOptions::default()))
        .await
        .unwrap_or_else(|_| panic!("{id} did not finish"))
        .unwrap_or_else(|e| panic!("{id} failed: {e}"))
}

/// Runs a resilient workflow whose first `risky` attempt the proxy fails, with only its activities
/// through the proxy (`via_proxy`), so that the proxy looks the plan up on the frontend.
async fn activities_through(direct: &Client, via_proxy: Client, tq: &str, workflow_id: &str) -> Path {
    let runtime = Runtime::from_current_tokio(Default::default()).unwrap();
    let mut workflows_options = WorkerOptions::new(tq).build();
    register_workflows(&mut workflows_options).unwrap();
    let mut workflows = Worker::new(&runtime, direct.clone(), workflows_options).unwrap();
    let activity_options = WorkerOptions::new(tq).register_activities(DemoActivities).build();
    let mut activities = Worker::new(&runtime, via_proxy, activity_options).unwrap();
    let (stop_workflows, stop_activities) = (workflows.shutdown_handle(), activities.shutdown_handle());
    let error = retryable_error("declined on the wire", "Flaky");
    let faults = plan(vec![rule(1, "risky", "1", error)]);
    let run = async {
        let input = resilient(settings(Duration::from_secs(10), 3));
        let path = run_resilient(direct, tq, workflow_id, input, &faults).await;
        stop_workflows();
        stop_activities();
        path
    };
    let (ran_workflows, ran_activities, path) = futures::join!(workflows.run(), activities.run(), run);
    ran_workflows.expect("workflow worker");
    ran_activities.expect("activity worker");
    path
}

fn records<'a>(all: &'a [AttemptRecord], workflow_id: &str, activity: &str) -> Vec<&'a AttemptRecord> {
    all.iter()
        .filter(|r| r.workflow_id == workflow_id && r.activity_type == activity)
        .collect()
}

fn only_activity<'a>(facts: &'a HistoryFacts, activity: &str) -> &'a ActivityExecution {
    let found: Vec<_> = facts
        .activities
        .iter()
        .filter(|a| a.activity_type == activity)
        .collect();
    assert_eq!(found.len(), 1, "one {activity} in {}", facts.workflow_id);
    found[0]
}

fn upstream_status(record: &AttemptRecord) -> Vec<(&Sent, &str)> {
    record.upstream.iter().map(|e| (&e.sent, e.status.as_str())).collect()
}

#[tokio::test]
async fn workflows_complete_through_the_proxy_and_large_messages_pass_untouched() {
    let server = common::dev_server();
    let proxy = start_proxy(&server.address).await;
    let via_proxy = client(proxy.address()).await;
    let tq = "wire-pass";
    let input = OrchestrationInput {
        numbers: vec![2.into(), 3.into(), 4.into()],
        activity: settings(Duration::from_secs(10), 3),
    };
    let result = run_worker_until(via_proxy.clone(), tq, async {
        let handle = via_proxy
            .start_workflow(Orchestration::run, input, options(tq, "wire-pass-orchestration", None))
            .await
            .expect("start through the proxy");
        tokio::time::timeout(WAIT, handle.get_result(WorkflowGetResultOptions::default())).await
    })
    .await
    .expect("worker");
    assert_eq!(result.expect("in time").expect("completes"), (9 + 24).into());
    let attempts = proxy.attempts();
    for activity in ["add", "multiply", "sum"] {
        let seen: Vec<_> = attempts.iter().filter(|r| r.activity_type == activity).collect();
        assert_eq!(seen.len(), 1, "one {activity} attempt in the log: {attempts:#?}");
        let r = seen[0];
        assert!(r.injected.is_empty() && r.delivered);
        assert_eq!(r.answer, Some(Answer::Completed));
        assert!(r.answered_ms.unwrap() >= r.task_ms);
        assert_eq!(
            upstream_status(r),
            [(
                &Sent::Forwarded {
                    call: "RespondActivityTaskCompleted".into()
                },
                "ok"
            )]
        );
    }
    // Child workflows' activities are logged under the child's id.
    assert!(
        attempts
            .iter()
            .any(|r| r.workflow_id == "wire-pass-orchestration-addition")
    );

    // A 1.5 MB workflow input travels up through the proxy and comes back byte for byte, in
    // the history read through the proxy. (No worker polls `wire-nobody`.)
    let big: String = (0..1_500_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let input = OrchestrationInput {
        numbers: vec![big.clone().into()],
        activity: ActivitySettings::default(),
    };
    via_proxy
        .start_workflow(Orchestration::run, input, options("wire-nobody", "wire-big", None))
        .await
        .expect("a large start request passes");
    let events = via_proxy
        .get_workflow_handle::<UntypedWorkflow>("wire-big".to_owned())
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .expect("a large history passes");
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) = &events[0].attributes else {
        panic!("the first event starts the workflow: {:?}", events[0].event_type);
    };
    let payload = &started.input.as_ref().unwrap().payloads[0];
    let echoed: OrchestrationInput = serde_json::from_slice(&payload.data).unwrap();
    assert_eq!(echoed.numbers, [serde_json::Value::String(big)]);

    // Shutting down ends a long poll in flight at once (and with it its upstream half).
    let mut raw = WorkflowServiceClient::connect(format!("http://{}", proxy.address()))
        .await
        .unwrap();
    let poll = tokio::spawn(async move {
        let request = PollActivityTaskQueueRequest {
            namespace: "default".into(),
            task_queue: Some(TaskQueue {
                name: "wire-nobody".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut request = temporalio_client::tonic::Request::new(request);
        request.set_timeout(Duration::from_secs(60));
        raw.poll_activity_task_queue(request).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!poll.is_finished(), "a long poll waits for a task: {:?}", poll.await);
    proxy.shutdown().await;
    let status = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("the poll ends with the proxy")
        .unwrap()
        .expect_err("no task");
    assert_eq!(status.code(), temporalio_client::tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
}

#[tokio::test]
async fn faults_from_the_memo_act_on_the_wire() {
    let server = common::dev_server();
    let proxy = start_proxy(&server.address).await;
    let direct = client(server.address.clone()).await;
    let via_proxy = client(proxy.address()).await;
    let tq = "wire-faults";
    let error = retryable_error("injected on the wire", "Flaky");
    let error_plan = plan(vec![rule(1, "risky", "1..2", error.clone())]);
    let hang_plan = plan(vec![rule(1, "risky", "1", FaultAction::Hang(HangFault {}))]);
    let delay = Duration::from_millis(1500);
    let delay_plan = plan(vec![rule(
        2,
        "risky",
        "1",
        FaultAction::Delay(DelayFault { duration: delay }),
    )]);
    let long_delay = FaultAction::Delay(DelayFault {
        duration: Duration::from_secs(5),
    });
    let late_plan = plan(vec![rule(1, "risky", "1", long_delay)]);
    let child_plan = plan(vec![rule(1, "add", "1", error)]);
    let orchestration = OrchestrationInput {
        numbers: vec![2.into(), 3.into()],
        activity: settings(Duration::from_secs(10), 3),
    };
    let paths = run_worker_until(via_proxy, tq, async {
        let child = run_orchestration(&direct, tq, "wire-child", orchestration, &child_plan);
        futures::join!(
            run_resilient(
                &direct,
                tq,
                "wire-error",
                resilient(settings(Duration::from_secs(5), 5)),
                &error_plan
            ),
            run_resilient(
                &direct,
                tq,
                "wire-hang",
                resilient(settings(Duration::from_secs(2), 2)),
                &hang_plan
            ),
            run_resilient(
                &direct,
                tq,
                "wire-delay",
                resilient(settings(Duration::from_secs(10), 2)),
                &delay_plan
            ),
            run_resilient(
                &direct,
                tq,
                "wire-late",
                resilient(settings(Duration::from_secs(2), 2)),
                &late_plan
            ),
            child,
        )
    })
    .await
    .expect("worker");
    let (error_path, hang_path, delay_path, late_path, sum) = paths;
    assert_eq!(
        (error_path, hang_path, delay_path, late_path, sum),
        (
            Path::Primary,
            Path::Primary,
            Path::Primary,
            Path::Primary,
            (5 + 6).into()
        )
    );
    let log = proxy.attempts();

    // error: two attempts failed by the proxy with the typed failure, the third ran.
    let facts = history(&direct, "wire-error").await;
    let risky = only_activity(&facts, "risky");
    assert_eq!(risky.attempts, 3);
    let failure = risky.last_failure.as_ref().expect("attempt 2's failure in history");
    assert_eq!(failure.kind, FailureKind::Error("Flaky".into()));
    assert_eq!(failure.message, "[chaos fault #1] injected on the wire");
    let attempts = records(&log, "wire-error", "risky");
    assert_eq!(attempts.len(), 3, "{attempts:#?}");
    for (r, n) in attempts.iter().zip(1..) {
        assert_eq!(r.attempt, n);
    }
    for r in &attempts[..2] {
        assert_eq!(r.injected.len(), 1);
        assert_eq!(r.injected[0].rule, 1);
        assert!(matches!(r.injected[0].effect, WireEffect::Fail { .. }));
        assert!(!r.delivered && r.answer.is_none(), "the worker never ran it: {r:#?}");
        let sent = Sent::InjectedFailure {
            error_type: "Flaky".into(),
            message: "[chaos fault #1] injected on the wire".into(),
        };
        assert_eq!(upstream_status(r), [(&sent, "ok")]);
    }
    assert!(attempts[2].injected.is_empty() && attempts[2].delivered);
    assert_eq!(attempts[2].answer, Some(Answer::Completed));

    // hang: the worker's completion was swallowed and the server timed attempt 1 out.
    let facts = history(&direct, "wire-hang").await;
    let risky = only_activity(&facts, "risky");
    assert_eq!(risky.attempts, 2);
    let failure = risky.last_failure.as_ref().expect("attempt 1's timeout in history");
    assert_eq!(failure.kind, FailureKind::Timeout(TimeoutKind::StartToClose));
    let attempts = records(&log, "wire-hang", "risky");
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[0].answer, Some(Answer::Completed), "the worker did answer");
    let withheld = Sent::Withheld {
        call: "RespondActivityTaskCompleted".into(),
    };
    assert_eq!(upstream_status(attempts[0]).len(), 1);
    assert_eq!(upstream_status(attempts[0])[0].0, &withheld);
    assert_eq!(attempts[1].upstream[0].status, "ok");

    // delay: the completion reached the server late, and the worker was not kept waiting.
    let facts = history(&direct, "wire-delay").await;
    let risky = only_activity(&facts, "risky");
    assert_eq!(risky.attempts, 1);
    let took = risky
        .closed_at
        .unwrap()
        .duration_since(risky.last_started_at.unwrap())
        .unwrap();
    assert!(took >= delay, "completion recorded {took:?} after the start");
    let attempts = records(&log, "wire-delay", "risky");
    assert_eq!(attempts.len(), 1);
    let r = attempts[0];
    let forwarded = &r.upstream[0];
    assert_eq!(forwarded.status, "ok");
    assert!(forwarded.at_ms >= r.answered_ms.unwrap() + 1500, "{r:#?}");

    // A delay past the attempt's deadline: the held completion is dropped there.
    let facts = history(&direct, "wire-late").await;
    let risky = only_activity(&facts, "risky");
    assert_eq!(risky.attempts, 2);
    let attempts = records(&log, "wire-late", "risky");
    let dropped = &attempts[0].upstream[0];
    assert_eq!(
        dropped.sent,
        Sent::DroppedAtDeadline {
            call: "RespondActivityTaskCompleted".into()
        }
    );
    assert!(
        dropped.at_ms <= attempts[0].deadline_ms.unwrap() + 500,
        "{:#?}",
        attempts[0]
    );

    // A child workflow's activity gets its root's plan.
    let facts = history(&direct, "wire-child-addition").await;
    assert_eq!(only_activity(&facts, "add").attempts, 2);
    let attempts = records(&log, "wire-child-addition", "add");
    assert_eq!(attempts.len(), 2);
    assert!(!attempts[0].delivered && attempts[1].delivered);
    assert!(
        records(&log, "wire-child-multiplication", "multiply")[0]
            .injected
            .is_empty()
    );

    let injected = log.iter().filter(|r| !r.injected.is_empty()).count();
    assert_eq!(injected, 2 + 1 + 1 + 1 + 1, "{log:#?}");
    proxy.shutdown().await;
}

/// A long activity that heartbeats, which none of the demo activities does.
pub struct Beating;

#[activities]
impl Beating {
    /// Heartbeats every 100 ms for `millis`, then returns its attempt number.
    #[activity(name = "beat")]
    pub async fn beat(ctx: ActivityContext, millis: u64) -> Result<u32, ActivityError> {
        let began = std::time::Instant::now();
        while began.elapsed() < Duration::from_millis(millis) {
            ctx.record_heartbeat(began.elapsed().as_millis() as u64).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(ctx.info().attempt)
    }
}

/// Runs `beat` once, with a 1 s heartbeat timeout and one retry.
#[workflow]
#[derive(Default)]
pub struct Heartbeating;

#[workflow_methods]
impl Heartbeating {
    /// Returns the attempt that completed.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, millis: u64) -> WorkflowResult<u32> {
        let mut options = ActivityOptions::start_to_close_timeout(Duration::from_secs(20));
        options.heartbeat_timeout = Some(Duration::from_secs(1));
        options.retry_policy = Some(
            RetryPolicy::builder()
                .initial_interval(Duration::from_millis(100))
                .maximum_attempts(2)
                .build(),
        );
        Ok(ctx.execute_activity(Beating::beat, millis, options).await?)
    }
}

/// Runs [`Heartbeating`] for `millis` as workflow `id` (started directly, with `plan` in its
/// memo) on a worker of queue `id` that connects with `worker`; the attempt that completed.
async fn run_heartbeating(direct: &Client, worker: Client, id: &str, plan: Option<&FaultPlan>, millis: u64) -> u32 {
    let runtime = Runtime::from_current_tokio(Default::default()).unwrap();
    let worker_options = WorkerOptions::new(id)
        .register_workflow::<Heartbeating>()
        .unwrap()
        .register_activities(Beating)
        .build();
    let mut worker = Worker::new(&runtime, worker, worker_options).unwrap();
    let shutdown = worker.shutdown_handle();
    let run = async {
        let handle = direct
            .start_workflow(Heartbeating::run, millis, options(id, id, plan))
            .await
            .expect("start");
        let result = tokio::time::timeout(WAIT, handle.get_result(WorkflowGetResultOptions::default())).await;
        shutdown();
        result
    };
    let (worked, result) = futures::join!(worker.run(), run);
    worked.expect("worker");
    result.expect("in time").expect("completes")
}

#[tokio::test]
async fn a_hang_swallows_heartbeats_until_the_heartbeat_timeout() {
    let server = common::dev_server();
    let proxy = start_proxy(&server.address).await;
    let direct = client(server.address.clone()).await;
    let via_proxy = client(proxy.address()).await;
    let hang = plan(vec![rule(1, "beat", "1", FaultAction::Hang(HangFault {}))]);
    let completed = run_heartbeating(&direct, via_proxy, "wire-heartbeats", Some(&hang), 3000).await;
    assert_eq!(completed, 2, "attempt 2 completes");
    let facts = history(&direct, "wire-heartbeats").await;
    let beat = only_activity(&facts, "beat");
    assert_eq!(beat.attempts, 2);
    let failure = beat.last_failure.as_ref().expect("attempt 1's timeout");
    assert_eq!(failure.kind, FailureKind::Timeout(TimeoutKind::Heartbeat));
    let log = proxy.attempts();
    let attempts = records(&log, "wire-heartbeats", "beat");
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    let (first, second) = (attempts[0], attempts[1]);
    assert!(
        first.heartbeats_swallowed >= 1 && first.heartbeats_forwarded == 0,
        "{first:#?}"
    );
    assert_eq!(
        first.answer,
        Some(Answer::Completed),
        "attempt 1 ran to its end, unaware"
    );
    assert!(matches!(first.upstream[0].sent, Sent::Withheld { .. }), "{first:#?}");
    assert!(
        second.heartbeats_forwarded >= 2 && second.heartbeats_swallowed == 0,
        "{second:#?}"
    );
    assert_eq!(second.upstream[0].status, "ok");
    proxy.shutdown().await;
}

/// A sidecar in front of an activity-only worker never sees the workflow tasks (another worker
/// runs the workflow, directly): the proxy finds the plan by asking the frontend instead.
#[tokio::test]
async fn without_the_workflow_tasks_the_plan_is_looked_up_on_the_server() {
    let server = common::dev_server();
    let proxy = start_proxy(&server.address).await;
    let direct = client(server.address.clone()).await;
    let via_proxy = client(proxy.address()).await;
    let path = activities_through(&direct, via_proxy, "wire-activities-only", "wire-lookup").await;
    assert_eq!(path, Path::Primary);
    let risky = only_activity(&history(&direct, "wire-lookup").await, "risky").attempts;
    assert_eq!(risky, 2, "attempt 1 failed by the proxy, attempt 2 ran");
    let log = proxy.attempts();
    let attempts = records(&log, "wire-lookup", "risky");
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert!(!attempts[0].eager && attempts[0].injected.len() == 1, "{attempts:#?}");
    assert!(attempts[1].injected.is_empty(), "{attempts:#?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_dead_upstream_is_an_unavailable_status_not_a_hang() {
    // As `chaos proxy` runs it: `serve` until told to stop.
    let dead = format!("127.0.0.1:{}", common::free_port());
    let listen: std::net::SocketAddr = format!("127.0.0.1:{}", common::free_port()).parse().unwrap();
    let settings = WireSettings::new(vec![listen], Endpoint::local(dead, "default".into()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(serve(settings.clone(), async {
        let _ = stopped.await;
    }));
    let began = std::time::Instant::now();
    let mut raw = loop {
        match WorkflowServiceClient::connect(format!("http://{listen}")).await {
            Ok(c) => break c,
            Err(e) => assert!(
                began.elapsed() < Duration::from_secs(10),
                "the proxy does not listen: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let taken = serve(settings, std::future::pending())
        .await
        .expect_err("the port is taken");
    assert!(
        taken.to_string().contains(&format!("cannot listen on {listen}")),
        "{taken}"
    );
    let status = tokio::time::timeout(
        Duration::from_secs(15),
        raw.get_system_info(GetSystemInfoRequest::default()),
    )
    .await
    .expect("an answer, not a hang")
    .expect_err("no frontend behind the proxy");
    assert_eq!(status.code(), temporalio_client::tonic::Code::Unavailable);
    let message = status.message();
    assert!(
        message.contains("temporal-chaos wire proxy: cannot reach the Temporal frontend at 127.0.0.1:")
            && message.contains("onnection refused"),
        "{message}"
    );
    let bad = WireProxy::start(WireSettings::new(
        vec!["127.0.0.1:0".parse().unwrap()],
        Endpoint::local("localhost".into(), "default".into()),
    ))
    .await
    .err()
    .expect("no port");
    assert!(bad.to_string().contains("HOST:PORT"), "{bad}");
    stop.send(()).unwrap();
    let log = serving.await.unwrap().expect("serve ends when told to");
    assert!(log.is_empty(), "no activity task went through: {log:?}");
}

#[tokio::test]
async fn the_proxys_own_calls_are_retried_and_a_call_that_never_lands_is_logged() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let server = common::dev_server();
    // The frontend sheds the proxy's own injected failures: the first two, then (once told) all.
    let refusals = std::sync::Arc::new(AtomicU32::new(2));
    let refusing = refusals.clone();
    let (port, seen) = common::hop::hop(server.grpc_port, move |parts| {
        let own = parts.uri.path().ends_with("/RespondActivityTaskFailed")
            && parts
                .headers
                .get(http::header::USER_AGENT)
                .is_some_and(|a| a == "temporal-chaos-wire-proxy");
        let refuse = own
            && refusing
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        refuse.then_some(14)
    });
    let proxy = start_proxy(&format!("127.0.0.1:{port}")).await;
    let direct = client(server.address.clone()).await;
    let via_proxy = client(proxy.address()).await;
    let tq = "wire-own-calls";
    let error = retryable_error("declined", "Declined");
    let error_plan = plan(vec![rule(1, "risky", "1", error)]);
    run_worker_until(via_proxy, tq, async {
        let input = resilient(settings(Duration::from_secs(3), 3));
        assert_eq!(
            run_resilient(&direct, tq, "wire-shed", input.clone(), &error_plan).await,
            Path::Primary
        );
        refusals.store(u32::MAX, Ordering::SeqCst);
        assert_eq!(
            run_resilient(&direct, tq, "wire-lost", input, &error_plan).await,
            Path::Primary
        );
    })
    .await
    .expect("the worker runs");
    let attempts = proxy.attempts();

    // Shed twice, delivered on the third try: attempt 1 failed with the injected error.
    let shed = records(&attempts, "wire-shed", "risky");
    let injected = &shed[0].upstream[0];
    assert!(matches!(injected.sent, Sent::InjectedFailure { .. }), "{injected:?}");
    assert_eq!(
        (injected.status.as_str(), injected.tries, injected.answered),
        ("ok", 3, true)
    );
    let facts = history(&direct, "wire-shed").await;
    let risky = only_activity(&facts, "risky");
    assert_eq!(risky.attempts, 2);
    let failure = risky.last_failure.as_ref().unwrap();
    assert_eq!(failure.kind, FailureKind::Error("Declined".into()), "{failure:?}");

    // Shed until the attempt's 3 s were up: logged as such; the attempt timed out instead.
    let lost = records(&attempts, "wire-lost", "risky");
    let injected = &lost[0].upstream[0];
    assert!(injected.status.contains("gRPC status 14"), "{injected:?}");
    assert!(injected.tries > 3 && !injected.answered, "{injected:?}");
    let facts = history(&direct, "wire-lost").await;
    let failure = only_activity(&facts, "risky").last_failure.clone().unwrap();
    assert_eq!(
        failure.kind,
        FailureKind::Timeout(TimeoutKind::StartToClose),
        "{failure:?}"
    );
    let refused = seen.lock().unwrap().iter().filter(|c| c.refused.is_some()).count();
    assert_eq!(refused as u32, 2 + injected.tries);
}

/// A fault on the workflow tasks that go through the proxy: the first is failed on the worker's
/// behalf, the second delivered and its run unstuck (`ResetStickyTaskQueue`) once it completes.
struct FailThenUnstick(std::sync::atomic::AtomicU32);

impl CallFault for FailThenUnstick {
    fn workflow_task(&self, _task: &WorkflowTaskSeen) -> TaskAction {
        match self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => TaskAction::Fail("failed by the test's fault".into()),
            1 => TaskAction::DeliverThenUnstick,
            _ => TaskAction::Deliver,
        }
    }
}

#[tokio::test]
async fn the_proxys_own_calls_carry_the_workers_namespace_and_credentials() {
    let server = common::dev_server();
    let (port, seen) = common::hop::hop(server.grpc_port, |_| None);
    // The proxy has no API key of its own; the worker sends one.
    let proxy = start_proxy(&format!("127.0.0.1:{port}")).await;
    let direct = client(server.address.clone()).await;
    let with_key = ConnectionSettings {
        address: Some(proxy.address()),
        api_key: Some("worker-key".into()),
        tls: Some(false),
        ..Default::default()
    };
    let via_proxy = connect(&with_key.resolve().unwrap()).await.expect("connect").0;

    // Activities only through the proxy: it looks the plan up and fails attempt 1 itself.
    let lookup = "wire-credentials-lookup";
    let path = activities_through(&direct, via_proxy.clone(), "wire-credentials-activities", lookup).await;
    assert_eq!(path, Path::Primary);

    // Workflow tasks through the proxy: it fails one itself, and unsticks a run.
    proxy.install(1, std::sync::Arc::new(FailThenUnstick(0.into())));
    let tq = "wire-credentials-tasks";
    let path = run_worker_until(via_proxy, tq, async {
        let input = resilient(settings(Duration::from_secs(10), 3));
        run_resilient(&direct, tq, "wire-credentials-tasks", input, &plan(Vec::new())).await
    })
    .await
    .expect("the worker runs");
    assert_eq!(path, Path::Primary);
    let events: Vec<_> = proxy.remove(1).into_iter().map(|e| e.what).collect();
    assert!(
        events.contains(&CallEffect::TaskFailed { attempt: 1 }) && events.contains(&CallEffect::CacheDropped),
        "{events:?}"
    );

    let calls = seen.lock().unwrap().clone();
    let own: Vec<_> = calls
        .iter()
        .filter(|c| c.user_agent.starts_with("temporal-chaos-wire-proxy"))
        .collect();
    for method in [
        "DescribeWorkflowExecution",
        "RespondActivityTaskFailed",
        "RespondWorkflowTaskFailed",
        "ResetStickyTaskQueue",
    ] {
        assert!(
            own.iter().any(|c| c.path.ends_with(&format!("/{method}"))),
            "no {method} of the proxy's own: {own:#?}"
        );
    }
    let carries = |c: &common::hop::Seen| {
        c.namespace.as_deref() == Some("default") && c.authorization.as_deref() == Some("Bearer worker-key")
    };
    let bare: Vec<_> = own.iter().filter(|c| !carries(c)).collect();
    assert!(
        bare.is_empty(),
        "calls of the proxy's own without the worker's headers: {bare:#?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.path.ends_with("/PollWorkflowTaskQueue") && carries(c)),
        "the worker's own calls carry both: {calls:#?}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn long_polls_do_not_hold_back_other_calls_when_the_frontend_allows_two_streams() {
    let server = common::dev_server();
    // A load balancer in front of the frontend that takes 2 concurrent streams per connection.
    let (port, seen) = common::hop::hop_limited(server.grpc_port, 2);
    let proxy = start_proxy(&format!("127.0.0.1:{port}")).await;
    let raw = WorkflowServiceClient::connect(format!("http://{}", proxy.address()))
        .await
        .expect("connect");
    // Long polls on a queue nobody adds to: each holds its stream for about a minute.
    const POLLS: usize = 6;
    let polls: Vec<_> = (0..POLLS)
        .map(|i| {
            let mut raw = raw.clone();
            tokio::spawn(async move {
                let request = PollActivityTaskQueueRequest {
                    namespace: "default".into(),
                    task_queue: Some(TaskQueue {
                        name: "wire-streams-idle".into(),
                        ..Default::default()
                    }),
                    identity: format!("idle-poller-{i}"),
                    ..Default::default()
                };
                let mut request = temporalio_client::tonic::Request::new(request);
                request.set_timeout(Duration::from_secs(90));
                raw.poll_activity_task_queue(request).await
            })
        })
        .collect();
    let polled = || {
        let seen = seen.lock().unwrap();
        // No worker polls yet: these are the idle polls.
        seen.iter()
            .filter(|c| c.path.ends_with("/PollActivityTaskQueue"))
            .count()
    };
    tokio::time::timeout(Duration::from_secs(20), async {
        while polled() < POLLS {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} of {POLLS} polls reached the frontend", polled()));

    // With every poll held, a workflow runs through the proxy: polls of its own, completions.
    let direct = client(server.address.clone()).await;
    let via_proxy = client(proxy.address()).await;
    let tq = "wire-streams";
    let input = resilient(settings(Duration::from_secs(10), 3));
    let run = run_worker_until(via_proxy, tq, async {
        run_resilient(&direct, tq, "wire-streams", input, &plan(Vec::new())).await
    });
    let path = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the workflow finishes while the idle polls hold their streams")
        .expect("the worker runs");
    assert_eq!(path, Path::Primary);
    let open = polls.iter().filter(|p| !p.is_finished()).count();
    assert_eq!(open, POLLS, "the idle polls were open all along");
    for poll in polls {
        poll.abort();
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn headers_and_trailers_as_large_as_grpc_allows_pass_through() {
    use temporalio_client::tonic::{Code, Request, transport::Endpoint as Channel};
    let server = common::dev_server();
    // In front of the frontend, a hop (an auth proxy, say) that refuses one method with an error
    // of 40 KiB: the real frontend cuts its own messages at 4,000 bytes.
    let long = "x".repeat(40 * 1024);
    let refusal = long.clone();
    let (port, seen) = common::hop::hop_with(server.grpc_port, None, move |parts| {
        let refuse = parts.uri.path().ends_with("/DescribeWorkflowExecution");
        refuse.then(|| (7, refusal.clone()))
    });
    let proxy = start_proxy(&format!("127.0.0.1:{port}")).await;
    // A client that takes large trailers itself (tonic keeps hyper's 16 KiB unless told).
    let channel = Channel::from_shared(format!("http://{}", proxy.address()))
        .unwrap()
        .http2_max_header_list_size(16 << 20)
        .connect()
        .await
        .expect("connect");
    let mut raw = WorkflowServiceClient::new(channel);

    // A 32 KiB bearer token, as a large JWT, reaches the frontend and is answered.
    let mut request = Request::new(GetSystemInfoRequest::default());
    let token = format!("Bearer {}", "j".repeat(32 * 1024));
    request.metadata_mut().insert("authorization", token.parse().unwrap());
    raw.get_system_info(request)
        .await
        .expect("a call with a 32 KiB authorization header is answered");
    let reached = seen
        .lock()
        .unwrap()
        .iter()
        .any(|c| c.path.ends_with("/GetSystemInfo") && c.authorization.as_ref() == Some(&token));
    assert!(reached, "the token went through whole");

    // The 40 KiB error comes back whole.
    let status = raw
        .describe_workflow_execution(DescribeWorkflowExecutionRequest {
            namespace: "default".into(),
            execution: Some(WorkflowExecution {
                workflow_id: "wire-large-trailer".into(),
                run_id: String::new(),
            }),
        })
        .await
        .expect_err("refused by the hop");
    let message = status.message();
    assert_eq!(
        (status.code(), message.len()),
        (Code::PermissionDenied, long.len()),
        "{}",
        &message[..message.len().min(300)]
    );
    proxy.shutdown().await;
}

/// Regenerates the fuzz corpus of the proxy's byte readers (`harness/src/wire/__fuzz__`, see
/// `harness/src/wire/fuzz.rs`) from real traffic: the demo worker and a heartbeating one run
/// behind the proxy, with a fault on the wire, against a dev server; a recording hop between the
/// proxy and the server keeps every body. Run it with
/// `cargo test --test wire record_fuzz_corpus -- --ignored` and commit what changed.
#[tokio::test]
#[ignore = "writes the committed fuzz corpus; run by hand"]
async fn record_fuzz_corpus() {
    let server = common::dev_server();
    let port = server.address.rsplit(':').next().unwrap().parse().unwrap();
    let (hop, exchanges) = common::hop::recording_hop(port);
    let proxy = start_proxy(&format!("127.0.0.1:{hop}")).await;
    let direct = client(server.address.clone()).await;
    let via_proxy = client(proxy.address()).await;
    let tq = "wire-corpus";
    let flaky = retryable_error("injected on the wire", "Flaky");
    let faults = plan(vec![rule(1, "add", "1", flaky)]);
    let input = OrchestrationInput {
        numbers: vec![2.into(), 3.into()],
        activity: settings(Duration::from_secs(10), 3),
    };
    run_worker_until(
        via_proxy.clone(),
        tq,
        run_orchestration(&direct, tq, "wire-corpus-orchestration", input, &faults),
    )
    .await
    .expect("worker");
    run_heartbeating(&direct, via_proxy, "wire-corpus-beat", None, 300).await;
    proxy.shutdown().await;

    let exchanges = exchanges.lock().unwrap().clone();
    let written = write_corpus(&exchanges);
    for method in [
        "PollWorkflowTaskQueue",
        "PollActivityTaskQueue",
        "RespondWorkflowTaskCompleted",
        "RespondActivityTaskCompleted",
        "RespondActivityTaskFailed",
        "RecordActivityTaskHeartbeat",
    ] {
        assert!(
            written.iter().any(|name| name.starts_with(method)),
            "no {method} in the corpus: {written:?}"
        );
    }
}

/// Writes the corpus of each fuzz target from the recorded calls, none over 64 KiB: one body
/// per method and direction for the framing and the field walker, two for the task readers
/// (of the task calls only). The SDK and the server gzip their messages: the framing's inputs
/// keep the bodies as they went by (selector 2: `grpc-encoding: gzip`), the others get the
/// messages inflated. Returns the names written.
fn write_corpus(exchanges: &[common::hop::Exchange]) -> Vec<String> {
    use std::{collections::BTreeMap, io::Read};
    const PER_KIND: usize = 2;
    const LARGEST: usize = 64 * 1024;
    let fuzz = common::repo().join("harness/src/wire/__fuzz__");
    // Distinct (body, message) pairs by method and direction, in the order seen.
    type Kept = BTreeMap<(String, &'static str), Vec<(Vec<u8>, Vec<u8>)>>;
    let mut kept = Kept::new();
    for e in exchanges {
        for (direction, body) in [("request", &e.request), ("response", &e.response)] {
            // One whole message, not empty.
            let whole =
                body.len() > 5 && u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize == body.len() - 5;
            if !whole || body.len() > LARGEST {
                continue;
            }
            let mut message = Vec::new();
            if body[0] == 0 {
                message.extend_from_slice(&body[5..]);
            } else if flate2::read::GzDecoder::new(&body[5..])
                .read_to_end(&mut message)
                .is_err()
            {
                continue;
            }
            let bodies = kept.entry((e.method.clone(), direction)).or_default();
            if message.len() <= LARGEST && bodies.len() < PER_KIND && !bodies.iter().any(|(_, m)| *m == message) {
                bodies.push((body.to_vec(), message));
            }
        }
    }
    let mut written = Vec::new();
    for target in ["grpc_frames", "protobuf_fields", "task_decoding"] {
        let dir = fuzz.join(format!("wire__fuzz__{target}/corpus"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for ((method, direction), bodies) in &kept {
            let task_call = ["Poll", "Respond", "Record"].iter().any(|p| method.starts_with(p));
            let take = match target {
                "task_decoding" if task_call => PER_KIND,
                "task_decoding" => 0,
                _ => 1,
            };
            for (i, (body, message)) in bodies.iter().take(take).enumerate() {
                // The field each message's walker is pointed at: the eager tasks of a workflow
                // task's completion, a workflow task's history, else the first field.
                let field = match (method.as_str(), *direction) {
                    ("RespondWorkflowTaskCompleted", "response") => 2,
                    ("PollWorkflowTaskQueue", "response") => 8,
                    _ => 1,
                };
                let encoding = if body[0] == 0 { 0 } else { 2 };
                let input = match target {
                    "grpc_frames" => [&[encoding][..], body].concat(),
                    "protobuf_fields" => [&[field][..], message].concat(),
                    _ => [method.as_bytes(), b"\n", message].concat(),
                };
                let name = format!("{method}-{direction}-{i}");
                std::fs::write(dir.join(&name), input).unwrap();
                written.push(name);
            }
        }
    }
    written
}
