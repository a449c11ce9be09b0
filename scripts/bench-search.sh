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

serve_on_mariadb
log "running gim-bench search $*"
target/release/gim-bench search --logic "127.0.0.1:$logic_port" --app-id "$app_id" --secret "$app_secret" \
    --store-url "$store_url" "$@"
