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

log() { printf '==> %s\n' "$*" >&2; }

missing=()
if [[ -z "${GIM_TEST_MYSQL_URL:-}" ]] && ! command -v mariadbd >/dev/null; then missing+=(mariadb-server); fi
if [[ -z "${GIM_TEST_REDIS_URL:-}" ]] && ! command -v redis-server >/dev/null; then missing+=(redis-server); fi
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/gim-test.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# A loopback port nothing listens on.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

wait_for() {
    local what=$1
    shift
    for _ in $(seq 1 100); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    log "$what did not start"
    return 1
}

if [[ -z "${GIM_TEST_MYSQL_URL:-}" ]]; then
    port=$(free_port)
    log "starting MariaDB on 127.0.0.1:$port"
    mariadb-install-db --no-defaults --datadir="$work/mysql" --user=root \
        --auth-root-authentication-method=normal --skip-test-db >"$work/mysql-install.log" 2>&1
    mariadbd --no-defaults --datadir="$work/mysql" --port="$port" --bind-address=127.0.0.1 \
        --socket="$work/mysql.sock" --user=root --skip-log-bin --max-connections=2000 \
        --innodb-buffer-pool-size=256M --innodb-log-file-size=64M >"$work/mysql.log" 2>&1 &
    pids+=($!)
    wait_for MariaDB mariadb-admin --socket="$work/mysql.sock" -uroot ping
    export GIM_TEST_MYSQL_URL="mysql://root@127.0.0.1:$port"
fi

if [[ -z "${GIM_TEST_REDIS_URL:-}" ]]; then
    port=$(free_port)
    log "starting Redis on 127.0.0.1:$port"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
    pids+=($!)
    wait_for Redis redis-cli -p "$port" ping
    export GIM_TEST_REDIS_URL="redis://127.0.0.1:$port"
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
