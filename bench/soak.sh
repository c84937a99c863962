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
cargo build --release -q -p capsa -p capsa-monitor -p capsa-runtime
bin=$(pwd)/target/x86_64-unknown-linux-gnu/release
work=$(mktemp -d /tmp/capsa-soak.XXXXXX)
export CAPSA_ROOT=$work/capsa CAPSA_RUN=$work/run CAPSA_CGROUP_PARENT=/capsa-soak
capsa() { "$bin/capsa" "$@"; }
rt() { "$bin/capsa-runtime" --root "$work/rt" "$@"; }
cleanup() {
    capsa rm -f $(capsa ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    for id in $(rt list -q 2>/dev/null); do rt delete -f "$id" >/dev/null 2>&1 || true; done
    grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    for d in /sys/fs/cgroup/*/capsa-soak*; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/rootfs/bin" "$work/rootfs/proc" "$work/rootfs/sys" "$work/rootfs/dev" "$work/rootfs/etc"
cp /bin/busybox "$work/rootfs/bin/"
for a in sh true sleep; do ln -s busybox "$work/rootfs/bin/$a"; done
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
capsa import -q "$work/rootfs.tar" localhost/soak:latest >/dev/null
mkdir -p "$work/bundle"
ln -s "$work/rootfs" "$work/bundle/rootfs"
rt spec --bundle "$work/bundle"
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False; c["process"]["args"] = ["/bin/true"]
c["linux"]["cgroupsPath"] = "/capsa-soak/rt"
json.dump(c, open(p, "w"))
PY

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
