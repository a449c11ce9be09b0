# Shell helpers shared by scripts/test.sh and the benchmark scripts: Debian packages,
# free ports, and private MariaDB/Redis instances that live in a temporary directory.
# Source it; it sets `work` (removed on exit) and stops what it started.

log() { printf '==> %s\n' "$*" >&2; }

# Installs Debian packages for the commands given as `command:package` that are missing.
ensure_commands() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

work=$(mktemp -d /tmp/gim.XXXXXX)
started=()
stop_started() {
    local pid
    for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap stop_started EXIT

# A loopback port nothing listens on, below the kernel's ephemeral range (32768 and up)
# so that no outgoing connection holds it.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

wait_for() {
    local what=$1
    shift
    for _ in $(seq 1 150); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    log "$what did not start"
    return 1
}

# Starts MariaDB on a free port and sets `mariadb_url` (mysql://root@127.0.0.1:PORT).
# Durability is MariaDB's default: the redo log is flushed at every commit. (Not to be
# called in $(...): a subshell would lose track of the process it starts.)
start_mariadb() {
    local port dir=$work/mysql
    port=$(free_port)
    mariadb-install-db --no-defaults --datadir="$dir" --user=root \
        --auth-root-authentication-method=normal --skip-test-db >"$work/mysql-install.log" 2>&1
    mariadbd --no-defaults --datadir="$dir" --port="$port" --bind-address=127.0.0.1 \
        --socket="$work/mysql.sock" --user=root --skip-log-bin --max-connections=2000 \
        --innodb-buffer-pool-size=512M --innodb-log-file-size=256M >"$work/mysql.log" 2>&1 &
    started+=($!)
    wait_for MariaDB mariadb-admin --socket="$work/mysql.sock" -uroot ping
    log "MariaDB on 127.0.0.1:$port"
    mariadb_url="mysql://root@127.0.0.1:$port"
}

# Starts Redis on a free port and sets `redis_url` (redis://127.0.0.1:PORT).
start_redis() {
    local port
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis-$port.log" 2>&1 &
    started+=($!)
    wait_for Redis redis-cli -p "$port" ping
    log "Redis on 127.0.0.1:$port"
    redis_url="redis://127.0.0.1:$port"
}

# Benchmarks call far faster than people do: no per-caller rates (see [rates]).
no_rate_limits() {
    export GIM_RATES__DEVICE_CALLS_PER_SECOND=0 GIM_RATES__USER_CALLS_PER_SECOND=0 GIM_RATES__APP_CALLS_PER_SECOND=0
    export GIM_RATES__FRIEND_REQUESTS_PER_HOUR=0 GIM_RATES__MOMENT_WRITES_PER_MINUTE=0
}
