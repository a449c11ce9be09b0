#!/usr/bin/env bash
# Benchmark: moments feed reads on MariaDB. Starts MariaDB and `gim serve` on it, has
# 500 users publish 200 posts each, makes them the viewer's friends, and measures the
# viewer's Feed calls. Arguments pass through to `gim-bench feed`, e.g. --concurrency 8.
# Figures go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
no_rate_limits

export GIM_SOCIAL__FEED_BACKFILL_POSTS=200
serve_on_mariadb
log "running gim-bench feed $*"
target/release/gim-bench feed --logic "127.0.0.1:$logic_port" --app-id "$app_id" --secret "$app_secret" "$@"
