#!/usr/bin/env bash
# Runs the cluster recipe of README.md ("Scale out") as written: the shell block after
# each `<!-- recipe: NAME -->` marker, in order, so that the README and this test cannot
# drift apart. It runs in network, mount and PID namespaces of its own, in which the
# recipe's machines are addresses of the loopback interface (logic nodes 10.0.0.1 and
# 10.0.0.2, one `gim logic` answering on both; connect node 10.0.0.5; `db` and `redis`
# by /etc/hosts), and a private MariaDB and Redis listen where the recipe expects them,
# on their usual ports. Nothing it starts outlives it. Then it uses the cluster: users,
# and a message through a logic node to a device session on the connect node.
#
# GIM_BIN names the gim binary (default: target/debug/gim). Needs unshare and ip (root,
# or unprivileged user namespaces), mariadbd and redis-server; test/it/cluster.rs runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${CLUSTER_RECIPE_NAMESPACES:-} ]]; then
    as_root=()
    ((EUID == 0)) || as_root=(--map-root-user)
    exec unshare --net --mount --pid --fork --kill-child --mount-proc "${as_root[@]}" \
        env CLUSTER_RECIPE_NAMESPACES=1 bash "$0" "$@"
fi
unset CLUSTER_RECIPE_NAMESPACES
source scripts/lib.sh
repo=$PWD
gim_bin=$(realpath "${GIM_BIN:-target/debug/gim}")
[[ -x $gim_bin ]] || fail "no gim binary at $gim_bin: build it (cargo build) or set GIM_BIN"
# gim reads every GIM_* variable as a setting of its own.
unset GIM_BIN

# The recipe's machines, on this namespace's loopback interface.
ip link set lo up
for address in 10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5; do
    ip address add "$address/32" dev lo
done
printf '127.0.0.1 localhost\n10.0.0.3 db\n10.0.0.4 redis\n' >"$work/hosts"
mount --bind "$work/hosts" /etc/hosts

# The database server, its socket where the client looks for it (its administrator comes
# in through it, as on the database machine), and Redis.
mount -t tmpfs tmpfs /run
mkdir /run/mysqld
mariadb-install-db --no-defaults --datadir="$work/mysql" --user=root \
    --auth-root-authentication-method=normal --skip-test-db >"$work/mysql-install.log" 2>&1
mariadbd --no-defaults --datadir="$work/mysql" --port=3306 --bind-address=10.0.0.3 --skip-name-resolve \
    --socket=/run/mysqld/mysqld.sock --user=root --skip-log-bin >"$work/mysql.log" 2>&1 &
started+=($!)
wait_for MariaDB mariadb-admin -uroot ping || { tail -n 20 "$work/mysql.log" >&2; exit 1; }
# The README's placeholder is this Redis's password.
redis-server --port 6379 --bind 10.0.0.4 --requirepass REDIS_PASSWORD --save '' --appendonly no \
    >"$work/redis.log" 2>&1 &
started+=($!)
wait_for Redis bash -c '[[ $(redis-cli -h redis -a REDIS_PASSWORD --no-auth-warning ping) == PONG ]]

# The recipe runs in a directory of its own, with `gim` on the path and gim's config/.
mkdir -p "$work/bin" "$work/recipe"
ln -s "$gim_bin" "$work/bin/gim"
ln -s "$repo/config" "$work/recipe/config"
export PATH="$work/bin:$PATH" GIM_PROFILES="$work/profiles.toml"
cd "$work/recipe"

# The shell block after `<!-- recipe: NAME -->` in README.md.
block() {
    local code
    code=$(awk -v marker="<!-- recipe: $1 -->" '
        $0 == marker { found = 1; next }
        found && /^```sh$/ { inside = 1; next }
        inside && /^```$/ { exit }
        inside { print }
    ' "$repo/README.md")
    [[ -n $code ]] || fail "README.md has no block after <!-- recipe: $1 -->"
    printf '%s\n' "$code"
}

# Runs a block in this shell (its exports stay), or, for a node, in the background.
run() {
    log "README.md, $1:"
    block "$1" | sed 's/^/    /' >&2
    eval "$(block "$1")"
}
start() {
    local file=$work/${1// /-}.log
    log "README.md, $1 (in the background, logging to $file):"
    block "$1" | sed 's/^/    /' >&2
    bash -c "$(block "$1")" >"$file" 2>&1 &
    started+=($!)
    nodes+=($!)
}
show_logs() {
    local file
    for file in "$work"/*-node.log; do
        [[ -e $file ]] && { log "$file:"; tail -n 30 "$file" >&2; }
    done
}
trap 'show_logs; stop_started' EXIT

nodes=()
run database
run secrets
run 'every node'
start 'logic node'
start 'connect node'
ready=$(block ready)
log "README.md, ready (until it succeeds, for a minute at most):"
printf '%s\n' "$ready" | sed 's/^/    /' >&2
for attempt in $(seq 1 600); do
    bash -c "$ready" >/dev/null 2>&1 && break
    for pid in "${nodes[@]}"; do
        kill -0 "$pid" 2>/dev/null || fail "a node stopped"
    done
    ((attempt < 600)) || fail "the cluster never became ready"
    sleep 0.1
done
run app

# The cluster works: a message sent through a logic node reaches a session on the
# connect node.
gim user create alice
gim user create bob
gim send --from alice --to bob "hello over the cluster"
received=$(timeout 30 gim listen --user bob --device laptop --ws ws://10.0.0.5:7080/ws --count 1)
[[ $received == *"alice -> bob: hello over the cluster"* ]] || fail "bob's session printed: $received"
trap stop_started EXIT
log "the README's cluster recipe works as written"
