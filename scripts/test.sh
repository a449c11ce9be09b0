#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with a Rust toolchain.
#
# Installs MariaDB, Redis, iproute2, Node.js and Chromium from Debian's packages when they
# are missing, starts a private instance of MariaDB and Redis on free loopback ports (data in
# a temporary directory that is removed on exit), then runs formatting and lint checks,
# every Rust test, the TypeScript SDK's tests and the web app's browser test.
#
# Point the tests at servers of your own instead with GIM_TEST_MYSQL_URL
# (mysql://user:pass@host:port, a user that may create and drop databases) and
# GIM_TEST_REDIS_URL (redis://host:port).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# MariaDB, Redis and iproute2 also for the test of README.md's cluster recipe
# (scripts/cluster-recipe.sh), which runs private instances of its own.
needed=(mariadbd:mariadb-server redis-server:redis-server ip:iproute2 node:nodejs npm:npm chromium:chromium)
ensure_commands "${needed[@]}"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    fail "the clients need Node.js 20 or later; this machine has $(node --version)"
if [[ -z "${GIM_TEST_MYSQL_URL:-}" ]]; then
    start_mariadb
    GIM_TEST_MYSQL_URL=$mariadb_url
fi
if [[ -z "${GIM_TEST_REDIS_URL:-}" ]]; then
    start_redis
    GIM_TEST_REDIS_URL=$redis_url
fi
export GIM_TEST_MYSQL_URL GIM_TEST_REDIS_URL

log "building the TypeScript SDK and the web app (clients/)"
(cd clients && npm ci --no-audit --no-fund --loglevel=error && npm run build)
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
    { ! git diff --quiet -- clients/web/dist || [[ -n "$(git ls-files --others --exclude-standard clients/web/dist)" ]]; }; then
    fail "clients/web/dist differs from what its sources build: commit the rebuilt app (gim serves it from the binary)"
fi

log "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

log "running the tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --all-targets --locked --no-fail-fast
else
    cargo test --all-targets --locked --no-fail-fast
fi

log "running the SDK's tests and the web app's browser test against gim serve"
# The integration tests built target/debug/gim (with the features the tests unify;
# a plain `cargo build` would compile every dependency again for nothing).
[[ -x target/debug/gim ]] || fail "target/debug/gim was not built by the tests"
(cd clients && GIM_BIN="$PWD/../target/debug/gim" CHROMIUM="$(command -v chromium)" npm test)
