//! The demo servers of `examples/`, run in-process and driven by real
//! clients: curl for HTTP (its keep-alive reuse, status codes), and raw
//! sockets for pipelining, malformed requests and the echo server.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use coio::Runtime;

mod common;

#[path = "../examples/echo.rs"]
#[allow(dead_code)]
mod echo;

#[path = "../examples/http.rs"]
#[allow(dead_code)]
mod http;

/// A std client connection with a generous timeout, so that a broken
/// server fails the test instead of hanging it.
fn client(addr: SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn read_until_close(mut s: std::net::TcpStream) -> String {
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn http_with_curl() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let addr = common::start(&rt, http::accept_loop);
    // Three URLs on one curl command line: curl reuses the connection
    // (keep-alive), which `%{num_connects}` shows (1, then 0 and 0).
    let text = common::curl_three(addr);
    assert_eq!(
        text, "Hello, World!|200 1\nHello, World!|200 0\nNot Found|404 0\n",
        "curl's view of the server"
    );
    // HTTP/1.0 without keep-alive: answered, then closed by the server.
    let out = Command::new("curl")
        .args(["-s", "-i", "--http1.0", "--max-time", "20"])
        .arg(format!("http://{addr}/"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nHello, World!"), "{text}");
}

#[test]
fn http_pipelining_and_bad_requests() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let addr = common::start(&rt, http::accept_loop);
    // Three pipelined requests in one write, the last one split across two
    // writes: three answers, in order; the last closes the connection.
    let mut s = client(addr);
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /nope HTTP/1.1\r\nHost: a\r\n\r\n\
          POST / HTTP/1.1\r\nHost: a\r\nContent-Le",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(b"ngth: 5\r\nConnection: close\r\n\r\nhello")
        .unwrap();
    let text = read_until_close(s);
    let statuses: Vec<&str> = text.split("HTTP/1.1 ").skip(1).map(|r| &r[..3]).collect();
    assert_eq!(statuses, ["200", "404", "404"], "{text}");
    assert!(text.contains("\r\n\r\nHello, World!HTTP/1.1 404"), "{text}");

    // Garbage: 400, then closed.
    let mut s = client(addr);
    s.write_all(b"\x00\x01 not http\r\n\r\n").unwrap();
    let text = read_until_close(s);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");

    // A peer that vanishes mid-request does not disturb the server.
    let mut s = client(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    drop(s);
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .arg(format!("http://{addr}/"))
        .output()
        .expect("curl must be installed to run this test (apt-get install curl)");
    assert_eq!(out.stdout, b"Hello, World!");
}

/// Reads one answer with a `Content-Length` body from `s`.
fn read_answer(s: &mut std::net::TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .expect("Content-Length")
                .trim()
                .parse()
                .unwrap();
            if got.len() >= head_end + 4 + len {
                return text;
            }
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before a whole answer: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// HTTP/1.0 with `Connection: keep-alive`: the answer says keep-alive
/// (else an HTTP/1.0 client, `ab -k`, waits for a close that marks its
/// end), and the connection serves the next request.
#[test]
fn http_1_0_keep_alive_is_answered_as_such() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let addr = common::start(&rt, http::accept_loop);
    let mut s = client(addr);
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let text = read_answer(&mut s);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: keep-alive\r\n"), "{text}");
        assert!(text.ends_with("Hello, World!"), "{text}");
    }
    // Without it, HTTP/1.0 closes.
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let text = read_until_close(s);
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
}

/// Requests this server does not read: a head over 64 KiB (`431`, as the
/// docs say, not only once the buffer is twice that), and a chunked body
/// (`501`: its chunks must not be taken for the next request). Each
/// closes the connection.
#[test]
fn http_refuses_long_heads_and_chunked_bodies() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let addr = common::start(&rt, http::accept_loop);
    let mut s = client(addr);
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: ".to_vec();
    head.resize(head.len() + 70 * 1024, b'x');
    // The server may close before it has read it all: a write error then.
    let _ = s.write_all(&head);
    let text = read_until_close(s);
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{text}"
    );
    // The same head, complete: still over 64 KiB, still 431.
    let mut s = client(addr);
    head.extend_from_slice(b"\r\n\r\n");
    let _ = s.write_all(&head);
    let text = read_until_close(s);
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{text}"
    );

    let mut s = client(addr);
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n",
    )
    .unwrap();
    let text = read_until_close(s);
    assert!(
        text.starts_with("HTTP/1.1 501 Not Implemented\r\n"),
        "{text}"
    );
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
}

/// A shutdown that comes while connections are new (accepted, their
/// coroutines not started yet) ends at once: a new connection counts as
/// idle and is cancelled before it starts, and its closure, dropped
/// unrun, still takes it out of the registry. (It used to stay there, and
/// the shutdown waited for it for ever.)
#[test]
fn http_shutdown_with_connections_not_started_yet() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let listener = rt
        .block_on(|| coio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let clients: Vec<_> = (0..4).map(|_| client(addr)).collect();
    let n = clients.len();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let watched = std::thread::spawn(move || {
        rt.block_on(move || {
            let server = http::Server::default();
            for _ in 0..n {
                let (stream, _) = listener.accept().unwrap();
                // No switch from here to the shutdown: none of the
                // connections' coroutines starts before it.
                server.spawn_conn(stream);
            }
            let left = server.shut_down(Duration::from_secs(60), &coio::chan::never());
            done_tx.send(left).unwrap();
        });
        clients
    });
    let left = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the shutdown waits for connections that were cancelled before they started");
    assert_eq!(left, 0);
    for s in watched.join().unwrap() {
        assert_eq!(read_until_close(s), "");
    }
}

#[test]
fn echo_server_echoes() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let addr = common::start(&rt, echo::accept_loop);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = client(addr);
                let msg: Vec<u8> = (0..100_000u32).map(|k| (k * 7 + i) as u8).collect();
                let reader = {
                    let mut s = s.try_clone().unwrap();
                    let len = msg.len();
                    std::thread::spawn(move || {
                        let mut back = vec![0; len];
                        s.read_exact(&mut back).unwrap();
                        back
                    })
                };
                s.write_all(&msg).unwrap();
                assert_eq!(reader.join().unwrap(), msg);
                s.shutdown(std::net::Shutdown::Write).unwrap();
                assert_eq!(read_until_close(s), "");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// SIGTERM shuts the HTTP server down gracefully: new connections are
/// refused, an idle keep-alive connection is closed, a request in flight
/// (half sent when the signal comes) is answered with `Connection:
/// close`, and the process exits with status 0.
#[test]
fn http_shuts_down_gracefully_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    // The server: this test binary again, in a process of its own (the
    // signal is the process's), running the example's `run`.
    if common::child_role().is_some() {
        http::run("127.0.0.1:0".into()).unwrap();
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "http_shuts_down_gracefully_on_sigterm",
            "--nocapture",
        ])
        .env("COIO_TEST_CHILD", "server")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("http: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .parse()
        .unwrap();

    // An idle keep-alive connection (one request answered), and one with
    // a request half sent.
    let mut idle = client(addr);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));
    let mut busy = client(addr);
    busy.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));

    // SAFETY: kill(2) on our child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let mut rest = String::new();
    stderr.read_line(&mut rest).unwrap();
    assert!(rest.contains("shutting down"), "{rest}");

    // The idle connection is closed without an answer.
    assert_eq!(idle.read(&mut buf).unwrap(), 0);
    // The request in flight completes, and its answer closes.
    busy.write_all(b"\r\n").unwrap();
    let answer = read_until_close(busy);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("Connection: close"), "{answer}");
    assert!(answer.ends_with("Hello, World!"), "{answer}");

    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "still running");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
    // The listener is gone.
    assert!(std::net::TcpStream::connect(addr).is_err());
    let mut tail = String::new();
    stderr.read_to_string(&mut tail).unwrap();
    assert!(tail.contains("shut down (0 connection(s) cut"), "{tail}");
}
