//! A small TCP fault proxy (Toxiproxy-style) between the worker and the frontend.
//!
//! Existing crates were considered: `noxious` (a Toxiproxy port) last changed in 2021 and is a
//! server with a REST API; an in-process proxy with a mode switch is all the harness needs.

use super::NetworkFault;
use rand::Rng;
use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
};

/// Counters of what the proxy did, for evidence in reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyStats {
    /// Chunks delayed.
    pub delayed: u64,
    /// Connections reset or refused.
    pub reset: u64,
    /// Chunks held back by a blackhole (delivered when it ends).
    pub held: u64,
}

/// The fault applied to traffic right now; `None` forwards untouched.
type Mode = Option<NetworkFault>;

#[derive(Default)]
struct Counters {
    delayed: AtomicU64,
    reset: AtomicU64,
    held: AtomicU64,
}

/// A running proxy on a free loopback port; stops when dropped.
pub struct FaultProxy {
    local: SocketAddr,
    mode: watch::Sender<Mode>,
    counters: Arc<Counters>,
    tasks: Mutex<JoinSet<()>>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (free port) and forwards to `upstream`.
    pub async fn start(upstream: String) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let local = listener.local_addr()?;
        let (mode, rx) = watch::channel(None);
        let counters = Arc::new(Counters::default());
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(listener, upstream, rx, counters.clone()));
        Ok(Self {
            local,
            mode,
            counters,
            tasks: Mutex::new(tasks),
        })
    }

    /// `host:port` clients should connect to.
    pub fn address(&self) -> String {
        self.local.to_string()
    }

    /// Applies `fault` to all connections, open and new; `None` forwards untouched.
    pub fn set_fault(&self, fault: Option<NetworkFault>) {
        self.mode.send_replace(fault);
    }

    /// Counters so far.
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            delayed: self.counters.delayed.load(Ordering::Relaxed),
            reset: self.counters.reset.load(Ordering::Relaxed),
            held: self.counters.held.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.abort_all();
        }
    }
}

/// How long connecting to the upstream may take before the client's connection is reset.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(10);

/// Accepts connections until the proxy is dropped. An accept error (out of file descriptors, a
/// connection reset before it was accepted) is waited out, never the end of the loop; each
/// connection reaches upstream in its own task, so a slow upstream never holds up accepting.
async fn accept_loop(listener: TcpListener, upstream: String, mode: watch::Receiver<Mode>, counters: Arc<Counters>) {
    // Connections die with the accept loop when the proxy is dropped.
    let mut connections = JoinSet::new();
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(e) => {
                tracing::warn!(error = %e, "the network fault proxy cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        if matches!(*mode.borrow(), Some(NetworkFault::Reset {})) {
            reset(&client, &counters);
            continue;
        }
        connections.spawn(connect(client, upstream.clone(), mode.clone(), counters.clone()));
    }
}

/// Opens the upstream side of a client's connection and forwards both ways until either side
/// closes or a reset fault cuts both.
async fn connect(client: TcpStream, upstream: String, mode: watch::Receiver<Mode>, counters: Arc<Counters>) {
    let connecting = tokio::time::timeout(UPSTREAM_CONNECT, TcpStream::connect(&upstream));
    let Ok(Ok(server)) = connecting.await else {
        // As if the frontend refused: the client's connection is reset.
        let _ = client.set_zero_linger();
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut client, mut server) = (client, server);
    let reset_both = {
        let (cr, cw) = client.split();
        let (sr, sw) = server.split();
        let up = pipe(cr, sw, mode.clone(), &counters);
        let down = pipe(sr, cw, mode, &counters);
        tokio::pin!(up, down);
        // A side that closes (half-closes) leaves the other direction running; a reset ends both.
        tokio::select! {
            reset = &mut up => reset || down.await,
            reset = &mut down => reset || up.await,
        }
    };
    if reset_both {
        reset(&client, &counters);
        let _ = server.set_zero_linger();
    }
}

/// Makes closing `stream` send RST (linger 0), as a crashed peer or a middlebox would, and counts
/// it. (Zero linger on the socket itself: the halves of a split stream cannot set it.)
fn reset(stream: &TcpStream, counters: &Counters) {
    let _ = stream.set_zero_linger();
    counters.reset.fetch_add(1, Ordering::Relaxed);
}

/// Forwards `from` to `to` under the current fault until `from` closes (`false`, after passing
/// the close on) or a reset fault begins (`true`: the caller resets both sockets).
async fn pipe(
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    mut mode: watch::Receiver<Mode>,
    counters: &Counters,
) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return false;
                }
                Ok(n) => n,
            },
            changed = mode.changed() => {
                if changed.is_err() || matches!(*mode.borrow(), Some(NetworkFault::Reset {})) {
                    return true;
                }
                continue;
            }
        };
        let current = *mode.borrow();
        match current {
            None => {}
            Some(NetworkFault::Latency { latency, jitter }) => {
                let spread = jitter.as_millis() as i64;
                let offset = if spread > 0 {
                    rand::rng().random_range(-spread..=spread)
                } else {
                    0
                };
                let wait = (latency.as_millis() as i64 + offset).max(0) as u64;
                counters.delayed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            Some(NetworkFault::Blackhole {}) => {
                // Like a partition under TCP: nothing gets through and nothing is lost. The chunk
                // is held (and reading stops, so the sender's buffers fill) until the fault ends.
                counters.held.fetch_add(1, Ordering::Relaxed);
                while matches!(*mode.borrow_and_update(), Some(NetworkFault::Blackhole {})) {
                    if mode.changed().await.is_err() {
                        return true;
                    }
                }
                if matches!(*mode.borrow(), Some(NetworkFault::Reset {})) {
                    return true;
                }
            }
            Some(NetworkFault::Reset {}) => return true,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server on loopback behind the proxy.
    async fn echo() -> String {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(addr: &str) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_millis(800), s.read_exact(&mut buf)).await??;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn modes_change_what_gets_through() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        assert_eq!(round_trip(&proxy.address()).await.unwrap(), b"ping");

        proxy.set_fault(Some(NetworkFault::Latency {
            latency: Duration::from_millis(150),
            jitter: Duration::ZERO,
        }));
        let began = Instant::now();
        round_trip(&proxy.address()).await.unwrap();
        assert!(began.elapsed() >= Duration::from_millis(300), "two delayed chunks");
        assert!(proxy.stats().delayed >= 2);

        proxy.set_fault(Some(NetworkFault::Blackhole {}));
        assert!(round_trip(&proxy.address()).await.is_err(), "nothing comes back");
        assert!(proxy.stats().held >= 1);

        proxy.set_fault(Some(NetworkFault::Reset {}));
        assert!(round_trip(&proxy.address()).await.is_err(), "refused");
        assert!(proxy.stats().reset >= 1);

        proxy.set_fault(None);
        assert_eq!(round_trip(&proxy.address()).await.unwrap(), b"ping");
    }

    #[tokio::test]
    async fn a_reset_fault_resets_open_connections_with_rst() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut open = TcpStream::connect(proxy.address()).await.unwrap();
        open.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        open.read_exact(&mut buf).await.unwrap();
        proxy.set_fault(Some(NetworkFault::Reset {}));
        let read = tokio::time::timeout(Duration::from_secs(5), open.read(&mut buf))
            .await
            .expect("the open connection is cut at once");
        // A graceful close (FIN) would read as Ok(0): a reset is an error.
        let kind = read.map(|n| format!("read {n} bytes")).map_err(|e| e.kind());
        assert_eq!(kind, Err(std::io::ErrorKind::ConnectionReset));
        assert!(proxy.stats().reset >= 1);
    }

    #[tokio::test]
    async fn an_upstream_that_does_not_answer_does_not_hold_up_accepting() {
        // An upstream whose accept queue is full: the kernel drops further SYNs, so connecting
        // to it hangs.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
        let full = socket.listen(0).unwrap();
        let upstream = full.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..3 {
            let connecting = tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(upstream));
            if let Ok(Ok(stream)) = connecting.await {
                fillers.push(stream);
            }
        }
        let proxy = FaultProxy::start(upstream.to_string()).await.unwrap();
        // The first client's upstream connection hangs...
        let _stuck = TcpStream::connect(proxy.address()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // ... and the next client is still accepted: under a reset fault, refused at once.
        proxy.set_fault(Some(NetworkFault::Reset {}));
        let mut next = TcpStream::connect(proxy.address()).await.unwrap();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), next.read(&mut buf))
            .await
            .expect("the next client was accepted while the first one's upstream hung");
        assert_eq!(
            read.map_err(|e| e.kind()).err(),
            Some(std::io::ErrorKind::ConnectionReset)
        );
        drop((full, fillers));
    }
}
