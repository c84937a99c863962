# Shared by bench/soak.sh and bench/kill9.sh (sourced): release binaries,
# a work directory and cgroup parent named after NAME, a busybox image
# (localhost/NAME) and a bundle running ARGS, and a clean-up on exit.
# Usage: reliability_setup NAME ARGS...
source bench/engines-common.sh

reliability_setup() {
    local name=$1; shift
    cargo build --release -q -p capsa -p capsa-monitor -p capsa-runtime
    bin=$(pwd)/target/x86_64-unknown-linux-gnu/release
    work=$(mktemp -d "/tmp/capsa-$name.XXXXXX")
    parent=capsa-$name
    export CAPSA_ROOT=$work/capsa CAPSA_RUN=$work/run CAPSA_CGROUP_PARENT=/$parent
    trap reliability_cleanup EXIT
    mkdir -p "$work/rootfs/bin" "$work/rootfs/proc" "$work/rootfs/sys" "$work/rootfs/dev" "$work/rootfs/etc"
    cp /bin/busybox "$work/rootfs/bin/"
    for a in sh true sleep; do ln -s busybox "$work/rootfs/bin/$a"; done
    tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
    capsa import -q "$work/rootfs.tar" "localhost/$name:latest" >/dev/null
    mkdir -p "$work/bundle"
    ln -s "$work/rootfs" "$work/bundle/rootfs"
    rt spec --bundle "$work/bundle"
    python3 - "$work/bundle/config.json" "/$parent/rt" "$@" <<'PY'
import json, sys
p, cg, args = sys.argv[1], sys.argv[2], sys.argv[3:]
c = json.load(open(p))
c["process"]["terminal"] = False; c["process"]["args"] = args
c["linux"]["cgroupsPath"] = cg
json.dump(c, open(p, "w"))
PY
}
capsa() { "$bin/capsa" "$@"; }
rt() { "$bin/capsa-runtime" --root "$work/rt" "$@"; }
reliability_cleanup() {
    capsa rm -f $(capsa ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    for id in $(rt list -q 2>/dev/null); do rt delete -f "$id" >/dev/null 2>&1 || true; done
    grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    remove_cgroup_dirs /sys/fs/cgroup/*/"$parent"*
    rm -rf "$work"
}
