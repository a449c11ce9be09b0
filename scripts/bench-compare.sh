#!/usr/bin/env bash
# Runs one benchmark alternately on a base revision and on the working tree, and prints
# each run's figures and the ratio of their medians, so that a change shows as a ratio
# on any machine (identical VMs here differ several-fold in absolute speed).
#
#   scripts/bench-compare.sh BASE_REV [--runs N] BENCH [ARGS...]
#
# BENCH is a scripts/bench-BENCH.sh that both revisions have (send, latency, group,
# feed); ARGS pass through to it, and so does the environment (MODE=cluster for
# latency). The base is checked out in target/bench-compare/REV and built there with a
# target directory of its own (seeded from this tree's release build, so that only gim
# itself compiles). Runs alternate base, head, head, base, ... so that a machine that
# speeds up or slows down during the comparison favours neither.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() {
    echo "usage: $0 BASE_REV [--runs N] BENCH [ARGS...]" >&2
    exit 2
}
(($# >= 2)) || usage
base_rev=$1
shift
runs=3
if [[ $1 == --runs ]]; then
    runs=$2
    shift 2
fi
bench=$1
shift
[[ -x scripts/bench-$bench.sh ]] || usage

base_sha=$(git rev-parse --verify "$base_rev^{commit}")
base_dir=$root/target/bench-compare/${base_sha:0:12}
if [[ ! -d $base_dir ]]; then
    git worktree add --detach "$base_dir" "$base_sha" >&2
fi
[[ -x $base_dir/scripts/bench-$bench.sh ]] || {
    echo "$base_rev has no scripts/bench-$bench.sh" >&2
    exit 2
}

# Both trees are built before the first run, so that no run shares the machine with a
# compiler. The base's target directory starts as a copy of this one's release build:
# dependencies of the same versions are not compiled again.
cargo build --release --locked --bin gim --bin gim-bench >&2
if [[ ! -d $base_dir/target/release ]]; then
    mkdir -p "$base_dir/target"
    cp -r target/release "$base_dir/target/release"
fi
(cd "$base_dir" && cargo build --release --locked --bin gim --bin gim-bench) >&2

out=$(mktemp -d /tmp/gim-compare.XXXXXX)
trap 'rm -rf "$out"' EXIT

# The figures of one run's output, as `name value` lines. Higher is better for rates,
# lower for latencies.
figures() {
    awk '
        /messages\/s,/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "messages/s,") print "sends/s", $i }
        /^latency p50/ { print "send p50 ms", $3; print "send p99 ms", $9 }
        /^send to last device:/ { print "p50 to last device ms", $6; print "p99 to last device ms", $12 }
        /deliveries per CPU-second/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "deliveries" && $(i + 2) == "per") print "deliveries per CPU-s", $i }
        /^Feed latency:/ { print "feed p99 ms", $10 }
        / measured messages$/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "of" && $(i + 3) == "measured") print "complete %", 100 * $i / $(i + 2) }
    ' "$1"
}

run() {
    local side=$1 n=$2 dir
    dir=$([[ $side == base ]] && echo "$base_dir" || echo "$root")
    echo "== $side run $n: scripts/bench-$bench.sh ${*:3}" >&2
    (cd "$dir" && "./scripts/bench-$bench.sh" "${@:3}") >"$out/$side.$n" 2>"$out/$side.$n.log" || {
        echo "$side run $n failed; its log:" >&2
        tail -20 "$out/$side.$n.log" >&2
        exit 1
    }
    figures "$out/$side.$n" | sed "s/^/   /" >&2
}

for n in $(seq 1 "$runs"); do
    if ((n % 2)); then
        run base "$n" "$@"
        run head "$n" "$@"
    else
        run head "$n" "$@"
        run base "$n" "$@"
    fi
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo
echo "$bench $*: base ${base_sha:0:12} ($base_rev) vs head $(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD || echo ' + changes'), $runs runs each"
printf '%-24s %-28s %-28s %s\n' figure "base (median; runs)" "head (median; runs)" "head / base"
declare -A values
for name in $(figures "$out/head.1" | awk '{ NF--; print }' | tr ' ' '_'); do
    key=${name//_/ }
    for side in base head; do
        values[$side]=$(for n in $(seq 1 "$runs"); do figures "$out/$side.$n" | awk -v k="$key" '{ v = $NF; NF--; if ($0 == k) print v }'; done | paste -sd' ')
    done
    base_median=$(tr ' ' '\n' <<<"${values[base]}" | median)
    head_median=$(tr ' ' '\n' <<<"${values[head]}" | median)
    ratio=$(awk -v h="$head_median" -v b="$base_median" 'BEGIN { printf (b > 0) ? "%.2f" : "-", h / b }')
    printf '%-24s %-28s %-28s %s\n' "$key" "$base_median; ${values[base]}" "$head_median; ${values[head]}" "$ratio"
done
