#!/usr/bin/env bash
# `podman run --rm` of `true` with capsa-runtime, runc and crun as the OCI
# runtime: several runs each, interleaved, medians and ratios. podman uses
# a root, run root and containers.conf of this script's own (cgroupfs, no
# network, podman's default seccomp profile). crun goes through a
# wrapper that hides this host's cgroup2 mount (crun 1.8 refuses it).
# Usage: sudo bench/podman.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
capsa=$(pwd)/target/x86_64-unknown-linux-gnu/release/capsa-runtime
[ -x "$capsa" ] || cargo build --release -p capsa-runtime
work=$(mktemp -d /tmp/capsa-podman-bench.XXXXXX)
source bench/engines-common.sh
podman_setup "$work"
cleanup() {
    pm rm -a -f >/dev/null 2>&1 || true
    pm system reset -f >/dev/null 2>&1 || true
    grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    remove_cgroup_dirs /sys/fs/cgroup/*/capsa-podman-bench
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/" && ln -s busybox "$work/rootfs/bin/true"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
pm import "$work/rootfs.tar" localhost/capsa-bench:latest >/dev/null
write_crun_wrapper "$work/crun-wrapper"
run_podman() { pm --runtime "$1" run --rm --cgroup-parent /capsa-podman-bench localhost/capsa-bench:latest /bin/true; }
measure "$runs" "podman run --rm busybox true" run_podman
