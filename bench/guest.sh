#!/usr/bin/env bash
# capsa-bench inside the pure cgroup v2 systemd guest (issue 15), where
# crun 1.8 runs natively. The guest is emulated (TCG on this host): absolute
# times mean nothing, the ratios in one run still do.
# Usage: sudo bench/guest.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-11}
cargo build --release -p capsa-bench -p capsa-runtime
cargo build -p capsa-tests --bin capsa-guest
rel=target/x86_64-unknown-linux-gnu/release
stage=target/guest-bench
rm -rf "$stage"
mkdir -p "$stage"
trap 'rm -rf "$stage"' EXIT
for b in capsa-bench capsa-runtime capsa-floor; do
    strip --strip-debug -o "$stage/$b" "$rel/$b"
done
target/x86_64-unknown-linux-gnu/debug/capsa-guest --share target \
    "set -e; mkdir -p /opt/capsa; cp /capsa/guest-bench/* /opt/capsa/; \
     echo \"guest: \$(uname -r), \$(nproc) vCPUs, \$(stat -fc %T /sys/fs/cgroup), PID 1 \$(cat /proc/1/comm)\"; \
     /opt/capsa/capsa-bench --runs $runs"
