#!/usr/bin/env bash
# Rootless capsa against rootless podman and capsa as root, in one run:
#   `run --rm --network none IMAGE true` as a user this script makes (with
#   its own /etc/subuid range), by capsa rootless, podman rootless (its own
#   storage.conf and containers.conf in the user's home) and capsa as root;
#   pull + unpack of an image of about 250 MB (/usr/lib/gcc and
#   /usr/include, two gzip layers) from a local docker-registry, capsa
#   rootless against capsa as root.
# Several runs interleaved; failed runs are dropped and counted.
# Usage: sudo bench/rootless.sh [RUNS] [PULL_RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
pull_runs=${2:-3}
cargo build --release -q -p capsa -p capsa-monitor
work=$(mktemp -d /tmp/capsa-rootless-bench.XXXXXX)
chmod 711 "$work"
user=capsabench$$
home=$work/home
regpid=
source bench/engines-common.sh
cleanup() {
    [ -n "$regpid" ] && kill "$regpid" 2>/dev/null && wait "$regpid" 2>/dev/null || true
    pkill -KILL -U "$user" 2>/dev/null || true
    for _ in $(seq 50); do pgrep -U "$user" >/dev/null 2>&1 || break; sleep 0.1; done
    userdel "$user" 2>/dev/null || true
    sed -i "/^$user:/d" /etc/subuid /etc/subgid
    "$work/bin/capsa" rm -f $("$work/bin/capsa" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    remove_cgroup_dirs /sys/fs/cgroup/*/capsa-rootless-bench*
    rm -rf "$work"
}
trap cleanup EXIT

useradd --create-home --home-dir "$home" --shell /bin/sh "$user"
sed -i "/^$user:/d" /etc/subuid /etc/subgid
echo "$user:4000000:65536" >> /etc/subuid
echo "$user:4000000:65536" >> /etc/subgid
mkdir -p "$work/bin" "$home/run"
cp target/x86_64-unknown-linux-gnu/release/{capsa,capsa-monitor} "$work/bin/"
chmod 755 "$work/bin" "$work/bin"/*
chown "$user:" "$home/run"; chmod 700 "$home/run"
as_user() {
    runuser -u "$user" -- env -i HOME="$home" XDG_RUNTIME_DIR="$home/run" \
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"
}
mkdir -p "$work/rootfs/bin" "$work/rootfs/proc" "$work/rootfs/sys" "$work/rootfs/dev" "$work/rootfs/etc"
cp /bin/busybox "$work/rootfs/bin/"
for a in sh true; do ln -s busybox "$work/rootfs/bin/$a"; done
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
chmod 644 "$work/rootfs.tar"

# capsa as root, with its own store.
export CAPSA_ROOT=$work/root-store CAPSA_RUN=$work/root-run CAPSA_CGROUP_PARENT=/capsa-rootless-bench
"$work/bin/capsa" import -q "$work/rootfs.tar" localhost/bench:latest >/dev/null
# capsa and podman as the user.
as_user "$work/bin/capsa" import -q "$work/rootfs.tar" localhost/bench:latest >/dev/null
mkdir -p "$home/.config/containers"
cat > "$home/.config/containers/storage.conf" <<EOT
[storage]
driver = "overlay"
graphroot = "$home/podman-root"
runroot = "$home/run/podman"
EOT
# The same containers.conf as the root benches', where rootless podman
# reads it.
podman_setup "$home/.config/containers"
chown -R "$user:" "$home/.config"
as_user podman import "$work/rootfs.tar" localhost/bench:latest >/dev/null 2>&1

declare -A times failed
for i in $(seq "$runs"); do
    sleep 0.3
    timed capsa_rootless as_user "$work/bin/capsa" run --rm --network none localhost/bench /bin/true
    sleep 0.3
    timed podman_rootless as_user podman run --rm --network none localhost/bench /bin/true
    sleep 0.3
    timed capsa_root "$work/bin/capsa" run --rm --network none localhost/bench /bin/true
    # The floor of becoming the user (runuser, env): in both rootless rows.
    timed floor as_user /bin/true
done
ms() { echo "${times[$1]:-}" | median | awk '{printf "%.1f", $1/1000}'; }
cr=$(ms capsa_rootless); pr=$(ms podman_rootless); ro=$(ms capsa_root); fl=$(ms floor)
net() { awk -v a="$1" -v f="$2" 'BEGIN{printf "%.1f", a - f}'; }
crn=$(net "$cr" "$fl"); prn=$(net "$pr" "$fl")
echo
echo "run --rm --network none busybox true, $runs runs each, medians of the runs that succeeded;"
echo "net = minus the floor of becoming the user (runuser + env + /bin/true), which root's row does not pay"
echo
echo "| command | median ms | net ms | capsa rootless / this (net) | failed runs (dropped) |"
echo "|---|---|---|---|---|"
ratio() { awk -v a="$crn" -v b="$1" 'BEGIN{ if (b > 0) printf "%.3f", a/b; else print "-" }'; }
echo "| capsa rootless | $cr | $crn | 1.000 | ${failed[capsa_rootless]:-0} |"
echo "| podman rootless | $pr | $prn | $(ratio "$prn") | ${failed[podman_rootless]:-0} |"
echo "| capsa as root | $ro | $ro | $(ratio "$ro") | ${failed[capsa_root]:-0} |"
echo "| floor: runuser /bin/true | $fl | 0 | - | ${failed[floor]:-0} |"

# Pull + unpack from a local registry.
oci=$work/oci
oci_layout_of "$work" usr/lib/gcc usr/include
start_registry "$work"
ref=127.0.0.1:$port/bench/big:v1
skopeo copy -q --dest-tls-verify=false "oci:$oci:bench" "docker://$ref"

unset times failed
declare -A times failed
for i in $(seq "$pull_runs"); do
    rm -rf "$home/pull-store"  # (files of the user's subordinate ids: root removes them)
    timed pull_rootless as_user env CAPSA_ROOT="$home/pull-store" "$work/bin/capsa" pull -q "$ref" >/dev/null
    rm -rf "$home/pull-store"  # (files of the user's subordinate ids: root removes them)
    rm -rf "$work/pull-root"
    timed pull_root env CAPSA_ROOT="$work/pull-root" "$work/bin/capsa" pull -q "$ref" >/dev/null
    rm -rf "$work/pull-root"
done
echo
echo "pull + unpack of $((total / 1000000)) MB in two gzip layers from a local docker-registry, $pull_runs runs each"
echo
echo "| command | median ms | rootless / this | failed runs (dropped) |"
echo "|---|---|---|---|"
pr=$(ms pull_rootless); po=$(ms pull_root)
echo "| capsa pull, rootless | $pr | 1.00 | ${failed[pull_rootless]:-0} |"
echo "| capsa pull, root | $po | $(awk -v a="$pr" -v b="$po" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }') | ${failed[pull_root]:-0} |"
