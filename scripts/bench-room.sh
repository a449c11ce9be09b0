#!/usr/bin/env bash
# Benchmark: one live room with many members. Starts MariaDB, Redis, one `gim logic`
# and CONNECT_NODES `gim connect` processes (a process holds at most ~19,000 sockets on
# this machine), then runs `gim-bench room`: worker processes open the members'
# sessions and join the room, the business pushes messages to it at a fixed rate, and
# storm sessions join and leave it meanwhile. Arguments pass through, e.g. --members
# 100000 --workers 6 --rate 50 --storm 5000. Figures go to docs/benchmarks.md.
#
# PEER=nats then runs the same fan-out on nats-server (N WebSocket subscribers of one
# subject, the messages at the same rate; see scripts/bench-vs-nats.sh), for a ratio
# measured on the same machine in the same minutes. NATS needs every subscriber in one
# process, so this takes --members up to about 19,000.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
no_rate_limits

members=100000 rate=50 seconds=30
args=("$@")
while (($#)); do
    case $1 in
    --members) members=$2 ;;
    --rate) rate=$2 ;;
    --seconds) seconds=$2 ;;
    esac
    shift
done

sysctl -qw net.core.somaxconn=4096 || true
export GIM_CONNECT__MAX_SESSIONS=19000 GIM_CONNECT__MAX_FRAMES_PER_SECOND=1000
start_cluster "${CONNECT_NODES:-6}"
log "running gim-bench room ${args[*]}"
target/release/gim-bench room --logic "127.0.0.1:$logic_port" --app-id "$app_id" --secret "$app_secret" \
    --token-secret "$secret" --ws "$(joined "${ws[@]}")" --pids "$(joined "${gim_pids[@]}")" \
    --aux-pids "$(joined "${aux_pids[@]}")" "${args[@]}"

if [[ ${PEER:-} == nats ]]; then
    # The gim processes go; the work directory stays.
    for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
    started=()
    ensure_commands nats-server:nats-server
    port=$(free_port) ws_port=$(free_port)
    printf 'listen: 127.0.0.1:%s\nwebsocket { listen: "127.0.0.1:%s", no_tls: true }\n' "$port" "$ws_port" >"$work/nats.conf"
    nats-server -c "$work/nats.conf" >"$work/nats.log" 2>&1 &
    started+=($!)
    wait_for nats-server bash -c "exec 3<>/dev/tcp/127.0.0.1/$ws_port"
    log "the same fan-out on nats-server: $members subscribers, $rate messages/s"
    target/release/gim-bench nats --addr "127.0.0.1:$port" --ws "127.0.0.1:$ws_port" --pids "${started[-1]}" \
        --subscribers "$members" --rate "$rate" --seconds "$seconds"
fi
