#!/usr/bin/env bash
# capsa build against podman build (buildah), in one run: a 4-stage
# Containerfile on a local busybox base, with about 2,000 small files
# copied from the context, built
#   cold      (--no-cache: every step runs),
#   no change (a rebuild the cache answers),
#   one file  (a rebuild after one copied file changed).
# Several runs interleaved; failed runs are dropped and counted.
# Usage: sudo bench/build.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --release -q -p capsa -p capsa-monitor
work=$(mktemp -d /tmp/capsa-build-bench.XXXXXX)
source bench/engines-common.sh
export PATH=$PWD/target/x86_64-unknown-linux-gnu/release:$PATH
export CAPSA_ROOT=$work/store CAPSA_RUN=$work/run CAPSA_CGROUP_PARENT=/capsa-build-bench
podman_setup "$work/podman"
cleanup() {
    capsa rm -f $(capsa ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    pm rm -a -f >/dev/null 2>&1 || true
    pm system reset -f >/dev/null 2>&1 || true
    grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    remove_cgroup_dirs /sys/fs/cgroup/*/capsa-build-bench* /sys/fs/cgroup/*/libpod_parent
    rm -rf "$work"
}
trap cleanup EXIT

# The base: busybox with the applets the steps use.
mkdir -p "$work/rootfs/bin" "$work/rootfs/proc" "$work/rootfs/sys" "$work/rootfs/dev" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/"
for a in sh true mkdir ls cat echo wc; do ln -s busybox "$work/rootfs/bin/$a"; done
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
capsa import -q "$work/rootfs.tar" localhost/bench:latest >/dev/null
pm import "$work/rootfs.tar" localhost/bench:latest >/dev/null 2>&1

ctx=$work/ctx
for d in $(seq 0 19); do
    mkdir -p "$ctx/files/d$d"
    for f in $(seq 0 99); do echo "file $d/$f" > "$ctx/files/d$d/f$f.txt"; done
done
cat > "$ctx/Containerfile" <<'EOT'
FROM localhost/bench:latest AS base
RUN mkdir -p /work && echo base > /work/base

FROM base AS files
COPY files/ /files/
RUN ls -R /files | wc -l > /work/count

FROM base AS other
RUN echo other > /work/other

FROM localhost/bench:latest
COPY --from=files /files /files
COPY --from=files /work/count /count
COPY --from=other /work/other /other
CMD ["/bin/cat", "/count"]
EOT

declare -A times failed
cb() { capsa build -q --network none -t localhost/built:latest "$@" "$ctx" >/dev/null 2>&1; }
pb() { pm build -q --network none --layers -t localhost/built:latest "$@" "$ctx" >/dev/null 2>&1; }
for i in $(seq "$runs"); do
    for e in capsa podman; do
        f=cb; [ "$e" = podman ] && f=pb
        timed "cold-$e" "$f" --no-cache
        # Warm the cache for this file set, then measure a rebuild.
        "$f" || true
        timed "nochange-$e" "$f"
        echo "changed $i $e" > "$ctx/files/d7/f42.txt"
        timed "onefile-$e" "$f"
    done
done
# Each engine's image runs and counts what it copied.
echo "capsa's image counts $(capsa run --rm --network none localhost/built:latest) lines; podman's $(pm run --rm --network none localhost/built:latest 2>/dev/null)"
echo
echo "build of a 4-stage Containerfile, ~2,000 files copied, $runs runs each, median ms of the runs that succeeded"
echo
echo "| build | capsa ms | podman ms | capsa / podman | failed (capsa, podman) |"
echo "|---|---|---|---|---|"
for k in cold nochange onefile; do
    c=$(echo "${times[$k-capsa]:-}" | median); c=$(awk -v x="$c" 'BEGIN{printf "%.1f", x/1000}')
    p=$(echo "${times[$k-podman]:-}" | median); p=$(awk -v x="$p" 'BEGIN{printf "%.1f", x/1000}')
    echo "| $k | $c | $p | $(awk -v a="$c" -v b="$p" 'BEGIN {printf "%.3fx", a/b}') | ${failed[$k-capsa]:-0}, ${failed[$k-podman]:-0} |"
done
