#!/usr/bin/env bash
# Faults (issue 14): kill -9 at every step of a start, reached by sampling.
# Each round starts something and SIGKILLs it after a delay drawn from 0 to
# MAX_MS milliseconds, then runs the command a user would run next and
# checks that nothing is left behind:
#   - `capsa run -d`: the capsa command and, in other rounds, its monitor
#     are killed; then `capsa rm -f` of everything and `capsa ps -a` empty;
#   - `capsa-runtime create`: killed; then `capsa-runtime delete -f`;
#   - `capsa load`: killed mid-write; then `capsa images` must still read
#     the store.
# Leftovers counted at the end: mounts, cgroups, processes, state.
# Usage: sudo bench/kill9.sh [ROUNDS] [MAX_MS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-200}
max_ms=${2:-60}
source bench/reliability-common.sh
reliability_setup kill9 /bin/sleep 1000
# A big layer, so that a load takes long enough to be cut.
head -c 64M /dev/urandom > "$work/rootfs/big"
tar -C "$work/rootfs" -cf "$work/big.tar" .
rm "$work/rootfs/big"

pause() { sleep "$(awk -v m="$max_ms" -v r="$RANDOM" 'BEGIN {printf "%.3f", (r % (m + 1)) / 1000}')"; }
# What is left of ours, one line each (the census compares them).
left_list() {
    grep -o " $work[^ ]*" /proc/self/mountinfo || true
    find /sys/fs/cgroup/*/capsa-kill9* -mindepth 1 -type d 2>/dev/null || true
    pgrep -fa "$work/(rt|capsa|run)" | grep -v pgrep || true
    find "$work/rt" "$work/capsa/containers" -mindepth 1 -maxdepth 1 2>/dev/null || true
}
leftovers() { left_list | grep -c . || true; }
# A round is bad when it left more than there was before it; what it left
# goes to the report.
check_round() { # name before-count
    local now; now=$(leftovers)
    if [ "$now" -gt "$2" ]; then
        echo "== $1" >> "$work/../kill9-leaks.txt"
        left_list >> "$work/../kill9-leaks.txt"
        return 1
    fi
}

bad_run=0 bad_rt=0 bad_load=0 killed_monitor=0
for i in $(seq "$rounds"); do
    # capsa run -d, killed (the command, or in odd rounds its monitor).
    base=$(leftovers)
    # The binary itself in the background (not a shell function, whose
    # subshell is all that kill would reach).
    "$bin/capsa" run -d --network none --name "k$i" localhost/kill9 /bin/sleep 1000 >/dev/null 2>&1 &
    p=$!
    pause
    if [ $((i % 2)) -eq 1 ]; then
        m=$(pgrep -f "__capsa_monitor.*$work" | head -1 || true)
        if [ -n "$m" ]; then kill -9 "$m" 2>/dev/null || true; killed_monitor=$((killed_monitor + 1)); fi
    fi
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    capsa rm -f $(capsa ps -aq) >/dev/null 2>&1 || true
    if [ -n "$(capsa ps -aq)" ] || ! check_round "run $i" "$base"; then bad_run=$((bad_run + 1)); fi

    # capsa-runtime create, killed; then delete -f.
    base=$(leftovers)
    "$bin/capsa-runtime" --root "$work/rt" create --bundle "$work/bundle" "r$i" >/dev/null 2>&1 &
    p=$!
    pause
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    rt delete -f "r$i" >/dev/null 2>&1 || true
    check_round "create $i" "$base" || bad_rt=$((bad_rt + 1))

    # capsa import of a 64 MiB layer, cut; the store must still read.
    if [ $((i % 10)) -eq 0 ]; then
        "$bin/capsa" import -q "$work/big.tar" "localhost/big:$i" >/dev/null 2>&1 &
        p=$!
        sleep "0.$((RANDOM % 9 + 1))"
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
        capsa images >/dev/null 2>&1 || bad_load=$((bad_load + 1))
    fi
done
echo "kill -9: $rounds rounds, delays 0..$max_ms ms"
echo
echo "| killed | rounds | something left after the next command |"
echo "|---|---|---|"
echo "| capsa run -d (command; monitor too in $killed_monitor rounds) | $rounds | $bad_run |"
echo "| capsa-runtime create | $rounds | $bad_rt |"
echo "| capsa import (store unreadable after) | $((rounds / 10)) | $bad_load |"
echo
echo "left at the end: $(leftovers)"
