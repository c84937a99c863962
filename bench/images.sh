#!/usr/bin/env bash
# Pull and unpack a multi-layer image (four gzip layers of real files from
# this machine's /usr, about 465 MB unpacked) side by side:
#   unpack from disk: capsa (`image mount` of a loaded layout: every layer
#     unpacked, in parallel) vs `umoci unpack` vs plain `tar -xzf` of the
#     same layers one after another (the single-threaded floor);
#   pull + unpack from a local docker-registry: `capsa pull` vs
#     `skopeo copy docker:// oci:` followed by `umoci unpack`.
# Several runs, interleaved; medians, MB/s of unpacked bytes, and ratios.
# Page cache warm for every tool alike (the layers were just written).
# Usage: sudo bench/images.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --release -q -p capsa
source bench/engines-common.sh
capsa=$(pwd)/target/x86_64-unknown-linux-gnu/release/capsa
# BENCH_TMP=/dev/shm measures the tools rather than the disk.
work=$(mktemp -d "${BENCH_TMP:-/tmp}/capsa-img-bench.XXXXXX")
regpid=
cleanup() {
    [ -n "$regpid" ] && kill "$regpid" 2>/dev/null && wait "$regpid" 2>/dev/null || true
    grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "building the image from /usr/lib/gcc /usr/include /usr/share/locale /usr/lib/python3 ..." >&2
oci=$work/oci
oci_layout_of "$work" usr/lib/gcc usr/include usr/share/locale usr/lib/python3
start_registry "$work"
ref=127.0.0.1:$port/bench/big:v1
skopeo copy -q --dest-tls-verify=false "oci:$oci:bench" "docker://$ref"

now() { date +%s%N; }
declare -A times
record() { times[$1]="${times[$1]:-} $2"; }
for r in $(seq "$runs"); do
    echo "run $r/$runs" >&2
    rm -rf "$work/x"; mkdir "$work/x"
    t=$(now); for l in "$work"/layers/*.tar.gz; do tar -C "$work/x" -xzf "$l"; done; record tar $(( $(now) - t ))
    rm -rf "$work/x"

    rm -rf "$work/s1" "$work/m"; mkdir -p "$work/m"
    CAPSA_ROOT=$work/s1 "$capsa" load -q -i "$oci" >/dev/null
    t=$(now); CAPSA_ROOT=$work/s1 "$capsa" image mount localhost/imported:bench "$work/m" >/dev/null; record capsa_unpack $(( $(now) - t ))
    umount "$work/m"; rm -rf "$work/s1"

    rm -rf "$work/bundle"
    t=$(now); umoci unpack --image "$oci:bench" "$work/bundle" >/dev/null 2>&1; record umoci_unpack $(( $(now) - t ))
    rm -rf "$work/bundle"

    rm -rf "$work/s2"
    t=$(now); CAPSA_ROOT=$work/s2 "$capsa" pull -q "$ref" >/dev/null; record capsa_pull $(( $(now) - t ))
    rm -rf "$work/s2"

    rm -rf "$work/oci2" "$work/bundle2"
    t=$(now)
    skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$work/oci2:v1"
    umoci unpack --image "$work/oci2:v1" "$work/bundle2" >/dev/null 2>&1
    record skopeo_umoci $(( $(now) - t ))
    rm -rf "$work/oci2" "$work/bundle2"
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A med
for k in tar capsa_unpack umoci_unpack capsa_pull skopeo_umoci; do med[$k]=$(echo "${times[$k]}" | median); done
mb=$(awk -v b="$total" 'BEGIN{printf "%.0f", b/1e6}')
cmb=$(awk -v b="$compressed" 'BEGIN{printf "%.0f", b/1e6}')
echo
echo "image: 4 gzip layers, $cmb MB compressed, $mb MB unpacked; $runs runs, medians"
printf '%-34s %10s %10s %8s\n' "what" "median s" "MB/s" "ratio"
row() { awk -v n="$2" -v base="$3" -v b="$total" -v name="$1" 'BEGIN{printf "%-34s %10.2f %10.0f %8.2f\n", name, n/1e9, b/1e6/(n/1e9), n/base}'; }
echo "unpack from disk (ratio to tar -xzf)"
row "  tar -xzf, layer after layer" "${med[tar]}" "${med[tar]}"
row "  capsa (image mount)" "${med[capsa_unpack]}" "${med[tar]}"
row "  umoci unpack" "${med[umoci_unpack]}" "${med[tar]}"
echo "pull + unpack from 127.0.0.1 (ratio to skopeo + umoci)"
row "  skopeo copy + umoci unpack" "${med[skopeo_umoci]}" "${med[skopeo_umoci]}"
row "  capsa pull" "${med[capsa_pull]}" "${med[skopeo_umoci]}"
