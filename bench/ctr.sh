#!/usr/bin/env bash
# `ctr run --rm` of `true` through containerd with capsa-runtime, runc and
# crun as the runtime binary: several runs each, interleaved, medians and
# ratios. containerd runs with a config, root and socket of this script's
# own; crun goes through a wrapper that hides this host's cgroup2 mount
# from it (crun 1.8 refuses the hybrid layout).
# Usage: sudo bench/ctr.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-15}
capsa=$(pwd)/target/x86_64-unknown-linux-gnu/release/capsa-runtime
[ -x "$capsa" ] || cargo build --release -p capsa-runtime
work=$(mktemp -d /tmp/capsa-ctr-bench.XXXXXX)
ns=capsa-bench-$$
cleanup() {
    ctr -a "$work/c.sock" -n "$ns" images rm docker.io/library/busybox:capsa-bench >/dev/null 2>&1 || true
    [ -n "${cpid:-}" ] && kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null || true
    grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    remove_cgroup_dirs /sys/fs/cgroup/*/"$ns"
    rmdir /run/containerd/runc/"$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A busybox OCI archive.
img=$work/img; mkdir -p "$img/rootfs/bin" "$img/oci/blobs/sha256"
cp /bin/busybox "$img/rootfs/bin/"
for a in sh true; do ln -s busybox "$img/rootfs/bin/$a"; done
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$img/rootfs" -cf "$img/layer.tar" .
blob() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$img/oci/blobs/sha256/$d"; echo "$d $(stat -c %s "$1")"; }
read -r L LS < <(blob "$img/layer.tar")
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$L" > "$img/config.json"
read -r C CS < <(blob "$img/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' "$C" "$CS" "$L" "$LS" > "$img/manifest.json"
read -r M MS < <(blob "$img/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"docker.io/library/busybox:capsa-bench"}}]}' "$M" "$MS" > "$img/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$img/oci/oci-layout"
tar -C "$img/oci" -cf "$work/busybox.tar" .

cat > "$work/config.toml" <<EOT
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/c.sock"
[ttrpc]
  address = "$work/c.sock.ttrpc"
EOT
containerd --config "$work/config.toml" > "$work/containerd.log" 2>&1 &
cpid=$!
for _ in $(seq 50); do ctr -a "$work/c.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr -a "$work/c.sock" -n "$ns" images import "$work/busybox.tar" >/dev/null

source bench/engines-common.sh
write_crun_wrapper "$work/crun-wrapper"
run_ctr() { ctr -a "$work/c.sock" -n "$ns" run --runc-binary "$1" --rm docker.io/library/busybox:capsa-bench "$2" true; }
measure "$runs" "ctr run --rm busybox true" run_ctr
