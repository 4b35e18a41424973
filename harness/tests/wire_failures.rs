//! The wire proxy when what is around it fails, with real processes: the frontend restarted under
//! the workers' long polls, the proxy itself killed and started again under connected workers, a
//! worker killed while the proxy holds its answer, messages at the frontend's 4 MiB limit, and
//! 500 long polls open at once. Nothing is lost: every workflow's history shows it completed.

mod common;

use common::{
    Guard, chaos_command, dev_server, dev_server_on, free_port,
    proxy::{get, proxy_on, wait_polling},
    wire::{WAIT, client, events, history, options, plan, resilient, rule, settings, start_proxy},
};
use futures::StreamExt;
use std::{
    collections::HashMap,
    path::Path as FilePath,
    process::Stdio,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use temporal_chaos::{
    faults::{DelayFault, FaultAction, FaultPlan},
    history::WorkflowClose,
    plan::OrchestrationInput,
    wire::{Answer, AttemptRecord, PollerSeen, Sent},
    worker::run_worker_until,
    workflows::{Orchestration, Path, ResilientCall, ResilientOutput},
};
use temporalio_client::{
    Client, WorkflowGetResultOptions,
    tonic::{self, Code, transport::Channel},
};
use temporalio_common::protos::temporal::api::{
    command::v1::{Command, ScheduleActivityTaskCommandAttributes, command::Attributes as CommandAttributes},
    common::v1::{ActivityType, Header, Memo, Payload, Payloads, WorkflowExecution, WorkflowType},
    enums::v1::CommandType,
    history::v1::history_event::Attributes,
    taskqueue::v1::TaskQueue,
    workflowservice::v1::{
        GetSystemInfoRequest, GetWorkflowExecutionHistoryRequest, PollActivityTaskQueueRequest,
        PollWorkflowTaskQueueRequest, RespondActivityTaskCompletedRequest, RespondWorkflowTaskCompletedRequest,
        StartWorkflowExecutionRequest, workflow_service_client::WorkflowServiceClient,
    },
};

/// One test at a time: each runs a dev server and worker processes (too much at once for a
/// small machine), and some start a server or proxy again on a port picked free before.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The frontend's largest request (gRPC's default maximum message size, which the dev server
/// keeps).
const LIMIT: usize = 4 << 20;

/// Waits (asking every 100 ms) until `check` gives a value; fails the test naming `what` if it
/// has not within [`WAIT`].
async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    temporal_chaos::wait::poll(
        Duration::from_millis(100),
        Some(WAIT),
        || format!("{what}: not within {WAIT:?}"),
        || std::future::ready(Ok(check())),
    )
    .await
    .unwrap_or_else(|e: String| panic!("{e}"))
}

/// `chaos worker` polling `task_queue` at `address` (the proxy), its log in `log`.
fn chaos_worker(address: &str, task_queue: &str, log: &FilePath) -> Guard {
    let child = chaos_command(&["worker", "--address", address, "--task-queue", task_queue])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Guard(child)
}

/// The polls the worker process `pid` (whose identity ends in `:PID`) has open on `task_queue`,
/// workflow and activity polls alike.
fn open_polls(pollers: &[PollerSeen], task_queue: &str, pid: u32) -> u32 {
    let identity = format!(":{pid}");
    pollers
        .iter()
        .filter(|p| p.task_queue == task_queue && p.identity.ends_with(&identity))
        .map(|p| p.open)
        .sum()
}

/// A plan that holds the worker's answer to attempt 1 of `risky` at the proxy for `hold`.
fn hold_first_answer(hold: Duration) -> FaultPlan {
    plan(vec![rule(
        1,
        "risky",
        "1",
        FaultAction::Delay(DelayFault { duration: hold }),
    )])
}

/// Waits for the resilient workflow `id` to close and returns its output; its history must show
/// it completed.
async fn resilient_result(direct: &Client, id: &str) -> ResilientOutput {
    let handle = direct.get_workflow_handle::<ResilientCall>(id.to_owned());
    let output = tokio::time::timeout(WAIT, handle.get_result(WorkflowGetResultOptions::default()))
        .await
        .unwrap_or_else(|_| panic!("{id} did not finish"))
        .unwrap_or_else(|e| panic!("{id} failed: {e}"));
    assert_completed(direct, id).await;
    output
}

/// Starts orchestrations `ids` (numbers 2, 3, 4) on `task_queue`.
async fn start_orchestrations(direct: &Client, task_queue: &str, ids: &[String]) {
    for id in ids {
        let input = OrchestrationInput {
            numbers: vec![2.into(), 3.into(), 4.into()],
            activity: settings(Duration::from_secs(10), 5),
        };
        direct
            .start_workflow(Orchestration::run, input, options(task_queue, id, None))
            .await
            .expect("start");
    }
}

/// Runs orchestrations `ids` to their results: 9 + 24 each.
async fn orchestrations_complete(direct: &Client, task_queue: &str, ids: &[String]) {
    start_orchestrations(direct, task_queue, ids).await;
    orchestration_results(direct, ids).await;
}

/// Waits for the orchestrations `ids`: each completes with 9 + 24.
async fn orchestration_results(direct: &Client, ids: &[String]) {
    for id in ids {
        let handle = direct.get_workflow_handle::<Orchestration>(id.to_owned());
        let result = tokio::time::timeout(WAIT, handle.get_result(WorkflowGetResultOptions::default()))
            .await
            .unwrap_or_else(|_| panic!("{id} did not finish"))
            .unwrap_or_else(|e| panic!("{id} failed: {e}"));
        assert_eq!(result, (9 + 24).into(), "{id}");
        assert_completed(direct, id).await;
    }
}

/// Fails the test unless the history of `id` shows it completed.
async fn assert_completed(direct: &Client, id: &str) {
    let facts = history(direct, id).await;
    assert!(
        matches!(facts.close, Some(WorkflowClose::Completed { .. })),
        "{id}: {:?}",
        facts.close
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_polling_through_the_proxy_outlive_a_frontend_restart_and_no_workflow_is_lost() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("temporal.sqlite").display().to_string();
    let (grpc, ui) = (free_port(), free_port());
    let server = dev_server_on(grpc, ui, &["--db-filename", &db]);
    let proxy = start_proxy(&server.address).await;
    let tq = "restart-frontend";
    let workers = [1, 2].map(|n| chaos_worker(&proxy.address(), tq, &dir.path().join(format!("worker{n}.log"))));
    let pollers = proxy.pollers_seen();
    for worker in &workers {
        let pid = worker.0.id();
        until("both workers poll through the proxy", || {
            (open_polls(&pollers(), tq, pid) > 0).then_some(())
        })
        .await;
    }

    // In flight when the frontend goes: the workers' long polls, and each workflow's first
    // `risky` answer, which the proxy holds for 2 s and then sends, retrying until the attempt's
    // deadline (60 s, more than a restart takes).
    let direct = client(server.address.clone()).await;
    let hold = Duration::from_secs(2);
    let held = hold_first_answer(hold);
    let ids: Vec<String> = (0..6).map(|i| format!("restart-frontend-{i}")).collect();
    for id in &ids {
        let input = resilient(settings(Duration::from_secs(60), 5));
        direct
            .start_workflow(ResilientCall::run, input, options(tq, id, Some(&held)))
            .await
            .expect("start");
    }
    let last_answer_ms = until("every first answer is held by the proxy", || {
        let log = proxy.attempts();
        let answered: Vec<u64> = ids
            .iter()
            .filter_map(|id| {
                let first = log.iter().find(|r| &r.workflow_id == id && r.attempt == 1)?;
                first.answered_ms
            })
            .collect();
        (answered.len() == ids.len()).then(|| answered.into_iter().max().unwrap())
    })
    .await;
    drop(direct);
    drop(server);
    // The proxy's first try of each held answer is due `hold` after the worker answered: wait
    // for that moment, with room for a late timer (the proxy's own; nothing outside shows the
    // try), so that every held answer meets the frontend down.
    let due = UNIX_EPOCH + Duration::from_millis(last_answer_ms) + hold + Duration::from_millis(1500);
    if let Ok(left) = due.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
    let server = dev_server_on(grpc, ui, &["--db-filename", &db]);
    let direct = client(server.address.clone()).await;

    for id in &ids {
        let output = resilient_result(&direct, id).await;
        assert_eq!((output.path, output.value), (Path::Primary, 42), "{id}");
    }
    // Work started after the restart goes through the same workers and proxy.
    let after: Vec<String> = (0..2).map(|i| format!("after-restart-{i}")).collect();
    orchestrations_complete(&direct, tq, &after).await;
    // Each held answer met the frontend down, and the proxy carried it over the restart.
    let log = proxy.attempts();
    for id in &ids {
        let first = log.iter().find(|r| &r.workflow_id == id && r.attempt == 1).unwrap();
        let sent = &first.upstream[0];
        assert!(
            sent.status == "ok" && sent.tries >= 2 && sent.answered,
            "{id}: {first:#?}"
        );
        eprintln!("{id}: attempt 1's held answer landed on try {}", sent.tries);
        let facts = history(&direct, id).await;
        let risky = facts.activities.iter().find(|a| a.activity_type == "risky").unwrap();
        assert_eq!(risky.attempts, 1, "{id}: the held answer was not lost");
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_reconnect_when_the_proxy_is_killed_and_started_again_on_its_port() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = dev_server();
    let (listen, admin) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let proxy = proxy_on(&server.address, &listen, &admin, &[], &dir.path().join("proxy1.log"));
    let tq = "restart-proxy";
    let _workers = [1, 2].map(|n| chaos_worker(&listen, tq, &dir.path().join(format!("worker{n}.log"))));
    wait_polling(&admin, tq);
    let direct = client(server.address.clone()).await;
    orchestrations_complete(&direct, tq, &["before-0".into(), "before-1".into()]).await;

    // The proxy holds a worker's answer (for a minute, past the attempt's 4 s) when it dies.
    let held = "held-when-the-proxy-dies";
    let input = resilient(settings(Duration::from_secs(4), 3));
    let plan = hold_first_answer(Duration::from_secs(60));
    direct
        .start_workflow(ResilientCall::run, input, options(tq, held, Some(&plan)))
        .await
        .expect("start");
    until("the proxy holds the worker's first answer", || {
        let seen: serde_json::Value =
            serde_json::from_str(&get(&admin, &format!("/attempts?workflow_id={held}"))?).ok()?;
        let attempts: Vec<AttemptRecord> = serde_json::from_value(seen["attempts"].clone()).ok()?;
        attempts
            .iter()
            .any(|a| a.attempt == 1 && a.answer == Some(Answer::Completed))
            .then_some(())
    })
    .await;
    drop(proxy);

    // Started while no proxy listens: the workers cannot reach the frontend.
    let during: Vec<String> = (0..3).map(|i| format!("during-{i}")).collect();
    start_orchestrations(&direct, tq, &during).await;
    let _proxy = proxy_on(&server.address, &listen, &admin, &[], &dir.path().join("proxy2.log"));
    wait_polling(&admin, tq);
    orchestration_results(&direct, &during).await;
    let output = resilient_result(&direct, held).await;
    assert_eq!(output.path, Path::Primary);
    let facts = history(&direct, held).await;
    let risky = facts.activities.iter().find(|a| a.activity_type == "risky").unwrap();
    assert_eq!(
        risky.attempts, 2,
        "attempt 1's answer died with the proxy, attempt 2 went through the new one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_what_the_proxy_held_for_it_and_another_worker_finishes() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = dev_server();
    let proxy = start_proxy(&server.address).await;
    let pollers = proxy.pollers_seen();
    let tq = "worker-gone";
    let first = chaos_worker(&proxy.address(), tq, &dir.path().join("first.log"));
    let first_pid = first.0.id();
    until("the first worker polls", || {
        (open_polls(&pollers(), tq, first_pid) > 0).then_some(())
    })
    .await;

    // Its answer to attempt 1 is held by the proxy (a minute, past the attempt's 5 s).
    let direct = client(server.address.clone()).await;
    let id = "worker-gone";
    let input = resilient(settings(Duration::from_secs(5), 3));
    let plan = hold_first_answer(Duration::from_secs(60));
    direct
        .start_workflow(ResilientCall::run, input, options(tq, id, Some(&plan)))
        .await
        .expect("start");
    until("the proxy holds the first worker's answer", || {
        let log = proxy.attempts();
        log.iter()
            .any(|r| r.workflow_id == id && r.attempt == 1 && r.answer.is_some())
            .then_some(())
    })
    .await;
    let second = chaos_worker(&proxy.address(), tq, &dir.path().join("second.log"));
    let second_pid = second.0.id();
    until("the second worker polls", || {
        (open_polls(&pollers(), tq, second_pid) > 0).then_some(())
    })
    .await;

    drop(first); // SIGKILL, with its long polls open and its answer held.
    until("the proxy drops the dead worker's open polls", || {
        (open_polls(&pollers(), tq, first_pid) == 0).then_some(())
    })
    .await;
    let dropped = until("the proxy drops the dead worker's held answer", || {
        let log = proxy.attempts();
        let first = log.iter().find(|r| r.workflow_id == id && r.attempt == 1)?;
        (!first.upstream.is_empty()).then(|| first.upstream.clone())
    })
    .await;
    assert_eq!(
        dropped.iter().map(|e| &e.sent).collect::<Vec<_>>(),
        [&Sent::DroppedWorkerGone {
            call: "RespondActivityTaskCompleted".into()
        }]
    );

    let output = resilient_result(&direct, id).await;
    assert_eq!((output.path, output.value), (Path::Primary, 42));
    let events = events(&direct, id).await;
    let started_by: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::ActivityTaskStartedEventAttributes(a)) => Some(a.identity.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(started_by.len(), 1, "{started_by:?}");
    assert!(
        started_by[0].ends_with(&format!(":{second_pid}")),
        "attempt 2 ran on the second worker: {started_by:?}"
    );
    let facts = history(&direct, id).await;
    let risky = facts.activities.iter().find(|a| a.activity_type == "risky").unwrap();
    assert_eq!(risky.attempts, 2);
    assert!(
        open_polls(&pollers(), tq, second_pid) > 0,
        "the second worker still polls through the proxy"
    );
    proxy.shutdown().await;
}

/// A raw WorkflowService client of `address`, taking and sending messages up to 16 MiB.
async fn raw(address: &str) -> WorkflowServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    WorkflowServiceClient::new(channel)
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20)
}

/// A payload of `size` bytes of `fill`.
fn payload(size: usize, fill: u8) -> Payload {
    Payload {
        metadata: HashMap::from([("encoding".to_owned(), b"binary/plain".to_vec())]),
        data: vec![fill; size],
        ..Default::default()
    }
}

/// A long poll's request, with the deadline the frontend requires of one: a minute, like the
/// SDKs' (more than the server holds a poll).
fn long_poll<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(60));
    request
}

/// The task queue called `name`.
fn queue(name: &str) -> Option<TaskQueue> {
    Some(TaskQueue {
        name: name.into(),
        ..Default::default()
    })
}

/// The request for the history of `workflow_id`.
fn whole_history(workflow_id: &str) -> GetWorkflowExecutionHistoryRequest {
    GetWorkflowExecutionHistoryRequest {
        namespace: "default".into(),
        execution: Some(WorkflowExecution {
            workflow_id: workflow_id.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A start of `id` on `task_queue` whose input and memo hold `each` bytes apiece, and whose
/// header holds `extra` more.
fn big_start(id: &str, task_queue: &str, each: usize, extra: usize) -> StartWorkflowExecutionRequest {
    StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: id.into(),
        workflow_type: Some(WorkflowType { name: "Big".into() }),
        task_queue: queue(task_queue),
        input: Some(Payloads {
            payloads: vec![payload(each, b'i')],
        }),
        memo: Some(Memo {
            fields: HashMap::from([("big".to_owned(), payload(each, b'm'))]),
        }),
        header: (extra > 0).then(|| Header {
            fields: HashMap::from([("extra".to_owned(), payload(extra, b'h'))]),
        }),
        request_id: format!("{id}-request"),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_at_the_frontends_4_mib_limit_pass_both_ways_and_one_over_gets_resource_exhausted() {
    use prost::Message;
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = dev_server();
    let proxy = start_proxy(&server.address).await;
    let mut raw = raw(&proxy.address()).await;

    // Up: a start just under the limit (its input and memo each under the server's 2 MiB blob
    // limit).
    let each = 2_075_000;
    let start = big_start("big-start", "big", each, 0);
    let size = start.encoded_len();
    assert!(size < LIMIT && size > LIMIT - 64 * 1024, "{size}");
    raw.start_workflow_execution(start)
        .await
        .expect("a start just under the limit passes");

    // Down: its history, and its first workflow task (which the proxy reads for fault plans).
    let history = raw
        .get_workflow_execution_history(whole_history("big-start"))
        .await
        .expect("a history just under the limit passes")
        .into_inner();
    let events = history.history.unwrap().events;
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) = &events[0].attributes else {
        panic!("the first event starts the workflow");
    };
    assert_eq!(started.input.as_ref().unwrap().payloads[0].data, vec![b'i'; each]);
    assert_eq!(started.memo.as_ref().unwrap().fields["big"].data, vec![b'm'; each]);
    let task = raw
        .poll_workflow_task_queue(long_poll(PollWorkflowTaskQueueRequest {
            namespace: "default".into(),
            task_queue: queue("big"),
            identity: "big-poller".into(),
            ..Default::default()
        }))
        .await
        .expect("a workflow task just under the limit passes")
        .into_inner();
    assert!(task.encoded_len() > LIMIT - 64 * 1024, "{}", task.encoded_len());
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) =
        &task.history.as_ref().unwrap().events[0].attributes
    else {
        panic!("the task's history starts with the start");
    };
    assert_eq!(started.memo.as_ref().unwrap().fields["big"].data, vec![b'm'; each]);

    // An activity with a 2 MB input and a 2 MB result, through every call the proxy reads whole:
    // the workflow task's completion that schedules it, its poll, and its completion.
    let blob = 2_000_000;
    let schedule = Command {
        command_type: CommandType::ScheduleActivityTask as i32,
        attributes: Some(CommandAttributes::ScheduleActivityTaskCommandAttributes(
            ScheduleActivityTaskCommandAttributes {
                activity_id: "echo".into(),
                activity_type: Some(ActivityType { name: "echo".into() }),
                task_queue: queue("big"),
                start_to_close_timeout: Some(Duration::from_secs(60).try_into().unwrap()),
                input: Some(Payloads {
                    payloads: vec![payload(blob, b'a')],
                }),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    raw.respond_workflow_task_completed(RespondWorkflowTaskCompletedRequest {
        namespace: "default".into(),
        task_token: task.task_token,
        commands: vec![schedule],
        identity: "big-poller".into(),
        ..Default::default()
    })
    .await
    .expect("a 2 MB command passes");
    let activity = raw
        .poll_activity_task_queue(long_poll(PollActivityTaskQueueRequest {
            namespace: "default".into(),
            task_queue: queue("big"),
            identity: "big-poller".into(),
            ..Default::default()
        }))
        .await
        .expect("a 2 MB activity task passes")
        .into_inner();
    assert_eq!(activity.input.unwrap().payloads[0].data, vec![b'a'; blob]);
    raw.respond_activity_task_completed(RespondActivityTaskCompletedRequest {
        namespace: "default".into(),
        task_token: activity.task_token,
        result: Some(Payloads {
            payloads: vec![payload(blob, b'r')],
        }),
        identity: "big-poller".into(),
        ..Default::default()
    })
    .await
    .expect("a 2 MB result passes");
    let attempts = proxy.attempts();
    let echo = attempts.iter().find(|r| r.activity_type == "echo").expect("logged");
    assert!(echo.delivered && echo.upstream[0].status == "ok", "{echo:#?}");

    // Down, over the limit: the whole history (start, command and result: 8 MB) in one
    // response. The frontend sends it, and the proxy adds no limit of its own.
    let history = raw
        .get_workflow_execution_history(whole_history("big-start"))
        .await
        .expect("an 8 MB history passes")
        .into_inner();
    assert!(
        history.encoded_len() > 2 * LIMIT - 512 * 1024,
        "{}",
        history.encoded_len()
    );
    let result = history
        .history
        .unwrap()
        .events
        .into_iter()
        .find_map(|e| match e.attributes {
            Some(Attributes::ActivityTaskCompletedEventAttributes(a)) => a.result,
            _ => None,
        });
    assert_eq!(
        result.expect("the result in history").payloads[0].data,
        vec![b'r'; blob]
    );

    // Over the limit: the frontend's own status, through the proxy, not a hang or a reset.
    let over = big_start("too-big", "big", each, 200_000);
    assert!(over.encoded_len() > LIMIT);
    let status = tokio::time::timeout(WAIT, raw.start_workflow_execution(over))
        .await
        .expect("an answer, not a hang")
        .expect_err("over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // gRPC-Go's words, with the limit the frontend enforces: 4 MiB.
    assert!(
        status.message().contains("larger than max") && status.message().contains(&LIMIT.to_string()),
        "{status:?}"
    );
    // The connection still carries calls.
    raw.get_system_info(GetSystemInfoRequest::default())
        .await
        .expect("the connection lives on");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_long_polls_at_once_leave_room_for_other_calls_and_all_end() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // The server holds a poll without a task for 20 s (not its usual minute), well inside the
    // polls' own deadline: a poll that gets no task ends empty, answered by the server.
    let held_for = "matching.longPollExpirationInterval=\"20s\"";
    let server = dev_server_on(free_port(), free_port(), &["--dynamic-config-value", held_for]);
    let proxy = start_proxy(&server.address).await;
    let pollers = proxy.pollers_seen();
    let many = "many-pollers";
    let open_on = |queue: &str| -> u32 { pollers().iter().filter(|p| p.task_queue == queue).map(|p| p.open).sum() };

    // 500 workflow-task polls over 5 connections to the proxy (one upstream connection).
    let address = proxy.address();
    let channels: Vec<_> = futures::future::join_all((0..5).map(|_| raw(&address))).await;
    let began = Instant::now();
    let polls: Vec<_> = (0..500)
        .map(|i| {
            let mut raw = channels[i % channels.len()].clone();
            tokio::spawn(async move {
                let request = PollWorkflowTaskQueueRequest {
                    namespace: "default".into(),
                    task_queue: queue("many-pollers"),
                    identity: format!("poller-{i}"),
                    ..Default::default()
                };
                raw.poll_workflow_task_queue(long_poll(request)).await
            })
        })
        .collect();
    until("500 polls open through the proxy", || {
        (open_on(many) == 500).then_some(())
    })
    .await;
    eprintln!("500 polls open after {:?}", began.elapsed());

    // Meanwhile other calls go through: a unary call, and a workflow run by a real worker.
    let mut other = raw(&proxy.address()).await;
    other
        .get_system_info(GetSystemInfoRequest::default())
        .await
        .expect("GetSystemInfo beside 500 polls");
    let via_proxy = client(proxy.address()).await;
    run_worker_until(via_proxy, "beside-the-polls", async {
        let direct = client(server.address.clone()).await;
        orchestrations_complete(&direct, "beside-the-polls", &["beside-0".into()]).await;
    })
    .await
    .expect("the worker runs");
    // No poll ended meanwhile (none had a task, and their 20 s are not up): all 500 were open.
    assert_eq!(open_on(many), 500);
    eprintln!("other calls done after {:?}", began.elapsed());

    // Then each poll ends with a task (450 workflows started) or empty at its own timeout.
    let starter = raw(&server.address).await;
    let starts = futures::stream::iter(0..450).map(|i| {
        let mut starter = starter.clone();
        async move {
            let request = StartWorkflowExecutionRequest {
                namespace: "default".into(),
                workflow_id: format!("polled-{i}"),
                workflow_type: Some(WorkflowType { name: "Polled".into() }),
                task_queue: queue(many),
                // Longer than the polls last: no task times out and goes to a second poll.
                workflow_task_timeout: Some(Duration::from_secs(60).try_into().unwrap()),
                request_id: format!("polled-{i}"),
                ..Default::default()
            };
            starter.start_workflow_execution(request).await.expect("start");
        }
    });
    starts.buffer_unordered(20).collect::<Vec<()>>().await;
    let mut tasks = std::collections::HashSet::new();
    let (mut empty, mut failed) = (0, Vec::new());
    for poll in polls {
        let answer = tokio::time::timeout(WAIT, poll)
            .await
            .expect("every poll ends")
            .unwrap();
        match answer.map(tonic::Response::into_inner) {
            Ok(task) => match task.workflow_execution {
                Some(execution) => {
                    let task = (execution.workflow_id, task.attempt);
                    assert!(tasks.insert(task.clone()), "{task:?} went to two polls");
                }
                None => empty += 1,
            },
            Err(status) => failed.push(status),
        }
    }
    eprintln!(
        "{} polls got a task, {empty} ended empty, after {:?}",
        tasks.len(),
        began.elapsed()
    );
    assert!(failed.is_empty(), "polls must end with a task or empty: {failed:#?}");
    assert_eq!(tasks.len() + empty, 500);
    assert!(
        empty >= 50,
        "at least the 50 polls no workflow was started for end empty"
    );
    // A poll ends empty only when the server had no task for it (the server's task queue
    // partitions may keep a task from a poll): every task the server handed out reached a poll.
    let direct = client(server.address.clone()).await;
    let handed_out = futures::stream::iter(0..450).map(|i| {
        let direct = direct.clone();
        async move {
            let id = format!("polled-{i}");
            let started = events(&direct, &id)
                .await
                .iter()
                .filter(|e| matches!(e.attributes, Some(Attributes::WorkflowTaskStartedEventAttributes(_))))
                .count();
            (started > 0).then_some(id)
        }
    });
    let mut handed_out: Vec<String> = handed_out
        .buffer_unordered(20)
        .filter_map(std::future::ready)
        .collect()
        .await;
    let mut delivered: Vec<String> = tasks.into_iter().map(|(id, _)| id).collect();
    handed_out.sort();
    delivered.sort();
    assert_eq!(
        handed_out, delivered,
        "the tasks the server handed out are the tasks the polls got"
    );
    until("the proxy's poller accounting returns to zero", || {
        (open_on(many) == 0).then_some(())
    })
    .await;
    proxy.shutdown().await;
}
