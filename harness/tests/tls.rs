//! The remote target over TLS. The dev server has no TLS of its own, so a TLS-terminating proxy
//! (rustls, a self-signed certificate for 127.0.0.1, ALPN h2) stands in front of it: the harness
//! must verify the certificate against `--tls-ca-path` and refuse it without.

mod common;

use common::{chaos, dev_server, text};
use std::{net::TcpListener, sync::Arc};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};

/// Terminates TLS on a free port and forwards plaintext to `upstream`; returns the port and the
/// CA (the self-signed certificate) as PEM.
fn tls_proxy(upstream: u16) -> (u16, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let ca_pem = certified.cert.pem();
    let certs = vec![CertificateDer::from(certified.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
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
    });
    (port, ca_pem)
}

#[test]
fn the_remote_target_verifies_the_server_certificate() {
    let server = dev_server();
    let (port, ca_pem) = tls_proxy(server.grpc_port);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let address = format!("127.0.0.1:{port}");

    // Trusting the CA: a scenario runs end to end over TLS (client, worker and history reads).
    let out = chaos(&[
        "run",
        "scenarios/activity/02-retries-exhausted-fallback.toml",
        "--address",
        &address,
        "--tls-ca-path",
        ca.to_str().unwrap(),
        "--reports",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stdout).contains("fallback-B | fallback_b×1, risky×3"),
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
