//! hyper 1.x on coio (feature `hyper`): `examples/hyper.rs` answering curl
//! and hyper's own client; hyper's client on coio's sockets talking to
//! coio's blocking-style `examples/http.rs`; hyper's timer on coio's
//! timers (the header-read timeout closes a silent connection).

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coio::Runtime;
use coio::net::{TcpListener, TcpStream};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

mod common;

#[path = "../examples/hyper.rs"]
#[allow(dead_code)]
mod hyper_example;

#[path = "../examples/http.rs"]
#[allow(dead_code)]
mod http;

#[test]
fn hyper_example_with_curl() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let addr = common::start(&rt, hyper_example::accept_loop);
    // Three requests on one connection (keep-alive: 1, 0, 0 new connects).
    let out = common::curl_three(addr);
    assert_eq!(
        out,
        "Hello, World!|200 1\nHello, World!|200 0\nNot Found|404 0\n"
    );
}

/// hyper's HTTP/1 client over a coio `TcpStream`, in a coroutine: `n`
/// requests on one connection to `addr`; the bodies.
fn hyper_get(addr: SocketAddr, n: usize) -> Vec<String> {
    let stream = TcpStream::connect(addr).unwrap();
    coio::future::block_on(async move {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
        // The connection's task, in a coroutine of its own.
        coio::spawn(move || coio::future::block_on(conn));
        let mut bodies = Vec::new();
        for _ in 0..n {
            let req = hyper::Request::get("/")
                .header("host", "localhost")
                .body(Empty::<Bytes>::new())
                .unwrap();
            // The connection takes the next request once it is idle again.
            sender.ready().await.unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            bodies.push(String::from_utf8(body.to_vec()).unwrap());
        }
        bodies
    })
}

#[test]
fn hyper_client_against_both_servers() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let hyper_addr = common::start(&rt, hyper_example::accept_loop);
    let http_addr = common::start(&rt, http::accept_loop);
    let all = rt.block_on(move || {
        // Many clients at once, each with a few requests on its connection.
        let hs: Vec<_> = (0..50)
            .map(|i| {
                let addr = if i % 2 == 0 { hyper_addr } else { http_addr };
                coio::spawn(move || hyper_get(addr, 5))
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(all.len(), 250);
    assert!(all.iter().all(|b| b == "Hello, World!"), "{all:?}");
}

/// hyper's header-read timeout, on coio's timer: a client that sends half
/// a request head and then nothing is disconnected after it (30 s by
/// default; set to 200 ms here).
#[test]
fn header_read_timeout_on_coio_timers() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(coio::compat::hyper::Timer)
            .header_read_timeout(Duration::from_millis(200))
            .serve_connection(
                stream,
                hyper::service::service_fn(|_| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(Bytes::from_static(b"x")),
                    ))
                }),
            );
        let _ = coio::future::block_on(conn);
    });
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    std::io::Write::write_all(&mut c, b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let t = Instant::now();
    let mut rest = Vec::new();
    // The server closes the connection (after a 408, or without one).
    let _ = c.read_to_end(&mut rest);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(10),
        "closed after {waited:?}"
    );
}
