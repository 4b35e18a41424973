//! Per-call overhead of the wire proxy's forwarding path: the same unary gRPC call made directly
//! against a tiny in-process HTTP/2 upstream and through a `WireProxy` in front of it.
//! `cargo bench -p temporal-chaos --bench wire`.

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
use temporal_chaos::wire::{WireProxy, WireSettings};
use temporalio_common::protos::temporal::api::{
    common::v1::{Payload, Payloads},
    workflowservice::v1::RespondActivityTaskCompletedRequest,
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
        let proxy = WireProxy::start(WireSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: direct.to_string(),
            namespace: "default".into(),
        })
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

criterion_group!(benches, forwarding);
criterion_main!(benches);
