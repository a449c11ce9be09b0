#!/usr/bin/env bash
# Benchmark: a user's conversation list on MariaDB. Starts MariaDB and `gim serve` on it,
# has 1,000 users send one user a message each, then measures that user's
# ListConversations (first page of 20) and, after rounds of 10 new messages,
# SyncConversations. Arguments pass through to `gim-bench conversations`, e.g.
# --peers 5000. Figures go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
no_rate_limits

serve_on_mariadb
log "running gim-bench conversations $*"
target/release/gim-bench conversations --logic "127.0.0.1:$logic_port" --app-id "$app_id" --secret "$app_secret" "$@"
