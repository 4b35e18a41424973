//! The HTTP/2 connections to the frontend: as many as the calls in flight need.
//!
//! hyper's client keeps one connection per frontend and queues every call beyond the frontend's
//! (or a load balancer's) advertised `SETTINGS_MAX_CONCURRENT_STREAMS` on it, so a worker's long
//! polls could hold its heartbeats and completions back for a minute. The pool sends each call on
//! the connection with the fewest open streams among those below that limit, and opens another
//! connection (one at a time, shared by the calls waiting for it) when every one is at it, up to
//! [`MAX_CONNECTIONS`]. A stream counts as open until its response ends or is dropped.
//!
//! hyper speaks HTTP/2 on each connection; it does not say what the frontend advertised, so each
//! connection reads that one setting off the frames it receives ([`FrameWalk`]), without
//! altering a byte.

use super::{
    grpc::ProxyBody,
    upstream::{Connector, error_chain},
};
use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::{
    body::{Body, Frame, Incoming},
    client::conn::http2,
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::{
    io,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{oneshot, watch},
};
use tracing::debug;

/// Connections the pool opens at most; beyond, a call goes on the least busy one and waits
/// there for a stream.
const MAX_CONNECTIONS: usize = 32;

/// Largest header list (headers or trailers) the proxy takes or asks its peers to take: grpc-go's
/// default (16 MiB on both its client and server, so the frontend's), far above hyper's 16 KiB,
/// which a large JWT or an error trailer with details exceeds.
pub(super) const MAX_HEADER_LIST_SIZE: u32 = 16 << 20;

/// How often an idle-looking connection is pinged.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// A connection being opened, shared by the calls waiting for it; `Err` is why it failed.
type Opening = Shared<BoxFuture<'static, Result<Arc<Connection>, String>>>;

/// The connections to one frontend.
pub(super) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    http2: http2::Builder<TokioExecutor>,
    connections: Mutex<Vec<Arc<Connection>>>,
    opening: Mutex<Option<Opening>>,
}

/// One HTTP/2 connection and the streams open on it.
struct Connection {
    send: http2::SendRequest<ProxyBody>,
    open: AtomicUsize,
    /// The frontend's `SETTINGS_MAX_CONCURRENT_STREAMS` (`usize::MAX` when it sets none).
    limit: watch::Receiver<Option<usize>>,
}

impl Connection {
    fn has_room(&self) -> bool {
        self.open.load(Ordering::Relaxed) < self.limit.borrow().unwrap_or(usize::MAX)
    }
}

/// A stream counted open on its connection until dropped.
struct OpenStream(Arc<Connection>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its stream counted open until it ends or is dropped.
struct Counted {
    body: Incoming,
    stream: Option<OpenStream>,
}

impl Body for Counted {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if frame.is_none() {
            self.stream = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pool {
    /// A pool that opens its connections with `connector`; none is opened before the first call.
    pub(super) fn new(connector: Connector) -> Self {
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .adaptive_window(true)
            .keep_alive_interval(KEEP_ALIVE)
            .max_header_list_size(MAX_HEADER_LIST_SIZE);
        Self {
            inner: Arc::new(Inner {
                connector,
                http2,
                connections: Mutex::default(),
                opening: Mutex::default(),
            }),
        }
    }

    /// Sends `request` on a connection with room for it; the error is why it could not be sent
    /// or answered. A call that a closing connection never sent goes once more on another.
    pub(super) async fn send(&self, request: Request<ProxyBody>) -> Result<Response<ProxyBody>, String> {
        let mut request = request;
        let mut tries = 0;
        loop {
            tries += 1;
            let stream = self.inner.stream().await?;
            let mut send = stream.0.send.clone();
            match send.try_send_request(request).await {
                Ok(response) => {
                    let stream = Some(stream);
                    return Ok(response.map(|body| Counted { body, stream }.map_err(Into::into).boxed_unsync()));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if tries < 2 => {
                        debug!(error = %e.error(), "a connection to the frontend closed before the call went out; trying another");
                        request = unsent;
                    }
                    _ => return Err(error_chain(&e.into_error())),
                },
            }
        }
    }
}

impl Inner {
    /// A stream on the least busy connection with room; opens a connection when none has room.
    async fn stream(self: &Arc<Self>) -> Result<OpenStream, String> {
        loop {
            if let Some(stream) = self.pick(false) {
                return Ok(stream);
            }
            let opening = {
                let mut opening = lock(&self.opening);
                match &*opening {
                    Some(shared) => shared.clone(),
                    None if lock(&self.connections).len() < MAX_CONNECTIONS => {
                        let shared = Arc::clone(self).open().boxed().shared();
                        *opening = Some(shared.clone());
                        shared
                    }
                    None => {
                        if let Some(stream) = self.pick(true) {
                            return Ok(stream);
                        }
                        continue;
                    }
                }
            };
            opening.await?;
        }
    }

    /// The least busy open connection (with room for one more stream unless `full_too`), its
    /// stream counted; closed connections are let go.
    fn pick(&self, full_too: bool) -> Option<OpenStream> {
        let mut connections = lock(&self.connections);
        connections.retain(|c| !c.send.is_closed());
        let best = connections
            .iter()
            .filter(|c| full_too || c.has_room())
            .min_by_key(|c| c.open.load(Ordering::Relaxed))?;
        best.open.fetch_add(1, Ordering::Relaxed);
        Some(OpenStream(Arc::clone(best)))
    }

    /// Opens a connection and adds it to the pool once the frontend's settings are in.
    async fn open(self: Arc<Self>) -> Result<Arc<Connection>, String> {
        let opened = self.connect().await;
        if let Ok(connection) = &opened {
            lock(&self.connections).push(Arc::clone(connection));
        }
        *lock(&self.opening) = None;
        opened
    }

    async fn connect(&self) -> Result<Arc<Connection>, String> {
        let until = tokio::time::Instant::now() + super::upstream::CONNECT_TIMEOUT;
        let io = self.connector.connect().await.map_err(|e| error_chain(&e))?;
        let (limit_tx, mut limit) = watch::channel(None);
        let io = TokioIo::new(Settings {
            io,
            frames: FrameWalk::default(),
            limit: limit_tx,
        });
        let (send, connection) = self.http2.handshake(io).await.map_err(|e| error_chain(&e))?;
        let (ended_tx, ended) = oneshot::channel();
        tokio::spawn(async move {
            let why = match connection.await {
                Ok(()) => "the frontend closed the connection".to_owned(),
                Err(e) => error_chain(&e),
            };
            debug!(reason = why, "a connection to the frontend ended");
            let _ = ended_tx.send(why);
        });
        let settled = tokio::time::timeout_at(until, limit.wait_for(Option::is_some))
            .await
            .map(|seen| seen.map(drop));
        match settled {
            Ok(Ok(())) => Ok(Arc::new(Connection {
                send,
                open: AtomicUsize::new(0),
                limit,
            })),
            Ok(Err(_)) => Err(ended
                .await
                .unwrap_or_else(|_| "the connection closed before the frontend's HTTP/2 settings came".into())),
            Err(_) => Err(format!(
                "no HTTP/2 settings from the frontend within {} s",
                super::upstream::CONNECT_TIMEOUT.as_secs()
            )),
        }
    }
}

/// A connection's byte stream, passed through as it is, whose received frames are read for the
/// frontend's `SETTINGS_MAX_CONCURRENT_STREAMS`.
struct Settings<S> {
    io: S,
    frames: FrameWalk,
    limit: watch::Sender<Option<usize>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Settings<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let limit = &this.limit;
        this.frames.feed(&buf.filled()[before..], |max| settle(limit, max));
        Poll::Ready(Ok(()))
    }
}

/// Applies a SETTINGS frame to the limit: the value it sets, else the one before (none at all:
/// no limit).
fn settle(limit: &watch::Sender<Option<usize>>, max: Option<u32>) {
    limit.send_modify(|limit| *limit = Some(max.map_or(limit.unwrap_or(usize::MAX), |m| m as usize)));
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Settings<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// HTTP/2 frame header: 24-bit length, type, flags, stream id.
const FRAME_HEADER: usize = 9;
const SETTINGS: u8 = 0x4;
const ACK: u8 = 0x1;
const MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// A setting: 16-bit identifier, 32-bit value.
const SETTING: usize = 6;

/// Walks the frames a server sends (any split into reads), keeping only the payloads of its
/// SETTINGS frames, which are small.
#[derive(Debug, Default)]
struct FrameWalk {
    header: Vec<u8>,
    /// Payload bytes of the current frame still to come.
    left: usize,
    /// The current frame's payload, when it is a SETTINGS frame (not an acknowledgement).
    settings: Option<Vec<u8>>,
}

impl FrameWalk {
    /// Reads `data`, the next bytes from the server; for each SETTINGS frame it completes, calls
    /// `on_settings` with the `SETTINGS_MAX_CONCURRENT_STREAMS` it sets, if it sets it.
    fn feed(&mut self, mut data: &[u8], mut on_settings: impl FnMut(Option<u32>)) {
        while !data.is_empty() {
            if self.left == 0 && self.settings.is_none() {
                let take = (FRAME_HEADER - self.header.len()).min(data.len());
                self.header.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.header.len() < FRAME_HEADER {
                    return;
                }
                let h = std::mem::take(&mut self.header);
                self.left = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                if h[3] == SETTINGS && h[4] & ACK == 0 {
                    self.settings = Some(Vec::with_capacity(self.left));
                }
            } else {
                let take = self.left.min(data.len());
                if let Some(settings) = &mut self.settings {
                    settings.extend_from_slice(&data[..take]);
                }
                data = &data[take..];
                self.left -= take;
            }
            if self.left == 0
                && let Some(settings) = self.settings.take()
            {
                let max = settings
                    .chunks_exact(SETTING)
                    .filter(|s| u16::from_be_bytes([s[0], s[1]]) == MAX_CONCURRENT_STREAMS)
                    .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
                    .next_back();
                on_settings(max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags, 0, 0, 0, 0];
        f.extend_from_slice(payload);
        f
    }

    fn setting(id: u16, value: u32) -> Vec<u8> {
        [id.to_be_bytes().as_slice(), &value.to_be_bytes()].concat()
    }

    /// What a walk over `bytes`, read `step` bytes at a time, reports.
    fn walk(bytes: &[u8], step: usize) -> Vec<Option<u32>> {
        let mut walk = FrameWalk::default();
        let mut seen = Vec::new();
        for chunk in bytes.chunks(step) {
            walk.feed(chunk, |max| seen.push(max));
        }
        seen
    }

    #[test]
    fn the_max_concurrent_streams_setting_is_read_whatever_the_split() {
        let initial_window = setting(0x4, 65_535);
        let bytes = [
            // The server's preface: its settings, the limit among them.
            frame(
                SETTINGS,
                0,
                &[initial_window.clone(), setting(MAX_CONCURRENT_STREAMS, 2)].concat(),
            ),
            // A DATA frame whose payload looks like a SETTINGS frame: not read as one.
            frame(0x0, 0, &frame(SETTINGS, 0, &setting(MAX_CONCURRENT_STREAMS, 7))),
            // The acknowledgement of the client's settings.
            frame(SETTINGS, ACK, &[]),
            // Settings that leave the limit as it is, then raise it.
            frame(SETTINGS, 0, &initial_window),
            frame(0x1, 0x4, &[0x88; 300]),
            frame(SETTINGS, 0, &setting(MAX_CONCURRENT_STREAMS, 100)),
        ]
        .concat();
        for step in [1, 2, 5, 9, 10, 64, bytes.len()] {
            assert_eq!(
                walk(&bytes, step),
                [Some(2), None, Some(100)],
                "read {step} bytes at a time"
            );
        }
    }

    #[test]
    fn a_settings_update_keeps_the_limit_it_does_not_name() {
        let (limit, rx) = watch::channel(None);
        let mut frames = FrameWalk::default();
        let mut update = |bytes: &[u8]| {
            frames.feed(bytes, |max| settle(&limit, max));
            *rx.borrow()
        };
        assert_eq!(
            update(&frame(SETTINGS, 0, &setting(0x4, 1))),
            Some(usize::MAX),
            "no limit set"
        );
        assert_eq!(
            update(&frame(SETTINGS, 0, &setting(MAX_CONCURRENT_STREAMS, 2))),
            Some(2)
        );
        assert_eq!(update(&frame(SETTINGS, 0, &setting(0x4, 9))), Some(2), "kept");
    }
}
