//! `chaos doctor`: is this cluster fit to run scenarios? The original project's "how to verify the
//! cluster is working" checklist, automated, each check with the fix to try.

use crate::{
    target::{Endpoint, connect, task_queue_pollers},
    wire::{PollerSeen, ProxyAdmin},
};
use serde::Serialize;
use std::{fmt::Write, net::SocketAddr, time::Duration};
use temporalio_client::{Client, WorkflowCountOptions, tonic::IntoRequest};
use temporalio_common::protos::{
    grpc::health::v1::{HealthCheckRequest, health_check_response::ServingStatus},
    temporal::api::{
        enums::v1::TaskQueueType,
        workflowservice::v1::{DescribeNamespaceRequest, GetClusterInfoRequest, GetSystemInfoRequest},
    },
};

/// The frontend port when the address names none (Temporal's default gRPC port).
const DEFAULT_FRONTEND_PORT: u16 = 7233;

/// One line of the doctor's table.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorCheck {
    /// What was checked.
    pub name: &'static str,
    /// Whether it is fine.
    pub passed: bool,
    /// What was seen.
    pub detail: String,
    /// What to try when it is not fine.
    pub fix: &'static str,
}

/// What to check: the endpoint, and optionally worker task queues, a UI and a chaos proxy.
pub struct DoctorSettings {
    /// Cluster to examine.
    pub endpoint: Endpoint,
    /// Task queues that should have pollers (the deployed workers').
    pub task_queues: Vec<String>,
    /// Web UI base URL to fetch.
    pub ui_url: Option<String>,
    /// Admin listener of the `chaos proxy` the workers of `task_queues` should poll through.
    pub proxy_admin: Option<String>,
}

/// `chaos doctor`: resolves the connection settings, runs every check and prints the table;
/// whether every check passed.
pub async fn run(
    conn: &crate::target::ConnectionSettings,
    task_queues: Vec<String>,
    ui_url: Option<String>,
    proxy_admin: Option<String>,
) -> Result<bool, crate::target::TargetError> {
    let settings = DoctorSettings {
        endpoint: conn.resolve()?,
        task_queues,
        ui_url,
        proxy_admin: proxy_admin.filter(|a| !a.trim().is_empty()),
    };
    let checks = examine(&settings).await;
    print!("{}", table(&checks));
    Ok(checks.iter().all(|c| c.passed))
}

/// Runs every check; later checks are marked failed with "skipped" when there is no connection.
pub async fn examine(s: &DoctorSettings) -> Vec<DoctorCheck> {
    let mut checks = vec![reached(&s.endpoint.address).await];
    let client = match connect(&s.endpoint).await {
        Ok((client, _)) => {
            checks.push(pass(
                "connection",
                format!("{} (namespace `{}`)", s.endpoint.address, s.endpoint.namespace),
            ));
            Some(client)
        }
        Err(e) => {
            checks.push(DoctorCheck {
                name: "connection",
                passed: false,
                detail: e.to_string(),
                fix: "check the address, TLS settings (--tls, --tls-ca-path, API key) and that the frontend is up",
            });
            None
        }
    };
    if let Some(client) = &client {
        checks.push(health(client).await);
        checks.push(system_info(client).await);
        checks.push(cluster_info(client).await);
        checks.push(namespace(client, &s.endpoint.namespace).await);
        checks.push(visibility(client).await);
    }
    // The proxy's view of the workers polling through it, to compare with the server's.
    let through_proxy = match &s.proxy_admin {
        Some(address) => {
            let (proxy_checks, seen) = proxy(address).await;
            checks.extend(proxy_checks);
            Some(seen)
        }
        None => None,
    };
    if let Some(client) = &client {
        for tq in &s.task_queues {
            checks.push(pollers(client, &s.endpoint.namespace, tq).await);
            if let Some(seen) = &through_proxy {
                checks.push(polling_through(client, &s.endpoint.namespace, tq, seen.as_deref()).await);
            }
        }
    }
    if let Some(ui) = &s.ui_url {
        checks.push(ui_reachable(ui).await);
    }
    checks
}

fn pass(name: &'static str, detail: String) -> DoctorCheck {
    DoctorCheck {
        name,
        passed: true,
        detail,
        fix: "",
    }
}

fn check(name: &'static str, result: Result<String, String>, fix: &'static str) -> DoctorCheck {
    match result {
        Ok(detail) => pass(name, detail),
        Err(detail) => DoctorCheck {
            name,
            passed: false,
            detail,
            fix,
        },
    }
}

async fn health(client: &Client) -> DoctorCheck {
    let mut health = client.connection().health_service();
    let request = HealthCheckRequest {
        service: "temporal.api.workflowservice.v1.WorkflowService".into(),
    };
    let result = match health.check(request.into_request()).await {
        Ok(r) if r.get_ref().status() == ServingStatus::Serving => Ok("frontend is SERVING".into()),
        Ok(r) => Err(format!("frontend reports {:?}", r.get_ref().status())),
        Err(e) => Err(e.message().to_owned()),
    };
    check(
        "frontend health",
        result,
        "look at the frontend's logs; it may still be starting or unable to reach its database",
    )
}

async fn system_info(client: &Client) -> DoctorCheck {
    let mut svc = client.connection().workflow_service();
    let result = svc
        .get_system_info(GetSystemInfoRequest::default().into_request())
        .await
        .map(|r| {
            let info = r.into_inner();
            let enabled = info
                .capabilities
                .and_then(|c| serde_json::to_value(c).ok())
                .and_then(|v| v.as_object().cloned())
                .map(|o| {
                    o.into_iter()
                        .filter(|(_, on)| on == &serde_json::Value::Bool(true))
                        .map(|(name, _)| name)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            format!("server {}; capabilities: {}", info.server_version, or_none(enabled))
        })
        .map_err(|e| e.message().to_owned());
    check(
        "server version",
        result,
        "the frontend answers but not GetSystemInfo; check the server version (>= 1.20)",
    )
}

async fn cluster_info(client: &Client) -> DoctorCheck {
    let mut svc = client.connection().workflow_service();
    let result = svc
        .get_cluster_info(GetClusterInfoRequest::default().into_request())
        .await
        .map(|r| {
            let c = r.into_inner();
            format!(
                "cluster `{}` (id {}), persistence {}, visibility {}, {} history shard(s)",
                c.cluster_name,
                or_none(c.cluster_id),
                or_none(c.persistence_store),
                or_none(c.visibility_store),
                c.history_shard_count
            )
        })
        .map_err(|e| e.message().to_owned());
    check(
        "cluster",
        result,
        "the frontend answers but not GetClusterInfo; look at the frontend's logs",
    )
}

fn or_none(text: String) -> String {
    if text.is_empty() { "none".into() } else { text }
}

/// Which socket address `address` (`host:port`, or an `http(s)://` URL) resolves to and accepts TCP
/// on: the first resolved address that accepts a connection, the one a gRPC client reaches first.
async fn reached(address: &str) -> DoctorCheck {
    const FIX: &str = "TEMPORAL_ADDRESS / --address must be the frontend's gRPC host:port; on Render that is \
        the temporal-frontend service's internal host name with port 7233 (docs/deploy-render.md, \
        \"The frontend address\")";
    let authority = address
        .split_once("://")
        .map_or(address, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let target = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:{DEFAULT_FRONTEND_PORT}")
    };
    let resolved: Vec<SocketAddr> = match tokio::net::lookup_host(&target).await {
        Ok(addrs) => addrs.collect(),
        Err(e) => return check("address", Err(format!("`{target}` does not resolve: {e}")), FIX),
    };
    let mut refused = Vec::new();
    for addr in &resolved {
        match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => {
                let others: Vec<String> = resolved
                    .iter()
                    .filter(|a| *a != addr)
                    .map(ToString::to_string)
                    .collect();
                let also = if others.is_empty() {
                    String::new()
                } else {
                    format!(" (also resolves to {})", others.join(", "))
                };
                return pass("address", format!("`{target}` reached {addr}{also}"));
            }
            Ok(Err(e)) => refused.push(format!("{addr}: {e}")),
            Err(_) => refused.push(format!("{addr}: no answer within 5 s")),
        }
    }
    check(
        "address",
        Err(format!(
            "`{target}` resolves, but nothing accepts TCP: {}",
            refused.join("; ")
        )),
        FIX,
    )
}

async fn namespace(client: &Client, namespace: &str) -> DoctorCheck {
    let mut svc = client.connection().workflow_service();
    let request = DescribeNamespaceRequest {
        namespace: namespace.to_owned(),
        ..Default::default()
    };
    let result = svc
        .describe_namespace(request.into_request())
        .await
        .map(|_| format!("`{namespace}` exists"))
        .map_err(|e| e.message().to_owned());
    check(
        "namespace",
        result,
        "create it: `temporal operator namespace create --namespace <name>` (the schema-setup job does this for `default`)",
    )
}

async fn visibility(client: &Client) -> DoctorCheck {
    let counted = tokio::time::timeout(
        Duration::from_secs(10),
        client.count_workflows("", WorkflowCountOptions::default()),
    )
    .await;
    let result = match counted {
        Ok(Ok(c)) => Ok(format!("count query answered: {} workflow(s)", c.count())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("count query did not answer within 10 s".into()),
    };
    check(
        "visibility",
        result,
        "check the visibility store (Elasticsearch up, index and template created by the schema-setup job)",
    )
}

async fn pollers(client: &Client, namespace: &str, task_queue: &str) -> DoctorCheck {
    let mut seen = Vec::new();
    for (kind, queue_type) in [
        ("workflow", TaskQueueType::Workflow),
        ("activity", TaskQueueType::Activity),
    ] {
        match task_queue_pollers(client, namespace, task_queue, queue_type).await {
            Ok(pollers) => seen.push((kind, pollers.len())),
            Err(e) => return check("pollers", Err(e), ""),
        }
    }
    let detail = seen
        .iter()
        .map(|(k, n)| format!("{n} {k} poller(s)"))
        .collect::<Vec<_>>()
        .join(", ");
    let result = if seen.iter().all(|(_, n)| *n > 0) {
        Ok(format!("`{task_queue}`: {detail}"))
    } else {
        Err(format!("`{task_queue}`: {detail}"))
    };
    check(
        "pollers",
        result,
        "start the chaos worker on that task queue (`chaos worker --task-queue <queue>`, the Render worker service)",
    )
}

/// The proxy's checks (its admin listener, its frontend) and the workers it sees polling
/// (`None` when it cannot say).
async fn proxy(address: &str) -> (Vec<DoctorCheck>, Option<Vec<PollerSeen>>) {
    const FIX: &str = "start `chaos proxy --admin HOST:PORT` and give that address (--proxy-admin / \
        CHAOS_PROXY_ADMIN; on Render the chaos-proxy service, port 7240)";
    let (admin, health) = match ProxyAdmin::connect(address).await {
        Ok(connected) => connected,
        Err(e) => return (vec![check("proxy", Err(e.to_string()), FIX)], None),
    };
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
    let log = &health.attempts;
    let mut checks = vec![pass(
        "proxy",
        format!(
            "{} {} at {}: workers connect to {}; its log keeps {} of at most {} attempt(s) for {} ({} dropped){}; up {} s",
            health.service,
            health.version,
            admin.url(),
            health.listen.join(", "),
            log.kept,
            log.limits.max_attempts,
            humantime::format_duration(log.limits.max_age),
            log.dropped,
            health
                .resident_bytes
                .map(|b| format!(", resident {}", mib(b)))
                .unwrap_or_default(),
            health.uptime_s
        ),
    )];
    let upstream = &health.upstream;
    checks.push(check(
        "proxy upstream",
        match (&upstream.server_version, &upstream.error) {
            (Some(version), _) => Ok(format!("the proxy reaches {} (server {version})", upstream.address)),
            (None, error) => Err(format!(
                "the proxy cannot reach {}: {}",
                upstream.address,
                error.as_deref().unwrap_or("no answer")
            )),
        },
        "the proxy's --upstream / TEMPORAL_ADDRESS must be the frontend's gRPC host:port",
    ));
    let seen = match admin.pollers().await {
        Ok(seen) => Some(seen),
        Err(e) => {
            checks.push(check("proxy pollers", Err(e.to_string()), FIX));
            None
        }
    };
    (checks, seen)
}

/// How recently a poller must have polled to count on the server's side: the server lists a
/// worker for minutes after it stopped, but its last access time ages (a live worker's is at most
/// about a long poll old, some 70 s).
const RECENT_POLL: Duration = Duration::from_secs(90);

/// Whether the workers the server sees polling `task_queue` poll through the proxy (`seen`: the
/// pollers the proxy lists; `None` when it could not say).
async fn polling_through(
    client: &Client,
    namespace: &str,
    task_queue: &str,
    seen: Option<&[PollerSeen]>,
) -> DoctorCheck {
    const FIX: &str = "point the worker's Temporal address at the proxy's --listen address (on Render: \
        TEMPORAL_ADDRESS or TEMPORAL_HOST from the chaos-proxy service), so that faults reach it";
    let Some(seen) = seen else {
        return check(
            "through the proxy",
            Err(format!("`{task_queue}`: skipped, the proxy did not answer (above)")),
            "",
        );
    };
    let mut on_server = std::collections::BTreeSet::new();
    for queue_type in [TaskQueueType::Workflow, TaskQueueType::Activity] {
        let pollers = match task_queue_pollers(client, namespace, task_queue, queue_type).await {
            Ok(pollers) => pollers,
            Err(e) => return check("through the proxy", Err(e), ""),
        };
        let now = std::time::SystemTime::now();
        on_server.extend(
            pollers
                .into_iter()
                .filter(|p| {
                    p.last_access_time.as_ref().is_none_or(|t| {
                        let at = std::time::UNIX_EPOCH + Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32);
                        now.duration_since(at).unwrap_or_default() <= RECENT_POLL
                    })
                })
                .map(|p| p.identity),
        );
    }
    let proxied: std::collections::BTreeSet<&str> = seen
        .iter()
        .filter(|p| p.namespace == namespace && p.task_queue == task_queue && p.polling())
        .map(|p| p.identity.as_str())
        .collect();
    let around: Vec<&str> = on_server
        .iter()
        .map(String::as_str)
        .filter(|i| !proxied.contains(i))
        .collect();
    let result = match (proxied.len(), around.is_empty()) {
        (0, _) => Err(format!(
            "`{task_queue}`: no worker polls it through the proxy{}",
            match around.is_empty() {
                true => String::new(),
                false => format!(
                    "; {} reach the frontend some other way: {}",
                    around.len(),
                    around.join(", ")
                ),
            }
        )),
        (n, true) => Ok(format!(
            "`{task_queue}`: {n} worker(s) poll through the proxy: {}",
            proxied.iter().copied().collect::<Vec<_>>().join(", ")
        )),
        (n, false) => Err(format!(
            "`{task_queue}`: {n} worker(s) poll through the proxy, but {} go around it ({}): faults reach only the \
             attempts the others take",
            around.len(),
            around.join(", ")
        )),
    };
    check("through the proxy", result, FIX)
}

async fn ui_reachable(ui: &str) -> DoctorCheck {
    let result = match reqwest::Client::new()
        .get(ui)
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => Ok(format!("{ui} answered {}", r.status())),
        Ok(r) => Err(format!("{ui} answered {}", r.status())),
        Err(e) => Err(format!("{ui}: {e}")),
    };
    check(
        "web ui",
        result,
        "check the UI service is up and its TEMPORAL_ADDRESS points at the frontend",
    )
}

/// The checks as a Markdown table.
pub fn table(checks: &[DoctorCheck]) -> String {
    let mut out = String::from("| check | status | detail | fix |\n|---|---|---|---|\n");
    for c in checks {
        let status = if c.passed { "ok" } else { "FAIL" };
        let fix = if c.passed { "" } else { c.fix };
        let _ = writeln!(
            out,
            "| {} | {status} | {} | {fix} |",
            c.name,
            c.detail.replace('|', "\\|")
        );
    }
    out
}
