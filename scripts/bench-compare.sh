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
source scripts/lib.sh

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

out=$work

run() {
    local side=$1 n=$2 dir
    dir=$([[ $side == base ]] && echo "$base_dir" || echo "$root")
    echo "== $side run $n: scripts/bench-$bench.sh ${*:3}" >&2
    (cd "$dir" && "./scripts/bench-$bench.sh" "${@:3}") >"$out/$side.$n" 2>"$out/$side.$n.log" || {
        echo "$side run $n failed; its log:" >&2
        tail -20 "$out/$side.$n.log" >&2
        exit 1
    }
    bench_figures "$out/$side.$n" | sed "s/^/   /" >&2
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

echo
echo "$bench $*: base ${base_sha:0:12} ($base_rev) vs head $(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD || echo ' + changes'), $runs runs each"
compare_table "$out" head base "$runs"
