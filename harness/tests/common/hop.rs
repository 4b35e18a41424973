//! An h2c hop in front of a frontend: it passes every call on, or answers one with a gRPC status of
//! its own (a frontend that refuses or sheds calls), and records what it saw; or, as a recording
//! hop, records every call's bodies.

use http::{HeaderValue, Request, Response, request::Parts};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
};

/// One call seen by a [`hop`].
#[derive(Debug, Clone)]
pub struct Seen {
    /// The gRPC method's path.
    pub path: String,
    /// Its `user-agent`.
    pub user_agent: String,
    /// Its `authorization`, if any.
    pub authorization: Option<String>,
    /// Its `temporal-namespace`, if any.
    pub namespace: Option<String>,
    /// The status code the hop answered it with itself (`None`: passed on).
    pub refused: Option<u16>,
}

/// The largest header list gRPC takes (grpc-go's default).
const LARGEST_HEADERS: u32 = 16 << 20;

type Body = UnsyncBoxBody<bytes::Bytes, hyper::Error>;

/// A hop on a free loopback port in front of the frontend at `upstream` (its port): each call is
/// passed on, unless `refuse` gives a gRPC status code to answer it with. Returns the port and the
/// calls seen.
pub fn hop<F>(upstream: u16, refuse: F) -> (u16, Arc<Mutex<Vec<Seen>>>)
where
    F: Fn(&Parts) -> Option<u16> + Send + Sync + 'static,
{
    hop_with(upstream, None, move |parts| {
        refuse(parts).map(|code| (code, "refused by the test's hop".to_owned()))
    })
}

/// A [`hop`] that passes every call on and advertises at most `streams` concurrent streams per
/// connection, as a load balancer may.
pub fn hop_limited(upstream: u16, streams: u32) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    hop_with(upstream, Some(streams), |_| None)
}

/// A [`hop`] whose refusals carry a message of their own, advertising at most `streams`
/// concurrent streams per connection if given. It takes headers as large as gRPC allows (16 MiB).
pub fn hop_with<F>(upstream: u16, streams: Option<u32>, refuse: F) -> (u16, Arc<Mutex<Vec<Seen>>>)
where
    F: Fn(&Parts) -> Option<(u16, String)> + Send + Sync + 'static,
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let refuse = Arc::new(refuse);
    let port = serve_on_a_free_port(move |listener| async move {
        let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .http2_max_header_list_size(LARGEST_HEADERS)
            .build_http();
        while let Ok((stream, _)) = listener.accept().await {
            let (client, record, refuse) = (client.clone(), record.clone(), refuse.clone());
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (mut parts, body) = request.into_parts();
                let header = |name| {
                    parts
                        .headers
                        .get(name)
                        .map(|v: &HeaderValue| v.to_str().unwrap_or_default().to_owned())
                };
                let refusal = refuse(&parts);
                let refused = refusal.as_ref().map(|(code, _)| *code);
                record.lock().unwrap().push(Seen {
                    path: parts.uri.path().to_owned(),
                    user_agent: header(http::header::USER_AGENT).unwrap_or_default(),
                    authorization: header(http::header::AUTHORIZATION),
                    namespace: header(http::header::HeaderName::from_static("temporal-namespace")),
                    refused,
                });
                parts.uri = format!("http://127.0.0.1:{upstream}{}", parts.uri.path())
                    .parse()
                    .unwrap();
                let client = client.clone();
                async move {
                    if let Some((code, message)) = refusal {
                        // Trailers-only: the status in the headers, no body.
                        let mut response = Response::new(Empty::new().map_err(|e| match e {}).boxed_unsync());
                        let headers = response.headers_mut();
                        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
                        headers.insert("grpc-status", HeaderValue::from(code));
                        headers.insert("grpc-message", HeaderValue::try_from(message).unwrap());
                        return Ok::<Response<Body>, hyper_util::client::legacy::Error>(response);
                    }
                    let response = client.request(Request::from_parts(parts, body)).await?;
                    Ok(response.map(|b| b.boxed_unsync()))
                }
            });
            let mut server = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            server.max_header_list_size(LARGEST_HEADERS);
            if let Some(streams) = streams {
                server.max_concurrent_streams(streams);
            }
            tokio::spawn(server.serve_connection(TokioIo::new(stream), service));
        }
    });
    (port, seen)
}

/// Binds a free loopback port and serves it with `serve` on a runtime of its own, in the
/// background; returns the port.
pub fn serve_on_a_free_port<F, Fut>(serve: F) -> u16
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move { serve(tokio::net::TcpListener::from_std(listener).unwrap()).await });
    });
    port
}

/// One call passed on by a [`recording_hop`], with its bodies as they went by.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The gRPC method's name (the last part of its path).
    pub method: String,
    /// The request's body.
    pub request: bytes::Bytes,
    /// The response's body.
    pub response: bytes::Bytes,
}

/// A hop on a free loopback port in front of the frontend at `upstream` (its port) that passes
/// every call on whole (each body is read before it goes on) and records both bodies. Returns
/// the port and the calls seen.
pub fn recording_hop(upstream: u16) -> (u16, Arc<Mutex<Vec<Exchange>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let port = serve_on_a_free_port(move |listener| async move {
        let client: Client<HttpConnector, Full<bytes::Bytes>> =
            Client::builder(TokioExecutor::new()).http2_only(true).build_http();
        while let Ok((stream, _)) = listener.accept().await {
            let (client, record) = (client.clone(), record.clone());
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (client, record) = (client.clone(), record.clone());
                async move {
                    let (mut parts, body) = request.into_parts();
                    let method = parts.uri.path().rsplit('/').next().unwrap_or_default().to_owned();
                    let request = body.collect().await?.to_bytes();
                    parts.uri = format!("http://127.0.0.1:{upstream}{}", parts.uri.path())
                        .parse()
                        .unwrap();
                    let sent = Request::from_parts(parts, Full::new(request.clone()));
                    let (parts, body) = client.request(sent).await?.into_parts();
                    let collected = body.collect().await?;
                    let trailers = collected.trailers().cloned();
                    let response = collected.to_bytes();
                    record.lock().unwrap().push(Exchange {
                        method,
                        request,
                        response: response.clone(),
                    });
                    let frames = [Some(Frame::data(response)), trailers.map(Frame::trailers)];
                    let body = StreamBody::new(futures::stream::iter(
                        frames.into_iter().flatten().map(Ok::<_, std::convert::Infallible>),
                    ));
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Response::from_parts(parts, body))
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (port, seen)
}
