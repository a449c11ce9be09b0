#!/usr/bin/env bash
# Benchmark: full-text search on MariaDB. Starts MariaDB and `gim serve` on it; gim-bench
# writes 1,000,000 direct messages between 1,000 users through gim's store (index
# included), then random users search (a word, two words, two Chinese characters, and a
# word in a tenth of the app) over gRPC, against the same run's floor. Arguments pass
# through to `gim-bench search`, e.g. --messages 100000. Figures go to docs/benchmarks.md.
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
logic_port=$(free_port)
GIM_LOGIC__LISTEN="127.0.0.1:$logic_port" GIM_CONNECT__LISTEN="127.0.0.1:$(free_port)" target/release/gim serve &
started+=($!)
wait_for "gim serve" bash -c "exec 3<>/dev/tcp/127.0.0.1/$logic_port"

created=$(target/release/gim app create --name bench)
app_id=$(awk '/^app_id:/ {print $2}' <<<"$created")
app_secret=$(awk '/^secret:/ {print $2}' <<<"$created")
log "gim serve up on MariaDB; running gim-bench search $*"
target/release/gim-bench search --logic "127.0.0.1:$logic_port" --app-id "$app_id" --secret "$app_secret" \
    --store-url "$mariadb_url/gim" "$@"
