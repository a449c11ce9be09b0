#!/usr/bin/env bash
# Benchmark: 1:1 end-to-end latency, from device A's send to the push on the last of
# B's devices, at a fixed message rate. MODE=serve (default) runs `gim serve` on its
# embedded defaults (SQLite); MODE=cluster runs MariaDB, Redis, one `gim logic` and two
# `gim connect` (senders on one, receivers on the other). Arguments pass through to
# `gim-bench latency`, e.g. --rate 2000 --seconds 30. Figures go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
no_rate_limits

mode=${MODE:-serve}
cargo build --release --locked --bin gim --bin gim-bench
secret=bench-token-secret-0123456789abcdef
export GIM_AUTH__TOKEN_SECRET=$secret GIM_DATA_DIR="$work/data" GIM_TELEMETRY__LOG_FILTER=warn
logic_port=$(free_port)
logic_internal=$(free_port)
export GIM_LOGIC__INTERNAL_LISTEN="127.0.0.1:$logic_internal"
export GIM_CONNECT__LOGIC_INTERNAL_ADDRS="[\"http://127.0.0.1:$logic_internal\"]"
export GIM_LOGIC__LISTEN="127.0.0.1:$logic_port"
ws=()
case $mode in
serve)
    port=$(free_port)
    GIM_CONNECT__LISTEN="127.0.0.1:$port" target/release/gim serve &
    started+=($!)
    ws+=("127.0.0.1:$port")
    wait_for "gim serve" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
    ;;
cluster)
    ensure_commands mariadbd:mariadb-server redis-server:redis-server
    start_mariadb
    mariadb --socket="$work/mysql.sock" -uroot -e 'CREATE DATABASE gim'
    start_redis
    export GIM_STORE__URL="$mariadb_url/gim" GIM_ROUTE__REDIS_URL="$redis_url"
    target/release/gim logic &
    started+=($!)
    wait_for "gim logic" bash -c "exec 3<>/dev/tcp/127.0.0.1/$logic_port"
    for _ in 1 2; do
        port=$(free_port) internal=$(free_port)
        GIM_CONNECT__LISTEN="127.0.0.1:$port" GIM_CONNECT__INTERNAL_LISTEN="127.0.0.1:$internal" \
            GIM_CONNECT__LOGIC_ADDRS="[\"http://127.0.0.1:$logic_port\"]" target/release/gim connect &
        started+=($!)
        ws+=("127.0.0.1:$port")
        wait_for "gim connect" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
    done
    ;;
*)
    log "MODE is serve or cluster"
    exit 2
    ;;
esac

created=$(target/release/gim app create --store --name bench)
app_id=$(awk '/^app_id:/ {print $2}' <<<"$created")
app_secret=$(awk '/^secret:/ {print $2}' <<<"$created")
log "mode $mode; running gim-bench latency $*"
target/release/gim-bench latency --logic "127.0.0.1:$logic_port" --app-id "$app_id" --secret "$app_secret" \
    --token-secret "$secret" --ws "$(IFS=,; echo "${ws[*]}")" "$@"
