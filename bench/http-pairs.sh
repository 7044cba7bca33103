#!/usr/bin/env bash
# Back-to-back pairs of HTTP runs under wrk, two servers alternating, to
# compare them under the same machine state (as bench/net-pairs.sh does
# for echo).
#
#   bash bench/http-pairs.sh [A] [B] [PAIRS] [SECS]
#   # defaults: http_hyper_coio http_hyper 5 4
#
# A and B are server binaries of bench/src/bin (`http_<name>`, taking
# `<port> <workers>`). Each pair runs both pinned (server with 1 worker
# under `taskset -c 0`, wrk under `taskset -c 1`) and then unpinned
# (2 workers, nothing pinned); `wrk -t1 -c64 --latency`, a 1 s warm-up and
# a SECS-second window, server CPU from /proc. Prints one line per run
# and, per configuration, the medians of the A/B ratios of requests/s and
# of server CPU per request. Builds with `cargo build --release -p
# coio-bench` first.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
a="${1:-http_hyper_coio}"
b="${2:-http_hyper}"
pairs="${3:-5}"
secs="${4:-4}"
command -v wrk >/dev/null || { echo "http-pairs: needs wrk (apt-get install -y wrk)" >&2; exit 1; }
cargo build -q --release -p coio-bench --bins
bins="${CARGO_TARGET_DIR:-target}/release"
hz=$(getconf CLK_TCK)

# run SERVER CONFIG: prints "rps p99 cpu_us_per_req".
run() {
    local port pid out t0 t1 srv=() load=() workers=2
    if [ "$2" = pinned ]; then
        srv=(taskset -c 0) load=(taskset -c 1) workers=1
    fi
    port=$((20000 + RANDOM % 20000))
    "${srv[@]}" "$bins/$1" "$port" "$workers" >/dev/null 2>&1 &
    pid=$!
    wait_for_port "$port"
    "${load[@]}" wrk -t1 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    out=$("${load[@]}" wrk -t1 -c64 -d"${secs}s" --latency "http://127.0.0.1:$port/")
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 - "$out" "$t0" "$t1" "$hz" <<'PY'
import re, sys
out, t0, t1, hz = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
reqs = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
print(round(rps), p99, round((t1 - t0) / hz * 1e6 / reqs, 2))
PY
}

for cfg in pinned unpinned; do
    rps_ratios=() cpu_ratios=()
    for i in $(seq "$pairs"); do
        read -r a_rps a_p99 a_cpu < <(run "$a" "$cfg")
        read -r b_rps b_p99 b_cpu < <(run "$b" "$cfg")
        rps_ratios+=("$(python3 -c "print(round($a_rps / $b_rps, 3))")")
        cpu_ratios+=("$(python3 -c "print(round($a_cpu / $b_cpu, 3))")")
        echo "$cfg pair $i: $a $a_rps req/s (p99 $a_p99, $a_cpu µs/req)  $b $b_rps req/s (p99 $b_p99, $b_cpu µs/req)  rps ${rps_ratios[-1]} cpu ${cpu_ratios[-1]}"
    done
    med() { python3 -c "import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }
    echo "$cfg: median $a/$b requests/s $(med "${rps_ratios[@]}"), server CPU per request $(med "${cpu_ratios[@]}")"
done
