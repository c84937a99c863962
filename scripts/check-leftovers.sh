#!/usr/bin/env bash
# Fails if the test suite left anything of ours on the host: mounts under a
# test directory, cgroups of a test parent or of capsa's default parent,
# processes started from a test bundle, or state directories.
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
for d in /tmp/capsa-test-*; do
    if [ -e "$d" ]; then echo "leftover test directory: $d"; bad=1; fi
done
if [ "$bad" -eq 0 ]; then echo "nothing left behind"; fi
exit "$bad"
