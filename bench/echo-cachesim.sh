#!/usr/bin/env bash
# The echo server's user-space cost per request, in instructions and in
# simulated cache misses: the server runs under callgrind's cache
# simulation (deterministic, unlike wall time on this machine), with the
# last-level cache set to a 512 KiB, 8-way L2 (this machine's per-core
# L2), while loadgen drives it.
#
#   bash bench/echo-cachesim.sh SERVER [CONNS] [SECS]   # defaults: 500 5
#
# SERVER is a binary of target/release (echo_coio, echo_tokio, ...) or a
# path. A first loadgen run warms the server up (its connections are
# accepted, its stacks and buffers touched); the counters are then zeroed,
# a second run of CONNS connections for SECS seconds is measured, and the
# counters are dumped. Prints the requests served and, per request,
# instructions, L1 data misses and simulated L2 misses (reads + writes).
# Under valgrind the server is about 50 times slower, so the load is light
# in requests/s but the same in shape: each request wakes one of CONNS
# parked connections. The counts per request still move a little with the
# machine's load (how many requests each poll finds): compare two builds
# in alternated runs.
set -euo pipefail
cd "$(dirname "$0")/.."
server="$1"
conns="${2:-500}"
secs="${3:-5}"
bins="${CARGO_TARGET_DIR:-target}/release"
[ -x "$server" ] || server="$bins/$server"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
port=$((20000 + RANDOM % 20000))
valgrind --tool=callgrind --cache-sim=yes --LL=524288,8,64 \
    --callgrind-out-file="$out/cg" "$server" "$port" 1 >"$out/log" 2>&1 &
pid=$!
for _ in $(seq 200); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.5
done
"$bins/loadgen" --addr "127.0.0.1:$port" --conns "$conns" --secs 4 --warmup 2 >/dev/null
callgrind_control -z "$pid" >/dev/null 2>&1
"$bins/loadgen" --addr "127.0.0.1:$port" --conns "$conns" --secs "$secs" --warmup 0 >"$out/load"
callgrind_control -d "$pid" >/dev/null 2>&1
sleep 1
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
python3 - "$out/load" "$out"/cg.1 <<'PY'
import json, sys
req = json.load(open(sys.argv[1]))["requests"]
for line in open(sys.argv[2]):
    if line.startswith("summary:"):
        # Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
        v = [int(x) for x in line.split()[1:]]
        print(f"requests {req}: per request {v[0] / req:.0f} instructions, "
              f"{(v[4] + v[5]) / req:.1f} L1d misses, {(v[7] + v[8]) / req:.2f} L2 misses (simulated)")
PY
