#!/usr/bin/env bash
# Benchmark: one large group fanned out to its online members. Starts MariaDB, Redis,
# one `gim logic` and one `gim connect`, builds the group, opens the members' sessions
# and sends to the group at a fixed rate. Arguments pass through to `gim-bench group`,
# e.g. --members 100000 --online 10000 --rate 20. Figures go to docs/benchmarks.md.
# CONNECT_WRAP runs `gim connect` under a command, e.g. CONNECT_WRAP="valgrind
# --tool=callgrind --callgrind-out-file=FILE" to count its instructions.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
no_rate_limits

ensure_commands mariadbd:mariadb-server redis-server:redis-server
cargo build --release --locked --bin gim --bin gim-bench
start_mariadb
mariadb_pid=${started[-1]}
mariadb --socket="$work/mysql.sock" -uroot -e 'CREATE DATABASE gim'
start_redis
redis_pid=${started[-1]}

secret=bench-token-secret-0123456789abcdef
export GIM_STORE__URL="$mariadb_url/gim" GIM_ROUTE__REDIS_URL="$redis_url" GIM_AUTH__TOKEN_SECRET=$secret
export GIM_DATA_DIR="$work/data" GIM_TELEMETRY__LOG_FILTER=warn GIM_GROUPS__MAX_MEMBERS=200000
logic_port=$(free_port)
logic_internal=$(free_port)
export GIM_LOGIC__INTERNAL_LISTEN="127.0.0.1:$logic_internal"
export GIM_CONNECT__LOGIC_INTERNAL_ADDRS="[\"http://127.0.0.1:$logic_internal\"]"
GIM_LOGIC__LISTEN="127.0.0.1:$logic_port" target/release/gim logic &
started+=($!)
logic_pid=$!
wait_for "gim logic" bash -c "exec 3<>/dev/tcp/127.0.0.1/$logic_port"
port=$(free_port) internal=$(free_port)
GIM_CONNECT__LISTEN="127.0.0.1:$port" GIM_CONNECT__INTERNAL_LISTEN="127.0.0.1:$internal" \
    GIM_CONNECT__LOGIC_ADDRS="[\"http://127.0.0.1:$logic_port\"]" ${CONNECT_WRAP:-} target/release/gim connect &
started+=($!)
connect_pid=$!
wait_for "gim connect" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"

created=$(target/release/gim app create --name bench)
app_id=$(awk '/^app_id:/ {print $2}' <<<"$created")
app_secret=$(awk '/^secret:/ {print $2}' <<<"$created")
log "gim logic and connect up; running gim-bench group $*"
target/release/gim-bench group --logic "127.0.0.1:$logic_port" --app-id "$app_id" --secret "$app_secret" \
    --token-secret "$secret" --ws "127.0.0.1:$port" --pids "$logic_pid,$connect_pid" \
    --aux-pids "$mariadb_pid,$redis_pid" "$@"
