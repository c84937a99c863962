#!/usr/bin/env bash
# The engine side by side with podman, on one busybox image:
#   `capsa run --rm IMAGE true` vs `podman run --rm IMAGE true` vs the bare
#   runtime (`capsa-runtime run` of a bundle on the same rootfs), several
#   runs interleaved, medians and ratios;
#   MANY detached containers started, listed and removed, with the host
#   memory each costs (MemAvailable before and after) and the resident and
#   proportional size of capsa's monitor beside podman's conmon.
# Usage: sudo bench/engine.sh [RUNS] [MANY]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
many=${2:-200}
cargo build --release -q -p capsa -p capsa-monitor -p capsa-runtime -p capsa-probe
bin=$(pwd)/target/x86_64-unknown-linux-gnu/release
work=$(mktemp -d /tmp/capsa-engine-bench.XXXXXX)
# Run directories on tmpfs, as /run is on a real host, for both engines.
runs_tmp=$(mktemp -d /dev/shm/capsa-engine-bench.XXXXXX)
export CAPSA_ROOT=$work/capsa CAPSA_RUN=$runs_tmp/capsa CAPSA_CGROUP_PARENT=/capsa-engine-bench
capsa() { "$bin/capsa" "$@"; }
source bench/engines-common.sh
podman_setup "$work/podman" "$runs_tmp/podman"
cleanup() {
    capsa rm -f $(capsa ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    pm rm -a -f >/dev/null 2>&1 || true
    pm system reset -f >/dev/null 2>&1 || true
    "$bin/capsa-runtime" --root "$work/rt" delete -f bare >/dev/null 2>&1 || true
    grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    remove_cgroup_dirs /sys/fs/cgroup/*/capsa-engine-bench*
    grep -o " $runs_tmp[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$work" "$runs_tmp"
}
trap cleanup EXIT

bench_image "$work"
mkdir -p "$work/bundle"
ln -s "$work/rootfs" "$work/bundle/rootfs"
"$bin/capsa-runtime" spec --bundle "$work/bundle"
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False; c["process"]["args"] = ["/bin/true"]
c["linux"]["cgroupsPath"] = "/capsa-engine-bench-bare/bare"
json.dump(c, open(p, "w"))
PY

now() { date +%s%N; }
declare -A times failed
# A pause between commands lets each engine's leftover work (podman's
# cleanup process, say) finish before the next one is timed.
for i in $(seq "$runs"); do
    sleep 0.3
    timed capsa capsa run --rm --network none localhost/bench /bin/true
    sleep 0.3
    timed podman pm run --rm --cgroup-parent /capsa-engine-bench-podman localhost/bench /bin/true
    sleep 0.3
    timed bare "$bin/capsa-runtime" --root "$work/rt" run --bundle "$work/bundle" bare
done
ms() { echo "${times[$1]:-}" | median | awk '{printf "%.1f", $1/1000}'; }
c=$(ms capsa); p=$(ms podman); r=$(ms bare)
echo
echo "run --rm busybox true, $runs runs each, medians of the runs that succeeded"
echo
echo "| command | median ms | capsa / this | failed runs (dropped) |"
echo "|---|---|---|---|"
echo "| capsa run --rm | $c | 1.00 | ${failed[capsa]:-0} |"
echo "| podman run --rm | $p | $(awk -v a="$c" -v b="$p" 'BEGIN{printf "%.3f", a/b}') | ${failed[podman]:-0} |"
echo "| capsa-runtime run (bare) | $r | $(awk -v a="$c" -v b="$r" 'BEGIN{printf "%.2f", a/b}') | ${failed[bare]:-0} |"

avail() { awk '/MemAvailable/ {print $2}' /proc/meminfo; }
rss_pss() { # pids on stdin -> "median-RSS-kB median-PSS-kB"
    local r=() p=() pid
    while read -r pid; do
        r+=("$(awk '/^Rss:/ {print $2}' "/proc/$pid/smaps_rollup")")
        p+=("$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")")
    done
    echo "$(echo "${r[*]}" | median) $(echo "${p[*]}" | median)"
}
many_run() { # engine name start-cmd...
    local name=$1; shift
    sync; local before; before=$(avail)
    local a b; a=$(now)
    for i in $(seq "$many"); do "$@" >/dev/null; done
    b=$(now); echo "$name start $many: $(( (b - a) / 1000000 )) ms"
    sleep 2
    local after; after=$(avail)
    echo "$name host memory per container: $(( (before - after) / many )) kB"
}
echo
many_run capsa capsa run -d --network none localhost/bench /bin/sleep 1000
a=$(now); n=$(capsa ps -q | wc -l); b=$(now); echo "capsa ps ($n running): $(( (b - a) / 1000000 )) ms"
read -r mr mp < <(pgrep -x capsa-monitor | rss_pss); echo "capsa monitor: RSS $mr kB, PSS $mp kB (medians)"
a=$(now); capsa rm -f $(capsa ps -aq) >/dev/null; b=$(now); echo "capsa rm -f $many: $(( (b - a) / 1000000 )) ms"
many_run podman pm run -d --cgroup-parent /capsa-engine-bench-podman localhost/bench /bin/sleep 1000
a=$(now); n=$(pm ps -q | wc -l); b=$(now); echo "podman ps ($n running): $(( (b - a) / 1000000 )) ms"
read -r cr cp < <(pgrep -x conmon | rss_pss); echo "conmon: RSS $cr kB, PSS $cp kB (medians)"
a=$(now); pm rm -f -t 0 $(pm ps -aq) >/dev/null; b=$(now); echo "podman rm -f $many: $(( (b - a) / 1000000 )) ms"
