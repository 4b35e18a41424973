//! Fuzz targets for the byte-level readers of the proxy, as `bolero` tests.
//!
//! Under `cargo test` each target replays its corpus (`__fuzz__/NAME/corpus`, gRPC bodies
//! recorded from a real run by the ignored test `record_fuzz_corpus` in `tests/wire.rs`)
//! and then random inputs for a bounded time: that is the short run of CI. `scripts/fuzz.sh`
//! runs the same targets coverage-guided under libFuzzer (`cargo bolero`).
//!
//! An input names what its bytes are read as: `grpc_frames` takes a selector byte before a body
//! (its `grpc-encoding`: 0 none, 1 identity, 2 gzip, 3 zstd), `protobuf_fields` one before a
//! message (the field number), `task_decoding` a method name and a newline before a message. One corpus file is one recorded body (or message) so labelled.

use super::{
    calls::{CallFaults, CompletedHead, FirstString, WorkflowTaskHead},
    grpc::{self, FrameError},
    plans::PlanLookup,
    pollers::Pollers,
    protobuf,
    service::{INSPECTED, budget_of, read_call},
    upstream::{Upstream, UpstreamEndpoint},
};
use crate::target::Endpoint;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use prost::Message;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    PollActivityTaskQueueResponse, RespondWorkflowTaskCompletedResponse,
};

/// How long each target runs random inputs under `cargo test` (after its corpus).
const SHORT_RUN: Duration = Duration::from_secs(3);

/// The `grpc-encoding` an input's selector byte names.
const ENCODINGS: [Option<&str>; 4] = [None, Some("identity"), Some("gzip"), Some("zstd")];

/// Headers of a body sent with `encoding`.
fn headers(encoding: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(e) = encoding {
        headers.insert("grpc-encoding", HeaderValue::from_str(e).expect("an ASCII encoding"));
    }
    headers
}

/// Splits an input into its selector byte and the rest.
fn split(input: &[u8]) -> (u8, &[u8]) {
    input.split_first().map_or((0, &[][..]), |(s, rest)| (*s, rest))
}

/// gRPC framing: `first_message`, `decode`, `frame_bytes`, and the status messages' percent
/// encoding. Selector: the body's `grpc-encoding`, and the status code.
fn grpc_frames(input: &[u8]) {
    let (selector, rest) = split(input);
    let encoding = ENCODINGS[usize::from(selector) % ENCODINGS.len()];
    let body = Bytes::copy_from_slice(rest);
    match grpc::first_message(&body, encoding) {
        Ok(message) if body.is_empty() => assert!(message.is_empty()),
        Ok(message) if body[0] == 0 => {
            let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
            assert_eq!(message, body.slice(5..5 + len), "an uncompressed message is its bytes");
        }
        Ok(_) => assert_eq!(encoding, Some("gzip"), "only gzip is read"),
        Err(FrameError::Truncated { have, want }) => assert!(have < want && have == body.len()),
        Err(FrameError::Encoding(e)) => assert_eq!(Some(e.as_str()), encoding.or(Some("identity"))),
        Err(FrameError::Gzip(_) | FrameError::Decode(_)) => {}
    }
    // Any bytes framed come back as they were.
    assert_eq!(grpc::first_message(&grpc::frame_bytes(rest), encoding).unwrap(), body);
    let _ = grpc::decode::<PollActivityTaskQueueResponse>(&body, &headers(encoding));

    // A status message survives its percent encoding whatever it holds.
    let text = String::from_utf8_lossy(rest);
    let response = grpc::status_response_of(u16::from(selector), &text);
    assert_eq!(
        grpc::status_of(response.headers(), None),
        Some((i32::from(selector), text.into_owned()))
    );
    // Statuses as a peer may send them: any header value.
    if let Ok(value) = HeaderValue::from_bytes(rest) {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", value.clone());
        trailers.insert("grpc-message", value);
        let _ = grpc::status_of(&HeaderMap::new(), Some(&trailers));
    }
}

/// The protobuf field walker: `drop_repeated` and `first_field` against prost. Selector: the
/// field number.
fn protobuf_fields(input: &[u8]) {
    let (selector, message) = split(input);
    let field = u32::from(selector % 16);
    let Ok(same) = protobuf::drop_repeated(message, field, |_| false) else {
        // Malformed: the field may still come before the flaw.
        let _ = protobuf::first_field(message, field);
        return;
    };
    assert_eq!(&same[..], message, "dropping nothing keeps every byte");
    let without = protobuf::drop_repeated(message, field, |_| true).unwrap();
    assert_eq!(protobuf::first_field(&without, field).unwrap(), None);
    let odd_dropped = protobuf::drop_repeated(message, field, |i| i % 2 == 1).unwrap();
    assert!(
        protobuf::drop_repeated(&odd_dropped, field, |_| false).is_ok(),
        "still well formed"
    );

    // Against prost, on the message the proxy edits (eager activity tasks are field 2).
    let Ok(response) = RespondWorkflowTaskCompletedResponse::decode(message) else {
        return;
    };
    if let Some(first) = response.activity_tasks.first() {
        let bytes = protobuf::first_field(message, 2).unwrap().expect("field 2 is there");
        assert_eq!(&PollActivityTaskQueueResponse::decode(bytes).unwrap(), first);
    }
    if field == 2 {
        let edited = RespondWorkflowTaskCompletedResponse::decode(odd_dropped).unwrap();
        let kept: Vec<_> = response.activity_tasks.iter().step_by(2).cloned().collect();
        assert_eq!(edited.activity_tasks, kept);
        assert_eq!(edited.workflow_task, response.workflow_task);
        assert_eq!(edited.reset_history_event_id, response.reset_history_event_id);
    }
}

/// The activity-task and workflow-task readers: `read_call`, `budget_of`, the message views,
/// the poll requests `Pollers` read, what `CallFaults` and `PlanLookup` learn from a workflow
/// task. Input: a method name, a
/// newline, and the message (of that method's request for the calls the proxy inspects, of its
/// response for the polls and workflow-task completions).
fn task_decoding(input: &[u8], plans: &PlanLookup) {
    let split_at = input.iter().position(|b| *b == b'\n').unwrap_or(input.len());
    let method = String::from_utf8_lossy(&input[..split_at]);
    let message = input.get(split_at + 1..).unwrap_or_default();
    let inspected = INSPECTED.contains(&&*method);
    let body = grpc::frame_bytes(message);
    match read_call(&method, &body, &HeaderMap::new()) {
        Ok(Some(_)) | Err(_) => assert!(inspected, "{method} is not inspected"),
        Ok(None) => assert!(!inspected, "{method} is inspected"),
    }
    let pollers = Arc::new(Pollers::default());
    if let Some(open) = pollers.poll(&method, &body, &HeaderMap::new()) {
        assert!(method.starts_with("Poll"), "{method} is not a poll");
        assert_eq!(pollers.list().len(), 1);
        drop(open);
    }
    if let Ok(task) = PollActivityTaskQueueResponse::decode(message)
        && let Some(budget) = budget_of(&task)
    {
        assert!(!budget.is_zero());
        // What the proxy does with a budget (`Proxy::begin`) must not overflow.
        assert!(Instant::now().checked_add(budget).is_some(), "{budget:?}");
        assert!(u64::try_from(budget.as_millis()).is_ok(), "{budget:?}");
    }
    if let Ok(full) = RespondWorkflowTaskCompletedResponse::decode(message) {
        let head = CompletedHead::decode(message).expect("a view of a message that decodes");
        assert_eq!(head.activity_tasks.len(), full.activity_tasks.len());
    }
    let _ = FirstString::decode(message);
    let _ = WorkflowTaskHead::decode(message);
    if let Some(decision) = CallFaults::new(4).workflow_task(message) {
        assert!(decision.action.is_none(), "no fault is installed");
    }
    let _ = plans.learn(message);
}

/// Plans learnt from workflow tasks only: nothing is ever sent to this upstream.
fn offline_plans() -> PlanLookup {
    let endpoint = Endpoint::local("127.0.0.1:9".into(), "default".into());
    PlanLookup::new(Upstream::new(UpstreamEndpoint::new(&endpoint, None).unwrap()))
}

#[test]
fn grpc_frames_fuzz() {
    bolero::check!().with_test_time(SHORT_RUN).for_each(grpc_frames);
}

#[test]
fn protobuf_fields_fuzz() {
    bolero::check!().with_test_time(SHORT_RUN).for_each(protobuf_fields);
}

#[test]
fn task_decoding_fuzz() {
    // A failed input leaves nothing behind that the next one could see broken.
    let plans = std::panic::AssertUnwindSafe(offline_plans());
    bolero::check!()
        .with_test_time(SHORT_RUN)
        .for_each(|input: &[u8]| task_decoding(input, &plans));
}
