//! An HTTP/1.1 server answering `GET /` with `Hello, World!`: one coroutine
//! per connection, blocking-style reads and writes, `httparse` for parsing.
//!
//! Run: `cargo run --release --example http [ADDR]` (default
//! `127.0.0.1:8080`), then `curl http://127.0.0.1:8080/`. `COIO_WORKERS`
//! sets the number of worker threads. The HTTP benchmark (`bash bench/run.sh
//! net`, with wrk) runs this very program.
//!
//! Connections are kept alive (HTTP/1.1's default; HTTP/1.0 with
//! `Connection: keep-alive`, which the answer repeats) and pipelining is
//! safe: every complete request in the buffer is answered, in order, and
//! the answers go out in one write. A malformed request gets `400` and the
//! connection is closed; so does a request head over 64 KiB (`431`), a body
//! over 64 KiB (`413`), and a body in chunks (`501`: this server reads
//! `Content-Length` bodies only).
//!
//! It sets no timeouts: a client that stays idle, or sends its request a
//! byte at a time, keeps its connection (and its coroutine) for as long as
//! it likes. A server facing the internet sets them
//! (`TcpStream::set_read_timeout`), as Go's `http.Server` asks its user to.
//!
//! For operators:
//! - `kill -QUIT <pid>` (or Ctrl-\\ in its terminal) writes a dump of every
//!   coroutine to stderr, what each waits for and where, and the server
//!   goes on serving (`RuntimeBuilder::dump_signal`).
//! - SIGINT (Ctrl-C) or SIGTERM shuts it down gracefully, as Go's
//!   `http.Server.Shutdown` does: it stops accepting, closes the idle
//!   connections, lets each request in flight finish (its answer says
//!   `Connection: close`), and exits with status 0 once every connection
//!   is closed, or after [`GRACE`] at most (the connections still open are
//!   cancelled then). A second signal during the grace ends it at once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coio::net::{TcpListener, TcpStream};

/// Largest request head (and body) accepted.
const MAX_REQUEST: usize = 64 * 1024;

/// The answer to a request head over [`MAX_REQUEST`].
const TOO_LARGE: &str = "431 Request Header Fields Too Large";

/// How long a graceful shutdown waits for requests in flight.
pub const GRACE: Duration = Duration::from_secs(10);

#[allow(dead_code)] // tests/examples.rs includes this file as a module
fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    run(addr)
}

/// The server on `addr`, until a graceful shutdown (SIGINT or SIGTERM).
pub fn run(addr: String) -> io::Result<()> {
    let rt = coio::Runtime::builder()
        .dump_signal(Some(libc::SIGQUIT))
        .build()?;
    rt.block_on(move || {
        let stop = coio::signal::notify(&[libc::SIGINT, libc::SIGTERM])?;
        let listener = TcpListener::bind(addr.as_str())?;
        eprintln!("http: listening on {}", listener.local_addr()?);
        let server = Server::default();
        let acceptor = {
            let server = server.clone();
            coio::spawn(move || server.accept_loop(&listener))
        };
        let sig = stop.recv().expect("the signal channel never closes");
        eprintln!("http: signal {sig}: shutting down");
        // Stop accepting: the accept loop unwinds out of its wait, and the
        // listener closes with it.
        acceptor.cancel();
        let _ = acceptor.join();
        let left = server.shut_down(GRACE, &stop);
        eprintln!("http: shut down ({left} connection(s) cut after the grace)");
        Ok(())
    })
}

/// The server's shared state: the live connections, and whether it is
/// shutting down.
#[derive(Clone, Default)]
pub struct Server {
    inner: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Set once a shutdown starts: connections finish what they are
    /// answering and close.
    draining: AtomicBool,
    next_id: AtomicU64,
    /// The live connections, by id.
    conns: coio::sync::Mutex<HashMap<u64, Conn>>,
}

/// A live connection, as the shutdown sees it.
struct Conn {
    /// Between requests (no byte of the next one read yet): a shutdown
    /// closes it at once.
    idle: Arc<AtomicBool>,
    /// Its coroutine, cancelled to close it.
    coroutine: coio::JoinHandle<()>,
}

/// Accepts connections forever, each served by its own coroutine.
#[allow(dead_code)] // used by tests/examples.rs
pub fn accept_loop(listener: &TcpListener) -> io::Result<()> {
    Server::default().accept_loop(listener)
}

impl Server {
    /// Accepts connections until cancelled, each served by its own
    /// coroutine.
    pub fn accept_loop(&self, listener: &TcpListener) -> io::Result<()> {
        loop {
            match listener.accept() {
                Ok((stream, _)) => self.spawn_conn(stream),
                // Out of descriptors, say: the connection waits in the
                // backlog; try again shortly rather than spin.
                Err(e) => {
                    eprintln!("http: accept: {e}");
                    coio::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// Serves `stream` on a coroutine of its own, registered for the
    /// shutdown.
    pub fn spawn_conn(&self, stream: TcpStream) {
        let id = self.inner.next_id.fetch_add(1, Relaxed);
        let idle = Arc::new(AtomicBool::new(true));
        // The registry is locked across the spawn, so the connection's
        // own removal (when it ends) comes after its insertion.
        let mut conns = self.inner.conns.lock();
        // Removed however the connection ends: the guard is the closure's
        // from the start, so that it goes even if the coroutine is
        // cancelled before it starts (a shutdown cancels a new connection
        // at once, as an idle one), when the closure is dropped unrun.
        let gone = Gone(self.clone(), id);
        let coroutine = {
            let idle = idle.clone();
            coio::spawn(move || {
                let gone = gone;
                let _ = serve(stream, &gone.0.inner.draining, &idle);
            })
        };
        conns.insert(id, Conn { idle, coroutine });
    }

    /// The graceful shutdown: no new requests, idle connections closed,
    /// requests in flight answered; after `grace` (or a second signal on
    /// `stop`), whatever is still open is cancelled. Returns how many
    /// connections were cut that way.
    pub fn shut_down(&self, grace: Duration, stop: &coio::chan::Receiver<i32>) -> usize {
        self.inner.draining.store(true, SeqCst);
        // After `draining` is set, a connection that goes idle closes by
        // itself; those idle now are closed here.
        for c in self.inner.conns.lock().values() {
            if c.idle.load(SeqCst) {
                c.coroutine.cancel();
            }
        }
        let deadline = Instant::now() + grace;
        while !self.inner.conns.lock().is_empty() && Instant::now() < deadline {
            if stop.recv_timeout(Duration::from_millis(10)).is_ok() {
                eprintln!("http: second signal: not waiting any more");
                break;
            }
        }
        let conns = self.inner.conns.lock();
        let left = conns.len();
        for c in conns.values() {
            c.coroutine.cancel();
        }
        drop(conns);
        while !self.inner.conns.lock().is_empty() {
            coio::sleep(Duration::from_millis(1));
        }
        left
    }
}

/// Removes a connection from the registry when dropped.
struct Gone(Server, u64);

impl Drop for Gone {
    fn drop(&mut self) {
        self.0.inner.conns.lock().remove(&self.1);
    }
}

/// Serves one connection until the peer closes, asks to close, or errs,
/// or (once `draining` is set) until it has answered the requests it has.
/// `idle` tells the shutdown whether it is between requests.
fn serve(mut stream: TcpStream, draining: &AtomicBool, idle: &AtomicBool) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 4096];
    // Unparsed bytes are buf[start..end].
    let (mut start, mut end) = (0, 0);
    let mut out = Vec::with_capacity(4096);
    loop {
        let mut close = false;
        // Answer every complete request in the buffer (pipelining).
        while start < end {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[start..end]) {
                Ok(httparse::Status::Complete(head)) => {
                    if head > MAX_REQUEST {
                        // As for a partial head of that size, below.
                        respond(&mut out, TOO_LARGE, b"", Reuse::Close);
                        close = true;
                        break;
                    }
                    if has_header(req.headers, "transfer-encoding") {
                        // A chunked body: not read here, and its chunks
                        // must not pass for the next request.
                        respond(&mut out, "501 Not Implemented", b"", Reuse::Close);
                        close = true;
                        break;
                    }
                    let body = match content_length(req.headers) {
                        Some(n) if n <= MAX_REQUEST => n,
                        Some(_) => {
                            respond(&mut out, "413 Payload Too Large", b"", Reuse::Close);
                            close = true;
                            break;
                        }
                        None => {
                            respond(&mut out, "400 Bad Request", b"", Reuse::Close);
                            close = true;
                            break;
                        }
                    };
                    if end - start < head + body {
                        break; // the body is still coming
                    }
                    let mut reuse = reuse_of(&req);
                    let (status, text): (&str, &[u8]) = match (req.method, req.path) {
                        (Some("GET" | "HEAD"), Some("/")) => ("200 OK", b"Hello, World!"),
                        _ => ("404 Not Found", b"Not Found"),
                    };
                    let text = if req.method == Some("HEAD") {
                        &b""[..]
                    } else {
                        text
                    };
                    start += head + body;
                    // Shutting down: the last answer of what was received
                    // closes the connection.
                    if draining.load(SeqCst) && start == end {
                        reuse = Reuse::Close;
                    }
                    close = reuse == Reuse::Close;
                    respond(&mut out, status, text, reuse);
                    if close {
                        break;
                    }
                }
                Ok(httparse::Status::Partial) => {
                    if end - start > MAX_REQUEST {
                        respond(&mut out, TOO_LARGE, b"", Reuse::Close);
                        close = true;
                    }
                    break;
                }
                Err(_) => {
                    respond(&mut out, "400 Bad Request", b"", Reuse::Close);
                    close = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
        if close {
            return Ok(());
        }
        // Keep the unparsed tail at the front of the buffer.
        if start == end {
            (start, end) = (0, 0);
        } else if start > 0 {
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        if end == buf.len() {
            if buf.len() >= 2 * MAX_REQUEST {
                respond(&mut out, TOO_LARGE, b"", Reuse::Close);
                return stream.write_all(&out);
            }
            buf.resize(buf.len() * 2, 0);
        }
        // Between requests: idle (a shutdown closes the connection now, or
        // has already begun).
        if end == 0 {
            idle.store(true, SeqCst);
            if draining.load(SeqCst) {
                return Ok(());
            }
        }
        let n = stream.read(&mut buf[end..]);
        idle.store(false, SeqCst);
        match n? {
            0 => return Ok(()),
            n => end += n,
        }
    }
}

/// The request's `Content-Length` (0 if absent; None if malformed).
fn content_length(headers: &[httparse::Header<'_>]) -> Option<usize> {
    match headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        None => Some(0),
        Some(h) => std::str::from_utf8(h.value).ok()?.trim().parse().ok(),
    }
}

/// Whether `headers` have a header called `name` (in lower case).
fn has_header(headers: &[httparse::Header<'_>], name: &str) -> bool {
    headers.iter().any(|h| h.name.eq_ignore_ascii_case(name))
}

/// What becomes of the connection after an answer, and what the answer's
/// `Connection` header says of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reuse {
    /// HTTP/1.1's default: no header.
    KeepAlive,
    /// HTTP/1.0 with `Connection: keep-alive`: the answer says it too, or
    /// the client waits for the close that marks the answer's end.
    KeepAlive10,
    /// `Connection: close`.
    Close,
}

/// Whether the connection is kept after this request, and how to say so.
fn reuse_of(req: &httparse::Request<'_, '_>) -> Reuse {
    let connection = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("connection"))
        .map(|h| h.value);
    match req.version {
        Some(1) if connection.is_some_and(|v| v.eq_ignore_ascii_case(b"close")) => Reuse::Close,
        Some(1) => Reuse::KeepAlive,
        _ if connection.is_some_and(|v| v.eq_ignore_ascii_case(b"keep-alive")) => {
            Reuse::KeepAlive10
        }
        _ => Reuse::Close,
    }
}

/// Appends a response.
fn respond(out: &mut Vec<u8>, status: &str, body: &[u8], reuse: Reuse) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\nServer: coio\r\nContent-Type: text/plain\r\nDate: ");
    with_date(|d| out.extend_from_slice(d));
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    match reuse {
        Reuse::KeepAlive => {}
        Reuse::KeepAlive10 => out.extend_from_slice(b"\r\nConnection: keep-alive"),
        Reuse::Close => out.extend_from_slice(b"\r\nConnection: close"),
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

thread_local! {
    /// The `Date` header's value, made once a second per thread. (Read and
    /// written without switching coroutines in between, so a coroutine
    /// never carries a reference to it across threads.)
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Runs `f` with the current date in IMF-fixdate form.
fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != now {
            *d = (now, imf_fixdate(now));
        }
        f(&d.1);
    });
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for `secs` since the epoch.
fn imf_fixdate(secs: u64) -> [u8; 29] {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86400;
    let rem = secs % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let s = format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    let mut out = [b' '; 29];
    out.copy_from_slice(&s.as_bytes()[..29]);
    out
}
