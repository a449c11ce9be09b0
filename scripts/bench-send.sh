#!/usr/bin/env bash
# Benchmark: persisted 1:1 sends per second through the business gRPC API into MariaDB,
# and the same sends written by the store alone (`gim-bench ceiling`: the same rows and
# group commit with no gRPC, rules or pushes) on the same database, so that gim's figure
# reads as a share of what the database allows on this machine. Starts a private MariaDB
# and a release `gim serve` on it, creates an app, runs `gim-bench send` (arguments pass
# through, e.g. --senders 64 --seconds 30), then the ceiling with the same senders, and
# stops everything. Prints where the CPU went in each (gim, MariaDB, the load generator).
# With BENCH_WEBHOOK=sink the app also has a webhook endpoint for `message.*` (each send
# writes its events to the outbox and the node posts them) on `gim-bench sink`, to see
# what webhooks cost; with BENCH_WEBHOOK=dead the endpoint's port is closed (events are
# written, attempts fail and back off), to see what the outbox alone costs the sends;
# BENCH_WEBHOOK_KINDS names other kinds than `message.*`. Figures go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
no_rate_limits

ensure_commands mariadbd:mariadb-server
cargo build --release --locked --bin gim --bin gim-bench
start_mariadb
mariadb_pid=${started[-1]}
mariadb --socket="$work/mysql.sock" -uroot -e 'CREATE DATABASE gim'

export GIM_STORE__URL="$mariadb_url/gim" GIM_AUTH__TOKEN_SECRET=bench-token-secret-0123456789abcdef
export GIM_DATA_DIR="$work/data" GIM_TELEMETRY__LOG_FILTER=warn
# The webhook sink listens on this machine, which outbound requests may not reach unless allowed.
export GIM_OUTBOUND__ALLOWED_RANGES='["loopback"]'
port=$(free_port)
export GIM_LOGIC__LISTEN="127.0.0.1:$port"
target/release/gim serve &
started+=($!)
gim_pid=$!
wait_for "gim serve" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
created=$(target/release/gim app create --store --name bench)
app_id=$(awk '/^app_id:/ {print $2}' <<<"$created")
secret=$(awk '/^secret:/ {print $2}' <<<"$created")
if [[ -n ${BENCH_WEBHOOK:-} ]]; then
    sink_port=$(free_port)
    if [[ $BENCH_WEBHOOK == sink ]]; then
        target/release/gim-bench sink --listen "127.0.0.1:$sink_port" >"$work/sink.out" &
        started+=($!)
        sink_pid=$!
    fi
    target/release/gim app webhook add --store --app "$app_id" --url "http://127.0.0.1:$sink_port/events" --kinds "${BENCH_WEBHOOK_KINDS:-message.*}" >/dev/null
    sleep 1.5 # the running node sees the new endpoint within a second
    log "webhook endpoint for ${BENCH_WEBHOOK_KINDS:-message.*} on a local ${BENCH_WEBHOOK} port"
fi

# CPU-seconds of processes so far, all threads.
cpu_of() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ ns += $1 } END { printf "%.2f", ns / 1e9 }'
}

# Runs a load generator and says where the CPU went while it ran (the generator reports
# its own).
measured() {
    local what=$1 gim0 db0
    shift
    gim0=$(cpu_of "$gim_pid") db0=$(cpu_of "$mariadb_pid")
    "$@" >"$work/$what.out"
    cat "$work/$what.out"
    echo "$what CPU-seconds: gim $(awk -v a="$gim0" -v b="$(cpu_of "$gim_pid")" 'BEGIN { printf "%.1f", b - a }')," \
        "MariaDB $(awk -v a="$db0" -v b="$(cpu_of "$mariadb_pid")" 'BEGIN { printf "%.1f", b - a }')," \
        "load generator $(awk '/^load generator CPU:/ { print $4 }' "$work/$what.out")"
}

log "gim serve on 127.0.0.1:$port (MariaDB store); running gim-bench send $*"
measured send target/release/gim-bench send --addr "127.0.0.1:$port" --app-id "$app_id" --secret "$secret" "$@"

# The ceiling takes the same senders, users and text; gim sits idle meanwhile.
ceiling_args=()
while (($#)); do
    case $1 in
    --senders | --users | --seconds | --warmup-seconds | --text-chars) ceiling_args+=("$1" "$2") ;;
    esac
    shift 2
done
log "the same sends by the store alone: gim-bench ceiling ${ceiling_args[*]}"
measured ceiling target/release/gim-bench ceiling --store-url "$mariadb_url/gim" --app-id "$app_id" "${ceiling_args[@]}"
gim_rate=$(awk '/messages\/s,/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "messages/s,") print $i }' "$work/send.out")
ceiling_rate=$(awk '/stored\/s,/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "stored/s,") print $i }' "$work/ceiling.out")
awk -v g="$gim_rate" -v c="$ceiling_rate" 'BEGIN { printf "gim / ceiling: %.2f (%s of %s messages/s)\n", g / c, g, c }'
if [[ -n ${sink_pid:-} ]]; then
    echo "webhook sink CPU-seconds: $(cpu_of "$sink_pid")"
    kill "$sink_pid"
    wait "$sink_pid" 2>/dev/null || true
    cat "$work/sink.out"
fi
