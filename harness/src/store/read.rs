//! What `chaos serve` reads from the store: the runs newest first, the scenario results of the
//! latest runs, and a run's report files.

use super::{Backend, RunSummary, Store, StoreError, on_pool};
use flate2::read::GzDecoder;
use serde::Serialize;
use sqlx::{FromRow, Row};
use std::io::Read;

/// A run in the runs list (no report files).
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct RunRow {
    /// Its row.
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub summary: RunSummary,
    /// Whether its HTML report was kept.
    pub has_html: bool,
}

/// One scenario's result in one run, with what the dashboard needs of the run.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ResultRow {
    /// The run.
    pub run_id: String,
    /// The run's start, Unix ms.
    pub started_at_ms: i64,
    /// The temporal-chaos version of the run.
    pub harness_version: String,
    /// Scenario name.
    pub name: String,
    /// `passed`, `failed` or `interrupted`.
    pub verdict: String,
    /// How the workflow ended.
    pub outcome: Option<String>,
    /// Workflow start to close.
    pub duration_ms: Option<i64>,
    /// The checks that did not hold (JSON array).
    pub failed_checks: String,
    /// What kept it from running or being verified.
    pub error: Option<String>,
    /// The execution in the Temporal Web UI.
    pub link: Option<String>,
}

/// A run's report file kept in the store.
#[derive(Debug, Clone, Copy)]
pub enum ReportFile {
    /// `report.json` / `load.json`.
    Json,
    /// `index.html` / `load.html`.
    Html,
}

const RUN_COLUMNS: &str = "run_id, kind, started_at_ms, duration_ms, verdict, total, passed, failed, interrupted, \
     score, target, address, namespace, ui_url, server_version, harness_version, headline, \
     CASE WHEN report_html_gz IS NULL THEN FALSE ELSE TRUE END AS has_html";

impl Store {
    /// How many runs the store holds.
    pub async fn run_count(&self) -> Result<i64, StoreError> {
        let count = on_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM runs").fetch_one(pool).await);
        count.map_err(|e| self.failed(e))
    }

    /// Up to `limit` runs, newest first, skipping the `offset` newest.
    pub async fn runs(&self, limit: i64, offset: i64) -> Result<Vec<RunRow>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY started_at_ms DESC, run_id DESC LIMIT $1 OFFSET $2");
        let rows = on_pool!(self, pool => {
            sqlx::query_as::<_, RunRow>(&sql).bind(limit).bind(offset).fetch_all(pool).await
        });
        rows.map_err(|e| self.failed(e))
    }

    /// The scenario results of the `runs` newest scenario runs (loads have none), oldest run
    /// first and in each run's order.
    pub async fn latest_results(&self, runs: i64) -> Result<Vec<ResultRow>, StoreError> {
        let sql = "SELECT r.run_id, r.started_at_ms, r.harness_version, s.name, s.verdict, s.outcome, s.duration_ms, \
                   s.failed_checks, s.error, s.link \
                   FROM scenario_results s JOIN runs r ON r.run_id = s.run_id \
                   WHERE r.run_id IN (SELECT run_id FROM runs WHERE kind = 'run' \
                                      ORDER BY started_at_ms DESC, run_id DESC LIMIT $1) \
                   ORDER BY r.started_at_ms, r.run_id, s.position";
        let rows = on_pool!(self, pool => sqlx::query_as::<_, ResultRow>(sql).bind(runs).fetch_all(pool).await);
        rows.map_err(|e| self.failed(e))
    }

    /// A run's report file, as it was written; `None` when the store has no such run or file.
    pub async fn report(&self, run_id: &str, file: ReportFile) -> Result<Option<Vec<u8>>, StoreError> {
        let column = match file {
            ReportFile::Json => "report_json_gz",
            ReportFile::Html => "report_html_gz",
        };
        let sql = format!("SELECT {column} FROM runs WHERE run_id = $1");
        let gz: Option<Option<Vec<u8>>> = on_pool!(self, pool => {
            sqlx::query(&sql)
                .bind(run_id)
                .fetch_optional(pool)
                .await
                .and_then(|row| row.map(|r| r.try_get(0)).transpose())
        })
        .map_err(|e| self.failed(e))?;
        let Some(gz) = gz.flatten() else { return Ok(None) };
        let mut bytes = Vec::with_capacity(gz.len() * 6);
        GzDecoder::new(gz.as_slice())
            .read_to_end(&mut bytes)
            .map_err(|e| self.failed(sqlx::Error::Decode(e.into())))?;
        Ok(Some(bytes))
    }
}
