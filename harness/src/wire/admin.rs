//! The proxy's HTTP admin listener (`chaos proxy --admin ADDR`) and its client ([`ProxyAdmin`],
//! for `chaos run --proxy-admin` and `chaos doctor`): what a proxy deployed as a service tells
//! about itself, its attempt log and the workers polling through it.
//!
//! | route | answer (JSON) |
//! |---|---|
//! | `GET /health` | [`Health`]: the proxy, its frontend (asked now), its log, its memory |
//! | `GET /attempts?workflow_id=W&run_id=R` | [`ExecutionAttempts`]: the attempts of one workflow run (`run_id` optional) |
//! | `GET /pollers` | [`PollerSeen`] list: the workers polling through it lately |

use super::{
    attempts::{AttemptRecord, LogState},
    pollers::PollerSeen,
    service::Proxy,
    upstream::error_chain,
};
use crate::resources::Proc;
use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    routing::get,
};
use serde::{Deserialize, Serialize};
use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::net::TcpListener;

/// What `/health` says a temporal-chaos proxy is: a client refuses anything else.
pub const SERVICE: &str = "temporal-chaos proxy";

/// The admin port `HOST` alone means.
pub const DEFAULT_PORT: u16 = 7240;

/// How long `/health` waits for the frontend's answer.
const UPSTREAM_PROBE: Duration = Duration::from_secs(5);

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// Always [`SERVICE`].
    pub service: String,
    /// The harness's version.
    pub version: String,
    /// Where workers connect.
    pub listen: Vec<String>,
    /// The frontend, asked when `/health` was.
    pub upstream: UpstreamHealth,
    /// The attempt log: what it keeps and has dropped.
    pub attempts: LogState,
    /// Task polls forwarded since the proxy started.
    pub polls: u64,
    /// Workers polling through it lately (see `/pollers`).
    pub pollers: usize,
    /// The proxy's resident memory (bytes), where the system says.
    pub resident_bytes: Option<u64>,
    /// Seconds since it started.
    pub uptime_s: u64,
}

/// The frontend as the proxy sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamHealth {
    /// `host:port`.
    pub address: String,
    /// Its server version, when it answered.
    pub server_version: Option<String>,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// `GET /attempts`: the attempts of one workflow run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutionAttempts {
    /// The workflow id asked for.
    pub workflow_id: String,
    /// The run id asked for, if any.
    pub run_id: Option<String>,
    /// Its attempts the log keeps.
    pub attempts: Vec<AttemptRecord>,
    /// The log's state: attempts of a workflow started before `dropped_through_ms` may be gone.
    pub log: LogState,
}

#[derive(Deserialize)]
struct AttemptsQuery {
    workflow_id: String,
    run_id: Option<String>,
}

struct Admin {
    proxy: Arc<Proxy>,
    listen: Vec<String>,
    started: Instant,
}

/// Serves the admin routes on `listener` until `until`.
pub(super) async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    listen: Vec<String>,
    until: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let admin = Arc::new(Admin {
        proxy,
        listen,
        started: Instant::now(),
    });
    let routes = Router::new()
        .route("/health", get(health))
        .route("/attempts", get(attempts))
        .route("/pollers", get(pollers))
        .with_state(admin);
    axum::serve(listener, routes).with_graceful_shutdown(until).await
}

async fn health(State(admin): State<Arc<Admin>>) -> Json<Health> {
    let proxy = &admin.proxy;
    let probe = proxy.upstream().system_info();
    let (server_version, error) = match tokio::time::timeout(UPSTREAM_PROBE, probe).await {
        Ok(Ok(info)) => (Some(info.server_version), None),
        Ok(Err(e)) => (None, Some(e.to_string())),
        Err(_) => (None, Some(format!("no answer within {} s", UPSTREAM_PROBE.as_secs()))),
    };
    Json(Health {
        service: SERVICE.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        listen: admin.listen.clone(),
        upstream: UpstreamHealth {
            address: proxy.upstream().address(),
            server_version,
            error,
        },
        attempts: proxy.log().state(),
        polls: *proxy.polls().borrow(),
        pollers: proxy.pollers().len(),
        resident_bytes: Proc::Own.resident_bytes(),
        uptime_s: admin.started.elapsed().as_secs(),
    })
}

async fn attempts(
    State(admin): State<Arc<Admin>>,
    query: Result<Query<AttemptsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ExecutionAttempts>, (StatusCode, String)> {
    let Query(query) = query.map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("{e}: ask for /attempts?workflow_id=ID (and &run_id=RUN)\n"),
        )
    })?;
    if query.workflow_id.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "workflow_id is empty: ask for /attempts?workflow_id=ID (and &run_id=RUN)\n".into(),
        ));
    }
    let log = admin.proxy.log();
    let run_id = query.run_id.filter(|r| !r.is_empty());
    Ok(Json(ExecutionAttempts {
        attempts: log.of_execution(&query.workflow_id, run_id.as_deref()),
        workflow_id: query.workflow_id,
        run_id,
        log: log.state(),
    }))
}

async fn pollers(State(admin): State<Arc<Admin>>) -> Json<Vec<PollerSeen>> {
    Json(admin.proxy.pollers())
}

/// Why a proxy's admin listener did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The URL does not parse.
    #[error(
        "`{url}` is not a proxy admin address ({reason}): give HOST, HOST:PORT or http://HOST:PORT, the address of \
         `chaos proxy --admin`"
    )]
    BadUrl {
        /// What was given.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// Nothing answered there.
    #[error(
        "the chaos proxy admin at {url} does not answer HTTP ({reason}): is `chaos proxy --admin` running there (its \
         --admin address, not its gRPC --listen port nor the frontend's), and is that port reachable from here?"
    )]
    Unreachable {
        /// The admin URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// A temporal-chaos proxy of another version, whose answers this one does not read.
    #[error(
        "{url} is a temporal-chaos proxy, version {version}, whose answers this chaos ({}) does not read ({reason}): \
         run the same version of chaos on both sides",
        env!("CARGO_PKG_VERSION")
    )]
    OtherVersion {
        /// The admin URL.
        url: String,
        /// The proxy's version.
        version: String,
        /// What did not read.
        reason: String,
    },
    /// Something answered that is not a temporal-chaos proxy.
    #[error(
        "{url} answered, but it is not a temporal-chaos proxy's admin listener ({what}): point --proxy-admin / \
         CHAOS_PROXY_ADMIN at the address `chaos proxy --admin` listens on, not at the proxy's gRPC port or the \
         frontend"
    )]
    NotAProxy {
        /// The admin URL.
        url: String,
        /// What it answered.
        what: String,
    },
}

/// A client of a proxy's admin listener.
#[derive(Debug, Clone)]
pub struct ProxyAdmin {
    url: String,
    http: reqwest::Client,
}

impl ProxyAdmin {
    /// Reaches the admin listener at `address` (`HOST`, `HOST:PORT` or `http://HOST:PORT`; the
    /// port defaults to [`DEFAULT_PORT`]) and checks that it is a temporal-chaos proxy's.
    pub async fn connect(address: &str) -> Result<(Self, Health), AdminError> {
        let url = admin_url(address)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| AdminError::Unreachable {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let admin = Self { url, http };
        let health = admin.health().await?;
        Ok((admin, health))
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<Health, AdminError> {
        let value: serde_json::Value = self.get("/health", &[]).await?;
        let service = value["service"].as_str().unwrap_or_default();
        if service != SERVICE {
            return Err(AdminError::NotAProxy {
                url: self.url.clone(),
                what: format!("its /health names no `{SERVICE}`"),
            });
        }
        serde_json::from_value(value.clone()).map_err(|e| AdminError::OtherVersion {
            url: self.url.clone(),
            version: value["version"].as_str().unwrap_or("unknown").to_owned(),
            reason: e.to_string(),
        })
    }

    /// `GET /attempts` of one workflow run.
    pub async fn attempts(&self, workflow_id: &str, run_id: &str) -> Result<ExecutionAttempts, AdminError> {
        self.get("/attempts", &[("workflow_id", workflow_id), ("run_id", run_id)])
            .await
    }

    /// `GET /pollers`.
    pub async fn pollers(&self) -> Result<Vec<PollerSeen>, AdminError> {
        self.get("/pollers", &[]).await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, AdminError> {
        let url = format!("{}{path}", self.url);
        let unreachable = |e: reqwest::Error| AdminError::Unreachable {
            url: self.url.clone(),
            reason: error_chain(&e),
        };
        let response = self.http.get(&url).query(query).send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        let not_a_proxy = |what: String| AdminError::NotAProxy {
            url: self.url.clone(),
            what,
        };
        if !status.is_success() {
            return Err(not_a_proxy(format!(
                "GET {path} gave HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)]).trim()
            )));
        }
        serde_json::from_slice(&body).map_err(|e| not_a_proxy(format!("GET {path} gave no proxy JSON: {e}")))
    }
}

/// `http://HOST:PORT` from `HOST`, `HOST:PORT` or a URL.
fn admin_url(address: &str) -> Result<String, AdminError> {
    let address = address.trim().trim_end_matches('/');
    let bad = |reason: &str| AdminError::BadUrl {
        url: address.to_owned(),
        reason: reason.to_owned(),
    };
    let with_scheme = match address.split_once("://") {
        Some(("http" | "https", _)) => address.to_owned(),
        Some((scheme, _)) => return Err(bad(&format!("scheme `{scheme}`, not http or https"))),
        None if address.is_empty() => return Err(bad("it is empty")),
        None => format!("http://{address}"),
    };
    let mut url = reqwest::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if url.port().is_none() && url.scheme() == "http" {
        let _ = url.set_port(Some(DEFAULT_PORT));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(bad("a path; give the listener's address only"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_addresses_take_a_host_a_port_or_a_url() {
        let url = |a: &str| admin_url(a).map_err(|e| e.to_string());
        assert_eq!(url("chaos-proxy").unwrap(), "http://chaos-proxy:7240");
        assert_eq!(url("127.0.0.1:9000").unwrap(), "http://127.0.0.1:9000");
        assert_eq!(url("http://127.0.0.1:9000/").unwrap(), "http://127.0.0.1:9000");
        assert_eq!(url("https://proxy.example").unwrap(), "https://proxy.example");
        assert!(url("grpc://x:1").unwrap_err().contains("scheme `grpc`"));
        assert!(url("").unwrap_err().contains("empty"));
        assert!(url("http://x:1/health").unwrap_err().contains("a path"));
    }
}
