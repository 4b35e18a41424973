//! The wire-level fault proxy: a Temporal-aware gRPC proxy between a worker (any SDK language)
//! and the frontend, which injects activity faults without any code in the worker.
//!
//! Every call is forwarded as raw bytes over HTTP/2 (headers, trailers, compression, streaming).
//! Only the activity-task calls are inspected, on a decoded copy: tasks handed out by
//! `PollActivityTaskQueue` (and eagerly, in `RespondWorkflowTaskCompleted` responses), and the
//! worker's `RespondActivityTask*` answers and `RecordActivityTaskHeartbeat*` calls. For each task
//! the proxy finds the scenario's [`crate::faults::FaultPlan`] in the memo of the workflow's root
//! ([`plans`]), decides with the same seeded rules as the SDK injector, and applies the rule's
//! [`WireEffect`]. Every attempt lands in the [`AttemptRecord`] log.
//!
//! Workers connect in plaintext (h2c, on loopback or in their pod); the proxy reaches the
//! frontend the way the harness's connection settings say ([`crate::target::Endpoint`]: TLS, mTLS,
//! API key), see `upstream.rs`.
//!
//! ```text
//! worker --h2c--> WireProxy --h2c or TLS (+ API key)--> frontend
//! ```
//!
//! Deployed as a service (`chaos proxy --admin ADDR`), it keeps a bounded log ([`LogLimits`])
//! and answers on an HTTP admin listener ([`admin`]): its health, one run's attempts, the workers
//! polling through it. `chaos run --proxy-admin` reads the attempts of each scenario from there.

pub mod admin;
mod attempts;
mod calls;
mod effect;
#[cfg(test)]
mod fuzz;
mod grpc;
mod plans;
mod pollers;
mod pool;
mod protobuf;
mod service;
mod upstream;

pub use admin::{AdminError, ProxyAdmin};
pub use attempts::{Answer, AttemptLog, AttemptRecord, LogLimits, LogState, Sent, UpstreamEvent};
pub use effect::{Behaviour, Injection, WireEffect, wire_effect};
pub use pollers::{PollKind, PollerSeen};
pub use upstream::{UpstreamEndpoint, UpstreamError};

use crate::{
    infra::{CallEvent, CallFault, WireControl},
    target::{ConnectionSettings, Endpoint, TargetError},
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use service::{Proxy, WorkerConnection};
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use upstream::Upstream;

/// How long open connections get to finish when the proxy stops.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// `chaos proxy`: the wire proxy on its own, e.g. as a sidecar of a deployed worker.
#[derive(Debug, Clone, clap::Args)]
#[command(mut_arg("address", |a| a
    .long("upstream")
    .visible_alias("address")
    .value_name("HOST:PORT")
    .help("The Temporal frontend the proxy forwards to")))]
pub struct ProxyOptions {
    /// Where workers connect (`HOST:PORT`; point the worker's Temporal address here).
    #[arg(long, default_value = "127.0.0.1:7234")]
    pub listen: SocketAddr,
    /// Serve the admin API here (`HOST:PORT`, HTTP): `/health`, `/attempts?workflow_id=&run_id=`,
    /// `/pollers`, for `chaos run --proxy-admin` and `chaos doctor`. Without it the attempt log
    /// is printed (one JSON line per attempt) when the proxy stops.
    #[arg(long, value_name = "HOST:PORT")]
    pub admin: Option<SocketAddr>,
    /// Attempts the log keeps at most; the oldest go first.
    #[arg(long, default_value_t = LogLimits::default().max_attempts)]
    pub keep_attempts: usize,
    /// How long the log keeps an attempt (e.g. `24h`, `90m`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
    pub keep_for: Duration,
    /// How to reach the frontend, with the same flags, environment and profile as the other
    /// commands; `--upstream` is its address. The namespace is for the proxy's own calls when a
    /// task does not name one.
    #[command(flatten)]
    pub connection: ConnectionSettings,
}

/// Runs `chaos proxy` until SIGINT or SIGTERM. Without an admin listener, prints one JSON line
/// per activity attempt kept when it stops.
pub async fn run_proxy(options: &ProxyOptions) -> Result<(), WireError> {
    let settings = WireSettings {
        listen: vec![options.listen],
        upstream: options.connection.resolve()?,
        via: None,
        limits: LogLimits {
            max_attempts: options.keep_attempts.max(1),
            max_age: options.keep_for,
        },
        admin: options.admin,
    };
    eprintln!(
        "chaos proxy: workers connect to {}, forwarded to {} (TLS {}{}); {}keeps {} attempts for {} at most; Ctrl-C to stop",
        options.listen,
        settings.upstream.address,
        if settings.upstream.tls() { "on" } else { "off" },
        if settings.upstream.api_key().is_some() {
            ", with an API key"
        } else {
            ""
        },
        options
            .admin
            .map(|a| format!("admin on http://{a}; "))
            .unwrap_or_default(),
        settings.limits.max_attempts,
        humantime::format_duration(settings.limits.max_age),
    );
    // A sidecar may well start before its frontend: say so, and serve all the same.
    let upstream = Upstream::new(UpstreamEndpoint::new(&settings.upstream, None)?);
    let probe = async move {
        match upstream.system_info().await {
            Ok(info) => eprintln!("chaos proxy: the frontend answers (server {})", info.server_version),
            Err(e) => eprintln!("chaos proxy: warning: {e}; workers get UNAVAILABLE until it answers"),
        }
    };
    let print = options.admin.is_none();
    let (served, ()) = futures::join!(
        serve(settings, async {
            crate::wait::stop_signal().await;
        }),
        probe
    );
    let attempts = served?;
    if print {
        for attempt in attempts {
            println!("{}", serde_json::to_string(&attempt).unwrap_or_default());
        }
    } else {
        eprintln!(
            "chaos proxy: stopped; the {} attempt(s) its log kept are gone with it",
            attempts.len()
        );
    }
    Ok(())
}

/// How the proxy runs.
#[derive(Debug, Clone)]
pub struct WireSettings {
    /// Where workers connect: one address or more, e.g. both loopback addresses of `localhost`
    /// (port 0 picks a free one).
    pub listen: Vec<SocketAddr>,
    /// The Temporal frontend and how to reach it (TLS, API key); its namespace is for the proxy's
    /// own calls when a task does not name one.
    pub upstream: Endpoint,
    /// Connect to this `HOST:PORT` instead of the frontend's address: a forwarder in front of it
    /// (the network fault proxy). Calls still name the frontend and TLS still verifies its name.
    pub via: Option<String>,
    /// What the attempt log keeps.
    pub limits: LogLimits,
    /// Where to serve the admin API, if anywhere.
    pub admin: Option<SocketAddr>,
}

impl WireSettings {
    /// A proxy listening on `listen` in front of `upstream`, keeping every attempt, without an
    /// admin listener: the harness's own proxies, one run long.
    pub fn new(listen: Vec<SocketAddr>, upstream: Endpoint) -> Self {
        Self {
            listen,
            upstream,
            via: None,
            limits: LogLimits::UNBOUNDED,
            admin: None,
        }
    }
}

/// Errors starting the proxy.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The listen address is taken or not allowed.
    #[error("the wire proxy cannot listen on {listen}: {source}")]
    Listen {
        /// Address asked for.
        listen: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// No address to listen on was given.
    #[error("the wire proxy was given no address to listen on")]
    NoAddress,
    /// The admin address is taken or not allowed.
    #[error("the wire proxy's admin listener cannot listen on {listen}: {source}")]
    Admin {
        /// Address asked for.
        listen: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The upstream address or its TLS settings are unusable.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The connection settings (flags, environment, profile) do not resolve.
    #[error(transparent)]
    Settings(#[from] TargetError),
}

/// A running proxy; stops on [`WireProxy::shutdown`] or when dropped.
pub struct WireProxy {
    address: SocketAddr,
    admin: Option<SocketAddr>,
    proxy: Arc<Proxy>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl WireProxy {
    /// Binds every address of `settings.listen` and serves in the background.
    pub async fn start(settings: WireSettings) -> Result<Self, WireError> {
        let bound = bind(&settings).await?;
        // `bind` returns at least one listener.
        let address = bound.listeners[0].local_addr().map_err(|source| WireError::Listen {
            listen: settings.listen[0],
            source,
        })?;
        let admin = bound.admin.as_ref().and_then(|a| a.local_addr().ok());
        let proxy = bound.proxy.clone();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(bound, stop.clone()));
        Ok(Self {
            address,
            admin,
            proxy,
            stop,
            task,
        })
    }

    /// `host:port` of its admin listener, if it has one.
    pub fn admin_address(&self) -> Option<String> {
        self.admin.map(|a| a.to_string())
    }

    /// `host:port` workers connect to (the first address it listens on).
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Every attempt so far.
    pub fn attempts(&self) -> Vec<AttemptRecord> {
        self.proxy.log().records()
    }

    /// The workers polling through the proxy, as a function to ask again (a worker's readiness).
    pub fn pollers_seen(&self) -> Arc<dyn Fn() -> Vec<PollerSeen> + Send + Sync> {
        let proxy = self.proxy.clone();
        Arc::new(move || proxy.pollers())
    }

    /// What the faults on the workers' calls did so far, and the replays the proxy saw.
    pub fn call_events(&self) -> Vec<CallEvent> {
        self.proxy.calls().events()
    }

    /// A handle on the attempt log that outlives the proxy.
    pub fn attempt_log(&self) -> AttemptLog {
        self.proxy.log().clone()
    }

    /// Stops accepting, closes connections and drops held calls.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for WireProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.proxy.close();
    }
}

/// Runs the proxy until `until` completes (e.g. Ctrl-C) and returns the attempts its log keeps:
/// the body of `chaos proxy`.
pub async fn serve(settings: WireSettings, until: impl Future<Output = ()>) -> Result<Vec<AttemptRecord>, WireError> {
    let bound = bind(&settings).await?;
    let proxy = bound.proxy.clone();
    let stop = CancellationToken::new();
    let stopping = async {
        until.await;
        stop.cancel();
    };
    futures::join!(run(bound, stop.clone()), stopping);
    Ok(proxy.log().records())
}

/// What [`bind`] sets up: the listeners and the proxy behind them.
struct Bound {
    listeners: Vec<TcpListener>,
    admin: Option<TcpListener>,
    proxy: Arc<Proxy>,
}

/// Serves workers (and the admin API) until `stop`.
async fn run(bound: Bound, stop: CancellationToken) {
    let Bound {
        listeners,
        admin,
        proxy,
    } = bound;
    let listen: Vec<String> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.to_string())
        .collect();
    let admin = async {
        if let Some(listener) = admin {
            let until = stop.clone().cancelled_owned();
            if let Err(e) = admin::serve(listener, proxy.clone(), listen, until).await {
                warn!(error = %e, "the wire proxy's admin listener stopped");
            }
        }
    };
    futures::join!(accept(listeners, proxy.clone(), stop.cancelled()), admin);
}

/// Binds every address of `settings.listen`. With several, one the machine does not have (`::1`
/// where IPv6 is off) is left out, as long as another binds; any other failure is an error.
async fn bind(settings: &WireSettings) -> Result<Bound, WireError> {
    if settings.listen.is_empty() {
        return Err(WireError::NoAddress);
    }
    let upstream = Upstream::new(UpstreamEndpoint::new(&settings.upstream, settings.via.as_deref())?);
    let mut listeners = Vec::with_capacity(settings.listen.len());
    let mut missing = None;
    for &listen in &settings.listen {
        match TcpListener::bind(listen).await {
            Ok(listener) => listeners.push(listener),
            Err(source) if source.kind() == std::io::ErrorKind::AddrNotAvailable && settings.listen.len() > 1 => {
                warn!(%listen, error = %source, "the wire proxy leaves out an address this machine does not have");
                missing = Some(WireError::Listen { listen, source });
            }
            Err(source) => return Err(WireError::Listen { listen, source }),
        }
    }
    if listeners.is_empty() {
        return Err(missing.unwrap_or(WireError::NoAddress));
    }
    let admin = match settings.admin {
        Some(listen) => Some(
            TcpListener::bind(listen)
                .await
                .map_err(|source| WireError::Admin { listen, source })?,
        ),
        None => None,
    };
    let namespace = settings.upstream.namespace.clone();
    Ok(Bound {
        listeners,
        admin,
        proxy: Arc::new(Proxy::new(upstream, namespace, settings.limits)),
    })
}

/// The next connection on any of `listeners`.
async fn accept_any(listeners: &[TcpListener]) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    let accepts = listeners.iter().map(|l| Box::pin(l.accept()));
    futures::future::select_all(accepts).await.0
}

/// Accepts HTTP/2 connections until `until`; then closes them and drops held calls.
async fn accept(listeners: Vec<TcpListener>, proxy: Arc<Proxy>, until: impl Future<Output = ()>) {
    let mut connections = JoinSet::new();
    tokio::pin!(until);
    loop {
        let accepted = tokio::select! {
            () = &mut until => break,
            accepted = accept_any(&listeners) => accepted,
        };
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                warn!(error = %e, "the wire proxy cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        connections.spawn(async move {
            let mut closing = proxy.closing();
            // Whatever the proxy holds for this worker goes when its connection does.
            let worker = WorkerConnection::default();
            let _gone = worker.closed_on_drop();
            let service = hyper::service::service_fn(move |request| {
                let (proxy, worker) = (proxy.clone(), worker.clone());
                async move { Ok::<_, std::convert::Infallible>(proxy.handle(request, worker).await) }
            });
            let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .adaptive_window(true)
                // Like the frontend (gRPC-Go): no limit, so a worker with many calls in flight
                // (long polls, load runs) is not throttled by the proxy's default of 200.
                .max_concurrent_streams(None)
                // And headers as large as the frontend takes (a worker's large JWT).
                .max_header_list_size(pool::MAX_HEADER_LIST_SIZE)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                _ = async { closing.wait_for(|closed| *closed).await.is_ok() } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = served {
                debug!(error = %e, "worker connection closed");
            }
        });
    }
    drop(listeners);
    // Calls in flight end with an "unavailable" status, which the workers get before their
    // connections close (a GOAWAY); connections that do not finish in time are cut.
    proxy.close();
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(CLOSE_GRACE, drained).await.is_err() {
        connections.abort_all();
    }
}

impl WireControl for WireProxy {
    fn install(&self, rule: usize, fault: Arc<dyn CallFault>) {
        self.proxy.calls().install(rule, fault);
    }

    fn remove(&self, rule: usize) -> Vec<CallEvent> {
        self.proxy.calls().remove(rule)
    }
}
