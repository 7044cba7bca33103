#!/usr/bin/env bash
# A/B of two builds of coio's own benchmark binaries, back to back and
# alternating (this machine drifts between fast and slow states): the
# runtime cases (rt_coio), the channel ping-pong (ch_coio) and the pinned
# echo server (echo_coio under loadgen), each pair A then B.
#
#   bash bench/ab.sh A_BINS B_BINS [PAIRS]     # default 5 pairs
#
# A_BINS and B_BINS are release directories holding rt_coio, ch_coio,
# echo_coio and loadgen, e.g. one built from a worktree of an older commit:
#   git worktree add /tmp/old <commit>
#   (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target cargo build --release -p coio-bench --bins)
#   bash bench/ab.sh /tmp/old-target/release target/release
# Prints each pair and, per case, the median B/A ratio (ns per op: below 1
# is B faster; echo requests/s: above 1 is B faster, and its server CPU per
# request, below 1 is B cheaper).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
a="$1"
b="$2"
pairs="${3:-5}"
med() { python3 -c "import statistics, sys; print(round(statistics.median(map(float, sys.argv[1:])), 3))" "$@"; }
ns() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])["ns_per_op"])' "$1"; }

for case in "rt_coio spawn_all 2" "rt_coio spawn_waves 2" "rt_coio pingpong 1" "rt_coio yield 1" \
    "ch_coio pingpong 1" "ch_coio pingpong 2"; do
    read -r bin c w <<<"$case"
    ratios=()
    for i in $(seq "$pairs"); do
        x=$(ns "$("$a/$bin" "$c" "$w")")
        y=$(ns "$("$b/$bin" "$c" "$w")")
        ratios+=("$(python3 -c "print($y / $x)")")
        echo "$bin $c W=$w pair $i: A $x ns, B $y ns"
    done
    echo "$bin $c W=$w: median B/A $(med "${ratios[@]}")"
done

for conns in 50 500; do
    rps=() cpu=()
    for i in $(seq "$pairs"); do
        read -r a_rps a_p99 a_cpu < <(pinned_echo_run "$a" 4 "$conns" echo_coio)
        read -r b_rps b_p99 b_cpu < <(pinned_echo_run "$b" 4 "$conns" echo_coio)
        rps+=("$(python3 -c "print($b_rps / $a_rps)")")
        cpu+=("$(python3 -c "print($b_cpu / $a_cpu)")")
        echo "echo C=$conns pair $i: A $a_rps req/s $a_cpu µs/req, B $b_rps req/s $b_cpu µs/req"
    done
    echo "echo C=$conns: median B/A requests/s $(med "${rps[@]}"), CPU per request $(med "${cpu[@]}")"
done
