#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with a Rust toolchain.
#
# Installs MariaDB and Redis from Debian's packages when they are missing, starts a
# private instance of each on free loopback ports (data in a temporary directory that is
# removed on exit), then runs formatting and lint checks and every test.
#
# Point the tests at servers of your own instead with GIM_TEST_MYSQL_URL
# (mysql://user:pass@host:port, a user that may create and drop databases) and
# GIM_TEST_REDIS_URL (redis://host:port).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

needed=()
[[ -n "${GIM_TEST_MYSQL_URL:-}" ]] || needed+=(mariadbd:mariadb-server)
[[ -n "${GIM_TEST_REDIS_URL:-}" ]] || needed+=(redis-server:redis-server)
ensure_commands "${needed[@]}"
if [[ -z "${GIM_TEST_MYSQL_URL:-}" ]]; then
    start_mariadb
    GIM_TEST_MYSQL_URL=$mariadb_url
fi
if [[ -z "${GIM_TEST_REDIS_URL:-}" ]]; then
    start_redis
    GIM_TEST_REDIS_URL=$redis_url
fi
export GIM_TEST_MYSQL_URL GIM_TEST_REDIS_URL

log "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

log "running the tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --all-targets --locked --no-fail-fast
else
    cargo test --all-targets --locked --no-fail-fast
fi
