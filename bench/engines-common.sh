# Shared by bench/ctr.sh and bench/podman.sh (sourced): the runtimes to
# compare, a crun that works on this hybrid host, timing and the table.

# remove_cgroup_dirs DIR...: a bench's cgroups under every hierarchy,
# deepest first. On this hybrid host some /sys/fs/cgroup/X are plain tmpfs
# directories where conmon leaves `tasks` files: those are removed as the
# files they are (rmdir alone left them behind).
remove_cgroup_dirs() {
    local d
    for d in "$@"; do
        [ -d "$d" ] || continue
        if [ "$(stat -fc %T "$d")" = tmpfs ]; then
            rm -rf "$d"
        else
            find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
        fi
    done
}

# crun 1.8 refuses a v1 host with a cgroup2 mount beside it: run it in a
# private mount namespace without /sys/fs/cgroup/unified.
write_crun_wrapper() {
    cat > "$1" <<'EOT'
#!/bin/sh
exec unshare -m sh -c 'umount -l /sys/fs/cgroup/unified 2>/dev/null; exec /usr/bin/crun "$@"' crun "$@"
EOT
    chmod +x "$1"
}

# timed NAME CMD...: run CMD; on success add its time in µs to
# times[NAME], on failure count it in failed[NAME] instead (a failed run
# says nothing about speed, and is never part of a median). The caller
# declares the associative arrays `times` and `failed`.
timed() {
    local name=$1 t0 t1; shift
    t0=$(date +%s%N)
    if "$@"; then
        t1=$(date +%s%N)
        times[$name]+="$(( (t1 - t0) / 1000 )) "
    else
        failed[$name]=$(( ${failed[$name]:-0} + 1 ))
    fi
}

# measure RUNS CMD...: run "CMD RUNTIME ID" for capsa, runc and crun in
# turn, RUNS rounds, and print the medians and ratios to capsa, with the
# number of failed runs (dropped).
measure() {
    local runs=$1 title=$2; shift 2
    declare -A bins=([capsa]="$capsa" [runc]=/usr/sbin/runc [crun]="$work/crun-wrapper")
    local names=(capsa runc crun) n i
    declare -A times failed
    for i in $(seq "$runs"); do
        for n in "${names[@]}"; do
            timed "$n" "$@" "${bins[$n]}" "b-$n-$i" >/dev/null
        done
    done
    median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) / 1000}'; }
    echo "$title, $runs runs each, median ms of the runs that succeeded"
    echo
    echo "| runtime | median ms | / capsa | failed runs (dropped) |"
    echo "|---|---|---|---|"
    local c m
    c=$(echo "${times[capsa]:-}" | median)
    for n in "${names[@]}"; do
        m=$(echo "${times[$n]:-}" | median)
        echo "| $n | $m | $(awk -v a="$m" -v b="$c" 'BEGIN {printf "%.2fx", a/b}') | ${failed[$n]:-0} |"
    done
}

# podman_setup DIR [RUNROOT]: podman with a root, run root and
# containers.conf of our own (cgroupfs, no network, ulimits this host
# allows); pm runs it.
podman_setup() {
    PODMAN_WORK=$1
    PODMAN_RUN=${2:-$1/runroot}
    mkdir -p "$PODMAN_WORK"
    export CONTAINERS_CONF=$PODMAN_WORK/containers.conf
    cat > "$CONTAINERS_CONF" <<EOT
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
# crun 1.8 refuses this hybrid host; runc is what works here.
runtime = "runc"
events_logger = "file"
EOT
}
pm() { podman --root "$PODMAN_WORK/root" --runroot "$PODMAN_RUN" --tmpdir "$PODMAN_WORK/tmp" --storage-driver overlay "$@"; }

# median of numbers on stdin
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# bench_image DIR: a busybox rootfs in DIR/rootfs (sh, true, sleep), as
# DIR/rootfs.tar imported into capsa and podman as localhost/bench.
bench_image() {
    local d=$1
    mkdir -p "$d/rootfs/bin" "$d/rootfs/proc" "$d/rootfs/sys" "$d/rootfs/dev" "$d/rootfs/etc"
    cp /bin/busybox "$d/rootfs/bin/"
    for a in sh true sleep; do ln -s busybox "$d/rootfs/bin/$a"; done
    tar -C "$d/rootfs" -cf "$d/rootfs.tar" .
    capsa import -q "$d/rootfs.tar" localhost/bench:latest >/dev/null
    pm import "$d/rootfs.tar" localhost/bench:latest >/dev/null 2>&1
}

# oci_layout_of WORK DIR...: an OCI layout at WORK/oci, tagged "bench",
# with one gzip layer per host directory DIR (relative to /), each also
# kept as WORK/layers/N.tar.gz. Sets `total` (uncompressed bytes) and
# `compressed` (bytes of the gzip layers).
oci_layout_of() {
    local work=$1; shift
    local oci=$work/oci dir n=0 d s C CS M MS
    mkdir -p "$oci/blobs/sha256" "$work/layers"
    blob() { local h; h=$(sha256sum "$1" | cut -d' ' -f1); mv "$1" "$oci/blobs/sha256/$h"; echo "$h $(stat -c %s "$oci/blobs/sha256/$h")"; }
    local diffs=() descs=()
    total=0
    for dir in "$@"; do
        n=$((n + 1))
        tar -C / --numeric-owner -cf "$work/layer$n.tar" "$dir" 2>/dev/null || true
        diffs+=("\"sha256:$(sha256sum "$work/layer$n.tar" | cut -d' ' -f1)\"")
        total=$((total + $(stat -c %s "$work/layer$n.tar")))
        gzip -6 "$work/layer$n.tar"
        cp "$work/layer$n.tar.gz" "$work/layers/$n.tar.gz"
        read -r d s < <(blob "$work/layer$n.tar.gz")
        descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$s}")
    done
    join() { local IFS=,; echo "$*"; }
    printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$(join "${diffs[@]}")" > "$work/config.json"
    read -r C CS < <(blob "$work/config.json")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' "$C" "$CS" "$(join "${descs[@]}")" > "$work/manifest.json"
    read -r M MS < <(blob "$work/manifest.json")
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' "$M" "$MS" > "$oci/index.json"
    echo '{"imageLayoutVersion":"1.0.0"}' > "$oci/oci-layout"
    compressed=$(du -cb "$work"/layers/*.tar.gz | tail -1 | cut -f1)
}

# start_registry WORK: a docker-registry on a free 127.0.0.1 port, its
# storage under WORK; sets `regpid` and `port` once it answers.
start_registry() {
    local work=$1
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$work/registry" "$port" > "$work/registry.yml"
    docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
    regpid=$!
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
}
