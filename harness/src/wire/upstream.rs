//! The connection to the Temporal frontend: plaintext HTTP/2 (h2c), one pooled connection that
//! multiplexes every forwarded call.
//!
//! [`UpstreamEndpoint`] is where TLS and an API key would go: a TLS connector in place of the
//! plain [`HttpConnector`] and an `authorization` header in [`Upstream::send`].

use super::grpc::{self, BoxError, ProxyBody};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Uri, request::Parts};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use std::time::Duration;

/// How long opening the upstream connection may take before the call fails as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the frontend is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamEndpoint {
    /// `http://host:port`.
    pub base: Uri,
}

impl UpstreamEndpoint {
    /// Parses `host:port` or `http://host:port`.
    pub fn parse(address: &str) -> Result<Self, UpstreamError> {
        let bad = |reason: String| UpstreamError::BadAddress {
            address: address.to_owned(),
            reason,
        };
        if address.starts_with("https://") {
            return Err(bad(
                "TLS to the upstream is not supported yet; use a plaintext frontend (http://HOST:PORT or HOST:PORT)"
                    .into(),
            ));
        }
        let full = if address.contains("://") {
            address.to_owned()
        } else {
            format!("http://{address}")
        };
        let base: Uri = full.parse().map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
        if base.scheme_str() != Some("http") || base.port_u16().is_none() {
            return Err(bad("expected HOST:PORT, e.g. 127.0.0.1:7233".into()));
        }
        Ok(Self { base })
    }

    /// `host:port` of the frontend.
    pub fn authority(&self) -> String {
        self.base.authority().map(ToString::to_string).unwrap_or_default()
    }
}

/// Failures talking to the frontend.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream address does not parse.
    #[error("bad upstream address `{address}`: {reason}")]
    BadAddress {
        /// As given.
        address: String,
        /// What is wrong.
        reason: String,
    },
    /// The frontend could not be reached or the connection broke.
    #[error("cannot reach the Temporal frontend at {address}: {reason}")]
    Unreachable {
        /// `host:port`.
        address: String,
        /// The transport error.
        reason: String,
    },
    /// The frontend answered a call the proxy made itself with a non-OK status.
    #[error("{method} at {address} failed with gRPC status {code}: {message}")]
    Status {
        /// Method called.
        method: &'static str,
        /// `host:port`.
        address: String,
        /// gRPC status code.
        code: i32,
        /// Status message.
        message: String,
    },
    /// The frontend's answer to a call the proxy made itself is not the expected message.
    #[error("{method} at {address}: unreadable answer: {reason}")]
    Answer {
        /// Method called.
        method: &'static str,
        /// `host:port`.
        address: String,
        /// Why.
        reason: String,
    },
}

/// A pooled HTTP/2 client to the frontend.
#[derive(Clone)]
pub struct Upstream {
    endpoint: UpstreamEndpoint,
    client: Client<HttpConnector, ProxyBody>,
}

/// Path prefix of every WorkflowService method.
pub const WORKFLOW_SERVICE: &str = "/temporal.api.workflowservice.v1.WorkflowService/";

impl Upstream {
    /// A client for `endpoint`; connects lazily, on the first call.
    pub fn new(endpoint: UpstreamEndpoint) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .http2_only(true)
            .http2_adaptive_window(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .build(connector);
        Self { endpoint, client }
    }

    /// `host:port` of the frontend.
    pub fn address(&self) -> String {
        self.endpoint.authority()
    }

    /// Sends a request with the worker's method, path and headers (`parts`) and `body`, as is.
    pub async fn send(&self, mut parts: Parts, body: ProxyBody) -> Result<Response<Incoming>, UpstreamError> {
        let mut uri = self.endpoint.base.clone().into_parts();
        uri.path_and_query = parts.uri.path_and_query().cloned();
        parts.uri = Uri::from_parts(uri).map_err(|e| UpstreamError::BadAddress {
            address: self.address(),
            reason: e.to_string(),
        })?;
        parts.headers.remove(http::header::HOST);
        parts.version = http::Version::HTTP_2;
        self.client
            .request(Request::from_parts(parts, body))
            .await
            .map_err(|e| UpstreamError::Unreachable {
                address: self.address(),
                reason: error_chain(&e),
            })
    }

    /// Makes a unary WorkflowService call of the proxy's own (not a worker's).
    pub async fn unary<Req, Resp>(&self, method: &'static str, request: &Req) -> Result<Resp, UpstreamError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let mut parts = Request::new(()).into_parts().0;
        parts.method = http::Method::POST;
        parts.uri = format!("{WORKFLOW_SERVICE}{method}")
            .parse()
            .expect("method names are valid paths");
        let headers = &mut parts.headers;
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static("temporal-chaos-wire-proxy"),
        );
        let response = self.send(parts, grpc::body(grpc::frame(request), None)).await?;
        let (parts, body) = response.into_parts();
        let answer = |reason: String| UpstreamError::Answer {
            method,
            address: self.address(),
            reason,
        };
        let (data, trailers) = collect(body).await.map_err(|e| answer(e.to_string()))?;
        match grpc::status_of(&parts.headers, trailers.as_ref()) {
            Some((0, _)) => grpc::decode(&data, &parts.headers).map_err(|e| answer(e.to_string())),
            Some((code, message)) => Err(UpstreamError::Status {
                method,
                address: self.address(),
                code,
                message,
            }),
            None => Err(answer(format!("HTTP {} without a gRPC status", parts.status))),
        }
    }
}

/// Collects a body (request or response) into bytes and trailers.
pub async fn collect<B>(body: B) -> Result<(Bytes, Option<HeaderMap>), BoxError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let collected = body.collect().await.map_err(Into::into)?;
    let trailers = collected.trailers().cloned();
    Ok((collected.to_bytes(), trailers))
}

/// An error with its sources, which is where hyper puts the useful part ("connection refused").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_clear_errors() {
        assert_eq!(
            UpstreamEndpoint::parse("127.0.0.1:7233").unwrap().authority(),
            "127.0.0.1:7233"
        );
        assert_eq!(
            UpstreamEndpoint::parse("http://localhost:7233").unwrap().authority(),
            "localhost:7233"
        );
        let tls = UpstreamEndpoint::parse("https://x.tmprl.cloud:7233").unwrap_err();
        assert!(tls.to_string().contains("TLS"), "{tls}");
        let port = UpstreamEndpoint::parse("localhost").unwrap_err();
        assert!(port.to_string().contains("HOST:PORT"), "{port}");
    }
}
