//! `compose/temporal/wait-for-schema.sh`, the start-order guard of the Temporal roles in compose and
//! on Render, against a real throwaway PostgreSQL on a loopback port: it waits (and says what for)
//! until the schema job has written the expected version, and gives up with a clear error.

mod common;

use common::{
    Guard, free_port,
    postgres::{PASSWORD, start_postgres},
    repo, text,
};
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// A versioned schema directory with `versions` (e.g. `v1.9`) as subdirectories.
fn versions_dir(versions: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for v in versions {
        std::fs::create_dir(dir.path().join(v)).unwrap();
    }
    dir
}

fn wait_script(port: u16, versions: &Path, wait_seconds: u64) -> Command {
    let script: PathBuf = repo().join("compose/temporal/wait-for-schema.sh");
    let mut cmd = Command::new("sh");
    cmd.arg(script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("DB", "postgres12")
        .env("POSTGRES_SEEDS", "127.0.0.1")
        .env("DB_PORT", port.to_string())
        .env("POSTGRES_USER", "temporal")
        .env("POSTGRES_PWD", PASSWORD)
        .env("DBNAME", "temporal")
        .env("TEMPORAL_SCHEMA_VERSIONS_DIR", versions)
        .env("SCHEMA_WAIT_SECONDS", wait_seconds.to_string())
        .env("SCHEMA_WAIT_MAX_DELAY", "1");
    cmd
}

/// Sends every stderr line of `child` through the channel.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads lines until one contains `needle`; returns it (panics with what was seen otherwise).
fn line_with(lines: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(e) => panic!("no line with `{needle}` ({e}); seen:\n{}", seen.join("\n")),
        }
    }
}

#[test]
fn roles_wait_for_the_expected_schema_version_and_say_what_they_wait_for() {
    let pg = start_postgres();
    // 1.10 is newer than 1.9: the comparison is numeric, not textual.
    let versions = versions_dir(&["v0.0", "v1.9", "v1.10", "v1.2", "README"]);
    let mut child = wait_script(pg.port, versions.path(), 120)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut child);
    let mut guard = Guard(child);
    let mut seen = Vec::new();

    let first = line_with(&lines, "waiting for schema version >= 1.10", &mut seen);
    assert!(
        first.contains("in database temporal at 127.0.0.1:") && first.contains("(no schema_version table yet)"),
        "{first}"
    );
    // The table and row as temporal-sql-tool writes them
    // (temporalio/temporal common/persistence/sql/sqlplugin/postgresql/admin.go).
    pg.must(
        "CREATE TABLE schema_version(version_partition INT not null, db_name VARCHAR(255) not null, \
         creation_time TIMESTAMP, curr_version VARCHAR(64), min_compatible_version VARCHAR(64), \
         PRIMARY KEY (version_partition, db_name))",
    );
    line_with(&lines, "(schema version <none: no schema_version row yet>)", &mut seen);
    pg.must("INSERT INTO schema_version VALUES (0, 'temporal', now(), '1.9', '1.9')");
    line_with(&lines, "(schema version 1.9)", &mut seen);
    pg.must("UPDATE schema_version SET curr_version = '1.10'");
    let done = line_with(&lines, "starting", &mut seen);
    assert!(
        done.contains("schema version 1.10 of database temporal at 127.0.0.1:") && done.contains("is at least 1.10"),
        "{done}"
    );
    let status = guard.0.wait().unwrap();
    assert!(status.success(), "{status}");

    // A newer schema than expected (a rolled-back server) is accepted at once, like the server does.
    pg.must("UPDATE schema_version SET curr_version = '1.11'");
    let out = wait_script(pg.port, versions.path(), 5).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("schema version 1.11"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_wait_is_bounded_and_explains_why_it_gave_up() {
    let versions = versions_dir(&["v1.19"]);
    let nobody = free_port();
    let out = wait_script(nobody, versions.path(), 2).output().unwrap();
    let log = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("(cannot query: "), "{log}");
    assert!(
        log.contains(&format!(
            "ERROR: gave up after 2s waiting for schema version >= 1.19 in database temporal at 127.0.0.1:{nobody}"
        )),
        "{log}"
    );
    assert!(
        log.contains("Check the schema job's log (temporal-schema-setup)"),
        "{log}"
    );

    // Without the release's schema directory there is nothing to wait for: a clear error, no loop.
    let empty = versions_dir(&[]);
    let out = wait_script(nobody, empty.path(), 60).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no vX.Y schema directories in"),
        "{}",
        text(&out.stderr)
    );
}
