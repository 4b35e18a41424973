//! `chaos serve`: the dashboard on the run store. One server-rendered page (no JavaScript): the
//! runs newest first, the resilience score's trend, per scenario a strip of its latest verdicts
//! with a duration sparkline and a flaky mark; and each run's own HTML report and `report.json`
//! as the run wrote them, with their Temporal Web UI links.
//!
//! Never public without a login: with a password (HTTP basic auth) it listens anywhere, without
//! one only on a loopback address. `GET /health` answers without login and says nothing else.

mod dashboard;

use crate::store::{Location, ReportFile, Store, StoreError, StoreOptions};
use axum::{
    Router,
    extract::{Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use base64::Engine;
use dashboard::Dashboard;
use minijinja::Environment;
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

const TEMPLATE: &str = include_str!("dashboard.html");

/// Runs per page of the runs list (and of the score trend).
const PAGE: i64 = 50;

/// How often `--store-keep` deletes old runs while serving.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// `chaos serve`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeOptions {
    /// Address to listen on (`HOST:PORT`). Anything but loopback needs --password.
    #[arg(long, env = "CHAOS_SERVE_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// The run store to show (and, with --store-keep, to keep trimmed).
    #[command(flatten)]
    pub store: StoreOptions,
    /// Reports folder whose `runs.sqlite` is the default store.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// User name of the HTTP basic-auth login.
    #[arg(long, env = "CHAOS_SERVE_USER", default_value = "chaos")]
    pub user: String,
    /// Password of the HTTP basic-auth login (better in the environment than on the command
    /// line). Without one, the dashboard only listens on loopback.
    #[arg(long, env = "CHAOS_SERVE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Latest scenario runs each scenario's strip shows.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=200))]
    pub strip: i64,
}

/// Why the dashboard could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A public address without a login.
    #[error(
        "--listen {0} is not a loopback address and no password is set: the dashboard is never public without a \
         login; set CHAOS_SERVE_PASSWORD (HTTP basic auth) or listen on 127.0.0.1"
    )]
    PublicWithoutLogin(String),
    /// `--listen` is not an address.
    #[error("--listen {0}: not an address to listen on (HOST:PORT, e.g. 127.0.0.1:8090)")]
    BadListen(String),
    /// An SQLite store that does not exist: a typo, most likely.
    #[error(
        "there is no run store at {0}: nothing was recorded there (chaos run records into <reports>/runs.sqlite; \
         see --reports and --store)"
    )]
    NoSuchStore(String),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `--store off`.
    #[error("--store off: there is no store to show")]
    NoStore,
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

struct App {
    store: Store,
    strip: i64,
    /// `Basic …` as the browser sends it, when a password is set.
    login: Option<HeaderValue>,
    templates: Environment<'static>,
}

/// Serves the dashboard until `stop` resolves.
pub async fn serve(options: &ServeOptions, stop: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    let password = options.password.as_deref().filter(|p| !p.is_empty());
    let listen: Vec<SocketAddr> = tokio::net::lookup_host(&options.listen)
        .await
        .map_err(|_| ServeError::BadListen(options.listen.clone()))?
        .collect();
    if listen.is_empty() {
        return Err(ServeError::BadListen(options.listen.clone()));
    }
    if password.is_none() && !listen.iter().all(|a| a.ip().is_loopback()) {
        return Err(ServeError::PublicWithoutLogin(options.listen.clone()));
    }
    let location = options.store.location(&options.reports)?.ok_or(ServeError::NoStore)?;
    if let Location::Sqlite(path) = &location
        && !path.is_file()
    {
        return Err(ServeError::NoSuchStore(location.to_string()));
    }
    let store = Store::open(&location).await?;
    let listener = tokio::net::TcpListener::bind(listen.as_slice())
        .await
        .map_err(|source| ServeError::Bind {
            address: options.listen.clone(),
            source,
        })?;
    let address = listener
        .local_addr()
        .map_or_else(|_| options.listen.clone(), |a| a.to_string());
    if let Some(keep) = options.store.keep {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                match store.prune(keep, None).await {
                    Ok(0) => {}
                    Ok(n) => eprintln!("deleted {n} run(s) older than --store-keep"),
                    Err(e) => eprintln!("warning: {e}"),
                }
                tokio::time::sleep(PRUNE_EVERY).await;
            }
        });
    }
    eprintln!(
        "chaos serve: the dashboard of {} at http://{address}/{}",
        store.shown(),
        if password.is_some() { " (basic auth)" } else { "" }
    );
    let app = Arc::new(App {
        store,
        strip: options.strip,
        login: password.map(|p| basic(&options.user, p)),
        templates: templates(),
    });
    let router = Router::new()
        .route("/", get(page))
        .route("/runs/{run_id}/", get(html_report))
        .route("/runs/{run_id}/report.json", get(json_report))
        .route_layer(middleware::from_fn_with_state(app.clone(), login))
        .route("/health", get(|| async { "ok\n" }))
        .with_state(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|source| ServeError::Bind { address, source })
}

/// The `Authorization` header value of `user:password`.
fn basic(user: &str, password: &str) -> HeaderValue {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {token}")).expect("base64 is a valid header value")
}

/// Lets a request through with the right login (or when no password is set); otherwise asks for one.
async fn login(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Some(expected) = &app.login else {
        return next.run(request).await;
    };
    let given = request.headers().get(header::AUTHORIZATION);
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"temporal-chaos\", charset=\"UTF-8\"",
        )],
        "login required\n",
    )
        .into_response()
}

/// Compares without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(serde::Deserialize)]
struct PageQuery {
    page: Option<i64>,
}

/// A store failure as a page: 500 and the reason (the store's location has no password).
fn failed(e: StoreError) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
}

async fn page(State(app): State<Arc<App>>, Query(query): Query<PageQuery>) -> Response {
    match render(&app.store, &app.templates, query.page.unwrap_or(1), app.strip).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => failed(e),
    }
}

/// The dashboard's page `page` (from 1) of `store`, with strips of the latest `strip` scenario
/// runs: what `GET /` answers.
pub async fn dashboard_page(store: &Store, page: i64, strip: i64) -> Result<String, StoreError> {
    render(store, &templates(), page, strip).await
}

fn templates() -> Environment<'static> {
    let mut templates = Environment::new();
    templates
        .add_template("dashboard.html", TEMPLATE)
        .expect("the bundled template parses");
    templates
}

async fn render(store: &Store, templates: &Environment<'static>, page: i64, strip: i64) -> Result<String, StoreError> {
    let page = page.max(1);
    let run_count = store.run_count().await?;
    let runs = store.runs(PAGE, (page - 1) * PAGE).await?;
    let newest = match page {
        1 => runs.clone(),
        _ => store.runs(PAGE, 0).await?,
    };
    let (columns, scenarios) = dashboard::strips(&store.latest_results(strip).await?);
    let dashboard = Dashboard {
        store: store.shown().to_owned(),
        run_count,
        has_older: page * PAGE < run_count,
        page,
        runs: dashboard::run_views(runs),
        columns,
        scenarios,
        trend: dashboard::trend(&newest),
    };
    Ok(templates
        .get_template("dashboard.html")
        .and_then(|t| t.render(&dashboard))
        .unwrap_or_else(|e| format!("<!doctype html><p>cannot render the dashboard: {e}</p>")))
}

async fn html_report(State(app): State<Arc<App>>, Path(run_id): Path<String>) -> Response {
    report(&app, &run_id, ReportFile::Html, "text/html; charset=utf-8").await
}

async fn json_report(State(app): State<Arc<App>>, Path(run_id): Path<String>) -> Response {
    report(&app, &run_id, ReportFile::Json, "application/json").await
}

async fn report(app: &App, run_id: &str, file: ReportFile, content_type: &'static str) -> Response {
    match app.store.report(run_id, file).await {
        Ok(Some(bytes)) => {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            (headers, bytes).into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            format!("no run `{run_id}` (or no such report of it) in the store\n"),
        )
            .into_response(),
        Err(e) => failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_header_is_basic_auth_of_user_and_password() {
        assert_eq!(basic("chaos", "pw"), "Basic Y2hhb3M6cHc=");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"ab"));
    }
}
