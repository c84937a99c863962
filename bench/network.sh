#!/usr/bin/env bash
# What bridge networking costs, side by side with podman (netavark):
#   `run --rm IMAGE true` with --network none and on a bridge network, for
#   capsa and podman, several runs interleaved, medians and the time the
#   bridge adds;
#   throughput host -> container over the bridge beside host loopback
#   (a busybox nc sink, a python sender, SIZE MiB of zeros, median of 3).
# Usage: sudo bench/network.sh [RUNS] [SIZE_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-15}
size=${2:-2000}
cargo build --release -q -p capsa -p capsa-monitor -p capsa-runtime
bin=$(pwd)/target/x86_64-unknown-linux-gnu/release
work=$(mktemp -d /tmp/capsa-net-bench.XXXXXX)
chmod 711 "$work"
runs_tmp=$(mktemp -d /dev/shm/capsa-net-bench.XXXXXX)
export CAPSA_ROOT=$work/capsa CAPSA_RUN=$runs_tmp/capsa CAPSA_CGROUP_PARENT=/capsa-net-bench
capsa() { "$bin/capsa" "$@"; }
source bench/engines-common.sh
podman_setup "$work/podman" "$runs_tmp/podman"
net=capsabench$$
loop_port=0
cleanup() {
    capsa rm -f $(capsa ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    capsa network rm "$net" >/dev/null 2>&1 || true
    pm rm -a -f >/dev/null 2>&1 || true
    pm system reset -f >/dev/null 2>&1 || true
    # The loop, then the listener it started.
    kill "${loop_pid:-0}" 2>/dev/null || true
    for i in 0 1 2; do pkill -f "busybox nc -l -p $((loop_port + i))" 2>/dev/null || true; done
    grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    grep -o " $runs_tmp[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    remove_cgroup_dirs /sys/fs/cgroup/*/capsa-net-bench*
    rm -rf "$work" "$runs_tmp"
}
trap cleanup EXIT

bench_image "$work"
capsa network create --subnet 10.231.250.0/24 "$net" >/dev/null

now() { date +%s%N; }
declare -A t
for i in $(seq "$runs"); do
    for k in capsa-none capsa-bridge podman-none podman-bridge; do
        sleep 0.3
        case $k in
            capsa-none) cmd=(capsa run --rm --network none localhost/bench /bin/true) ;;
            capsa-bridge) cmd=(capsa run --rm --network "$net" localhost/bench /bin/true) ;;
            podman-none) cmd=(pm run --rm --network none --cgroup-parent /capsa-net-bench-podman localhost/bench /bin/true) ;;
            podman-bridge) cmd=(pm run --rm --network bridge --cgroup-parent /capsa-net-bench-podman localhost/bench /bin/true) ;;
        esac
        a=$(now); "${cmd[@]}" >/dev/null; b=$(now); t[$k]+="$(( (b - a) / 1000 )) "
    done
done
ms() { echo "${t[$1]}" | median | awk '{printf "%.1f", $1/1000}'; }
cn=$(ms capsa-none); cb=$(ms capsa-bridge); pn=$(ms podman-none); pb=$(ms podman-bridge)
echo
echo "run --rm busybox true, $runs runs each, medians (ms)"
echo
echo "| engine | --network none | bridge | added by the bridge |"
echo "|---|---|---|---|"
echo "| capsa | $cn | $cb | $(awk -v a="$cb" -v b="$cn" 'BEGIN{printf "%.1f", a-b}') |"
echo "| podman (netavark) | $pn | $pb | $(awk -v a="$pb" -v b="$pn" 'BEGIN{printf "%.1f", a-b}') |"

# Throughput: a sink in a container on the bridge, and one on loopback,
# each a busybox nc per send on ports of its own (a listener restarted on
# one port can find it still taken).
capsa run -d --network "$net" --name sink localhost/bench sh -c 'for p in 5001 5002 5003; do busybox nc -l -p $p > /dev/null; done; sleep 100' >/dev/null
loop_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
( for i in 0 1 2; do busybox nc -l -p $((loop_port + i)) > /dev/null; done ) &
loop_pid=$!
sleep 1
ip=$(capsa inspect sink | python3 -c 'import json,sys; print(list(json.load(sys.stdin)[0]["NetworkSettings"]["Networks"].values())[0]["IPAddress"])')
send() { # host port -> seconds to send SIZE MiB and close
    python3 - "$1" "$2" "$size" <<'PY'
import socket, sys, time
host, port, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
buf = bytes(1 << 20)
for _ in range(500):  # the sink's next listener may not be up yet
    try:
        s = socket.create_connection((host, port), timeout=10)
        break
    except ConnectionRefusedError:
        time.sleep(0.01)
t = time.monotonic()
for _ in range(mib):
    s.sendall(buf)
s.shutdown(socket.SHUT_WR)
s.recv(1)  # the sink closes when it has read everything
print(f"{time.monotonic() - t:.3f}")
PY
}
declare -A s
for i in 0 1 2; do
    s[bridge]+="$(send "$ip" $((5001 + i))) "
    s[loopback]+="$(send 127.0.0.1 $((loop_port + i))) "
done
mbs() { echo "${s[$1]}" | median | awk -v n="$size" '{printf "%.0f", n/$1}'; }
echo
echo "throughput, $size MiB into a busybox nc sink, median of 3"
echo
echo "| path | MiB/s |"
echo "|---|---|"
echo "| host loopback | $(mbs loopback) |"
echo "| host -> container over the bridge | $(mbs bridge) |"
