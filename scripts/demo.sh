#!/usr/bin/env bash
# Build capsa and run a real container from its built-in image, capsa-demo
# (made on first use around capsa's probe program: no registry, no
# internet): it tells, in words, what a container sees. Then the same run
# with --trace, which shows each kernel-level step of the start and what it
# cost. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

# The default network is a bridge with NAT through nftables.
if ! command -v nft >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables >/dev/null
fi
cargo build --release -q -p capsa -p capsa-monitor -p capsa-probe -p capsa-runtime
capsa=target/x86_64-unknown-linux-gnu/release/capsa

echo "== capsa run --rm capsa-demo"
"$capsa" run --rm capsa-demo
echo
echo "== capsa run --rm --trace --memory 64m --cpus 0.5 --hostname box capsa-demo"
"$capsa" run --rm --trace --memory 64m --cpus 0.5 --hostname box capsa-demo >/dev/null
echo
echo "== host namespaces, for comparison"
for n in pid net mnt uts ipc cgroup; do printf '%s:%s ' "$n" "$(stat -Lc %i /proc/self/ns/$n)"; done; echo
