//! Per-call overhead of the wire proxy's forwarding path: the same unary gRPC call made directly
//! against a tiny in-process HTTP/2 upstream and through a `WireProxy` in front of it.
//! Then the same comparison for real calls against a `temporal server start-dev` (skipped when
//! the `temporal` CLI is missing). And the latency percentiles of unary calls paced at 1,000 per
//! second, direct and through the proxy, in an HDR histogram (printed: criterion gives means of
//! back-to-back calls, not percentiles at a rate). `cargo bench -p temporal-chaos --bench wire`.

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use prost::Message;
use std::{convert::Infallible, net::SocketAddr, time::Duration};
use temporal_chaos::{
    plan::{ActivitySettings, ResilientInput},
    target::{Endpoint, connect},
    wire::{WireProxy, WireSettings},
    worker::run_worker_until,
    workflows::ResilientCall,
};
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_common::protos::temporal::api::{
    common::v1::{Payload, Payloads},
    workflowservice::v1::{
        DescribeNamespaceRequest, GetSystemInfoRequest, RespondActivityTaskCompletedRequest,
        workflow_service_client::WorkflowServiceClient,
    },
};
use tokio::{net::TcpListener, runtime::Runtime};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// One gRPC frame around `message`.
fn frame(message: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(5 + message.len());
    buf.put_u8(0);
    buf.put_u32(message.len() as u32);
    buf.put_slice(message);
    buf.freeze()
}

/// An HTTP/2 server that answers every call with an empty OK message, like a frontend would.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                // Read the whole request, as the frontend does.
                let _ = request.into_body().collect().await;
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                let frames = [Frame::data(frame(&[])), Frame::trailers(trailers)];
                let body = StreamBody::new(futures::stream::iter(frames.map(Ok::<_, Infallible>)));
                let mut response = Response::new(body);
                response
                    .headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/grpc"));
                Ok::<_, Infallible>(response)
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    address
}

/// One unary call: send, read the whole answer with its trailers.
async fn call(client: &Client<HttpConnector, Body>, uri: &str, message: &Bytes) {
    let request = Request::post(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(message.clone()).boxed_unsync())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let collected = response.into_body().collect().await.unwrap();
    assert!(collected.trailers().is_some_and(|t| t["grpc-status"] == "0"));
}

fn forwarding(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let (direct, proxy) = rt.block_on(async {
        let direct = upstream().await;
        let proxy = WireProxy::start(WireSettings::new(
            vec!["127.0.0.1:0".parse().unwrap()],
            Endpoint::local(direct.to_string(), "default".into()),
        ))
        .await
        .unwrap();
        (direct.to_string(), proxy)
    });
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).http2_only(true).build(connector);
    let completion = |size: usize| {
        RespondActivityTaskCompletedRequest {
            task_token: b"not a task the proxy handed out".to_vec(),
            result: Some(Payloads {
                payloads: vec![Payload {
                    data: vec![b'x'; size],
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let service = "temporal.api.workflowservice.v1.WorkflowService";
    let cases = [
        ("GetSystemInfo", "passed through", 100),
        ("GetSystemInfo", "passed through", 1 << 20),
        ("RespondActivityTaskCompleted", "inspected", 1000),
    ];
    let mut group = c.benchmark_group("wire unary call");
    group.measurement_time(Duration::from_secs(5)).sample_size(30);
    for (method, how, size) in cases {
        let message = frame(&completion(size));
        for (via, address) in [("direct", &direct), ("proxy", &proxy.address())] {
            let uri = format!("http://{address}/{service}/{method}");
            let id = BenchmarkId::new(format!("{method} ({how}), {via}"), format!("{size} B"));
            group.bench_with_input(id, &message, |b, message| {
                b.iter(|| rt.block_on(call(&client, &uri, message)))
            });
        }
    }
    group.finish();
}

/// `temporal server start-dev` on free loopback ports, killed on drop.
struct DevServer(std::process::Child);

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a dev server; `None` (with a note) when the `temporal` CLI is not installed.
fn dev_server() -> Option<(DevServer, String)> {
    let (grpc, ui) = (free_port(), free_port());
    let bin = std::env::var("CHAOS_TEMPORAL_BIN").unwrap_or_else(|_| "temporal".into());
    let child = std::process::Command::new(&bin)
        .args(["server", "start-dev", "--ip", "127.0.0.1", "--log-level", "error"])
        .args(["--port", &grpc.to_string(), "--ui-port", &ui.to_string()])
        // The dev server limits calls per second; a benchmark makes far more.
        .args(["--dynamic-config-value", "frontend.rps=1000000"])
        .args(["--dynamic-config-value", "frontend.namespaceRPS=1000000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match child {
        Ok(child) => Some((DevServer(child), format!("127.0.0.1:{grpc}"))),
        Err(e) => {
            eprintln!("skipping the dev-server benchmarks: cannot run `{bin}`: {e}");
            None
        }
    }
}

/// The same calls against a real dev server, directly and through the proxy.
fn against_dev_server(c: &mut Criterion) {
    let Some((_server, address)) = dev_server() else {
        return;
    };
    let rt = Runtime::new().unwrap();
    let (proxy, mut direct_client, mut proxy_client) = rt.block_on(async {
        let proxy = WireProxy::start(WireSettings::new(
            vec!["127.0.0.1:0".parse().unwrap()],
            Endpoint::local(address.clone(), "default".into()),
        ))
        .await
        .unwrap();
        let began = std::time::Instant::now();
        let client = loop {
            if let Ok(mut c) = WorkflowServiceClient::connect(format!("http://{address}")).await {
                let request = DescribeNamespaceRequest {
                    namespace: "default".into(),
                    ..Default::default()
                };
                if c.describe_namespace(request).await.is_ok() {
                    break c;
                }
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "the dev server did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let via_proxy = WorkflowServiceClient::connect(format!("http://{}", proxy.address()))
            .await
            .unwrap();
        (proxy, client, via_proxy)
    });
    let mut group = c.benchmark_group("wire against a dev server");
    group.measurement_time(Duration::from_secs(5)).sample_size(30);
    for (via, client) in [("direct", &mut direct_client), ("proxy", &mut proxy_client)] {
        group.bench_function(BenchmarkId::new("GetSystemInfo", via), |b| {
            b.iter(|| {
                rt.block_on(client.get_system_info(GetSystemInfoRequest::default()))
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("DescribeNamespace", via), |b| {
            b.iter(|| {
                let request = DescribeNamespaceRequest {
                    namespace: "default".into(),
                    ..Default::default()
                };
                rt.block_on(client.describe_namespace(request)).unwrap()
            })
        });
    }
    group.finish();

    // Whole workflows: the demo worker behind the proxy or not, one resilient workflow (a
    // workflow task, an activity, a workflow task) after the other.
    let started = std::sync::atomic::AtomicU64::new(0);
    let mut group = c.benchmark_group("wire workflow round trip");
    group.measurement_time(Duration::from_secs(15)).sample_size(10);
    for (via, worker_address) in [("direct", address.clone()), ("proxy", proxy.address())] {
        let (starter, worker_client) = rt.block_on(async {
            let connect = |a: String| async move { connect(&Endpoint::local(a, "default".into())).await.unwrap().0 };
            (connect(address.clone()).await, connect(worker_address).await)
        });
        let tq = format!("bench-{via}");
        group.bench_function(BenchmarkId::new("ResilientCall", via), |b| {
            b.iter_custom(|iters| {
                let workflows = async {
                    let began = std::time::Instant::now();
                    for _ in 0..iters {
                        let n = started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let options = WorkflowStartOptions::new(tq.clone(), format!("bench-{n}")).build();
                        let input = ResilientInput {
                            value: 1,
                            activity: ActivitySettings::default(),
                            fallback_b_error_types: Vec::new(),
                        };
                        let handle = starter
                            .start_workflow(ResilientCall::run, input, options)
                            .await
                            .unwrap();
                        handle.get_result(WorkflowGetResultOptions::default()).await.unwrap();
                    }
                    began.elapsed()
                };
                rt.block_on(run_worker_until(worker_client.clone(), &tq, workflows))
                    .unwrap()
            })
        });
    }
    group.finish();
    drop(proxy);
}

/// Calls per second of the paced comparison.
const PACED_RATE: u64 = 1_000;
/// How long each side of the paced comparison runs.
const PACED_FOR: Duration = Duration::from_secs(10);

/// Latencies (microseconds) of `call`s made at [`PACED_RATE`] per second for [`PACED_FOR`], each
/// on its own task so that a slow one does not hold back the next.
async fn paced<F, Fut>(call: F) -> hdrhistogram::Histogram<u64>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / PACED_RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = tokio::task::JoinSet::new();
    let until = std::time::Instant::now() + PACED_FOR;
    while std::time::Instant::now() < until {
        tick.tick().await;
        let call = call();
        calls.spawn(async move {
            let began = std::time::Instant::now();
            call.await;
            began.elapsed().as_micros() as u64
        });
    }
    let mut histogram = hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
    while let Some(us) = calls.join_next().await {
        histogram.saturating_record(us.unwrap().max(1));
    }
    histogram
}

/// p50 and p99 of unary calls at 1,000 per second, direct and through the proxy, and what the
/// proxy adds: against the tiny upstream (the proxy's own cost) and against a dev server.
fn paced_latency(_: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let report = |what: &str, direct: &hdrhistogram::Histogram<u64>, proxy: &hdrhistogram::Histogram<u64>| {
        let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "paced {what}, {PACED_RATE} calls/s for {} s: direct p50 {:.3} ms p99 {:.3} ms ({} calls); proxy p50 {:.3} ms \
             p99 {:.3} ms ({} calls); added p50 {:.3} ms p99 {:.3} ms",
            PACED_FOR.as_secs(),
            ms(direct, 0.5),
            ms(direct, 0.99),
            direct.len(),
            ms(proxy, 0.5),
            ms(proxy, 0.99),
            proxy.len(),
            ms(proxy, 0.5) - ms(direct, 0.5),
            ms(proxy, 0.99) - ms(direct, 0.99),
        );
    };
    let service = "temporal.api.workflowservice.v1.WorkflowService";
    rt.block_on(async {
        let direct = upstream().await.to_string();
        let proxy = WireProxy::start(WireSettings::new(
            vec!["127.0.0.1:0".parse().unwrap()],
            Endpoint::local(direct.clone(), "default".into()),
        ))
        .await
        .unwrap();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Body> =
            Client::builder(TokioExecutor::new()).http2_only(true).build(connector);
        let message = frame(&GetSystemInfoRequest::default().encode_to_vec());
        let mut histograms = Vec::new();
        for address in [direct.clone(), proxy.address()] {
            let uri = format!("http://{address}/{service}/GetSystemInfo");
            histograms.push(
                paced(|| {
                    let (client, uri, message) = (client.clone(), uri.clone(), message.clone());
                    async move { call(&client, &uri, &message).await }
                })
                .await,
            );
        }
        report("GetSystemInfo, tiny upstream", &histograms[0], &histograms[1]);
    });
    let Some((_server, address)) = dev_server() else {
        return;
    };
    rt.block_on(async {
        let proxy = WireProxy::start(WireSettings::new(
            vec!["127.0.0.1:0".parse().unwrap()],
            Endpoint::local(address.clone(), "default".into()),
        ))
        .await
        .unwrap();
        let mut histograms = Vec::new();
        for via in [address.clone(), proxy.address()] {
            let began = std::time::Instant::now();
            let client = loop {
                if let Ok(mut c) = WorkflowServiceClient::connect(format!("http://{via}")).await
                    && c.get_system_info(GetSystemInfoRequest::default()).await.is_ok()
                {
                    break c;
                }
                assert!(
                    began.elapsed() < Duration::from_secs(30),
                    "the dev server did not start"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            histograms.push(
                paced(|| {
                    let mut client = client.clone();
                    async move {
                        client.get_system_info(GetSystemInfoRequest::default()).await.unwrap();
                    }
                })
                .await,
            );
        }
        report("GetSystemInfo, dev server", &histograms[0], &histograms[1]);
    });
}

criterion_group!(benches, forwarding, against_dev_server, paced_latency);
criterion_main!(benches);
