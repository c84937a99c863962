#!/usr/bin/env bash
# The in-root and procfs choke points, kept by CI: no code in the runtime,
# the engine or the build joins a container root's path with a path inside it and hands
# the result to a syscall (use capsa_sys::root::Root), and no code writes to
# /proc by path (use capsa_sys::procfs::ProcFs). Prints each offence and
# fails when there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
patterns=(
    # a root's path joined with a path inside it
    'rootfs\)?\.join\('
    'join\("rootfs"\)\.join\('
    'root\.join\("(dev|proc|sys|etc)'
    # writes to /proc by path
    'fs::write\(\s*"?/proc'
    'fs::write\(&?format!\("/proc'
    'OpenOptions::new\(\)[^;]*"/proc'
)
status=0
for p in "${patterns[@]}"; do
    if grep -rnE --include='*.rs' "$p" crates/runtime/src crates/engine/src crates/build/src; then
        status=1
    fi
done
if [ "$status" -ne 0 ]; then
    echo "check-in-root: the lines above reach into a container root or /proc by path" >&2
    exit 1
fi
echo "check-in-root: no container-root path or /proc write by path in runtime, engine or build"
