#!/usr/bin/env bash
# Benchmark: idle authenticated WebSocket sessions and connect's memory per session.
# Starts MariaDB, Redis, one `gim logic` and CONNECT_NODES `gim connect` processes (a
# process holds at most ~19,000 sockets on this machine), then runs
# `gim-bench connections` (arguments pass through, e.g. --sessions 100000 --workers 6).
# Figures go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
no_rate_limits

sysctl -qw net.core.somaxconn=4096 || true
export GIM_CONNECT__MAX_SESSIONS=19000
nodes=${CONNECT_NODES:-6}
start_cluster "$nodes"
log "running gim-bench connections $*"
connect_pids=("${gim_pids[@]:1}")
target/release/gim-bench connections --logic "127.0.0.1:$logic_port" --app-id "$app_id" --secret "$app_secret" \
    --token-secret "$secret" --ws "$(joined "${ws[@]}")" --pids "$(joined "${connect_pids[@]}")" "$@"
