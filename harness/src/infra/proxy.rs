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

async fn accept_loop(listener: TcpListener, upstream: String, mode: watch::Receiver<Mode>, counters: Arc<Counters>) {
    // Connections die with the accept loop when the proxy is dropped.
    let mut connections = JoinSet::new();
    while let Ok((client, _)) = listener.accept().await {
        if matches!(*mode.borrow(), Some(NetworkFault::Reset {})) {
            refuse(client, &counters);
            continue;
        }
        let Ok(server) = TcpStream::connect(&upstream).await else {
            continue;
        };
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        connections.spawn(pipe(cr, sw, mode.clone(), counters.clone()));
        connections.spawn(pipe(sr, cw, mode.clone(), counters.clone()));
    }
}

/// Closes with RST (linger 0), as a crashed peer or a middlebox would.
fn refuse(stream: TcpStream, counters: &Counters) {
    let _ = stream.set_zero_linger();
    counters.reset.fetch_add(1, Ordering::Relaxed);
    drop(stream);
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    counters: Arc<Counters>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = mode.changed() => {
                if changed.is_err() || matches!(*mode.borrow(), Some(NetworkFault::Reset {})) {
                    counters.reset.fetch_add(1, Ordering::Relaxed);
                    if let Ok(stream) = from.reunite(to) {
                        let _ = stream.set_zero_linger();
                    }
                    return;
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
                        return;
                    }
                }
                if matches!(*mode.borrow(), Some(NetworkFault::Reset {})) {
                    counters.reset.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            Some(NetworkFault::Reset {}) => {
                counters.reset.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
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
}
