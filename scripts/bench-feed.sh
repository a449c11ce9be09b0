#!/usr/bin/env bash
# Benchmark: moments feed reads on MariaDB. Starts MariaDB and `gim serve` on it, has
# 500 users publish 200 posts each, makes them the viewer's friends, and measures the
# viewer's Feed calls. Arguments pass through to `gim-bench feed`, e.g. --concurrency 8.
# Figures go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
no_rate_limits

ensure_commands mariadbd:mariadb-server
cargo build --release --locked --bin gim --bin gim-bench
start_mariadb
mariadb --socket="$work/mysql.sock" -uroot -e 'CREATE DATABASE gim'

secret=bench-token-secret-0123456789abcdef
export GIM_STORE__URL="$mariadb_url/gim" GIM_AUTH__TOKEN_SECRET=$secret GIM_DATA_DIR="$work/data"
export GIM_TELEMETRY__LOG_FILTER=warn GIM_SOCIAL__FEED_BACKFILL_POSTS=200
logic_port=$(free_port)
GIM_LOGIC__LISTEN="127.0.0.1:$logic_port" GIM_CONNECT__LISTEN="127.0.0.1:$(free_port)" target/release/gim serve &
started+=($!)
wait_for "gim serve" bash -c "exec 3<>/dev/tcp/127.0.0.1/$logic_port"

created=$(target/release/gim app create --name bench)
app_id=$(awk '/^app_id:/ {print $2}' <<<"$created")
app_secret=$(awk '/^secret:/ {print $2}' <<<"$created")
log "gim serve up on MariaDB; running gim-bench feed $*"
target/release/gim-bench feed --logic "127.0.0.1:$logic_port" --app-id "$app_id" --secret "$app_secret" "$@"
