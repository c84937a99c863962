#!/usr/bin/env bash
# The two user-mode network stacks rootless containers can use, side by
# side on one machine: pasta (what rootless capsa runs) and slirp4netns.
# For each: the time from starting the tool until a published port
# answers, and the throughput of a 256 MB download from a server inside
# the namespace through that port (host 127.0.0.1 -> namespace), several
# runs, medians. Both get the same namespace, server and client.
# Usage: sudo bench/rootless-net.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
work=$(mktemp -d /tmp/capsa-net-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
head -c 268435456 /dev/zero > "$work/big.bin"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s%N; }
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# A network namespace with a server on port 8000 inside: its holder's
# pid in $ns (not a subshell: the pids to kill stay in this shell).
namespace() {
    unshare -n -- sleep 1000 &
    ns=$!
    pids+=("$ns")
    for _ in $(seq 50); do [ -e "/proc/$ns/ns/net" ] && break; sleep 0.02; done
    nsenter -t "$ns" -n ip link set lo up
    nsenter -t "$ns" -n python3 -m http.server 8000 --bind 0.0.0.0 --directory "$work" >/dev/null 2>&1 &
    pids+=("$!")
}

wait_port() { # port -> waits until it answers
    for _ in $(seq 500); do curl -sf -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.01; done
    return 1
}

declare -A setup speed
for i in $(seq "$runs"); do
    for tool in pasta slirp4netns; do
        namespace
        port=$(free_port)
        t0=$(now)
        if [ "$tool" = pasta ]; then
            # (the namespace as stdin: pasta drops CAP_SYS_PTRACE first, as
            # in crates/engine/src/network/pasta.rs)
            pasta --config-net --quiet --netns /proc/self/fd/0 --netns-only --runas 0:0 \
                --no-map-gw -T none -U none -t "$port:8000" -u none --pid "$work/pasta.pid" \
                < "/proc/$ns/ns/net"
            pids+=("$(cat "$work/pasta.pid")")
        else
            slirp4netns --configure --mtu=65520 --disable-host-loopback \
                --api-socket "$work/slirp.sock" "$ns" tap0 >/dev/null 2>&1 &
            pids+=("$!")
            for _ in $(seq 500); do [ -S "$work/slirp.sock" ] && break; sleep 0.01; done
            python3 - "$work/slirp.sock" "$port" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(json.dumps({"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": "127.0.0.1", "host_port": int(sys.argv[2]), "guest_port": 8000}}).encode())
r = s.recv(4096); assert b"error" not in r, r
PY
        fi
        wait_port "$port"
        t1=$(now)
        setup[$tool]+="$(( (t1 - t0) / 1000 )) "
        bps=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$port/big.bin")
        speed[$tool]+="$(awk -v b="$bps" 'BEGIN{printf "%.0f", b/1000000}') "
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        pids=()
        rm -f "$work/slirp.sock" "$work/pasta.pid"
    done
done
echo
echo "published port, host 127.0.0.1 -> a namespace, $runs runs each, medians"
echo
echo "| stack | set-up until the port answers, ms | 256 MB download, MB/s |"
echo "|---|---|---|"
for tool in pasta slirp4netns; do
    echo "| $tool | $(echo "${setup[$tool]}" | median | awk '{printf "%.1f", $1/1000}') | $(echo "${speed[$tool]}" | median) |"
done
