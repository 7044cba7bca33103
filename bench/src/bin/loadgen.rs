//! The echo load generator of the network comparison: the same binary,
//! unchanged, drives every echo server (`bench/run.sh net` runs it).
//!
//! ```text
//! loadgen --addr 127.0.0.1:PORT --conns C [--secs 10] [--size 64]
//!         [--warmup 1] [--pid SERVER_PID]
//! ```
//!
//! Each of C connections sends a message of `size` bytes and waits for all
//! of its echo before it sends the next, a closed loop with one message in
//! flight per connection. One request is one such round trip.
//!
//! How, to be as cheap per request as possible (on a 2-core machine the
//! load generator is as likely to be the limit as the server):
//! single-threaded, directly on mio (epoll, edge-triggered) with
//! non-blocking sockets and TCP_NODELAY; one `write` and, when the echo
//! comes back whole, one `read` per round trip; one clock reading per round
//! trip (the time the echo completed is also the time the next message is
//! sent); no allocation after the connections are set up; latencies go into
//! a fixed log-linear histogram (32 buckets per power of two, so a quoted
//! percentile is the upper bound of a bucket at most about 3% wide; the
//! maximum is exact).
//!
//! Phases:
//! 1. connect: all C connections, one after another (blocking connect with
//!    a 10 s timeout), before anything is sent;
//! 2. ramp-up: every connection sends its first message; this phase lasts
//!    until every connection has had an echo back (so every connection is
//!    really served, not only queued in the server's backlog), at most 10 s;
//! 3. warm-up: `warmup` seconds of load, not measured;
//! 4. the timed window: `secs` seconds. A round trip counts, and its latency
//!    is recorded, when its echo completes inside the window.
//!
//! Every echo is checked byte for byte: each message carries the
//! connection's number and its round counter, so a byte from another
//! connection, a stale message or a reordering shows. Any connection error,
//! early close or wrong byte ends the run with a message on stderr and exit
//! status 1 (bad arguments: status 2).
//!
//! The result is one line of JSON on stdout:
//! `{"conns":C,"size":64,"secs":10.001,"requests":N,"rps":..,"p50_us":..,
//! "p99_us":..,"max_us":..,"min_conn_requests":..,"loadgen_cpu_us_per_req":..,
//! "loadgen_cpu_util":..[,"server_cpu_us_per_req":..,"server_cpu_util":..,
//! "server_ctx_switches_per_s":..]}`.
//! `min_conn_requests` is the fewest round trips any one connection made in
//! the window (a starved connection shows there). The CPU figures cover
//! exactly the timed window: the load generator's own user + system time
//! (getrusage), and with `--pid` the server's (utime + stime of all its
//! threads, from /proc/PID/stat, in clock ticks, usually 10 ms), each per
//! request and as a fraction of one CPU (`*_util`), and the server's
//! context switches per second (voluntary and involuntary, summed over the
//! threads alive at both ends of the window).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::process::exit;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// How long connecting one connection, and the whole ramp-up, may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

struct Opts {
    addr: SocketAddr,
    conns: usize,
    secs: f64,
    size: usize,
    warmup: f64,
    pid: Option<u32>,
}

fn usage(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    eprintln!(
        "usage: loadgen --addr HOST:PORT --conns C [--secs 10] [--size 64] [--warmup 1] [--pid SERVER_PID]"
    );
    exit(2)
}

/// The value of a flag, or the usage and exit status 2.
fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| usage(&format!("bad value for {flag}: {value}")))
}

fn opts() -> Opts {
    let mut addr = None;
    let (mut conns, mut secs, mut size, mut warmup, mut pid) = (None, 10.0_f64, 64, 1.0_f64, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            usage(&format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--addr" => addr = Some(parse(&flag, &value)),
            "--conns" => conns = Some(parse::<usize>(&flag, &value)),
            "--secs" => secs = parse(&flag, &value),
            "--size" => size = parse(&flag, &value),
            "--warmup" => warmup = parse(&flag, &value),
            "--pid" => pid = Some(parse::<u32>(&flag, &value)),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    let Some(addr) = addr else {
        usage("--addr is required")
    };
    let conns = match conns {
        Some(c) if c > 0 => c,
        _ => usage("--conns must be given and above 0"),
    };
    if size == 0 || !(secs.is_finite() && secs > 0.0) || !(warmup.is_finite() && warmup >= 0.0) {
        usage("--size and --secs must be above 0, --warmup at least 0");
    }
    Opts {
        addr,
        conns,
        secs,
        size,
        warmup,
        pid,
    }
}

/// Ends the run: a failed connection, a wrong byte, an I/O error.
fn fail(msg: String) -> ! {
    eprintln!("loadgen: {msg}");
    exit(1)
}

/// Latencies in nanoseconds, log-linear: values below 2 * SUB exactly, then
/// SUB buckets per power of two.
struct Histogram {
    counts: Box<[u64; Histogram::BUCKETS]>,
    total: u64,
    max: u64,
}

impl Histogram {
    const SUB_BITS: u32 = 5;
    const SUB: u64 = 1 << Self::SUB_BITS;
    /// Enough for every u64: the highest index is (63 - SUB_BITS + 1) * SUB
    /// + SUB - 1.
    const BUCKETS: usize = 64 * Self::SUB as usize;

    fn new() -> Self {
        Histogram {
            counts: Box::new([0; Self::BUCKETS]),
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 2 * Self::SUB {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - Self::SUB_BITS;
        let top = v >> shift; // in SUB..2 * SUB
        ((shift as u64 + 1) * Self::SUB + top - Self::SUB) as usize
    }

    /// The highest value that falls into bucket `i`.
    fn upper(i: usize) -> u64 {
        let i = i as u64;
        if i < 2 * Self::SUB {
            return i;
        }
        let shift = i / Self::SUB - 1;
        let top = i % Self::SUB + Self::SUB;
        ((top + 1) << shift).wrapping_sub(1)
    }

    #[inline]
    fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// The value below or at which a fraction `q` of the samples lie (the
    /// upper bound of that bucket, but never above the maximum).
    fn quantile(&self, q: f64) -> u64 {
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::upper(i).min(self.max);
            }
        }
        self.max
    }
}

/// One connection: the message in flight and how much of it went out and
/// came back.
struct Conn {
    stream: TcpStream,
    out: Box<[u8]>,
    back: Box<[u8]>,
    written: usize,
    read: usize,
    sent_at: Instant,
    round: u64,
    /// Round trips completed inside the timed window.
    in_window: u64,
}

impl Conn {
    /// Stamps the next round's counter into the message (its first bytes;
    /// the rest is the connection's number, set once) and writes as much of
    /// it as the socket takes now; the rest goes when it is writable again.
    fn start_round(&mut self, id: usize, now: Instant) {
        self.round += 1;
        let counter = self.round.to_le_bytes();
        let n = counter.len().min(self.out.len());
        self.out[..n].copy_from_slice(&counter[..n]);
        self.written = 0;
        self.read = 0;
        self.sent_at = now;
        self.flush(id);
    }

    fn flush(&mut self, id: usize) {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => fail(format!("connection {id}: write returned 0")),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => fail(format!("connection {id}: write: {e}")),
            }
        }
    }

    /// Reads what has come back. True when the whole echo is in (then it
    /// has been checked). Edge-triggered epoll wants the socket read until
    /// it would block; a read that fills the message exactly stops short of
    /// that, which is safe here: the server has nothing more to send until
    /// the next message goes out, and its echo is new data, a new edge.
    fn receive(&mut self, id: usize) -> bool {
        while self.read < self.back.len() {
            match self.stream.read(&mut self.back[self.read..]) {
                Ok(0) => fail(format!(
                    "connection {id}: closed by the server after {} of {} bytes of round {}",
                    self.read,
                    self.back.len(),
                    self.round
                )),
                Ok(n) => {
                    if self.written < self.read + n {
                        fail(format!(
                            "connection {id}: got {} bytes back but sent only {}",
                            self.read + n,
                            self.written
                        ));
                    }
                    self.read += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => fail(format!("connection {id}: read: {e}")),
            }
        }
        if self.back != self.out {
            let at = self
                .back
                .iter()
                .zip(self.out.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            fail(format!(
                "connection {id}: wrong echo in round {}: byte {at} is {:#04x}, sent {:#04x}",
                self.round, self.back[at], self.out[at]
            ));
        }
        true
    }
}

/// User + system CPU time of this process.
fn own_cpu() -> Duration {
    // SAFETY: getrusage writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// utime + stime of process `pid` (all its threads), from /proc/PID/stat.
fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| fail(format!("cannot read /proc/{pid}/stat: {e}")));
    // The fields after the command name, which is in parentheses and may
    // hold spaces: state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos((ticks(14) + ticks(15)) * 1_000_000_000 / hz)
}

/// Context switches (voluntary and not) of process `pid`, summed over its
/// threads alive now, from /proc/PID/task/*/status.
fn proc_ctx_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut total = 0;
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue; // a thread that ended meanwhile
        };
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    RampUp,
    WarmUp,
    Window,
}

fn main() {
    let o = opts();

    // 1. Connect all.
    let mut conns: Vec<Conn> = Vec::with_capacity(o.conns);
    for id in 0..o.conns {
        let s = StdStream::connect_timeout(&o.addr, SETUP_TIMEOUT).unwrap_or_else(|e| {
            fail(format!(
                "connection {id} of {} to {}: connect: {e}",
                o.conns, o.addr
            ))
        });
        s.set_nodelay(true)
            .and_then(|()| s.set_nonblocking(true))
            .unwrap_or_else(|e| fail(format!("connection {id}: setting it up: {e}")));
        // The rest of the message identifies the connection.
        let out: Box<[u8]> = (0..o.size)
            .map(|i| (id.wrapping_mul(31).wrapping_add(i) % 251) as u8)
            .collect();
        conns.push(Conn {
            stream: TcpStream::from_std(s),
            back: vec![0; o.size].into_boxed_slice(),
            out,
            written: 0,
            read: 0,
            sent_at: Instant::now(),
            round: 0,
            in_window: 0,
        });
    }
    let mut poll = Poll::new().unwrap_or_else(|e| fail(format!("epoll: {e}")));
    for (id, c) in conns.iter_mut().enumerate() {
        poll.registry()
            .register(
                &mut c.stream,
                Token(id),
                Interest::READABLE | Interest::WRITABLE,
            )
            .unwrap_or_else(|e| fail(format!("connection {id}: register: {e}")));
    }

    // 2. Ramp-up: the first message on every connection.
    let mut phase = Phase::RampUp;
    let mut phase_end = Instant::now() + SETUP_TIMEOUT;
    let mut not_yet_served = o.conns;
    let now = Instant::now();
    for (id, c) in conns.iter_mut().enumerate() {
        c.start_round(id, now);
    }

    let mut hist = Histogram::new();
    let mut events = Events::with_capacity(1024);
    let mut window_start = now;
    let (mut own_start, mut server_start, mut switches_start) = (Duration::ZERO, Duration::ZERO, 0);
    let (window_end, own_used, server_used, switches) = loop {
        let now = Instant::now();
        if now >= phase_end {
            match phase {
                Phase::RampUp => fail(format!(
                    "{not_yet_served} of {} connections had no echo within {} s",
                    o.conns,
                    SETUP_TIMEOUT.as_secs()
                )),
                Phase::WarmUp => {
                    phase = Phase::Window;
                    own_start = own_cpu();
                    server_start = o.pid.map_or(Duration::ZERO, proc_cpu);
                    switches_start = o.pid.map_or(0, proc_ctx_switches);
                    window_start = Instant::now();
                    phase_end = window_start + Duration::from_secs_f64(o.secs);
                }
                Phase::Window => {
                    break (
                        now,
                        own_cpu() - own_start,
                        o.pid.map_or(Duration::ZERO, proc_cpu) - server_start,
                        o.pid
                            .map_or(0, proc_ctx_switches)
                            .saturating_sub(switches_start),
                    );
                }
            }
            continue;
        }
        if let Err(e) = poll.poll(&mut events, Some(phase_end - now))
            && e.kind() != io::ErrorKind::Interrupted
        {
            fail(format!("epoll_wait: {e}"));
        }
        for ev in events.iter() {
            let id = ev.token().0;
            let c = &mut conns[id];
            if ev.is_writable() && c.written < c.out.len() {
                c.flush(id);
            }
            if ev.is_error() || ev.is_read_closed() || ev.is_readable() {
                // A closed or failed socket shows as a read of 0 or an
                // error here.
                if !c.receive(id) {
                    continue;
                }
                let done = Instant::now();
                match phase {
                    Phase::Window if done < phase_end => {
                        hist.record((done - c.sent_at).as_nanos() as u64);
                        c.in_window += 1;
                    }
                    Phase::RampUp if c.round == 1 => {
                        not_yet_served -= 1;
                        if not_yet_served == 0 {
                            phase = Phase::WarmUp;
                            phase_end = done + Duration::from_secs_f64(o.warmup);
                        }
                    }
                    _ => {}
                }
                c.start_round(id, done);
            }
        }
    };

    let secs = (window_end - window_start).as_secs_f64();
    let n = hist.total;
    if n == 0 {
        fail(format!("no round trip completed in the {secs:.3} s window"));
    }
    let per_req = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let util = |d: Duration| d.as_secs_f64() / secs;
    let us = |ns: u64| ns as f64 / 1000.0;
    let min_conn = conns.iter().map(|c| c.in_window).min().unwrap_or(0);
    let mut line = format!(
        "{{\"conns\":{},\"size\":{},\"secs\":{secs:.3},\"requests\":{n},\"rps\":{:.1},\
         \"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1},\"min_conn_requests\":{min_conn},\
         \"loadgen_cpu_us_per_req\":{:.3},\"loadgen_cpu_util\":{:.3}",
        o.conns,
        o.size,
        n as f64 / secs,
        us(hist.quantile(0.50)),
        us(hist.quantile(0.99)),
        us(hist.max),
        per_req(own_used),
        util(own_used),
    );
    if o.pid.is_some() {
        line += &format!(
            ",\"server_cpu_us_per_req\":{:.3},\"server_cpu_util\":{:.3},\
             \"server_ctx_switches_per_s\":{:.0}",
            per_req(server_used),
            util(server_used),
            switches as f64 / secs
        );
    }
    println!("{line}}}");
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn buckets_are_contiguous_and_bound_their_values() {
        let mut prev = 0;
        for v in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let i = Histogram::index(v);
            assert!(i >= prev && i <= prev + 1 || v > 100_000, "v={v}");
            assert!(v <= Histogram::upper(i), "v={v}");
            assert!(i == 0 || v > Histogram::upper(i - 1), "v={v}");
            prev = i;
        }
    }
}
