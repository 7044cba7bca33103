#!/usr/bin/env bash
# Runs coio's comparison benchmarks side by side and prints Markdown tables
# of medians (the numbers in BENCHMARKS.md come from this script).
#
#   bash bench/run.sh            # everything
#   bash bench/run.sh switch     # one part: switch | stack_use | idle | runtime | chan | balance | net
#
# Needs: cargo (stable), python3 (to read criterion's estimates.json and to
# run the runtime and chan parts). The runtime part (about 3 minutes on a
# 2-core machine, building excluded) compares coio's scheduler with tokio,
# may and Go: each case in its own process (bench/src/bin/rt_*.rs,
# bench/go/rt), with a timeout, a failed one shown as "fails" with its
# reason. RT_TIMEOUT sets the timeout of one process in seconds (default
# 120), RT_PROCS how many processes run each cell (default 3; the table
# gives the median). The chan part (about 3 minutes) compares channels and
# a mutex the same way, coio's beside tokio's, may's, Go's and
# crossbeam-channel between OS threads (bench/src/bin/ch_*.rs, bench/go/ch);
# a runtime without a tool for a case shows "n/a" with the reason.
# CH_TIMEOUT and CH_PROCS are its knobs. Both parts include Go when `go` is
# installed (`apt-get install golang-go`). The net part (about 20 minutes
# with the defaults and coio's servers in) compares echo and HTTP servers:
# coio's (bench/src/bin/echo_coio.rs, http_coio.rs; left out with a note
# while they do not exist), tokio's and hyper's, may's and may_minihttp's,
# Go's (bench/go/echo, bench/go/http) and, for echo, a thread per
# connection. Echo runs under one load generator for all
# (bench/src/bin/loadgen.rs) with 50 and 500 connections, HTTP under
# `wrk -t1 -c64` (`apt-get install wrk`; without it the HTTP tables are
# skipped), each in two configurations: server pinned to CPU 0 with one
# worker and load on CPU 1, and both unpinned with two workers. It reports
# req/s, p99 latency and CPU µs per request of the server and of the load
# generator; NET_SECS sets the timed window (default 10 s), NET_PROCS the
# runs per cell (default 3; the table gives the median by req/s), and every
# run is appended to $target_dir/release/net-results.jsonl. Builds go to
# $CARGO_TARGET_DIR if set.
set -euo pipefail
cd "$(dirname "$0")/.."
parts=("${@:-switch stack_use idle runtime chan balance net}")
parts=(${parts[*]})
target_dir="${CARGO_TARGET_DIR:-target}"

medians() {
    # $1: criterion group name. Prints one table row per benchmark.
    python3 - "$1" <<'PY'
import json, os, sys
group = sys.argv[1]
root = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion", group)
rows = []
for name in sorted(os.listdir(root)):
    path = os.path.join(root, name, "new", "estimates.json")
    if not os.path.exists(path):
        continue
    med = json.load(open(path))["median"]
    ci = med["confidence_interval"]
    rows.append((name, med["point_estimate"], ci["lower_bound"], ci["upper_bound"]))
for name, m, lo, hi in rows:
    unit, div = ("µs", 1000.0) if m > 10000 else ("ns", 1.0)
    print(f"| {group} | {name} | {m/div:.2f} {unit} | {lo/div:.2f} – {hi/div:.2f} |")
PY
}

compare() {
    # Runs comparison binaries, each case in its own process, and prints the
    # Markdown table of medians (the runtime and chan parts). Options:
    #   --timeout S      seconds one process may take
    #   --procs N        processes per cell (the table gives their median)
    #   --jsonl FILE     where every result line goes
    #   --cases "A B"    the cases (rows, each with workers 1 and 2)
    #   --what TEXT      what one op is, after "... median of 5 runs"
    #   --label N=TEXT   column title of runtime N (default: N)
    #   --only N=PREFIX  run runtime N only for the cases starting with PREFIX
    #   --pin1 N         run runtime N under `taskset -c 0` for workers=1
    #   --note TEXT      a line under the table
    # and then the runtimes, NAME=BINARY[:VARIANT] (VARIANT: a third word).
    # A binary that exits with status 3 (coio_bench::ch::EXIT_UNSUPPORTED)
    # has no tool for the case: "n/a", with its reason; any other failure is
    # "fails", with its reason.
    RUST_BACKTRACE=0 python3 - "$@" <<'PY'
import argparse, json, statistics, subprocess, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--timeout", type=float, required=True)
ap.add_argument("--procs", type=int, required=True)
ap.add_argument("--jsonl", required=True)
ap.add_argument("--cases", required=True)
ap.add_argument("--what", required=True)
ap.add_argument("--label", action="append", default=[])
ap.add_argument("--only", action="append", default=[])
ap.add_argument("--pin1", action="append", default=[])
ap.add_argument("--note", action="append", default=[])
ap.add_argument("runtimes", nargs="+")
a = ap.parse_args()
timeout, procs, jsonl = a.timeout, a.procs, a.jsonl
cases = a.cases.split()
labels = dict(l.split("=", 1) for l in a.label)
only = dict(o.split("=", 1) for o in a.only)
EXIT_UNSUPPORTED = 3
runtimes = []  # (name, binary, variant)
for spec in a.runtimes:
    name, path = spec.split("=", 1)
    path, _, variant = path.partition(":")
    runtimes.append((name, path, variant))

def run(name, path, variant, case, workers):
    """One child process: (JSON result, None) or (None, (cell word, why))."""
    argv = [path, case, str(workers)] + ([variant] if variant else [])
    if name in a.pin1 and workers == 1:
        argv = ["taskset", "-c", "0"] + argv
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, ("fails", f"timed out after {timeout:.0f} s")
    for line in p.stdout.splitlines():
        if p.returncode == 0 and line.startswith("{"):
            return json.loads(line), None
    lines = [l.strip() for l in p.stderr.splitlines()
             if l.strip() and not l.startswith("note: ")]
    if p.returncode == EXIT_UNSUPPORTED:
        return None, ("n/a", lines[-1] if lines else "(no stderr)")
    status = (f"killed by signal {-p.returncode}" if p.returncode < 0
              else f"exit status {p.returncode}")
    # The first panic's message (the line after "... panicked at ..."), else
    # the last line of stderr.
    why = next((lines[i + 1] for i, l in enumerate(lines[:-1]) if " panicked at " in l),
               lines[-1] if lines else "(no stderr)")
    if len(why) > 160:
        why = why[:157] + "..."
    return None, ("fails", f"{status}: {why}")

cells = [(case, workers, rt) for case in cases for workers in (1, 2)
         for rt in runtimes if case.startswith(only.get(rt[0], ""))]
ok, failed = {}, {}
t0 = time.time()
with open(jsonl, "w") as out:
    # Round after round over all cells, so that a disturbance of the machine
    # spreads over cells instead of spoiling one.
    for round_ in range(procs):
        for case, workers, (name, path, variant) in cells:
            key = (case, workers, name)
            if key in failed:
                continue
            t = time.time()
            res, err = run(name, path, variant, case, workers)
            print(f"  [{round_ + 1}/{procs}] {name:10} {case:14} workers={workers}: "
                  f"{'ok' if res else err[0]} ({time.time() - t:.1f} s)",
                  file=sys.stderr, flush=True)
            if res:
                ok.setdefault(key, []).append(res)
                out.write(json.dumps(res) + "\n")
            else:
                failed[key] = err

reasons = []
def cell(key):
    if key in failed:
        word, why = failed[key]
        if why not in reasons:
            reasons.append(why)
        return f"{word} [{reasons.index(why) + 1}]"
    if key not in ok:
        return "–"
    runs = ok[key]
    ns = statistics.median(r["ns_per_op"] for r in runs)
    if "bytes_per_coroutine" in runs[0]:
        b = statistics.median(r["bytes_per_coroutine"] for r in runs)
        return f"{b:.0f} B, {ns:.0f} ns"
    return f"{ns:.1f}"

names = [n for n, _, _ in runtimes]
print(f"ns per op, the median over {procs} processes of each one's median of 5 runs "
      + a.what)
print()
print("| case | workers | " + " | ".join(labels.get(n, n) for n in names) + " |")
print("|---|---|" + "---|" * len(names))
for case in cases:
    for workers in (1, 2):
        row = [cell((case, workers, n)) for n in names]
        print(f"| {case} | {workers} | " + " | ".join(row) + " |")
if reasons:
    print()
    for i, r in enumerate(reasons, 1):
        print(f"[{i}] {r}")
if a.note:
    print()
    for n in a.note:
        print(f"- {n}")
print()
print(f"(runs: {time.time() - t0:.0f} s; every result line is in {jsonl})")
PY
}

go_build() {
    # $1: the Go package under bench/go, $2: the binary to write. Fails (and
    # says why) when `go` is not installed.
    if command -v go >/dev/null 2>&1; then
        (cd bench/go && go build -o "$2" "./$1") || exit 1
    else
        echo "(Go skipped: \`go\` is not installed; apt-get install golang-go)"
        echo
        return 1
    fi
}

balance_part() {
    # The balance comparison (bench/src/balance.rs): coio, tokio and Go on
    # 2 workers, every case BALANCE_PROCS times (default 3), medians with
    # the range; then coio with 1x, 2x and 4x as many workers as cores.
    echo "## balance (efficiency: CPU work / cores used / wall time)"
    echo
    cargo build -q --release -p coio-bench --bin balance_coio --bin balance_tokio --bin balance_sim
    local bins="$target_dir/release" go=""
    if go_build balance "$bins/balance_go"; then go="$bins/balance_go"; fi
    BINS="$bins" GO="$go" PROCS="${BALANCE_PROCS:-3}" python3 - <<'PY'
import json, os, statistics, subprocess
bins, go, procs = os.environ["BINS"], os.environ["GO"], int(os.environ["PROCS"])
runs = [("coio", f"{bins}/balance_coio"), ("tokio", f"{bins}/balance_tokio")]
if go:
    runs.append(("go", go))
def run(path, case, workers):
    out = subprocess.run([path, case, str(workers)], capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])
print("| case | " + " | ".join(n for n, _ in runs) + " | coio's homes |")
print("|---|" + "---|" * len(runs) + "---|")
for case in ["all", "random8", "child"]:
    cells, homes = [], None
    results = {n: [] for n, _ in runs}
    for _ in range(procs):
        for n, path in runs:
            r = run(path, case, 2)
            results[n].append(r["efficiency"])
            homes = r.get("homes", homes)
    for n, _ in runs:
        v = results[n]
        cells.append(f"{statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f})")
    print(f"| {case} | " + " | ".join(cells) + f" | {homes} |")
print()
cores = os.cpu_count()
print(f"coio with more workers than cores ({cores} cores), medians of {procs}:")
print()
print("| case | " + " | ".join(f"{k * cores} workers" for k in (1, 2, 4)) + " |")
print("|---|---|---|---|")
for case in ["all", "random8", "child"]:
    cells = []
    for k in (1, 2, 4):
        v = [run(f"{bins}/balance_coio", case, k * cores)["efficiency"] for _ in range(procs)]
        cells.append(f"{statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f})")
    print(f"| {case} | " + " | ".join(cells) + " |")
PY
    echo
    echo "What placement cannot fix (bench/src/bin/balance_sim.rs):"
    echo
    "$bins/balance_sim"
    echo
}

runtime_part() {
    echo "## runtimes: coio's scheduler beside tokio, may and Go"
    echo
    cargo build -q --release -p coio-bench --bins
    local bins runtimes=()
    bins="$(cd "$target_dir/release" && pwd)"
    runtimes+=("coio=$bins/rt_coio" "tokio=$bins/rt_tokio" "may=$bins/rt_may" "may_small=$bins/rt_may:small")
    if go_build rt "$bins/rt-go"; then
        runtimes+=("go=$bins/rt-go")
    fi
    # idle10k: may cannot hold 100,000 live coroutines here (a stack mapping
    # and a guard page each, against vm.max_map_count), so its memory shows
    # only at 10,000. The small-stack variants only matter for idle memory.
    compare --timeout "${RT_TIMEOUT:-120}" --procs "${RT_PROCS:-3}" \
        --jsonl "$bins/rt-results.jsonl" \
        --cases "spawn_all spawn_waves yield pingpong idle10k idle100k idle1m" \
        --what "(spawn: per coroutine; yield: per yield; pingpong: per round trip); idle: resident bytes per blocked coroutine, and ns to create one." \
        --label "may_small=may, 4 KiB stacks" --label "coio_small=coio, smallest stacks" \
        --only may_small=idle --only coio_small=idle \
        "${runtimes[@]}"
    echo
}

chan_part() {
    echo "## channels and locks: coio's beside tokio, may, Go and crossbeam-channel"
    echo
    cargo build -q --release -p coio-bench --bins
    local bins runtimes=()
    bins="$(cd "$target_dir/release" && pwd)"
    runtimes+=("coio=$bins/ch_coio" "tokio=$bins/ch_tokio" "may=$bins/ch_may")
    if go_build ch "$bins/ch-go"; then
        runtimes+=("go=$bins/ch-go")
    fi
    runtimes+=("crossbeam=$bins/ch_xbeam")
    compare --timeout "${CH_TIMEOUT:-120}" --procs "${CH_PROCS:-3}" \
        --jsonl "$bins/ch-results.jsonl" \
        --cases "pingpong mpmc_bounded mpmc_unbounded mutex" \
        --what "(pingpong: per round trip, 100,000 of them; mpmc: per message, 1,000,000 u64 from 4 producers to 4 consumers through one channel, bounded(128) or unbounded; mutex: per increment, 8 coroutines making 125,000 each under one lock)." \
        --label "crossbeam=crossbeam (threads)" --pin1 crossbeam \
        --note "pingpong goes over two rendezvous channels (capacity 0) where the runtime has them: coio bounded(0), Go make(chan int), crossbeam bounded(0); tokio has none and uses mpsc::channel(1), may has only unbounded channels and uses mpsc::channel()." \
        --note "tokio: mpsc has a single consumer, so the 4 consumers share the receiver behind an Arc<tokio::sync::Mutex<Receiver>>, one lock per recv; the mutex is tokio::sync::Mutex." \
        --note "may: may::sync::mpmc is unbounded only, and may has no bounded channel: mpmc_bounded is n/a; the mutex is may::sync::Mutex." \
        --note "go: Go has no unbounded channel; mpmc_unbounded uses make(chan uint64, 1_000_000), with room for every message, so that no sender waits." \
        --note "crossbeam (threads): crossbeam-channel between OS threads (one per coroutine of the others), std::sync::Mutex for mutex; workers=1 runs the process under taskset -c 0 (all threads on CPU 0), workers=2 unpinned." \
        "${runtimes[@]}"
    echo
}

net_compare() {
    # Runs the network comparison and prints its Markdown tables (the net
    # part). Every run starts its server afresh on a free port, waits until
    # it accepts a connection (polling connect), runs the load against it and
    # kills it. Options:
    #   --secs S         length of one timed window (loadgen --secs, wrk -d)
    #   --warmup S       loadgen's warm-up; wrk gets a separate run this long
    #   --procs N        runs per cell (the table gives the median by req/s)
    #   --jsonl FILE     every result line is appended here
    #   --loadgen BIN    the echo load generator (bench/src/bin/loadgen.rs)
    #   --wrk BIN        wrk, or "" to skip the HTTP tables
    #   --conns "A B"    the echo connection counts (columns)
    #   --echo N=BIN     an echo server (rows, in order)
    #   --http N=BIN     an HTTP server
    #   --note TEXT      a line under the tables
    # A server whose binary does not exist is left out with a note (so
    # coio's, echo_coio and http_coio, is listed before it is written).
    RUST_BACKTRACE=0 python3 - "$@" <<'PY'
import argparse, json, os, re, resource, signal, socket, statistics, subprocess
import sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--secs", type=float, required=True)
ap.add_argument("--warmup", type=float, required=True)
ap.add_argument("--procs", type=int, required=True)
ap.add_argument("--jsonl", required=True)
ap.add_argument("--loadgen", required=True)
ap.add_argument("--wrk", default="")
ap.add_argument("--conns", required=True)
ap.add_argument("--echo", action="append", default=[])
ap.add_argument("--http", action="append", default=[])
ap.add_argument("--note", action="append", default=[])
a = ap.parse_args()
conns = [int(c) for c in a.conns.split()]
HZ = os.sysconf("SC_CLK_TCK")

notes = []
def servers(specs, kind):
    """(name, binary) of the servers whose binary exists; a note for each
    that does not."""
    out = []
    for spec in specs:
        # NAME=BINARY or NAME=BINARY VARIANT (the server's third word).
        name, path = spec.split("=", 1)
        if os.path.exists(path.split(" ")[0]):
            out.append((name, path))
        else:
            notes.append(f"{kind} {name}: skipped, no binary {os.path.basename(path)} "
                         f"(not written yet, or failed to build)")
    return out
echo = servers(a.echo, "echo")
http = servers(a.http, "HTTP") if a.wrk else []
if not a.wrk:
    notes.append("HTTP skipped: `wrk` is not installed (apt-get install wrk)")

# The two configurations: (key, title, server's taskset prefix, workers,
# the load generator's taskset prefix).
CONFIGS = [
    ("pinned", "pinned: server under `taskset -c 0` with 1 worker, load under `taskset -c 1`",
     ["taskset", "-c", "0"], 1, ["taskset", "-c", "1"]),
    ("unpinned", "unpinned: server with 2 workers, server and load not pinned",
     [], 2, []),
]

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

def proc_cpu(pid):
    """utime + stime of all threads of pid, in seconds (clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ  # fields 14 and 15

def busy_cpu():
    """CPU seconds all CPUs have spent busy since boot (/proc/stat: all
    but idle and iowait)."""
    with open("/proc/stat") as f:
        t = [int(x) for x in f.readline().split()[1:]]
    return (sum(t[:8]) - t[3] - t[4]) / HZ

def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime

class Others:
    """CPU time that neither the server nor the load generator used while
    one run's load ran: the machine's other work, a disturbance to report.
    Measured over the whole load process (ramp-up and warm-up included)."""
    def __init__(self, pid):
        self.pid = pid
        self.t, self.busy, self.srv, self.kids = time.time(), busy_cpu(), proc_cpu(pid), children_cpu()
    def util(self):
        wall = time.time() - self.t
        other = (busy_cpu() - self.busy) - (proc_cpu(self.pid) - self.srv) - (children_cpu() - self.kids)
        return max(0.0, other) / wall

def last_line(text):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    why = lines[-1] if lines else "(no stderr)"
    return why if len(why) <= 160 else why[:157] + "..."

class Failed(Exception):
    pass

def start_server(path, prefix, workers):
    """Starts a server on a free port and waits (10 s at most) until it
    accepts. Returns (process, port, its stderr file)."""
    port = free_port()
    err = tempfile.TemporaryFile(mode="w+")
    path, *variant = path.split(" ")
    p = subprocess.Popen(prefix + [path, str(port), str(workers)] + variant,
                         stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 10
    while True:
        if p.poll() is not None:
            err.seek(0)
            raise Failed(f"server exited with status {p.returncode}: {last_line(err.read())}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return p, port, err
        except OSError:
            if time.time() > deadline:
                stop_server(p)
                raise Failed("server did not accept within 10 s")
            time.sleep(0.02)

def stop_server(p):
    p.send_signal(signal.SIGKILL)
    p.wait()

def check_alive(p, err):
    if p.poll() is not None:
        err.seek(0)
        raise Failed(f"server died with status {p.returncode}: {last_line(err.read())}")

def run_echo(path, cfg, c):
    _, _, prefix, workers, load_prefix = cfg
    p, port, err = start_server(path, prefix, workers)
    try:
        argv = load_prefix + [a.loadgen, "--addr", f"127.0.0.1:{port}", "--conns", str(c),
                              "--secs", str(a.secs), "--warmup", str(a.warmup),
                              "--pid", str(p.pid)]
        others = Others(p.pid)
        try:
            r = subprocess.run(argv, capture_output=True, text=True,
                               timeout=a.secs + a.warmup + 60)
        except subprocess.TimeoutExpired:
            raise Failed("loadgen timed out")
        check_alive(p, err)
        if r.returncode != 0:
            raise Failed(f"loadgen: {last_line(r.stderr)}")
        res = json.loads(r.stdout.strip().splitlines()[-1])
        res["others_cpu_util"] = round(others.util(), 3)
        return res
    finally:
        stop_server(p)

def wrk_seconds(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    if not m:
        raise Failed(f"wrk: cannot read latency {v!r}")
    return float(m[1]) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m[2]]

def run_http(path, cfg):
    _, _, prefix, workers, load_prefix = cfg
    p, port, err = start_server(path, prefix, workers)
    try:
        url = f"http://127.0.0.1:{port}/"
        wrk = load_prefix + [a.wrk, "-t1", "-c64", "--latency"]
        # Warm-up, not measured.
        if a.warmup > 0:
            subprocess.run(wrk + [f"-d{max(1, round(a.warmup))}s", url],
                           capture_output=True, timeout=a.warmup + 60)
        # The server's CPU time from just before wrk starts until it has
        # exited (so it includes wrk connecting its 64 connections), wrk's
        # own from the rusage of reaped children.
        cpu0, ru0 = proc_cpu(p.pid), resource.getrusage(resource.RUSAGE_CHILDREN)
        others = Others(p.pid)
        t0 = time.time()
        try:
            r = subprocess.run(wrk + [f"-d{round(a.secs)}s", url], capture_output=True,
                               text=True, timeout=a.secs + 60)
        except subprocess.TimeoutExpired:
            raise Failed("wrk timed out")
        wall = time.time() - t0
        cpu1, ru1 = proc_cpu(p.pid), resource.getrusage(resource.RUSAGE_CHILDREN)
        check_alive(p, err)
        out = r.stdout
        if r.returncode != 0:
            raise Failed(f"wrk: exit status {r.returncode}: {last_line(r.stderr or out)}")
        for bad in ("Non-2xx or 3xx responses", "Socket errors"):
            m = re.search(bad + r".*", out)
            if m:
                raise Failed(f"wrk: {m[0].strip()}")
        m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
        rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
        p50 = re.search(r"^\s*50%\s+(\S+)", out, re.M)
        p99 = re.search(r"^\s*99%\s+(\S+)", out, re.M)
        if not (m and rps and p50 and p99):
            raise Failed(f"wrk: cannot read its output: {last_line(out)}")
        n = int(m[1])
        own = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        return {"conns": 64, "requests": n, "rps": float(rps[1]),
                "p50_us": round(wrk_seconds(p50[1]) * 1e6, 1),
                "p99_us": round(wrk_seconds(p99[1]) * 1e6, 1),
                "loadgen_cpu_us_per_req": round(own * 1e6 / n, 3),
                "loadgen_cpu_util": round(own / wall, 3),
                "server_cpu_us_per_req": round((cpu1 - cpu0) * 1e6 / n, 3),
                "server_cpu_util": round((cpu1 - cpu0) / wall, 3),
                "others_cpu_util": round(others.util(), 3)}
    finally:
        stop_server(p)

# Every cell: (kind, config, conns, server name, binary).
cells = [("echo", cfg, c, name, path) for cfg in CONFIGS for c in conns for name, path in echo]
cells += [("http", cfg, 64, name, path) for cfg in CONFIGS for name, path in http]
per_run = a.secs + a.warmup + 1
print(f"(about {len(cells) * a.procs * per_run / 60:.0f} minutes: {len(cells)} cells, "
      f"{a.procs} runs each)", file=sys.stderr, flush=True)
ok, failed = {}, {}
t_start = time.time()
with open(a.jsonl, "a") as out:
    # Round after round over all cells, so that a disturbance of the machine
    # spreads over cells instead of spoiling one.
    for round_ in range(a.procs):
        for kind, cfg, c, name, path in cells:
            key = (kind, cfg[0], c, name)
            if key in failed:
                continue
            t = time.time()
            try:
                res = run_echo(path, cfg, c) if kind == "echo" else run_http(path, cfg)
            except Failed as e:
                failed[key] = str(e)
                res = None
            print(f"  [{round_ + 1}/{a.procs}] {kind} {cfg[0]:8} {name:12} C={c:<4}: "
                  + (f"{res['rps']:9.0f} req/s" if res else "fails")
                  + f" ({time.time() - t:.1f} s)", file=sys.stderr, flush=True)
            if res:
                ok.setdefault(key, []).append(res)
                out.write(json.dumps({"kind": kind, "config": cfg[0], "server": name,
                                      "round": round_ + 1, **res}) + "\n")

reasons = []
def median_run(key):
    """The run with the median req/s (the lower middle one for an even
    count), or None."""
    runs = sorted(ok.get(key, []), key=lambda r: r["rps"])
    return runs[(len(runs) - 1) // 2] if runs else None

def fmt_us(us):
    return f"{us / 1000:.1f} ms" if us >= 10_000 else f"{us:.0f} µs"

def cells_of(key):
    """The four table cells of one key: req/s, p99, server and load CPU."""
    if key in failed:
        why = failed[key]
        if why not in reasons:
            reasons.append(why)
        return [f"fails [{reasons.index(why) + 1}]", "", "", ""]
    r = median_run(key)
    if r is None:
        return ["–"] * 4
    return [f"{r['rps']:,.0f}", fmt_us(r["p99_us"]),
            f"{r['server_cpu_us_per_req']:.2f}", f"{r['loadgen_cpu_us_per_req']:.2f}"]

print(f"Median over {a.procs} runs by req/s (p99 and CPU from that same run); "
      f"{a.secs:g} s timed windows.")
print()
for cfg in CONFIGS:
    if not echo:
        break
    print(f"### echo, {a.conns.replace(' ', ' and ')} connections, 64-byte messages; "
          f"{cfg[1]}")
    print()
    head = ["server"]
    for c in conns:
        head += [f"C={c} req/s", f"C={c} p99", f"C={c} server CPU µs/req",
                 f"C={c} loadgen CPU µs/req"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for name, _ in echo:
        row = [name]
        for c in conns:
            row += cells_of(("echo", cfg[0], c, name))
        print("| " + " | ".join(row) + " |")
    print()
if http:
    print("### HTTP hello, `wrk -t1 -c64 --latency`, GET / → `Hello, World!`")
    print()
    head = ["server"]
    for cfg in CONFIGS:
        head += [f"{cfg[0]} req/s", f"{cfg[0]} p99", f"{cfg[0]} server CPU µs/req",
                 f"{cfg[0]} wrk CPU µs/req"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for name, _ in http:
        row = [name]
        for cfg in CONFIGS:
            row += cells_of(("http", cfg[0], 64, name))
        print("| " + " | ".join(row) + " |")
    print()
    print(f"pinned: server under `taskset -c 0` with 1 worker, wrk under `taskset -c 1`; "
          f"unpinned: server with 2 workers, neither pinned.")
    print()
if reasons:
    for i, r in enumerate(reasons, 1):
        print(f"[{i}] {r}")
    print()
others = sorted(r["others_cpu_util"] for runs in ok.values() for r in runs)
if others:
    print(f"- other processes on the machine used {statistics.median(others):.2f} CPUs "
          f"(median over all runs; most: {others[-1]:.2f}) while the load ran; on a quiet "
          f"machine that is near 0, and well above 0.1 the figures are disturbed.")
for n in notes + a.note:
    print(f"- {n}")
print()
print(f"(runs: {time.time() - t_start:.0f} s; every result line is appended to {a.jsonl})")
PY
}

net_part() {
    echo "## network: echo and HTTP servers, coio's beside tokio, may, Go and std threads"
    echo
    cargo build -q --release -p coio-bench --bins
    local bins wrk echo_servers=() http_servers=()
    bins="$(cd "$target_dir/release" && pwd)"
    # The servers, one line each, in the tables' order. One whose binary is
    # missing (coio's, until bench/src/bin/echo_coio.rs and http_coio.rs
    # exist) is left out with a note.
    echo_servers+=("coio=$bins/echo_coio epoll")
    echo_servers+=("coio io_uring=$bins/echo_coio uring")
    echo_servers+=("tokio=$bins/echo_tokio")
    echo_servers+=("may=$bins/echo_may")
    if go_build echo "$bins/echo-go"; then
        echo_servers+=("go=$bins/echo-go")
    fi
    echo_servers+=("std threads=$bins/echo_std")
    http_servers+=("coio=$bins/http_coio epoll")
    http_servers+=("coio io_uring=$bins/http_coio uring")
    http_servers+=("hyper=$bins/http_hyper")
    http_servers+=("hyper on coio=$bins/http_hyper_coio")
    http_servers+=("may_minihttp=$bins/http_may")
    if go_build http "$bins/http-go" >/dev/null; then
        http_servers+=("go net/http=$bins/http-go")
    fi
    wrk="$(command -v wrk || true)"
    local args=()
    for s in "${echo_servers[@]}"; do args+=(--echo "$s"); done
    for s in "${http_servers[@]}"; do args+=(--http "$s"); done
    net_compare --secs "${NET_SECS:-10}" --warmup 1 --procs "${NET_PROCS:-3}" \
        --jsonl "$bins/net-results.jsonl" --loadgen "$bins/loadgen" --wrk "$wrk" \
        --conns "50 500" \
        --note "echo: loadgen (bench/src/bin/loadgen.rs: one thread on mio, each connection one 64-byte message in flight, every echo checked) for every server. A request is one round trip; the window starts after every connection has had an echo and a 1 s warm-up." \
        --note "server CPU µs/req: utime + stime of all the server's threads over exactly the timed window (loadgen reads /proc/PID/stat at its start and end, in 10 ms ticks) over the requests in it; loadgen CPU µs/req: loadgen's own getrusage over the same window. On loopback the kernel's TCP work for a message is charged mostly to the process that writes it, so each side pays for part of the other's receive path." \
        --note "HTTP: after a 1 s wrk warm-up run; server CPU from just before wrk starts until it exits (so it includes wrk connecting); wrk's own from the rusage of reaped children; p99 from wrk --latency." \
        --note "tokio and hyper: tokio's current-thread runtime for 1 worker, the multi-thread runtime with 2 worker threads for 2. may and may_minihttp: may's workers not pinned to cores (set_worker_pin(false)), 32 KiB stacks. go: GOMAXPROCS = workers. std threads: one OS thread per connection, the worker count does not apply." \
        --note "may_minihttp leaves TCP_NODELAY off on its sockets (every other server sets it), and answers pipelined requests in batches (wrk does not pipeline)." \
        "${args[@]}"
    echo
}

for part in "${parts[@]}"; do
    case "$part" in
    switch)
        echo "## switch (criterion; medians with 95% confidence interval)"
        echo
        cargo bench -q -p coio-bench --bench switch >/dev/null 2>&1
        echo "| group | implementation | median | 95% CI |"
        echo "|---|---|---|---|"
        medians roundtrip
        medians roundtrip_string
        medians create
        echo
        echo "Round trip in one program, coio against corosensei (bench/benches/switch_lto.rs):"
        echo
        echo "- bench profile: $(cargo bench -q -p coio-bench --bench switch_lto 2>/dev/null | tail -1)"
        echo "- fat LTO, codegen-units = 1: $(cargo bench -q -p coio-bench --bench switch_lto --profile release-lto 2>/dev/null | tail -1)"
        echo
        ;;
    stack_use)
        echo "## stack use (release build)"
        echo
        cargo run -q --release -p coio-bench --bin stack_use 2>/dev/null | grep -v '<!--'
        echo
        echo "## stack use (debug build)"
        echo
        cargo run -q -p coio-bench --bin stack_use 2>/dev/null | grep -v '<!--'
        echo
        ;;
    idle)
        echo "## idle generators"
        echo
        cargo run -q --release -p coio-bench --bin idle
        echo
        ;;
    runtime)
        runtime_part
        ;;
    chan)
        chan_part
        ;;
    balance)
        balance_part
        ;;
    net)
        net_part
        ;;
    *)
        echo "unknown part: $part (switch | stack_use | idle | runtime | chan | balance | net)" >&2
        exit 2
        ;;
    esac
done
