# Shell helpers shared by scripts/test.sh and the benchmark scripts: Debian packages,
# free ports, and private MariaDB/Redis instances that live in a temporary directory.
# Source it; it sets `work` (removed on exit) and stops what it started.

log() { printf '==> %s\n' "$*" >&2; }
fail() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

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
    # Up to a minute: a server under valgrind takes that long to start.
    for _ in $(seq 1 600); do
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

# Builds gim, starts MariaDB and `gim serve` on a database of it (with the GIM_* settings
# of the environment), and makes an app named bench: sets `store_url`, `logic_port`,
# `app_id` and `app_secret`.
serve_on_mariadb() {
    ensure_commands mariadbd:mariadb-server
    cargo build --release --locked --bin gim --bin gim-bench
    start_mariadb
    mariadb --socket="$work/mysql.sock" -uroot -e 'CREATE DATABASE gim'
    store_url="$mariadb_url/gim"
    export GIM_STORE__URL=$store_url GIM_AUTH__TOKEN_SECRET=bench-token-secret-0123456789abcdef
    export GIM_DATA_DIR="$work/data" GIM_TELEMETRY__LOG_FILTER=warn
    logic_port=$(free_port)
    GIM_LOGIC__LISTEN="127.0.0.1:$logic_port" GIM_CONNECT__LISTEN="127.0.0.1:$(free_port)" target/release/gim serve &
    started+=($!)
    wait_for "gim serve" bash -c "exec 3<>/dev/tcp/127.0.0.1/$logic_port"
    local created
    created=$(target/release/gim app create --store --name bench)
    app_id=$(awk '/^app_id:/ {print $2}' <<<"$created")
    app_secret=$(awk '/^secret:/ {print $2}' <<<"$created")
    log "gim serve up on MariaDB"
}

# Builds gim and starts a cluster on this machine: MariaDB, Redis, one `gim logic` and
# $1 `gim connect` processes (with the GIM_* settings of the environment; CONNECT_WRAP
# runs each connect process under a command), and makes an app named bench. Sets `logic_port`, `ws` (the connect nodes' WebSocket addresses),
# `gim_pids` (logic, then the connect nodes), `aux_pids` (MariaDB, Redis), `secret`,
# `app_id` and `app_secret`.
start_cluster() {
    local nodes=$1 port internal created
    ensure_commands mariadbd:mariadb-server redis-server:redis-server
    cargo build --release --locked --bin gim --bin gim-bench
    start_mariadb
    aux_pids=("${started[-1]}")
    mariadb --socket="$work/mysql.sock" -uroot -e 'CREATE DATABASE gim'
    start_redis
    aux_pids+=("${started[-1]}")
    secret=bench-token-secret-0123456789abcdef
    export GIM_STORE__URL="$mariadb_url/gim" GIM_ROUTE__REDIS_URL="$redis_url" GIM_AUTH__TOKEN_SECRET=$secret
    export GIM_DATA_DIR="$work/data" GIM_TELEMETRY__LOG_FILTER=warn
    logic_port=$(free_port)
    internal=$(free_port)
    export GIM_LOGIC__INTERNAL_LISTEN="127.0.0.1:$internal"
    export GIM_CONNECT__LOGIC_INTERNAL_ADDRS="[\"http://127.0.0.1:$internal\"]"
    GIM_LOGIC__LISTEN="127.0.0.1:$logic_port" target/release/gim logic &
    started+=($!)
    gim_pids=($!)
    wait_for "gim logic" bash -c "exec 3<>/dev/tcp/127.0.0.1/$logic_port"
    ws=()
    for _ in $(seq 1 "$nodes"); do
        port=$(free_port) internal=$(free_port)
        GIM_CONNECT__LISTEN="127.0.0.1:$port" GIM_CONNECT__INTERNAL_LISTEN="127.0.0.1:$internal" \
            GIM_CONNECT__LOGIC_ADDRS="[\"http://127.0.0.1:$logic_port\"]" ${CONNECT_WRAP:-} target/release/gim connect &
        started+=($!)
        gim_pids+=($!)
        ws+=("127.0.0.1:$port")
        wait_for "gim connect" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
    done
    created=$(target/release/gim app create --store --name bench)
    app_id=$(awk '/^app_id:/ {print $2}' <<<"$created")
    app_secret=$(awk '/^secret:/ {print $2}' <<<"$created")
    log "gim logic on 127.0.0.1:$logic_port and $nodes connect nodes up on MariaDB and Redis"
}

# A comma-separated list of the arguments.
joined() { local IFS=,; echo "$*"; }

# Benchmarks call far faster than people do: no per-caller rates (see [rates]).
no_rate_limits() {
    export GIM_RATES__DEVICE_CALLS_PER_SECOND=0 GIM_RATES__USER_CALLS_PER_SECOND=0 GIM_RATES__APP_CALLS_PER_SECOND=0
    export GIM_RATES__FRIEND_REQUESTS_PER_HOUR=0 GIM_RATES__MOMENT_WRITES_PER_MINUTE=0
}

# The figures of a benchmark's output, as `name value` lines: rates (higher is better),
# latencies in ms (lower is better), completeness in %. Used by the comparison scripts.
bench_figures() {
    awk '
        /messages\/s,/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "messages/s,") print "sends/s", $i }
        /^latency p50/ { print "send p50 ms", $3; print "send p99 ms", $9 }
        /^send to last device:/ { print "p50 to last device ms", $6; print "p99 to last device ms", $12 }
        / messages in .* deliveries, / { print "sent messages/s", $1 / $4; print "deliveries/s", $(NF - 2) }
        /deliveries per CPU-second/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "deliveries" && $(i + 2) == "per") print "deliveries per CPU-s", $i }
        / memory: .* resident at the end$/ { print "server RSS MiB", $3 }
        /^Feed latency:/ { print "feed p99 ms", $10 }
        /^(ListConversations|SyncConversations|floor, Business.GetUser)/ {
            name = $1 ~ /^List/ ? "list" : $1 ~ /^Sync/ ? "sync" : "floor"
            for (i = 1; i < NF; i++) if (($i == "p50" || $i == "p99") && $(i + 2) == "ms") print name " " $i " ms", $(i + 1)
        }
        / measured messages$/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "of" && $(i + 3) == "measured") print "complete %", 100 * $i / $(i + 2) }
    ' "$1"
}

# The median of numbers on standard input, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Prints a table of two sides' figures: for each figure, both medians, every run's
# value and the ratio of the first side to the second. Arguments: the directory of
# outputs named SIDE.N, the two sides' names, and the number of runs.
compare_table() {
    local out=$1 first=$2 second=$3 runs=$4 name key side n
    local -A values medians
    printf '%-24s %-30s %-30s %s\n' figure "$first (median; runs)" "$second (median; runs)" "$first / $second"
    for name in $(bench_figures "$out/$first.1" | awk '{ NF--; print }' | tr ' ' '_'); do
        key=${name//_/ }
        for side in "$first" "$second"; do
            values[$side]=$(for n in $(seq 1 "$runs"); do bench_figures "$out/$side.$n" | awk -v k="$key" '{ v = $NF; NF--; if ($0 == k) print v }'; done | paste -sd' ')
            medians[$side]=$(tr ' ' '\n' <<<"${values[$side]}" | median)
        done
        printf '%-24s %-30s %-30s %s\n' "$key" "${medians[$first]}; ${values[$first]}" "${medians[$second]}; ${values[$second]}" \
            "$(awk -v a="${medians[$first]}" -v b="${medians[$second]}" 'BEGIN { printf (b > 0) ? "%.2f" : "-", a / b }')"
    done
}
