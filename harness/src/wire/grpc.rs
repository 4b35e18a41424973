//! gRPC over HTTP/2 at the byte level: message frames, compression, statuses and bodies.
//!
//! A gRPC message travels as a 5-byte prefix (compressed flag, big-endian `u32` length) and the
//! message bytes; the status comes in `grpc-status` / `grpc-message` trailers, or in the headers
//! of a "trailers-only" response.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use std::io::Read;

/// Error type of proxied bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Body of every request and response the proxy handles: either a stream passed through
/// untouched or bytes it has already collected.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// The gRPC status codes the proxy itself produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// `INTERNAL` (13).
    Internal = 13,
    /// `UNAVAILABLE` (14).
    Unavailable = 14,
}

/// Why bytes that should hold one gRPC message do not.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the prefix announces.
    #[error("truncated gRPC frame: {have} bytes, prefix announces {want}")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes announced (prefix included).
        want: usize,
    },
    /// The message is compressed with an encoding the proxy does not read.
    #[error("gRPC message compressed with `{0}`, which the proxy cannot read (only gzip)")]
    Encoding(String),
    /// gzip data that does not inflate.
    #[error("gzip-compressed gRPC message does not decompress: {0}")]
    Gzip(std::io::Error),
    /// The message bytes are not the expected protobuf message.
    #[error("gRPC message does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// The first message of a gRPC body, decompressed if needed (`encoding` is the `grpc-encoding`
/// header of that body). An empty body is an empty message.
pub fn first_message(body: &Bytes, encoding: Option<&str>) -> Result<Bytes, FrameError> {
    if body.is_empty() {
        return Ok(Bytes::new());
    }
    if body.len() < 5 {
        return Err(FrameError::Truncated {
            have: body.len(),
            want: 5,
        });
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let want = 5 + len;
    if body.len() < want {
        return Err(FrameError::Truncated { have: body.len(), want });
    }
    let message = body.slice(5..want);
    if body[0] == 0 {
        return Ok(message);
    }
    match encoding.unwrap_or("identity") {
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&message[..])
                .read_to_end(&mut out)
                .map_err(FrameError::Gzip)?;
            Ok(out.into())
        }
        other => Err(FrameError::Encoding(other.to_owned())),
    }
}

/// Decodes a copy of the first message of a gRPC body.
pub fn decode<M: prost::Message + Default>(body: &Bytes, headers: &HeaderMap) -> Result<M, FrameError> {
    let encoding = headers.get("grpc-encoding").and_then(|v| v.to_str().ok());
    Ok(M::decode(first_message(body, encoding)?)?)
}

/// One uncompressed gRPC frame holding `message`.
pub fn frame(message: &impl prost::Message) -> Bytes {
    frame_bytes(&message.encode_to_vec())
}

/// One uncompressed gRPC frame holding the encoded message `message`.
pub fn frame_bytes(message: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(5 + message.len());
    buf.put_u8(0);
    buf.put_u32(message.len() as u32);
    buf.put_slice(message);
    buf.freeze()
}

/// A body of `data` followed by `trailers`.
pub fn body(data: Bytes, trailers: Option<HeaderMap>) -> ProxyBody {
    let frames = [Some(Frame::data(data)), trailers.map(Frame::trailers)];
    let stream = futures::stream::iter(frames.into_iter().flatten().map(Ok::<_, BoxError>));
    StreamBody::new(stream).boxed_unsync()
}

/// An OK unary response carrying `message`, as the proxy answers the worker itself.
pub fn ok_response(message: &impl prost::Message) -> Response<ProxyBody> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let mut response = Response::new(body(frame(message), Some(trailers)));
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// A trailers-only response with a non-OK status. It has no body at all, so that its headers end
/// the stream: gRPC-Go clients (the `temporal` CLI, Go workers) take headers followed by an empty
/// body as a stream closed "without sending trailers" and lose the status.
pub fn status_response(code: Code, message: &str) -> Response<ProxyBody> {
    status_response_of(code as u16, message)
}

/// [`status_response`] with any gRPC code.
pub fn status_response_of(code: u16, message: &str) -> Response<ProxyBody> {
    let mut response = Response::new(Empty::new().map_err(BoxError::from).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(text) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert("grpc-message", text);
    }
    response
}

/// The gRPC status of a response: from its trailers, else its headers (trailers-only), with the
/// (percent-decoded) message. `None` when neither carries one.
pub fn status_of(headers: &HeaderMap, trailers: Option<&HeaderMap>) -> Option<(i32, String)> {
    let source = trailers.filter(|t| t.contains_key("grpc-status")).unwrap_or(headers);
    let code = source.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = source
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Some((code, message))
}

/// gRPC's percent-encoding of `grpc-message`: printable ASCII except `%` stays as is.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            0x20..=0x7e if b != b'%' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use temporalio_common::protos::temporal::api::common::v1::WorkflowExecution;

    fn execution() -> WorkflowExecution {
        WorkflowExecution {
            workflow_id: "wf-ü".into(),
            run_id: "run".into(),
        }
    }

    #[test]
    fn frames_round_trip_plain_and_gzip() {
        let plain = frame(&execution());
        let headers = HeaderMap::new();
        assert_eq!(decode::<WorkflowExecution>(&plain, &headers).unwrap(), execution());

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain[5..]).unwrap();
        let packed = gz.finish().unwrap();
        let mut compressed = vec![1u8];
        compressed.extend_from_slice(&(packed.len() as u32).to_be_bytes());
        compressed.extend_from_slice(&packed);
        let mut gzip = HeaderMap::new();
        gzip.insert("grpc-encoding", HeaderValue::from_static("gzip"));
        assert_eq!(
            decode::<WorkflowExecution>(&compressed.clone().into(), &gzip).unwrap(),
            execution()
        );
        let mut zstd = HeaderMap::new();
        zstd.insert("grpc-encoding", HeaderValue::from_static("zstd"));
        let err = decode::<WorkflowExecution>(&compressed.into(), &zstd).unwrap_err();
        assert!(err.to_string().contains("`zstd`"), "{err}");
    }

    #[test]
    fn truncated_frames_are_errors_not_panics() {
        let whole = frame(&execution());
        for cut in [1, 4, whole.len() - 1] {
            let err = first_message(&whole.slice(..cut), None).unwrap_err();
            assert!(matches!(err, FrameError::Truncated { .. }), "{err}");
        }
        assert!(first_message(&Bytes::new(), None).unwrap().is_empty());
    }

    #[test]
    fn status_messages_are_percent_encoded_both_ways() {
        let response = status_response(Code::Unavailable, "upstream 100% down: ü\nbye");
        let (code, message) = status_of(response.headers(), None).unwrap();
        assert_eq!(code, 14);
        assert_eq!(message, "upstream 100% down: ü\nbye");
        assert!(response.headers()["grpc-message"].to_str().unwrap().contains("100%25"));
        assert!(
            hyper::body::Body::is_end_stream(response.body()),
            "trailers-only: the headers end the stream"
        );
    }
}
