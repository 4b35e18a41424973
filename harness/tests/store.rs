//! The run store and its dashboard with the real parts: `chaos run` into a real PostgreSQL
//! (Debian's server on a loopback port) and into SQLite, `chaos serve` on each, checked in
//! headless Chromium (runs list, the failing scenario's red cell, the flaky mark, a report link,
//! a Temporal UI link that opens the workflow), with screenshots kept; and every bad input: an
//! unreachable, malformed or newer store, a folder that is not a run, a run cut in half.

mod common;

use common::{
    DevServer, Guard,
    browser::{chromium, dump_dom, screenshot},
    chaos_command, dev_server, free_port, http_get,
    postgres::start_postgres,
    repo, text,
};
use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::{Duration, Instant},
};
use temporal_chaos::store::{Location, Recorded, RunRecord, Store};

/// Runs `sql` on the SQLite file `db`, as someone else would (not through the store).
fn sqlite(db: &Path, sql: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    });
}

/// A new SQLite store at `db`, its schema in place.
fn created(db: &Path) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        Store::open(&Location::Sqlite(db.to_owned()))
            .await
            .unwrap()
            .close()
            .await;
    });
}

/// The scenario whose verdict flips: right in runs 1 and 3, a wrong expectation in run 2.
fn flips(dir: &Path, wrong: bool) -> PathBuf {
    let attempts = if wrong { 2 } else { 1 };
    let file = dir.join("flips.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"flips\"\nworkflow = \"resilient\"\n[input]\nvalue = 21\n[activity]\nstart_to_close = \"2s\"\n\
             [expect]\noutcome = \"completed\"\nattempts = {{ risky = {attempts} }}\n"
        ),
    )
    .unwrap();
    file
}

/// `chaos run` of the steady scenario and `flips` on `server`, recorded with `store` flags.
fn run(server: &DevServer, reports: &Path, scenario: &Path, store: &[&str]) -> Output {
    chaos_command(&["run", "scenarios/activity/03-plain-success.toml"])
        .arg(scenario)
        .args(["--address", &server.address, "--ui-url", &server.ui_url, "--reports"])
        .arg(reports)
        .args(store)
        .output()
        .unwrap()
}

/// `GET path` on the dashboard at `port`, logged in as `login` (`user:password`) if given.
fn get(port: u16, path: &str, login: Option<&str>) -> (u16, String) {
    use base64::Engine;
    let auth = login.map(|l| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(l)));
    http_get(&format!("127.0.0.1:{port}"), path, auth.as_deref()).expect("the dashboard answers")
}

/// `chaos serve` with `args`, once its /health answers.
fn serve(args: &[&str], password: Option<&str>) -> (Guard, u16) {
    let port = free_port();
    let mut cmd = chaos_command(&["serve", "--listen", &format!("127.0.0.1:{port}")]);
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    match password {
        Some(p) => cmd.env("CHAOS_SERVE_PASSWORD", p),
        None => cmd.env_remove("CHAOS_SERVE_PASSWORD"),
    };
    let mut child = cmd.spawn().unwrap();
    let began = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("chaos serve exited ({status}): {err}");
        }
        assert!(began.elapsed() < Duration::from_secs(30), "chaos serve did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(port, "/health", None), (200, "ok\n".into()));
    (Guard(child), port)
}

/// The rows of the runs list and the cells of the scenario `name`'s strip, from the DOM.
fn rows(dom: &str, class: &str) -> usize {
    dom.matches(&format!("<tr class=\"{class}\"")).count()
}

fn strip<'a>(dom: &'a str, name: &str) -> &'a str {
    let start = dom
        .find(&format!("data-name=\"{name}\""))
        .unwrap_or_else(|| panic!("no strip for {name}"));
    &dom[start..start + dom[start..].find("</tr>").unwrap()]
}

#[test]
fn three_runs_into_postgres_show_the_red_cell_the_flaky_mark_and_links_that_open() {
    let test = "three_runs_into_postgres_show_the_red_cell_the_flaky_mark_and_links_that_open";
    let Some(bin) = chromium(test) else { return };
    let pg = start_postgres();
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url("temporal");
    let store = ["--store", url.as_str(), "--store-database", "chaos"];
    let mut run_ids = Vec::new();
    for (i, wrong) in [false, true, false].into_iter().enumerate() {
        let out = run(&server, dir.path(), &flips(dir.path(), wrong), &store);
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(if wrong { 1 } else { 0 }),
            "run {}: {err}",
            i + 1
        );
        let shown = format!("run recorded in postgres://temporal@127.0.0.1:{}/chaos", pg.port);
        assert!(err.contains(&shown), "run {}: {err}", i + 1);
        assert!(
            !err.contains(common::postgres::PASSWORD),
            "the password is never printed"
        );
        run_ids.push(
            std::fs::read_link(dir.path().join("latest"))
                .unwrap()
                .display()
                .to_string(),
        );
    }
    // Runs 1-3 are in PostgreSQL's own `chaos` database, created by the first run.
    let listed = pg.sql("chaos", "SELECT run_id, verdict FROM runs ORDER BY started_at_ms");
    let listed = text(&listed.stdout);
    for (id, verdict) in run_ids.iter().zip(["PASSED", "FAILED", "PASSED"]) {
        assert!(listed.contains(&format!("{id} | {verdict}")), "{listed}");
    }

    let (_serve, port) = serve(&store, Some("s3cret"));
    assert_eq!(get(port, "/", None).0, 401, "no page without the login");
    assert_eq!(get(port, "/", Some("chaos:wrong")).0, 401);
    assert_eq!(get(port, "/", Some("chaos:s3cret")).0, 200);
    let base = format!("http://chaos:s3cret@127.0.0.1:{port}");
    let dom = dump_dom(&bin, &format!("{base}/"));
    assert_eq!(rows(&dom, "run"), 3, "three runs listed:\n{dom}");
    let newest_first: Vec<usize> = run_ids
        .iter()
        .rev()
        .map(|id| dom.find(&format!("<tr class=\"run\" data-run=\"{id}\"")).unwrap())
        .collect();
    assert!(newest_first.is_sorted(), "newest first");
    let flips = strip(&dom, "flips");
    let cells: Vec<&str> = flips
        .split("class=\"cell ")
        .skip(1)
        .map(|c| &c[..c.find('"').unwrap()])
        .collect();
    assert_eq!(cells, ["passed", "failed", "passed"], "the strip of flips: {flips}");
    assert!(
        flips.contains(&format!("class=\"cell failed\" data-run=\"{}\"", run_ids[1])),
        "the red cell is run 2's"
    );
    assert!(flips.contains("class=\"flaky\""), "flips is marked flaky: {flips}");
    assert!(
        flips.contains("expected 2, observed 1"),
        "the red cell says which check failed"
    );
    let steady = strip(&dom, "plain-success");
    assert!(
        !steady.contains("class=\"flaky\"") && !steady.contains("cell failed"),
        "{steady}"
    );
    assert!(dom.contains("id=\"latest-score\">100"), "the latest run's score");

    // A report link opens the run's own HTML report, as it was written.
    let report_href = format!("runs/{}/", run_ids[1]);
    assert!(dom.contains(&format!("class=\"report-link\" href=\"{report_href}\"")));
    let report = dump_dom(&bin, &format!("{base}/{report_href}"));
    assert!(report.contains("id=\"run-verdict\">FAILED"), "run 2's report: {report}");
    assert!(report.contains("<tr class=\"bad\"><td>✘ attempts[risky]"));
    let (status, json) = get(port, &format!("/runs/{}/report.json", run_ids[1]), Some("chaos:s3cret"));
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap()["run_id"],
        run_ids[1]
    );

    // A UI link opens the workflow in the Temporal UI.
    let ui_link = {
        let at = flips.find("class=\"ui-link\" href=\"").unwrap() + "class=\"ui-link\" href=\"".len();
        flips[at..at + flips[at..].find('"').unwrap()].replace("&amp;", "&")
    };
    assert!(ui_link.starts_with(&server.ui_url), "{ui_link}");
    let workflow_id = format!("flips-{}", run_ids[2]);
    assert!(ui_link.contains(&workflow_id), "the latest run's execution: {ui_link}");
    let ui = dump_dom(&bin, &ui_link);
    assert!(
        ui.contains(&workflow_id) && ui.contains("Completed"),
        "the UI shows the workflow"
    );

    let shot = screenshot(&bin, &format!("{base}/"), "dashboard-postgres.png");
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real screenshot at {}",
        shot.display()
    );
    let _ = writeln!(std::io::stderr(), "dashboard screenshot: {}", shot.display());
}

#[test]
fn a_run_into_sqlite_by_default_is_on_the_dashboard() {
    let test = "a_run_into_sqlite_by_default_is_on_the_dashboard";
    let Some(bin) = chromium(test) else { return };
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&server, dir.path(), &flips(dir.path(), true), &[]);
    assert_eq!(out.status.code(), Some(1));
    let db = dir.path().join("runs.sqlite");
    assert!(text(&out.stderr).contains(&format!("run recorded in sqlite://{}", db.display())));
    let run_id = std::fs::read_link(dir.path().join("latest"))
        .unwrap()
        .display()
        .to_string();

    let reports = dir.path().display().to_string();
    let (_serve, port) = serve(&["--reports", &reports], None);
    let base = format!("http://127.0.0.1:{port}");
    let dom = dump_dom(&bin, &format!("{base}/"));
    assert_eq!(rows(&dom, "run"), 1);
    let flips = strip(&dom, "flips");
    assert!(
        flips.contains(&format!("class=\"cell failed\" data-run=\"{run_id}\"")),
        "{flips}"
    );
    assert!(!flips.contains("class=\"flaky\""), "one run is not flaky");
    assert!(dom.contains("class=\"ui-link\" href=\"http://127.0.0.1:"));
    let report = dump_dom(&bin, &format!("{base}/runs/{run_id}/"));
    assert!(report.contains("id=\"run-verdict\">FAILED"));
    let shot = screenshot(&bin, &format!("{base}/"), "dashboard-sqlite.png");
    let _ = writeln!(std::io::stderr(), "dashboard screenshot: {}", shot.display());
}

#[test]
fn an_unreachable_store_keeps_the_run_which_push_adds_later_once() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    let gone = format!("postgres://chaos:pw@127.0.0.1:{}/chaos", free_port());
    let out = run(&server, dir.path(), &flips(dir.path(), false), &["--store", &gone]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "not recorded is not success: {err}");
    assert!(
        err.contains("cannot be reached") && err.contains("the run goes on"),
        "{err}"
    );
    let run_dir = dir.path().join(std::fs::read_link(dir.path().join("latest")).unwrap());
    assert!(run_dir.join("report.json").is_file(), "the run's files are written");
    assert!(
        err.contains(&format!(
            "`CHAOS_STORE_URL=<the --store URL> chaos store push {}` adds it",
            run_dir.display()
        )),
        "{err}"
    );
    assert!(!err.contains(":pw@"), "the password is never printed: {err}");
    assert!(!dir.path().join("runs.sqlite").exists(), "nothing recorded elsewhere");

    let push = |args: &[&str]| {
        chaos_command(&["store", "push"])
            .arg(&run_dir)
            .args(["--reports"])
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = push(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("recorded in sqlite://"));
    let out = push(&[]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("already in sqlite://"),
        "pushing twice changes nothing"
    );
    let out = push(&["--store", &gone]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot be reached"));
}

#[test]
fn bad_stores_and_folders_are_refused_naming_what_and_where() {
    let dir = tempfile::tempdir().unwrap();
    // A malformed URL: nothing is run (no server is started).
    let out = chaos_command(&[
        "run",
        "scenarios/activity/03-plain-success.toml",
        "--store",
        "mysql://root:pw@h/db",
    ])
    .arg("--reports")
    .arg(dir.path())
    .output()
    .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--store `mysql://root:***@h/db`: unknown kind of store `mysql`"),
        "{err}"
    );
    assert!(err.contains("nothing was run"), "{err}");

    // A store a newer temporal-chaos migrated.
    let db = dir.path().join("newer.sqlite");
    created(&db);
    sqlite(
        &db,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
    );
    let newer = format!("sqlite://{}", db.display());
    for args in [
        vec!["run", "scenarios/activity/03-plain-success.toml", "--store", &newer],
        vec!["serve", "--store", &newer],
    ] {
        let out = chaos_command(&args).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("has schema version 9999, newer than this temporal-chaos knows (1)"),
            "{err}"
        );
    }

    // A folder that is not a run, and a report that is not one.
    let other = newer.replace("newer", "other");
    let push = || {
        chaos_command(&["store", "push"])
            .arg(dir.path())
            .arg("--store")
            .arg(&other)
            .output()
            .unwrap()
    };
    let out = push();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a run's report folder: it has no report.json"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(
        dir.path().join("report.json"),
        "{\"run_id\": \"x\",\n \"started_at\": 5}",
    )
    .unwrap();
    let out = push();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("report.json: not a temporal-chaos report: ") && err.contains("line 2"),
        "{err}"
    );

    // A file that is not a store: refused before anything runs, not taken for a store that is down.
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(&junk, "not a database, not even close; ".repeat(100)).unwrap();
    let out = chaos_command(&["run", "scenarios/activity/03-plain-success.toml", "--store"])
        .arg(format!("sqlite://{}", junk.display()))
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot be used: ") && err.contains("nothing was run"),
        "{err}"
    );
    // Retention of nothing, and a dashboard of a store that is not there (a typo).
    let out = chaos_command(&["run", "--store-keep", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("must be longer than 0; leave it out to keep every run"));
    let out = chaos_command(&["serve", "--reports"])
        .arg(dir.path().join("reprots"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("there is no run store at sqlite://"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("reprots").exists(), "and it creates none");

    // A public dashboard without a login.
    let out = chaos_command(&["serve", "--listen", "0.0.0.0:0", "--store", &newer])
        .env_remove("CHAOS_SERVE_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is never public without a login"));
}

#[test]
fn a_run_is_recorded_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.sqlite");
    let fixture = repo().join("harness/tests/fixtures/report");
    let run = RunRecord::from_dir(&fixture).unwrap();
    created(&db);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A failure half way through the run's scenarios.
    sqlite(
        &db,
        &format!(
            "CREATE TRIGGER boom BEFORE INSERT ON scenario_results WHEN NEW.position = {} \
             BEGIN SELECT RAISE(ABORT, 'disk full, say'); END",
            run.scenarios.len() - 1
        ),
    );
    runtime.block_on(async {
        let store = Store::open(&Location::Sqlite(db.clone())).await.unwrap();
        let e = store.record(&run, None).await.unwrap_err().to_string();
        assert!(
            e.contains("disk full, say") && e.contains(&format!("sqlite://{}", db.display())),
            "{e}"
        );
        assert_eq!(store.run_count().await.unwrap(), 0, "no half run");
        assert!(store.latest_results(10).await.unwrap().is_empty(), "no orphan scenario");
    });
    sqlite(&db, "DROP TRIGGER boom");
    runtime.block_on(async {
        let store = Store::open(&Location::Sqlite(db.clone())).await.unwrap();
        // Retention never takes the run just recorded, however old it is.
        let keep = Some(Duration::from_secs(86_400));
        assert_eq!(store.record(&run, keep).await.unwrap(), Recorded::Added { pruned: 0 });
        assert_eq!(store.latest_results(10).await.unwrap().len(), run.scenarios.len());
        // But it goes with the next one, or under chaos serve.
        assert_eq!(
            store.prune(Duration::from_secs(86_400), None).await.unwrap(),
            1,
            "the fixture is from 2026-11-27"
        );
        assert_eq!(store.run_count().await.unwrap(), 0);
    });
}

#[test]
fn runs_opening_a_new_store_at_the_same_moment_all_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let pg = start_postgres();
    let url = pg.url("temporal");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A wrong password is not a store that is down.
    let wrong = url.replace(common::postgres::PASSWORD, "wrong");
    let e = runtime
        .block_on(Store::open(
            &Location::parse(Some(&wrong), None, dir.path()).unwrap().unwrap(),
        ))
        .unwrap_err();
    assert!(
        e.to_string().contains("cannot be used: ") && e.to_string().contains("password authentication failed"),
        "{e}"
    );
    for location in [
        Location::Sqlite(dir.path().join("new.sqlite")),
        Location::parse(Some(&url), Some("fresh"), dir.path()).unwrap().unwrap(),
    ] {
        // Eight runs starting at once on a store nobody created yet: each creates or migrates it,
        // or finds it done.
        let opened = runtime.block_on(futures::future::join_all((0..8).map(|_| Store::open(&location))));
        for store in opened {
            let store = store.unwrap_or_else(|e| panic!("{location}: {e}"));
            assert_eq!(runtime.block_on(store.run_count()).unwrap(), 0);
        }
    }
}
