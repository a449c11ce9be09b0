#!/usr/bin/env bash
# Benchmark: one live room with many members. Starts MariaDB, Redis, one `gim logic`
# and CONNECT_NODES `gim connect` processes (a process holds at most ~19,000 sockets on
# this machine), then runs `gim-bench room`: worker processes open the members'
# sessions and join the room, the business pushes messages to it at a fixed rate, and
# storm sessions join and leave it meanwhile. Arguments pass through, e.g. --members
# 100000 --workers 6 --rate 50 --storm 5000. Figures go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
no_rate_limits

nodes=${CONNECT_NODES:-6}
ensure_commands mariadbd:mariadb-server redis-server:redis-server
cargo build --release --locked --bin gim --bin gim-bench
sysctl -qw net.core.somaxconn=4096 || true
start_mariadb
mariadb_pid=${started[-1]}
mariadb --socket="$work/mysql.sock" -uroot -e 'CREATE DATABASE gim'
start_redis
redis_pid=${started[-1]}

secret=bench-token-secret-0123456789abcdef
export GIM_STORE__URL="$mariadb_url/gim" GIM_ROUTE__REDIS_URL="$redis_url" GIM_AUTH__TOKEN_SECRET=$secret
export GIM_DATA_DIR="$work/data" GIM_TELEMETRY__LOG_FILTER=warn GIM_CONNECT__MAX_SESSIONS=19000
export GIM_CONNECT__MAX_FRAMES_PER_SECOND=1000
logic_port=$(free_port)
logic_internal=$(free_port)
export GIM_LOGIC__INTERNAL_LISTEN="127.0.0.1:$logic_internal"
export GIM_CONNECT__LOGIC_INTERNAL_ADDRS="[\"http://127.0.0.1:$logic_internal\"]"
GIM_LOGIC__LISTEN="127.0.0.1:$logic_port" target/release/gim logic &
started+=($!)
pids=($!)
wait_for "gim logic" bash -c "exec 3<>/dev/tcp/127.0.0.1/$logic_port"

ws=()
for _ in $(seq 1 "$nodes"); do
    port=$(free_port) internal=$(free_port)
    GIM_CONNECT__LISTEN="127.0.0.1:$port" GIM_CONNECT__INTERNAL_LISTEN="127.0.0.1:$internal" \
        GIM_CONNECT__LOGIC_ADDRS="[\"http://127.0.0.1:$logic_port\"]" target/release/gim connect &
    started+=($!)
    pids+=($!)
    ws+=("127.0.0.1:$port")
    wait_for "gim connect" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
done

created=$(target/release/gim app create --name bench)
app_id=$(awk '/^app_id:/ {print $2}' <<<"$created")
app_secret=$(awk '/^secret:/ {print $2}' <<<"$created")
log "gim logic on 127.0.0.1:$logic_port, $nodes connect nodes; running gim-bench room $*"
target/release/gim-bench room --logic "127.0.0.1:$logic_port" --app-id "$app_id" --secret "$app_secret" \
    --token-secret "$secret" --ws "$(IFS=,; echo "${ws[*]}")" --pids "$(IFS=,; echo "${pids[*]}")" \
    --aux-pids "$mariadb_pid,$redis_pid" "$@"
