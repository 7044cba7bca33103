#!/usr/bin/env bash
# Runs coio's comparison benchmarks side by side and prints Markdown tables
# of medians (the numbers in BENCHMARKS.md come from this script).
#
#   bash bench/run.sh            # everything
#   bash bench/run.sh switch     # one part: switch | stack_use | idle
#
# Needs: cargo (stable), python3 (to read criterion's estimates.json).
set -euo pipefail
cd "$(dirname "$0")/.."
parts=("${@:-switch stack_use idle}")
parts=(${parts[*]})

medians() {
    # $1: criterion group name. Prints one table row per benchmark.
    python3 - "$1" <<'PY'
import json, os, sys
group = sys.argv[1]
root = os.path.join("target", "criterion", group)
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
    *)
        echo "unknown part: $part (switch | stack_use | idle)" >&2
        exit 2
        ;;
    esac
done
