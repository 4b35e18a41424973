//! A throwaway PostgreSQL (Debian's `postgresql` server) on a loopback port, for the tests of the
//! deployment's schema wait and of the run store.

use super::{Guard, free_port, text};
use std::{
    os::unix::fs::MetadataExt,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

pub const PASSWORD: &str = "wait-test-only";

/// A PostgreSQL server in a temporary directory, listening on 127.0.0.1 only, with password
/// (SCRAM) authentication for the user `temporal` and a database `temporal`.
pub struct Postgres {
    _server: Guard,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// PostgreSQL refuses to run as root: run its programs as the `postgres` user then. `setpriv`
/// execs the program in place, so killing the child kills PostgreSQL itself.
fn pg_command(program: &str, as_postgres: bool) -> Command {
    let bin = [
        "/usr/lib/postgresql/17/bin",
        "/usr/lib/postgresql/16/bin",
        "/usr/lib/postgresql/15/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join(program))
    .find(|p| p.is_file())
    .or_else(|| which::which(program).ok())
    .unwrap_or_else(|| {
        panic!("`{program}` not found: install the PostgreSQL server (Debian: apt-get install postgresql)")
    });
    if as_postgres {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=postgres", "--regid=postgres", "--clear-groups"])
            .arg(bin);
        cmd
    } else {
        Command::new(bin)
    }
}

pub fn start_postgres() -> Postgres {
    let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let dir = tempfile::tempdir().unwrap();
    let (data, pwfile) = (dir.path().join("data"), dir.path().join("pw"));
    std::fs::write(&pwfile, PASSWORD).unwrap();
    if as_postgres {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let out = pg_command("initdb", as_postgres)
        .args(["-U", "temporal", "--auth=scram-sha-256", "--no-sync", "-D"])
        .arg(&data)
        .arg(format!("--pwfile={}", pwfile.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "initdb: {}", text(&out.stderr));
    let port = free_port();
    let server = pg_command("postgres", as_postgres)
        .arg("-D")
        .arg(&data)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", &format!("port={port}")])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.path().display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pg = Postgres {
        _server: Guard(server),
        port,
        _dir: dir,
    };
    let began = Instant::now();
    while !pg.sql("postgres", "CREATE DATABASE temporal").status.success() {
        assert!(began.elapsed() < Duration::from_secs(30), "PostgreSQL did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    pg
}

impl Postgres {
    /// The URL of database `db` as user `temporal`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://temporal:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs `sql` in database `db` with psql.
    pub fn sql(&self, db: &str, sql: &str) -> std::process::Output {
        Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "temporal"])
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .expect("psql (Debian: apt-get install postgresql-client)")
    }

    /// Runs `sql` in database `temporal`; it must succeed.
    pub fn must(&self, sql: &str) {
        let out = self.sql("temporal", sql);
        assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
    }
}
