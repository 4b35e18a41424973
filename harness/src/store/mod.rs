//! The run store: every `chaos run` and `chaos load` recorded, in an SQLite file under the
//! reports folder by default or in PostgreSQL (`--store postgres://…`), for `chaos serve`.
//!
//! A run is recorded from its report folder ([`RunRecord::from_dir`]) in one transaction, so a
//! store never holds half a run; `chaos store push` records a folder the same way later. The
//! schema is versioned by the migrations in `harness/migrations/` (one portable SQL file per
//! version, the same for both databases), applied when the store is opened; a store migrated by a
//! newer temporal-chaos is refused rather than touched.

mod location;
mod read;
mod record;

pub use location::{DEFAULT_FILE, Location};
pub use read::{ReportFile, ResultRow, RunRow};
pub use record::{RecordError, RunRecord, RunSummary, ScenarioRecord};

use sqlx::{
    Connection, PgPool, SqlitePool,
    migrate::{MigrateError, Migrator},
    postgres::{PgConnection, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
};
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// The store's schema migrations, embedded at build time.
static MIGRATIONS: Migrator = sqlx::migrate!();

/// How long opening a store may wait for its server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where runs are recorded (`chaos run`, `chaos demo`, `chaos load`, `chaos store push`,
/// `chaos serve`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreOptions {
    /// The run store: `sqlite://PATH`, `postgres://USER:PASSWORD@HOST:PORT/DATABASE`, or `off`.
    /// Default: the SQLite file `runs.sqlite` in the reports folder.
    #[arg(long = "store", env = "CHAOS_STORE_URL", hide_env_values = true, value_name = "URL")]
    pub url: Option<String>,
    /// On a PostgreSQL server, keep the runs in this database instead of the URL's (created when
    /// missing), e.g. `chaos` beside Temporal's own on one instance.
    #[arg(long = "store-database", env = "CHAOS_STORE_DATABASE", value_name = "NAME")]
    pub database: Option<String>,
    /// When a run is recorded, delete the runs that started longer ago than this (e.g. `90d`).
    /// Default: keep every run.
    #[arg(long = "store-keep", env = "CHAOS_STORE_KEEP", value_name = "DURATION", value_parser = keep_for)]
    pub keep: Option<Duration>,
}

/// `--store-keep`: a duration longer than zero.
fn keep_for(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be longer than 0; leave it out to keep every run".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

impl StoreOptions {
    /// The store these options name, given the reports folder (`None`: `--store off`).
    pub fn location(&self, reports: &Path) -> Result<Option<Location>, StoreError> {
        Location::parse(self.url.as_deref(), self.database.as_deref(), reports)
    }
}

/// What went wrong with the run store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `--store` is not a store URL.
    #[error("--store `{url}`: {why}")]
    BadUrl {
        /// The URL, its password hidden.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// `--store-database` is not a plain database name.
    #[error("--store-database `{0}`: use letters, digits, `_` and `-`, starting with a letter or `_`")]
    BadDatabase(String),
    /// The store's server or file could not be reached.
    #[error("the run store {store} cannot be reached: {source}")]
    Unreachable {
        /// The store.
        store: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The store answered but cannot be used: a wrong password, a file that is not a database.
    /// Trying again later would not help.
    #[error("the run store {store} cannot be used: {source}")]
    Unusable {
        /// The store.
        store: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The database named by `--store-database` is missing and could not be created.
    #[error(
        "the run store's database `{database}` does not exist on {store} and cannot be created: {source}; \
         create it (CREATE DATABASE \"{database}\") or leave out --store-database"
    )]
    CreateDatabase {
        /// The server.
        store: String,
        /// The database.
        database: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The store was migrated by a newer temporal-chaos.
    #[error(
        "the run store {store} has schema version {found}, newer than this temporal-chaos knows ({known}): \
         it was written by a newer version; use that version, or another store (--store)"
    )]
    NewerSchema {
        /// The store.
        store: String,
        /// Its schema version.
        found: i64,
        /// The newest version this binary has.
        known: i64,
    },
    /// The migrations could not be applied.
    #[error("cannot bring the run store {store} to schema version {known}: {source}")]
    Migrate {
        /// The store.
        store: String,
        /// The newest version this binary has.
        known: i64,
        /// Why.
        #[source]
        source: MigrateError,
    },
    /// A query failed.
    #[error("the run store {store} failed: {source}")]
    Query {
        /// The store.
        store: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The run's report folder could not be read.
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// An open store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Backend,
    /// The location, as people read it.
    shown: String,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the store's pool, whichever database it is: the same SQL
/// (portable, with `$N` parameters) on both.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}
use on_pool;

/// What recording a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The run is now in the store; older runs deleted by `--store-keep`, if any.
    Added {
        /// Runs deleted as older than `--store-keep`.
        pruned: u64,
    },
    /// The store already had a run with this id; nothing changed.
    Already,
}

impl StoreError {
    /// The error of failing to connect to `store`: it cannot be reached (no answer, which may
    /// pass), or it answered and cannot be used (which will not).
    fn connecting(store: &str, source: sqlx::Error) -> Self {
        let store = store.to_owned();
        match source {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => Self::Unreachable { store, source },
            _ => Self::Unusable { store, source },
        }
    }
}

impl Store {
    /// Opens the store at `location`: creates an SQLite file (and its folder) or a PostgreSQL
    /// database named by `--store-database` when missing, and brings its schema up to date.
    pub async fn open(location: &Location) -> Result<Self, StoreError> {
        let shown = location.to_string();
        let connecting = |source| StoreError::connecting(&shown, source);
        let pool = match location {
            Location::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| StoreError::Unusable {
                        store: shown.clone(),
                        source: sqlx::Error::Io(e),
                    })?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(30))
                    .foreign_keys(true);
                Backend::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(4)
                        .acquire_timeout(CONNECT_TIMEOUT)
                        .connect_with(options)
                        .await
                        .map_err(connecting)?,
                )
            }
            Location::Postgres { server, database } => {
                // One connection first, which fails at once with the server's own reason (the
                // pool would retry it until its timeout), and creates the database if asked.
                let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(server))
                    .await
                    .map_err(|_| connecting(sqlx::Error::PoolTimedOut))?
                    .map_err(connecting)?;
                if let Some(name) = database {
                    create_database(&mut conn, name, &shown).await?;
                }
                let _ = conn.close().await;
                Backend::Postgres(
                    PgPoolOptions::new()
                        .max_connections(4)
                        .acquire_timeout(CONNECT_TIMEOUT)
                        .connect_with(Location::postgres_options(server, database.as_deref()))
                        .await
                        .map_err(connecting)?,
                )
            }
        };
        let store = Self { pool, shown };
        store.migrate().await?;
        Ok(store)
    }

    /// Closes the store's connections; an SQLite store's file then holds every recorded run
    /// (its write-ahead log copied in, without waiting for readers such as `chaos serve`).
    pub async fn close(&self) {
        if let Backend::Sqlite(pool) = &self.pool {
            let _ = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(pool).await;
        }
        on_pool!(self, pool => pool.close().await);
    }

    /// The store's location, its password hidden.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn failed(&self, source: sqlx::Error) -> StoreError {
        StoreError::Query {
            store: self.shown.clone(),
            source,
        }
    }

    /// Refuses a store a newer binary migrated, then applies the migrations it lacks.
    async fn migrate(&self) -> Result<(), StoreError> {
        let known = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
        // No table yet (a new store) reads as version 0.
        let found: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await
                .unwrap_or(None)
        });
        if let Some(found) = found.filter(|f| *f > known) {
            return Err(StoreError::NewerSchema {
                store: self.shown.clone(),
                found,
                known,
            });
        }
        let mut tries = 0;
        loop {
            match on_pool!(self, pool => MIGRATIONS.run(pool).await) {
                Ok(()) => return Ok(()),
                // Another process brought the same new SQLite file up at the same moment (SQLite
                // has no migration lock, PostgreSQL has one): once it is done, nothing is left to
                // apply, and the next try says so.
                Err(MigrateError::Execute(_) | MigrateError::ExecuteMigration(..))
                    if tries < 5 && matches!(self.pool, Backend::Sqlite(_)) =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                Err(source) => {
                    return Err(StoreError::Migrate {
                        store: self.shown.clone(),
                        known,
                        source,
                    });
                }
            }
        }
    }

    /// Records `run` and its scenarios in one transaction, then (with `keep`) deletes the runs
    /// that started longer than `keep` ago. A run already there is left as it is.
    pub async fn record(&self, run: &RunRecord, keep: Option<Duration>) -> Result<Recorded, StoreError> {
        let recorded_at = chrono::Utc::now().timestamp_millis();
        let r = &run.summary;
        let result: Result<Recorded, sqlx::Error> = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let there: Option<String> = sqlx::query_scalar("SELECT run_id FROM runs WHERE run_id = $1")
                .bind(&r.run_id)
                .fetch_optional(&mut *tx)
                .await?;
            if there.is_some() {
                return Ok(Recorded::Already);
            }
            sqlx::query(
                "INSERT INTO runs (run_id, kind, started_at_ms, recorded_at_ms, duration_ms, verdict, total, passed, \
                 failed, interrupted, score, target, address, namespace, ui_url, server_version, harness_version, \
                 headline, report_json_gz, report_html_gz) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
            )
            .bind(&r.run_id)
            .bind(&r.kind)
            .bind(r.started_at_ms)
            .bind(recorded_at)
            .bind(r.duration_ms)
            .bind(&r.verdict)
            .bind(r.total)
            .bind(r.passed)
            .bind(r.failed)
            .bind(r.interrupted)
            .bind(r.score)
            .bind(&r.target)
            .bind(&r.address)
            .bind(&r.namespace)
            .bind(&r.ui_url)
            .bind(&r.server_version)
            .bind(&r.harness_version)
            .bind(&r.headline)
            .bind(&run.report_json_gz)
            .bind(&run.report_html_gz)
            .execute(&mut *tx)
            .await?;
            for (position, s) in run.scenarios.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO scenario_results (run_id, position, name, source, workflow, verdict, weight, outcome, \
                     attempts, duration_ms, wall_ms, failed_checks, error, workflow_id, workflow_run_id, link) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(&r.run_id)
                .bind(position as i32)
                .bind(&s.name)
                .bind(&s.source)
                .bind(&s.workflow)
                .bind(s.verdict)
                .bind(s.weight)
                .bind(&s.outcome)
                .bind(&s.attempts)
                .bind(s.duration_ms)
                .bind(s.wall_ms)
                .bind(&s.failed_checks)
                .bind(&s.error)
                .bind(&s.workflow_id)
                .bind(&s.workflow_run_id)
                .bind(&s.link)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(Recorded::Added { pruned: 0 })
        }
        .await);
        match result.map_err(|e| self.failed(e))? {
            Recorded::Added { .. } => Ok(Recorded::Added {
                pruned: match keep {
                    Some(keep) => self.prune(keep, Some(&r.run_id)).await?,
                    None => 0,
                },
            }),
            Recorded::Already => Ok(Recorded::Already),
        }
    }

    /// Deletes the runs that started longer than `keep` ago (but never the run `spare`, just
    /// recorded), each with its scenarios, in one transaction; returns how many.
    pub async fn prune(&self, keep: Duration, spare: Option<&str>) -> Result<u64, StoreError> {
        let cutoff = chrono::Utc::now().timestamp_millis() - keep.as_millis() as i64;
        let spare = spare.unwrap_or_default();
        let pruned: Result<u64, sqlx::Error> = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "DELETE FROM scenario_results WHERE run_id IN \
                 (SELECT run_id FROM runs WHERE started_at_ms < $1 AND run_id <> $2)",
            )
            .bind(cutoff)
            .bind(spare)
            .execute(&mut *tx)
            .await?;
            let pruned = sqlx::query("DELETE FROM runs WHERE started_at_ms < $1 AND run_id <> $2")
                .bind(cutoff)
                .bind(spare)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(pruned)
        }
        .await);
        pruned.map_err(|e| self.failed(e))
    }

    /// Records each report folder of `dirs` (`chaos store push`): what became of each, in order.
    pub async fn push(&self, dirs: &[PathBuf], keep: Option<Duration>) -> Vec<(PathBuf, Result<Recorded, StoreError>)> {
        let mut done = Vec::new();
        for dir in dirs {
            let recorded = match RunRecord::from_dir(dir) {
                Ok(run) => self.record(&run, keep).await,
                Err(e) => Err(e.into()),
            };
            done.push((dir.clone(), recorded));
        }
        done
    }
}

/// Creates database `name` through `conn` when it is missing.
async fn create_database(conn: &mut PgConnection, name: &str, shown: &str) -> Result<(), StoreError> {
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|source| StoreError::connecting(shown, source))?;
    if exists.is_none() {
        // The name is an identifier checked by `Location::parse`; quoted as one.
        let created = sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut *conn)
            .await;
        // Another run may have created it in between: "duplicate database", or the unique
        // index of the catalogue when both ran at once.
        if let Err(source) = created
            && source
                .as_database_error()
                .is_none_or(|e| !matches!(e.code().as_deref(), Some("42P04" | "23505")))
        {
            return Err(StoreError::CreateDatabase {
                store: shown.to_owned(),
                database: name.to_owned(),
                source,
            });
        }
    }
    Ok(())
}

/// The store of one run (`chaos run`, `chaos load`): opened before the run when it can be (a
/// malformed URL, a newer schema or a database that cannot be created stops the run before it
/// starts; a store that cannot be reached only warns), and recorded into at the end, opened then
/// if it could not be before.
pub struct RunStore {
    location: Location,
    opened: Option<Store>,
    keep: Option<Duration>,
}

/// A run that did not get into the store: its files are in `dir`, from where `chaos store push`
/// adds it later.
#[derive(Debug, thiserror::Error)]
#[error("the run was not recorded: {source}; its reports are in {}: `{push}` adds it", .dir.display())]
pub struct NotRecorded {
    /// The run's report folder.
    pub dir: PathBuf,
    /// The command that records it into the same store.
    pub push: String,
    /// Why.
    #[source]
    pub source: StoreError,
}

impl RunStore {
    /// The store `options` name for a run writing its reports under `reports`, opened now if it
    /// can be (`None`: `--store off`).
    pub async fn prepare(options: &StoreOptions, reports: &Path) -> Result<Option<Self>, StoreError> {
        let Some(location) = options.location(reports)? else {
            return Ok(None);
        };
        let opened = match Store::open(&location).await {
            Ok(store) => Some(store),
            // No answer may pass by the run's end; anything else stops the run before it starts.
            Err(e @ StoreError::Unreachable { .. }) => {
                eprintln!("warning: {e}; the run goes on, and is recorded at its end if the store answers then");
                None
            }
            Err(e) => return Err(e),
        };
        Ok(Some(Self {
            location,
            opened,
            keep: options.keep,
        }))
    }

    /// Records the run whose reports are in `dir`, and says so on stderr.
    pub async fn record(&mut self, dir: &Path) -> Result<(), NotRecorded> {
        let not_recorded = |source| NotRecorded {
            dir: dir.to_owned(),
            push: self.location.push_command(dir),
            source,
        };
        let run = RunRecord::from_dir(dir).map_err(|e| not_recorded(e.into()))?;
        let store = match &self.opened {
            Some(store) => store.clone(),
            None => Store::open(&self.location).await.map_err(not_recorded)?,
        };
        match store.record(&run, self.keep).await.map_err(not_recorded)? {
            Recorded::Added { pruned: 0 } => eprintln!("run recorded in {}", store.shown()),
            Recorded::Added { pruned } => eprintln!(
                "run recorded in {} ({pruned} run(s) older than --store-keep deleted)",
                store.shown()
            ),
            Recorded::Already => eprintln!("run already in {}", store.shown()),
        }
        store.close().await;
        Ok(())
    }
}
