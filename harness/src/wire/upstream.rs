//! The connection to the Temporal frontend: HTTP/2 connections that multiplex every forwarded
//! call, as many as the frontend's stream limit asks for (`pool.rs`), opened the way the
//! harness's connection settings say ([`crate::target::Endpoint`]): plaintext (h2c), or TLS with
//! ALPN h2, verified against the profile's server CA (else the system's roots) and the server name
//! override (else the address's host), with a client certificate for mTLS. With an API key every
//! call without an `authorization` header of its own gets `authorization: Bearer <key>`, the
//! proxy's own calls too; without one, the proxy's own calls carry the credentials of the worker
//! call they are made for ([`Credentials`]), and each names its namespace in `temporal-namespace`,
//! as the SDKs' calls do (Temporal Cloud refuses calls without them).

use super::{
    grpc::{self, BoxError, ProxyBody},
    pool::Pool,
};
use crate::target::Endpoint;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Uri, header::AUTHORIZATION, request::Parts};
use http_body_util::BodyExt;
use rustls::{
    ClientConfig, RootCertStore, SignatureScheme,
    client::ResolvesClientCert,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    sign::CertifiedKey,
};
use std::{
    fmt,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use temporalio_common::{
    envconfig::{ClientConfigTLS, DataSource},
    protos::temporal::api::workflowservice::v1::{GetSystemInfoRequest, GetSystemInfoResponse},
};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};
use tokio_util::either::Either;

/// How long opening an upstream connection (TCP, the TLS handshake and the frontend's HTTP/2
/// settings) may take before the call fails as unavailable.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the frontend is and how to talk to it.
#[derive(Clone)]
pub struct UpstreamEndpoint {
    /// `http://host:port` or `https://host:port` of the frontend: the `:authority` of every call.
    base: Uri,
    /// Where connections are opened to: the frontend, or a forwarder in front of it.
    dial: String,
    /// TLS to the frontend, when on.
    tls: Option<Tls>,
    /// `Bearer <API key>`, marked sensitive (kept out of Debug output and HPACK tables).
    authorization: Option<HeaderValue>,
}

/// The TLS client of the upstream connection.
#[derive(Clone)]
struct Tls {
    connector: TlsConnector,
    /// What the certificate is verified against (and sent as SNI).
    server_name: ServerName<'static>,
    /// Without a client certificate: whether the frontend asked for one.
    without_client_cert: Option<Arc<NoClientCert>>,
}

/// The client "certificate" when none is configured: notes that the frontend asked for one. Under
/// TLS 1.3 a frontend that requires one refuses only after the handshake, which reaches the proxy
/// as a connection that closed, with no reason given; this gives the reason.
#[derive(Debug, Default)]
struct NoClientCert {
    asked: AtomicBool,
}

impl ResolvesClientCert for NoClientCert {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// Never prints the API key.
impl fmt::Debug for UpstreamEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamEndpoint")
            .field("base", &self.base)
            .field("dial", &self.dial)
            .field("tls_server_name", &self.tls.as_ref().map(|t| t.server_name.to_str()))
            .field("api_key", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl UpstreamEndpoint {
    /// The frontend of `endpoint` (`HOST:PORT`, `http://HOST:PORT` or `https://HOST:PORT`), with
    /// its TLS settings (files are read here) and API key. With `via`, connections go to that
    /// `HOST:PORT` instead (a forwarder such as the network fault proxy), and TLS still verifies
    /// the frontend's name.
    pub fn new(endpoint: &Endpoint, via: Option<&str>) -> Result<Self, UpstreamError> {
        let address = endpoint.address.as_str();
        let bad = |reason: &str| UpstreamError::BadAddress {
            address: address.to_owned(),
            reason: reason.to_owned(),
        };
        let tls_on = endpoint.tls();
        let host_port = match (address.split_once("://"), tls_on) {
            (None, _) => address,
            (Some(("http", rest)), false) | (Some(("https", rest)), true) => rest,
            (Some(("https", _)), false) => {
                return Err(bad(
                    "an https:// address but TLS is off; turn it on (--tls true) or give HOST:PORT",
                ));
            }
            (Some(("http", _)), true) => {
                return Err(bad(
                    "an http:// address but TLS is on; turn it off (--tls false) or give HOST:PORT",
                ));
            }
            (Some(_), _) => return Err(bad("expected HOST:PORT, e.g. 127.0.0.1:7233")),
        };
        let scheme = if tls_on { "https" } else { "http" };
        let base: Uri = format!("{scheme}://{host_port}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let (Some(authority), Some(_)) = (base.authority(), base.port_u16()) else {
            return Err(bad("expected HOST:PORT, e.g. 127.0.0.1:7233"));
        };
        if !host_port.ends_with(authority.as_str()) {
            return Err(bad("expected HOST:PORT without a path, e.g. 127.0.0.1:7233"));
        }
        let host = authority.host().trim_matches(|c| c == '[' || c == ']');
        let tls = endpoint.tls_settings().map(|t| tls(&t, host)).transpose()?;
        let authorization = endpoint
            .api_key()
            .map(|key| {
                let mut value =
                    HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| UpstreamError::Settings {
                        reason: "the API key has characters a header cannot carry".into(),
                    })?;
                value.set_sensitive(true);
                Ok::<_, UpstreamError>(value)
            })
            .transpose()?;
        Ok(Self {
            dial: via.map_or_else(|| authority.to_string(), ToOwned::to_owned),
            base,
            tls,
            authorization,
        })
    }

    /// `host:port` of the frontend.
    pub fn authority(&self) -> String {
        self.base.authority().map(ToString::to_string).unwrap_or_default()
    }

    /// What to add to a transport error: the likely cause, when the proxy knows one.
    fn hint(&self) -> &'static str {
        let asked = self
            .tls
            .as_ref()
            .and_then(|t| t.without_client_cert.as_ref())
            .is_some_and(|n| n.asked.load(Ordering::Relaxed));
        if asked {
            " (the frontend asked for a client certificate and none is configured: \
             --tls-cert-path and --tls-key-path)"
        } else {
            ""
        }
    }
}

/// A rustls client for `settings`; the certificate must name `server_name` or else `host`.
fn tls(settings: &ClientConfigTLS, host: &str) -> Result<Tls, UpstreamError> {
    let bad = |reason: String| UpstreamError::Settings { reason };
    let mut roots = RootCertStore::empty();
    match &settings.server_ca_cert {
        Some(source) => {
            let (pem, what) = read(source, "server CA certificate")?;
            roots.add_parsable_certificates(certificates(&pem, &what)?);
            if roots.is_empty() {
                return Err(bad(format!("{what}: no usable X.509 certificate in it")));
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(bad(
                    "no server CA certificate given (--tls-ca-path) and no system root certificates found".into(),
                ));
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots);
    let mut without_client_cert = None;
    let mut config = match (&settings.client_cert, &settings.client_key) {
        (None, None) => {
            let resolver = Arc::new(NoClientCert::default());
            without_client_cert = Some(resolver.clone());
            builder.with_client_cert_resolver(resolver)
        }
        (Some(cert), Some(key)) => {
            let (cert_pem, cert_what) = read(cert, "client certificate")?;
            let (key_pem, key_what) = read(key, "client key")?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| bad(format!("{key_what}: no usable private key in it ({e})")))?;
            builder
                .with_client_auth_cert(certificates(&cert_pem, &cert_what)?, key)
                .map_err(|e| bad(format!("{cert_what} with {key_what}: {e}")))?
        }
        _ => {
            return Err(bad(
                "mTLS needs both a client certificate and its key (--tls-cert-path and --tls-key-path)".into(),
            ));
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = settings.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_owned())
        .map_err(|e| bad(format!("`{name}` is not a usable TLS server name: {e}")))?;
    Ok(Tls {
        connector: TlsConnector::from(Arc::new(config)),
        server_name,
        without_client_cert,
    })
}

/// The bytes of a certificate or key, and what to call it in errors (its path, never its data).
fn read(source: &DataSource, what: &str) -> Result<(Vec<u8>, String), UpstreamError> {
    match source {
        DataSource::Path(path) => {
            let what = format!("the {what} `{path}`");
            std::fs::read(path)
                .map(|data| (data, what.clone()))
                .map_err(|e| UpstreamError::Settings {
                    reason: format!("cannot read {what}: {e}"),
                })
        }
        DataSource::Data(data) => Ok((data.clone(), format!("the {what} (inline data)"))),
        _ => Err(UpstreamError::Settings {
            reason: format!("the {what} comes from a source the proxy cannot read; give a file"),
        }),
    }
}

/// The PEM certificates in `pem`.
fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, UpstreamError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| UpstreamError::Settings {
            reason: format!("{what} is not PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(UpstreamError::Settings {
            reason: format!("{what} holds no PEM certificate"),
        });
    }
    Ok(certs)
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
    /// The TLS settings (certificate and key files, server name) or the API key are unusable.
    #[error("unusable connection settings for the upstream: {reason}")]
    Settings {
        /// What is wrong, naming the file.
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
    /// The frontend answered a call the proxy made (its own, or a worker's it sent on later)
    /// with a non-OK status.
    #[error("{method} at {address} failed with gRPC status {code}: {message}")]
    Status {
        /// Method called.
        method: String,
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
    /// A call the proxy made on a worker's behalf got no answer before the attempt's deadline.
    #[error("no answer from {address} before the attempt's deadline")]
    Deadline {
        /// `host:port`.
        address: String,
    },
}

impl UpstreamError {
    /// Whether trying again may succeed: the connection failed, or the frontend said
    /// `UNAVAILABLE` (14), as it does while it starts, stops or sheds load.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            UpstreamError::Unreachable { .. } | UpstreamError::Status { code: 14, .. }
        )
    }
}

/// First pause between tries of a call the proxy makes on a worker's behalf; it doubles up to
/// [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between tries.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Makes `call` until it succeeds, fails in a way retrying cannot mend, or `until` passes (a try
/// still running then is cut off); pauses between tries grow from 100 ms to 2 s. Returns the last
/// result and the number of tries.
pub async fn retrying<T, Fut>(
    address: &str,
    until: tokio::time::Instant,
    mut call: impl FnMut() -> Fut,
) -> (Result<T, UpstreamError>, u32)
where
    Fut: Future<Output = Result<T, UpstreamError>>,
{
    let mut pause = FIRST_PAUSE;
    let mut tries = 0;
    loop {
        tries += 1;
        let result = tokio::time::timeout_at(until, call()).await.unwrap_or_else(|_| {
            Err(UpstreamError::Deadline {
                address: address.to_owned(),
            })
        });
        match result {
            Err(e) if e.retryable() && tokio::time::Instant::now() + pause < until => {
                tracing::debug!(error = %e, tries, "retrying a call to the frontend");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            done => return (done, tries),
        }
    }
}

/// Opens the connections: TCP to the dial address, then TLS when on.
#[derive(Clone)]
pub(super) struct Connector {
    dial: String,
    tls: Option<Tls>,
}

/// A plaintext or TLS connection to the frontend.
pub(super) type Stream = Either<TcpStream, TlsStream<TcpStream>>;

impl Connector {
    /// A connection to the dial address (whatever the frontend's name), within [`CONNECT_TIMEOUT`].
    pub(super) async fn connect(&self) -> std::io::Result<Stream> {
        let connecting = async {
            let tcp = TcpStream::connect(&self.dial).await?;
            tcp.set_nodelay(true)?;
            let Some(tls) = &self.tls else {
                return Ok(Either::Left(tcp));
            };
            let stream = tls.connector.connect(tls.server_name.clone(), tcp).await?;
            Ok(Either::Right(stream))
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
                ))
            })
    }
}

/// The credentials of a worker's call, for the calls the proxy makes on its behalf (its
/// `authorization`, kept out of Debug output and HPACK tables).
#[derive(Clone, Default)]
pub struct Credentials {
    authorization: Option<HeaderValue>,
}

impl Credentials {
    /// The credentials a worker's call carries in `headers`.
    pub fn of(headers: &HeaderMap) -> Self {
        let authorization = headers.get(AUTHORIZATION).cloned().map(|mut value| {
            value.set_sensitive(true);
            value
        });
        Self { authorization }
    }
}

/// Never prints the credentials.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let authorization = self.authorization.as_ref().map(|_| "<redacted>");
        f.debug_struct("Credentials")
            .field("authorization", &authorization)
            .finish()
    }
}

/// The frontend's connections.
#[derive(Clone)]
pub struct Upstream {
    endpoint: UpstreamEndpoint,
    pool: Arc<Pool>,
}

/// The header naming the namespace of a call, which the SDKs send and Temporal Cloud routes by.
const NAMESPACE_HEADER: &str = "temporal-namespace";

/// Path prefix of every WorkflowService method.
pub const WORKFLOW_SERVICE: &str = "/temporal.api.workflowservice.v1.WorkflowService/";

impl Upstream {
    /// A client for `endpoint`; connects lazily, on the first call.
    pub fn new(endpoint: UpstreamEndpoint) -> Self {
        let connector = Connector {
            dial: endpoint.dial.clone(),
            tls: endpoint.tls.clone(),
        };
        Self {
            endpoint,
            pool: Arc::new(Pool::new(connector)),
        }
    }

    /// `host:port` of the frontend.
    pub fn address(&self) -> String {
        self.endpoint.authority()
    }

    /// Sends a request with the worker's method, path and headers (`parts`) and `body`, as is.
    pub async fn send(&self, mut parts: Parts, body: ProxyBody) -> Result<Response<ProxyBody>, UpstreamError> {
        let mut uri = self.endpoint.base.clone().into_parts();
        uri.path_and_query = parts.uri.path_and_query().cloned();
        parts.uri = Uri::from_parts(uri).map_err(|e| UpstreamError::BadAddress {
            address: self.address(),
            reason: e.to_string(),
        })?;
        parts.headers.remove(http::header::HOST);
        if let Some(authorization) = &self.endpoint.authorization {
            // A worker's own credentials go through as they are.
            parts
                .headers
                .entry(AUTHORIZATION)
                .or_insert_with(|| authorization.clone());
        }
        parts.version = http::Version::HTTP_2;
        self.pool
            .send(Request::from_parts(parts, body))
            .await
            .map_err(|reason| UpstreamError::Unreachable {
                address: self.address(),
                reason: reason + self.endpoint.hint(),
            })
    }

    /// The frontend's `GetSystemInfo`: whether it answers, and its version.
    pub async fn system_info(&self) -> Result<GetSystemInfoResponse, UpstreamError> {
        let request = GetSystemInfoRequest::default();
        self.unary("GetSystemInfo", &request, None, &Credentials::default())
            .await
    }

    /// Makes a unary WorkflowService call of the proxy's own (not a worker's): in `namespace`
    /// (named in `temporal-namespace`) if it is namespaced, with `credentials` unless the proxy
    /// has an API key of its own.
    pub async fn unary<Req, Resp>(
        &self,
        method: &'static str,
        request: &Req,
        namespace: Option<&str>,
        credentials: &Credentials,
    ) -> Result<Resp, UpstreamError>
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
        // A name a header cannot carry is no namespace: the frontend says so.
        if let Some(namespace) = namespace.and_then(|n| HeaderValue::try_from(n).ok()) {
            headers.insert(NAMESPACE_HEADER, namespace);
        }
        if self.endpoint.authorization.is_none()
            && let Some(authorization) = &credentials.authorization
        {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
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
                method: method.to_owned(),
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
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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
    use crate::target::ConnectionSettings;

    fn plaintext(address: &str) -> Result<UpstreamEndpoint, UpstreamError> {
        UpstreamEndpoint::new(&Endpoint::local(address.into(), "default".into()), None)
    }

    #[test]
    fn plaintext_endpoints_parse_with_clear_errors() {
        assert_eq!(plaintext("127.0.0.1:7233").unwrap().authority(), "127.0.0.1:7233");
        let http = plaintext("http://localhost:7233").unwrap();
        assert_eq!(
            (http.base.scheme_str(), http.dial.as_str()),
            (Some("http"), "localhost:7233")
        );
        let https = plaintext("https://x.tmprl.cloud:7233").unwrap_err().to_string();
        assert!(https.contains("TLS is off") && https.contains("--tls true"), "{https}");
        let port = plaintext("localhost").unwrap_err().to_string();
        assert!(port.contains("HOST:PORT"), "{port}");
        let path = plaintext("localhost:7233/x").unwrap_err().to_string();
        assert!(path.contains("without a path"), "{path}");
    }

    /// A self-signed certificate for `name`, as a PEM file in `dir`.
    fn ca_file(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
        let certified = rcgen::generate_simple_self_signed(vec![name.into()]).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, certified.cert.pem()).unwrap();
        path
    }

    #[test]
    fn tls_and_the_api_key_come_from_the_connection_settings() {
        let dir = tempfile::tempdir().unwrap();
        let settings = ConnectionSettings {
            address: Some("frontend.example:7233".into()),
            api_key: Some("sekret-key".into()),
            tls_ca_path: Some(ca_file(dir.path(), "frontend.example")),
            ..Default::default()
        };
        let endpoint = settings.resolve().unwrap();
        let upstream = UpstreamEndpoint::new(&endpoint, Some("127.0.0.1:9")).unwrap();
        assert_eq!(upstream.base.scheme_str(), Some("https"));
        assert_eq!(upstream.authority(), "frontend.example:7233", "calls name the frontend");
        assert_eq!(upstream.dial, "127.0.0.1:9", "connections go through the forwarder");
        let tls = upstream.tls.as_ref().unwrap();
        assert_eq!(
            tls.server_name.to_str(),
            "frontend.example",
            "verified against the frontend"
        );
        let authorization = upstream.authorization.as_ref().unwrap();
        assert_eq!(authorization, "Bearer sekret-key");
        assert!(authorization.is_sensitive());
        let debug = format!("{upstream:?}");
        assert!(!debug.contains("sekret") && debug.contains("<redacted>"), "{debug}");

        let renamed = ConnectionSettings {
            tls_server_name: Some("other.example".into()),
            ..settings
        };
        let upstream = UpstreamEndpoint::new(&renamed.resolve().unwrap(), None).unwrap();
        assert_eq!(upstream.tls.unwrap().server_name.to_str(), "other.example");
    }

    #[test]
    fn unusable_tls_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent-ca.pem");
        let settings = ConnectionSettings {
            address: Some("127.0.0.1:7233".into()),
            tls_ca_path: Some(missing.clone()),
            ..Default::default()
        };
        let err = UpstreamEndpoint::new(&settings.resolve().unwrap(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");

        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let settings = ConnectionSettings {
            tls_ca_path: Some(not_pem.clone()),
            ..settings
        };
        let err = UpstreamEndpoint::new(&settings.resolve().unwrap(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ca.txt") && err.contains("no PEM certificate"), "{err}");

        let half_mtls = ConnectionSettings {
            tls_ca_path: Some(ca_file(dir.path(), "127.0.0.1")),
            tls_cert_path: Some(dir.path().join("ca.pem")),
            ..settings
        };
        let err = UpstreamEndpoint::new(&half_mtls.resolve().unwrap(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tls-key-path"), "{err}");
    }
}
