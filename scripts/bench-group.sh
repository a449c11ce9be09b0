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

export GIM_GROUPS__MAX_MEMBERS=200000
start_cluster 1
log "running gim-bench group $*"
target/release/gim-bench group --logic "127.0.0.1:$logic_port" --app-id "$app_id" --secret "$app_secret" \
    --token-secret "$secret" --ws "${ws[0]}" --pids "$(joined "${gim_pids[@]}")" \
    --aux-pids "$(joined "${aux_pids[@]}")" "$@"
