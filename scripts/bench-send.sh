#!/usr/bin/env bash
# Benchmark: persisted 1:1 sends per second through the business gRPC API into MariaDB.
# Starts a private MariaDB and a release `gim serve` on it, creates an app, runs
# `gim-bench send` (arguments are passed through, e.g. --senders 64 --seconds 30),
# and stops everything. Figures go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
no_rate_limits

ensure_commands mariadbd:mariadb-server
cargo build --release --locked --bin gim --bin gim-bench
start_mariadb
mariadb --socket="$work/mysql.sock" -uroot -e 'CREATE DATABASE gim'

export GIM_STORE__URL="$mariadb_url/gim" GIM_AUTH__TOKEN_SECRET=bench-token-secret-0123456789abcdef
export GIM_DATA_DIR="$work/data" GIM_TELEMETRY__LOG_FILTER=warn
port=$(free_port)
export GIM_LOGIC__LISTEN="127.0.0.1:$port"
target/release/gim serve &
started+=($!)
created=$(target/release/gim app create --name bench)
app_id=$(awk '/^app_id:/ {print $2}' <<<"$created")
secret=$(awk '/^secret:/ {print $2}' <<<"$created")

log "gim serve on 127.0.0.1:$port (MariaDB store); running gim-bench send $*"
target/release/gim-bench send --addr "127.0.0.1:$port" --app-id "$app_id" --secret "$secret" "$@"
