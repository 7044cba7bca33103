//! Blocking-style crates over coio's sockets, unchanged: rustls's
//! `StreamOwned` (TLS over any `Read + Write`) and tungstenite (WebSocket
//! over any `Read + Write`), servers and clients both as coroutines.
//!
//! Why: this is what coio is for, reusing a library written for std's
//! blocking `Read`/`Write` at the cost of a coroutine per connection. A
//! read that returned `WouldBlock` to them (they treat it as an error, or
//! spin), a write that moved fewer bytes than it said, a lost wake under
//! many connections, or a worker blocked instead of a coroutine parked
//! shows up here as an error, corrupt data or a hang. Many connections at
//! once on 2 workers, messages larger than the socket buffers (so that
//! both directions park), each byte checked.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use coio::Runtime;
use coio::net::{TcpListener, TcpStream};
use coio_interop::within_30s;

/// Concurrent clients in each test.
const CLIENTS: usize = 100;

/// A 2-worker runtime.
fn rt() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

/// Message `k` of client `i`: mostly small, every fifth one 200 kB (larger
/// than a loopback socket's buffers, so that the echo parks writing while
/// the client parks reading), each byte telling who sent it.
fn message(i: usize, k: usize) -> Vec<u8> {
    let len = if k % 5 == 4 {
        200_000
    } else {
        1 + (i * 7 + k * 13) % 300
    };
    (0..len).map(|b| ((b + i * 31 + k) % 251) as u8).collect()
}

/// Binds a loopback listener in `rt`; the listener and its address.
fn listen(rt: &Runtime) -> (TcpListener, SocketAddr) {
    let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A self-signed certificate for "localhost": the server's config, and a
/// client config that trusts exactly that certificate. rustls's `ring`
/// provider (no aws-lc-rs build, as in tests/reqwest.rs).
fn tls_configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    // Deprecated for its lack of post-quantum key exchange, which a
    // loopback test does not need (as in tests/reqwest.rs).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// A TLS echo server (rustls's `StreamOwned` over coio's `TcpStream`, one
/// coroutine per connection, length-prefixed messages) and 100 TLS
/// clients, each sending 10 messages and checking the echo.
#[test]
fn rustls_streams_over_coio_sockets() {
    within_30s(|| {
        let rt = rt();
        let (listener, addr) = listen(&rt);
        let (server_config, client_config) = tls_configs();
        rt.spawn(move || {
            for conn in listener.incoming() {
                let conn = conn.unwrap();
                let config = server_config.clone();
                coio::spawn(move || {
                    let tls = rustls::ServerConnection::new(config).unwrap();
                    let mut s = rustls::StreamOwned::new(tls, conn);
                    let mut len = [0; 4];
                    // Until the client's close_notify: a clean end.
                    while s.read_exact(&mut len).is_ok() {
                        let mut msg = vec![0; u32::from_le_bytes(len) as usize];
                        s.read_exact(&mut msg).unwrap();
                        s.write_all(&len).unwrap();
                        s.write_all(&msg).unwrap();
                        s.flush().unwrap();
                    }
                });
            }
        });
        let bytes = rt.block_on(move || {
            let clients: Vec<_> = (0..CLIENTS)
                .map(|i| {
                    let config = client_config.clone();
                    coio::spawn(move || {
                        let name = "localhost".try_into().unwrap();
                        let tls = rustls::ClientConnection::new(config, name).unwrap();
                        let mut s =
                            rustls::StreamOwned::new(tls, TcpStream::connect(addr).unwrap());
                        let mut total = 0;
                        for k in 0..10 {
                            let msg = message(i, k);
                            // The whole message before reading the echo:
                            // a 200 kB one is read by the server while
                            // this coroutine still writes.
                            s.write_all(&(msg.len() as u32).to_le_bytes()).unwrap();
                            s.write_all(&msg).unwrap();
                            s.flush().unwrap();
                            let mut len = [0; 4];
                            s.read_exact(&mut len).unwrap();
                            let mut back = vec![0; u32::from_le_bytes(len) as usize];
                            s.read_exact(&mut back).unwrap();
                            assert!(back == msg, "client {i}, message {k}: the echo differs");
                            total += back.len();
                        }
                        s.conn.send_close_notify();
                        s.flush().unwrap();
                        total
                    })
                })
                .collect();
            clients
                .into_iter()
                .map(|c| c.join().unwrap())
                .sum::<usize>()
        });
        let want: usize = (0..CLIENTS)
            .flat_map(|i| (0..10).map(move |k| message(i, k).len()))
            .sum();
        assert_eq!(bytes, want);
    });
}

/// A WebSocket echo server (tungstenite's `accept` over coio's
/// `TcpStream`, one coroutine per connection) and 100 WebSocket clients
/// (tungstenite's `client`), each sending 10 binary and text messages,
/// checking the echo, and closing.
#[test]
fn tungstenite_websockets_over_coio_sockets() {
    use tungstenite::Message;
    within_30s(|| {
        let rt = rt();
        let (listener, addr) = listen(&rt);
        rt.spawn(move || {
            for conn in listener.incoming() {
                let conn = conn.unwrap();
                coio::spawn(move || {
                    let mut ws = tungstenite::accept(conn).unwrap();
                    loop {
                        match ws.read() {
                            Ok(m @ (Message::Binary(_) | Message::Text(_))) => ws.send(m).unwrap(),
                            Ok(_) => {}
                            // The client's close, answered by tungstenite.
                            Err(tungstenite::Error::ConnectionClosed) => return,
                            Err(e) => panic!("server: {e}"),
                        }
                    }
                });
            }
        });
        let messages = rt.block_on(move || {
            let clients: Vec<_> = (0..CLIENTS)
                .map(|i| {
                    coio::spawn(move || {
                        let url = format!("ws://{addr}/echo");
                        let (mut ws, response) =
                            tungstenite::client(url, TcpStream::connect(addr).unwrap()).unwrap();
                        assert_eq!(response.status(), 101);
                        for k in 0..10 {
                            let msg = if k % 2 == 0 {
                                Message::binary(message(i, k))
                            } else {
                                Message::text(format!("client {i} says {k}").repeat(k + 1))
                            };
                            ws.send(msg.clone()).unwrap();
                            let back = ws.read().unwrap();
                            assert!(back == msg, "client {i}, message {k}: the echo differs");
                        }
                        ws.close(None).unwrap();
                        // Until the server's answer to the close.
                        loop {
                            match ws.read() {
                                Ok(_) => {}
                                Err(tungstenite::Error::ConnectionClosed) => break,
                                Err(e) => panic!("client {i}: {e}"),
                            }
                        }
                        10
                    })
                })
                .collect();
            clients
                .into_iter()
                .map(|c| c.join().unwrap())
                .sum::<usize>()
        });
        assert_eq!(messages, 10 * CLIENTS);
    });
}
