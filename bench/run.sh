#!/usr/bin/env bash
# Runs coio's comparison benchmarks side by side and prints Markdown tables
# of medians (the numbers in BENCHMARKS.md come from this script).
#
#   bash bench/run.sh            # everything
#   bash bench/run.sh switch     # one part: switch | stack_use | idle | runtime | chan
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
# installed (`apt-get install golang-go`). Builds go to $CARGO_TARGET_DIR if
# set.
set -euo pipefail
cd "$(dirname "$0")/.."
parts=("${@:-switch stack_use idle runtime chan}")
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
    *)
        echo "unknown part: $part (switch | stack_use | idle | runtime | chan)" >&2
        exit 2
        ;;
    esac
done
