#!/usr/bin/env bash
# Instructions `gim connect` executes per large-group delivery, counted by callgrind, so
# that a change to the fan-out path shows whatever the machine's speed or load (this
# machine has no hardware counters for `perf stat`). User space only: the kernel's share
# (mostly the socket writes) is not counted. Runs scripts/bench-group.sh twice with
# connect under callgrind, sending for SHORT and for LONG seconds to the same shape of
# group, and divides the difference in instructions by the difference in deliveries, so
# that setting up (the group, the sessions, the shutdown) cancels out.
#
#   scripts/bench-instructions.sh [--members N] [--rate R] [--short S] [--long S]
#
# callgrind runs connect some 50 times slower: keep the load small (the defaults are 200
# members, all online, 10 messages/s).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

members=200 rate=10 short=10 long=30
while (($#)); do
    case $1 in
    --members) members=$2 ;;
    --rate) rate=$2 ;;
    --short) short=$2 ;;
    --long) long=$2 ;;
    *)
        echo "usage: $0 [--members N] [--rate R] [--short S] [--long S]" >&2
        exit 2
        ;;
    esac
    shift 2
done
ensure_commands valgrind:valgrind

# Prints "INSTRUCTIONS DELIVERIES" for one run of SECONDS.
count() {
    local seconds=$1 profile=$work/callgrind.$1
    CONNECT_WRAP="valgrind --tool=callgrind --callgrind-out-file=$profile" \
        ./scripts/bench-group.sh --members "$members" --online "$members" --rate "$rate" \
        --seconds "$seconds" --warmup-seconds 0 >"$work/run.$seconds" 2>"$work/run.$seconds.log" || {
        tail -20 "$work/run.$seconds.log" >&2
        return 1
    }
    local instructions deliveries
    instructions=$(awk '/^(summary|totals):/ { print $2; exit }' "$profile")
    deliveries=$(awk '/ messages in .* deliveries, / { print $(NF - 4) }' "$work/run.$seconds")
    echo "$instructions $deliveries"
}

log "gim connect under callgrind: $members members online, $rate messages/s, for $short s then $long s"
read -r short_instructions short_deliveries < <(count "$short")
read -r long_instructions long_deliveries < <(count "$long")
echo "$short s: $short_instructions instructions, $short_deliveries deliveries"
echo "$long s: $long_instructions instructions, $long_deliveries deliveries"
awk -v a="$short_instructions" -v b="$long_instructions" -v c="$short_deliveries" -v d="$long_deliveries" \
    'BEGIN { printf "gim connect: %.0f instructions per delivery\n", (b - a) / (d - c) }'
