#!/usr/bin/env bash
# Fails if the test suite left anything of ours on the host: mounts under a
# test directory, cgroups of a test parent or of capsa's default parent,
# processes started from a test bundle, CNI bridges, capsa's bridges,
# veth pairs and nftables table, network namespaces and
# results of the CRI test, shim state, or test directories.
set -uo pipefail
bad=0
if grep -E 'capsa-test-' /proc/self/mountinfo; then
    echo "leftover mounts above"; bad=1
fi
for d in /sys/fs/cgroup/*/capsa-test-* /sys/fs/cgroup/*/capsa; do
    if [ -e "$d" ]; then echo "leftover cgroup: $d"; bad=1; fi
done
if pgrep -af 'capsa-test-' | grep -v pgrep; then
    echo "leftover processes above"; bad=1
fi
if ip -o link show 2>/dev/null | grep -E ': cb[0-9]+[:@]'; then
    echo "leftover CNI bridge above"; bad=1
fi
if ip -o link show 2>/dev/null | grep -E ': (capsa[-0-9]|veth[0-9a-f]{9})'; then
    echo "leftover capsa bridge or veth above"; bad=1
fi
if nft list table inet capsa >/dev/null 2>&1; then
    echo "leftover nftables table inet capsa"; bad=1
fi
if ls /var/run/netns 2>/dev/null | grep .; then
    echo "leftover network namespaces above"; bad=1
fi
if grep -ls 'capsa-test-' /var/lib/cni/results/* 2>/dev/null; then
    echo "leftover CNI results above"; bad=1
fi
if ls /run/containerd/runc 2>/dev/null | grep .; then
    echo "leftover runtime state of the containerd shim above"; bad=1
fi
for d in /tmp/capsa-test-*; do
    if [ -e "$d" ]; then echo "leftover test directory: $d"; bad=1; fi
done
if [ "$bad" -eq 0 ]; then echo "nothing left behind"; fi
exit "$bad"
