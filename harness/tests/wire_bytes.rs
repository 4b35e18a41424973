//! Properties of the wire proxy at the byte level, through a real in-process [`WireProxy`]: what
//! it does not alter passes byte for byte, however it is split into HTTP/2 DATA frames and
//! whether or not it is compressed, in both directions; a malformed message from either side is
//! forwarded or answered with a gRPC status, never a panic or a hung stream.
//!
//! The upstream here is [`Scripted`], an h2c server that records the bytes it receives and
//! answers with bytes the test chose, because a real Temporal frontend cannot report the exact
//! bytes it received, nor answer with a given (or malformed) byte string. The proxy against the
//! real server is tested in `wire.rs`.

mod common;

use bolero::check;
use bytes::Bytes;
use common::hop::serve_on_a_free_port;
use flate2::{Compression, write::GzEncoder};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use prost::Message;
use std::{
    convert::Infallible,
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};
use temporal_chaos::{
    target::Endpoint,
    wire::{WireProxy, WireSettings},
};
use temporalio_common::protos::temporal::api::{
    common::v1::{ActivityType, WorkflowExecution},
    workflowservice::v1::{
        PollActivityTaskQueueResponse, PollWorkflowTaskQueueResponse, RecordActivityTaskHeartbeatRequest,
        RespondActivityTaskCompletedRequest, RespondActivityTaskFailedRequest, RespondWorkflowTaskCompletedResponse,
    },
};

const SERVICE: &str = "/temporal.api.workflowservice.v1.WorkflowService/";

/// How long one call through the proxy may take before the test calls it hung.
const HUNG: Duration = Duration::from_secs(10);

/// How long each property runs random cases (bounded, as part of `cargo test`).
const RUN: Duration = Duration::from_secs(3);

/// Methods the proxy forwards as they are, and those whose messages it reads (polls, workflow
/// and activity task answers).
const METHODS: [&str; 9] = [
    "GetSystemInfo",
    "StartWorkflowExecution",
    "PollActivityTaskQueue",
    "PollWorkflowTaskQueue",
    "RespondWorkflowTaskCompleted",
    "RespondActivityTaskCompleted",
    "RespondActivityTaskFailed",
    "RecordActivityTaskHeartbeat",
    "RespondActivityTaskCanceledById",
];

/// A gRPC body as one side sends it: its bytes, how they are split into DATA frames, and
/// whether the messages are gzip-compressed (`grpc-encoding: gzip`) or marked with an encoding
/// the proxy cannot read.
#[derive(Debug, Clone, Default)]
struct Body {
    chunks: Vec<Bytes>,
    encoding: Option<&'static str>,
}

impl Body {
    fn bytes(&self) -> Bytes {
        self.chunks.concat().into()
    }
}

/// One call as the upstream saw it.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    body: Bytes,
    encoding: Option<String>,
}

/// The stand-in frontend (see the module's doc): records each request and answers each method
/// with the body set for it (`DescribeWorkflowExecution`, the proxy's own fault-plan lookup, with
/// an empty message: no plan).
struct Scripted {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Body>>,
}

impl Scripted {
    fn start() -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(Body::default()));
        let (record, answers) = (received.clone(), answer.clone());
        let port = serve_on_a_free_port(move |listener| async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let (record, answers) = (record.clone(), answers.clone());
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let (record, answers) = (record.clone(), answers.clone());
                    async move {
                        let method = request.uri().path().trim_start_matches(SERVICE).to_owned();
                        let encoding = header(request.headers(), "grpc-encoding");
                        let body = request.into_body().collect().await?.to_bytes();
                        let answer = if method == "DescribeWorkflowExecution" {
                            Body {
                                chunks: vec![frame(0, &[])],
                                encoding: None,
                            }
                        } else {
                            record.lock().unwrap().push(Received { method, body, encoding });
                            answers.lock().unwrap().clone()
                        };
                        Ok::<_, hyper::Error>(respond(answer))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Self { port, received, answer }
    }

    /// The calls it received since the last time, and forgets them.
    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut self.received.lock().unwrap())
    }
}

type TestBody = StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// `body`'s chunks as DATA frames, then `trailers`.
fn stream(body: &Body, trailers: Option<HeaderMap>) -> TestBody {
    let frames: Vec<_> = body
        .chunks
        .iter()
        .cloned()
        .map(Frame::data)
        .chain(trailers.map(Frame::trailers))
        .map(Ok)
        .collect();
    StreamBody::new(futures::stream::iter(frames))
}

/// An OK gRPC response carrying `body`.
fn respond(body: Body) -> Response<TestBody> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let mut response = Response::new(stream(&body, Some(trailers)));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    if let Some(e) = body.encoding {
        response
            .headers_mut()
            .insert("grpc-encoding", HeaderValue::from_static(e));
    }
    response
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// A gRPC frame: the compressed flag, the big-endian length, the message.
fn frame(flag: u8, message: &[u8]) -> Bytes {
    let mut out = vec![flag];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out.into()
}

fn gzip(message: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(message).unwrap();
    gz.finish().unwrap()
}

/// `bytes` cut at the given points (taken modulo its length), as DATA frames.
fn split(bytes: Bytes, cuts: &[u16]) -> Vec<Bytes> {
    let mut at: Vec<usize> = cuts.iter().map(|c| usize::from(*c) % (bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| bytes.slice(w[0]..w[1])).collect()
}

/// A gRPC body holding `message`, gzip-compressed or not, split at `cuts`.
fn body(message: &[u8], compressed: bool, cuts: &[u16]) -> Body {
    let (bytes, encoding) = if compressed {
        (frame(1, &gzip(message)), Some("gzip"))
    } else {
        (frame(0, message), None)
    };
    Body {
        chunks: split(bytes, cuts),
        encoding,
    }
}

/// What a call through the proxy came back with.
#[derive(Debug)]
struct Answered {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl Answered {
    /// The gRPC status, from the trailers or (trailers-only) the headers.
    fn grpc_status(&self) -> Option<String> {
        let source = self.trailers.as_ref().filter(|t| t.contains_key("grpc-status"));
        header(source.unwrap_or(&self.headers), "grpc-status")
    }
}

/// The proxy in front of a [`Scripted`] upstream, and a client of it.
struct Bench {
    runtime: tokio::runtime::Runtime,
    upstream: Scripted,
    proxy: WireProxy,
    client: Client<HttpConnector, TestBody>,
}

impl Bench {
    fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let upstream = Scripted::start();
        let settings = WireSettings::new(
            vec!["127.0.0.1:0".parse().unwrap()],
            Endpoint::local(format!("127.0.0.1:{}", upstream.port), "default".into()),
        );
        let proxy = runtime.block_on(WireProxy::start(settings)).expect("the proxy starts");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).http2_only(true).build(connector);
        Self {
            runtime,
            upstream,
            proxy,
            client,
        }
    }

    /// Calls `method` through the proxy with `request` while the upstream answers `response`;
    /// fails the test if the call hangs or its stream breaks.
    fn call(&self, method: &str, request: &Body, response: Body) -> Answered {
        *self.upstream.answer.lock().unwrap() = response;
        let mut call = Request::post(format!("http://{}{SERVICE}{method}", self.proxy.address()))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(stream(request, None))
            .unwrap();
        if let Some(e) = request.encoding {
            call.headers_mut().insert("grpc-encoding", HeaderValue::from_static(e));
        }
        let exchange = async {
            let response = self.client.request(call).await?;
            let (parts, body) = response.into_parts();
            let collected = body.collect().await?;
            let trailers = collected.trailers().cloned();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Answered {
                status: parts.status,
                headers: parts.headers,
                body: collected.to_bytes(),
                trailers,
            })
        };
        let answered = self
            .runtime
            .block_on(async { tokio::time::timeout(HUNG, exchange).await });
        answered
            .unwrap_or_else(|_| panic!("{method}: the call hung for {HUNG:?}"))
            .unwrap_or_else(|e| panic!("{method}: the stream broke instead of a gRPC status: {e:?}"))
    }
}

/// A message for `method` (its request, or its response for the polls and workflow-task
/// completions) built from `seed` and `bytes`: a well-formed message the proxy reads (with a task
/// token, so that it records an attempt and looks its fault plan up) or, for odd seeds, the raw
/// bytes.
fn message(method: &str, seed: u8, bytes: &[u8]) -> Vec<u8> {
    if seed % 2 == 1 {
        return bytes.to_vec();
    }
    let text = String::from_utf8_lossy(bytes).into_owned();
    let token = [b"token-".as_slice(), bytes].concat();
    let execution = Some(WorkflowExecution {
        workflow_id: format!("wf-{seed}"),
        run_id: text.clone(),
    });
    let task = PollActivityTaskQueueResponse {
        task_token: token.clone(),
        workflow_execution: execution.clone(),
        activity_id: text.clone(),
        activity_type: Some(ActivityType { name: text.clone() }),
        attempt: i32::from(seed),
        // Any timeout at all, up to the largest a Duration message holds.
        start_to_close_timeout: Some(prost_wkt_types::Duration {
            seconds: match (seed / 2 % 3, bytes.first_chunk::<8>()) {
                (0, _) => i64::MAX,
                (1, Some(b)) => i64::from_le_bytes(*b),
                _ => i64::from(seed),
            },
            nanos: i32::from(seed),
        }),
        ..Default::default()
    };
    match method {
        "PollActivityTaskQueue" => task.encode_to_vec(),
        "PollWorkflowTaskQueue" => PollWorkflowTaskQueueResponse {
            task_token: token,
            workflow_execution: execution,
            attempt: i32::from(seed),
            ..Default::default()
        }
        .encode_to_vec(),
        "RespondWorkflowTaskCompleted" => RespondWorkflowTaskCompletedResponse {
            activity_tasks: vec![task.clone(), task],
            ..Default::default()
        }
        .encode_to_vec(),
        "RespondActivityTaskCompleted" => RespondActivityTaskCompletedRequest {
            task_token: token,
            identity: text,
            ..Default::default()
        }
        .encode_to_vec(),
        "RespondActivityTaskFailed" => RespondActivityTaskFailedRequest {
            task_token: token,
            identity: text,
            ..Default::default()
        }
        .encode_to_vec(),
        "RecordActivityTaskHeartbeat" => RecordActivityTaskHeartbeatRequest {
            task_token: token,
            identity: text,
            ..Default::default()
        }
        .encode_to_vec(),
        _ => bytes.to_vec(),
    }
}

/// Whatever the proxy does not alter (no fault plan anywhere) passes byte for byte, both ways:
/// any message, any split into DATA frames, compressed or not.
#[test]
fn what_the_proxy_does_not_alter_passes_byte_for_byte() {
    // A failing case ends the test: nothing is reused after a panic.
    let bench = std::panic::AssertUnwindSafe(Bench::start());
    // Method, seed, request and response bytes, whether each is compressed, where each is cut.
    type Case = (u8, u8, Vec<u8>, Vec<u8>, bool, bool, Vec<u16>, Vec<u16>);
    check!()
        .with_type::<Case>()
        .with_test_time(RUN)
        .for_each(|case: &Case| {
            let (pick, seed, up, down, zip_up, zip_down, cuts_up, cuts_down) = case;
            let method = METHODS[usize::from(*pick) % METHODS.len()];
            let request = body(&message(method, *seed, up), *zip_up, cuts_up);
            let response = body(&message(method, seed.wrapping_add(1), down), *zip_down, cuts_down);
            let answered = bench.call(method, &request, response.clone());
            let received = bench.upstream.take();
            assert_eq!(received.len(), 1, "{method}: one call upstream: {received:?}");
            assert_eq!(received[0].method, method);
            assert_eq!(received[0].body, request.bytes(), "{method}: the request's bytes");
            assert_eq!(received[0].encoding.as_deref(), request.encoding);
            assert_eq!(answered.status, StatusCode::OK);
            assert_eq!(answered.grpc_status().as_deref(), Some("0"), "{method}: {answered:?}");
            assert_eq!(answered.body, response.bytes(), "{method}: the response's bytes");
            assert_eq!(header(&answered.headers, "grpc-encoding").as_deref(), response.encoding);
        });
}

/// Ways a gRPC body can be malformed: a frame shorter than its prefix says, a length prefix
/// beyond any message, a prefix cut short, bytes that are not protobuf, an encoding the proxy
/// cannot read, gzip-flagged bytes that are not gzip.
fn malformed(kind: u8, bytes: &[u8]) -> Body {
    let (chunks, encoding) = match kind % 6 {
        0 => {
            let whole = frame(0, &[bytes, b"0123456789"].concat());
            (whole.slice(..whole.len() - 3), None)
        }
        1 => {
            let mut bad = frame(0, bytes).to_vec();
            bad[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
            (bad.into(), None)
        }
        2 => (Bytes::copy_from_slice(&[0, 0, 0][..]), None),
        3 => (frame(0, &[&[0xff, 0xff, 0xff][..], bytes].concat()), None),
        4 => (frame(1, &gzip(bytes)), Some("zstd")),
        _ => (frame(1, &[b"not gzip".as_slice(), bytes].concat()), Some("gzip")),
    };
    Body {
        chunks: vec![chunks],
        encoding,
    }
}

/// A malformed message from the worker or from the frontend is forwarded as it is or answered
/// with a gRPC status: never a panic (which would break the stream), never a hung call.
#[test]
fn malformed_messages_are_forwarded_or_answered_with_a_status() {
    // A failing case ends the test: nothing is reused after a panic.
    let bench = std::panic::AssertUnwindSafe(Bench::start());
    let well_formed = |method| body(&message(method, 0, b"fine"), false, &[]);
    let check_one = |method: &str, request: Body, response: Body| {
        let answered = bench.call(method, &request, response.clone());
        let status = answered.grpc_status();
        let received = bench.upstream.take();
        for r in &received {
            assert_eq!(r.body, request.bytes(), "{method}: a forwarded request is untouched");
        }
        if status.as_deref() == Some("0") {
            assert_eq!(received.len(), 1, "{method}: OK means it went upstream");
            assert_eq!(answered.body, response.bytes(), "{method}: an OK answer is untouched");
        } else {
            assert!(
                status.is_some(),
                "{method}: neither forwarded nor a status: {answered:?}"
            );
        }
    };
    // Every kind on every method, from either side.
    for method in METHODS {
        for kind in 0..6 {
            check_one(method, malformed(kind, b"x"), well_formed(method));
            check_one(method, well_formed(method), malformed(kind, b"x"));
        }
    }
    // Method, kind of flaw, whether the upstream sends it, the message's bytes, the cuts.
    type Case = (u8, u8, bool, Vec<u8>, Vec<u16>);
    check!()
        .with_type::<Case>()
        .with_test_time(RUN)
        .for_each(|case: &Case| {
            let (pick, kind, upstream, bytes, cuts) = case;
            let method = METHODS[usize::from(*pick) % METHODS.len()];
            let mut bad = malformed(*kind, bytes);
            bad.chunks = split(bad.bytes(), cuts);
            if *upstream {
                check_one(method, well_formed(method), bad);
            } else {
                check_one(method, bad, well_formed(method));
            }
        });
}
