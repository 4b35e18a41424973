//! The remote target over TLS. The dev server has no TLS of its own, so a TLS-terminating proxy
//! (rustls, a self-signed certificate for 127.0.0.1, ALPN h2) stands in front of it: the harness,
//! and the wire proxy's upstream connection, must verify the certificate against `--tls-ca-path`
//! and refuse it without. An API key must reach the frontend as a bearer header.

mod common;

use common::{
    Guard, chaos, chaos_command, dev_server, free_port,
    hop::{hop, serve_on_a_free_port},
    output_within, temporal_bin, text,
};
use std::{
    net::TcpStream,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        RootCertStore, ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
        server::WebPkiClientVerifier,
    },
};

/// Terminates TLS on a free port and forwards plaintext to `upstream`; returns the port and the
/// CA (the self-signed certificate) as PEM.
fn tls_proxy(upstream: u16) -> (u16, String) {
    tls_proxy_with(upstream, None)
}

/// [`tls_proxy`]; with `client_ca`, only clients with a certificate it signed get through (mTLS).
fn tls_proxy_with(upstream: u16, client_ca: Option<CertificateDer<'static>>) -> (u16, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let ca_pem = certified.cert.pem();
    let certs = vec![CertificateDer::from(certified.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let builder = ServerConfig::builder();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca).unwrap();
            builder.with_client_cert_verifier(WebPkiClientVerifier::builder(Arc::new(roots)).build().unwrap())
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let port = serve_on_a_free_port(move |listener| async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that rejects the certificate ends the handshake here.
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
            });
        }
    });
    (port, ca_pem)
}

/// A dev server behind [`tls_proxy`], and its CA written to a file in a fresh folder: (server,
/// TLS port, folder, CA file).
fn tls_server() -> (common::DevServer, u16, tempfile::TempDir, std::path::PathBuf) {
    let server = dev_server();
    let (port, ca_pem) = tls_proxy(server.grpc_port);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    (server, port, dir, ca)
}

#[test]
fn the_remote_target_verifies_the_server_certificate() {
    let (_server, port, dir, ca) = tls_server();
    let address = format!("127.0.0.1:{port}");

    // Trusting the CA: scenarios run end to end over TLS (client, worker and history reads),
    // including one whose own worker process is killed and restarted: it gets the TLS settings
    // of the flags and verifies the real server's name through the network fault proxy.
    let out = chaos(&[
        "run",
        "scenarios/activity/02-retries-exhausted-fallback.toml",
        "scenarios/infrastructure/13-worker-crash.toml",
        "--address",
        &address,
        "--tls-ca-path",
        ca.to_str().unwrap(),
        "--reports",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stdout).contains("fallback-B | fallback_b×1, risky×3")
            && text(&out.stdout).contains("| ✅ | worker-crash | completed | risky×2"),
        "{}",
        text(&out.stdout)
    );

    // Not trusting it: the doctor's connection check fails and says TLS was on.
    let out = chaos(&["doctor", "--address", &address, "--tls", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let table = text(&out.stdout);
    assert!(
        table.contains("| connection | FAIL | cannot reach Temporal at") && table.contains("TLS on"),
        "{table}"
    );

    // Plaintext against the TLS port fails too, and says TLS was off.
    let out = chaos(&["doctor", "--address", &address]);
    assert!(text(&out.stdout).contains("TLS off"), "{}", text(&out.stdout));
}

/// `chaos proxy ARGS` on a free loopback port, once it accepts connections; returns its address.
fn chaos_proxy(args: &[&str]) -> (Guard, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let child = chaos_command(&[&["proxy", "--listen", &listen], args].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut proxy = Guard(child);
    let began = Instant::now();
    while TcpStream::connect(&listen).is_err() {
        if let Ok(Some(status)) = proxy.0.try_wait() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(proxy.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("chaos proxy exited with {status}: {stderr}");
        }
        assert!(began.elapsed() < Duration::from_secs(10), "chaos proxy does not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (proxy, listen)
}

fn temporal(args: &[&str]) -> Command {
    let mut command = Command::new(temporal_bin());
    command
        .args(args)
        .env_remove("TEMPORAL_ADDRESS")
        .env_remove("TEMPORAL_API_KEY");
    command
}

#[test]
fn chaos_proxy_reaches_a_tls_frontend_with_the_ca_and_refuses_it_without() {
    let (server, port, dir, ca) = tls_server();
    let tls_address = format!("127.0.0.1:{port}");

    // Trusting the CA: a workflow started through the proxy exists on the server behind it.
    let (_proxy, listen) = chaos_proxy(&["--upstream", &tls_address, "--tls-ca-path", ca.to_str().unwrap()]);
    let start = [
        "workflow",
        "start",
        "--type",
        "Anything",
        "--task-queue",
        "tls-q",
        "--workflow-id",
        "through-tls",
    ];
    let out = output_within(temporal(&start).args(["--address", &listen]), Duration::from_secs(30));
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let described = output_within(
        temporal(&["workflow", "describe", "--workflow-id", "through-tls"]).args(["--address", &server.address]),
        Duration::from_secs(30),
    );
    assert!(described.status.success(), "{}", text(&described.stderr));

    // TLS on without the CA: the system's roots do not know the certificate, and the worker's
    // call ends with that, not with a hang.
    let (_untrusting, listen) = chaos_proxy(&["--upstream", &tls_address, "--tls", "true"]);
    let out = output_within(
        &mut chaos_command(&["doctor", "--address", &listen]),
        Duration::from_secs(30),
    );
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{table}");
    assert!(
        table.contains("| connection | FAIL |") && table.contains("invalid peer certificate: UnknownIssuer"),
        "{table}"
    );
    // A gRPC-Go client (as a Go worker would be) gets the reason too.
    let out = output_within(
        temporal(&["workflow", "list"]).args(["--address", &listen]),
        Duration::from_secs(30),
    );
    assert!(
        text(&out.stderr).contains("invalid peer certificate: UnknownIssuer"),
        "{}",
        text(&out.stderr)
    );

    // A CA file that is not there stops the proxy at once, naming the file.
    let missing = dir.path().join("absent.pem");
    let out = chaos(&[
        "proxy",
        "--upstream",
        &tls_address,
        "--tls-ca-path",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("absent.pem"), "{}", text(&out.stderr));
}

#[test]
fn chaos_proxy_presents_the_client_certificate_to_an_mtls_frontend() {
    let server = dev_server();
    let client = rcgen::generate_simple_self_signed(vec!["chaos-worker".into()]).unwrap();
    let (port, ca_pem) = tls_proxy_with(server.grpc_port, Some(client.cert.der().clone()));
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, pem: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    };
    let ca = file("ca.pem", ca_pem);
    let cert = file("client.pem", client.cert.pem());
    let key = file("client.key", client.signing_key.serialize_pem());
    let tls_address = format!("127.0.0.1:{port}");
    let list = |listen: &str| {
        output_within(
            &mut temporal(&["workflow", "list", "--address", listen]),
            Duration::from_secs(30),
        )
    };

    let (_proxy, listen) = chaos_proxy(&[
        "--upstream",
        &tls_address,
        "--tls-ca-path",
        &ca,
        "--tls-cert-path",
        &cert,
        "--tls-key-path",
        &key,
    ]);
    let out = list(&listen);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Without the client certificate the frontend ends the connection, and the worker learns why.
    let (_anonymous, listen) = chaos_proxy(&["--upstream", &tls_address, "--tls-ca-path", &ca]);
    let out = list(&listen);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the frontend asked for a client certificate and none is configured"),
        "{stderr}"
    );
}

#[test]
fn a_run_through_the_wire_proxy_reaches_a_tls_frontend() {
    let (_server, port, dir, ca) = tls_server();
    let out = chaos(&[
        "run",
        "scenarios/activity/02-retries-exhausted-fallback.toml",
        // Its own worker and wire proxy, connected through the network fault proxy.
        "scenarios/infrastructure/15-network-latency.toml",
        "--inject",
        "wire",
        "--address",
        &format!("127.0.0.1:{port}"),
        "--tls-ca-path",
        ca.to_str().unwrap(),
        "--reports",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("fallback-B | fallback_b×1, risky×3") && table.contains("network-latency | completed"),
        "{table}"
    );

    // The CA from the environment: the scenario's worker process inherits it, yet talks plaintext
    // to its wire proxy, which does the TLS.
    let out = chaos_command(&[
        "run",
        "scenarios/infrastructure/15-network-latency.toml",
        "--inject",
        "wire",
        "--address",
        &format!("127.0.0.1:{port}"),
        "--reports",
        dir.path().to_str().unwrap(),
    ])
    .env("TEMPORAL_TLS_SERVER_CA_CERT_PATH", &ca)
    .output()
    .unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stdout).contains("network-latency | completed"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn the_api_key_reaches_the_frontend_as_a_bearer_header() {
    let server = dev_server();
    let (port, seen) = hop(server.grpc_port, |_| None);
    let upstream = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();

    // A run with --inject wire: the worker behind the wire proxy has no key of its own; every
    // call that reaches the frontend carries the run's key, the proxy's own calls included.
    let out = chaos(&[
        "run",
        "scenarios/activity/02-retries-exhausted-fallback.toml",
        "--inject",
        "wire",
        "--address",
        &upstream,
        "--api-key",
        "sekret-key",
        "--tls",
        "false",
        "--reports",
        dir.path().to_str().unwrap(),
    ]);
    let output = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{output}");
    assert!(!output.contains("sekret"), "the key is printed: {output}");
    let calls = std::mem::take(&mut *seen.lock().unwrap());
    let unauthorized: Vec<_> = calls
        .iter()
        .filter(|c| c.authorization.as_deref() != Some("Bearer sekret-key"))
        .collect();
    assert!(unauthorized.is_empty(), "{unauthorized:?}");
    let through_proxy = |path: &str| calls.iter().any(|c| c.path.ends_with(path));
    assert!(through_proxy("/PollActivityTaskQueue"), "{calls:?}");
    assert!(
        calls
            .iter()
            .any(|c| c.user_agent.starts_with("temporal-chaos-wire-proxy")
                && c.path.ends_with("/RespondActivityTaskFailed")),
        "no call of the proxy's own: {calls:?}"
    );

    // `chaos proxy` with a key: a call without credentials gets it, a call with its own keeps its.
    let (_proxy, listen) = chaos_proxy(&["--upstream", &upstream, "--api-key", "sekret-key", "--tls", "false"]);
    let list = |extra: &[&str]| {
        let out = output_within(
            temporal(&["workflow", "list", "--address", &listen]).args(extra),
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let calls = std::mem::take(&mut *seen.lock().unwrap());
        calls
            .into_iter()
            .filter(|c| c.path.ends_with("/ListWorkflowExecutions"))
            .map(|c| c.authorization.unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(list(&[]), ["Bearer sekret-key"]);
    assert_eq!(list(&["--api-key", "own-key", "--tls=false"]), ["Bearer own-key"]);
}
