//! The remote target, the external worker, the webhook and `chaos doctor`, against a separately
//! started local dev server (the stand-in for a deployed cluster).

mod common;

use common::{Guard, chaos_command, dev_server, free_port, text};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

fn chaos(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = chaos_command(args);
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn spawn_worker(address: &str, task_queue: &str, env: &[(&str, &str)]) -> Guard {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chaos"));
    cmd.args(["worker", "--address", address, "--task-queue", task_queue])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Guard(cmd.spawn().unwrap())
}

/// Retries `chaos doctor` until it exits 0 (the worker's pollers take a moment to show).
fn doctor_until_ok(args: &[&str]) -> Output {
    let began = Instant::now();
    loop {
        let out = chaos(args, &[]);
        if out.status.success() || began.elapsed() > Duration::from_secs(30) {
            return out;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn doctor_finds_a_missing_worker_and_passes_once_it_polls() {
    let server = dev_server();
    let (address, ui) = (server.address.clone(), server.ui_url.clone());
    let args = [
        "doctor",
        "--address",
        &address,
        "--task-queue",
        "doctor-q",
        "--ui-url",
        &ui,
    ];
    let out = chaos(&args, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for ok in [
        "| connection | ok |",
        "| frontend health | ok |",
        "| server version | ok | server 1.",
        "| namespace | ok |",
        "| visibility | ok |",
        "| web ui | ok |",
    ] {
        assert!(table.contains(ok), "missing `{ok}` in\n{table}");
    }
    assert!(
        table.contains(
            "| pollers | FAIL | `doctor-q`: 0 workflow poller(s), 0 activity poller(s) | start the chaos worker"
        ),
        "{table}"
    );
    let _worker = spawn_worker(&address, "doctor-q", &[]);
    let out = doctor_until_ok(&args);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("| pollers | ok | `doctor-q`: 1 workflow poller(s), 1 activity poller(s)"));
}

#[test]
fn doctor_names_the_address_it_reached_and_the_server_it_found() {
    let server = dev_server();
    // `localhost` has to be resolved: the table must show the socket address actually reached.
    let by_name = format!("localhost:{}", server.grpc_port);
    let out = chaos(&["doctor", "--address", &by_name], &[]);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{table}{}", text(&out.stderr));
    let reached = format!("| address | ok | `{by_name}` reached 127.0.0.1:{} ", server.grpc_port);
    let reached_v6 = format!("| address | ok | `{by_name}` reached [::1]:{} ", server.grpc_port);
    assert!(
        table.contains(&reached) || table.contains(&reached_v6),
        "missing `{reached}` in\n{table}"
    );
    let version = table
        .lines()
        .find(|l| l.starts_with("| server version | ok | server 1."))
        .unwrap_or_else(|| panic!("no server version in\n{table}"));
    assert!(version.contains("; capabilities: "), "{version}");
    assert!(version.contains("supports_schedules"), "{version}");
    let cluster = table
        .lines()
        .find(|l| l.starts_with("| cluster | ok | cluster `"))
        .unwrap_or_else(|| panic!("no cluster info in\n{table}"));
    assert!(
        cluster.contains("persistence ") && cluster.contains("visibility "),
        "{cluster}"
    );

    // A port where no frontend listens: the address check fails and says how to fix the address.
    let nobody = format!("127.0.0.1:{}", free_port());
    let out = chaos(&["doctor", "--address", &nobody], &[]);
    assert_eq!(out.status.code(), Some(1));
    let table = text(&out.stdout);
    assert!(
        table.contains(&format!(
            "| address | FAIL | `{nobody}` resolves, but nothing accepts TCP: {nobody}: "
        )),
        "{table}"
    );
    assert!(
        table.contains("the temporal-frontend service's internal host name with port 7233"),
        "{table}"
    );
}

#[test]
fn waiting_for_the_cluster_retries_until_the_namespace_exists_and_gives_up_on_nothing() {
    use temporal_chaos::target::{Endpoint, wait_for_cluster};
    let server = dev_server();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let namespace = "created-later";
    let endpoint = Endpoint::local(server.address.clone(), namespace.into());
    let address = server.address.clone();
    // The namespace appears only after the wait has started (and failed at least once).
    let creator = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        let status = Command::new(std::env::var_os("CHAOS_TEMPORAL_BIN").unwrap_or_else(|| "temporal".into()))
            .args([
                "operator",
                "namespace",
                "create",
                "--namespace",
                namespace,
                "--address",
                &address,
            ])
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", text(&status.stderr));
    });
    let waited = runtime.block_on(wait_for_cluster(&endpoint, Duration::from_secs(120)));
    creator.join().unwrap();
    let (_client, version) = waited.unwrap_or_else(|e| panic!("{e}"));
    assert!(version.starts_with("1."), "{version}");

    // Nothing listens: the wait ends with the connection error instead of hanging.
    let nobody = Endpoint::local(format!("127.0.0.1:{}", free_port()), "default".into());
    let Err(err) = runtime.block_on(wait_for_cluster(&nobody, Duration::from_secs(3))) else {
        panic!("no cluster listens at {}", nobody.address);
    };
    assert!(err.to_string().contains("cannot reach Temporal at 127.0.0.1:"), "{err}");
}

/// Accepts one HTTP request and sends its body back through the channel.
fn webhook_receiver() -> (u16, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let (mut request_line, mut length) = (String::new(), 0usize);
        reader.read_line(&mut request_line).unwrap();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        tx.send((request_line, text(&body))).unwrap();
    });
    (port, rx)
}

#[test]
fn remote_run_uses_the_external_worker_posts_the_report_and_leaks_no_secret() {
    const API_KEY: &str = "sk-test-secret-8c1f";
    const HOOK_TOKEN: &str = "hook-secret-77d2";
    let server = dev_server();
    let address = server.address.clone();
    // The dev server ignores the API key; TLS stays off explicitly (an API key turns it on).
    let env = [("TEMPORAL_API_KEY", API_KEY), ("TEMPORAL_TLS", "false")];
    let _worker = spawn_worker(&address, "deployed-q", &env);
    let (hook_port, received) = webhook_receiver();
    let reports = tempfile::tempdir().unwrap();
    let hook = format!("http://127.0.0.1:{hook_port}/hook?token={HOOK_TOKEN}");
    let out = chaos(
        &[
            "run",
            "scenarios/activity",
            "--address",
            &address,
            "--task-queue",
            "deployed-q",
            "--external-worker",
            "--ui-url",
            "https://temporal-ui.example.test",
            "--reports",
            reports.path().to_str().unwrap(),
        ],
        &[env[0], env[1], ("CHAOS_WEBHOOK_URL", &hook)],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The faults travelled in the workflow header to the separate worker process.
    assert!(
        stdout.contains("retries-exhausted-fallback | fallback-B | fallback_b×1, risky×3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("](https://temporal-ui.example.test/namespaces/default/workflows/"),
        "{stdout}"
    );
    let (request_line, body) = received.recv_timeout(Duration::from_secs(10)).expect("webhook called");
    assert!(request_line.starts_with("POST /hook?token="), "{request_line}");
    let posted: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(posted["target"], "remote");
    assert_eq!(posted["summary"]["failed"], 0);
    assert_eq!(posted["task_queue"], "deployed-q");
    // No secret in the logs, the printed summary, the posted report or the files.
    let mut everything = format!("{stdout}{stderr}{body}");
    for entry in walk(reports.path()) {
        everything.push_str(&std::fs::read_to_string(entry).unwrap_or_default());
    }
    assert!(!everything.contains(API_KEY), "API key leaked");
    assert!(!everything.contains(HOOK_TOKEN), "webhook token leaked");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(walk(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_failing_webhook_fails_the_run_without_printing_its_url() {
    let server = dev_server();
    let address = server.address.clone();
    // Nothing listens on this port: the POST fails.
    let hook = format!("http://127.0.0.1:{}/hook?token=tok-abc-123", free_port());
    let reports = tempfile::tempdir().unwrap();
    let out = chaos(
        &[
            "run",
            "scenarios/activity/03-plain-success.toml",
            "--address",
            &address,
            "--webhook",
            &hook,
            "--reports",
            reports.path().to_str().unwrap(),
        ],
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot POST the report to 127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("tok-abc-123") && !text(&out.stdout).contains("tok-abc-123"));
}
