-- The run store of temporal-chaos (`chaos run`, `chaos load`, `chaos store push`; read by
-- `chaos serve`). Portable SQL: the same file migrates SQLite and PostgreSQL. Times are Unix
-- milliseconds; report files are kept gzip-compressed, exactly as the run wrote them.

-- One row per run.
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    -- `run` (chaos run / chaos demo) or `load` (chaos load).
    kind TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    recorded_at_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    -- PASSED, FAILED or INTERRUPTED.
    verdict TEXT NOT NULL,
    -- Scenarios (a load: workflows started, completed as expected, lost or stuck, 0).
    total INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    interrupted INTEGER NOT NULL,
    -- Resilience score, 0 to 100: the weighted share of the scenarios that finished which
    -- passed. NULL for a load, or when no scenario finished.
    score DOUBLE PRECISION,
    target TEXT NOT NULL,
    address TEXT NOT NULL,
    namespace TEXT NOT NULL,
    ui_url TEXT,
    server_version TEXT NOT NULL,
    harness_version TEXT NOT NULL,
    -- One line for the runs list (a load: throughput, latency, lost, stuck).
    headline TEXT NOT NULL,
    -- report.json or load.json, gzip.
    report_json_gz BYTEA NOT NULL,
    -- index.html or load.html, gzip; NULL when the folder had none.
    report_html_gz BYTEA
);
CREATE INDEX runs_by_start ON runs (started_at_ms);

-- One row per scenario of a run.
CREATE TABLE scenario_results (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    workflow TEXT NOT NULL,
    -- passed, failed or interrupted.
    verdict TEXT NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    outcome TEXT,
    -- JSON object: activity type to attempts.
    attempts TEXT NOT NULL,
    duration_ms BIGINT,
    wall_ms BIGINT,
    -- JSON array of the checks that did not hold: {name, expected, observed, link}.
    failed_checks TEXT NOT NULL,
    error TEXT,
    workflow_id TEXT NOT NULL,
    workflow_run_id TEXT,
    -- The execution in the Temporal Web UI.
    link TEXT,
    PRIMARY KEY (run_id, position)
);
CREATE INDEX scenario_results_by_name ON scenario_results (name, run_id);
