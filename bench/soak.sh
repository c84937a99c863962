#!/usr/bin/env bash
# Reliability, not speed (issue 14): RT create/start/delete cycles of
# capsa-runtime and ENG `capsa run --rm` cycles, then everything that could
# leak is counted against the count before: mounts, cgroups, processes,
# state directories, veths, nft elements, the caller's fds, and the fds and
# memory of a long-lived monitor (a detached container kept running
# throughout). Failed cycles are counted, not hidden.
# Usage: sudo bench/soak.sh [RT_CYCLES] [ENG_CYCLES]
set -euo pipefail
cd "$(dirname "$0")/.."
rt_cycles=${1:-10000}
eng_cycles=${2:-2000}
source bench/reliability-common.sh
reliability_setup soak /bin/true

# What could leak, as "name count" lines.
census() {
    echo "mounts $(grep -c " $work" /proc/self/mountinfo || true)"
    echo "cgroups $(find /sys/fs/cgroup/*/capsa-soak* -mindepth 1 -type d 2>/dev/null | wc -l)"
    echo "processes $(pgrep -fc "$work" || true)"
    echo "runtime-state $(find "$work/rt" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
    echo "containers $(find "$work/capsa/containers" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
    echo "veths $(ip -o link show type veth 2>/dev/null | wc -l)"
    echo "nft-elements $(nft -j list table inet capsa 2>/dev/null | grep -o '"elem"' | wc -l)"
    echo "caller-fds $(ls /proc/$$/fd | wc -l)"
}
monitor_state() { # pid -> "fds rss-kB"
    echo "$(ls "/proc/$1/fd" | wc -l) $(awk '/^Rss:/ {print $2}' "/proc/$1/smaps_rollup")"
}

capsa run -d --name keeper --network none localhost/soak /bin/sleep 100000 >/dev/null
keeper=$(capsa inspect keeper | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["State"]["MonitorPid"])')
read -r kfd0 krss0 < <(monitor_state "$keeper")
census > "$work/before"

fail_rt=0
t0=$(date +%s)
for i in $(seq "$rt_cycles"); do
    if ! { rt create --bundle "$work/bundle" "s$i" && rt start "s$i"; } >/dev/null 2>&1; then
        fail_rt=$((fail_rt + 1))
    fi
    rt delete -f "s$i" >/dev/null 2>&1 || fail_rt=$((fail_rt + 1))
done
t1=$(date +%s)
fail_eng=0
for i in $(seq "$eng_cycles"); do
    capsa run --rm --network none localhost/soak /bin/true >/dev/null 2>&1 || fail_eng=$((fail_eng + 1))
done
t2=$(date +%s)

census > "$work/after"
read -r kfd1 krss1 < <(monitor_state "$keeper")
echo "soak: $rt_cycles capsa-runtime create/start/delete cycles in $((t1 - t0)) s ($fail_rt failed),"
echo "      $eng_cycles capsa run --rm cycles in $((t2 - t1)) s ($fail_eng failed)"
echo
echo "| what | before | after |"
echo "|---|---|---|"
paste -d' ' "$work/before" "$work/after" | awk '{printf "| %s | %s | %s |\n", $1, $2, $4}'
echo "| keeper's monitor fds | $kfd0 | $kfd1 |"
echo "| keeper's monitor RSS kB | $krss0 | $krss1 |"
