//! Both proxies keep accepting after an accept error. The error here is a real one: the process
//! runs out of file descriptors (EMFILE) while a worker connects, then gets them back. The limit
//! is process-wide, so this file holds this one test and nothing else.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use std::{net::SocketAddr, time::Duration};
use temporal_chaos::{
    infra::proxy::FaultProxy,
    target::Endpoint,
    wire::{WireProxy, WireSettings},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
};

/// An echo server on loopback.
async fn echo() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    address
}

/// The lowest file descriptor number free in this process: the next one the kernel hands out.
/// A limit at it makes every new descriptor fail, whatever higher numbers are open.
fn lowest_free_descriptor() -> u64 {
    use std::os::fd::AsRawFd;
    let probe = std::fs::File::open("/dev/null").unwrap();
    probe.as_raw_fd() as u64
}

#[tokio::test]
async fn both_proxies_accept_again_after_running_out_of_file_descriptors() {
    let fault = FaultProxy::start(echo().await).await.unwrap();
    let wire = WireProxy::start(WireSettings::new(
        vec!["127.0.0.1:0".parse().unwrap()],
        // Never reached: the test only needs the proxy to serve HTTP/2.
        Endpoint::local("127.0.0.1:9".into(), "default".into()),
    ))
    .await
    .unwrap();
    let fault_address: SocketAddr = fault.address().parse().unwrap();
    let wire_address: SocketAddr = wire.address().parse().unwrap();
    // The client sockets exist before the limit drops, so only the proxies' accepts fail.
    let (to_fault, to_wire) = (TcpSocket::new_v4().unwrap(), TcpSocket::new_v4().unwrap());
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, lowest_free_descriptor(), hard).unwrap();
    let connected = futures::future::join(to_fault.connect(fault_address), to_wire.connect(wire_address)).await;
    // Both accept loops meet EMFILE a few times meanwhile.
    tokio::time::sleep(Duration::from_millis(400)).await;
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    let (mut fault_client, mut wire_client) = (connected.0.unwrap(), connected.1.unwrap());

    fault_client.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), fault_client.read_exact(&mut echoed))
        .await
        .expect("the network fault proxy accepted the connection once it could")
        .unwrap();
    assert_eq!(&echoed, b"ping");

    // An HTTP/2 server answers the client preface with its SETTINGS frame (type 4).
    wire_client
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut header = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), wire_client.read_exact(&mut header))
        .await
        .expect("the wire proxy accepted the connection once it could")
        .unwrap();
    assert_eq!(header[3], 4, "a SETTINGS frame: {header:?}");
    drop(TcpStream::connect(wire_address).await.unwrap());
}
